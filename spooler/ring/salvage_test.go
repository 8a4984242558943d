package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/allocs"
)

// salvageGeometry is small but has every part of a real ring: 3 lanes of 8
// slots, so records wrap in a lane and several lanes hold records.
var salvageGeometry = Geometry{Lanes: 3, SlotsPerLane: 8, LaneBytes: 4096, Consumers: 4}

// ringImage makes a ring of geometry g in a temporary directory and fills
// it: lane 0 gets 10 records of which the first 6 are done and reclaimed
// (so the lane has wrapped), one is claimed and the rest are ready; lane 1
// gets 3 ready records and one left WRITING (a producer that died before
// publishing: never acknowledged, never saved). It returns the file's path
// and the payloads a salvage must save.
func ringImage(t testing.TB, g Geometry) (path string, want []string) {
	t.Helper()
	r, path := newRing(t, g)
	p0, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	p1, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	push := func(p *Producer, s string) {
		t.Helper()
		if err := p.Push([]byte(s)); err != nil {
			t.Fatalf("push %s: %v", s, err)
		}
	}
	for i := 0; i < 6; i++ {
		push(p0, fmt.Sprintf("done-%d", i))
		rec, ok, err := c.Claim()
		if !ok || err != nil {
			t.Fatalf("claim: %v %v", ok, err)
		}
		if err := c.Done(rec); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		s := fmt.Sprintf("lane0-%d-%s", i, strings.Repeat("x", 100*i))
		push(p0, s)
		want = append(want, s)
	}
	if rec, ok, err := c.Claim(); !ok || err != nil || !strings.HasPrefix(string(rec.Payload), "lane0-0") {
		t.Fatalf("claim: %q %v %v", rec.Payload, ok, err)
	}
	for i := 0; i < 4; i++ {
		s := fmt.Sprintf("lane1-%d", i)
		push(p1, s)
		if i < 3 {
			want = append(want, s)
		}
	}
	// The last record of lane 1 goes back to WRITING, as if its producer
	// had died between its WRITING store and its READY store.
	seq := r.m.u64(r.laneBase(p1.Lane())+laneHead).Load() - 1
	r.m.u64(r.slotOff(p1.Lane(), seq) + slotWord).Store(slotWordOf(seq, stateWriting, 0))
	for _, cl := range []interface{ Close() error }{c, p0, p1} {
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if p0.Lane() != 0 || p1.Lane() != 1 {
		t.Fatalf("lanes %d and %d, want 0 and 1", p0.Lane(), p1.Lane())
	}
	slices.Sort(want)
	return path, want
}

// salvageAll runs SalvageFile on path with hint and returns the sorted
// payloads it saved.
func salvageAll(t *testing.T, path string, hint Geometry) (SalvageReport, []string) {
	t.Helper()
	var got []string
	rep, err := SalvageFile(path, hint, func(p []byte) error {
		got = append(got, string(p))
		return nil
	})
	if err != nil {
		t.Fatalf("SalvageFile: %v", err)
	}
	slices.Sort(got)
	return rep, got
}

// A ring that Open refuses, whatever part of its header is gone, is moved
// aside and every ready or claimed record comes out of it, exactly once;
// done records and a record left half-written do not.
func TestSalvageDamagedHeader(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		name   string
		hint   Geometry
		damage func(b []byte)
	}{
		{"8 bytes of geometry", Geometry{}, func(b []byte) { copy(b[offLanes:], "\xde\xad\xbe\xef\xde\xad\xbe\xef") }},
		{"checksum only", Geometry{}, func(b []byte) { b[offChecksum] ^= 0xff }},
		{"magic", Geometry{}, func(b []byte) { copy(b[offMagic:], "XXXXXXXX") }},
		{"version and header size", Geometry{}, func(b []byte) { copy(b[offVersion:], "\xde\xad\xbe\xef\xde\xad\xbe\xef") }},
		// Geometry fields that validate but are wrong: the records decide.
		{"plausible wrong geometry", Geometry{}, func(b []byte) { le.PutUint32(b[offSlots:], 16); le.PutUint32(b[offLaneBytes:], 8192) }},
		{"whole header page zeroed", Geometry{}, func(b []byte) { clear(b[:headerSize]) }},
		{"whole header zeroed, geometry known", salvageGeometry, func(b []byte) { clear(b[:headerSize]) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, want := ringImage(t, salvageGeometry)
			damageFile(t, path, tc.damage)
			_, err := Open(path, Options{})
			if what, ok := Damaged(path, err); !ok || !strings.HasPrefix(what, "ring header is corrupt") && what != ErrNotRing.Error() {
				t.Fatalf("Open of the damaged ring: %v; Damaged says %q, %v", err, what, ok)
			}
			rep, got := salvageAll(t, path, tc.hint)
			if !slices.Equal(got, want) {
				t.Errorf("saved %q\nwant  %q", got, want)
			}
			if rep.Saved != len(want) || rep.Lost != 0 || rep.SaveErr != nil {
				t.Errorf("report %+v, want %d saved, 0 lost", rep, len(want))
			}
			g := salvageGeometry
			g.Consumers = 1
			if rep.Geometry != g {
				t.Errorf("read with geometry %+v, want %+v", rep.Geometry, g)
			}
			checkMoved(t, path, rep.MovedTo)
		})
	}
}

