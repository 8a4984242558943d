package spooler

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospool/gospool/spooler/ring"
)

// The rule of "Where a task goes": into the ring only while a gospool
// spooler is attached to it. A ring left behind by a spooler that stopped
// gets no task (a uWSGI spooler may be the one serving the directory now:
// it runs spool files); a spooler's clean stop is seen by the next Spool.
func TestClientUsesTheRingOnlyWhileASpoolerIsAttached(t *testing.T) {
	dir := t.TempDir()
	// A spooler ran once, and stopped: its ring stays.
	s, err := New(Config{Dir: dir, Ring: ring.Options{Geometry: testGeometry}, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	c, err := NewClient(dir, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	spool := func(what string) string {
		t.Helper()
		path, err := c.Spool(context.Background(), NewTask("task", what))
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	if c.UsesRing() {
		t.Error("UsesRing with no spooler attached")
	}
	if path := spool("a"); !strings.HasPrefix(filepath.Base(path), "uwsgi_spoolfile_on_") {
		t.Fatalf("no spooler attached: spooled to %q, want a spool file", path)
	}
	detach := attachIdleConsumer(t, dir)
	if path := spool("b"); path != "" {
		t.Fatalf("a spooler attached: spooled to %q, want the ring", path)
	}
	detach() // a clean stop, such as a shutdown or a max-tasks recycling
	if path := spool("c"); path == "" {
		t.Fatal("the spooler stopped: the task went into the ring, where nobody runs it")
	}
	r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st := r.Stats(); st.Spooled != 1 || st.Ready != 1 {
		t.Errorf("ring spooled %d, ready %d: want only task b", st.Spooled, st.Ready)
	}
}
