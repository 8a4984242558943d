package spooldir

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of every spool file (uWSGI's rule).
const Prefix = "uwsgi_spoolfile_on_"

// NoPriority is the Priority of a file at the top of the directory.
const NoPriority = 1<<63 - 1

// Entry is one pending spool file.
type Entry struct {
	// Name is the path relative to the directory: "uwsgi_spoolfile_on_..."
	// or "5/uwsgi_spoolfile_on_..." for a file of priority 5.
	Name string
	// Priority is the number of the priority directory, or NoPriority.
	Priority int64
	// ModTime is the file's mtime: when it falls due.
	ModTime time.Time

	index int // in its heap, or -1
}

// Path is the absolute path of the entry in dir.
func (e Entry) Path(dir string) string { return filepath.Join(dir, e.Name) }

// Options tune a Dir.
type Options struct {
	// Ordered scans numeric priority sub-directories, lower numbers first,
	// as uWSGI's --spooler-ordered does.
	Ordered bool
	// RemoveAbandoned makes every full scan delete the temporary files of
	// spool file writers (WritingPrefix) whose inode last changed longer
	// ago than this: a writer killed before it linked its file into place
	// leaves one behind, and none runs. 0 keeps them (ls, stats).
	RemoveAbandoned time.Duration
}

// WritingPrefix starts the name of a spool file still being written by the
// Python producer, which links it under its uWSGI name once complete. Not
// uWSGI's prefix: no spooler runs it.
const WritingPrefix = ".gospool-writing-"

// Dir is the set of pending spool files of one directory.
type Dir struct {
	dir  string
	opts Options

	mu      sync.Mutex
	entries map[string]*Entry // by Name
	due     entryHeap         // mtime <= now at the last look, by priority then age
	waiting entryHeap         // mtime in the future, soonest first
	skip    map[string]bool   // names not to hand out until the next full scan
	// tried holds the names Next handed out whose files are still there:
	// the caller opened them read-write to lock them, so closing them
	// raises an inotify close event, as does every other spooler's attempt
	// (uWSGI's included) while the task runs. Update takes such a name back
	// only once nobody holds its lock, else a task running elsewhere, or a
	// file too short to hold a header, would come back at once, be tried
	// again, and so on: a spin for as long as the task runs.
	tried map[string]bool
	// scans counts the full scans in progress; while one runs, touched
	// collects the names Update saw, which the scan looks at again before
	// it replaces the set, so that an inotify event that lands while the
	// directory is being read is not lost until the next scan.
	scans   int
	touched map[string]bool
}

// New prepares the set for the directory dir (absolute). Call Scan to fill it.
func New(dir string, opts Options) *Dir {
	return &Dir{dir: dir, opts: opts, entries: map[string]*Entry{}, skip: map[string]bool{}, tried: map[string]bool{}, touched: map[string]bool{},
		due: entryHeap{less: dueFirst}, waiting: entryHeap{less: soonestFirst}}
}

// Dir is the directory this set describes.
func (d *Dir) Dir() string { return d.dir }

// Scan reads the directory (and, when ordered, its priority directories)
// and replaces the set with what it finds. Names set aside with Skip are
// forgiven: they are handed out again.
func (d *Dir) Scan() error {
	d.mu.Lock()
	if d.scans == 0 {
		clear(d.touched)
	}
	d.scans++
	d.mu.Unlock()
	found := map[string]*Entry{}
	err := d.scanDir("", NoPriority, found)
	if testHookAfterListing != nil {
		testHookAfterListing()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.scans--
	if err != nil {
		return err
	}
	// Names that changed while the directory was read: what the listing
	// says about them may be stale, so look again.
	for name := range d.touched {
		prio, ok := d.priorityOfName(name)
		if !ok {
			continue
		}
		delete(found, name)
		if fi, err := os.Lstat(filepath.Join(d.dir, name)); err == nil && fi.Mode().IsRegular() {
			found[name] = &Entry{Name: name, Priority: prio, ModTime: fi.ModTime(), index: -1}
		}
	}
	d.entries = found
	d.due.items, d.waiting.items = d.due.items[:0], d.waiting.items[:0]
	clear(d.skip)
	clear(d.tried)
	now := time.Now()
	for _, e := range found {
		d.place(e, now)
	}
	return nil
}

func (d *Dir) scanDir(sub string, prio int64, found map[string]*Entry) error {
	f, err := os.Open(filepath.Join(d.dir, sub))
	if err != nil {
		if sub != "" && errors.Is(err, fs.ErrNotExist) {
			return nil // a priority directory removed under us
		}
		return fmt.Errorf("spool directory %s: %w", filepath.Join(d.dir, sub), err)
	}
	defer f.Close()
	for {
		ents, err := f.ReadDir(4096)
		for _, de := range ents {
			name := de.Name()
			switch {
			case strings.HasPrefix(name, Prefix):
				fi, err := de.Info()
				if err != nil || !fi.Mode().IsRegular() {
					continue
				}
				rel := filepath.Join(sub, name)
				found[rel] = &Entry{Name: rel, Priority: prio, ModTime: fi.ModTime(), index: -1}
			case d.opts.RemoveAbandoned > 0 && strings.HasPrefix(name, WritingPrefix):
				d.removeAbandoned(filepath.Join(d.dir, sub, name))
			case d.opts.Ordered && sub == "" && de.IsDir():
				if p, ok := priorityOf(name); ok {
					if err := d.scanDir(name, p, found); err != nil {
						return err
					}
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("spool directory %s: %w", filepath.Join(d.dir, sub), err)
		}
	}
}

// testHookAfterListing runs between a scan's listing and its update of the
// set, in tests, to make the window it guards against happen on purpose.
var testHookAfterListing func()

// priorityOf parses an all-digit directory name.
func priorityOf(name string) (int64, bool) {
	if name == "" {
		return 0, false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	p, err := strconv.ParseInt(name, 10, 64)
	if err != nil {
		return NoPriority - 1, true // absurdly long: last, but still a priority
	}
	return p, true
}

// place puts e in the due or the waiting heap.
func (d *Dir) place(e *Entry, now time.Time) {
	if e.ModTime.After(now) {
		heap.Push(&d.waiting, e)
	} else {
		heap.Push(&d.due, e)
	}
}

// remove takes e out of whichever heap holds it.
func (d *Dir) remove(e *Entry) {
	if e.index < 0 {
		return
	}
	if e.index < len(d.due.items) && d.due.items[e.index] == e {
		heap.Remove(&d.due, e.index)
	} else if e.index < len(d.waiting.items) && d.waiting.items[e.index] == e {
		heap.Remove(&d.waiting, e.index)
	}
	e.index = -1
}

// Update records that the file name (relative to the directory) appeared,
// changed or disappeared: it looks at the file and files or drops it.
func (d *Dir) Update(name string) {
	prio, ok := d.priorityOfName(name)
	if !ok {
		return
	}
	path := filepath.Join(d.dir, name)
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode().IsRegular() && fi.Size() < HeaderSize {
		// A writer is still at work (its close brings the file back) or
		// the file is junk that no spooler can take (uWSGI skips it too,
		// and so does the next full scan's attempt).
		err = errShort
	}
	if err == nil && d.wasTried(name) && lockedElsewhere(path) {
		// Running (or being tried) elsewhere: the holder's close, when it
		// lets go, brings the file back.
		err = errLocked
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.scans > 0 {
		d.touched[name] = true
	}
	old := d.entries[name]
	if err != errLocked {
		delete(d.tried, name)
	}
	if err != nil || !fi.Mode().IsRegular() {
		if old != nil {
			d.remove(old)
			delete(d.entries, name)
		}
		return
	}
	if old != nil {
		d.remove(old)
	}
	e := &Entry{Name: name, Priority: prio, ModTime: fi.ModTime(), index: -1}
	d.entries[name] = e
	d.place(e, time.Now())
}

// HeaderSize is the size of a spool file's header: a shorter file holds no
// task (yet).
const HeaderSize = 4

var (
	errShort  = errors.New("shorter than a header")
	errLocked = errors.New("locked by another open file")
)

func (d *Dir) wasTried(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tried[name]
}

// priorityOfName says whether name (relative to the directory) is a spool
// file this set tracks, and its priority.
func (d *Dir) priorityOfName(name string) (int64, bool) {
	if !strings.HasPrefix(filepath.Base(name), Prefix) {
		return 0, false
	}
	sub := filepath.Dir(name)
	if sub == "." {
		return NoPriority, true
	}
	p, ok := priorityOf(sub)
	if !ok || !d.opts.Ordered {
		return 0, false
	}
	return p, true
}

// Forget drops name from the set: its file is gone.
func (d *Dir) Forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.scans > 0 {
		d.touched[name] = true
	}
	delete(d.tried, name)
	if e := d.entries[name]; e != nil {
		d.remove(e)
		delete(d.entries, name)
	}
}

// Next takes the next due entry out of the set: lowest priority number
// first, then the oldest. The caller tries to lock it; whatever happens,
// the entry is out of the set until an event or a scan brings it back.
func (d *Dir) Next(now time.Time) (Entry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.waiting.items) > 0 && !d.waiting.items[0].ModTime.After(now) {
		e := heap.Pop(&d.waiting).(*Entry)
		heap.Push(&d.due, e)
	}
	for len(d.due.items) > 0 {
		e := heap.Pop(&d.due).(*Entry)
		delete(d.entries, e.Name)
		if d.skip[e.Name] {
			continue
		}
		d.tried[e.Name] = true
		return *e, true
	}
	return Entry{}, false
}

// Skip keeps name from being handed out again until the next full scan
// (a task no handler takes, say: without this, the close of its file
// would bring it straight back).
func (d *Dir) Skip(name string) {
	d.mu.Lock()
	d.skip[name] = true
	d.mu.Unlock()
}

// HasDue reports whether an entry may be due at now, in constant time.
func (d *Dir) HasDue(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A skipped entry counts too: the caller's Next drops it, once. Looking
	// past it here would cost a walk over the heap on every check.
	return len(d.due.items) > 0 || (len(d.waiting.items) > 0 && !d.waiting.items[0].ModTime.After(now))
}

// NextAt is when the next waiting entry falls due (zero if none waits).
func (d *Dir) NextAt() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.waiting.items) == 0 {
		return time.Time{}
	}
	return d.waiting.items[0].ModTime
}

// Len is how many pending files the set holds.
func (d *Dir) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// entryHeap is a heap of entries in the order less gives; each entry knows
// its index, so that it can be removed from the middle.
type entryHeap struct {
	items []*Entry
	less  func(a, b *Entry) bool
}

func (h *entryHeap) Len() int           { return len(h.items) }
func (h *entryHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *entryHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*Entry)
	e.index = len(h.items)
	h.items = append(h.items, e)
}
func (h *entryHeap) Pop() any {
	n := len(h.items) - 1
	e := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	e.index = -1
	return e
}

// dueFirst orders due entries: lower priority number first, then older,
// then by name.
func dueFirst(a, b *Entry) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if !a.ModTime.Equal(b.ModTime) {
		return a.ModTime.Before(b.ModTime)
	}
	return a.Name < b.Name
}

// soonestFirst orders waiting entries by due time.
func soonestFirst(a, b *Entry) bool { return a.ModTime.Before(b.ModTime) }

// removeAbandoned deletes a writer's temporary file once its inode has not
// changed for opts.RemoveAbandoned. The change time, not the mtime: a
// writer sets the mtime to the task's `at`, which may be long past, and
// the link into place changes the ctime, so a file about to be linked is
// never old by this measure.
func (d *Dir) removeAbandoned(path string) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	changed := time.Unix(st.Ctim.Unix())
	if time.Since(changed) > d.opts.RemoveAbandoned {
		_ = os.Remove(path)
	}
}
