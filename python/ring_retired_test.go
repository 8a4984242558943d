package python_test

// The Python producer and the ring header's retired and sync-errors words
// (spooler/ring/health.go, issue 10 items 6 and 7): a Python producer never
// publishes into a ring another process retired; a record it published as
// the ring was retired runs exactly once, from the ring or from a spool
// file; a Python producer that finds the file replaced retires it for the
// Go processes too; an msync failure after a publish is counted where Go's
// Stats reads it.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/record"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
)

// cmdProducerScript spools on command, one line of standard input each:
//
//	spool ID   spool {id: ID}, print the task's name
//	park ID    the same, but stop right after the publishing store, print
//	           "parked", and go on at the next line of input
//	check      make the ring's file check due (it runs every 100 ms)
//
// argv: spool directory, then "sync" to msync (with msync failing).
const cmdProducerScript = `
import sys, warnings
import gospool
from gospool import _ring
warnings.simplefilter("ignore")
sync = sys.argv[2:] == ["sync"]
if sync:
    def failing_msync(mm):
        raise OSError(5, "Input/output error (injected by the test)")
    _ring._flush_mapping = failing_msync
gospool.configure([sys.argv[1]], full_wait=0, sync=sync)
park_next = False
def park(name):
    global park_next
    if name == _ring.FAILPOINT_PUBLISHED and park_next:
        park_next = False
        print("parked", flush=True)
        sys.stdin.readline()
_ring._failpoint = park
_ring._FAILPOINT = _ring.FAILPOINT_PUBLISHED
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "check":
        for r in list(_ring._rings):
            r._check_at = 0
        print("ok", flush=True)
        continue
    park_next = cmd == "park"
    print(gospool.spool({b"id": arg.encode()}).decode(), flush=True)
`

type cmdProducer struct {
	in  io.WriteCloser
	out *bufio.Scanner
	err *testproc.Buffer
}

func startCmdProducer(t *testing.T, dir string, args ...string) *cmdProducer {
	t.Helper()
	cmd := pyCmd(t, cmdProducerScript)
	cmd.Args = append(append(cmd.Args, dir), args...)
	p := &cmdProducer{err: &testproc.Buffer{}}
	cmd.Stderr = p.err
	var err error
	if p.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p.out = bufio.NewScanner(out)
	return p
}

// send writes one line to the producer and returns the line it answers.
func (p *cmdProducer) send(t *testing.T, line string) string {
	t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
	if !p.out.Scan() {
		t.Fatalf("the Python producer said nothing to %q; stderr:\n%s", line, p.err)
	}
	return p.out.Text()
}

// retire retires r's file through Go's own check: the path stops naming
// the file (Check raises the retired word), then names it again, so that
// only the word tells a producer.
func retire(t *testing.T, r *ring.Ring, path string) {
	t.Helper()
	keep := path + ".keep"
	if err := os.Link(path, keep); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(); !errors.Is(err, ring.ErrRetired) {
		t.Fatalf("Check of a removed ring file = %v, want ErrRetired", err)
	}
	if err := os.Rename(keep, path); err != nil {
		t.Fatal(err)
	}
}

// spoolFileIDs returns the ids of the spool files in dir.
func spoolFileIDs(t *testing.T, dir string) []string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, spoolfile.Prefix+"*"))
	var ids []string
	for _, p := range paths {
		tk, err := spoolfile.ReadFile(p)
		if err != nil {
			t.Fatalf("spool file %s: %v", p, err)
		}
		id, _ := tk.Get("id")
		ids = append(ids, string(id))
	}
	slices.Sort(ids)
	return ids
}

func isSpoolFile(dir, name string) bool {
	return strings.HasPrefix(name, filepath.Join(dir, spoolfile.Prefix))
}

// A ring retired by a Go process: the Python producer writes nothing more
// into it (not a byte of its lanes changes), spools to files, and takes
// up the ring file that replaces it.
func TestPythonProducerHonoursRetiredRing(t *testing.T) {
	python3(t)
	g := ring.Geometry{Lanes: 2, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 4}
	r, dir := newRing(t, g)
	path := filepath.Join(dir, ring.FileName)
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := startCmdProducer(t, dir)
	if got := p.send(t, "spool a"); got != "ring:0:0" {
		t.Fatalf("first task went to %q", got)
	}
	if got := mustDrain(t, r, c); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("the consumer ran %q", got)
	}
	lanes := func() []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b[4096:]
	}
	before := lanes()

	retire(t, r, path)
	for _, id := range []string{"b", "c"} {
		if got := p.send(t, "spool "+id); !isSpoolFile(dir, got) {
			t.Fatalf("task %s spooled into a retired ring: %q", id, got)
		}
	}
	if !bytes.Equal(lanes(), before) {
		t.Fatal("the Python producer wrote into the lanes of a retired ring")
	}
	if got := spoolFileIDs(t, dir); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("spool files hold %q, want b and c", got)
	}
	if !strings.Contains(p.err.String(), "retired word is set") {
		t.Errorf("the producer logged nothing about the retired ring; stderr:\n%s", p.err)
	}

	// A new ring file in its place: the producer opens it by path again
	// (at most once a second) and uses it.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r2, err := ring.Create(path, ring.Options{Geometry: g})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	c2, err := r2.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	var ringed string
	n := 0
	testproc.WaitFor(t, 20*time.Second, "the Python producer to use the new ring file", func() bool {
		n++
		id := "d" + strings.Repeat("x", n)
		if got := p.send(t, "spool "+id); strings.HasPrefix(got, "ring:") {
			ringed = id
			return true
		}
		return false
	})
	if got := mustDrain(t, r2, c2); !slices.Equal(got, []string{ringed}) {
		t.Fatalf("the new ring's consumer ran %q, want %q", got, ringed)
	}
}

