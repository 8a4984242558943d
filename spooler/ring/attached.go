package ring

import (
	"sync"
	"sync/atomic"
)

// Attachment answers, on every spool call, "is a gospool spooler process
// attached to this ring right now?": producers put a task into the ring
// only then, and write a uWSGI spool file otherwise, which every spooler
// of the directory (uWSGI's or gospool's) runs. It is safe for concurrent
// use.
//
// The truth is the consumer entries' OFD locks (see [Ring.HasLiveConsumer]),
// but asking the kernel costs a system call per entry. Attachment reads the
// entries' words in the shared header instead, which a consumer keeps
// current (see the consumer table in layout.go):
//
//		entry +0  generation  bumped when a process takes the entry
//		entry +4  pid         stored right after; set to 0 by a clean Close,
//		                      before the lock is dropped
//
//	  - attached, the fast path: the entry found attached last time still
//	    holds the same pid: one shared load. A clean stop (a shutdown, a
//	    max-tasks recycling) zeroes it and is seen at the next call. A
//	    killed consumer leaves its pid behind, so the lock is asked again
//	    once per recheck (one system call a second, the clock read every
//	    attachClockEvery calls).
//	  - not attached: every pid word is 0 (one load per entry, no system
//	    call), or the entries whose pid is left behind were found unlocked
//	    (dead) within the last recheck and no entry has been taken since (the
//	    sum of the generations is unchanged).
//
// A task can still reach the ring just as its last spooler goes away: it
// stays in the ring file and runs when a gospool spooler attaches again,
// as the tasks of a stopped master do.
type Attachment struct {
	r *Ring

	mu    sync.Mutex   // serializes the slow path
	entry atomic.Int32 // the entry found attached, or -1
	pid   atomic.Uint32
	gens  atomic.Uint32 // sum of the generations when "not attached" was decided
	until atomic.Int64  // MonotonicNanos until which the answer holds without a system call
	calls atomic.Uint32 // attached fast path calls, to read the clock only now and then
}

// attachRecheck is how long an answer that the kernel's locks confirmed
// stands while the header words do not contradict it.
const attachRecheck = int64(1e9)

// attachClockEvery: the attached fast path reads the clock once every
// attachClockEvery calls, so a consumer killed without a clean Close is
// noticed after the later of attachRecheck and that many calls (a master
// that reaps it respawns a new one meanwhile, and the tasks wait in the
// ring file for it, safe).
const attachClockEvery = 16

// Attachment returns a new Attachment of the ring; keep it, its cache is
// what makes it cheap.
func (r *Ring) Attachment() *Attachment {
	a := &Attachment{r: r}
	a.entry.Store(-1)
	return a
}

// Attached reports whether a gospool spooler process (not counting this
// Ring's own consumers) is attached to the ring.
func (a *Attachment) Attached() bool {
	if e := a.entry.Load(); e >= 0 {
		// The hot path: one shared load, and the clock (75 ns on a kvm-clock
		// VM, more than the rest of a ring push) only every attachClockEvery
		// calls.
		if a.r.m.u32(a.r.consumerOff(int(e))+conPid).Load() == a.pid.Load() &&
			(a.calls.Add(1)%attachClockEvery != 0 || monotonicNanos() < a.until.Load()) {
			return true
		}
		return a.check(monotonicNanos())
	}
	// Not attached: the task goes to a spool file, tens of microseconds;
	// these loads are nothing beside it.
	now := monotonicNanos()
	if now < a.until.Load() && a.genSum() == a.gens.Load() {
		return false
	}
	if a.noPid() {
		return false
	}
	return a.check(now)
}

// noPid reports whether every consumer entry's pid word is 0.
func (a *Attachment) noPid() bool {
	for i := 0; i < a.r.geo.Consumers; i++ {
		if a.r.m.u32(a.r.consumerOff(i)+conPid).Load() != 0 {
			return false
		}
	}
	return true
}

func (a *Attachment) genSum() uint32 {
	var sum uint32
	for i := 0; i < a.r.geo.Consumers; i++ {
		sum += a.r.m.u32(a.r.consumerOff(i) + conGen).Load()
	}
	return sum
}

// check asks the kernel which entries are locked, and caches the answer.
func (a *Attachment) check(now int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.r
	gens := a.genSum() // before the locks: an entry taken meanwhile changes it
	for i := 0; i < r.geo.Consumers; i++ {
		pid := r.m.u32(r.consumerOff(i) + conPid).Load()
		if pid == 0 {
			continue
		}
		if held, err := byteLockedByOther(r.f, int64(r.consumerOff(i))); err != nil || held {
			// In doubt (the query failed), say attached: the task then
			// waits in the ring file, where it is safe, not lost.
			a.pid.Store(pid)
			a.entry.Store(int32(i))
			a.until.Store(now + attachRecheck)
			return true
		}
	}
	a.entry.Store(-1)
	a.gens.Store(gens)
	a.until.Store(now + attachRecheck)
	return false
}
