package chaos

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/ring"
)

var (
	seedFlag     = flag.Uint64("chaos.seed", 0, "the chaos run's `seed` (0: a new one, printed)")
	durationFlag = flag.Duration("chaos.duration", 20*time.Second, "how long the kills go on")
	drainFlag    = flag.Duration("chaos.drain", 90*time.Second, "how long the tasks may take to drain once the kills stop")
	killsFlag    = flag.Bool("chaos.kills", true, "send the kills (false: the same load, calm, as a baseline)")
	keepFlag     = flag.String("chaos.keep", "", "run in `DIR` (created) and keep it: the spool directory, the logs, the processes' output")
)

// Probes: hand-off from a Python producer's spool call to the task
// function, paced, measured before the chaos and after the drain.
const (
	probes        = 200
	probeInterval = 0.005 // seconds
	// The bar after the chaos: the "within 2x of a fresh start",
	// plus an absolute slack for a noisy, shared machine; the latency after
	// the lost wake-ups of issue 10 item 2 was 40x. Measured up to
	// probeTries times, 1, 2, 3... seconds apart (some 25 s in all), before
	// the test fails: a burst of load from elsewhere on the machine can
	// make one measurement (or even all of a few seconds) look bad.
	latencySlack = 2 * time.Millisecond
	probeTries   = 6
)

// result is the run's JSON line.
type result struct {
	Seed            uint64         `json:"seed"`
	DurationS       float64        `json:"duration_s"`
	Kills           map[string]int `json:"kills"`
	FailpointParks  int            `json:"failpoint_parks"`
	FailpointMaster int            `json:"failpoint_masters"` // master starts with a Go failpoint
	MasterStarts    int            `json:"master_starts"`
	Produced        int            `json:"produced"`
	Acknowledged    int            `json:"acknowledged"`
	AckedViaRing    int            `json:"acked_via_ring"` // the others went to spool files
	SpoolRetries    int            `json:"spool_retries"`
	Ran             int            `json:"ran"`
	Runs            int            `json:"runs"`
	Lost            int            `json:"lost"`
	Torn            int            `json:"torn"`
	DupByKill       int            `json:"dup_explained_kill"`
	DupByException  int            `json:"dup_explained_exception"`
	DupUnexplained  int            `json:"dup_unexplained"`
	ProducerErrors  int            `json:"producer_errors"`
	Crashes         int            `json:"crashes"`
	DeadLetters     int            `json:"dead_letters"`
	TornFiles       int            `json:"torn_spool_files"` // never acknowledged: see spoolFiles
	TempFiles       int            `json:"stale_temp_files"` // the same
	DrainMS         int64          `json:"drain_ms"`
	HandoffBeforeUS float64        `json:"handoff_p50_before_us"`
	HandoffAfterUS  []float64      `json:"handoff_p50_after_us"`
	Ring            ringState      `json:"ring"`
	Spooled         uint64         `json:"ring_spooled"`
	Spilled         uint64         `json:"ring_spilled"`
	Corrupt         uint64         `json:"ring_corrupt"`
}

// needPython returns the path of the python3 interpreter itself, or skips
// (fails under CI=true: testproc.NeedPython3). python3 on PATH may be a
// wrapper (pyenv's shims are shell scripts that take a second to start,
// long enough for the harness to kill every producer before it spooled
// anything), so the harness asks it for sys.executable and runs that.
func needPython(t *testing.T) string {
	t.Helper()
	python3 := testproc.NeedPython3(t)
	out, err := exec.Command(python3, "-c", "import sys; print(sys.executable)").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("python3 -c 'import sys; print(sys.executable)': %v %q", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestChaos is the torture run of issue 10; doc.go describes it.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole gospool service under SIGKILL for a minute")
	}
	python := needPython(t)
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())%1_000_000_000 + 1
	}
	fmt.Printf("chaos seed %d (again: go test ./internal/chaos -run TestChaos -chaos.seed %d -v)\n", seed, seed)
	began := time.Now()
	phase := func(what string) { t.Logf("%5.1fs %s", time.Since(began).Seconds(), what) }

	c := newCluster(t, python, seed)
	phase("built; the master starts")
	c.waitAttached(t)
	rec := newRecords()
	res := &result{Seed: seed, DurationS: durationFlag.Seconds()}
	c.probe(t, rec, "warm", 10) // the runners' first tasks are slower
	before := c.probe(t, rec, "before", probes)
	res.HandoffBeforeUS = us(before)

	phase("probed; the load and the kills")
	c.startProducers() // and the Go workers: the stop file goes
	c.chaos(rand.New(rand.NewPCG(seed, 0)), *durationFlag)
	phase("the kills are over; the load stops")
	if err := c.stopProducers(); err != nil {
		t.Error(err)
	}
	c.cleanMaster()

	phase("draining")
	drainStart := time.Now()
	if err := c.drain(rec, res); err != nil {
		t.Error(err)
	}
	res.DrainMS = time.Since(drainStart).Milliseconds()
	c.waitAttached(t)
	phase("drained; the ring at rest?")
	res.Ring = c.settle(t)
	if st, err := ringStats(c.dir); err == nil {
		res.Spooled, res.Spilled, res.Corrupt = st.Spooled, st.Spilled, st.Corrupt
	}

	phase("the hand-off after")
	bar := 2*before + latencySlack
	for i := range probeTries {
		after := c.probe(t, rec, "after"+strconv.Itoa(i), probes)
		res.HandoffAfterUS = append(res.HandoffAfterUS, us(after))
		if after <= bar {
			break
		}
		time.Sleep(time.Duration(i+1) * time.Second)
	}

	phase("the accounting")
	v, crashes := c.account(t, rec, res)
	line, _ := json.Marshal(res)
	fmt.Println(string(line))

	report := func(what string, items []string) {
		if len(items) == 0 {
			return
		}
		if len(items) > 20 {
			items = append(items[:20], fmt.Sprintf("... and %d more", len(items)-20))
		}
		t.Errorf("%s (seed %d):\n  %s", what, seed, strings.Join(items, "\n  "))
	}
	report("lost: acknowledged tasks that never ran", v.Lost)
	report("torn or garbage runs", v.Torn)
	report("unexplained duplicate runs", v.Unexplained)
	report("spool calls that failed by themselves", v.ProducerErrors)
	report("crashes", crashes)
	if !res.Ring.settled() {
		t.Errorf("the ring did not settle (seed %d): %+v; want nothing ready or claimed and sleepers = sleeping consumers", seed, res.Ring)
	}
	if last := res.HandoffAfterUS[len(res.HandoffAfterUS)-1]; last > us(bar) {
		t.Errorf("hand-off p50 after the chaos %v us in %d tries, before %v us: over 2x + %v (seed %d)",
			res.HandoffAfterUS, probeTries, res.HandoffBeforeUS, latencySlack, seed)
	}
}

