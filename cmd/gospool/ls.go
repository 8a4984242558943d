package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gospool/gospool/master/scoreboard"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/ring"
)

const lsHelp = `List every pending task of the spool directory DIR, one per line: those in
its shared-memory ring, its uWSGI spool files (priority directories
included) and its dead letters, each with its state:

  ready              due now
  scheduled at T     its "at" is in the future
  retry N at T       attempt N, after a failure (its last error follows), due at T
  running in pid P   a spooler holds its lock (P from uWSGI's lock, or for
                     gospool from its master's process table, when known)
  dead               out of retries (--spooler-max-retries); its last error follows

A file in a priority directory is listed as PRIORITY/NAME; as in uWSGI, only
spoolers started with --spooler-ordered run those. The tasks of a damaged
ring are not listed (a warning says so): gospool run saves them as spool
files when it starts.

Nothing is changed. --json prints one JSON object per task (JSON Lines):
  {"where": "ring"|"file", "name", "path", "state", "at", "attempt", "pid",
   "priority", "error"}
with "at" in RFC 3339 and the empty fields left out.`

func cmdLs(_ context.Context, a *app, args []string) error {
	flags := newFlagSet("ls", "gospool ls --spooler DIR [--json]", lsHelp)
	var dirs listValue
	flags.Var(&dirs, "spooler", "the spool directory `DIR`")
	asJSON := flags.Bool("json", false, "print one JSON object per task")
	pos, err := flags.parse(a, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q: ls takes no arguments besides its flags", pos[0])
	}
	dir, err := oneDir(dirs, "ls")
	if err != nil {
		return err
	}
	if err := checkDir(dir); err != nil {
		return err
	}
	list, err := spooler.List(dir)
	if err != nil {
		return err
	}
	ringPath := filepath.Join(dir, ring.FileName)
	if r, err := ring.Open(ringPath, ring.Options{ReadOnly: true}); err == nil {
		r.Close()
	} else if what, damaged := ring.Damaged(ringPath, err); damaged {
		fmt.Fprintln(a.stderr, "gospool ls: "+ringDamaged(ringPath, what, "; its tasks are not listed"))
	}
	findRunners(dir, list)
	for _, p := range list {
		if *asJSON {
			if err := writeJSON(a.stdout, p); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(a.stdout, "%-7s %-4s %s%s\n", p.State, p.Where, p.Name, lsDetail(p))
	}
	return nil
}

func lsDetail(p spooler.Pending) string {
	at := func() string { return p.At.Local().Format(time.DateTime) }
	switch {
	case p.State == "scheduled":
		return "  at " + at()
	case p.State == "retry" && p.Error != "":
		return fmt.Sprintf("  attempt %d at %s, after: %s", p.Attempt, at(), p.Error)
	case p.State == "retry":
		return fmt.Sprintf("  attempt %d at %s", p.Attempt, at())
	case p.State == "running" && p.Pid > 0:
		return fmt.Sprintf("  in pid %d", p.Pid)
	case p.State == "dead":
		return fmt.Sprintf("  after %d attempts: %s", p.Attempt, p.Error)
	case p.Attempt > 1:
		return fmt.Sprintf("  attempt %d", p.Attempt)
	}
	return ""
}

// findRunners fills in the pid of the files a gospool spooler runs: their
// OFD locks name no process, but the scoreboard of the master serving dir
// (DIR/gospool.procs, kept in its first spool directory) says which task
// each spooler process runs. Without one the pids stay unknown.
func findRunners(dir string, list []spooler.Pending) {
	var board *scoreboard.Board
	for i := range list {
		p := &list[i]
		if p.State != "running" || p.Pid != 0 || p.Where != "file" {
			continue
		}
		if board == nil {
			b, err := scoreboard.Open(filepath.Join(dir, scoreboard.FileName))
			if err != nil {
				return
			}
			defer b.Close()
			board = b
		}
		if pid, ok := board.RunningTask(filepath.Base(p.Name)); ok {
			p.Pid = pid
		}
	}
}
