package stats

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gospool/gospool/master/scoreboard"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
)

// Source is what a stats server reads: the master's spool directories, its
// scoreboard and its listeners. Everything is read at request time; nothing
// is copied in between.
type Source struct {
	// Dirs are the spool directories, absolute, in the master's order (the
	// scoreboard's directory index).
	Dirs []string
	// Board is the master's scoreboard.
	Board *scoreboard.Board
	// Sockets are the workers' listening sockets, for their accept queues.
	Sockets []Socket
	// Handoff returns the hand-off latency histogram of each directory
	// since the master started: the spoolers alive now (LiveHandoff) plus
	// the ones that died, which the master adds up as it reaps them. Nil:
	// the live spoolers only.
	Handoff func() []scoreboard.Histogram
}

// Socket is one listening socket of the master.
type Socket struct {
	Name string   // the address as configured
	File *os.File // the listener, which must stay open while the server runs
}

// LiveHandoff adds up the hand-off histograms of the live spoolers of each
// of n directories on board.
func LiveHandoff(board *scoreboard.Board, n int) []scoreboard.Histogram {
	out := make([]scoreboard.Histogram, n)
	for i := 0; i < board.Len(); i++ {
		slot := board.Slot(i)
		p, ok := slot.Read()
		if !ok || p.Role != scoreboard.Spooler || p.DirIndex < 0 || p.DirIndex >= n {
			continue
		}
		out[p.DirIndex].Add(slot.Handoff())
	}
	return out
}

// Document is what GET /stats answers: uWSGI's stats server document, as
// far as it applies, plus gospool's own object.
type Document struct {
	Version           string    `json:"version"`
	ListenQueue       int       `json:"listen_queue"`
	ListenQueueErrors int       `json:"listen_queue_errors"` // always 0
	SignalQueue       int       `json:"signal_queue"`        // always 0
	Load              int       `json:"load"`                // workers busy now
	Pid               int       `json:"pid"`
	UID               int       `json:"uid"`
	GID               int       `json:"gid"`
	Cwd               string    `json:"cwd"`
	Locks             []any     `json:"locks"` // always empty
	Sockets           []Sock    `json:"sockets"`
	Workers           []Worker  `json:"workers"`
	Spoolers          []Spooler `json:"spoolers"`
	Gospool           Gospool   `json:"gospool"`
}

// Sock is a listening socket, as uWSGI's "sockets" entries.
type Sock struct {
	Name       string `json:"name"`
	Proto      string `json:"proto"`     // "": the workers' protocol, unknown to the master
	Queue      int    `json:"queue"`     // connections waiting to be accepted (TCP; 0 for unix sockets)
	MaxQueue   int    `json:"max_queue"` // the backlog (TCP; 0 for unix sockets)
	Shared     int    `json:"shared"`    // always 0
	CanOffload int    `json:"can_offload"`
}

// Worker is a worker process, as uWSGI's "workers" entries, with every
// key uWSGI 2.0 writes, so that the tools reading them (uwsgitop, the
// Telegraf, Datadog and Netdata collectors) find what they index. What
// gospool does not count is always 0: exceptions, harakiri_count, signals,
// signal_queue, running_time, avg_rt, tx.
type Worker struct {
	ID            int    `json:"id"`
	Pid           int    `json:"pid"`
	Accepting     int    `json:"accepting"` // 1 while it runs (not stopping)
	Requests      uint64 `json:"requests"`
	DeltaRequests uint64 `json:"delta_requests"` // requests since it started, as requests
	Exceptions    int    `json:"exceptions"`
	HarakiriCount int    `json:"harakiri_count"`
	Signals       int    `json:"signals"`
	SignalQueue   int    `json:"signal_queue"`
	Status        string `json:"status"` // "busy" or "idle"
	RSS           uint64 `json:"rss"`    // bytes, from /proc/PID/statm
	VSZ           uint64 `json:"vsz"`    // bytes, from /proc/PID/statm
	RunningTime   uint64 `json:"running_time"`
	LastSpawn     int64  `json:"last_spawn"`
	RespawnCount  int    `json:"respawn_count"`
	TX            uint64 `json:"tx"`
	AvgRT         uint64 `json:"avg_rt"`
	Apps          []any  `json:"apps"`  // always empty
	Cores         []Core `json:"cores"` // one: a gospool worker is one core to uWSGI's eyes
}

