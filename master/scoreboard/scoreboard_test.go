package scoreboard

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The offsets in the byte diagram are what the code uses, and every word
// used atomically is aligned.
func TestLayout(t *testing.T) {
	for _, off := range []int{offPid, offReloads, offSlots, offVersion} {
		if off%4 != 0 {
			t.Errorf("header word at %d is not 4-aligned", off)
		}
	}
	for _, off := range []int{offStarted, headerSize + sSpawned, headerSize + sDone, headerSize + sBusy, headerSize + sHandSum, headerSize + sHandCnt} {
		if off%8 != 0 {
			t.Errorf("8-byte word at %d is not 8-aligned", off)
		}
	}
	if sName+nameMax != sHandSum || sHandSum+8 != sHandCnt || sHandCnt+8*HandoffBuckets != slotSize || headerSize%8 != 0 || slotSize%8 != 0 {
		t.Errorf("slot layout: name ends at %d, histogram at %d..%d, slot is %d", sName+nameMax, sHandSum, sHandCnt+8*HandoffBuckets, slotSize)
	}
	dir := t.TempDir()
	b, err := Create(filepath.Join(dir, FileName), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fi, _ := os.Stat(filepath.Join(dir, FileName))
	if fi.Size() != headerSize+3*slotSize {
		t.Errorf("file size %d, want %d", fi.Size(), headerSize+3*slotSize)
	}
}

// What the master writes and a child tracks is what a reader (gospool
// stats, in another mapping) sees.
func TestMasterChildReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	b, err := Create(path, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	started := time.Now()
	b.SetMaster(1234, started)
	b.NoteReload()
	slot := b.Slot(2)
	slot.Claim(555, Spooler, 3, 7, 1, started)

	f, _ := os.OpenFile(path, os.O_RDWR, 0) // the child's own mapping
	child, err := FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	tr := NewTracker(child.Slot(2))
	end1 := tr.Begin("uwsgi_spoolfile_on_a_very_long_host_name_1234_5_678901234_1700000000_123456")
	time.Sleep(5 * time.Millisecond)
	end2 := tr.Begin("ring:0:9")

	reader, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if pid, st, reloads := reader.Master(); pid != 1234 || st.UnixNano() != started.UnixNano() || reloads != 1 {
		t.Errorf("master: %d %v %d", pid, st, reloads)
	}
	p, ok := reader.Slot(2).Read()
	if !ok || p.Pid != 555 || p.Role != Spooler || p.Number != 3 || p.Respawns != 7 || p.DirIndex != 1 || p.State != Running {
		t.Fatalf("slot: %+v", p)
	}
	if !strings.HasPrefix(p.Current, "uwsgi_spoolfile_on_a_very_long") || len(p.Current) != nameMax || p.BusySince.IsZero() {
		t.Errorf("busy with the oldest task, truncated: %+v", p)
	}
	end1()
	p, _ = reader.Slot(2).Read()
	if p.Current != "ring:0:9" || p.Done != 1 {
		t.Errorf("after the oldest ended: %+v", p)
	}
	end2()
	end2() // twice is harmless
	p, _ = reader.Slot(2).Read()
	if !p.BusySince.IsZero() || p.Current != "" || p.Done != 2 {
		t.Errorf("idle: %+v", p)
	}
	tr.SetState(Recycling)
	if p, _ = reader.Slot(2).Read(); p.State != Recycling || p.Number != 3 || p.Role != Spooler {
		t.Errorf("state: %+v", p)
	}
	if _, ok := reader.Slot(0).Read(); ok {
		t.Error("a free slot reads as used")
	}
	slot.Free()
	if _, ok := reader.Slot(2).Read(); ok {
		t.Error("a freed slot reads as used")
	}
}

// Concurrent Begin/End from many goroutines keep the count exact, and a
// reader never sees a name that belongs to no running task.
func TestTrackerConcurrent(t *testing.T) {
	b, err := Create(filepath.Join(t.TempDir(), FileName), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Slot(0).Claim(1, Worker, 1, 0, 0, time.Now())
	tr := NewTracker(b.Slot(0))
	var wg sync.WaitGroup
	stop, readerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone) // before b.Close unmaps the board
		for {
			select {
			case <-stop:
				return
			default:
			}
			if p, _ := b.Slot(0).Read(); p.Current != "" && !strings.HasPrefix(p.Current, "req-") {
				t.Errorf("torn name %q", p.Current)
				return
			}
		}
	}()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				tr.Begin("req-" + strings.Repeat("x", i%50))()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	if p, _ := b.Slot(0).Read(); p.Done != 8000 || !p.BusySince.IsZero() {
		t.Errorf("after 8000 requests: %+v", p)
	}
}

