package spooler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
)

// After MaxRetries failed retries a task moves to the dead-letter directory
// with its last error; ls shows it; requeue brings it back and it runs.
func TestDeadLetterListAndRequeue(t *testing.T) {
	dir := t.TempDir()
	var healthy atomic.Bool
	var runs atomic.Int64
	done := make(chan string, 10)
	s, logs := startSpooler(t, Config{Dir: dir, MaxRetries: 2, RetryDelay: 5 * time.Millisecond}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			runs.Add(1)
			if !healthy.Load() {
				return errors.New("smtp: connection refused")
			}
			id, _ := tk.Get("id")
			done <- string(id)
			return nil
		})
	})
	ringClient, _ := NewClient(s.Dir(), ClientOptions{})
	defer ringClient.Close()
	fileClient, _ := NewClient(s.Dir(), ClientOptions{NoRing: true})
	defer fileClient.Close()
	ctx := context.Background()
	if _, err := ringClient.Spool(ctx, NewTask("id", "from-ring")); err != nil {
		t.Fatal(err)
	}
	if _, err := fileClient.Spool(ctx, NewTask("id", "from-file", "k", "v")); err != nil {
		t.Fatal(err)
	}
	var dead []Pending
	waitFor(t, 10*time.Second, func() bool {
		list, err := List(dir)
		if err != nil {
			t.Fatal(err)
		}
		dead = dead[:0]
		for _, p := range list {
			if p.State == "dead" {
				dead = append(dead, p)
			}
		}
		return len(dead) == 2 && len(list) == 2
	}, logs)
	if n := runs.Load(); n != 6 {
		t.Errorf("%d runs, want 6: 1 + 2 retries for each task", n)
	}
	for _, p := range dead {
		if p.Error != "smtp: connection refused" || !strings.HasPrefix(p.Name, DeadDir+"/") || p.Attempt != 3 {
			t.Errorf("dead entry %+v", p)
		}
		note, err := os.ReadFile(p.Path + ".error")
		if err != nil || !strings.Contains(string(note), "attempts: 3") {
			t.Errorf("%s.error: %q %v", p.Path, note, err)
		}
	}
	healthy.Store(true)
	back, err := Requeue(dir)
	if err != nil || len(back) != 2 {
		t.Fatalf("Requeue: %v %v", back, err)
	}
	got := map[string]bool{<-done: true, <-done: true}
	if !got["from-ring"] || !got["from-file"] {
		t.Fatalf("after requeue, ran %v", got)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, DeadDir))
	if len(ents) != 0 {
		t.Fatalf("dead-letter directory not empty after requeue: %v", ents)
	}
}

func TestListStates(t *testing.T) {
	dir := t.TempDir()
	c, err := NewClient(dir, ClientOptions{NoRing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	later := time.Now().Add(time.Hour).Unix()
	c.Spool(ctx, NewTask("id", "now"))
	c.Spool(ctx, NewTask("id", "later", "at", strconv.FormatInt(later, 10)))
	c.Spool(ctx, NewTask("id", "prio", "priority", "3"))
	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, p := range list {
		states[p.State+"/"+p.Priority] = p.Name
		if p.State == "scheduled" && (p.At == nil || p.At.Unix() != later) {
			t.Errorf("scheduled at %v, want %d", p.At, later)
		}
	}
	if len(list) != 3 || states["ready/"] == "" || states["scheduled/"] == "" || states["ready/3"] == "" {
		t.Fatalf("list: %+v", list)
	}
}

// A retry's last error waits in ErrorsDir, survives a restart, shows in
// List, and goes away once the task is done.
func TestRetryKeepsItsLastError(t *testing.T) {
	dir := t.TempDir()
	c, _ := NewClient(dir, ClientOptions{NoRing: true})
	defer c.Close()
	c.Spool(context.Background(), NewTask("id", "x"))
	var healthy atomic.Bool
	done := make(chan struct{}, 1)
	_, logs := startSpooler(t, Config{Dir: dir, RetryDelay: 300 * time.Millisecond}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error {
			if !healthy.Load() {
				return errors.New("disk full")
			}
			done <- struct{}{}
			return nil
		})
	})
	var retry Pending
	waitFor(t, 5*time.Second, func() bool {
		list, _ := List(dir)
		for _, p := range list {
			if p.State == "retry" {
				retry = p
				return true
			}
		}
		return false
	}, logs)
	if retry.Error != "disk full" || retry.Attempt != 2 {
		t.Fatalf("retry entry %+v", retry)
	}
	healthy.Store(true)
	<-done
	waitFor(t, 5*time.Second, func() bool {
		ents, _ := os.ReadDir(filepath.Join(dir, ErrorsDir))
		return len(ents) == 0
	}, logs)
}

// A relative directory: paths still come out absolute.
func TestListPathsAreAbsolute(t *testing.T) {
	dir := t.TempDir()
	w, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path, err := w.Write(NewTask("id", "x"))
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, dir)
	if err != nil {
		t.Fatal(err)
	}
	list, err := List(rel)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(path)
	if len(list) != 1 || list[0].Path != real {
		t.Errorf("List(%q) = %+v, want the one task at %s", rel, list, real)
	}
}

// While spoolers without Ordered serve a directory, its priority tasks
// wait: PriorityWaits says so, List shows them "waiting" and CountWaiting
// counts them. Not once the spoolers stopped (nobody known), nor with
// ordered spoolers (they remove the mark).
func TestPriorityTasksWaitForAnOrderedSpooler(t *testing.T) {
	dir := t.TempDir()
	w, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(NewTask("task", "report", "priority", "5")); err != nil {
		t.Fatal(err)
	}
	waiting := func() (bool, string, int) {
		list, err := List(dir)
		if err != nil {
			t.Fatal(err)
		}
		due, _, err := CountWaiting(dir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return PriorityWaits(dir), list[0].State, due
	}
	if w, state, n := waiting(); w || state != "ready" || n != 0 {
		t.Fatalf("no spooler: PriorityWaits %v, state %q, waiting %d", w, state, n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(Config{Dir: dir, Quiet: true, Ring: ring.Options{Geometry: testGeometry}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	if w, state, n := waiting(); !w || state != "waiting" || n != 1 {
		t.Errorf("unordered spooler: PriorityWaits %v, state %q, waiting %d; want true, waiting, 1", w, state, n)
	}
	cancel()
	<-done
	if w, state, _ := waiting(); w || state != "ready" {
		t.Errorf("spooler stopped: PriorityWaits %v, state %q", w, state)
	}

	ran := make(chan struct{}, 1)
	startSpooler(t, Config{Dir: dir, Ordered: true, Ring: ring.Options{Geometry: testGeometry}}, func(s *Spooler) {
		s.HandleDefault(func(ctx context.Context, tk *Task) error { ran <- struct{}{}; return nil })
	})
	if _, err := os.Stat(filepath.Join(dir, UnorderedMark)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an ordered spooler left %s: %v", UnorderedMark, err)
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the ordered spooler did not run the priority task")
	}
}
