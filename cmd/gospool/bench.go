package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gospool/gospool/internal/bench"
	"github.com/gospool/gospool/master"
	"github.com/gospool/gospool/python"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/task"
	"github.com/gospool/gospool/worker"
)

const benchSynopsis = `gospool bench [--json] [--producers N] [--tasks N] [--rate R] [--python]
                     [--against-uwsgi] [--plot FILE]`

const benchHelp = `Measure how fast tasks go from producer processes to a spooler process.

It starts a gospool master on a temporary spool directory (removed at the
end) with one spooler process, whose handler does nothing but take the
time, and --producers worker processes that spool --tasks tasks in all
(Go workers, or Python ones with --python), back to back or paced at
--rate tasks per second in all. Before the measurement each producer
spools one warm-up task, and all start together.

Hand-off is from just before the spool call in the producer to the first
line of the handler, on CLOCK_MONOTONIC, into an HDR histogram. Paced, a
task the producer sent late because its earlier spool calls blocked is
measured from when it should have been sent (coordinated omission).
Spool call is the producer's call alone. Throughput is the tasks divided
by the time from the first task spooled to the last one handled.

It prints a table: hand-off p50, p90, p99, p99.9 and max, spool call p50
and p99, throughput. With --json, a list with one object per
implementation measured:
  {"impl": "gospool", "producers": N, "tasks": N, "rate": R,
   "handoff_ns": {"p50", "p90", "p99", "p999", "max"},
   "spool_call_ns": {"p50", "p99"}, "throughput_per_s": X,
   "producer_lang": "go"|"python", "measured": N, "co_delayed": N,
   "spilled": N}
"measured" is the distinct tasks the handler saw, "co_delayed" those
measured from their intended time, "spilled" those that went through
spool files because a ring lane was full (omitted when 0).

A counter of the tasks handled shows on standard error when it is a
terminal. --python needs python3 on PATH.

With --plot FILE it also draws the hand-off latency distribution of each
implementation measured into FILE, an SVG or a PNG by its extension
(.svg, .png; anything else is a usage error): an HdrHistogram percentile
plot, the percentile on a log scale of 1/(1-q) (50% to 99.99%) across,
the latency in microseconds up, one line per implementation.

With --against-uwsgi, after the gospool run it runs the same load
(producers, tasks, rate) through uWSGI 2.0's own spooler: uwsgi on PATH
(Debian: apt-get install uwsgi-core uwsgi-plugin-python3) with a
configuration it writes into a temporary directory: plugins = python3,
master, --producers mules running the Python producer with uwsgi.spool()
instead of gospool.spool, and one spooler whose Python callable records
the tasks as gospool's handler does. Its spooler-frequency is set to 1
(second) instead of uWSGI's default 30, so that its spooler rescans its
directory every second rather than every 30 s when it has gone idle; the
comparison is otherwise uWSGI's own spooler loop. Both results are printed
(impl "uwsgi" in the JSON list), and the table is followed by a line of
ratios: gospool's throughput, hand-off p50 and spool call p50 against
uWSGI's.`

// benchNotYet are contract flags of `gospool bench` that this release
// refuses.
var benchNotYet = []string{}

// The run's limits: how long the producers and the spooler may take to be
// ready, and how long the handled count may stand still.
const (
	benchReadyTimeout = 60 * time.Second
	benchStallTimeout = 30 * time.Second
	// benchStartAhead is how far ahead of the release the paced schedule
	// starts, so that every producer is awake by then.
	benchStartAhead = 2 * time.Millisecond
)

