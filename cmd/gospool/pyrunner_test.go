package main

// gospool run --spooler-import: Python task modules written for uWSGI's
// spooler (python/testdata/pytasks: uwsgi and uwsgidecorators only, no
// gospool import) run unchanged, on spool files written by real
// uwsgidecorators and on tasks from gospool spool.

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
)

// pyTasksEnv is the environment that makes python/testdata/pytasks
// importable and has its modules record their calls in out.
func pyTasksEnv(t *testing.T, out string) []string {
	t.Helper()
	testproc.NeedPython3(t)
	mods, err := filepath.Abs(filepath.Join("..", "..", "python", "testdata", "pytasks"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{"PYTHONPATH=" + mods, "PYTASKS_OUT=" + out, "PYTHONDONTWRITEBYTECODE=1"}
}

// pyCall is one call a pytasks function recorded.
type pyCall map[string]any

func (c pyCall) s(k string) string { v, _ := c[k].(string); return v }

func pyCalls(t *testing.T, out string) []pyCall {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "calls.jsonl"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var calls []pyCall
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c pyCall
		if json.Unmarshal(sc.Bytes(), &c) == nil { // a line being written is skipped
			calls = append(calls, c)
		}
	}
	return calls
}

// waitPyCall waits for a call of fn whose key holds want, and returns it.
func waitPyCall(t *testing.T, out string, p *runProc, fn, key, want string) pyCall {
	t.Helper()
	var found pyCall
	testproc.WaitFor(t, 30*time.Second, fn+" "+key+"="+want, func() bool {
		for _, c := range pyCalls(t, out) {
			if c.s("func") == fn && strings.Contains(c.s(key), want) {
				found = c
				return true
			}
		}
		return false
	}, p.stderr)
	return found
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The whole path for a Python app leaving uWSGI: spool files that real
// uwsgidecorators wrote and tasks from gospool spool run in the app's
// unchanged task module; a task that raises is retried; a binary body
// reaches the function as bytes.
func TestRunSpoolerImport(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	env := pyTasksEnv(t, out)
	src, err := os.ReadFile(filepath.Join("..", "..", "python", "testdata", "pytasks", "udtasks.py"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(src), "import gospool") || strings.Contains(string(src), "from gospool") {
		t.Fatal("udtasks.py must not import gospool")
	}
	dir := t.TempDir()
	// Files written by real uwsgidecorators, before the spooler starts.
	ud := filepath.Join("..", "..", "python", "testdata", "uwsgi-decorators", "files")
	for _, c := range []string{"spool-dict", "args", "args-binary-body", "spool-body"} {
		ents, err := os.ReadDir(filepath.Join(ud, c))
		if err != nil || len(ents) != 1 {
			t.Fatalf("%s: %v %v", c, ents, err)
		}
		copyFile(t, filepath.Join(ud, c, ents[0].Name()), filepath.Join(dir, ents[0].Name()))
	}
	shared := filepath.Join("..", "..", "spooler", "spoolfile", "testdata", "uwsgi-spool", "05-decorator-args")
	ents, err := os.ReadDir(shared)
	if err != nil || len(ents) != 1 {
		t.Fatalf("%s: %v %v", shared, ents, err)
	}
	copyFile(t, filepath.Join(shared, ents[0].Name()), filepath.Join(dir, ents[0].Name()))

	p := startRun(t, env, "--spooler", dir, "--spooler-import", "udtasks", "--spooler-concurrency", "2",
		"--spooler-retry-delay", "0.05")
	waitLive(t, dir, p)

	c := waitPyCall(t, out, p, "hello", "env", "'name': 'world'")
	if got, want := c.s("env"), `{'ud_spool_func': 'hello', 'ud_spool_ret': '-2', 'name': 'world', 'n': '1'}`; got != want {
		t.Errorf("hello got %s, want %s", got, want)
	}
	c = waitPyCall(t, out, p, "send", "args", "alice")
	if c.s("args") != `('alice@example.com', 'hello')` || c.s("kwargs") != `{'retries': 5, 'tags': ['a', 'b']}` {
		t.Errorf("send: %v", c)
	}
	// uwsgidecorators itself retries this one forever (UnicodeDecodeError).
	waitPyCall(t, out, p, "send", "args", "carol")
	c = waitPyCall(t, out, p, "send_mail", "args", "alice")
	if c.s("kwargs") != `{'retries': 5, 'tags': ['a', 'b']}` {
		t.Errorf("send_mail: %v", c)
	}
	c = waitPyCall(t, out, p, "hello", "env", "plain text body")
	if !strings.HasSuffix(c.s("env"), `'k': 'v', 'body': 'plain text body'}`) {
		t.Errorf("hello with a body: %s", c.s("env"))
	}

	// Tasks from gospool spool: through the ring, a binary body, a retry.
	body := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(body, []byte{0, 1, 0xff, 'x'}, 0o600); err != nil {
		t.Fatal(err)
	}
	gospool(t, "spool", "--spooler", dir, "ud_spool_func=ctl", "do=ok", "id=s1").mustSucceed(t)
	gospool(t, "spool", "--spooler", dir, "--body-file", body, "ud_spool_func=ctl", "do=ok", "id=b1").mustSucceed(t)
	gospool(t, "spool", "--spooler", dir, "ud_spool_func=ctl", "do=flaky", "id=f1").mustSucceed(t)
	gospool(t, "spool", "--spooler", dir, "ud_spool_func=ctl", "do=print", "msg=from-the-task").mustSucceed(t)
	c = waitPyCall(t, out, p, "ctl", "body", `b'\x00\x01\xffx'`)
	if !strings.HasPrefix(c.s("task"), "ring:") {
		t.Errorf("a task through the ring is named %q", c.s("task"))
	}
	testproc.WaitFor(t, 30*time.Second, "the flaky task run twice", func() bool {
		n := 0
		for _, c := range pyCalls(t, out) {
			if c.s("do") == "flaky" {
				n++
			}
		}
		return n == 2
	}, p.stderr)
	testproc.WaitFor(t, 10*time.Second, "the retry's traceback and the task's prints in the log", func() bool {
		s := p.stderr.String()
		return strings.Contains(s, "RuntimeError: flaky: first run fails") && strings.Contains(s, "STDERR from-the-task") &&
			strings.Contains(p.stdout.String(), "PRINTED from-the-task")
	}, p.stderr, p.stdout)

	// Every task but the one uwsgidecorators cannot run is done: gone.
	testproc.WaitFor(t, 30*time.Second, "the spool files done", func() bool {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "uwsgi_spoolfile_on_") {
				return false
			}
		}
		return true
	}, p.stderr)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, p.stderr)
	}
}

