package master_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/gospool/gospool/master"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/worker"
)

// The whole main of a service: four HTTP workers sharing one listening
// socket, and a spooler process on /var/spool/app running the tasks they
// hand over. The same binary is the master and each child: Run re-executes
// it with the child's role in the environment and runs that role there, so
// the Config must be built the same way in every process.
//
// Send the master SIGHUP for a graceful reload (new workers and spooler
// first, then the old ones finish what they started) and SIGTERM to stop.
func ExampleRun() {
	err := master.Run(context.Background(), master.Config{
		Workers: 4,
		Listen:  []string{"127.0.0.1:8080"},
		Worker: func(ctx context.Context, w *worker.Worker) error {
			mux := http.NewServeMux()
			mux.HandleFunc("POST /signup", func(rw http.ResponseWriter, r *http.Request) {
				t := spooler.NewTask("task", "welcome-email", "email", r.FormValue("email"))
				// Acknowledged once Spool returns nil: the task is in the
				// ring of /var/spool/app and survives any crash.
				if _, err := w.Spool(r.Context(), t); err != nil {
					http.Error(rw, err.Error(), http.StatusServiceUnavailable)
					return
				}
				fmt.Fprintf(rw, "queued by worker %d\n", w.ID())
			})
			// Serve runs mux, wrapped in w.Handler so that the master sees
			// each request (Harakiri below, gospool stats), on w.Listener(0)
			// until ctx is cancelled, then answers the requests in flight
			// and returns.
			return w.Serve(ctx, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second})
		},
		Spoolers: []master.Spooler{{
			Dir:    "/var/spool/app",
			Config: spooler.Config{Concurrency: 4},
			// Setup runs in the spooler process.
			Setup: func(s *spooler.Spooler) error {
				s.Handle("welcome-email", func(ctx context.Context, t *spooler.Task) error {
					email, _ := t.Get("email")
					return sendWelcomeEmail(ctx, string(email)) // an error retries it later
				})
				return nil
			},
		}},
		Harakiri: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
}

func sendWelcomeEmail(ctx context.Context, to string) error {
	log.Printf("sent the welcome email to %s", to)
	return nil
}
