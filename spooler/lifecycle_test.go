package spooler

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/ring"
)

// Tests of a spooler's life cycle: harakiri, the task hooks, Shutdown.

// running is a spooler whose Run the test controls.
type running struct {
	s        *Spooler
	logs     *testproc.Buffer
	cancel   context.CancelFunc
	finished chan struct{} // closed when Run returned, with err
	err      error
}

// wait returns Run's result, once Run returned.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.finished:
		return r.err
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return; log:\n%s", r.logs)
		return nil
	}
}

// runSpooler starts Run in a goroutine; the test stops it (the cleanup only
// makes sure it is gone).
func runSpooler(t *testing.T, cfg Config, register func(*Spooler)) *running {
	t.Helper()
	logs := &testproc.Buffer{}
	cfg.Logger = log.New(logs, "", 0)
	if cfg.Ring.Geometry == (ring.Geometry{}) {
		cfg.Ring.Geometry = testGeometry
	}
	if cfg.Frequency == 0 {
		// A spool file that a full scan misses (spooldir.Dir.Scan can
		// overwrite an inotify update that lands while it reads the
		// directory) is found by the next scan: soon, in a test.
		cfg.Frequency = 200 * time.Millisecond
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	register(s)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, logs: logs, cancel: cancel, finished: make(chan struct{})}
	go func() {
		r.err = s.Run(ctx)
		close(r.finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.finished:
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return after cancel; log:\n%s", logs)
		}
	})
	select {
	case <-s.Ready():
	case <-r.finished:
		t.Fatalf("Run: %v", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("spooler not ready")
	}
	return r
}

// waitDump is waitFor that also logs every goroutine's stack when the
// condition is not met in time: a spooler stuck somewhere shows where.
func waitDump(t *testing.T, d time.Duration, cond func() bool, logs ...*testproc.Buffer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			var stacks strings.Builder
			pprof.Lookup("goroutine").WriteTo(&stacks, 2)
			t.Logf("goroutines:\n%s", stacks.String())
			for _, l := range logs {
				t.Logf("spooler log:\n%s", l)
			}
			t.Fatalf("condition not met after %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// spool hands a task to dir through the ring, or as a spool file.
func spool(t *testing.T, dir string, viaFile bool, tk *Task) {
	t.Helper()
	c, err := NewClient(dir, ClientOptions{NoRing: viaFile})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	path, err := c.Spool(context.Background(), tk)
	if err != nil {
		t.Fatal(err)
	}
	if viaFile != (path != "") {
		t.Fatalf("spooled to %q, want a file: %v", path, viaFile)
	}
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "uwsgi_spoolfile_on_*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func ringStats(t *testing.T, dir string) ring.Stats {
	t.Helper()
	r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.Stats()
}

func recv[T any](t *testing.T, ch <-chan T, what string, logs *testproc.Buffer) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s; log:\n%s", what, logs)
		panic("unreachable")
	}
}

// event is what a hook or handler saw.
type event struct {
	what    string // "start", "run", "end"
	name    string
	attempt int
	result  Result
}

