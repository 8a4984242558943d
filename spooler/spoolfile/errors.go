package spoolfile

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Match them with [errors.Is]; the concrete errors carry the
// path, the byte offset or the sizes.
var (
	// ErrShortHeader: the file has fewer than the 4 header bytes. uWSGI keeps
	// such a file and tries again on a later pass, because it is most likely
	// one that a writer has created but not written yet. Callers should do the
	// same: skip it, do not delete it.
	ErrShortHeader = errors.New("spool file shorter than its 4-byte header (probably still being written; skip it and retry later)")

	// ErrTruncated: the header announces a vars block longer than the rest of
	// the file. uWSGI deletes such a file (its read of the vars comes up short).
	ErrTruncated = errors.New("spool file truncated")

	// ErrCorrupt: the vars block does not parse the way uWSGI parses it.
	// uWSGI's Python plugin treats this as a finished task and deletes the file.
	ErrCorrupt = errors.New("spool file corrupt")

	// ErrTooLarge: a key, a value or the whole vars block is over
	// [MaxVarsLen]. uWSGI cannot store it; the data belongs in the body.
	ErrTooLarge = errors.New("over uWSGI's 64 KiB limit")

	// ErrLocked: a uWSGI or gospool spooler (another process, or another
	// [File] in this one) holds the file's lock, so it is running that task
	// right now. Skip the file.
	ErrLocked = errors.New("locked by another spooler")
)

// FormatError reports a spool file that uWSGI could not parse. Err is
// [ErrTruncated] or [ErrCorrupt].
type FormatError struct {
	Path   string // the file, when known; "" from [Decode]
	Offset int    // byte offset in the file, counting the 4-byte header
	Reason string // what is wrong, for humans
	Err    error
}

// Error says where and why, and that uWSGI would delete the file.
func (e *FormatError) Error() string {
	kind := "corrupt"
	if errors.Is(e.Err, ErrTruncated) {
		kind = "truncated"
	}
	b := []byte("spoolfile: ")
	if e.Path != "" {
		b = append(b, e.Path...)
		b = append(b, ": "...)
	}
	b = append(b, kind...)
	b = append(b, " at byte "...)
	b = strconv.AppendInt(b, int64(e.Offset), 10)
	b = append(b, ": "...)
	b = append(b, e.Reason...)
	b = append(b, " (uWSGI would delete this file)"...)
	return string(b)
}

// Unwrap returns [ErrTruncated] or [ErrCorrupt].
func (e *FormatError) Unwrap() error { return e.Err }

// LimitError reports a task that does not fit in a spool file's vars block.
// It wraps [ErrTooLarge]. uWSGI's own Python writer silently truncates such
// values; gospool refuses instead.
type LimitError struct {
	Key   string // the offending key; for the whole block, the key of the largest pair
	Size  int    // the size found
	Limit int    // the limit, [MaxVarsLen]
	What  string // "key", "value" or "vars block"
}

// Error names the key and the sizes and points to the body.
func (e *LimitError) Error() string {
	k := quoteShort(e.Key)
	var subject string
	switch e.What {
	case "key":
		subject = "key " + k + " is"
	case "value":
		subject = "value of key " + k + " is"
	default:
		subject = e.What + " (largest pair: key " + k + ") is"
	}
	return fmt.Sprintf("spoolfile: %s %d bytes, over uWSGI's limit of %d; put big data in the body", subject, e.Size, e.Limit)
}

// Unwrap returns [ErrTooLarge].
func (e *LimitError) Unwrap() error { return ErrTooLarge }

// quoteShort quotes a key for a message. A key can be 64 KiB of anything, so
// only its start is shown.
func quoteShort(k string) string {
	if len(k) > 40 {
		return strconv.Quote(k[:40]) + "..."
	}
	return strconv.Quote(k)
}

// quoteKey is quoteShort for a key still in a file's bytes: only the part
// shown is copied, so a corrupt file's message costs the same whatever the
// length of the key in it.
func quoteKey(k []byte) string {
	if len(k) > 40 {
		return strconv.Quote(string(k[:40])) + "..."
	}
	return strconv.Quote(string(k))
}
