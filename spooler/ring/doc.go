// Package ring is gospool's shared-memory hand-off: a file in the spool
// directory, mapped MAP_SHARED by every producer and consumer process, that
// carries task records from workers to spoolers in microseconds.
//
// # Layout
//
// The file is a header page followed by L lanes (the byte diagram is beside
// the constants in layout.go). A producer process owns one lane, taken with
// an OFD record lock on the lane's first byte, so a lane has exactly one
// writer and needs no compare-and-swap on the producer side. A lane is a ring
// of S fixed-size slots, one per record, plus a byte ring holding the
// payloads. A slot's first word packs the record's sequence number, its state
// (empty, writing, ready, claimed, done) and, when claimed, its owner.
//
// Producers: take the slot at head (reclaiming done records at the tail when
// the lane is short of room), store WRITING, copy the payload and its length,
// CRC-32 and timestamp, then publish with a single aligned 8-byte store of
// READY, and finally advance the lane's head. A full lane or a payload over a
// quarter of the lane is refused at once (ErrFull, ErrTooLarge): the caller
// spills the task to a uWSGI spool file and never waits.
//
// Consumers: scan each lane from its tail and claim a READY record with a
// compare-and-swap of its slot word to CLAIMED(entry, generation). The word
// carries the sequence number, so a slot reused in a later lap can never be
// mistaken for the record a consumer saw (no ABA). Payloads stay in place,
// unchanged, until the consumer marks the record DONE.
//
// Wake-up: consumers spin briefly, then sleep on a futex word in the header
// after announcing themselves in a sleepers count; a producer pays the wake
// syscall only when that count is non-zero.
//
// # Crash recovery
//
// Nothing acknowledged is lost and nothing half-written runs, whatever
// process dies at whatever instruction, because every transition that
// matters is a single atomic store or compare-and-swap of a slot word, made
// after the data it vouches for:
//
//   - A producer killed before its READY store leaves a slot that says
//     WRITING (or an older lap): consumers stop there and never read the
//     payload. Its Push never returned, so the task was never acknowledged.
//     The kernel drops the dead process's lane lock; the next producer to
//     take the lane resumes at the head the dead one last stored, keeps the
//     READY records it finds beyond it, and overwrites the WRITING slot. A
//     master that reaps the producer calls [Ring.RecoverLanes], which does
//     the same at once under the lane's lock, without taking the lane, and
//     reports the lane and the torn record.
//   - A producer killed after its READY store leaves a complete record (the
//     payload and CRC were stored first); consumers run it. At worst its
//     caller never heard back: at-least-once, like uWSGI.
//   - A consumer killed while it holds records leaves them CLAIMED by an
//     owner whose entry lock the kernel has dropped. [Consumer.ReleaseDead]
//     (every spooler calls it at start-up and periodically) or
//     [Ring.ReleaseDead] (the master calls it when it reaps a child) swaps
//     them back to READY and wakes a consumer, and they run again. The
//     owner's generation, bumped each time an entry is taken, keeps a new
//     process in the same entry from being mistaken for the dead one.
//   - A record goes back to READY (a consumer's [Consumer.Release], or a
//     ReleaseDead) with a CAS, and then the recover seq is bumped so that
//     live consumers, whose cursors are past it, look again from the
//     tails. A process killed between the two leaves a READY record nobody
//     looks at; every consumer's periodic [Consumer.ReleaseDead] resets its
//     cursors whatever the recover seq says, so the record runs within one
//     period.
//   - The sleepers count and a consumer's sleeping flag are two words, so a
//     kill between their updates leaves them out of step. Wait raises the
//     count before the flag and clearSleeping lowers the flag before the
//     count: a kill leaves the count one too high (a producer pays a wake
//     syscall nobody needed), never too low (a producer would skip the
//     wake of a live sleeper, which then waits out its timeout every
//     time). ReleaseDead clears the flags of dead consumers, then sets the
//     count to the number of raised flags when both disagreed in the same
//     way at two looks in a row (a live consumer is out of step for a few
//     instructions only).
//   - A slot word is never written by two parties without a CAS: the
//     producer writes only slots beyond the tail (no consumer owns them), and
//     consumers change only READY or their own CLAIMED records.
//   - Space is reused only when a record is DONE, so a claimed payload never
//     changes under its consumer. A consumer checks the length and the CRC
//     before it reads a payload; a damaged record is counted and dropped,
//     never run.
//   - Counters in the header are statistics: a process killed between a
//     publish and its counter update leaves them off by one. The slots are
//     the truth, and [Ring.Stats] walks them.
//   - The file is created with its blocks allocated, under a temporary
//     name, and linked into place only then: no process ever maps a hole,
//     so a full disk cannot fault a store into the mapping. When the
//     blocks cannot be had (ENOSPC), there is no ring: producers write
//     spool files and the spoolers serve them on a private ring
//     ([NewPrivate]) until the file can be created.
//   - A file truncated or replaced under running processes: every method
//     that touches the mapping turns a fault (SIGBUS) into an error and
//     swaps the mapping for zeroed private memory, so the process lives
//     and finds nothing more in the ring; [Ring.Check] on every process's
//     periodic tick (and in Push, at most once a second) compares the
//     open file with its size and with the file its path names. Either
//     finding raises the header's retired word. A producer loads that word
//     after its publishing store, and the process that raised it looks at
//     the lanes after raising it; with sequentially consistent atomics one
//     of them sees the other: the record is claimed and runs, or the
//     producer takes it back with a CAS (READY to DONE) and Push fails, so
//     the caller spools the task elsewhere. Consumers of a replaced file
//     run what is ready in it, then start again on the new file; a master
//     moves what is still ready into the new file ([Ring.MoveTo]).
//     Records in a truncated part of a file are gone with it.
//
// With [Options.Sync] every publish is followed by msync, so an acknowledged
// task also survives a power loss; without it, it survives the crash of any
// process, including the master, since the file's pages belong to the kernel.
// An msync that fails comes after the publish, when a consumer may already
// run the record: Push then succeeds (an error would make its caller spool
// the task again, and it would run twice) and the failure is counted in the
// header's sync errors ([Stats.SyncErrors]).
//
// # Concurrency
//
// [Ring] and [Producer] are safe for concurrent use by many goroutines. A
// [Consumer] claims from one goroutine at a time; Done and Release may be
// called from any goroutine.
//
// # Caveats
//
// A claimed record holds its lane's space until it is done: a very long task
// at a lane's tail can fill the lane, and later tasks of that producer spill
// to spool files (they still run, a little slower). Locks are Linux OFD
// locks: the ring is Linux-only, on a local filesystem. On a copy-on-write
// filesystem (btrfs, ZFS) allocated blocks do not guarantee that a later
// write finds space: a full disk there makes Push fail with ErrRetired
// (never a signal), and Python producers, which have no fault guard, may
// die. A consumer's [Record.Payload] points into the mapping: a file
// truncated between a claim and the end of the payload's use faults
// outside this package's guards (the window is the decoding of one task;
// after the next Check or guarded fault the mapping is safe memory).
// Python producers honour the retired word as Go's do (they take a record
// published in that instant back with the same compare-and-swap), and
// raise it when their own check finds the file broken.
package ring
