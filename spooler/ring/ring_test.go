package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var small = Geometry{Lanes: 2, SlotsPerLane: 4, LaneBytes: 4096, Consumers: 4}

func newRing(t testing.TB, g Geometry) (*Ring, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	r, err := Create(path, Options{Geometry: g})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, path
}

func TestLayoutAlignment(t *testing.T) {
	for _, off := range []int{offSpooled, offSpilled, offDone, offRetried, offFailed, offIgnored, offCorrupt, offInFlight, offSyncErrors} {
		if off%8 != 0 {
			t.Errorf("counter at %d is not 8-aligned", off)
		}
	}
	for _, off := range []int{offFileSeq, offRecoverSeq, offWakeSeq, offSleepers, offRetired, conGen, conPid, conSleeping} {
		if off%4 != 0 {
			t.Errorf("word at %d is not 4-aligned", off)
		}
	}
	if offDone/cacheLine == offSpooled/cacheLine || offWakeSeq/cacheLine == offDone/cacheLine {
		t.Error("producer counters, consumer counters and the futex word must be on separate cache lines")
	}
	if consumerBase+MaxConsumers*consumerSize > headerSize {
		t.Error("consumer table overflows the header page")
	}
	for _, g := range []Geometry{small, DefaultGeometry()} {
		if g.stride()%4096 != 0 || g.dataOffset()%cacheLine != 0 || g.slotsOffset()%8 != 0 {
			t.Errorf("%+v: lane parts are misaligned", g)
		}
	}
}

func TestPushClaimDoneWrapsAround(t *testing.T) {
	r, _ := newRing(t, small)
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for round := 0; round < 50; round++ {
		for i := 0; i < 4; i++ {
			// Sizes vary so that payloads wrap around the data ring.
			payload := strings.Repeat(fmt.Sprint(i), 100+round*7%500)
			if err := p.Push([]byte(payload)); err != nil {
				t.Fatalf("round %d push %d: %v", round, i, err)
			}
		}
		if err := p.Push([]byte("x")); !errors.Is(err, ErrFull) {
			t.Fatalf("push into a lane with every slot used: %v, want ErrFull", err)
		}
		for i := 0; i < 4; i++ {
			rec, ok, err := c.Claim()
			if err != nil || !ok {
				t.Fatalf("claim %d: %v %v", i, ok, err)
			}
			if want := strings.Repeat(fmt.Sprint(i), 100+round*7%500); string(rec.Payload) != want {
				t.Fatalf("round %d: got %d bytes of %q", round, len(rec.Payload), rec.Payload[:1])
			}
			if err := c.Done(rec); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok, _ := c.Claim(); ok {
			t.Fatal("claimed from an empty ring")
		}
	}
	st := r.Stats()
	if st.Spooled != 200 || st.InFlight != 0 || st.Ready != 0 || st.Claimed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTooLargeAndDataFull(t *testing.T) {
	r, _ := newRing(t, small)
	p, _ := r.Producer()
	defer p.Close()
	if err := p.Push(make([]byte, small.MaxRecord()+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	// Three records of a quarter each fit in the data ring, with slots to
	// spare; a fourth needs space nobody has released.
	for i := 0; i < 4; i++ {
		if err := p.Push(make([]byte, small.MaxRecord())); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if err := p.Push([]byte("more")); !errors.Is(err, ErrFull) {
		t.Fatalf("got %v, want ErrFull", err)
	}
}

func TestLanesAreExclusive(t *testing.T) {
	r, _ := newRing(t, small)
	p1, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	if p1.Lane() == p2.Lane() {
		t.Fatal("two producers share a lane")
	}
	if _, err := r.Producer(); !errors.Is(err, ErrNoLane) {
		t.Fatalf("third producer on two lanes: %v, want ErrNoLane", err)
	}
	p1.Close()
	p3, err := r.Producer()
	if err != nil || p3.Lane() != p1.Lane() {
		t.Fatalf("lane not reusable after Close: %v", err)
	}
	p2.Close()
	p3.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	r, _ := newRing(t, Geometry{Lanes: 4, SlotsPerLane: 64, LaneBytes: 8192, Consumers: 4})
	const producers, each = 4, 2000
	var wg sync.WaitGroup
	p, _ := r.Producer()
	defer p.Close()
	for g := 0; g < producers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for p.Push([]byte(fmt.Sprintf("%d-%d", g, i))) != nil {
					time.Sleep(10 * time.Microsecond)
				}
			}
		}()
	}
	seen := make(map[string]int)
	var mu sync.Mutex
	var cwg sync.WaitGroup
	for k := 0; k < 2; k++ {
		c, err := r.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			defer c.Close()
			for {
				mu.Lock()
				n := len(seen)
				mu.Unlock()
				if n == producers*each {
					return
				}
				rec, ok, err := c.Claim()
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					c.Wait(time.Millisecond, 10*time.Microsecond, nil)
					continue
				}
				mu.Lock()
				seen[string(rec.Payload)]++
				mu.Unlock()
				c.Done(rec)
			}
		}()
	}
	wg.Wait()
	cwg.Wait()
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s ran %d times", k, n)
		}
	}
}

