package python

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// The pipe protocol between a [Pool] and its runners (version 1), also
// described in python/gospool/runner.py. The runner reads requests on its
// fd 3 and writes replies on its fd 4; its stdin is /dev/null and its
// stdout and stderr are the spooler's, so what task functions print goes
// to the spooler's log. Integers are little-endian. One request, then
// exactly one reply, then the next request.
//
// Request (Go -> runner):
//
//	offset  size  field
//	0       4     u32  L: the number of bytes after this field
//	4       4     u32  attempt: 1 on the first run, 2 on the first retry...
//	8       2     u16  n: the length of the task name
//	10      n          the task name (spooler_task_name): the spool file's
//	                   bare name, or ring:LANE:SEQ
//	10+n    L-6-n      the task in uWSGI spool-file encoding (package
//	                   spoolfile): 0x11, u16 N, 0x00, N bytes of vars
//	                   ([u16 klen][key][u16 vlen][value]...), then the body
//	                   to the end of the frame
//
//	+-------+---------+-------+------+------+-------+------+------+------+
//	| L u32 | attempt | n u16 | name | 0x11 | N u16 | 0x00 | vars | body |
//	+-------+---------+-------+------+------+-------+------+------+------+
//
// Reply (runner -> Go):
//
//	offset  size  field
//	0       4     u32  L: the number of bytes after this field
//	4       1     u8   kind: 'R' READY, 'D' DONE, 'E' EXCEPTION, 'X' SYSEXIT
//	5       4     i32  code: READY: the protocol version; DONE: the uWSGI
//	                   result code (-2 OK, -1 RETRY, 0 IGNORE, or another
//	                   value, a retry); EXCEPTION: -1; SYSEXIT: the status
//	                   the runner exits with right after
//	9       L-5        text, UTF-8: READY: the Python version; DONE: empty
//	                   when the task returned that very int, else a note on
//	                   the unusual return value uWSGI maps to it (None,
//	                   True, an int out of C range); EXCEPTION and SYSEXIT:
//	                   the traceback
//
//	+-------+------+----------+------+
//	| L u32 | kind | code i32 | text |
//	+-------+------+----------+------+
//
// The runner sends READY once its imports are done. If an import fails it
// prints the traceback and exits with status 3 without sending it. EOF on
// its fd 3 between requests makes it exit with status 0.
const (
	ProtocolVersion = 1

	kindReady     = 'R'
	kindDone      = 'D'
	kindException = 'E'
	kindSysExit   = 'X'

	// ExitImport is the runner's exit status when a module fails to import.
	ExitImport = 3
	// ExitProtocol is its exit status when a request is malformed.
	ExitProtocol = 4

	maxReply = 16 << 20 // a traceback this long is a bug in the runner
)

// Config configures a [Pool].
type Config struct {
	// Modules are imported by each runner, in order: module names, or paths
	// of .py files (a value containing "/" or ending in ".py"), as uWSGI's
	// spooler-import.
	Modules []string
	// Python is the interpreter (default "python3", looked up in PATH when
	// a runner starts).
	Python string
	// Size is the number of runner processes, hence of tasks run at once
	// (default 1). Give the spooler's Config.Concurrency.
	Size int
	// Harakiri, when positive, kills a runner whose task runs longer and
	// retries the task, with uWSGI's "*** HARAKIRI ON THE SPOOLER" line.
	// Independently of it, a runner is killed whenever the handler's
	// context is cancelled (the spooler's own Harakiri, or a quick stop).
	Harakiri time.Duration
	// Env is the runners' environment (default os.Environ()). PYTHONPATH
	// gets the embedded package's directory first; the GOSPOOL_* variables
	// that name descriptors of the spooler process (GOSPOOL_RING_FDS,
	// GOSPOOL_LISTEN_FDS, GOSPOOL_LISTEN_ADDRS, GOSPOOL_SCOREBOARD_SLOT)
	// are removed, since the runner does not have those descriptors.
	Env []string
	// Dir is the runners' working directory (default: the current one).
	// Module names are looked up there too, as with `python3 -m`.
	Dir string
	// Stdout and Stderr receive what the runners print (default os.Stdout
	// and os.Stderr).
	Stdout, Stderr io.Writer
	// Logger receives the pool's own lines (default: standard error).
	Logger *log.Logger
}

