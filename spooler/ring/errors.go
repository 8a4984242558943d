package ring

import "errors"

// Errors returned when opening a ring file. Each is wrapped with the path
// and details; test with errors.Is.
var (
	// ErrNotRing: the file does not start with the ring magic.
	ErrNotRing = errors.New("not a gospool ring file")
	// ErrVersion: the file was written by another version of the ring layout.
	ErrVersion = errors.New("ring file of another version")
	// ErrCorruptHeader: the header checksum or geometry does not hold.
	ErrCorruptHeader = errors.New("ring header is corrupt")
	// ErrTruncated: the file is shorter than its header says.
	ErrTruncated = errors.New("ring file is truncated")
	// ErrGeometry: the file exists with another geometry than the one asked for.
	ErrGeometry = errors.New("ring file has another geometry")
)

// Errors returned by producers and consumers.
var (
	// ErrFull: the lane has no room for the record now. Callers spill the
	// task to a spool file; they never wait.
	ErrFull = errors.New("ring lane is full")
	// ErrTooLarge: the record is bigger than a lane accepts
	// ([Geometry.MaxRecord]). Callers spill the task to a spool file.
	ErrTooLarge = errors.New("record is larger than a ring lane accepts")
	// ErrNoLane: every lane is owned by another live producer process.
	ErrNoLane = errors.New("every ring lane is taken by another producer process")
	// ErrNoConsumerSlot: every consumer entry is taken by a live process.
	ErrNoConsumerSlot = errors.New("every ring consumer entry is taken")
	// ErrClosed: the producer, consumer or ring was closed.
	ErrClosed = errors.New("ring is closed")
	// ErrLost: the consumer no longer owns the record (it was released as
	// belonging to a dead consumer); its outcome is not recorded.
	ErrLost = errors.New("record is no longer owned by this consumer")
)
