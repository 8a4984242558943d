package chaos

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
)

// run is one successful run of a task, from a "D" line of runs.log.
type run struct {
	pid, ppid  int
	start, end int64 // CLOCK_MONOTONIC ns
	ok         bool  // the payload's checksum matched
}

// records is what the producers and the task function wrote, read
// incrementally (the harness polls it while the tasks drain).
type records struct {
	offsets map[string]int64 // bytes of each log consumed (whole lines only)

	intended map[string]bool   // I: the id exists
	calls    map[string]int    // S: spool calls made for it
	acked    map[string]bool   // A: a spool call returned
	viaRing  int               // A lines saying the task went into the ring
	errored  map[string]string // E: a spool call failed on its own
	runs     map[string][]run  // D lines, in the order written
	failed   map[string][]run  // F lines: attempts that did not succeed (no end)
	latency  map[string][]int64
	garbage  []string // G lines and lines of runs.log that do not parse
	torn     int      // producer log lines that do not parse
}

func newRecords() *records {
	return &records{offsets: map[string]int64{}, intended: map[string]bool{}, calls: map[string]int{},
		acked: map[string]bool{}, errored: map[string]string{}, runs: map[string][]run{}, failed: map[string][]run{}, latency: map[string][]int64{}}
}

// update reads the lines added to the logs in dir since the last call.
func (r *records) update(dir string) error {
	paths, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return err
	}
	for _, p := range paths {
		base := filepath.Base(p)
		var parse func(string)
		switch {
		case strings.HasPrefix(base, "producer-"):
			parse = r.producerLine
		case base == "runs.log":
			parse = r.runLine
		case base == "latency.log":
			parse = r.latencyLine
		default:
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(io.NewSectionReader(f, r.offsets[p], 1<<40))
		f.Close()
		if err != nil {
			return err
		}
		end := bytes.LastIndexByte(b, '\n') + 1 // a line being written waits
		for _, line := range strings.Split(string(b[:end]), "\n") {
			if line != "" {
				parse(line)
			}
		}
		r.offsets[p] += int64(end)
	}
	return nil
}

func (r *records) producerLine(line string) {
	kind, rest, _ := strings.Cut(line, " ")
	id, extra, _ := strings.Cut(rest, " ")
	if id == "" {
		r.torn++
		return
	}
	switch kind {
	case "I":
		r.intended[id] = true
	case "S":
		r.calls[id]++
	case "A":
		r.acked[id] = true
		if extra == "ring" {
			r.viaRing++
		}
	case "E":
		r.errored[id] = extra
	case "X":
		// an injected exception: the S lines count the calls it caused
	default:
		r.torn++
	}
}

// runLine parses "D ID PID SPOOLER_PID START END ok|bad", "F ID PID
// SPOOLER_PID START" (an attempt that failed) and "G PID REPR".
func (r *records) runLine(line string) {
	f := strings.Fields(line)
	if len(f) == 5 && f[0] == "F" {
		pid, err1 := strconv.Atoi(f[2])
		ppid, err2 := strconv.Atoi(f[3])
		start, err3 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			r.garbage = append(r.garbage, line)
			return
		}
		r.failed[f[1]] = append(r.failed[f[1]], run{pid: pid, ppid: ppid, start: start})
		return
	}
	if len(f) != 7 || f[0] != "D" || (f[6] != "ok" && f[6] != "bad") {
		r.garbage = append(r.garbage, line)
		return
	}
	n := make([]int64, 4)
	for i := range n {
		v, err := strconv.ParseInt(f[2+i], 10, 64)
		if err != nil {
			r.garbage = append(r.garbage, line)
			return
		}
		n[i] = v
	}
	r.runs[f[1]] = append(r.runs[f[1]], run{pid: int(n[0]), ppid: int(n[1]), start: n[2], end: n[3], ok: f[6] == "ok"})
}

// latencyLine parses "L lat.PHASE.I PID NS".
func (r *records) latencyLine(line string) {
	f := strings.Fields(line)
	if len(f) != 4 {
		return
	}
	parts := strings.Split(f[1], ".")
	ns, err := strconv.ParseInt(f[3], 10, 64)
	if len(parts) != 3 || err != nil {
		return
	}
	r.latency[parts[1]] = append(r.latency[parts[1]], ns)
}

