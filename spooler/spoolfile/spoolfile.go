package spoolfile

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/gospool/gospool/spooler/task"
)

// Prefix starts the name of every file a uWSGI spooler accepts as a task.
const Prefix = "uwsgi_spoolfile_on_"

// MaxVarsLen is the largest vars block, key and value a spool file can hold:
// each length is a 16-bit field.
const MaxVarsLen = 65535

const (
	headerLen = 4
	modifier1 = 17 // what uWSGI writes; no reader checks it
	modifier2 = 0
	// minPairLen is the smallest encoded pair: two length fields and a
	// one-byte key. It bounds how many pairs a vars block can hold.
	minPairLen = 5
)

// Encode returns the bytes of a uWSGI 2.0.21 spool file holding t:
//
//	[0x11][u16le N][0x00] then per pair [u16le keylen][key][u16le vallen][val], then t.Body
//
// Pairs are written in order, duplicates included. Encode never truncates: a
// key, a value or a vars block over [MaxVarsLen] is a [*LimitError], and an
// empty key (which uWSGI cannot parse) is an error. Encode does not check the
// special keys; [Writer] does that with [task.Task.Validate].
func Encode(t *task.Task) ([]byte, error) {
	return AppendEncode(nil, t)
}

// AppendEncode is [Encode] appending to dst, growing it at most once. On error
// it returns dst unchanged.
func AppendEncode(dst []byte, t *task.Task) ([]byte, error) {
	n, err := varsLen(t)
	if err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, headerLen+n+len(t.Body))
	dst = append(dst, modifier1, byte(n), byte(n>>8), modifier2)
	for _, p := range t.Pairs {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(p.Key)))
		dst = append(dst, p.Key...)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(p.Value)))
		dst = append(dst, p.Value...)
	}
	return append(dst, t.Body...), nil
}

// varsLen checks every limit before anything is written, so that a caller
// never sees a partial encoding.
func varsLen(t *task.Task) (int, error) {
	total, largest, largestLen := 0, -1, 0
	for i, p := range t.Pairs {
		switch {
		case len(p.Key) == 0:
			return 0, fmt.Errorf("spoolfile: pair %d has an empty key; uWSGI cannot parse an empty key", i)
		case len(p.Key) > MaxVarsLen:
			return 0, &LimitError{Key: string(p.Key), Size: len(p.Key), Limit: MaxVarsLen, What: "key"}
		case len(p.Value) > MaxVarsLen:
			return 0, &LimitError{Key: string(p.Key), Size: len(p.Value), Limit: MaxVarsLen, What: "value"}
		}
		size := 4 + len(p.Key) + len(p.Value)
		if size > largestLen {
			largest, largestLen = i, size
		}
		total += size
	}
	if total > MaxVarsLen {
		return 0, &LimitError{Key: string(t.Pairs[largest].Key), Size: total, Limit: MaxVarsLen, What: "vars block"}
	}
	return total, nil
}

// Decode parses a whole spool file as uWSGI's spooler does.
//
// The returned task aliases data: its keys, values and body are sub-slices of
// data, not copies, so data must not be modified while the task is in use.
// Each sub-slice has its capacity cut to its length, so appending to a value
// reallocates instead of overwriting the bytes that follow it.
//
// The modifier bytes (offsets 0 and 3) are not checked, because uWSGI does
// not check them either. A file shorter than the header gives
// [ErrShortHeader]; a vars block longer than the data, or one uWSGI's parser
// rejects, gives a [*FormatError]. Body is nil when the file ends right after
// the vars block.
//
// Decode never panics and allocates only the task and one slice of exactly
// as many pairs as the file holds; an error costs one message of bounded
// size (a key quoted in it is cut to its first 40 bytes).
func Decode(data []byte) (*task.Task, error) {
	if len(data) < headerLen {
		return nil, ErrShortHeader
	}
	end := headerLen + int(binary.LittleEndian.Uint16(data[1:3]))
	if end > len(data) {
		return nil, &FormatError{
			Offset: len(data),
			Reason: fmt.Sprintf("the header announces a %d-byte vars block, the file holds only %d bytes after the header", end-headerLen, len(data)-headerLen),
			Err:    ErrTruncated,
		}
	}
	// Validate and count first, so that a corrupt file costs no allocation
	// and a valid one gets a pairs slice of exactly the right size.
	count := 0
	for off := headerLen; off < end; count++ {
		s, err := nextPair(data, off, end)
		if err != nil {
			return nil, err
		}
		off = s.valEnd
	}
	t := &task.Task{}
	if count > 0 {
		t.Pairs = make([]task.Pair, count)
		off := headerLen
		for i := range t.Pairs {
			s, _ := nextPair(data, off, end)
			t.Pairs[i] = task.Pair{
				Key:   data[s.keyStart:s.keyEnd:s.keyEnd],
				Value: data[s.valStart:s.valEnd:s.valEnd],
			}
			off = s.valEnd
		}
	}
	if end < len(data) {
		t.Body = data[end:len(data):len(data)]
	}
	return t, nil
}

type pairSpan struct{ keyStart, keyEnd, valStart, valEnd int }

// nextPair parses the pair at off, failing exactly where uWSGI's
// uwsgi_hooked_parse fails (core/protocol.c), so that gospool and uWSGI
// agree on which files are corrupt.
func nextPair(data []byte, off, end int) (pairSpan, *FormatError) {
	corrupt := func(at int, format string, args ...any) *FormatError {
		return &FormatError{Offset: at, Reason: fmt.Sprintf(format, args...), Err: ErrCorrupt}
	}
	// uWSGI wants 3 bytes here even though a valid pair needs 5.
	if end-off < 3 {
		return pairSpan{}, corrupt(off, "%d bytes left where a key starts, need at least 3", end-off)
	}
	klen := int(binary.LittleEndian.Uint16(data[off:]))
	if klen == 0 {
		return pairSpan{}, corrupt(off, "key length 0")
	}
	ks := off + 2
	ke := ks + klen
	if ke > end {
		return pairSpan{}, corrupt(off, "key length %d runs past the end of the vars block at byte %d", klen, end)
	}
	if end-ke < 2 {
		return pairSpan{}, corrupt(ke, "no room for the value length of key %s", quoteKey(data[ks:ke]))
	}
	vlen := int(binary.LittleEndian.Uint16(data[ke:]))
	vs := ke + 2
	if vs+vlen > end {
		return pairSpan{}, corrupt(ke, "value length %d of key %s runs past the end of the vars block at byte %d", vlen, quoteKey(data[ks:ke]), end)
	}
	return pairSpan{ks, ke, vs, vs + vlen}, nil
}
