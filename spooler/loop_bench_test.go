package spooler

import (
	"context"
	"io"
	"log"
	"path/filepath"
	"testing"

	"github.com/gospool/gospool/spooler/record"
	"github.com/gospool/gospool/spooler/ring"
)

// BenchmarkConsumerLoop measures the spooler's own cost per ring task: the
// ring is filled first, then Run drains it with a no-op handler, in this
// process. Compare with the ring's bare claim-decode-done cost
// (BenchmarkClaimDecodeDone) to see what the loop adds.
func BenchmarkConsumerLoop(b *testing.B) {
	dir := b.TempDir()
	g := ring.Geometry{Lanes: 1, SlotsPerLane: 1 << 20, LaneBytes: 1 << 27, Consumers: 2}
	r, err := ring.Create(filepath.Join(dir, ring.FileName), ring.Options{Geometry: g})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := r.Producer()
	rec, _ := record.Append(nil, NewTask("task", "resize", "id", "12345", "t0", "1234567890123"))
	n := min(b.N, g.SlotsPerLane)
	for i := 0; i < n; i++ {
		if err := p.Push(rec); err != nil {
			b.Fatal(err)
		}
	}
	p.Close()
	r.Close()
	s, _ := New(Config{Dir: dir, Quiet: true, Logger: log.New(io.Discard, "", 0), Ring: ring.Options{Geometry: g}})
	ctx, cancel := context.WithCancel(context.Background())
	count := 0
	s.HandleDefault(func(context.Context, *Task) error {
		if count++; count == n {
			cancel()
		}
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	if err := s.Run(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if count != n {
		b.Fatalf("ran %d of %d", count, n)
	}
}
