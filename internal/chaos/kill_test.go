package chaos

import (
	"math/rand/v2"
	"sync"
	"time"
)

// kills records every SIGKILL the harness sent, and when (CLOCK_MONOTONIC,
// the clock of the task function's lines): analyze explains a duplicate run
// by the kill of the process that ran the task before, of its spooler, or
// of the master.
type kills struct {
	mu     sync.Mutex
	log    *lockedFile // one line per kill: CLOCK_MONOTONIC ns, role, pid, the others killed with it
	byRole map[string]int
	at     map[int]int64 // pid -> CLOCK_MONOTONIC of its first kill (ns)
	master []int64       // when the master was killed
}

func newKills(log *lockedFile) *kills {
	return &kills{log: log, byRole: map[string]int{}, at: map[int]int64{}}
}

// kill SIGKILLs pid and notes it, with the processes that die with it
// (their parent-death signal) as killed at the same time.
func (k *kills) kill(role string, pid int, with []int) {
	now := monoNow()
	if !sigkill(pid) {
		return
	}
	k.log.printf("%d kill %s %d %v\n", now, role, pid, with)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.byRole[role]++
	for _, p := range append(with, pid) {
		if _, ok := k.at[p]; !ok {
			k.at[p] = now
		}
	}
	if role == roleMaster {
		k.master = append(k.master, now)
	}
}

func (k *kills) snapshot() (byRole map[string]int, at map[int]int64, master []int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	byRole = map[string]int{}
	for r, n := range k.byRole {
		byRole[r] = n
	}
	at = map[int]int64{}
	for p, ts := range k.at {
		at[p] = ts
	}
	return byRole, at, append([]int64(nil), k.master...)
}

// chaos sends a SIGKILL every 5-50 ms, for d, to a process picked by role:
// Python runners, commands the tasks started, Python producers, Go workers,
// spoolers, and now and then (every 5 to 15 s) the master, which the
// cluster restarts, half the time with a Go failpoint for 2 to 4 s. A victim must have lived for a time drawn at random in
// its role's range: that bounds each role's kill rate (a spooler's about
// one every 1.6 s, each of them, so the master's respawn throttle, a 2 s
// pause after more quick deaths than spoolers, only trips now and then) and
// lets the processes get work done between kills. A tick without an old
// enough victim kills nothing.
func (c *cluster) chaos(rnd *rand.Rand, d time.Duration) {
	roles := []struct {
		role           string
		weight         int
		minAge, maxAge time.Duration // the victim's least age, drawn in [minAge, maxAge)
	}{
		{roleRunner, 25, 200 * time.Millisecond, 2 * time.Second},
		{roleExec, 25, 0, time.Millisecond}, // they live 50-110 ms
		{roleProducer, 30, 100 * time.Millisecond, 1500 * time.Millisecond},
		{roleWorker, 10, 500 * time.Millisecond, 3 * time.Second},
		{roleSpooler, 10, 1500 * time.Millisecond, 5 * time.Second},
	}
	total := 0
	for _, r := range roles {
		total += r.weight
	}
	roleOf := map[int]string{}
	firstSeen := map[int]time.Time{}
	end := time.Now().Add(d)
	nextMaster := time.Now().Add(time.Duration(5+rnd.IntN(10)) * time.Second)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(5+rnd.IntN(46)) * time.Millisecond)
		if !*killsFlag {
			continue
		}
		tab := procTable()
		mp := c.masterPid()
		byRole := classify(tab, mp, roleOf)
		for _, p := range c.producerPids() {
			if _, ok := tab[p]; ok {
				byRole[roleProducer] = append(byRole[roleProducer], p)
			}
		}
		now := time.Now()
		for _, pids := range byRole {
			for _, p := range pids {
				if _, ok := firstSeen[p]; !ok {
					firstSeen[p] = now
				}
			}
		}
		if mp != 0 && now.After(nextMaster) {
			// Half of the masters run with a Go failpoint, for 2 to 4 s.
			next := ""
			if len(c.goFailpoints) > 0 && rnd.IntN(2) == 0 {
				next = c.goFailpoints[rnd.IntN(len(c.goFailpoints))]
			}
			c.killMaster(tab, next)
			nextMaster = now.Add(time.Duration(5+rnd.IntN(10)) * time.Second)
			if next != "" {
				// Short: its workers' respawn storm trips the master's
				// respawn throttle, which holds the spoolers' respawns too.
				nextMaster = now.Add(time.Duration(2000+rnd.IntN(2000)) * time.Millisecond)
			}
			continue
		}
		x := rnd.IntN(total)
		i := 0
		for x >= roles[i].weight {
			x -= roles[i].weight
			i++
		}
		role := roles[i].role
		minAge := roles[i].minAge + time.Duration(rnd.Int64N(int64(roles[i].maxAge-roles[i].minAge)))
		var old []int
		for _, p := range byRole[role] {
			if now.Sub(firstSeen[p]) >= minAge {
				old = append(old, p)
			}
		}
		if len(old) == 0 {
			continue
		}
		victim := old[rnd.IntN(len(old))]
		c.kills.kill(role, victim, descendants(children(tab), victim))
	}
}