func cmdBench(ctx context.Context, a *app, args []string) error {
	flags := newFlagSet("bench", benchSynopsis, benchHelp)
	o := bench.Options{Producers: 2, Tasks: 20000}
	jsonOut := flags.Bool("json", false, "print a JSON list, one object per implementation measured")
	flags.Var(intValue{&o.Producers, 1}, "producers", "run `N` producer processes")
	flags.Var(intValue{&o.Tasks, 1}, "tasks", "send `N` tasks in all: the total across the producers")
	flags.Var(rateValue{&o.Rate}, "rate", "send `R` tasks per second in all, across the producers (0: back to back)")
	flags.BoolVar(&o.Python, "python", false, "Python producers (python3, the gospool package built into this binary) instead of Go ones")
	againstUWSGI := flags.Bool("against-uwsgi", false, "also measure uWSGI's spooler with the same load (uwsgi on PATH; spooler-frequency 1)")
	plotFile := flags.String("plot", "", "plot the hand-off latency distributions to `FILE` (.svg or .png)")
	pos, err := flags.parse(a, args)
	if err != nil {
		return err
	}
	for _, name := range benchNotYet {
		if set(flags, name) {
			return usageErrorf("--%s is not supported yet", name)
		}
	}
	var plotFormat string
	if *plotFile != "" {
		if plotFormat, err = bench.PlotFormat(*plotFile); err != nil {
			return usageErrorf("--plot: %v", err)
		}
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q: bench takes flags only (see gospool bench --help)", pos[0])
	}
	if o.Tasks < o.Producers {
		return usageErrorf("--tasks %d is fewer than --producers %d: every producer needs a task", o.Tasks, o.Producers)
	}
	if err := o.Validate(); err != nil {
		return usageErrorf("%v", err)
	}

	if master.IsChild() {
		// A process of the measured master: the spooler or a producer.
		dir := os.Getenv(bench.EnvDir)
		if dir == "" {
			return fmt.Errorf("%s is not set: this process was not started by gospool bench", bench.EnvDir)
		}
		return master.Run(ctx, benchConfig(o, dir))
	}

	var uwsgiBin string
	if *againstUWSGI {
		if uwsgiBin, err = lookUWSGI(); err != nil {
			return err
		}
	}

	var pyEnv []string
	if o.Python {
		py, err := exec.LookPath("python3")
		if err != nil {
			return fmt.Errorf("--python needs python3: %w", err)
		}
		pkg, err := python.PackageDir()
		if err != nil {
			return err
		}
		pythonPath := pkg
		if old := os.Getenv("PYTHONPATH"); old != "" {
			pythonPath += string(os.PathListSeparator) + old
		}
		pyEnv = append(bench.PythonEnv(o), envBenchPython+"="+py, "PYTHONPATH="+pythonPath)
	}
	sess, err := bench.NewSession("")
	if err != nil {
		return err
	}
	defer sess.Close()
	if o.Python {
		if _, err := sess.WritePythonProducer(); err != nil {
			return err
		}
	}
	logs := &tailBuffer{}
	cfg := benchConfig(o, sess.Dir)
	cfg.Logger = log.New(logs, "", 0)
	cfg.Stdout, cfg.Stderr = logs, logs
	cfg.Env = append([]string{bench.EnvDir + "=" + sess.Dir}, pyEnv...)

	mctx, stop := context.WithCancel(ctx)
	defer stop()
	var merr error
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		merr = master.Run(mctx, cfg)
	}()
	res, err := measure(ctx, a, o, sess, exited, logs)
	last := logs.lastLines(4) // before the shutdown's lines
	stop()                    // a graceful shutdown of the master and its children
	<-exited
	if err != nil {
		if merr != nil {
			err = fmt.Errorf("%w (master: %v)", err, merr)
		}
		if last != "" {
			err = fmt.Errorf("%w; the log: %s", err, last)
		}
		return err
	}
	results := []*bench.Result{res}
	sess.Close() // before the next run
	if *againstUWSGI {
		u, err := measureUWSGI(ctx, a, uwsgiBin, o)
		if err != nil {
			return err
		}
		results = append(results, u)
	}
	if *plotFile != "" {
		if err := writePlot(*plotFile, plotFormat, results); err != nil {
			return err
		}
	}
	if *jsonOut {
		return bench.WriteJSON(a.stdout, results)
	}
	if err := bench.WriteTable(a.stdout, results); err != nil {
		return err
	}
	if len(results) == 2 {
		return writeRatios(a.stdout, results[0], results[1])
	}
	return nil
}

// writePlot writes the results' plot to path, whole or not at all.
func writePlot(path, format string, results []*bench.Result) error {
	var b bytes.Buffer
	if err := bench.WritePlot(&b, format, results); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o666); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	return nil
}

// envBenchPython is the Python producers' interpreter, for the workers'
// command line.
const envBenchPython = "GOSPOOL_BENCH_PYTHON"

// benchConfig is the measured master, the same in every process: one
// spooler process recording the tasks, and the producers as its workers.
func benchConfig(o bench.Options, dir string) master.Config {
	cfg := master.Config{
		Workers:     o.Producers,
		ReloadMercy: 5 * time.Second,
		Spoolers: []master.Spooler{{
			Dir:       filepath.Join(dir, bench.SpoolDirName),
			Processes: 1,
			// No periodic scan: spilled tasks are seen through inotify.
			Config: spooler.Config{Quiet: true, Frequency: -1},
			Setup: func(s *spooler.Spooler) error {
				s.HandleDefault(bench.NewRecorder(dir, o.Tasks).Handle)
				return nil
			},
		}},
	}
	if o.Python {
		// Expanded by the worker's shell, so the line is the same in
		// every process.
		cfg.WorkerCmd = `exec "$` + envBenchPython + `" "$` + bench.EnvDir + `/` + bench.PythonScript + `"`
	} else {
		cfg.Worker = func(ctx context.Context, w *worker.Worker) error {
			return bench.Produce(ctx, dir, w.ID()-1, o, func(ctx context.Context, t *task.Task) error {
				_, err := w.Spool(ctx, t)
				return err
			})
		}
	}
	return cfg
}

