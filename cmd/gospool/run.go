package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gospool/gospool/master"
	"github.com/gospool/gospool/master/ini"
	"github.com/gospool/gospool/python"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/remote"
	"github.com/gospool/gospool/spooler/task"
)

const runSynopsis = `gospool run --spooler DIR... (--spooler-exec CMD | --spooler-import MODULE...)
                   [--spooler-python PATH] [--spooler-processes K]
                   [--workers N --worker-cmd CMD [--listen ADDR]...]
                   [--harakiri S] [--max-requests N] [--reload-mercy S]
                   [--spooler-frequency S] [--spooler-max-tasks N]
                   [--spooler-harakiri S] [--spooler-busy-poll]
                   [--spooler-concurrency N] [--spooler-ordered]
                   [--spooler-retry-delay S] [--spooler-retry-max-delay S]
                   [--spooler-max-retries N] [--spooler-quiet]
                   [--socket ADDR] [--buffer-size BYTES] [--stats ADDR] [--ini FILE]`

const runHelp = `Run a gospool master: K spooler processes on each spool directory DIR
(created when missing) and, with --workers, N worker processes running
--worker-cmd. The master respawns any child that dies, with uWSGI's log
lines, and stops them all when it stops; they die with it.

The spoolers take tasks from DIR's shared-memory ring, where workers,
"gospool spool" and gospool clients put them, and from the uWSGI spool files
in DIR, which uWSGI and gospool write; uWSGI spoolers may share DIR.

Each task runs the shell command CMD (/bin/sh -c CMD) with the task on
standard input as one line of JSON ending in a newline (--spooler-exec cat
prints each task on its own line), the object "gospool inspect --json"
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

Or the tasks run Python task functions written for uWSGI's spooler:
--spooler-import MODULE (repeatable; a module name, or a .py path) is
imported, unchanged, by Python runner processes (--spooler-python, default
python3; one per --spooler-concurrency slot, started with the spooler,
which imports before it takes a task, as uWSGI's does, and reused from task
to task) in which the modules uwsgi and uwsgidecorators are gospool's stand-ins:
@spool, @spoolforever, @spoolraw and uwsgi.spooler = f work as under
uWSGI, with uWSGI's return codes. A task that raises, or a runner that
dies, is retried with backoff; one that asks to run again (@spoolforever,
or returning uwsgi.SPOOL_RETRY) runs again after --spooler-frequency, as
under uWSGI, and is not counted as a failure. Tracebacks and prints go to
the spooler's log. Exactly
one of --spooler-exec and --spooler-import is needed.

Workers: --worker-cmd CMD runs as /bin/sh -c "exec CMD", N copies, each
with the listening sockets of --listen at file descriptors 5 and up and
GOSPOOL_* variables saying where the spool directories and their rings
are (GOSPOOL_LISTEN_FDS, GOSPOOL_SPOOLER_DIRS, GOSPOOL_ID...; the full
list is in the README and in worker/env.go).

Signals to the master:
  SIGHUP           graceful reload: new children start, the old ones finish
                   their requests and tasks; the listeners never close
  SIGTERM          graceful shutdown: children finish what they run; exit 0
  SIGINT, SIGQUIT  shutdown: running tasks are stopped and retried later
  a second one     during a shutdown: every child is killed now
A child still alive --reload-mercy seconds after being asked to stop is
killed.

--socket ADDR accepts uWSGI remote spool packets (modifier1 17) in the
master; it is not the workers' socket (that is --listen).

--stats ADDR (host:port, or a unix socket path) serves the master's stats
over HTTP: GET /stats (or /) is uWSGI's stats server document (pid,
workers, spoolers with dir, pid, tasks, respawns, running) plus a
"gospool" object with each directory's ring counters, spool files and
hand-off latency, and the processes; GET /metrics is the same in
Prometheus's text format (gospool_tasks_done_total{dir="..."}...). A
client that connects and only reads gets the document as raw JSON, as
from uWSGI's stats socket (uwsgitop). "gospool stats" needs no server.

--ini FILE reads a uWSGI ini file's [uwsgi] section (FILE:SECTION for
another): spooler, spooler-import (unless --spooler-exec is given),
spooler-processes, spooler-frequency, spooler-ordered, spooler-quiet,
spooler-max-tasks, spooler-harakiri, processes/workers, harakiri,
max-requests, reload-mercy, socket and http-socket (as --listen),
buffer-size, stats, master and die-on-term (always on here). Flags win.
Any other option is warned about once, with "did you mean" when it is one
or two typos away from a known one. A bad value, or a line gospool cannot
read, stops the run (exit status 2) with one line per mistake in the file,
each naming its file and line.`