// A handler stuck past Config.Harakiri, ignoring its context: its task is
// settled at once as a failed attempt and retried from a .retry1 file (the
// retry runs and succeeds while the stuck handler still holds its slot);
// the stuck handler's context is cancelled with ErrHarakiri; its Hold stays
// valid; when it finally returns OK, that result is ignored and OnTaskEnd
// reports Retry. For ring tasks and for spool files.
func TestHarakiriRetriesStuckHandler(t *testing.T) {
	for _, viaFile := range []bool{false, true} {
		t.Run(map[bool]string{false: "ring", true: "file"}[viaFile], func(t *testing.T) {
			dir := t.TempDir()
			events := make(chan event, 100)
			stuck := make(chan context.Context, 1)
			release := make(chan struct{})
			holdOK := make(chan error, 1)
			rs := runSpooler(t, Config{Dir: dir, Concurrency: 2, Harakiri: 300 * time.Millisecond, RetryDelay: 10 * time.Millisecond,
				OnTaskStart: func(i Info) { events <- event{what: "start", name: i.Name, attempt: i.Attempt} },
				OnTaskEnd:   func(i Info, r Result) { events <- event{what: "end", name: i.Name, attempt: i.Attempt, result: r} },
			}, func(s *Spooler) {
				s.HandleDefault(func(ctx context.Context, tk *Task) error {
					info := TaskInfo(ctx)
					events <- event{what: "run", name: info.Name, attempt: info.Attempt}
					if info.Attempt > 1 {
						return nil
					}
					stuck <- ctx
					<-release // ignores ctx: Go cannot stop it
					_, err := info.Hold[0].Stat()
					holdOK <- err
					return nil
				})
			})
			spool(t, dir, viaFile, NewTask("task", "slow", "id", "x"))

			first := recv(t, events, "start", rs.logs)
			if first.what != "start" || first.attempt != 1 {
				t.Fatalf("first event %+v", first)
			}
			if e := recv(t, events, "run", rs.logs); e.what != "run" || e.name != first.name {
				t.Fatalf("second event %+v", e)
			}
			ctx := recv(t, stuck, "the stuck handler", rs.logs)
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("the stuck handler's context was not cancelled")
			}
			if cause := context.Cause(ctx); !errors.Is(cause, ErrHarakiri) || cause.Error() != "harakiri: still running after 300ms" {
				t.Fatalf("cancellation cause %q, want %q wrapping ErrHarakiri", cause, "harakiri: still running after 300ms")
			}
			// The retry runs while the first attempt is still stuck.
			for _, want := range []event{{what: "start", attempt: 2}, {what: "run", attempt: 2}, {what: "end", attempt: 2, result: OK}} {
				if e := recv(t, events, want.what, rs.logs); e.what != want.what || e.attempt != want.attempt || e.result != want.result {
					t.Fatalf("got %+v, want %+v; log:\n%s", e, want, rs.logs)
				}
			}
			logs := rs.logs.String()
			if want := fmt.Sprintf("*** HARAKIRI ON THE SPOOLER (pid: %d) *** task %s (attempt 1) still running after 300ms", os.Getpid(), first.name); !strings.Contains(logs, want) {
				t.Fatalf("log lacks %q:\n%s", want, logs)
			}
			if !strings.Contains(logs, "attempt 1 failed: harakiri: still running after 300ms; retry in") {
				t.Fatalf("the retry is not logged:\n%s", logs)
			}
			if viaFile {
				if _, err := os.Stat(filepath.Join(dir, first.name)); !os.IsNotExist(err) {
					t.Fatalf("the original spool file is still there: %v", err)
				}
			}
			select {
			case e := <-events:
				t.Fatalf("event %+v while the first handler is stuck", e)
			default:
			}

			close(release)
			if err := recv(t, holdOK, "the stuck handler's return", rs.logs); err != nil {
				t.Fatalf("Info.Hold was closed under the running handler: %v", err)
			}
			if e := recv(t, events, "end of the stuck one", rs.logs); e.what != "end" || e.attempt != 1 || e.result != Retry || e.name != first.name {
				t.Fatalf("got %+v, want the end of attempt 1 with Retry", e)
			}
			waitDump(t, 5*time.Second, func() bool {
				return strings.Contains(rs.logs.String(), "task "+first.name+" returned after its harakiri (OK); its result is ignored")
			}, rs.logs)

			rs.cancel()
			if err := rs.wait(t); err != nil {
				t.Fatal(err)
			}
			if files := spoolFiles(t, dir); len(files) != 0 {
				t.Fatalf("spool files left: %v", files)
			}
			if st := ringStats(t, dir); st.Done != 1 || st.Failed != 1 || st.Retried != 1 || st.InFlight != 0 || st.Ready != 0 {
				t.Fatalf("counters: %+v", st)
			}
			if bad := containsAny(rs.logs.String(), "no longer owned", "already released", "cannot"); bad != "" {
				t.Fatalf("the task was settled twice? %q in the log:\n%s", bad, rs.logs)
			}
		})
	}
}