// Core is uWSGI's per-core entry of a worker.
type Core struct {
	ID                int            `json:"id"`
	Requests          uint64         `json:"requests"`
	StaticRequests    int            `json:"static_requests"`
	RoutedRequests    int            `json:"routed_requests"`
	OffloadedRequests int            `json:"offloaded_requests"`
	WriteErrors       int            `json:"write_errors"`
	ReadErrors        int            `json:"read_errors"`
	InRequest         int            `json:"in_request"` // 1 while busy
	Vars              []string       `json:"vars"`
	ReqInfo           map[string]any `json:"req_info"`
}

// Spooler is a spooler process, as uWSGI's "spoolers" entries: one per
// process, as uWSGI has one per process of each directory.
type Spooler struct {
	Dir      string `json:"dir"`
	Pid      int    `json:"pid"`
	Tasks    uint64 `json:"tasks"` // run since this process started
	Respawns int    `json:"respawns"`
	Running  int    `json:"running"` // 1 while it runs a task
}

// Gospool is what uWSGI's document has no place for.
type Gospool struct {
	Started   string    `json:"started"` // the master's start, RFC 3339
	Reloads   int       `json:"reloads"`
	Dirs      []Dir     `json:"dirs"`
	Processes []Process `json:"processes"`
}

// Dir is one spool directory: its ring, its spool files, its hand-off
// latency.
type Dir struct {
	Dir     string  `json:"dir"`
	Ring    *Ring   `json:"ring"` // null when the ring cannot be read
	Files   Files   `json:"files"`
	Handoff Handoff `json:"handoff"`
	Error   string  `json:"error,omitempty"`
}

// Ring has the keys of `gospool stats --json`'s "ring".
type Ring struct {
	Spooled   uint64     `json:"spooled"`
	Spilled   uint64     `json:"spilled"`
	Done      uint64     `json:"done"`
	Retried   uint64     `json:"retried"`
	Failed    uint64     `json:"failed"`
	Ignored   uint64     `json:"ignored"`
	Corrupt   uint64     `json:"corrupt"`
	Dead      uint64     `json:"dead"`
	InFlight  uint64     `json:"in_flight"`
	Ready     int        `json:"ready"`
	Claimed   int        `json:"claimed"`
	Fill      float64    `json:"fill"` // percent
	Sleepers  uint32     `json:"sleepers"`
	Lanes     []Lane     `json:"lanes"`
	Consumers []Consumer `json:"consumers"`
}

// Lane is a ring lane with an owner or records.
type Lane struct {
	Lane     int  `json:"lane"`
	OwnerPid int  `json:"owner_pid"`
	Ready    int  `json:"ready"`
	Claimed  int  `json:"claimed"`
	Writing  bool `json:"writing"`
}

// Consumer is a spooler attached to the ring.
type Consumer struct {
	Entry int    `json:"entry"`
	Pid   int    `json:"pid"`
	Tasks uint64 `json:"tasks"`
	Since string `json:"since"` // RFC 3339
}

// Files counts the uWSGI spool files waiting in a directory.
type Files struct {
	Due       int `json:"due"`       // their "at" has come
	Scheduled int `json:"scheduled"` // for later
}

// Handoff is the hand-off latency histogram of a directory.
type Handoff struct {
	Count      uint64   `json:"count"`
	SumSeconds float64  `json:"sum_seconds"`
	Buckets    []Bucket `json:"buckets"` // cumulative, as Prometheus's; the last, +Inf, is Count
}

// Bucket counts the hand-offs that took at most LE seconds.
type Bucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// Process is a scoreboard slot, with the keys of `gospool stats --json`'s
// "master.processes", plus the spool directory of spoolers.
type Process struct {
	Pid       int    `json:"pid"`
	Role      string `json:"role"`
	Number    int    `json:"number"`
	Dir       string `json:"dir,omitempty"`
	State     string `json:"state"`
	Respawns  int    `json:"respawns"`
	Spawned   string `json:"spawned"`
	Done      uint64 `json:"done"`
	BusySince string `json:"busy_since,omitempty"`
	Current   string `json:"current,omitempty"`
}

// ProcessOf is a scoreboard slot in the document's form (what `gospool
// stats --json` prints in "master.processes"); dir is the spool directory
// of a spooler, "" to leave it out.
func ProcessOf(p scoreboard.Proc, dir string) Process {
	pd := Process{Pid: p.Pid, Role: p.Role.String(), Number: p.Number, Dir: dir, State: p.State.String(),
		Respawns: p.Respawns, Spawned: p.Spawned.Format(time.RFC3339), Done: p.Done, Current: p.Current}
	if !p.BusySince.IsZero() {
		pd.BusySince = p.BusySince.Format(time.RFC3339Nano)
	}
	return pd
}

