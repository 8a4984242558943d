// Command goservice is a small net/http service embedding the gospool master:
// one binary that is the master, its four HTTP workers sharing one listener,
// and a spooler process running a Go task handler. See README.md here.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gospool/gospool/master"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/worker"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "the `ADDR` the workers serve HTTP on")
	workers := flag.Int("workers", 4, "how many worker processes")
	// The default is outside the current directory, so that `go run
	// ./examples/goservice` leaves no spool/ in the clone, and fixed, so
	// that tasks left in it run at the next start.
	dir := flag.String("spool", filepath.Join(os.TempDir(), "goservice-spool"), "the spool `DIR` (created when missing)")
	work := flag.Duration("work", 500*time.Millisecond, "how long sending one welcome email takes")
	flag.Parse()

	err := master.Run(context.Background(), master.Config{
		Workers: *workers,
		Listen:  []string{*listen},
		Worker:  serve,
		Spoolers: []master.Spooler{{
			Dir:    *dir,
			Config: spooler.Config{Concurrency: 4},
			Setup: func(s *spooler.Spooler) error {
				s.Handle("welcome-email", func(ctx context.Context, t *spooler.Task) error {
					return sendWelcome(ctx, t, *work)
				})
				return nil
			},
		}},
		Harakiri:    30 * time.Second,
		ReloadMercy: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
}

// serve is one worker: an HTTP server on the master's listener. It returns
// when the master asks it to stop, after finishing the requests in flight.
func serve(ctx context.Context, w *worker.Worker) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signup", func(rw http.ResponseWriter, r *http.Request) {
		email := r.FormValue("email")
		if email == "" {
			http.Error(rw, "missing email", http.StatusBadRequest)
			return
		}
		// The task is in the ring (or a spool file) when Spool returns: it
		// runs even if this worker crashes right after answering.
		if _, err := w.Spool(r.Context(), spooler.NewTask("ud_spool_func", "welcome-email", "email", email)); err != nil {
			http.Error(rw, "cannot queue the email: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(rw, "welcome email to %s queued by worker %d (pid %d)\n", email, w.ID(), os.Getpid())
	})
	mux.HandleFunc("GET /", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello from worker %d (pid %d); %d requests served\n", w.ID(), os.Getpid(), w.Requests())
	})
	// Serve answers on the master's listener until ctx is done, then stops
	// accepting and returns once the requests in flight are answered.
	return w.Serve(ctx, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second})
}

// sendWelcome is the task handler: visible work that takes a while.
func sendWelcome(ctx context.Context, t *spooler.Task, work time.Duration) error {
	email, _ := t.Get("email")
	select {
	case <-time.After(work):
	case <-ctx.Done():
		return ctx.Err() // shutting down: the task is retried later
	}
	info := spooler.TaskInfo(ctx)
	log.Printf("sent the welcome email to %s (task %s, attempt %d, spooler pid %s)", email, info.Name, info.Attempt, strconv.Itoa(os.Getpid()))
	return nil
}
