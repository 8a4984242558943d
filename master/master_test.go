package master_test

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The basic life: workers spool tasks over HTTP, a spooler runs them all,
// SIGTERM stops everything with exit status 0.
func TestServiceRunsTasksAndStopsOnSIGTERM(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=2")
	for i := 0; i < 50; i++ {
		ok, err := s.spool(strconv.Itoa(i), 100, "")
		if err != nil || !ok {
			t.Fatalf("spool %d: %v %v", i, ok, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, torn := s.ran()
		if len(torn) > 0 {
			t.Fatalf("torn tasks ran: %v", torn)
		}
		if len(runs) == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 50 tasks ran", len(runs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	workers, spoolers := s.children()
	s.signal(syscall.SIGTERM)
	if code := s.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	log := s.out.String()
	for _, want := range []string{"SIGTERM received", "worker 1 buried after", "worker 2 buried after", "annihilated", "goodbye to gospool."} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	for _, pid := range append(workers, spoolers...) {
		if alive(pid) {
			t.Errorf("child %d still alive after the master exited", pid)
		}
	}
}
