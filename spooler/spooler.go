package spooler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gospool/gospool/spooler/record"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spooldir"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// Task, Pair and Result are the task model of package task, repeated here
// so that handler code needs one import.
type (
	Task   = task.Task
	Pair   = task.Pair
	Result = task.Result
)

// uWSGI's result codes.
const (
	OK     = task.OK
	Retry  = task.Retry
	Ignore = task.Ignore
)

// Special keys, as in uWSGI.
const (
	KeySpooler  = task.KeySpooler
	KeyPriority = task.KeyPriority
	KeyAt       = task.KeyAt
	KeyBody     = task.KeyBody
)

// QuarantineDir is the sub-directory of a spool directory where files that
// cannot be parsed are moved, with a log line, and so are files that stayed
// shorter than their 4-byte header for a minute (no writer takes that long).
// uWSGI deletes the former and retries the latter forever; gospool keeps
// the evidence. uWSGI never scans it (its name is not all digits).
const QuarantineDir = "gospool-quarantine"

// DeadDir is the sub-directory of a spool directory where tasks go after
// their last retry (Config.MaxRetries), each spool file beside a NAME.error
// file with the attempts and the last error. uWSGI never scans it; `gospool
// requeue` (see [Requeue]) puts tasks back.
const DeadDir = "gospool-dead"

// ErrorsDir is the sub-directory where a retried task's last error waits
// beside it, as ErrorsDir/NAME.error for the spool file NAME: outside the
// spool file, so that a uWSGI spooler running the retry sees the original
// task, and under a name uWSGI never scans.
const ErrorsDir = "gospool-errors"

// UnorderedMark is the file a spooler running without Config.Ordered
// writes in its spool directory when it starts (and a spooler with it
// removes): while such spoolers are attached to the directory's ring, the
// tasks of priority sub-directories wait for a spooler that runs them.
// Producers (`gospool spool --priority`, Python's spool()) warn, and
// `gospool ls` and `gospool stats` show those tasks as waiting (see
// [PriorityWaits]). uWSGI never reads it: its name has not uWSGI's prefix.
const UnorderedMark = "gospool.unordered"

// ErrMaxTasks is returned by Run after Config.MaxTasks tasks, so that a
// supervisor replaces the process, as uWSGI's spooler-max-tasks does.
var ErrMaxTasks = errors.New("spooler: maximum number of tasks reached")

// ErrHarakiri is the cause of a handler's context cancellation when the
// handler ran longer than Config.Harakiri (see [context.Cause]), and wraps
// the error its task is retried or buried with: "harakiri: still running
// after 2s".
var ErrHarakiri = errors.New("harakiri")

// Config configures a Spooler. Only Dir is required.
type Config struct {
	// Dir is the spool directory; it is created (mode 0750, as uWSGI does)
	// when missing.
	Dir string
	// Concurrency is how many tasks this process runs at once (default 1).
	Concurrency int
	// Frequency is the period of the safety scan of the directory
	// (uWSGI's spooler-frequency; 0 means the default, 30s). Tasks spilled
	// or retried by gospool are picked up without waiting for it. A negative
	// value turns the periodic scan off.
	Frequency time.Duration
	// RetryDelay is the wait before the first retry (default 1s); it doubles
	// on every further attempt, with ±20% jitter, up to RetryMaxDelay
	// (default 5m).
	RetryDelay, RetryMaxDelay time.Duration
	// MaxTasks makes Run return ErrMaxTasks after that many tasks (0: never).
	MaxTasks int
	// MaxRetries moves a task to DeadDir once it has failed this many
	// retries (0: retry forever, as uWSGI does). Only failures count: an
	// error, a panic, a harakiri. A handler that returns [ErrRetry] asked
	// to run again and never uses up a retry.
	MaxRetries int
	// RerunDelay is how long a task whose handler returned [ErrRetry] (a
	// @spoolforever heartbeat, say) waits before it runs again. The
	// default is Frequency, the cadence uWSGI gives such a task: uWSGI
	// keeps the file and runs it again at its next directory scan, every
	// spooler-frequency seconds, so a heartbeat tuned under uWSGI keeps its
	// period here. When the periodic scan is off, the default is
	// RetryDelay. A rerun is not a failure, so the delay does not grow and
	// has no jitter: a heartbeat keeps a steady period.
	RerunDelay time.Duration
	// Ordered also runs the tasks in numeric priority sub-directories, lower
	// numbers first, as uWSGI's --spooler-ordered does.
	Ordered bool
	// Spin is how long an idle spooler polls the ring before it sleeps on
	// the futex (default 50µs). BusyPoll never sleeps: lowest latency, one
	// CPU burnt.
	Spin     time.Duration
	BusyPoll bool
	// Quiet silences the per-task log lines, as uWSGI's spooler-quiet.
	Quiet bool
	// Logger receives the log lines (default: standard error, no prefix).
	Logger *log.Logger
	// Ring configures the ring file created in Dir.
	Ring ring.Options
	// ReleaseInterval is how often the spooler looks for records claimed by
	// dead consumer processes (default 1s).
	ReleaseInterval time.Duration
	// Harakiri bounds how long a handler may run (0: no bound), as uWSGI's
	// spooler-harakiri. A handler still running after it has its task
	// settled at once as a failed attempt, with an error wrapping
	// [ErrHarakiri] ("harakiri: still running after 2s"): retried after the
	// usual backoff as a ".retryN" spool file, or buried in DeadDir once
	// MaxRetries is used up. Its context is cancelled with that error as
	// the cause; whatever it returns later is logged and ignored.
	//
	// Go cannot kill a goroutine. A handler that ignores its context keeps
	// running, and keeps its concurrency slot, until it returns: OnTaskEnd
	// is only called then, so a supervisor that publishes OnTaskStart and
	// OnTaskEnd sees the process busy for longer than Harakiri and must
	// kill it (uWSGI's master kills the spooler process too). Meanwhile the
	// retry may already run in another spooler, and a task buried by the
	// harakiri may be requeued: at least once, as ever.
	Harakiri time.Duration
	// OnTaskStart and OnTaskEnd, when set, are called on the goroutine that
	// runs a task: right before its handler, and right after the handler
	// returned and its task was settled, with the [Result] that was applied
	// (Retry after a harakiri, whatever the handler returned late). A
	// supervisor publishes "busy since", "current task" and "tasks done"
	// with them. They are not called for tasks that never reach a handler
	// (unreadable spool files, corrupt ring records). They run with a
	// concurrency slot held: keep them short. When both are nil they cost
	// nothing; the Info is built only for them.
	OnTaskStart func(Info)
	OnTaskEnd   func(Info, Result)
}

