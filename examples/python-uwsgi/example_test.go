// Package pythonuwsgi_test runs the migration example end to end: real
// uWSGI serving the example app over HTTP on 127.0.0.1, and, for the two
// gospool setups, `gospool run --spooler-import tasks` running the app's
// unchanged task module.
package pythonuwsgi_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
)

var gospoolBin string

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "gospool-example-")
	if err != nil {
		panic(err)
	}
	gospoolBin = filepath.Join(tmp, "gospool")
	build := exec.Command("go", "build", "-o", gospoolBin, "github.com/gospool/gospool/cmd/gospool")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gospool:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// setup is one way of running the example.
type setup struct {
	ini     string
	gospool bool // gospool runs the tasks
}

// example copies the example into a fresh directory (so that spool
// directories and the output log are the test's own) and returns it.
func example(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"app.py", "app_gospool.py", "tasks.py", "original.ini", "zero-change.ini", "one-line.ini"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	// one-line.ini finds the package at %d../../python.
	python, _ := filepath.Abs("../../python")
	os.MkdirAll(filepath.Join(dir, "x"), 0o755)
	ini := filepath.Join(dir, "one-line.ini")
	data, _ := os.ReadFile(ini)
	os.WriteFile(ini, bytes.ReplaceAll(data, []byte("%d../../python"), []byte(python)), 0o644)
	os.Mkdir(filepath.Join(dir, "spool"), 0o755)
	os.Mkdir(filepath.Join(dir, "uwsgi-idle-spool"), 0o755)
	return dir
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startGospool runs `gospool run --spooler spool --spooler-import tasks`
// in dir until the test ends.
func startGospool(t *testing.T, dir string, env ...string) *testproc.Buffer {
	t.Helper()
	out := &testproc.Buffer{}
	cmd := exec.Command(gospoolBin, "run", "--spooler", filepath.Join(dir, "spool"), "--spooler-import", "tasks",
		"--spooler-retry-delay", "0.2", "--spooler-retry-max-delay", "0.5",
		"--spooler-frequency", "2") // as original.ini: @spoolforever's cadence
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"PYTHONPATH=" + dir, "EXAMPLE_OUT=" + filepath.Join(dir, "out.log")}, env...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("gospool output:\n%s", out)
		}
	})
	// Attached to the ring: from then on gospool.install() spools into it.
	testproc.WaitFor(t, 30*time.Second, "the gospool spooler on the ring", func() bool {
		st, err := exec.Command(gospoolBin, "stats", "--json", "--spooler", filepath.Join(dir, "spool")).Output()
		return err == nil && strings.Contains(string(st), `"consumers":[{`)
	}, out)
	return out
}

func get(t *testing.T, url string, body []byte) string {
	t.Helper()
	var resp *http.Response
	var err error
	if body != nil {
		resp, err = http.Post(url, "application/octet-stream", bytes.NewReader(body))
	} else {
		resp, err = http.Get(url)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s %s", url, resp.Status, data)
	}
	return strings.TrimSpace(string(data))
}

// fileText shows a file's content in a failure's log.
type fileText string

func (f fileText) String() string {
	data, _ := os.ReadFile(string(f))
	return string(f) + ":\n" + string(data)
}

