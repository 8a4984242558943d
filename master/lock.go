package master

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// LockFileName is the file in each spool directory whose lock says that a
// master serves the directory. It holds the master's pid, for the message
// a second master prints. uWSGI ignores it: its spoolers only look at names
// that start with "uwsgi_spoolfile_on_" (and all-digit directories).
const LockFileName = "gospool.master.lock"

// Why a lock file of its own, and why an OFD lock on it:
//
//   - The lock must live as long as the master and no longer, whatever
//     kills it: a record lock is dropped by the kernel when its holder
//     goes, kill -9 included, so a restarted master starts at once. A pid
//     file without a lock would need guessing whether the pid is stale.
//   - It must be held by the master process only. An OFD lock belongs to
//     the open file description: os.OpenFile opens with O_CLOEXEC and the
//     master never passes this file to a child, so no child, nor anything a
//     child starts (a --worker-cmd's own children, which no parent-death
//     signal reaches), holds the description, and their lingering after a
//     kill -9 of the master never blocks a new master. A classic POSIX lock
//     would also be dropped when any code in the master closes any other
//     descriptor of the file; a flock lock would do, but OFD locks are what
//     the rest of gospool uses.
//   - Not the scoreboard: a master replaces it (write a temporary file,
//     rename), so a lock on it would be on a file nobody else opens. The
//     lock file is never replaced and never removed, not even at exit:
//     removing it would let a master lock the removed file while another
//     creates and locks a new one, and both would run.
//   - One per spool directory, not only in the first: a master on
//     directories A and B and another on B alone must not both run.

// lockDir takes dir's master lock without waiting, writes this process's
// pid into the lock file, and returns the file, which keeps the lock until
// it is closed or the process ends. When another master holds the lock,
// the error names its pid.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("master: lock file %s: %w (check the spool directory is writable)", path, err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK} // the whole file; Pid must be 0 for OFD locks
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			break
		}
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		f.Close()
		return nil, servedError(dir, path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("master: lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("master: write pid into %s: %w", path, err)
	}
	return f, nil
}

// CheckFree returns the error a master started on the spool directory dir
// would stop with because another master serves it, or nil. A program
// that does something of its own before [Run] that a second instance would
// trip on (listen on an address, say) calls it first, so that a second
// instance says which master runs instead of "address in use". It takes
// no lock: Run still checks.
func CheckFree(dir string) error {
	path := filepath.Join(dir, LockFileName)
	f, err := os.Open(path)
	if err != nil {
		return nil // no lock file: no master has ever served dir
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil || lk.Type == unix.F_UNLCK {
		return nil
	}
	return servedError(dir, path)
}

func servedError(dir, path string) error {
	return fmt.Errorf("master: spool directory %s is already served by another gospool master (%s); "+
		"stop that one first, or give this one another spool directory", dir, holder(path))
}

// holder says which master holds the lock file at path, from the pid it
// wrote there. A master that has just taken the lock may not have written
// it yet: wait a little for it.
func holder(path string) string {
	deadline := time.Now().Add(time.Second)
	for {
		b, _ := os.ReadFile(path)
		if line, ok := bytes.CutSuffix(b, []byte("\n")); ok {
			if pid, err := strconv.Atoi(string(line)); err == nil && pid > 0 {
				return "pid " + strconv.Itoa(pid)
			}
		}
		if time.Now().After(deadline) {
			return "pid unknown: " + path + " names none"
		}
		time.Sleep(10 * time.Millisecond)
	}
}