// Errors a Pool's handler wraps; match them with errors.Is.
var (
	// ErrImport: a runner could not import the modules (its traceback is in
	// its standard error). The task is retried; for a second after such a
	// failure, tasks fail at once with it instead of starting new runners.
	ErrImport = errors.New("python: the --spooler-import modules failed to import")
	// ErrRunnerDied: the runner exited or was killed while it ran the task
	// (a crash, os._exit, sys.exit in the task, a kill from outside).
	ErrRunnerDied = errors.New("python: the runner died during the task")
	// ErrException: the task function raised; the error text holds the
	// traceback.
	ErrException = errors.New("python: the task raised an exception")
	// ErrHarakiri: the task ran longer than Config.Harakiri.
	ErrHarakiri = errors.New("python: harakiri")
	// ErrClosed: the pool is closed.
	ErrClosed = errors.New("python: the pool is closed")
)

// importFailPause is how long a failed start is reported again without
// trying to start another runner.
const importFailPause = time.Second

// Pool runs tasks in Python runner processes. Its Handle method is a
// [spooler.HandlerFunc]; it is safe for concurrent use by up to Size
// goroutines at once (more wait for a free runner).
type Pool struct {
	cfg    Config
	env    []string // without PYTHONPATH, which start adds
	slots  chan struct{}
	mu     sync.Mutex
	idle   []*proc
	live   map[*proc]struct{}
	closed bool

	failErr  error // the last failed start, for importFailPause
	failTime time.Time

	// starting counts the runners startIdle is starting; startDone is
	// closed when it drops to 0.
	starting  int
	startDone chan struct{}

	// life ends with Close; it bounds the starts of replacement runners.
	life     context.Context
	lifeDone context.CancelFunc
}

// New returns a Pool. It starts nothing: runners are started by [Pool.Warm]
// or by the first tasks that need them.
func New(cfg Config) (*Pool, error) {
	if len(cfg.Modules) == 0 {
		return nil, errors.New("python: no module to import: give at least one --spooler-import MODULE")
	}
	for _, m := range cfg.Modules {
		if m == "" {
			return nil, errors.New("python: an empty module name")
		}
	}
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	if cfg.Size <= 0 {
		cfg.Size = 1
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Logger == nil {
		cfg.Logger = log.New(os.Stderr, "", 0)
	}
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	p := &Pool{cfg: cfg, slots: make(chan struct{}, cfg.Size), live: map[*proc]struct{}{}}
	p.life, p.lifeDone = context.WithCancel(context.Background())
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GOSPOOL_RING_FDS", "GOSPOOL_LISTEN_FDS", "GOSPOOL_LISTEN_ADDRS", "GOSPOOL_SCOREBOARD_SLOT":
			continue
		}
		p.env = append(p.env, kv)
	}
	return p, nil
}

