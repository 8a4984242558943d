package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"

	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
)

// spoolFile runs gospool spool with no spooler on dir and returns the path
// of the file it wrote.
func spoolFile(t *testing.T, o cmdOpts, dir string, args ...string) string {
	t.Helper()
	args = append([]string{"spool", "--spooler", dir}, args...)
	r := gospoolOpts(t, o, args...).mustSucceed(t, args...)
	path := strings.TrimSuffix(r.stdout, "\n")
	if strings.Contains(path, "\n") || r.stderr != "" {
		t.Fatalf("gospool %q: stdout %q stderr %q, want one line", args, r.stdout, r.stderr)
	}
	return path
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// spool writes a uWSGI file when no spooler serves the directory; inspect
// --json prints exactly what was spooled.
func TestSpoolInspectRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Flags after KEY=VALUE, duplicates, empty values, '=' in values, UTF-8.
	path := spoolFile(t, cmdOpts{}, dir, "task=resize", "a=1", "a=2", "empty=", "eq=x=y", "uni=héllo ✓", "tab=a\tb", "--at", "1.5")
	prefix := filepath.Join(realDir(t, dir), spoolfile.Prefix)
	if !strings.HasPrefix(path, prefix) {
		t.Fatalf("spool printed %q, want a path starting with %s", path, prefix)
	}
	want := `{"path":"` + path + `","vars":[["task","resize"],["a","1"],["a","2"],["empty",""],["eq","x=y"],["uni","héllo ✓"],["tab","a\tb"],["at","1.5"]],"body_len":0,"body_sha256":"` + sha(nil) + `"}` + "\n"
	r := gospool(t, "inspect", "--json", path).mustSucceed(t)
	if r.stdout != want {
		t.Errorf("inspect --json:\n got %s\nwant %s", r.stdout, want)
	}
	// "at" is the file's mtime, as uWSGI does.
	if fi, err := os.Stat(path); err != nil || !fi.ModTime().Equal(time.Unix(1, 5e8)) {
		t.Errorf("mtime %v (%v), want 1.5 s after the epoch", fi.ModTime(), err)
	}
	// The path is printed as given: relative here.
	r = gospoolOpts(t, cmdOpts{dir: filepath.Dir(path)}, "inspect", "--json", filepath.Base(path)).mustSucceed(t)
	if r.stdout != strings.Replace(want, path, filepath.Base(path), 1) {
		t.Errorf("inspect --json with a relative path:\n got %s", r.stdout)
	}
	// Text form.
	r = gospool(t, "inspect", path).mustSucceed(t)
	wantText := path + "\n  task = resize\n  a = 1\n  a = 2\n  empty = \n  eq = x=y\n  uni = héllo ✓\n  tab = \"a\\tb\"\n  at = 1.5\n  body: none\n"
	if r.stdout != wantText {
		t.Errorf("inspect:\n got %q\nwant %q", r.stdout, wantText)
	}
}

func TestSpoolBody(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bodyFile := filepath.Join(t.TempDir(), "body.bin")
	body := []byte("\x00\xffbinary body\n")
	if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    cmdOpts
		args []string
		body []byte
	}{
		{"body=", cmdOpts{}, []string{"task=up", "body=hello", "k=v"}, []byte("hello")},
		{"file", cmdOpts{}, []string{"task=up", "--body-file", bodyFile}, body},
		{"stdin", cmdOpts{stdin: "from stdin"}, []string{"--body-file", "-", "task=up"}, []byte("from stdin")},
	} {
		path := spoolFile(t, c.o, dir, c.args...)
		tk, err := spoolfile.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tk.Body, c.body) {
			t.Errorf("%s: body %q, want %q", c.name, tk.Body, c.body)
		}
		for _, p := range tk.Pairs {
			if string(p.Key) == "body" {
				t.Errorf("%s: body became a pair", c.name)
			}
		}
		r := gospool(t, "inspect", path).mustSucceed(t)
		if want := "  body: " + strconv.Itoa(len(c.body)) + " bytes sha256 " + sha(c.body) + "\n"; !strings.HasSuffix(r.stdout, want) {
			t.Errorf("%s: inspect says %q, want it to end with %q", c.name, r.stdout, want)
		}
	}
}

