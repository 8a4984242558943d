package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gospool/gospool/spooler/task"
)

// Version is the format version written in every record.
const Version = 1

// ErrFormat is wrapped by every decoding error.
var ErrFormat = errors.New("not a gospool ring record")

type encoderState struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	s := &encoderState{}
	s.enc = msgpack.NewEncoder(&s.buf)
	return s
}}

// Append encodes t and appends the record to dst.
func Append(dst []byte, t *task.Task) ([]byte, error) {
	s := encoders.Get().(*encoderState)
	defer encoders.Put(s)
	s.buf.Reset()
	e := s.enc
	err := errors.Join(
		e.EncodeArrayLen(3),
		e.EncodeInt(Version),
		e.EncodeArrayLen(2*len(t.Pairs)),
	)
	for _, p := range t.Pairs {
		err = errors.Join(err, e.EncodeBytes(p.Key), e.EncodeBytes(p.Value))
	}
	if t.Body == nil {
		err = errors.Join(err, e.EncodeNil())
	} else {
		err = errors.Join(err, e.EncodeBytes(t.Body))
	}
	if err != nil {
		return dst, fmt.Errorf("record: encode: %w", err)
	}
	return append(dst, s.buf.Bytes()...), nil
}

type decoderState struct {
	rd  bytes.Reader
	dec *msgpack.Decoder
}

var decoders = sync.Pool{New: func() any {
	s := &decoderState{}
	s.dec = msgpack.NewDecoder(&s.rd)
	return s
}}

// Decode parses a record. The task it returns owns its memory: payload is
// copied once, and keys, values and body are slices of that copy, so the
// caller may release the ring slot as soon as Decode returns.
func Decode(payload []byte) (*task.Task, error) {
	return DecodeOwned(bytes.Clone(payload))
}

// DecodeOwned parses a record the caller gives away: keys, values and
// body of the task are slices of data, which must not change afterwards
// (a copy of a ring payload, say, made under the ring's fault guard).
func DecodeOwned(data []byte) (*task.Task, error) {
	s := decoders.Get().(*decoderState)
	defer decoders.Put(s)
	s.rd.Reset(data)
	s.dec.Reset(&s.rd)
	d := s.dec
	fail := func(what string, err error) (*task.Task, error) {
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, what, err)
		}
		return nil, fmt.Errorf("%w: %s", ErrFormat, what)
	}
	n, err := d.DecodeArrayLen()
	if err != nil || n != 3 {
		return fail(fmt.Sprintf("want an array of 3, got %d", n), err)
	}
	v, err := d.DecodeInt()
	if err != nil || v != Version {
		return fail(fmt.Sprintf("version %d, want %d", v, Version), err)
	}
	n, err = d.DecodeArrayLen()
	if err != nil || n < 0 || n%2 != 0 {
		return fail(fmt.Sprintf("pairs: want an even-length array, got %d", n), err)
	}
	// A pair takes at least 3 bytes (a 1-byte key as fixstr or bin8 takes
	// 2, a nil value 1), so a count the remaining input cannot hold is
	// refused before the pairs slice is made: what Decode allocates stays
	// proportional to the input, whatever the array header claims.
	if n/2 > s.rd.Len()/3 {
		return fail(fmt.Sprintf("pairs: %d elements cannot fit in the %d bytes left", n, s.rd.Len()), nil)
	}
	// bytesAt returns the next bin or str value as a slice of data.
	bytesAt := func() ([]byte, error) {
		code, err := d.PeekCode()
		if err != nil {
			return nil, err
		}
		if code == 0xc0 { // nil
			return nil, d.Skip()
		}
		l, err := d.DecodeBytesLen()
		if err != nil {
			// DecodeBytesLen accepts bin and str alike.
			return nil, err
		}
		if l < 0 || l > s.rd.Len() {
			return nil, io.ErrUnexpectedEOF
		}
		pos := len(data) - s.rd.Len()
		if _, err := s.rd.Seek(int64(l), io.SeekCurrent); err != nil {
			return nil, err
		}
		return data[pos : pos+l : pos+l], nil
	}
	t := &task.Task{Pairs: make([]task.Pair, n/2)}
	for i := range t.Pairs {
		k, err := bytesAt()
		if err != nil || len(k) == 0 {
			return fail(fmt.Sprintf("key %d", i), err)
		}
		val, err := bytesAt()
		if err != nil {
			return fail(fmt.Sprintf("value of %s", quoteShort(k)), err)
		}
		if val == nil {
			val = []byte{}
		}
		t.Pairs[i] = task.Pair{Key: k, Value: val}
	}
	if t.Body, err = bytesAt(); err != nil {
		return fail("body", err)
	}
	if s.rd.Len() != 0 {
		return fail(fmt.Sprintf("%d bytes after the record", s.rd.Len()), nil)
	}
	return t, nil
}

// quoteShort quotes a key for an error message. A key can be as long as the
// record, so only its start is quoted, and only that start is copied.
func quoteShort(k []byte) string {
	if len(k) > 40 {
		return strconv.Quote(string(k[:40])) + "..."
	}
	return strconv.Quote(string(k))
}
