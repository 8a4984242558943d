package testproc

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent use: a child process (or a
// logger) writes into it while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// StartUWSGI runs `uwsgi args...` until the test ends, or skips the test
// when uWSGI is not installed. Its output goes to the returned buffer,
// which is logged if the test fails. uWSGI 2.0 reloads on SIGTERM, so it is
// stopped with SIGINT, and its whole process group is killed if it has not
// exited 10 s later; it also dies with the test binary (Pdeathsig).
func StartUWSGI(tb testing.TB, args ...string) *Buffer {
	tb.Helper()
	bin := NeedProgram(tb, "uwsgi", "uwsgi-core")
	out := &Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			tb.Log("uWSGI ignored SIGINT for 10s; killing it")
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
		if tb.Failed() {
			tb.Logf("uWSGI output:\n%s", out)
		}
	})
	return out
}

// WaitFor polls cond every 5 ms until it holds, and fails tb after d,
// logging logs (the processes' output) first.
func WaitFor(tb testing.TB, d time.Duration, what string, cond func() bool, logs ...fmt.Stringer) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			for _, l := range logs {
				tb.Logf("log:\n%s", l)
			}
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
