package ring

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// FileName is the ring's name inside a spool directory. uWSGI ignores it:
// its spoolers only look at names that start with "uwsgi_spoolfile_on_" (and
// all-digit names in ordered mode).
const FileName = "gospool.ring"

// Ring is an open, mapped ring file. It is safe for concurrent use; the
// producers and consumers made from it must be closed before it.
type Ring struct {
	f        *os.File
	m        mem
	geo      Geometry
	path     string
	sync     bool
	readOnly bool

	mu     sync.Mutex
	users  int
	closed atomic.Bool
	// Locks are per open file, and this process uses one open file, so the
	// kernel cannot keep two owners in this process apart: these can.
	lanesHere     map[int]bool
	consumersHere map[int]bool
	// sleepDrift is the sleepers count and flag count (and bit 63) that
	// healSleepers saw disagree at its last look, 0 when they agreed.
	sleepDrift atomic.Uint64

	// See health.go. statPath is the absolute path Check compares the open
	// file with ("" when the Ring was made from an open file); nextCheck
	// is when a producer checks next (CLOCK_MONOTONIC).
	statPath  string
	standIn   *standIn // for a private ring (NewPrivate): the file it stands in for
	nextCheck atomic.Int64
	broken    atomic.Bool // set once, after brokenErr
	brokenErr error
	breakOnce sync.Once
}

// Options tune how a ring is opened.
type Options struct {
	// Geometry is used when the file has to be created. When the file
	// exists, a non-zero Geometry must match it (ErrGeometry otherwise).
	Geometry Geometry
	// Sync makes every publish msync the mapping, so a task that was
	// acknowledged survives a power loss, not only a process crash.
	Sync bool
	// ReadOnly maps the file read-only, for tools that only read [Ring.Stats]:
	// they need no write permission. Producer and Consumer then fail.
	ReadOnly bool
}

// Create opens the ring file at path, creating it with opts.Geometry
// (DefaultGeometry when zero) if it does not exist. Two processes creating
// the same ring at once get the same file: the header is written to a
// temporary file that is then linked into place, so nobody ever maps a
// half-written header.
func Create(path string, opts Options) (*Ring, error) {
	g := opts.Geometry
	if g == (Geometry{}) {
		g = DefaultGeometry()
	}
	if err := g.validate(); err != nil {
		return nil, fmt.Errorf("ring %s: bad geometry: %v", path, err)
	}
	for attempt := 0; ; attempt++ {
		r, err := Open(path, opts)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt > 3 {
			return nil, err
		}
		if err := createFile(path, g); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
}

func createFile(path string, g Geometry) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".gospool.ring.tmp-*")
	if err != nil {
		return fmt.Errorf("ring %s: cannot create it in %s: %w (check the directory exists and is writable)", path, dir, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// The file is zeros (every slot starts "empty"), with its blocks
	// allocated now, before anybody maps it: a write into a hole of a
	// sparse file needs a block, and on a full disk the kernel answers a
	// store into a mapping with SIGBUS, which would kill every producer.
	if err := allocate(tmp, int64(g.fileSize())); err != nil {
		return fmt.Errorf("ring %s: cannot allocate its %d bytes: %w (free some space: until a spooler can create the ring, tasks go to spool files)", path, g.fileSize(), err)
	}
	h := make([]byte, headerSize)
	g.encodeHeader(h)
	if _, err := tmp.WriteAt(h, 0); err != nil {
		return fmt.Errorf("ring %s: write header: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("ring %s: sync: %w", path, err)
	}
	// link, unlike rename, fails when the name exists: the first creator wins.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return fmt.Errorf("ring %s: %w", path, err)
	}
	return nil
}

// NewPrivate makes a ring in memory that no other process can open (a
// memfd), to stand in for the ring file at path when a master or spooler
// cannot create or open it: a full disk ([Create]'s error wraps
// syscall.ENOSPC), or a damaged file. Producers then find no usable ring
// file and write spool files, which the spooler serves; its code runs
// unchanged, on a ring nobody writes into. The private ring has the
// smallest geometry: only its consumer table and wake-up word are used.
//
// Its [Ring.Check] tries to create the ring file at path with opts (once
// space is back, or the damaged file was moved away) and, when there is
// one, returns an error wrapping ErrRetired: the caller then starts again
// on the ring file.
func NewPrivate(path string, opts Options) (*Ring, error) {
	g := Geometry{Lanes: 1, SlotsPerLane: 2, LaneBytes: 4096, Consumers: MaxConsumers}
	fd, err := unix.MemfdCreate("gospool-private-ring", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("private ring: %w", &os.SyscallError{Syscall: "memfd_create", Err: err})
	}
	f := os.NewFile(uintptr(fd), "private ring for "+path)
	h := make([]byte, headerSize)
	g.encodeHeader(h)
	if err := f.Truncate(int64(g.fileSize())); err != nil {
		f.Close()
		return nil, fmt.Errorf("private ring: %w", err)
	}
	if _, err := f.WriteAt(h, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("private ring: %w", err)
	}
	r, err := openFile(f, Options{})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("private ring: %w", err)
	}
	r.path = f.Name()
	r.standIn = &standIn{path: path, opts: opts}
	return r, nil
}

