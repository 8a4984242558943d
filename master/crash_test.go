package master_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/master/scoreboard"
)

// load keeps clients spooling tasks through the workers until stop is
// called; it remembers every task a worker acknowledged.
type load struct {
	mu      sync.Mutex
	acked   []string
	errors  []string     // the first few
	refused atomic.Int64 // connection refused or reset: what a reload must never cause
	failed  atomic.Int64 // answered, but not 200
	stopped atomic.Bool
	wg      sync.WaitGroup
}

func startLoad(s *service, clients, pad int, prefix string) *load {
	l := &load{}
	for c := 0; c < clients; c++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; !l.stopped.Load(); i++ {
				id := fmt.Sprintf("%s%d-%d", prefix, c, i)
				ok, err := s.spool(id, pad, "")
				switch {
				case ok:
					l.mu.Lock()
					l.acked = append(l.acked, id)
					l.mu.Unlock()
				case err != nil:
					if l.refused.Add(1) <= 5 {
						l.mu.Lock()
						l.errors = append(l.errors, fmt.Sprintf("request %s: %v", id, err))
						l.mu.Unlock()
					}
				default:
					l.failed.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) stop() []string {
	l.stopped.Store(true)
	l.wg.Wait()
	return l.acked
}

// waitRan waits until every id in ids ran, and that no torn task ran.
func (s *service) waitRan(ids []string, d time.Duration) map[string]int {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		runs, torn := s.ran()
		if len(torn) > 0 {
			s.t.Fatalf("half-written tasks ran: %v", torn)
		}
		missing := 0
		for _, id := range ids {
			if runs[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return runs
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d acknowledged tasks never ran", missing, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveWorker returns the pid and number of a worker that is serving: one
// the scoreboard shows with requests done (a signal that arrives while a Go
// program is still initializing gets Go's default treatment, exit status 2).
func (s *service) liveWorker(not map[int]bool) (pid, number int) {
	s.t.Helper()
	b, err := scoreboard.Open(filepath.Join(s.dir, scoreboard.FileName))
	if err != nil {
		s.t.Fatal(err)
	}
	defer b.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for i := 0; i < b.Len(); i++ {
			p, ok := b.Slot(i).Read()
			if ok && p.Role == scoreboard.Worker && p.Done > 0 && !not[p.Pid] && alive(p.Pid) {
				return p.Pid, p.Number
			}
		}
	}
	s.t.Fatalf("no serving worker in the scoreboard; master output:\n%s", s.out.String())
	return 0, 0
}

// Workers killed with SIGSEGV, SIGABRT and SIGKILL while they spool under
// load: the master logs uWSGI's line with the signal and respawns them;
// every task a client got a success answer for runs; no half-written task
// runs.
func TestWorkersKilledMidSpool(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=4")
	l := startLoad(s, 8, 3000, "k")
	time.Sleep(300 * time.Millisecond)
	killed := map[int]bool{}
	for _, sig := range []syscall.Signal{syscall.SIGSEGV, syscall.SIGABRT, syscall.SIGKILL} {
		pid, n := s.liveWorker(killed)
		killed[pid] = true
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("DAMN ! worker %d (pid: %d) died, killed by signal %d :( trying respawn ...", n, pid, int(sig))
		s.waitLog(10*time.Second, func(log string) bool {
			i := strings.Index(log, want)
			return i >= 0 && strings.Contains(log[i:], fmt.Sprintf("Respawned gospool worker %d (new pid: ", n))
		})
		time.Sleep(200 * time.Millisecond)
	}
	acked := l.stop()
	if len(acked) < 100 {
		t.Fatalf("only %d tasks acknowledged under load", len(acked))
	}
	s.waitRan(acked, 30*time.Second)
	t.Logf("%d tasks acknowledged, %d requests failed at the crashes (connections the killed workers held), all acknowledged ones ran", len(acked), l.refused.Load()+l.failed.Load())
	s.signal(syscall.SIGTERM)
	if code := s.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// A spooler killed with SIGKILL in the middle of a task is respawned, and
// the task runs again.
func TestSpoolerKilledMidTask(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=1")
	if ok, err := s.spool("slow", 10, "&sleep=5s"); !ok || err != nil {
		t.Fatalf("spool: %v %v", ok, err)
	}
	started := filepath.Join(s.base, "started.log")
	waitFile(t, started, "start slow")
	_, spoolers := s.children()
	syscall.Kill(spoolers[0], syscall.SIGKILL)
	s.waitLog(10*time.Second, func(log string) bool {
		return strings.Contains(log, "OOOPS the spooler is no more...trying respawn...") &&
			strings.Count(log, "spawned the gospool spooler") == 2
	})
	runs := s.waitRan([]string{"slow"}, 15*time.Second)
	_, spoolers = s.children()
	data, _ := os.ReadFile(filepath.Join(s.base, "ran.log"))
	if runs["slow"] != 1 || !strings.Contains(string(data), "slow "+strconv.Itoa(spoolers[1])) {
		t.Fatalf("ran.log %q: want the task run once, by the new spooler %d", data, spoolers[1])
	}
}

// A task past --spooler-harakiri whose handler ignores its context: the
// spooler settles it as a failed attempt, the master kills the spooler with
// uWSGI's line, and the retry runs in the new spooler.
func TestSpoolerHarakiri(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=1", "GOSPOOL_TEST_SPOOLER_HARAKIRI=1s", "GOSPOOL_TEST_STUCK=1")
	if ok, err := s.spool("stuck", 10, "&sleep=60s"); !ok || err != nil {
		t.Fatalf("spool: %v %v", ok, err)
	}
	_, spoolers := s.children()
	s.waitRan([]string{"stuck"}, 20*time.Second) // the retry, in another slot or process
	s.waitLog(10*time.Second, func(log string) bool {
		return strings.Contains(log, fmt.Sprintf(" - *** HARAKIRI ON THE SPOOLER (pid: %d) ***", spoolers[0])) &&
			strings.Contains(log, "OOOPS the spooler is no more")
	})
	if runs, _ := s.ran(); runs["stuck"] != 1 {
		t.Errorf("the task ran %d times to the end, want 1 (the retry)", runs["stuck"])
	}
}

// A worker busy past --harakiri is killed (SIGKILL, "HARAKIRI ON WORKER")
// and respawned.
func TestWorkerHarakiri(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=1", "GOSPOOL_TEST_HARAKIRI=1s")
	workers, _ := s.children()
	resp, err := s.client.Get("http://w/sleep?d=30s")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a request of 30 s in a worker with harakiri 1 s answered %s", resp.Status)
	}
	s.waitLog(10*time.Second, func(log string) bool {
		return strings.Contains(log, fmt.Sprintf("*** HARAKIRI ON WORKER 1 (pid: %d, try: 1) ***", workers[0])) &&
			strings.Contains(log, fmt.Sprintf("DAMN ! worker 1 (pid: %d) died, killed by signal 9 :( trying respawn ...", workers[0])) &&
			strings.Contains(log, "Respawned gospool worker 1 (new pid: ")
	})
	if ok, err := s.spool("after", 10, ""); !ok || err != nil {
		t.Fatalf("the respawned worker does not serve: %v %v", ok, err)
	}
}

// --max-requests recycles a worker the way uWSGI does.
func TestMaxRequests(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=1", "GOSPOOL_TEST_MAX_REQUESTS=5")
	pids := map[string]bool{}
	for i := 0; i < 12; i++ {
		resp, err := s.client.Get("http://w/pid")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		var pid string
		fmt.Fscan(resp.Body, &pid)
		resp.Body.Close()
		pids[pid] = true
	}
	s.waitLog(10*time.Second, func(log string) bool {
		return strings.Count(log, "killed successfully") >= 2 && strings.Contains(log, "The work of process")
	})
	if len(pids) != 3 {
		t.Errorf("12 requests served by %d processes, want 3 (5 each)", len(pids))
	}
}

// Workers that die as soon as they start are respawned after the forkbomb
// delay, forever.
func TestRespawnThrottle(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=2", "GOSPOOL_TEST_WORKER_CRASH=1", "GOSPOOL_TEST_FORKBOMB=300ms")
	s.waitLog(10*time.Second, func(log string) bool {
		return strings.Count(log, "worker respawning too fast !!! i have to sleep a bit") >= 2 &&
			strings.Count(log, "Respawned gospool worker") >= 8
	})
}

// The master killed with SIGKILL: every child exits within a second; a new
// master runs every acknowledged task that was still waiting.
func TestMasterKilled(t *testing.T) {
	base := t.TempDir()
	s := startService(t, base, "GOSPOOL_TEST_WORKERS=2")
	var acked []string
	for i := 0; i < 20; i++ {
		id := "m" + strconv.Itoa(i)
		extra := "&sleep=3s" // keeps the spooler busy: most tasks wait in the ring
		if ok, err := s.spool(id, 500, extra); !ok || err != nil {
			t.Fatalf("spool: %v %v", ok, err)
		}
		acked = append(acked, id)
	}
	waitFile(t, filepath.Join(base, "started.log"), "start m")
	workers, spoolers := s.children()
	s.cmd.Process.Kill()
	<-s.waited
	deadline := time.Now().Add(time.Second)
	for _, pid := range append(workers, spoolers...) {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("child %d still alive a second after the master died", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	s2 := startService(t, base, "GOSPOOL_TEST_WORKERS=2")
	s2.waitRan(acked, 60*time.Second)
}

// SIGHUP under load: new workers and spoolers start, the old ones finish;
// no connection is refused and no task is lost.
func TestReloadUnderLoad(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=3")
	l := startLoad(s, 6, 200, "r")
	time.Sleep(300 * time.Millisecond)
	oldWorkers, oldSpoolers := s.children()
	for i := 0; i < 2; i++ {
		s.signal(syscall.SIGHUP)
		s.waitLog(15*time.Second, func(log string) bool {
			return strings.Count(log, "gracefully reloading") == i+1 &&
				strings.Count(log, "buried after") == 3*(i+1) && strings.Count(log, "annihilated") == i+1
		})
		time.Sleep(300 * time.Millisecond)
	}
	acked := l.stop()
	if n := l.refused.Load() + l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the reloads, want 0: %v", n, l.errors)
	}
	for _, pid := range append(oldWorkers, oldSpoolers...) {
		if alive(pid) {
			t.Errorf("old child %d still alive after the reload", pid)
		}
	}
	s.waitRan(acked, 30*time.Second)
	t.Logf("%d tasks acknowledged across 2 reloads, 0 refused", len(acked))
}

// SIGTERM lets in-flight work finish: a request being served and a task
// being run both complete; exit status 0.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=1")
	if ok, err := s.spool("inflight", 10, "&sleep=1500ms"); !ok || err != nil {
		t.Fatalf("spool: %v %v", ok, err)
	}
	waitFile(t, filepath.Join(s.base, "started.log"), "start inflight")
	answered := make(chan error, 1)
	go func() {
		resp, err := s.client.Get("http://w/sleep?d=1s")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		answered <- err
	}()
	time.Sleep(200 * time.Millisecond)
	s.signal(syscall.SIGTERM)
	if code := s.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if err := <-answered; err != nil {
		t.Errorf("the request in flight at SIGTERM: %v", err)
	}
	runs, _ := s.ran()
	if runs["inflight"] != 1 {
		t.Errorf("the task running at SIGTERM ran %d times before the exit, want 1", runs["inflight"])
	}
	// The listener is closed with the master: nothing accepts any more.
	if c, err := net.Dial("unix", s.sock); err == nil {
		c.Close()
		t.Error("the socket still accepts after the master exited")
	}
}

// A second signal during a graceful shutdown kills the children at once.
func TestSecondSignalForcesShutdown(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=1", "GOSPOOL_TEST_STUCK=1")
	if ok, err := s.spool("forever", 10, "&sleep=60s"); !ok || err != nil {
		t.Fatalf("spool: %v %v", ok, err)
	}
	waitFile(t, filepath.Join(s.base, "started.log"), "start forever")
	s.signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	s.signal(syscall.SIGINT)
	if code := s.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(s.out.String(), "SIGINT received during shutdown: killing every child now") {
		t.Error("the forced shutdown is not logged")
	}
	t.Logf("forced shutdown took %v", time.Since(start))
}

func waitFile(t *testing.T, path, substr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), substr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never said %q (it says %q)", path, substr, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A child that does not stop within the reload mercy is SIGKILLed with
// uWSGI's NO MERCY line; the shutdown still ends with status 0, and the
// task it was running is still there for the next start.
func TestReloadMercy(t *testing.T) {
	s := startService(t, t.TempDir(), "GOSPOOL_TEST_WORKERS=1", "GOSPOOL_TEST_STUCK=1", "GOSPOOL_TEST_MERCY=1s")
	if ok, err := s.spool("stuck", 10, "&sleep=60s"); !ok || err != nil {
		t.Fatalf("spool: %v %v", ok, err)
	}
	waitFile(t, filepath.Join(s.base, "started.log"), "start stuck")
	_, spoolers := s.children()
	s.signal(syscall.SIGTERM)
	if code := s.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if want := fmt.Sprintf("spooler 1 (pid: %d) is taking too much time to die...NO MERCY !!!", spoolers[0]); !strings.Contains(s.out.String(), want) {
		t.Errorf("log lacks %q", want)
	}
	if runs, _ := s.ran(); runs["stuck"] != 0 {
		t.Fatalf("the stuck task ran to its end")
	}
	// The record its killed spooler held goes back into the ring: the next
	// master's spooler starts it again.
	startService(t, s.base, "GOSPOOL_TEST_WORKERS=1")
	deadline := time.Now().Add(15 * time.Second)
	for {
		data, _ := os.ReadFile(filepath.Join(s.base, "started.log"))
		if strings.Count(string(data), "start stuck") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task killed by NO MERCY did not start again: %q", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