// Files that are not scoreboards are errors that say what to do.
func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"empty":     "",
		"other":     strings.Repeat("x", 200),
		"truncated": Magic + "\x01\x00\x00\x00\x10\x00\x00\x00" + strings.Repeat("\x00", 48),
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(data), 0o644)
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "master recreates it") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Create(filepath.Join(dir, "nodir", FileName), 2); err == nil || !strings.Contains(err.Error(), "writable") {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := Create(filepath.Join(dir, FileName), 0); err == nil {
		t.Error("0 slots accepted")
	}
}

// A spooler's hand-off latencies land in their buckets, bounds inclusive,
// concurrently; a reader sees them, Free keeps them for the master to
// harvest, and the next Claim clears them.
func TestHandoffHistogram(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	b, err := Create(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Slot(1).Claim(42, Spooler, 1, 0, 0, time.Now())
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	child, err := FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	tr := NewTracker(child.Slot(1))
	waits := []time.Duration{-time.Microsecond, 0, 10 * time.Microsecond, 11 * time.Microsecond, time.Millisecond, 10 * time.Second, time.Minute}
	want := [HandoffBuckets]uint64{}
	for _, i := range []int{0, 0, 0, 1, 6, 13, 14} {
		want[i] += 8
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, d := range waits {
				tr.ObserveHandoff(d)
			}
		}()
	}
	wg.Wait()
	var sum time.Duration
	for _, d := range waits[1:] {
		sum += 8 * d
	}
	h := b.Slot(1).Handoff()
	if h.Counts != want || h.Sum != sum || h.Count() != 8*uint64(len(waits)) {
		t.Errorf("histogram %+v, want counts %v and sum %v", h, want, sum)
	}
	var total Histogram
	total.Add(h)
	total.Add(h)
	if total.Count() != 2*h.Count() || total.Sum != 2*h.Sum {
		t.Errorf("Add: %+v", total)
	}
	b.Slot(1).Free()
	if got := b.Slot(1).Handoff(); got != h {
		t.Errorf("after Free: %+v, want it kept", got)
	}
	b.Slot(1).Claim(43, Spooler, 1, 1, 0, time.Now())
	if got := b.Slot(1).Handoff(); got != (Histogram{}) {
		t.Errorf("after Claim: %+v, want zero", got)
	}
}

// RunningTask finds the spooler running a task by name, a long name by the
// start its slot keeps; no match, or two processes, is not ok.
func TestRunningTask(t *testing.T) {
	b, err := Create(filepath.Join(t.TempDir(), FileName), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	long := "uwsgi_spoolfile_on_host_1_2_3_4_5.retry1" + strings.Repeat("x", 80)
	for i, p := range []struct {
		pid  int
		role Role
		task string
	}{
		{4242, Spooler, long},
		{4343, Spooler, "uwsgi_spoolfile_on_short"},
		{4444, Worker, "uwsgi_spoolfile_on_worker"},
		{4545, Spooler, ""},
	} {
		s := b.Slot(i)
		s.Claim(p.pid, p.role, i+1, 0, 0, time.Now())
		if p.task != "" {
			defer NewTracker(s).Begin(p.task)()
		}
	}
	for name, want := range map[string]int{
		long:                        4242,
		"uwsgi_spoolfile_on_short":  4343,
		"uwsgi_spoolfile_on_shor":   0, // a prefix of a short name is another file
		"uwsgi_spoolfile_on_shorts": 0,
		"uwsgi_spoolfile_on_worker": 0, // a worker's request, not a task
	} {
		pid, ok := b.RunningTask(name)
		if (want != 0) != ok || pid != want {
			t.Errorf("RunningTask(%.40q) = %d, %v; want %d", name, pid, ok, want)
		}
	}
	// Two spoolers on names that agree in their first 64 bytes: unknown.
	s := b.Slot(3)
	defer NewTracker(s).Begin(long[:70] + "other")()
	if pid, ok := b.RunningTask(long); ok {
		t.Errorf("two matching slots: RunningTask = %d", pid)
	}
}

// The slot shows the oldest running work; finishing it shows the next.
func TestTrackerShowsTheOldest(t *testing.T) {
	b, err := Create(filepath.Join(t.TempDir(), FileName), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Slot(0).Claim(1, Spooler, 1, 0, 0, time.Now())
	tr := NewTracker(b.Slot(0))
	current := func() string { p, _ := b.Slot(0).Read(); return p.Current }
	tr.Start("a")
	kb := tr.Start("b")
	tr.Start("c")
	if got := current(); got != "a" {
		t.Fatalf("showing %q, want the oldest, a", got)
	}
	tr.Finish(kb) // not the oldest: the slot still shows a
	if got := current(); got != "a" {
		t.Errorf("after b: showing %q, want a", got)
	}
	tr.FinishName("a")
	if got := current(); got != "c" {
		t.Errorf("after a: showing %q, want c", got)
	}
	tr.Finish(kb) // finished already: ignored
	tr.FinishName("c")
	if p, _ := b.Slot(0).Read(); p.Current != "" || !p.BusySince.IsZero() || p.Done != 3 {
		t.Errorf("idle after three: %+v", p)
	}
}
