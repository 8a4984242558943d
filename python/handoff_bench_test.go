package python_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/ring"
)

// producerScript spools N tasks from Python, each carrying the producer's
// CLOCK_MONOTONIC just before the spool call, back to back or paced at
// RATE per second, and prints its own spool-call p50 and p99 in ns.
const producerScript = `
import os, sys, time
import gospool
gospool.configure(os.environ["DIR"])
n, rate = int(os.environ["N"]), float(os.environ["RATE"])
clock = time.clock_gettime_ns
mono = time.CLOCK_MONOTONIC
calls = []
start = clock(mono)
for i in range(n):
    if rate:
        due = start + int(i * 1e9 / rate)
        while clock(mono) < due:
            pass
    t0 = clock(mono)
    gospool.spool({b"t0": str(t0).encode(), b"i": str(i).encode()})
    calls.append(clock(mono) - t0)
calls.sort()
print(calls[len(calls) // 2], calls[len(calls) * 99 // 100])
`

// BenchmarkPythonHandoff measures the hand-off from Python producer
// processes to a Go spooler (in this process, a no-op handler): from just
// before gospool.spool() in Python to the first line of the Go handler, on
// CLOCK_MONOTONIC, with 2 producer processes. b.N is ignored; each
// sub-benchmark sends a fixed number of tasks:
//
//	go test -run '^$' -bench PythonHandoff -benchtime 1x ./python/
func BenchmarkPythonHandoff(b *testing.B) {
	for _, c := range []struct {
		name  string
		rate  float64 // per producer; 0: back to back
		tasks int     // per producer
	}{{"paced-200/s", 100, 1000}, {"back-to-back", 0, 20000}} {
		b.Run(c.name, func(b *testing.B) { benchHandoff(b, c.rate, c.tasks) })
	}
}

func benchHandoff(b *testing.B, rate float64, perProducer int) {
	py := testproc.NeedPython3(b)
	dir := b.TempDir()
	const producers = 2
	total := producers * perProducer
	var mu sync.Mutex
	lat := make([]int64, 0, total)
	var first, last int64
	done := make(chan struct{})
	s, err := spooler.New(spooler.Config{Dir: dir, Quiet: true, Frequency: -1})
	if err != nil {
		b.Fatal(err)
	}
	s.HandleDefault(func(ctx context.Context, t *spooler.Task) error {
		now := ring.MonotonicNanos()
		v, _ := t.Get("t0")
		t0, _ := strconv.ParseInt(string(v), 10, 64)
		mu.Lock()
		lat = append(lat, now-t0)
		if first == 0 {
			first = t0
		}
		last = now
		if len(lat) == total {
			close(done)
		}
		mu.Unlock()
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	<-s.Ready()

	pkg, _ := filepath.Abs(".")
	outs := make([][]byte, producers)
	var wg sync.WaitGroup
	b.ResetTimer()
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(py, "-c", producerScript)
			cmd.Env = append(os.Environ(), "PYTHONPATH="+pkg, "DIR="+dir, "N="+strconv.Itoa(perProducer), "RATE="+strconv.FormatFloat(rate, 'f', -1, 64))
			cmd.Stderr = os.Stderr
			outs[p], err = cmd.Output()
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("%d of %d tasks handled", len(lat), total)
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(float64(len(lat))*q))]) / 1e3 }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(total)/(float64(last-first)/1e9), "tasks/s")
	for _, o := range outs {
		var p50, p99 float64
		fmt.Sscan(string(o), &p50, &p99)
		b.ReportMetric(p50/1e3, "spool-call-p50-µs")
		b.ReportMetric(p99/1e3, "spool-call-p99-µs")
	}
}