// Open maps an existing ring file and checks its header: a file that is not
// a ring, of another version, corrupt or truncated is an error that says so,
// never a crash.
func Open(path string, opts Options) (*Ring, error) {
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, openError(path, err)
	}
	r, err := openFile(f, opts)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ring %s: %w", path, err)
	}
	r.path = path
	if abs, err := filepath.Abs(path); err == nil {
		r.statPath = abs
	}
	return r, nil
}

// openError is the error of opening path, with a hint for a person when the
// cause is one they can fix. It unwraps to the system's error, so callers
// can still test it with errors.Is(err, fs.ErrNotExist).
func openError(path string, err error) error {
	var errno error = err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		errno = pe.Err
	}
	hint := ""
	switch {
	case errors.Is(err, fs.ErrPermission):
		hint = " (the ring file is mode 0600: run as the user the spoolers run as, or as root)"
	case errors.Is(err, syscall.EISDIR):
		hint = " (it should be the ring file; move the directory away, a gospool spooler creates the ring file itself)"
	}
	return &openErr{msg: "ring " + path + ": " + errno.Error() + hint, err: err}
}

type openErr struct {
	msg string
	err error
}

func (e *openErr) Error() string { return e.msg }
func (e *openErr) Unwrap() error { return e.err }

// OpenFile maps a ring from an already open file (one inherited from a
// master process, say). The Ring takes ownership of f.
func OpenFile(f *os.File, opts Options) (*Ring, error) {
	r, err := openFile(f, opts)
	if err != nil {
		return nil, fmt.Errorf("ring %s: %w", f.Name(), err)
	}
	r.path = f.Name()
	return r, nil
}

func openFile(f *os.File, opts Options) (*Ring, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		what := "a directory"
		if !st.IsDir() {
			what = "not a regular file (" + st.Mode().Type().String() + ")"
		}
		return nil, fmt.Errorf("%w: it is %s; move it away, a gospool spooler creates the ring file itself", ErrNotRing, what)
	}
	h := make([]byte, headerSize)
	n, err := f.ReadAt(h, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	g, err := decodeHeader(h[:n], st.Size())
	if err != nil {
		switch {
		case errors.Is(err, ErrTruncated) || errors.Is(err, ErrCorruptHeader):
			return nil, fmt.Errorf("%w (start or restart gospool run on this directory: its master moves the file aside and saves the tasks in it as spool files)", err)
		case errors.Is(err, ErrVersion):
			return nil, fmt.Errorf("%w; use the same gospool release for every process on this spool directory, or remove the file when no gospool process uses it (tasks in it are lost, spool files are not)", err)
		case errors.Is(err, ErrNotRing):
			return nil, fmt.Errorf("%w; gospool keeps its ring under this name: move the file away", err)
		}
		return nil, err
	}
	if opts.Geometry != (Geometry{}) && opts.Geometry != g {
		return nil, fmt.Errorf("%w: file has %+v, asked for %+v", ErrGeometry, g, opts.Geometry)
	}
	m, err := mmapFile(f, g.fileSize(), opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	return &Ring{f: f, m: m, geo: g, sync: opts.Sync, readOnly: opts.ReadOnly, lanesHere: map[int]bool{}, consumersHere: map[int]bool{}}, nil
}

// Path is the file the ring was opened from.
func (r *Ring) Path() string { return r.path }

// Geometry is the shape of the ring as its header says.
func (r *Ring) Geometry() Geometry { return r.geo }

// File returns the ring's open file, to hand to a child process.
func (r *Ring) File() *os.File { return r.f }

// Close unmaps the ring. It fails while producers or consumers made from it
// are still open, since their pointers into the mapping would dangle.
func (r *Ring) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return nil
	}
	if r.users > 0 {
		return fmt.Errorf("ring %s: close with %d producers or consumers still open", r.path, r.users)
	}
	r.closed.Store(true)
	return errors.Join(munmap(r.m), r.f.Close())
}

func (r *Ring) acquire() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return ErrClosed
	}
	if r.readOnly {
		return fmt.Errorf("ring %s: opened read-only", r.path)
	}
	if r.broken.Load() {
		return r.brokenErr
	}
	r.users++
	return nil
}

func (r *Ring) release() {
	r.mu.Lock()
	r.users--
	r.mu.Unlock()
}

// giveBack unlocks entry i (a lane or a consumer entry, whose lock byte is
// at off) and releases the ring.
func (r *Ring) giveBack(i, off int, here map[int]bool) error {
	r.mu.Lock()
	delete(here, i)
	err := unlockByte(r.f, int64(off))
	r.mu.Unlock()
	r.release()
	return err
}

