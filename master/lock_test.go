package master_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/master"
	"github.com/gospool/gospool/master/scoreboard"
)

// runRefused runs a master with env and returns its exit status and
// output; it must exit on its own.
func runRefused(t *testing.T, env ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "GOSPOOL_TEST_MASTER=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second // its children hold the output pipe a little longer
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the master did not exit on its own:\n%s", out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// A second master on a spool directory another master serves exits 1 with
// one line naming the first one's pid, and changes nothing: the first
// one's scoreboard stays. After a kill -9 of the first master, a new one
// starts at once.
func TestSecondMasterRefused(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir())
	pid := s.cmd.Process.Pid
	code, out := runRefused(t, s.env...)
	want := "test service: master: spool directory " + s.dir + " is already served by another gospool master (pid " +
		strconv.Itoa(pid) + "); stop that one first, or give this one another spool directory\n"
	if code != 1 || out != want {
		t.Errorf("second master: exit %d, output %q\nwant 1 and %q", code, out, want)
	}
	b, err := scoreboard.Open(filepath.Join(s.dir, scoreboard.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := b.Master(); p != pid {
		t.Errorf("the scoreboard names master %d, want %d", p, pid)
	}
	b.Close()

	s.signal(syscall.SIGKILL)
	testproc.WaitFor(t, 10*time.Second, "the master gone", func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH }, s.out)
	again := startService(t, s.base)
	if data, err := os.ReadFile(filepath.Join(s.dir, master.LockFileName)); err != nil || string(data) != strconv.Itoa(again.cmd.Process.Pid)+"\n" {
		t.Errorf("lock file holds %q (%v), want the new master's pid", data, err)
	}
}

// A master locks every spool directory it serves, each once: one that
// names a directory twice starts, and a second master on its second
// directory alone is refused.
func TestMasterLocksEveryDirectory(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	other := filepath.Join(base, "other")
	s := startService(t, base, "GOSPOOL_TEST_DIR2="+other)
	code, out := runRefused(t, "GOSPOOL_TEST_DIR="+other)
	if code != 1 || !strings.Contains(out, "spool directory "+other+" is already served by another gospool master (pid "+strconv.Itoa(s.cmd.Process.Pid)+")") {
		t.Errorf("master on the second directory: exit %d, output %q", code, out)
	}
	twice := filepath.Join(t.TempDir(), "spool")
	startService(t, filepath.Dir(twice), "GOSPOOL_TEST_DIR2="+twice, "GOSPOOL_TEST_SPOOLERS=1")
}
