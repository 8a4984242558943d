package master_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gospool/gospool/master"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/worker"
)

// The tests run real masters: the test binary re-executed with
// GOSPOOL_TEST_MASTER set is a master running testConfig, and the master
// re-executes it again for its workers and spoolers, which find the same
// configuration in the same environment.
func TestMain(m *testing.M) {
	if os.Getenv("GOSPOOL_TEST_MASTER") != "" || master.IsChild() {
		if err := master.Run(context.Background(), testConfig()); err != nil {
			fmt.Fprintln(os.Stderr, "test service:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}

func envDuration(name string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(name))
	return d
}

// testConfig is the service under test, configured by GOSPOOL_TEST_*:
//
//	DIR        the spool directory; ran.log and started.log go beside it
//	WORKERS    Go workers serving HTTP on LISTEN (a unix socket path)
//	SPOOLERS   spooler processes (default 1)
//	HARAKIRI, SPOOLER_HARAKIRI, MAX_REQUESTS, MERCY   the master's limits
//	STATS      the stats server's address (Config.StatsAddr)
//	DIR2       a second spool directory (one spooler process), maybe DIR again
//
// A worker answers POST /spool?id=ID&pad=N by spooling {id, pad (N bytes),
// sum (sha256 of pad)} and answering 200 only once Spool returned nil, and
// GET /sleep?d=DURATION by sleeping. The spooler checks sum (a torn task
// would fail it: "TORN" in ran.log), sleeps for the task's "sleep" key if
// any on its first attempt (logging "start ID PID" to started.log first;
// with STUCK it ignores its context), then appends "ID PID\n" to ran.log.
// A task with a "fail" key fails its first attempt (before ran.log).
// With WORKER_CRASH the workers fail as soon as they start.
func testConfig() master.Config {
	dir := os.Getenv("GOSPOOL_TEST_DIR")
	spoolers := max(envInt("GOSPOOL_TEST_SPOOLERS"), 1)
	cfg := master.Config{
		Workers:         envInt("GOSPOOL_TEST_WORKERS"),
		Harakiri:        envDuration("GOSPOOL_TEST_HARAKIRI"),
		SpoolerHarakiri: envDuration("GOSPOOL_TEST_SPOOLER_HARAKIRI"),
		MaxRequests:     envInt("GOSPOOL_TEST_MAX_REQUESTS"),
		ReloadMercy:     envDuration("GOSPOOL_TEST_MERCY"),
		ForkbombDelay:   envDuration("GOSPOOL_TEST_FORKBOMB"),
		StatsAddr:       os.Getenv("GOSPOOL_TEST_STATS"),
		Spoolers: []master.Spooler{{
			Dir:       dir,
			Processes: spoolers,
			Config:    spooler.Config{Concurrency: 4, RetryDelay: 100 * time.Millisecond, RetryMaxDelay: time.Second, Quiet: true},
			Setup: func(s *spooler.Spooler) error {
				s.HandleDefault(runTestTask)
				return nil
			},
		}},
	}
	if l := os.Getenv("GOSPOOL_TEST_LISTEN"); l != "" {
		cfg.Listen = []string{l}
	}
	if d := os.Getenv("GOSPOOL_TEST_DIR2"); d != "" {
		second := cfg.Spoolers[0]
		second.Dir, second.Processes = d, 1
		cfg.Spoolers = append(cfg.Spoolers, second)
	}
	if cfg.Workers > 0 {
		cfg.Worker = serveTest
	}
	return cfg
}

func serveTest(ctx context.Context, w *worker.Worker) error {
	if os.Getenv("GOSPOOL_TEST_WORKER_CRASH") != "" {
		return errors.New("cannot start: GOSPOOL_TEST_WORKER_CRASH is set")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /spool", func(rw http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.FormValue("pad"))
		pad := make([]byte, n)
		for i := range pad {
			pad[i] = byte('a' + i%26)
		}
		sum := sha256.Sum256(pad)
		t := spooler.NewTask("id", r.FormValue("id"), "pad", string(pad), "sum", hex.EncodeToString(sum[:]))
		if s := r.FormValue("sleep"); s != "" {
			t.Set("sleep", []byte(s))
		}
		if _, err := w.Spool(r.Context(), t); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(rw, "ok %d\n", os.Getpid())
	})
	mux.HandleFunc("GET /sleep", func(rw http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.FormValue("d"))
		time.Sleep(d)
		fmt.Fprintf(rw, "slept %v in %d\n", d, os.Getpid())
	})
	mux.HandleFunc("GET /pid", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "%d\n", os.Getpid())
	})
	srv := &http.Server{Handler: mux}
	if os.Getenv("GOSPOOL_TEST_DEBUG") != "" {
		var mu sync.Mutex
		active := map[net.Conn]bool{}
		srv.ConnState = func(c net.Conn, st http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			switch st {
			case http.StateActive:
				active[c] = true
			case http.StateClosed, http.StateHijacked:
				if !active[c] {
					fmt.Fprintf(os.Stderr, "DEBUG worker %d: conn closed before a request (ctx err %v)\n", os.Getpid(), ctx.Err())
				}
				delete(active, c)
			}
		}
	}
	err := w.Serve(ctx, srv)
	if os.Getenv("GOSPOOL_TEST_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "DEBUG worker %d: Serve returned %v after %d requests\n", os.Getpid(), err, w.Requests())
	}
	return err
}

func runTestTask(ctx context.Context, t *spooler.Task) error {
	dir := filepath.Dir(os.Getenv("GOSPOOL_TEST_DIR"))
	id, _ := t.Get("id")
	pad, _ := t.Get("pad")
	want, _ := t.Get("sum")
	sum := sha256.Sum256(pad)
	if hex.EncodeToString(sum[:]) != string(want) {
		appendLine(filepath.Join(dir, "ran.log"), fmt.Sprintf("TORN %s %d", id, os.Getpid()))
		return nil
	}
	if _, ok := t.Get("fail"); ok && spooler.TaskInfo(ctx).Attempt == 1 {
		return errors.New("fails its first attempt")
	}
	if s, ok := t.Get("sleep"); ok && spooler.TaskInfo(ctx).Attempt == 1 {
		appendLine(filepath.Join(dir, "started.log"), fmt.Sprintf("start %s %d", id, os.Getpid()))
		d, _ := time.ParseDuration(string(s))
		if os.Getenv("GOSPOOL_TEST_STUCK") != "" {
			time.Sleep(d) // a handler that ignores its context
		} else {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	appendLine(filepath.Join(dir, "ran.log"), fmt.Sprintf("%s %d", id, os.Getpid()))
	return nil
}

// appendLine appends one line with a single write on an O_APPEND file, so
// that lines of concurrent processes never interleave.
func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test service:", err)
		return
	}
	f.Write([]byte(line + "\n"))
	f.Close()
}