func (r *Ring) laneBase(lane int) int { return headerSize + lane*r.geo.stride() }
func (r *Ring) slotOff(lane int, seq uint64) int {
	return r.laneBase(lane) + r.geo.slotsOffset() + int(seq&uint64(r.geo.SlotsPerLane-1))*slotSize
}
func (r *Ring) dataOff(lane int) int  { return r.laneBase(lane) + r.geo.dataOffset() }
func (r *Ring) consumerOff(i int) int { return consumerBase + i*consumerSize }

// Counter names a live counter in the ring header.
type Counter int

// The counters [Ring.Add] and [Stats] know.
const (
	Spooled Counter = iota
	Spilled
	Done
	Retried
	Failed
	Ignored
	Corrupt
	Dead
)

var counterOffsets = [...]int{Spooled: offSpooled, Spilled: offSpilled, Done: offDone,
	Retried: offRetried, Failed: offFailed, Ignored: offIgnored, Corrupt: offCorrupt, Dead: offDead}

// Add adds n to a live counter in the header.
func (r *Ring) Add(c Counter, n uint64) {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	r.m.u64(counterOffsets[c]).Add(n)
}

// NoteSpill records that a task went to a spool file instead of the ring and
// wakes a sleeping consumer so that it rescans the directory at once.
func (r *Ring) NoteSpill() {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	r.m.u64(offSpilled).Add(1)
	r.NoteFile()
}

// NoteFile tells consumers that a spool file appeared in the directory (a
// retry, say), so that they rescan it at once instead of at their next
// periodic scan.
func (r *Ring) NoteFile() {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	r.m.u32(offFileSeq).Add(1)
	r.wake()
}

// FileSeq changes every time a producer spills a task to the directory.
func (r *Ring) FileSeq() (seq uint32) {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	return r.m.u32(offFileSeq).Load()
}

// wake is the producer's half of the sleep protocol (see Consumer.Wait).
// Go's atomics are sequentially consistent: either the consumer's re-check
// after raising sleepers sees our publish, or our load of sleepers sees its
// raise, so a wake-up is never lost. When nobody sleeps it costs one load.
func (r *Ring) wake() { r.wakeN(1) }

// wakeN is wake for up to n sleepers.
func (r *Ring) wakeN(n int) {
	if r.m.u32(offSleepers).Load() == 0 {
		return
	}
	r.m.u32(offWakeSeq).Add(1)
	futexWake(r.m.addr(offWakeSeq), n)
}

// ReleaseDead is [Consumer.ReleaseDead] for a process that holds no
// consumer entry, such as the master: when it reaps a child it calls this
// at once, and the records the child had claimed go back to ready and run
// again in a live spooler, instead of waiting for a spooler's periodic
// look. It also clears the sleepers a dead consumer left counted, and wakes
// sleeping consumers when it released something. It returns how many
// records it put back; a read-only or closed ring puts back none.
//
// Liveness is judged by the consumer entries' OFD locks, which the kernel
// drops when the last descriptor of the holder's open file closes. Locks
// held through this Ring's own open file are invisible to it, which is why
// consumers made from this Ring count as alive; a child that inherited this
// Ring's descriptor and took a consumer entry through it would be judged
// dead. Children must open the ring themselves (by path, or through
// /proc/self/fd/N), never produce or consume through an inherited one.
func (r *Ring) ReleaseDead() (released int) {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	if err := r.acquire(); err != nil {
		return 0
	}
	defer r.release()
	return r.releaseDead(-1, 0)
}

// HasLiveConsumer reports whether some process other than this one's own
// consumers holds a consumer entry, i.e. a gospool spooler serves the ring.
func (r *Ring) HasLiveConsumer() bool {
	for i := 0; i < r.geo.Consumers; i++ {
		if held, err := byteLockedByOther(r.f, int64(r.consumerOff(i))); err == nil && held {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }

// WakeAll wakes every consumer sleeping on the ring, for a shutdown.
// It may be called at any time, even during or after Close (from a
// context.AfterFunc, say): the lock keeps it off an unmapped ring.
func (r *Ring) WakeAll() {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return
	}
	r.m.u32(offWakeSeq).Add(1)
	futexWake(r.m.addr(offWakeSeq), 1<<30)
}

// Progress changes whenever a consumer finishes a record (done, retried or
// ignored): producers waiting for room watch it to tell a busy consumer
// from an absent one.
func (r *Ring) Progress() (n uint64) {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	return r.m.u64(offDone).Load() + r.m.u64(offRetried).Load() + r.m.u64(offIgnored).Load() + r.m.u64(offCorrupt).Load()
}

var errNoneFree = errors.New("no free entry")

// takeEntry takes the first of n entries (lanes or consumer slots) that
// neither another process nor this one holds: an OFD lock on the byte at
// offset(i) keeps other processes out, here[i] keeps other owners in this
// process out (they share the ring's open file, whose locks cannot conflict
// with each other).
func (r *Ring) takeEntry(n int, offset func(int) int, here map[int]bool) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 0; i < n; i++ {
		if here[i] {
			continue
		}
		ok, err := tryLockByte(r.f, int64(offset(i)))
		if err != nil {
			return 0, err
		}
		if ok {
			here[i] = true
			return i, nil
		}
	}
	return 0, errNoneFree
}
