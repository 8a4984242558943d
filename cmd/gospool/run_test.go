package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/worker"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// recordCmd is a --spooler-exec command that stores each task's stdin as
// $OUT/$GOSPOOL_TASK_NAME.json and its environment as .env (written
// first, the .json renamed into place last). A task with a var "fail" fails
// on its first attempt.
const recordCmd = `doc=$(cat)
case "$doc" in *'"fail"'*) [ "$GOSPOOL_ATTEMPT" -ge 2 ] || exit 1;; esac
printf '%s %s %s\n' "$GOSPOOL_ATTEMPT" "$GOSPOOL_TASK_PATH" "$GOSPOOL_SPOOLER_DIR" > "$OUT/$GOSPOOL_TASK_NAME.env"
printf '%s\n' "$doc" > "$OUT/$GOSPOOL_TASK_NAME.tmp"
mv "$OUT/$GOSPOOL_TASK_NAME.tmp" "$OUT/$GOSPOOL_TASK_NAME.json"`

// ranTask is one task the recordCmd ran.
type ranTask struct {
	name    string // GOSPOOL_TASK_NAME
	raw     string // its stdin
	doc     task.Document
	attempt int
	path    string // GOSPOOL_TASK_PATH
	dir     string // GOSPOOL_SPOOLER_DIR
}

// waitRan waits until n tasks have run under recordCmd, and returns them by
// their "id" var.
func waitRan(t *testing.T, out string, n int, p *runProc) map[string]ranTask {
	t.Helper()
	var names []string
	testproc.WaitFor(t, 10*time.Second, strconv.Itoa(n)+" tasks run", func() bool {
		names, _ = filepath.Glob(filepath.Join(out, "*.json"))
		return len(names) >= n
	}, p.stderr)
	ran := map[string]ranTask{}
	for _, name := range names {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		rt := ranTask{name: strings.TrimSuffix(filepath.Base(name), ".json"), raw: string(raw)}
		if err := json.Unmarshal(raw, &rt.doc); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		env, err := os.ReadFile(strings.TrimSuffix(name, ".json") + ".env")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(env))
		if len(f) != 3 {
			t.Fatalf("env %q", env)
		}
		rt.attempt, _ = strconv.Atoi(f[0])
		rt.path, rt.dir = f[1], f[2]
		id := ""
		for _, kv := range rt.doc.Vars {
			if string(kv[0]) == "id" {
				id = string(kv[1])
			}
		}
		if _, dup := ran[id]; dup {
			t.Errorf("task id=%s ran twice", id)
		}
		ran[id] = rt
	}
	if len(ran) != n {
		t.Fatalf("%d tasks ran, want %d", len(ran), n)
	}
	return ran
}

