package spoolfile

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gospool/gospool/internal/allocs"
	"github.com/gospool/gospool/spooler/task"
)

func FuzzDecode(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(fx.data(f))
	}
	for _, s := range []string{
		"",
		"\x11",
		"\x11\x00\x00\x00",
		"\x11\x00\x00\x00body",
		"\x11\x0e\x00\x00\x05\x00hello\x05\x00world",
		"\x11\x0e\x00\x00\x05\x00hello\x05\x00worldbody",
		"\x11\xff\xff\x00\x01\x00",
		"\x11\x02\x00\x00\x01\x00",
		"\x11\x05\x00\x00\x00\x00\x01\x00v",
		"\x11\x04\x00\x00\x05\x00abcdefgh",
		"\x11\x03\x00\x00\x01\x00a",
		"\x11\x06\x00\x00\x01\x00a\x05\x00b",
		"\x00\x05\x00\xff\x01\x00k\x00\x00",
	} {
		f.Add([]byte(s))
	}
	// A long key followed by a broken value length: the error quotes the key.
	longKey := append([]byte{0x11, 0xff, 0xff, 0x00, 0xfc, 0xff}, bytes.Repeat([]byte{'k'}, 0xfffc)...)
	f.Add(append(longKey, 0x01))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		var tk *task.Task
		var err error
		mallocs, allocated := allocs.Measure(func() { tk, err = Decode(data) })
		if !bytes.Equal(data, orig) {
			t.Fatal("Decode modified its input")
		}
		// Decode allocates the task and one pairs slice of 48 bytes a pair,
		// at least 5 input bytes each; an error costs a message of a bounded
		// size whatever the input (a key in it is cut to 40 bytes). Nothing
		// depends on the lengths the file claims.
		if err == nil && (mallocs > 2 || allocated > uint64(64+10*len(data))) {
			t.Fatalf("Decode of %d bytes: %d allocations, %d bytes", len(data), mallocs, allocated)
		}
		if err != nil && (mallocs > 16 || allocated > 4096) {
			t.Fatalf("Decode of %d bytes failing (%v): %d allocations, %d bytes", len(data), err, mallocs, allocated)
		}
		if err != nil {
			if tk != nil {
				t.Fatal("a task returned with an error")
			}
			if !errors.Is(err, ErrShortHeader) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			var fe *FormatError
			if errors.As(err, &fe) && (fe.Offset < 0 || fe.Offset > len(data)) {
				t.Fatalf("offset %d outside the %d-byte input", fe.Offset, len(data))
			}
			return
		}
		if cap(tk.Pairs) > len(data)/minPairLen+1 {
			t.Fatalf("cap(pairs) = %d for %d bytes", cap(tk.Pairs), len(data))
		}
		enc, err := Encode(tk)
		if err != nil {
			t.Fatalf("Encode of a decoded task: %v", err)
		}
		// Decode ignores the modifiers, so Encode writes uWSGI's.
		want := bytes.Clone(data)
		want[0], want[3] = modifier1, modifier2
		if !bytes.Equal(enc, want) {
			t.Fatalf("round trip differs:\n got % x\nwant % x", enc, want)
		}
	})
}
