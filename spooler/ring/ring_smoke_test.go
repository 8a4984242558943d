package ring

import (
	"fmt"
	"path/filepath"
	"testing"
)

func TestPushClaimDone(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	r, err := Create(path, Options{Geometry: Geometry{Lanes: 2, SlotsPerLane: 4, LaneBytes: 4096, Consumers: 4}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 10; round++ {
		for i := 0; i < 4; i++ {
			if err := p.Push([]byte(fmt.Sprintf("rec-%d-%d", round, i))); err != nil {
				t.Fatalf("round %d push %d: %v", round, i, err)
			}
		}
		if err := p.Push([]byte("x")); err == nil {
			t.Fatalf("push into a full lane succeeded")
		}
		for i := 0; i < 4; i++ {
			rec, ok, err := c.Claim()
			if err != nil || !ok {
				t.Fatalf("claim %d: %v %v", i, ok, err)
			}
			if want := fmt.Sprintf("rec-%d-%d", round, i); string(rec.Payload) != want {
				t.Fatalf("got %q want %q", rec.Payload, want)
			}
			if err := c.Done(rec); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok, _ := c.Claim(); ok {
			t.Fatal("claimed from an empty ring")
		}
	}
	st := r.Stats()
	if st.Spooled != 40 || st.InFlight != 0 || st.Ready != 0 {
		t.Fatalf("stats %+v", st)
	}
	p.Close()
	c.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}
