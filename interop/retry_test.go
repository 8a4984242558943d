package interop_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// The files gospool leaves in a spool directory when tasks fail must suit a
// uWSGI spooler that takes the directory over (a rollback): a retried task's
// file (`.retryN`, its mtime the time of the next attempt) is run by uWSGI,
// with its vars intact, not before that time; a dead letter in
// DIR/gospool-dead/ is never run, even by an ordered uWSGI spooler, which
// scans sub-directories.
func TestGospoolRetryAndDeadLetterFilesForUWSGI(t *testing.T) {
	h := newHarness(t)
	spool, out := h.mkdir("spool"), h.mkdir("out")
	w, err := spoolfile.NewWriter(spool, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write := func(tk *task.Task) string {
		t.Helper()
		path, err := w.Write(tk)
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	glob := func(pattern string) []string {
		files, _ := filepath.Glob(filepath.Join(spool, pattern))
		return files
	}

	// A task that fails twice becomes a dead letter.
	g := h.gospoolRun(t, "gospool-dead", gospoolBin, nil, "--spooler", spool, "--spooler-exec", "exit 1",
		"--spooler-max-retries", "1", "--spooler-retry-delay", "0.1", "--spooler-frequency", "1")
	write(task.New("id", "dead"))
	var dead string
	h.waitFor(t, 10*time.Second, "gospool to move the failing task to gospool-dead/", func() bool {
		for _, f := range glob("gospool-dead/" + spoolfile.Prefix + "*") {
			if !strings.HasSuffix(f, ".error") {
				dead = f
				return true
			}
		}
		return false
	})
	g.stop(t)

	// A task that fails once waits as a retry file, due in about 4 s.
	g = h.gospoolRun(t, "gospool-retry", gospoolBin, nil, "--spooler", spool, "--spooler-exec", "exit 1",
		"--spooler-retry-delay", "4", "--spooler-frequency", "1")
	retried := task.New("id", "retry", "k", "v")
	write(retried)
	var retry string
	h.waitFor(t, 10*time.Second, "gospool to write the failed task's retry file", func() bool {
		if files := glob(spoolfile.Prefix + "*.retry1"); len(files) == 1 {
			retry = files[0]
			return true
		}
		return false
	})
	g.stop(t)
	fi, err := os.Stat(retry)
	if err != nil {
		t.Fatal(err)
	}
	due := fi.ModTime()
	// uWSGI compares whole seconds: it may run the file up to a second
	// before a fractional mtime.
	dueSec := time.Unix(due.Unix(), 0)

	canary := write(task.New("id", "canary"))
	h.uwsgi(t, "uwsgi", "runner.ini", "INTEROP_SPOOL="+spool, "INTEROP_OUT="+out, "INTEROP_MODE=dump")
	ran := func(path string) (uwsgiRan, bool) {
		r, ok, err := readUWSGIRan(out, filepath.Base(path))
		if err != nil {
			t.Fatal(err)
		}
		return r, ok
	}
	h.waitFor(t, 10*time.Second, "uWSGI to run "+canary, func() bool { _, ok := ran(canary); return ok })

	if time.Now().After(dueSec) {
		t.Logf("the retry file's mtime (%s) passed before uWSGI ran the canary", due.Format(time.RFC3339Nano))
	}
	var r uwsgiRan
	h.waitFor(t, time.Until(due)+10*time.Second, "uWSGI to run gospool's retry file "+retry, func() bool {
		var ok bool
		r, ok = ran(retry)
		return ok
	})
	if started := floatTime(r.Time); started.Before(dueSec) {
		t.Errorf("uWSGI ran the retry file at %s, before its mtime %s", started.Format(time.RFC3339Nano), due.Format(time.RFC3339Nano))
	}
	got, want := r.entries(t), wantEntries(filepath.Base(retry), retried)
	if len(got) != len(want) {
		t.Errorf("uWSGI's callable got %q from the retry file, want %q", got, want)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("uWSGI's callable got %q from the retry file, want %q", got, want)
				break
			}
		}
	}

	// uWSGI has scanned several times since the canary: a dead letter it
	// would run has run by now.
	if _, ok := ran(dead); ok {
		t.Errorf("uWSGI ran the dead letter %s", dead)
	}
	if _, err := os.Stat(dead); err != nil {
		t.Errorf("the dead letter: %v", err)
	}
}
