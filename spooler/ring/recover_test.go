package ring

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/failpoint"
	"golang.org/x/sys/unix"
)

func init() {
	roles["producer-then-tear"] = roleProducerThenTear
	roles["consumer-sleep"] = roleConsumerSleep
}

// roleProducerThenTear pushes RING_COUNT records "PREFIX-N" into a lane of
// RING_PATH, printing "ack PREFIX-N" for each, then pushes "PREFIX-torn",
// which parks at the failpoint RING_TEAR_AT in the middle of its write.
//
// Failpoints are read once, when a process starts, and the first push would
// park. So after its acknowledged pushes the process re-executes itself
// (same pid, and the ring's open file kept across the exec, so it keeps its
// lane and its lock) with GOSPOOL_FAILPOINT set: one process, some records
// published, one cut short.
func roleProducerThenTear() error {
	if fd := os.Getenv("RING_FD"); fd != "" {
		return tearAfterExec(fd)
	}
	r, err := Open(os.Getenv("RING_PATH"), Options{})
	if err != nil {
		return err
	}
	p, err := r.Producer()
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv("RING_COUNT"))
	for i := 0; i < n; i++ {
		payload := fmt.Sprintf("%s-%d", os.Getenv("RING_PREFIX"), i)
		if err := p.Push([]byte(payload)); err != nil {
			return err
		}
		fmt.Printf("ack %s\n", payload) // unbuffered: nothing is lost at the exec
	}
	fd := r.File().Fd()
	if _, err := unix.FcntlInt(fd, unix.F_SETFD, 0); err != nil { // keep it open across the exec
		return err
	}
	env := append(os.Environ(), "RING_FD="+strconv.Itoa(int(fd)), "RING_LANE="+strconv.Itoa(p.Lane()),
		failpoint.EnvVar+"="+os.Getenv("RING_TEAR_AT"))
	return syscall.Exec(os.Args[0], os.Args, env)
}

func tearAfterExec(fdText string) error {
	fd, err := strconv.Atoi(fdText)
	if err != nil {
		return err
	}
	r, err := OpenFile(os.NewFile(uintptr(fd), os.Getenv("RING_PATH")), Options{})
	if err != nil {
		return err
	}
	// The lane's lock belongs to this open file already, so Producer gets
	// the same lane back (the test ring has one) and resumes after the
	// records pushed before the exec.
	p, err := r.Producer()
	if err != nil {
		return err
	}
	if want := os.Getenv("RING_LANE"); strconv.Itoa(p.Lane()) != want {
		return fmt.Errorf("after the exec the producer got lane %d, want %s", p.Lane(), want)
	}
	return p.Push([]byte(os.Getenv("RING_PREFIX") + "-torn")) // parks at the failpoint
}

// roleConsumerSleep takes a consumer entry, claims the first record it
// finds (printing "claimed PAYLOAD"), then sleeps on the ring's futex until
// it is killed.
func roleConsumerSleep() error {
	_, c, err := openConsumer()
	if err != nil {
		return err
	}
	for {
		rec, ok, err := c.Claim()
		if err != nil {
			return err
		}
		if ok {
			fmt.Printf("claimed %s\n", rec.Payload)
			break
		}
		c.Wait(10*time.Millisecond, 0, nil)
	}
	for {
		c.Wait(time.Hour, 0, nil)
	}
}

