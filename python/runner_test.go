package python

// Tests of the Pool with real python3 runner processes and the task
// modules in testdata/pytasks, which are written for uWSGI (uwsgi and
// uwsgidecorators only, no gospool import).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// testPool is a Pool on testdata/pytasks whose runners record their calls
// in out/calls.jsonl.
type testPool struct {
	*Pool
	out            string
	stdout, stderr *testproc.Buffer
	logs           *testproc.Buffer
}

func newTestPool(t *testing.T, size int, harakiri time.Duration, modules ...string) *testPool {
	t.Helper()
	testproc.NeedPython3(t)
	tasks, err := filepath.Abs(filepath.Join("testdata", "pytasks"))
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPool{out: t.TempDir(), stdout: &testproc.Buffer{}, stderr: &testproc.Buffer{}, logs: &testproc.Buffer{}}
	env := append(os.Environ(), "PYTHONPATH="+tasks, "PYTASKS_OUT="+tp.out, "PYTHONDONTWRITEBYTECODE=1",
		"GOSPOOL_RING_FDS=7") // removed by the pool
	p, err := New(Config{
		Modules:  modules,
		Size:     size,
		Harakiri: harakiri,
		Env:      env,
		Stdout:   tp.stdout,
		Stderr:   tp.stderr,
		Logger:   log.New(tp.logs, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	tp.Pool = p
	t.Cleanup(func() {
		pids := p.Pids()
		p.Close()
		for _, pid := range pids {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
	return tp
}

// serve runs a real Spooler on a new directory with the pool's Handle as
// its default handler, until the test ends, and returns a client of it.
func (tp *testPool) serve(t *testing.T, cfg spooler.Config) (context.Context, *spooler.Client) {
	t.Helper()
	cfg.Dir = t.TempDir()
	cfg.Logger = log.New(tp.logs, "", 0)
	s, err := spooler.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.HandleDefault(tp.Handle)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := spooler.NewClient(cfg.Dir, spooler.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, c
}

// call runs one task as the spooler would, with its name and attempt.
func (tp *testPool) call(t *testing.T, ctx context.Context, name string, tk *task.Task) error {
	t.Helper()
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
	}
	return tp.run(ctx, spooler.Info{Name: name, Attempt: 1}, tk)
}

// record is one line of calls.jsonl.
type record map[string]any

func (r record) str(k string) string { s, _ := r[k].(string); return s }

func (tp *testPool) records(t *testing.T) []record {
	t.Helper()
	f, err := os.Open(filepath.Join(tp.out, "calls.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// last returns the last record of func fn.
func (tp *testPool) last(t *testing.T, fn string) record {
	t.Helper()
	recs := tp.records(t)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].str("func") == fn {
			return recs[i]
		}
	}
	t.Fatalf("no call of %s recorded; stderr:\n%s", fn, tp.stderr)
	return nil
}

// waitRecord waits until a record of func fn with key=value exists.
func (tp *testPool) waitRecord(t *testing.T, fn, key, value string) record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range tp.records(t) {
			if r.str("func") == fn && r.str(key) == value {
				return r
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %s call with %s=%s; stderr:\n%s", fn, key, value, tp.stderr)
	return nil
}

// waitOutput waits until buf holds s: the runners' output is copied to
// the buffers by goroutines of os/exec, after the reply may have arrived.
func waitOutput(t *testing.T, buf *testproc.Buffer, s string) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), s) {
		if time.Now().After(deadline) {
			t.Errorf("output does not hold %q:\n%s", s, buf)
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func ctl(kv ...string) *task.Task {
	return task.New(append([]string{"ud_spool_func", "ctl"}, kv...)...)
}

func onePid(t *testing.T, p *Pool) int {
	t.Helper()
	pids := p.Pids()
	if len(pids) != 1 {
		t.Fatalf("runner pids %v, want one", pids)
	}
	return pids[0]
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("runner %d still alive", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Return values and exceptions map to uWSGI's codes; one runner serves
// every task.
func TestResults(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 1, 0, "udtasks")
	isRetry := func(err error) bool { return err != nil && !errors.Is(err, spooler.ErrIgnore) }
	cases := []struct {
		do   []string
		ok   func(error) bool
		want string // in the error
	}{
		{[]string{"do", "ok"}, func(e error) bool { return e == nil }, ""},
		{[]string{"do", "retry"}, isRetry, "SPOOL_RETRY"},
		{[]string{"do", "ignore"}, func(e error) bool { return errors.Is(e, spooler.ErrIgnore) }, ""},
		{[]string{"do", "code", "code", "5"}, isRetry, "returned 5"},
		{[]string{"do", "code", "code", "-2"}, func(e error) bool { return e == nil }, ""},
		// uwsgidecorators' int(None) raises: a retry with a traceback.
		{[]string{"do", "none"}, func(e error) bool { return errors.Is(e, ErrException) }, "TypeError: int() argument"},
		{[]string{"do", "true"}, isRetry, "returned 1"},
		{[]string{"do", "false"}, func(e error) bool { return errors.Is(e, spooler.ErrIgnore) }, ""},
		{[]string{"do", "raise", "msg", "kaboom"}, func(e error) bool { return errors.Is(e, ErrException) }, "ValueError: boom: kaboom"},
	}
	pid := 0
	for _, c := range cases {
		err := tp.call(t, nil, "task-"+strings.Join(c.do, "-"), ctl(c.do...))
		if !c.ok(err) {
			t.Errorf("%v: got %v", c.do, err)
			continue
		}
		if c.want != "" && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %q does not say %q", c.do, err, c.want)
		}
		if pid == 0 {
			pid = onePid(t, tp.Pool)
		} else if got := onePid(t, tp.Pool); got != pid {
			t.Errorf("%v: runner %d, want the same runner %d", c.do, got, pid)
		}
	}
	err := tp.call(t, nil, "tb", ctl("do", "raise", "msg", "tb"))
	for _, w := range []string{"Traceback (most recent call last):", "udtasks.py", "in ctl", `raise ValueError("boom: " + env.get("msg", ""))`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("exception error %v does not hold %q", err, w)
		}
	}
	if got := tp.last(t, "ctl").str("task"); got != "tb" {
		t.Errorf("spooler_task_name %q, want tb", got)
	}
}

// The raw API (uwsgi.spooler = f): the env is what uWSGI 2.0.21 passes, and
// what f returns maps as uWSGI's plugin maps it.
func TestPlainSpooler(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 1, 0, "plaintasks")
	tk := &task.Task{Body: []byte("\x00\xffbinary")}
	tk.Add("a", []byte("1"))
	tk.Add("spooler_task_name", []byte("X"))
	tk.Add("bin", []byte{0xff, 0xfe})
	tk.Add("a", []byte("2"))
	if err := tp.call(t, nil, "uwsgi_spoolfile_on_h_1_2_3_4_5", tk); err != nil {
		t.Fatal(err)
	}
	r := tp.last(t, "plain")
	want := `{'spooler_task_name': b'uwsgi_spoolfile_on_h_1_2_3_4_5', b'a': b'2', b'spooler_task_name': b'X', b'bin': b'\xff\xfe', b'body': b'\x00\xffbinary'}`
	// uWSGI names the body with a str key, last.
	want = strings.Replace(want, "b'body'", "'body'", 1)
	if got := r.str("env"); got != want {
		t.Errorf("env\n got %s\nwant %s", got, want)
	}
	if r["spooler"] != true {
		t.Errorf("i_am_the_spooler() = %v in the runner", r["spooler"])
	}
	// No body: no 'body' key.
	if err := tp.call(t, nil, "n", task.New("k", "")); err != nil {
		t.Fatal(err)
	}
	if got := tp.last(t, "plain").str("env"); got != `{'spooler_task_name': b'n', b'k': b''}` {
		t.Errorf("env %s", got)
	}
	for _, c := range []struct {
		ret  string
		ok   func(error) bool
		want string
	}{
		{"-2", func(e error) bool { return e == nil }, ""},
		{"0", func(e error) bool { return errors.Is(e, spooler.ErrIgnore) }, ""},
		{"-1", func(e error) bool { return e != nil && !errors.Is(e, spooler.ErrIgnore) }, "SPOOL_RETRY"},
		{"none", func(e error) bool { return e != nil && !errors.Is(e, spooler.ErrIgnore) }, "None, not an int"},
		{"float", func(e error) bool { return e != nil && !errors.Is(e, spooler.ErrIgnore) }, "-2.0, not an int"},
		{"str", func(e error) bool { return e != nil && !errors.Is(e, spooler.ErrIgnore) }, "not an int"},
		{"true", func(e error) bool { return e != nil && !errors.Is(e, spooler.ErrIgnore) }, "returned 1"},
		{"false", func(e error) bool { return errors.Is(e, spooler.ErrIgnore) }, "False"},
		// As uWSGI 2.0.21 (checked with it): 2**32-2 is the C int -2, done;
		// an int beyond a C long is -1.
		{"big", func(e error) bool { return e == nil }, ""},
		{"huge", func(e error) bool { return e != nil && !errors.Is(e, spooler.ErrIgnore) }, "too big"},
	} {
		err := tp.call(t, nil, "r", task.New("ret", c.ret))
		if !c.ok(err) {
			t.Errorf("ret=%s: got %v", c.ret, err)
		} else if c.want != "" && !strings.Contains(err.Error(), c.want) {
			t.Errorf("ret=%s: error %q does not say %q", c.ret, err, c.want)
		}
	}
}

// manifest is testdata/uwsgi-decorators/manifest.json: spool files written
// by the real uwsgidecorators, and what it did with them in a real spooler.
type manifest struct {
	Cases []struct {
		Case  string `json:"case"`
		File  string `json:"file"`
		Task  string `json:"task"`
		Truth struct {
			Called *struct {
				Func   string `json:"func"`
				Args   string `json:"args"`
				Kwargs string `json:"kwargs"`
			} `json:"called"`
			Outcome map[string]string `json:"outcome"`
		} `json:"uwsgidecorators"`
	} `json:"cases"`
}

func loadManifest(t *testing.T) manifest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "uwsgi-decorators", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) < 18 {
		t.Fatalf("manifest has %d cases", len(m.Cases))
	}
	return m
}

// Every spool file that real uwsgidecorators wrote runs here as it ran
// under real uWSGI: the same function, the same arguments, the same result;
// except the three documented fixes (binary values reach the function as
// bytes instead of a UnicodeDecodeError, an unknown ud_spool_func is
// ignored instead of a KeyError).
func TestDecoratorFixtures(t *testing.T) {
	t.Parallel()
	m := loadManifest(t)
	tp := newTestPool(t, 1, 0, "udtasks")
	fixed := map[string]struct {
		fn, repr string // the call, as recorded by udtasks
		result   string
	}{
		"spool-bytes-value": {"hello", `{'ud_spool_func': 'hello', 'ud_spool_ret': '-2', 'blob': b'\xff\x00\x01', 'ok': 'plain'}`, "-2"},
		"args-binary-body":  {"send", `('carol', 'report')`, "-2"},
		"raw-spool-no-func": {"", "", "0"},
	}
	for _, c := range m.Cases {
		tk, err := spoolfile.ReadFile(filepath.Join("testdata", "uwsgi-decorators", c.File))
		if err != nil {
			t.Fatalf("%s: %v", c.Case, err)
		}
		before := len(tp.records(t))
		err = tp.call(t, nil, c.Task, tk)
		var recs []record
		for _, r := range tp.records(t)[before:] {
			if r.str("func") != "postfork" {
				recs = append(recs, r)
			}
		}

		wantResult := ""
		var wantFn, wantRepr string
		if f, ok := fixed[c.Case]; ok {
			wantResult, wantFn, wantRepr = f.result, f.fn, f.repr
		} else {
			if v, ok := c.Truth.Outcome["return"]; ok {
				wantResult = v
			} else {
				wantResult = "raise: " + strings.SplitN(c.Truth.Outcome["raise"], ":", 2)[0]
			}
			if cl := c.Truth.Called; cl != nil {
				wantFn = cl.Func
				if strings.HasPrefix(cl.Args, "({'spooler_task_name'") {
					// f(env): udtasks records env without spooler_task_name.
					prefix := "({'spooler_task_name': '" + c.Task + "', "
					if !strings.HasPrefix(cl.Args, prefix) || !strings.HasSuffix(cl.Args, ",)") {
						t.Fatalf("%s: args %s", c.Case, cl.Args)
					}
					wantRepr = "{" + strings.TrimSuffix(strings.TrimPrefix(cl.Args, prefix), ",)")
				} else {
					wantRepr = cl.Args + " " + cl.Kwargs
				}
			}
		}

		switch {
		case wantResult == "-2" && err != nil,
			wantResult == "0" && !errors.Is(err, spooler.ErrIgnore),
			wantResult == "-1" && (err == nil || errors.Is(err, spooler.ErrIgnore) || errors.Is(err, ErrException)),
			strings.HasPrefix(wantResult, "raise: ") && (!errors.Is(err, ErrException) || !strings.Contains(err.Error(), strings.TrimPrefix(wantResult, "raise: ")+":")):
			t.Errorf("%s: got %v, want %s", c.Case, err, wantResult)
		}
		if wantFn == "" {
			if len(recs) != 0 {
				t.Errorf("%s: calls %v, want none", c.Case, recs)
			}
			continue
		}
		if len(recs) != 1 || recs[0].str("func") != wantFn {
			t.Errorf("%s: calls %v, want one of %s", c.Case, recs, wantFn)
			continue
		}
		got := recs[0].str("env")
		if got == "" {
			got = recs[0].str("args") + " " + recs[0].str("kwargs")
			if _, ok := fixed[c.Case]; ok {
				got = recs[0].str("args")
			}
		}
		if got != wantRepr {
			t.Errorf("%s: %s got\n  %s\nwant\n  %s", c.Case, wantFn, got, wantRepr)
		}
	}
	waitOutput(t, tp.stderr, "has no ud_spool_func: SPOOL_IGNORE")
}

// sys.exit in a task ends the runner, as it ends a uWSGI spooler: the task
// is retried and the next task gets a new runner.
func TestSysExit(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 1, 0, "udtasks")
	if err := tp.call(t, nil, "a", ctl("do", "ok")); err != nil {
		t.Fatal(err)
	}
	pid := onePid(t, tp.Pool)
	err := tp.call(t, nil, "b", ctl("do", "exit", "code", "7"))
	if !errors.Is(err, ErrRunnerDied) || !strings.Contains(err.Error(), "SystemExit") || !strings.Contains(err.Error(), "status 7") {
		t.Fatalf("sys.exit(7): %v", err)
	}
	waitGone(t, pid)
	if len(tp.Pids()) != 0 {
		t.Errorf("pids %v after the runner exited", tp.Pids())
	}
	if err := tp.call(t, nil, "c", ctl("do", "ok")); err != nil {
		t.Fatal(err)
	}
	if got := onePid(t, tp.Pool); got == pid {
		t.Errorf("the same runner %d after sys.exit", pid)
	}
}

// A runner that dies in the middle of a task (killed, os._exit) fails the
// task (a retry) and is replaced by the next task.
func TestRunnerDies(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 1, 0, "udtasks")
	for _, c := range []struct {
		do   []string
		want string
	}{
		{[]string{"do", "kill"}, "killed by signal 9"},
		{[]string{"do", "osexit", "code", "5"}, "exited with status 5"},
	} {
		if err := tp.call(t, nil, "ok", ctl("do", "ok")); err != nil {
			t.Fatal(err)
		}
		pid := onePid(t, tp.Pool)
		err := tp.call(t, nil, "dies", ctl(c.do...))
		if !errors.Is(err, ErrRunnerDied) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want ErrRunnerDied saying %q", c.do, err, c.want)
		}
		if err := tp.call(t, nil, "after", ctl("do", "ok")); err != nil {
			t.Fatal(err)
		}
		if got := onePid(t, tp.Pool); got == pid {
			t.Errorf("%v: still runner %d", c.do, pid)
		}
	}

	// Killed from outside while it runs a task.
	errc := make(chan error, 1)
	go func() { errc <- tp.call(t, nil, "hang1", ctl("do", "hang")) }()
	r := tp.waitRecord(t, "ctl", "task", "hang1")
	pid := int(r["pid"].(float64))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrRunnerDied) || !strings.Contains(err.Error(), "signal 9") {
		t.Errorf("runner killed mid-task: %v", err)
	}
	// Killed while idle: the next task notices and starts another.
	if err := tp.call(t, nil, "ok2", ctl("do", "ok")); err != nil {
		t.Fatal(err)
	}
	idle := onePid(t, tp.Pool)
	syscall.Kill(idle, syscall.SIGKILL)
	waitGone(t, idle)
	if err := tp.call(t, nil, "ok3", ctl("do", "ok")); err != nil {
		t.Fatal(err)
	}
	if got := onePid(t, tp.Pool); got == idle {
		t.Errorf("still runner %d", idle)
	}
	if !strings.Contains(tp.logs.String(), "died while idle") {
		t.Errorf("no log line for the runner that died idle: %s", tp.logs)
	}
}