// Spooler runs handlers for the tasks of one spool directory: those in its
// ring and its uWSGI spool files. Register handlers, then call Run.
type Spooler struct {
	cfg      Config
	dir      string
	log      *log.Logger
	handlers map[string]HandlerFunc
	fallback HandlerFunc
	// beforeTasks: see BeforeTasks.
	beforeTasks func(ctx context.Context) error

	// Set by Run.
	ring     *ring.Ring
	cons     *ring.Consumer
	files    *spoolfile.Writer
	pending  *spooldir.Dir
	tasks    int
	ready    chan struct{}
	running  atomic.Int32 // handlers running now: Shutdown's log line
	ringHold []*os.File   // Info.Hold of ring tasks, shared (read-only)

	// What Shutdown needs of Run, under mu. runDone is nil until Run
	// starts; stopTaking ends Run's loop, cancelHandlers the handlers'
	// contexts.
	mu             sync.Mutex
	shutdown       bool
	runDone        chan struct{}
	stopTaking     context.CancelFunc
	cancelHandlers context.CancelFunc
}

// Ready is closed once Run has attached to the ring: from then on a
// [Client] of the directory hands tasks to this spooler through the ring.
func (s *Spooler) Ready() <-chan struct{} { return s.ready }

// New checks cfg and prepares a Spooler; Run starts it.
func New(cfg Config) (*Spooler, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spooler: Config.Dir is empty; name the spool directory")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("spooler: Concurrency %d: want 1 or more", cfg.Concurrency)
	}
	switch {
	case cfg.Frequency == 0:
		cfg.Frequency = 30 * time.Second
	case cfg.Frequency < 0:
		cfg.Frequency = 0 // off
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.RetryMaxDelay <= 0 {
		cfg.RetryMaxDelay = 5 * time.Minute
	}
	if cfg.RerunDelay <= 0 {
		cfg.RerunDelay = cfg.Frequency
		if cfg.RerunDelay <= 0 {
			cfg.RerunDelay = cfg.RetryDelay
		}
	}
	if cfg.Spin == 0 {
		cfg.Spin = 50 * time.Microsecond
	}
	if cfg.ReleaseInterval <= 0 {
		cfg.ReleaseInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = log.New(os.Stderr, "", 0)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spooler: spool directory %s: %w", cfg.Dir, err)
	}
	dir, err := filepath.EvalSymlinks(cfg.Dir)
	if err == nil {
		dir, err = filepath.Abs(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("spooler: spool directory %s: %w", cfg.Dir, err)
	}
	return &Spooler{cfg: cfg, dir: dir, log: cfg.Logger, handlers: map[string]HandlerFunc{}, ready: make(chan struct{})}, nil
}

// Dir is the spool directory, absolute with symlinks resolved.
func (s *Spooler) Dir() string { return s.dir }

// Handle registers fn for tasks whose name ([task.Task.Name]: the
// ud_spool_func key, else the task key) is name. Call before Run.
func (s *Spooler) Handle(name string, fn HandlerFunc) { s.handlers[name] = fn }

// HandleDefault registers fn for tasks no named handler takes.
func (s *Spooler) HandleDefault(fn HandlerFunc) { s.fallback = fn }

// BeforeTasks registers fn to run once in Run, after the spooler has
// attached to the ring (so producers already hand their tasks to it) and
// before it takes its first task: the place for slow preparations that
// must not count toward a task's Harakiri, as uWSGI's spooler imports its
// spooler-import modules before it takes tasks. fn's context ends with a
// stop; an error it returns ends Run with that error. Call before Run.
func (s *Spooler) BeforeTasks(fn func(ctx context.Context) error) { s.beforeTasks = fn }

func (s *Spooler) handlerFor(t *Task) HandlerFunc {
	if fn, ok := s.handlers[string(t.NameBytes())]; ok {
		return fn
	}
	return s.fallback
}

func (s *Spooler) logf(format string, args ...any) {
	s.log.Printf("[spooler %s pid: %d] "+format, append([]any{s.dir, os.Getpid()}, args...)...)
}

// job is one task to run: from the ring (rec) or from a locked file (file).
type job struct {
	rec      ring.Record
	file     *spoolfile.File
	fileName string // relative to the spool directory: "5/NAME" for priority 5
	ringPath string
	attempt  int
	hold     []*os.File // see Info.Hold
	ctx      jobContext // the handler's context
	watch    *watchdog  // nil unless Config.Harakiri is set
}

// watchdog is a job's harakiri timer. The handler's return and the timer
// race to settle the task: whichever swaps settled first settles it (marks
// the ring record done, removes or renames the spool file, writes the retry)
// and the other leaves the task alone, so it is settled exactly once.
type watchdog struct {
	settled atomic.Bool
	timer   *time.Timer
	done    chan struct{} // closed when the timer's settlement is complete
	cause   error         // the harakiri error; set before done is closed
}

// name is the task's name in logs: the bare file name, as uWSGI logs it,
// or "ring:LANE:SEQ". Built on demand: the hot path never needs it.
func (j *job) name() string {
	if j.file != nil {
		return filepath.Base(j.fileName) // without the priority directory, as uWSGI's spooler_task_name
	}
	return j.rec.String()
}

// info describes the job for [TaskInfo].
func (j *job) info() Info {
	i := Info{Name: j.name(), Attempt: j.attempt, Hold: j.hold}
	if j.file != nil {
		i.Path = j.file.Path()
	} else {
		i.Path = j.ringPath + "#" + strings.TrimPrefix(i.Name, "ring:")
		i.Spooled = time.Now().Add(-time.Duration(ring.MonotonicNanos() - j.rec.Stamp))
	}
	return i
}

// Run serves the directory until ctx is cancelled, then lets running
// handlers see the cancellation (their tasks are retried), waits for them
// and returns nil: a quick stop. [Spooler.Shutdown] stops it gracefully
// instead. After Config.MaxTasks tasks it takes no more, lets the running
// ones finish and returns ErrMaxTasks. A Spooler runs once: Run after a
// Shutdown returns nil at once, and a second Run is an error.
func (s *Spooler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.runDone != nil {
		s.mu.Unlock()
		return errors.New("spooler: Run called a second time; a Spooler runs once, make a new one with New")
	}
	runDone := make(chan struct{})
	s.runDone = runDone
	if s.shutdown {
		s.mu.Unlock()
		close(runDone)
		return nil
	}
	// loopCtx ends the loop that takes tasks: a quick stop (ctx) or a
	// graceful one (Shutdown). handlerCtx is what handlers see: only ctx
	// and a Shutdown whose own deadline passed cancel it.
	loopCtx, stopTaking := context.WithCancel(ctx)
	handlerCtx, cancelHandlers := context.WithCancel(ctx)
	s.stopTaking, s.cancelHandlers = stopTaking, cancelHandlers
	s.mu.Unlock()
	defer close(runDone) // deferred first: runs after everything is closed
	defer stopTaking()
	defer cancelHandlers()

	ringPath := filepath.Join(s.dir, ring.FileName)
	r, err := ring.Create(ringPath, s.cfg.Ring)
	if _, damaged := ring.Damaged(ringPath, err); damaged || errors.Is(err, syscall.ENOSPC) {
		// A full disk or a damaged ring file (the master saves what it can
		// of it and makes a new one): producers write spool files, which
		// this spooler serves on a ring of its own that nobody writes
		// into, until the ring file can be used (see the Check below).
		s.log.Printf("[spooler %s] %v; serving spool files only until the ring file can be used", s.dir, err)
		r, err = ring.NewPrivate(ringPath, s.cfg.Ring)
	}
	if err != nil {
		return fmt.Errorf("spooler: %w", err)
	}
	defer r.Close()
	// Before attaching: a producer that sees this spooler attached sees
	// what it runs too.
	s.markOrdered()
	cons, err := r.Consumer()
	if err != nil {
		return fmt.Errorf("spooler: %s: %w (stop a spooler, or create the ring with more consumers)", r.Path(), err)
	}
	defer cons.Close()
	files, err := spoolfile.NewWriter(s.dir, spoolfile.WriterOptions{Sync: s.cfg.Ring.Sync})
	if err != nil {
		return fmt.Errorf("spooler: %w", err)
	}
	s.ring, s.cons, s.files = r, cons, files
	s.ringHold = []*os.File{r.File()} // every ring task's Info.Hold
	close(s.ready)

	stopWaker := context.AfterFunc(loopCtx, r.WakeAll)
	defer stopWaker()

	// The pending spool files, kept current by inotify; a full scan at
	// start and every Frequency is the safety net.
	// Ten minutes: no writer takes that long between creating its
	// temporary file and linking it into place.
	s.pending = spooldir.New(s.dir, spooldir.Options{Ordered: s.cfg.Ordered, RemoveAbandoned: 10 * time.Minute})
	var needScan atomic.Bool
	needScan.Store(true)
	watcher, err := s.pending.Watch(r.WakeAll, func() { needScan.Store(true); r.WakeAll() })
	if err != nil {
		s.log.Printf("[spooler %s] %v; new spool files are seen at the next scan only", s.dir, err)
	} else {
		defer watcher.Close()
	}

	if s.beforeTasks != nil {
		// Attached to the ring (producers use it) and watching the
		// directory, but taking no task until the handlers are ready.
		if err := s.beforeTasks(loopCtx); err != nil && loopCtx.Err() == nil {
			return fmt.Errorf("spooler %s: before the first task: %w", s.dir, err)
		}
	}

	var (
		sem     = make(chan struct{}, s.cfg.Concurrency)
		wg      sync.WaitGroup
		scanAt  = time.Now() // next periodic scan
		release = time.Now().Add(s.cfg.ReleaseInterval)
		stopErr error
	)
	dispatch := func(j job) {
		s.running.Add(1)
		if s.cfg.Concurrency == 1 {
			s.run(handlerCtx, &j)
			s.running.Add(-1)
			<-sem
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(handlerCtx, &j)
			s.running.Add(-1)
			<-sem
		}()
	}
	// A stop makes it true before it wakes the ring (stopWaker), so a stop
	// that lands while the loop is about to sleep is never missed.
	wakeFor := func() bool {
		return needScan.Load() || s.pending.HasDue(time.Now()) || loopCtx.Err() != nil
	}
	var (
		now       time.Time
		clockIn   int // tasks until the clock is read again (see clockEvery)
		sinceFile int // ring tasks taken since a due file last had its turn
	)
	for loopCtx.Err() == nil && stopErr == nil {
		if clockIn--; clockIn <= 0 {
			now, clockIn = time.Now(), clockEvery
		}
		if now.After(release) {
			if n := cons.ReleaseDead(); n > 0 {
				s.log.Printf("[spooler %s] %d task(s) of a dead spooler process put back in the ring", s.dir, n)
			}
			release = now.Add(s.cfg.ReleaseInterval)
			// The ring file removed, replaced or cut short under us: run
			// what is still ready in it, then stop, so that the process
			// starts again on the directory's ring (the master moves what
			// producers publish into the old file meanwhile).
			if err := r.Check(); err != nil && !cons.Peek() {
				s.log.Printf("[spooler %s pid: %d] %v; stopping, to start again on the directory's ring", s.dir, os.Getpid(), err)
				stopErr = err
				break
			}
		}
		if s.cfg.Frequency > 0 && !now.Before(scanAt) {
			needScan.Store(true)
			scanAt = now.Add(s.cfg.Frequency)
		}
		if cons.FileSeqChanged() && watcher == nil {
			needScan.Store(true) // without inotify, a spill note is all we hear
		}
		if needScan.Swap(false) {
			if err := s.pending.Scan(); err != nil {
				s.log.Printf("[spooler %s] %v", s.dir, err)
			}
		}

		if s.cfg.MaxTasks > 0 && s.tasks >= s.cfg.MaxTasks {
			s.log.Printf("[spooler %s pid: %d] maximum number of tasks reached (%d) recycling ...", s.dir, os.Getpid(), s.tasks)
			stopErr = ErrMaxTasks
			break
		}
		// Wait for a free slot, then take work: ring records first (the hot
		// path), then due files.
		select {
		case sem <- struct{}{}:
		case <-loopCtx.Done():
			continue
		}
		if loopCtx.Err() != nil { // stopped while we waited for the slot
			<-sem
			break
		}
		// Ring records first (the hot path), but a due file gets its turn
		// at least every filesTurn tasks: retries, `at` tasks and spilled
		// tasks must not wait for a busy ring to run dry.
		var j job
		ok := false
		if sinceFile >= filesTurn {
			j, ok = s.nextFile()
			sinceFile = 0
		}
		if !ok {
			if j, ok = s.claim(); ok {
				sinceFile++
			}
		}
		if !ok {
			j, ok = s.nextFile()
			sinceFile = 0
		}
		if ok {
			s.tasks++
			dispatch(j)
			continue
		}
		<-sem
		clockIn = 0 // about to wait: the timers below need the time now
		wait := min(time.Until(release), time.Second)
		if s.cfg.Frequency > 0 {
			wait = min(wait, time.Until(scanAt))
		}
		if at := s.pending.NextAt(); !at.IsZero() {
			wait = min(wait, time.Until(at))
		}
		if wait > 0 {
			spin := s.cfg.Spin
			if s.cfg.BusyPoll {
				spin = wait
			}
			cons.Wait(wait, spin, wakeFor)
		}
	}
	if ctx.Err() != nil {
		cancelHandlers() // quick stop: handlers see it at once, their tasks retry
	} else if n := len(sem); n > 0 {
		s.log.Printf("[spooler %s pid: %d] stopping: waiting for %d running task(s) to finish", s.dir, os.Getpid(), n)
	}
	wg.Wait()
	return stopErr
}

// markOrdered writes or removes UnorderedMark according to Config.Ordered.
// The last spooler to start wins: one directory's spoolers share one
// configuration (a master gives all of them its own).
func (s *Spooler) markOrdered() {
	path := filepath.Join(s.dir, UnorderedMark)
	if s.cfg.Ordered {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Printf("[spooler %s] %v; gospool spool and ls may say that priority tasks wait", s.dir, err)
		}
		return
	}
	note := fmt.Sprintf("The gospool spoolers of this directory run without --spooler-ordered:\n"+
		"tasks in its numbered priority sub-directories wait for a spooler that runs them.\n"+
		"Written by spooler pid %d at %s; a spooler started with --spooler-ordered removes it.\n",
		os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	err := os.WriteFile(tmp, []byte(note), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		s.log.Printf("[spooler %s] writing %s: %v; gospool spool and ls cannot tell that priority tasks wait", s.dir, path, err)
	}
}

// Shutdown stops Run gracefully, as http.Server.Shutdown does: Run takes no
// new task from now on, and its running handlers carry on. When they have
// all returned, Run returns nil and so does Shutdown. If ctx is done first,
// the handlers' contexts are cancelled (their tasks are retried, as when
// Run's own context is cancelled), Shutdown waits for Run to return and
// returns ctx.Err(); a handler that ignores its context keeps both waiting
// (see Config.Harakiri).
//
// Shutdown may be called before Run (Run then returns nil at once, and
// Ready is never closed), after Run returned (it returns nil), and more
// than once, from any goroutine.
func (s *Spooler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	done, stopTaking, cancelHandlers := s.runDone, s.stopTaking, s.cancelHandlers
	s.mu.Unlock()
	if done == nil {
		return nil // Run has not started; it will return at once
	}
	if stopTaking != nil {
		stopTaking()
	}
	select {
	case <-done:
		return nil
	default:
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	if cancelHandlers != nil {
		if n := s.running.Load(); n > 0 {
			s.log.Printf("[spooler %s pid: %d] shutdown cut short (%v) with %d task(s) still running: cancelling them, they will be retried", s.dir, os.Getpid(), context.Cause(ctx), n)
		}
		cancelHandlers()
	}
	<-done
	return ctx.Err()
}

// claim takes the next ring record, logging and skipping damaged ones.
func (s *Spooler) claim() (job, bool) {
	for {
		rec, ok, err := s.cons.Claim()
		if err != nil {
			s.log.Printf("[spooler %s] %v", s.dir, err)
			continue
		}
		return job{rec: rec}, ok
	}
}

// nextFile locks the next due spool file that nobody else runs.
func (s *Spooler) nextFile() (job, bool) {
	for {
		e, ok := s.pending.Next(time.Now())
		if !ok {
			return job{}, false
		}
		f, err := spoolfile.Open(e.Path(s.dir))
		switch {
		case err == nil:
			if _, terr := f.Task(); errors.Is(terr, spoolfile.ErrShortHeader) {
				if age := time.Since(f.ModTime()); age > shortFileGrace {
					// Nobody is writing it: junk, kept as evidence.
					s.quarantine(&job{file: f, fileName: e.Name},
						fmt.Errorf("%s: shorter than the 4-byte spool file header for %v, so nobody is writing it", f.Path(), age.Round(time.Second)))
					continue
				}
				// We locked it between its writer's create and lock (uWSGI's
				// accepted race): let the writer finish; the close of its
				// file brings it back.
				f.Close()
				continue
			}
			if f.ModTime().After(time.Now()) {
				// Re-timed since it was listed: not due yet.
				f.Close()
				s.pending.Update(e.Name)
				continue
			}
			return job{file: f, fileName: e.Name}, true
		case errors.Is(err, spoolfile.ErrLocked), errors.Is(err, fs.ErrNotExist):
			// Another spooler runs it (its close will tell us if it keeps
			// it), or ran it already.
		default:
			s.log.Printf("[spooler %s] %v", s.dir, err)
		}
	}
}

// attemptOf reads the attempt number a retried file carries in its name.
func attemptOf(name string) int {
	i := strings.LastIndex(name, retrySuffix)
	if i < 0 {
		return 1
	}
	n, err := strconv.Atoi(name[i+len(retrySuffix):])
	if err != nil || n < 1 {
		return 1
	}
	return n + 1
}

// retrySuffix ends the name of a retried spool file, followed by how many
// attempts were made. uWSGI ignores everything after its prefix, so such a
// file is an ordinary spool file to it.
const retrySuffix = ".retry"

// backoff is the wait before attempt+1, after attempt failed.
func (s *Spooler) backoff(attempt int) time.Duration {
	d := s.cfg.RetryDelay
	for i := 1; i < attempt && d < s.cfg.RetryMaxDelay; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMaxDelay)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// run executes one job and settles its task. It returns when the handler
// has returned, even when a harakiri settled the task before that.
func (s *Spooler) run(ctx context.Context, j *job) {
	var t *Task
	var err error
	if j.file != nil {
		j.attempt = attemptOf(j.fileName)
		t, err = j.file.Task()
		if err != nil {
			s.quarantine(j, err)
			return
		}
	} else {
		j.attempt = 1
		j.ringPath = s.ring.Path()
		// Copied under the ring's fault guard: a ring file cut short
		// under the spooler is an error here, not a SIGBUS.
		var payload []byte
		if payload, err = s.cons.CopyPayload(j.rec); err != nil {
			// Its bytes went with the file: nothing left to run or settle.
			s.log.Printf("[spooler %s] %s: %v; the ring file was cut short under the spooler, and the task with it", s.dir, j.name(), err)
			return
		}
		t, err = record.DecodeOwned(payload)
		if err != nil {
			s.ring.Add(ring.Corrupt, 1)
			s.log.Printf("[spooler %s] %s: %v; dropped, not run", s.dir, j.name(), err)
			_ = s.cons.Done(j.rec)
			return
		}
	}
	var start time.Time
	if !s.cfg.Quiet {
		s.logf("managing request %s ...", j.name())
		start = time.Now()
	}
	var dup *os.File
	if j.file != nil {
		// The duplicate shares the file's lock (an OFD lock belongs to the
		// open file, not the descriptor), so the lock lasts until the
		// handler returns even when a harakiri has settled the task and
		// closed the original.
		if d, err := j.file.Dup(); err == nil {
			dup = d
			j.hold = []*os.File{d}
		}
	} else {
		j.hold = s.ringHold
	}
	var info Info
	if s.cfg.OnTaskStart != nil || s.cfg.OnTaskEnd != nil {
		info = j.info()
		if s.cfg.OnTaskStart != nil {
			s.cfg.OnTaskStart(info)
		}
	}
	j.ctx = jobContext{Context: ctx, j: j} // TaskInfo's, without an allocation: j is on the heap already
	var hctx context.Context = &j.ctx
	if s.cfg.Harakiri > 0 {
		var cancel context.CancelCauseFunc
		hctx, cancel = context.WithCancelCause(hctx)
		defer cancel(nil)
		// The timer settles a copy: the handler may still change t.
		orig := t.Clone()
		j.watch = &watchdog{done: make(chan struct{})}
		j.watch.timer = time.AfterFunc(s.cfg.Harakiri, func() { s.harakiri(j, orig, cancel) })
	}
	herr := s.call(hctx, t)
	if dup != nil {
		// The handler is done with Info.Hold. The lock stays with j.file
		// until the task is settled (by us, or by the harakiri).
		dup.Close()
	}
	var res Result
	if j.watch == nil || j.watch.settled.CompareAndSwap(false, true) {
		if j.watch != nil {
			j.watch.timer.Stop()
		}
		res = s.finish(j, t, herr, start)
	} else {
		// The harakiri settled the task; wait until it is done with it.
		<-j.watch.done
		late := "OK"
		if herr != nil {
			late = herr.Error()
		}
		s.logf("task %s returned after its harakiri (%s); its result is ignored, the task was settled as failed (%v)", j.name(), late, j.watch.cause)
		res = Retry
	}
	if s.cfg.OnTaskEnd != nil {
		s.cfg.OnTaskEnd(info, res)
	}
}

// harakiri runs on the job's timer when the handler is still running after
// Config.Harakiri: unless the handler returned meanwhile, it cancels the
// handler's context and settles the task as a failed attempt.
//
// Settling now lets the retry start while a handler that ignores its
// context still runs: an overlap that uWSGI avoids by killing the process,
// which Go cannot do to a goroutine. The overlap is accepted, not fixed,
// because the alternative is worse: keeping the task unsettled until the
// handler returns would leave a handler that never returns holding its
// task forever when no supervisor kills the process (the library used
// without gospool's master). Under the master the overlap is bounded: the
// retry waits its backoff, and the master's harakiri kills the spooler
// process once OnTaskEnd stays unsent past Harakiri. Handlers must be
// idempotent anyway (delivery is at least once).
func (s *Spooler) harakiri(j *job, t *Task, cancel context.CancelCauseFunc) {
	if !j.watch.settled.CompareAndSwap(false, true) {
		return // the handler returned first and settles the task itself
	}
	defer close(j.watch.done)
	cause := fmt.Errorf("%w: still running after %v", ErrHarakiri, s.cfg.Harakiri)
	j.watch.cause = cause
	s.log.Printf("[spooler %s] *** HARAKIRI ON THE SPOOLER (pid: %d) *** task %s (attempt %d) still running after %v: settled as a failed attempt, its handler's context cancelled",
		s.dir, os.Getpid(), j.name(), j.attempt, s.cfg.Harakiri)
	cancel(cause)
	s.finish(j, t, cause, time.Time{})
}

// finish settles a job's task according to its handler's error herr, and
// returns the result applied. It is called exactly once per job that ran:
// by run when the handler returns, or by harakiri.
func (s *Spooler) finish(j *job, t *Task, herr error, start time.Time) Result {
	res := ResultOf(herr)
	switch res {
	case OK:
		s.ring.Add(ring.Done, 1)
		if !s.cfg.Quiet {
			s.logf("done with task %s after %d seconds", j.name(), int(time.Since(start).Seconds()))
		}
		s.settle(j, nil, "")
	case Ignore:
		s.ring.Add(ring.Ignored, 1)
		s.logf("unable to find the spooler function for %s (task %q), have you registered a handler for it? keeping it", j.name(), t.Name())
		if j.file != nil {
			s.pending.Skip(j.fileName) // until the next full scan
			j.file.Close()
			return res
		}
		s.settle(j, t, "") // out of the ring, into a file another spooler can take
	default:
		if errors.Is(herr, ErrRetry) {
			s.rerun(j, t)
			return res
		}
		s.ring.Add(ring.Failed, 1)
		if s.cfg.MaxRetries > 0 && j.attempt > s.cfg.MaxRetries {
			s.bury(j, t, herr)
			return res
		}
		s.ring.Add(ring.Retried, 1)
		delay := s.backoff(j.attempt)
		s.logf("task %s attempt %d failed: %v; retry in %v", j.name(), j.attempt, herr, delay.Round(time.Millisecond))
		retry := t.Clone()
		s.settleRetry(j, retry, j.attempt, time.Now().Add(delay), herr)
	}
	return res
}

// rerun reschedules a task whose handler asked to run again ([ErrRetry]):
// not a failure, so no error note, no backoff growth, and the next run is
// attempt 1 again (its name carries no ".retryN"): a heartbeat that failed
// twice last week and succeeded since is not one failure from DeadDir.
func (s *Spooler) rerun(j *job, t *Task) {
	s.ring.Add(ring.Retried, 1)
	delay := s.cfg.RerunDelay
	if !s.cfg.Quiet {
		s.logf("task %s asked to run again (SPOOL_RETRY): rescheduled in %v, not counted as a failure", j.name(), delay)
	}
	if _, err := s.files.WriteNamed(t.Clone(), time.Now().Add(delay), ""); err != nil {
		s.log.Printf("[spooler %s] cannot write the rerun of %s: %v; it will run again from where it is", s.dir, j.name(), err)
		s.giveBack(j)
		return
	}
	s.ring.NoteFile()
	s.settle(j, nil, "")
}

// call runs the handler; a panic becomes an error, logged with its stack.
func (s *Spooler) call(ctx context.Context, t *Task) (err error) {
	fn := s.handlerFor(t)
	if fn == nil {
		return ErrIgnore
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Printf("[spooler %s pid: %d] handler panicked: %v\n%s", s.dir, os.Getpid(), p, debug.Stack())
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return fn(ctx, t)
}

// settle finishes a job: a ring record is marked done, a file removed. When
// keep is non-nil the task is first written as a spool file due now.
func (s *Spooler) settle(j *job, keep *Task, suffix string) {
	if keep != nil {
		if _, err := s.files.WriteNamed(keep, time.Time{}, suffix); err != nil {
			s.log.Printf("[spooler %s] cannot write %s back as a spool file: %v; it stays in the ring", s.dir, j.name(), err)
			s.giveBack(j)
			return
		}
		s.ring.NoteFile()
	}
	if j.file != nil {
		s.cons.NoteTask()
		s.forgetError(j)
		if err := j.file.Remove(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// uWSGI's spooler exits here ("something horrible happened");
			// the task will run again, but not before the next full scan.
			s.pending.Skip(j.fileName)
			s.log.Printf("[spooler %s] %v; the task stays and runs again after the next full scan", s.dir, err)
		}
		return
	}
	if err := s.cons.Done(j.rec); err != nil {
		s.log.Printf("[spooler %s] %v", s.dir, err)
	}
}

func (s *Spooler) settleRetry(j *job, t *Task, attempt int, at time.Time, cause error) {
	// The last error is noted while the retry file is still locked, so that
	// nobody sees the retry without it.
	_, err := s.files.WriteNamedThen(t, at, retrySuffix+strconv.Itoa(attempt), func(path string) {
		s.noteError(filepath.Base(path), j, cause)
	})
	if err != nil {
		s.log.Printf("[spooler %s] cannot write the retry of %s: %v; it will run again from where it is", s.dir, j.name(), err)
		s.giveBack(j)
		return
	}
	s.ring.NoteFile()
	s.settle(j, nil, "")
}

// noteError keeps a retried task's last error in ErrorsDir, so that it
// survives restarts and `gospool ls` shows it.
func (s *Spooler) noteError(name string, j *job, cause error) {
	dir := filepath.Join(s.dir, ErrorsDir)
	note := fmt.Sprintf("task: %s\nattempts: %d\nlast error: %v\nat: %s\n", j.name(), j.attempt, cause, time.Now().UTC().Format(time.RFC3339))
	err := os.WriteFile(filepath.Join(dir, name+".error"), []byte(note), 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o750); err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".error"), []byte(note), 0o600)
		}
	}
	if err != nil {
		s.log.Printf("[spooler %s] keeping the last error of %s: %v", s.dir, name, err)
	}
}

