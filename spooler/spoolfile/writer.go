//go:build linux

package spoolfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gospool/gospool/spooler/task"
)

// maxCreateTries bounds the retries on a name collision. uWSGI does not
// retry at all; a few tries with a fresh counter, rand and time are plenty.
const maxCreateTries = 16

// testHookWritten, when set by a test, runs after the bytes are written and
// can fail the write, to exercise the clean-up path.
var testHookWritten func(path string) error

// WriterOptions configure a [Writer].
type WriterOptions struct {
	// Sync makes each write fsync the file before closing it. uWSGI never
	// does; without it a power cut can leave a truncated file that uWSGI
	// then deletes as corrupt.
	Sync bool
	// Host is the host part of the file names; "" means os.Hostname(), as
	// uWSGI's gethostname().
	Host string
}

// Writer writes spool files into one spool directory the way uWSGI's
// uwsgi_spool_request does, so that uWSGI and gospool spoolers can consume
// them and never see a half-written file. A Writer is safe for concurrent use.
type Writer struct {
	dir     string
	host    string
	pid     int
	sync    bool
	counter atomic.Uint64
}

// NewWriter returns a Writer for dir, which must exist. The directory is
// resolved once to an absolute path without symlinks, as uWSGI's realpath()
// does, so that the paths returned match the ones uWSGI logs.
func NewWriter(dir string, opts WriterOptions) (*Writer, error) {
	real, err := realpath(dir)
	if err != nil {
		return nil, fmt.Errorf("spoolfile: spool directory %s: %w (create it first)", dir, err)
	}
	if fi, err := os.Stat(real); err != nil {
		return nil, fmt.Errorf("spoolfile: spool directory %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("spoolfile: spool directory %s: not a directory", dir)
	}
	host := opts.Host
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("spoolfile: hostname for file names: %w (set WriterOptions.Host)", err)
		}
	}
	// uWSGI puts the hostname into the path unchecked; here a '/' would send
	// files elsewhere or make every create fail, so refuse it up front.
	if strings.ContainsAny(host, "/\x00") {
		return nil, fmt.Errorf("spoolfile: host %q cannot be part of a file name", host)
	}
	return &Writer{dir: real, host: host, pid: os.Getpid(), sync: opts.Sync}, nil
}

// realpath resolves dir like realpath(3). Symlinks are resolved before
// making the path absolute so that "link/.." means the link target's parent,
// and again after, because the working directory may itself contain links.
func realpath(dir string) (string, error) {
	p, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if p, err = filepath.Abs(p); err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}

// Dir returns the absolute, symlink-free spool directory.
func (w *Writer) Dir() string { return w.dir }

// Write spools t and returns the absolute path of the new file. If t has an
// `at` key the file's mtime is set to it, which is how uWSGI delays a task.
func (w *Writer) Write(t *task.Task) (string, error) {
	return w.WriteNamed(t, time.Time{}, "")
}

// WriteAt is [Writer.Write] with the file's mtime set to at (when at is not
// zero) instead of the task's `at`. The pairs are written unchanged, so a
// retried task looks to uWSGI exactly like the original; the retry time lives
// only in the mtime.
func (w *Writer) WriteAt(t *task.Task, at time.Time) (string, error) {
	return w.WriteNamed(t, at, "")
}

// WriteNamed is [Writer.WriteAt] with suffix appended verbatim to the
// generated name (gospool appends ".retry<N>" to count attempts). The name
// still starts with [Prefix], so uWSGI accepts it. suffix must not contain
// '/' or NUL.
func (w *Writer) WriteNamed(t *task.Task, at time.Time, suffix string) (string, error) {
	return w.WriteNamedThen(t, at, suffix, nil)
}

