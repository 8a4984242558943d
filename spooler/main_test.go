package spooler

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/ring"
	"golang.org/x/sys/unix"
)

// Real-process tests and benchmarks re-execute this test binary with
// GOSPOOL_TEST_ROLE set; TestMain then runs that role instead of the tests.
const roleEnv = "GOSPOOL_TEST_ROLE"

func TestMain(m *testing.M) {
	switch role := os.Getenv(roleEnv); role {
	case "":
		os.Exit(m.Run())
	case "spooler":
		err := roleSpooler()
		pprof.StopCPUProfile()
		exitOn(err)
	case "producer":
		exitOn(roleProducer())
	default:
		fmt.Fprintf(os.Stderr, "unknown test role %q\n", role)
		os.Exit(3)
	}
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// testGeometry is small enough for tests to fill, big enough to be useful.
var testGeometry = ring.Geometry{Lanes: 4, SlotsPerLane: 256, LaneBytes: 64 << 10, Consumers: 8}

// benchGeometry is the default geometry: benchmarks measure what users get.
var benchGeometry = ring.DefaultGeometry()

func geometryFromEnv() ring.Geometry {
	if os.Getenv("SPOOL_BENCH_GEOMETRY") != "" {
		return benchGeometry
	}
	return testGeometry
}

// roleSpooler runs a spooler on SPOOL_DIR. SPOOL_HANDLER says what the
// handler does with each task:
//
//	record   append the task's id to SPOOL_OUT, one line each
//	park     print "running ID" and block until killed
//	latency  note now - t0 (the producer's CLOCK_MONOTONIC before its spool
//	         call); after SPOOL_EXPECT tasks print a JSON summary and exit
func roleSpooler() error {
	if cpu := os.Getenv("SPOOL_CPU"); cpu != "" {
		n, _ := strconv.Atoi(cpu)
		var set unix.CPUSet
		set.Set(n)
		unix.SchedSetaffinity(0, &set)
	}
	if path := os.Getenv("SPOOL_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s, err := New(Config{
		Dir:             os.Getenv("SPOOL_DIR"),
		Quiet:           true,
		ReleaseInterval: 100 * time.Millisecond,
		RetryDelay:      10 * time.Millisecond,
		Frequency:       time.Second,
		Ring:            ring.Options{Geometry: geometryFromEnv()},
		BusyPoll:        os.Getenv("SPOOL_BUSY_POLL") != "",
	})
	if err != nil {
		return err
	}
	switch os.Getenv("SPOOL_HANDLER") {
	case "record":
		out, err := os.OpenFile(os.Getenv("SPOOL_OUT"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		s.HandleDefault(func(ctx context.Context, t *Task) error {
			id, _ := t.Get("id")
			_, err := fmt.Fprintf(out, "%s\n", id)
			return err
		})
	case "park":
		s.HandleDefault(func(ctx context.Context, t *Task) error {
			id, _ := t.Get("id")
			fmt.Printf("running %s\n", id)
			select {}
		})
	case "latency":
		expect, _ := strconv.Atoi(os.Getenv("SPOOL_EXPECT"))
		lat := make([]int64, 0, expect)
		var first int64
		var mu sync.Mutex
		done := make(chan struct{})
		s.HandleDefault(func(ctx context.Context, t *Task) error {
			now := ring.MonotonicNanos()
			v, _ := t.Get("t0")
			t0, _ := strconv.ParseInt(string(v), 10, 64)
			if os.Getenv("SPOOL_FROM_PUBLISH") != "" {
				t0 = now - int64(time.Since(TaskInfo(ctx).Spooled))
			}
			mu.Lock()
			defer mu.Unlock()
			if len(lat) == 0 {
				first = t0
			}
			lat = append(lat, now-t0)
			if len(lat) == expect {
				summary := summarize(lat)
				summary.Seconds = float64(now-first) / 1e9
				json.NewEncoder(os.Stdout).Encode(summary)
				close(done)
			}
			return nil
		})
		go func() { <-done; stop() }()
	default:
		return fmt.Errorf("SPOOL_HANDLER %q: want record, park or latency", os.Getenv("SPOOL_HANDLER"))
	}
	fmt.Fprintln(os.Stderr, "spooler ready")
	return s.Run(ctx)
}

// latencySummary is what a latency spooler prints when it has seen every task.
type latencySummary struct {
	N                        int
	P50, P90, P99, P999, Max int64
	Seconds                  float64
}

func summarize(ns []int64) latencySummary {
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	at := func(q float64) int64 { return ns[min(len(ns)-1, int(q*float64(len(ns))))] }
	return latencySummary{N: len(ns), P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999), Max: ns[len(ns)-1]}
}

// roleProducer spools SPOOL_COUNT tasks {id: PREFIX-N, t0: CLOCK_MONOTONIC}
// into SPOOL_DIR, SPOOL_RATE per second (0: back to back), and prints
// "ack ID" for every Spool call that returned nil.
func roleProducer() error {
	c, err := NewClient(os.Getenv("SPOOL_DIR"), ClientOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	n, _ := strconv.Atoi(os.Getenv("SPOOL_COUNT"))
	rate, _ := strconv.ParseFloat(os.Getenv("SPOOL_RATE"), 64)
	size, _ := strconv.Atoi(os.Getenv("SPOOL_PAYLOAD"))
	quiet := os.Getenv("SPOOL_NO_ACKS") != ""
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if os.Getenv("SPOOL_WAIT_GO") != "" {
		// Start with the other producers: wait for a line on stdin.
		fmt.Fprintln(os.Stderr, "producer ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	start := time.Now()
	ctx := context.Background()
	filler := strings.Repeat("x", size)
	for i := 0; i < n; i++ {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * 1e9))); d > 0 {
				time.Sleep(d)
			}
		}
		id := fmt.Sprintf("%s-%d", os.Getenv("SPOOL_PREFIX"), i)
		t := NewTask("task", "bench", "id", id)
		if size > 0 {
			t.Add("pad", []byte(filler))
		}
		t.Add("t0", strconv.AppendInt(nil, ring.MonotonicNanos(), 10))
		if _, err := c.Spool(ctx, t); err != nil {
			return err
		}
		if !quiet {
			fmt.Fprintf(out, "ack %s\n", id)
		}
	}
	return nil
}

// proc is a re-executed test binary in a role.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *testproc.Buffer
	ready  chan struct{}
}

func startProc(tb testing.TB, role string, env ...string) *proc {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	stdin, _ := cmd.StdinPipe()
	so, _ := cmd.StdoutPipe()
	se, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &proc{cmd: cmd, stdin: stdin, lines: make(chan string, 1<<20), stderr: &testproc.Buffer{}, ready: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(so)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	go func() {
		sc := bufio.NewScanner(se)
		once := sync.Once{}
		for sc.Scan() {
			p.stderr.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), " ready") {
				once.Do(func() { close(p.ready) })
			}
		}
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

func (p *proc) waitReady(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.ready:
	case <-time.After(20 * time.Second):
		tb.Fatalf("child not ready; stderr:\n%s", p.stderr)
	}
	// The spooler has taken its ring consumer entry once Run is past
	// Consumer(); give it that instant.
	time.Sleep(20 * time.Millisecond)
}

// wait collects stdout until the child exits, and fails on a bad exit.
func (p *proc) wait(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for l := range p.lines {
		out = append(out, l)
	}
	if err := p.cmd.Wait(); err != nil {
		tb.Fatalf("child: %v\nstderr:\n%s", err, p.stderr)
	}
	return out
}

func (p *proc) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatal(err)
	}
}
