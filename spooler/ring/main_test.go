package ring

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests that need real processes re-execute this test binary with
// GOSPOOL_TEST_ROLE set; TestMain runs the role instead of the tests.
const roleEnv = "GOSPOOL_TEST_ROLE"

var roles = map[string]func() error{
	"producer": roleProducer,
	"consumer": roleConsumer,
}

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		fn, ok := roles[role]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test role %q\n", role)
			os.Exit(3)
		}
		if err := fn(); err != nil {
			fmt.Fprintf(os.Stderr, "role %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// roleProducer pushes RING_COUNT records "PREFIX-N" into RING_PATH and
// prints "ack PREFIX-N" after each push that returned nil. A full lane is
// retried after a short sleep (the spooler spills instead; here the test
// wants every record in the ring). RING_SYNC set: Options.Sync.
func roleProducer() error {
	r, err := Open(os.Getenv("RING_PATH"), Options{Sync: os.Getenv("RING_SYNC") != ""})
	if err != nil {
		return err
	}
	p, err := r.Producer()
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv("RING_COUNT"))
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := 0; i < n; i++ {
		payload := fmt.Sprintf("%s-%d", os.Getenv("RING_PREFIX"), i)
		for {
			err := p.Push([]byte(payload))
			if err == nil {
				break
			}
			if err != ErrFull {
				return err
			}
			time.Sleep(50 * time.Microsecond)
		}
		fmt.Fprintf(out, "ack %s\n", payload)
	}
	return nil
}

// roleConsumer drains RING_PATH, printing "ran PAYLOAD" for each record,
// until it has seen nothing for RING_IDLE. With RING_PARK set it prints
// "claimed PAYLOAD" for the first record and then waits to be killed.
func roleConsumer() error {
	_, c, err := openConsumer()
	if err != nil {
		return err
	}
	idle, _ := time.ParseDuration(os.Getenv("RING_IDLE"))
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	last := time.Now()
	for time.Since(last) < idle {
		rec, ok, err := c.Claim()
		if err != nil {
			return err
		}
		if !ok {
			c.Wait(10*time.Millisecond, 20*time.Microsecond, nil)
			continue
		}
		if os.Getenv("RING_PARK") != "" {
			fmt.Printf("claimed %s\n", rec.Payload)
			select {}
		}
		fmt.Fprintf(out, "ran %s\n", rec.Payload)
		if err := c.Done(rec); err != nil {
			return err
		}
		last = time.Now()
	}
	return nil
}

// child is a re-executed test binary in a role.
type child struct {
	cmd    *exec.Cmd
	stdout *bufio.Scanner
	stderr *bufio.Scanner
	lines  chan string // stdout lines
}

func startRole(t testing.TB, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	so, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	se, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdout: bufio.NewScanner(so), stderr: bufio.NewScanner(se), lines: make(chan string, 1<<16)}
	go func() {
		for c.stdout.Scan() {
			c.lines <- c.stdout.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

// waitStderr returns when a stderr line contains want.
func (c *child) waitStderr(t *testing.T, want string) {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		var seen []string
		for c.stderr.Scan() {
			seen = append(seen, c.stderr.Text())
			if strings.Contains(c.stderr.Text(), want) {
				found <- ""
				return
			}
		}
		found <- strings.Join(seen, "\n")
	}()
	select {
	case rest := <-found:
		if rest != "" {
			t.Fatalf("child exited without printing %q; stderr:\n%s", want, rest)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("child did not print %q within 20s", want)
	}
}

// collect reads every stdout line until the child exits and checks its status.
func (c *child) collect(t *testing.T) []string {
	t.Helper()
	var out []string
	for l := range c.lines {
		out = append(out, l)
	}
	var stderr []string
	for c.stderr.Scan() {
		stderr = append(stderr, c.stderr.Text())
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child %v: %v\n%s", c.cmd.Env[len(c.cmd.Env)-1], err, strings.Join(stderr, "\n"))
	}
	return out
}

func (c *child) kill9(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := c.cmd.Wait()
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
}

// openConsumer opens the ring at RING_PATH and takes a consumer entry: how
// every consumer role starts.
func openConsumer() (*Ring, *Consumer, error) {
	r, err := Open(os.Getenv("RING_PATH"), Options{})
	if err != nil {
		return nil, nil, err
	}
	c, err := r.Consumer()
	if err != nil {
		return nil, nil, err
	}
	return r, c, nil
}
