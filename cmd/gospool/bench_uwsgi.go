package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/gospool/gospool/internal/bench"
	"github.com/gospool/gospool/spooler/ring"
)

// uwsgiInstallHint is how to get uWSGI 2.0 with Python 3 on Debian.
const uwsgiInstallHint = "apt-get install uwsgi-core uwsgi-plugin-python3"

// lookUWSGI finds uwsgi on PATH for --against-uwsgi.
func lookUWSGI() (string, error) {
	bin, err := exec.LookPath("uwsgi")
	if err != nil {
		return "", fmt.Errorf("--against-uwsgi needs uWSGI 2.0 with its python3 plugin on PATH (%s): %w", uwsgiInstallHint, err)
	}
	return bin, nil
}

// measureUWSGI runs the same load through uWSGI's spooler: bin with the
// configuration of bench.Session.WriteUWSGI, in a session of its own.
func measureUWSGI(ctx context.Context, a *app, bin string, o bench.Options) (*bench.Result, error) {
	sess, err := bench.NewSession("")
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	ini, err := sess.WriteUWSGI(o)
	if err != nil {
		return nil, err
	}
	logs := &tailBuffer{}
	cmd := exec.Command(bin, "--ini", ini)
	cmd.Dir = sess.Dir
	cmd.Env = append(os.Environ(), bench.UWSGIEnv(sess.Dir, o)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	// Its own process group, so that the mules and the spooler go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("uwsgi: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		// SIGINT: uWSGI's master kills its processes at once.
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything left behind
	}()
	res, err := measureUWSGIRun(ctx, o, sess, exited)
	if err != nil {
		if last := logs.lastLines(4); last != "" {
			err = fmt.Errorf("%w; uWSGI's log: %s", err, last)
		}
		return nil, fmt.Errorf("uwsgi: %w", err)
	}
	return res, nil
}

func measureUWSGIRun(ctx context.Context, o bench.Options, sess *bench.Session, exited <-chan struct{}) (*bench.Result, error) {
	wait, stop := tickWaiter(ctx, exited, "uWSGI stopped before the measurement ended", sess.Failed)
	defer stop()
	if err := waitReady(sess, o.Producers, "the mules and the spooler", sess.UWSGIWarm, wait); err != nil {
		return nil, err
	}
	if err := sess.Start(ring.MonotonicNanos() + int64(benchStartAhead)); err != nil {
		return nil, err
	}
	// The handler reports only once it has seen every task: allow the
	// schedule's length and a stall's worth on top.
	limit := benchStallTimeout
	if o.Rate > 0 {
		limit += time.Duration(float64(o.Tasks) / o.Rate * float64(time.Second))
	}
	limit += time.Duration(o.Tasks) * 5 * time.Millisecond
	deadline := time.Now().Add(limit)
	for !sess.Complete(o.Producers) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not every task was handled within %v", limit)
		}
		if err := wait(); err != nil {
			return nil, err
		}
	}
	// uWSGI's producers are the Python producer in mules.
	py := o
	py.Python = true
	return summarize(sess, "uwsgi", py)
}

// writeRatios prints how gospool compares with uWSGI: one line, each ratio
// the better over the worse, with the direction in words.
func writeRatios(w io.Writer, g, u *bench.Result) error {
	ratio := func(name string, gv, uv float64) string {
		if gv <= 0 || uv <= 0 {
			return name + " n/a"
		}
		r := gv / uv
		word := "higher"
		if r < 1 {
			r, word = 1/r, "lower"
		}
		if r < 1.005 {
			return name + " the same"
		}
		digits := 0
		if r < 10 {
			digits = 2
		} else if r < 100 {
			digits = 1
		}
		return fmt.Sprintf("%s %.*fx %s", name, digits, r, word)
	}
	_, err := fmt.Fprintf(w, "gospool vs uwsgi: %s, %s, %s\n",
		ratio("throughput", g.Throughput, u.Throughput),
		ratio("hand-off p50", float64(g.Handoff.P50), float64(u.Handoff.P50)),
		ratio("spool call p50", float64(g.SpoolCall.P50), float64(u.SpoolCall.P50)))
	return err
}
