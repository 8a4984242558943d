package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/master/stats"
	"github.com/gospool/gospool/spooler"
)

var statsLine = regexp.MustCompile(`\*\*\* Stats server enabled on (\S+) fd: \d+ \*\*\*`)

func httpGet(url string) ([]byte, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, err
}

// gospool run --stats ADDR under load: /stats and /metrics report what was
// spooled and run, as gospool stats --json does without a server. The flag
// wins over the ini's stats, and an ini's stats on a busy address stops
// gospool run with one line naming it.
func TestRunStats(t *testing.T) {
	t.Parallel()
	base := realDir(t, t.TempDir())
	dir := filepath.Join(base, "spool")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	iniPath := filepath.Join(base, "app.ini")
	os.WriteFile(iniPath, []byte("[uwsgi]\nmaster = true\nstats = "+busy.Addr().String()+"\nstats-http = true\n"), 0o644)
	failOnce := `case "$(cat)" in *'"fail"'*) [ "$GOSPOOL_ATTEMPT" -ge 2 ] || exit 1;; esac`
	p := startRun(t, nil, "--ini", iniPath, "--spooler", dir, "--spooler-exec", failOnce, "--spooler-quiet",
		"--spooler-concurrency", "4", "--spooler-retry-delay", "0.1", "--stats", "127.0.0.1:0")
	var addr string
	testproc.WaitFor(t, 10*time.Second, "the stats server", func() bool {
		m := statsLine.FindStringSubmatch(p.stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, p.stderr)
	waitLive(t, dir, p)
	if strings.Contains(p.stderr.String(), "warning") {
		t.Errorf("warnings for the ini's stats options:\n%s", p.stderr)
	}

	// Load: two producers straight into the ring, every fourth task
	// failing once, while /stats and /metrics are read.
	const n, failEvery = 80, 4
	errs := make(chan error, 3)
	for g := range 2 {
		go func() {
			c, err := spooler.NewClient(dir, spooler.ClientOptions{})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := g; i < n; i += 2 {
				task := spooler.NewTask("id", fmt.Sprint(i))
				if i%failEvery == 0 {
					task.Set("fail", []byte("once"))
				}
				if _, err := c.Spool(context.Background(), task); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	go func() {
		for i := 0; i < 20; i++ {
			if _, err := httpGet("http://" + addr + "/stats"); err != nil {
				errs <- err
				return
			}
			if _, err := httpGet("http://" + addr + "/metrics"); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	var doc stats.Document
	testproc.WaitFor(t, 30*time.Second, "every task done", func() bool {
		b, err := httpGet("http://" + addr + "/stats")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		r := doc.Gospool.Dirs[0].Ring
		return r != nil && r.Done == n && r.InFlight == 0 && len(doc.Spoolers) == 1 && doc.Spoolers[0].Tasks == n+n/failEvery
	}, p.stderr)
	d := doc.Gospool.Dirs[0]
	r := d.Ring
	if d.Dir != dir || r.Spooled+r.Spilled != n || r.Retried != n/failEvery || r.Failed != n/failEvery || r.Dead != 0 || d.Handoff.Count != r.Spooled {
		t.Errorf("/stats for %s: %+v, ring %+v, want %d spooled, %d retried", dir, d, *r, n, n/failEvery)
	}
	if sp := doc.Spoolers[0]; sp.Dir != dir || sp.Pid != spoolerPid(t, p) || sp.Respawns != 0 || doc.Pid != p.cmd.Process.Pid {
		t.Errorf("spoolers %+v, master pid %d", doc.Spoolers, doc.Pid)
	}

	// gospool stats --json, which reads the files, says the same.
	var st struct {
		Ring struct{ Spooled, Spilled, Done, Retried, Failed uint64 }
	}
	if err := json.Unmarshal([]byte(gospool(t, "stats", "--spooler", dir, "--json").mustSucceed(t).stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ring.Spooled != r.Spooled || st.Ring.Done != r.Done || st.Ring.Retried != r.Retried || st.Ring.Failed != r.Failed {
		t.Errorf("gospool stats --json %+v, /stats %+v", st.Ring, *r)
	}

	b, err := httpGet("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(string(b))); err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, want := range []string{
		fmt.Sprintf("gospool_tasks_done_total{dir=%q} %d\n", dir, n),
		fmt.Sprintf("gospool_tasks_spooled_total{dir=%q} %d\n", dir, r.Spooled),
		fmt.Sprintf("gospool_tasks_retried_total{dir=%q} %d\n", dir, n/failEvery),
		fmt.Sprintf("gospool_tasks_failed_total{dir=%q} %d\n", dir, n/failEvery),
		fmt.Sprintf("gospool_handoff_latency_seconds_count{dir=%q} %d\n", dir, r.Spooled),
		fmt.Sprintf("gospool_process_respawns{dir=%q,number=\"1\",role=\"spooler\"} 0\n", dir),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The ini alone: its stats address is busy.
	res := gospool(t, "run", "--ini", iniPath, "--spooler", filepath.Join(base, "other"), "--spooler-exec", "true")
	want := "gospool run: master: cannot serve stats on " + busy.Addr().String() + ": listen tcp " + busy.Addr().String() + ": bind: address already in use"
	if res.code != 1 || strings.TrimSpace(res.stderr) != want {
		t.Errorf("busy stats address: exit %d, stderr %q; want 1 and %q", res.code, res.stderr, want)
	}
	oneErrorLine(t, res, "gospool run: ")

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	if _, err := httpGet("http://" + addr + "/stats"); err == nil {
		t.Error("the stats server outlives the master")
	}
}
