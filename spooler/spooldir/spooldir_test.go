package spooldir

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func touch(t *testing.T, dir, name string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte{0x11, 0, 0, 0}, 0o600); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func drain(d *Dir, now time.Time) []string {
	var out []string
	for {
		e, ok := d.Next(now)
		if !ok {
			return out
		}
		out = append(out, e.Name)
	}
}

func TestScanOrderAndUWSGIRules(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	touch(t, dir, Prefix+"b", base.Add(2*time.Second))
	touch(t, dir, Prefix+"a", base.Add(1*time.Second))
	touch(t, dir, Prefix+"future", time.Now().Add(time.Hour))
	touch(t, dir, "not_a_task", base)
	touch(t, dir, "gospool.ring", base)
	touch(t, dir, "10/"+Prefix+"p10", base.Add(5*time.Second))
	touch(t, dir, "5/"+Prefix+"p5", base.Add(9*time.Second))
	touch(t, dir, "x5/"+Prefix+"notprio", base)

	plain := New(dir, Options{})
	if err := plain.Scan(); err != nil {
		t.Fatal(err)
	}
	if got := drain(plain, time.Now()); !equal(got, []string{Prefix + "a", Prefix + "b"}) {
		t.Fatalf("without ordered mode: %v (priority directories are uWSGI's ordered mode only)", got)
	}
	if at := plain.NextAt(); at.Before(time.Now()) {
		t.Fatalf("NextAt %v: the future file is not waiting", at)
	}

	ordered := New(dir, Options{Ordered: true})
	ordered.Scan()
	want := []string{"5/" + Prefix + "p5", "10/" + Prefix + "p10", Prefix + "a", Prefix + "b"}
	if got := drain(ordered, time.Now()); !equal(got, want) {
		t.Fatalf("ordered: %v, want %v", got, want)
	}
	if got := drain(ordered, time.Now().Add(2*time.Hour)); !equal(got, []string{Prefix + "future"}) {
		t.Fatalf("after its at: %v", got)
	}
}

func TestSkipUntilScan(t *testing.T) {
	dir := t.TempDir()
	touch(t, dir, Prefix+"x", time.Time{})
	d := New(dir, Options{})
	d.Scan()
	d.Skip(Prefix + "x")
	d.Update(Prefix + "x")
	if _, ok := d.Next(time.Now()); ok {
		t.Fatal("a skipped name was handed out")
	}
	d.Scan()
	if _, ok := d.Next(time.Now()); !ok {
		t.Fatal("a full scan should forgive skipped names")
	}
}

