//go:build linux

package spoolfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gospool/gospool/spooler/task"
)

// File is a spool file opened and locked for running its task: the reader
// side of uWSGI's manage_task. While a File is open no uWSGI or gospool
// spooler will run the same task. A File is not safe for concurrent use.
type File struct {
	path    string
	fd      int // -1 once closed
	modTime time.Time
	task    *task.Task
	err     error
}

// Dup returns a new descriptor of the file's open description, which
// carries the lock: as long as any descriptor of it stays open (in this
// process or in a child that inherited it) the file stays locked. The
// caller closes it.
func (f *File) Dup() (*os.File, error) {
	if f.fd < 0 {
		return nil, fmt.Errorf("spoolfile: %s: %w", f.path, fs.ErrClosed)
	}
	fd, err := unix.FcntlInt(uintptr(f.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spoolfile: %s: dup: %w", f.path, err)
	}
	return os.NewFile(uintptr(fd), f.path), nil
}

// Open opens path read-write and takes a non-blocking write lock over the
// whole file, as a uWSGI spooler does before running a task. If another
// process holds the lock the error wraps [ErrLocked]: skip the file, it is
// being run. A missing file gives an error satisfying
// errors.Is(err, fs.ErrNotExist); so does a file that another spooler
// removed between our open and our lock.
//
// The file is read whole after the lock, with its size from an fstat taken
// after the lock (what uWSGI does since 2.0.14), and decoded once. A file
// that fails to decode is still returned, with the error kept in
// [File.Task], so that the caller can decide to skip it ([ErrShortHeader])
// or remove it (a [*FormatError], which uWSGI deletes).
func Open(path string) (*File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spoolfile: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	f := &File{path: path, fd: fd}
	if err := f.load(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return f, nil
}

func (f *File) load() error {
	if err := setLock(f.fd, unix.F_OFD_SETLK, unix.F_WRLCK); err != nil {
		if err == unix.EAGAIN || err == unix.EACCES {
			return fmt.Errorf("spoolfile: %s: %w", f.path, ErrLocked)
		}
		return fmt.Errorf("spoolfile: %s: lock: %w", f.path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return fmt.Errorf("spoolfile: %s: fstat: %w", f.path, err)
	}
	// uWSGI re-checks access() after the lock for the same reason: the
	// spooler that held the lock before us may have finished and unlinked it.
	if st.Nlink == 0 {
		return fmt.Errorf("spoolfile: %s: removed by another spooler before we could lock it: %w", f.path, fs.ErrNotExist)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("spoolfile: %s: not a regular file", f.path)
	}
	if st.Size > math.MaxInt {
		return fmt.Errorf("spoolfile: %s: %d bytes is too large to read", f.path, st.Size)
	}
	sec, nsec := st.Mtim.Unix()
	f.modTime = time.Unix(sec, nsec)

	buf := make([]byte, int(st.Size))
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(f.fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("spoolfile: %s: read: %w", f.path, err)
		}
		if m == 0 {
			break // shrunk since the fstat; decode what is there
		}
		n += m
	}
	// buf is ours alone, so the aliasing task Decode returns is the
	// caller's to keep.
	f.task, f.err = Decode(buf[:n])
	f.err = withPath(f.err, f.path)
	return nil
}

// Path returns the path given to [Open].
func (f *File) Path() string { return f.path }

// ModTime returns the file's mtime, taken after the lock. For a task with an
// `at` (or a retry) it is the time before which the task must not run.
func (f *File) ModTime() time.Time { return f.modTime }

// Task returns the task decoded at [Open] or the decoding error, which
// carries the path. The task shares memory with nothing else; the caller owns
// it. Every call returns the same task.
func (f *File) Task() (*task.Task, error) { return f.task, f.err }

// Remove deletes the file while still holding the lock, then closes it.
// Unlinking first means no other spooler can lock the file in between and
// run the task a second time.
func (f *File) Remove() error {
	if f.fd < 0 {
		return fmt.Errorf("spoolfile: remove %s: %w (the lock is already released)", f.path, fs.ErrClosed)
	}
	err := unix.Unlink(f.path)
	if err != nil {
		err = fmt.Errorf("spoolfile: %w", &fs.PathError{Op: "remove", Path: f.path, Err: err})
	}
	return errors.Join(err, f.Close())
}

// Close releases the lock. Closing a closed File does nothing, so that
// `defer f.Close()` can follow a [File.Remove].
func (f *File) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil {
		return fmt.Errorf("spoolfile: %w", &fs.PathError{Op: "close", Path: f.path, Err: err})
	}
	return nil
}

// IsLocked reports whether a process holds a write lock on path, as spoolers
// do while running a task. It places no lock, so tools like `gospool ls` can
// show running tasks without disturbing them. A lock held through another
// [File] of this process counts too.
func IsLocked(path string) (bool, error) {
	_, locked, err := LockHolder(path)
	return locked, err
}

// LockHolder is IsLocked that also names the holder's pid when the kernel
// knows it: a classic POSIX lock (uWSGI's) reports its process; an OFD
// lock (gospool's) reports none, and pid is 0.
func LockHolder(path string) (pid int, locked bool, err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false, fmt.Errorf("spoolfile: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	// Asking about a read lock reports only conflicting write locks.
	lk := unix.Flock_t{Type: unix.F_RDLCK}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return 0, false, fmt.Errorf("spoolfile: %s: lock query: %w", path, err)
	}
	if lk.Type == unix.F_UNLCK {
		return 0, false, nil
	}
	if lk.Pid > 0 {
		pid = int(lk.Pid)
	}
	return pid, true, nil
}

// ReadFile reads and decodes path without any lock, as uwsgi.parsefile()
// does, for inspection tools. The file may be changing or being run while it
// is read. Unlike parsefile it returns the body and ignores the modifiers.
//
// A file that does not decode and does not look like a spool file at all
// (a text file, random bytes: see [notSpoolFile]) gets an error saying so,
// rather than where the decoding failed; it still wraps the decoding error.
func ReadFile(path string) (*task.Task, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spoolfile: %w", readError(path, err))
	}
	t, err := Decode(data)
	if err != nil {
		if len(data) == 0 {
			return nil, &hintError{path + ": empty file, not a uWSGI spool file (unless its writer has not written it yet)", err}
		}
		if why := notSpoolFile(data); why != "" {
			return nil, &hintError{path + ": not a uWSGI spool file: " + why, withPath(err, path)}
		}
	}
	return t, withPath(err, path)
}