// containsAny returns the first of subs that s contains, or "".
func containsAny(s string, subs ...string) string {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return sub
		}
	}
	return ""
}

// With one slot, a handler stuck past its harakiri still holds the slot:
// nothing else runs in this process until it returns, so a master sees the
// process busy and kills it.
func TestHarakiriKeepsTheSlotUntilTheHandlerReturns(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	ran := make(chan string, 10)
	var busy sync.Map // task id -> true between OnTaskStart and OnTaskEnd
	rs := runSpooler(t, Config{Dir: dir, Harakiri: 100 * time.Millisecond, RetryDelay: time.Hour,
		OnTaskStart: func(i Info) { busy.Store(i.Name, true) },
		OnTaskEnd:   func(i Info, r Result) { busy.Delete(i.Name) },
	}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			id, _ := tk.Get("id")
			ran <- string(id)
			if string(id) == "stuck" {
				<-release
			}
			return nil
		})
	})
	spool(t, dir, false, NewTask("id", "stuck"))
	if id := recv(t, ran, "the stuck task", rs.logs); id != "stuck" {
		t.Fatalf("ran %s", id)
	}
	waitDump(t, 10*time.Second, func() bool { return strings.Contains(rs.logs.String(), "HARAKIRI") }, rs.logs)
	spool(t, dir, false, NewTask("id", "next"))
	time.Sleep(200 * time.Millisecond) // "next" would run now if the slot were free
	select {
	case id := <-ran:
		t.Fatalf("%s ran while the stuck handler held the only slot", id)
	default:
	}
	n := 0
	busy.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d tasks busy, want the stuck one", n)
	}
	close(release)
	if id := recv(t, ran, "the next task", rs.logs); id != "next" {
		t.Fatalf("ran %s, want next", id)
	}
}

// A handler that honours its context returns at once after the harakiri;
// after MaxRetries such attempts the task is buried in DeadDir with the
// harakiri as its last error, for ring tasks and spool files.
func TestHarakiriBuriesAfterMaxRetries(t *testing.T) {
	for _, viaFile := range []bool{false, true} {
		t.Run(map[bool]string{false: "ring", true: "file"}[viaFile], func(t *testing.T) {
			dir := t.TempDir()
			rs := runSpooler(t, Config{Dir: dir, MaxRetries: 1, Harakiri: 50 * time.Millisecond, RetryDelay: 10 * time.Millisecond}, func(s *Spooler) {
				s.HandleDefault(func(ctx context.Context, tk *Task) error {
					<-ctx.Done()
					return ctx.Err()
				})
			})
			spool(t, dir, viaFile, NewTask("task", "hang", "id", "h"))
			// The note is complete before the task appears beside it.
			var dead []string
			waitDump(t, 10*time.Second, func() bool {
				dead, _ = filepath.Glob(filepath.Join(dir, DeadDir, "uwsgi_spoolfile_on_*[0-9]"))
				return len(dead) > 0
			}, rs.logs)
			if len(dead) != 1 {
				t.Fatalf("dead tasks: %v", dead)
			}
			note, err := os.ReadFile(dead[0] + ".error")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(note), "attempts: 2\nlast error: harakiri: still running after 50ms") {
				t.Fatalf("dead-letter note:\n%s", note)
			}
			rs.cancel()
			rs.wait(t)
			if st := ringStats(t, dir); st.Dead != 1 || st.Failed != 2 || st.InFlight != 0 {
				t.Fatalf("counters: %+v", st)
			}
			if files := spoolFiles(t, dir); len(files) != 0 {
				t.Fatalf("spool files left: %v", files)
			}
		})
	}
}