// Producers in three processes and consumers in two more share one ring:
// every acknowledged record runs exactly once.
func TestMultiProcess(t *testing.T) {
	_, path := newRing(t, Geometry{Lanes: 4, SlotsPerLane: 256, LaneBytes: 16 << 10, Consumers: 4})
	const each = 3000
	var producers, consumers []*child
	for i := 0; i < 3; i++ {
		producers = append(producers, startRole(t, "producer", "RING_PATH="+path,
			fmt.Sprintf("RING_COUNT=%d", each), fmt.Sprintf("RING_PREFIX=p%d", i)))
	}
	for i := 0; i < 2; i++ {
		consumers = append(consumers, startRole(t, "consumer", "RING_PATH="+path, "RING_IDLE=1s"))
	}
	acked := map[string]bool{}
	for _, p := range producers {
		for _, l := range p.collect(t) {
			acked[strings.TrimPrefix(l, "ack ")] = true
		}
	}
	ran := map[string]int{}
	perConsumer := []int{}
	for _, c := range consumers {
		lines := c.collect(t)
		perConsumer = append(perConsumer, len(lines))
		for _, l := range lines {
			ran[strings.TrimPrefix(l, "ran ")]++
		}
	}
	if len(acked) != 3*each {
		t.Fatalf("%d acknowledged, want %d", len(acked), 3*each)
	}
	for id := range acked {
		if ran[id] != 1 {
			t.Errorf("%s ran %d times", id, ran[id])
		}
	}
	if len(ran) != len(acked) {
		t.Errorf("%d distinct records ran, %d were acknowledged", len(ran), len(acked))
	}
	t.Logf("records run per consumer process: %v", perConsumer)
}

// A producer killed -9 at each step of the write protocol leaves a ring
// that the next producer of the lane and the consumers carry on with; the
// victim record runs only if it was published, and never half-written.
func TestProducerKilledAtEveryStep(t *testing.T) {
	steps := []struct {
		failpoint string
		published bool
	}{
		{FailpointLaneTaken, false},
		{FailpointReserved, false},
		{FailpointWriting, false},
		{FailpointPayloadHalf, false},
		{FailpointPayloadWritten, false},
		{FailpointPublished, true},
		{FailpointHeadAdvanced, true},
	}
	for _, step := range steps {
		t.Run(step.failpoint, func(t *testing.T) {
			// One lane, so the next producer must take over the dead one's.
			r, path := newRing(t, Geometry{Lanes: 1, SlotsPerLane: 8, LaneBytes: 4096, Consumers: 4})
			c, err := r.Consumer()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// A record before the crash, so the victim is not at sequence 0.
			before, _ := r.Producer()
			if err := before.Push([]byte("before")); err != nil {
				t.Fatal(err)
			}
			before.Close()

			victim := startRole(t, "producer", "RING_PATH="+path, "RING_COUNT=1",
				"RING_PREFIX=victim-"+strings.Repeat("v", 300), "GOSPOOL_FAILPOINT="+step.failpoint)
			victim.waitStderr(t, "failpoint "+step.failpoint+" reached")
			victim.kill9(t)

			var after *Producer
			waitUntil(t, func() bool { after, err = r.Producer(); return err == nil })
			defer after.Close()
			for i := 0; i < 10; i++ { // more than the lane's 8 slots: the lane must wrap
				if err := after.Push([]byte(fmt.Sprintf("after-%d", i))); err != nil {
					t.Fatalf("push after the crash: %v", err)
				}
				drain(t, c)
			}
			got := drainAll(t, c)
			ranVictim := false
			for _, p := range got {
				if strings.HasPrefix(p, "victim") {
					if p != "victim-"+strings.Repeat("v", 300)+"-0" {
						t.Fatalf("a half-written record ran: %q", p)
					}
					ranVictim = true
				}
			}
			if ranVictim != step.published {
				t.Fatalf("victim ran: %v, want %v (records: %v)", ranVictim, step.published, got)
			}
			if st := r.Stats(); st.Corrupt != 0 || st.Ready != 0 || st.Claimed != 0 {
				t.Fatalf("after recovery: %+v", st)
			}
		})
	}
}

