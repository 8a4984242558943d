package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
)

// benchResult is one object of `gospool bench --json`.
type benchResult struct {
	Impl      string   `json:"impl"`
	Producers *int     `json:"producers"`
	Tasks     *int     `json:"tasks"`
	Rate      *float64 `json:"rate"`
	Handoff   *struct {
		P50, P90, P99, P999, Max *int64
	} `json:"handoff_ns"`
	SpoolCall *struct {
		P50, P99 *int64
	} `json:"spool_call_ns"`
	Throughput *float64 `json:"throughput_per_s"`
	Language   string   `json:"producer_lang"`
	Measured   *int     `json:"measured"`
	Delayed    *int     `json:"co_delayed"`
}

// runBench runs `gospool bench args...` with its own TMPDIR, which must be
// empty again afterwards: the session directory is removed.
func runBench(t *testing.T, args ...string) result {
	t.Helper()
	tmp := t.TempDir()
	r := gospoolOpts(t, cmdOpts{env: []string{"TMPDIR=" + tmp}, timeout: 2 * time.Minute}, append([]string{"bench"}, args...)...)
	left, _ := os.ReadDir(tmp)
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "gospool-bench-") {
			t.Errorf("session directory %s left in TMPDIR", e.Name())
		}
	}
	return r
}

// benchJSON runs bench --json and checks what every run must satisfy.
func benchJSON(t *testing.T, lang string, tasks int, rate float64, args ...string) benchResult {
	t.Helper()
	r := runBench(t, args...).mustSucceed(t, args...)
	if r.stderr != "" {
		t.Errorf("stderr is not a terminal, yet bench wrote to it: %q", r.stderr)
	}
	var got []benchResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not a JSON list: %v\n%s", err, r.stdout)
	}
	if len(got) != 1 {
		t.Fatalf("%d objects, want 1 (gospool):\n%s", len(got), r.stdout)
	}
	b := got[0]
	if b.Impl != "gospool" || b.Language != lang {
		t.Errorf("impl %q, producer_lang %q; want gospool, %s", b.Impl, b.Language, lang)
	}
	if b.Producers == nil || *b.Producers != 2 || b.Tasks == nil || *b.Tasks != tasks || b.Rate == nil || *b.Rate != rate {
		t.Errorf("producers, tasks, rate: want 2, %d, %v:\n%s", tasks, rate, r.stdout)
	}
	if b.Measured == nil || *b.Measured != tasks {
		t.Errorf("measured: want every one of the %d tasks measured once:\n%s", tasks, r.stdout)
	}
	if b.Delayed == nil {
		t.Errorf("no co_delayed:\n%s", r.stdout)
	}
	h := b.Handoff
	if h == nil || h.P50 == nil || h.P90 == nil || h.P99 == nil || h.P999 == nil || h.Max == nil {
		t.Fatalf("handoff_ns incomplete:\n%s", r.stdout)
	}
	if !(0 < *h.P50 && *h.P50 <= *h.P90 && *h.P90 <= *h.P99 && *h.P99 <= *h.P999 && *h.P999 <= *h.Max) {
		t.Errorf("hand-off percentiles not 0 < p50 <= p90 <= p99 <= p999 <= max:\n%s", r.stdout)
	}
	c := b.SpoolCall
	if c == nil || c.P50 == nil || c.P99 == nil || !(0 < *c.P50 && *c.P50 <= *c.P99) {
		t.Errorf("spool_call_ns not 0 < p50 <= p99:\n%s", r.stdout)
	}
	if b.Throughput == nil || !(*b.Throughput > 0) {
		t.Errorf("throughput_per_s not > 0:\n%s", r.stdout)
	}
	return b
}

func TestBenchGo(t *testing.T) {
	b := benchJSON(t, "go", 2000, 0, "--tasks", "2000", "--json")
	if *b.Delayed != 0 {
		t.Errorf("back to back, %d tasks carry a coordinated-omission correction", *b.Delayed)
	}
}

func TestBenchGoPaced(t *testing.T) {
	benchJSON(t, "go", 500, 2000, "--rate", "2000", "--tasks", "500", "--json")
}

func TestBenchPython(t *testing.T) {
	testproc.NeedPython3(t)
	benchJSON(t, "python", 2000, 0, "--tasks", "2000", "--json", "--python")
}

func TestBenchPythonPaced(t *testing.T) {
	testproc.NeedPython3(t)
	benchJSON(t, "python", 300, 2000, "--python", "--rate", "2000", "--tasks", "300", "--json")
}