// notYet are contract flags of `gospool run` that this release refuses.
var notYet = []string{}

// runOptions are what the command line and the ini file say.
type runOptions struct {
	dirs, listen    listValue
	execCmd         string
	imports         listValue // --spooler-import: Python modules
	python          string    // --spooler-python
	workerCmd       string
	workers         int
	processes       int
	cfg             spooler.Config
	spoolerHarakiri time.Duration
	harakiri        time.Duration
	maxRequests     int
	reloadMercy     time.Duration
	socketAddr      string
	bufferSize      int
	statsAddr       string // --stats
}

func cmdRun(ctx context.Context, a *app, args []string) error {
	flags := newFlagSet("run", runSynopsis, runHelp)
	var o runOptions
	flags.Var(&o.dirs, "spooler", "serve the spool directory `DIR` (created when missing; repeat for several)")
	flags.StringVar(&o.execCmd, "spooler-exec", "", "the shell `CMD` run once per task, the task as JSON on its stdin")
	o.cfg.Frequency = 30 * time.Second
	flags.Var(secondsValue{&o.cfg.Frequency}, "spooler-frequency", "scan DIR for due spool files every `S` seconds (0: never; new tasks are seen at once anyway)")
	flags.Var(intValue{&o.cfg.MaxTasks, 0}, "spooler-max-tasks", "recycle a spooler process after `N` tasks (0: never)")
	flags.Var(secondsValue{&o.spoolerHarakiri}, "spooler-harakiri", "kill a task's command after `S` seconds and retry the task later (0: never)")
	flags.BoolVar(&o.cfg.BusyPoll, "spooler-busy-poll", false, "poll the ring instead of sleeping when idle: lowest latency, one CPU burnt per spooler")
	o.processes = 1
	flags.Var(intValue{&o.processes, 1}, "spooler-processes", "run `K` spooler processes on each DIR")
	o.cfg.Concurrency = 1
	flags.Var(intValue{&o.cfg.Concurrency, 1}, "spooler-concurrency", "run `N` tasks at once in each spooler process")
	flags.Var(secondsValue{&o.cfg.RetryDelay}, "spooler-retry-delay", "wait `S` seconds before the first retry (0: the default, 1)")
	flags.Var(secondsValue{&o.cfg.RetryMaxDelay}, "spooler-retry-max-delay", "retry delays double up to `S` seconds (0: the default, 300)")
	flags.BoolVar(&o.cfg.Quiet, "spooler-quiet", false, "do not log a line per task")
	iniFile := flags.String("ini", "", "read the options of the uWSGI ini `FILE` (FILE:SECTION for another section than [uwsgi]); flags given here win")
	flags.Var(intValue{&o.workers, 0}, "workers", "start `N` worker processes running --worker-cmd")
	flags.StringVar(&o.workerCmd, "worker-cmd", "", "the workers' shell command `CMD`, run as /bin/sh -c \"exec CMD\"")
	flags.Var(&o.listen, "listen", "listen on `ADDR` (host:port, or a unix socket path) and pass the socket to every worker; repeatable")
	flags.Var(secondsValue{&o.harakiri}, "harakiri", "kill a worker busy on one request for more than `S` seconds (workers that report their requests)")
	flags.Var(intValue{&o.maxRequests, 0}, "max-requests", "recycle a worker after `N` requests (workers that report their requests)")
	flags.Var(secondsValue{&o.reloadMercy}, "reload-mercy", "kill a child still alive `S` seconds after it was asked to stop (default 60)")
	flags.Var(&o.imports, "spooler-import", "run the tasks with the Python task functions (uwsgi, uwsgidecorators) of `MODULE`; repeatable")
	flags.StringVar(&o.python, "spooler-python", "python3", "the Python interpreter `PATH` of --spooler-import")
	flags.BoolVar(&o.cfg.Ordered, "spooler-ordered", false, "also run the tasks of numeric priority sub-directories DIR/P/, lower P first, as uWSGI does")
	flags.Var(intValue{&o.cfg.MaxRetries, 0}, "spooler-max-retries", "move a task to DIR/gospool-dead/ after `N` failed retries (0: retry forever, as uWSGI)")
	flags.StringVar(&o.socketAddr, "socket", "", "accept uWSGI remote spool packets (modifier1 17) on `ADDR`: host:port, or a unix socket path")
	o.bufferSize = remote.DefaultMaxPacket
	flags.Var(intValue{&o.bufferSize, 1}, "buffer-size", "the largest remote spool packet accepted, in `BYTES` (uWSGI's buffer-size)")
	flags.StringVar(&o.statsAddr, "stats", "", "serve the master's stats on `ADDR` (host:port, or a unix socket path): JSON at /stats, Prometheus at /metrics")

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
	// Warnings about the ini are printed by the master only, not again by
	// each child that parses the same command line.
	warnings := a.stderr
	if master.IsChild() {
		warnings = io.Discard
	}
	if *iniFile != "" {
		if err := applyIni(warnings, flags, *iniFile, &o); err != nil {
			return err
		}
	}
	switch {
	case len(o.dirs) == 0:
		return usageErrorf("missing --spooler DIR: name the spool directory to serve")
	case o.execCmd == "" && len(o.imports) == 0:
		return usageErrorf("nothing to run the tasks: give --spooler-exec CMD or --spooler-import MODULE")
	case o.execCmd != "" && len(o.imports) > 0:
		return usageErrorf("--spooler-exec and --spooler-import: give one of them, not both")
	case slices.Contains(o.imports, ""):
		return usageErrorf("--spooler-import is empty: name a Python module")
	case o.workers > 0 && o.workerCmd == "":
		return usageErrorf("--workers %d: give --worker-cmd CMD, the command each worker runs (a Go service embeds the master instead: see package master)", o.workers)
	case o.workerCmd != "" && o.workers == 0:
		return usageErrorf("--worker-cmd: give --workers N, how many copies to run")
	case len(o.listen) > 0 && o.workers == 0:
		return usageErrorf("--listen: there are no workers to serve it; give --workers N --worker-cmd CMD")
	}
	for _, d := range o.dirs {
		if d == "" {
			return usageErrorf("--spooler is empty: name the spool directory to serve")
		}
	}

	if len(o.imports) > 0 && !master.IsChild() {
		if _, err := exec.LookPath(o.python); err != nil {
			return fmt.Errorf("--spooler-import needs a Python interpreter: %w (see --spooler-python)", err)
		}
	}

	logger := log.New(a.stderr, "", 0)
	if o.cfg.Frequency == 0 {
		o.cfg.Frequency = -1 // spooler.Config: negative turns the periodic scan off
	}
	mcfg := master.Config{
		Workers:     o.workers,
		WorkerCmd:   o.workerCmd,
		Listen:      o.listen,
		Harakiri:    o.harakiri,
		MaxRequests: o.maxRequests,
		ReloadMercy: o.reloadMercy,
		Logger:      logger,
		Stdout:      a.stdout,
		Stderr:      a.stderr,
		StatsAddr:   o.statsAddr,
	}
	if o.spoolerHarakiri > 0 {
		// The command is killed at S by its handler, as uWSGI does; the
		// spooler's own watchdog and the master's kill are the backstops
		// for a spooler that is stuck beyond its command.
		mcfg.SpoolerHarakiri = o.spoolerHarakiri + time.Second
	}
	for _, d := range o.dirs {
		mcfg.Spoolers = append(mcfg.Spoolers, master.Spooler{
			Dir:       d,
			Processes: o.processes,
			Config:    o.cfg,
			Setup: func(s *spooler.Spooler) error {
				if len(o.imports) > 0 {
					pool, err := python.New(python.Config{Modules: o.imports, Python: o.python,
						Size: o.cfg.Concurrency, Harakiri: o.spoolerHarakiri, Logger: logger})
					if err != nil {
						return err
					}
					// Import first, as uWSGI's spooler does, so that the
					// imports are not part of a task's time. A failure is
					// logged; the tasks then report it and are retried.
					s.BeforeTasks(func(ctx context.Context) error {
						if err := pool.Warm(ctx); err != nil && ctx.Err() == nil {
							logger.Printf("[spooler %s pid: %d] %v", s.Dir(), os.Getpid(), err)
						}
						return nil
					})
					s.HandleDefault(pool.Handle)
					return nil
				}
				h := &execHandler{cmd: o.execCmd, dir: s.Dir(), harakiri: o.spoolerHarakiri, log: logger}
				s.HandleDefault(h.handle)
				return nil
			},
		})
	}
	if !master.IsChild() {
		for _, d := range o.dirs {
			if err := makeSpoolDir(d); err != nil {
				return err
			}
			// Before the socket: a second master names the first one's pid.
			if err := master.CheckFree(d); err != nil {
				return err
			}
		}
	}
	if o.socketAddr != "" && !master.IsChild() {
		stopServer, err := serveRemote(ctx, logger, o.socketAddr, o.bufferSize, o.dirs)
		if err != nil {
			return err
		}
		defer stopServer()
	}
	return master.Run(ctx, mcfg)
}

