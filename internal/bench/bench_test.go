package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/task"
)

func TestTasksOfCoversEveryNumberOnce(t *testing.T) {
	for _, c := range []struct{ tasks, producers int }{{1, 1}, {5, 2}, {2000, 2}, {7, 3}, {10, 10}, {11, 4}} {
		o := Options{Producers: c.producers, Tasks: c.tasks}
		seen := make([]int, c.tasks)
		total := 0
		for k := range c.producers {
			for j := range o.TasksOf(k) {
				n := k + j*c.producers
				if n >= c.tasks {
					t.Fatalf("%+v: producer %d sends task %d", c, k, n)
				}
				seen[n]++
			}
			total += o.TasksOf(k)
		}
		if total != c.tasks {
			t.Errorf("%+v: %d tasks in all", c, total)
		}
		for n, s := range seen {
			if s != 1 {
				t.Errorf("%+v: task %d sent %d times", c, n, s)
			}
		}
	}
}

func TestIntended(t *testing.T) {
	o := Options{Producers: 2, Tasks: 10, Rate: 200}
	if got := o.Intended(1000, 0); got != 1000 {
		t.Errorf("task 0: %d", got)
	}
	if got := o.Intended(1000, 3); got != 1000+15_000_000 {
		t.Errorf("task 3 at 200/s: %d", got)
	}
}

// TestSchedule: only the spool calls move the schedule. A call longer than
// the interval delays the next tasks until the schedule has caught up; a
// producer that is late on its own (its sleep overslept) owes nothing.
func TestSchedule(t *testing.T) {
	const ms = int64(1_000_000)
	var sc Schedule
	steps := []struct {
		intended, call, want int64
	}{
		{0, 1 * ms, 0},        // on time
		{10 * ms, 35 * ms, 0}, // this call blocks 35 ms
		{20 * ms, 1 * ms, 25 * ms},
		{30 * ms, 1 * ms, 16 * ms}, // s = 45 + 1
		{40 * ms, 1 * ms, 7 * ms},  // s = 46 + 1
		{50 * ms, 1 * ms, 0},       // caught up
		{60 * ms, 0, 0},
	}
	for i, s := range steps {
		if got := sc.Next(s.intended); got != s.want {
			t.Errorf("step %d: delay %d ms, want %d ms", i, got/ms, s.want/ms)
		}
		sc.Called(s.call)
	}
}

func TestSummarize(t *testing.T) {
	o := Options{Producers: 2, Tasks: 4, Rate: 100}
	samples := []Sample{
		{N: 0, T0: 1000, Handled: 1100},              // 100
		{N: 1, T0: 2000, Handled: 2300},              // 300
		{N: 2, T0: 3000, Handled: 3200, Delay: 5000}, // 5200: corrected
		{N: 1, T0: 2000, Handled: 9000},              // a second run: ignored
		{N: 3, T0: 4000, Handled: 5000},              // 1000
	}
	r, err := Summarize("gospool", o, samples, []int64{50, 40, 30, 20})
	if err != nil {
		t.Fatal(err)
	}
	if r.Measured != 4 || r.Delayed != 1 || r.HandoffHist.TotalCount() != 4 {
		t.Errorf("measured %d, delayed %d, histogram count %d", r.Measured, r.Delayed, r.HandoffHist.TotalCount())
	}
	h := r.Handoff
	if !(h.P50 <= h.P90 && h.P90 <= h.P99 && h.P99 <= h.P999 && h.P999 <= h.Max) {
		t.Errorf("percentiles out of order: %+v", h)
	}
	// 3 significant digits: within 0.1%.
	if h.Max < 5200 || h.Max > 5206 {
		t.Errorf("max %d, want 5200 (the corrected task)", h.Max)
	}
	if h.P50 < 300 || h.P50 > 301 {
		t.Errorf("p50 %d, want 300", h.P50)
	}
	if r.SpoolCall.P50 < 30 || r.SpoolCall.P50 > 31 || r.SpoolCall.P99 < 50 || r.SpoolCall.P99 > 51 {
		t.Errorf("spool call %+v", r.SpoolCall)
	}
	// 4 tasks from the first T0 (1000) to the last handler (5000).
	if want := 4 / 4000e-9; r.Throughput != want {
		t.Errorf("throughput %v, want %v", r.Throughput, want)
	}
	if r.Impl != "gospool" || r.Language != "go" || r.Rate != 100 || r.Tasks != 4 || r.Producers != 2 {
		t.Errorf("result %+v", r)
	}

	if _, err := Summarize("gospool", o, nil, nil); err == nil {
		t.Error("no samples: no error")
	}
	if _, err := Summarize("gospool", o, []Sample{{N: 4}}, nil); err == nil {
		t.Error("task number out of range: no error")
	}
	if _, err := Summarize("gospool", Options{Producers: 1, Tasks: 0}, samples, nil); err == nil {
		t.Error("bad options: no error")
	}
}

