package ring

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gospool/gospool/internal/failpoint"
)

// Consumer claims records from every lane of the ring and marks them done.
// A process takes a consumer entry with [Ring.Consumer] and keeps it until
// [Consumer.Close] or its death.
//
// Claim, Peek and Wait must be called from one goroutine at a time; Done and
// Release may be called from any goroutine, for records this consumer
// claimed.
type Consumer struct {
	r     *Ring
	entry int
	owner uint32 // entry and generation, as written into claimed slots

	cursor      []uint64 // per lane: every record below is claimed or done
	start       int      // lane to look at first, rotated for fairness
	burst       int      // records claimed in a row from lane start
	recoverSeq  uint32
	lastFileSeq uint32
	closed      bool
	rescan      atomic.Bool // set by ReleaseDead: reset the cursors
}

// Failpoints on the consumer's side, each a window in which a kill leaves
// two header words out of step (see the package doc's crash recovery).
const (
	FailpointSleepCounted    = "ring-consumer-sleep-counted"    // Wait: sleepers raised, flag not yet
	FailpointSleepUncounting = "ring-consumer-sleep-uncounting" // flag lowered, sleepers not yet
	FailpointReleased        = "ring-consumer-released"         // Release: ready again, recover seq not bumped
	FailpointReleasedDead    = "ring-release-dead-released"     // releaseDead: the same
)

// Record is a claimed record. Payload points into the shared mapping and
// stays valid, unchanged, until [Consumer.Done] or [Consumer.Release]: the
// lane's producer cannot reuse the space before the record is done.
type Record struct {
	Lane    int
	Seq     uint64
	Payload []byte
	// Stamp is the producer's CLOCK_MONOTONIC at publish, in nanoseconds.
	Stamp int64
}

// String names the record in logs: "ring:LANE:SEQ".
func (rec Record) String() string {
	b := make([]byte, 0, 24)
	b = append(b, "ring:"...)
	b = strconv.AppendInt(b, int64(rec.Lane), 10)
	b = append(b, ':')
	return string(strconv.AppendUint(b, rec.Seq, 10))
}

// CorruptError reports a record that failed its bounds or CRC check. The
// record has been marked done and counted as corrupt; it is never run.
type CorruptError struct {
	Lane   int
	Seq    uint64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("ring record %d:%d is corrupt (%s); it was dropped, not run", e.Lane, e.Seq, e.Reason)
}

// Consumer takes a free consumer entry for this process. Taking an entry
// first releases any record its previous, dead holder had claimed, so a
// respawned spooler re-runs the task its predecessor died in.
func (r *Ring) Consumer() (*Consumer, error) {
	if err := r.acquire(); err != nil {
		return nil, err
	}
	i, err := r.takeEntry(r.geo.Consumers, r.consumerOff, r.consumersHere)
	if err != nil {
		r.release()
		if err == errNoneFree {
			err = ErrNoConsumerSlot
		}
		return nil, err
	}
	c, err := r.attachConsumer(i)
	if err != nil { // the mapping faulted (see health.go)
		r.giveBack(i, r.consumerOff(i), r.consumersHere)
		return nil, err
	}
	c.ReleaseDead()
	return c, nil
}

func (r *Ring) attachConsumer(i int) (_ *Consumer, err error) {
	defer r.guard(&err, debug.SetPanicOnFault(true))
	off := r.consumerOff(i)
	gen := r.m.u32(off+conGen).Add(1) & 0xFFFF
	r.m.u32(off + conPid).Store(uint32(os.Getpid()))
	r.m.u64(off + conTasks).Store(0)
	r.m.u64(off + conSince).Store(uint64(time.Now().UnixNano()))
	c := &Consumer{r: r, entry: i, owner: ownerOf(i, gen), cursor: make([]uint64, r.geo.Lanes)}
	c.clearSleeping(i)
	c.recoverSeq = r.m.u32(offRecoverSeq).Load()
	c.lastFileSeq = r.m.u32(offFileSeq).Load()
	return c, nil
}

// Entry is the index of this consumer's entry in the header's table.
func (c *Consumer) Entry() int { return c.entry }

// Claim takes the next ready record of any lane, or reports false when
// there is none. A record that fails its checks is dropped and returned as a
// *CorruptError, with ok false; call Claim again.
func (c *Consumer) Claim() (rec Record, ok bool, err error) {
	defer c.r.guard(&err, debug.SetPanicOnFault(true))
	if c.closed {
		return Record{}, false, ErrClosed
	}
	return c.scan(true)
}