// A cancelled context (the spooler stopping, its harakiri) kills a hung
// runner and its process group; the task is retried.
func TestCancelKillsHungRunner(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 1, 0, "udtasks")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- tp.call(t, ctx, "hang", ctl("do", "hang")) }()
	r := tp.waitRecord(t, "ctl", "task", "hang")
	pid := int(r["pid"].(float64))
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || errors.Is(err, spooler.ErrIgnore) {
		t.Errorf("cancelled: %v", err)
	}
	waitGone(t, pid)
	if err := tp.call(t, nil, "next", ctl("do", "ok")); err != nil {
		t.Fatal(err)
	}
	if got := onePid(t, tp.Pool); got == pid {
		t.Errorf("still runner %d", pid)
	}
}

// Config.Harakiri kills a task that runs too long, with uWSGI's line.
func TestHarakiri(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 1, 500*time.Millisecond, "udtasks")
	if err := tp.call(t, nil, "warm", ctl("do", "ok")); err != nil {
		t.Fatal(err)
	}
	pid := onePid(t, tp.Pool)
	err := tp.call(t, nil, "slow", ctl("do", "hang"))
	if !errors.Is(err, ErrHarakiri) {
		t.Fatalf("hang under harakiri: %v", err)
	}
	if !strings.Contains(tp.logs.String(), "*** HARAKIRI ON THE SPOOLER (pid: ") || !strings.Contains(tp.logs.String(), "task slow ran for more than 500ms") {
		t.Errorf("log: %s", tp.logs)
	}
	waitGone(t, pid)
	if err := tp.call(t, nil, "after", ctl("do", "ok")); err != nil {
		t.Fatal(err)
	}
}

