package ring

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests of issue 10's windows: a process killed between two header words,
// a file broken under running processes. Each kills or breaks real
// processes; none measures time.

func init() {
	roles["consumer-idle"] = roleConsumerIdle
	roles["consumer-release"] = roleConsumerRelease
	roles["release-dead"] = roleReleaseDead
}

// roleConsumerIdle takes a consumer entry and sleeps on the ring in short
// waits until it is killed (or parks at its failpoint).
func roleConsumerIdle() error {
	_, c, err := openConsumer()
	if err != nil {
		return err
	}
	for {
		c.Wait(5*time.Millisecond, 0, nil)
	}
}

// roleConsumerRelease claims the first record, prints "claimed PAYLOAD",
// and on SIGUSR1 releases it (parking at the failpoint, if one is set).
func roleConsumerRelease() error {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	_, c, err := openConsumer()
	if err != nil {
		return err
	}
	for {
		rec, ok, err := c.Claim()
		if err != nil {
			return err
		}
		if !ok {
			c.Wait(5*time.Millisecond, 0, nil)
			continue
		}
		os.Stdout.WriteString("claimed " + string(rec.Payload) + "\n")
		<-usr1
		return c.Release(rec)
	}
}

// roleReleaseDead is a master reaping a child: it calls Ring.ReleaseDead
// once (parking at the failpoint, if one is set).
func roleReleaseDead() error {
	r, err := Open(os.Getenv("RING_PATH"), Options{})
	if err != nil {
		return err
	}
	r.ReleaseDead()
	return nil
}

func sleepingFlag(r *Ring, c *Consumer) uint32 {
	return r.m.u32(r.consumerOff(c.Entry()) + conSleeping).Load()
}

// A consumer killed in either window of the sleep protocol (Wait between
// the sleepers count and its flag, clearSleeping between the flag and the
// count) must not make producers skip the wake-up of the consumers that
// sleep after it, and the count must come back to the truth.
func TestSleepersAfterConsumerKilledInWindow(t *testing.T) {
	for _, at := range []string{FailpointSleepCounted, FailpointSleepUncounting} {
		t.Run(at, func(t *testing.T) {
			r, path := newRing(t, small)
			victim := startRole(t, "consumer-idle", "RING_PATH="+path, "GOSPOOL_FAILPOINT="+at)
			victim.waitStderr(t, "failpoint "+at+" reached")
			victim.kill9(t)
			master, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer master.Close()
			master.ReleaseDead() // the master reaps the victim

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
			for round := 0; round < 3; round++ {
				woke := make(chan struct{})
				go func() {
					c.Wait(time.Hour, 0, nil) // only a producer's wake ends it
					close(woke)
				}()
				waitUntil(t, func() bool { return sleepingFlag(r, c) == 1 })
				if err := p.Push([]byte("wake-up")); err != nil {
					t.Fatal(err)
				}
				select {
				case <-woke:
				case <-time.After(20 * time.Second):
					t.Fatalf("round %d: the push did not wake the sleeping consumer (sleepers count %d): a lost wake-up",
						round, r.Stats().Sleepers)
				}
				drain(t, c)
			}
			// The periodic looks heal whatever the victim left: two that
			// agree on the drift fix it.
			master.ReleaseDead()
			master.ReleaseDead()
			if s := r.Stats().Sleepers; s != 0 {
				t.Fatalf("sleepers count %d with nobody asleep, want 0", s)
			}
		})
	}
}