// makeSpoolDir creates the spool directory dir when it is missing, as
// uWSGI's spooler does, and says in the user's terms why it cannot be one.
// (The master would create it too, with a bare "mkdir: not a directory".)
func makeSpoolDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("spool directory %s is not a directory: give --spooler the directory itself, not a file in it", dir)
	case err == nil:
		return nil
	}
	err = os.MkdirAll(dir, 0o750)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOTDIR):
		// A parent is a file: "--spooler afile/spool".
		file := dir
		for p := filepath.Dir(dir); p != file; file, p = p, filepath.Dir(p) {
			if fi, err := os.Stat(p); err == nil {
				if !fi.IsDir() {
					file = p
				}
				break
			}
		}
		return fmt.Errorf("spool directory %s cannot be created: %s is a file, not a directory; give --spooler the path of a directory", dir, file)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("spool directory %s cannot be created: permission denied; create it (mkdir -p %s) as a user who may, owned by the user gospool runs as, or give --spooler another directory", dir, dir)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the message names the directory already
	}
	return fmt.Errorf("spool directory %s cannot be created: %w", dir, err)
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

// iniError is a usage error with one line per problem that ini.Load and
// ini.Parse found. Most name the file and line already; the file given to
// --ini that cannot be read is named once, as "--ini FILE".
func iniError(spec string, err error) error {
	var msgs []string      // about files: "--ini nope.ini: ...", "app.ini: no [uwsgi] section"
	var lines []*ini.Error // about lines
	var flatten func(error)
	flatten = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				flatten(e)
			}
			return
		}
		var pe *fs.PathError
		var le *ini.Error
		switch {
		case errors.As(err, &le):
			lines = append(lines, le)
			return
		case errors.As(err, &pe):
			// "ini: open app.ini: no such file or directory"
			msgs = append(msgs, fmt.Sprintf("--ini %s: %v", pe.Path, pe.Err))
			return
		}
		msgs = append(msgs, strings.TrimPrefix(err.Error(), "ini: "))
	}
	flatten(err)
	// In file order: the file given first, then the others in the order
	// their first problem was met; each by line.
	top := spec
	if i := strings.LastIndexByte(spec, ':'); i >= 0 {
		top = spec[:i] // "app.ini:section", cut as ini.Load cuts it
	}
	rank := map[string]int{top: 0}
	for _, e := range lines {
		if _, ok := rank[e.File]; !ok {
			rank[e.File] = len(rank)
		}
	}
	sort.SliceStable(lines, func(i, j int) bool {
		a, b := lines[i], lines[j]
		return rank[a.File] < rank[b.File] || rank[a.File] == rank[b.File] && a.Line < b.Line
	})
	var out []string
	for _, e := range lines {
		out = append(out, e.Error())
	}
	msgs = append(out, msgs...) // "stopped after 20 errors" last
	if len(msgs) == 0 {
		msgs = append(msgs, fmt.Sprintf("--ini %s: %v", spec, err))
	}
	return &usageError{msgs: msgs}
}

