package ring

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The ring file, byte by byte. Integers are in the host's byte order, since
// every process that maps the file runs on the same host; gospool builds
// for little-endian Linux only, so in practice they are little-endian.
//
//	offset  size  field                       written by
//	------  ----  --------------------------  -------------------------------
//	HEADER PAGE (4096 bytes)
//	0       8     magic "GOSPRING"            creator, then read-only
//	8       4     version (2)                 creator
//	12      4     header size (4096)          creator
//	16      4     lanes L                     creator
//	20      4     slots per lane S (2^n)      creator
//	24      4     data bytes per lane D (2^n) creator
//	28      4     consumer slots C            creator
//	32      8     lane stride (bytes)         creator
//	40      8     file size (bytes)           creator
//	48      4     CRC-32 of bytes 0..47       creator
//	52      4     retired     non-zero: the file was found removed,
//	                          replaced or short; producers publish no more
//	56      8     sync errors msync failures after a publish (the task
//	                          was spooled; only its power-loss safety failed)
//	--- cache line 64: producer counters ---
//	64      8     spooled   tasks published into the ring
//	72      8     spilled   tasks written as spool files instead
//	80      4     file seq  bumped after every spill: "rescan the directory"
//	--- cache line 128: consumer counters ---
//	128     8     done      handler said OK
//	136     8     retried   sent back as a spool file for a later attempt
//	144     8     failed    handler error or panic (also counted in retried)
//	152     8     ignored   no handler took it; moved to a spool file
//	160     8     corrupt   records that failed their CRC or bounds check
//	168     8     in flight records claimed by a consumer right now
//	176     4     recover seq bumped when a dead consumer's records are released
//	184     8     dead      moved to the dead-letter directory after their last retry
//	--- cache line 192: wake-up ---
//	192     4     wake seq  the futex word consumers sleep on
//	196     4     sleepers  consumers asleep (or about to be) on wake seq
//	--- 1024: consumer table, C entries of 64 bytes ---
//	+0      4     generation  bumped each time a process takes the entry
//	+4      4     pid         of the process that holds the entry
//	+8      4     sleeping    1 while that consumer counts in sleepers
//	+16     8     tasks       tasks this consumer finished
//	+24     8     since       unix nanoseconds when it took the entry
//	(byte +0 of an entry is also its lock byte: the holder keeps an OFD write
//	lock on it for as long as it lives; the kernel drops it when it dies)
//
//	LANE i at 4096 + i*stride
//	+0      4     owner pid   informational
//	+8      8     head        next sequence number to write  (owner only)
//	+16     8     tail        oldest sequence not reclaimed  (owner only)
//	+24     8     data head   next data position to write    (owner only)
//	+32     8     data tail   oldest data position in use    (owner only)
//	(byte +0 is the lane's lock byte: a producer process holds an OFD write
//	lock on it while it owns the lane)
//	+64     S*32  slots, one per record, indexed by seq mod S:
//	          +0  8  word    seq<<32 | state<<24 | owner   (the only word
//	                         that is ever compare-and-swapped)
//	          +8  8  data    data position of the payload (monotonic)
//	          +16 4  length  payload bytes
//	          +20 4  crc     CRC-32 (IEEE) of the payload
//	          +24 8  stamp   producer's CLOCK_MONOTONIC at publish, ns
//	+64+S*32 (rounded up to 64)  D bytes of payload data, a byte ring
//	stride = the above rounded up to 4096
const (
	// Magic opens every ring file.
	Magic        = "GOSPRING"
	version      = 2
	headerSize   = 4096
	cacheLine    = 64
	consumerBase = 1024
	consumerSize = 64
	laneCtlSize  = 64
	slotSize     = 32

	offMagic     = 0
	offVersion   = 8
	offHdrSize   = 12
	offLanes     = 16
	offSlots     = 20
	offLaneBytes = 24
	offConsumers = 28
	offStride    = 32
	offFileSize  = 40
	offChecksum  = 48
	checksummed  = 48
	// Bytes 52..63 were reserved (zero) and outside the checksum, so the
	// two words below need no new version: a reader that ignores them (an
	// older gospool, a Python producer that does not look) sees zero.
	offRetired    = 52
	offSyncErrors = 56

	offSpooled    = 64
	offSpilled    = 72
	offFileSeq    = 80
	offDone       = 128
	offRetried    = 136
	offFailed     = 144
	offIgnored    = 152
	offCorrupt    = 160
	offInFlight   = 168
	offRecoverSeq = 176
	offDead       = 184
	offWakeSeq    = 192
	offSleepers   = 196

	conGen      = 0
	conPid      = 4
	conSleeping = 8
	conTasks    = 16
	conSince    = 24

	laneOwner    = 0
	laneHead     = 8
	laneTail     = 16
	laneDataHead = 24
	laneDataTail = 32

	slotWord   = 0
	slotData   = 8
	slotLength = 16
	slotCRC    = 20
	slotStamp  = 24

	// MaxConsumers is how many consumer entries fit in the header page.
	MaxConsumers = (headerSize - consumerBase) / consumerSize
)

