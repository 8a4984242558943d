package main

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
)

// TestService runs the example as a user would: the binary built from this
// directory, started in a temporary directory, driven with HTTP requests
// and signals, and read through its log lines.
func TestService(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example service")
	}
	s := startService(t, nil, "--spool", filepath.Join(t.TempDir(), "spool"), "--work", "50ms")
	workers, spoolers := s.children()
	if len(workers) != 4 || len(spoolers) != 1 {
		t.Fatalf("want 4 workers and 1 spooler spawned, the log names %d and %d", len(workers), len(spoolers))
	}
	spooler := spoolers[0]

	t.Log("20 signups: each is answered once spooled, and its email is sent")
	for i := range 20 {
		if err := s.signup(fmt.Sprintf("first%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	s.waitLog("20 welcome emails sent", func(log string) bool { return len(sentTo(log, "first")) == 20 })

	t.Log("SIGSEGV to worker 2, just after it and its siblings acknowledged signups")
	for i := range 12 {
		if err := s.signup(fmt.Sprintf("crash%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	victim := workers[1]
	if err := syscall.Kill(victim, syscall.SIGSEGV); err != nil {
		t.Fatal(err)
	}
	damn := fmt.Sprintf("DAMN ! worker 2 (pid: %d) died, killed by signal 11 :( trying respawn ...", victim)
	log := s.waitLog("worker 2 reported dead and respawned", func(log string) bool {
		return strings.Contains(log, damn) && respawned.MatchString(log)
	})
	if m := respawned.FindStringSubmatch(log); m[1] != "2" || m[2] == strconv.Itoa(victim) {
		t.Fatalf("want worker 2 respawned with a new pid, got %q", m[0])
	}
	s.waitLog("the 12 signups acknowledged around the crash sent", func(log string) bool { return len(sentTo(log, "crash")) == 12 })

	t.Log("SIGHUP while clients keep signing up: no request may fail")
	var (
		mu       sync.Mutex
		acked    int
		failures []string
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for g := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := s.signup(fmt.Sprintf("reload%d-%d@example.com", g, i))
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					acked++
				}
				mu.Unlock()
				time.Sleep(15 * time.Millisecond) // about 150 signups a second in all
			}
		})
	}
	ackedAtLeast := func(n int) func(string) bool {
		return func(string) bool { mu.Lock(); defer mu.Unlock(); return acked >= n }
	}
	s.waitLog("clients signing up", ackedAtLeast(20))
	s.signal(syscall.SIGHUP)
	s.waitLog("the reload done: a new generation up, the old one gone", func(log string) bool {
		return strings.Contains(log, "...gracefully reloading workers and spoolers (generation 1)...") &&
			strings.Count(log, "\nspawned gospool worker") == 8 &&
			strings.Count(log, "\nspawned the gospool spooler") == 2 &&
			strings.Count(log, "\nGracefully killing worker") == 4 &&
			strings.Count(log, "\ngracefully stopping the spooler with pid") == 1 &&
			len(buried.FindAllString(log, -1)) == 4 &&
			strings.Contains(log, "\nspooler (pid: "+strconv.Itoa(spooler)+") annihilated")
	})
	mu.Lock()
	after := acked + 20
	mu.Unlock()
	s.waitLog("clients served by the new generation", ackedAtLeast(after))
	close(stop)
	wg.Wait()
	t.Logf("%d signups acknowledged by the clients around the reload, %d failed", acked, len(failures))
	if len(failures) > 0 {
		t.Errorf("%d signup(s) failed during the reload; the first: %s", len(failures), failures[0])
	}

	t.Log("every acknowledged signup sent, then SIGTERM")
	s.waitLog("every acknowledged signup sent", func(log string) bool {
		sent := sentTo(log, "")
		for _, email := range s.ackedEmails() {
			if sent[email] == 0 {
				return false
			}
		}
		return true
	})
	s.signal(syscall.SIGTERM)
	if code := s.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	log = s.out.String()
	if !strings.Contains(log, "goodbye to gospool.") {
		t.Error(`no "goodbye to gospool." line after SIGTERM`)
	}
	sent, twice := sentTo(log, ""), 0
	for _, email := range s.ackedEmails() {
		switch n := sent[email]; {
		case n == 0:
			t.Errorf("%s was acknowledged but its welcome email was never sent", email)
		case n > 1:
			twice++
		}
	}
	t.Logf("%d signups acknowledged, %d emails sent, %d sent more than once (at least once is the promise)",
		len(s.ackedEmails()), len(sent), twice)
}

// With no --spool, the spool directory is goservice-spool in the
// temporary directory, not spool/ in the current one: `go run
// ./examples/goservice` from the root of the clone leaves nothing in it.
func TestDefaultSpoolDir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example service")
	}
	tmp := t.TempDir()
	s := startService(t, []string{"TMPDIR=" + tmp})
	want := "spawned the gospool spooler on dir " + filepath.Join(tmp, "goservice-spool") + " with pid"
	if log := s.out.String(); !strings.Contains(log, want) {
		t.Errorf("no %q line in the log:\n%s", want, log)
	}
	if _, err := os.Stat(filepath.Join(s.base, "spool")); err == nil {
		t.Errorf("the service made spool/ in its current directory %s", s.base)
	}
}

