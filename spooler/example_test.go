package spooler_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"

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
