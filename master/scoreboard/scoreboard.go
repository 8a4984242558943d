package scoreboard

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The scoreboard file, byte by byte (host byte order: it never leaves the
// machine). W = written by the master, C = written by the child in the slot.
//
//	offset  size  field                                   by
//	------  ----  --------------------------------------  --
//	HEADER (64 bytes)
//	0       8     magic "GOSPPROC"                        W
//	8       4     version (2)                             W
//	12      4     slots N                                 W
//	16      4     master pid                              W
//	20      4     reloads done (SIGHUP)                   W
//	24      8     master started, unix ns                 W
//	32      32    reserved (zero)
//	SLOT i at 64 + i*256
//	+0      4     pid (0: slot free)                      W
//	+4      1     role: 1 worker, 2 spooler               W
//	+5      1     state: 1 running, 2 stopping, 3 recycling   W/C
//	+6      2     number: worker N, spooler N             W
//	+8      4     respawns of this role and number        W
//	+12     4     spool directory index (spoolers)        W
//	+16     8     spawned, unix ns                        W
//	+24     8     done: requests or tasks finished        C
//	+32     8     busy since, unix ns; 0 when idle        C
//	+40     4     harakiri tries                          W
//	+44     4     length of the current name              C
//	+48     16    reserved (zero)
//	+64     64    current task or request, truncated      C
//	+128    8     hand-off latency: sum of the ring tasks'  C
//	              waits, ns (spoolers)
//	+136    120   hand-off latency: 15 counts of 8 bytes,   C
//	              one per bucket of HandoffBounds, the last
//	              for longer waits (not cumulative)
//	file size = 64 + N*256
//
// Version 1 had 128-byte slots without the hand-off latency.
const (
	// FileName is the scoreboard's name in the first spool directory.
	FileName = "gospool.procs"
	// Magic opens every scoreboard file.
	Magic   = "GOSPPROC"
	version = 2

	headerSize = 64
	slotSize   = 256
	nameMax    = 64

	offMagic   = 0
	offVersion = 8
	offSlots   = 12
	offPid     = 16
	offReloads = 20
	offStarted = 24

	sPid      = 0
	sRole     = 4 // role, state and number share the 4-byte word at +4
	sRespawns = 8
	sDir      = 12
	sSpawned  = 16
	sDone     = 24
	sBusy     = 32
	sTries    = 40
	sNameLen  = 44
	sName     = 64
	sHandSum  = 128
	sHandCnt  = 136

	maxSlots = 1 << 16
)

// Role is what a child process does.
type Role uint8

const (
	Worker  Role = 1
	Spooler Role = 2
)

func (r Role) String() string {
	switch r {
	case Worker:
		return "worker"
	case Spooler:
		return "spooler"
	}
	return "-"
}

// State is where a child is in its life.
type State uint8

const (
	Running   State = 1 // serving
	Stopping  State = 2 // asked to stop by the master (reload or shutdown)
	Recycling State = 3 // stopping by itself: max-requests or max-tasks reached
)

func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Stopping:
		return "stopping"
	case Recycling:
		return "recycling"
	}
	return "-"
}

// Board is a mapped scoreboard file.
type Board struct {
	f     *os.File
	m     []byte
	slots int
}

// Create makes a fresh scoreboard with room for slots children at path,
// replacing any old one (a board describes one master's life), and maps it.
func Create(path string, slots int) (*Board, error) {
	if slots < 1 || slots > maxSlots {
		return nil, fmt.Errorf("scoreboard %s: %d slots: want 1 to %d", path, slots, maxSlots)
	}
	tmp, err := os.CreateTemp(dirOf(path), ".gospool.procs.tmp-*")
	if err != nil {
		return nil, fmt.Errorf("scoreboard %s: %w (check the spool directory is writable)", path, err)
	}
	defer os.Remove(tmp.Name())
	h := make([]byte, headerSize)
	copy(h, Magic)
	le32(h[offVersion:], version)
	le32(h[offSlots:], uint32(slots))
	if _, err := tmp.WriteAt(h, 0); err == nil {
		err = tmp.Truncate(int64(headerSize + slots*slotSize))
	}
	if err == nil {
		err = tmp.Chmod(0o644) // stats readers need not be the master's user
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		tmp.Close()
		return nil, fmt.Errorf("scoreboard %s: %w", path, err)
	}
	return mapFile(tmp, false)
}