// The whole path: gospool run serves a directory, gospool spool hands it
// tasks through the ring, the command gets them as JSON, a failing task is
// retried, stats shows the counts, SIGTERM stops it with status 0.
func TestRunSpoolEndToEnd(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool") // run creates it
	out := t.TempDir()
	p := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", recordCmd, "--spooler-retry-delay", "0.05")
	waitLive(t, dir, p)
	real := realDir(t, dir)
	ringPath := filepath.Join(real, ring.FileName)

	spool := func(args ...string) {
		t.Helper()
		args = append([]string{"spool", "--spooler", dir}, args...)
		r := gospool(t, args...).mustSucceed(t, args...)
		if r.stdout != "ring "+ringPath+"\n" {
			t.Fatalf("gospool %q printed %q, want the task in the ring %s", args, r.stdout, ringPath)
		}
	}
	spool("task=resize", "id=1", "size=128x128")
	spool("id=2", "dup=a", "dup=b", "empty=")
	spool("id=3", "body=hello body")
	spool("id=4", "fail=once")
	ran := waitRan(t, out, 4, p)

	for id, vars := range map[string]string{
		"1": `[["task","resize"],["id","1"],["size","128x128"]]`,
		"2": `[["id","2"],["dup","a"],["dup","b"],["empty",""]]`,
		"3": `[["id","3"]]`,
		"4": `[["id","4"],["fail","once"]]`,
	} {
		rt := ran[id]
		if id == "4" {
			// Retried: it ran from the spool file the retry was written to.
			if rt.attempt != 2 || !strings.HasPrefix(rt.name, spoolfile.Prefix) || rt.path != filepath.Join(real, rt.name) {
				t.Errorf("task 4: attempt %d, name %s, path %s; want attempt 2 from a spool file", rt.attempt, rt.name, rt.path)
			}
		} else if rt.attempt != 1 || !strings.HasPrefix(rt.name, "ring:") || rt.path != ringPath+"#"+strings.TrimPrefix(rt.name, "ring:") {
			t.Errorf("task %s: attempt %d, name %s, path %s; want attempt 1 from the ring", id, rt.attempt, rt.name, rt.path)
		}
		if rt.dir != real {
			t.Errorf("task %s: GOSPOOL_SPOOLER_DIR %s, want %s", id, rt.dir, real)
		}
		body, b64 := []byte(nil), ""
		if id == "3" {
			body = []byte("hello body")
			b64 = `,"body_base64":"` + base64.StdEncoding.EncodeToString(body) + `"`
		}
		want := `{"path":"` + rt.path + `","vars":` + vars + `,"body_len":` + strconv.Itoa(len(body)) + `,"body_sha256":"` + sha(body) + `"` + b64 + "}\n"
		if rt.raw != want {
			t.Errorf("task %s got on stdin:\n%s\nwant\n%s", id, rt.raw, want)
		}
	}

	// stats --json agrees: 3 tasks done from the ring plus the retry from
	// its file, one retried after a failure, one spooler attached.
	var st struct {
		Dir  string
		Ring struct {
			Spooled, Spilled, Done, Retried, Failed, Ignored, Corrupt uint64
			InFlight                                                  uint64 `json:"in_flight"`
			Ready, Claimed                                            int
			Fill                                                      float64
			Lanes                                                     []map[string]any
			Consumers                                                 []struct {
				Entry, Pid int
				Tasks      uint64
				Since      time.Time
			}
		}
		Files struct{ Due, Scheduled int }
	}
	testproc.WaitFor(t, 5*time.Second, "the counters settle", func() bool {
		r := gospool(t, "stats", "--spooler", dir, "--json").mustSucceed(t)
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("%v in %s", err, r.stdout)
		}
		return st.Ring.Done == 4
	}, p.stderr)
	rs := st.Ring
	if st.Dir != dir || rs.Spooled != 4 || rs.Spilled != 0 || rs.Retried != 1 || rs.Failed != 1 || rs.Ignored != 0 ||
		rs.Corrupt != 0 || rs.InFlight != 0 || rs.Ready != 0 || rs.Claimed != 0 || st.Files.Due != 0 || st.Files.Scheduled != 0 {
		t.Errorf("stats --json: %+v", st)
	}
	spid := spoolerPid(t, p)
	if len(rs.Consumers) != 1 || rs.Consumers[0].Pid != spid || time.Since(rs.Consumers[0].Since) > time.Minute {
		t.Errorf("stats --json consumers: %+v, want one, pid %d", rs.Consumers, spid)
	}
	text := gospool(t, "stats", "--spooler", dir).mustSucceed(t).stdout
	for _, want := range []string{"spool directory " + dir + "\n", "ring " + filepath.Join(dir, ring.FileName), "  done       4\n",
		"  retried    1\n", "entry 0: pid " + strconv.Itoa(spid), "spool files: 0 due now, 0 scheduled for later\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("stats does not say %q:\n%s", want, text)
		}
	}

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	logs := p.stderr.String()
	for _, want := range []string{"spawned the gospool spooler on dir " + real + " with pid " + strconv.Itoa(spid), "exec: exit status 1", "SIGTERM received", "goodbye to gospool."} {
		if !strings.Contains(logs, want) {
			t.Errorf("log does not say %q:\n%s", want, logs)
		}
	}
	// No spooler now: spool writes a file again.
	r := gospool(t, "spool", "--spooler", dir, "id=5").mustSucceed(t)
	if !strings.HasPrefix(r.stdout, filepath.Join(real, spoolfile.Prefix)) {
		t.Errorf("spool with the spooler stopped printed %q, want a spool file", r.stdout)
	}
}