// snapshot is one reading of everything, shared by /stats and /metrics.
type snapshot struct {
	masterPid int
	started   time.Time
	reloads   int
	procs     []scoreboard.Proc
	dirs      []dirSnap
	sockets   []Sock
}

type dirSnap struct {
	dir     string
	ring    *ring.Stats // nil when unreadable
	files   Files
	handoff scoreboard.Histogram
	err     error
}

// read takes a snapshot; ok is false once the server is closed.
func (s *Server) read() (sn snapshot, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return sn, false
	}
	src := s.src
	if src.Board != nil {
		sn.masterPid, sn.started, sn.reloads = src.Board.Master()
		for i := 0; i < src.Board.Len(); i++ {
			if p, ok := src.Board.Slot(i).Read(); ok {
				sn.procs = append(sn.procs, p)
			}
		}
	}
	sort.Slice(sn.procs, func(i, j int) bool {
		a, b := sn.procs[i], sn.procs[j]
		switch {
		case a.Role != b.Role:
			return a.Role < b.Role // workers first
		case a.DirIndex != b.DirIndex && a.Role == scoreboard.Spooler:
			return a.DirIndex < b.DirIndex
		case a.Number != b.Number:
			return a.Number < b.Number
		}
		return a.Spawned.Before(b.Spawned)
	})
	var hand []scoreboard.Histogram
	switch {
	case src.Handoff != nil:
		hand = src.Handoff()
	case src.Board != nil:
		hand = LiveHandoff(src.Board, len(src.Dirs))
	}
	for _, so := range src.Sockets {
		q, backlog := acceptQueue(so.File)
		sn.sockets = append(sn.sockets, Sock{Name: so.Name, Queue: q, MaxQueue: backlog})
	}
	now := time.Now()
	for i, dir := range src.Dirs {
		d := dirSnap{dir: dir}
		if r, err := s.ring(i); err == nil {
			st := r.Stats()
			d.ring = &st
		} else {
			d.err = err
		}
		files, err := CountFiles(dir, now)
		d.files = files
		if err != nil && d.err == nil {
			d.err = err
		}
		if i < len(hand) {
			d.handoff = hand[i]
		}
		sn.dirs = append(sn.dirs, d)
	}
	return sn, true
}

// Document builds the JSON document from a fresh reading; ok is false once
// the server is closed.
func (s *Server) Document() (doc Document, ok bool) {
	sn, ok := s.read()
	if !ok {
		return Document{}, false
	}
	return s.document(sn), true
}

func (s *Server) document(sn snapshot) Document {
	doc := Document{
		Version: version(), Pid: sn.masterPid, UID: os.Getuid(), GID: os.Getgid(),
		Locks: []any{}, Sockets: []Sock{}, Workers: []Worker{}, Spoolers: []Spooler{},
		Gospool: Gospool{Started: sn.started.Format(time.RFC3339), Reloads: sn.reloads, Dirs: []Dir{}, Processes: []Process{}},
	}
	if doc.Pid == 0 {
		doc.Pid = os.Getpid()
	}
	doc.Cwd, _ = os.Getwd()
	for _, so := range sn.sockets {
		doc.Sockets = append(doc.Sockets, so)
		doc.ListenQueue += so.Queue
	}
	for _, p := range sn.procs {
		dir := ""
		if p.Role == scoreboard.Spooler && p.DirIndex >= 0 && p.DirIndex < len(s.src.Dirs) {
			dir = s.src.Dirs[p.DirIndex]
		}
		busy := !p.BusySince.IsZero()
		switch p.Role {
		case scoreboard.Worker:
			status, inRequest := "idle", 0
			if busy {
				status, inRequest = "busy", 1
				doc.Load++
			}
			accepting := 0
			if p.State == scoreboard.Running {
				accepting = 1
			}
			rss, vsz := memoryOf(p.Pid)
			doc.Workers = append(doc.Workers, Worker{ID: p.Number, Pid: p.Pid, Accepting: accepting,
				Requests: p.Done, DeltaRequests: p.Done, Status: status, RSS: rss, VSZ: vsz,
				LastSpawn: p.Spawned.Unix(), RespawnCount: p.Respawns, Apps: []any{},
				Cores: []Core{{Requests: p.Done, InRequest: inRequest, Vars: []string{}, ReqInfo: map[string]any{}}}})
		case scoreboard.Spooler:
			running := 0
			if busy {
				running = 1
			}
			doc.Spoolers = append(doc.Spoolers, Spooler{Dir: dir, Pid: p.Pid, Tasks: p.Done, Respawns: p.Respawns, Running: running})
		}
		doc.Gospool.Processes = append(doc.Gospool.Processes, ProcessOf(p, dir))
	}
	for _, d := range sn.dirs {
		dd := Dir{Dir: d.dir, Files: d.files, Handoff: handoffDoc(d.handoff)}
		if d.ring != nil {
			r := RingOf(*d.ring)
			dd.Ring = &r
		}
		if d.err != nil {
			dd.Error = d.err.Error()
		}
		doc.Gospool.Dirs = append(doc.Gospool.Dirs, dd)
	}
	return doc
}