// Handlers that finish right around their harakiri, many at once: each
// attempt is settled exactly once, by its return or by its harakiri, never
// both; every task ends done exactly once, and nothing is left behind.
func TestHarakiriRacesHandlerReturns(t *testing.T) {
	dir := t.TempDir()
	const n = 60
	var mu sync.Mutex
	okEnds := map[string]int{}
	rs := runSpooler(t, Config{Dir: dir, Concurrency: 8, Harakiri: 3 * time.Millisecond, RetryDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
		Quiet: true, Frequency: 50 * time.Millisecond,
		OnTaskEnd: func(i Info, r Result) {
			if r == OK {
				mu.Lock()
				okEnds[i.Name]++
				mu.Unlock()
			}
		},
	}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			select {
			case <-time.After(time.Duration(rand.IntN(6000)) * time.Microsecond):
				return nil
			case <-ctx.Done():
				if rand.IntN(2) == 0 {
					return nil // a late OK: ignored
				}
				return ctx.Err()
			}
		})
	})
	for i := 0; i < n; i++ {
		spool(t, dir, i%2 == 1, NewTask("id", fmt.Sprint(i)))
	}
	waitDump(t, 60*time.Second, func() bool {
		st := ringStats(t, dir)
		return st.Done == n && len(spoolFiles(t, dir)) == 0
	}, rs.logs)
	rs.cancel()
	rs.wait(t)
	logs := rs.logs.String()
	t.Logf("%d harakiris, %d late returns", strings.Count(logs, "HARAKIRI"), strings.Count(logs, "returned after its harakiri"))
	st := ringStats(t, dir)
	if st.Done != n || st.InFlight != 0 || st.Ready != 0 || st.Claimed != 0 || st.Dead != 0 {
		t.Fatalf("counters: %+v", st)
	}
	// A retried task's OK end carries its retry file's name, so count the
	// OK results in all: one per task.
	total := 0
	for _, c := range okEnds {
		total += c
	}
	if total != n {
		t.Fatalf("%d OK results applied, want %d: %v", total, n, okEnds)
	}
	if bad := containsAny(rs.logs.String(), "no longer owned", "already released", "cannot"); bad != "" {
		t.Fatalf("a task was settled twice? %q in the log:\n%s", bad, rs.logs)
	}
}

// OnTaskStart and OnTaskEnd bracket every handler call with the task's Info
// and the result applied; without Harakiri nothing else changes.
func TestTaskHooks(t *testing.T) {
	dir := t.TempDir()
	events := make(chan event, 100)
	rs := runSpooler(t, Config{Dir: dir, RetryDelay: 10 * time.Millisecond,
		OnTaskStart: func(i Info) { events <- event{what: "start", name: i.Name, attempt: i.Attempt} },
		OnTaskEnd:   func(i Info, r Result) { events <- event{what: "end", name: i.Name, attempt: i.Attempt, result: r} },
	}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			i := TaskInfo(ctx)
			events <- event{what: "run", name: i.Name, attempt: i.Attempt}
			if i.Attempt == 1 {
				return errors.New("not yet")
			}
			return nil
		})
	})
	spool(t, dir, false, NewTask("id", "a"))
	var got []event
	for len(got) < 6 {
		got = append(got, recv(t, events, "hook events", rs.logs))
	}
	wantSeq := []event{{"start", "", 1, 0}, {"run", "", 1, 0}, {"end", "", 1, Retry}, {"start", "", 2, 0}, {"run", "", 2, 0}, {"end", "", 2, OK}}
	for i, w := range wantSeq {
		g := got[i]
		if g.what != w.what || g.attempt != w.attempt || g.result != w.result {
			t.Fatalf("event %d: %+v, want %+v (all: %+v)", i, g, w, got)
		}
	}
	if got[0].name != got[2].name || !strings.HasPrefix(got[0].name, "ring:") || got[3].name != got[5].name || !strings.Contains(got[3].name, ".retry1") {
		t.Fatalf("names: %+v", got)
	}
	if strings.Contains(rs.logs.String(), "HARAKIRI") {
		t.Fatalf("harakiri without Config.Harakiri:\n%s", rs.logs)
	}
}

