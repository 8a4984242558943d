package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/master"
	"github.com/gospool/gospool/spooler/record"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// A ring whose header is damaged, with tasks in it (two ready, one claimed
// by a spooler that died), and a spool file beside it: ls and stats still
// list the file and say the ring is damaged; gospool run moves the ring
// aside, saves its three tasks as spool files with one log line, starts
// with a fresh ring and runs all four tasks.
func TestRunSalvagesDamagedRing(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	ringPath := filepath.Join(dir, ring.FileName)
	r, err := ring.Create(ringPath, ring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"claimed", "ready1", "ready2"} {
		rec, err := record.Append(nil, task.New("id", id))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Push(rec); err != nil {
			t.Fatal(err)
		}
	}
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Claim(); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	// The consumer closes without finishing its record, as a spooler
	// killed in the middle of the task would leave it.
	for _, cl := range []interface{ Close() error }{c, p, r} {
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
	}
	w, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(task.New("id", "file")); err != nil {
		t.Fatal(err)
	}
	// 8 bytes of the header overwritten: the version and the header size,
	// so that the file also looks like a ring of another version.
	f, err := os.OpenFile(ringPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("\xde\xad\xbe\xef\xde\xad\xbe\xef"), 8); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ls := gospool(t, "ls", "--spooler", dir).mustSucceed(t)
	if !strings.Contains(ls.stdout, spoolfile.Prefix) || !strings.Contains(ls.stderr, "is damaged (ring header is corrupt") || strings.Count(ls.stderr, "\n") != 1 {
		t.Errorf("ls on a damaged ring:\nstdout: %s\nstderr: %s", ls.stdout, ls.stderr)
	}
	var doc struct {
		Ring      *json.RawMessage
		RingError string `json:"ring_error"`
		Files     struct{ Due int }
	}
	st := gospool(t, "stats", "--spooler", dir, "--json").mustSucceed(t)
	if err := json.Unmarshal([]byte(st.stdout), &doc); err != nil {
		t.Fatalf("%v: %s", err, st.stdout)
	}
	if doc.Ring != nil || !strings.Contains(doc.RingError, "is damaged") || doc.Files.Due != 1 {
		t.Errorf("stats --json on a damaged ring: %s", st.stdout)
	}
	text := gospool(t, "stats", "--spooler", dir).mustSucceed(t).stdout
	if !strings.Contains(text, "ring: "+ringPath+" is damaged") || !strings.Contains(text, "spool files: 1 due now") {
		t.Errorf("stats on a damaged ring:\n%s", text)
	}

	run := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", recordCmd)
	ran := waitRan(t, out, 4, run)
	ids := make([]string, 0, len(ran))
	for id := range ran {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if want := []string{"claimed", "file", "ready1", "ready2"}; !slices.Equal(ids, want) {
		t.Errorf("ran %q, want %q", ids, want)
	}
	moved, _ := filepath.Glob(ringPath + ".corrupt-*")
	if len(moved) != 1 {
		t.Fatalf("moved aside: %q, want one %s.corrupt-TIME", moved, ringPath)
	}
	logLine := regexp.MustCompile(`(?m)^master: ring \S+ was damaged \(ring header is corrupt: its version and its checksum are both wrong\): moved to ` +
		regexp.QuoteMeta(filepath.Base(moved[0])) + `; 3 task\(s\) in it saved as spool files, 0 lost; a fresh ring replaces it$`)
	if n := len(logLine.FindAllString(run.stderr.String(), -1)); n != 1 || strings.Count(run.stderr.String(), "damaged") != 1 {
		t.Errorf("%d salvage log lines, want one:\n%s", n, run.stderr)
	}
	fresh, err := ring.Open(ringPath, ring.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the fresh ring: %v", err)
	}
	fresh.Close()
	gospool(t, "ls", "--spooler", dir).mustSucceed(t)
	if code := run.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

// stats without a ring still counts the spool files (uWSGI's alone, say).
func TestStatsWithoutRing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(task.New("id", "1")); err != nil {
		t.Fatal(err)
	}
	text := gospool(t, "stats", "--spooler", dir).mustSucceed(t).stdout
	if !strings.Contains(text, "ring: no gospool ring in "+dir+": no gospool spooler has served it yet") ||
		!strings.Contains(text, "spool files: 1 due now") || !strings.Contains(text, "master: none running") {
		t.Errorf("stats:\n%s", text)
	}
}

// A second gospool run on a directory another master serves exits 1 with a
// line naming the first one's pid, and leaves the first one's scoreboard
// alone. The lock dies with the master: after a kill -9 a new master starts
// at once, even while a process the first one's worker started (which no
// parent-death signal reaches, and which inherited every descriptor the
// worker got) still runs.
func TestSecondMasterRefused(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	sock, remote := filepath.Join(t.TempDir(), "w.sock"), filepath.Join(t.TempDir(), "remote.sock")
	lingerFile := filepath.Join(out, "linger")
	args := []string{"--spooler", dir, "--spooler-exec", "true", "--socket", remote, "--workers", "1", "--listen", sock,
		"--worker-cmd", `sh -c 'sleep 300 & echo $! > "$LINGER"; exec sleep 300'`}
	env := []string{"LINGER=" + lingerFile}
	first := startRun(t, env, args...)
	waitLive(t, dir, first)
	var linger int
	testproc.WaitFor(t, 10*time.Second, "the worker's child", func() bool {
		b, _ := os.ReadFile(lingerFile)
		linger, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return linger > 0
	}, first.stderr)
	t.Cleanup(func() { syscall.Kill(linger, syscall.SIGKILL) })

	// Without a worker: were it to run, nothing it started could keep its
	// output pipes open after the test's timeout kills it. With the same
	// --socket: the pid, not the busy socket, stops it.
	second := gospoolOpts(t, cmdOpts{timeout: 20 * time.Second}, "run", "--spooler", dir, "--spooler-exec", "true", "--socket", remote)
	if second.code != 1 {
		t.Fatalf("second master: exit %d, want 1; stderr:\n%s", second.code, second.stderr)
	}
	oneErrorLine(t, second, "gospool run: master: spool directory ")
	pid := first.cmd.Process.Pid
	if want := fmt.Sprintf("is already served by another gospool master (pid %d)", pid); !strings.Contains(second.stderr, want) {
		t.Errorf("second master says %q, want it to say %q", second.stderr, want)
	}
	var st struct{ Master struct{ Pid int } }
	r := gospool(t, "stats", "--spooler", dir, "--json").mustSucceed(t)
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Master.Pid != pid {
		t.Errorf("after the second master: stats names master %d, want %d (%v)", st.Master.Pid, pid, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, master.LockFileName)); err != nil || string(b) != strconv.Itoa(pid)+"\n" {
		t.Errorf("lock file holds %q (%v), want the first master's pid", b, err)
	}

	// Not first.wait: the lingering process holds the master's stderr
	// pipe, so Wait returns only once it is gone. The master is reaped
	// before that, and its pid disappears.
	first.cmd.Process.Kill()
	testproc.WaitFor(t, 10*time.Second, "the first master gone", func() bool {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}, first.stderr)
	if syscall.Kill(linger, 0) != nil {
		t.Fatal("the worker's child is gone already; the test proves nothing")
	}
	third := startRun(t, nil, "--spooler", dir, "--spooler-exec", "true")
	testproc.WaitFor(t, 10*time.Second, "the new master's spooler", func() bool {
		return strings.Contains(third.stderr.String(), "spawned the gospool spooler")
	}, third.stderr)
	if syscall.Kill(linger, 0) != nil {
		t.Error("the worker's child died before the new master started; the test proves less than it says")
	}
	if code := third.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("new master: exit %d after SIGTERM:\n%s", code, third.stderr)
	}
}
