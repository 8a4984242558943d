package spooler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"github.com/gospool/gospool/spooler/record"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// Client hands tasks to the spoolers of one spool directory: into the
// shared-memory ring when the directory has one, as a uWSGI spool file
// otherwise, or when the ring cannot take the task now. It is safe for
// concurrent use; goroutines share one ring lane.
type Client struct {
	dir   string
	files *spoolfile.Writer
	ring  *ring.Ring

	mu       sync.Mutex
	producer *ring.Producer // nil until first use, or when no lane was free
	noLaneAt time.Time      // when Producer last failed with ErrNoLane
}

// ClientOptions tune a Client.
type ClientOptions struct {
	// NoRing writes every task as a spool file, as uWSGI does.
	NoRing bool
	// RequireConsumer uses the ring only while a gospool spooler process is
	// attached to it; otherwise tasks go to files, which uWSGI spoolers
	// sharing the directory can run. `gospool spool` sets it.
	RequireConsumer bool
	// Sync makes ring writes msync and file writes fsync before Spool returns.
	Sync bool
}

// NewClient opens the spool directory dir for producing. A missing
// directory is an error (the master or `gospool run` creates it).
func NewClient(dir string, opts ClientOptions) (*Client, error) {
	files, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{Sync: opts.Sync})
	if err != nil {
		return nil, err
	}
	c := &Client{dir: files.Dir(), files: files}
	if !opts.NoRing {
		r, err := ring.Open(filepath.Join(c.dir, ring.FileName), ring.Options{Sync: opts.Sync})
		switch {
		case err == nil:
			if opts.RequireConsumer && !r.HasLiveConsumer() {
				r.Close()
			} else {
				c.ring = r
			}
		case errors.Is(err, fs.ErrNotExist):
			// No gospool spooler ever served this directory: files only.
		default:
			return nil, err
		}
	}
	return c, nil
}

// Dir is the spool directory, absolute with symlinks resolved.
func (c *Client) Dir() string { return c.dir }

// UsesRing reports whether tasks may go into the ring.
func (c *Client) UsesRing() bool { return c.ring != nil }

// Spool hands t to the spoolers. It returns the spool file's absolute path
// when the task went to a file (as uwsgi.spool does), or "" when it went
// into the ring.
//
// A task goes to a file instead of the ring when it must wait (an `at` in
// the future), when it has a `priority` (a sub-directory, as in uWSGI),
// when its lane is full, when it is bigger than a lane accepts, or when
// every lane is taken. Spool never blocks on a consumer: once it returns
// nil, the task is stored and will run.
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
	if c.ring != nil && ringable(t) {
		err := c.push(t)
		if err == nil {
			return "", nil
		}
		if !errors.Is(err, ring.ErrFull) && !errors.Is(err, ring.ErrTooLarge) && !errors.Is(err, ring.ErrNoLane) {
			return "", err
		}
		path, err := c.files.Write(t)
		if err != nil {
			return "", err
		}
		c.ring.NoteSpill()
		return path, nil
	}
	return c.files.Write(t)
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

func (c *Client) push(t *Task) error {
	bp := recordBuffers.Get().(*[]byte)
	defer recordBuffers.Put(bp)
	rec, err := record.Append((*bp)[:0], t)
	if err != nil {
		return err
	}
	*bp = rec
	p, err := c.lane()
	if err != nil {
		return err
	}
	return p.Push(rec)
}

// lane returns this client's ring producer, taking a lane on first use. When
// every lane is taken it tries again at most once a second.
func (c *Client) lane() (*ring.Producer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.producer != nil {
		return c.producer, nil
	}
	if time.Since(c.noLaneAt) < time.Second {
		return nil, ring.ErrNoLane
	}
	p, err := c.ring.Producer()
	if err != nil {
		c.noLaneAt = time.Now()
		return nil, err
	}
	c.producer = p
	return p, nil
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
		c.ring = nil
	}
	return errors.Join(errs...)
}

// NewTask builds a task from alternating keys and values; see [task.New].
func NewTask(keyValues ...string) *Task { return task.New(keyValues...) }