// Warm imports before the first task, so that a slow import does not count
// toward the spooler's harakiri (uWSGI imports before it takes tasks); a
// runner killed by a harakiri is replaced at once, before the next task.
func TestWarm(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 2, 0, "slowimport", "udtasks")
	if err := tp.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	warm := tp.Pids()
	if len(warm) != 2 {
		t.Fatalf("after Warm: runner pids %v, want 2", warm)
	}
	ctx, c := tp.serve(t, spooler.Config{Concurrency: 2, Harakiri: time.Second, RetryDelay: time.Hour})
	// The import takes 1.5 s, the harakiri is 1 s: only a warm pool runs it.
	if _, err := c.Spool(ctx, ctl("do", "ok", "id", "first")); err != nil {
		t.Fatal(err)
	}
	tp.waitRecord(t, "ctl", "do", "ok")
	if !waitOutput(t, tp.logs, "done with task ") {
		t.FailNow()
	}
	if strings.Contains(tp.logs.String(), "HARAKIRI") {
		t.Errorf("the first task was killed by the harakiri:\n%s", tp.logs)
	}

	// A hung task is killed; its runner is replaced with no task waiting.
	if _, err := c.Spool(ctx, ctl("do", "hang", "id", "hung")); err != nil {
		t.Fatal(err)
	}
	hung := int(tp.waitRecord(t, "ctl", "do", "hang")["pid"].(float64))
	if !waitOutput(t, tp.logs, "*** HARAKIRI ON THE SPOOLER") {
		t.FailNow()
	}
	waitGone(t, hung)
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := tp.Pids()
		if len(pids) == 2 && !slices.Contains(pids, hung) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runner pids %v: the killed runner %d was not replaced; log:\n%s", pids, hung, tp.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A module that fails to import: a clear error, the traceback in the log.