// newCluster builds the programs, makes the spool directory and its small
// ring, and starts the master, with the load held back (LOGS/stop exists).
// Everything lives in a temporary directory, or -chaos.keep's.
func newCluster(t *testing.T, python string, seed uint64) *cluster {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if *keepFlag != "" {
		tmp = *keepFlag
		t.Logf("keeping the run in %s", tmp)
	}
	dir, logs := filepath.Join(tmp, "spool"), filepath.Join(tmp, "logs")
	for _, d := range []string{dir, filepath.Join(logs, "markers")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The ring, made small before the master starts: the master opens the
	// file it finds, whatever its geometry.
	r, err := ring.Create(filepath.Join(dir, ring.FileName), ring.Options{Geometry: geometry})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := os.WriteFile(filepath.Join(logs, "stop"), nil, 0o600); err != nil { // no load yet
		t.Fatal(err)
	}
	gospool, worker := build(t, root, filepath.Join(tmp, "bin"))
	c := &cluster{t: t, gospool: gospool, worker: worker, python: python, dir: dir, logs: logs, root: root,
		testdata: testdata, seed: seed, producers: map[int]int{},
		env: append(os.Environ(), "CHAOS_LOGS="+logs, "CHAOS_SEED="+strconv.FormatUint(seed, 10),
			"PYTHONPATH="+filepath.Join(root, "python"), "PYTHONDONTWRITEBYTECODE=1",
			// A -race binary sleeps a second at exit unless told not to.
			"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")),
		kills:       newKills(openLog(t, filepath.Join(tmp, "chaos.out"))),
		masterLog:   openLog(t, filepath.Join(tmp, "master.out")),
		producerLog: openLog(t, filepath.Join(tmp, "producers.out")),
	}
	c.goFailpoints, c.pyFailpoints = findFailpoints(root)
	c.masterLog.onLine = c.parked
	c.startMaster()
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"master.out", "producers.out"} {
				b, _ := os.ReadFile(filepath.Join(tmp, f))
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("the end of %s:\n%s", f, b)
			}
			if *keepFlag == "" {
				keepEvidence(t, tmp, seed)
			}
		}
		c.stopProducers()
		c.mu.Lock()
		c.keepMaster = false // first: no restart after the kill below
		c.mu.Unlock()
		if pid := c.masterPid(); pid != 0 {
			syscall.Kill(-pid, syscall.SIGKILL) // its process group; the rest has Pdeathsig
		}
	})
	return c
}

// keepEvidence copies a failed run's logs, outputs and spool directory
// (not the binaries) out of the test's temporary directory, which the
// testing package removes, and says where.
func keepEvidence(t *testing.T, tmp string, seed uint64) {
	dst, err := os.MkdirTemp("", fmt.Sprintf("gospool-chaos-%d-", seed))
	if err == nil {
		for _, name := range []string{"logs", "spool", "chaos.out", "master.out", "producers.out"} {
			src := filepath.Join(tmp, name)
			if fi, serr := os.Stat(src); serr != nil {
				continue
			} else if fi.IsDir() {
				err = errors.Join(err, os.CopyFS(filepath.Join(dst, name), os.DirFS(src)))
			} else if b, rerr := os.ReadFile(src); rerr == nil {
				err = errors.Join(err, os.WriteFile(filepath.Join(dst, name), b, 0o600))
			}
		}
	}
	if err != nil {
		t.Logf("keeping the failed run's files: %v", err)
	}
	t.Logf("the failed run's logs and spool directory are in %s", dst)
}

