// Package pythonuwsgi_test runs the migration example end to end: README.md
// step by step (readme_test.go), with real uWSGI serving the example app
// over HTTP on 127.0.0.1 and `gospool run --spooler-import tasks` running
// the app's unchanged task module; and here what the README does not show,
// a runner killed in the middle of a task.
package pythonuwsgi_test

import (
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

// installHint names the package that provides each program the tests run.
var installHint = map[string]string{
	"uwsgi": "uwsgi-core uwsgi-plugin-python3 python3-uwsgidecorators",
	"curl":  "curl",
	"go":    "golang (or Go from go.dev)",
	"bash":  "bash",
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startGospool runs `gospool run --spooler DIR/spool --spooler-import
// tasks` in this directory, with EXAMPLE_DIR=dir, until the test ends.
func startGospool(t *testing.T, dir string, env ...string) *testproc.Buffer {
	t.Helper()
	here, _ := os.Getwd()
	out := &testproc.Buffer{}
	cmd := exec.Command(gospoolBin, "run", "--spooler", filepath.Join(dir, "spool"), "--spooler-import", "tasks",
		"--spooler-retry-delay", "0.2", "--spooler-retry-max-delay", "0.5")
	cmd.Env = append(os.Environ(), append([]string{"PYTHONPATH=" + here, "EXAMPLE_DIR=" + dir}, env...)...)
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

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
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

// outLines are the lines of the file at path, tasks.log.
func outLines(path string) []string {
	data, _ := os.ReadFile(path)
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
	testproc.NeedUWSGIDecorators(t)
	dir := t.TempDir()
	for _, sub := range []string{"spool", "uwsgi-idle-spool"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tasksLog := filepath.Join(dir, "tasks.log")
	port := freePort(t)
	g := startGospool(t, dir, "EXAMPLE_TASK_SECONDS=2")
	t.Setenv("EXAMPLE_DIR", dir)
	t.Setenv("EXAMPLE_PORT", strconv.Itoa(port))
	uw := testproc.StartUWSGI(t, "--ini", "zero-change.ini")
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitUWSGI(t, port, uw, g)
	get(t, base+"/signup?email=carol@example.com")
	var pid int
	testproc.WaitFor(t, 20*time.Second, "the task to start", func() bool {
		for _, l := range outLines(tasksLog) {
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
		return count(outLines(tasksLog), "welcome email=carol@example.com") == 1
	}, g, uw)
	if n := count(outLines(tasksLog), "working email=carol@example.com"); n != 2 {
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
