package ring

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gospool/gospool/internal/testproc"
)

// A full disk (a real 2 MB tmpfs): a ring created before keeps working,
// since its blocks were allocated when it was made, and producers never
// die of SIGBUS; a ring cannot be created any more, with an error naming
// ENOSPC and nothing left behind; a sparse ring file (as older gospool
// releases made) refuses producers with an error instead of SIGBUS; a
// private ring stands in until space is back.
func TestFullDisk(t *testing.T) {
	dir := testproc.Tmpfs(t, "2m")
	g := Geometry{Lanes: 2, SlotsPerLane: 64, LaneBytes: 64 << 10, Consumers: 4}
	path := filepath.Join(dir, FileName)
	r, err := Create(path, Options{Geometry: g})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 < int64(g.fileSize()) {
		t.Fatalf("the ring has %d bytes allocated, want all %d", st.Blocks*512, g.fileSize())
	}
	// A sparse ring, as older releases created them.
	sparse := filepath.Join(dir, "sparse.ring")
	h := make([]byte, headerSize)
	g.encodeHeader(h)
	binary.LittleEndian.PutUint32(h[offVersion:], version)
	if err := os.WriteFile(sparse, h, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, int64(g.fileSize())); err != nil {
		t.Fatal(err)
	}
	filler := testproc.FillDisk(t, dir)

	prod := startRole(t, "producer-loop", "RING_PATH="+path, "RING_COUNT=200", "RING_PREFIX=full")
	prodOut := follow(prod)
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ran []string
	waitUntil(t, func() bool {
		drain(t, c)
		ran = append(ran, drainAll(t, c)...)
		return len(ran) == 200
	})
	if lines := prodOut.wait(t, prod); len(lines) != 200 || lines[199] != "ack full-199" {
		t.Fatalf("producer on the full disk said %q", lines[max(0, len(lines)-3):])
	}

	_, err = Create(filepath.Join(dir, "new.ring"), Options{Geometry: g})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("Create on a full disk = %v, want an error naming ENOSPC", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Fatalf("after the failed Create the directory holds %d entries, want 3 (ring, sparse ring, filler): a temporary file stayed", len(entries))
	}

	sp := startRole(t, "producer-loop", "RING_PATH="+sparse, "RING_COUNT=10", "RING_PREFIX=sparse")
	spLines := follow(sp).wait(t, sp) // exits by itself: not a SIGBUS
	if last := spLines[len(spLines)-1]; !strings.HasPrefix(last, "gave up: ") || !strings.Contains(last, ErrRetired.Error()) ||
		!strings.Contains(last, "no space left on device") {
		t.Fatalf("producer on a sparse ring on a full disk ended with %q", last)
	}

	// No ring file can be made: a private ring stands in, and its Check
	// says so once the file can be created.
	standIn := filepath.Join(dir, "later.ring")
	priv, err := NewPrivate(standIn, Options{Geometry: g})
	if err != nil {
		t.Fatal(err)
	}
	defer priv.Close()
	if err := priv.Check(); err != nil {
		t.Fatalf("Check of the private ring on a full disk = %v, want nil", err)
	}
	os.Remove(filler)
	if err := priv.Check(); !errors.Is(err, ErrRetired) {
		t.Fatalf("Check of the private ring with space back = %v, want ErrRetired", err)
	}
	if _, err := Open(standIn, Options{}); err != nil {
		t.Fatalf("the ring file was not created: %v", err)
	}
}
