package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/worker"
)

// Config says what the master runs. The same Config must be built in every
// process of the binary (the master and its re-executed children): build it
// from the command line or from constants, never from anything that differs
// between two starts of the program.
type Config struct {
	// Workers is how many worker processes to run (uWSGI's processes).
	Workers int
	// Worker is the body of a Go worker: it runs in each worker process
	// with a handle on the inherited listeners and the spool rings. ctx is
	// cancelled when the worker must stop (reload, shutdown): return after
	// finishing what is in flight. Returning at any other time is a crash
	// the master answers with a respawn, unless w.Recycle() was closed.
	Worker func(ctx context.Context, w *worker.Worker) error
	// WorkerCmd, instead of Worker, starts each worker as /bin/sh -c
	// "exec CMD" with the environment described in worker/env.go.
	WorkerCmd string
	// Listen are the addresses the master listens on and passes to every
	// worker: "host:port" (TCP) or a path with a slash (a unix socket).
	Listen []string

	// Spoolers are the spool directories and their spooler processes.
	Spoolers []Spooler

	// Harakiri kills a worker busy on one request for longer (0: never).
	// Only requests reported through worker.Worker.Begin or Handler count.
	Harakiri time.Duration
	// SpoolerHarakiri settles a task running for longer as a failed attempt
	// (it is retried), and kills its spooler process one second later if
	// the handler is still running (0: never).
	SpoolerHarakiri time.Duration
	// MaxRequests recycles a Go worker after that many requests (0: never).
	MaxRequests int
	// ReloadMercy is how long a child asked to stop may take before it is
	// SIGKILLed (default 60s, uWSGI's worker-reload-mercy).
	ReloadMercy time.Duration
	// ForkbombDelay is the pause before respawning when processes die
	// faster than one per second per process (default 2s, as uWSGI).
	ForkbombDelay time.Duration

	// Logger gets the master's lines (default: standard error, no prefix,
	// as uWSGI logs).
	Logger *log.Logger
	// Stdout and Stderr of the children (default: the master's).
	Stdout, Stderr io.Writer
	// Executable and Args re-execute this program as a child (defaults:
	// os.Executable() and os.Args[1:]).
	Executable string
	Args       []string
	// Env is added to the children's environment.
	Env []string

	// StatsAddr, when set, is where the master serves its stats over HTTP
	// (uWSGI's --stats): "host:port", or a path with a slash (a unix
	// socket). GET /stats is uWSGI's stats document plus gospool's ring
	// counters, GET /metrics the same in Prometheus's format; see package
	// master/stats. The master fails to start when it cannot listen there.
	StatsAddr string
}

// Spooler is one spool directory and the spooler processes serving it.
type Spooler struct {
	// Dir is the spool directory, created when missing.
	Dir string
	// Processes is how many spooler processes serve Dir (default 1).
	Processes int
	// Config tunes each spooler process; its Dir, Logger, Harakiri and
	// task hooks are set by the master.
	Config spooler.Config
	// Setup registers the handlers of a freshly made spooler, in the
	// spooler process. It must register at least one (Handle or
	// HandleDefault); an error stops the process, and the master respawns it.
	Setup func(s *spooler.Spooler) error
}

func (c *Config) defaults() error {
	if c.ReloadMercy <= 0 {
		c.ReloadMercy = 60 * time.Second
	}
	if c.ForkbombDelay <= 0 {
		c.ForkbombDelay = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = log.New(stderr(), "", 0)
	}
	switch {
	case c.Workers < 0:
		return fmt.Errorf("master: Workers %d: want 0 or more", c.Workers)
	case c.Workers > 0 && c.Worker == nil && c.WorkerCmd == "":
		return errors.New("master: Workers is set but there is no Worker function nor WorkerCmd to run")
	case c.Worker != nil && c.WorkerCmd != "":
		return errors.New("master: both Worker and WorkerCmd are set; choose one")
	case len(c.Spoolers) == 0:
		return errors.New("master: no spool directory; add one to Spoolers (workers hand their tasks to it)")
	case c.MaxRequests < 0:
		return fmt.Errorf("master: MaxRequests %d: want 0 or more", c.MaxRequests)
	}
	for i := range c.Spoolers {
		s := &c.Spoolers[i]
		if s.Dir == "" {
			return fmt.Errorf("master: Spoolers[%d].Dir is empty; name the spool directory", i)
		}
		if s.Processes < 0 {
			return fmt.Errorf("master: spooler %s: Processes %d: want 0 or more", s.Dir, s.Processes)
		}
		if s.Processes == 0 {
			s.Processes = 1
		}
		if s.Setup == nil {
			return fmt.Errorf("master: spooler %s has no Setup to register its handlers", s.Dir)
		}
	}
	return nil
}
