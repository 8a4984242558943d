package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/gospool/gospool/master/scoreboard"
	"github.com/gospool/gospool/master/stats"
	"github.com/gospool/gospool/spooler/ring"
)

const statsHelp = `Show the state of the spool directory DIR without disturbing it: the
counters of its shared-memory ring (kept by every gospool process that used
it, so no server is needed), its lanes with a producer or with records, the
spooler processes attached, how many uWSGI spool files wait in DIR (due
now, or scheduled for later by their "at"), and, when a gospool master
serves DIR, its processes from the master's scoreboard (DIR/gospool.procs):
pid, role, respawns, requests or tasks done, and what each is busy with
since when.

Counters: spooled (into the ring), spilled (to files instead: lane full or
task too big), done, retried, failed (handler error or panic, also counted
in retried), ignored (no handler took it), corrupt (dropped records), dead (out of retries), in
flight (running now). ready and claimed are counted in the ring right now;
fill is the percentage of the ring's payload space in use.

--json prints one object:
  {"dir", "ring": {"spooled", "spilled", "done", "retried", "failed",
   "ignored", "corrupt", "dead", "in_flight", "ready", "claimed", "fill", "sleepers",
   "lanes": [{"lane", "owner_pid", "ready", "claimed", "writing"}],
   "consumers": [{"entry", "pid", "tasks", "since"}]},
   "ring_error" (instead of "ring": no ring yet, or a damaged one),
   "files": {"due", "scheduled"},
   "master": {"pid", "started", "reloads", "processes": [{"pid", "role",
   "number", "state", "respawns", "spawned", "done", "busy_since",
   "current"}]}}   ("master" only while a master runs)`

