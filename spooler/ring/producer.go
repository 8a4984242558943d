package ring

import (
	"fmt"
	"hash/crc32"
	"os"
	"runtime/debug"
	"sync"

	"github.com/gospool/gospool/internal/failpoint"
)

// Producer writes records into one lane of the ring. A process takes a lane
// with [Ring.Producer] and keeps it until [Producer.Close] or its death.
// A Producer is safe for concurrent use: goroutines share the lane under a
// mutex, which is held only while bytes are copied, never across a syscall
// that can block.
type Producer struct {
	r    *Ring
	lane int
	base int // lane's offset in the mapping
	pid  uint32

	mu     sync.Mutex
	closed bool
	// Cached copies of the lane's control words; the shared copies are
	// written after every publish so that the next owner can resume.
	head, tail, dataHead, dataTail uint64
}

// Failpoints on the producer's write protocol, in order. A process parked at
// any of them and killed leaves the ring consistent (see the package doc).
const (
	FailpointLaneTaken      = "ring-producer-lane-taken"
	FailpointReserved       = "ring-producer-reserved"
	FailpointWriting        = "ring-producer-writing"
	FailpointPayloadHalf    = "ring-producer-payload-half"
	FailpointPayloadWritten = "ring-producer-payload-written"
	FailpointPublished      = "ring-producer-published"
	FailpointHeadAdvanced   = "ring-producer-head-advanced"
	FailpointRetiredChecked = "ring-producer-retired-checked"
)

// FailpointSyncFails, unlike the others, parks nothing: it makes every
// msync after a publish fail, as a disk error would.
const FailpointSyncFails = "ring-producer-sync-fails"

var syncFails = os.Getenv(failpoint.EnvVar) == FailpointSyncFails

// Producer takes a free lane for this process. It fails with ErrNoLane when
// every lane belongs to another live producer; callers then spill to spool
// files. Taking a lane recovers what its previous owner left (see the
// package doc).
func (r *Ring) Producer() (*Producer, error) {
	if err := r.acquire(); err != nil {
		return nil, err
	}
	lane, err := r.takeEntry(r.geo.Lanes, r.laneBase, r.lanesHere)
	if err != nil {
		r.release()
		if err == errNoneFree {
			err = ErrNoLane
		}
		return nil, err
	}
	p := &Producer{r: r, lane: lane, base: r.laneBase(lane), pid: uint32(os.Getpid())}
	if err := p.recoverGuarded(); err != nil { // the mapping faulted (see health.go)
		r.giveBack(lane, p.base, r.lanesHere)
		return nil, err
	}
	failpoint.Inject(FailpointLaneTaken)
	return p, nil
}

func (p *Producer) recoverGuarded() (err error) {
	defer p.r.guard(&err, debug.SetPanicOnFault(true))
	p.recover()
	return nil
}

// Lane is the index of the lane this producer owns.
func (p *Producer) Lane() int { return p.lane }

// recover resumes the lane from its shared control words. Records the dead
// owner published (READY or later) after its last head update are kept: they
// are complete, since READY is stored after the payload and its CRC. A record
// still WRITING was never acknowledged to anyone and is overwritten.
func (p *Producer) recover() {
	m := p.r.m
	p.head = m.u64(p.base + laneHead).Load()
	p.tail = m.u64(p.base + laneTail).Load()
	p.dataHead = m.u64(p.base + laneDataHead).Load()
	p.dataTail = m.u64(p.base + laneDataTail).Load()
	S := uint64(p.r.geo.SlotsPerLane)
	if p.head < p.tail || p.head-p.tail > S || p.dataHead < p.dataTail ||
		p.dataHead-p.dataTail > uint64(p.r.geo.LaneBytes) {
		// Impossible unless the file was damaged: start the lane afresh
		// after its last sequence, so stale slots can never match.
		p.tail, p.dataTail = p.head, p.dataHead
		if p.dataHead < p.dataTail {
			p.dataHead = p.dataTail
		}
	}
	for p.head-p.tail < S {
		off := p.r.slotOff(p.lane, p.head)
		w := m.u64(off + slotWord).Load()
		if wordSeq(w) != uint32(p.head) || wordState(w) < stateReady {
			break
		}
		end := m.u64(off+slotData).Load() + uint64(m.u32(off+slotLength).Load())
		if end > p.dataHead {
			p.dataHead = end
		}
		p.head++
	}
	m.u32(p.base + laneOwner).Store(p.pid)
	p.storeControl()
}

func (p *Producer) storeControl() {
	m := p.r.m
	m.u64(p.base + laneDataHead).Store(p.dataHead)
	m.u64(p.base + laneDataTail).Store(p.dataTail)
	m.u64(p.base + laneTail).Store(p.tail)
	m.u64(p.base + laneHead).Store(p.head)
}

