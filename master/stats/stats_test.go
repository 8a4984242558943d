package stats

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/master/scoreboard"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
)

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// A server over real ring and scoreboard files answers with uWSGI's key
// names, gospool's counters and Prometheus's format, and stops reading
// them once closed.
func TestServer(t *testing.T) {
	base := t.TempDir()
	dirs := []string{filepath.Join(base, "a"), filepath.Join(base, "b")}
	for i, d := range dirs {
		if err := os.MkdirAll(filepath.Join(d, "5"), 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := ring.Create(filepath.Join(d, ring.FileName), ring.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for c, n := range map[ring.Counter]uint64{ring.Spooled: 7, ring.Spilled: 2, ring.Done: 8, ring.Retried: 1, ring.Failed: 1, ring.Dead: 1} {
			r.Add(c, n*uint64(i+1))
		}
	}
	// Spool files in a: one due, one scheduled, one due in a priority
	// directory; and a file that is not a spool file.
	later := time.Now().Add(time.Hour)
	for name, at := range map[string]time.Time{
		spoolfile.Prefix + "due": time.Now().Add(-time.Minute), spoolfile.Prefix + "later": later,
		"5/" + spoolfile.Prefix + "prio": time.Now().Add(-time.Minute), "notes.txt": time.Now(),
	} {
		p := filepath.Join(dirs[0], name)
		os.WriteFile(p, []byte("x"), 0o600)
		os.Chtimes(p, at, at)
	}

	board, err := scoreboard.Create(filepath.Join(dirs[0], scoreboard.FileName), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer board.Close()
	started := time.Now().Add(-time.Minute)
	board.SetMaster(4321, started)
	board.NoteReload()
	board.Slot(0).Claim(101, scoreboard.Spooler, 1, 2, 1, started) // b's spooler 1
	board.Slot(1).Claim(100, scoreboard.Worker, 1, 0, 0, started)
	board.Slot(3).Claim(102, scoreboard.Spooler, 1, 3, 0, started) // a's spooler 1
	busy := scoreboard.NewTracker(board.Slot(3))
	end := busy.Begin("ring:0:7")
	defer end()
	busy.ObserveHandoff(20 * time.Microsecond)
	busy.ObserveHandoff(2 * time.Second)
	scoreboard.NewTracker(board.Slot(0)).ObserveHandoff(time.Millisecond)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	waiting, err := net.Dial("tcp", l.Addr().String()) // never accepted
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()

	retired := scoreboard.Histogram{}
	retired.Counts[0] = 5
	srv := New(Source{Dirs: dirs, Board: board, Sockets: []Socket{{Name: "web", File: lf}},
		Handoff: func() []scoreboard.Histogram {
			h := LiveHandoff(board, len(dirs))
			h[0].Add(retired)
			return h
		}}, nil)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	// uWSGI's keys, and gospool's.
	var raw map[string]any
	var doc Document
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, b := get(t, hs.URL+"/stats")
		if code != 200 {
			t.Fatalf("GET /stats: %d %s", code, b)
		}
		json.Unmarshal(b, &raw)
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.ListenQueue == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the handshake reaches the accept queue
	}
	if got, want := keys(raw), append(uwsgiTopKeys, "gospool"); !reflect.DeepEqual(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("top-level keys %v, want %v", got, want)
	}
	sp := raw["spoolers"].([]any)
	if got, want := keys(sp[0].(map[string]any)), []string{"dir", "pid", "respawns", "running", "tasks"}; !reflect.DeepEqual(got, want) {
		t.Errorf("spooler keys %v, want uWSGI's %v", got, want)
	}
	wk := raw["workers"].([]any)
	if got := keys(wk[0].(map[string]any)); !reflect.DeepEqual(got, uwsgiWorkerKeys) {
		t.Errorf("worker keys %v, want uWSGI's %v", got, uwsgiWorkerKeys)
	}
	core := wk[0].(map[string]any)["cores"].([]any)[0].(map[string]any)
	if got := keys(core); !reflect.DeepEqual(got, uwsgiCoreKeys) {
		t.Errorf("core keys %v, want uWSGI's %v", got, uwsgiCoreKeys)
	}
	if got := keys(raw["sockets"].([]any)[0].(map[string]any)); !reflect.DeepEqual(got, uwsgiSocketKeys) {
		t.Errorf("socket keys %v, want uWSGI's %v", got, uwsgiSocketKeys)
	}
	ringKeys := keys(raw["gospool"].(map[string]any)["dirs"].([]any)[0].(map[string]any)["ring"].(map[string]any))
	if want := []string{"claimed", "consumers", "corrupt", "dead", "done", "failed", "fill", "ignored", "in_flight", "lanes", "ready", "retried", "sleepers", "spilled", "spooled"}; !reflect.DeepEqual(ringKeys, want) {
		t.Errorf("ring keys %v, want gospool stats --json's %v", ringKeys, want)
	}
	if doc.Pid != 4321 || doc.ListenQueue != 1 || len(doc.Sockets) != 1 || doc.Sockets[0] != (Sock{Name: "web", Queue: 1, MaxQueue: doc.Sockets[0].MaxQueue}) || doc.Sockets[0].MaxQueue < 1 {
		t.Errorf("pid %d, listen_queue %d, sockets %+v", doc.Pid, doc.ListenQueue, doc.Sockets)
	}
	if want := []Worker{{ID: 1, Pid: 100, Accepting: 1, Status: "idle", LastSpawn: started.Unix(), Apps: []any{},
		Cores: []Core{{Vars: []string{}, ReqInfo: map[string]any{}}}}}; !reflect.DeepEqual(doc.Workers, want) {
		t.Errorf("workers %+v, want %+v", doc.Workers, want)
	}
	if want := []Spooler{{Dir: dirs[0], Pid: 102, Respawns: 3, Running: 1}, {Dir: dirs[1], Pid: 101, Respawns: 2}}; !reflect.DeepEqual(doc.Spoolers, want) {
		t.Errorf("spoolers %+v, want %+v (directory order)", doc.Spoolers, want)
	}
	g := doc.Gospool
	if g.Reloads != 1 || g.Started != started.Format(time.RFC3339) || len(g.Dirs) != 2 || len(g.Processes) != 3 {
		t.Fatalf("gospool: %+v", g)
	}
	if p := g.Processes[1]; p.Pid != 102 || p.Dir != dirs[0] || p.Current != "ring:0:7" || p.BusySince == "" || p.State != "running" {
		t.Errorf("busy spooler: %+v", p)
	}
	a, b := g.Dirs[0], g.Dirs[1]
	if a.Ring == nil || a.Ring.Spooled != 7 || a.Ring.Done != 8 || b.Ring == nil || b.Ring.Spooled != 14 || b.Ring.Dead != 2 {
		t.Errorf("rings: %+v %+v", a.Ring, b.Ring)
	}
	if a.Files != (Files{Due: 2, Scheduled: 1}) || b.Files != (Files{}) {
		t.Errorf("files: %+v %+v", a.Files, b.Files)
	}
	if a.Handoff.Count != 7 || a.Handoff.Buckets[0].Count != 5 || a.Handoff.Buckets[1].Count != 6 || a.Handoff.Buckets[12].Count != 6 || a.Handoff.Buckets[13].Count != 7 ||
		a.Handoff.Buckets[13].LE != 10 || b.Handoff.Count != 1 || b.Handoff.Buckets[5].Count != 0 || b.Handoff.Buckets[6].Count != 1 {
		t.Errorf("hand-off: %+v %+v", a.Handoff, b.Handoff)
	}
	if code, root := get(t, hs.URL+"/"); code != 200 || !strings.Contains(string(root), `"spoolers"`) {
		t.Errorf("GET /: %d %s", code, root)
	}
	if code, _ := get(t, hs.URL+"/nope"); code != 404 {
		t.Errorf("GET /nope: %d", code)
	}

	// The same in Prometheus's format.
	code, body := get(t, hs.URL+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	for _, want := range []string{
		`gospool_tasks_spooled_total{dir="` + dirs[0] + `"} 7`,
		`gospool_tasks_spooled_total{dir="` + dirs[1] + `"} 14`,
		`gospool_tasks_done_total{dir="` + dirs[0] + `"} 8`,
		`gospool_tasks_retried_total{dir="` + dirs[0] + `"} 1`,
		`gospool_tasks_failed_total{dir="` + dirs[1] + `"} 2`,
		`gospool_tasks_spilled_total{dir="` + dirs[0] + `"} 2`,
		`gospool_tasks_dead_total{dir="` + dirs[1] + `"} 2`,
		`gospool_tasks_in_flight{dir="` + dirs[0] + `"} 0`,
		`gospool_ring_fill_ratio{dir="` + dirs[0] + `"} 0`,
		`gospool_ring_records{dir="` + dirs[0] + `",state="ready"} 0`,
		`gospool_spool_files{dir="` + dirs[0] + `",state="due"} 2`,
		`gospool_spool_files{dir="` + dirs[0] + `",state="scheduled"} 1`,
		`gospool_handoff_latency_seconds_bucket{dir="` + dirs[0] + `",le="1e-05"} 5`,
		`gospool_handoff_latency_seconds_bucket{dir="` + dirs[0] + `",le="+Inf"} 7`,
		`gospool_handoff_latency_seconds_count{dir="` + dirs[1] + `"} 1`,
		`gospool_handoff_latency_seconds_sum{dir="` + dirs[1] + `"} 0.001`,
		`gospool_process_respawns{dir="` + dirs[0] + `",number="1",role="spooler"} 3`,
		`gospool_process_respawns{dir="",number="1",role="worker"} 0`,
		`gospool_processes{role="spooler",state="running"} 2`,
		`gospool_master_reloads_total 1`,
		`# TYPE gospool_tasks_done_total counter`,
		`# TYPE gospool_handoff_latency_seconds histogram`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_open_fds"] == nil {
		t.Error("/metrics lacks the Go and process collectors")
	}

	// Closed: nothing is read any more.
	srv.Close()
	if code, _ := get(t, hs.URL+"/stats"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /stats after Close: %d", code)
	}
	_, body = get(t, hs.URL+"/metrics")
	if strings.Contains(string(body), "gospool_") {
		t.Errorf("/metrics after Close still reads the files:\n%s", body)
	}
	if _, ok := srv.Document(); ok {
		t.Error("Document after Close")
	}
}

// A directory whose ring does not exist yet is reported, and read once it
// exists.
func TestMissingRing(t *testing.T) {
	dir := t.TempDir()
	srv := New(Source{Dirs: []string{dir}}, nil)
	defer srv.Close()
	doc, _ := srv.Document()
	if d := doc.Gospool.Dirs[0]; d.Ring != nil || !strings.Contains(d.Error, "no gospool ring in "+dir) {
		t.Errorf("before the ring: %+v", d)
	}
	r, err := ring.Create(filepath.Join(dir, ring.FileName), ring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Add(ring.Done, 3)
	doc, _ = srv.Document()
	if d := doc.Gospool.Dirs[0]; d.Ring == nil || d.Ring.Done != 3 || d.Error != "" {
		t.Errorf("after the ring: %+v", d)
	}
	if doc.Pid != os.Getpid() || doc.Workers == nil || doc.Spoolers == nil {
		t.Errorf("without a scoreboard: %+v", doc)
	}
}

// Listen refuses a busy TCP address and a unix socket someone answers on,
// and replaces a stale socket file.
func TestListen(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if l, err := Listen(busy.Addr().String()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("busy TCP address: %v", err)
		if l != nil {
			l.Close()
		}
	}

	sock := filepath.Join(t.TempDir(), "stats.sock")
	live, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "already answering") {
		t.Errorf("live unix socket: %v", err)
	}
	live.(*net.UnixListener).SetUnlinkOnClose(false)
	live.Close() // the file stays: a stale socket
	again, err := Listen(sock)
	if err != nil {
		t.Fatalf("stale unix socket: %v", err)
	}
	again.Close()
	if _, err := os.Stat(sock); err == nil {
		t.Error("the socket file outlives its listener")
	}
}

// The bounds in the JSON and the metrics are the scoreboard's.
func TestBuckets(t *testing.T) {
	d := handoffDoc(scoreboard.Histogram{})
	var les []float64
	for _, b := range d.Buckets {
		les = append(les, b.LE)
	}
	if len(les) != scoreboard.HandoffBuckets-1 || !slices.IsSorted(les) || les[0] != 1e-5 || les[len(les)-1] != 10 {
		t.Errorf("bounds %v", les)
	}
}

// The keys of uWSGI 2.0.21's stats document, as the real one writes them
// (interop's TestStatsKeysLikeUWSGI checks them against it).
var (
	uwsgiTopKeys    = []string{"cwd", "gid", "listen_queue", "listen_queue_errors", "load", "locks", "pid", "signal_queue", "sockets", "spoolers", "uid", "version", "workers"}
	uwsgiWorkerKeys = []string{"accepting", "apps", "avg_rt", "cores", "delta_requests", "exceptions", "harakiri_count", "id", "last_spawn", "pid", "requests", "respawn_count", "rss", "running_time", "signal_queue", "signals", "status", "tx", "vsz"}
	uwsgiCoreKeys   = []string{"id", "in_request", "offloaded_requests", "read_errors", "req_info", "requests", "routed_requests", "static_requests", "vars", "write_errors"}
	uwsgiSocketKeys = []string{"can_offload", "max_queue", "name", "proto", "queue", "shared"}
)

// readRaw connects to addr and reads until EOF, sending nothing, as
// uwsgitop does with uWSGI's stats socket.
func readRaw(t *testing.T, network, addr string) map[string]any {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("raw stats %q: %v", b, err)
	}
	return doc
}

// One address serves both of uWSGI's stats protocols: HTTP to a client
// that sends a request, raw JSON to one that only reads; the document's
// keys are the real uWSGI's (read from its raw stats socket in the same
// test), so that uwsgitop and the collectors written for uWSGI work.
func TestRawAndHTTPOnOneAddress(t *testing.T) {
	dir := t.TempDir()
	board, err := scoreboard.Create(filepath.Join(dir, scoreboard.FileName), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer board.Close()
	board.SetMaster(os.Getpid(), time.Now())
	board.Slot(0).Claim(os.Getpid(), scoreboard.Worker, 1, 0, 0, time.Now())
	board.Slot(1).Claim(os.Getpid(), scoreboard.Spooler, 1, 0, 0, time.Now())
	wl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	wf, err := wl.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	srv := New(Source{Dirs: []string{dir}, Board: board, Sockets: []Socket{{Name: "web", File: wf}}}, nil)
	defer srv.Close()
	for _, network := range []string{"tcp", "unix"} {
		addr := "127.0.0.1:0"
		if network == "unix" {
			addr = filepath.Join(t.TempDir(), "stats.sock")
		}
		l, err := Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: srv.Handler()}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(hs, l) }()

		raw := readRaw(t, network, l.Addr().String())
		if raw["pid"] != float64(os.Getpid()) || len(raw["workers"].([]any)) != 1 || len(raw["spoolers"].([]any)) != 1 {
			t.Errorf("%s raw: %v", network, raw)
		}
		client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, l.Addr().String())
		}}}
		resp, err := client.Get("http://stats/stats")
		if err != nil {
			t.Fatal(err)
		}
		var doc Document
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || doc.Pid != os.Getpid() || len(doc.Workers) != 1 {
			t.Errorf("%s HTTP: %+v, %v", network, doc, err)
		}
		hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve after Close: %v", err)
		}
		if c, err := net.Dial(network, l.Addr().String()); err == nil {
			c.Close()
			t.Errorf("%s: still accepting after Close", network)
		}
	}

	// The real uWSGI's raw document, with a worker and a spooler.
	testproc.NeedUWSGI(t)
	port := freePort(t)
	app := filepath.Join(t.TempDir(), "app.py")
	if err := os.WriteFile(app, []byte("def application(env, start):\n    start('200 OK', [])\n    return [b'ok']\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testproc.StartUWSGI(t, "--plugin", "python3", "--master", "--processes", "1",
		"--http-socket", "127.0.0.1:0", "--stats", "127.0.0.1:"+strconv.Itoa(port),
		"--spooler", filepath.Join(t.TempDir(), "spool"), "--wsgi-file", app)
	var uw map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			uw = readRaw(t, "tcp", "127.0.0.1:"+strconv.Itoa(port))
			if len(uw["workers"].([]any)) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("uWSGI's stats socket did not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := func(doc map[string]any, key string) map[string]any { return doc[key].([]any)[0].(map[string]any) }
	uwWorker := first(uw, "workers")
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"top-level", keys(uw), uwsgiTopKeys},
		{"worker", keys(uwWorker), uwsgiWorkerKeys},
		{"core", keys(uwWorker["cores"].([]any)[0].(map[string]any)), uwsgiCoreKeys},
		{"socket", keys(first(uw, "sockets")), uwsgiSocketKeys},
		{"spooler", keys(first(uw, "spoolers")), []string{"dir", "pid", "respawns", "running", "tasks"}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("real uWSGI's %s keys %v; gospool writes %v", c.what, c.got, c.want)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