// Tasks spooled while no spooler runs wait in files; gospool run started
// later runs them, also the ones scheduled with --at, when they are due.
func TestRunPicksUpFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := t.TempDir()
	real := realDir(t, dir)
	var paths []string
	for _, args := range [][]string{{"id=1"}, {"id=2", "body=x"}, {"id=3", "--at", strconv.FormatInt(time.Now().Unix()+1, 10)}} {
		path := spoolFile(t, cmdOpts{}, dir, args...)
		if !strings.HasPrefix(path, filepath.Join(real, spoolfile.Prefix)) {
			t.Fatalf("spool printed %q, want a file in %s", path, real)
		}
		paths = append(paths, path)
	}
	p := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", recordCmd, "--spooler-quiet")
	ran := waitRan(t, out, 3, p)
	for i, path := range paths {
		rt := ran[strconv.Itoa(i+1)]
		if rt.path != path || rt.doc.Path != path || rt.name != filepath.Base(path) {
			t.Errorf("task %d ran as %s (%s), want %s", i+1, rt.path, rt.name, path)
		}
	}
	testproc.WaitFor(t, 5*time.Second, "the spool files removed", func() bool {
		for _, path := range paths {
			if _, err := os.Stat(path); err == nil {
				return false
			}
		}
		return true
	}, p.stderr)
	if strings.Contains(p.stderr.String(), "managing request") {
		t.Errorf("--spooler-quiet still logs each task:\n%s", p.stderr)
	}
	// An --at task spooled while the spooler runs goes to a file and runs
	// when due, without waiting for the 30 s scan.
	r := gospool(t, "spool", "--spooler", dir, "id=4", "--at", strconv.FormatFloat(float64(time.Now().UnixMilli())/1000+1.5, 'f', 3, 64)).mustSucceed(t)
	if !strings.HasPrefix(r.stdout, filepath.Join(real, spoolfile.Prefix)) {
		t.Errorf("a task with a future --at went to %q, want a file", r.stdout)
	}
	waitRan(t, out, 4, p)
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0", code)
	}
}

// --spooler-max-tasks N: the spooler process exits after N tasks and the
// master starts a new one, which runs the rest, as uWSGI recycles it.
func TestRunMaxTasks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := t.TempDir()
	for i := 1; i <= 3; i++ {
		spoolFile(t, cmdOpts{}, dir, "id="+strconv.Itoa(i))
	}
	p := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", recordCmd, "--spooler-max-tasks", "2")
	waitRan(t, out, 3, p)
	logs := p.stderr.String()
	for _, want := range []string{"maximum number of tasks reached (2) recycling", "OOOPS the spooler is no more...trying respawn..."} {
		if !strings.Contains(logs, want) {
			t.Errorf("log does not say %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "spawned the gospool spooler"); n != 2 {
		t.Errorf("%d spooler processes spawned, want 2:\n%s", n, logs)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

// --spooler-harakiri kills a command that runs too long; the task is retried.
func TestRunHarakiri(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := t.TempDir()
	cmd := `[ "$GOSPOOL_ATTEMPT" -ge 2 ] || exec sleep 30
` + recordCmd
	p := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", cmd,
		"--spooler-harakiri", "1", "--spooler-retry-delay", "0.05")
	waitLive(t, dir, p)
	start := time.Now()
	gospool(t, "spool", "--spooler", dir, "id=1").mustSucceed(t)
	if rt := waitRan(t, out, 1, p)["1"]; rt.attempt != 2 {
		t.Errorf("attempt %d, want 2", rt.attempt)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: harakiri did not cut the first attempt short", d)
	}
	if logs := p.stderr.String(); !strings.Contains(logs, "*** HARAKIRI ON THE SPOOLER (pid: "+strconv.Itoa(spoolerPid(t, p))+") *** task ring:") {
		t.Errorf("no harakiri line:\n%s", logs)
	}
	if code := p.stop(t, syscall.SIGQUIT); code != 0 {
		t.Errorf("exit %d after SIGQUIT, want 0", code)
	}
}

// A shutdown (SIGINT; SIGTERM would let the command finish) stops the
// running command; its task runs again next time.
func TestRunShutdownRetriesRunningTask(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := t.TempDir()
	started := filepath.Join(out, "started")
	p := startRun(t, []string{"OUT=" + out, "STARTED=" + started}, "--spooler", dir, "--spooler-exec", `touch "$STARTED"; exec sleep 30`,
		"--spooler-retry-delay", "0.05")
	waitLive(t, dir, p)
	gospool(t, "spool", "--spooler", dir, "id=1").mustSucceed(t)
	testproc.WaitFor(t, 5*time.Second, "the command started", func() bool { _, err := os.Stat(started); return err == nil }, p.stderr)
	start := time.Now()
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0; stderr:\n%s", code, p.stderr)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v: the command did not get SIGTERM", d)
	}
	// The task waits in a retry file for the next spooler.
	p2 := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", recordCmd, "--spooler-retry-delay", "0.05")
	if rt := waitRan(t, out, 1, p2)["1"]; rt.attempt != 2 {
		t.Errorf("attempt %d after the shutdown, want 2", rt.attempt)
	}
	p2.stop(t, syscall.SIGTERM)
}

