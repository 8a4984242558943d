package spooler

import (
	"context"
	"errors"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
)

// startSpooler runs a spooler on dir until the test ends.
func startSpooler(t *testing.T, cfg Config, register func(*Spooler)) (*Spooler, *testproc.Buffer) {
	t.Helper()
	logs := &testproc.Buffer{}
	cfg.Logger = log.New(logs, "", 0)
	if cfg.Ring.Geometry == (ring.Geometry{}) {
		cfg.Ring.Geometry = ring.Geometry{Lanes: 4, SlotsPerLane: 64, LaneBytes: 64 << 10, Consumers: 8}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	register(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	// Wait until the ring exists and the consumer is attached.
	waitFor(t, 5*time.Second, func() bool {
		r, err := ring.Open(filepath.Join(s.Dir(), ring.FileName), ring.Options{})
		if err != nil {
			return false
		}
		defer r.Close()
		return len(r.Stats().Consumers) > 0
	})
	return s, logs
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, logs ...*testproc.Buffer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			for _, l := range logs {
				t.Logf("spooler log:\n%s", l)
			}
			t.Fatalf("condition not met after %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRingTasksRunAndRetry(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	seen := map[string]int{}
	s, logs := startSpooler(t, Config{Dir: dir, RetryDelay: 20 * time.Millisecond}, func(s *Spooler) {
		s.Handle("flaky", func(ctx context.Context, tk *Task) error {
			id, _ := tk.Get("id")
			mu.Lock()
			defer mu.Unlock()
			seen[string(id)]++
			if TaskInfo(ctx).Attempt < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		s.Handle("boom", func(ctx context.Context, tk *Task) error {
			mu.Lock()
			seen["boom"]++
			n := seen["boom"]
			mu.Unlock()
			if n == 1 {
				panic("handler bug")
			}
			return nil
		})
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			id, _ := tk.Get("id")
			mu.Lock()
			seen[string(id)]++
			mu.Unlock()
			return nil
		})
	})
	c, err := NewClient(s.Dir(), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.UsesRing() {
		t.Fatal("client does not use the ring")
	}
	for _, tk := range []*Task{
		NewTask("task", "plain", "id", "a"),
		NewTask("task", "flaky", "id", "f"),
		NewTask("task", "boom"),
	} {
		if path, err := c.Spool(context.Background(), tk); err != nil || path != "" {
			t.Fatalf("Spool: %q %v", path, err)
		}
	}
	waitFor(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["a"] == 1 && seen["f"] == 3 && seen["boom"] == 2
	}, logs)
	if !strings.Contains(logs.String(), "handler panicked: handler bug") {
		t.Errorf("panic not logged:\n%s", logs)
	}
	// Everything settled: no spool file is left, the ring is empty.
	waitFor(t, 2*time.Second, func() bool {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "uwsgi_spoolfile_on_") {
				return false
			}
		}
		return true
	})
}

func TestAttemptSurvivesInTheFileName(t *testing.T) {
	cases := map[string]int{
		"uwsgi_spoolfile_on_h_1_2_3_4_5":         1,
		"uwsgi_spoolfile_on_h_1_2_3_4_5.retry1":  2,
		"uwsgi_spoolfile_on_h_1_2_3_4_5.retry41": 42,
		"uwsgi_spoolfile_on_h_1_2_3_4_5.retryx":  1,
		"uwsgi_spoolfile_on_h.retry_1_2_3_4_5":   1,
		"uwsgi_spoolfile_on_h_1_2_3_4_5.retry-3": 1,
	}
	for name, want := range cases {
		if got := attemptOf(name); got != want {
			t.Errorf("attemptOf(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestBackoffDoublesWithJitterUpToTheCap(t *testing.T) {
	s := &Spooler{cfg: Config{RetryDelay: time.Second, RetryMaxDelay: 10 * time.Second}}
	for attempt, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 60: 10 * time.Second} {
		for i := 0; i < 50; i++ {
			d := s.backoff(attempt)
			if d < base*8/10 || d > base*12/10 {
				t.Fatalf("attempt %d: backoff %v outside %v ±20%%", attempt, d, base)
			}
		}
	}
}

// A task retried by one spooler and run by a new one after a restart knows
// its attempt number, and the retried file carries the original pairs only.
func TestRetryAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	attempts := make(chan int, 10)
	run := func(fail bool) func() {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := New(Config{Dir: dir, RetryDelay: 10 * time.Millisecond, Logger: log.New(io.Discard, "", 0), Ring: ring.Options{Geometry: testGeometry}})
		if err != nil {
			t.Fatal(err)
		}
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			attempts <- TaskInfo(ctx).Attempt
			if fail {
				return errors.New("down")
			}
			return nil
		})
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		return func() { cancel(); <-done }
	}
	c, _ := NewClient(dir, ClientOptions{NoRing: true})
	defer c.Close()
	if _, err := c.Spool(context.Background(), NewTask("task", "x", "k", "v")); err != nil {
		t.Fatal(err)
	}
	stop := run(true)
	if a := <-attempts; a != 1 {
		t.Fatalf("first attempt %d", a)
	}
	if a := <-attempts; a != 2 {
		t.Fatalf("second attempt %d", a)
	}
	stop()
	// Whatever is pending now is a retry file; it has the original pairs.
	var retry string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".retry") {
			retry = e.Name()
		}
	}
	if retry == "" {
		t.Fatal("no retry file after the failed attempts")
	}
	tk, err := spoolfile.ReadFile(filepath.Join(dir, retry))
	if err != nil || len(tk.Pairs) != 2 || tk.Name() != "x" {
		t.Fatalf("retry file %s: %v %v", retry, tk, err)
	}
	stop = run(false)
	defer stop()
	want := attemptOf(retry)
	for a := range attempts {
		if a == want {
			return
		}
		if a > want {
			t.Fatalf("attempt %d after the restart, want %d", a, want)
		}
	}
}