var drained sync.Map // ring consumer -> payloads seen by drain, for drainAll

func drain(t *testing.T, c *Consumer) {
	t.Helper()
	for {
		rec, ok, err := c.Claim()
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		if !ok {
			return
		}
		v, _ := drained.LoadOrStore(c, &[]string{})
		*v.(*[]string) = append(*v.(*[]string), string(rec.Payload))
		if err := c.Done(rec); err != nil {
			t.Fatal(err)
		}
	}
}

func drainAll(t *testing.T, c *Consumer) []string {
	drain(t, c)
	v, _ := drained.LoadOrStore(c, &[]string{})
	out := *v.(*[]string)
	drained.Delete(c)
	sort.Strings(out)
	return out
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A consumer killed -9 while it holds a record: another consumer gets the
// record back and runs it.
func TestConsumerKilledMidTask(t *testing.T) {
	r, path := newRing(t, small)
	p, _ := r.Producer()
	defer p.Close()
	if err := p.Push([]byte("the-task")); err != nil {
		t.Fatal(err)
	}
	dying := startRole(t, "consumer", "RING_PATH="+path, "RING_IDLE=1m", "RING_PARK=1")
	if line := <-dying.lines; line != "claimed the-task" {
		t.Fatalf("dying consumer said %q", line)
	}
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok, _ := c.Claim(); ok {
		t.Fatal("claimed a record that a live consumer holds")
	}
	if n := c.ReleaseDead(); n != 0 {
		t.Fatalf("released %d records of a live consumer", n)
	}
	dying.kill9(t)
	if n := c.ReleaseDead(); n != 1 {
		t.Fatalf("released %d records after the kill, want 1", n)
	}
	rec, ok, err := c.Claim()
	if err != nil || !ok || string(rec.Payload) != "the-task" {
		t.Fatalf("claim after recovery: %q %v %v", rec.Payload, ok, err)
	}
	c.Done(rec)
	// A consumer taking the dead one's entry also releases what it held.
	if st := r.Stats(); st.InFlight != 0 {
		t.Fatalf("in flight %d after recovery", st.InFlight)
	}
}

// A new consumer in a dead consumer's entry releases the dead one's records
// as it starts, and a sleeper count it left behind is cleared.
func TestNewConsumerInheritsDeadEntry(t *testing.T) {
	r, path := newRing(t, Geometry{Lanes: 1, SlotsPerLane: 4, LaneBytes: 4096, Consumers: 1})
	p, _ := r.Producer()
	defer p.Close()
	p.Push([]byte("job"))
	dying := startRole(t, "consumer", "RING_PATH="+path, "RING_IDLE=1m", "RING_PARK=1")
	<-dying.lines
	dying.kill9(t)
	c, err := r.Consumer() // the only entry: the dead one's
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec, ok, _ := c.Claim()
	if !ok || string(rec.Payload) != "job" {
		t.Fatalf("record of the dead consumer not released: %v", ok)
	}
}

func TestOpenRejectsBadFiles(t *testing.T) {
	_, path := newRing(t, small)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mutate := func(f func(b []byte)) []byte {
		b := append([]byte{}, good...)
		f(b)
		return b
	}
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"half header", good[:100], ErrTruncated},
		{"truncated lanes", good[:len(good)-1], ErrTruncated},
		{"not a ring", []byte(strings.Repeat("hello", 1000)), ErrNotRing},
		{"short, not a ring", []byte("hello12345"), ErrNotRing},
		{"version 1 (CRC-32C)", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[offVersion:], 1) }), ErrVersion},
		{"flipped geometry byte", mutate(func(b []byte) { b[offLanes] ^= 1 }), ErrCorruptHeader},
		{"bad checksum", mutate(func(b []byte) { b[offChecksum] ^= 0xff }), ErrCorruptHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(write(strings.ReplaceAll(tc.name, " ", "-"), tc.data), Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("error does not name the file: %v", err)
			}
		})
	}
	t.Run("other geometry", func(t *testing.T) {
		_, err := Open(path, Options{Geometry: DefaultGeometry()})
		if !errors.Is(err, ErrGeometry) {
			t.Fatalf("got %v, want ErrGeometry", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := Open(filepath.Join(dir, "nope"), Options{}); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "ring "+filepath.Join(dir, "nope")) {
			t.Fatalf("got %v", err)
		}
	})
	// Each error says what to do, in one line.
	hints := []struct {
		name string
		data []byte
		hint string
	}{
		{"version 3", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[offVersion:], 3) }), "use the same gospool release"},
		{"not a ring", []byte(strings.Repeat("hello", 1000)), "move the file away"},
		{"truncated", good[:len(good)-1], "its master moves the file aside and saves the tasks in it"},
	}
	for _, h := range hints {
		t.Run("hint "+h.name, func(t *testing.T) {
			_, err := Open(write("hint-"+strings.ReplaceAll(h.name, " ", "-"), h.data), Options{ReadOnly: true})
			if err == nil || !strings.Contains(err.Error(), h.hint) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want a line saying %q", err, h.hint)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		sub := filepath.Join(dir, "a-dir")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			_, err := Open(sub, Options{ReadOnly: ro})
			if err == nil || !strings.Contains(err.Error(), "ring "+sub) || !strings.Contains(err.Error(), "move") {
				t.Fatalf("read-only %v: got %v", ro, err)
			}
		}
	})
	t.Run("permission", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: mode 0 does not deny an open")
		}
		p := write("private", good)
		os.Chmod(p, 0)
		_, err := Open(p, Options{ReadOnly: true})
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "run as the user the spoolers run as") {
			t.Fatalf("got %v", err)
		}
	})
}

