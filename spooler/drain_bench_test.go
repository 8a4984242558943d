package spooler

import (
	"context"
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/spoolfile"
)

// BenchmarkDrainFiles: b.N uWSGI spool files wait in the directory (written
// first, untimed); then a spooler with a no-op handler runs them all. The
// time per op is the cost per file, and files/s the drain rate; run it with
// -benchtime 100000x for the 100k-file figure:
//
//	go test -run '^$' -bench DrainFiles -benchtime 100000x ./spooler/
func BenchmarkDrainFiles(b *testing.B) {
	dir := b.TempDir()
	if d := os.Getenv("GOSPOOL_BENCH_DIR"); d != "" { // to measure another filesystem
		var err error
		if dir, err = os.MkdirTemp(d, "drain"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	w, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := w.Write(NewTask("task", "noop", "n", "12345")); err != nil {
			b.Fatal(err)
		}
	}
	s, err := New(Config{Dir: dir, Quiet: true, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := 0
	s.HandleDefault(func(context.Context, *Task) error {
		if ran++; ran == b.N {
			cancel()
		}
		return nil
	})
	b.ResetTimer()
	start := time.Now()
	if err := s.Run(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if ran != b.N {
		b.Fatalf("ran %d of %d", ran, b.N)
	}
	left, _ := filepath.Glob(filepath.Join(dir, spoolfile.Prefix+"*"))
	if len(left) != 0 {
		b.Fatalf("%d files left", len(left))
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "files/s")
}
