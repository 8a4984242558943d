package ring

import (
	"runtime/debug"
	"time"
)

// Stats is a snapshot of the ring: the header's live counters, plus what a
// walk over the lanes finds right now.
type Stats struct {
	Geometry Geometry
	Spooled  uint64 // published into the ring
	Spilled  uint64 // written as spool files instead (full lane, too large, no lane)
	Done     uint64 // handler said OK
	Retried  uint64 // sent back as a spool file for a later attempt
	Failed   uint64 // handler error or panic (also counted in Retried)
	Ignored  uint64 // no handler took it
	Corrupt  uint64 // failed a CRC or bounds check; dropped
	Dead     uint64 // moved to the dead-letter directory after the last retry
	InFlight uint64 // claimed by a consumer now (header counter)
	// SyncErrors counts msync failures after a publish (Options.Sync): the
	// task was spooled and runs, but may not have reached the disk.
	SyncErrors uint64
	Ready      int // published, not yet claimed (walk)
	Claimed    int // claimed now (walk)
	// Fill is the fraction of the ring's payload space held by ready and
	// claimed records, from 0 to 1.
	Fill      float64
	Sleepers  uint32
	Lanes     []LaneStats
	Consumers []ConsumerStats
}

// LaneStats describes one lane with an owner or with records in it.
type LaneStats struct {
	Lane     int
	OwnerPid int // 0: no producer owns it
	Ready    int
	Claimed  int
	Writing  bool // a record is being written (or its writer died writing it)
}

// ConsumerStats describes one consumer entry held by a live process.
type ConsumerStats struct {
	Entry int
	Pid   int
	Tasks uint64
	Since time.Time
}

// Stats reads the counters and walks the lanes. It takes no lock and may be
// called by any process that opened the ring, while others use it.
func (r *Ring) Stats() (s Stats) {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	m := r.m
	s = Stats{
		Geometry: r.geo,
		Spooled:  m.u64(offSpooled).Load(),
		Spilled:  m.u64(offSpilled).Load(),
		Done:     m.u64(offDone).Load(),
		Retried:  m.u64(offRetried).Load(),
		Failed:   m.u64(offFailed).Load(),
		Ignored:  m.u64(offIgnored).Load(),
		Corrupt:  m.u64(offCorrupt).Load(),
		Dead:     m.u64(offDead).Load(),
		InFlight: m.u64(offInFlight).Load(),
		Sleepers: m.u32(offSleepers).Load(),

		SyncErrors: m.u64(offSyncErrors).Load(),
	}
	var used uint64
	for lane := 0; lane < r.geo.Lanes; lane++ {
		base := r.laneBase(lane)
		ls := LaneStats{Lane: lane}
		if held, err := byteLockedByOther(r.f, int64(base)); err == nil && held {
			ls.OwnerPid = int(m.u32(base + laneOwner).Load())
		}
		seq := m.u64(base + laneTail).Load()
		for n := 0; n < r.geo.SlotsPerLane; n++ {
			off := r.slotOff(lane, seq)
			w := m.u64(off + slotWord).Load()
			if wordSeq(w) != uint32(seq) {
				break
			}
			switch wordState(w) {
			case stateReady:
				ls.Ready++
			case stateClaimed:
				ls.Claimed++
			case stateWriting:
				ls.Writing = true
			}
			if st := wordState(w); st == stateReady || st == stateClaimed {
				used += uint64(m.u32(off + slotLength).Load())
			}
			if wordState(w) < stateReady {
				break
			}
			seq++
		}
		s.Ready += ls.Ready
		s.Claimed += ls.Claimed
		if ls.OwnerPid != 0 || ls.Ready+ls.Claimed > 0 || ls.Writing {
			s.Lanes = append(s.Lanes, ls)
		}
	}
	s.Fill = float64(used) / float64(r.geo.Lanes*r.geo.LaneBytes)
	for i := 0; i < r.geo.Consumers; i++ {
		off := r.consumerOff(i)
		r.mu.Lock()
		here := r.consumersHere[i]
		r.mu.Unlock()
		held, err := byteLockedByOther(r.f, int64(off))
		if !here && (err != nil || !held) {
			continue
		}
		s.Consumers = append(s.Consumers, ConsumerStats{
			Entry: i,
			Pid:   int(m.u32(off + conPid).Load()),
			Tasks: m.u64(off + conTasks).Load(),
			Since: time.Unix(0, int64(m.u64(off+conSince).Load())),
		})
	}
	return s
}

// RecordInfo describes one record waiting in, or running from, the ring.
type RecordInfo struct {
	Lane    int
	Seq     uint64
	Claimed bool // false: ready
	// Pid of the consumer process running it (0 when ready or unknown).
	Pid int
	// Stamp is the producer's CLOCK_MONOTONIC at publish, in nanoseconds.
	Stamp  int64
	Length int
}

// String names the record as logs do: "ring:LANE:SEQ".
func (ri RecordInfo) String() string { return Record{Lane: ri.Lane, Seq: ri.Seq}.String() }

// Records lists the ready and claimed records, lane by lane, oldest first.
// Like Stats it takes no lock; a record may change state while it is read.
func (r *Ring) Records() (out []RecordInfo) {
	defer r.guard(nil, debug.SetPanicOnFault(true))
	m := r.m
	for lane := 0; lane < r.geo.Lanes; lane++ {
		seq := m.u64(r.laneBase(lane) + laneTail).Load()
		for n := 0; n < r.geo.SlotsPerLane; n, seq = n+1, seq+1 {
			off := r.slotOff(lane, seq)
			w := m.u64(off + slotWord).Load()
			if wordSeq(w) != uint32(seq) || wordState(w) < stateReady {
				break
			}
			st := wordState(w)
			if st != stateReady && st != stateClaimed {
				continue
			}
			ri := RecordInfo{Lane: lane, Seq: seq, Claimed: st == stateClaimed,
				Stamp: int64(m.u64(off + slotStamp).Load()), Length: int(m.u32(off + slotLength).Load())}
			if ri.Claimed {
				if e := ownerEntry(wordOwner(w)); e < r.geo.Consumers {
					ri.Pid = int(m.u32(r.consumerOff(e) + conPid).Load())
				}
			}
			out = append(out, ri)
		}
	}
	return out
}
