package interop_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// recordCmd is the --spooler-exec command of TestUWSGIWritesGospoolRuns. It
// saves the task's JSON as $INTEROP_OUT/NAME.json (renamed into place last),
// where NAME is the spool file's name, its start time, GOSPOOL_ATTEMPT and
// GOSPOOL_TASK_NAME as NAME.when, and appends NAME to $INTEROP_OUT/order.
const recordCmd = `start=$(date +%s.%N)
doc=$(cat)
name=${GOSPOOL_TASK_NAME##*/}
printf '%s\n' "$name" >> "$INTEROP_OUT/order"
printf '%s %s %s\n' "$start" "$GOSPOOL_ATTEMPT" "$GOSPOOL_TASK_NAME" > "$INTEROP_OUT/$name.when"
printf '%s\n' "$doc" > "$INTEROP_OUT/$name.tmp"
mv "$INTEROP_OUT/$name.tmp" "$INTEROP_OUT/$name.json"`

// The fixed tasks of testdata/app.py.
var (
	appPlain = [][2]string{{"id", "plain"}, {"name", "caf\u00e9"}, {"bin", "\x00\xff\xfe\x80"}, {"empty", ""}, {"eq", "a=b"}}
	appBody  = append(bytes.Repeat(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), 16), "\x00end"...)
)

// ranTask is a task that recordCmd ran.
type ranTask struct {
	doc     task.Document
	start   time.Time // when the command started
	attempt string    // GOSPOOL_ATTEMPT
	name    string    // GOSPOOL_TASK_NAME
}

func (r ranTask) vars() [][2]string {
	var vs [][2]string
	for _, kv := range r.doc.Vars {
		vs = append(vs, [2]string{string(kv[0]), string(kv[1])})
	}
	return vs
}

func (r ranTask) get(key string) string {
	for _, kv := range r.doc.Vars {
		if string(kv[0]) == key {
			return string(kv[1])
		}
	}
	return ""
}

// readRan reads what recordCmd saved for the task in the spool file named
// name; ok is false until the task has run.
func readRan(out, name string) (r ranTask, ok bool, err error) {
	raw, err := os.ReadFile(filepath.Join(out, name+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return r, false, nil
	} else if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(raw, &r.doc); err != nil {
		return r, false, fmt.Errorf("the exec command's stdin for %s is not a task document: %v\n%s", name, err, raw)
	}
	when, err := os.ReadFile(filepath.Join(out, name+".when"))
	if err != nil {
		return r, false, err
	}
	f := strings.Fields(string(when))
	if len(f) != 3 {
		return r, false, fmt.Errorf("%s.when: %q", name, when)
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return r, false, fmt.Errorf("%s.when: %v", name, err)
	}
	r.start = floatTime(sec)
	r.attempt, r.name = f[1], f[2]
	return r, true, nil
}

func floatTime(sec float64) time.Time {
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(frac*1e9))
}

// waitRan waits until recordCmd has run the task in the spool file path.
func (h *harness) waitRan(t testing.TB, out, path string, timeout time.Duration) ranTask {
	t.Helper()
	name := filepath.Base(path)
	var r ranTask
	h.waitFor(t, timeout, "gospool to run "+path, func() bool {
		var ok bool
		var err error
		r, ok, err = readRan(out, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	if r.name != name {
		t.Errorf("GOSPOOL_TASK_NAME=%q for %s, want the bare file name %q, as uWSGI's spooler_task_name", r.name, path, name)
	}
	return r
}

// waitGone waits until gospool has deleted a spool file it ran.
func (h *harness) waitGone(t testing.TB, path string) {
	t.Helper()
	h.waitFor(t, 10*time.Second, "the spool file "+path+" to be deleted after its task ran", func() bool {
		_, err := os.Lstat(path)
		return errors.Is(err, fs.ErrNotExist)
	})
}

func checkVars(t testing.TB, r ranTask, want [][2]string) {
	t.Helper()
	got := r.vars()
	if len(got) != len(want) {
		t.Errorf("gospool's command got vars %q, want %q", got, want)
		return
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("gospool's command got vars %q, want %q (pair %d differs)", got, want, i)
			return
		}
	}
}

// query builds a query string keeping the pairs' order (the app spools them
// in that order).
func query(kv ...string) string {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(kv[i]) + "=" + url.QueryEscape(kv[i+1]))
	}
	return b.String()
}

