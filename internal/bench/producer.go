package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/task"
)

// The keys of a measured task. A warm-up task has only KeyWarmup.
const (
	KeyN      = "n"      // the task's number, 0..Tasks-1
	KeyT0     = "t0"     // CLOCK_MONOTONIC ns just before the spool call
	KeyDelay  = "d"      // the coordinated-omission correction, ns
	KeyWarmup = "warmup" // a producer's first task, not measured
)

// SpoolFunc hands one task to the implementation measured. It must be done
// with t when it returns: t is reused for the next task.
type SpoolFunc func(ctx context.Context, t *task.Task) error

// Produce is the whole life of producer k (from 0) of a session in dir,
// run as a worker of the master measured: it spools one warm-up task (its
// lane is claimed, its code paths warm), reports ready, waits for the
// session's Start, spools its share of the tasks (Options.TasksOf), paced
// or back to back, and writes its spool-call durations. Then it waits for
// ctx: a worker that returned would be respawned. A failure is reported
// to the session (Session.Failed) rather than returned, for the same
// reason; a producer started again after a crash never spools twice.
func Produce(ctx context.Context, dir string, k int, o Options, spool SpoolFunc) error {
	f, err := os.OpenFile(filepath.Join(dir, prefixJoined+strconv.Itoa(k)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		f.Close()
		err = produce(ctx, dir, k, o, spool)
	} else if errors.Is(err, fs.ErrExist) {
		err = errors.New("died and was respawned; its tasks are not sent again")
	}
	if err != nil && ctx.Err() == nil {
		writeFileAtomic(filepath.Join(dir, prefixError+"producer-"+strconv.Itoa(k)), []byte(oneLine(err.Error())+"\n"))
	}
	<-ctx.Done()
	return nil
}

func produce(ctx context.Context, dir string, k int, o Options, spool SpoolFunc) error {
	// The session holds a writer on the FIFO: this open does not block,
	// and the read below sees EOF when the session closes it.
	goF, err := os.Open(filepath.Join(dir, fifoGo))
	if err != nil {
		return err
	}
	defer goF.Close()
	if err := spool(ctx, task.New(KeyWarmup, "1")); err != nil {
		return fmt.Errorf("warm-up task: %w", err)
	}
	rf, err := os.OpenFile(filepath.Join(dir, fifoReady), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(rf, "%d\n", k)
	rf.Close()
	if err != nil {
		return err
	}
	if err := waitEOF(ctx, goF); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, fileStart))
	if err != nil {
		return err
	}
	start, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %v", fileStart, err)
	}
	calls, err := Send(ctx, k, o, start, spool)
	if err != nil {
		return err
	}
	var out []byte
	for _, c := range calls {
		out = strconv.AppendInt(out, c, 10)
		out = append(out, '\n')
	}
	return writeFileAtomic(filepath.Join(dir, prefixCalls+strconv.Itoa(k)), out)
}

// Send spools producer k's tasks and returns the duration of each spool
// call, in nanoseconds. Each task carries its number, T0 (the clock just
// before the spool call) and, when paced, the coordinated-omission
// correction: the producer keeps a schedule in which only its spool calls
// take time, s(j) = max(intended(j), s(j-1) + call(j-1)), and the task
// carries s(j) - intended(j). Paced, it sleeps until each task's intended
// time (Options.Intended); a task already late goes at once.
func Send(ctx context.Context, k int, o Options, start int64, spool SpoolFunc) ([]int64, error) {
	count := o.TasksOf(k)
	calls := make([]int64, 0, count)
	t := task.New(KeyN, "", KeyT0, "", KeyDelay, "0")
	n, t0, d := &t.Pairs[0].Value, &t.Pairs[1].Value, &t.Pairs[2].Value
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var sc Schedule
	for j := range count {
		num := k + j*o.Producers
		var delay int64
		if o.Rate > 0 {
			intended := o.Intended(start, num)
			if err := sleepUntil(ctx, timer, ring.MonotonicNanos(), intended); err != nil {
				return nil, err
			}
			delay = sc.Next(intended)
		}
		*n = strconv.AppendInt((*n)[:0], int64(num), 10)
		*d = strconv.AppendInt((*d)[:0], delay, 10)
		now := ring.MonotonicNanos()
		*t0 = strconv.AppendInt((*t0)[:0], now, 10)
		if err := spool(ctx, t); err != nil {
			return nil, fmt.Errorf("task %d: %w", num, err)
		}
		call := ring.MonotonicNanos() - now
		sc.Called(call)
		calls = append(calls, call)
	}
	return calls, nil
}