func cmdStats(_ context.Context, a *app, args []string) error {
	flags := newFlagSet("stats", "gospool stats --spooler DIR [--json]", statsHelp)
	var dirs listValue
	flags.Var(&dirs, "spooler", "the spool directory `DIR`")
	asJSON := flags.Bool("json", false, "print one JSON object instead of text")
	pos, err := flags.parse(a, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q: stats takes no arguments besides its flags", pos[0])
	}
	dir, err := oneDir(dirs, "stats")
	if err != nil {
		return err
	}
	if err := checkDir(dir); err != nil {
		return err
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	path := filepath.Join(dir, ring.FileName)
	// Without a ring, or with a damaged one, the spool files and the
	// master are still worth showing.
	var st *ring.Stats
	doc := statsDoc{Dir: dir}
	r, err := ring.Open(path, ring.Options{ReadOnly: true})
	what, damaged := ring.Damaged(path, err)
	switch {
	case err == nil:
		defer r.Close()
		s := r.Stats()
		rs := stats.RingOf(s)
		st, doc.Ring = &s, &rs
	case errors.Is(err, fs.ErrNotExist):
		doc.RingError = fmt.Sprintf("no gospool ring in %s: no gospool spooler has served it yet (start one with gospool run --spooler %s)", dir, dir)
	case damaged:
		doc.RingError = ringDamaged(path, what, "")
	default:
		return err
	}
	files, err := stats.CountFiles(dir, time.Now())
	if err != nil {
		return err
	}
	doc.Files, doc.Master = files, readMaster(dir)
	if *asJSON {
		return writeJSON(a.stdout, doc)
	}
	fmt.Fprintf(a.stdout, "spool directory %s\n", dir)
	if st != nil {
		printRing(a.stdout, path, *st)
	} else {
		fmt.Fprintf(a.stdout, "ring: %s\n", doc.RingError)
	}
	fmt.Fprintf(a.stdout, "spool files: %d due now, %d scheduled for later\n", files.Due, files.Scheduled)
	printMaster(a.stdout, doc.Master)
	return nil
}

// masterDoc is what the scoreboard of a running master says.
type masterDoc struct {
	Pid       int             `json:"pid"`
	Started   string          `json:"started"`
	Reloads   int             `json:"reloads"`
	Processes []stats.Process `json:"processes"`
}

// readMaster reads DIR's scoreboard; nil when no master is running.
func readMaster(dir string) *masterDoc {
	b, err := scoreboard.Open(filepath.Join(dir, scoreboard.FileName))
	if err != nil {
		return nil
	}
	defer b.Close()
	pid, started, reloads := b.Master()
	if pid == 0 || syscall.Kill(pid, 0) == syscall.ESRCH {
		return nil // the master of that board is gone
	}
	doc := &masterDoc{Pid: pid, Started: started.Format(time.RFC3339), Reloads: reloads, Processes: []stats.Process{}}
	for i := 0; i < b.Len(); i++ {
		if p, ok := b.Slot(i).Read(); ok {
			doc.Processes = append(doc.Processes, stats.ProcessOf(p, ""))
		}
	}
	sort.Slice(doc.Processes, func(i, j int) bool {
		a, b := doc.Processes[i], doc.Processes[j]
		if a.Role != b.Role {
			return a.Role > b.Role // workers first
		}
		if a.Number != b.Number {
			return a.Number < b.Number
		}
		return a.Pid < b.Pid
	})
	return doc
}

func printMaster(w io.Writer, m *masterDoc) {
	if m == nil {
		fmt.Fprintln(w, "master: none running on this directory")
		return
	}
	fmt.Fprintf(w, "master pid %d, started %s, %d reload(s)\n", m.Pid, m.Started, m.Reloads)
	fmt.Fprintf(w, "  %-8s %-3s %-8s %-9s %8s %10s  %s\n", "role", "n", "pid", "state", "respawns", "done", "busy")
	for _, p := range m.Processes {
		busy := "idle"
		if p.BusySince != "" {
			since, _ := time.Parse(time.RFC3339Nano, p.BusySince)
			busy = fmt.Sprintf("%s for %v", p.Current, time.Since(since).Round(time.Millisecond))
		}
		fmt.Fprintf(w, "  %-8s %-3d %-8d %-9s %8d %10d  %s\n", p.Role, p.Number, p.Pid, p.State, p.Respawns, p.Done, busy)
	}
}

// statsDoc is the JSON of `gospool stats --json`.
type statsDoc struct {
	Dir  string      `json:"dir"`
	Ring *stats.Ring `json:"ring,omitempty"`
	// RingError says why there is no "ring": none yet, or a damaged one.
	RingError string      `json:"ring_error,omitempty"`
	Files     stats.Files `json:"files"`
	Master    *masterDoc  `json:"master,omitempty"`
}

// ringDamaged is what ls and stats say about a ring that ring.Damaged
// says is damaged, with note after the damage. Not ring.Open's advice, to
// remove the file: a master moves it aside and saves the tasks in it.
func ringDamaged(path, what, note string) string {
	return fmt.Sprintf("%s is damaged (%s)%s: gospool run --spooler %s saves the tasks in it as spool files when it (re)starts",
		path, what, note, filepath.Dir(path))
}

// printRing writes the text form of a ring's stats.
func printRing(w io.Writer, path string, st ring.Stats) {
	g := st.Geometry
	fmt.Fprintf(w, "ring %s: %d lanes of %d records and %s, %d consumer entries\n",
		path, g.Lanes, g.SlotsPerLane, sizeString(g.LaneBytes), g.Consumers)
	rows := []struct {
		name string
		n    any
	}{
		{"spooled", st.Spooled}, {"spilled", st.Spilled}, {"done", st.Done},
		{"retried", st.Retried}, {"failed", st.Failed}, {"ignored", st.Ignored},
		{"corrupt", st.Corrupt}, {"dead", st.Dead}, {"in flight", st.InFlight}, {"ready", st.Ready},
		{"claimed", st.Claimed}, {"fill", fmt.Sprintf("%.2f%%", st.Fill*100)},
		{"sleepers", st.Sleepers},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-10s %v\n", r.name, r.n)
	}
	if len(st.Lanes) == 0 {
		fmt.Fprintln(w, "lanes: none in use")
	} else {
		fmt.Fprintln(w, "lanes in use:")
	}
	for _, l := range st.Lanes {
		owner := "no owner"
		if l.OwnerPid != 0 {
			owner = fmt.Sprintf("owner pid %d", l.OwnerPid)
		}
		writing := ""
		if l.Writing {
			writing = ", a record being written"
		}
		fmt.Fprintf(w, "  lane %d: %s, %d ready, %d claimed%s\n", l.Lane, owner, l.Ready, l.Claimed, writing)
	}
	if len(st.Consumers) == 0 {
		fmt.Fprintln(w, "consumers: none (no gospool spooler is attached)")
	} else {
		fmt.Fprintln(w, "consumers:")
	}
	for _, c := range st.Consumers {
		fmt.Fprintf(w, "  entry %d: pid %d, tasks %d, since %s\n", c.Entry, c.Pid, c.Tasks, c.Since.Format(time.DateTime))
	}
}

func sizeString(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// writeJSON prints v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
