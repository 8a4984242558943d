package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
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

// A file a gospool spooler runs shows its process: its OFD lock names
// none, the master's scoreboard does.
func TestLsRunningFileShowsItsSpooler(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startRun(t, nil, "--spooler", dir, "--spooler-exec", "sleep 30")
	waitLive(t, dir, p)
	w, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path, err := w.Write(task.New("id", "slow"))
	if err != nil {
		t.Fatal(err)
	}
	var out string
	testproc.WaitFor(t, 30*time.Second, "ls to show the running file with a pid", func() bool {
		out = gospool(t, "ls", "--spooler", dir).stdout
		return strings.Contains(out, "running file "+filepath.Base(path)+"  in pid ")
	}, p.stderr)
	var spoolerPid string
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if _, rest, ok := strings.Cut(line, "spawned the gospool spooler on dir "); ok {
			spoolerPid = rest[strings.LastIndex(rest, " ")+1:]
		}
	}
	if spoolerPid == "" || !strings.Contains(out, "in pid "+spoolerPid+"\n") {
		t.Errorf("ls:\n%s\nwant the spooler's pid %q", out, spoolerPid)
	}
	p.stop(t, syscall.SIGINT)
}
