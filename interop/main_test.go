// Package interop_test checks gospool against real uWSGI 2.0.21 as the peer,
// on one spool directory: uWSGI writes and gospool runs, gospool writes and
// uWSGI runs, both run one directory under load (with and without SIGKILL),
// uWSGI takes over gospool's retry files and leaves its dead letters alone,
// and how long gospool takes to pick up a file uWSGI wrote.
//
// Every test starts real processes: uwsgi (with --plugin python3 and
// testdata/app.py) and the gospool command, built once in TestMain. The
// tests skip when uwsgi is not on PATH (CI installs it). Process logs go to
// files in the test's temporary directory; a failed test prints their tails.
package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
)

var (
	uwsgiBin     string // "" when uwsgi is not installed: every test skips
	gospoolBin   string // built with -race when the tests are
	gospoolPlain string // built without -race, for the latency measurement
	stampBin     string // testdata/stamp
	testdataDir  string // absolute
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if path, err := exec.LookPath("uwsgi"); err == nil {
		uwsgiBin = path
	} else {
		return m.Run() // the tests skip themselves
	}
	var err error
	if testdataDir, err = filepath.Abs("testdata"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin, err := os.MkdirTemp("", "gospool-interop-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(bin)
	if err := buildAll(bin); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	// A -race binary sleeps a second at exit unless told not to; every
	// `gospool spool` would. (This process read GORACE at start already.)
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return m.Run()
}

// buildAll builds the gospool command (twice: as the tests are built, and
// without -race) and the stamp helper into dir.
func buildAll(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	gospoolBin = filepath.Join(dir, "gospool")
	gospoolPlain = gospoolBin
	stampBin = filepath.Join(dir, "stamp")
	builds := [][]string{
		{"-o", stampBin, "./interop/testdata/stamp"},
	}
	if raceEnabled {
		gospoolPlain = filepath.Join(dir, "gospool-norace")
		builds = append(builds, []string{"-race", "-o", gospoolBin, "./cmd/gospool"})
	}
	builds = append(builds, []string{"-o", gospoolPlain, "./cmd/gospool"})
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, args := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", append([]string{"build"}, args...)...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build %s (in %s): %v\n%s", strings.Join(args, " "), root, err, out)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// harness owns the processes and directories of one test. On failure it
// prints the tail of every process's log, after stopping them all.
type harness struct {
	t     testing.TB
	dir   string
	mu    sync.Mutex
	procs []*proc
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	if uwsgiBin == "" {
		testproc.NeedUWSGI(t) // reports the missing uWSGI: skip, or fail under CI
	}
	h := &harness{t: t, dir: t.TempDir()}
	// Registered first, so it runs last: after every process has stopped.
	t.Cleanup(func() {
		for _, p := range h.procs {
			if p.gospool && strings.Contains(p.log(), "WARNING: DATA RACE") {
				t.Errorf("%s (pid %d) reported a data race", p.name, p.pid())
			}
		}
		if t.Failed() {
			t.Log("the processes' logs:" + h.logs())
		}
	})
	return h
}

// mkdir makes a directory in the test's temporary directory and returns its
// path without symlinks, as uWSGI's realpath() would give it.
func (h *harness) mkdir(name string) string {
	h.t.Helper()
	dir := filepath.Join(h.dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		h.t.Fatal(err)
	}
	return real
}

// logs returns the tail of every process's log.
func (h *harness) logs() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, p := range h.procs {
		log := p.log()
		const max = 12 << 10
		if len(log) > max {
			log = "[...]" + log[len(log)-max:]
		}
		fmt.Fprintf(&b, "\n===== %s (pid %d, %s), log %s =====\n%s", p.name, p.pid(), p.status(), p.logPath, log)
	}
	return b.String()
}

// waitFor polls cond until it holds, failing t after timeout. It fails at
// once if a process that should be running has exited.
func (h *harness) waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		if cond() {
			return
		}
		if p := h.deadProc(); p != nil {
			t.Fatalf("waiting for %s: %s exited unexpectedly (%s); its log ends:\n%s", what, p.name, p.status(), tail(p.log(), 2000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}

// deadProc returns a process that exited although nobody stopped it.
func (h *harness) deadProc() *proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.procs {
		if !p.stopping.Load() && p.exitedNow() {
			return p
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "[...]" + s[len(s)-n:]
	}
	return s
}

// proc is a process the harness started, in its own process group, with
// standard output and error in a log file.
type proc struct {
	name     string
	gospool  bool
	cmd      *exec.Cmd
	logPath  string
	exited   chan struct{}
	stopping atomic.Bool // set before any deliberate stop or kill
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *proc) exitedNow() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *proc) status() string {
	if !p.exitedNow() {
		return "running"
	}
	return p.cmd.ProcessState.String()
}

// start starts argv with the test's environment plus env. The process and
// everything it starts without leaving its group are killed when the test
// ends.
func (h *harness) start(t testing.TB, name string, env []string, argv ...string) *proc {
	t.Helper()
	logPath := filepath.Join(h.dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	t.Cleanup(func() { p.stop(h.t) })
	return p
}

// stop sends SIGTERM and waits for the process to exit, then SIGKILLs its
// process group (uWSGI's workers and spoolers are in it). A gospool that
// does not exit 0 on SIGTERM is an error.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	wasStopping := p.stopping.Load()
	p.stopping.Store(true)
	if !p.exitedNow() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.gospool && !wasStopping && !p.cmd.ProcessState.Success() {
				t.Errorf("%s: SIGTERM made it exit with %s, want status 0", p.name, p.cmd.ProcessState)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) still running 10s after SIGTERM; killing it", p.name, p.pid())
		}
	}
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.exited
}

