package spooldir

import "golang.org/x/sys/unix"

// lockedElsewhere reports whether a write lock is held on the file at path
// by another open file (any process's, this one's too: OFD locks conflict
// between open files, and POSIX record locks of other processes, uWSGI's,
// conflict with them). It opens the file read-only, which raises no inotify
// close-write event. When it cannot tell, it says no: the file is then
// tried, as before.
func lockedElsewhere(path string) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	// Asking about a write lock reports any lock that would keep the
	// caller from locking the file to run it.
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type != unix.F_UNLCK
}
