package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gospool/gospool/master/ini"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/remote"
	"github.com/gospool/gospool/spooler/task"
)

const runSynopsis = `gospool run --spooler DIR --spooler-exec CMD [--spooler-frequency S]
                   [--spooler-max-tasks N] [--spooler-harakiri S] [--spooler-busy-poll]
                   [--spooler-concurrency N] [--spooler-retry-delay S]
                   [--spooler-retry-max-delay S] [--spooler-quiet]`

const runHelp = `Run one spooler process in the foreground on the spool directory DIR
(created when missing). It takes tasks from DIR's shared-memory ring, where
"gospool spool" and gospool clients put them, and from the uWSGI spool files
in DIR, which uWSGI and gospool write; uWSGI spoolers may share DIR.

Each task runs the shell command CMD (/bin/sh -c CMD) with the task on
standard input as one line of JSON, the object "gospool inspect --json"
prints plus "body_base64" when the task has a body, and with these
environment variables:
  GOSPOOL_TASK_NAME    the spool file's name, or ring:LANE:SEQ
  GOSPOOL_TASK_PATH    the spool file's path, or RINGFILE#LANE:SEQ
  GOSPOOL_ATTEMPT      1 on the first run, 2 on the first retry...
  GOSPOOL_SPOOLER_DIR  the spool directory, absolute
Exit status 0 means done (uWSGI's SPOOL_OK); anything else means retry
later (SPOOL_RETRY), after --spooler-retry-delay, doubling on each attempt
up to --spooler-retry-max-delay. Its standard output and error are the
spooler's.

SIGINT, SIGTERM and SIGQUIT stop the spooler: running commands get SIGTERM
(their tasks are retried later) and gospool exits with status 0. A second
signal exits at once.

Not supported yet (they exit with status 2): --ini, --workers,
--worker-cmd, --spooler-import, --spooler-ordered, --socket, --stats, more
than one --spooler, and --spooler-processes other than 1.`

// notYet are contract flags of `gospool run` that this release refuses.
var notYet = []string{"workers", "worker-cmd", "spooler-import", "stats"}

