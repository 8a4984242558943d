package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Salvage: saving the tasks of a ring file that [Open] refuses.
//
// A damaged header (a checksum that fails, a geometry that does not
// validate, an overwritten magic, a file shorter than the header says)
// makes Open refuse the file, since the arithmetic that locates lanes and
// slots can no longer be trusted. The records themselves usually survive:
// every slot carries its record's sequence number, data position, length
// and the CRC-32 of the payload, so a record proves itself whatever
// geometry was used to find it. The master moves such a file aside and
// saves each record that proves itself as a spool file, instead of losing
// every task in it.

// SalvageReport says what [SalvageFile] did.
type SalvageReport struct {
	// MovedTo is where the damaged file now is; "" when it was not moved.
	MovedTo string
	// Geometry is the one the records were read with: the header's own
	// fields when they still describe a valid geometry, or a guess (see
	// [SalvageFile]).
	Geometry Geometry
	// Saved counts the records save accepted.
	Saved int
	// Lost counts the records whose slot said ready or claimed but whose
	// bounds or CRC check failed, plus those save refused. They stay in
	// the moved file.
	Lost int
	// SaveErr is the first error save returned, if any.
	SaveErr error
}

// Damaged tells whether the file at path, which [Open] or [Create] refused
// with err, is a damaged ring that [SalvageFile] applies to, and if so
// what is wrong with it, in a few words for a log line. Damaged are a
// corrupt header, a truncated file, a file whose magic is gone, and a
// header whose version is not this one's while its checksum fails too: no
// gospool release writes that (version 1 checksummed the same bytes with
// CRC-32C), so the version field is damaged, not another release's. A ring
// that really is of another version is not damaged: a process of another
// gospool release may be using it.
func Damaged(path string, err error) (what string, ok bool) {
	for _, e := range []error{ErrCorruptHeader, ErrTruncated, ErrNotRing} {
		if errors.Is(err, e) {
			return e.Error(), true
		}
	}
	if !errors.Is(err, ErrVersion) {
		return "", false
	}
	f, oerr := os.Open(path)
	if oerr != nil {
		return "", false
	}
	defer f.Close()
	h := make([]byte, offChecksum+4)
	if _, rerr := io.ReadFull(f, h); rerr != nil {
		return "", false
	}
	sum := binary.LittleEndian.Uint32(h[offChecksum:])
	if sum == crc32.ChecksumIEEE(h[:checksummed]) || sum == crc32.Checksum(h[:checksummed], crc32.MakeTable(crc32.Castagnoli)) {
		return "", false
	}
	return ErrCorruptHeader.Error() + ": its version and its checksum are both wrong", true
}

// SalvageFile moves the ring file at path aside, to
// path.corrupt-YYYYMMDDTHHMMSSZ (UTC; a "-N" suffix is added if that name
// is taken), then calls save with the payload of every record in it that
// is ready or claimed and whose bounds and CRC check out. Claimed records
// are saved too: the spooler that claimed one may have died in it, so the
// task runs again (at least once, as everywhere in gospool). The payload
// is only valid during the call; a save error counts the record as lost.
//
// geometry is what the file was created with as far as the caller knows
// (zero means [DefaultGeometry]). The records are read with the header's
// own geometry fields when they validate, else with the best of a few
// guesses: geometry, the default, and every geometry whose file size is
// exactly this file's. The guess that finds the most records whose CRC
// checks wins; the CRC and each slot's sequence number make a wrong guess
// find nothing.
//
// Only a regular file is moved. SalvageFile must be called while no other
// process uses the ring, e.g. by a master that holds the spool directory's
// lock before it starts its children: a producer that still has the old
// file mapped would go on writing into the moved file.
func SalvageFile(path string, geometry Geometry, save func(payload []byte) error) (SalvageReport, error) {
	var rep SalvageReport
	if fi, err := os.Lstat(path); err != nil {
		return rep, fmt.Errorf("ring %s: %w", path, err)
	} else if !fi.Mode().IsRegular() {
		return rep, fmt.Errorf("ring %s: not a regular file (%s); move it away by hand", path, fi.Mode().Type())
	}
	moved, err := moveAside(path, time.Now())
	if err != nil {
		return rep, err
	}
	rep.MovedTo = moved
	f, err := os.Open(moved)
	if err != nil {
		return rep, fmt.Errorf("ring %s: %w", moved, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return rep, fmt.Errorf("ring %s: %w", moved, err)
	}
	size := st.Size()
	if size == 0 {
		return rep, nil
	}
	if size != int64(int(size)) {
		return rep, fmt.Errorf("ring %s: %d bytes is too large to map", moved, size)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return rep, fmt.Errorf("ring %s: map it to read it: %w", moved, err)
	}
	defer unix.Munmap(b)
	if geometry == (Geometry{}) {
		geometry = DefaultGeometry()
	}
	err = readSafely(func() {
		rep.Geometry, rep.Saved, rep.Lost, rep.SaveErr = salvage(b, geometry, save)
	})
	if err != nil {
		return rep, fmt.Errorf("ring %s: %w", moved, err)
	}
	return rep, nil
}

// readSafely runs read, which reads a file mapping, and turns a fault (the
// file was truncated under it by someone else) into an error instead of a
// crash of the whole process.
func readSafely(read func()) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the file changed while it was read (%v)", p)
		}
	}()
	read()
	return nil
}

// moveAside renames path to path.corrupt-TIME without replacing anything.
func moveAside(path string, now time.Time) (string, error) {
	base := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	for n := 1; n <= 100; n++ {
		dst := base
		if n > 1 {
			dst += "-" + strconv.Itoa(n)
		}
		err := renameNoReplace(path, dst)
		if err == nil {
			return dst, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("ring %s: cannot move it aside to %s: %w", path, dst, err)
		}
	}
	return "", fmt.Errorf("ring %s: cannot move it aside: every %s-N up to 100 exists", path, base)
}