// A record damaged in the mapping is dropped and counted, never returned.
func TestCorruptRecordIsDropped(t *testing.T) {
	r, _ := newRing(t, small)
	p, _ := r.Producer()
	defer p.Close()
	c, _ := r.Consumer()
	defer c.Close()
	p.Push([]byte("hello world"))
	p.Push([]byte("second"))
	r.m[r.dataOff(p.Lane())+3] ^= 0xff // flip a payload byte of the first record
	_, ok, err := c.Claim()
	var ce *CorruptError
	if ok || !errors.As(err, &ce) {
		t.Fatalf("got ok=%v err=%v, want a CorruptError", ok, err)
	}
	rec, ok, err := c.Claim()
	if err != nil || !ok || string(rec.Payload) != "second" {
		t.Fatalf("record after the corrupt one: %q %v %v", rec.Payload, ok, err)
	}
	// A length that points outside the lane.
	p.Push([]byte("third"))
	off := r.slotOff(p.Lane(), 2)
	r.m.u32(off + slotLength).Store(1 << 30)
	if _, _, err := c.Claim(); !errors.As(err, &ce) {
		t.Fatalf("got %v, want a CorruptError", err)
	}
	if st := r.Stats(); st.Corrupt != 2 {
		t.Fatalf("corrupt counter %d, want 2", st.Corrupt)
	}
}

func TestWaitWakesOnPush(t *testing.T) {
	r, _ := newRing(t, small)
	c, _ := r.Consumer()
	defer c.Close()
	p, _ := r.Producer()
	defer p.Close()
	woke := make(chan time.Duration)
	go func() {
		start := time.Now()
		c.Wait(10*time.Second, 0, nil)
		woke <- time.Since(start)
	}()
	waitUntil(t, func() bool { return r.Stats().Sleepers == 1 })
	p.Push([]byte("wake up"))
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("a push did not wake the sleeping consumer")
	}
	if st := r.Stats(); st.Sleepers != 0 {
		t.Fatalf("sleepers %d after wake-up", st.Sleepers)
	}
}

func TestReadOnlyStats(t *testing.T) {
	r, path := newRing(t, small)
	p, _ := r.Producer()
	defer p.Close()
	p.Push([]byte("x"))
	os.Chmod(path, 0o400)
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if st := ro.Stats(); st.Spooled != 1 || st.Ready != 1 || len(st.Lanes) != 1 || st.Lanes[0].OwnerPid != os.Getpid() && st.Lanes[0].OwnerPid != 0 {
		t.Fatalf("read-only stats: %+v", st)
	}
	if _, err := ro.Producer(); err == nil {
		t.Fatal("producer on a read-only ring")
	}
}
