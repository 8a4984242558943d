package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/ring"
)

// gospoolBin is the command built once by TestMain; the tests run it as
// users and benchmarks do.
var gospoolBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "gospool-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	gospoolBin = filepath.Join(tmp, "gospool")
	goTool := "go"
	if _, err := exec.LookPath(goTool); err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	args := []string{"build", "-o", gospoolBin}
	if raceEnabled {
		// The binary gets the race detector too when the tests have it.
		args = append(args, "-race")
	}
	build := exec.Command(goTool, append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building gospool: %v\n", err)
		return 1
	}
	return m.Run()
}

// childEnv is the environment of the gospool processes. A -race binary
// sleeps a second at exit unless told not to.
func childEnv() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// result is what a finished gospool command did.
type result struct {
	stdout, stderr string
	code           int
}

// cmdOpts tune one gospool run.
type cmdOpts struct {
	dir     string   // working directory
	env     []string // added to the environment
	stdin   string
	timeout time.Duration // 10 s when zero
}

// gospool runs the binary to completion (10 s at most).
func gospool(t *testing.T, args ...string) result {
	t.Helper()
	return gospoolOpts(t, cmdOpts{}, args...)
}

func gospoolOpts(t *testing.T, o cmdOpts, args ...string) result {
	t.Helper()
	c := exec.Command(gospoolBin, args...)
	c.Dir = o.dir
	c.Env = append(childEnv(), o.env...)
	c.Stdin = strings.NewReader(o.stdin)
	timeout := o.timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		c.Process.Kill()
		<-done
		t.Fatalf("gospool %q did not finish within %v; stderr:\n%s", args, timeout, stderr.String())
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("gospool %q: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// mustSucceed fails the test unless the command exited 0.
func (r result) mustSucceed(t *testing.T, args ...string) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("gospool %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// oneErrorLine checks that stderr is exactly one line starting with prefix.
func oneErrorLine(t *testing.T, r result, prefix string) {
	t.Helper()
	if !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not exactly one line: %q", r.stderr)
	}
	if !strings.HasPrefix(r.stderr, prefix) {
		t.Errorf("stderr %q does not start with %q", r.stderr, prefix)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Errorf("stderr looks like a Go panic: %q", r.stderr)
	}
}

// realDir is dir with symlinks resolved, as gospool prints it.
func realDir(t *testing.T, dir string) string {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

// runProc is a `gospool run` running in the background.
type runProc struct {
	cmd            *exec.Cmd
	stdout, stderr *testproc.Buffer
	done           chan struct{}
	err            error // of Wait, once done is closed
}

// startRun starts `gospool run args...` and makes sure it is gone when the
// test ends. It does not wait for the spooler to be ready; see waitLive.
func startRun(t *testing.T, env []string, args ...string) *runProc {
	t.Helper()
	p := &runProc{stdout: &testproc.Buffer{}, stderr: &testproc.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(gospoolBin, append([]string{"run"}, args...)...)
	p.cmd.Env = append(childEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// stop sends sig and returns the exit status.
func (p *runProc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return p.wait(t, 30*time.Second) // generous: a loaded machine starts and stops python3 slowly
}

// wait returns the exit status once the process has ended.
func (p *runProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("gospool run did not exit within %v; stderr:\n%s", d, p.stderr)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatal(p.err)
	return -1
}

// waitLive waits until a gospool spooler is attached to dir's ring.
func waitLive(t *testing.T, dir string, p *runProc) {
	t.Helper()
	testproc.WaitFor(t, 10*time.Second, "spooler attached to the ring", func() bool {
		r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{})
		if err != nil {
			return false
		}
		defer r.Close()
		return r.HasLiveConsumer()
	}, p.stderr)
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"help"}, {"--help"}, {"-h"}, {"help", "help"},
		{"help", "spool"}, {"help", "run"},
		{"spool", "--help"}, {"spool", "-h"}, {"spool", "--spooler", "x", "k=v", "--help"},
		{"inspect", "--help"}, {"stats", "--help"}, {"run", "--help"}, {"demo", "--help"}, {"version", "--help"},
	} {
		r := gospool(t, args...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "usage: gospool") {
			t.Errorf("gospool %q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	// Every subcommand has its place in the main help and its flags in its own.
	r := gospool(t, "help")
	for _, sub := range []string{"run", "spool", "inspect", "stats", "demo", "version"} {
		if !strings.Contains(r.stdout, "\n  "+sub+" ") {
			t.Errorf("gospool help does not list %s:\n%s", sub, r.stdout)
		}
	}
	r = gospool(t, "run", "--help")
	for _, flag := range []string{"--spooler DIR", "--spooler-exec CMD", "--spooler-frequency S", "--spooler-max-tasks N",
		"--spooler-busy-poll", "--spooler-processes K", "--spooler-harakiri S", "--ini FILE", "--workers N",
		"--worker-cmd CMD", "--spooler-import MODULE", "--spooler-python PATH", "--spooler-ordered", "--socket ADDR", "--stats ADDR"} {
		if !strings.Contains(r.stdout, "\n  "+flag+"\n") {
			t.Errorf("gospool run --help does not list %s", flag)
		}
	}
}

// Every mistake on the command line: exit 2 and one line on stderr that
// names the command.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "body")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	run := func(args ...string) []string {
		return append([]string{"run", "--spooler", dir, "--spooler-exec", "true"}, args...)
	}
	cases := []struct {
		args []string
		want string // in the message
	}{
		{[]string{"spool", "k=v"}, "missing --spooler DIR"},
		{[]string{"spool", "--spooler"}, "flag needs an argument: --spooler"},
		{[]string{"spool", "--spooler", dir}, "nothing to spool"},
		{[]string{"spool", "--spooler", dir, "novalue"}, `"novalue" is not KEY=VALUE`},
		{[]string{"spool", "--spooler", dir, "=v"}, "empty key"},
		{[]string{"spool", "--spooler", dir, "--bogus", "k=v"}, "not defined: --bogus"},
		{[]string{"spool", "--spooler", dir, "--at", "soon", "k=v"}, `--at "soon"`},
		{[]string{"spool", "--spooler", dir, "--at", "", "k=v"}, `--at ""`},
		{[]string{"spool", "--spooler", dir, "--priority", "high", "k=v"}, `--priority "high"`},
		{[]string{"spool", "--spooler", dir, "--priority", "../x", "k=v"}, `--priority "../x"`},
		{[]string{"spool", "--spooler", dir, "at=tomorrow"}, "tomorrow"},
		{[]string{"spool", "--spooler", dir, "priority=-1"}, "priority"},
		{[]string{"spool", "--spooler", dir, "body=x", "--body-file", file}, "body is given twice"},
		{[]string{"spool", "--spooler", dir, "--spooler", other, "k=v"}, "--spooler given 2 times"},
		{[]string{"inspect"}, "no FILE"},
		{[]string{"inspect", "--bogus", file}, "not defined: --bogus"},
		{[]string{"stats"}, "missing --spooler DIR"},
		{[]string{"stats", "--spooler", dir, "extra"}, `unexpected argument "extra"`},
		{[]string{"stats", "--spooler", dir, "--json=maybe"}, "--json"},
		{[]string{"run"}, "missing --spooler DIR"},
		{[]string{"run", "--spooler", dir}, "nothing to run the tasks: give --spooler-exec CMD or --spooler-import MODULE"},
		{run("--spooler-import", "app.tasks"), "--spooler-exec and --spooler-import: give one of them, not both"},
		{[]string{"run", "--spooler", dir, "--spooler-import", ""}, "--spooler-import is empty"},
		{run("--spooler", ""), "--spooler is empty"},
		{run("--spooler-max-retries", "-1"), "--spooler-max-retries"},
		{run("--workers", "2"), "give --worker-cmd CMD"},
		{run("--worker-cmd", "./app"), "give --workers N"},
		{run("--listen", "127.0.0.1:0"), "there are no workers"},
		{run("--workers", "-1"), "--workers"},
		{run("--spooler-processes", "0"), "--spooler-processes"},
		{run("--spooler-frequency", "-1"), "--spooler-frequency: want 0 or more seconds"},
		{run("--spooler-frequency", "often"), "--spooler-frequency"},
		{run("--spooler-harakiri", "-5"), "--spooler-harakiri"},
		{run("--spooler-retry-delay", "NaN"), "--spooler-retry-delay"},
		{run("--spooler-max-tasks", "-1"), "--spooler-max-tasks"},
		{run("--spooler-concurrency", "0"), "--spooler-concurrency"},
		{run("extra"), `unexpected argument "extra"`},
		{run("--bogus"), "not defined: --bogus"},
		{[]string{"demo", "extra"}, `unexpected argument "extra"`},
		{[]string{"demo", "--bogus"}, "not defined: --bogus"},
		{[]string{"ls"}, "missing --spooler DIR"},
		{[]string{"ls", "--spooler", dir, "extra"}, `unexpected argument "extra"`},
		{[]string{"requeue"}, "missing --spooler DIR"},
		{run("--ini", filepath.Join(dir, "missing.ini")), "--ini"},
	}
	for _, c := range cases {
		r := gospool(t, c.args...)
		if r.code != 2 {
			t.Errorf("gospool %q: exit %d, want 2 (stderr %q)", c.args, r.code, r.stderr)
			continue
		}
		oneErrorLine(t, r, "gospool "+c.args[0]+": ")
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("gospool %q: stderr %q does not say %q", c.args, r.stderr, c.want)
		}
		if r.stdout != "" {
			t.Errorf("gospool %q: stdout %q, want nothing", c.args, r.stdout)
		}
	}
	// Nothing above created a file, a ring or a directory.
	for _, d := range []string{dir, other} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Name() != "body" {
				t.Errorf("a usage error left %s in %s", e.Name(), d)
			}
		}
	}
	if r := gospool(t, "run", "--spooler", "--ini", "x"); r.code != 2 {
		t.Errorf("exit %d", r.code)
	}
	// Without a run, not even the missing spool directory is created.
	missing := filepath.Join(dir, "missing")
	gospool(t, "run", "--spooler", missing, "--workers", "3", "--spooler-exec", "true")
	if _, err := os.Stat(missing); err == nil {
		t.Error("a refused run created its spool directory")
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"frobnicate"}, {}, {"help", "frobnicate"}, {"--spooler"}} {
		r := gospool(t, args...)
		if r.code != 2 {
			t.Errorf("gospool %q: exit %d, want 2", args, r.code)
		}
		oneErrorLine(t, r, "gospool: ")
		if !strings.Contains(r.stderr, "run, spool, inspect, stats, demo, ls, requeue, bench, version, help") {
			t.Errorf("gospool %q: stderr %q does not list the commands", args, r.stderr)
		}
	}
}