// Shutdown stops taking tasks at once and lets the running ones (one from
// the ring, one from a file) finish, uncancelled; then Run and Shutdown
// return nil. Tasks spooled meanwhile wait for the next spooler, which runs
// them: nothing is lost.
func TestShutdownLetsRunningTasksFinish(t *testing.T) {
	dir := t.TempDir()
	started := make(chan string, 10)
	finished := make(chan string, 10)
	release := make(chan struct{})
	rs := runSpooler(t, Config{Dir: dir, Concurrency: 4}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			id, _ := tk.Get("id")
			started <- string(id)
			select {
			case <-release:
				finished <- string(id)
				return nil
			case <-ctx.Done():
				finished <- string(id) + " cancelled"
				return ctx.Err()
			}
		})
	})
	spool(t, dir, false, NewTask("id", "ring-running"))
	spool(t, dir, true, NewTask("id", "file-running"))
	running := map[string]bool{}
	for len(running) < 2 {
		running[recv(t, started, "the running tasks", rs.logs)] = true
	}

	shutdown := make(chan error, 1)
	go func() { shutdown <- rs.s.Shutdown(context.Background()) }()
	waitDump(t, 10*time.Second, func() bool {
		return strings.Contains(rs.logs.String(), "stopping: waiting for 2 running task(s) to finish")
	}, rs.logs)
	spool(t, dir, false, NewTask("id", "ring-later"))
	spool(t, dir, true, NewTask("id", "file-later"))
	time.Sleep(200 * time.Millisecond) // they would start now if Run still took tasks
	select {
	case id := <-started:
		t.Fatalf("%s started after Shutdown", id)
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with tasks running", err)
	case <-rs.finished:
		t.Fatalf("Run returned %v with tasks running", rs.err)
	default:
	}

	close(release)
	for i := 0; i < 2; i++ {
		if id := recv(t, finished, "the running tasks' end", rs.logs); strings.HasSuffix(id, "cancelled") {
			t.Fatalf("%s by a graceful Shutdown", id)
		}
	}
	if err := recv(t, shutdown, "Shutdown's return", rs.logs); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := rs.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := rs.s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown after Run returned: %v", err)
	}
	if st := ringStats(t, dir); st.Done != 2 || st.Ready != 1 || st.InFlight != 0 {
		t.Fatalf("after the shutdown: %+v", st)
	}

	heir := runSpooler(t, Config{Dir: dir}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			id, _ := tk.Get("id")
			started <- string(id)
			return nil
		})
	})
	later := map[string]bool{}
	for len(later) < 2 {
		later[recv(t, started, "the tasks spooled during the shutdown", heir.logs)] = true
	}
	if !later["ring-later"] || !later["file-later"] {
		t.Fatalf("the next spooler ran %v", later)
	}
}

// Shutdown whose context ends first cancels the running handlers (their
// tasks are retried), waits for Run and returns the context's error; the
// retry runs in the next spooler.
func TestShutdownDeadlineCancelsHandlers(t *testing.T) {
	dir := t.TempDir()
	started := make(chan int, 10)
	rs := runSpooler(t, Config{Dir: dir, RetryDelay: 10 * time.Millisecond}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			started <- TaskInfo(ctx).Attempt
			<-ctx.Done()
			return ctx.Err()
		})
	})
	spool(t, dir, false, NewTask("id", "long"))
	recv(t, started, "the long task", rs.logs)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := rs.s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	// Shutdown returned after Run was done: its ring consumer is gone.
	if st := ringStats(t, dir); len(st.Consumers) != 0 || st.InFlight != 0 {
		t.Fatalf("Shutdown returned before Run finished: %+v", st)
	}
	if err := rs.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if files := spoolFiles(t, dir); len(files) != 1 || !strings.Contains(files[0], ".retry1") {
		t.Fatalf("the cancelled task's retry: %v", files)
	}
	heir := runSpooler(t, Config{Dir: dir}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			started <- TaskInfo(ctx).Attempt
			return nil
		})
	})
	if a := recv(t, started, "the retry", heir.logs); a != 2 {
		t.Fatalf("the next spooler ran attempt %d, want 2", a)
	}
}

