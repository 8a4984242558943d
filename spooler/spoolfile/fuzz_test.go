package spoolfile

import (
	"bytes"
	"errors"
	"testing"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		tk, err := Decode(data)
		if !bytes.Equal(data, orig) {
			t.Fatal("Decode modified its input")
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
