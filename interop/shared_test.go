package interop_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

const sharedTasks = 3000

// appendCmd is the --spooler-exec command of the shared-directory tests: it
// appends "<id> gospool" to the file $INTEROP_OUT, the file uWSGI's spooler
// callable appends "<id> uwsgi" to (O_APPEND, so lines land whole). It is
// plain sh, not Python: on a 2-CPU machine a Python start per task (60 ms
// here) starves uWSGI's spoolers, which run at the lowest CPU priority.
// The task's JSON is one line, {"path":...,"vars":[["id","N"]],...}.
const appendCmd = `read -r doc
id=${doc#*'["id","'}
id=${id%%'"'*}
case $id in ''|*[!0-9]*) echo "appendCmd: no id in $doc" >&2; exit 1;; esac
echo "$id gospool" >> "$INTEROP_OUT"`

// Two uWSGI spooler processes and two gospool spooler processes (one
// `gospool run --spooler-processes 2`: a directory has one gospool master)
// share one spool directory while 3000 tasks are written into it: the
// record locks alone must keep every task from running twice.
func TestSharedDirectoryUnderLoad(t *testing.T) {
	runSharedDirectory(t, false)
}

// The same with a crash on each side: the gospool master (its spoolers die
// with it) and one uWSGI spooler process are SIGKILLed mid-run (gospool
// restarted, uWSGI's master respawns its spooler). Delivery is at least once: nothing may be lost, and a task
// whose runner died may run twice.
func TestSharedDirectoryKill9(t *testing.T) {
	runSharedDirectory(t, true)
}

func runSharedDirectory(t *testing.T, kill bool) {
	h := newHarness(t)
	spool := h.mkdir("spool")
	outFile := filepath.Join(h.dir, "ran")

	// The uWSGI callable sleeps 1 ms per task so that uWSGI's spoolers do
	// not drain the directory before gospool's get their share, and so
	// that a SIGKILL is likely to land in the middle of a task.
	u := h.uwsgi(t, "uwsgi", "shared.ini", "INTEROP_SPOOL="+spool, "INTEROP_OUT="+outFile,
		"INTEROP_MODE=append", "INTEROP_SLEEP=0.001")
	h.waitFor(t, 10*time.Second, "uWSGI's 2 spooler processes", func() bool { return len(u.spawnedSpoolers()) >= 2 })

	runGospool := func(name string) *proc {
		return h.gospoolRun(t, name, gospoolBin, []string{"INTEROP_OUT=" + outFile},
			"--spooler", spool, "--spooler-processes", "2", "--spooler-exec", appendCmd, "--spooler-frequency", "1", "--spooler-quiet")
	}
	g1 := runGospool("gospool-1")

	// Write the tasks while everything runs, in bursts over about a second.
	w, err := spoolfile.NewWriter(spool, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeErr := make(chan error, 1)
	go func() {
		for i := 0; i < sharedTasks; i++ {
			if _, err := w.Write(task.New("id", strconv.Itoa(i))); err != nil {
				writeErr <- fmt.Errorf("task %d: %v", i, err)
				return
			}
			if i%100 == 99 {
				time.Sleep(30 * time.Millisecond)
			}
		}
		writeErr <- nil
	}()

	type tally struct{ uwsgi, gospool int }
	var (
		lastSize  int64 = -1
		lastRuns  map[string]*tally
		lastLines int
	)
	// count tallies the output file's lines per id (only when it grew).
	count := func() (map[string]*tally, int) {
		if fi, err := os.Stat(outFile); err != nil || fi.Size() == lastSize {
			return lastRuns, lastLines
		} else {
			lastSize = fi.Size()
		}
		runs := map[string]*tally{}
		lines := readLines(outFile)
		for _, line := range lines {
			id, side, ok := strings.Cut(line, " ")
			if !ok {
				t.Fatalf("%s: bad line %q", outFile, line)
			}
			n := runs[id]
			if n == nil {
				n = &tally{}
				runs[id] = n
			}
			switch side {
			case "uwsgi":
				n.uwsgi++
			case "gospool":
				n.gospool++
			default:
				t.Fatalf("%s: bad line %q", outFile, line)
			}
		}
		lastRuns, lastLines = runs, len(lines)
		return runs, len(lines)
	}

	if kill {
		h.waitFor(t, 30*time.Second, "a third of the tasks to run", func() bool {
			runs, _ := count()
			return len(runs) >= sharedTasks/3
		})
		g1.kill9()
		t.Logf("SIGKILLed gospool-1 (pid %d) after %d lines", g1.pid(), len(readLines(outFile)))
		runGospool("gospool-2") // at once: the kernel dropped the master's lock

		pids := u.spawnedSpoolers()
		victim := pids[len(pids)-1]
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 uWSGI spooler %d: %v", victim, err)
		}
		t.Logf("SIGKILLed uWSGI spooler pid %d after %d lines", victim, len(readLines(outFile)))
		h.waitFor(t, 10*time.Second, "uWSGI's master to respawn the spooler it lost", func() bool {
			return len(u.spawnedSpoolers()) > len(pids)
		})
	}

	if err := <-writeErr; err != nil {
		t.Fatalf("spoolfile.Writer: %v", err)
	}
	pending := func() []string {
		files, _ := filepath.Glob(filepath.Join(spool, spoolfile.Prefix+"*"))
		return files
	}
	defer func() {
		if t.Failed() {
			runs, lines := count()
			t.Logf("%d distinct ids ran (%d runs), %d spool files left", len(runs), lines, len(pending()))
		}
	}()
	h.waitFor(t, 60*time.Second, fmt.Sprintf("all %d tasks to run and their files to go", sharedTasks), func() bool {
		runs, _ := count()
		return len(runs) == sharedTasks && len(pending()) == 0
	})
	// A spooler that looked at a file just before it was deleted must not
	// run it: give any such late run time to show up (uWSGI scans every
	// second), then count for good.
	time.Sleep(1500 * time.Millisecond)
	runs, lines := count()

	var byUWSGI, byGospool, dups int
	var dupIDs []string
	for id, n := range runs {
		byUWSGI += n.uwsgi
		byGospool += n.gospool
		if n.uwsgi+n.gospool > 1 {
			dups += n.uwsgi + n.gospool - 1
			dupIDs = append(dupIDs, fmt.Sprintf("%s (uwsgi %d, gospool %d)", id, n.uwsgi, n.gospool))
		}
	}
	sort.Strings(dupIDs)
	t.Logf("%d tasks, %d runs: uWSGI ran %d, gospool ran %d; %d extra runs", sharedTasks, lines, byUWSGI, byGospool, dups)
	for i := 0; i < sharedTasks; i++ {
		if runs[strconv.Itoa(i)] == nil {
			t.Errorf("task %d never ran", i)
		}
	}
	if len(runs) != sharedTasks {
		t.Errorf("%d distinct ids ran, want %d", len(runs), sharedTasks)
	}
	if kill {
		if len(dupIDs) > 0 {
			t.Logf("ran more than once (at least once is the contract after a SIGKILL): %s", strings.Join(dupIDs, ", "))
		}
	} else if len(dupIDs) > 0 {
		t.Errorf("%d tasks ran more than once: %s", len(dupIDs), strings.Join(dupIDs, ", "))
	}
	if byUWSGI == 0 || byGospool == 0 {
		t.Errorf("uWSGI ran %d tasks and gospool %d: the directory was not really shared", byUWSGI, byGospool)
	}
	if q, _ := os.ReadDir(filepath.Join(spool, "gospool-quarantine")); len(q) > 0 {
		t.Errorf("gospool quarantined %d files written by spoolfile.Writer", len(q))
	}
}

