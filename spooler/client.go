package spooler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gospool/gospool/spooler/record"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// Client hands tasks to the spoolers of one spool directory: into the
// shared-memory ring while a gospool spooler is attached to it, as a uWSGI
// spool file otherwise, or when the ring cannot take the task now (see
// "Where a task goes" in the package documentation). It is safe for
// concurrent use; goroutines share one ring lane.
type Client struct {
	dir    string
	files  *spoolfile.Writer
	ring   *ring.Ring
	attach *ring.Attachment // of ring

	fullWait time.Duration
	opts     ClientOptions
	lookedAt time.Time // when openRing last found no ring

	mu       sync.Mutex
	producer *ring.Producer // nil until first use, or when no lane was free
	noLaneAt time.Time      // when Producer last failed with ErrNoLane
	retired  []retiredRing  // rings whose file was replaced, kept mapped until Close
}

// ClientOptions tune a Client.
type ClientOptions struct {
	// NoRing writes every task as a spool file, as uWSGI does.
	NoRing bool
	// Sync makes ring writes msync and file writes fsync before Spool returns.
	Sync bool
	// FullWait bounds how long Spool waits for room when its ring lane is
	// full while consumers are making progress, before it spills the task
	// to a file (default 2ms; negative: never wait). It is back-pressure:
	// a burst slows down to the spoolers' pace instead of turning into
	// thousands of files. When the consumers make no progress (none is
	// running, or all are stuck in long tasks) Spool spills at once.
	FullWait time.Duration
}

// NewClient opens the spool directory dir for producing. A missing
// directory is an error (the master or `gospool run` creates it), and so is
// one this process may not write, whose error names its owner and mode.
func NewClient(dir string, opts ClientOptions) (*Client, error) {
	files, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{Sync: opts.Sync})
	if err != nil {
		return nil, err
	}
	if err := CheckWritable(files.Dir()); err != nil {
		return nil, err
	}
	c := &Client{dir: files.Dir(), files: files, fullWait: opts.FullWait, opts: opts}
	if c.fullWait == 0 {
		c.fullWait = 2 * time.Millisecond
	}
	if !opts.NoRing {
		if err := c.openRing(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// openRing opens the directory's ring if a gospool spooler made one.
func (c *Client) openRing() error {
	r, err := ring.Open(filepath.Join(c.dir, ring.FileName), ring.Options{Sync: c.opts.Sync})
	switch {
	case err == nil:
		c.ring, c.attach = r, r.Attachment()
	case errors.Is(err, fs.ErrNotExist):
		// No gospool spooler served this directory yet: files for now.
	default:
		return err
	}
	return nil
}

// currentRing returns the directory's ring (nil when it has none) and
// whether a gospool spooler is attached to it. While the directory has no
// ring it looks for one again at most once a second (a spooler may start
// after the client).
func (c *Client) currentRing() (*ring.Ring, bool) {
	c.mu.Lock()
	if c.ring == nil && !c.opts.NoRing && time.Since(c.lookedAt) > time.Second {
		c.lookedAt = time.Now()
		_ = c.openRing()
	}
	r, a := c.ring, c.attach
	c.mu.Unlock()
	return r, r != nil && a.Attached()
}

// Dir is the spool directory, absolute with symlinks resolved.
func (c *Client) Dir() string { return c.dir }

// UsesRing reports whether a task spooled now may go into the ring: the
// directory has one and a gospool spooler is attached to it.
func (c *Client) UsesRing() bool {
	_, attached := c.currentRing()
	return attached
}

// Spool hands t to the spoolers. It returns the spool file's absolute path
// when the task went to a file (as uwsgi.spool does), or "" when it went
// into the ring.
//
// A task goes to a file instead of the ring when no gospool spooler is
// attached to the ring, when it must wait (an `at` in the future), when it
// has a `priority` (a sub-directory, as in uWSGI), when its lane is full,
// when it is bigger than a lane accepts, or when every lane is taken. Spool
// never blocks on a consumer: once it returns nil, the task is stored and
// will run.
func (c *Client) Spool(ctx context.Context, t *Task) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := t.Validate(); err != nil {
		return "", err
	}
	if target, ok := t.Spooler(); ok && !c.sameDir(target) {
		return "", fmt.Errorf("spooler: task names spooler %q, but this client spools to %s", target, c.dir)
	}
	r, attached := c.currentRing()
	if r == nil {
		return c.files.Write(t)
	}
	if !attached {
		// Counted as spilled (written as a file instead of into the
		// ring), so that `gospool stats` accounts for every task.
		path, err := c.files.Write(t)
		if err == nil {
			r.NoteSpill()
		}
		return path, err
	}
	if ringable(t) {
		err := c.push(r, t)
		if err == nil {
			return "", nil
		}
		if !errors.Is(err, ring.ErrFull) && !errors.Is(err, ring.ErrTooLarge) && !errors.Is(err, ring.ErrNoLane) && !errors.Is(err, ring.ErrRetired) {
			return "", err
		}
		if errors.Is(err, ring.ErrRetired) {
			c.forgetRing(r) // the file was replaced or broke: open it again next time
		}
		path, err := c.files.Write(t)
		if err != nil {
			return "", err
		}
		r.NoteSpill()
		return path, nil
	}
	path, err := c.files.Write(t)
	if err == nil {
		r.NoteFile() // spoolers learn of its `at` now, not at their next scan
	}
	return path, err
}

func ringable(t *Task) bool {
	if _, ok := t.Get(KeyPriority); ok {
		return false
	}
	at, ok, _ := t.At()
	return !ok || !at.After(time.Now())
}

func (c *Client) sameDir(target string) bool {
	if target == c.dir {
		return true
	}
	real, err := filepath.EvalSymlinks(target)
	return err == nil && real == c.dir
}

var recordBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (c *Client) push(r *ring.Ring, t *Task) error {
	bp := recordBuffers.Get().(*[]byte)
	defer recordBuffers.Put(bp)
	rec, err := record.Append((*bp)[:0], t)
	if err != nil {
		return err
	}
	*bp = rec
	p, err := c.lane(r)
	if err != nil {
		return err
	}
	err = p.Push(rec)
	if !errors.Is(err, ring.ErrFull) || c.fullWait <= 0 {
		return err
	}
	// The lane is full. Wait for room while the consumers visibly make
	// progress, never longer than fullWait, never when they make none.
	deadline := time.Now().Add(c.fullWait)
	progress := r.Progress()
	lastMove := time.Now()
	for {
		// Sleep, do not spin: on a small machine the consumer needs the CPU
		// this producer would burn.
		time.Sleep(20 * time.Microsecond)
		if err = p.Push(rec); !errors.Is(err, ring.ErrFull) {
			return err
		}
		now := time.Now()
		if pr := r.Progress(); pr != progress {
			progress, lastMove = pr, now
		}
		if now.After(deadline) || now.Sub(lastMove) > c.fullWait/2 {
			return err
		}
	}
}

// lane returns this client's ring producer, taking a lane on first use. When
// every lane is taken it tries again at most once a second.
func (c *Client) lane(r *ring.Ring) (*ring.Producer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r != c.ring {
		return nil, ring.ErrRetired // forgotten by another goroutine meanwhile
	}
	if c.producer != nil {
		return c.producer, nil
	}
	if time.Since(c.noLaneAt) < time.Second {
		return nil, ring.ErrNoLane
	}
	p, err := r.Producer()
	if err != nil {
		c.noLaneAt = time.Now()
		return nil, err
	}
	c.producer = p
	return p, nil
}

// forgetRing stops using r, a retired ring (see ring.ErrRetired), so that
// the next Spool opens the directory's ring file again. r stays mapped
// until Close: other goroutines may still be pushing into it (their pushes
// fail with ErrRetired and spill to files).
func (c *Client) forgetRing(r *ring.Ring) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring != r {
		return
	}
	c.retired = append(c.retired, retiredRing{r, c.producer})
	c.ring, c.producer = nil, nil
	c.lookedAt = time.Time{}
}