func TestDurationAndRate(t *testing.T) {
	for ns, want := range map[int64]string{
		0: "0ns", 850: "850ns", 999: "999ns", 1000: "1.00µs", 12_345: "12.3µs", 123_456: "123µs",
		999_400: "999µs", 999_600: "1.00ms", 2_314_000: "2.31ms", 1_200_000_000: "1.20s", 125_000_000_000: "125s",
	} {
		if got := Duration(ns); got != want {
			t.Errorf("Duration(%d) = %q, want %q", ns, got, want)
		}
	}
	for v, want := range map[float64]string{
		0.5: "0.50/s", 200: "200/s", 12_345: "12.3k/s", 405_123: "405k/s", 1_234_567: "1.23M/s",
	} {
		if got := PerSecond(v); got != want {
			t.Errorf("PerSecond(%v) = %q, want %q", v, got, want)
		}
	}
}

func testResult(t *testing.T) *Result {
	t.Helper()
	r, err := Summarize("gospool", Options{Producers: 1, Tasks: 2}, []Sample{{N: 0, T0: 0, Handled: 2000}, {N: 1, T0: 10, Handled: 5000}}, []int64{300, 400})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestWriteJSON: the contract's keys (docs/design.md, "Command line"), in a
// list.
func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, []*Result{testResult(t)}); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(got) != 1 {
		t.Fatalf("%d objects", len(got))
	}
	o := got[0]
	for _, k := range []string{"impl", "producers", "tasks", "rate", "handoff_ns", "spool_call_ns", "throughput_per_s", "measured"} {
		if _, ok := o[k]; !ok {
			t.Errorf("no %q in %s", k, b.String())
		}
	}
	if _, ok := o["spilled"]; ok {
		t.Errorf("spilled 0 is shown: %s", b.String())
	}
	h, _ := o["handoff_ns"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := h[k].(float64); !ok {
			t.Errorf("handoff_ns has no number %q: %s", k, b.String())
		}
	}
	c, _ := o["spool_call_ns"].(map[string]any)
	for _, k := range []string{"p50", "p99"} {
		if _, ok := c[k].(float64); !ok {
			t.Errorf("spool_call_ns has no number %q: %s", k, b.String())
		}
	}
	b.Reset()
	WriteJSON(&b, nil)
	if strings.TrimSpace(b.String()) != "[]" {
		t.Errorf("no results: %q", b.String())
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	r := testResult(t)
	r2 := *r
	r2.Impl, r2.Rate, r2.Language = "uwsgi", 200, "python"
	if err := WriteTable(&b, []*Result{r, &r2}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	if f := strings.Fields(lines[0]); f[0] != "impl" || f[len(f)-1] != "throughput" {
		t.Errorf("header %q", lines[0])
	}
	for i, want := range []string{"gospool  1 go ", "uwsgi    1 python "} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d %q, want it to start with %q", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[2], "200/s") || !strings.Contains(lines[1], "µs") {
		t.Errorf("table:\n%s", b.String())
	}
}