// BeforeTasks runs once Run is attached to the ring: a task spooled then
// goes into the ring (not a file) and waits; no task runs before the hook
// returns, and a task's harakiri does not count the hook's time.
func TestBeforeTasks(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	var hookDone, ran sync.WaitGroup
	hookDone.Add(1)
	ran.Add(1)
	var early bool
	_, logs := startSpooler(t, Config{Dir: dir, Harakiri: 200 * time.Millisecond}, func(s *Spooler) {
		s.BeforeTasks(func(ctx context.Context) error {
			defer hookDone.Done()
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			select {
			case <-release:
			default:
				early = true
			}
			ran.Done()
			return nil
		})
	})
	c, err := NewClient(dir, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	where, err := c.Spool(context.Background(), NewTask("task", "x"))
	if err != nil {
		t.Fatal(err)
	}
	if where != "" {
		t.Errorf("spooled during BeforeTasks to %q, want the ring", where)
	}
	time.Sleep(400 * time.Millisecond) // past the harakiri, had the task started
	close(release)
	hookDone.Wait()
	ran.Wait()
	if early {
		t.Error("a task ran before BeforeTasks returned")
	}
	if strings.Contains(logs.String(), "HARAKIRI") {
		t.Errorf("harakiri during BeforeTasks:\n%s", logs)
	}
}

// A file that cannot be parsed, or that has stayed shorter than a header
// for over a minute, is moved to the quarantine with a log line and not
// run; a short file that may still be being written is left alone.
func TestUnparsableFilesAreQuarantined(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte, age time.Duration) string {
		path := filepath.Join(dir, spoolfile.Prefix+name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		if err := os.Chtimes(path, when, when); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// A header that promises 100 bytes of vars, then 3.
	write("torn", []byte{0x11, 100, 0, 0, 1, 0, 'k'}, 0)
	write("oldshort", []byte{0x11, 0}, 2*time.Minute)
	fresh := write("freshshort", []byte{0x11}, 0)
	var mu sync.Mutex
	var ran int
	_, logs := startSpooler(t, Config{Dir: dir}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			mu.Lock()
			ran++
			mu.Unlock()
			return nil
		})
	})
	q := filepath.Join(dir, QuarantineDir)
	waitFor(t, 10*time.Second, func() bool {
		ents, _ := os.ReadDir(q)
		return len(ents) == 2
	}, logs)
	for _, name := range []string{"torn", "oldshort"} {
		if _, err := os.Stat(filepath.Join(q, spoolfile.Prefix+name)); err != nil {
			t.Errorf("%s not in the quarantine: %v", name, err)
		}
		if !strings.Contains(logs.String(), "moved to "+filepath.Join(q, spoolfile.Prefix+name)+", not run") {
			t.Errorf("no log line for %s:\n%s", name, logs)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the fresh short file was touched: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if ran != 0 {
		t.Errorf("%d tasks ran", ran)
	}
}

// A task that cannot be settled (here the dead-letter directory cannot be
// made: a file has its name) stays where it is, and is not run again and
// again as fast as it fails: not before the next full scan.
func TestUnsettledTaskIsNotRetriedAtOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DeadDir), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var runs int
	_, logs := startSpooler(t, Config{Dir: dir, MaxRetries: 1, RetryDelay: time.Millisecond, Frequency: time.Hour}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			mu.Lock()
			runs++
			mu.Unlock()
			return errors.New("always fails")
		})
	})
	w, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(NewTask("task", "doomed")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "stays where it is") }, logs)
	time.Sleep(300 * time.Millisecond) // a spin would run it hundreds of times meanwhile
	mu.Lock()
	defer mu.Unlock()
	if runs != 2 {
		t.Errorf("the task ran %d times, want 2 (the first attempt and its one retry):\n%s", runs, logs)
	}
}

