package python_test

// Tests of the Python package's core (python/gospool: spool(), the ring
// producer, the spool file writer, the msgpack encoder) against the Go
// side: the Python unit tests, shared record vectors both ways, Python
// producers feeding a Go spooler, a Python producer killed mid-write.
// Every test needs python3 and is skipped without it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/record"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// pythonDir is this package's directory, the root of the Python package
// (go test runs in it).
func pythonDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func python3(t *testing.T) string {
	t.Helper()
	p := testproc.NeedPython3(t)
	return p
}

// pyCmd is python3 -c script with the package importable.
func pyCmd(t *testing.T, script string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(python3(t), "-c", script)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pythonDir(t), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// runPy runs script to the end and returns its standard output.
func runPy(t *testing.T, script string, env ...string) string {
	t.Helper()
	return runPyArgs(t, script, nil, env...)
}

// runPyArgs is runPy with sys.argv[1:] = args.
func runPyArgs(t *testing.T, script string, args []string, env ...string) string {
	t.Helper()
	cmd := pyCmd(t, script, env...)
	cmd.Args = append(cmd.Args, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), out)
	}
	return string(out)
}

// The Python package's own unit tests (python/tests), as part of go test.
func TestPythonUnitTests(t *testing.T) {
	cmd := exec.Command(python3(t), "-m", "unittest", "discover", "-s", "tests")
	cmd.Dir = pythonDir(t)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pythonDir(t), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest discover -s tests: %v\n%s", err, out)
	}
	t.Logf("%s", lastLines(string(out), 3))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// vector is one entry of tests/vectors.json: a task, and the bytes of its
// ring record and of its spool file, as the Go encoders write them.
type vector struct {
	Name      string      `json:"name"`
	Pairs     [][2]string `json:"pairs"` // hex
	Body      *string     `json:"body"`  // hex; null: no body
	Record    string      `json:"record"`
	SpoolFile string      `json:"spoolfile"`
}