// --socket: a remote client's task is spooled and run; an unknown
// `spooler` target is refused.
func TestRunRemoteSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := t.TempDir()
	sock := filepath.Join(t.TempDir(), "spool.sock")
	p := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", recordCmd, "--socket", sock)
	waitLive(t, dir, p)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket; stderr:\n%s", p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := worker.SpoolRemote(ctx, sock, task.New("id", "remote-1")); err != nil {
		t.Fatalf("SpoolRemote: %v\n%s", err, p.stderr)
	}
	if rt := waitRan(t, out, 1, p)["remote-1"]; rt.attempt != 1 {
		t.Errorf("remote task: %+v", rt)
	}
	err := worker.SpoolRemote(ctx, sock, task.New("id", "lost", "spooler", "/nowhere"))
	if !errors.Is(err, worker.ErrRefused) {
		t.Errorf("unknown spooler target: %v, want ErrRefused", err)
	}
}

// gospool run killed with SIGKILL while a task's command runs: the command
// keeps the task's claim (the ring consumer entry for a ring task, the file
// lock for a file task), so a new gospool run does not start the task again
// until that command has ended; then it runs it again (at least once).
func TestKilledRunDoesNotOverlapItsCommand(t *testing.T) {
	for _, viaFile := range []bool{false, true} {
		name := "ring"
		if viaFile {
			name = "file"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out := t.TempDir()
			// Attempt 1 runs 1.5 s in a grandchild of the shell, then marks
			// its end; a later run only marks its start.
			cmd := `if [ ! -e "$OUT/first-started" ]; then touch "$OUT/first-started"; (touch "$OUT/first-holding"; sleep 1.5; touch "$OUT/first-ended") & wait; else touch "$OUT/second-started.$(date +%s%N)"; fi`
			first := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", cmd, "--spooler-frequency", "0.2")
			waitLive(t, dir, first)
			args := []string{"spool", "--spooler", dir, "id=1"}
			if viaFile {
				// No live spooler at spool time: the task goes to a file.
				first.stop(t, syscall.SIGTERM)
				gospool(t, args...).mustSucceed(t)
				first = startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", cmd, "--spooler-frequency", "0.2")
			} else {
				r := gospool(t, args...).mustSucceed(t)
				if !strings.HasPrefix(r.stdout, "ring ") {
					t.Fatalf("not into the ring: %q", r.stdout)
				}
			}
			// Kill gospool once the grandchild that outlives it is running
			// (before that, the shell dies with gospool and nothing runs).
			testproc.WaitFor(t, 10*time.Second, "first attempt started", func() bool {
				_, err := os.Stat(filepath.Join(out, "first-holding"))
				return err == nil
			}, first.stderr)
			// Not first.stop: its Wait also waits for the orphaned command,
			// which still holds gospool's stdout.
			if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			testproc.WaitFor(t, 5*time.Second, "the killed gospool is gone", func() bool {
				return syscall.Kill(first.cmd.Process.Pid, 0) == syscall.ESRCH
			})
			second := startRun(t, []string{"OUT=" + out}, "--spooler", dir, "--spooler-exec", cmd, "--spooler-frequency", "0.2")
			testproc.WaitFor(t, 15*time.Second, "the task ran again after the orphaned command ended", func() bool {
				m, _ := filepath.Glob(filepath.Join(out, "second-started.*"))
				return len(m) > 0
			}, second.stderr)
			ended, err := os.Stat(filepath.Join(out, "first-ended"))
			if err != nil {
				t.Fatalf("the task ran again while the first command still ran (it never ended)\nfirst gospool:\n%s\nsecond gospool:\n%s", first.stderr, second.stderr)
			}
			m, _ := filepath.Glob(filepath.Join(out, "second-started.*"))
			again, _ := os.Stat(m[0])
			t.Logf("first ended %v, second started %v", ended.ModTime(), again.ModTime())
			if again.ModTime().Before(ended.ModTime()) {
				t.Fatalf("the task ran again at %v, before the first command ended at %v", again.ModTime(), ended.ModTime())
			}
		})
	}
}