// A truncated ring gives up what is left of it: the records whose payload
// is cut off are counted as lost, the others saved.
func TestSalvageTruncated(t *testing.T) {
	path, want := ringImage(t, salvageGeometry)
	g := salvageGeometry
	// Keep lane 0 and lane 1's slots, cut lane 1's payloads.
	cut := headerSize + g.stride() + g.dataOffset() + 4
	if err := os.Truncate(path, int64(cut)); err != nil {
		t.Fatal(err)
	}
	rep, got := salvageAll(t, path, Geometry{})
	want = slices.DeleteFunc(want, func(s string) bool { return strings.HasPrefix(s, "lane1-") })
	if !slices.Equal(got, want) {
		t.Errorf("saved %q\nwant  %q", got, want)
	}
	if rep.Saved != len(want) || rep.Lost != 3 {
		t.Errorf("report %+v, want %d saved and 3 lost", rep, len(want))
	}
	checkMoved(t, path, rep.MovedTo)
}

// A record whose payload was damaged is counted, not saved; a save error
// counts too, and the first one is reported.
func TestSalvageCountsBadRecords(t *testing.T) {
	path, want := ringImage(t, salvageGeometry)
	g := salvageGeometry
	damageFile(t, path, func(b []byte) {
		clear(b[:headerSize])
		// The first payload of lane 1 (seq 0, data position 0).
		b[headerSize+g.stride()+g.dataOffset()] ^= 1
	})
	refused := errors.New("disk full")
	var got []string
	rep, err := SalvageFile(path, Geometry{}, func(p []byte) error {
		if strings.HasPrefix(string(p), "lane0-3") {
			return refused
		}
		got = append(got, string(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Saved != len(want)-2 || rep.Lost != 2 || rep.SaveErr != refused || len(got) != rep.Saved {
		t.Errorf("report %+v (saved %q), want %d saved, 2 lost, SaveErr %v", rep, got, len(want)-2, refused)
	}
}

// Moving aside never replaces an earlier damaged ring, and anything but a
// regular file stays where it is.
func TestSalvageMovesAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	now := time.Date(2026, 12, 7, 15, 53, 19, 0, time.UTC)
	var moved []string
	for i := 0; i < 3; i++ {
		if err := os.WriteFile(path, []byte(fmt.Sprint("ring ", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		dst, err := moveAside(path, now)
		if err != nil {
			t.Fatal(err)
		}
		moved = append(moved, filepath.Base(dst))
	}
	wantNames := []string{"gospool.ring.corrupt-20261207T155319Z", "gospool.ring.corrupt-20261207T155319Z-2", "gospool.ring.corrupt-20261207T155319Z-3"}
	if !slices.Equal(moved, wantNames) {
		t.Errorf("moved to %q, want %q", moved, wantNames)
	}
	for i, name := range moved {
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != fmt.Sprint("ring ", i) {
			t.Errorf("%s holds %q", name, b)
		}
	}
	// An empty file moves, and has nothing to save.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, got := salvageAll(t, path, Geometry{}); rep.MovedTo == "" || len(got) != 0 || rep.Lost != 0 {
		t.Errorf("empty file: %+v, saved %q", rep, got)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := SalvageFile(path, Geometry{}, func([]byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("the directory moved: %v", err)
	}
}

func damageFile(t *testing.T, path string, damage func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damage(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkMoved checks the ring is gone from path and the damaged file kept.
func checkMoved(t *testing.T, path, movedTo string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", path, err)
	}
	if !strings.HasPrefix(movedTo, path+".corrupt-") {
		t.Errorf("moved to %q, want %s.corrupt-TIME", movedTo, path)
	}
	if _, err := os.Stat(movedTo); err != nil {
		t.Errorf("the damaged file is not kept: %v", err)
	}
}

// FuzzSalvage feeds salvage any bytes as a ring image: it never panics,
// never reads outside the image, saves only payloads whose CRC is stored
// in the image, and allocates nothing but its list of guesses, whatever
// lengths the image claims.
func FuzzSalvage(f *testing.F) {
	path, _ := ringImage(f, salvageGeometry)
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, false)
	f.Add(good[:len(good)/2], true)
	zeroed := bytes.Clone(good)
	clear(zeroed[:headerSize])
	f.Add(zeroed, false)
	f.Add([]byte{}, false)
	f.Add(good[:100], true)
	// A slot that claims a huge payload far outside the image.
	huge := bytes.Clone(good)
	off := headerSize + laneCtlSize
	binary.LittleEndian.PutUint32(huge[offLaneBytes:], 1<<30)
	binary.LittleEndian.PutUint64(huge[off+slotData:], 1<<40)
	binary.LittleEndian.PutUint32(huge[off+slotLength:], 1<<31)
	f.Add(huge, true)
	f.Fuzz(func(t *testing.T, image []byte, hinted bool) {
		hint := Geometry{}
		if hinted {
			hint = salvageGeometry
		}
		var n, lost int
		save := func([]byte) error { return nil }
		_, allocated := allocs.Measure(func() { _, n, lost, _ = salvage(image, hint, save) })
		if allocated > 4096 {
			t.Fatalf("salvage of %d bytes allocated %d bytes", len(image), allocated)
		}
		if n < 0 || lost < 0 || n+lost > len(image)/slotSize {
			t.Fatalf("saved %d, lost %d of a %d-byte image", n, lost, len(image))
		}
	})
}

// The payloads salvage saves carry the CRC their slot holds, and come lane
// by lane in the order they were published, also in a lane that wrapped.
func TestSalvagePayloadsCheck(t *testing.T) {
	path, want := ringImage(t, salvageGeometry)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_, n, _, _ := salvage(b, Geometry{}, func(p []byte) error {
		if !bytes.Contains(b, binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(p))) {
			t.Errorf("payload %q: its CRC is nowhere in the file", p)
		}
		got = append(got, string(p))
		return nil
	})
	// want is sorted, which for these payloads is the publishing order.
	if n != len(want) || !slices.Equal(got, want) {
		t.Errorf("saved %q, want %q", got, want)
	}
}

// A ring of another version is not damaged, whichever of the two checksums
// its release used, and nothing moves it; other refusals are not damage
// either.
func TestDamagedSparesOtherVersions(t *testing.T) {
	le := binary.LittleEndian
	for _, v := range []struct {
		version uint32
		table   *crc32.Table
	}{{1, crc32.MakeTable(crc32.Castagnoli)}, {3, crc32.IEEETable}} {
		path, _ := ringImage(t, salvageGeometry)
		damageFile(t, path, func(b []byte) {
			le.PutUint32(b[offVersion:], v.version)
			le.PutUint32(b[offChecksum:], crc32.Checksum(b[:checksummed], v.table))
		})
		_, err := Open(path, Options{})
		if what, ok := Damaged(path, err); ok || !errors.Is(err, ErrVersion) {
			t.Errorf("version %d: %v; Damaged says %q", v.version, err, what)
		}
	}
	r, path := newRing(t, salvageGeometry)
	r.Close()
	_, err := Open(path, Options{Geometry: small})
	if what, ok := Damaged(path, err); ok || !errors.Is(err, ErrGeometry) {
		t.Errorf("another geometry: %v; Damaged says %q", err, what)
	}
	if what, ok := Damaged(path, nil); ok {
		t.Errorf("no error: Damaged says %q", what)
	}
}