func TestImportError(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 1, 0, "badimport")
	err := tp.call(t, nil, "x", ctl("do", "ok"))
	if !errors.Is(err, ErrImport) || !strings.Contains(err.Error(), "status 3") || !strings.Contains(err.Error(), "badimport") {
		t.Fatalf("import error: %v", err)
	}
	for _, w := range []string{"Traceback (most recent call last):", "RuntimeError: badimport: this module fails on purpose", "--spooler-import badimport failed"} {
		waitOutput(t, tp.stderr, w)
	}
	// Right after, tasks fail at once with the same error.
	if err := tp.call(t, nil, "y", ctl("do", "ok")); !errors.Is(err, ErrImport) {
		t.Errorf("second task: %v", err)
	}
	tp2 := newTestPool(t, 1, 0, "no_such_module_here")
	if err := tp2.call(t, nil, "x", ctl("do", "ok")); !errors.Is(err, ErrImport) {
		t.Errorf("missing module: %v", err)
	}
	waitOutput(t, tp2.stderr, "ModuleNotFoundError: No module named 'no_such_module_here'")
	p, err := New(Config{Modules: []string{"udtasks"}, Python: filepath.Join(t.TempDir(), "nopython")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.run(context.Background(), spooler.Info{}, ctl("do", "ok")); err == nil || !strings.Contains(err.Error(), "nopython") {
		t.Errorf("missing interpreter: %v", err)
	}
}

// What tasks print goes to the runner's stdout and stderr (the spooler's
// log); imports warn about the uWSGI features gospool does not run; the
// @postfork functions run once, in the runner; mules never run.
func TestOutputAndImports(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 1, 0, "udtasks")
	if err := tp.call(t, nil, "p", ctl("do", "print", "msg", "hello there")); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, tp.stdout, "PRINTED hello there\n")
	waitOutput(t, tp.stderr, "STDERR hello there\n")
	for _, w := range []string{"@timer(30) every_30s: gospool runs no uWSGI timers", "@cron nightly", "@filemon('/tmp') on_tmp", "register_signal(17"} {
		waitOutput(t, tp.stderr, w)
	}
	var postforks, mules int
	for _, r := range tp.records(t) {
		switch r.str("func") {
		case "postfork":
			postforks++
			if r["spooler"] != true {
				t.Errorf("postfork: i_am_the_spooler() = %v", r["spooler"])
			}
		case "mule":
			mules++
		}
	}
	if postforks != 1 || mules != 0 {
		t.Errorf("%d postfork and %d mule calls, want 1 and 0", postforks, mules)
	}
}