// A producer process killed in the middle of a write: RecoverLanes, called
// by a process that owns no lane (the master), finds the lane, counts the
// torn record, keeps the records the dead producer had published, and
// leaves the lane to the next producer.
func TestRecoverLanesAfterProducerKilledMidWrite(t *testing.T) {
	for _, at := range []string{FailpointWriting, FailpointPayloadHalf, FailpointPayloadWritten} {
		t.Run(at, func(t *testing.T) {
			r, path := newRing(t, Geometry{Lanes: 1, SlotsPerLane: 8, LaneBytes: 4096, Consumers: 4})
			victim := startRole(t, "producer-then-tear", "RING_PATH="+path, "RING_COUNT=3",
				"RING_PREFIX=victim", "RING_TEAR_AT="+at)
			victim.waitStderr(t, "failpoint "+at+" reached")
			var acked []string
			for len(acked) < 3 {
				acked = append(acked, strings.TrimPrefix(<-victim.lines, "ack "))
			}

			// Alive, parked mid-write: not recovered, whoever asks.
			if lanes, torn := r.RecoverLanes(); lanes != 0 || torn != 0 {
				t.Fatalf("RecoverLanes with the producer alive = (%d, %d), want (0, 0)", lanes, torn)
			}
			if st := r.Stats(); len(st.Lanes) != 1 || st.Lanes[0].OwnerPid != victim.cmd.Process.Pid || !st.Lanes[0].Writing {
				t.Fatalf("before the kill: %+v", st.Lanes)
			}
			victim.kill9(t)

			if lanes, torn := r.RecoverLanes(); lanes != 1 || torn != 1 {
				t.Fatalf("RecoverLanes after the kill = (%d, %d), want (1, 1)", lanes, torn)
			}
			if lanes, torn := r.RecoverLanes(); lanes != 0 || torn != 0 {
				t.Fatalf("second RecoverLanes = (%d, %d), want (0, 0): the lane was recovered already", lanes, torn)
			}
			if st := r.Stats(); st.Lanes[0].OwnerPid != 0 || st.Ready != 3 {
				t.Fatalf("after recovery: ready %d, lanes %+v", st.Ready, st.Lanes)
			}

			c, err := r.Consumer()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := drainAll(t, c); strings.Join(got, " ") != strings.Join(acked, " ") {
				t.Fatalf("consumer read %q, the victim acknowledged %q", got, acked)
			}

			// The next producer takes the lane over, past the torn slot, and
			// wraps the lane (8 slots) without trouble.
			p, err := r.Producer()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for i := 0; i < 20; i++ {
				if err := p.Push([]byte(fmt.Sprintf("after-%d", i))); err != nil {
					t.Fatalf("push %d after the recovery: %v", i, err)
				}
				drain(t, c)
			}
			got := drainAll(t, c)
			if len(got) != 20 {
				t.Fatalf("after the recovery, %d records ran, want 20: %q", len(got), got)
			}
			for _, g := range got {
				if !strings.HasPrefix(g, "after-") {
					t.Fatalf("record %q ran after the recovery", g)
				}
			}
			if st := r.Stats(); st.Corrupt != 0 || st.Ready != 0 || st.Claimed != 0 {
				t.Fatalf("at the end: %+v", st)
			}
		})
	}
}

// A producer that died between publishing a record and advancing the
// lane's head (or after, without closing) leaves nothing torn: RecoverLanes
// reports the lane and no torn record, and the record runs.
func TestRecoverLanesNothingTorn(t *testing.T) {
	for _, at := range []string{FailpointPublished, FailpointHeadAdvanced} {
		t.Run(at, func(t *testing.T) {
			r, path := newRing(t, Geometry{Lanes: 2, SlotsPerLane: 8, LaneBytes: 4096, Consumers: 4})
			victim := startRole(t, "producer", "RING_PATH="+path, "RING_COUNT=1", "RING_PREFIX=v", "GOSPOOL_FAILPOINT="+at)
			victim.waitStderr(t, "failpoint "+at+" reached")
			victim.kill9(t)
			if lanes, torn := r.RecoverLanes(); lanes != 1 || torn != 0 {
				t.Fatalf("RecoverLanes = (%d, %d), want (1, 0)", lanes, torn)
			}
			c, _ := r.Consumer()
			defer c.Close()
			if got := drainAll(t, c); len(got) != 1 || got[0] != "v-0" {
				t.Fatalf("ran %q, want [v-0]", got)
			}
		})
	}
}

// Lanes owned by live producers, in another process or in this one, are
// never recovered; a producer that closed its lane needs no recovery.
func TestRecoverLanesLeavesLiveProducers(t *testing.T) {
	r, path := newRing(t, Geometry{Lanes: 4, SlotsPerLane: 8, LaneBytes: 4096, Consumers: 4})
	other := startRole(t, "producer", "RING_PATH="+path, "RING_COUNT=1", "RING_PREFIX=o", "GOSPOOL_FAILPOINT="+FailpointHeadAdvanced)
	other.waitStderr(t, "failpoint "+FailpointHeadAdvanced+" reached")
	here, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	if err := here.Push([]byte("h")); err != nil {
		t.Fatal(err)
	}
	closed, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	closed.Push([]byte("c"))
	closed.Close()
	// A second Ring of this process, as a master that opened the file
	// itself: it sees this process's first open file as another owner.
	master, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	for _, rr := range []*Ring{r, master} {
		if lanes, torn := rr.RecoverLanes(); lanes != 0 || torn != 0 {
			t.Fatalf("RecoverLanes with live producers = (%d, %d), want (0, 0)", lanes, torn)
		}
	}
	if err := here.Push([]byte("h2")); err != nil {
		t.Fatalf("push after RecoverLanes: %v", err)
	}
	if st := r.Stats(); st.Ready != 4 {
		t.Fatalf("ready %d, want 4: %+v", st.Ready, st.Lanes)
	}
}