func (v vector) task(t *testing.T) *task.Task {
	t.Helper()
	tk := &task.Task{Pairs: []task.Pair{}}
	for _, p := range v.Pairs {
		tk.Pairs = append(tk.Pairs, task.Pair{Key: unhex(t, p[0]), Value: unhex(t, p[1])})
	}
	if v.Body != nil {
		tk.Body = unhex(t, *v.Body)
	}
	return tk
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorTasks() []struct {
	name string
	t    *task.Task
} {
	type nt = struct {
		name string
		t    *task.Task
	}
	kv := func(n int) *task.Task {
		tk := &task.Task{Pairs: []task.Pair{}}
		for i := 0; i < n; i++ {
			tk.Pairs = append(tk.Pairs, task.Pair{Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v" + strconv.Itoa(i))})
		}
		return tk
	}
	withBody := func(tk *task.Task, b []byte) *task.Task { tk.Body = b; return tk }
	return []nt{
		{"empty task, no body", &task.Task{Pairs: []task.Pair{}}},
		{"empty task, empty body", withBody(&task.Task{Pairs: []task.Pair{}}, []byte{})},
		{"record doc example", task.New("task", "resize")},
		{"spool file doc example", task.New("hello", "world")},
		{"duplicates keep order", task.New("b", "1", "a", "2", "b", "3")},
		{"empty value", task.New("empty", "")},
		{"binary key and value", &task.Task{Pairs: []task.Pair{{Key: []byte{0, 0xff, 'k'}, Value: []byte{0xc0, 0xc4, 0, 0x93}}}}},
		{"special keys are pairs", task.New("spooler", "/var/spool/x", "priority", "3", "at", "1700000000.5", "ud_spool_func", "f")},
		{"decorator task", withBody(task.New("ud_spool_func", "send_email", "ud_spool_ret", "-2", "to", "ada@example.com"), []byte("hello body"))},
		{"7 pairs: fixarray of 14", kv(7)},
		{"8 pairs: array 16 of 16", kv(8)},
		{"value of 31, 32, 255 bytes: bin 8", task.New("a", strings.Repeat("x", 31), "b", strings.Repeat("y", 32), "c", strings.Repeat("z", 255))},
		{"value of 256 bytes: bin 16", task.New("big", strings.Repeat("w", 256))},
		{"key of 300 bytes", task.New(strings.Repeat("K", 300), "v")},
		{"body of 255 bytes", withBody(task.New("t", "1"), bytes.Repeat([]byte{0xab}, 255))},
		{"body of 300 bytes: bin 16", withBody(task.New("t", "1"), bytes.Repeat([]byte{0xcd}, 300))},
		{"utf-8", task.New("name", "Zoë ☃", "ключ", "значение")},
	}
}

// The shared vectors: Go's encoders produce exactly the stored bytes, and
// Go's decoders read them back (Python's encoder is held to the same bytes
// by tests/test_msgpack.py and tests/test_spoolfile.py). With
// GOSPOOL_UPDATE_VECTORS=1 the file is rewritten from the Go encoders.
func TestSharedVectors(t *testing.T) {
	path := filepath.Join("tests", "vectors.json")
	if os.Getenv("GOSPOOL_UPDATE_VECTORS") == "1" {
		var vs []vector
		for _, c := range vectorTasks() {
			rec, err := record.Append(nil, c.t)
			if err != nil {
				t.Fatal(err)
			}
			sf, err := spoolfile.Encode(c.t)
			if err != nil {
				t.Fatal(err)
			}
			v := vector{Name: c.name, Pairs: [][2]string{}, Record: hex.EncodeToString(rec), SpoolFile: hex.EncodeToString(sf)}
			for _, p := range c.t.Pairs {
				v.Pairs = append(v.Pairs, [2]string{hex.EncodeToString(p.Key), hex.EncodeToString(p.Value)})
			}
			if c.t.Body != nil {
				b := hex.EncodeToString(c.t.Body)
				v.Body = &b
			}
			vs = append(vs, v)
		}
		data, err := json.MarshalIndent(map[string]any{
			"comment": "Shared test vectors: tasks and their ring record (spooler/record) and uWSGI spool file (spooler/spoolfile) bytes, all hex. Generated by the Go encoders: GOSPOOL_UPDATE_VECTORS=1 go test -run TestSharedVectors ./python/",
			"vectors": vs,
		}, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Vectors []vector }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < len(vectorTasks()) {
		t.Fatalf("%s has %d vectors, want %d", path, len(file.Vectors), len(vectorTasks()))
	}
	for _, v := range file.Vectors {
		tk := v.task(t)
		rec, err := record.Append(nil, tk)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(rec); got != v.Record {
			t.Errorf("%s: Go record\n %s\nvector\n %s", v.Name, got, v.Record)
		}
		dec, err := record.Decode(unhex(t, v.Record))
		if err != nil {
			t.Errorf("%s: record.Decode: %v", v.Name, err)
		} else if !sameTask(dec, tk) {
			t.Errorf("%s: record.Decode = %v, want %v", v.Name, dec, tk)
		}
		sf, err := spoolfile.Encode(tk)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(sf); got != v.SpoolFile {
			t.Errorf("%s: Go spool file\n %s\nvector\n %s", v.Name, got, v.SpoolFile)
		}
	}
}

// sameTask compares pairs and body; an empty body equals no body only in
// spool files, so records are compared exactly.
func sameTask(a, b *task.Task) bool {
	if len(a.Pairs) != len(b.Pairs) || (a.Body == nil) != (b.Body == nil) || !bytes.Equal(a.Body, b.Body) {
		return false
	}
	for i := range a.Pairs {
		if !bytes.Equal(a.Pairs[i].Key, b.Pairs[i].Key) || !bytes.Equal(a.Pairs[i].Value, b.Pairs[i].Value) {
			return false
		}
	}
	return true
}

// randomTask makes tasks of every shape a record can take, big ones
// included: bin 16 and bin 32 values, array 16 and array 32 pair lists.
func randomTask(r *rand.Rand, i int) *task.Task {
	blob := func(n int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		return b
	}
	tk := &task.Task{Pairs: []task.Pair{}}
	npairs := r.IntN(12)
	switch i {
	case 0:
		npairs = 40000 // 80000 elements: array 32
	case 1:
		npairs = 100 // array 16
	}
	for j := 0; j < npairs; j++ {
		kl, vl := 1+r.IntN(20), r.IntN(40)
		if i >= 2 && r.IntN(10) == 0 {
			vl = []int{255, 256, 65535, 65536, 70000}[r.IntN(5)]
		}
		tk.Pairs = append(tk.Pairs, task.Pair{Key: blob(kl), Value: blob(vl)})
	}
	switch r.IntN(4) {
	case 0: // no body
	case 1:
		tk.Body = []byte{}
	case 2:
		tk.Body = blob(r.IntN(300))
	case 3:
		tk.Body = blob([]int{65535, 65536, 100000}[r.IntN(3)])
	}
	return tk
}

// Records both ways with generated tasks: Python encodes tasks Go made up
// and must produce Go's bytes; Python decodes Go's records and must find
// the tasks.
func TestRecordsBothWays(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tasks []*task.Task
	for i := 0; i < 60; i++ {
		tasks = append(tasks, randomTask(r, i))
	}
	type jtask struct {
		Pairs  [][2]string `json:"pairs"`
		Body   *string     `json:"body"`
		Record string      `json:"record"`
	}
	var in []jtask
	for _, tk := range tasks {
		rec, err := record.Append(nil, tk)
		if err != nil {
			t.Fatal(err)
		}
		j := jtask{Pairs: [][2]string{}, Record: hex.EncodeToString(rec)}
		for _, p := range tk.Pairs {
			j.Pairs = append(j.Pairs, [2]string{hex.EncodeToString(p.Key), hex.EncodeToString(p.Value)})
		}
		if tk.Body != nil {
			b := hex.EncodeToString(tk.Body)
			j.Body = &b
		}
		in = append(in, j)
	}
	data, _ := json.Marshal(in)
	inPath := filepath.Join(t.TempDir(), "tasks.json")
	if err := os.WriteFile(inPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// For each task: Python's encoding of it, and its decoding of Go's
	// record, re-encoded as JSON like the input.
	out := runPy(t, `
import json, sys
from gospool import _msgpack
for j in json.load(open(`+strconv.Quote(inPath)+`)):
    pairs = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in j["pairs"]]
    body = None if j["body"] is None else bytes.fromhex(j["body"])
    mine = _msgpack.encode_record(pairs, body).hex()
    dp, db = _msgpack.decode_record(bytes.fromhex(j["record"]))
    print(json.dumps({"record": mine, "pairs": [[k.hex(), v.hex()] for k, v in dp], "body": None if db is None else db.hex()}))
`)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 64<<20)
	i := 0
	for sc.Scan() {
		var got jtask
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if i >= len(in) {
			t.Fatalf("python printed more lines than tasks")
		}
		want := in[i]
		if got.Record != want.Record {
			t.Errorf("task %d: Python's record differs from Go's (%d vs %d hex chars)", i, len(got.Record), len(want.Record))
		}
		gotTask, err := record.Decode(unhex(t, got.Record))
		if err != nil {
			t.Errorf("task %d: record.Decode of Python's record: %v", i, err)
		} else if !sameTask(gotTask, tasks[i]) {
			t.Errorf("task %d: Python's record decodes to another task", i)
		}
		if !slices.Equal(got.Pairs, want.Pairs) || (got.Body == nil) != (want.Body == nil) || (got.Body != nil && *got.Body != *want.Body) {
			t.Errorf("task %d: Python decoded Go's record to another task", i)
		}
		i++
	}
	if i != len(in) {
		t.Fatalf("python printed %d lines for %d tasks", i, len(in))
	}
}

// newRing creates a ring in a fresh spool directory with Go, as a gospool
// spooler would.
func newRing(t *testing.T, g ring.Geometry) (*ring.Ring, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := ring.Create(filepath.Join(dir, ring.FileName), ring.Options{Geometry: g})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// Files Python writes are uWSGI spool files Go reads: pairs, body, the
// `at` mtime, the priority directory, mode 0600, uWSGI's name, no lock
// left behind.
func TestPythonSpoolFilesReadByGo(t *testing.T) {
	dir := t.TempDir()
	out := runPy(t, `
import json, gospool
gospool.configure([`+strconv.Quote(dir)+`], ring=False)
names = [
    gospool.spool({b"task": b"plain", b"bin": bytes(range(256))}),
    gospool.spool({b"task": b"body", b"body": b"\x00\xffbody"}),
    gospool.spool({b"task": b"at", b"at": b"1700000000.25"}),
    gospool.spool({b"task": b"prio", b"priority": b"7"}),
    gospool.send_to_spooler({b"task": b"empty-body", b"body": b""}),
]
print(json.dumps([n.decode() for n in names]))
`)
	var paths []string
	if err := json.Unmarshal([]byte(out), &paths); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	host, _ := os.Hostname()
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	want := []struct {
		dir  string
		task *task.Task
		at   time.Time
	}{
		{dir, &task.Task{Pairs: []task.Pair{{Key: []byte("task"), Value: []byte("plain")}, {Key: []byte("bin"), Value: bin}}}, time.Time{}},
		{dir, &task.Task{Pairs: []task.Pair{{Key: []byte("task"), Value: []byte("body")}}, Body: []byte("\x00\xffbody")}, time.Time{}},
		{dir, task.New("task", "at", "at", "1700000000.25"), time.Unix(1700000000, 250000000)},
		{filepath.Join(dir, "7"), task.New("task", "prio", "priority", "7"), time.Time{}},
		{dir, task.New("task", "empty-body"), time.Time{}},
	}
	if len(paths) != len(want) {
		t.Fatalf("got %d paths: %q", len(paths), paths)
	}
	for i, p := range paths {
		w := want[i]
		if filepath.Dir(p) != w.dir {
			t.Errorf("%s: want it in %s", p, w.dir)
		}
		prefix := spoolfile.Prefix + host + "_"
		if base := filepath.Base(p); !strings.HasPrefix(base, prefix) || len(strings.Split(strings.TrimPrefix(base, prefix), "_")) != 5 {
			t.Errorf("%s: not a uWSGI spool file name (%s<pid>_<counter>_<rand>_<sec>_<usec>)", base, prefix)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
		if !w.at.IsZero() && !fi.ModTime().Equal(w.at) {
			t.Errorf("%s: mtime %v, want the task's at %v", p, fi.ModTime(), w.at)
		}
		f, err := spoolfile.Open(p) // takes the lock without waiting: none left behind
		if err != nil {
			t.Fatalf("spoolfile.Open(%s): %v", p, err)
		}
		got, err := f.Task()
		if err != nil {
			t.Errorf("%s: %v", p, err)
		} else if got.String() != w.task.String() || !bytes.Equal(got.Body, w.task.Body) {
			t.Errorf("%s: Go reads %v, want %v", p, got, w.task)
		}
		f.Close()
	}
}

// A Go consumer asleep on the ring's futex is woken by a Python push.
func TestPythonPushWakesSleepingConsumer(t *testing.T) {
	r, dir := newRing(t, ring.Geometry{Lanes: 2, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 4})
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	woke := make(chan struct{})
	go func() {
		// An hour: only a FUTEX_WAKE ends this wait within the test's time.
		c.Wait(time.Hour, 0, nil)
		close(woke)
	}()
	// Wait until the consumer is counted as a sleeper, so that the Python
	// producer sees it and must wake it.
	for deadline := time.Now().Add(30 * time.Second); r.Stats().Sleepers == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the consumer never went to sleep")
		}
		time.Sleep(time.Millisecond)
	}
	out := runPy(t, `
import gospool
gospool.configure([`+strconv.Quote(dir)+`])
print(gospool.spool({b"task": b"wake"}).decode())
`)
	if !strings.HasPrefix(out, "ring:") {
		t.Fatalf("the task did not go into the ring: %q", out)
	}
	select {
	case <-woke:
	case <-time.After(60 * time.Second):
		t.Fatal("the sleeping consumer was not woken by the Python push")
	}
	rec, ok, err := c.Claim()
	if err != nil || !ok {
		t.Fatalf("Claim after the wake-up: %v %v", ok, err)
	}
	tk, err := record.Decode(rec.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := tk.Get("task"); string(v) != "wake" {
		t.Fatalf("claimed %v", tk)
	}
	if want := "ring:" + strings.TrimPrefix(strings.TrimSpace(out), "ring:"); rec.String() != want {
		t.Errorf("the consumer names the record %s, spool() returned %s", rec, want)
	}
	c.Done(rec)
}

// Python producers, 3 processes of 4 threads, 2000 tasks each, into a
// small ring that a Go spooler drains: 2 lanes for 3 processes (one of
// them spills everything to spool files), 16 slots and 4 KiB of data per
// lane (wrap-around of slots and data all along, and full lanes). Every
// task runs exactly once.
func TestPythonProducersGoSpooler(t *testing.T) {
	const procs, threads, perThread = 3, 4, 2000
	python3(t)
	dir := t.TempDir()
	geo := ring.Geometry{Lanes: 2, SlotsPerLane: 16, LaneBytes: 4096, Consumers: 4}
	s, err := spooler.New(spooler.Config{Dir: dir, Concurrency: 4, Quiet: true, Logger: log.New(io.Discard, "", 0),
		Ring: ring.Options{Geometry: geo}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	s.Handle("count", func(ctx context.Context, tk *spooler.Task) error {
		id, _ := tk.Get("id")
		mu.Lock()
		seen[string(id)]++
		mu.Unlock()
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-s.Ready()

	script := `
import os, sys, threading, gospool
gospool.configure([sys.argv[1]])
P = sys.argv[2]
ring = files = 0
lock = threading.Lock()
def work(th):
    global ring, files
    r = f = 0
    for i in range(int(sys.argv[3])):
        name = gospool.spool({b"task": b"count", b"id": b"%s-%d-%d" % (P.encode(), th, i)})
        if name.startswith(b"ring:"):
            r += 1
        else:
            f += 1
    with lock:
        ring += r
        files += f
ts = [threading.Thread(target=work, args=(th,)) for th in range(int(sys.argv[4]))]
for t in ts: t.start()
for t in ts: t.join()
print("ring", ring, "files", files)
`
	var wg sync.WaitGroup
	outs := make([]string, procs)
	errs := make([]error, procs)
	for p := 0; p < procs; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(python3(t), "-c", script, dir, strconv.Itoa(p), strconv.Itoa(perThread), strconv.Itoa(threads))
			cmd.Env = append(os.Environ(), "PYTHONPATH="+pythonDir(t))
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			out, err := cmd.CombinedOutput()
			outs[p], errs[p] = string(out), err
		}()
	}
	wg.Wait()
	ringTasks, fileTasks := 0, 0
	for p := range outs {
		if errs[p] != nil {
			t.Fatalf("producer %d: %v\n%s", p, errs[p], outs[p])
		}
		var r, f int
		if _, err := fmt.Sscanf(outs[p], "ring %d files %d", &r, &f); err != nil {
			t.Fatalf("producer %d printed %q", p, outs[p])
		}
		ringTasks += r
		fileTasks += f
	}
	total := procs * threads * perThread
	t.Logf("%d tasks: %d through the ring, %d spilled to spool files", total, ringTasks, fileTasks)
	if ringTasks+fileTasks != total || ringTasks == 0 || fileTasks == 0 {
		t.Errorf("want both ring hand-offs and spills, %d in all", total)
	}

	deadline := time.Now().Add(5 * time.Minute)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks ran", n, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would show up now
	mu.Lock()
	defer mu.Unlock()
	for p := 0; p < procs; p++ {
		for th := 0; th < threads; th++ {
			for i := 0; i < perThread; i++ {
				id := fmt.Sprintf("%d-%d-%d", p, th, i)
				if seen[id] != 1 {
					t.Fatalf("task %s ran %d times", id, seen[id])
				}
			}
		}
	}
	r, err := ring.Open(filepath.Join(dir, ring.FileName), ring.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st := r.Stats()
	if st.Spooled != uint64(ringTasks) || st.Spilled != uint64(fileTasks) || st.Corrupt != 0 || st.Ready != 0 {
		t.Errorf("ring counters: spooled %d spilled %d corrupt %d ready %d; the producers counted %d and %d",
			st.Spooled, st.Spilled, st.Corrupt, st.Ready, ringTasks, fileTasks)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, spoolfile.Prefix+"*")); len(left) != 0 {
		t.Errorf("%d spool files left", len(left))
	}
}

// victim runs a Python producer that pushes n tasks "victim-I" into the
// ring, printing "ack NAME" for each, then parks at failpoint at (if any)
// in the next push.
type victim struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *bytes.Buffer
	mu     *sync.Mutex
}

func startVictim(t *testing.T, dir string, n int, at string) *victim {
	t.Helper()
	script := `
import os, sys, gospool
from gospool import _ring
gospool.configure([sys.argv[1]], full_wait=0)
fp = _ring._FAILPOINT
_ring._FAILPOINT = ""  # armed for the push after the acknowledged ones
for i in range(int(sys.argv[2])):
    name = gospool.spool({b"task": b"victim", b"id": b"victim-%d" % i})
    assert name.startswith(b"ring:"), name
    print("ack victim-%d" % i, flush=True)
_ring._FAILPOINT = fp
if fp:
    gospool.spool({b"task": b"victim", b"id": b"victim-torn", b"pad": b"x" * 100})
    print("ack victim-torn", flush=True)
`
	cmd := pyCmd(t, script, "GOSPOOL_FAILPOINT="+at)
	cmd.Args = append(cmd.Args, dir, strconv.Itoa(n))
	v := &victim{cmd: cmd, lines: make(chan string, 100), stderr: &bytes.Buffer{}, mu: &sync.Mutex{}}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			v.lines <- sc.Text()
		}
		close(v.lines)
	}()
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			v.mu.Lock()
			v.stderr.WriteString(sc.Text() + "\n")
			v.mu.Unlock()
		}
	}()
	return v
}

func (v *victim) waitStderr(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; {
		v.mu.Lock()
		got := v.stderr.String()
		v.mu.Unlock()
		if strings.Contains(got, s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Python producer never wrote %q; stderr:\n%s", s, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drainIDs claims every ready record, marks it done (counting it as a
// spooler does: producers waiting for room watch that count) and returns
// the records' ids.
func drainIDs(r *ring.Ring, c *ring.Consumer) ([]string, error) {
	var ids []string
	for {
		rec, ok, err := c.Claim()
		if err != nil {
			return ids, fmt.Errorf("Claim: %w", err)
		}
		if !ok {
			return ids, nil
		}
		tk, err := record.Decode(rec.Payload)
		if err != nil {
			return ids, fmt.Errorf("record %s: %w", rec, err)
		}
		id, _ := tk.Get("id")
		ids = append(ids, string(id))
		if err := c.Done(rec); err != nil {
			return ids, err
		}
		r.Add(ring.Done, 1)
	}
}

func mustDrain(t *testing.T, r *ring.Ring, c *ring.Consumer) []string {
	t.Helper()
	ids, err := drainIDs(r, c)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// A Python producer killed with SIGKILL at each step of a push leaves
// nothing half-run: a record torn before its publish is never claimed, one
// published is complete; the lane is then taken over by the next Python
// producer, which wraps it around without trouble. The ring has one lane,
// so the next producer must get the victim's lane.
func TestPythonProducerKilledMidWrite(t *testing.T) {
	python3(t)
	cases := []struct {
		at        string
		published bool // the parked record was published before the kill
		torn      bool // it was left WRITING
	}{
		{"ring-producer-reserved", false, false},
		{"ring-producer-writing", false, true},
		{"ring-producer-payload-half", false, true},
		{"ring-producer-payload-written", false, true},
		{"ring-producer-published", true, false},
		{"ring-producer-head-advanced", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.at, func(t *testing.T) {
			r, dir := newRing(t, ring.Geometry{Lanes: 1, SlotsPerLane: 8, LaneBytes: 4096, Consumers: 4})
			v := startVictim(t, dir, 3, tc.at)
			v.waitStderr(t, "failpoint "+tc.at+" reached")
			var acked []string
			for len(acked) < 3 {
				acked = append(acked, strings.TrimPrefix(<-v.lines, "ack "))
			}
			// Alive and parked: the lane is its own, RecoverLanes leaves it.
			if lanes, torn := r.RecoverLanes(); lanes != 0 || torn != 0 {
				t.Fatalf("RecoverLanes with the producer alive = (%d, %d)", lanes, torn)
			}
			if st := r.Stats(); len(st.Lanes) != 1 || st.Lanes[0].OwnerPid != v.cmd.Process.Pid {
				t.Fatalf("before the kill, lanes %+v, want lane 0 owned by pid %d", st.Lanes, v.cmd.Process.Pid)
			}
			v.cmd.Process.Signal(syscall.SIGKILL)
			v.cmd.Wait()
			// What a master does when it reaps a producer: the kernel dropped
			// the Python process's OFD lock, so the lane is recovered.
			wantTorn := 0
			if tc.torn {
				wantTorn = 1
			}
			if lanes, torn := r.RecoverLanes(); lanes != 1 || torn != wantTorn {
				t.Fatalf("RecoverLanes after the kill = (%d, %d), want (1, %d)", lanes, torn, wantTorn)
			}

			c, err := r.Consumer()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			want := slices.Clone(acked)
			if tc.published {
				want = append(want, "victim-torn") // complete, never acknowledged: at least once
			}
			if got := mustDrain(t, r, c); !slices.Equal(got, want) {
				t.Fatalf("consumer ran %q, want %q", got, want)
			}
			if st := r.Stats(); st.Corrupt != 0 {
				t.Fatalf("corrupt records: %+v", st)
			}

			// The next Python producer takes the (only) lane over and wraps
			// its 8 slots several times.
			out := runPyArgs(t, `
import sys, gospool
gospool.configure([sys.argv[1]], full_wait=0)
for i in range(30):
    n = gospool.spool({b"task": b"after", b"id": b"after-%d" % i})
    print(n.decode())
`, []string{dir}, "GOSPOOL_FAILPOINT=")
			// The script above ran to completion before we drained: it
			// filled the 8 slots and spilled the rest (full_wait=0).
			got := mustDrain(t, r, c)
			files, _ := filepath.Glob(filepath.Join(dir, spoolfile.Prefix+"*"))
			if len(got) == 0 || len(got)+len(files) != 30 {
				t.Fatalf("after the takeover: %d records in the ring, %d files, want 30 in all; %s", len(got), len(files), out)
			}
			for i, id := range got {
				if id != "after-"+strconv.Itoa(i) {
					t.Fatalf("after the takeover the ring holds %q", got)
				}
			}
			// And the lane keeps working across laps, with a consumer.
			runWithConsumer(t, dir, r, c, 40)
		})
	}
}

// runWithConsumer pushes n tasks from Python while a Go goroutine drains
// the ring, so the lane wraps around many times; all n must arrive, in
// the ring, in order.
func runWithConsumer(t *testing.T, dir string, r *ring.Ring, c *ring.Consumer, n int) {
	t.Helper()
	stop := make(chan struct{})
	type result struct {
		ids []string
		err error
	}
	got := make(chan result)
	go func() {
		var ids []string
		for {
			more, err := drainIDs(r, c)
			ids = append(ids, more...)
			if err != nil {
				got <- result{ids, err}
				return
			}
			select {
			case <-stop:
				more, err := drainIDs(r, c)
				got <- result{append(ids, more...), err}
				return
			default:
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	out := runPyArgs(t, `
import sys, gospool
gospool.configure([sys.argv[1]], full_wait=30.0)
ring = 0
for i in range(int(sys.argv[2])):
    if gospool.spool({b"task": b"lap", b"id": b"lap-%d" % i}).startswith(b"ring:"):
        ring += 1
print(ring)
`, []string{dir, strconv.Itoa(n)})
	close(stop)
	res := <-got
	if res.err != nil {
		t.Fatal(res.err)
	}
	ids := res.ids
	if strings.TrimSpace(out) != strconv.Itoa(n) || len(ids) != n {
		t.Fatalf("%s of %d went into the ring, the consumer got %d", strings.TrimSpace(out), n, len(ids))
	}
	for i, id := range ids {
		if id != "lap-"+strconv.Itoa(i) {
			t.Fatalf("record %d is %q", i, id)
		}
	}
}

// A ring file Python cannot use is a clear error or a spool file, never a
// crash: another version, a damaged header.
func TestPythonRefusesBadRing(t *testing.T) {
	python3(t)
	_, dir := newRing(t, ring.Geometry{Lanes: 1, SlotsPerLane: 8, LaneBytes: 4096, Consumers: 4})
	path := filepath.Join(dir, ring.FileName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{1}, 8); err != nil { // version 1
		t.Fatal(err)
	}
	f.Close()
	out := runPyArgs(t, `
import sys, warnings, gospool
from gospool import _ring
try:
    _ring.Ring(sys.argv[1] + "/gospool.ring")
except _ring.RingVersionError as e:
    print("error:", e)
gospool.configure([sys.argv[1]])
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    name = gospool.spool({b"task": b"x"})
print("warning:", w[0].message if w else None)
print("name:", name.decode())
`, []string{dir})
	if !strings.Contains(out, "error: ring "+path+": ring file of another version: file has version 1") ||
		!strings.Contains(out, "warning: gospool: ring "+path) || !strings.Contains(out, "name: "+dir+"/"+spoolfile.Prefix) {
		t.Fatalf("python said:\n%s", out)
	}
}

// A ring file created by the Python helper (tests and tools use it) is
// one Go opens, with the same geometry: the header encodings agree.
func TestPythonCreatedRingOpensInGo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ring.FileName)
	runPyArgs(t, `
import sys
from gospool import _ring
_ring.create_file(sys.argv[1], _ring.Geometry(lanes=3, slots_per_lane=64, lane_bytes=8192, consumers=5))
r = _ring.Ring(sys.argv[1])
print(r.push(b"from python"))
`, []string{path})
	want := ring.Geometry{Lanes: 3, SlotsPerLane: 64, LaneBytes: 8192, Consumers: 5}
	r, err := ring.Open(path, ring.Options{Geometry: want})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec, ok, err := c.Claim()
	if err != nil || !ok || string(rec.Payload) != "from python" || rec.String() != "ring:0:0" {
		t.Fatalf("Claim = %v %v %v", rec, ok, err)
	}
}
