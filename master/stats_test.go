package master_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gospool/gospool/master/stats"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/ring"
)

// statsClient asks a stats server on a unix socket.
type statsClient struct {
	t    *testing.T
	http *http.Client
}

func newStatsClient(t *testing.T, sock string) *statsClient {
	return &statsClient{t: t, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}, Timeout: 10 * time.Second}}
}

func (c *statsClient) get(path string) ([]byte, error) {
	resp, err := c.http.Get("http://stats" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, err
}

// doc is GET /stats, decoded.
func (c *statsClient) doc() (stats.Document, error) {
	var d stats.Document
	b, err := c.get("/stats")
	if err == nil {
		err = json.Unmarshal(b, &d)
	}
	return d, err
}

// metrics is GET /metrics, parsed as Prometheus's text format.
func (c *statsClient) metrics() (metrics, error) {
	b, err := c.get("/metrics")
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(string(b)))
}

type metrics map[string]*dto.MetricFamily

// find returns the series of family name whose labels include want.
func (m metrics) find(name string, want map[string]string) *dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
next:
	for _, s := range f.Metric {
		got := map[string]string{}
		for _, l := range s.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return s
	}
	return nil
}

// value is a counter's or gauge's value; -1 when the series is missing.
func (m metrics) value(name string, labels map[string]string) float64 {
	s := m.find(name, labels)
	switch {
	case s == nil:
		return -1
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	}
	return -1
}

