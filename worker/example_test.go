package worker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/worker"
)

// The main of a Go program that a gospool master runs as its workers,
// started with
//
//	gospool run --spooler /var/spool/app --spooler-exec ./send-welcome-email \
//		--workers 4 --worker-cmd ./app --listen 127.0.0.1:8080
//
// Open finds the listening socket and the spool directories the master
// passed; Spool hands a task to the spoolers; Serve answers HTTP on the
// socket until the master asks the worker to stop (SIGTERM on a graceful
// reload or shutdown), then finishes the requests in flight.
func Example() {
	w, err := worker.Open()
	if errors.Is(err, worker.ErrNoMaster) {
		log.Fatal("run me with gospool run --worker-cmd")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /signup", func(rw http.ResponseWriter, r *http.Request) {
		t := spooler.NewTask("task", "welcome-email", "email", r.FormValue("email"))
		// Once Spool returns nil the task is stored: it runs even if this
		// process dies right after answering.
		if _, err := w.Spool(r.Context(), t); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(rw, "queued by worker %d\n", w.ID())
	})
	// Serve wraps mux in w.Handler, so that the master sees every request
	// (harakiri, max-requests, gospool stats), and serves w.Listeners().
	if err := w.Serve(ctx, &http.Server{Handler: mux}); err != nil {
		log.Fatal(err)
	}
}

// A worker speaking a protocol of its own on the master's socket: one task
// per line received. Begin and its end function tell the master what the
// worker is busy with, as Handler does for HTTP requests. (Stopping on
// SIGTERM is left out: close the listener, finish the connections, return.)
func ExampleWorker_Listener() {
	w, err := worker.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	l := w.Listener(0)
	for {
		conn, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func(conn net.Conn) {
			defer conn.Close()
			lines := bufio.NewScanner(conn)
			for lines.Scan() {
				end := w.Begin("line from " + conn.RemoteAddr().String())
				_, err := w.Spool(context.Background(), spooler.NewTask("task", "line", "text", lines.Text()))
				end()
				if err != nil {
					fmt.Fprintln(conn, "ERR", err)
					continue
				}
				fmt.Fprintln(conn, "OK", os.Getpid())
			}
		}(conn)
	}
}
