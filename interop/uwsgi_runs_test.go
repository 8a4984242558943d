package interop_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// gospoolSpool runs `gospool spool --spooler dir args...` and returns the
// spool file it wrote.
func gospoolSpool(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(gospoolBin, append([]string{"spool", "--spooler", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gospool spool %q: %v\n%s", args, err, stderr.Bytes())
	}
	path := strings.TrimSpace(string(out))
	if !strings.HasPrefix(filepath.Base(path), spoolfile.Prefix) || !strings.HasPrefix(path, dir+"/") {
		t.Fatalf("gospool spool %q printed %q, want a spool file in %s (no gospool spooler serves it)", args, out, dir)
	}
	return path
}

// uwsgiItem is one entry of the dict uWSGI passed to the spooler callable, as
// testdata/app.py dumps it: a str key or a bytes key (in hex), and its value.
type uwsgiItem struct {
	Str   *string `json:"str"`
	Hex   *string `json:"hex"`
	Value string  `json:"value"` // hex
}

// uwsgiRan is a task uWSGI's spooler ran, as testdata/app.py dumps it.
type uwsgiRan struct {
	Items []uwsgiItem `json:"items"`
	Time  float64     `json:"time"` // when the callable started
	Pid   int         `json:"pid"`
}

// entry is a dict entry in a readable form: "str:KEY" or "bytes:KEY".
type entry struct{ key, value string }

func (r uwsgiRan) entries(t testing.TB) []entry {
	var es []entry
	for _, it := range r.Items {
		v, err := hex.DecodeString(it.Value)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case it.Str != nil:
			es = append(es, entry{"str:" + *it.Str, string(v)})
		case it.Hex != nil:
			k, err := hex.DecodeString(*it.Hex)
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, entry{"bytes:" + string(k), string(v)})
		}
	}
	return es
}

// wantEntries is the dict uWSGI 2.0.21 builds for the task in the file
// named name: spooler_task_name (a str key) first, then the pairs, where a
// repeated key keeps its first position and takes its last value, as
// PyDict_SetItem does; then body (a str key) when the body is not empty.
func wantEntries(name string, t *task.Task) []entry {
	es := []entry{{"str:spooler_task_name", name}}
	index := map[string]int{}
	for _, p := range t.Pairs {
		k := "bytes:" + string(p.Key)
		if i, ok := index[k]; ok {
			es[i].value = string(p.Value)
			continue
		}
		index[k] = len(es)
		es = append(es, entry{k, string(p.Value)})
	}
	if len(t.Body) > 0 {
		es = append(es, entry{"str:body", string(t.Body)})
	}
	return es
}

func readUWSGIRan(out, name string) (r uwsgiRan, ok bool, err error) {
	raw, err := os.ReadFile(filepath.Join(out, name+".json"))
	if os.IsNotExist(err) {
		return r, false, nil
	} else if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, false, fmt.Errorf("%s.json: %v", name, err)
	}
	return r, true, nil
}

