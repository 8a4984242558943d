package scoreboard

import "time"

// HandoffBuckets is the number of buckets of the hand-off latency
// histogram each spooler keeps in its slot.
const HandoffBuckets = 15

// HandoffBounds are the upper bounds of the first HandoffBuckets-1
// buckets, inclusive; the last bucket counts longer waits. A ring task's
// hand-off takes tens of microseconds when a spooler is idle, and as long as
// the queue ahead of it when all are busy: the bounds span both.
var HandoffBounds = [HandoffBuckets - 1]time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 50 * time.Millisecond, 250 * time.Millisecond,
	time.Second, 10 * time.Second,
}

// Histogram is a hand-off latency histogram: how long ring tasks waited
// between their producer's publish and the start of their handler.
type Histogram struct {
	// Counts are per bucket, not cumulative: Counts[i] counts the waits in
	// (HandoffBounds[i-1], HandoffBounds[i]], and the last one those above
	// the last bound.
	Counts [HandoffBuckets]uint64
	// Sum is the total of the waits.
	Sum time.Duration
}

// Count is the number of waits observed.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Add adds o's observations to h.
func (h *Histogram) Add(o Histogram) {
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Sum += o.Sum
}

// bucketOf returns the index of the bucket d falls in.
func bucketOf(d time.Duration) int {
	for i, b := range HandoffBounds {
		if d <= b {
			return i
		}
	}
	return HandoffBuckets - 1
}

// ObserveHandoff counts one ring task's hand-off latency d in the slot. A
// spooler calls it as each ring task's handler starts; it is safe for
// concurrent use.
func (s *Slot) ObserveHandoff(d time.Duration) {
	d = max(d, 0)
	s.b.u64(s.off + sHandSum).Add(uint64(d))
	s.b.u64(s.off + sHandCnt + 8*bucketOf(d)).Add(1)
}

// Handoff reads the slot's hand-off latency histogram. The buckets are read
// one by one while the child may add to them: each is exact at the moment it
// is read, and the sum is read last.
func (s *Slot) Handoff() Histogram {
	var h Histogram
	for i := range h.Counts {
		h.Counts[i] = s.b.u64(s.off + sHandCnt + 8*i).Load()
	}
	h.Sum = time.Duration(s.b.u64(s.off + sHandSum).Load())
	return h
}

// ObserveHandoff is Slot.ObserveHandoff on the tracker's slot.
func (t *Tracker) ObserveHandoff(d time.Duration) { t.slot.ObserveHandoff(d) }