// notSpoolFile says why data, which failed to decode, is not a spool file
// that was damaged or cut short but something else: "" when it may be a
// spool file. A spool file starts with the header
//
//	| modifier1 u8 = 17 | vars size u16 LE | modifier2 u8 = 0 | vars... | body... |
//
// (uwsgi.parsefile also takes modifier1 0), and its vars are pairs
//
//	| key len u16 LE (> 0) | key | value len u16 LE | value |
//
// that fit the announced size. A file cut short keeps a start that fits;
// a text file or random bytes almost never do.
func notSpoolFile(data []byte) string {
	if data[0] != modifier1 && data[0] != 0 {
		return fmt.Sprintf("it starts with %q, and a spool file's first byte is 17 (0x11)", data[:min(len(data), 4)])
	}
	if len(data) < headerLen {
		return ""
	}
	if data[3] != modifier2 {
		return fmt.Sprintf("its 4th byte is %d, and a spool file's is 0", data[3])
	}
	end := headerLen + int(binary.LittleEndian.Uint16(data[1:3]))
	if end <= len(data) {
		return "" // the whole vars block is there: a damaged spool file
	}
	// Cut short: do the pairs that are there fit the announced size?
	u16 := func(off int) (int, bool) {
		if off+2 > len(data) {
			return 0, false
		}
		return int(binary.LittleEndian.Uint16(data[off:])), true
	}
	for off := headerLen; off < len(data); {
		klen, ok := u16(off)
		if !ok {
			break // cut inside the key length
		}
		if klen == 0 || off+2+klen+2 > end {
			return fmt.Sprintf("its header announces a %d-byte vars block, and the %d bytes after the header do not start one", end-headerLen, len(data)-headerLen)
		}
		vlen, ok := u16(off + 2 + klen)
		if !ok {
			break
		}
		if off+2+klen+2+vlen > end {
			return fmt.Sprintf("its header announces a %d-byte vars block, and the %d bytes after the header do not start one", end-headerLen, len(data)-headerLen)
		}
		off += 2 + klen + 2 + vlen
	}
	return ""
}

// hintError is an error with a message for a person: what went wrong with
// the file and what to do about it. It unwraps to the system's error, so
// errors.Is(err, fs.ErrNotExist) and the like still hold.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// readError says why a spool file could not be read in words that tell a
// person using an inspection tool what to do.
func readError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &hintError{path + ": no such file (check the path; a spooler deletes a task's file once the task is done)", err}
	case errors.Is(err, unix.EISDIR):
		return &hintError{path + ": is a directory, not a spool file (name the files in it: " + filepath.Join(path, Prefix+"*") + ")", err}
	case errors.Is(err, fs.ErrPermission):
		return &hintError{path + ": permission denied (spool files are mode 0600: read them as the user the spooler runs as, or as root)", err}
	}
	return err
}

// withPath adds the path to a [Decode] error.
func withPath(err error, path string) error {
	var fe *FormatError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		c := *fe
		c.Path = path
		return &c
	}
	return fmt.Errorf("spoolfile: %s: %w", path, err)
}
