package ring

import (
	"errors"
	"fmt"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"
)

// A ring file can be broken under the processes that map it: truncated (a
// page beyond the new end faults, SIGBUS, when touched), removed or
// replaced by a new file (producers would publish into a file no new
// consumer opens), or, for a sparse file from an older gospool, impossible
// to back with a block when the disk is full (SIGBUS again). This file
// keeps every process alive through all three:
//
//   - Every method that touches the mapping runs under
//     debug.SetPanicOnFault (see guard): a fault becomes an error, the
//     mapping is replaced by zeroed private memory at the same address (see
//     breakMapping), so no later access can fault, and the Ring is broken:
//     producers refuse with ErrRetired, consumers find nothing.
//   - [Ring.Check], called on every process's periodic tick (and by
//     producers at most once a second, see Producer.Push), compares the
//     open file with the mapping (truncated) and with the file its path
//     names now (replaced, removed). A replaced file is retired: the
//     header's retired word is raised, and from then on a producer either
//     has its record taken by a consumer or takes it back (see Push).

// ErrRetired: the ring's file was removed, replaced or truncated, or could
// not back a page of the mapping. Producers refuse new records with an
// error wrapping it; callers write the task as a spool file, and may open
// the ring file again (a new one).
var ErrRetired = errors.New("ring file is retired")

// ErrReplaced: the ring's path no longer names the open file (it was
// removed, or removed and created again). It comes wrapped with ErrRetired.
var ErrReplaced = errors.New("ring file was removed or replaced")

// guard turns a memory fault in the mapping into an error. Every method
// that touches the mapping and may run after the file broke starts with
//
//	defer r.guard(&err, debug.SetPanicOnFault(true))
//
// (err nil when the method returns no error). SetPanicOnFault belongs to
// the goroutine and costs a few nanoseconds; the runtime then panics with
// an error that has an Addr method instead of crashing the process, and
// guard recovers that panic only. Any other panic goes on.
func (r *Ring) guard(err *error, old bool) {
	debug.SetPanicOnFault(old)
	if e := recover(); e != nil {
		cause := r.faulted(e)
		if err != nil {
			*err = cause
		}
	}
}

// faulted handles a recovered panic e: a memory fault breaks the ring and
// returns why; any other panic goes on.
func (r *Ring) faulted(e any) error {
	if _, ok := e.(interface{ Addr() uintptr }); !ok {
		panic(e)
	}
	return r.breakMapping()
}

// usable reports whether the ring may take new records: not broken, not
// retired. A faulting load of the retired word breaks it, hence the guard
// in the callers.
func (r *Ring) usable() error {
	if r.broken.Load() {
		return r.brokenErr
	}
	if r.m.u32(offRetired).Load() != 0 {
		return fmt.Errorf("ring %s: %w (a process found it removed, replaced or truncated); write spool files, or open the ring file again", r.path, ErrRetired)
	}
	return nil
}

// breakMapping retires the ring in this process for good after a fault, or
// when Check found the file shorter than the mapping, and returns why. The
// mapping is replaced by zeroed anonymous memory at the same address, so
// that a goroutine that touches it outside a guard (a consumer decoding a
// payload, say) reads zeros instead of faulting: every check of this
// package then finds nothing to claim and no room to write, and producers
// refuse on the broken flag before they write.
func (r *Ring) breakMapping() error {
	r.breakOnce.Do(func() {
		size := int64(-1)
		var st unix.Stat_t
		if unix.Fstat(int(r.f.Fd()), &st) == nil {
			size = st.Size
		}
		if size >= headerSize && !r.readOnly {
			// Tell the other processes while the header page is there: a
			// producer whose lane survived would go on publishing records
			// that no consumer runs any more.
			func() {
				// Not r.guard: that would come back here. A fault (the
				// file cut shorter meanwhile) is the only possible panic.
				defer func(old bool) {
					debug.SetPanicOnFault(old)
					_ = recover()
				}(debug.SetPanicOnFault(true))
				r.m.u32(offRetired).Store(1)
			}()
		}
		if size >= 0 && size < int64(len(r.m)) {
			r.brokenErr = fmt.Errorf("ring %s: %w: %w: the file is %d bytes, %d are mapped (it was cut short under this process); write spool files, and move the file away when no gospool process uses it",
				r.path, ErrRetired, ErrTruncated, size, len(r.m))
		} else {
			r.brokenErr = fmt.Errorf("ring %s: %w: a page of the mapping could not be backed (%v: disk full, or an I/O error); write spool files",
				r.path, ErrRetired, syscall.ENOSPC)
		}
		if err := remapAnonymous(r.m); err != nil {
			r.brokenErr = fmt.Errorf("%w (and replacing the mapping failed: %v)", r.brokenErr, err)
		}
		r.broken.Store(true)
	})
	return r.brokenErr
}

