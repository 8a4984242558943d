package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// ls shows ready, scheduled and dead tasks; requeue brings the dead back.
func TestLsAndRequeue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if r := gospool(t, "spool", "--spooler", dir, "id=now"); r.code != 0 {
		t.Fatalf("spool: %+v", r)
	}
	if r := gospool(t, "spool", "--spooler", dir, "--at", "4102444800", "id=later"); r.code != 0 {
		t.Fatalf("spool: %+v", r)
	}
	// A dead letter, as a spooler leaves it.
	dead := filepath.Join(dir, "gospool-dead")
	os.Mkdir(dead, 0o750)
	w, err := spoolfile.NewWriter(dead, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dpath, err := w.WriteNamed(task.New("id", "dead"), time.Time{}, ".retry3")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dpath+".error", []byte("attempts: 4\nlast error: exit status 1\n"), 0o600)

	r := gospool(t, "ls", "--spooler", dir, "--json")
	if r.code != 0 {
		t.Fatalf("ls: %+v", r)
	}
	states := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("ls --json line %q: %v", line, err)
		}
		states[obj["state"].(string)] = obj
	}
	if len(states) != 3 || states["ready"] == nil || states["scheduled"]["at"] != "2100-01-01T00:00:00Z" ||
		states["dead"]["error"] != "exit status 1" || states["dead"]["attempt"] != 4.0 {
		t.Fatalf("ls --json:\n%s", r.stdout)
	}
	text := gospool(t, "ls", "--spooler", dir)
	if !strings.Contains(text.stdout, "after 4 attempts: exit status 1") || !strings.Contains(text.stdout, "scheduled") {
		t.Fatalf("ls:\n%s", text.stdout)
	}
	rq := gospool(t, "requeue", "--spooler", dir)
	if rq.code != 0 || !strings.HasPrefix(strings.TrimSpace(rq.stdout), dir) {
		t.Fatalf("requeue: %+v", rq)
	}
	if _, err := os.Stat(dpath + ".error"); !os.IsNotExist(err) {
		t.Fatal("the .error file survived the requeue")
	}
	after := gospool(t, "ls", "--spooler", dir)
	if strings.Contains(after.stdout, "dead") || strings.Count(after.stdout, "ready") != 2 {
		t.Fatalf("ls after requeue:\n%s", after.stdout)
	}
}