// A handler's context carries Run's values and TaskInfo, and is cancelled
// with Run's context.
func TestHandlerContext(t *testing.T) {
	type key struct{}
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	s.HandleDefault(func(ctx context.Context, tk *Task) error {
		v, _ := ctx.Value(key{}).(string)
		got <- v + " " + TaskInfo(ctx).Name
		<-ctx.Done()
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "run's value"))
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	c, err := NewClient(dir, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Spool(ctx, NewTask("task", "x")); err != nil {
		t.Fatal(err)
	}
	if v := <-got; !strings.HasPrefix(v, "run's value ring:") {
		t.Errorf("the handler saw %q, want Run's value and a ring task name", v)
	}
	cancel() // the handler returns only once its context is cancelled
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return: the handler's context was not cancelled")
	}
}

// A busy ring does not starve due files: a retry, an `at` task or a spill
// gets its turn among the ring's tasks, not after the ring runs dry.
func TestDueFilesGetTheirTurnOnABusyRing(t *testing.T) {
	dir := t.TempDir()
	g := ring.Geometry{Lanes: 1, SlotsPerLane: 4096, LaneBytes: 1 << 20, Consumers: 2}
	r, err := ring.Create(filepath.Join(dir, ring.FileName), ring.Options{Geometry: g})
	if err != nil {
		t.Fatal(err)
	}
	busy := attachIdleConsumer(t, dir) // a spooler is attached: tasks go into the ring
	c, err := NewClient(dir, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := range n {
		if where, err := c.Spool(context.Background(), NewTask("kind", "ring", "i", strconv.Itoa(i))); err != nil || where != "" {
			t.Fatalf("ring task %d: %q, %v", i, where, err)
		}
	}
	c.Close()
	busy()
	r.Close()
	w, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(NewTask("kind", "file")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	_, logs := startSpooler(t, Config{Dir: dir, Quiet: true, Ring: ring.Options{Geometry: g}}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			kind, _ := tk.Get("kind")
			mu.Lock()
			order = append(order, string(kind))
			mu.Unlock()
			return nil
		})
	})
	waitFor(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == n+1 }, logs)
	mu.Lock()
	defer mu.Unlock()
	at := slices.Index(order, "file")
	if at < 0 || at > 2*filesTurn {
		t.Errorf("the due file ran as task %d of %d, want within the first %d", at, n+1, 2*filesTurn)
	}
}