// Open maps an existing scoreboard for reading, as `gospool stats` does.
func Open(path string) (*Board, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return mapFile(f, true)
}

// FromFile maps a scoreboard inherited from the master, for writing one's
// own slot. The Board takes ownership of f.
func FromFile(f *os.File) (*Board, error) { return mapFile(f, false) }

func mapFile(f *os.File, readOnly bool) (*Board, error) {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	bad := func(why string) (*Board, error) {
		f.Close()
		return nil, fmt.Errorf("scoreboard %s: %s (the master recreates it when it starts)", f.Name(), why)
	}
	if st.Size() < headerSize {
		return bad("truncated")
	}
	h := make([]byte, headerSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("scoreboard %s: %w", f.Name(), err)
	}
	if string(h[:8]) != Magic {
		return bad("not a gospool scoreboard")
	}
	if v := rd32(h[offVersion:]); v != version {
		return bad(fmt.Sprintf("version %d, this gospool reads %d", v, version))
	}
	slots := int(rd32(h[offSlots:]))
	size := headerSize + slots*slotSize
	if slots < 1 || slots > maxSlots || st.Size() < int64(size) {
		return bad("truncated or damaged header")
	}
	prot := unix.PROT_READ
	if !readOnly {
		prot |= unix.PROT_WRITE
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, prot, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("scoreboard %s: mmap: %w", f.Name(), err)
	}
	return &Board{f: f, m: m, slots: slots}, nil
}

// File is the board's open file, to hand to a child process.
func (b *Board) File() *os.File { return b.f }

// Len is the number of slots.
func (b *Board) Len() int { return b.slots }

// Close unmaps the board. Slots obtained from it must not be used after.
func (b *Board) Close() error {
	if b.m == nil {
		return nil
	}
	err := errors.Join(unix.Munmap(b.m), b.f.Close())
	b.m = nil
	return err
}

// SetMaster records the master's pid and start time.
func (b *Board) SetMaster(pid int, started time.Time) {
	b.u32(offPid).Store(uint32(pid))
	b.u64(offStarted).Store(uint64(started.UnixNano()))
}

// NoteReload counts a graceful reload.
func (b *Board) NoteReload() { b.u32(offReloads).Add(1) }

// Master reads the header: the master's pid, start time and reloads.
func (b *Board) Master() (pid int, started time.Time, reloads int) {
	return int(b.u32(offPid).Load()), time.Unix(0, int64(b.u64(offStarted).Load())), int(b.u32(offReloads).Load())
}

// Slot returns slot i, 0 <= i < Len().
func (b *Board) Slot(i int) *Slot {
	if i < 0 || i >= b.slots {
		panic(fmt.Sprintf("scoreboard: slot %d of %d", i, b.slots))
	}
	return &Slot{b: b, off: headerSize + i*slotSize, index: i}
}

// u64 returns the 8-byte word at off as an atomic.
//
// unsafe: the mapping starts on a page boundary and every offset used with
// u64 is a multiple of 8 in the layout above, so the word is aligned as
// atomic.Uint64 requires. The mapping lives until Close; slots are not used
// after it (documented on Slot).
func (b *Board) u64(off int) *atomic.Uint64 {
	_ = b.m[off+7]
	return (*atomic.Uint64)(unsafe.Pointer(&b.m[off]))
}

// u32 is u64 for 4-byte words at offsets that are multiples of 4.
func (b *Board) u32(off int) *atomic.Uint32 {
	_ = b.m[off+3]
	return (*atomic.Uint32)(unsafe.Pointer(&b.m[off]))
}