// uWSGI writes spool files with uwsgi.spool() (into spooler-external
// directories, so no uWSGI spooler runs them) and `gospool run` runs them:
// vars byte for byte, the body, `at`, and priority sub-directories with and
// without --spooler-ordered.
func TestUWSGIWritesGospoolRuns(t *testing.T) {
	h := newHarness(t)
	spool, ordered, out := h.mkdir("spool"), h.mkdir("ordered"), h.mkdir("out")
	outOrdered := h.mkdir("out-ordered")
	u := h.uwsgi(t, "uwsgi", "writer.ini", "INTEROP_SPOOL="+spool, "INTEROP_SPOOL2="+ordered)
	h.gospoolRun(t, "gospool", gospoolBin, []string{"INTEROP_OUT=" + out},
		"--spooler", spool, "--spooler-exec", recordCmd, "--spooler-frequency", "1")

	plain := u.spool(t, "/plain")
	body := u.spool(t, "/body")
	prio := u.spool(t, "/spool?"+query("id", "prio", "priority", "3"))
	prioSpooled := time.Now()
	at := u.spool(t, "/spool?"+query("id", "at", "at", "+3"))
	for _, s := range []spooled{plain, body, at} {
		if filepath.Dir(s.Path) != spool || !strings.HasPrefix(filepath.Base(s.Path), spoolfile.Prefix) {
			t.Fatalf("uwsgi.spool() returned %q, want %s/%s...", s.Path, spool, spoolfile.Prefix)
		}
	}

	t.Run("plain", func(t *testing.T) {
		r := h.waitRan(t, out, plain.Path, 10*time.Second)
		if r.doc.Path != plain.Path {
			t.Errorf("path %q, want uWSGI's %q", r.doc.Path, plain.Path)
		}
		checkVars(t, r, appPlain)
		if r.doc.BodyLen != 0 || r.doc.BodyBase64 != nil {
			t.Errorf("body_len %d, body_base64 %v: want no body", r.doc.BodyLen, r.doc.BodyBase64)
		}
		if r.attempt != "1" {
			t.Errorf("GOSPOOL_ATTEMPT=%s, want 1", r.attempt)
		}
		h.waitGone(t, plain.Path)
	})

	t.Run("body", func(t *testing.T) {
		r := h.waitRan(t, out, body.Path, 10*time.Second)
		checkVars(t, r, [][2]string{{"id", "body"}})
		sum := sha256.Sum256(appBody)
		if r.doc.BodyLen != len(appBody) || r.doc.BodySHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("body_len %d sha256 %s, want %d %x", r.doc.BodyLen, r.doc.BodySHA256, len(appBody), sum)
		}
		if r.doc.BodyBase64 == nil {
			t.Fatal("no body_base64")
		}
		if got, err := base64.StdEncoding.DecodeString(*r.doc.BodyBase64); err != nil || !bytes.Equal(got, appBody) {
			t.Errorf("body_base64 decodes to %d bytes (err %v), not the %d the app sent", len(got), err, len(appBody))
		}
		h.waitGone(t, body.Path)
	})

	t.Run("at", func(t *testing.T) {
		sec, err := strconv.ParseFloat(at.At, 64)
		if err != nil {
			t.Fatalf("the app sent at=%q: %v", at.At, err)
		}
		atTime := floatTime(sec)
		// uWSGI sets the file's mtime to the integer part and runs the file
		// once that is not in the future; gospool may keep the fraction.
		due := time.Unix(int64(sec), 0)
		time.Sleep(time.Until(atTime.Add(-1500 * time.Millisecond)))
		if r, ran, _ := readRan(out, filepath.Base(at.Path)); ran {
			if r.start.Before(due) {
				t.Fatalf("the task with at=%s ran %v before its time", at.At, atTime.Sub(r.start))
			}
		} else if _, err := os.Lstat(at.Path); err != nil {
			t.Fatalf("the task with at=%s has not run, but its file is gone: %v", at.At, err)
		}
		r := h.waitRan(t, out, at.Path, time.Until(atTime)+10*time.Second)
		if r.start.Before(due) {
			t.Errorf("the task with at=%s started at %s, before %s", at.At, r.start.Format(time.RFC3339Nano), due.Format(time.RFC3339Nano))
		}
		t.Logf("at=%s: gospool started the task %v after that", at.At, r.start.Sub(atTime).Round(time.Millisecond))
		checkVars(t, r, [][2]string{{"id", "at"}, {"at", at.At}})
		h.waitGone(t, at.Path)
	})

	t.Run("priority-unordered", func(t *testing.T) {
		// As in uWSGI, a task with a priority is not run without ordered
		// mode. Give the spooler time for a few scans (it scans every
		// second; the at task has normally taken that time already).
		time.Sleep(time.Until(prioSpooled.Add(3 * time.Second)))
		if filepath.Dir(prio.Path) != filepath.Join(spool, "3") {
			t.Errorf("uwsgi.spool() with priority 3 wrote %s, want it in %s/3/", prio.Path, spool)
		}
		if _, ran, _ := readRan(out, filepath.Base(prio.Path)); ran {
			t.Errorf("gospool without --spooler-ordered ran %s (uWSGI would not)", prio.Path)
		}
		if _, err := os.Lstat(prio.Path); err != nil {
			t.Errorf("%s: %v", prio.Path, err)
		}
	})

	t.Run("priority-ordered", func(t *testing.T) {
		// Spooled while no spooler serves the directory, so that the
		// order below is gospool's ordering, not the order of arrival.
		// uWSGI's versionsort scan runs all-digit directories first, in
		// numeric order, then the top-level files.
		var paths []string
		for _, q := range []string{
			query("id", "p5", "priority", "5", "spooler", ordered),
			query("id", "none", "spooler", ordered),
			query("id", "p10", "priority", "10", "spooler", ordered),
			query("id", "p1", "priority", "1", "spooler", ordered),
			query("id", "p3", "priority", "3", "spooler", ordered),
		} {
			paths = append(paths, u.spool(t, "/spool?"+q).Path)
		}
		h.gospoolRun(t, "gospool-ordered", gospoolBin, []string{"INTEROP_OUT=" + outOrdered},
			"--spooler", ordered, "--spooler-ordered", "--spooler-exec", recordCmd, "--spooler-frequency", "1")
		ids := map[string]string{} // spool file name -> id
		for _, p := range paths {
			r := h.waitRan(t, outOrdered, p, 10*time.Second)
			ids[filepath.Base(p)] = r.get("id")
			if r.doc.Path != p {
				t.Errorf("path %q, want uWSGI's %q", r.doc.Path, p)
			}
		}
		var order []string
		for _, name := range readLines(filepath.Join(outOrdered, "order")) {
			order = append(order, ids[name])
		}
		if want := []string{"p1", "p3", "p5", "p10", "none"}; strings.Join(order, " ") != strings.Join(want, " ") {
			t.Errorf("gospool --spooler-ordered ran the tasks in the order %q, want uWSGI's %q", order, want)
		}
		for _, p := range paths {
			h.waitGone(t, p)
		}
	})
}
