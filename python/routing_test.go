package python_test

// Where Python's gospool.spool() puts a task, against real Go spoolers:
// the same rule as spooler.Client and `gospool spool` (see "Where a task
// goes" in package spooler), the warning for a priority that no spooler
// runs, and the message for a directory this user may not write.

import (
	"bufio"
	"context"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/ring"
)

// runGoSpooler runs a real spooler on dir until the function it returns is
// called (a clean stop) or the test ends.
func runGoSpooler(t *testing.T, dir string, ordered bool) (stop func()) {
	t.Helper()
	s, err := spooler.New(spooler.Config{Dir: dir, Ordered: ordered, Quiet: true, Logger: log.New(io.Discard, "", 0),
		Ring: ring.Options{Geometry: ring.Geometry{Lanes: 2, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	s.HandleDefault(func(ctx context.Context, tk *spooler.Task) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	<-s.Ready()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// pyProducer is a long-lived Python producer: each line written to it is
// a priority ("" for none) to spool a task with; it answers with the name
// spool() returned. Warnings go to its standard error, every time.
type pyProducer struct {
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *testproc.Buffer
}

func startPyProducer(t *testing.T, dir string) *pyProducer {
	t.Helper()
	cmd := pyCmd(t, `
import sys, gospool
gospool.configure([sys.argv[1]], full_wait=0)
for line in sys.stdin:
    d = {b"task": b"x"}
    if line.strip():
        d[b"priority"] = line.strip().encode()
    print(gospool.spool(d).decode(), flush=True)
`, "PYTHONWARNINGS=always")
	cmd.Args = append(cmd.Args, dir)
	p := &pyProducer{stderr: &testproc.Buffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.in.Close(); cmd.Process.Kill(); cmd.Wait() })
	p.out = bufio.NewScanner(stdout)
	return p
}

func (p *pyProducer) spool(t *testing.T, priority string) string {
	t.Helper()
	if _, err := io.WriteString(p.in, priority+"\n"); err != nil {
		t.Fatal(err)
	}
	if !p.out.Scan() {
		t.Fatalf("the Python producer stopped; stderr:\n%s", p.stderr)
	}
	return p.out.Text()
}

// A running Python producer uses the ring while a Go spooler is attached,
// and spool files once it stopped cleanly: at once, not a second later.
func TestPythonSpoolsIntoTheRingOnlyWhileASpoolerIsAttached(t *testing.T) {
	dir := t.TempDir()
	stop := runGoSpooler(t, dir, false)
	p := startPyProducer(t, dir)
	if name := p.spool(t, ""); !strings.HasPrefix(name, "ring:") {
		t.Fatalf("a spooler attached: spooled to %q, want the ring", name)
	}
	stop()
	name := p.spool(t, "")
	if !strings.HasPrefix(filepath.Base(name), "uwsgi_spoolfile_on_") {
		t.Fatalf("the spooler stopped: spooled to %q, want a spool file (the ring has nobody to run it)", name)
	}
	runGoSpooler(t, dir, false)
	if name := p.spool(t, ""); !strings.HasPrefix(name, "ring:") {
		t.Fatalf("a spooler attached again: spooled to %q, want the ring", name)
	}
}

// spool() with a priority warns once, when the spoolers attached run
// without --spooler-ordered, and not at all when they run with it.
func TestPythonWarnsOnceOfAPriorityNoSpoolerRuns(t *testing.T) {
	dir := t.TempDir()
	stop := runGoSpooler(t, dir, false)
	p := startPyProducer(t, dir)
	for range 3 {
		if name := p.spool(t, "5"); !strings.Contains(name, "/5/uwsgi_spoolfile_on_") {
			t.Fatalf("spooled to %q, want the priority directory", name)
		}
	}
	if n := strings.Count(p.stderr.String(), "RuntimeWarning"); n != 1 || !strings.Contains(p.stderr.String(), "--spooler-ordered") {
		t.Errorf("%d warnings, want 1 naming --spooler-ordered:\n%s", n, p.stderr)
	}
	stop()

	runGoSpooler(t, dir, true)
	q := startPyProducer(t, dir)
	q.spool(t, "5")
	q.spool(t, "")
	if s := q.stderr.String(); s != "" {
		t.Errorf("ordered spoolers: stderr %q, want nothing", s)
	}
}

// A user who may not write the spool directory gets ValueError("unable to
// spool job") with a note naming the directory's permission, and no
// warning about a ring file, whether the spoolers' ring is there or not.
// As root, Python runs as nobody.
func TestPythonSpoolIntoADirectoryNotWritable(t *testing.T) {
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	plain := filepath.Join(base, "plain")
	served := filepath.Join(base, "served")
	for _, d := range []string{plain, served} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runGoSpooler(t, served, false) // its ring is 0600, root's
	var cred *syscall.Credential
	python := ""
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}
		// python3 in PATH may be a shim under root's home, which nobody
		// cannot reach: the system's, then.
		python = "/usr/bin/python3"
		if _, err := os.Stat(python); err != nil {
			t.Skip("running as root, and there is no /usr/bin/python3 for the unprivileged user to run")
		}
	} else {
		for _, d := range []string{plain, served} {
			os.Chmod(d, 0o555)
			defer os.Chmod(d, 0o755)
		}
	}
	for _, d := range []string{plain, served} {
		cmd := pyCmd(t, `
import sys, gospool
gospool.configure([sys.argv[1]])
try:
    gospool.spool({b"task": b"x"})
except ValueError as e:
    print(e, *getattr(e, "__notes__", []), sep="\n")
`, "PYTHONWARNINGS=always")
		cmd.Args = append(cmd.Args, d)
		if python != "" {
			cmd.Path, cmd.Args[0] = python, python
		}
		cmd.SysProcAttr.Credential = cred
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", d, err, stderr.String())
		}
		if !strings.HasPrefix(string(out), "unable to spool job\ngospool: spool directory "+d+": permission denied: ") ||
			!strings.Contains(string(out), "mode 0755") {
			t.Errorf("%s: %q, want uWSGI's error and a note naming the directory's permission", d, out)
		}
		if strings.Contains(stderr.String(), ring.FileName) {
			t.Errorf("%s: a warning about the ring file: %s", d, stderr.String())
		}
	}
}
