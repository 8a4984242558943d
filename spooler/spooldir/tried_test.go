package spooldir

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// watched is a Dir with its Watcher, for tests of what inotify events do.
type watched struct {
	t   *testing.T
	dir string
	d   *Dir
	n   int // sentinels written so far
}

func newWatched(t *testing.T) *watched {
	t.Helper()
	w := &watched{t: t, dir: t.TempDir()}
	w.d = New(w.dir, Options{})
	watcher, err := w.d.Watch(func() {}, func() { w.d.Scan() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watcher.Close() })
	return w
}

// settle writes a fresh sentinel file and waits until the watcher has filed
// it: the events raised before it have been handled by then (inotify keeps
// their order). The sentinel is removed again.
func (w *watched) settle() {
	w.t.Helper()
	w.n++
	name := Prefix + "sentinel" + string(rune('a'+w.n))
	touch(w.t, w.dir, name, time.Time{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.d.mu.Lock()
		_, ok := w.d.entries[name]
		w.d.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the watcher never filed %s", name)
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.Remove(filepath.Join(w.dir, name)); err != nil {
		w.t.Fatal(err)
	}
	w.d.Forget(name)
}

// due lists what Next hands out now (and takes it out of the set).
func (w *watched) due() []string { return drain(w.d, time.Now()) }

// openRW opens path read-write, as a spooler does to lock a task; closing
// it raises IN_CLOSE_WRITE.
func openRW(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func ofdLock(fd int) error {
	return unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK})
}

// A task that another spooler runs (its lock held) is tried once and then
// stays out of the set, however many spoolers open and close it meanwhile
// (each close is an IN_CLOSE_WRITE, the event a lock release raises too):
// before, every close brought it back, the spooler tried it again at once,
// and its own close brought it back again, a spin that lasted as long as
// the task ran elsewhere. When the holder lets go, the file comes back.
func TestTriedFileLockedElsewhereComesBackOnlyWhenReleased(t *testing.T) {
	w := newWatched(t)
	name := Prefix + "running-elsewhere"
	path := filepath.Join(w.dir, name)
	touch(t, w.dir, name, time.Time{})
	holder := openRW(t, path)
	if err := ofdLock(holder); err != nil {
		t.Fatal(err)
	}
	w.d.Scan()
	for round := 0; round < 3; round++ {
		if got := w.due(); !equal(got, []string{name}) && round == 0 {
			t.Fatalf("round %d: due %v, want the file once", round, got)
		} else if round > 0 && len(got) != 0 {
			t.Fatalf("round %d: due %v while another holds its lock: the close of a failed attempt brought it back", round, got)
		}
		// Our attempt (or a peer's: uWSGI's spoolers do the same on
		// every pass) fails, and the close raises an event.
		fd := openRW(t, path)
		if err := ofdLock(fd); err == nil {
			t.Fatal("locked a file another open file holds")
		}
		unix.Close(fd)
		w.settle()
	}
	unix.Close(holder) // the holder lets go (uWSGI: the task returned RETRY)
	w.settle()
	if got := w.due(); !equal(got, []string{name}) {
		t.Fatalf("after the holder let go: due %v, want %s", got, name)
	}
}

// A file too short to hold a header (a writer still at work, or junk) is
// tried once per full scan, as uWSGI does, not again on the close of every
// attempt.
func TestShortFileIsNotTriedOnItsOwnClose(t *testing.T) {
	w := newWatched(t)
	name := Prefix + "short"
	path := filepath.Join(w.dir, name)
	if err := unix.Truncate(path, 0); err == nil {
		t.Fatal("the file exists already")
	}
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(fd, []byte("ab"))
	unix.Close(fd)
	w.settle()
	if got := w.due(); len(got) != 0 {
		t.Fatalf("due %v: a 2-byte file came in through its writer's close", got)
	}
	w.d.Scan()
	if got := w.due(); !equal(got, []string{name}) {
		t.Fatalf("after a full scan: due %v, want %s", got, name)
	}
	fd = openRW(t, path)
	unix.Close(fd)
	w.settle()
	if got := w.due(); len(got) != 0 {
		t.Fatalf("due %v: the close of the attempt on a 2-byte file brought it back", got)
	}
	// Its writer finishes: the file is due at once.
	fd = openRW(t, path)
	unix.Pwrite(fd, []byte{0x11, 0, 0, 0}, 0)
	unix.Close(fd)
	w.settle()
	if got := w.due(); !equal(got, []string{name}) {
		t.Fatalf("once the header is written: due %v, want %s", got, name)
	}
}