// TestSessionInProcess runs the whole protocol in this process, with real
// parts: a spooler whose handler is the Recorder, and producers spooling
// through real clients into its ring.
func TestSessionInProcess(t *testing.T) {
	for _, o := range []Options{
		{Producers: 2, Tasks: 500},
		{Producers: 3, Tasks: 100, Rate: 2000},
	} {
		t.Run(fmt.Sprintf("tasks-%d-rate-%v", o.Tasks, o.Rate), func(t *testing.T) { runSession(t, o) })
	}
}

func runSession(t *testing.T, o Options) {
	sess, err := NewSession(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sess.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(sess.Dir); !os.IsNotExist(err) {
			t.Errorf("session directory left behind: %v", err)
		}
	}()
	if err := os.Mkdir(sess.SpoolDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := spooler.New(spooler.Config{Dir: sess.SpoolDir(), Quiet: true, Frequency: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.HandleDefault(NewRecorder(sess.Dir, o.Tasks).Handle)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.Run(ctx)
	}()
	<-s.Ready()

	for k := range o.Producers {
		c, err := spooler.NewClient(sess.SpoolDir(), spooler.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			Produce(ctx, sess.Dir, k, o, func(ctx context.Context, t *task.Task) error {
				_, err := c.Spool(ctx, t)
				return err
			})
		}()
	}
	ready := map[int]bool{}
	timeout := time.After(30 * time.Second)
	for len(ready) < o.Producers {
		select {
		case k := <-sess.Ready():
			ready[k] = true
		case <-timeout:
			t.Fatalf("ready: %v; failed: %v", ready, sess.Failed())
		}
	}
	if err := sess.Start(ring.MonotonicNanos() + int64(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	for !sess.Complete(o.Producers) {
		if err := sess.Failed(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-timeout:
			t.Fatal("the run did not complete")
		case <-time.After(10 * time.Millisecond):
		}
	}
	samples, err := sess.Samples()
	if err != nil {
		t.Fatal(err)
	}
	calls, err := sess.Calls(o.Producers)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != o.Tasks || len(calls) != o.Tasks {
		t.Fatalf("%d samples, %d calls; want %d of each", len(samples), len(calls), o.Tasks)
	}
	r, err := Summarize("gospool", o, samples, calls)
	if err != nil {
		t.Fatal(err)
	}
	h := r.Handoff
	if r.Measured != o.Tasks || !(0 < h.P50 && h.P50 <= h.P90 && h.P90 <= h.P99 && h.P99 <= h.P999 && h.P999 <= h.Max) || r.Throughput <= 0 {
		t.Errorf("result %+v", r)
	}
	if o.Rate == 0 && r.Delayed != 0 {
		t.Errorf("back to back, %d tasks carry a correction", r.Delayed)
	}

	// A producer started again (a respawned worker) refuses to send its
	// tasks twice, and says so.
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Produce(pctx, sess.Dir, 0, o, func(context.Context, *task.Task) error {
			t.Error("a respawned producer spooled")
			return nil
		})
	}()
	for sess.Failed() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if err := sess.Failed(); !strings.Contains(err.Error(), "producer 0: died and was respawned") {
		t.Errorf("Failed: %v", err)
	}
	pcancel()
	<-done
}

func TestParseSamples(t *testing.T) {
	got, err := ParseSamples([]byte("0 10 20 0\n1 11 25 3\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != (Sample{N: 1, T0: 11, Handled: 25, Delay: 3}) {
		t.Errorf("%+v", got)
	}
	for _, bad := range []string{"1 2 3\n", "1 2 3 x\n"} {
		if _, err := ParseSamples([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{Producers: 0, Tasks: 1}, {Producers: 1, Tasks: 0}, {Producers: 3, Tasks: 2}, {Producers: 1, Tasks: 1, Rate: -1}} {
		if o.Validate() == nil {
			t.Errorf("%+v: valid", o)
		}
	}
	if err := (Options{Producers: 2, Tasks: 2, Rate: 0.5}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestWritePythonProducer(t *testing.T) {
	sess, err := NewSession(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	p, err := sess.WritePythonProducer()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || filepath.Base(p) != PythonScript || !bytes.Contains(b, []byte("gospool.spool")) {
		t.Errorf("%s: %v, %d bytes", p, err, len(b))
	}
}