// Peek reports whether some lane has a ready record, without claiming it.
func (c *Consumer) Peek() (ok bool) {
	defer c.r.guard(nil, debug.SetPanicOnFault(true))
	_, ok, _ = c.scan(false)
	return ok
}

// laneBurst is how many records in a row a consumer claims from one lane
// before it looks at the others first.
const laneBurst = 64

func (c *Consumer) scan(claim bool) (Record, bool, error) {
	r := c.r
	m := r.m
	if r.broken.Load() {
		return Record{}, false, nil // nothing to claim, ever (see health.go)
	}
	if rs := m.u32(offRecoverSeq).Load(); rs != c.recoverSeq || c.rescan.Load() {
		// Claimed records went back to ready somewhere (or may have, see
		// ReleaseDead): look again from the tails.
		c.recoverSeq = rs
		c.rescan.Store(false)
		clear(c.cursor)
	}
	L := r.geo.Lanes
	for k := 0; k < L; k++ {
		lane := (c.start + k) % L
		base := r.laneBase(lane)
		seq := max(c.cursor[lane], m.u64(base+laneTail).Load())
		for n := 0; n <= r.geo.SlotsPerLane; n++ {
			off := r.slotOff(lane, seq)
			word := m.u64(off + slotWord)
			w := word.Load()
			if ws := wordSeq(w); ws != uint32(seq) {
				if int32(ws-uint32(seq)) > 0 {
					// The slot is already in a later lap: our cursor fell
					// behind the tail while we looked. Restart from the tail.
					if t := m.u64(base + laneTail).Load(); t > seq {
						seq = t
						continue
					}
				}
				break // not written yet in this lap
			}
			st := wordState(w)
			if st == stateEmpty || st == stateWriting {
				break // the lane's producer is not past this record
			}
			if st != stateReady {
				seq++
				c.cursor[lane] = seq
				continue
			}
			if !claim {
				return Record{}, true, nil
			}
			if !word.CompareAndSwap(w, slotWordOf(seq, stateClaimed, c.owner)) {
				continue // another consumer took it; look at the slot again
			}
			c.cursor[lane] = seq + 1
			// Stay on a busy lane for laneBurst records, then move on: the
			// next scan starts where the work is instead of walking past
			// every idle lane (most of them, with one lane per producer),
			// and no lane waits for more than laneBurst records of another.
			if lane != c.start {
				c.start, c.burst = lane, 0
			}
			if c.burst++; c.burst >= laneBurst {
				c.start, c.burst = (lane+1)%L, 0
			}
			m.u64(offInFlight).Add(1)
			return c.check(lane, seq, off)
		}
	}
	return Record{}, false, nil
}

// check validates a record this consumer just claimed. Everything read from
// the mapping is bounds-checked before it is sliced: the file is shared with
// other programs and may be damaged.
func (c *Consumer) check(lane int, seq uint64, off int) (Record, bool, error) {
	r := c.r
	m := r.m
	pos := m.u64(off + slotData).Load()
	n := int(m.u32(off + slotLength).Load())
	D := uint64(r.geo.LaneBytes)
	fail := func(reason string) (Record, bool, error) {
		m.u64(off + slotWord).Store(slotWordOf(seq, stateDone, 0))
		m.u64(offInFlight).Add(^uint64(0))
		m.u64(offCorrupt).Add(1)
		return Record{}, false, &CorruptError{Lane: lane, Seq: seq, Reason: reason}
	}
	if n > r.geo.MaxRecord() || pos%D+uint64(n) > D {
		return fail(fmt.Sprintf("length %d at data position %d does not fit the lane", n, pos))
	}
	d := r.dataOff(lane) + int(pos%D)
	payload := m[d : d+n : d+n]
	if sum := crc32.ChecksumIEEE(payload); sum != m.u32(off+slotCRC).Load() {
		return fail(fmt.Sprintf("CRC %08x, computed %08x", m.u32(off+slotCRC).Load(), sum))
	}
	return Record{Lane: lane, Seq: seq, Payload: payload, Stamp: int64(m.u64(off + slotStamp).Load())}, true, nil
}

// Done marks a claimed record finished; its space can be reused.
func (c *Consumer) Done(rec Record) error {
	return c.finish(rec, stateDone)
}

// Release puts a claimed record back, ready for any consumer.
//
// The record is ready for anyone from its compare-and-swap on, but
// consumers whose cursor is past it see it only after the recover seq
// changes. A process killed between the two leaves it unseen until every
// consumer's next [Consumer.ReleaseDead], which looks again from the tails
// whatever the recover seq says.
func (c *Consumer) Release(rec Record) error {
	err := c.finish(rec, stateReady)
	if err == nil {
		failpoint.Inject(FailpointReleased)
		c.r.m.u32(offRecoverSeq).Add(1)
		c.r.wake()
	}
	return err
}