// memoryOf reads a process's resident and virtual sizes, in bytes, from
// /proc/PID/statm (0 and 0 if it cannot).
func memoryOf(pid int) (rss, vsz uint64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, 0
	}
	var size, resident uint64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0, 0
	}
	page := uint64(os.Getpagesize())
	return resident * page, size * page
}

// RingOf is a ring's stats in the document's form (what `gospool stats
// --json` prints as "ring").
func RingOf(st ring.Stats) Ring {
	d := Ring{
		Spooled: st.Spooled, Spilled: st.Spilled, Done: st.Done, Retried: st.Retried,
		Failed: st.Failed, Ignored: st.Ignored, Corrupt: st.Corrupt, Dead: st.Dead, InFlight: st.InFlight,
		Ready: st.Ready, Claimed: st.Claimed, Fill: st.Fill * 100, Sleepers: st.Sleepers,
		Lanes: []Lane{}, Consumers: []Consumer{},
	}
	for _, l := range st.Lanes {
		d.Lanes = append(d.Lanes, Lane{Lane: l.Lane, OwnerPid: l.OwnerPid, Ready: l.Ready, Claimed: l.Claimed, Writing: l.Writing})
	}
	for _, c := range st.Consumers {
		d.Consumers = append(d.Consumers, Consumer{Entry: c.Entry, Pid: c.Pid, Tasks: c.Tasks, Since: c.Since.Format(time.RFC3339Nano)})
	}
	return d
}

func handoffDoc(h scoreboard.Histogram) Handoff {
	d := Handoff{Count: h.Count(), SumSeconds: h.Sum.Seconds(), Buckets: []Bucket{}}
	var cum uint64
	for i, b := range scoreboard.HandoffBounds {
		cum += h.Counts[i]
		d.Buckets = append(d.Buckets, Bucket{LE: b.Seconds(), Count: cum})
	}
	return d
}

// CountFiles counts the uWSGI spool files waiting in dir and in its
// priority sub-directories (all-digit names, as uWSGI's): due when their
// mtime (their "at") has come by now, scheduled otherwise.
func CountFiles(dir string, now time.Time) (Files, error) {
	return countFiles(dir, now, true)
}

func countFiles(dir string, now time.Time, top bool) (Files, error) {
	var n Files
	ents, err := os.ReadDir(dir)
	if err != nil {
		return n, fmt.Errorf("reading spool directory %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if top && e.IsDir() && allDigits(name) {
			if sub, err := countFiles(filepath.Join(dir, name), now, false); err == nil {
				n.Due += sub.Due
				n.Scheduled += sub.Scheduled
			}
			continue
		}
		if !strings.HasPrefix(name, spoolfile.Prefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // run and removed since the listing
		}
		if fi.ModTime().After(now) {
			n.Scheduled++
		} else {
			n.Due++
		}
	}
	return n, nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// acceptQueue reads a TCP listener's accept queue and backlog (Linux's
// TCP_INFO on a listening socket: tcpi_unacked and tcpi_sacked), what
// uWSGI reports as listen_queue. Unix sockets report 0, 0.
func acceptQueue(f *os.File) (queue, backlog int) {
	if f == nil {
		return 0, 0
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, 0
	}
	rc.Control(func(fd uintptr) {
		if sa, err := unix.Getsockname(int(fd)); err != nil {
			return
		} else if _, ok := sa.(*unix.SockaddrUnix); ok {
			return
		}
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			queue, backlog = int(ti.Unacked), int(ti.Sacked)
		}
	})
	return queue, backlog
}

// version is "gospool VERSION", the module's version when known.
func version() string {
	const mod = "github.com/gospool/gospool"
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == mod && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == mod && d.Version != "" {
				v = d.Version
			}
		}
	}
	return "gospool " + v
}

// openRing opens dir's ring read-only.
func openRing(dir string) (*ring.Ring, error) {
	r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{ReadOnly: true})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no gospool ring in %s", dir)
	}
	return r, err
}
