package bench

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The files of a session directory. The protocol between the bench
// process, the producers and the handler is these files; producer.py
// implements the producer's side in Python.
const (
	// SpoolDirName is the spool directory, inside the session's.
	SpoolDirName = "spool"
	fifoReady    = "ready"    // FIFO: each producer writes "K\n" once ready
	fifoGo       = "go"       // FIFO: EOF releases the producers
	fileStart    = "start"    // the paced schedule's start, CLOCK_MONOTONIC ns
	fileHandoffs = "handoffs" // the handler's samples: "N T0 HANDLED DELAY" lines
	prefixCalls  = "calls-"   // calls-K: producer K's spool calls, ns per line
	prefixError  = "error-"   // error-producer-K, error-spooler: why it gave up, one line
	prefixJoined = "started-" // started-K: producer K has started once
	// PythonScript is the Python producer's file name in the session
	// directory (WritePythonProducer).
	PythonScript = "producer.py"
)

// Session is the bench process's side of one measurement: a temporary
// directory holding the spool directory and the files through which the
// producers and the handler report.
type Session struct {
	// Dir is the session's directory; Close removes it.
	Dir   string
	ready *os.File // FIFO, open read-write: producers never block opening it
	goF   *os.File // FIFO, open read-write until Start
	lines chan int // producer numbers read from ready

	closeOnce sync.Once
}

// NewSession makes a session directory in parent (the default temporary
// directory when ""), with its FIFOs open.
func NewSession(parent string) (*Session, error) {
	dir, err := os.MkdirTemp(parent, "gospool-bench-")
	if err != nil {
		return nil, err
	}
	s := &Session{Dir: dir, lines: make(chan int, 64)}
	fail := func(err error) (*Session, error) {
		s.Close()
		return nil, err
	}
	for _, name := range []string{fifoReady, fifoGo} {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
			return fail(fmt.Errorf("bench: mkfifo: %w", err))
		}
	}
	// Read-write: opening a FIFO so never blocks, and the FIFO always has
	// a reader and a writer while the session holds it. Both are
	// close-on-exec, so the children never hold them.
	if s.ready, err = os.OpenFile(filepath.Join(dir, fifoReady), os.O_RDWR, 0); err != nil {
		return fail(err)
	}
	if s.goF, err = os.OpenFile(filepath.Join(dir, fifoGo), os.O_RDWR, 0); err != nil {
		return fail(err)
	}
	go func() {
		sc := bufio.NewScanner(s.ready)
		for sc.Scan() {
			if k, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
				s.lines <- k
			}
		}
		close(s.lines)
	}()
	return s, nil
}

// SpoolDir is the spool directory the implementation measured serves.
func (s *Session) SpoolDir() string { return filepath.Join(s.Dir, SpoolDirName) }

// Close releases the FIFOs and removes the directory.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.ready != nil {
			s.ready.Close()
		}
		if s.goF != nil {
			s.goF.Close()
		}
		err = os.RemoveAll(s.Dir)
	})
	return err
}

// Ready returns a channel that gets the number of each producer that has
// become ready (warmed up, waiting for Start).
func (s *Session) Ready() <-chan int { return s.lines }

// Start releases the producers, waiting in WaitStart, at once; a paced
// schedule starts at start (CLOCK_MONOTONIC ns; a little ahead, so that
// every producer is awake by then).
func (s *Session) Start(start int64) error {
	if err := writeFileAtomic(filepath.Join(s.Dir, fileStart), []byte(strconv.FormatInt(start, 10)+"\n")); err != nil {
		return err
	}
	return s.goF.Close() // the last writer: EOF for every reader
}

// Failed returns the first failure a producer or the handler reported, or
// nil.
func (s *Session) Failed() error {
	names, _ := filepath.Glob(filepath.Join(s.Dir, prefixError+"*"))
	slices.Sort(names)
	for _, n := range names {
		if strings.HasSuffix(n, ".tmp") {
			continue // being written: the report is its renamed copy
		}
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		who := strings.ReplaceAll(strings.TrimPrefix(filepath.Base(n), prefixError), "-", " ")
		return fmt.Errorf("%s: %s", who, strings.TrimSpace(string(b)))
	}
	return nil
}

