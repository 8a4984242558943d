package python_test

// The Python producer's lane lock against Go producers and a Go master
// (issue 10 item 5): other code in the Python process opening and closing
// gospool.ring must not let a Go producer take the Python producer's lane
// and write over its acknowledged records.

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/gospool/gospool/spooler/ring"
)

func TestPythonLaneLockSurvivesOpenClose(t *testing.T) {
	python3(t)
	r, dir := newRing(t, ring.Geometry{Lanes: 1, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 4})
	// A spooler attached: producers put tasks into the ring only then.
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The Python producer spools three tasks, opens and closes the ring
	// file as a health check would, says so, then spools one more task
	// when told to.
	cmd := pyCmd(t, `
import os, sys, gospool
gospool.configure([sys.argv[1]], full_wait=0)
for i in range(3):
    assert gospool.spool({b"id": b"py-%d" % i}).startswith(b"ring:0:")
os.close(os.open(os.path.join(sys.argv[1], "gospool.ring"), os.O_RDWR))
print("closed", flush=True)
sys.stdin.readline()
print(gospool.spool({b"id": b"py-3"}).decode(), flush=True)
`)
	cmd.Args = append(cmd.Args, dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "closed" {
		t.Fatalf("the Python producer said %q", lines.Text())
	}

	// A Go producer (and a master's recovery) must see the lane as taken.
	if p, err := r.Producer(); !errors.Is(err, ring.ErrNoLane) {
		if err == nil {
			p.Push([]byte("go over python")) // what the bug did
			p.Close()
		}
		t.Errorf("Go took the lane of a live Python producer: %v", err)
	}
	if lanes, torn := r.RecoverLanes(); lanes != 0 || torn != 0 {
		t.Errorf("RecoverLanes with the Python producer alive = (%d, %d)", lanes, torn)
	}

	io.WriteString(stdin, "go\n")
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ring:0:") {
		t.Fatalf("the last task went %q", lines.Text())
	}
	if got, want := mustDrain(t, r, c), []string{"py-0", "py-1", "py-2", "py-3"}; !slices.Equal(got, want) {
		t.Fatalf("the consumer ran %q, want %q", got, want)
	}
}
