package spoolfile

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospool/gospool/spooler/task"
)

// Every real uWSGI spool file cut anywhere inside its header or vars is a
// spool file cut short, never "not a spool file": ReadFile keeps calling
// it truncated (or short), as the spooler does.
func TestCutSpoolFileIsNotForeign(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		data := fx.data(t)
		varsEnd := headerLen + fx.Header.PktSize
		for n := 1; n < varsEnd; n++ {
			if why := notSpoolFile(data[:n]); why != "" {
				t.Errorf("%s cut to %d bytes: %q, want it taken for a spool file", fx.Name, n, why)
			}
		}
		// Also whole, with its vars damaged where a key length is.
		bad := append([]byte(nil), data...)
		bad[headerLen], bad[headerLen+1] = 0, 0
		if why := notSpoolFile(bad); why != "" {
			t.Errorf("%s with a zero key length: %q, want a damaged spool file", fx.Name, why)
		}
	}
}

// Text and random bytes are not spool files, nor is a file with a spool
// file's header whose first pairs do not fit the size it announces. (A
// file with a right header, cut inside its first key, looks exactly like a
// spool file cut short there, whatever the bytes after the header are.)
func TestForeignFileIsNotSpoolFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	foreign := map[string][]byte{
		"text":          []byte("hello world, this is a text file\n"),
		"json":          []byte(`{"task": "resize"}`),
		"short text":    []byte("hi"),
		"4th byte":      {0x11, 0x10, 0x00, 0x07, 'a'},
		"zero key":      {0x11, 0x40, 0x00, 0x00, 0x00, 0x00, 'x'},
		"key too big":   {0x11, 0x08, 0x00, 0x00, 0xff, 0x00, 'x', 'y'},
		"value too big": {0x11, 0x08, 0x00, 0x00, 0x01, 0x00, 'k', 0x09, 0x00, 'v'},
	}
	for i := 0; i < 200; i++ {
		b := make([]byte, 100+i)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if b[0] == modifier1 || b[0] == 0 {
			b[0] = 0xfe
		}
		foreign["random"+strings.Repeat("+", i)] = b
	}
	dir := t.TempDir()
	for name, data := range foreign {
		if why := notSpoolFile(data); why == "" {
			t.Errorf("%s (% x...): taken for a spool file", name, data[:min(len(data), 8)])
			continue
		}
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+": not a uWSGI spool file: ") {
			t.Errorf("%s: ReadFile error %v, want one saying it is not a spool file", name, err)
		}
		// Still the decoding error underneath, for callers that test it.
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrShortHeader) {
			t.Errorf("%s: %v wraps none of the decoding errors", name, err)
		}
	}
}

// FuzzNotSpoolFile: any bytes are judged without a panic, and a spool file
// Encode wrote, cut anywhere before the end of its vars, is never called
// foreign.
func FuzzNotSpoolFile(f *testing.F) {
	f.Add([]byte("hello world"), "task", "resize", uint16(7))
	f.Add([]byte{0x11, 0xff, 0xff, 0x00, 0x05}, "k", "", uint16(3))
	f.Fuzz(func(t *testing.T, data []byte, key, value string, cut uint16) {
		if len(data) > 0 {
			notSpoolFile(data)
		}
		if key == "" {
			return
		}
		enc, err := Encode(task.New(key, value, "second", value))
		if err != nil {
			return // over the limits
		}
		varsEnd := headerLen + int(binary.LittleEndian.Uint16(enc[1:3]))
		n := 1 + int(cut)%(varsEnd-1)
		if why := notSpoolFile(enc[:n]); why != "" {
			t.Errorf("a spool file cut to %d of %d bytes: %q", n, len(enc), why)
		}
	})
}
