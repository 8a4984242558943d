package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/gospool/gospool/internal/allocs"
)

// FuzzDecodeHeader feeds decodeHeader, the one parser of bytes a ring file
// brings, any header and any file length. It never panics, fails only with
// one of the ring's open errors, accepts only a geometry that validates and
// a file as large as that geometry needs, and allocates nothing but its error.
func FuzzDecodeHeader(f *testing.F) {
	good := make([]byte, headerSize)
	small.encodeHeader(good)
	f.Add(good, int64(small.fileSize()))
	f.Add(good, int64(small.fileSize()-1))
	f.Add(good[:100], int64(100))
	f.Add([]byte{}, int64(0))
	big := make([]byte, headerSize)
	Geometry{Lanes: 4096, SlotsPerLane: 1 << 20, LaneBytes: 1 << 30, Consumers: MaxConsumers}.encodeHeader(big)
	f.Add(big, int64(1)<<62)
	other := bytes.Clone(good)
	binary.LittleEndian.PutUint32(other[offVersion:], 1)
	f.Add(other, int64(small.fileSize()))
	f.Fuzz(func(t *testing.T, h []byte, fileLen int64) {
		h = bytes.Clone(h)
		// Most random headers fail on the magic or the checksum; fix both
		// half of the time so that the geometry checks get exercised too.
		if len(h) >= headerSize && fileLen%2 == 0 {
			copy(h[offMagic:], Magic)
			binary.LittleEndian.PutUint32(h[offVersion:], version)
			binary.LittleEndian.PutUint32(h[offChecksum:], crc32.ChecksumIEEE(h[:checksummed]))
		}
		var g Geometry
		var err error
		mallocs, allocated := allocs.Measure(func() { g, err = decodeHeader(h, fileLen) })
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNotRing) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrCorruptHeader) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if allocated > 4096 {
				t.Fatalf("a %d-byte header cost %d bytes to refuse", len(h), allocated)
			}
			return
		}
		if mallocs != 0 {
			t.Fatalf("accepting a header allocated %d times", mallocs)
		}
		if verr := g.validate(); verr != nil {
			t.Fatalf("accepted geometry %+v: %v", g, verr)
		}
		if int64(g.fileSize()) > fileLen {
			t.Fatalf("accepted a %d-byte file for a geometry that needs %d", fileLen, g.fileSize())
		}
		again := make([]byte, headerSize)
		g.encodeHeader(again)
		if !bytes.Equal(again[:checksummed+4], h[:checksummed+4]) {
			t.Fatalf("accepted header does not re-encode to itself:\n got % x\nwant % x", h[:checksummed+4], again[:checksummed+4])
		}
	})
}