// CopyPayload returns a copy of rec's payload, read under the fault guard:
// if the ring file was cut short under the consumer, the copy is an error
// wrapping [ErrRetired] instead of a SIGBUS. Reading Payload directly is
// safe only while the file is known to be whole; a spooler copies first.
func (c *Consumer) CopyPayload(rec Record) (payload []byte, err error) {
	defer c.r.guard(&err, debug.SetPanicOnFault(true))
	return bytes.Clone(rec.Payload), nil
}

func (c *Consumer) finish(rec Record, state uint8) (err error) {
	defer c.r.guard(&err, debug.SetPanicOnFault(true))
	m := c.r.m
	word := m.u64(c.r.slotOff(rec.Lane, rec.Seq) + slotWord)
	if !word.CompareAndSwap(slotWordOf(rec.Seq, stateClaimed, c.owner), slotWordOf(rec.Seq, state, 0)) {
		return fmt.Errorf("%s: %w", rec, ErrLost)
	}
	m.u64(offInFlight).Add(^uint64(0))
	if state == stateDone {
		m.u64(c.r.consumerOff(c.entry) + conTasks).Add(1)
	}
	return nil
}

// NoteTask counts a task this consumer finished outside the ring (a spool
// file), so that the per-consumer count in [Stats] covers every task.
func (c *Consumer) NoteTask() {
	defer c.r.guard(nil, debug.SetPanicOnFault(true))
	c.r.m.u64(c.r.consumerOff(c.entry) + conTasks).Add(1)
}

// Wait returns when a record may be ready, when a producer spilled a task to
// the directory (see [Ring.FileSeq]), when more (if not nil) reports true,
// or after at most d. It first spins for up to spin, looking at the lanes,
// then sleeps on the header's futex; a producer pays a wake-up syscall only
// while some consumer sleeps. Whoever makes more true must call
// [Ring.WakeAll] afterwards, so that a sleeper looks again.
func (c *Consumer) Wait(d, spin time.Duration, more func() bool) {
	defer c.r.guard(nil, debug.SetPanicOnFault(true))
	ready := func() bool {
		return c.Peek() || c.r.FileSeq() != c.lastFileSeq || (more != nil && more())
	}
	m := c.r.m
	if spin > 0 {
		start := time.Now()
		for i := 0; ; i++ {
			if ready() {
				return
			}
			if i%64 == 63 {
				if spent := time.Since(start); spent >= spin {
					if d -= spent; d <= 0 {
						return // spun for the whole wait (busy polling)
					}
					break
				}
			}
			runtime.Gosched()
		}
	}
	seen := m.u32(offWakeSeq).Load()
	flag := m.u32(c.r.consumerOff(c.entry) + conSleeping)
	// The count first, then the flag: a consumer killed between the two
	// leaves the count one too high (producers pay a wake syscall nobody
	// needed, until the recount in releaseDead heals it), never one too
	// low (producers would skip the wake of a live sleeper for good).
	m.u32(offSleepers).Add(1)
	failpoint.Inject(FailpointSleepCounted)
	flag.Store(1)
	if !ready() {
		futexWait(m.addr(offWakeSeq), seen, d)
	}
	c.clearSleeping(c.entry)
}

// clearSleeping takes entry i out of the sleepers count if it is in it.
func (c *Consumer) clearSleeping(i int) { c.r.clearSleeping(i) }

// clearSleeping lowers the flag, then the count: the reverse order of
// Wait's, so a kill between the two again leaves the count too high.
func (r *Ring) clearSleeping(i int) {
	if r.m.u32(r.consumerOff(i)+conSleeping).CompareAndSwap(1, 0) {
		failpoint.Inject(FailpointSleepUncounting)
		r.m.u32(offSleepers).Add(^uint32(0))
	}
}

// healSleepers sets the sleepers count to the number of raised sleeping
// flags when the two disagreed, identically, at this look and the one
// before. A live consumer is out of step for a few instructions only (in
// Wait between the count and the flag, in clearSleeping between the flag
// and the count), so a difference that stays the same from one periodic
// look to the next was left by a killed consumer. A consumer stopped (by
// SIGSTOP, say) inside that window for longer than a period would be
// miscounted by one, which the next looks repair in turn.
func (r *Ring) healSleepers() {
	m := r.m
	before := m.u32(offSleepers).Load()
	flags := uint32(0)
	for i := 0; i < r.geo.Consumers; i++ {
		flags += m.u32(r.consumerOff(i)+conSleeping).Load() & 1
	}
	count := m.u32(offSleepers).Load()
	if count == flags || count != before {
		r.sleepDrift.Store(0) // in step, or moving under us: nothing to trust
		return
	}
	drift := uint64(count)<<32 | uint64(flags) | 1<<63
	if r.sleepDrift.Swap(drift) == drift {
		m.u32(offSleepers).CompareAndSwap(count, flags)
		r.sleepDrift.Store(0)
	}
}