type retiredRing struct {
	r *ring.Ring
	p *ring.Producer // nil if no lane was taken
}

// Close releases the ring lane. Tasks already spooled are unaffected.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if c.producer != nil {
		errs = append(errs, c.producer.Close())
		c.producer = nil
	}
	if c.ring != nil {
		errs = append(errs, c.ring.Close())
		c.ring, c.attach = nil, nil
	}
	for _, o := range c.retired {
		if o.p != nil {
			o.p.Close()
		}
		o.r.Close() // its file is gone or broken: nothing to report
	}
	c.retired = nil
	return errors.Join(errs...)
}

// NewTask builds a task from alternating keys and values; see [task.New].
func NewTask(keyValues ...string) *Task { return task.New(keyValues...) }

// ErrDirNotWritable is wrapped by the error of [CheckWritable] (and so of
// NewClient) when this process may not create files in the spool directory.
var ErrDirNotWritable = errors.New("may not create files in the spool directory")

// CheckWritable reports, in a user's terms, why this process cannot create
// spool files in dir: which user it runs as, who owns the directory and
// its mode, or that the file system is read-only. A task spooled there
// could go nowhere: not into a spool file, and not into the ring either
// when the ring is the spoolers' (mode 0600) or when the task must spill.
func CheckWritable(dir string) error {
	err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("spool directory %s is on a read-only file system: %w; spool into a writable directory", dir, ErrDirNotWritable)
	case !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM):
		return nil // something else (ENOENT...): the writer reports it itself
	}
	who := fmt.Sprintf("uid %d", os.Geteuid())
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
		who = fmt.Sprintf("user %s (uid %d)", u.Username, os.Geteuid())
	}
	owner := ""
	var st unix.Stat_t
	if unix.Stat(dir, &st) == nil {
		o, g := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
		if u, err := user.LookupId(o); err == nil {
			o = u.Username
		}
		if gr, err := user.LookupGroupId(g); err == nil {
			g = gr.Name
		}
		owner = fmt.Sprintf(" (owner %s, group %s, mode %04o)", o, g, st.Mode&0o7777)
	}
	return fmt.Errorf("spool directory %s: permission denied: %s %v%s; run as the user the spoolers run as, or give this user write access to the directory (chgrp and chmod g+w, say)",
		dir, who, ErrDirNotWritable, owner)
}