// --priority writes into the priority sub-directory, as uWSGI does.
func TestSpoolPriority(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := spoolFile(t, cmdOpts{}, dir, "--priority", "5", "task=report")
	if want := filepath.Join(realDir(t, dir), "5", spoolfile.Prefix); !strings.HasPrefix(path, want) {
		t.Errorf("path %s, want it under %s", path, want)
	}
	tk, err := spoolfile.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := tk.Get("priority"); string(v) != "5" {
		t.Errorf("priority %q", v)
	}
	// stats counts the files in priority sub-directories too, due or not.
	spoolFile(t, cmdOpts{}, dir, "--at", strconv.FormatInt(time.Now().Unix()+3600, 10), "task=later")
	r, err := ring.Create(filepath.Join(dir, ring.FileName), ring.Options{Geometry: ring.Geometry{Lanes: 1, SlotsPerLane: 2, LaneBytes: 4096, Consumers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	res := gospool(t, "stats", "--spooler", dir, "--json").mustSucceed(t)
	want := `{"dir":"` + dir + `","ring":{"spooled":0,"spilled":0,"done":0,"retried":0,"failed":0,"ignored":0,"corrupt":0,"dead":0,"in_flight":0,` +
		`"ready":0,"claimed":0,"fill":0,"sleepers":0,"lanes":[],"consumers":[]},"files":{"due":1,"scheduled":1,"waiting_for_ordered":0}}` + "\n"
	if res.stdout != want {
		t.Errorf("stats --json:\n got %s\nwant %s", res.stdout, want)
	}
}

// A ring spool cannot use (another release's, damaged) does not stop the
// task: it goes to a spool file, with a warning naming the ring.
func TestSpoolUnusableRingFallsBackToFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ring.FileName), []byte("not a ring at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := gospool(t, "spool", "--spooler", dir, "task=x").mustSucceed(t)
	path := strings.TrimSuffix(r.stdout, "\n")
	if !strings.HasPrefix(filepath.Base(path), spoolfile.Prefix) {
		t.Fatalf("stdout %q, want the spool file's path", r.stdout)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.stderr, "gospool spool: warning: ") || !strings.Contains(r.stderr, ring.FileName) ||
		!strings.Contains(r.stderr, "the task goes to a spool file instead") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q", r.stderr)
	}
}

// The rule of "Where a task goes": the ring while a gospool spooler is
// attached, a spool file before one starts and after it stops (the ring
// file stays behind; a uWSGI spooler may be the one serving DIR now).
func TestSpoolRingOnlyWhileASpoolerRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "ran")
	p := startRun(t, nil, "--spooler", dir, "--spooler-exec", "cat >> "+out)
	waitLive(t, dir, p)
	r := gospool(t, "spool", "--spooler", dir, "id=attached").mustSucceed(t)
	if !strings.HasPrefix(r.stdout, "ring ") {
		t.Fatalf("a spooler attached: stdout %q, want the ring", r.stdout)
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("gospool run exited %d; stderr:\n%s", code, p.stderr)
	}
	path := spoolFile(t, cmdOpts{}, dir, "id=stopped")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// With spoolers that run without --spooler-ordered, a task with a priority