// Slot is one child's row of the board.
type Slot struct {
	b     *Board
	off   int
	index int
}

// Index is the slot's position in the board.
func (s *Slot) Index() int { return s.index }

// Claim fills a free slot for a child the master just started. It writes
// every field but the pid first and the pid last, so a reader that sees
// the pid sees the rest.
func (s *Slot) Claim(pid int, role Role, number, respawns, dirIndex int, spawned time.Time) {
	b := s.b
	b.u64(s.off + sDone).Store(0)
	b.u64(s.off + sBusy).Store(0)
	b.u64(s.off + sHandSum).Store(0)
	for i := range HandoffBuckets {
		b.u64(s.off + sHandCnt + 8*i).Store(0)
	}
	b.u32(s.off + sNameLen).Store(0)
	b.u32(s.off + sTries).Store(0)
	b.u32(s.off + sRespawns).Store(uint32(respawns))
	b.u32(s.off + sDir).Store(uint32(dirIndex))
	b.u64(s.off + sSpawned).Store(uint64(spawned.UnixNano()))
	b.u32(s.off + sRole).Store(uint32(role) | uint32(Running)<<8 | uint32(number)<<16)
	b.u32(s.off + sPid).Store(uint32(pid))
}

// Free marks the slot unused after its child was reaped. The hand-off
// histogram stays until the next Claim, so that the master can add the dead
// child's counts to its totals first.
func (s *Slot) Free() {
	s.b.u32(s.off + sPid).Store(0)
	s.b.u64(s.off + sBusy).Store(0)
}

// SetState changes the state byte, keeping role and number.
func (s *Slot) SetState(st State) {
	w := s.b.u32(s.off + sRole)
	for {
		old := w.Load()
		if w.CompareAndSwap(old, old&^0xFF00|uint32(st)<<8) {
			return
		}
	}
}

// AddHarakiriTry counts one more harakiri kill attempt and returns the count.
func (s *Slot) AddHarakiriTry() int { return int(s.b.u32(s.off + sTries).Add(1)) }

// Proc is a slot read at one moment.
type Proc struct {
	Slot      int
	Pid       int
	Role      Role
	State     State
	Number    int
	Respawns  int
	DirIndex  int
	Spawned   time.Time
	Done      uint64
	BusySince time.Time // zero when idle
	Current   string    // task or request being served; "" when idle or unknown
}

// Read returns the slot's content; ok is false for a free slot.
func (s *Slot) Read() (p Proc, ok bool) {
	b := s.b
	pid := b.u32(s.off + sPid).Load()
	if pid == 0 {
		return Proc{}, false
	}
	rw := b.u32(s.off + sRole).Load()
	p = Proc{
		Slot:     s.index,
		Pid:      int(pid),
		Role:     Role(rw),
		State:    State(rw >> 8),
		Number:   int(rw >> 16),
		Respawns: int(b.u32(s.off + sRespawns).Load()),
		DirIndex: int(b.u32(s.off + sDir).Load()),
		Spawned:  time.Unix(0, int64(b.u64(s.off+sSpawned).Load())),
		Done:     b.u64(s.off + sDone).Load(),
	}
	if busy := b.u64(s.off + sBusy).Load(); busy != 0 {
		p.BusySince = time.Unix(0, int64(busy))
		n := min(int(b.u32(s.off+sNameLen).Load()), nameMax)
		name := string(b.m[s.off+sName : s.off+sName+n])
		if b.u64(s.off+sBusy).Load() == busy {
			p.Current = strings.ToValidUTF8(name, "?")
		}
	}
	return p, true
}