// forgetError drops the note of a retried file that is settled.
func (s *Spooler) forgetError(j *job) {
	if j.file != nil && j.attempt > 1 {
		os.Remove(filepath.Join(s.dir, ErrorsDir, filepath.Base(j.fileName)+".error"))
	}
}

// giveBack leaves a task where it was, for another try later, when it
// could not be settled: what failed (a full disk, a permission) is seldom
// mended at once, and trying again at once would run the task again and
// again as fast as it fails. A file is not handed out again before the
// next full scan (--spooler-frequency); a ring record goes back to the
// ring after giveBackPause.
func (s *Spooler) giveBack(j *job) {
	if j.file != nil {
		s.pending.Skip(j.fileName) // its close would bring it straight back
		j.file.Close()
		return
	}
	time.Sleep(giveBackPause)
	if err := s.cons.Release(j.rec); err != nil {
		s.log.Printf("[spooler %s] %v", s.dir, err)
	}
}

// While tasks keep coming, the loop reads the clock (for its periodic
// scan and dead-consumer checks) once every clockEvery tasks, not once a
// task: perf put clock reads at about a tenth of a busy spooler's time on
// the development VM. Due files get a turn every filesTurn ring tasks.
const (
	clockEvery = 64
	filesTurn  = 64
)

// giveBackPause is how long a ring task that could not be settled waits
// before it goes back to the ring (see giveBack).
const giveBackPause = time.Second