// kill9 SIGKILLs the process alone (not its group), as a crash would.
func (p *proc) kill9() {
	p.stopping.Store(true)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// gospoolRun starts `gospool run` with args and waits for its start line.
func (h *harness) gospoolRun(t testing.TB, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := h.start(t, name, env, append([]string{bin, "run"}, args...)...)
	p.gospool = true
	h.waitFor(t, 20*time.Second, name+" to log its start", func() bool {
		return strings.Contains(p.log(), "spawned the gospool spooler on dir")
	})
	return p
}

// uwsgi is a running uWSGI instance serving testdata/app.py over HTTP on a
// unix socket.
type uwsgi struct {
	*proc
	client *http.Client
}

// uwsgi starts uWSGI with testdata/INI and waits until its worker answers.
func (h *harness) uwsgi(t testing.TB, name, ini string, env ...string) *uwsgi {
	t.Helper()
	sock := filepath.Join(h.dir, name+".sock")
	if len(sock) > 100 { // a unix socket path holds 108 bytes
		dir, err := os.MkdirTemp("", "interop")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		sock = filepath.Join(dir, name+".sock")
	}
	env = append(env, "INTEROP_SOCKET="+sock)
	p := h.start(t, name, env, uwsgiBin, "--ini", filepath.Join(testdataDir, ini))
	u := &uwsgi{proc: p, client: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		},
	}}
	h.waitFor(t, 30*time.Second, name+" to answer /ping", func() bool {
		_, err := u.get("/ping")
		return err == nil
	})
	return u
}

// spooled is the reply of the app's spooling routes.
type spooled struct {
	Path string `json:"path"` // what uwsgi.spool() returned
	At   string `json:"at"`   // the at value sent, for at=+S
}

func (u *uwsgi) get(route string) (spooled, error) {
	var r spooled
	resp, err := u.client.Get("http://uwsgi" + route)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET %s: %s: %s", route, resp.Status, body)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("GET %s: %v in %q", route, err, body)
	}
	return r, nil
}

// spool requests route, which spools a task, and returns the spool file.
func (u *uwsgi) spool(t testing.TB, route string) spooled {
	t.Helper()
	r, err := u.get(route)
	if err != nil {
		t.Fatalf("uWSGI app: %v", err)
	}
	if r.Path == "" {
		t.Fatalf("uWSGI app: GET %s spooled nothing", route)
	}
	return r
}

// spawnedSpoolers returns the pids of uWSGI spooler processes the master
// has logged spawning, in order (respawns included).
func (u *uwsgi) spawnedSpoolers() []int {
	var pids []int
	for _, line := range strings.Split(u.log(), "\n") {
		const marker = "spawned the uWSGI spooler on dir "
		if i := strings.Index(line, marker); i >= 0 {
			var pid int
			if j := strings.LastIndex(line, " with pid "); j >= 0 {
				fmt.Sscanf(line[j+len(" with pid "):], "%d", &pid)
			}
			if pid > 0 {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// readLines returns the lines of a file that may not exist yet; a last line
// without its newline (being written) is left out.
func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else {
		return nil
	}
	return strings.Split(string(b), "\n")
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
