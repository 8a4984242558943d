package pythonuwsgi_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
)

// README.md is a tutorial and this file's test runs it. The commands are
// README.md's own, marked for the test with an HTML comment (invisible on
// GitHub) before each one:
//
//	<!-- step: NAME -->            run the ```sh block that follows, once
//	<!-- step: NAME, poll -->      run it again until its output matches
//	                               (what a reader does after "a few seconds")
//
// The ```text block that follows a step's ```sh block (prose may come
// between them) is the output the step must print; a step with no ```text
// block must print nothing. Every ```sh block must be a step and every
// ```text block a step's output, so that nothing the README shows escapes
// the test.
//
// Output is compared line by line, in any order (tasks run concurrently),
// blank lines aside, after normalize has replaced what differs from run to
// run (pids, the mktemp directory, spool file names, ring positions,
// durations). A line "..." stands for any number of other lines; without
// one, the output must have exactly the lines shown.
//
// All steps run in one bash, one after the other, as a reader types them
// into one terminal: `cd`, variables and background jobs carry over.

// A step is one marked ```sh block of README.md.
type step struct {
	name    string
	line    int // of the marker in README.md
	poll    bool
	script  string
	want    string
	hasWant bool
}

var stepMarker = regexp.MustCompile(`^<!-- step: ([a-z0-9-]+)(, poll)? -->$`)