func cmdRun(ctx context.Context, a *app, args []string) error {
	flags := newFlagSet("run", runSynopsis, runHelp)
	var dirs, imports listValue
	flags.Var(&dirs, "spooler", "serve the spool directory `DIR` (created when missing; repeat for several)")
	execCmd := flags.String("spooler-exec", "", "the shell `CMD` run once per task, the task as JSON on its stdin")
	var cfg spooler.Config
	cfg.Frequency = 30 * time.Second
	flags.Var(secondsValue{&cfg.Frequency}, "spooler-frequency", "scan DIR for due spool files every `S` seconds (0: never; new tasks are seen at once anyway)")
	flags.Var(intValue{&cfg.MaxTasks, 0}, "spooler-max-tasks", "exit (status 0) after `N` tasks (0: never)")
	var harakiri time.Duration
	flags.Var(secondsValue{&harakiri}, "spooler-harakiri", "kill a task's command after `S` seconds and retry the task later (0: never)")
	flags.BoolVar(&cfg.BusyPoll, "spooler-busy-poll", false, "poll the ring instead of sleeping when idle: lowest latency, one CPU burnt")
	processes := 1
	flags.Var(intValue{&processes, 1}, "spooler-processes", "run `K` spooler processes on DIR (only 1 until the master comes)")
	cfg.Concurrency = 1
	flags.Var(intValue{&cfg.Concurrency, 1}, "spooler-concurrency", "run `N` tasks at once")
	flags.Var(secondsValue{&cfg.RetryDelay}, "spooler-retry-delay", "wait `S` seconds before the first retry (0: the default, 1)")
	flags.Var(secondsValue{&cfg.RetryMaxDelay}, "spooler-retry-max-delay", "retry delays double up to `S` seconds (0: the default, 300)")
	flags.BoolVar(&cfg.Quiet, "spooler-quiet", false, "do not log a line per task")
	// The rest of the contract, listed by --help and refused for now.
	iniFile := flags.String("ini", "", "read the spooler options of the uWSGI ini `FILE` (FILE:SECTION for another section than [uwsgi]); flags given here win")
	flags.String("workers", "", "start `N` workers (not supported yet)")
	flags.String("worker-cmd", "", "the workers' command `CMD` (not supported yet)")
	flags.Var(&imports, "spooler-import", "run the Python task functions of `MODULE` (not supported yet)")
	flags.BoolVar(&cfg.Ordered, "spooler-ordered", false, "also run the tasks of numeric priority sub-directories DIR/P/, lower P first, as uWSGI does")
	flags.Var(intValue{&cfg.MaxRetries, 0}, "spooler-max-retries", "move a task to DIR/gospool-dead/ after `N` failed retries (0: retry forever, as uWSGI)")
	socketAddr := flags.String("socket", "", "accept uWSGI remote spool packets (modifier1 17) on `ADDR`: host:port, or a unix socket path")
	bufferSize := remote.DefaultMaxPacket
	flags.Var(intValue{&bufferSize, 1}, "buffer-size", "the largest remote spool packet accepted, in `BYTES` (uWSGI's buffer-size)")
	flags.String("stats", "", "serve stats on `ADDR` (not supported yet)")

	pos, err := flags.parse(a, args)
	if err != nil {
		return err
	}
	for _, name := range notYet {
		if set(flags, name) {
			return usageErrorf("--%s is not supported yet", name)
		}
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q: run takes flags only (see gospool run --help)", pos[0])
	}
	if *iniFile != "" {
		if err := applyIni(a, flags, *iniFile, &dirs, &cfg, &harakiri, &bufferSize); err != nil {
			return err
		}
	}
	switch {
	case len(dirs) == 0:
		return usageErrorf("missing --spooler DIR: name the spool directory to serve")
	case processes != 1:
		return usageErrorf("--spooler-processes %d: more than one spooler process needs the master, coming in a later release; use --spooler-concurrency N to run N tasks at once", processes)
	case *execCmd == "":
		return usageErrorf("nothing to run the tasks: give --spooler-exec CMD")
	}
	for _, d := range dirs {
		if d == "" {
			return usageErrorf("--spooler is empty: name the spool directory to serve")
		}
	}

	logger := log.New(a.stderr, "", 0)
	if cfg.Frequency == 0 {
		cfg.Frequency = -1 // spooler.Config: negative turns the periodic scan off
	}
	cfg.Logger = logger
	var spoolers []*spooler.Spooler
	for _, d := range dirs {
		c := cfg
		c.Dir = d
		s, err := spooler.New(c)
		if err != nil {
			return err
		}
		h := &execHandler{cmd: *execCmd, dir: s.Dir(), harakiri: harakiri, log: logger}
		s.HandleDefault(h.handle)
		spoolers = append(spoolers, s)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopSignals := onSignals(logger, strings.Join(dirs, ", "), cancel)
	defer stopSignals()

	// One spooler per directory, as uWSGI runs one per `spooler` option; the
	// first to fail stops the others.
	errs := make(chan error, len(spoolers))
	for _, s := range spoolers {
		go func() {
			err := s.Run(ctx)
			if errors.Is(err, spooler.ErrMaxTasks) {
				logger.Printf("the gospool spooler on dir %s (pid: %d) ran its %d tasks (--spooler-max-tasks); exiting, as there is no master yet to start a new one", s.Dir(), os.Getpid(), cfg.MaxTasks)
				err = nil
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", s.Dir(), err)
			}
			errs <- err
			cancel()
		}()
		select {
		case <-s.Ready():
			logger.Printf("spawned the gospool spooler on dir %s with pid %d", s.Dir(), os.Getpid())
		case err := <-errs:
			errs <- err
		}
	}
	if *socketAddr != "" {
		stopServer, err := serveRemote(ctx, logger, *socketAddr, bufferSize, dirs)
		if err != nil {
			cancel()
			for range spoolers {
				<-errs
			}
			return err
		}
		defer stopServer()
	}
	var firstErr error
	for range spoolers {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return firstErr
	}
	for _, s := range spoolers {
		logger.Printf("the gospool spooler on dir %s (pid: %d) stopped", s.Dir(), os.Getpid())
	}
	return nil
}

// onSignals cancels the spooler on SIGINT, SIGTERM or SIGQUIT; a second
// signal exits at once (tasks still running are run again later: their
// spool files are unlocked and their ring records released by the next
// spooler). The returned func stops listening.
func onSignals(logger *log.Logger, dir string, cancel func()) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			logger.Printf("got %s: stopping the gospool spooler on dir %s (pid: %d) once its running tasks have stopped", sigName(sig), dir, os.Getpid())
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			logger.Printf("got %s again: exiting now (pid: %d); running tasks will run again", sigName(sig), os.Getpid())
			os.Exit(1)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

func sigName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	}
	return sig.String()
}

// secondsValue is a duration flag written in seconds, as uWSGI's options
// are: "30", "0.05". Negative values are refused.
type secondsValue struct{ d *time.Duration }

func (v secondsValue) String() string {
	if v.d == nil || *v.d == 0 {
		return "0"
	}
	return strconv.FormatFloat(v.d.Seconds(), 'f', -1, 64)
}