// The stats and metrics endpoints under load report counters that match
// what the test spooled and ran: 2 workers spool over HTTP and 2 producers
// straight into the ring, some tasks failing once, while the endpoints are
// scraped; then a spooler is killed and its respawn shows, and the
// hand-off histogram keeps the dead spooler's counts.
func TestStatsUnderLoad(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	sock := filepath.Join(base, "stats.sock")
	s := startService(t, base, "GOSPOOL_TEST_WORKERS=2", "GOSPOOL_TEST_SPOOLERS=2", "GOSPOOL_TEST_STATS="+sock)
	s.waitLog(10*time.Second, func(log string) bool { return strings.Contains(log, "*** Stats server enabled on "+sock+" fd: ") })
	sc := newStatsClient(t, sock)
	dirLabel := map[string]string{"dir": s.dir}
	// Producers use the ring only while a spooler is attached to it (files
	// otherwise): wait for both, so that every task below goes into it.
	waitUntil(t, 10*time.Second, "both spoolers attached", func() bool {
		r, err := ring.Open(filepath.Join(s.dir, ring.FileName), ring.Options{ReadOnly: true})
		if err != nil {
			return false
		}
		defer r.Close()
		return len(r.Stats().Consumers) == 2
	})

	const perProducer, producers, perClient, clients = 100, 2, 100, 2
	const failEvery = 5
	total := producers*perProducer + clients*perClient
	failing := producers * perProducer / failEvery

	// Scrapes during the load: everything parses, and counters never go
	// back.
	stopScraping := make(chan struct{})
	scraped := make(chan int, 1)
	var stopOnce sync.Once
	nScrapes := 0
	stop := func() int {
		stopOnce.Do(func() {
			close(stopScraping)
			nScrapes = <-scraped
		})
		return nScrapes
	}
	defer stop() // before the cleanup kills the master
	go func() {
		n := 0
		var lastDone, lastHand float64
		defer func() { scraped <- n }()
		for {
			select {
			case <-stopScraping:
				return
			default:
			}
			d, err := sc.doc()
			if err != nil {
				t.Errorf("GET /stats under load: %v", err)
				return
			}
			m, err := sc.metrics()
			if err != nil {
				t.Errorf("GET /metrics under load: %v", err)
				return
			}
			done := m.value("gospool_tasks_done_total", dirLabel)
			h := m.find("gospool_handoff_latency_seconds", dirLabel)
			if len(d.Gospool.Dirs) != 1 || d.Gospool.Dirs[0].Ring == nil || done < lastDone || h == nil || float64(h.Histogram.GetSampleCount()) < lastHand {
				t.Errorf("scrape %d: dirs %+v, done %v after %v, histogram %v after %v", n, d.Gospool.Dirs, done, lastDone, h, lastHand)
				return
			}
			lastDone, lastHand = done, float64(h.Histogram.GetSampleCount())
			n++
			time.Sleep(10 * time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	var mu sync.Mutex
	inRing, inFiles := 0, 0
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := spooler.NewClient(s.dir, spooler.ClientOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := range perProducer {
				task := testTask(fmt.Sprintf("p%d-%d", p, i))
				if i%failEvery == 0 {
					task.Set("fail", []byte("once"))
				}
				path, err := c.Spool(context.Background(), task)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if path == "" {
					inRing++
				} else {
					inFiles++
				}
				mu.Unlock()
			}
		}()
	}
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				ok, err := s.spool(fmt.Sprintf("h%d-%d", cl, i), 64, "")
				if err != nil || !ok {
					t.Errorf("spool over HTTP: %v %v", ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitUntil(t, 60*time.Second, "every task ran", func() bool {
		runs, _ := s.ran()
		return len(runs) == total
	})
	if n := stop(); n == 0 {
		t.Error("no scrape completed during the load")
	}
	if runs, torn := s.ran(); len(torn) > 0 || len(runs) != total {
		t.Fatalf("%d tasks ran, want %d; torn: %v", len(runs), total, torn)
	}
	if inFiles != 0 {
		t.Logf("%d direct tasks went to spool files (ring lane full?)", inFiles)
	}

	// Once settled, /stats says what was spooled and run.
	var d stats.Document
	waitUntil(t, 10*time.Second, "the counters settle", func() bool {
		var err error
		if d, err = sc.doc(); err != nil {
			t.Fatal(err)
		}
		if len(d.Gospool.Dirs) != 1 || d.Gospool.Dirs[0].Ring == nil {
			t.Fatalf("dirs: %+v", d.Gospool.Dirs)
		}
		var tasks uint64
		for _, sp := range d.Spoolers {
			tasks += sp.Tasks
		}
		var requests uint64
		for _, w := range d.Workers {
			requests += w.Requests
		}
		r := d.Gospool.Dirs[0].Ring
		return r.Done == uint64(total) && r.InFlight == 0 && tasks == uint64(total+failing) && requests == uint64(clients*perClient)
	})
	dd := d.Gospool.Dirs[0]
	r := dd.Ring
	if r.Spooled+r.Spilled != uint64(total) || r.Spilled != uint64(inFiles) || r.Retried != uint64(failing) || r.Failed != uint64(failing) ||
		r.Dead != 0 || r.Corrupt != 0 || r.Ignored != 0 || r.Ready != 0 || r.Claimed != 0 {
		t.Errorf("ring counters %+v: want %d spooled (%d spilled), %d retried and failed", *r, total, inFiles, failing)
	}
	if dd.Files.Due != 0 || dd.Files.Scheduled != 0 {
		t.Errorf("files %+v, want none left", dd.Files)
	}
	if dd.Handoff.Count != r.Spooled || len(dd.Handoff.Buckets) != 14 || dd.Handoff.SumSeconds <= 0 {
		t.Errorf("hand-off histogram %+v: want %d ring tasks", dd.Handoff, r.Spooled)
	}
	_, spoolerPids := s.children()
	if d.Pid != s.cmd.Process.Pid || !strings.HasPrefix(d.Version, "gospool ") || d.Cwd == "" || len(d.Sockets) != 1 || d.Sockets[0].Name != s.sock {
		t.Errorf("top level: pid %d (want %d), version %q, cwd %q, sockets %+v", d.Pid, s.cmd.Process.Pid, d.Version, d.Cwd, d.Sockets)
	}
	if len(d.Workers) != 2 || d.Workers[0].ID != 1 || d.Workers[1].ID != 2 || d.Workers[0].RespawnCount != 0 || d.Workers[0].Status != "idle" {
		t.Errorf("workers: %+v", d.Workers)
	}
	if len(d.Spoolers) != 2 || len(spoolerPids) != 2 {
		t.Fatalf("spoolers: %+v; the log says %v", d.Spoolers, spoolerPids)
	}
	for i, sp := range d.Spoolers {
		if sp.Dir != s.dir || sp.Pid != spoolerPids[i] || sp.Respawns != 0 || sp.Running != 0 {
			t.Errorf("spooler %d: %+v, want pid %d", i, sp, spoolerPids[i])
		}
	}
	if len(d.Gospool.Processes) != 4 || d.Gospool.Processes[2].Role != "spooler" || d.Gospool.Processes[2].Number != 1 || d.Gospool.Processes[2].Dir != s.dir {
		t.Errorf("processes: %+v", d.Gospool.Processes)
	}

	// /metrics says the same.
	m, err := sc.metrics()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint64{
		"gospool_tasks_spooled_total": r.Spooled, "gospool_tasks_done_total": uint64(total),
		"gospool_tasks_retried_total": uint64(failing), "gospool_tasks_failed_total": uint64(failing),
		"gospool_tasks_spilled_total": uint64(inFiles), "gospool_tasks_dead_total": 0, "gospool_tasks_in_flight": 0,
	} {
		if got := m.value(name, dirLabel); got != float64(want) {
			t.Errorf("%s = %v, want %d", name, got, want)
		}
	}
	if m["gospool_tasks_done_total"].GetType() != dto.MetricType_COUNTER || m["gospool_tasks_in_flight"].GetType() != dto.MetricType_GAUGE {
		t.Errorf("types: %v %v", m["gospool_tasks_done_total"].GetType(), m["gospool_tasks_in_flight"].GetType())
	}
	for _, st := range []string{"due", "scheduled"} {
		if got := m.value("gospool_spool_files", map[string]string{"dir": s.dir, "state": st}); got != 0 {
			t.Errorf("gospool_spool_files{state=%q} = %v", st, got)
		}
	}
	checkHistogram(t, m, s.dir, r.Spooled)
	for _, role := range []string{"worker", "spooler"} {
		for n := 1; n <= 2; n++ {
			if got := m.value("gospool_process_respawns", map[string]string{"role": role, "number": strconv.Itoa(n)}); got != 0 {
				t.Errorf("respawns of %s %d: %v", role, n, got)
			}
		}
	}

	// kill -9 of spooler 1: its respawn shows in both, and the hand-off
	// histogram keeps what it counted.
	victim := d.Spoolers[0].Pid
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitLog(10*time.Second, func(log string) bool {
		_, sp := s.children()
		return strings.Contains(log, "OOOPS the spooler is no more") && len(sp) == 3
	})
	_, spoolerPids = s.children()
	reborn := spoolerPids[2]
	waitUntil(t, 10*time.Second, "the respawn shows", func() bool {
		if d, err = sc.doc(); err != nil {
			t.Fatal(err)
		}
		return len(d.Spoolers) == 2 && d.Spoolers[0].Pid == reborn
	})
	if sp := d.Spoolers[0]; sp.Respawns != 1 || sp.Tasks != 0 || d.Spoolers[1].Respawns != 0 {
		t.Errorf("after kill -9 of %d: spoolers %+v, want spooler 1 pid %d with 1 respawn and 0 tasks", victim, d.Spoolers, reborn)
	}
	if h := d.Gospool.Dirs[0].Handoff; h.Count != r.Spooled {
		t.Errorf("hand-off count %d after the kill, want still %d", h.Count, r.Spooled)
	}
	if m, err = sc.metrics(); err != nil {
		t.Fatal(err)
	}
	if got := m.value("gospool_process_respawns", map[string]string{"role": "spooler", "number": "1", "dir": s.dir}); got != 1 {
		t.Errorf("gospool_process_respawns{spooler 1} = %v, want 1", got)
	}
	checkHistogram(t, m, s.dir, r.Spooled)

	// More tasks after the respawn add to the totals.
	c, err := spooler.NewClient(s.dir, spooler.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const more = 20
	for i := range more {
		if _, err := c.Spool(context.Background(), testTask(fmt.Sprintf("after-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 20*time.Second, "the tasks spooled after the kill ran", func() bool {
		if m, err = sc.metrics(); err != nil {
			t.Fatal(err)
		}
		return m.value("gospool_tasks_done_total", dirLabel) == float64(total+more)
	})
	spooled := uint64(m.value("gospool_tasks_spooled_total", dirLabel))
	if spilled := uint64(m.value("gospool_tasks_spilled_total", dirLabel)); spooled+spilled != uint64(total+more) {
		t.Errorf("spooled %d and spilled %d, want %d in all", spooled, spilled, total+more)
	}
	checkHistogram(t, m, s.dir, spooled)
}

// testTask is a task for runTestTask, as the workers spool it: an id, an
// empty pad and its sum.
func testTask(id string) *spooler.Task {
	sum := sha256.Sum256(nil)
	return spooler.NewTask("id", id, "pad", "", "sum", hex.EncodeToString(sum[:]))
}

// checkHistogram checks the hand-off histogram of dir: count ring tasks,
// cumulative buckets ending at the count.
func checkHistogram(t *testing.T, m metrics, dir string, count uint64) {
	t.Helper()
	f := m["gospool_handoff_latency_seconds"]
	s := m.find("gospool_handoff_latency_seconds", map[string]string{"dir": dir})
	if f == nil || s == nil || f.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("no hand-off histogram for %s: %v", dir, f)
	}
	h := s.Histogram
	if h.GetSampleCount() != count || h.GetSampleSum() <= 0 {
		t.Errorf("hand-off histogram: count %d, sum %v; want %d ring tasks", h.GetSampleCount(), h.GetSampleSum(), count)
	}
	var prev uint64
	for _, b := range h.Bucket {
		if b.GetCumulativeCount() < prev || b.GetCumulativeCount() > count {
			t.Errorf("bucket le=%v: %d after %d (count %d)", b.GetUpperBound(), b.GetCumulativeCount(), prev, count)
		}
		prev = b.GetCumulativeCount()
	}
}

// waitUntil polls cond every 20 ms until it holds, failing after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A stats address already taken stops the master before it makes
// anything, with a line that names the address.
func TestStatsAddressBusy(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	dir := filepath.Join(t.TempDir(), "spool")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GOSPOOL_TEST_MASTER=1", "GOSPOOL_TEST_DIR="+dir, "GOSPOOL_TEST_STATS="+addr)
	out, _ := cmd.CombinedOutput()
	want := "test service: master: cannot serve stats on " + addr + ": listen tcp " + addr + ": bind: address already in use\n"
	if code := cmd.ProcessState.ExitCode(); code != 1 || string(out) != want {
		t.Errorf("exit %d, output %q; want 1 and %q", code, out, want)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("the spool directory was made before the stats address was checked")
	}
}
