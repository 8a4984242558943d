//go:build linux

package worker

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestSpoolRemoteUWSGI spools to real uWSGI 2.0 and reads back the spool
// files it writes: this proves that SpoolRemote speaks uWSGI's protocol.
// uWSGI runs the spooler plugin with an external spooler, so that nothing
// consumes the files.
func TestSpoolRemoteUWSGI(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir()) // uWSGI matches `spooler` against the realpath
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortTempDir(t), "u.sock")
	tcp := freePort(t)
	out := testproc.StartUWSGI(t, "--plugin", "spooler",
		"--socket", sock, "--socket", tcp,
		"--spooler-external", dir,
		"--master", "--processes", "1")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c1, err1 := net.Dial("unix", sock)
		c2, err2 := net.Dial("tcp", tcp)
		for _, c := range []net.Conn{c1, c2} {
			if c != nil {
				c.Close()
			}
		}
		if err1 == nil && err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uWSGI did not listen in 10s (%v, %v):\n%s", err1, err2, out.String())
		}
	}

	files := func() map[string]bool {
		m := map[string]bool{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), spoolfile.Prefix) {
				m[p] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// spool sends tk and returns the file uWSGI wrote for it, if any.
	spool := func(t *testing.T, addr string, tk *task.Task) (string, error) {
		t.Helper()
		before := files()
		err := SpoolRemote(ctxTimeout(t, 10*time.Second), addr, tk)
		var added []string
		for p := range files() {
			if !before[p] {
				added = append(added, p)
			}
		}
		if len(added) > 1 || (err == nil) != (len(added) == 1) {
			t.Fatalf("err %v, and uWSGI wrote %v", err, added)
		}
		if len(added) == 0 {
			return "", err
		}
		return added[0], err
	}

	for _, addr := range []string{sock, "unix:" + sock, tcp} {
		t.Run("pairs via "+addr, func(t *testing.T) {
			tk := task.New("task", "resize", "user", "42", "user", "43", "empty", "")
			tk.Add("bin", []byte{0, 0x11, 0xff})
			path, err := spool(t, addr, tk)
			if err != nil {
				t.Fatal(err)
			}
			got, err := spoolfile.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%q", got.Pairs) != fmt.Sprintf("%q", tk.Pairs) || got.Body != nil {
				t.Fatalf("uWSGI wrote %v, want %v", got, tk)
			}
		})
	}
	t.Run("at", func(t *testing.T) {
		path, err := spool(t, tcp, task.New("at", "1999999999.5", "k", "v"))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.ModTime().Unix() != 1999999999 {
			t.Fatalf("mtime %v, want the at time", fi.ModTime())
		}
	})
	t.Run("priority", func(t *testing.T) {
		path, err := spool(t, sock, task.New("priority", "3", "k", "v"))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(path) != filepath.Join(dir, "3") {
			t.Fatalf("written to %s, want the 3 sub-directory", path)
		}
	})
	t.Run("known spooler", func(t *testing.T) {
		if _, err := spool(t, sock, task.New("spooler", dir, "k", "v")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown spooler", func(t *testing.T) {
		if _, err := spool(t, sock, task.New("spooler", "/nope", "k", "v")); !errors.Is(err, ErrRefused) {
			t.Fatalf("err = %v, want ErrRefused", err)
		}
	})
	t.Run("exactly --buffer-size", func(t *testing.T) {
		if _, err := spool(t, tcp, task.New("k", strings.Repeat("v", 4096-5))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("over --buffer-size", func(t *testing.T) {
		_, err := spool(t, tcp, task.New("k", strings.Repeat("v", 4096-4)))
		if !errors.Is(err, ErrNoReply) {
			t.Fatalf("err = %v, want ErrNoReply", err)
		}
		t.Log(err)
		// uWSGI's log reaches us through a pipe, maybe after the reset.
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "invalid request block size: 4097 (max 4096)...skip"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("uWSGI did not log the refusal")
			}
		}
	})
}