// measure waits until the producers and the spooler are ready, starts the
// producers, waits for the reports and summarizes them. exited closes
// when the master has stopped.
func measure(ctx context.Context, a *app, o bench.Options, sess *bench.Session, exited <-chan struct{}, logs *tailBuffer) (*bench.Result, error) {
	wait, stop := tickWaiter(ctx, exited, "the master stopped before the measurement ended (interrupted?)", func() error {
		if err := sess.Failed(); err != nil {
			return err
		}
		if logs.childDied() {
			// A producer's tasks, or the spooler's records, are lost.
			return errors.New("a process of the measured master died")
		}
		return nil
	})
	defer stop()

	// Ready: every producer has spooled its warm-up task and waits, and
	// the spooler has run the warm-up tasks.
	ringPath := filepath.Join(sess.SpoolDir(), ring.FileName)
	var r *ring.Ring
	defer func() {
		if r != nil {
			r.Close()
		}
	}()
	warm := func() bool {
		if r == nil {
			r, _ = ring.Open(ringPath, ring.Options{ReadOnly: true}) // the master makes it
		}
		return r != nil && r.Stats().Done >= uint64(o.Producers)
	}
	if err := waitReady(sess, o.Producers, "the producers and the spooler", warm, wait); err != nil {
		return nil, err
	}

	if err := sess.Start(ring.MonotonicNanos() + int64(benchStartAhead)); err != nil {
		return nil, err
	}
	progress := bench.NewProgress(a.stderr, "gospool bench")
	defer progress.Clear()
	handled := func() int { return int(r.Stats().Done) - o.Producers } // less the warm-ups
	last, lastChange := -1, time.Now()
	for !sess.Complete(o.Producers) {
		if err := wait(); err != nil {
			return nil, err
		}
		n := handled()
		progress.Update(n, o.Tasks)
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > benchStallTimeout {
			return nil, fmt.Errorf("stalled: %d of %d tasks handled, none in the last %v", max(n, 0), o.Tasks, benchStallTimeout)
		}
	}
	progress.Clear()

	res, err := summarize(sess, "gospool", o)
	if err != nil {
		return nil, err
	}
	res.Spilled = int64(r.Stats().Spilled)
	return res, nil
}

// tickWaiter returns the wait of a measurement loop: it returns after
// 100 ms with check's verdict, or at once with an error when exited closes
// (saying gone) or ctx ends. Call stop when done.
func tickWaiter(ctx context.Context, exited <-chan struct{}, gone string, check func() error) (wait func() error, stop func()) {
	tick := time.NewTicker(100 * time.Millisecond)
	return func() error {
		select {
		case <-tick.C:
		case <-exited:
			return errors.New(gone)
		case <-ctx.Done():
			return ctx.Err()
		}
		return check()
	}, tick.Stop
}

// summarize reads a finished session's samples and spool-call times and
// summarizes them as impl's result.
func summarize(sess *bench.Session, impl string, o bench.Options) (*bench.Result, error) {
	samples, err := sess.Samples()
	if err != nil {
		return nil, err
	}
	calls, err := sess.Calls(o.Producers)
	if err != nil {
		return nil, err
	}
	return bench.Summarize(impl, o, samples, calls)
}

// rateValue is a rate flag: tasks per second, 0 or more.
type rateValue struct{ r *float64 }

func (v rateValue) String() string {
	if v.r == nil {
		return ""
	}
	return strconv.FormatFloat(*v.r, 'f', -1, 64)
}

func (v rateValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		return fmt.Errorf("want tasks per second, such as 200 or 0.5")
	case f < 0:
		return fmt.Errorf("want 0 (back to back) or more tasks per second")
	}
	*v.r = f
	return nil
}

// tailBuffer keeps the last 64 KiB written to it: the measured master's
// log and its children's output, shown only when the run fails. It notes
// the master's lines about a child that died.
type tailBuffer struct {
	mu   sync.Mutex
	buf  []byte
	died bool
}

const tailBufferMax = 64 << 10

// deathLines start the master's log lines about a child that died
// (package master; uWSGI's wording).
var deathLines = []string{"DAMN ! worker ", "OOOPS the spooler is no more"}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range deathLines {
		// The master's logger writes whole lines.
		if bytes.Contains(p, []byte(l)) {
			b.died = true
		}
	}
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - tailBufferMax; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// childDied reports whether the master has said that a child died.
func (b *tailBuffer) childDied() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.died
}

// lastLines returns the last n non-empty lines, joined with " | ".
func (b *tailBuffer) lastLines(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	lines := strings.Split(string(b.buf), "\n")
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			out = append([]string{l}, out...)
		}
	}
	return strings.Join(out, " | ")
}

// waitReady waits until every producer of sess has said it is ready and
// warm reports that the spooler has run the warm-up tasks, at most
// benchReadyTimeout; wait paces the loop and reports a failure of the run.
func waitReady(sess *bench.Session, producers int, who string, warm func() bool, wait func() error) error {
	ready := map[int]bool{}
	deadline := time.Now().Add(benchReadyTimeout)
	for len(ready) < producers || !warm() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s were not ready within %v (%d of %d producers ready)",
				who, benchReadyTimeout, len(ready), producers)
		}
		select {
		case k, ok := <-sess.Ready():
			if ok {
				ready[k] = true
				continue
			}
		default:
		}
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}