// renameNoReplace is rename(2) that fails with EEXIST instead of replacing
// newpath, so that an earlier damaged ring moved aside in the same second
// is never overwritten.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A filesystem without RENAME_NOREPLACE: check, then rename. Only
		// the master that holds the directory's lock moves rings aside,
		// so nobody creates newpath in between.
		if _, serr := os.Lstat(newpath); serr == nil {
			return fs.ErrExist
		}
		err = os.Rename(oldpath, newpath)
	}
	if errors.Is(err, unix.EEXIST) {
		return fs.ErrExist
	}
	return err
}

// maxGuesses bounds the geometries salvage tries, and with them its time:
// each costs at most one look at every slot-sized piece of the file.
const maxGuesses = 48

// salvage finds the records of the ring image b (see SalvageFile for the
// choice of geometry) and calls save with each one that proves itself. It
// reads nothing outside b, whatever b holds, and allocates only its list
// of guesses.
func salvage(b []byte, hint Geometry, save func(payload []byte) error) (g Geometry, saved, lost int, saveErr error) {
	best, bestValid, bestBad := Geometry{}, -1, 0
	for _, c := range guessGeometries(b, hint) {
		valid, bad := scanRecords(b, c, nil)
		if valid > bestValid || valid == bestValid && bad < bestBad {
			best, bestValid, bestBad = c, valid, bad
		}
	}
	if bestValid < 0 {
		return Geometry{}, 0, 0, nil
	}
	refused := 0
	_, bad := scanRecords(b, best, func(payload []byte) {
		if err := save(payload); err != nil {
			refused++
			if saveErr == nil {
				saveErr = err
			}
			return
		}
		saved++
	})
	return best, saved, bad + refused, saveErr
}

// guessGeometries lists the geometries the image b may have, most likely
// first, without duplicates: the header's fields if they validate (the
// checksum may fail over a byte elsewhere), hint, the default, then every
// geometry whose file size is exactly len(b). Consumers do not matter for
// finding records and are set to 1.
func guessGeometries(b []byte, hint Geometry) []Geometry {
	out := make([]Geometry, 0, maxGuesses)
	add := func(g Geometry) {
		g.Consumers = 1
		if len(out) == maxGuesses || g.validate() != nil {
			return
		}
		for _, o := range out {
			if o == g {
				return
			}
		}
		out = append(out, g)
	}
	le := binary.LittleEndian
	if len(b) >= offConsumers {
		add(Geometry{Lanes: int(le.Uint32(b[offLanes:])), SlotsPerLane: int(le.Uint32(b[offSlots:])),
			LaneBytes: int(le.Uint32(b[offLaneBytes:]))})
	}
	add(hint)
	add(DefaultGeometry())
	lanesBytes := len(b) - headerSize
	for s := 2; s <= 1<<20 && lanesBytes > 0; s <<= 1 {
		for d := 4096; d <= 1<<30; d <<= 1 {
			g := Geometry{SlotsPerLane: s, LaneBytes: d}
			if st := g.stride(); lanesBytes%st == 0 {
				g.Lanes = lanesBytes / st
				add(g)
			}
		}
	}
	return out
}

// scanRecords looks at every slot of every lane of geometry g that lies
// inside b, and counts the slots that hold a ready or claimed record: valid
// when its bounds and CRC check (each is then passed to found, if not nil),
// bad otherwise. A slot counts only if its sequence number belongs at its
// index (seq mod S), which a slot of another geometry or random bytes
// rarely do. Every offset is checked against len(b) before it is read.
//
// A lane's records are passed oldest first, as consumers would have taken
// them: its live records span fewer than S consecutive sequence numbers,
// so the walk starts at the slot of the oldest and goes round once.
func scanRecords(b []byte, g Geometry, found func(payload []byte)) (valid, bad int) {
	le := binary.LittleEndian
	stride, dataOff := g.stride(), g.dataOffset()
	S, D := g.SlotsPerLane, uint64(g.LaneBytes)
	for lane := 0; lane < g.Lanes; lane++ {
		base := headerSize + lane*stride
		if base >= len(b) {
			break
		}
		// live returns the slot word at index i if it holds a record
		// that is ready or claimed where its sequence number belongs.
		live := func(i int) (uint64, int, bool) {
			off := base + laneCtlSize + i*slotSize
			if off+slotSize > len(b) {
				return 0, off, false
			}
			w := le.Uint64(b[off+slotWord:])
			st := wordState(w)
			return w, off, (st == stateReady || st == stateClaimed) && int(wordSeq(w))&(S-1) == i
		}
		oldest, any := uint32(0), false
		for i := 0; i < S; i++ {
			if w, _, ok := live(i); ok && (!any || int32(wordSeq(w)-oldest) < 0) {
				oldest, any = wordSeq(w), true
			}
		}
		if !any {
			continue
		}
		for k := 0; k < S; k++ {
			_, off, ok := live((int(oldest) + k) & (S - 1))
			if !ok {
				continue
			}
			pos := le.Uint64(b[off+slotData:]) % D
			n := uint64(le.Uint32(b[off+slotLength:]))
			start := base + dataOff + int(pos)
			if n > uint64(g.MaxRecord()) || pos+n > D || start+int(n) > len(b) {
				bad++
				continue
			}
			payload := b[start : start+int(n) : start+int(n)]
			if crc32.ChecksumIEEE(payload) != le.Uint32(b[off+slotCRC:]) {
				bad++
				continue
			}
			valid++
			if found != nil {
				found(payload)
			}
		}
	}
	return valid, bad
}