// WriteNamedThen is WriteNamed calling beforeUnlock with the file's path
// once the file is complete but still locked: what beforeUnlock writes
// about the file (a note beside it, say) exists before any spooler can
// take the file.
func (w *Writer) WriteNamedThen(t *task.Task, at time.Time, suffix string, beforeUnlock func(path string)) (string, error) {
	if strings.ContainsAny(suffix, "/\x00") {
		return "", fmt.Errorf("spoolfile: name suffix %q must not contain '/' or NUL", suffix)
	}
	// Everything that can be refused is refused before touching the disk.
	if err := t.Validate(); err != nil {
		return "", fmt.Errorf("spoolfile: not spooling the task: %w", err)
	}
	data, err := Encode(t)
	if err != nil {
		return "", err
	}
	if at.IsZero() {
		at, _, _ = t.At() // Validate accepted it; zero when absent
	}
	dir := w.dir
	if prio, ok, _ := t.Priority(); ok {
		// Validate allowed digits only, so this cannot leave w.dir. Like
		// uWSGI: one level, 0777 minus umask, an existing one is fine.
		dir = filepath.Join(w.dir, prio)
		if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("spoolfile: priority directory: %w", err)
		}
	}

	var fd int
	var path string
	for try := 1; ; try++ {
		// Counted before the attempt, failed ones included, as uWSGI does.
		n := w.counter.Add(1)
		path = filepath.Join(dir, Name(w.host, w.pid, n, rand.Int32(), time.Now())+suffix)
		// O_CLOEXEC matters beyond hygiene: a descriptor inherited by a
		// child process would keep the OFD lock alive after we close ours.
		fd, err = unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		if err == nil {
			break
		}
		if err == unix.EINTR || (err == unix.EEXIST && try < maxCreateTries) {
			continue
		}
		return "", fmt.Errorf("spoolfile: cannot create %s: %w (check that the spool directory exists and is writable)", path, err)
	}

	if err := fill(fd, path, data, at, w.sync); err != nil {
		// Unlink before close: while we hold the lock no spooler can read
		// the partial file, and once it is unlinked none can find it.
		rmErr := unix.Unlink(path)
		unix.Close(fd)
		if rmErr != nil {
			return "", fmt.Errorf("spoolfile: writing %s: %w; removing it failed too (%v): delete it by hand, a spooler may run it with partial data", path, err, rmErr)
		}
		return "", fmt.Errorf("spoolfile: writing %s: %w; the file was removed and the task NOT spooled, check free space and retry", path, err)
	}
	if beforeUnlock != nil {
		beforeUnlock(path)
	}
	// close releases the lock: from here on spoolers may run the task.
	if err := unix.Close(fd); err != nil {
		// The data may not have reached the disk (NFS reports here).
		rmErr := unix.Unlink(path)
		if rmErr != nil {
			return "", fmt.Errorf("spoolfile: closing %s: %w; removing it failed too (%v): delete it by hand", path, err, rmErr)
		}
		return "", fmt.Errorf("spoolfile: closing %s: %w; the file was removed and the task NOT spooled, retry", path, err)
	}
	return path, nil
}

// fill does steps 5 to 7 of uWSGI's write protocol on a fresh file: lock,
// write, set the times; plus an optional fsync.
func fill(fd int, path string, data []byte, at time.Time, sync bool) error {
	// Blocking: a spooler that opened the empty file between our create and
	// this lock holds it only while it sees 0 bytes and gives up.
	if err := setLock(fd, unix.F_OFD_SETLKW, unix.F_WRLCK); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("write: %w", unix.EIO)
		}
		data = data[n:]
	}
	if testHookWritten != nil {
		if err := testHookWritten(path); err != nil {
			return err
		}
	}
	if !at.IsZero() {
		if err := futimens(fd, at); err != nil {
			return fmt.Errorf("setting mtime to the task's time %v: %w", at, err)
		}
	}
	if sync {
		if err := unix.Fsync(fd); err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
	}
	return nil
}

// setLock places or tests a whole-file OFD record lock.
//
// Why OFD locks: they are POSIX record locks, so they conflict with the
// classic fcntl(F_SETLK) locks uWSGI takes (flock() locks would not). Unlike
// classic locks they belong to the open file description, not the process,
// so closing another descriptor of the same file in this process (say, a
// `gospool inspect` read) does not silently drop them, and two goroutines of
// one process exclude each other as two processes do.
func setLock(fd, cmd int, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0, Pid: 0} // Pid must be 0 for OFD locks
	for {
		err := unix.FcntlFlock(uintptr(fd), cmd, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}

// futimens sets atime and mtime of fd to t with nanosecond precision.
// x/sys has no futimens; unix.Futimes rounds to microseconds and goes through
// /proc. utimensat with a NULL path acts on the descriptor itself, which is
// how the C library implements futimens.
func futimens(fd int, t time.Time) error {
	ts, err := unix.TimeToTimespec(t)
	if err != nil {
		return err
	}
	times := [2]unix.Timespec{ts, ts}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&times)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