// shortFileGrace is how long a spool file may stay shorter than its
// 4-byte header before it is taken for junk and quarantined. A writer
// (uWSGI's or ours) creates, locks and fills a file within microseconds,
// and the file's mtime is its creation time until the header is written.
const shortFileGrace = time.Minute

// quarantine moves a file that cannot be parsed out of the way, keeping it.
// If it cannot, the file stays until the next full scan tries again.
func (s *Spooler) quarantine(j *job, cause error) {
	f := j.file
	qdir := filepath.Join(s.dir, QuarantineDir)
	if err := os.MkdirAll(qdir, 0o750); err != nil {
		s.log.Printf("[spooler %s] %v; cannot create %s to move it aside: %v", s.dir, cause, qdir, err)
		s.giveBack(j)
		return
	}
	dst := filepath.Join(qdir, filepath.Base(f.Path()))
	if err := os.Rename(f.Path(), dst); err != nil {
		s.log.Printf("[spooler %s] %v; cannot move it aside: %v", s.dir, cause, err)
		s.giveBack(j)
		return
	}
	defer f.Close()
	s.ring.Add(ring.Corrupt, 1)
	s.log.Printf("[spooler %s] %v; moved to %s, not run", s.dir, cause, dst)
}

// bury moves a task that used up its retries to the dead-letter directory,
// with a NAME.error file beside it that says why.
func (s *Spooler) bury(j *job, t *Task, cause error) {
	dead := filepath.Join(s.dir, DeadDir)
	if err := os.MkdirAll(dead, 0o750); err != nil {
		s.log.Printf("[spooler %s] cannot create %s: %v; task %s stays where it is", s.dir, dead, err, j.name())
		s.giveBack(j)
		return
	}
	// The NAME.error note is written before the task appears in DeadDir, so
	// that `gospool ls` never shows a dead task without its last error.
	note := fmt.Sprintf("task: %s\nattempts: %d\nlast error: %v\ndead since: %s\n", j.name(), j.attempt, cause, time.Now().UTC().Format(time.RFC3339))
	writeNote := func(path string) {
		if err := os.WriteFile(path+".error", []byte(note), 0o600); err != nil {
			s.log.Printf("[spooler %s] %s: %v", s.dir, path+".error", err)
		}
	}
	var path string
	if j.file != nil {
		// The file itself moves, bytes untouched; our lock moves with it.
		path = filepath.Join(dead, filepath.Base(j.fileName))
		writeNote(path)
		if err := os.Rename(j.file.Path(), path); err != nil {
			s.log.Printf("[spooler %s] cannot move %s to %s: %v; it stays where it is", s.dir, j.name(), dead, err)
			os.Remove(path + ".error")
			s.giveBack(j)
			return
		}
		// Out of the spool directory, the file needs our lock no more:
		// release it now, so that `gospool requeue` can take it at once.
		// (While a handler stuck past its harakiri still runs, Info.Hold
		// keeps the lock until it returns.)
		j.file.Close()
	} else {
		// A ring task is written in a staging directory that nothing lists,
		// then renamed into DeadDir once its note is there.
		staging := filepath.Join(dead, ".new")
		os.MkdirAll(staging, 0o750)
		w, err := spoolfile.NewWriter(staging, spoolfile.WriterOptions{Sync: s.cfg.Ring.Sync})
		var tmp string
		if err == nil {
			tmp, err = w.WriteNamed(t, time.Time{}, retrySuffix+strconv.Itoa(j.attempt))
		}
		if err == nil {
			path = filepath.Join(dead, filepath.Base(tmp))
			writeNote(path)
			if err = os.Rename(tmp, path); err != nil {
				os.Remove(tmp)
				os.Remove(path + ".error")
			}
		}
		os.Remove(staging) // only when empty: another spooler may be using it
		if err != nil {
			s.log.Printf("[spooler %s] cannot write %s to %s: %v; it stays in the ring", s.dir, j.name(), dead, err)
			s.giveBack(j)
			return
		}
	}
	s.forgetError(j)
	s.ring.Add(ring.Dead, 1)
	s.logf("task %s failed %d attempts (last: %v); moved to %s", j.name(), j.attempt, cause, path)
	if j.file != nil {
		s.cons.NoteTask()
		j.file.Close()
		return
	}
	if err := s.cons.Done(j.rec); err != nil {
		s.log.Printf("[spooler %s] %v", s.dir, err)
	}
}