// RunningTask returns the pid of the spooler process whose slot shows it
// running the task name (a spool file's bare name, or ring:LANE:SEQ), as
// `gospool ls` needs for files: gospool's OFD locks name no process. A
// slot keeps the first 64 bytes of a name, so a longer name matches the
// slot that holds its start; ok is false when no slot, or more than one
// process, matches.
func (b *Board) RunningTask(name string) (pid int, ok bool) {
	for i := 0; i < b.slots; i++ {
		p, used := b.Slot(i).Read()
		if !used || p.Role != Spooler || p.Current == "" {
			continue
		}
		if p.Current != name && (len(p.Current) < nameMax || !strings.HasPrefix(name, p.Current)) {
			continue
		}
		if ok && pid != p.Pid {
			return 0, false // two processes: cut names that agree
		}
		pid, ok = p.Pid, true
	}
	return pid, ok
}

// BusySince reads only the busy clock: what the harakiri check needs.
func (s *Slot) BusySince() (time.Time, bool) {
	busy := s.b.u64(s.off + sBusy).Load()
	if busy == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(busy)), true
}

// Tracker publishes a child's work into its slot: the oldest task or
// request still running (the one harakiri cares about) and the number
// finished. It is safe for concurrent use by the goroutines of the child.
// A child runs a handful of things at once (its concurrency), so they are
// kept in a small slice, oldest first: starting and finishing one costs no
// allocation, which matters at hundreds of thousands of tasks a second.
type Tracker struct {
	slot    *Slot
	mu      sync.Mutex
	running []tracked // oldest first; the slot shows running[0]
	next    uint64
}

type tracked struct {
	key   uint64
	since time.Time
	name  string
}

// NewTracker returns a tracker writing into s.
func NewTracker(s *Slot) *Tracker { return &Tracker{slot: s} }

// Begin notes that work named name started now. Call the returned end
// when it finishes.
func (t *Tracker) Begin(name string) (end func()) {
	key := t.Start(name)
	return func() { t.Finish(key) }
}

// Start notes that work named name started now, and returns the key that
// [Tracker.Finish] takes when it finishes.
func (t *Tracker) Start(name string) (key uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	t.running = append(t.running, tracked{key: t.next, since: time.Now(), name: name})
	if len(t.running) == 1 {
		t.show()
	}
	return t.next
}

// Finish notes that the work Start returned key for is finished. A key
// finished already, or unknown, is ignored.
func (t *Tracker) Finish(key uint64) {
	t.finishFirst(func(e *tracked) bool { return e.key == key })
}

// FinishName is Finish for the oldest running work named name: what a
// spooler uses, whose running tasks' names are unique.
func (t *Tracker) FinishName(name string) {
	t.finishFirst(func(e *tracked) bool { return e.name == name })
}

// finishFirst finishes the oldest running work that match says is it.
func (t *Tracker) finishFirst(match func(*tracked) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.running {
		if match(&t.running[i]) {
			t.finish(i)
			return
		}
	}
}

func (t *Tracker) finish(i int) {
	copy(t.running[i:], t.running[i+1:])
	t.running[len(t.running)-1] = tracked{}
	t.running = t.running[:len(t.running)-1]
	t.slot.b.u64(t.slot.off + sDone).Add(1)
	if i == 0 {
		t.show()
	}
}

// show publishes the oldest running entry (idle when there is none) in
// the slot, seqlock-style: the busy word is cleared, the name written,
// then the busy word set.
func (t *Tracker) show() {
	s := t.slot
	busy := s.b.u64(s.off + sBusy)
	busy.Store(0)
	if len(t.running) == 0 {
		return
	}
	e := t.running[0]
	n := copy(s.b.m[s.off+sName:s.off+sName+nameMax], e.name)
	s.b.u32(s.off + sNameLen).Store(uint32(n))
	ns := e.since.UnixNano()
	if ns == 0 {
		ns = 1
	}
	busy.Store(uint64(ns))
}

// SetState lets the child announce it is recycling itself.
func (t *Tracker) SetState(st State) { t.slot.SetState(st) }

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i+1]
	}
	return "."
}

func le32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
func rd32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