// reclaim advances the tail over records consumers have finished.
func (p *Producer) reclaim() {
	m := p.r.m
	for p.tail < p.head {
		off := p.r.slotOff(p.lane, p.tail)
		w := m.u64(off + slotWord).Load()
		if wordSeq(w) != uint32(p.tail) || wordState(w) != stateDone {
			break
		}
		p.dataTail = m.u64(off+slotData).Load() + uint64(m.u32(off+slotLength).Load())
		p.tail++
	}
	if p.tail == p.head {
		p.dataTail = p.dataHead
	}
	m.u64(p.base + laneDataTail).Store(p.dataTail)
	m.u64(p.base + laneTail).Store(p.tail)
}

// place finds room for n payload bytes: the data position, or false.
// Payloads are contiguous; one that would cross the end of the data area
// starts at the next lap instead, wasting the end.
func (p *Producer) place(n int) (uint64, bool) {
	D := uint64(p.r.geo.LaneBytes)
	pos := p.dataHead
	if pos%D+uint64(n) > D {
		pos += D - pos%D
	}
	if pos+uint64(n)-p.dataTail > D {
		return 0, false
	}
	return pos, true
}

// Push publishes one record. It never blocks on anything but the lane's
// in-process mutex: a full lane returns ErrFull and a payload over
// [Geometry.MaxRecord] returns ErrTooLarge, and the caller spills the task
// to a spool file. When Push returns nil the record is in the shared
// mapping and survives the death of any process (and, with Options.Sync, a
// power loss, unless the msync failed: that is counted in [Stats.SyncErrors]
// and not returned, since the record is published and will run). When Push
// returns an error, the record was not published.
func (p *Producer) Push(payload []byte) (err error) {
	if len(payload) > p.r.geo.MaxRecord() {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(payload), p.r.geo.MaxRecord())
	}
	crc := crc32.ChecksumIEEE(payload)
	now := monotonicNanos()
	// Is the file still the one its path names, and whole? Two stat calls,
	// at most once a second per Ring, before the lane's mutex is taken.
	// Alone it leaves a second's window; the retired word below closes it.
	p.r.maybeCheck(now)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.push(payload, crc, now)
}

// push is Push with the lane's mutex held. (Two functions with one defer
// each, so that the compiler inlines the defers: a function with more
// defers times return statements pays the runtime's defer records.)
func (p *Producer) push(payload []byte, crc uint32, now int64) (err error) {
	// A fault in the mapping (the file was truncated, or a sparse file
	// met a full disk) becomes an error, unless the record was published
	// already: then it exists and the caller must not spool it again.
	published := false
	defer func(old bool) {
		debug.SetPanicOnFault(old)
		if e := recover(); e != nil {
			if fault := p.r.faulted(e); !published {
				err = fault
			}
		}
	}(debug.SetPanicOnFault(true))
	if p.closed {
		return ErrClosed
	}
	if err := p.r.usable(); err != nil {
		return err
	}
	m := p.r.m
	S := uint64(p.r.geo.SlotsPerLane)
	if p.head-p.tail >= S {
		p.reclaim()
		if p.head-p.tail >= S {
			return ErrFull
		}
	}
	pos, ok := p.place(len(payload))
	if !ok {
		p.reclaim()
		if pos, ok = p.place(len(payload)); !ok {
			return ErrFull
		}
	}
	failpoint.Inject(FailpointReserved)

	seq := p.head
	off := p.r.slotOff(p.lane, seq)
	word := m.u64(off + slotWord)
	// 1. Mark the slot as being written in this lap. Consumers stop at it.
	word.Store(slotWordOf(seq, stateWriting, p.pid))
	failpoint.Inject(FailpointWriting)

	// 2. Copy the payload and its description. Nothing reads them before
	// step 3, which orders them before the READY word.
	d := p.r.dataOff(p.lane) + int(pos%uint64(p.r.geo.LaneBytes))
	half := len(payload) / 2
	copy(m[d:], payload[:half])
	failpoint.Inject(FailpointPayloadHalf)
	copy(m[d+half:], payload[half:])
	m.u64(off + slotData).Store(pos)
	m.u32(off + slotLength).Store(uint32(len(payload)))
	m.u32(off + slotCRC).Store(crc)
	m.u64(off + slotStamp).Store(uint64(now))
	failpoint.Inject(FailpointPayloadWritten)

	// 3. Publish: one aligned 8-byte store. From here on the record exists.
	ready := slotWordOf(seq, stateReady, 0)
	word.Store(ready)
	published = true
	failpoint.Inject(FailpointPublished)

	// 4. Tell the lane's next owner where we are.
	p.head = seq + 1
	p.dataHead = pos + uint64(len(payload))
	m.u64(p.base + laneDataHead).Store(p.dataHead)
	m.u64(p.base + laneHead).Store(p.head)
	failpoint.Inject(FailpointHeadAdvanced)

	// 5. Was the ring retired while we wrote (see Check)? Our READY store
	// comes before this load, and the retiring process raises the word
	// before it looks at the lanes (Go's atomics are sequentially
	// consistent): so either it sees the record and a consumer of this
	// file takes it, or we see the word. Then we take the record back
	// with the same compare-and-swap a consumer would claim it with:
	// exactly one of us wins. Taken back, it is done (the lane reuses its
	// space) and the caller spools the task elsewhere; claimed, it runs.
	if m.u32(offRetired).Load() != 0 || p.r.broken.Load() {
		if word.CompareAndSwap(ready, slotWordOf(seq, stateDone, 0)) {
			published = false
			if err := p.r.usable(); err != nil {
				return err
			}
			return fmt.Errorf("ring %s: %w", p.r.path, ErrRetired)
		}
	}
	failpoint.Inject(FailpointRetiredChecked)

	if p.r.sync {
		// The task is spooled since step 3: a consumer may run it already.
		// An error now would make the caller spool it again and the task
		// run twice, so a failed msync (the record survives any crash but
		// perhaps not a power loss) is counted in the header, for
		// `gospool stats` and monitoring, and Push succeeds.
		if err := msync(m); err != nil || syncFails {
			m.u64(offSyncErrors).Add(1)
		}
	}
	m.u64(offSpooled).Add(1)
	p.r.wake()
	return nil
}