// pending are the acknowledged tasks that have not run (yet).
func (r *records) pending() []string {
	var out []string
	for id := range r.acked {
		if len(r.runs[id]) == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// p50 is the median hand-off of a probe phase, and how many probes ran.
func (r *records) p50(phase string) (int64, int) {
	v := slices.Clone(r.latency[phase])
	if len(v) == 0 {
		return 0, 0
	}
	slices.Sort(v)
	return v[len(v)/2], len(v)
}

// verdict is the accounting of one run.
type verdict struct {
	Produced, Acked, Ran, Runs int
	Lost                       []string // acknowledged, never run, not dead-lettered
	Torn                       []string // runs with a bad checksum or of an id nobody made
	DupByKill, DupByException  int
	Unexplained                []string
	ProducerErrors             []string // E lines: a spool call failed by itself
}

// analyze checks the records against the kills. A task that ran more than
// once needs a reason for each extra run:
//   - a kill: the process that ran it the time before was killed after that
//     run started and before this one started (the record or file was still
//     claimed, and went back); or that process's spooler was killed before
//     this run started (a runner may finish the task it had while its
//     spooler is already dead, since its parent-death SIGKILL is not
//     instant); or the master was killed from 10 s before the earlier run
//     to the start of this one (its children die with it); or the spooler
//     of an earlier failed attempt (an F line) was killed after that
//     attempt started and before this run started (it had written the
//     retry file but not yet marked the ring record done, so both ran);
//   - an exception: its producer called spool for it n times (an injected
//     exception interrupted the earlier calls, maybe after the task was
//     handed over), which may make up to n-1 extra runs.
//
// A producer whose spool call failed by itself (an E line) and who spooled
// again gets no such allowance: an error after the hand-off is the double
// run the item 7 describes.
func analyze(r *records, killedAt map[int]int64, masterKills []int64, dead map[string]bool) verdict {
	v := verdict{Produced: len(r.intended), Acked: len(r.acked)}
	killedIn := func(pid int, from, to int64) bool {
		at, ok := killedAt[pid]
		return ok && at >= from && at <= to
	}
	const masterSlack = int64(10 * time.Second)
	for _, id := range sortedKeys(r.runs) {
		runs := r.runs[id]
		v.Ran++
		v.Runs += len(runs)
		for _, x := range runs {
			if !x.ok {
				v.Torn = append(v.Torn, fmt.Sprintf("%s: run in pid %d with a payload whose checksum is wrong", id, x.pid))
			}
		}
		if !r.intended[id] {
			v.Torn = append(v.Torn, fmt.Sprintf("%s: ran %d time(s), but no producer made this id", id, len(runs)))
			continue
		}
		sort.Slice(runs, func(i, j int) bool { return runs[i].start < runs[j].start })
		spare := 0 // extra runs the producer's repeated spool calls explain
		if _, failed := r.errored[id]; !failed {
			spare = r.calls[id] - 1
		}
		for i := 1; i < len(runs); i++ {
			prev, this := runs[i-1], runs[i]
			masterKilled := slices.ContainsFunc(masterKills, func(at int64) bool { return at >= prev.start-masterSlack && at <= this.start })
			failedSpoolerKilled := slices.ContainsFunc(r.failed[id], func(f run) bool {
				return f.start < this.start && killedIn(f.ppid, f.start, this.start)
			})
			switch {
			case killedIn(prev.pid, prev.start, this.start) || killedIn(prev.ppid, 0, this.start) || masterKilled || failedSpoolerKilled:
				v.DupByKill++
			case spare > 0:
				spare--
				v.DupByException++
			default:
				why := ""
				if e, ok := r.errored[id]; ok {
					why = "; its producer retried after the error " + e
				}
				v.Unexplained = append(v.Unexplained, fmt.Sprintf("%s: run %d in pid %d (spooler %d) at %d after run %d in pid %d (spooler %d) at %d-%d, no kill between, %d spool call(s)%s",
					id, i+1, this.pid, this.ppid, this.start, i, prev.pid, prev.ppid, prev.start, prev.end, r.calls[id], why))
			}
		}
	}
	for _, g := range r.garbage {
		v.Torn = append(v.Torn, "a run line that does not parse: "+g)
	}
	for _, id := range r.pending() {
		if !dead[id] {
			v.Lost = append(v.Lost, id)
		}
	}
	for _, id := range sortedKeys(r.errored) {
		v.ProducerErrors = append(v.ProducerErrors, id+": "+r.errored[id])
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ringState is what the harness checks of the ring once the tasks drained.
type ringState struct {
	Ready    int `json:"ready"`
	Claimed  int `json:"claimed"`
	Sleepers int `json:"sleepers"`
	// Sleeping counts the live consumers whose entry says they sleep;
	// StaleSleeping the dead entries that still say so.
	Sleeping      int `json:"sleeping_consumers"`
	StaleSleeping int `json:"stale_sleeping_entries"`
	Consumers     int `json:"consumers"`
	// Writing counts lanes without an owner whose head is a record its
	// writer died writing: harmless (never run; the lane's next owner
	// writes over it), reported only.
	Writing int `json:"torn_heads"`
}

func (s ringState) settled() bool {
	return s.Ready == 0 && s.Claimed == 0 && s.Sleepers == s.Sleeping && s.StaleSleeping == 0
}

// Where the wake-up words live in the ring's header (spooler/ring/layout.go
// has the whole diagram): the sleepers count, and in each 64-byte entry of
// the consumer table at 1024 its "sleeping" flag. ring.Stats has the count
// but not the flags, so the harness reads both from the file, whose pages
// are the ones every process maps.
//
//	offset  size  field
//	196     4     sleepers: consumers asleep (or about to be) on wake seq
//	1024    64*C  consumer table; entry e at 1024+64*e:
//	  +8    4     sleeping: 1 while that consumer counts in sleepers
const (
	offSleepers      = 196
	consumerTable    = 1024
	consumerEntry    = 64
	consumerSleeping = 8
)

func readRing(dir string) (ringState, error) {
	r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{ReadOnly: true})
	if err != nil {
		return ringState{}, err
	}
	defer r.Close()
	st := r.Stats()
	hdr := make([]byte, 4096)
	if _, err := r.File().ReadAt(hdr, 0); err != nil {
		return ringState{}, err
	}
	le := binary.LittleEndian
	s := ringState{Ready: st.Ready, Claimed: st.Claimed, Sleepers: int(int32(le.Uint32(hdr[offSleepers:]))), Consumers: len(st.Consumers)}
	live := map[int]bool{}
	for _, c := range st.Consumers {
		live[c.Entry] = true
	}
	for e := 0; e < st.Geometry.Consumers; e++ {
		if le.Uint32(hdr[consumerTable+e*consumerEntry+consumerSleeping:]) == 0 {
			continue
		}
		if live[e] {
			s.Sleeping++
		} else {
			s.StaleSleeping++
		}
	}
	for _, l := range st.Lanes {
		if l.Writing && l.OwnerPid == 0 {
			s.Writing++ // a torn record nobody cleaned up
		}
	}
	return s, nil
}

// spoolFiles counts the uWSGI spool files waiting in dir (spills and
// retries); apart, those that do not hold a whole task (a writer killed
// between creating a file and writing it leaves it empty, and the spooler
// quarantines it only a minute later: it cannot tell a dead writer from a
// slow one), and the temporary files of the Python writer, which writes a
// hidden file and links it into place. Neither was ever acknowledged.
func spoolFiles(dir string) (tasks, torn, temp int) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".gospool-writing-") {
			temp++ // python/gospool/_spoolfile.py's, left by a killed writer
			continue
		}
		if !strings.HasPrefix(e.Name(), "uwsgi_spoolfile_on_") {
			continue
		}
		if _, err := spoolfile.ReadFile(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			torn++
		} else if err == nil {
			tasks++
		}
	}
	return tasks, torn, temp
}

// deadLetters are the ids of the tasks moved to DIR/gospool-dead (none
// while --spooler-max-retries is not given, but they would not be lost).
func deadLetters(dir string) map[string]bool {
	out := map[string]bool{}
	paths, _ := filepath.Glob(filepath.Join(dir, "gospool-dead", "uwsgi_spoolfile_on_*"))
	for _, p := range paths {
		if strings.HasSuffix(p, ".error") {
			continue
		}
		if t, err := spoolfile.ReadFile(p); err == nil {
			if id, ok := t.Get("id"); ok {
				out[string(id)] = true
			}
		}
	}
	return out
}