// readSteps parses README.md's steps, checking the rules above.
func readSteps(path string) ([]step, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		steps   []step
		names   = map[string]bool{}
		pending *step // a marker seen, its ```sh block not yet
		last    = -1  // the index of the step whose ```text block may follow
		fence   string
		body    strings.Builder
		n       int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		if fence != "" { // inside a fenced block
			if line != "```" {
				body.WriteString(line + "\n")
				continue
			}
			switch fence {
			case "sh":
				pending.script = body.String()
				steps = append(steps, *pending)
				last, pending = len(steps)-1, nil
			case "text":
				steps[last].want, steps[last].hasWant, last = body.String(), true, -1
			}
			fence = ""
			continue
		}
		if m := stepMarker.FindStringSubmatch(line); m != nil {
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: step %s has no ```sh block", path, pending.line, pending.name)
			}
			if names[m[1]] {
				return nil, fmt.Errorf("%s:%d: a second step named %s", path, n, m[1])
			}
			names[m[1]] = true
			pending, last = &step{name: m[1], line: n, poll: m[2] != ""}, -1
			continue
		}
		if strings.HasPrefix(line, "<!-- step") {
			return nil, fmt.Errorf("%s:%d: %q is not a step marker: write <!-- step: NAME --> or <!-- step: NAME, poll -->", path, n, line)
		}
		if !strings.HasPrefix(line, "```") {
			continue
		}
		fence = strings.TrimPrefix(line, "```")
		body.Reset()
		switch {
		case fence == "sh" && pending == nil:
			return nil, fmt.Errorf("%s:%d: a ```sh block with no <!-- step: NAME --> marker before it: every command shown must run in the test", path, n)
		case fence == "text" && last < 0:
			return nil, fmt.Errorf("%s:%d: a ```text block that follows no step: ```text is for a step's output", path, n)
		case fence != "sh" && pending != nil:
			return nil, fmt.Errorf("%s:%d: step %s: the block after its marker is ```%s, not ```sh", path, n, pending.name, fence)
		case fence != "text":
			last = -1 // any other block ends the step
		}
		if fence == "" {
			fence = "none"
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if fence != "" {
		return nil, fmt.Errorf("%s: a ``` block is not closed", path)
	}
	if pending != nil {
		return nil, fmt.Errorf("%s:%d: step %s has no ```sh block", path, pending.line, pending.name)
	}
	return steps, nil
}

// variable are the parts of the output that differ from run to run, and
// what normalize writes in their place.
var variable = []struct {
	re   *regexp.Regexp
	with string
}{
	// mktemp's directory, wherever TMPDIR is
	{regexp.MustCompile(`(/[\w.+-]+)*/tmp\.\w{10}`), "$$EXAMPLE_DIR"},
	// uWSGI's spool file names: host, pid, counter, random, seconds, µs
	{regexp.MustCompile(`uwsgi_spoolfile_on_[\w-]*?(_\d+){5}\b`), "uwsgi_spoolfile_on_HOST_PID_N_R_S_US"},
	{regexp.MustCompile(`ring:\d+:\d+`), "ring:LANE:SEQ"},
	// where the reader's clone is, in tracebacks
	{regexp.MustCompile(`File "[^"]*/examples/python-uwsgi/`), `File ".../examples/python-uwsgi/`},
	{regexp.MustCompile(`pid(=|: | )\d+`), "pid${1}PID"},
	{regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s)\b`), "DURATION"},
	{regexp.MustCompile(`after \d+ seconds`), "after N seconds"},
}

func normalize(line string) string {
	line = strings.TrimRight(line, " \t")
	for _, v := range variable {
		line = v.re.ReplaceAllString(line, v.with)
	}
	return line
}

// outputDiff compares a step's output with the README's; "" when they
// match.
func outputDiff(got, want string) string {
	var gotLines []string
	for _, l := range strings.Split(got, "\n") {
		if strings.TrimSpace(l) != "" {
			gotLines = append(gotLines, normalize(l))
		}
	}
	used := make([]bool, len(gotLines))
	var missing []string
	more := false
	for _, w := range strings.Split(want, "\n") {
		switch strings.TrimSpace(w) {
		case "":
			continue
		case "...":
			more = true
			continue
		}
		w = normalize(w)
		found := false
		for i, g := range gotLines {
			if !used[i] && g == w {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, w)
		}
	}
	var extra []string
	for i, g := range gotLines {
		if !used[i] {
			extra = append(extra, g)
		}
	}
	var diff strings.Builder
	if len(missing) > 0 {
		fmt.Fprintf(&diff, "lines the README shows that the output lacks:\n\t%s\n", strings.Join(missing, "\n\t"))
	}
	if len(extra) > 0 && !more {
		fmt.Fprintf(&diff, "lines the output has that the README does not show (no \"...\" line):\n\t%s\n", strings.Join(extra, "\n\t"))
	}
	if diff.Len() > 0 {
		fmt.Fprintf(&diff, "(both normalized: pids, temporary paths, spool file names, ring positions, durations)")
	}
	return diff.String()
}

// shell is one bash, fed README.md's steps on its standard input.
type shell struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      *os.File // bash's standard input
	out     *testproc.Buffer
	scripts string // where each step's script is written
	exited  chan struct{}
}

func startShell(t *testing.T, dir string, env []string) *shell {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &shell{t: t, in: w, out: &testproc.Buffer{}, scripts: t.TempDir(), exited: make(chan struct{})}
	s.cmd = exec.Command("bash", "--noprofile", "--norc")
	s.cmd.Dir, s.cmd.Env, s.cmd.Stdin = dir, env, r
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	// Its own process group, with the background jobs it starts (they do
	// not get one of their own without job control): killed whole at the
	// end. Pdeathsig if this test dies first; uWSGI's workers and gospool's
	// children die with their masters.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		// What a failed step left running: a Ctrl-C first, for uWSGI and
		// gospool to stop their children, then SIGKILL.
		s.in.Close()
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
		}
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	})
	return s
}

// run runs script in the shell, as `source`, and returns what it printed
// and its exit status.
func (s *shell) run(name, script string, timeout time.Duration) (string, int) {
	s.t.Helper()
	file := filepath.Join(s.scripts, name+".sh")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		s.t.Fatal(err)
	}
	start := len(s.out.String())
	// stdin /dev/null: a command that reads its input must not read the
	// test's next commands.
	fmt.Fprintf(s.in, "source %s </dev/null; printf '\\n@@ step done, exit status %%d\\n' $?\n", file)
	var out string
	var done []int
	testproc.WaitFor(s.t, timeout, "step "+name+" to finish", func() bool {
		out = s.out.String()[start:]
		done = stepDone.FindStringSubmatchIndex(out)
		return done != nil
	}, stringer(func() string { return "the step's output so far:\n" + s.out.String()[start:] }))
	status, _ := strconv.Atoi(out[done[2]:done[3]])
	return out[:done[0]], status
}

// stepDone is what the shell prints after each step.
var stepDone = regexp.MustCompile(`\n@@ step done, exit status (\d+)\n`)

// stringer shows what a function returns in a failure's log.
type stringer func() string

func (f stringer) String() string { return f() }

// TestREADME runs README.md, every step, and checks each step's output.
// Between steps it checks what the README only tells: the tasks of steps
// 1 and 2 ran in gospool's runners, no uWSGI met a busy port, each step
// starts on an empty spool directory (no heartbeat piling up from step to
// step), and at the end nothing is left running, in TMPDIR or in the
// repository.
func TestREADME(t *testing.T) {
	for _, prog := range []string{"uwsgi", "curl", "go", "bash"} {
		testproc.NeedProgram(t, prog, installHint[prog])
	}
	testproc.NeedUWSGIDecorators(t)
	steps, err := readSteps("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) == 0 {
		t.Fatal("README.md has no <!-- step: NAME --> marker: nothing to run")
	}
	// Checks by step name; each must name a step of the README, so that a
	// renamed step cannot silently drop its check.
	checks := map[string]func(t *testing.T, dir string){
		"zero-change-tasks": ranInGospool,
		"one-line-tasks":    ranInGospool,
	}
	for name := range checks {
		if !hasStep(steps, name) {
			t.Fatalf("README.md has no step %s, which this test checks after", name)
		}
	}

	repo, _ := filepath.Abs("../..")
	before, inGit := untracked(repo)
	tmp := t.TempDir()
	env := []string{"TMPDIR=" + tmp, "EXAMPLE_PORT=" + strconv.Itoa(freePort(t))}
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "EXAMPLE_DIR", "EXAMPLE_PORT", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "BASH_ENV", "ENV", "CDPATH":
			// set above or left out: a reader's environment has none of
			// these (and Python writes __pycache__ where it imports
			// from, which .gitignore must cover)
		default:
			env = append(env, kv)
		}
	}
	sh := startShell(t, repo, env)
	dir := "" // $EXAMPLE_DIR, known once the setup step has run
	for _, st := range steps {
		timeout := time.Minute
		if st.name == "setup" {
			timeout = 5 * time.Minute // go build, on a busy machine
		}
		began := time.Now()
		deadline := began.Add(timeout)
		for {
			out, status := sh.run(st.name, st.script, timeout)
			diff := ""
			if st.hasWant {
				diff = outputDiff(out, st.want)
			} else if strings.TrimSpace(out) != "" {
				diff = "the README shows no output, the step printed:\n" + out
			}
			if status == 0 && diff == "" {
				break
			}
			if !st.poll || time.Now().After(deadline) {
				if dir != "" {
					logFiles(t, dir)
				}
				t.Fatalf("README.md:%d: step %s: exit status %d\n%s\nits output:\n%s", st.line, st.name, status, diff, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("step %s: %v", st.name, time.Since(began).Round(time.Millisecond))
		if dir == "" {
			out, _ := sh.run("where", `printf %s "$EXAMPLE_DIR"`, 10*time.Second)
			dir = out
		}
		if dir != "" {
			if log, _ := os.ReadFile(filepath.Join(dir, "uwsgi.log")); strings.Contains(string(log), "Address already in use") {
				t.Fatalf("after step %s: uWSGI could not listen:\n%s", st.name, log)
			}
		}
		if strings.HasSuffix(st.name, "-start") {
			// Nothing queued yet: a spool file here is a task of the step
			// before, a heartbeat that would run on forever.
			if left, _ := filepath.Glob(filepath.Join(dir, "spool", "uwsgi_spoolfile_*")); len(left) > 0 {
				t.Fatalf("after step %s: the spool directory holds tasks of the step before: %v", st.name, left)
			}
		}
		if check := checks[st.name]; check != nil {
			check(t, dir)
		}
	}
	if jobs, _ := sh.run("jobs", "jobs -p", 10*time.Second); strings.TrimSpace(jobs) != "" {
		t.Errorf("after the last step, background jobs still run: %s", jobs)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("after the last step, %s still holds %d file(s) (%s...): the README should remove its directory", tmp, len(left), left[0].Name())
	}
	if after, _ := untracked(repo); inGit && after != before {
		t.Errorf("the README's steps left files in the repository that git does not ignore:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func hasStep(steps []step, name string) bool {
	for _, s := range steps {
		if s.name == name {
			return true
		}
	}
	return false
}

// ranInGospool checks that the tasks of tasks.log ran in gospool's
// runners: not in the spooler uWSGI still starts, on its idle directory.
func ranInGospool(t *testing.T, dir string) {
	t.Helper()
	uw, err := os.ReadFile(filepath.Join(dir, "uwsgi.log"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`spawned the uWSGI spooler on dir \S+ with pid (\d+)`).FindSubmatch(uw)
	if m == nil {
		t.Fatalf("uwsgi.log names no spooler:\n%s", uw)
	}
	for _, l := range outLines(filepath.Join(dir, "tasks.log")) {
		if strings.HasSuffix(l, " pid="+string(m[1])) {
			t.Errorf("%q ran in uWSGI's spooler (pid %s), not in gospool", l, m[1])
		}
	}
}

// logFiles logs the logs of $EXAMPLE_DIR, for a failure.
func logFiles(t *testing.T, dir string) {
	for _, name := range []string{"uwsgi.log", "gospool.log", "tasks.log"} {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			t.Logf("%s:\n%s", name, data)
		}
	}
}

// untracked lists the files git sees as new in the directories the
// README's steps run in (ignored files aside); false outside a git clone.
func untracked(repo string) (string, bool) {
	cmd := exec.Command("git", "status", "--porcelain", "--untracked-files=all", "--", "examples/python-uwsgi", "python", "spool")
	cmd.Dir = repo
	out, err := cmd.Output()
	return string(out), err == nil
}

// The rules readSteps enforces, and how outputs compare.
func TestReadmeRules(t *testing.T) {
	for _, c := range []struct{ readme, err string }{
		{"```sh\nls\n```\n", "no <!-- step: NAME --> marker"},
		{"<!-- step: a -->\n```sh\nls\n```\n\n```ini\nx\n```\n```text\nx\n```\n", "follows no step"},
		{"<!-- step: a -->\ntext\n```bash\nls\n```\n", "is ```bash, not ```sh"},
		{"<!-- step: a -->\n```sh\nls\n```\n<!-- step: a -->\n```sh\nls\n```\n", "a second step named a"},
		{"<!-- step a -->\n", "is not a step marker"},
		{"<!-- step: a -->\n\n", "step a has no ```sh block"},
	} {
		path := filepath.Join(t.TempDir(), "README.md")
		os.WriteFile(path, []byte(c.readme), 0o644)
		if _, err := readSteps(path); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("readSteps(%q) = %v, want an error with %q", c.readme, err, c.err)
		}
	}
	path := filepath.Join(t.TempDir(), "README.md")
	os.WriteFile(path, []byte("<!-- step: a, poll -->\n```sh\necho hi\n```\n\nprints\n\n```text\nhi\n```\n<!-- step: b -->\n```sh\ntrue\n```\n"), 0o644)
	steps, err := readSteps(path)
	if err != nil || len(steps) != 2 || !steps[0].poll || steps[0].want != "hi\n" || steps[0].script != "echo hi\n" || steps[1].hasWant || steps[1].poll {
		t.Fatalf("readSteps = %+v, %v", steps, err)
	}

	for _, c := range []struct {
		got, want string
		match     bool
	}{
		{"b\na\n", "a\nb", true},         // any order
		{"a\nb\nc\n", "a\nb", false},     // c not shown
		{"a\nb\nc\n", "a\n...\nb", true}, // ... allows it
		{"a\n", "a\na", false},           // each line shown must be there
		{"a\n\n\n", "\na", true},         // blank lines aside
		{"queued /tmp/x/tmp.AbCdEf1234/spool/uwsgi_spoolfile_on_my-host_12_3_45_67_89.retry1", "queued /tmp/tmp.ZZZZZZZZZZ/spool/uwsgi_spoolfile_on_vm_1_1_1_1_1.retry1", true},
		{"queued /tmp/tmp.AbCdEf1234/spool/uwsgi_spoolfile_on_vm_1_1_1_1_1.retry2", "queued /tmp/tmp.AbCdEf1234/spool/uwsgi_spoolfile_on_vm_1_1_1_1_1.retry1", false},
		{"[spooler /x/tmp.AbCdEf1234/spool pid: 9] task ring:3:4 attempt 1 failed; retry in 1.5s", "[spooler /tmp/tmp.q1w2e3r4t5/spool pid: 1] task ring:0:0 attempt 1 failed; retry in 977ms", true},
		{"done with task ring:0:0 after 2 seconds", "done with task ring:0:0 after 0 seconds", true},
		{"queued ring:0:0", "queued /tmp/tmp.AbCdEf1234/spool/uwsgi_spoolfile_on_vm_1_1_1_1_1", false},
		{"welcome pid=12", "welcome pid=7", true},
		{"thumbnail bytes=18", "thumbnail bytes=17", false},
	} {
		if diff := outputDiff(c.got, c.want); (diff == "") != c.match {
			t.Errorf("outputDiff(%q, %q) = %q, want a match: %v", c.got, c.want, diff, c.match)
		}
	}
}