func (v secondsValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		return fmt.Errorf("want seconds, such as 30 or 0.5")
	case f < 0:
		return fmt.Errorf("want 0 or more seconds")
	case f > math.MaxInt64/float64(time.Second):
		return fmt.Errorf("too many seconds")
	}
	*v.d = time.Duration(f * float64(time.Second))
	return nil
}

// serveRemote accepts uWSGI's remote spool packets on addr and spools each
// task to the directory its `spooler` key names (the first by default), as
// a uWSGI instance does. It returns a func that stops the server and waits.
func serveRemote(ctx context.Context, logger *log.Logger, addr string, maxPacket int, dirs []string) (stop func(), err error) {
	router, err := spooler.NewRouter(dirs, spooler.ClientOptions{})
	if err != nil {
		return nil, err
	}
	l, err := remote.Listen(addr)
	if err != nil {
		router.Close()
		return nil, fmt.Errorf("--socket %s: %w", addr, err)
	}
	srv := &remote.Server{
		Spool:     func(ctx context.Context, t *task.Task) error { _, err := router.Spool(ctx, t); return err },
		MaxPacket: maxPacket,
		Logger:    logger,
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, l); err != nil {
			logger.Printf("--socket %s: %v", addr, err)
		}
	}()
	logger.Printf("gospool accepts remote spool requests on %s (pid: %d)", l.Addr(), os.Getpid())
	return func() { cancel(); <-done; router.Close() }, nil
}

// applyIni takes the spooler options of a uWSGI ini file, for each flag not
// given on the command line, and warns once about each option it does not
// use.
func applyIni(a *app, flags *flagSet, path string, dirs *listValue, cfg *spooler.Config, harakiri *time.Duration, bufferSize *int) error {
	opts, err := ini.Load(path)
	if err != nil {
		return usageErrorf("--ini: %v", err)
	}
	c, err := ini.Parse(opts)
	if err != nil {
		return usageErrorf("--ini: %v", err)
	}
	warn := func(format string, args ...any) {
		fmt.Fprintf(a.stderr, "gospool run: warning: "+format+"\n", args...)
	}
	if !set(flags, "spooler") {
		*dirs = append(*dirs, c.Spoolers...)
	}
	if c.SpoolerFrequency != nil && !set(flags, "spooler-frequency") {
		cfg.Frequency = time.Duration(*c.SpoolerFrequency * float64(time.Second))
	}
	if c.SpoolerOrdered && !set(flags, "spooler-ordered") {
		cfg.Ordered = true
	}
	if c.SpoolerQuiet && !set(flags, "spooler-quiet") {
		cfg.Quiet = true
	}
	if c.SpoolerMaxTasks > 0 && !set(flags, "spooler-max-tasks") {
		cfg.MaxTasks = c.SpoolerMaxTasks
	}
	if c.SpoolerHarakiri > 0 && !set(flags, "spooler-harakiri") {
		*harakiri = time.Duration(c.SpoolerHarakiri) * time.Second
	}
	if c.BufferSize > 0 && !set(flags, "buffer-size") {
		*bufferSize = c.BufferSize
	}
	if c.SpoolerProcesses > 1 && !set(flags, "spooler-concurrency") {
		warn("%s: spooler-processes = %d: until the master comes, gospool runs one spooler process per directory, running %d tasks at once", path, c.SpoolerProcesses, c.SpoolerProcesses)
		cfg.Concurrency = c.SpoolerProcesses
	}
	if len(c.ExternalSpoolers) > 0 {
		warn("%s: spooler-external: not served here (uWSGI only spools into it); give it to gospool run --spooler to run its tasks", path)
	}
	if len(c.SpoolerImports) > 0 {
		warn("%s: spooler-import: Python task modules are not supported yet; tasks run with --spooler-exec", path)
	}
	if len(c.Sockets) > 0 {
		warn("%s: socket: not taken from the ini (it is uWSGI's workers' socket); give --socket to accept remote spool packets", path)
	}
	seen := map[string]bool{}
	for _, o := range c.Unsupported {
		if seen[o.Key] {
			continue
		}
		seen[o.Key] = true
		hint := ini.Hint(o.Key)
		if hint != "" {
			hint = " (" + hint + ")"
		}
		warn("%s:%d: %s is not used by gospool run%s", o.File, o.Line, o.Key, hint)
	}
	for _, k := range []struct {
		on   bool
		name string
	}{{c.Processes > 0, "processes"}, {c.Harakiri > 0, "harakiri"}, {len(c.HTTPSockets) > 0, "http-socket"},
		{c.MaxRequests > 0, "max-requests"}, {c.ReloadMercy > 0, "reload-mercy"}, {c.SpoolerChdir != "", "spooler-chdir"}} {
		if k.on {
			warn("%s: %s is for uWSGI's workers or not supported yet; ignored", path, k.name)
		}
	}
	return nil
}