// The ini's spooler-import is taken (the raw uwsgi.spooler = f API here),
// and --spooler-exec given on the command line makes it unused, with a
// warning.
func TestRunSpoolerImportIni(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	env := pyTasksEnv(t, out)
	dir := t.TempDir()
	ini := filepath.Join(t.TempDir(), "app.ini")
	if err := os.WriteFile(ini, []byte("[uwsgi]\nmaster = true\nspooler = "+dir+"\nspooler-import = plaintasks\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startRun(t, env, "--ini", ini)
	waitLive(t, dir, p)
	gospool(t, "spool", "--spooler", dir, "ret=-2", "k=v").mustSucceed(t)
	c := waitPyCall(t, out, p, "plain", "env", "b'k': b'v'")
	if c["spooler"] != true {
		t.Errorf("uwsgi.i_am_the_spooler() = %v", c["spooler"])
	}
	if strings.Contains(p.stderr.String(), "spooler-import") {
		t.Errorf("a warning about spooler-import:\n%s", p.stderr)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}

	// --spooler-exec wins over the ini's spooler-import.
	p = startRun(t, env, "--ini", ini, "--spooler-exec", "true")
	waitLive(t, dir, p)
	testproc.WaitFor(t, 10*time.Second, "the warning", func() bool {
		return strings.Contains(p.stderr.String(), "spooler-import: not used, --spooler-exec runs the tasks")
	}, p.stderr)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// A module that does not import: its tasks are kept and retried, and the
// log says why; a missing interpreter is an error at start.
func TestRunSpoolerImportErrors(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	env := pyTasksEnv(t, out)
	dir := t.TempDir()
	p := startRun(t, env, "--spooler", dir, "--spooler-import", "badimport", "--spooler-retry-delay", "0.05")
	waitLive(t, dir, p)
	gospool(t, "spool", "--spooler", dir, "k=v").mustSucceed(t)
	testproc.WaitFor(t, 30*time.Second, "the import error in the log", func() bool {
		s := p.stderr.String()
		return strings.Contains(s, "RuntimeError: badimport: this module fails on purpose") &&
			strings.Contains(s, "the --spooler-import modules failed to import")
	}, p.stderr)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
	// The task is still there, for when the module is fixed: in the ring,
	// or in a retry file if the spooler took it before the stop.
	if ls := gospool(t, "ls", "--spooler", dir).mustSucceed(t); strings.Count(ls.stdout, "\n") != 1 {
		t.Errorf("gospool ls, want the one task:\n%s", ls.stdout)
	}

	r := gospool(t, "run", "--spooler", dir, "--spooler-import", "udtasks", "--spooler-python", filepath.Join(dir, "nopython"))
	if r.code != 1 {
		t.Fatalf("missing interpreter: exit %d, stderr %q", r.code, r.stderr)
	}
	oneErrorLine(t, r, "gospool run: ")
	if !strings.Contains(r.stderr, "--spooler-import needs a Python interpreter") || !strings.Contains(r.stderr, "nopython") {
		t.Errorf("stderr %q", r.stderr)
	}
}

// --spooler-harakiri kills a Python task's runner (and the task is
// retried); SIGINT stops a running one, which runs again next time; no
// runner outlives gospool run.
func TestRunSpoolerImportHarakiriAndShutdown(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	env := pyTasksEnv(t, out)
	dir := t.TempDir()
	p := startRun(t, env, "--spooler", dir, "--spooler-import", "udtasks", "--spooler-harakiri", "1",
		"--spooler-retry-delay", "3600")
	waitLive(t, dir, p)
	gospool(t, "spool", "--spooler", dir, "ud_spool_func=ctl", "do=hang", "id=h1").mustSucceed(t)
	c := waitPyCall(t, out, p, "ctl", "do", "hang")
	pid := int(c["pid"].(float64))
	// The runner's own clock (1 s from when it got the task) normally fires
	// first; on a loaded machine, where starting the runner took over a
	// second, the spooler's watchdog (2 s from when it took the task) may
	// win. Either way the runner is killed and the task retried.
	testproc.WaitFor(t, 30*time.Second, "the harakiri", func() bool {
		s := p.stderr.String()
		return strings.Contains(s, "*** HARAKIRI ON THE SPOOLER (pid: ") &&
			(strings.Contains(s, "its Python runner was killed") || strings.Contains(s, "its runner was killed"))
	}, p.stderr)
	testproc.WaitFor(t, 10*time.Second, "the hung runner gone", func() bool { return syscall.Kill(pid, 0) != nil }, p.stderr)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}

	out2 := t.TempDir()
	env = pyTasksEnv(t, out2)
	p = startRun(t, env, "--spooler", dir, "--spooler-import", "udtasks")
	waitLive(t, dir, p)
	gospool(t, "spool", "--spooler", dir, "ud_spool_func=ctl", "do=waitfor", "mark=m2", "id=h2").mustSucceed(t)
	c = waitPyCall(t, out2, p, "ctl", "do", "waitfor")
	pid = int(c["pid"].(float64))
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit %d after SIGINT", code)
	}
	testproc.WaitFor(t, 10*time.Second, "the runner gone with gospool run", func() bool { return syscall.Kill(pid, 0) != nil }, p.stderr)

	// The stopped task runs again at the next start (its mark is there now).
	out3 := t.TempDir()
	if err := os.WriteFile(filepath.Join(out3, "mark-m2"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p = startRun(t, pyTasksEnv(t, out3), "--spooler", dir, "--spooler-import", "udtasks", "--spooler-retry-delay", "3600")
	waitPyCall(t, out3, p, "ctl", "do", "waitfor")
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
}