// A handler that asks to run again (ErrRetry, or Retry through
// ResultHandler, as a @spoolforever heartbeat) is rescheduled, not failed:
// with MaxRetries 2 it runs far more than 3 times and is never buried, each
// run is attempt 1, and its log line says it was rescheduled. A handler
// that fails is still buried after its retries, and a task that asks to
// rerun after failures starts its count again.
func TestRequestedRerunIsNotAFailure(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	attempts := map[string][]int{}
	note := func(ctx context.Context, name string) int {
		mu.Lock()
		defer mu.Unlock()
		attempts[name] = append(attempts[name], TaskInfo(ctx).Attempt)
		return len(attempts[name])
	}
	s, logs := startSpooler(t, Config{Dir: dir, MaxRetries: 2, RetryDelay: 5 * time.Millisecond, RetryMaxDelay: 5 * time.Millisecond, RerunDelay: 5 * time.Millisecond}, func(s *Spooler) {
		s.Handle("beat", func(ctx context.Context, tk *Task) error {
			note(ctx, "beat")
			return ErrRetry
		})
		s.Handle("rc", ResultHandler(func(ctx context.Context, tk *Task) Result {
			note(ctx, "rc")
			return Retry
		}))
		s.Handle("broken", func(ctx context.Context, tk *Task) error {
			note(ctx, "broken")
			return errors.New("smtp down")
		})
		s.Handle("mends", func(ctx context.Context, tk *Task) error {
			switch note(ctx, "mends") {
			case 1, 2:
				return errors.New("not yet")
			case 3:
				return ErrRetry
			}
			return nil
		})
	})
	c, err := NewClient(s.Dir(), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{"beat", "rc", "broken", "mends"} {
		if _, err := c.Spool(context.Background(), NewTask("task", name)); err != nil {
			t.Fatal(err)
		}
	}
	deadFiles := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, DeadDir, "uwsgi_spoolfile_on_*[0-9]"))
		return m
	}
	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts["beat"]) >= 6 && len(attempts["rc"]) >= 6 && len(attempts["mends"]) >= 4 && len(deadFiles()) >= 1
	}, logs)
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"beat", "rc"} {
		for i, a := range attempts[name] {
			if a != 1 {
				t.Errorf("%s: run %d was attempt %d, want 1 every time (runs: %v)", name, i+1, a, attempts[name])
			}
		}
	}
	if got := attempts["broken"]; !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("broken ran as attempts %v, want [1 2 3] then buried", got)
	}
	if got := attempts["mends"]; !slices.Equal(got[:4], []int{1, 2, 3, 1}) {
		t.Errorf("mends ran as attempts %v, want [1 2 3 1...]: a requested rerun starts the count again", got)
	}
	if dead := deadFiles(); len(dead) != 1 {
		t.Fatalf("dead letters %v, want only the broken task", dead)
	} else if note, _ := os.ReadFile(dead[0] + ".error"); !strings.Contains(string(note), "smtp down") {
		t.Errorf("the dead letter is not the broken task: %s", note)
	}
	l := logs.String()
	if !strings.Contains(l, "asked to run again (SPOOL_RETRY): rescheduled in 5ms") {
		t.Errorf("no rescheduled line in the log:\n%s", l)
	}
	for _, line := range strings.Split(l, "\n") {
		if strings.Contains(line, "failed") && strings.Contains(line, "SPOOL_RETRY") {
			t.Errorf("a requested rerun logged as a failure: %s", line)
		}
	}
	r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st := r.Stats(); st.Failed != 5 || st.Dead != 1 {
		t.Errorf("failed %d, dead %d: want 5 failures (broken 3, mends 2) and 1 dead", st.Failed, st.Dead)
	}
}

// The wait before a requested rerun defaults to uWSGI's cadence, the scan
// period, or the retry delay when the periodic scan is off.
func TestRerunDelayDefaults(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want time.Duration
	}{
		{Config{}, 30 * time.Second},
		{Config{Frequency: 5 * time.Second}, 5 * time.Second},
		{Config{Frequency: -1, RetryDelay: 3 * time.Second}, 3 * time.Second},
		{Config{Frequency: -1}, time.Second},
		{Config{RerunDelay: 7 * time.Second}, 7 * time.Second},
	} {
		c.cfg.Dir = t.TempDir()
		s, err := New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s.cfg.RerunDelay != c.want {
			t.Errorf("Frequency %v, RetryDelay %v, RerunDelay %v: got %v, want %v", c.cfg.Frequency, c.cfg.RetryDelay, c.cfg.RerunDelay, s.cfg.RerunDelay, c.want)
		}
	}
}

// attachIdleConsumer attaches a consumer to dir's ring that takes nothing,
// as a spooler busy with a long task: producers then use the ring. It is
// detached by the function returned, or when the test ends.
func attachIdleConsumer(t *testing.T, dir string) (detach func()) {
	t.Helper()
	r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Consumer()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	var once sync.Once
	detach = func() { once.Do(func() { c.Close(); r.Close() }) }
	t.Cleanup(detach)
	return detach
}
