package remote

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gospool/gospool/spooler/spoolfile"
)

// FuzzReadRequest feeds arbitrary bytes to the code that reads and parses a
// request off a connection. It must never panic, never read past the
// packet, and accept exactly the packets that re-encode to themselves, in
// a task that owns its memory.
func FuzzReadRequest(f *testing.F) {
	for _, s := range [][]byte{
		nil,
		{17},
		{17, 0, 0, 0},
		packet(kv("hello", "world")),
		packet(kv("hello", "world"), kv("hello", "again"), kv("e", "")),
		append(packet(kv("a", "1")), "trailing"...),
		{17, 0xff, 0xff, 0},
		{17, 0x01, 0x10, 0}, // 4097
		{17, 0x00, 0x10, 0}, // 4096, truncated
		packet([]byte("\x00\x00\x01\x00v")),
		packet([]byte("\x05\x00ab")),
		packet([]byte("\x01\x00k\x09\x00ab")),
		packet([]byte("\x01\x00k\x00")),
		packet(kv("k", "v"), []byte("\x01\x00")),
		{0, 5, 0, 0, 1, 0, 'k', 0, 0},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	} {
		f.Add(s, uint16(DefaultMaxPacket))
	}
	f.Add(packet(kv("k", "vvvv")), uint16(8))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		maxPacket := int(max)
		in := bytes.Clone(data)
		r := bytes.NewReader(in)
		tk, err := readRequest(r, maxPacket)
		if !bytes.Equal(in, data) {
			t.Fatal("readRequest modified its input")
		}
		// The task must own its bytes: scribbling on the input must not
		// change it.
		for i := range in {
			in[i] ^= 0xff
		}
		consumed := len(data) - r.Len()
		if err != nil {
			if tk != nil {
				t.Fatal("a task returned with an error")
			}
			var (
				re  *readError
				ref refusal
				bad *badVars
			)
			switch {
			case errors.Is(err, errNoRequest):
				if len(data) != 0 {
					t.Fatalf("errNoRequest for %d bytes", len(data))
				}
			case errors.As(err, &re):
				if consumed != len(data) {
					t.Fatalf("short read error after %d of %d bytes", consumed, len(data))
				}
			case errors.As(err, &ref):
				if consumed != headerLen {
					t.Fatalf("refused after reading %d bytes, want the header only", consumed)
				}
				size := int(data[1]) | int(data[2])<<8
				if data[0] == Modifier1 && size <= maxPacket {
					t.Fatalf("refused a valid header: %v", err)
				}
			case errors.As(err, &bad):
				if _, derr := spoolfile.Decode(data[:consumed]); derr == nil {
					t.Fatalf("refused vars that spoolfile.Decode accepts: %v", err)
				}
				if bad.Error() == "" {
					t.Fatal("empty message")
				}
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if tk.Body != nil {
			t.Fatalf("body %q from a remote packet", tk.Body)
		}
		size := int(data[1]) | int(data[2])<<8
		if data[0] != Modifier1 || size > maxPacket || consumed != headerLen+size {
			t.Fatalf("accepted modifier1 %d, size %d (max %d), after reading %d bytes", data[0], size, maxPacket, consumed)
		}
		enc, err := spoolfile.Encode(tk)
		if err != nil {
			t.Fatalf("Encode of an accepted task: %v", err)
		}
		want := bytes.Clone(data[:consumed])
		want[3] = 0 // modifier2 is ignored
		if !bytes.Equal(enc, want) {
			t.Fatalf("round trip differs:\n got % x\nwant % x", enc, want)
		}
	})
}
