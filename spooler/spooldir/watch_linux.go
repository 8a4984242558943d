package spooldir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Watcher feeds a Dir with inotify events until Close.
type Watcher struct {
	d      *Dir
	f      *os.File
	fd     int // f's descriptor, kept: f.Fd() would make it blocking
	notify func()
	rescan func()

	mu      sync.Mutex
	subdirs map[int32]string // watch descriptor -> priority directory name ("" for the top)
	done    chan struct{}
}

// The events that change what is pending. IN_CLOSE_WRITE is a file closed
// after being opened for writing: the end of a writer's work, and the
// release of a uWSGI spooler's lock (it opens tasks read-write). IN_CREATE
// is a new name: the only event a hard link makes, which is how the Python
// producer puts a complete file in place (written under a hidden name
// first); a file still being written is locked by its writer, or too
// short to run yet, and comes back with its IN_CLOSE_WRITE.
const fileEvents = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_CREATE

// Watch starts watching the directory (and, when ordered, its priority
// directories). notify is called, from the watcher's goroutine, after every
// batch of events that may have made a task due; rescan when the kernel
// dropped events (the queue overflowed) and the caller must Scan.
func (d *Dir) Watch(notify, rescan func()) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("spool directory %s: inotify: %w", d.dir, err)
	}
	// A non-blocking descriptor in an os.File goes through Go's poller, so
	// Close unblocks the reading goroutine.
	w := &Watcher{d: d, fd: fd, f: os.NewFile(uintptr(fd), "inotify:"+d.dir), notify: notify, rescan: rescan,
		subdirs: map[int32]string{}, done: make(chan struct{})}
	mask := uint32(fileEvents)
	if d.opts.Ordered {
		mask |= unix.IN_CREATE // new priority directories
	}
	if err := w.add("", mask); err != nil {
		w.f.Close()
		return nil, err
	}
	if d.opts.Ordered {
		ents, _ := os.ReadDir(d.dir)
		for _, e := range ents {
			if _, ok := priorityOf(e.Name()); ok && e.IsDir() {
				_ = w.add(e.Name(), fileEvents)
			}
		}
	}
	go w.loop()
	return w, nil
}

func (w *Watcher) add(sub string, mask uint32) error {
	wd, err := unix.InotifyAddWatch(w.fd, filepath.Join(w.d.dir, sub), mask|unix.IN_ONLYDIR)
	if err != nil {
		return fmt.Errorf("spool directory %s: watch: %w", filepath.Join(w.d.dir, sub), err)
	}
	w.mu.Lock()
	w.subdirs[int32(wd)] = sub
	w.mu.Unlock()
	return nil
}

func (w *Watcher) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				fmt.Fprintf(os.Stderr, "spool directory %s: inotify read: %v\n", w.d.dir, err)
			}
			return
		}
		changed := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			// unsafe: the kernel writes whole, aligned inotify_event records
			// into buf; off stays on record boundaries, and the name that
			// follows each header is bounds-checked before it is sliced.
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameEnd := off + unix.SizeofInotifyEvent + int(ev.Len)
			if nameEnd > n {
				break
			}
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:nameEnd], "\x00"))
			off = nameEnd
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				w.rescan()
				changed = true
				continue
			}
			w.mu.Lock()
			sub, ok := w.subdirs[ev.Wd]
			w.mu.Unlock()
			if !ok || name == "" {
				continue
			}
			if ev.Mask&unix.IN_ISDIR != 0 {
				if sub == "" && ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
					if _, isPrio := priorityOf(name); isPrio {
						// Watch first, then look: nothing written in between is missed.
						_ = w.add(name, fileEvents)
						w.rescan()
						changed = true
					}
				}
				continue
			}
			if ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
				w.d.Forget(filepath.Join(sub, name)) // gone: nothing became due
				continue
			}
			w.d.Update(filepath.Join(sub, name))
			changed = true
		}
		if changed {
			w.notify()
		}
	}
}

// Close stops the watcher and waits for its goroutine.
func (w *Watcher) Close() error {
	err := w.f.Close()
	<-w.done
	return err
}
