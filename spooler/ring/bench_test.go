package ring

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"
)

// Ring-level benchmarks, without the spooler's decoding and dispatch: the
// floor that package spooler's benchmarks build on. Run with
//
//	go test -run '^$' -bench . -benchtime 2000x ./spooler/ring/
//
// BenchmarkFutexBaseline measures the machine, not gospool: a bare futex
// wake from one process to another, the floor of any sleeping hand-off.
// Compare ratios within one run; absolute numbers swing with the machine
// (on a VM, waking an idle vCPU dominates).

func init() {
	roles["latency-consumer"] = roleLatencyConsumer
	roles["futex-waiter"] = roleFutexWaiter
}

// roleLatencyConsumer claims RING_COUNT records and prints the percentiles
// of (now - publish stamp). RING_SPIN is how long it spins before sleeping.
func roleLatencyConsumer() error {
	_, c, err := openConsumer()
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv("RING_COUNT"))
	spin, _ := time.ParseDuration(os.Getenv("RING_SPIN"))
	fmt.Println("ready")
	lat := make([]int64, 0, n)
	for len(lat) < n {
		rec, ok, err := c.Claim()
		if err != nil {
			return err
		}
		if !ok {
			c.Wait(time.Second, spin, nil)
			continue
		}
		lat = append(lat, monotonicNanos()-rec.Stamp)
		c.Done(rec)
	}
	printPercentiles(lat)
	return nil
}

// roleFutexWaiter sleeps on the first word of RING_PATH's header page
// (mapped here without any ring logic) RING_COUNT times, and prints the
// percentiles of (wake-up time - the stamp the waker wrote beside it).
func roleFutexWaiter() error {
	f, err := os.OpenFile(os.Getenv("RING_PATH"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	m, err := mmapFile(f, 4096, false)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv("RING_COUNT"))
	lat := make([]int64, 0, n)
	start := m.u32(offWakeSeq).Load() // before "ready": the waker starts on it
	fmt.Println("ready")
	seen := start
	// Count wake-ups by the word's value: two wakes that land while this
	// process is busy look like one, and must not leave it waiting for a
	// wake that will never come.
	for seen-start < uint32(n) {
		for m.u32(offWakeSeq).Load() == seen {
			futexWait(m.addr(offWakeSeq), seen, time.Second)
		}
		seen = m.u32(offWakeSeq).Load()
		lat = append(lat, monotonicNanos()-int64(m.u64(offSpooled).Load()))
	}
	printPercentiles(lat)
	return nil
}

func printPercentiles(lat []int64) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) int64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Println(q(0.5), q(0.99), q(0.999))
}

func reportPercentiles(b *testing.B, line string) {
	var p50, p99, p999 float64
	if _, err := fmt.Sscan(line, &p50, &p99, &p999); err != nil {
		b.Fatalf("child said %q", line)
	}
	b.ReportMetric(p50, "p50-ns")
	b.ReportMetric(p99, "p99-ns")
	b.ReportMetric(p999, "p99.9-ns")
}

// pace runs fn b.N times, 5 ms apart (200/s).
func pace(b *testing.B, fn func()) {
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(start.Add(time.Duration(i) * 5 * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		fn()
	}
}

// BenchmarkRingHandoff: publish in this process, claim in another, paced at
// 200/s, with the consumer sleeping on the futex (after a 50µs spin) or
// busy polling.
func BenchmarkRingHandoff(b *testing.B) {
	for _, tc := range []struct{ name, spin string }{{"paced-200/s", "50us"}, {"paced-200/s-busy-poll", "1h"}} {
		b.Run(tc.name, func(b *testing.B) {
			r, path := newRing(b, DefaultGeometry())
			c := startRole(b, "latency-consumer", "RING_PATH="+path, "RING_COUNT="+strconv.Itoa(b.N), "RING_SPIN="+tc.spin)
			<-c.lines
			p, err := r.Producer()
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			payload := []byte("a task of about fifty bytes, like a small dict")
			pace(b, func() {
				if err := p.Push(payload); err != nil {
					b.Fatal(err)
				}
			})
			reportPercentiles(b, <-c.lines)
		})
	}
}

// BenchmarkFutexBaseline: the bare cost of waking a sleeping process with
// a futex on a shared mapping, paced at 200/s.
func BenchmarkFutexBaseline(b *testing.B) {
	r, path := newRing(b, DefaultGeometry())
	c := startRole(b, "futex-waiter", "RING_PATH="+path, "RING_COUNT="+strconv.Itoa(b.N))
	<-c.lines
	m := r.m
	pace(b, func() {
		m.u64(offSpooled).Store(uint64(monotonicNanos()))
		m.u32(offWakeSeq).Add(1)
		futexWake(m.addr(offWakeSeq), 1)
	})
	reportPercentiles(b, <-c.lines)
}

// BenchmarkPush is the producer's cost alone, into a lane with room.
func BenchmarkPush(b *testing.B) {
	r, _ := newRing(b, Geometry{Lanes: 1, SlotsPerLane: 1 << 10, LaneBytes: 1 << 16, Consumers: 2})
	p, _ := r.Producer()
	c, _ := r.Consumer()
	payload := []byte("a task of about fifty bytes, like a small dict")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := p.Push(payload); err != nil {
			b.Fatal(err)
		}
		rec, _, _ := c.Claim() // keep the lane from filling
		c.Done(rec)
	}
}
