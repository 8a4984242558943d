package spooler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/gospool/gospool/master"
	"github.com/gospool/gospool/spooler"
)

// A spooler with a Go handler, and a client handing it a task through the
// ring of a spool directory.
func Example() {
	dir, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(dir)

	s, err := spooler.New(spooler.Config{Dir: dir, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		log.Fatal(err)
	}
	resized := make(chan string)
	s.Handle("resize", func(ctx context.Context, t *spooler.Task) error {
		image, _ := t.Get("image")
		resized <- string(image)
		return nil // SPOOL_OK: done, deleted
	})
	ctx, stop := context.WithCancel(context.Background())
	go s.Run(ctx)
	<-s.Ready()

	c, err := spooler.NewClient(dir, spooler.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	path, err := c.Spool(ctx, spooler.NewTask("task", "resize", "image", "cat.jpg"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("into the ring: %v\n", path == "")
	fmt.Printf("resized %s\n", <-resized)
	stop()
	// Output:
	// into the ring: true
	// resized cat.jpg
}

// Handlers written with uWSGI's return codes.
func ExampleResultHandler() {
	h := spooler.ResultHandler(func(ctx context.Context, t *spooler.Task) spooler.Result {
		if _, ok := t.Get("ready"); !ok {
			return spooler.Retry // SPOOL_RETRY: run it again later
		}
		return spooler.OK
	})
	err := h(context.Background(), spooler.NewTask("task", "x"))
	fmt.Println(spooler.ResultOf(err))
	// Output: SPOOL_RETRY
}

// Handlers in a service run by the gospool master: Setup registers them in
// each spooler process the master starts on the directory. A handler's
// error decides what becomes of its task: nil is done, ErrIgnore drops it,
// anything else (or a panic) runs it again later, with backoff.
func ExampleSpooler_Handle() {
	err := master.Run(context.Background(), master.Config{
		Spoolers: []master.Spooler{{
			Dir:       "/var/spool/app",
			Processes: 2,
			Config:    spooler.Config{Concurrency: 4, MaxRetries: 5},
			Setup: func(s *spooler.Spooler) error {
				// Tasks named "welcome-email": the ud_spool_func key, as
				// Python's uwsgidecorators writes it, else the task key.
				s.Handle("welcome-email", func(ctx context.Context, t *spooler.Task) error {
					email, ok := t.Get("email")
					if !ok {
						return spooler.ErrIgnore // SPOOL_IGNORE: nothing to do
					}
					info := spooler.TaskInfo(ctx) // which file or ring record, which attempt
					log.Printf("%s, attempt %d: emailing %s", info.Name, info.Attempt, email)
					select {
					case <-time.After(100 * time.Millisecond): // the work
						return nil // SPOOL_OK: done
					case <-ctx.Done():
						return ctx.Err() // stopped (SIGINT, harakiri): retried later
					}
				})
				// Every other task.
				s.HandleDefault(func(ctx context.Context, t *spooler.Task) error {
					return errors.New("no handler for " + t.Name()) // SPOOL_RETRY
				})
				return nil
			},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
}

// A spooler whose handlers need a slow preparation (here a template cache)
// makes it in BeforeTasks: producers already spool into its ring meanwhile,
// and no task's harakiri counts the preparation's time.
func ExampleSpooler_BeforeTasks() {
	s, err := spooler.New(spooler.Config{Dir: "/var/spool/app", Harakiri: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	var templates map[string]string
	s.BeforeTasks(func(ctx context.Context) error {
		// Say, 20 s of loading. An error returned here would end Run.
		templates = map[string]string{"welcome": "Hello, %s!"}
		return nil
	})
	s.Handle("welcome-email", func(ctx context.Context, t *spooler.Task) error {
		email, _ := t.Get("email")
		log.Printf(templates["welcome"], email)
		return nil
	})
	if err := s.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}