// applyIni takes the options of a uWSGI ini file that gospool run knows,
// for each flag not given on the command line, and warns once about each
// option it does not use.
func applyIni(stderr io.Writer, flags *flagSet, path string, o *runOptions) error {
	// Load goes on after a bad line and returns the others, so that Parse
	// finds the bad values among them too: every mistake in one go.
	opts, loadErr := ini.Load(path)
	c, parseErr := ini.Parse(opts)
	if err := errors.Join(loadErr, parseErr); err != nil {
		// The options that look like typos of known ones are probably
		// mistakes too: listed with the errors, in file order.
		seen := map[string]bool{}
		for _, o := range c.Unsupported {
			if hint := ini.Hint(o.Key); strings.Contains(hint, "did you mean") && !seen[o.Key] {
				seen[o.Key] = true
				err = errors.Join(err, &ini.Error{Option: o, Msg: "not used (" + hint + ")"})
			}
		}
		return iniError(path, err)
	}
	warn := func(format string, args ...any) {
		fmt.Fprintf(stderr, "gospool run: warning: "+format+"\n", args...)
	}
	unset := func(name string) bool { return !set(flags, name) }
	if unset("spooler") {
		o.dirs = append(o.dirs, c.Spoolers...)
	}
	if c.SpoolerFrequency != nil && unset("spooler-frequency") {
		o.cfg.Frequency = time.Duration(*c.SpoolerFrequency * float64(time.Second))
	}
	if c.SpoolerOrdered && unset("spooler-ordered") {
		o.cfg.Ordered = true
	}
	if c.SpoolerQuiet && unset("spooler-quiet") {
		o.cfg.Quiet = true
	}
	if c.SpoolerMaxTasks > 0 && unset("spooler-max-tasks") {
		o.cfg.MaxTasks = c.SpoolerMaxTasks
	}
	if c.SpoolerHarakiri > 0 && unset("spooler-harakiri") {
		o.spoolerHarakiri = time.Duration(c.SpoolerHarakiri) * time.Second
	}
	if c.BufferSize > 0 && unset("buffer-size") {
		o.bufferSize = c.BufferSize
	}
	if c.SpoolerProcesses > 0 && unset("spooler-processes") {
		o.processes = c.SpoolerProcesses
	}
	if c.Processes > 0 && unset("workers") {
		o.workers = c.Processes
	}
	if c.Harakiri > 0 && unset("harakiri") {
		o.harakiri = time.Duration(c.Harakiri) * time.Second
	}
	if c.MaxRequests > 0 && unset("max-requests") {
		o.maxRequests = c.MaxRequests
	}
	if c.ReloadMercy > 0 && unset("reload-mercy") {
		o.reloadMercy = time.Duration(c.ReloadMercy) * time.Second
	}
	if c.Stats != "" && unset("stats") {
		o.statsAddr = c.Stats
	}
	if unset("listen") {
		o.listen = append(o.listen, c.Sockets...)
		o.listen = append(o.listen, c.HTTPSockets...)
	}
	if o.workers > 0 && o.workerCmd == "" && unset("worker-cmd") {
		warn("%s: processes = %d: gospool runs no Python app itself; give --worker-cmd CMD to run workers, or keep uWSGI for HTTP (spooler-external) and drop processes here", path, o.workers)
		o.workers = 0
		o.listen = nil
	}
	if len(c.ExternalSpoolers) > 0 {
		warn("%s: spooler-external: not served here (uWSGI only spools into it); give it to gospool run --spooler to run its tasks", path)
	}
	if len(c.SpoolerImports) > 0 {
		switch {
		case set(flags, "spooler-import"): // the flag wins
		case set(flags, "spooler-exec"):
			warn("%s: spooler-import: not used, --spooler-exec runs the tasks", path)
		default:
			o.imports = append(o.imports, c.SpoolerImports...)
		}
	}
	if c.SpoolerChdir != "" {
		warn("%s: spooler-chdir is not supported; ignored", path)
	}
	seen := map[string]bool{}
	for _, opt := range c.Unsupported {
		if seen[opt.Key] {
			continue
		}
		seen[opt.Key] = true
		hint := ini.Hint(opt.Key)
		if hint != "" {
			hint = " (" + hint + ")"
		}
		warn("%s:%d: %s is not used by gospool run%s", opt.File, opt.Line, opt.Key, hint)
	}
	return nil
}