// Size runners run tasks at the same time: one task waits for a mark that
// the other makes.
func TestConcurrentRunners(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 2, 0, "udtasks")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = tp.call(t, nil, "wait", ctl("do", "waitfor", "mark", "m1")) }()
	go func() { defer wg.Done(); errs[1] = tp.call(t, nil, "touch", ctl("do", "touch", "mark", "m1")) }()
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors: %v", errs)
	}
	if pids := tp.Pids(); len(pids) != 2 {
		t.Errorf("pids %v, want 2", pids)
	}
	// More tasks than runners wait for one.
	for range 2 {
		errs := make([]error, 3)
		wg.Add(3)
		for i := range 3 {
			go func() { defer wg.Done(); errs[i] = tp.call(t, nil, "n", ctl("do", "ok")) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}
	if pids := tp.Pids(); len(pids) != 2 {
		t.Errorf("pids %v, want 2", pids)
	}
}

// Close stops idle runners.
func TestClose(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 1, 0, "udtasks")
	if err := tp.call(t, nil, "a", ctl("do", "ok")); err != nil {
		t.Fatal(err)
	}
	pid := onePid(t, tp.Pool)
	tp.Close()
	waitGone(t, pid)
	if err := tp.call(t, nil, "b", ctl("do", "ok")); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// Through a real Spooler: spool files and ring tasks, the task's name and
// attempt, a retry after an exception.
func TestWithSpooler(t *testing.T) {
	t.Parallel()
	tp := newTestPool(t, 2, 0, "udtasks")
	ctx, c := tp.serve(t, spooler.Config{Concurrency: 2, RetryDelay: 10 * time.Millisecond})
	w, err := spoolfile.NewWriter(c.Dir(), spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path, err := w.Write(ctl("do", "flaky", "id", "f1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Spool(ctx, ctl("do", "ok", "id", "r1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var flaky []record
	for time.Now().Before(deadline) {
		flaky = flaky[:0]
		for _, r := range tp.records(t) {
			if r.str("do") == "flaky" {
				flaky = append(flaky, r)
			}
		}
		if len(flaky) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(flaky) != 2 {
		t.Fatalf("flaky ran %d times; log:\n%s\nstderr:\n%s", len(flaky), tp.logs, tp.stderr)
	}
	if got := flaky[0].str("task"); got != filepath.Base(path) {
		t.Errorf("first run's spooler_task_name %q, want %q", got, filepath.Base(path))
	}
	if !strings.Contains(tp.logs.String(), "RuntimeError: flaky: first run fails") {
		t.Errorf("the retry's traceback is not in the log:\n%s", tp.logs)
	}
	r := tp.waitRecord(t, "ctl", "do", "ok")
	if name := r.str("task"); name == "" {
		t.Errorf("ring task has no name")
	}
	names := []string{}
	for _, r := range tp.records(t) {
		names = append(names, r.str("task"))
	}
	if !slices.ContainsFunc(names, func(n string) bool {
		return strings.Contains(n, ".retry") || strings.HasPrefix(n, "uwsgi_spoolfile_on_")
	}) {
		t.Errorf("task names %v", names)
	}
}

// The request frame is the documented layout.
func TestEncodeRequest(t *testing.T) {
	tk := task.New("k", "v")
	tk.Body = []byte("B")
	got, err := encodeRequest("nm", 3, tk)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		19, 0, 0, 0, // L = 4 (attempt) + 2 (n) + 2 (name) + 11 (spool file)
		3, 0, 0, 0, // attempt
		2, 0, 'n', 'm', // name
		0x11, 6, 0, 0, 1, 0, 'k', 1, 0, 'v', // spool file header and vars
		'B', // body
	}
	if !bytes.Equal(got, want) {
		t.Errorf("frame\n got % x\nwant % x", got, want)
	}
	big := task.New("k", strings.Repeat("x", 70000))
	if _, err := encodeRequest("n", 1, big); !errors.Is(err, spoolfile.ErrTooLarge) {
		t.Errorf("70000-byte value: %v", err)
	}
}

// PackageDir extracts the embedded files once, atomically, and repairs a
// damaged copy.
func TestExtract(t *testing.T) {
	base := filepath.Join(t.TempDir(), "cache")
	dir := filepath.Join(base, "python-x")
	if err := extractTo(base, dir); err != nil {
		t.Fatal(err)
	}
	names, err := pyFiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gospool/compat.py", "gospool/runner.py"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s is not embedded (%v)", want, names)
		}
	}
	for _, n := range names {
		want, _ := files.ReadFile(n)
		got, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: extracted copy differs (%v)", n, err)
		}
	}
	if !sameContent(dir) {
		t.Error("sameContent is false right after extracting")
	}
	// Damaged: repaired.
	if err := os.WriteFile(filepath.Join(dir, "gospool", "runner.py"), []byte("broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := extractTo(base, dir); err != nil {
		t.Fatal(err)
	}
	if !sameContent(dir) {
		t.Error("a damaged copy was not repaired")
	}
	// No temporary directory is left behind.
	ents, _ := os.ReadDir(base)
	if len(ents) != 1 {
		t.Errorf("%s holds %d entries", base, len(ents))
	}
	// Concurrent extractions agree.
	base2 := filepath.Join(t.TempDir(), "cache")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = extractTo(base2, filepath.Join(base2, "python-y")) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if !sameContent(filepath.Join(base2, "python-y")) {
		t.Error("concurrent extraction")
	}
	// A directory others can write is refused.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	if err := extractTo(open, filepath.Join(open, "python-z")); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("world-writable parent: %v", err)
	}
	d, err := PackageDir()
	if err != nil {
		t.Fatal(err)
	}
	if !sameContent(d) {
		t.Errorf("PackageDir %s", d)
	}
	if d2, err := PackageDir(); err != nil || d2 != d {
		t.Errorf("PackageDir again: %s, %v", d2, err)
	}
}
