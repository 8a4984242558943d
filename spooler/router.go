package spooler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Router hands tasks to several spool directories the way uwsgi.spool()
// does: to the directory named by the task's `spooler` key, else to the
// first. It is safe for concurrent use.
type Router struct {
	clients []*Client
}

// ErrUnknownSpooler is wrapped by Router.Spool when the `spooler` key names
// a directory the router does not serve.
var ErrUnknownSpooler = errors.New("unknown spooler")

// NewRouter opens a Client for each directory, in order; the first is the
// default target.
func NewRouter(dirs []string, opts ClientOptions) (*Router, error) {
	if len(dirs) == 0 {
		return nil, errors.New("spooler: a router needs at least one spool directory")
	}
	r := &Router{}
	for _, d := range dirs {
		c, err := NewClient(d, opts)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.clients = append(r.clients, c)
	}
	return r, nil
}

// Spool routes t and spools it; see [Client.Spool]. uWSGI compares the key
// byte for byte with each directory's realpath; the router also accepts a
// key that resolves to one (a symlink, a trailing slash).
func (r *Router) Spool(ctx context.Context, t *Task) (string, error) {
	c := r.clients[0]
	if target, ok := t.Spooler(); ok {
		c = r.find(target)
		if c == nil {
			return "", fmt.Errorf("spooler: %w %q: this process spools to %s", ErrUnknownSpooler, target, strings.Join(r.Dirs(), ", "))
		}
	}
	return c.Spool(ctx, t)
}

func (r *Router) find(target string) *Client {
	for _, c := range r.clients {
		if c.dir == target {
			return c
		}
	}
	if real, err := filepath.EvalSymlinks(target); err == nil {
		for _, c := range r.clients {
			if c.dir == real {
				return c
			}
		}
	}
	return nil
}

// Dirs lists the directories, resolved, in order.
func (r *Router) Dirs() []string {
	out := make([]string, len(r.clients))
	for i, c := range r.clients {
		out[i] = c.dir
	}
	return out
}

// Close closes every client.
func (r *Router) Close() error {
	var errs []error
	for _, c := range r.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
