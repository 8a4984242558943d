package spooler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/ring"
)

// Benchmarks of the goals in docs/design.md. They measure; they assert nothing
// about time. Run them with:
//
//	go test -run '^$' -bench . -benchtime 20000x ./spooler/
//
// Every benchmark runs a real spooler in a separate process (this test
// binary re-executed), consuming the default ring geometry.

// startLatencySpooler starts a spooler process that expects n tasks.
func startLatencySpooler(b *testing.B, dir string, n int, busyPoll bool) *proc {
	env := []string{"SPOOL_DIR=" + dir, "SPOOL_HANDLER=latency", "SPOOL_EXPECT=" + strconv.Itoa(n), "SPOOL_BENCH_GEOMETRY=1"}
	if busyPoll {
		env = append(env, "SPOOL_BUSY_POLL=1")
	}
	if cpu := os.Getenv("SPOOL_BENCH_SPOOLER_CPU"); cpu != "" {
		env = append(env, "SPOOL_CPU="+cpu)
	}
	if g := os.Getenv("SPOOL_BENCH_SPOOLER_GOMAXPROCS"); g != "" {
		env = append(env, "GOMAXPROCS="+g)
	}
	p := startProc(b, "spooler", env...)
	p.waitReady(b)
	return p
}

func (p *proc) summary(b *testing.B) latencySummary {
	select {
	case line, ok := <-p.lines:
		if !ok {
			b.Fatalf("spooler exited without a summary; stderr:\n%s", p.stderr)
		}
		var s latencySummary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			b.Fatalf("summary %q: %v", line, err)
		}
		return s
	case <-time.After(60 * time.Second):
		b.Fatalf("spooler did not finish; stderr:\n%s", p.stderr)
	}
	return latencySummary{}
}

func reportLatency(b *testing.B, s latencySummary, prefix string) {
	b.ReportMetric(float64(s.P50), prefix+"p50-ns")
	b.ReportMetric(float64(s.P99), prefix+"p99-ns")
	b.ReportMetric(float64(s.P999), prefix+"p99.9-ns")
	b.ReportMetric(float64(s.Max), prefix+"max-ns")
}

func spilled(b *testing.B, dir string) uint64 {
	r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	return r.Stats().Spilled
}

// BenchmarkSpool times Client.Spool of a 3-key task (about 50 bytes) while a
// spooler process drains the ring: ns/op, and the median and tail of single
// calls.
func BenchmarkSpool(b *testing.B) {
	dir := b.TempDir()
	sp := startLatencySpooler(b, dir, b.N, false)
	c, err := NewClient(dir, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	calls := make([]int64, 0, b.N)
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	t := NewTask("task", "resize", "id", "", "t0", "")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := ring.MonotonicNanos()
		t.Pairs[1].Value = []byte(ids[i])
		t.Pairs[2].Value = strconv.AppendInt(t.Pairs[2].Value[:0], t0, 10)
		if _, err := c.Spool(ctx, t); err != nil {
			b.Fatal(err)
		}
		calls = append(calls, ring.MonotonicNanos()-t0)
	}
	b.StopTimer()
	sort.Slice(calls, func(i, j int) bool { return calls[i] < calls[j] })
	b.ReportMetric(float64(calls[len(calls)/2]), "call-p50-ns")
	b.ReportMetric(float64(calls[len(calls)*99/100]), "call-p99-ns")
	b.ReportMetric(float64(spilled(b, dir)), "spilled")
	sp.summary(b)
}

// BenchmarkHandoff measures from just before Spool in this process to the
// first line of the handler in the spooler process, on CLOCK_MONOTONIC:
// paced at 200 tasks/s (the spooler sleeps between tasks), paced with
// busy polling, and back to back.
func BenchmarkHandoff(b *testing.B) {
	cases := []struct {
		name     string
		rate     float64
		busyPoll bool
	}{
		{"paced-200/s", 200, false},
		{"paced-200/s-busy-poll", 200, true},
		{"back-to-back", 0, false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			sp := startLatencySpooler(b, dir, b.N, tc.busyPoll)
			c, err := NewClient(dir, ClientOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if tc.rate > 0 {
					if d := time.Until(start.Add(time.Duration(float64(i) / tc.rate * 1e9))); d > 0 {
						time.Sleep(d)
					}
				}
				t := NewTask("task", "resize", "id", strconv.Itoa(i))
				t.Add("t0", strconv.AppendInt(nil, ring.MonotonicNanos(), 10))
				if _, err := c.Spool(ctx, t); err != nil {
					b.Fatal(err)
				}
			}
			s := sp.summary(b)
			b.StopTimer()
			reportLatency(b, s, "handoff-")
			b.ReportMetric(float64(spilled(b, dir)), "spilled")
		})
	}
}

// BenchmarkThroughput: two producer processes spool back to back into one
// spooler process with a no-op handler. tasks/s is counted from the first
// task spooled to the last task handled.
func BenchmarkThroughput(b *testing.B) {
	dir := b.TempDir()
	sp := startLatencySpooler(b, dir, b.N, false)
	b.ResetTimer()
	var producers []*proc
	for i := 0; i < 2; i++ {
		n := b.N / 2
		if i == 1 {
			n = b.N - n
		}
		p := startProc(b, "producer", "SPOOL_DIR="+dir, "SPOOL_COUNT="+strconv.Itoa(n),
			fmt.Sprintf("SPOOL_PREFIX=p%d", i), "SPOOL_NO_ACKS=1", "SPOOL_WAIT_GO=1")
		p.waitReady(b)
		producers = append(producers, p)
	}
	for _, p := range producers {
		io.WriteString(p.stdin, "go\n")
	}
	for _, p := range producers {
		p.wait(b)
	}
	s := sp.summary(b)
	b.StopTimer()
	b.ReportMetric(float64(s.N)/s.Seconds, "tasks/s")
	b.ReportMetric(float64(spilled(b, dir)), "spilled")
	sp.wait(b) // it exits by itself after the summary
}