// gospool writes spool files (`gospool spool`, and spoolfile.Writer for
// what a command line cannot carry) and uWSGI's own spooler runs them: the
// callable must see every key, value and body byte for byte, duplicates as
// uWSGI's dict shows them, `at` respected and the priority directory run.
func TestGospoolWritesUWSGIRuns(t *testing.T) {
	h := newHarness(t)
	spool, out := h.mkdir("spool"), h.mkdir("out")

	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 100<<10) // binary, NULs included
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	bodyFile := filepath.Join(h.dir, "body")
	if err := os.WriteFile(bodyFile, body, 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(3 * time.Second).Unix()
	atText := strconv.FormatInt(at, 10)

	type spooledTask struct {
		name string     // subtest
		path string     // the spool file
		want *task.Task // what the file should hold
	}
	var tasks []spooledTask
	add := func(name string, want *task.Task, args ...string) {
		tasks = append(tasks, spooledTask{name, gospoolSpool(t, spool, args...), want})
	}
	add("plain", task.New("id", "a", "key", "value", "empty", "", "eq", "x=y", "utf8", "caf\u00e9"),
		"id=a", "key=value", "empty=", "eq=x=y", "utf8=caf\u00e9")
	add("duplicates", task.New("id", "b", "dup", "first", "other", "1", "dup", "second", "dup", "third"),
		"id=b", "dup=first", "other=1", "dup=second", "dup=third")
	// exec passes arguments as bytes: invalid UTF-8 survives.
	add("non-utf8", task.New("id", "c", "bin", "\xff\xfe\x80", "latin1", "caf\xe9"),
		"id=c", "bin=\xff\xfe\x80", "latin1=caf\xe9")
	withBody := task.New("id", "d")
	withBody.Body = body
	add("body-file", withBody, "id=d", "--body-file", bodyFile)
	bodyKey := task.New("id", "h")
	bodyKey.Body = []byte("the body key")
	add("body-key", bodyKey, "id=h", "body=the body key")
	add("priority", task.New("id", "f", "priority", "3"), "id=f", "--priority", "3")
	atPath := gospoolSpool(t, spool, "id=e", "--at", atText)

	// A NUL in a value and a 60000-byte value cannot go through exec's
	// arguments: spoolfile.Writer writes that one.
	w, err := spoolfile.NewWriter(spool, spoolfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	big := task.New("id", "g", "nul", "a\x00b", "big", strings.Repeat("0123456789", 6000))
	big.Body = []byte{0}
	path, err := w.Write(big)
	if err != nil {
		t.Fatal(err)
	}
	tasks = append(tasks, spooledTask{"writer", path, big})

	for _, st := range tasks {
		if st.name == "priority" {
			if filepath.Dir(st.path) != filepath.Join(spool, "3") {
				t.Errorf("gospool spool --priority 3 wrote %s, want it in %s/3/", st.path, spool)
			}
		} else if filepath.Dir(st.path) != spool {
			t.Errorf("%s: gospool wrote %s, want it in %s", st.name, st.path, spool)
		}
	}

	h.uwsgi(t, "uwsgi", "runner.ini", "INTEROP_SPOOL="+spool, "INTEROP_OUT="+out, "INTEROP_MODE=dump")

	waitUWSGIRan := func(t testing.TB, path string, timeout time.Duration) uwsgiRan {
		t.Helper()
		var r uwsgiRan
		h.waitFor(t, timeout, "uWSGI to run "+path, func() bool {
			var ok bool
			var err error
			r, ok, err = readUWSGIRan(out, filepath.Base(path))
			if err != nil {
				t.Fatal(err)
			}
			return ok
		})
		return r
	}
	checkEntries := func(t testing.TB, path string, got, want []entry) {
		t.Helper()
		show := func(es []entry) string {
			var b strings.Builder
			for _, e := range es {
				v := e.value
				if len(v) > 40 {
					v = fmt.Sprintf("%.40q...(%d bytes)", v, len(v))
				} else {
					v = strconv.Quote(v)
				}
				fmt.Fprintf(&b, "\n\t%s = %s", e.key, v)
			}
			return b.String()
		}
		if len(got) != len(want) {
			t.Errorf("uWSGI's callable got for %s:%s\nwant:%s", path, show(got), show(want))
			return
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("uWSGI's callable got for %s (entry %d differs):%s\nwant:%s", path, i, show(got), show(want))
				return
			}
		}
	}

	for _, st := range tasks {
		t.Run(st.name, func(t *testing.T) {
			r := waitUWSGIRan(t, st.path, 10*time.Second)
			checkEntries(t, st.path, r.entries(t), wantEntries(filepath.Base(st.path), st.want))
		})
	}

	t.Run("at", func(t *testing.T) {
		time.Sleep(time.Until(time.Unix(at, 0).Add(-1500 * time.Millisecond)))
		if r, ran, _ := readUWSGIRan(out, filepath.Base(atPath)); ran && floatTime(r.Time).Before(time.Unix(at, 0)) {
			t.Fatalf("uWSGI ran the task with at=%s %v before its time: gospool spool did not set the file's mtime?",
				atText, time.Unix(at, 0).Sub(floatTime(r.Time)))
		}
		r := waitUWSGIRan(t, atPath, time.Until(time.Unix(at, 0))+10*time.Second)
		if started := floatTime(r.Time); started.Before(time.Unix(at, 0)) {
			t.Errorf("uWSGI ran the task with at=%s at %s, before its time", atText, started.Format(time.RFC3339Nano))
		}
		checkEntries(t, atPath, r.entries(t), wantEntries(filepath.Base(atPath), task.New("id", "e", "at", atText)))
	})

	// uWSGI deleted every file it ran: nothing is left but the priority
	// directory, which uWSGI never removes.
	h.waitFor(t, 5*time.Second, "uWSGI to delete the spool files it ran", func() bool {
		left, _ := filepath.Glob(filepath.Join(spool, "*", spoolfile.Prefix+"*"))
		top, _ := filepath.Glob(filepath.Join(spool, spoolfile.Prefix+"*"))
		return len(left)+len(top) == 0
	})
}
