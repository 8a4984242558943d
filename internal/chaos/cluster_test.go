package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/ring"
)

// geometry is the harness's small ring: fewer lanes than producers (two Go
// workers, three Python producers and, between phases, the probe producer),
// 16 slots and 8 KiB of payload per lane, so that lanes are taken over,
// wrap every few tasks, fill, and spill to spool files; a record may use
// 2 KiB at most, and some tasks are bigger (spilled as too large).
var geometry = ring.Geometry{Lanes: 4, SlotsPerLane: 16, LaneBytes: 8192, Consumers: 16}

const (
	spoolerProcesses = 2
	concurrency      = 3
	goWorkers        = 2
	pyProducers      = 3
)

// build compiles the gospool command and the harness's Go worker into dir,
// with the race detector when the test has it (cmd/gospool's tests do the
// same), and returns their paths.
func build(t *testing.T, root, dir string) (gospool, worker string) {
	t.Helper()
	gospool, worker = filepath.Join(dir, "gospool"), filepath.Join(dir, "chaos-worker")
	goTool := "go"
	if _, err := exec.LookPath(goTool); err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, b := range [][2]string{{gospool, "./cmd/gospool"}, {worker, "./internal/chaos/testdata/worker"}} {
		wg.Go(func() {
			args := []string{"build", "-o", b[0]}
			if raceEnabled {
				args = append(args, "-race")
			}
			cmd := exec.Command(goTool, append(args, b[1])...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return gospool, worker
}

// cluster is the master (restarted when it dies) and the Python producers
// (restarted while the load runs) of one chaos run.
type cluster struct {
	t *testing.T
	// The programs, the spool directory, the logs directory, the
	// repository and this package's testdata, all absolute.
	gospool, worker, python   string
	dir, logs, root, testdata string
	env                       []string // of every process started
	seed                      uint64
	kills                     *kills
	masterLog, producerLog    *lockedFile // their standard output and error

	mu           sync.Mutex
	master       *exec.Cmd
	masterGone   chan struct{} // closed when the current master exited
	killedMaster bool          // the harness killed the current one
	keepMaster   bool          // restart it when it dies
	masterStarts int
	crashes      []string // masters that exited on their own

	// Go failpoints: a master started with GOSPOOL_FAILPOINT set passes it
	// to its children, and every one of them that reaches the step parks
	// there (Go workers at a step of the ring's push, for instance) until
	// the harness kills it. nextFailpoint is for the next master start.
	goFailpoints, pyFailpoints     []string
	nextFailpoint, masterFailpoint string
	failpointMasters               int

	producers        map[int]int // live producer pid -> slot (not those bound for a failpoint)
	loadOn           bool        // producers are restarted when they exit
	producerWG       sync.WaitGroup
	producerStarts   int
	producerFailures []string // exits that were neither our kill nor the end
	failpointParks   int
}

// lockedFile is a log file that several goroutines append lines to. When
// onLine is set, it is called with each whole line written.
type lockedFile struct {
	mu      sync.Mutex
	f       *os.File
	onLine  func(string)
	partial []byte
}

func openLog(t *testing.T, path string) *lockedFile {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &lockedFile{f: f}
}

func (l *lockedFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.onLine != nil {
		l.partial = append(l.partial, p...)
		for {
			i := bytes.IndexByte(l.partial, '\n')
			if i < 0 {
				break
			}
			l.onLine(string(l.partial[:i]))
			l.partial = l.partial[i+1:]
		}
	}
	return l.f.Write(p)
}

func (l *lockedFile) printf(format string, args ...any) {
	fmt.Fprintf(l, format, args...)
}

// masterArgs is the gospool run command line of every start.
func (c *cluster) masterArgs() []string {
	return []string{"run", "--spooler", c.dir,
		"--spooler-import", filepath.Join(c.testdata, "chaostasks.py"), "--spooler-python", c.python,
		"--spooler-processes", strconv.Itoa(spoolerProcesses),
		"--spooler-concurrency", strconv.Itoa(concurrency),
		"--workers", strconv.Itoa(goWorkers), "--worker-cmd", c.worker,
		"--spooler-retry-delay", "0.05", "--spooler-retry-max-delay", "0.5",
		"--spooler-quiet", "--reload-mercy", "5"}
}

// startMaster starts a master and a goroutine that restarts it whenever it
// exits while keepMaster holds: at once after a crash, after 50-300 ms
// after the harness's kill.
func (c *cluster) startMaster() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keepMaster = true
	c.startMasterLocked()
}

func (c *cluster) startMasterLocked() {
	cmd := exec.Command(c.gospool, c.masterArgs()...)
	cmd.Env = append(slices.Clip(c.env), "GOSPOOL_FAILPOINT="+c.nextFailpoint)
	cmd.Stdout, cmd.Stderr = c.masterLog, c.masterLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c.masterStarts++
	c.masterFailpoint = c.nextFailpoint
	if c.masterFailpoint != "" {
		c.failpointMasters++
	}
	c.masterLog.printf("=== chaos: master start %d (failpoint %q)\n", c.masterStarts, c.masterFailpoint)
	c.kills.log.printf("%d master start %d (failpoint %q)\n", monoNow(), c.masterStarts, c.masterFailpoint)
	if err := cmd.Start(); err != nil {
		c.t.Errorf("starting the master: %v", err)
		return
	}
	gone := make(chan struct{})
	c.master, c.masterGone, c.killedMaster = cmd, gone, false
	go func() {
		err := cmd.Wait()
		close(gone)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.master != cmd {
			return
		}
		killed := c.killedMaster
		if !killed && c.keepMaster {
			c.crashes = append(c.crashes, fmt.Sprintf("master pid %d exited on its own: %v", cmd.Process.Pid, err))
			c.masterLog.printf("=== chaos: master pid %d exited on its own: %v\n", cmd.Process.Pid, err)
		}
		if !c.keepMaster {
			return
		}
		delay := time.Duration(0)
		if killed {
			delay = time.Duration(50+rand.IntN(250)) * time.Millisecond
		}
		time.AfterFunc(delay, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.keepMaster && c.master == cmd {
				c.startMasterLocked()
			}
		})
	}()
}

// masterPid is the running master's pid, 0 between a death and a restart.
func (c *cluster) masterPid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.master == nil {
		return 0
	}
	select {
	case <-c.masterGone:
		return 0
	default:
		return c.master.Process.Pid
	}
}

// killMaster SIGKILLs the master; its children die with it (parent-death
// signal), and so do their children. The next master starts with the
// failpoint next ("" for none).
func (c *cluster) killMaster(tab map[int]procInfo, next string) {
	c.mu.Lock()
	if c.master == nil {
		c.mu.Unlock()
		return
	}
	pid := c.master.Process.Pid
	c.killedMaster = true
	c.nextFailpoint = next
	c.mu.Unlock()
	c.kills.kill(roleMaster, pid, descendants(children(tab), pid))
}

// parked kills a process of the master's tree that wrote "failpoint NAME
// reached pid PID" (a line of the master's log), 0-20 ms later.
func (c *cluster) parked(line string) {
	m := parkedRe.FindStringSubmatch(line)
	if m == nil {
		return
	}
	pid, _ := strconv.Atoi(m[2])
	go func() {
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		c.mu.Lock()
		c.failpointParks++
		c.mu.Unlock()
		tab := procTable()
		if pid == c.masterPid() {
			c.killMaster(tab, "")
			return
		}
		role := envRole(pid)
		if role == "" {
			role = roleRunner // a Python runner: no GOSPOOL_ROLE of its own
		}
		c.kills.kill(role, pid, descendants(children(tab), pid))
	}()
}

// cleanMaster makes sure the master runs without a failpoint, restarting
// it if it has one, and waits for it.
func (c *cluster) cleanMaster() {
	c.mu.Lock()
	fp := c.masterFailpoint
	c.mu.Unlock()
	if fp != "" {
		c.killMaster(procTable(), "")
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		fp = c.masterFailpoint
		c.mu.Unlock()
		if fp == "" && c.masterPid() != 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopMaster stops restarting the master and shuts it down gracefully
// (SIGTERM), killing its process group if it takes over 30 s. It returns the
// exit error of a master that did not exit 0.
func (c *cluster) stopMaster() error {
	c.mu.Lock()
	c.keepMaster = false
	cmd, gone := c.master, c.masterGone
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-gone:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-gone
		return errors.New("the master did not stop within 30 s of SIGTERM; killed")
	}
	if !cmd.ProcessState.Success() {
		return fmt.Errorf("the master exited with %v", cmd.ProcessState)
	}
	return nil
}

// startProducers starts the load: it removes LOGS/stop, which the Go
// workers watch, and starts the Python producers, each restarted whenever
// it exits until stopProducers. One start in eight parks at a failpoint
// (GOSPOOL_FAILPOINT: the steps of the ring's push in
// python/gospool/_ring.py) and is killed there.
func (c *cluster) startProducers() {
	if err := os.Remove(filepath.Join(c.logs, "stop")); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.loadOn = true
	c.mu.Unlock()
	for slot := range pyProducers {
		c.producerWG.Go(func() {
			rnd := rand.New(rand.NewPCG(c.seed, uint64(slot)))
			for {
				c.mu.Lock()
				on := c.loadOn
				c.mu.Unlock()
				if !on {
					return
				}
				fp := ""
				if len(c.pyFailpoints) > 0 && rnd.IntN(8) == 0 {
					fp = c.pyFailpoints[rnd.IntN(len(c.pyFailpoints))]
				}
				c.runProducer(slot, fp, rnd)
			}
		})
	}
}

// runProducer runs one producer process to its end.
func (c *cluster) runProducer(slot int, failpoint string, rnd *rand.Rand) {
	name := "py" + strconv.Itoa(slot+1)
	cmd := exec.Command(c.python, filepath.Join(c.testdata, "producer.py"), "chaos", c.dir, c.logs, name, strconv.FormatUint(c.seed, 10))
	cmd.Env = append(slices.Clip(c.env), "GOSPOOL_FAILPOINT="+failpoint) // Clip: goroutines share c.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		c.t.Error(err)
		return
	}
	cmd.Stdout = c.producerLog
	if err := cmd.Start(); err != nil {
		c.t.Errorf("starting a producer: %v", err)
		time.Sleep(time.Second)
		return
	}
	pid := cmd.Process.Pid
	if failpoint != "" {
		c.producerLog.printf("[%s pid %d] started to park at %s\n", name, pid, failpoint)
	}
	c.mu.Lock()
	if failpoint == "" { // the other one is left alone until it parks
		c.producers[pid] = slot
	}
	c.producerStarts++
	c.mu.Unlock()
	var tail []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		c.producerLog.printf("[%s pid %d] %s\n", name, pid, line)
		if tail = append(tail, line); len(tail) > 20 {
			tail = tail[1:]
		}
		if failpoint != "" && strings.HasPrefix(line, "failpoint "+failpoint+" reached") {
			// Parked in the middle of a push: kill it there, soon.
			time.Sleep(time.Duration(rnd.IntN(20)) * time.Millisecond)
			c.mu.Lock()
			c.failpointParks++
			c.mu.Unlock()
			c.kills.kill(roleProducer, pid, nil)
		}
	}
	err = cmd.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.producers, pid)
	var ws syscall.WaitStatus
	if cmd.ProcessState != nil {
		ws = cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	if ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return // ours
	}
	if err != nil || c.loadOn {
		c.producerFailures = append(c.producerFailures, fmt.Sprintf("producer %s pid %d: %v (load on: %v); its last lines:\n%s",
			name, pid, err, c.loadOn, strings.Join(tail, "\n")))
	}
}

// stopProducers ends the load: it creates LOGS/stop, which the producers
// (and the Go workers) see, and which makes them exit once their current
// task is acknowledged (the workers idle). It waits for the producers (60 s
// at most).
func (c *cluster) stopProducers() error {
	c.mu.Lock()
	c.loadOn = false // first: an exit from now on is expected
	c.mu.Unlock()
	if err := os.WriteFile(filepath.Join(c.logs, "stop"), nil, 0o600); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { c.producerWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(60 * time.Second):
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("producers %v still running 60 s after the load stopped", c.producers)
	}
}

// producerPids are the live Python producers.
func (c *cluster) producerPids() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for p := range c.producers {
		out = append(out, p)
	}
	return out
}