// --ini takes the spooler options of a uWSGI ini file, warns once about
// what it does not use, and lets flags win.
func TestRunIni(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	iniPath := filepath.Join(t.TempDir(), "app.ini")
	os.WriteFile(iniPath, []byte(`[uwsgi]
plugins = python3
master = true
processes = 4
spooler = %d/spool
spooler-frequency = 0.5
spooler-quiet = true
spooler-max-tasks = 2
wsgi-file = app.py
wsgi-file = app2.py
spooler-proceses = 3
`), 0o644)
	spoolDir := filepath.Join(filepath.Dir(iniPath), "spool")
	os.Mkdir(spoolDir, 0o750)
	for i := 1; i <= 3; i++ {
		spoolFile(t, cmdOpts{}, spoolDir, "id="+strconv.Itoa(i))
	}
	p := startRun(t, []string{"OUT=" + out}, "--ini", iniPath, "--spooler-exec", recordCmd)
	waitRan(t, out, 3, p)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
	stderr := p.stderr.String()
	if n := strings.Count(stderr, "maximum number of tasks reached (2)"); n != 1 {
		t.Errorf("the spooler recycled %d times, want once (spooler-max-tasks = 2 from the ini)\n%s", n, stderr)
	}
	if strings.Contains(stderr, "managing request") {
		t.Errorf("spooler-quiet from the ini was not applied:\n%s", stderr)
	}
	if n := strings.Count(stderr, "wsgi-file is not used"); n != 1 {
		t.Errorf("wsgi-file warned %d times, want once:\n%s", n, stderr)
	}
	if !strings.Contains(stderr, "processes = 4: gospool runs no Python app itself") || strings.Contains(stderr, "plugins") {
		t.Errorf("warnings:\n%s", stderr)
	}
	if !strings.Contains(stderr, "app.ini:11: spooler-proceses is not used by gospool run (uWSGI 2.0 ignores \"spooler-proceses\" too; did you mean \"spooler-processes\"?)") {
		t.Errorf("no did-you-mean for the typo spooler-proceses:\n%s", stderr)
	}
}

// A bad ini file: every mistake in it, one line each in file order, exit 2
// before anything starts; a missing one is named once.
func TestRunIniErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ini")
	inc := filepath.Join(dir, "inc.ini")
	os.WriteFile(bad, []byte("[uwsgi]\nspooler = "+dir+"/spool\nspooler-max-tasks = many\nspooler-proceses = 2\ninclude = "+inc+"\nmaster = maybe\nfor = x\n"), 0o644)
	os.WriteFile(inc, []byte("[uwsgi]\nharakiri = -1\nif-env = HOME\n"), 0o644)
	r := gospool(t, "run", "--ini", bad, "--spooler-exec", "true")
	want := strings.Join([]string{
		`gospool run: ` + bad + `:3: spooler-max-tasks = "many": want a whole number`,
		`gospool run: ` + bad + `:4: spooler-proceses = "2": not used (uWSGI 2.0 ignores "spooler-proceses" too; did you mean "spooler-processes"?)`,
		`gospool run: ` + bad + `:6: master = "maybe": want true or false (also yes/no, on/off, 1/0)`,
		`gospool run: ` + bad + `:7: for = "x": uWSGI config logic (for, if-*, endif, endfor) is not supported`,
		`gospool run: ` + inc + `:2: harakiri = "-1": must not be negative`,
		`gospool run: ` + inc + `:3: if-env = "HOME": uWSGI config logic (for, if-*, endif, endfor) is not supported`,
	}, "\n") + "\n"
	if r.code != 2 || r.stderr != want || r.stdout != "" {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and:\n%s", r.code, r.stderr, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "spool")); err == nil {
		t.Error("a refused ini created its spool directory")
	}

	missing := filepath.Join(dir, "nope.ini")
	for _, spec := range []string{missing, missing + ":prod"} {
		r = gospool(t, "run", "--ini", spec, "--spooler-exec", "true")
		if want := "gospool run: --ini " + missing + ": no such file or directory\n"; r.code != 2 || r.stderr != want {
			t.Errorf("--ini %s: exit %d, stderr %q; want exit 2 and %q", spec, r.code, r.stderr, want)
		}
	}
	r = gospool(t, "run", "--ini", bad+":prod", "--spooler-exec", "true")
	if want := "gospool run: " + bad + ": no [prod] section\n"; r.code != 2 || r.stderr != want {
		t.Errorf("--ini %s:prod: exit %d, stderr %q; want exit 2 and %q", bad, r.code, r.stderr, want)
	}
}