// A SIGKILLed `gospool run` must not leave its task's command running while
// a peer runs the same task: uWSGI's task code dies with its spooler, so
// after a crash a task runs again, but never twice at the same time. Here
// gospool is killed while its command sleeps; uWSGI's spooler then takes the
// task over, and must not start it before that command is gone.
func TestKilledGospoolTaskDoesNotOverlapUWSGI(t *testing.T) {
	h := newHarness(t)
	spool, out := h.mkdir("spool"), h.mkdir("out")
	runs := filepath.Join(h.dir, "runs")
	g := h.gospoolRun(t, "gospool", gospoolBin, []string{"INTEROP_RUNS=" + runs}, "--spooler", spool,
		"--spooler-exec", `echo "start $(date +%s.%N)" >> "$INTEROP_RUNS"; sleep 3; echo "end $(date +%s.%N)" >> "$INTEROP_RUNS"`,
		"--spooler-frequency", "1")
	w, err := spoolfile.NewWriter(spool, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path, err := w.Write(task.New("id", "overlap"))
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, 10*time.Second, "gospool to start the task's command", func() bool { return len(readLines(runs)) > 0 })
	g.kill9()

	h.uwsgi(t, "uwsgi", "runner.ini", "INTEROP_SPOOL="+spool, "INTEROP_OUT="+out, "INTEROP_MODE=dump")
	var r uwsgiRan
	h.waitFor(t, 10*time.Second, "uWSGI to run the task gospool was killed in", func() bool {
		var ok bool
		r, ok, err = readUWSGIRan(out, filepath.Base(path))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	uwsgiStart := floatTime(r.Time)
	// The command, if it survived gospool, ends within 3 s of its start.
	h.waitFor(t, 10*time.Second, "the killed gospool's command to end or be gone", func() bool {
		return len(readLines(runs)) >= 2 || time.Now().After(uwsgiStart.Add(4*time.Second))
	})
	for _, line := range readLines(runs) {
		what, when, _ := strings.Cut(line, " ")
		sec, err := strconv.ParseFloat(when, 64)
		if err != nil {
			t.Fatalf("%s: %q", runs, line)
		}
		if at := floatTime(sec); what == "end" && at.After(uwsgiStart) {
			t.Errorf("uWSGI started the task at %s while the command of the SIGKILLed gospool still ran it (it ended %v later): gospool's task commands outlive it, and its lock does not",
				uwsgiStart.Format("15:04:05.000"), at.Sub(uwsgiStart).Round(time.Millisecond))
		}
	}
}