// A record put back to ready by a process killed before it bumped the
// recover seq (Release, or a master's ReleaseDead) is behind the cursor of
// a live consumer that looked while it was claimed; the consumer's next
// periodic ReleaseDead finds it again.
func TestReleasedRecordSeenAfterReleaserKilled(t *testing.T) {
	t.Run("Release", func(t *testing.T) {
		r, path := newRing(t, small)
		p, _ := r.Producer()
		defer p.Close()
		p.Push([]byte("the-task"))
		victim := startRole(t, "consumer-release", "RING_PATH="+path, "GOSPOOL_FAILPOINT="+FailpointReleased)
		if line := <-victim.lines; line != "claimed the-task" {
			t.Fatalf("victim said %q", line)
		}
		live, err := r.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		if _, ok, _ := live.Claim(); ok { // its cursor passes the claimed record
			t.Fatal("claimed a record another consumer holds")
		}
		victim.cmd.Process.Signal(syscall.SIGUSR1)
		victim.waitStderr(t, "failpoint "+FailpointReleased+" reached")
		victim.kill9(t)
		expectReclaimed(t, live)
	})
	t.Run("ReleaseDead", func(t *testing.T) {
		r, path := newRing(t, small)
		p, _ := r.Producer()
		defer p.Close()
		p.Push([]byte("the-task"))
		holder := startRole(t, "consumer-sleep", "RING_PATH="+path)
		if line := <-holder.lines; line != "claimed the-task" {
			t.Fatalf("holder said %q", line)
		}
		live, err := r.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		if _, ok, _ := live.Claim(); ok {
			t.Fatal("claimed a record another consumer holds")
		}
		holder.kill9(t)
		releaser := startRole(t, "release-dead", "RING_PATH="+path, "GOSPOOL_FAILPOINT="+FailpointReleasedDead)
		releaser.waitStderr(t, "failpoint "+FailpointReleasedDead+" reached")
		releaser.kill9(t)
		expectReclaimed(t, live)
	})
}

func expectReclaimed(t *testing.T, live *Consumer) {
	t.Helper()
	if st := live.r.Stats(); st.Ready != 1 || st.Claimed != 0 {
		t.Fatalf("after the kill: ready %d, claimed %d; want the record ready", st.Ready, st.Claimed)
	}
	if n := live.ReleaseDead(); n != 0 { // the spooler's periodic look
		t.Fatalf("ReleaseDead released %d records, want 0 (the record is ready already)", n)
	}
	rec, ok, err := live.Claim()
	if err != nil || !ok || string(rec.Payload) != "the-task" {
		t.Fatalf("after the periodic look, claim = %q, %v, %v; want the released record", rec.Payload, ok, err)
	}
	live.Done(rec)
}

// An msync that fails after the publish (Options.Sync): the record is in
// the ring and a consumer may run it already, so Push succeeds (the caller
// must not spool the task again) and the failure is counted.
func TestSyncErrorAfterPublishIsNotAnError(t *testing.T) {
	r, path := newRing(t, small)
	prod := startRole(t, "producer", "RING_PATH="+path, "RING_COUNT=3", "RING_PREFIX=s", "RING_SYNC=1",
		"GOSPOOL_FAILPOINT="+FailpointSyncFails)
	if acks := prod.collect(t); len(acks) != 3 {
		t.Fatalf("producer acknowledged %q, want 3 records", acks)
	}
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := drainAll(t, c); len(got) != 3 || got[0] != "s-0" || got[2] != "s-2" {
		t.Fatalf("ran %q, want each of s-0..s-2 once", got)
	}
	if st := r.Stats(); st.SyncErrors != 3 || st.Spooled != 3 {
		t.Fatalf("sync errors %d, spooled %d; want 3 and 3", st.SyncErrors, st.Spooled)
	}
}

func init() {
	roles["producer-loop"] = roleProducerLoop
	roles["consumer-check"] = roleConsumerCheck
}

// roleProducerLoop pushes RING_COUNT records "PREFIX-N" into the ring at
// RING_PATH, printing "ack PREFIX-N" after each push that returned nil. A
// push refused with ErrRetired prints "refused PREFIX-N: ERR"; the role
// then opens RING_PATH again (a new file) and pushes the same record, as a
// client would spool it elsewhere. When the ring cannot be opened or the
// same record is refused three times, it prints "gave up: ERR" and exits.
func roleProducerLoop() error {
	path := os.Getenv("RING_PATH")
	n, _ := strconv.Atoi(os.Getenv("RING_COUNT"))
	var p *Producer
	attach := func() error {
		r, err := Open(path, Options{})
		if err != nil {
			return err
		}
		if p, err = r.Producer(); err != nil {
			return err
		}
		return nil
	}
	if err := attach(); err != nil {
		fmt.Printf("gave up: %v\n", err)
		return nil
	}
	for i := 0; i < n; i++ {
		payload := fmt.Sprintf("%s-%d", os.Getenv("RING_PREFIX"), i)
		for refusals := 0; ; {
			err := p.Push([]byte(payload))
			if err == nil {
				break
			}
			switch {
			case errors.Is(err, ErrFull):
				time.Sleep(50 * time.Microsecond)
				continue
			case !errors.Is(err, ErrRetired):
				return err
			}
			fmt.Printf("refused %s: %v\n", payload, err)
			if refusals++; refusals == 3 {
				fmt.Printf("gave up: %v\n", err)
				return nil
			}
			for attempt := 0; ; attempt++ {
				err := attach()
				if err == nil {
					break
				}
				if !errors.Is(err, fs.ErrNotExist) || attempt == 1000 {
					fmt.Printf("gave up: %v\n", err)
					return nil
				}
				time.Sleep(time.Millisecond) // between the remove and the new file
			}
		}
		fmt.Printf("ack %s\n", payload)
	}
	return nil
}