// Schedule is a paced producer's schedule in which only its spool calls
// take time: the coordinated-omission correction (see the package
// documentation). The zero value is ready for the first task.
type Schedule struct {
	s, call int64
	started bool
}

// Next returns the correction of the task intended at intended (ns):
// s(j) - intended(j), where s(j) = max(intended(j), s(j-1) + call(j-1)).
func (sc *Schedule) Next(intended int64) (delay int64) {
	s := intended
	if sc.started && sc.s+sc.call > s {
		s = sc.s + sc.call
	}
	sc.s, sc.call, sc.started = s, 0, true
	return s - intended
}

// Called records the duration of the spool call of the task Next was
// last asked about.
func (sc *Schedule) Called(d int64) { sc.call = d }

// Recorder is the handler of a measured gospool spooler: it takes the
// clock at its first line, records the task and does nothing else (a
// no-op task). Once every task of the session has been seen it writes them
// for the bench process (Session.Samples). Warm-up tasks and tasks seen
// before (a spooler died running them) are not recorded.
type Recorder struct {
	dir   string
	tasks int

	mu      sync.Mutex
	seen    []bool
	samples []Sample
	written bool
}

// NewRecorder records the tasks 0..tasks-1 of the session in dir.
func NewRecorder(dir string, tasks int) *Recorder {
	return &Recorder{dir: dir, tasks: tasks, seen: make([]bool, tasks), samples: make([]Sample, 0, tasks)}
}

// Handle is the spooler handler (spooler.HandlerFunc).
func (r *Recorder) Handle(ctx context.Context, t *task.Task) error {
	now := ring.MonotonicNanos()
	if _, ok := t.Get(KeyWarmup); ok {
		return nil
	}
	n, err1 := getInt(t, KeyN)
	t0, err2 := getInt(t, KeyT0)
	d, err3 := getInt(t, KeyDelay)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil // not a task of this session: run, not recorded
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n < 0 || n >= int64(r.tasks) || r.seen[n] {
		return nil
	}
	r.seen[n] = true
	r.samples = append(r.samples, Sample{N: int(n), T0: t0, Handled: now, Delay: d})
	if len(r.samples) == r.tasks && !r.written {
		r.written = true
		if err := r.write(); err != nil {
			writeFileAtomic(filepath.Join(r.dir, prefixError+"spooler"), []byte(oneLine(err.Error())+"\n"))
		}
	}
	return nil
}

func (r *Recorder) write() error {
	out := make([]byte, 0, len(r.samples)*48)
	for _, s := range r.samples {
		out = strconv.AppendInt(out, int64(s.N), 10)
		out = append(out, ' ')
		out = strconv.AppendInt(out, s.T0, 10)
		out = append(out, ' ')
		out = strconv.AppendInt(out, s.Handled, 10)
		out = append(out, ' ')
		out = strconv.AppendInt(out, s.Delay, 10)
		out = append(out, '\n')
	}
	return writeFileAtomic(filepath.Join(r.dir, fileHandoffs), out)
}

func getInt(t *task.Task, key string) (int64, error) {
	v, ok := t.Get(key)
	if !ok {
		return 0, fmt.Errorf("no %s", key)
	}
	return strconv.ParseInt(string(v), 10, 64)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