// Run's own context keeps its meaning during a graceful Shutdown: cancelling
// it cancels the handlers at once.
func TestRunContextCancelsDuringShutdown(t *testing.T) {
	dir := t.TempDir()
	cancelled := make(chan struct{})
	started := make(chan struct{}, 1)
	rs := runSpooler(t, Config{Dir: dir}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			started <- struct{}{}
			<-ctx.Done()
			close(cancelled)
			return ctx.Err()
		})
	})
	spool(t, dir, false, NewTask("id", "x"))
	recv(t, started, "the task", rs.logs)
	shutdown := make(chan error, 1)
	go func() { shutdown <- rs.s.Shutdown(context.Background()) }()
	rs.cancel()
	recv(t, cancelled, "the handler's cancellation", rs.logs)
	if err := recv(t, shutdown, "Shutdown's return", rs.logs); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := rs.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Shutdown before Run: Run returns nil at once without touching the
// directory; Shutdown can be called again, concurrently, any time.
func TestShutdownBeforeRunAndTwice(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown %d before Run: %v", i, err)
		}
	}
	if err := s.Run(context.Background()); err != nil {
		t.Fatalf("Run after Shutdown: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ring.FileName)); !os.IsNotExist(err) {
		t.Fatalf("Run after Shutdown created the ring: %v", err)
	}
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "a Spooler runs once") {
		t.Fatalf("second Run: %v", err)
	}

	// Several Shutdowns at once, while a task runs: all wait for it.
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	rs := runSpooler(t, Config{Dir: t.TempDir()}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			started <- struct{}{}
			<-release
			return nil
		})
	})
	spool(t, rs.s.Dir(), false, NewTask("id", "x"))
	recv(t, started, "the task", rs.logs)
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { errs <- rs.s.Shutdown(context.Background()) }()
	}
	close(release)
	for i := 0; i < 3; i++ {
		if err := recv(t, errs, "Shutdown's return", rs.logs); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	if err := rs.wait(t); err != nil {
		t.Fatal(err)
	}
}

// After MaxTasks the running handlers finish (they are not cancelled), as a
// uWSGI spooler finishes its task before it recycles.
func TestMaxTasksLetsRunningTasksFinish(t *testing.T) {
	dir := t.TempDir()
	started := make(chan string, 10)
	ended := make(chan error, 10)
	release := make(chan struct{})
	rs := runSpooler(t, Config{Dir: dir, Concurrency: 2, MaxTasks: 2}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			id, _ := tk.Get("id")
			started <- string(id)
			select {
			case <-release:
			case <-ctx.Done():
			}
			ended <- ctx.Err()
			return ctx.Err()
		})
	})
	spool(t, dir, false, NewTask("id", "a"))
	spool(t, dir, false, NewTask("id", "b"))
	recv(t, started, "task a", rs.logs)
	recv(t, started, "task b", rs.logs)
	close(release)
	for i := 0; i < 2; i++ {
		if err := recv(t, ended, "a task's end", rs.logs); err != nil {
			t.Fatalf("a running task was cancelled at MaxTasks: %v", err)
		}
	}
	if err := rs.wait(t); !errors.Is(err, ErrMaxTasks) {
		t.Fatalf("Run: %v, want ErrMaxTasks", err)
	}
	if st := ringStats(t, dir); st.Done != 2 || st.Retried != 0 {
		t.Fatalf("counters: %+v", st)
	}
}
