package ring

import (
	"path/filepath"
	"testing"
)

// A consumer takes up to laneBurst records in a row from a busy lane, then
// looks at the others first: it does not walk every lane for every record,
// and no busy lane waits for more than laneBurst records of another.
func TestClaimBurstsThenRotates(t *testing.T) {
	r, err := Create(filepath.Join(t.TempDir(), FileName), Options{Geometry: Geometry{Lanes: 4, SlotsPerLane: 512, LaneBytes: 1 << 16, Consumers: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Lane() == b.Lane() {
		t.Fatalf("both producers on lane %d", a.Lane())
	}
	const n = 3 * laneBurst
	for range n {
		if err := a.Push([]byte("a")); err != nil {
			t.Fatal(err)
		}
		if err := b.Push([]byte("b")); err != nil {
			t.Fatal(err)
		}
	}
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var lanes []int
	for {
		rec, ok, err := c.Claim()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		lanes = append(lanes, rec.Lane)
		if err := c.Done(rec); err != nil {
			t.Fatal(err)
		}
	}
	if len(lanes) != 2*n {
		t.Fatalf("claimed %d records, want %d", len(lanes), 2*n)
	}
	run, longest, switches := 1, 1, 0
	for i := 1; i < len(lanes); i++ {
		if lanes[i] == lanes[i-1] {
			run++
			longest = max(longest, run)
			continue
		}
		run = 1
		switches++
	}
	if longest != laneBurst || switches < 2*n/laneBurst-1 {
		t.Errorf("longest run on one lane %d (want %d), %d switches: %v", longest, laneBurst, switches, lanes)
	}
}
