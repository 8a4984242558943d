package ring

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Locks on the ring file are Linux open-file-description (OFD) record locks
// on single bytes. They belong to the open file, not to the process, so two
// owners in one process conflict like two processes do, and the kernel drops
// them when the last descriptor of the open file closes, which includes the
// death of the process by any signal. They also conflict with classic POSIX
// locks (fcntl F_SETLK, Python's fcntl.lockf), so a Python producer that
// takes a lane with lockf is a peer of a Go one.

// tryLockByte takes an exclusive lock on one byte without waiting. It
// reports false when another open file holds it.
func tryLockByte(f *os.File, off int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	return false, &os.PathError{Op: "lock", Path: f.Name(), Err: err}
}

func unlockByte(f *os.File, off int64) error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: off, Len: 1}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// byteLockedByOther reports whether an open file other than f holds a lock
// on the byte.
func byteLockedByOther(f *os.File, off int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, &os.PathError{Op: "getlk", Path: f.Name(), Err: err}
	}
	return lk.Type != unix.F_UNLCK, nil
}

// Futex operations (linux/futex.h), without FUTEX_PRIVATE_FLAG.
const (
	futexOpWait = 0
	futexOpWake = 1
)

// futexWait sleeps while the shared word at addr equals val, at most d.
// Spurious and early returns are fine: callers re-check their condition.
// The futex is not FUTEX_PRIVATE: the word lives in a MAP_SHARED file
// mapping and waiters and wakers are different processes.
func futexWait(addr unsafe.Pointer, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	// unsafe: addr points into the live shared mapping (see mem.addr).
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(addr), futexOpWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWake wakes up to n processes sleeping on the word at addr.
func futexWake(addr unsafe.Pointer, n int) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(addr), futexOpWake, uintptr(n), 0, 0, 0)
}

// nanotime is the Go runtime's CLOCK_MONOTONIC reading, through the vDSO.
// time.Now's monotonic part is relative to the start of each process, so it
// cannot be compared across processes; unix.ClockGettime can, but it is a
// real syscall (1.5 µs on the reference VM, against 31 ns for this). The
// runtime keeps this symbol linkable for exactly such users.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// monotonicNanos reads CLOCK_MONOTONIC, the clock every process of the
// machine shares, for the publish stamp of a record.
func monotonicNanos() int64 { return nanotime() }

// MonotonicNanos is CLOCK_MONOTONIC in nanoseconds, comparable with
// [Record.Stamp] across processes.
func MonotonicNanos() int64 { return monotonicNanos() }

func mmapFile(f *os.File, size int, readOnly bool) (mem, error) {
	prot := unix.PROT_READ | unix.PROT_WRITE
	if readOnly {
		prot = unix.PROT_READ
	}
	b, err := unix.Mmap(int(f.Fd()), 0, size, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: f.Name(), Err: err}
	}
	return mem(b), nil
}

func munmap(m mem) error { return unix.Munmap(m) }

func msync(m mem) error { return unix.Msync(m, unix.MS_SYNC) }

// allocate gives the file size bytes of allocated blocks (zeros where it
// had none). fallocate does it without writing; a filesystem without it
// (EOPNOTSUPP) gets zeros written, which allocates as well. A full disk is
// an error wrapping ENOSPC, and the file is then not fit to be mapped.
func allocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
	}
	return f.Sync()
}

// remapAnonymous replaces the mapping, in place, by zeroed private memory:
// pointers into it stay valid and no access can fault any more. The later
// Munmap of m unmaps the replacement.
func remapAnonymous(m mem) error {
	// unsafe: the address and length are those of the live mapping m;
	// MAP_FIXED replaces exactly those pages.
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(&m[0]), uintptr(len(m)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_FIXED|unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	return err
}