// Record states, in bits 24..31 of a slot's word.
const (
	stateEmpty   = 0 // never written in this lap
	stateWriting = 1 // a producer is copying the payload
	stateReady   = 2 // published: any consumer may claim it
	stateClaimed = 3 // a consumer runs it; owner says which
	stateDone    = 4 // finished: the lane's owner may reuse the space
)

var stateNames = [...]string{"empty", "writing", "ready", "claimed", "done"}

// slotWordOf packs a slot word. seq keeps its low 32 bits: a consumer that
// stalls while 2^32 records pass through one lane could be fooled, nobody else.
func slotWordOf(seq uint64, state uint8, owner uint32) uint64 {
	return uint64(uint32(seq))<<32 | uint64(state)<<24 | uint64(owner&0xFFFFFF)
}

func wordSeq(w uint64) uint32   { return uint32(w >> 32) }
func wordState(w uint64) uint8  { return uint8(w >> 24) }
func wordOwner(w uint64) uint32 { return uint32(w) & 0xFFFFFF }

// owner packs a consumer entry index (8 bits) and its generation (16 bits).
func ownerOf(entry int, gen uint32) uint32 { return uint32(entry)<<16 | gen&0xFFFF }
func ownerEntry(o uint32) int              { return int(o >> 16) }
func ownerGen(o uint32) uint32             { return o & 0xFFFF }

// Geometry is the shape of a ring file. It is fixed when the file is created;
// opening a file with another geometry is an error.
type Geometry struct {
	// Lanes is how many producer processes can write at once; one lane each.
	Lanes int
	// SlotsPerLane bounds the records a lane holds (a power of two).
	SlotsPerLane int
	// LaneBytes is the payload space of a lane (a power of two). A record may
	// use at most a quarter of it; bigger tasks go to spool files.
	LaneBytes int
	// Consumers bounds the consumer processes attached at once.
	Consumers int
}

// DefaultGeometry is what gospool creates unless told otherwise: 32 lanes of
// 8192 records and 1 MiB each, 48 consumers; a 41 MiB file. Its blocks are
// allocated when it is created (a sparse file would make a full disk kill
// producers with SIGBUS), so on a tmpfs spool directory it takes 41 MiB of
// memory; choose a smaller geometry there if that matters.
func DefaultGeometry() Geometry {
	return Geometry{Lanes: 32, SlotsPerLane: 8192, LaneBytes: 1 << 20, Consumers: MaxConsumers}
}

// MaxRecord is the largest payload a lane of this geometry accepts.
func (g Geometry) MaxRecord() int { return g.LaneBytes / 4 }

