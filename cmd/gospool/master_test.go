package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
)

// ask sends one line to a --worker-cmd worker over the unix socket sock and
// returns its answer.
func ask(t *testing.T, sock, line string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, line)
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return strings.TrimSpace(answer)
}

var workerPid = regexp.MustCompile(`spawned gospool worker (\d) \(pid: (\d+)`)

// --workers N --worker-cmd CMD: N copies of a Python program share the
// master's listener, find the spool directory in their environment, spool
// tasks that the spooler runs, and are respawned when killed.
func TestRunWorkerCmd(t *testing.T) {
	testproc.NeedPython3(t)
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	sock := filepath.Join(t.TempDir(), "w.sock")
	worker, _ := filepath.Abs("testdata/worker.py")
	p := startRun(t, []string{"OUT=" + out, "GOSPOOL_BIN=" + gospoolBin}, "--spooler", dir, "--spooler-exec", recordCmd,
		"--workers", "2", "--worker-cmd", "exec python3 "+worker, "--listen", sock)
	testproc.WaitFor(t, 10*time.Second, "two workers", func() bool { return strings.Count(p.stderr.String(), "spawned gospool worker") == 2 }, p.stderr)
	who := ask(t, sock, "who")
	real, _ := filepath.EvalSymlinks(dir)
	if !strings.HasPrefix(who, "worker ") || !strings.Contains(who, "dirs ['"+real+"']") || !strings.Contains(who, "ring-fds 6") {
		t.Errorf("a worker says %q", who)
	}
	for i := 1; i <= 3; i++ {
		if a := ask(t, sock, "spool "+strconv.Itoa(i)); a != "ok" {
			t.Fatalf("spool: %q", a)
		}
	}
	waitRan(t, out, 3, p)

	m := workerPid.FindStringSubmatch(p.stderr.String())
	pid, _ := strconv.Atoi(m[2])
	syscall.Kill(pid, syscall.SIGKILL)
	want := fmt.Sprintf("DAMN ! worker %s (pid: %d) died, killed by signal 9 :( trying respawn ...", m[1], pid)
	testproc.WaitFor(t, 10*time.Second, "the respawn", func() bool {
		s := p.stderr.String()
		return strings.Contains(s, want) && strings.Contains(s, "Respawned gospool worker "+m[1]+" (new pid: ")
	}, p.stderr)
	if a := ask(t, sock, "spool 4"); a != "ok" {
		t.Fatalf("after the respawn: %q", a)
	}
	waitRan(t, out, 4, p)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

// gospool stats shows the master's processes: pid, role, respawns, tasks
// done, and the task a spooler is busy with since when.
func TestStatsShowsProcesses(t *testing.T) {
	testproc.NeedPython3(t)
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	sock := filepath.Join(t.TempDir(), "w.sock")
	worker, _ := filepath.Abs("testdata/worker.py")
	started := filepath.Join(out, "started")
	p := startRun(t, []string{"OUT=" + out, "GOSPOOL_BIN=" + gospoolBin, "STARTED=" + started}, "--spooler", dir,
		"--spooler-exec", `case "$(cat)" in *slow*) touch "$STARTED"; sleep 30;; esac`,
		"--workers", "2", "--worker-cmd", "exec python3 "+worker, "--listen", sock)
	waitLive(t, dir, p)
	gospool(t, "spool", "--spooler", dir, "id=fast").mustSucceed(t)
	gospool(t, "spool", "--spooler", dir, "id=slow").mustSucceed(t)
	testproc.WaitFor(t, 10*time.Second, "the slow task started", func() bool { return fileExists(started) }, p.stderr)
	var st struct {
		Master struct {
			Pid       int
			Processes []struct {
				Pid                  int
				Role, State, Current string
				Number, Respawns     int
				Done                 uint64
				BusySince            string `json:"busy_since"`
			}
		}
	}
	r := gospool(t, "stats", "--spooler", dir, "--json").mustSucceed(t)
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if st.Master.Pid != p.cmd.Process.Pid || len(st.Master.Processes) != 3 {
		t.Fatalf("stats: %s", r.stdout)
	}
	sp := st.Master.Processes[2]
	if st.Master.Processes[0].Role != "worker" || sp.Role != "spooler" || sp.Pid != spoolerPid(t, p) ||
		sp.Done != 1 || !strings.HasPrefix(sp.Current, "ring:") || sp.BusySince == "" || sp.State != "running" {
		t.Errorf("stats processes: %s", r.stdout)
	}
	text := gospool(t, "stats", "--spooler", dir).mustSucceed(t).stdout
	if !strings.Contains(text, fmt.Sprintf("master pid %d", p.cmd.Process.Pid)) || !strings.Contains(text, "spooler  1") {
		t.Errorf("stats text:\n%s", text)
	}
	p.stop(t, syscall.SIGINT)
	r = gospool(t, "stats", "--spooler", dir).mustSucceed(t)
	if !strings.Contains(r.stdout, "master: none running") {
		t.Errorf("stats after the master stopped:\n%s", r.stdout)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// --ini with the master's options: processes (with --worker-cmd), socket
// (the workers' listener), harakiri, master and die-on-term.
func TestRunIniMasterOptions(t *testing.T) {
	testproc.NeedPython3(t)
	t.Parallel()
	base := t.TempDir()
	sock := filepath.Join(base, "app.sock")
	iniPath := filepath.Join(base, "app.ini")
	os.WriteFile(iniPath, []byte("[uwsgi]\nmaster = true\nprocesses = 3\nsocket = "+sock+"\nharakiri = 30\ndie-on-term = true\nspooler = %d/spool\n"), 0o644)
	worker, _ := filepath.Abs("testdata/worker.py")
	p := startRun(t, []string{"GOSPOOL_BIN=" + gospoolBin}, "--ini", iniPath, "--spooler-exec", "true", "--worker-cmd", "python3 "+worker)
	testproc.WaitFor(t, 10*time.Second, "three workers", func() bool { return strings.Count(p.stderr.String(), "spawned gospool worker") == 3 }, p.stderr)
	if who := ask(t, sock, "who"); !strings.HasPrefix(who, "worker ") {
		t.Errorf("the ini's socket is not the workers' listener: %q", who)
	}
	if s := p.stderr.String(); strings.Contains(s, "warning") {
		t.Errorf("warnings for supported options:\n%s", s)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}
