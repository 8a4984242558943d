package ring

import (
	"os"
	"os/signal"
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
	r, err := Open(os.Getenv("RING_PATH"), Options{})
	if err != nil {
		return err
	}
	c, err := r.Consumer()
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
	r, err := Open(os.Getenv("RING_PATH"), Options{})
	if err != nil {
		return err
	}
	c, err := r.Consumer()
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