// RecoverLanes racing with producers of this process that take and give
// back lanes: it never recovers a lane under a live producer (which would
// rewind its head and lose records), and nothing is lost or run twice.
func TestRecoverLanesRacesProducers(t *testing.T) {
	r, _ := newRing(t, Geometry{Lanes: 2, SlotsPerLane: 64, LaneBytes: 8192, Consumers: 4})
	const workers, each = 4, 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var recovered atomic.Int64
	recovering := make(chan struct{})
	go func() {
		defer close(recovering)
		for {
			select {
			case <-stop:
				return
			default:
			}
			lanes, _ := r.RecoverLanes()
			recovered.Add(int64(lanes))
		}
	}()
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var p *Producer
				for p == nil {
					p, _ = r.Producer()
				}
				for p.Push([]byte(fmt.Sprintf("%d-%d", g, i))) != nil {
					mu.Lock()
					drain(t, c)
					mu.Unlock()
				}
				p.Close()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-recovering
	if n := recovered.Load(); n != 0 {
		t.Errorf("RecoverLanes recovered %d lanes of live producers", n)
	}
	mu.Lock()
	got := drainAll(t, c)
	mu.Unlock()
	seen := map[string]bool{}
	for _, g := range got {
		if seen[g] {
			t.Fatalf("%s ran twice", g)
		}
		seen[g] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d records ran, want %d", len(seen), workers*each)
	}
}

// The master's Ring.ReleaseDead: a process without a consumer entry puts
// back the record a killed consumer held, clears the sleeper it left, and
// wakes a consumer sleeping in this process, which then claims the record.
func TestRingReleaseDead(t *testing.T) {
	r, path := newRing(t, small)
	p, _ := r.Producer()
	defer p.Close()
	if err := p.Push([]byte("the-task")); err != nil {
		t.Fatal(err)
	}
	dying := startRole(t, "consumer-sleep", "RING_PATH="+path)
	if line := <-dying.lines; line != "claimed the-task" {
		t.Fatalf("dying consumer said %q", line)
	}
	master, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok, _ := c.Claim(); ok { // moves c's cursor past the claimed record
		t.Fatal("claimed a record that a live consumer holds")
	}
	waitUntil(t, func() bool { return r.Stats().Sleepers == 1 }) // the child sleeps
	if n := master.ReleaseDead(); n != 0 {
		t.Fatalf("released %d records of a live consumer", n)
	}
	if st := r.Stats(); st.Sleepers != 1 || st.InFlight != 1 {
		t.Fatalf("a live consumer's state was touched: %+v", st)
	}

	woke := make(chan struct{})
	go func() {
		c.Wait(time.Minute, 0, nil)
		close(woke)
	}()
	waitUntil(t, func() bool { return r.Stats().Sleepers == 2 })
	dying.kill9(t)
	if n := master.ReleaseDead(); n != 1 {
		t.Fatalf("released %d records after the kill, want 1", n)
	}
	select {
	case <-woke:
	case <-time.After(20 * time.Second):
		t.Fatal("ReleaseDead did not wake the sleeping consumer")
	}
	rec, ok, err := c.Claim()
	if err != nil || !ok || string(rec.Payload) != "the-task" {
		t.Fatalf("claim after ReleaseDead: %q %v %v", rec.Payload, ok, err)
	}
	c.Done(rec)
	if st := r.Stats(); st.Sleepers != 0 || st.InFlight != 0 {
		t.Fatalf("after recovery: sleepers %d, in flight %d", st.Sleepers, st.InFlight)
	}
	// Records of this process's own consumers are never released, whichever
	// Ring asks: c holds one now.
	p.Push([]byte("mine"))
	mine, ok, _ := c.Claim()
	if !ok {
		t.Fatal("no record to claim")
	}
	if n := master.ReleaseDead() + r.ReleaseDead() + c.ReleaseDead(); n != 0 {
		t.Fatalf("released %d records of a live consumer of this process", n)
	}
	if err := c.Done(mine); err != nil {
		t.Fatal(err)
	}
}

// RecoverLanes and ReleaseDead on a read-only or closed ring do nothing
// (and do not crash writing into a read-only mapping).
func TestRecoverOnReadOnlyAndClosedRing(t *testing.T) {
	r, path := newRing(t, small)
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if lanes, torn := ro.RecoverLanes(); lanes != 0 || torn != 0 || ro.ReleaseDead() != 0 {
		t.Fatal("a read-only ring recovered something")
	}
	ro.Close()
	r.Close()
	if lanes, torn := r.RecoverLanes(); lanes != 0 || torn != 0 || r.ReleaseDead() != 0 {
		t.Fatal("a closed ring recovered something")
	}
}