// spoolerPid is the pid of the last spooler process the master spawned.
func spoolerPid(t *testing.T, p *runProc) int {
	t.Helper()
	logs := p.stderr.String()
	i := strings.LastIndex(logs, "spawned the gospool spooler on dir ")
	if i < 0 {
		t.Fatalf("no spooler spawned:\n%s", logs)
	}
	line, _, _ := strings.Cut(logs[i:], "\n")
	pid, err := strconv.Atoi(line[strings.LastIndex(line, " ")+1:])
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return pid
}

// The README's session: --spooler-exec cat prints each task as the one
// line of JSON it reads on stdin, newline-terminated, and nothing more (no
// blank line: the line already ends in "\n").
func TestRunExecCatPrintsOneLinePerTask(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool")
	p := startRun(t, nil, "--spooler", dir, "--spooler-exec", "cat", "--spooler-quiet")
	waitLive(t, dir, p)
	gospool(t, "spool", "--spooler", dir, "task=resize", "image=cat.jpg").mustSucceed(t)
	gospool(t, "spool", "--spooler", dir, "task=later", "body=hi").mustSucceed(t)
	testproc.WaitFor(t, 10*time.Second, "two tasks printed", func() bool {
		return strings.Count(p.stdout.String(), "\n") >= 2
	}, p.stderr)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
	ringPath := filepath.Join(realDir(t, dir), ring.FileName)
	empty := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	want := `{"path":"` + ringPath + `#L:S","vars":[["task","resize"],["image","cat.jpg"]],"body_len":0,"body_sha256":"` + empty + `"}` + "\n" +
		`{"path":"` + ringPath + `#L:S","vars":[["task","later"]],"body_len":2,"body_sha256":"8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4","body_base64":"aGk="}` + "\n"
	// The lane and sequence number depend on which lane each producer got.
	got := regexp.MustCompile(`#[0-9]+:[0-9]+"`).ReplaceAllString(p.stdout.String(), `#L:S"`)
	if got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
}

// A service account whose home cannot be written: --spooler-import puts
// the Python package under $TMPDIR/gospool-UID instead, says nothing
// about it, and the tasks run.
func TestRunSpoolerImportUnwritableHome(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Tests run as root, which permissions do not stop: a path under a
	// regular file cannot be made by anyone (ENOTDIR).
	env := append(pyTasksEnv(t, out), "HOME="+filepath.Join(file, "home"), "XDG_CACHE_HOME=", "TMPDIR="+tmp)
	dir := t.TempDir()
	p := startRun(t, env, "--spooler", dir, "--spooler-import", "udtasks")
	waitLive(t, dir, p)
	gospool(t, "spool", "--spooler", dir, "ud_spool_func=ctl", "do=ok").mustSucceed(t)
	waitPyCall(t, out, p, "ctl", "do", "ok")
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
	extracted, _ := filepath.Glob(filepath.Join(tmp, "gospool-"+strconv.Itoa(os.Getuid()), "python-*", "gospool", "runner.py"))
	if len(extracted) != 1 {
		t.Errorf("the package is not under $TMPDIR/gospool-UID: %v", extracted)
	}
	for _, noise := range []string{"a-file", "cache", "not a directory", "warning"} {
		if strings.Contains(p.stderr.String(), noise) {
			t.Errorf("stderr mentions %q:\n%s", noise, p.stderr)
		}
	}
}