// A record published as the ring is retired runs exactly once: taken back
// by the producer (a spool file has it), or claimed by a consumer first
// (the push succeeded). Never both, never neither; also when the claim and
// the take-back race.
func TestPythonProducerTakesBackRetiredRecord(t *testing.T) {
	python3(t)
	cases := []struct {
		name       string
		claimFirst bool // a consumer claims the record before the ring is retired
		race       bool // a consumer claims while the producer goes on
	}{
		{name: "taken back"},
		{name: "claimed first", claimFirst: true},
	}
	for i := 0; i < 6; i++ {
		cases = append(cases, struct {
			name       string
			claimFirst bool
			race       bool
		}{name: "race", race: true})
	}
	var fromRing, fromFile int
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, dir := newRing(t, ring.Geometry{Lanes: 1, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 4})
			path := filepath.Join(dir, ring.FileName)
			c, err := r.Consumer()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p := startCmdProducer(t, dir)
			if got := p.send(t, "park x"); got != "parked" {
				t.Fatalf("the producer said %q, want parked", got)
			}
			var claimed []string
			if tc.claimFirst {
				claimed = claimAll(t, c)
			}
			retire(t, r, path)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			if tc.race {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						if got := claimAll(t, c); len(got) > 0 {
							claimed = got
							return
						}
					}
				}()
			}
			name := p.send(t, "")
			close(stop)
			wg.Wait()
			claimed = append(claimed, claimAll(t, c)...)
			files := spoolFileIDs(t, dir)
			t.Logf("push returned %q; consumer ran %q; spool files %q", name, claimed, files)
			switch {
			case len(claimed) == 1 && len(files) == 0:
				if name != "ring:0:0" {
					t.Fatalf("the consumer has the record, but the push returned %q", name)
				}
				if !tc.claimFirst && !tc.race {
					t.Fatal("nobody claimed it before the producer went on, yet it was not taken back")
				}
				fromRing++
			case len(claimed) == 0 && slices.Equal(files, []string{"x"}):
				if !isSpoolFile(dir, name) {
					t.Fatalf("a spool file has the task, but the push returned %q", name)
				}
				if tc.claimFirst {
					t.Fatal("claimed before the retire, yet taken back")
				}
				fromFile++
			default:
				t.Fatalf("the task is in the ring %d times and in %d spool files, want once in all", len(claimed), len(files))
			}
			if s := r.Stats(); s.Ready != 0 {
				t.Fatalf("%d records left ready in the retired ring", s.Ready)
			}
		})
	}
	t.Logf("%d ran from the ring, %d from spool files", fromRing, fromFile)
}

// claimAll claims every ready record, marks it done, and returns the ids.
func claimAll(t *testing.T, c *ring.Consumer) []string {
	var ids []string
	for {
		rec, ok, err := c.Claim()
		if err != nil {
			t.Error(err)
			return ids
		}
		if !ok {
			return ids
		}
		tk, err := record.Decode(rec.Payload)
		if err != nil {
			t.Error(err)
			return ids
		}
		id, _ := tk.Get("id")
		ids = append(ids, string(id))
		c.Done(rec)
	}
}

// A Python producer that finds the ring's path no longer naming its file
// raises the retired word: a Go process that maps the same file under a
// name that still exists learns of it from the word alone.
func TestPythonProducerRetiresReplacedRing(t *testing.T) {
	python3(t)
	r, goDir := newRing(t, ring.Geometry{Lanes: 2, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 4})
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pyDir := t.TempDir()
	pyPath := filepath.Join(pyDir, ring.FileName)
	if err := os.Link(filepath.Join(goDir, ring.FileName), pyPath); err != nil {
		t.Fatal(err)
	}
	p := startCmdProducer(t, pyDir)
	if got := p.send(t, "spool a"); got != "ring:0:0" {
		t.Fatalf("first task went to %q", got)
	}
	if err := r.Check(); err != nil {
		t.Fatalf("Check before: %v", err)
	}
	if err := os.Remove(pyPath); err != nil { // the Go name stays: one link left
		t.Fatal(err)
	}
	p.send(t, "check")
	if got := p.send(t, "spool b"); !isSpoolFile(pyDir, got) {
		t.Fatalf("task b went to %q after the file was removed", got)
	}
	err = r.Check()
	if !errors.Is(err, ring.ErrRetired) || errors.Is(err, ring.ErrReplaced) {
		t.Fatalf("Go's Check = %v, want ErrRetired from the word the Python producer raised", err)
	}
	gp, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer gp.Close()
	if err := gp.Push([]byte("go")); !errors.Is(err, ring.ErrRetired) {
		t.Fatalf("Go Push into the ring the Python producer retired = %v, want ErrRetired", err)
	}
	if got := mustDrain(t, r, c); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("the consumer ran %q, want a", got)
	}
}

// An msync that fails after the publish: the push succeeds (the task runs
// once), and Go's Stats counts the failure.
func TestPythonSyncErrorsCounted(t *testing.T) {
	python3(t)
	r, dir := newRing(t, ring.Geometry{Lanes: 2, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 4})
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := startCmdProducer(t, dir, "sync")
	for i, id := range []string{"a", "b"} {
		if got, want := p.send(t, "spool "+id), "ring:0:"+string(rune('0'+i)); got != want {
			t.Fatalf("task %s went to %q, want %q", id, got, want)
		}
		if got := r.Stats().SyncErrors; got != uint64(i+1) {
			t.Fatalf("SyncErrors = %d after %d failed msyncs", got, i+1)
		}
	}
	if got := mustDrain(t, r, c); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("the consumer ran %q", got)
	}
	if !strings.Contains(p.err.String(), "msync failed") {
		t.Errorf("the failure was not logged; stderr:\n%s", p.err)
	}
}