// never runs: spool says so on standard error, ls shows it waiting, stats
// counts it apart from the due files. Spoolers with --spooler-ordered run
// it, and spool says nothing.
func TestSpoolPriorityWaitsForAnOrderedSpooler(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "ran")
	p := startRun(t, nil, "--spooler", dir, "--spooler-exec", "cat >> "+out)
	waitLive(t, dir, p)
	r := gospool(t, "spool", "--spooler", dir, "--priority", "5", "id=prio").mustSucceed(t)
	if !strings.HasPrefix(r.stderr, "gospool spool: warning: ") || !strings.Contains(r.stderr, "--spooler-ordered") ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("spool --priority: stderr %q, want one warning naming --spooler-ordered", r.stderr)
	}
	if r := gospool(t, "spool", "--spooler", dir, "id=plain").mustSucceed(t); r.stderr != "" {
		t.Errorf("spool without a priority warned: %q", r.stderr)
	}
	testproc.WaitFor(t, 10*time.Second, "the plain task ran", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "plain")
	}, p.stderr)

	ls := gospool(t, "ls", "--spooler", dir).mustSucceed(t)
	if !strings.Contains(ls.stdout, "waiting file 5/"+spoolfile.Prefix) || !strings.Contains(ls.stdout, "--spooler-ordered") {
		t.Errorf("ls:\n%s", ls.stdout)
	}
	lsj := gospool(t, "ls", "--spooler", dir, "--json").mustSucceed(t)
	if !strings.Contains(lsj.stdout, `"state":"waiting"`) {
		t.Errorf("ls --json:\n%s", lsj.stdout)
	}
	st := gospool(t, "stats", "--spooler", dir).mustSucceed(t)
	if !strings.Contains(st.stdout, "spool files: 0 due now, 0 scheduled for later, 1 waiting for an ordered spooler") {
		t.Errorf("stats:\n%s", st.stdout)
	}
	var doc struct {
		Files map[string]int `json:"files"`
	}
	stj := gospool(t, "stats", "--spooler", dir, "--json").mustSucceed(t)
	if err := json.Unmarshal([]byte(stj.stdout), &doc); err != nil || doc.Files["due"] != 0 || doc.Files["waiting_for_ordered"] != 1 {
		t.Errorf("stats --json files %v (%v):\n%s", doc.Files, err, stj.stdout)
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("gospool run exited %d; stderr:\n%s", code, p.stderr)
	}

	// Ordered spoolers run it, and nobody warns.
	p = startRun(t, nil, "--spooler", dir, "--spooler-exec", "cat >> "+out, "--spooler-ordered")
	waitLive(t, dir, p)
	testproc.WaitFor(t, 10*time.Second, "the priority task ran", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "prio")
	}, p.stderr)
	if r := gospool(t, "spool", "--spooler", dir, "--priority", "5", "id=prio2").mustSucceed(t); r.stderr != "" {
		t.Errorf("spool --priority with ordered spoolers warned: %q", r.stderr)
	}
	if ls := gospool(t, "ls", "--spooler", dir).mustSucceed(t); strings.Contains(ls.stdout, "waiting") {
		t.Errorf("ls with ordered spoolers:\n%s", ls.stdout)
	}
}

// Spooling into a directory this user may not write is one line naming
// the directory's permission (its owner and mode, and who we are), never
// a warning about a ring file, whether the spoolers' ring is there or not.
// Run as a real unprivileged user: as root, the command runs as nobody.
func TestSpoolIntoADirectoryNotWritable(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(filepath.Dir(gospoolBin), 0o755)
	noRing := filepath.Join(base, "noring")
	withRing := filepath.Join(base, "withring")
	for _, d := range []string{noRing, withRing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := ring.Create(filepath.Join(withRing, ring.FileName), ring.Options{Geometry: ring.Geometry{Lanes: 1, SlotsPerLane: 2, LaneBytes: 4096, Consumers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}
	} else {
		for _, d := range []string{noRing, withRing} {
			os.Chmod(d, 0o555)
			defer os.Chmod(d, 0o755)
		}
	}
	for _, d := range []string{noRing, withRing} {
		c := exec.Command(gospoolBin, "spool", "--spooler", d, "task=x")
		c.Env = childEnv()
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		err := c.Run()
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%s: %v, want exit status 1; stdout %q stderr %q", d, err, stdout.String(), stderr.String())
		}
		msg := stderr.String()
		if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "gospool spool: ") || strings.Contains(msg, ring.FileName) ||
			!strings.Contains(msg, "spool directory "+d+": permission denied: ") || !strings.Contains(msg, "mode 0") {
			t.Errorf("%s: stderr %q, want one line naming the directory's permission, not the ring", d, msg)
		}
	}
}
