//go:build linux

package spoolfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gospool/gospool/spooler/task"
)

func newTestWriter(t *testing.T, opts WriterOptions) *Writer {
	t.Helper()
	if opts.Host == "" {
		opts.Host = "test_host"
	}
	w, err := NewWriter(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// counterOf returns the counter field of a spool file name.
func counterOf(t *testing.T, path string) uint64 {
	t.Helper()
	m := fileNameRE.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		t.Errorf("%s does not match uWSGI's name format", path) // not Fatal: called from goroutines
		return 0
	}
	n, _ := strconv.ParseUint(m[3], 10, 64)
	return n
}

// listAll returns every path under dir, to prove that nothing was created.
func listAll(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p != dir {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestWriterWrite(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	w := newTestWriter(t, WriterOptions{})
	tk := task.New("task", "resize", "user", "42")
	tk.Body = []byte("body bytes")
	for i := uint64(1); i <= 3; i++ {
		path, err := w.Write(tk)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(path) != w.Dir() || !filepath.IsAbs(path) {
			t.Fatalf("%s is not in %s", path, w.Dir())
		}
		m := fileNameRE.FindStringSubmatch(filepath.Base(path))
		if m == nil || m[1] != "test_host" || m[2] != strconv.Itoa(os.Getpid()) {
			t.Fatalf("name %s: %q", filepath.Base(path), m)
		}
		if c := counterOf(t, path); c != i {
			t.Fatalf("counter %d, want %d", c, i)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o777 != 0o600 || !fi.Mode().IsRegular() {
			t.Fatalf("mode %v, want 0600", fi.Mode())
		}
		got, _ := os.ReadFile(path)
		want, _ := Encode(tk)
		if !bytes.Equal(got, want) {
			t.Fatalf("file holds % x, want % x", got, want)
		}
	}
}

func TestNewWriter(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	resolved, _ := filepath.EvalSymlinks(real)
	w, err := NewWriter(filepath.Join(dir, "link", "..", "real"), WriterOptions{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if w.Dir() != resolved {
		t.Errorf("Dir() = %s, want %s", w.Dir(), resolved)
	}
	t.Chdir(dir)
	if w, err := NewWriter("link", WriterOptions{Host: "h"}); err != nil || w.Dir() != resolved {
		t.Errorf("relative dir: %v, %v", w, err)
	}
	if w, err := NewWriter("real", WriterOptions{}); err != nil || w.host == "" {
		t.Errorf("default host: %v, %v", w, err)
	}

	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	for _, bad := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "file")} {
		if _, err := NewWriter(bad, WriterOptions{}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("NewWriter(%s) = %v, want an error naming it", bad, err)
		}
	}
	if _, err := NewWriter(dir, WriterOptions{Host: "a/b"}); err == nil {
		t.Error("host with a slash accepted")
	}
}

func TestWriterPriority(t *testing.T) {
	w := newTestWriter(t, WriterOptions{})
	for range 2 { // the second time the directory exists already
		path, err := w.Write(task.New("task", "x", "priority", "5"))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(path) != filepath.Join(w.Dir(), "5") {
			t.Fatalf("%s is not in the priority directory", path)
		}
	}
}

func TestWriterRefusesBeforeTouchingDisk(t *testing.T) {
	w := newTestWriter(t, WriterOptions{})
	for name, tk := range map[string]*task.Task{
		"priority escapes": task.New("priority", "../x"),
		"priority text":    task.New("priority", "high"),
		"bad at":           task.New("at", "soon"),
		"empty key":        task.New("", "v"),
		"value too large":  {Pairs: []task.Pair{{Key: []byte("k"), Value: make([]byte, 70000)}}},
	} {
		if path, err := w.Write(tk); err == nil {
			t.Errorf("%s: written to %s", name, path)
		}
	}
	if _, err := w.WriteNamed(task.New("k", "v"), time.Time{}, "x/y"); err == nil {
		t.Error("suffix with a slash accepted")
	}
	if got := listAll(t, filepath.Dir(w.Dir())); len(got) != 1 || got[0] != w.Dir() {
		t.Fatalf("refused tasks created %q", got)
	}
}

func TestWriterAt(t *testing.T) {
	w := newTestWriter(t, WriterOptions{})
	tk := task.New("task", "later", "at", "4102444800.25")
	path, err := w.Write(tk)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Unix(4102444800, 250_000_000)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if m, a := time.Unix(st.Mtim.Unix()), time.Unix(st.Atim.Unix()); !m.Equal(want) || !a.Equal(want) {
		t.Fatalf("mtime %v atime %v, want %v", m, a, want)
	}

	// WriteAt: the time goes into the mtime only, the pairs stay as they were.
	retry := time.Unix(1800000000, 123456789)
	path, err = w.WriteAt(tk, retry)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(retry) {
		t.Fatalf("WriteAt mtime %v, want %v", fi.ModTime(), retry)
	}
	got, _ := os.ReadFile(path)
	if want, _ := Encode(tk); !bytes.Equal(got, want) {
		t.Fatal("WriteAt changed the pairs")
	}

	// No at: the mtime is the write time.
	before := time.Now().Add(-time.Second)
	path, _ = w.Write(task.New("k", "v"))
	if fi, _ := os.Stat(path); fi.ModTime().Before(before) || fi.ModTime().After(time.Now().Add(time.Second)) {
		t.Fatalf("mtime %v is not now", fi.ModTime())
	}
}

func TestWriteNamed(t *testing.T) {
	w := newTestWriter(t, WriterOptions{Sync: true})
	path, err := w.WriteNamed(task.New("k", "v"), time.Time{}, ".retry2")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(path)
	trimmed, ok := strings.CutSuffix(base, ".retry2")
	if !ok || !strings.HasPrefix(base, Prefix) || !fileNameRE.MatchString(trimmed) {
		t.Fatalf("name %s", base)
	}
}

// The counter goes up before every attempt, failed ones included.
func TestWriterCounterCountsFailures(t *testing.T) {
	w := newTestWriter(t, WriterOptions{})
	p1, err := w.Write(task.New("k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	// A regular file where the priority directory should be: mkdir's EEXIST
	// is ignored as uWSGI ignores it, and the create fails.
	if err := os.WriteFile(filepath.Join(w.Dir(), "7"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(task.New("priority", "7")); err == nil || !strings.Contains(err.Error(), w.Dir()) {
		t.Fatalf("got %v, want an error naming the path", err)
	}
	p3, err := w.Write(task.New("k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	if counterOf(t, p1) != 1 || counterOf(t, p3) != 3 {
		t.Fatalf("counters %d, %d; want 1, 3", counterOf(t, p1), counterOf(t, p3))
	}
}

// A failure after the create removes the file, and the file is locked while
// it is being written: a classic POSIX lock from another process (what
// uWSGI's spooler takes) is refused.
func TestWriterLocksAndCleansUp(t *testing.T) {
	w := newTestWriter(t, WriterOptions{})
	var during string
	testHookWritten = func(path string) error {
		during = childTryLock(t, path)
		if locked, err := IsLocked(path); err != nil || !locked {
			t.Errorf("IsLocked during the write = %v, %v", locked, err)
		}
		return errors.New("disk on fire")
	}
	defer func() { testHookWritten = nil }()
	_, err := w.Write(task.New("k", "v"))
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), w.Dir()) || !strings.Contains(err.Error(), "NOT spooled") {
		t.Fatalf("got %v", err)
	}
	if during != "EAGAIN" && during != "EACCES" {
		t.Fatalf("a classic lock in another process got %q while the writer wrote", during)
	}
	if got := listAll(t, w.Dir()); len(got) != 0 {
		t.Fatalf("failed write left %q", got)
	}
}

func TestWriterConcurrent(t *testing.T) {
	w := newTestWriter(t, WriterOptions{})
	const goroutines, each = 8, 25
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				path, err := w.Write(task.New("k", "v"))
				if err != nil {
					t.Error(err)
					return
				}
				c := counterOf(t, path)
				mu.Lock()
				if seen[c] {
					t.Errorf("counter %d used twice", c)
				}
				seen[c] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n := len(listAll(t, w.Dir())); n != goroutines*each {
		t.Fatalf("%d files, want %d", n, goroutines*each)
	}
}