func TestWatchSeesWritesRetimesDeletesAndNewPriorityDirs(t *testing.T) {
	dir := t.TempDir()
	d := New(dir, Options{Ordered: true})
	d.Scan()
	var events atomic.Int64
	w, err := d.Watch(func() { events.Add(1) }, func() { d.Scan() })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitLen := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for d.Len() != n {
			if time.Now().After(deadline) {
				t.Fatalf("set has %d entries, want %d", d.Len(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	touch(t, dir, Prefix+"one", time.Time{})
	waitLen(1)
	touch(t, dir, "7/"+Prefix+"seven", time.Time{})
	waitLen(2)
	touch(t, dir, "7/"+Prefix+"eight", time.Time{})
	waitLen(3)
	// Re-timing a file into the future (uWSGI's futimes for `at`) makes it wait.
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, Prefix+"one"), future, future)
	deadline := time.Now().Add(5 * time.Second)
	for d.NextAt().IsZero() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !d.NextAt().Equal(future) {
		t.Fatalf("NextAt %v, want %v", d.NextAt(), future)
	}
	os.Remove(filepath.Join(dir, "7", Prefix+"eight"))
	waitLen(2)
	if got := drain(d, time.Now()); !equal(got, []string{"7/" + Prefix + "seven"}) {
		t.Fatalf("due: %v", got)
	}
	if events.Load() == 0 {
		t.Fatal("notify never called")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func BenchmarkNextWith100kPending(b *testing.B) {
	d := New(b.TempDir(), Options{})
	now := time.Now()
	for i := 0; i < 100000; i++ {
		e := &Entry{Name: Prefix + string(rune(i)), Priority: NoPriority, ModTime: now.Add(-time.Duration(i)), index: -1}
		d.entries[e.Name] = e
		d.place(e, now)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, ok := d.Next(now)
		if !ok {
			b.StopTimer()
			for j := 0; j < 100000; j++ {
				x := &Entry{Name: Prefix + string(rune(j)), Priority: NoPriority, ModTime: now.Add(-time.Duration(j)), index: -1}
				d.entries[x.Name] = x
				d.place(x, now)
			}
			b.StartTimer()
			continue
		}
		_ = e
	}
}

// A file that appears (and is reported through Update) while a full scan
// reads the directory is in the set once the scan is done, and one removed
// meanwhile is not: the scan does not throw the news away.
func TestUpdateDuringScanIsKept(t *testing.T) {
	dir := t.TempDir()
	gone := Prefix + "old"
	fresh := Prefix + "new"
	os.WriteFile(filepath.Join(dir, gone), nil, 0o600)
	d := New(dir, Options{})
	testHookAfterListing = func() {
		// The listing is done: it has gone and not fresh.
		os.WriteFile(filepath.Join(dir, fresh), nil, 0o600)
		d.Update(fresh)
		os.Remove(filepath.Join(dir, gone))
		d.Forget(gone)
	}
	defer func() { testHookAfterListing = nil }()
	if err := d.Scan(); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	_, hasFresh := d.entries[fresh]
	_, hasGone := d.entries[gone]
	d.mu.Unlock()
	if !hasFresh || hasGone || d.Len() != 1 {
		t.Fatalf("after the scan, new file in the set: %v, removed file in the set: %v, %d entries", hasFresh, hasGone, d.Len())
	}
}

// A complete file linked into place (the Python producer writes under a
// hidden name, then links) makes only IN_CREATE: the watcher must see it at
// once, not at the next periodic scan.
func TestWatchSeesFileLinkedIntoPlace(t *testing.T) {
	dir := t.TempDir()
	d := New(dir, Options{})
	d.Scan()
	w, err := d.Watch(func() {}, func() { d.Scan() })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	hidden := filepath.Join(dir, ".gospool-writing-1")
	if err := os.WriteFile(hidden, []byte{0x11, 0, 0, 0}, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(hidden, filepath.Join(dir, Prefix+"linked")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a file linked into place is not pending after 5 s (set has %d)", d.Len())
		}
		time.Sleep(time.Millisecond)
	}
}

// A writer's temporary file is removed by a full scan once its inode has
// not changed for RemoveAbandoned, judged by the change time: an old mtime
// (a task's `at` in the past, set before the link) does not make it old.
func TestScanRemovesAbandonedWriterFiles(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, WritingPrefix+"123-abc")
	write := func() {
		t.Helper()
		if err := os.WriteFile(tmp, []byte{0x11, 0, 0, 0}, 0o600); err != nil {
			t.Fatal(err)
		}
		past := time.Now().Add(-24 * time.Hour)
		if err := os.Chtimes(tmp, past, past); err != nil {
			t.Fatal(err)
		}
	}
	write()
	touch(t, dir, Prefix+"task", time.Now().Add(-24*time.Hour))

	New(dir, Options{RemoveAbandoned: time.Minute}).Scan()
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("a temporary file changed a moment ago was removed: %v", err)
	}
	New(dir, Options{}).Scan()
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("a scan without RemoveAbandoned removed it: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	d := New(dir, Options{RemoveAbandoned: 10 * time.Millisecond})
	d.Scan()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("an abandoned temporary file is still there: %v", err)
	}
	if d.Len() != 1 {
		t.Fatalf("the spool file was not kept pending: set has %d", d.Len())
	}
}