// Check looks at the ring's file: an error wrapping [ErrRetired] (and
// [ErrTruncated] or [ErrReplaced]) when the file is shorter than the
// mapping, when it was removed, when its path now names another file, or
// when another process retired the ring; nil otherwise, and when it cannot
// tell (an error of stat). It costs two stat calls. A master and every
// spooler call it on their periodic tick; producers, at most once a second
// from Push. A replaced ring is retired for every process that maps it
// (the header's retired word), a truncated one is broken in this process
// (see breakMapping).
//
// Records still ready in a replaced ring run if a consumer of it is alive;
// [Ring.MoveTo] hands them to the new ring.
func (r *Ring) Check() (err error) {
	if r.broken.Load() {
		return r.brokenErr
	}
	if r.closed.Load() {
		return ErrClosed
	}
	if r.standIn != nil {
		return r.standIn.check()
	}
	defer r.guard(&err, debug.SetPanicOnFault(true))
	var st unix.Stat_t
	if unix.Fstat(int(r.f.Fd()), &st) != nil {
		return nil
	}
	if st.Size < int64(len(r.m)) {
		return r.breakMapping()
	}
	replaced := st.Nlink == 0
	if !replaced && r.statPath != "" {
		var now unix.Stat_t
		err := unix.Stat(r.statPath, &now)
		replaced = errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) ||
			(err == nil && (now.Dev != st.Dev || now.Ino != st.Ino))
	}
	if replaced {
		if !r.readOnly {
			r.m.u32(offRetired).Store(1)
		}
		return fmt.Errorf("ring %s: %w: %w (this process maps the old file); write spool files, and open the ring file again", r.path, ErrRetired, ErrReplaced)
	}
	return r.usable()
}

// checkEvery is how often a producer checks the file itself (see Push).
const checkEvery = 1e9 // nanoseconds

// maybeCheck runs Check when the last one is older than checkEvery; now is
// CLOCK_MONOTONIC. One caller at a time wins the turn, the others go on.
func (r *Ring) maybeCheck(now int64) {
	next := r.nextCheck.Load()
	if now < next || !r.nextCheck.CompareAndSwap(next, now+checkEvery) {
		return
	}
	_ = r.Check()
}

// MoveTo hands the ready records of r, a retired ring, to dst, the ring
// that now has r's path: a master calls it when Check says the file was
// replaced, so that records published into the old file before anybody
// noticed run, even when no consumer of the old file is left. Records of
// dead consumers are released first. Each record is claimed in r, pushed
// into dst and then marked done in r; a record dst has no room for is
// released in r and MoveTo stops (call it again later). It returns how many
// records moved.
//
// A record is never in both rings as ready: it is claimed in r before it
// is pushed into dst. A MoveTo killed between the push and the done leaves
// a claimed record of a dead consumer in r, which the next MoveTo releases
// and moves again: at least once, as everywhere.
func (r *Ring) MoveTo(dst *Ring) (moved int, err error) {
	c, err := r.Consumer()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	p, err := dst.Producer()
	if err != nil {
		return 0, err
	}
	defer p.Close()
	for {
		rec, ok, err := c.Claim()
		if err != nil {
			if _, corrupt := err.(*CorruptError); corrupt {
				continue
			}
			return moved, err
		}
		if !ok {
			return moved, nil
		}
		if err := p.Push(rec.Payload); err != nil {
			c.Release(rec)
			return moved, err
		}
		c.Done(rec)
		moved++
	}
}

// standIn is what a private ring (NewPrivate) stands in for.
type standIn struct {
	path string
	opts Options
}

// check reports, with an error wrapping ErrRetired, that the ring file can
// be opened now (creating it if there is none).
func (s *standIn) check() error {
	real, err := Create(s.path, s.opts)
	if err != nil {
		return nil
	}
	real.Close()
	return fmt.Errorf("ring %s: the file can be used now: %w (this process runs on a private ring in its place)", s.path, ErrRetired)
}
