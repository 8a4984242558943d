package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/gospool/gospool/master/scoreboard"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/worker"
)

// watchMaster exits the process when the master is gone: the life pipe on
// fd 3 reads EOF once the master's write end is closed, which the kernel
// does when the master dies by any signal. The parent-death signal does the
// same job; this covers a master whose spawning thread went away.
func watchMaster() {
	f := os.NewFile(worker.FDLife, "life")
	go func() {
		io.Copy(io.Discard, f)
		os.Exit(1)
	}()
}

// stopSignals delivers the master's stop requests: graceful on SIGTERM and
// SIGHUP (finish what runs), quick on SIGINT and SIGQUIT.
func stopSignals() (graceful, quick <-chan struct{}) {
	g, q := make(chan struct{}), make(chan struct{})
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT)
	go func() {
		gClosed := false
		for sig := range sigs {
			switch sig {
			case syscall.SIGTERM, syscall.SIGHUP:
				if !gClosed {
					gClosed = true
					close(g)
				}
			default:
				if !gClosed {
					gClosed = true
					close(g)
				}
				close(q)
				signal.Stop(sigs)
				return
			}
		}
	}()
	return g, q
}

// runWorker is a worker process: the Go worker function with its handle.
func runWorker(ctx context.Context, cfg *Config) error {
	watchMaster()
	if cfg.Worker == nil {
		return errors.New("master: started as a worker, but Config.Worker is nil")
	}
	w, err := worker.Open()
	if err != nil {
		return err
	}
	defer w.Close()
	graceful, quick := stopSignals()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-graceful:
		case <-w.Recycle():
			cfg.Logger.Printf("...The work of process %d is done. Seeya!", os.Getpid())
		case <-ctx.Done():
			return
		}
		cancel()
	}()
	go func() {
		// SIGINT or SIGQUIT: a shutdown, not a graceful one. The worker
		// function has one second to return, then the process exits.
		<-quick
		cancel()
		time.AfterFunc(time.Second, func() { os.Exit(0) })
	}()
	err = cfg.Worker(ctx, w)
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	if err == nil {
		err = errors.New("the worker function returned before it was asked to stop")
	}
	return fmt.Errorf("worker %d: %w", w.ID(), err)
}

// runSpooler is a spooler process on the directory GOSPOOL_SPOOLER_DIR.
func runSpooler(ctx context.Context, cfg *Config) error {
	watchMaster()
	dir := os.Getenv(worker.EnvSpoolerDir)
	var sc *Spooler
	for i := range cfg.Spoolers {
		if abs, err := filepath.Abs(cfg.Spoolers[i].Dir); err == nil && sameDir(abs, dir) {
			sc = &cfg.Spoolers[i]
			break
		}
	}
	if sc == nil {
		return fmt.Errorf("master: started as the spooler of %s, which this program's Config does not have", dir)
	}
	c := sc.Config
	c.Dir = dir
	c.Logger = cfg.Logger
	if cfg.SpoolerHarakiri > 0 {
		c.Harakiri = cfg.SpoolerHarakiri
	}
	var tracker *scoreboard.Tracker
	if s := os.Getenv(worker.EnvSlot); s != "" {
		slot, err := strconv.Atoi(s)
		board, berr := scoreboard.FromFile(os.NewFile(worker.FDScoreboard, "scoreboard"))
		if err == nil && berr == nil && slot >= 0 && slot < board.Len() {
			defer board.Close()
			tracker = scoreboard.NewTracker(board.Slot(slot))
			c.OnTaskStart = func(i spooler.Info) {
				if !i.Spooled.IsZero() {
					// A ring task: its hand-off latency, publish to
					// handler start, for the master's /metrics.
					tracker.ObserveHandoff(time.Since(i.Spooled))
				}
				tracker.Start(i.Name)
			}
			c.OnTaskEnd = func(i spooler.Info, _ spooler.Result) { tracker.FinishName(i.Name) }
		} else if board != nil {
			board.Close()
		}
	}
	s, err := spooler.New(c)
	if err != nil {
		return err
	}
	if err := sc.Setup(s); err != nil {
		return fmt.Errorf("spooler %s: setup: %w", dir, err)
	}
	graceful, quick := stopSignals()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-graceful:
		case <-ctx.Done():
			return
		}
		// Graceful: running tasks finish; SIGINT (or the master's mercy
		// SIGKILL) cuts it short.
		sctx, scancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-quick:
			case <-ctx.Done():
			}
			scancel()
		}()
		s.Shutdown(sctx)
		scancel()
	}()
	go func() {
		select {
		case <-quick:
			cancel()
		case <-ctx.Done():
		}
	}()
	err = s.Run(ctx)
	if errors.Is(err, spooler.ErrMaxTasks) {
		if tracker != nil {
			tracker.SetState(scoreboard.Recycling)
		}
		return nil
	}
	return err
}

func sameDir(a, b string) bool {
	if a == b {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

func stderr() io.Writer { return os.Stderr }