var (
	sentLine  = regexp.MustCompile(`sent the welcome email to (\S+) \(task`)
	respawned = regexp.MustCompile(`Respawned gospool worker (\d+) \(new pid: (\d+)\)`)
	buried    = regexp.MustCompile(`worker \d+ buried after \d+ seconds`)
	spawned   = regexp.MustCompile(`spawned gospool worker \d+ \(pid: (\d+)|Respawned gospool worker \d+ \(new pid: (\d+)\)|spawned the gospool spooler on dir \S+ with pid (\d+)`)
)

// sentTo counts the welcome emails sent, by address, for the addresses
// starting with prefix.
func sentTo(log, prefix string) map[string]int {
	sent := map[string]int{}
	for _, m := range sentLine.FindAllStringSubmatch(log, -1) {
		if strings.HasPrefix(m[1], prefix) {
			sent[m[1]]++
		}
	}
	return sent
}

// service is the example binary running as a master in a temporary
// directory, on a free port.
type service struct {
	t      *testing.T
	bin    string
	cmd    *exec.Cmd
	out    *testproc.Buffer
	base   string
	waited chan struct{}
	client *http.Client
	url    string

	mu    sync.Mutex
	acked []string // the emails whose signup was answered 200
}

// startService builds the example and starts it in a temporary
// directory, with args after --listen, and env added to the environment.
func startService(t *testing.T, env []string, args ...string) *service {
	t.Helper()
	gotool := testproc.NeedProgram(t, "go", "golang (or Go from go.dev)")
	base := t.TempDir()
	s := &service{t: t, bin: filepath.Join(base, "goservice"), out: &testproc.Buffer{}, base: base,
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}}
	build := exec.Command(gotool, "build", "-o", s.bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	s.url = "http://" + addr
	s.cmd = exec.Command(s.bin, append([]string{"--listen", addr}, args...)...)
	s.cmd.Dir = base
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	// Its own process group, killed whole at the end; and killed if this
	// test process dies first.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.waited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.waited) }()
	t.Cleanup(s.kill)
	s.waitLog("4 workers and the spooler spawned", func(log string) bool {
		return strings.Count(log, "\nspawned gospool worker") == 4 && strings.Count(log, "\nspawned the gospool spooler") == 1
	})
	return s
}

// kill ends the master's process group and then every child the log names
// that is still alive: the master puts each child in a process group of its
// own (so that a terminal's Ctrl-C reaches the master only), and the
// children are meant to die with the master by themselves.
func (s *service) kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.waited
	var left []int
	deadline := time.Now().Add(5 * time.Second)
	for {
		left = left[:0]
		for _, pid := range s.allChildren() {
			if s.ours(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range left {
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(left) > 0 {
		s.t.Errorf("children %v outlived their master by 5s", left)
	}
	if s.t.Failed() {
		s.t.Logf("the service's output:\n%s", s.out.String())
	}
}

// allChildren are the pids of every worker and spooler the log names.
func (s *service) allChildren() []int {
	var pids []int
	for _, m := range spawned.FindAllStringSubmatch(s.out.String(), -1) {
		pid, _ := strconv.Atoi(m[1] + m[2] + m[3])
		pids = append(pids, pid)
	}
	return pids
}

// children are the pids of the workers spawned at start, in order.
func (s *service) children() (workers, spoolers []int) {
	for _, m := range spawned.FindAllStringSubmatch(s.out.String(), -1) {
		switch {
		case m[1] != "":
			pid, _ := strconv.Atoi(m[1])
			workers = append(workers, pid)
		case m[3] != "":
			pid, _ := strconv.Atoi(m[3])
			spoolers = append(spoolers, pid)
		}
	}
	return workers, spoolers
}

// ours reports whether pid is a live process running the example binary
// (not a zombie, and not another program that reused the pid).
func (s *service) ours(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may hold
	// spaces.
	if i := strings.LastIndexByte(string(stat), ')'); i < 0 || strings.HasPrefix(string(stat[i+1:]), " Z") {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.TrimSuffix(exe, " (deleted)") == s.bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// signup posts one signup; nil means the worker acknowledged it (200), so
// its email must be sent.
func (s *service) signup(email string) error {
	resp, err := s.client.PostForm(s.url+"/signup", url.Values{"email": {email}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("signup %s: %s", email, resp.Status)
	}
	s.mu.Lock()
	s.acked = append(s.acked, email)
	s.mu.Unlock()
	return nil
}

func (s *service) ackedEmails() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acked...)
}

func (s *service) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// waitLog waits, at most 10 s, until cond holds for the service's output.
func (s *service) waitLog(what string, cond func(log string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := s.out.String()
		if cond(log) {
			return log
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for the master to exit and returns its exit status.
func (s *service) wait(d time.Duration) int {
	s.t.Helper()
	select {
	case <-s.waited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		s.t.Fatalf("the master did not exit within %v", d)
		return -1
	}
}
