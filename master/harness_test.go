package master_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
)

// service is a test master running testConfig in a child process.
type service struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *testproc.Buffer
	base   string // the test's temporary directory: spool/, ran.log...
	dir    string // the spool directory
	sock   string // the workers' unix socket
	env    []string
	waited chan struct{}
	client *http.Client
}

// startService starts a master with the GOSPOOL_TEST_* settings in env
// (see testConfig) and waits until its children are up.
func startService(t *testing.T, base string, env ...string) *service {
	t.Helper()
	s := &service{t: t, out: &testproc.Buffer{}, base: base,
		dir: filepath.Join(base, "spool"), sock: filepath.Join(base, "http.sock")}
	s.env = append([]string{"GOSPOOL_TEST_MASTER=1", "GOSPOOL_TEST_DIR=" + s.dir, "GOSPOOL_TEST_LISTEN=" + s.sock}, env...)
	s.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", s.sock)
		},
		DisableKeepAlives: true,
	}, Timeout: 30 * time.Second}
	s.start()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.waited
		if t.Failed() || testing.Verbose() {
			t.Logf("master output:\n%s", s.out.String())
		}
	})
	return s
}

func (s *service) start() {
	s.t.Helper()
	s.cmd = exec.Command(os.Args[0], "-test.run=^$")
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.waited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.waited) }()
	workers, _ := strconv.Atoi(envOf(s.env, "GOSPOOL_TEST_WORKERS"))
	spoolers := max(1, atoi(envOf(s.env, "GOSPOOL_TEST_SPOOLERS")))
	s.waitLog(10*time.Second, func(log string) bool {
		return strings.Count(log, "spawned gospool worker") >= workers &&
			strings.Count(log, "spawned the gospool spooler") >= spoolers
	})
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func envOf(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}

// waitLog waits until cond holds for the master's output.
func (s *service) waitLog(d time.Duration, cond func(string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		log := s.out.String()
		if cond(log) {
			return log
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %v waiting on the master's output:\n%s", d, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spool asks a worker to spool task id; it reports whether the worker
// acknowledged it (HTTP 200).
func (s *service) spool(id string, pad int, extra string) (bool, error) {
	resp, err := s.client.Post(fmt.Sprintf("http://w/spool?id=%s&pad=%d%s", id, pad, extra), "", nil)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == 200, nil
}

// ran returns ran.log's lines by task id, and the torn ones.
func (s *service) ran() (runs map[string]int, torn []string) {
	data, _ := os.ReadFile(filepath.Join(s.base, "ran.log"))
	runs = map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "TORN":
			torn = append(torn, line)
		default:
			runs[f[0]]++
		}
	}
	return runs, torn
}

// signal sends sig to the master.
func (s *service) signal(sig syscall.Signal) {
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
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

var pidLine = regexp.MustCompile(`spawned gospool worker (\d+) \(pid: (\d+)|Respawned gospool worker (\d+) \(new pid: (\d+)\)|spawned the gospool spooler on dir \S+ with pid (\d+)`)

// children returns the pids the master says it spawned, workers and
// spoolers, in order.
func (s *service) children() (workers, spoolers []int) {
	for _, m := range pidLine.FindAllStringSubmatch(s.out.String(), -1) {
		switch {
		case m[2] != "":
			workers = append(workers, atoi(m[2]))
		case m[4] != "":
			workers = append(workers, atoi(m[4]))
		default:
			spoolers = append(spoolers, atoi(m[5]))
		}
	}
	return workers, spoolers
}

// alive reports whether pid exists (and is not a zombie of ours).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(data))
	return len(f) > 2 && f[2] != "Z"
}