// roleConsumerCheck runs records from RING_PATH, printing "ran PAYLOAD",
// and every 10ms does what a spooler does on its tick: ReleaseDead and
// Check. When Check fails it runs what is still ready, prints "check: ERR"
// and exits.
func roleConsumerCheck() error {
	r, c, err := openConsumer()
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	// A fault in the mapping comes back once as an error wrapping
	// ErrRetired, and the ring has nothing to claim from then on.
	runAll := func() error {
		for {
			rec, ok, err := c.Claim()
			if err != nil && !errors.Is(err, ErrRetired) {
				return err
			}
			if !ok {
				return nil
			}
			payload, err := c.CopyPayload(rec)
			if err != nil {
				continue // the file was cut short: Claim says so next
			}
			fmt.Fprintf(out, "ran %s\n", payload)
			if err := c.Done(rec); err != nil && !errors.Is(err, ErrRetired) {
				return err
			}
		}
	}
	for tick := time.Now(); ; {
		if err := runAll(); err != nil {
			return err
		}
		if time.Since(tick) > 10*time.Millisecond {
			tick = time.Now()
			c.ReleaseDead()
			if cerr := r.Check(); cerr != nil {
				if err := runAll(); err != nil {
					return err
				}
				fmt.Fprintf(out, "check: %v\n", cerr)
				return nil
			}
		}
		c.Wait(5*time.Millisecond, 0, nil)
	}
}

// lines is the stdout of a child, collected as it comes.
type lines struct {
	mu   sync.Mutex
	all  []string
	done chan struct{}
}

func follow(c *child) *lines {
	l := &lines{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for line := range c.lines {
			l.mu.Lock()
			l.all = append(l.all, line)
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *lines) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.all {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// wait returns every line once the child closed its stdout, and checks
// that it exited by itself, with status 0: not by a signal.
func (l *lines) wait(t *testing.T, c *child) []string {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("child %d still running after 60s", c.cmd.Process.Pid)
	}
	var stderr []string
	for c.stderr.Scan() {
		stderr = append(stderr, c.stderr.Text())
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child %d: %v (it must exit by itself, with status 0)\n%s", c.cmd.Process.Pid, err, strings.Join(stderr, "\n"))
	}
	return l.all
}

// A ring file removed and created again under a running producer and a
// running consumer: nothing dies, and every acknowledged record runs once,
// from the old file (its consumer drains it before it leaves) or from the
// new one (the producer, refused by the old file, pushes it there).
func TestRingReplacedUnderRunningProcesses(t *testing.T) {
	g := Geometry{Lanes: 4, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 8}
	_, path := newRing(t, g)
	oldCons := startRole(t, "consumer-check", "RING_PATH="+path)
	oldRan := follow(oldCons)
	prod := startRole(t, "producer-loop", "RING_PATH="+path, "RING_COUNT=4000", "RING_PREFIX=r")
	prodOut := follow(prod)
	waitUntil(t, func() bool { return prodOut.count("ack ") >= 300 })

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	fresh, err := Create(path, Options{Geometry: g})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	c, err := fresh.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	var newRan []string
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			rec, ok, err := c.Claim()
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				newRan = append(newRan, string(rec.Payload))
				c.Done(rec)
				continue
			}
			select {
			case <-stop:
				return
			default:
			}
			c.Wait(5*time.Millisecond, 0, nil)
		}
	}()
	prodLines := prodOut.wait(t, prod)
	oldLines := oldRan.wait(t, oldCons)
	close(stop)
	<-drained

	ran := map[string]int{}
	for _, l := range oldLines {
		if s, ok := strings.CutPrefix(l, "ran "); ok {
			ran[s]++
		}
	}
	for _, s := range newRan {
		ran[s]++
	}
	acked, refused := 0, 0
	for _, l := range prodLines {
		if s, ok := strings.CutPrefix(l, "ack "); ok {
			acked++
			if ran[s] != 1 {
				t.Errorf("%s was acknowledged and ran %d times", s, ran[s])
			}
		}
		if strings.HasPrefix(l, "refused ") {
			refused++
		}
	}
	if acked != 4000 || len(ran) != 4000 {
		t.Fatalf("acknowledged %d, ran %d distinct records; want 4000 and 4000", acked, len(ran))
	}
	if oldCons := oldLines[len(oldLines)-1]; !strings.Contains(oldCons, ErrReplaced.Error()) {
		t.Errorf("the old consumer ended with %q, want its Check to report the replacement", oldCons)
	}
	t.Logf("%d acknowledged; %d ran from the old file, %d from the new one; %d refused by the old file",
		acked, len(oldLines)-1, len(newRan), refused)
}