// Failures at run time: exit 1, one line.
func TestRuntimeErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"spool", "--spooler", missing, "k=v"}, []string{missing + " does not exist", "mkdir -p", "gospool run --spooler " + missing}},
		{[]string{"spool", "--spooler", notDir, "k=v"}, []string{"not a directory"}},
		{[]string{"spool", "--spooler", dir, "--body-file", missing, "k=v"}, []string{"--body-file", "no such file"}},
		{[]string{"stats", "--spooler", missing}, []string{"does not exist"}},
		{[]string{"ls", "--spooler", missing}, []string{missing + " does not exist", "mkdir -p"}},
		{[]string{"ls", "--spooler", notDir}, []string{"not a directory"}},
		{[]string{"requeue", "--spooler", missing}, []string{missing + " does not exist"}},
		{[]string{"inspect", missing}, []string{missing, "no such file"}},
		{[]string{"inspect", "--json", dir}, []string{dir}},
		{[]string{"run", "--spooler", notDir, "--spooler-exec", "true"}, []string{"spool directory " + notDir + " is not a directory: give --spooler the directory itself"}},
		{[]string{"run", "--spooler", filepath.Join(notDir, "a", "b"), "--spooler-exec", "true"}, []string{notDir + " is a file, not a directory; give --spooler the path of a directory"}},
	}
	for _, c := range cases {
		r := gospool(t, c.args...)
		if r.code != 1 {
			t.Errorf("gospool %q: exit %d, want 1 (stderr %q)", c.args, r.code, r.stderr)
			continue
		}
		oneErrorLine(t, r, "gospool "+c.args[0]+": ")
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("gospool %q: stderr %q does not say %q", c.args, r.stderr, w)
			}
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("gospool spool created the missing spool directory")
	}
}