// RecoverLanes tidies the lanes of producer processes that died, without
// taking a lane for this process: a master calls it when it reaps a child.
// A lane needs it when its owner pid word is set (a producer took it and
// never closed it) but no process holds its lock (that producer is dead).
// For each such lane RecoverLanes takes the lane's lock, runs the recovery
// the lane's next producer would run (records the dead one published stay,
// the head moves past them), clears the owner pid, and gives the lock back.
// A record the dead producer left WRITING at the head was never
// acknowledged to anyone: no consumer ever reads it, the lane's next
// producer overwrites it, and it is counted in torn. Consumers are woken
// when a lane was recovered. It returns how many lanes it recovered and how
// many torn records it found; a read-only or closed ring recovers nothing.
//
// The lane's lock is the arbiter against a producer taking the lane at the
// same moment: whoever locks first has the lane, the other skips it (a
// producer then tries the next lane, or spills its task to a spool file if
// there was only this one, for the microseconds the recovery takes). Lanes
// owned by producers of this process are skipped: their locks belong to
// this Ring's own open file, which cannot conflict with itself.
func (r *Ring) RecoverLanes() (lanes, torn int) {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	if err := r.acquire(); err != nil {
		return 0, 0
	}
	defer r.release()
	for lane := 0; lane < r.geo.Lanes; lane++ {
		if r.m.u32(r.laneBase(lane)+laneOwner).Load() == 0 {
			continue // closed cleanly, or never used: nothing to do, no syscall
		}
		recovered, tornHere := r.recoverLane(lane)
		if recovered {
			lanes++
		}
		if tornHere {
			torn++
		}
	}
	if lanes > 0 {
		r.WakeAll()
	}
	return lanes, torn
}

// recoverLane recovers one lane if its producer is gone; see RecoverLanes.
// r.mu is held throughout, so no producer of this process can take the lane
// meanwhile (takeEntry runs under r.mu); producers of other processes are
// kept out by the lock byte.
func (r *Ring) recoverLane(lane int) (recovered, torn bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lanesHere[lane] {
		return false, false
	}
	base := r.laneBase(lane)
	if ok, err := tryLockByte(r.f, int64(base)); err != nil || !ok {
		return false, false // a live producer owns it (or we cannot tell)
	}
	defer unlockByte(r.f, int64(base))
	if r.m.u32(base+laneOwner).Load() == 0 {
		return false, false // its producer closed it after our first look
	}
	// pid 0: recover stores it as the lane's owner, "nobody".
	p := &Producer{r: r, lane: lane, base: base}
	p.recover()
	w := r.m.u64(r.slotOff(lane, p.head) + slotWord).Load()
	return true, wordSeq(w) == uint32(p.head) && wordState(w) == stateWriting
}

// Close gives the lane back. Records already pushed stay in the ring.
func (p *Producer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	func() {
		defer p.r.guard(nil, debug.SetPanicOnFault(true))
		p.r.m.u32(p.base + laneOwner).Store(0)
	}()
	return p.r.giveBack(p.lane, p.base, p.r.lanesHere)
}