// TestBenchTable: the default output, a header and one line for gospool.
func TestBenchTable(t *testing.T) {
	r := runBench(t, "--tasks", "300", "--producers", "3").mustSucceed(t)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one line:\n%s", r.stdout)
	}
	head := strings.Fields(lines[0])
	want := []string{"impl", "producers", "tasks", "rate", "p50", "p90", "p99", "p99.9", "max", "call", "p50", "call", "p99", "throughput"}
	if strings.Join(head, " ") != strings.Join(want, " ") {
		t.Errorf("header %q", lines[0])
	}
	f := strings.Fields(lines[1])
	if len(f) != 13 || f[0] != "gospool" || f[1] != "3" || f[2] != "go" || f[3] != "300" || f[4] != "0" || !strings.HasSuffix(f[12], "/s") {
		t.Errorf("line %q", lines[1])
	}
	for _, v := range f[5:12] {
		if !strings.HasSuffix(v, "s") {
			t.Errorf("%q has no unit in %q", v, lines[1])
		}
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tasks", "0"}, "--tasks"},
		{[]string{"--rate", "-1"}, "--rate"},
		{[]string{"--rate", "fast"}, "--rate"},
		{[]string{"--producers", "0"}, "--producers"},
		{[]string{"--tasks", "1", "--producers", "2"}, "fewer than --producers"},
		{[]string{"--plot", "out.pdf"}, "--plot"},
		{[]string{"--plot", "out"}, "--plot"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		r := gospool(t, append([]string{"bench"}, c.args...)...)
		if r.code != 2 {
			t.Errorf("bench %q: exit %d, want 2; stderr %q", c.args, r.code, r.stderr)
		}
		oneErrorLine(t, r, "gospool bench: ")
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("bench %q: stderr %q does not say %q", c.args, r.stderr, c.want)
		}
		if r.stdout != "" {
			t.Errorf("bench %q: stdout %q", c.args, r.stdout)
		}
	}
}

func TestBenchHelp(t *testing.T) {
	r := gospool(t, "help", "bench").mustSucceed(t)
	for _, want := range []string{"--tasks N", "total across the producers", "--rate R", "--python", "--against-uwsgi", "--plot FILE", ".svg", ".png", "spooler-frequency", "uwsgi-plugin-python3"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bench --help does not say %q:\n%s", want, r.stdout)
		}
	}
}

// TestBenchPlot: --plot writes an SVG or a PNG by the file's extension.
func TestBenchPlot(t *testing.T) {
	dir := t.TempDir()
	svgPath := filepath.Join(dir, "x.svg")
	r := runBench(t, "--tasks", "500", "--plot", svgPath).mustSucceed(t)
	if !strings.HasPrefix(r.stdout, "impl") {
		t.Errorf("no table on stdout:\n%s", r.stdout)
	}
	b, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var root xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("%s: no root element: %v", svgPath, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			root = se
			break
		}
	}
	if root.Name.Local != "svg" {
		t.Errorf("%s: root element <%s>, want <svg>", svgPath, root.Name.Local)
	}
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", svgPath, err)
		}
	}
	for _, want := range []string{"gospool", "percentile", "99.9%"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s does not say %q", svgPath, want)
		}
	}

	pngPath := filepath.Join(dir, "x.png")
	runBench(t, "--tasks", "500", "--plot", pngPath).mustSucceed(t)
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", pngPath, err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("%s is %v", pngPath, b)
	}
}

// TestBenchAgainstUWSGI: the same load through real uWSGI's spooler, in
// the same invocation; skipped when uwsgi is not installed.
func TestBenchAgainstUWSGI(t *testing.T) {
	testproc.NeedUWSGI(t)
	const tasks = 200
	r := runBench(t, "--tasks", "200", "--against-uwsgi", "--json").mustSucceed(t)
	var got []benchResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not a JSON list: %v\n%s", err, r.stdout)
	}
	if len(got) != 2 || got[0].Impl != "gospool" || got[1].Impl != "uwsgi" {
		t.Fatalf("want two objects, gospool then uwsgi:\n%s", r.stdout)
	}
	for _, b := range got {
		if b.Tasks == nil || *b.Tasks != tasks || b.Producers == nil || *b.Producers != 2 || b.Rate == nil || *b.Rate != 0 {
			t.Errorf("%s: producers, tasks, rate: want 2, %d, 0:\n%s", b.Impl, tasks, r.stdout)
		}
		if b.Measured == nil || *b.Measured != tasks {
			t.Errorf("%s: measured: want %d:\n%s", b.Impl, tasks, r.stdout)
		}
		h := b.Handoff
		if h == nil || h.P50 == nil || h.P90 == nil || h.P99 == nil || h.P999 == nil || h.Max == nil {
			t.Fatalf("%s: handoff_ns incomplete:\n%s", b.Impl, r.stdout)
		}
		if !(0 < *h.P50 && *h.P50 <= *h.P90 && *h.P90 <= *h.P99 && *h.P99 <= *h.P999 && *h.P999 <= *h.Max) {
			t.Errorf("%s: hand-off percentiles not ordered:\n%s", b.Impl, r.stdout)
		}
		c := b.SpoolCall
		if c == nil || c.P50 == nil || c.P99 == nil || !(0 < *c.P50 && *c.P50 <= *c.P99) {
			t.Errorf("%s: spool_call_ns not 0 < p50 <= p99:\n%s", b.Impl, r.stdout)
		}
		if b.Throughput == nil || !(*b.Throughput > 0) {
			t.Errorf("%s: throughput_per_s not > 0:\n%s", b.Impl, r.stdout)
		}
	}
	if got[1].Language != "python" {
		t.Errorf("uwsgi: producer_lang %q, want python (mules)", got[1].Language)
	}
}

// TestBenchAgainstUWSGIMissing: without uwsgi on PATH, exit 1 saying how
// to install it, before measuring anything.
func TestBenchAgainstUWSGIMissing(t *testing.T) {
	c := exec.Command(gospoolBin, "bench", "--tasks", "10", "--against-uwsgi")
	c.Env = append(childEnv(), "PATH="+t.TempDir())
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1; stderr %q", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "apt-get install uwsgi-core uwsgi-plugin-python3") || stdout.Len() != 0 {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}
