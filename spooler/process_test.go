package spooler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/ring"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Producers in two processes spool concurrently while spoolers in two other
// processes run the tasks: every acknowledged task runs exactly once, whether
// it went through the ring or spilled to a file.
func TestProcessesProduceAndConsume(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "ran.txt")
	spoolDir := filepath.Join(dir, "spool")
	var spoolers []*proc
	for i := 0; i < 2; i++ {
		p := startProc(t, "spooler", "SPOOL_DIR="+spoolDir, "SPOOL_HANDLER=record", "SPOOL_OUT="+out)
		p.waitReady(t)
		spoolers = append(spoolers, p)
	}
	const each = 3000
	acked := map[string]bool{}
	var producers []*proc
	for i := 0; i < 2; i++ {
		producers = append(producers, startProc(t, "producer", "SPOOL_DIR="+spoolDir,
			fmt.Sprintf("SPOOL_COUNT=%d", each), fmt.Sprintf("SPOOL_PREFIX=p%d", i)))
	}
	for _, p := range producers {
		for _, l := range p.wait(t) {
			acked[strings.TrimPrefix(l, "ack ")] = true
		}
	}
	if len(acked) != 2*each {
		t.Fatalf("%d acknowledged, want %d", len(acked), 2*each)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(readLines(t, out)) < len(acked) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // anything extra would show up now
	ran := map[string]int{}
	for _, id := range readLines(t, out) {
		ran[id]++
	}
	for id := range acked {
		if ran[id] != 1 {
			t.Errorf("%s ran %d times", id, ran[id])
		}
	}
	if len(ran) != len(acked) {
		t.Errorf("%d distinct tasks ran, %d acknowledged", len(ran), len(acked))
	}
	r, err := ring.Open(filepath.Join(spoolDir, ring.FileName), ring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st := r.Stats()
	t.Logf("ring: spooled %d, spilled %d, done %d", st.Spooled, st.Spilled, st.Done)
	if st.Spooled+st.Spilled != 2*each || st.Done != 2*each {
		t.Errorf("counters do not add up: %+v", st)
	}
	for _, p := range spoolers {
		p.signal(t, syscall.SIGTERM)
		p.wait(t)
	}
}

// With the ring full, and for a task bigger than a lane takes, Spool writes a
// uWSGI spool file and returns success; every such task runs.
func TestFullRingSpillsToFiles(t *testing.T) {
	dir := t.TempDir()
	tiny := ring.Geometry{Lanes: 1, SlotsPerLane: 8, LaneBytes: 4096, Consumers: 2}
	// Create the ring as a spooler would, with a spooler attached that
	// takes nothing yet (busy).
	r, err := ring.Create(filepath.Join(dir, ring.FileName), ring.Options{Geometry: tiny})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	busy := attachIdleConsumer(t, dir)
	c, err := NewClient(dir, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	files := 0
	for i := 0; i < 40; i++ {
		tk := NewTask("id", fmt.Sprint(i))
		if i == 3 {
			tk.Body = make([]byte, tiny.MaxRecord()+1) // too large for a lane
		}
		path, err := c.Spool(context.Background(), tk)
		if err != nil {
			t.Fatal(err)
		}
		if path != "" {
			files++
			if !strings.HasPrefix(filepath.Base(path), "uwsgi_spoolfile_on_") {
				t.Fatalf("spilled to %s", path)
			}
		}
	}
	if files != 40-8 {
		t.Fatalf("%d tasks spilled, want %d", files, 40-8)
	}
	busy()
	ran := make(chan string, 100)
	startSpooler(t, Config{Dir: dir, Ring: ring.Options{Geometry: tiny}}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			id, _ := tk.Get("id")
			if id, _ := tk.Get("id"); string(id) == "3" && len(tk.Body) != tiny.MaxRecord()+1 {
				return fmt.Errorf("body of the large task: %d bytes", len(tk.Body))
			}
			ran <- string(id)
			return nil
		})
	})
	seen := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for len(seen) < 40 {
		select {
		case id := <-ran:
			if seen[id] {
				t.Fatalf("task %s ran twice", id)
			}
			seen[id] = true
		case <-timeout:
			t.Fatalf("only %d of 40 tasks ran", len(seen))
		}
	}
}

// A spooler process killed -9 in the middle of a task: the task runs again in
// another spooler, for a ring task and for a spool-file task.
func TestSpoolerKilledMidTask(t *testing.T) {
	for _, viaFile := range []bool{false, true} {
		name := "ring"
		if viaFile {
			name = "file"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			spoolDir := filepath.Join(dir, "spool")
			out := filepath.Join(dir, "ran.txt")
			dying := startProc(t, "spooler", "SPOOL_DIR="+spoolDir, "SPOOL_HANDLER=park")
			dying.waitReady(t)
			c, err := NewClient(spoolDir, ClientOptions{NoRing: viaFile})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Spool(context.Background(), NewTask("id", "victim")); err != nil {
				t.Fatal(err)
			}
			if viaFile {
				// Nothing wakes a spooler for a file written without the
				// ring; its periodic scan (1s here) finds it.
			}
			select {
			case l := <-dying.lines:
				if l != "running victim" {
					t.Fatalf("dying spooler said %q", l)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("task never started; stderr:\n%s", dying.stderr)
			}
			heir := startProc(t, "spooler", "SPOOL_DIR="+spoolDir, "SPOOL_HANDLER=record", "SPOOL_OUT="+out)
			heir.waitReady(t)
			time.Sleep(300 * time.Millisecond)
			if got := readLines(t, out); len(got) != 0 {
				t.Fatalf("task ran while its first spooler was alive: %v", got)
			}
			dying.signal(t, syscall.SIGKILL)
			deadline := time.Now().Add(10 * time.Second)
			for len(readLines(t, out)) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := readLines(t, out); len(got) != 1 || got[0] != "victim" {
				t.Fatalf("after the kill, ran %v; heir stderr:\n%s", got, heir.stderr)
			}
		})
	}
}