func outLines(dir string) []string {
	data, _ := os.ReadFile(filepath.Join(dir, "out.log"))
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func count(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// The three setups of README.md, each driven through HTTP: a decorated task
// with arguments (one that fails once), a @spoolforever task, and a raw
// task with a binary body.
func TestMigrationPaths(t *testing.T) {
	for _, s := range []setup{{"original.ini", false}, {"zero-change.ini", true}, {"one-line.ini", true}} {
		t.Run(strings.TrimSuffix(s.ini, ".ini"), func(t *testing.T) {
			dir := example(t)
			port := freePort(t)
			var logs []fmt.Stringer
			if s.gospool {
				logs = append(logs, startGospool(t, dir))
			}
			t.Setenv("EXAMPLE_OUT", filepath.Join(dir, "out.log"))
			uw := testproc.StartUWSGI(t, "--set-placeholder", "example-port="+strconv.Itoa(port), "--ini", filepath.Join(dir, s.ini))
			logs = append(logs, uw, fileText(filepath.Join(dir, "out.log")))
			base := "http://127.0.0.1:" + strconv.Itoa(port)
			waitUWSGI(t, port, logs...)

			queued := get(t, base+"/signup?email=ada@example.com&lang=fr", nil)
			if s.ini == "one-line.ini" && strings.Contains(queued, "/spool/uwsgi_spoolfile_on_") {
				t.Errorf("with gospool.install(), the task went to a file: %q", queued)
			}
			get(t, base+"/signup?email=bob@example.com&fail=1", nil)
			get(t, base+"/heartbeat?name=hb", nil)
			image := []byte("\x89PNG\r\n\x1a\n\x00\xff\xfe binary")
			get(t, base+"/thumbnail?name=cat.png", image)

			testproc.WaitFor(t, 20*time.Second, "every task", func() bool {
				l := outLines(dir)
				return count(l, "welcome email=ada@example.com lang=fr") == 1 && count(l, "welcome email=bob@example.com") == 1 &&
					count(l, "heartbeat name=hb") >= 2 && count(l, "thumbnail name=cat.png bytes=18 ") == 1
			}, logs...)
			if s.gospool {
				// The tasks ran in gospool's runner, not in a uWSGI spooler.
				for _, l := range outLines(dir) {
					pid := l[strings.LastIndex(l, "pid=")+4:]
					if strings.Contains(uw.String(), "with pid "+pid) {
						t.Errorf("%q ran in a uWSGI spooler", l)
					}
				}
			}
		})
	}
}

// The task module is the app's, unchanged: no gospool in it.
func TestTaskModuleIsUnchanged(t *testing.T) {
	for _, name := range []string{"tasks.py", "app.py"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 1 && (f[0] == "import" || f[0] == "from") && strings.HasPrefix(f[1], "gospool") {
				t.Errorf("%s imports gospool (%q); the migration must not need it", name, line)
			}
		}
	}
}

// A runner killed with SIGKILL in the middle of a task: gospool starts a
// new one and the task runs again, to the end.
func TestRunnerKilledMidTask(t *testing.T) {
	dir := example(t)
	port := freePort(t)
	g := startGospool(t, dir, "EXAMPLE_TASK_SECONDS=2")
	t.Setenv("EXAMPLE_OUT", filepath.Join(dir, "out.log"))
	uw := testproc.StartUWSGI(t, "--set-placeholder", "example-port="+strconv.Itoa(port), "--ini", filepath.Join(dir, "zero-change.ini"))
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitUWSGI(t, port, uw, g)
	get(t, base+"/signup?email=carol@example.com", nil)
	var pid int
	testproc.WaitFor(t, 20*time.Second, "the task to start", func() bool {
		for _, l := range outLines(dir) {
			if strings.HasPrefix(l, "working email=carol@example.com") {
				pid, _ = strconv.Atoi(l[strings.LastIndex(l, "pid=")+4:])
			}
		}
		return pid != 0
	}, g)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testproc.WaitFor(t, 30*time.Second, "the task to run again", func() bool {
		return count(outLines(dir), "welcome email=carol@example.com") == 1
	}, g, uw)
	if n := count(outLines(dir), "working email=carol@example.com"); n != 2 {
		t.Errorf("the task started %d times, want 2", n)
	}
}

// waitUWSGI waits until uWSGI accepts connections on 127.0.0.1:port.
func waitUWSGI(t *testing.T, port int, logs ...fmt.Stringer) {
	t.Helper()
	testproc.WaitFor(t, 10*time.Second, "uWSGI to answer", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, logs...)
}