// waitAttached waits until every spooler process has a consumer entry.
func (c *cluster) waitAttached(t *testing.T) {
	testproc.WaitFor(t, 60*time.Second, "the spoolers attached to the ring", func() bool {
		s, err := readRing(c.dir)
		return err == nil && s.Consumers == spoolerProcesses
	})
}

// drain waits (-chaos.drain at most) until every acknowledged task ran,
// nothing is ready or claimed in the ring, no spool file waits, and a
// master runs.
func (c *cluster) drain(rec *records, res *result) error {
	deadline := time.Now().Add(*drainFlag)
	for {
		if err := rec.update(c.logs); err != nil {
			return err
		}
		state, err := readRing(c.dir)
		files, torn, temp := spoolFiles(c.dir)
		res.TornFiles, res.TempFiles = torn, temp
		if err == nil && c.masterPid() != 0 && len(rec.pending()) == 0 && state.Ready+state.Claimed == 0 && files == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not drained %v after the chaos: %d acknowledged task(s) not run, %d spool file(s), ring %+v (err %v)",
				*drainFlag, len(rec.pending()), files, state, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// settle reads the ring until it is at rest (nothing ready or claimed, the
// sleepers count equal to the consumers asleep) three times in a row, 20 ms
// apart (a consumer waking for its tick changes both), or for 15 s, and
// returns the last reading.
func (c *cluster) settle(t *testing.T) ringState {
	var state ringState
	settled, start := 0, time.Now()
	for settled < 3 && time.Since(start) < 15*time.Second {
		time.Sleep(20 * time.Millisecond)
		s, err := readRing(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		if state = s; s.settled() {
			settled++
		} else {
			settled = 0
		}
	}
	return state
}

// account reads the logs to the end, checks them against the kills, stops
// the master, and fills res. It returns the verdict and the crashes: masters
// that exited on their own or not cleanly, producers that died of anything
// but our SIGKILL, a data race or a fault in the master's log.
func (c *cluster) account(t *testing.T, rec *records, res *result) (verdict, []string) {
	if err := rec.update(c.logs); err != nil {
		t.Fatal(err)
	}
	dead := deadLetters(c.dir)
	killsByRole, killedAt, masterKills := c.kills.snapshot()
	v := analyze(rec, killedAt, masterKills, dead)
	res.Kills = killsByRole
	c.mu.Lock()
	res.FailpointParks, res.MasterStarts, res.FailpointMaster = c.failpointParks, c.masterStarts, c.failpointMasters
	crashes := append(append([]string(nil), c.crashes...), c.producerFailures...)
	c.mu.Unlock()
	res.Produced, res.Acknowledged, res.Ran, res.Runs = v.Produced, v.Acked, v.Ran, v.Runs
	res.AckedViaRing = rec.viaRing
	for _, n := range rec.calls {
		res.SpoolRetries += n - 1
	}
	res.Lost, res.Torn, res.DupByKill, res.DupByException = len(v.Lost), len(v.Torn), v.DupByKill, v.DupByException
	res.DupUnexplained, res.ProducerErrors, res.DeadLetters = len(v.Unexplained), len(v.ProducerErrors), len(dead)

	if err := c.stopMaster(); err != nil {
		crashes = append(crashes, err.Error())
	}
	out, _ := os.ReadFile(c.masterLog.f.Name())
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:", "SIGBUS", "SIGSEGV"} {
		if i := strings.Index(string(out), bad); i >= 0 {
			crashes = append(crashes, fmt.Sprintf("the master's log says %q: %s", bad, excerpt(out, i)))
		}
	}
	res.Crashes = len(crashes)
	return v, crashes
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()/100) / 10 }

func excerpt(b []byte, i int) string {
	end := min(len(b), i+600)
	return string(b[i:end])
}

func ringStats(dir string) (ring.Stats, error) {
	r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{ReadOnly: true})
	if err != nil {
		return ring.Stats{}, err
	}
	defer r.Close()
	return r.Stats(), nil
}

// probe runs n paced hand-off probes from a Python producer and returns
// their median, once the task function logged all of them.
func (c *cluster) probe(t *testing.T, rec *records, phase string, n int) time.Duration {
	t.Helper()
	cmd := exec.Command(c.python, filepath.Join(c.testdata, "producer.py"), "paced", c.dir, c.logs, phase,
		strconv.Itoa(n), strconv.FormatFloat(probeInterval, 'f', -1, 64))
	cmd.Env = c.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe producer (%s): %v\n%s", phase, err, out)
	}
	if !strings.Contains(string(out), "spilled 0") {
		t.Logf("probes %s: %s", phase, strings.TrimSpace(string(out)))
	}
	var p50 int64
	testproc.WaitFor(t, 60*time.Second, "the "+phase+" probes run", func() bool {
		if err := rec.update(c.logs); err != nil {
			t.Fatal(err)
		}
		var got int
		p50, got = rec.p50(phase)
		return got >= n
	})
	return time.Duration(p50)
}