func (g Geometry) validate() error {
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	switch {
	case g.Lanes < 1 || g.Lanes > 4096:
		return fmt.Errorf("lanes %d: want 1 to 4096", g.Lanes)
	case !pow2(g.SlotsPerLane) || g.SlotsPerLane < 2 || g.SlotsPerLane > 1<<20:
		return fmt.Errorf("slots per lane %d: want a power of two from 2 to 1048576", g.SlotsPerLane)
	case !pow2(g.LaneBytes) || g.LaneBytes < 4096 || g.LaneBytes > 1<<30:
		return fmt.Errorf("lane bytes %d: want a power of two from 4096 to 1 GiB", g.LaneBytes)
	case g.Consumers < 1 || g.Consumers > MaxConsumers:
		return fmt.Errorf("consumers %d: want 1 to %d", g.Consumers, MaxConsumers)
	}
	return nil
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// slotsOffset and dataOffset are relative to the lane's start.
func (g Geometry) slotsOffset() int { return laneCtlSize }
func (g Geometry) dataOffset() int  { return roundUp(laneCtlSize+g.SlotsPerLane*slotSize, cacheLine) }
func (g Geometry) stride() int      { return roundUp(g.dataOffset()+g.LaneBytes, 4096) }
func (g Geometry) fileSize() int    { return headerSize + g.Lanes*g.stride() }

// encodeHeader writes the immutable part of the header and its checksum.
func (g Geometry) encodeHeader(h []byte) {
	le := binary.LittleEndian
	copy(h[offMagic:], Magic)
	le.PutUint32(h[offVersion:], version)
	le.PutUint32(h[offHdrSize:], headerSize)
	le.PutUint32(h[offLanes:], uint32(g.Lanes))
	le.PutUint32(h[offSlots:], uint32(g.SlotsPerLane))
	le.PutUint32(h[offLaneBytes:], uint32(g.LaneBytes))
	le.PutUint32(h[offConsumers:], uint32(g.Consumers))
	le.PutUint64(h[offStride:], uint64(g.stride()))
	le.PutUint64(h[offFileSize:], uint64(g.fileSize()))
	le.PutUint32(h[offChecksum:], crc32.ChecksumIEEE(h[:checksummed]))
}

// Checksums are CRC-32 with the IEEE polynomial, zlib's: a Python producer
// computes it at C speed with zlib.crc32 from the standard library, which
// has no CRC-32C (version 1 of the ring used CRC-32C). Go computes both with
// the CPU's carry-less multiply.

// decodeHeader checks the immutable header and returns the geometry it
// describes. fileLen is the size of the file as the caller saw it.
func decodeHeader(h []byte, fileLen int64) (Geometry, error) {
	le := binary.LittleEndian
	// The magic first, as far as the file goes: a short file that is not a
	// ring is "not a ring", not "a truncated ring".
	if n := min(len(h), len(Magic)); string(h[offMagic:offMagic+n]) != Magic[:n] {
		return Geometry{}, fmt.Errorf("%w: magic %q, want %q", ErrNotRing, h[offMagic:offMagic+n], Magic)
	}
	if len(h) < headerSize {
		return Geometry{}, fmt.Errorf("%w: %d bytes, a ring header needs %d", ErrTruncated, len(h), headerSize)
	}
	if v := le.Uint32(h[offVersion:]); v != version {
		return Geometry{}, fmt.Errorf("%w: file has version %d, this gospool reads version %d", ErrVersion, v, version)
	}
	if sum := crc32.ChecksumIEEE(h[:checksummed]); sum != le.Uint32(h[offChecksum:]) {
		return Geometry{}, fmt.Errorf("%w: header checksum %08x, computed %08x", ErrCorruptHeader, le.Uint32(h[offChecksum:]), sum)
	}
	g := Geometry{
		Lanes:        int(le.Uint32(h[offLanes:])),
		SlotsPerLane: int(le.Uint32(h[offSlots:])),
		LaneBytes:    int(le.Uint32(h[offLaneBytes:])),
		Consumers:    int(le.Uint32(h[offConsumers:])),
	}
	if err := g.validate(); err != nil {
		return Geometry{}, fmt.Errorf("%w: %v", ErrCorruptHeader, err)
	}
	if le.Uint32(h[offHdrSize:]) != headerSize || le.Uint64(h[offStride:]) != uint64(g.stride()) ||
		le.Uint64(h[offFileSize:]) != uint64(g.fileSize()) {
		return Geometry{}, fmt.Errorf("%w: sizes in the header do not follow from its geometry", ErrCorruptHeader)
	}
	if fileLen < int64(g.fileSize()) {
		return Geometry{}, fmt.Errorf("%w: file is %d bytes, its header says %d", ErrTruncated, fileLen, g.fileSize())
	}
	return g, nil
}