// FileSeqChanged reports whether a producer spilled a task to the directory
// since the last call, and remembers the current value.
func (c *Consumer) FileSeqChanged() (changed bool) {
	defer c.r.guard(nil, debug.SetPanicOnFault(true))
	s := c.r.FileSeq()
	if s == c.lastFileSeq {
		return false
	}
	c.lastFileSeq = s
	return true
}

// ReleaseDead puts back every record claimed by a consumer process that is
// gone, and returns how many. A consumer is gone when the kernel no longer
// holds its entry's lock, or when its entry was taken by a newer process;
// this consumer's own records are never touched. A spooler calls it when it
// starts and from time to time; a master calls [Ring.ReleaseDead] at once
// when it reaps a child, so that the child's tasks run again without waiting
// for a spooler's next look.
//
// It also makes this consumer's next claim look at every lane from its
// tail: a record released by a process killed before it could bump the
// recover seq is behind every cursor, and this is how it is found again
// (at the cost of one walk from the tails per call). And it heals the
// sleepers count (see healSleepers). It may be called from any goroutine.
func (c *Consumer) ReleaseDead() (released int) {
	defer c.r.guard(nil, debug.SetPanicOnFault(true))
	c.rescan.Store(true)
	return c.r.releaseDead(c.entry, c.owner)
}

// releaseDead is ReleaseDead for a consumer (self is its entry and owner
// word, alive whatever its lock says) or for a process without one (self
// -1). Entries held by consumers of this process count as alive too: they
// share this process's open file, whose own locks F_OFD_GETLK cannot see.
//
// It also clears the sleeping flag of dead consumers, so that the sleepers
// count they left behind does not make every producer pay a futex wake
// forever, and bumps the recover seq so that live consumers look at the
// lanes again from their tails (their cursors are past the released
// records).
func (r *Ring) releaseDead(self int, selfOwner uint32) int {
	m := r.m
	alive := map[uint32]bool{}
	if self >= 0 {
		alive[selfOwner] = true
	}
	held := func(e int) bool {
		r.mu.Lock()
		here := r.consumersHere[e]
		r.mu.Unlock()
		locked, err := byteLockedByOther(r.f, int64(r.consumerOff(e)))
		return here || err != nil || locked // when in doubt, alive
	}
	isAlive := func(owner uint32) bool {
		if v, ok := alive[owner]; ok {
			return v
		}
		e := ownerEntry(owner)
		v := e < r.geo.Consumers && m.u32(r.consumerOff(e)+conGen).Load()&0xFFFF == ownerGen(owner) && held(e)
		alive[owner] = v
		return v
	}
	released := 0
	for lane := 0; lane < r.geo.Lanes; lane++ {
		seq := m.u64(r.laneBase(lane) + laneTail).Load()
		for n := 0; n < r.geo.SlotsPerLane; n++ {
			word := m.u64(r.slotOff(lane, seq) + slotWord)
			w := word.Load()
			if wordSeq(w) != uint32(seq) || wordState(w) < stateReady {
				break
			}
			if wordState(w) == stateClaimed && !isAlive(wordOwner(w)) {
				if word.CompareAndSwap(w, slotWordOf(seq, stateReady, 0)) {
					m.u64(offInFlight).Add(^uint64(0))
					released++
				}
			}
			seq++
		}
	}
	for i := 0; i < r.geo.Consumers; i++ {
		if i == self || m.u32(r.consumerOff(i)+conSleeping).Load() == 0 {
			continue
		}
		if !held(i) {
			r.clearSleeping(i)
		}
	}
	r.healSleepers()
	if released > 0 {
		failpoint.Inject(FailpointReleasedDead)
		m.u32(offRecoverSeq).Add(1)
		r.wakeN(released) // one sleeper per record, as if each were published again
	}
	return released
}

// Close gives the consumer entry back. Records it still holds stay claimed
// until a consumer or the master calls ReleaseDead.
func (c *Consumer) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	r := c.r
	func() {
		defer r.guard(nil, debug.SetPanicOnFault(true))
		c.clearSleeping(c.entry)
		r.m.u32(r.consumerOff(c.entry) + conPid).Store(0)
	}()
	return r.giveBack(c.entry, r.consumerOff(c.entry), r.consumersHere)
}