// Complete reports whether the handler has reported every task and the
// producers all their spool calls.
func (s *Session) Complete(producers int) bool {
	paths := []string{filepath.Join(s.Dir, fileHandoffs)}
	for k := range producers {
		paths = append(paths, filepath.Join(s.Dir, prefixCalls+strconv.Itoa(k)))
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// Samples reads the handler's report.
func (s *Session) Samples() ([]Sample, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, fileHandoffs))
	if err != nil {
		return nil, err
	}
	return ParseSamples(b)
}

// Calls reads the producers' spool-call durations.
func (s *Session) Calls(producers int) ([]int64, error) {
	var all []int64
	for k := range producers {
		b, err := os.ReadFile(filepath.Join(s.Dir, prefixCalls+strconv.Itoa(k)))
		if err != nil {
			return nil, err
		}
		for i, f := range strings.Fields(string(b)) {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s%d: value %d: %v", prefixCalls, k, i+1, err)
			}
			all = append(all, v)
		}
	}
	return all, nil
}

// ParseSamples parses the handoffs file: one "N T0 HANDLED DELAY" line per
// task handled, decimal.
func ParseSamples(b []byte) ([]Sample, error) {
	var out []Sample
	for i, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("handoffs line %d: want 4 numbers, got %q", i+1, line)
		}
		var v [4]int64
		for j := range v {
			var err error
			if v[j], err = strconv.ParseInt(f[j], 10, 64); err != nil {
				return nil, fmt.Errorf("handoffs line %d: %v", i+1, err)
			}
		}
		out = append(out, Sample{N: int(v[0]), T0: v[1], Handled: v[2], Delay: v[3]})
	}
	return out, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

//go:embed producer.py
var pythonProducer []byte

// WritePythonProducer writes the Python producer script into the session
// directory and returns its path. It runs with the package gospool on
// PYTHONPATH, as a worker of a gospool master (GOSPOOL_ID,
// GOSPOOL_SPOOLER_DIRS), and reads GOSPOOL_BENCH_DIR and the variables of
// PythonEnv.
func (s *Session) WritePythonProducer() (string, error) {
	p := filepath.Join(s.Dir, PythonScript)
	return p, os.WriteFile(p, pythonProducer, 0o600)
}

// The environment variables of the producers: the session directory
// (Go and Python), and the options (Python; Go producers have them from
// their command line).
const (
	EnvDir       = "GOSPOOL_BENCH_DIR"
	EnvTasks     = "GOSPOOL_BENCH_TASKS"
	EnvProducers = "GOSPOOL_BENCH_PRODUCERS"
	EnvRate      = "GOSPOOL_BENCH_RATE"
)

// PythonEnv is the environment the Python producer needs beyond the
// master's (GOSPOOL_ID, GOSPOOL_SPOOLER_DIRS), GOSPOOL_BENCH_DIR and
// PYTHONPATH.
func PythonEnv(o Options) []string {
	return []string{
		EnvTasks + "=" + strconv.Itoa(o.Tasks),
		EnvProducers + "=" + strconv.Itoa(o.Producers),
		EnvRate + "=" + strconv.FormatFloat(o.Rate, 'g', -1, 64),
	}
}

// waitEOF reads f until EOF, or until ctx is done (then it closes f).
func waitEOF(ctx context.Context, f *os.File) error {
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	var buf [64]byte
	for {
		_, err := f.Read(buf[:])
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}

// sleepUntil sleeps until the CLOCK_MONOTONIC time t, or until ctx is done.
func sleepUntil(ctx context.Context, timer *time.Timer, now, t int64) error {
	if t <= now {
		return ctx.Err()
	}
	timer.Reset(time.Duration(t - now))
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		timer.Stop()
		return ctx.Err()
	}
}
