package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
)

func stillRunning(t *testing.T, p *runProc) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("gospool run exited (%v); stderr:\n%s", p.err, p.stderr)
	default:
	}
}

// A full disk under `gospool run` (a real tmpfs): the master and its
// spooler keep running, `gospool spool` says "no space left" in one line
// and exits 1 when the task has to go to a file, and tasks run before and
// after. The SIGBUS came from a sparse ring file.
func TestFullDisk(t *testing.T) {
	t.Run("no room for the ring", func(t *testing.T) {
		// 2 MB cannot hold the default ring (41 MB, allocated at creation):
		// the master and the spooler run without one, on spool files.
		dir := testproc.Tmpfs(t, "2m")
		out := t.TempDir()
		p := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", recordCmd)
		testproc.WaitFor(t, 10*time.Second, "the spooler serving files without a ring", func() bool {
			return strings.Contains(p.stderr.String(), "serving spool files only")
		}, p.stderr)
		if !strings.Contains(p.stderr.String(), "no space left on device") {
			t.Errorf("the log does not name the full disk:\n%s", p.stderr)
		}
		spool := func(id string) result {
			return gospool(t, "spool", "--spooler", dir, "id="+id)
		}
		if r := spool("1").mustSucceed(t, "spool", "id=1"); !strings.HasPrefix(r.stdout, realDir(t, dir)+"/") {
			t.Fatalf("gospool spool printed %q, want a spool file", r.stdout)
		}
		waitRan(t, out, 1, p)
		// Its spool file goes once the task is done: then fill the disk.
		testproc.WaitFor(t, 10*time.Second, "the done task's spool file removed", func() bool {
			names, _ := filepath.Glob(filepath.Join(dir, spoolfile.Prefix+"*"))
			return len(names) == 0
		}, p.stderr)

		filler := testproc.FillDisk(t, dir)
		r := spool("2")
		if r.code != 1 {
			t.Fatalf("gospool spool on a full disk: exit %d, want 1\n%s", r.code, r.stderr)
		}
		oneErrorLine(t, r, "gospool spool: ")
		if !strings.Contains(r.stderr, "no space left on device") {
			t.Errorf("error %q does not say the disk is full", r.stderr)
		}
		stillRunning(t, p)

		os.Remove(filler)
		spool("3").mustSucceed(t, "spool", "id=3")
		waitRan(t, out, 2, p)
		stillRunning(t, p)
	})
	t.Run("ring made before", func(t *testing.T) {
		// The ring is allocated when it is made: on the full disk, tasks
		// still go into it and run; a task for a file fails cleanly.
		dir := testproc.Tmpfs(t, "48m")
		out := t.TempDir()
		p := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", recordCmd)
		waitLive(t, dir, p)
		testproc.FillDisk(t, dir)
		for i := 1; i <= 20; i++ {
			args := []string{"spool", "--spooler", dir, "id=" + strconv.Itoa(i)}
			if r := gospool(t, args...).mustSucceed(t, args...); !strings.HasPrefix(r.stdout, "ring ") {
				t.Fatalf("gospool spool printed %q, want the task in the ring", r.stdout)
			}
		}
		waitRan(t, out, 20, p)
		r := gospool(t, "spool", "--spooler", dir, "--at", "4000000000", "id=late")
		if r.code != 1 {
			t.Fatalf("gospool spool --at on a full disk: exit %d, want 1\n%s", r.code, r.stderr)
		}
		oneErrorLine(t, r, "gospool spool: ")
		if !strings.Contains(r.stderr, "no space left on device") {
			t.Errorf("error %q does not say the disk is full", r.stderr)
		}
		stillRunning(t, p)
	})
}

// The ring file removed (as our own error messages once advised) or cut
// short under `gospool run`: nothing dies by a signal, the master keeps
// running and makes a new ring file (saving what it can of a damaged one),
// the spooler starts again on it, and tasks spooled before and after run
// once.
func TestRingFileBrokenUnderRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(path string) error
	}{
		{"removed", os.Remove},
		{"truncated", func(path string) error { return os.Truncate(path, 4096) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			out := t.TempDir()
			p := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", recordCmd)
			waitLive(t, dir, p)
			ringPath := filepath.Join(realDir(t, dir), ring.FileName)
			gospool(t, "spool", "--spooler", dir, "id=1").mustSucceed(t, "spool", "id=1")
			waitRan(t, out, 1, p)
			// Records of the new file are named ring:0:0 and on again.
			for _, ext := range []string{".json", ".env"} {
				os.Remove(filepath.Join(out, "ring:0:0"+ext))
			}

			var before syscall.Stat_t
			syscall.Stat(ringPath, &before)
			if err := tc.breakIt(ringPath); err != nil {
				t.Fatal(err)
			}
			testproc.WaitFor(t, 20*time.Second, "a new ring file with a spooler on it", func() bool {
				var now syscall.Stat_t
				if syscall.Stat(ringPath, &now) != nil || now.Ino == before.Ino {
					return false
				}
				r, err := ring.Open(ringPath, ring.Options{ReadOnly: true})
				if err != nil {
					return false
				}
				defer r.Close()
				return r.HasLiveConsumer()
			}, p.stderr)
			for i := 2; i <= 5; i++ {
				args := []string{"spool", "--spooler", dir, "id=" + strconv.Itoa(i)}
				if r := gospool(t, args...).mustSucceed(t, args...); r.stdout != "ring "+ringPath+"\n" {
					t.Errorf("gospool %q printed %q, want the task in the new ring", args, r.stdout)
				}
			}
			waitRan(t, out, 4, p)
			stillRunning(t, p)
			if log := p.stderr.String(); strings.Contains(log, "SIGBUS") || strings.Contains(log, "fatal error") {
				t.Errorf("something died of a signal:\n%s", log)
			}
		})
	}
}
