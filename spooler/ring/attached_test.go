package ring

import (
	"testing"
)

// Attachment follows the consumers: none, one in another process (a real
// child), its clean Close seen at once, its SIGKILL seen at the next
// recheck, and a new consumer seen at once.
func TestAttachment(t *testing.T) {
	g := Geometry{Lanes: 2, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 4}
	r, path := newRing(t, g)
	a := r.Attachment()
	if a.Attached() {
		t.Fatal("attached with no consumer")
	}
	// This Ring's own consumers do not count: they are this process.
	own, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	if a.Attached() {
		t.Fatal("this ring's own consumer counted as a spooler")
	}
	own.Close()

	// A consumer through another open file: attached; its Close zeroes its
	// pid word, which the next call sees without waiting for a recheck.
	other, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c, err := other.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	if !a.Attached() {
		t.Fatal("not attached with a consumer")
	}
	c.Close()
	if a.Attached() {
		t.Fatal("still attached right after the consumer's Close")
	}

	// A read-only ring (what ls and stats open) sees the same.
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	roA := ro.Attachment()

	// A consumer process killed by SIGKILL leaves its pid word behind.
	child := startRole(t, "consumer", "RING_PATH="+path, "RING_IDLE=1h")
	waitUntil(t, r.HasLiveConsumer)
	// The child takes its entry's lock before it stores its pid word: the
	// lock alone may be seen first, for a moment.
	waitUntil(t, func() bool { return a.Attached() && roA.Attached() })
	child.kill9(t)
	if r.HasLiveConsumer() {
		t.Fatal("the killed consumer's lock is still held")
	}
	a.until.Store(0) // as if the recheck period had passed
	for range attachClockEvery - 1 {
		a.Attached() // the calls before the one that reads the clock
	}
	if a.Attached() {
		t.Fatal("attached after the only consumer was killed and the recheck")
	}
	// Within the recheck period, "not attached" stands without a system
	// call, until an entry is taken: a new consumer is seen at once.
	c2, err := other.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if !a.Attached() {
		t.Fatal("a new consumer is not seen at once")
	}
}

// The fast path costs no system call and no allocation.
func BenchmarkAttached(b *testing.B) {
	g := Geometry{Lanes: 2, SlotsPerLane: 16, LaneBytes: 4096, Consumers: MaxConsumers}
	_, path := newRing(b, g)
	other, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer other.Close()
	c, err := other.Consumer()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for _, name := range []string{"attached", "none"} {
		if name == "none" {
			c.Close()
		}
		a := r.Attachment()
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				a.Attached()
			}
		})
	}
}