// A ring file cut short under a running producer, a running consumer and a
// master: nobody dies of SIGBUS. The producer is refused (its caller would
// write spool files), the consumer's Check reports the truncation, and the
// master's walks return instead of faulting.
func TestRingTruncatedUnderRunningProcesses(t *testing.T) {
	g := Geometry{Lanes: 4, SlotsPerLane: 16, LaneBytes: 8192, Consumers: 8}
	for _, size := range []int64{0, 4096, int64(g.fileSize() / 2)} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			r, path := newRing(t, g)
			master, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer master.Close()
			cons := startRole(t, "consumer-check", "RING_PATH="+path)
			consOut := follow(cons)
			prod := startRole(t, "producer-loop", "RING_PATH="+path, "RING_COUNT=1000000", "RING_PREFIX=t")
			prodOut := follow(prod)
			waitUntil(t, func() bool { return prodOut.count("ack ") >= 300 && consOut.count("ran ") >= 100 })

			if err := os.Truncate(path, size); err != nil {
				t.Fatal(err)
			}
			prodLines := prodOut.wait(t, prod)
			consLines := consOut.wait(t, cons)
			if last := prodLines[len(prodLines)-1]; !strings.HasPrefix(last, "gave up: ") {
				t.Errorf("producer ended with %q", last)
			}
			if last := consLines[len(consLines)-1]; !strings.HasPrefix(last, "check: ") || !strings.Contains(last, "truncated") {
				t.Errorf("consumer ended with %q, want its Check to report the truncation", last)
			}

			// The master's walks, and this process's own Ring, after the cut.
			master.ReleaseDead()
			master.RecoverLanes()
			_ = master.Stats()
			_ = master.Records()
			if err := master.Check(); !errors.Is(err, ErrTruncated) || !errors.Is(err, ErrRetired) {
				t.Errorf("master's Check = %v, want ErrTruncated", err)
			}
			if p, err := r.Producer(); err == nil { // its lane may have survived the cut
				if err := p.Push([]byte("late")); !errors.Is(err, ErrRetired) {
					t.Errorf("Push on the cut ring = %v, want ErrRetired", err)
				}
				p.Close()
			} else if !errors.Is(err, ErrRetired) {
				t.Errorf("Producer on the cut ring = %v, want ErrRetired", err)
			}
			if _, ok, err := func() (Record, bool, error) {
				c, err := master.Consumer()
				if err != nil {
					return Record{}, false, nil
				}
				defer c.Close()
				return c.Claim()
			}(); ok || err != nil {
				t.Errorf("claim on the cut ring = %v, %v", ok, err)
			}
			t.Logf("producer: %s; consumer: %s", prodLines[len(prodLines)-1], consLines[len(consLines)-1])
		})
	}
}