// Warm starts Size runners at once and waits until their imports are done
// (or failed), as a uWSGI spooler imports its spooler-import modules before
// it takes a task: a slow import is then not counted in the first tasks'
// time, so it cannot set off the spooler's harakiri. It returns the first
// start error (an import error: [ErrImport]); the runners that did start
// are kept, and tasks start the missing ones later.
func (p *Pool) Warm(ctx context.Context) error {
	p.mu.Lock()
	missing := max(p.cfg.Size-len(p.live)-p.starting, 0)
	for range missing {
		p.beginStart()
	}
	p.mu.Unlock()
	errs := make(chan error, missing)
	for range missing {
		go func() { errs <- p.startIdle(ctx) }()
	}
	var first error
	for range missing {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// beginStart counts a runner about to be started by startIdle, so that
// tasks wait for it instead of starting another. p.mu is held.
func (p *Pool) beginStart() {
	if p.starting == 0 {
		p.startDone = make(chan struct{})
	}
	p.starting++
}

// startIdle starts a runner and makes it idle. A runner beyond Size (a
// task started one meanwhile) is stopped instead.
// The caller has counted it in p.starting with beginStart.
func (p *Pool) startIdle(ctx context.Context) error {
	pr, err := p.start(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.starting--; p.starting == 0 {
		close(p.startDone) // wakes the tasks waiting in get
	}
	if err != nil {
		if errors.Is(err, ErrImport) {
			p.failErr, p.failTime = err, time.Now()
		}
		return err
	}
	p.failErr = nil
	if p.closed || len(p.live) >= p.cfg.Size {
		go func() { pr.stop() }()
		return nil
	}
	p.live[pr] = struct{}{}
	p.idle = append(p.idle, pr)
	return nil
}

// proc is one runner process.
type proc struct {
	cmd    *exec.Cmd
	pid    int
	req    *os.File // our end of its fd 3
	rep    *os.File // our end of its fd 4
	exited chan struct{}
	err    error // of Wait, once exited is closed
	python string
}

// Handle runs one task in a runner: it is the pool's spooler.HandlerFunc.
// The task's result is the runner's uWSGI code: -2 is nil, 0 is
// [spooler.ErrIgnore], anything else an error (a retry). A runner that
// dies, or that is killed because ctx is cancelled or Config.Harakiri
// passed, is replaced by the next task that needs one; its task is retried.
func (p *Pool) Handle(ctx context.Context, t *spooler.Task) error {
	return p.run(ctx, spooler.TaskInfo(ctx), t)
}

func (p *Pool) run(ctx context.Context, info spooler.Info, t *spooler.Task) error {
	frame, err := encodeRequest(info.Name, info.Attempt, t)
	if err != nil {
		return err
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()

	// Starting a runner (its imports) is not part of the task's time, as
	// uWSGI imports before it takes tasks; the spooler's own limits (ctx)
	// still apply.
	var pr *proc
	var kind byte
	var code int32
	var text string
	for try := 1; ; try++ {
		pr, err = p.get(ctx)
		if err != nil {
			return p.cancelled(ctx, ctx, info, err)
		}
		// The harakiri clock starts once a runner is there: starting one
		// (its imports) is not the task's time, as uWSGI imports first.
		runCtx, cancelRun := context.WithCancel(ctx)
		stopTimer := context.CancelFunc(func() {})
		if p.cfg.Harakiri > 0 {
			runCtx, stopTimer = context.WithTimeoutCause(runCtx, p.cfg.Harakiri, ErrHarakiri)
		}
		cancel := func() { stopTimer(); cancelRun() }
		kind, code, text, err = pr.roundTrip(runCtx, frame)
		if err == nil {
			cancel()
			break
		}
		p.discard(pr)
		if errors.Is(err, errNotTaken) && try < 3 {
			// It died while idle, just before this task reached it (the
			// check in get raced with its death): the task never ran, so
			// it goes to a fresh runner instead of counting as a failure.
			cancel()
			p.cfg.Logger.Printf("python: runner (pid %d) died while idle: %s", pr.pid, describeExit(pr.err))
			continue
		}
		err = p.cancelled(ctx, runCtx, info, err)
		cancel()
		return err
	}
	if kind == kindSysExit {
		// The runner exits right after this reply: wait for it, so that
		// the next task starts a new one.
		select {
		case <-pr.exited:
		case <-time.After(5 * time.Second):
			pr.kill()
		}
		p.discard(pr)
		return fmt.Errorf("%w: the task raised SystemExit: the runner (pid %d) exited with status %d, as a uWSGI spooler does; the task will be retried\n%s",
			ErrRunnerDied, pr.pid, code, strings.TrimRight(text, "\n"))
	}
	p.put(pr)
	switch kind {
	case kindException:
		return fmt.Errorf("%w (SPOOL_RETRY):\n%s", ErrException, strings.TrimRight(text, "\n"))
	case kindDone:
		return codeError(code, text)
	}
	return fmt.Errorf("python: unexpected reply kind %q", kind)
}

// codeError maps a uWSGI result code to a handler error. -1 returned as
// an int is a requested rerun ([spooler.ErrRetry]); -1 that uWSGI derives
// from something else (None, a str: note says which) and any other code
// are failed attempts.
func codeError(code int32, note string) error {
	if note != "" {
		note = " (" + note + ")"
	}
	switch task.Result(code) {
	case task.OK:
		return nil
	case task.Ignore:
		if note == "" {
			return spooler.ErrIgnore
		}
		return fmt.Errorf("%w%s", spooler.ErrIgnore, note)
	case task.Retry:
		if note == "" {
			// The task returned the int -1 itself (uwsgi.SPOOL_RETRY, or
			// @spoolforever's ud_spool_ret): it asks to run again, which is
			// not a failure and never uses up --spooler-max-retries.
			return fmt.Errorf("python: %w", spooler.ErrRetry)
		}
		// None, a str, a float...: uWSGI runs the task again, but the task
		// did not ask for it; most likely a forgotten return value, so it
		// counts as a failed attempt, which max-retries can stop.
		return fmt.Errorf("python: the task returned SPOOL_RETRY%s", note)
	}
	return fmt.Errorf("python: the task returned %d, which uWSGI treats as SPOOL_RETRY%s", code, note)
}

// cancelled turns an error seen while runCtx was cancelled into what
// happened: a harakiri, a stop of the spooler. Otherwise it returns err.
func (p *Pool) cancelled(ctx, runCtx context.Context, info spooler.Info, err error) error {
	if runCtx.Err() == nil {
		return err
	}
	if cause := context.Cause(runCtx); errors.Is(cause, ErrHarakiri) && ctx.Err() == nil {
		p.cfg.Logger.Printf("*** HARAKIRI ON THE SPOOLER (pid: %d) *** task %s ran for more than %v; its Python runner was killed and the task will be retried",
			os.Getpid(), info.Name, p.cfg.Harakiri)
		return fmt.Errorf("%w: the task ran for more than %v; its runner was killed", ErrHarakiri, p.cfg.Harakiri)
	}
	return fmt.Errorf("python: the task was stopped (%v); its runner was killed: %w", context.Cause(ctx), ctx.Err())
}

// get returns an idle runner or starts one.
func (p *Pool) get(ctx context.Context) (*proc, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for len(p.idle) > 0 {
		pr := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		select {
		case <-pr.exited:
			// Died while idle (killed from outside): forget it.
			delete(p.live, pr)
			pr.close()
			p.cfg.Logger.Printf("python: runner (pid %d) died while idle: %s", pr.pid, describeExit(pr.err))
			continue
		default:
		}
		p.mu.Unlock()
		return pr, nil
	}
	if p.failErr != nil && time.Since(p.failTime) < importFailPause {
		err := p.failErr
		p.mu.Unlock()
		return nil, err
	}
	if p.starting > 0 {
		// A runner is being started for the pool (Warm, or the replacement
		// of a dead one): wait for it rather than start one more.
		wait := p.startDone
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return p.get(ctx)
	}
	p.mu.Unlock()

	pr, err := p.start(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if errors.Is(err, ErrImport) {
			p.failErr, p.failTime = err, time.Now()
		}
		return nil, err
	}
	p.failErr = nil
	if p.closed {
		pr.kill()
		pr.close()
		return nil, ErrClosed
	}
	p.live[pr] = struct{}{}
	return pr, nil
}

// put makes pr idle again.
func (p *Pool) put(pr *proc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		delete(p.live, pr)
		pr.stop()
		return
	}
	if len(p.live) > p.cfg.Size {
		// A replacement started while this one ran a task: one too many.
		delete(p.live, pr)
		go pr.stop()
		return
	}
	p.idle = append(p.idle, pr)
}

// discard forgets a runner that is dead or being killed, and starts its
// replacement in the background, so that the next task does not wait for
// (nor have its harakiri count) the imports.
func (p *Pool) discard(pr *proc) {
	pr.kill()
	p.mu.Lock()
	delete(p.live, pr)
	replace := !p.closed
	if replace {
		p.beginStart()
	}
	p.mu.Unlock()
	pr.close()
	if replace {
		go func() {
			if err := p.startIdle(p.life); err != nil && p.life.Err() == nil {
				p.cfg.Logger.Printf("python: starting a runner to replace pid %d: %v", pr.pid, err)
			}
		}()
	}
}

// Close stops the pool: idle runners get EOF and exit (SIGKILL after a
// few seconds), and runners still running a task are killed when their
// task ends. It waits for the idle ones.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.lifeDone()
	idle := p.idle
	p.idle = nil
	for _, pr := range idle {
		delete(p.live, pr)
	}
	p.mu.Unlock()
	for _, pr := range idle {
		pr.stop()
	}
	return nil
}

// Pids returns the process ids of the live runners, idle or busy.
func (p *Pool) Pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	for pr := range p.live {
		pids = append(pids, pr.pid)
	}
	return pids
}

// start starts a runner and waits for its READY reply.
func (p *Pool) start(ctx context.Context) (*proc, error) {
	dir, err := PackageDir()
	if err != nil {
		return nil, err
	}
	pyPath := dir
	env := make([]string, 0, len(p.env)+1)
	for _, kv := range p.env {
		if v, ok := strings.CutPrefix(kv, "PYTHONPATH="); ok {
			if v != "" {
				pyPath += string(os.PathListSeparator) + v
			}
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PYTHONPATH="+pyPath)
	args := []string{"-m", "gospool.runner"}
	for _, m := range p.cfg.Modules {
		args = append(args, "--import", m)
	}

	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, err
	}
	cmd := exec.Command(p.cfg.Python, args...)
	cmd.Env = env
	cmd.Dir = p.cfg.Dir
	cmd.Stdout, cmd.Stderr = p.cfg.Stdout, p.cfg.Stderr
	cmd.ExtraFiles = []*os.File{reqR, repW} // fds 3 and 4
	// Its own process group, so that a kill reaches what the task started
	// too; SIGKILL if the thread that started it dies, i.e. with this
	// process (the thread stays locked until the runner is reaped).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr := &proc{cmd: cmd, req: reqW, rep: repR, exited: make(chan struct{}), python: p.cfg.Python}

	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		pr.err = cmd.Wait()
		close(pr.exited)
	}()
	err = <-started
	reqR.Close()
	repW.Close()
	if err != nil {
		reqW.Close()
		repR.Close()
		return nil, fmt.Errorf("python: starting %s: %w", p.cfg.Python, err)
	}
	pr.pid = cmd.Process.Pid

	type hello struct {
		kind byte
		code int32
		text string
		err  error
	}
	got := make(chan hello, 1)
	go func() {
		k, c, t, err := readReply(pr.rep)
		got <- hello{k, c, t, err}
	}()
	var h hello
	select {
	case h = <-got:
	case <-ctx.Done():
		pr.kill()
		<-got
		pr.close()
		return nil, ctx.Err()
	}
	if h.err == nil && h.kind == kindReady && h.code == ProtocolVersion {
		return pr, nil
	}
	pr.kill() // whatever it is, it is not a runner we can use
	<-pr.exited
	pr.close()
	if h.err != nil {
		var ee *exec.ExitError
		if errors.As(pr.err, &ee) && ee.ExitCode() == ExitImport {
			return nil, fmt.Errorf("%w (%s -m gospool.runner exited with status %d; its traceback is above in the log): %s",
				ErrImport, p.cfg.Python, ExitImport, strings.Join(p.cfg.Modules, ", "))
		}
		return nil, fmt.Errorf("python: the runner (%s -m gospool.runner, pid %d) did not start: %s",
			p.cfg.Python, pr.pid, describeExit(pr.err))
	}
	return nil, fmt.Errorf("python: the runner (pid %d) answered %q %d %q instead of READY %d: is the embedded gospool package shadowed?",
		pr.pid, h.kind, h.code, h.text, ProtocolVersion)
}

// roundTrip sends a request and reads its reply. If ctx ends first, the
// runner is killed.
func (pr *proc) roundTrip(ctx context.Context, frame []byte) (kind byte, code int32, text string, err error) {
	type result struct {
		kind byte
		code int32
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		if _, err := pr.req.Write(frame); err != nil {
			done <- result{err: fmt.Errorf("%w: %w", errNotTaken, err)}
			return
		}
		k, c, t, err := readReply(pr.rep)
		done <- result{k, c, t, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		pr.kill()
		<-done
		return 0, 0, "", ctx.Err()
	}
	if r.err == nil {
		return r.kind, r.code, r.text, nil
	}
	// EOF or EPIPE: the runner is gone, or going.
	select {
	case <-pr.exited:
	case <-time.After(5 * time.Second):
		pr.kill()
		<-pr.exited
	}
	if errors.Is(r.err, errNotTaken) {
		return 0, 0, "", r.err
	}
	return 0, 0, "", fmt.Errorf("%w: the runner (pid %d) %s; the task will be retried", ErrRunnerDied, pr.pid, describeExit(pr.err))
}

// errNotTaken: the request could not even be written, the runner was gone
// before the task reached it (the pipe has no reader: EPIPE).
var errNotTaken = errors.New("python: the runner was gone before it took the task")

// kill sends SIGKILL to the runner's process group: the runner and what
// its task started. Once the runner is reaped its pid may be reused, but
// not as a process group id while a member of its group lives, and only
// the group is signalled.
func (pr *proc) kill() {
	syscall.Kill(-pr.pid, syscall.SIGKILL)
}

// stop closes the request pipe (the runner exits at EOF) and kills the
// runner if it is still there a few seconds later.
func (pr *proc) stop() {
	pr.req.Close()
	select {
	case <-pr.exited:
	case <-time.After(5 * time.Second):
		pr.kill()
		<-pr.exited
	}
	pr.close()
}

func (pr *proc) close() {
	pr.req.Close()
	pr.rep.Close()
}

// describeExit says how a runner ended, from its Wait error.
func describeExit(err error) string {
	if err == nil {
		return "exited with status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("was killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	return err.Error()
}

// encodeRequest builds a request frame.
func encodeRequest(name string, attempt int, t *task.Task) ([]byte, error) {
	if len(name) > 0xffff {
		return nil, fmt.Errorf("python: task name of %d bytes", len(name))
	}
	enc, err := spoolfile.Encode(t)
	if err != nil {
		// Only a ring task can be over the spool file's limits (a value of
		// 64 KiB or more): uWSGI could not have stored it either.
		return nil, fmt.Errorf("python: the task does not fit uWSGI's spool file format, which the Python runner takes: %w", err)
	}
	n := 6 + len(name) + len(enc)
	if uint64(n) > 0xffffffff {
		return nil, fmt.Errorf("python: task of %d bytes is too big for the runner protocol", n)
	}
	frame := make([]byte, 0, 4+n)
	frame = binary.LittleEndian.AppendUint32(frame, uint32(n))
	if attempt < 0 {
		attempt = 0
	}
	frame = binary.LittleEndian.AppendUint32(frame, uint32(attempt))
	frame = binary.LittleEndian.AppendUint16(frame, uint16(len(name)))
	frame = append(frame, name...)
	return append(frame, enc...), nil
}

// readReply reads one reply frame.
func readReply(r io.Reader) (kind byte, code int32, text string, err error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:4]); err != nil {
		return 0, 0, "", err
	}
	n := binary.LittleEndian.Uint32(h[:4])
	if n < 5 || n > maxReply {
		return 0, 0, "", fmt.Errorf("python: reply length %d", n)
	}
	if _, err := io.ReadFull(r, h[4:9]); err != nil {
		return 0, 0, "", err
	}
	buf := make([]byte, n-5)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, 0, "", err
	}
	return h[4], int32(binary.LittleEndian.Uint32(h[5:9])), string(buf), nil
}
