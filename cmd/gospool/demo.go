package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gospool/gospool/master/stats"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/ring"
)

const demoHelp = `The quick start. In one process: create a temporary spool directory,
start a spooler on it with two Go handlers, spool ten tasks with a client,
and show each hand-off and each run as it happens, then the ring's counters.

Most tasks go through the shared-memory ring and run within microseconds;
one has an "at" two seconds ahead and waits in a uWSGI spool file; one has a
300 KiB body, too big for the ring, and is spilled to a file; one fails on
its first attempt and is retried. The demo exits 0 once all ten ran (1 if
they did not within 30 seconds). The directory is removed unless --keep.`

// demoTimeout bounds the whole demo.
const demoTimeout = 30 * time.Second

func cmdDemo(ctx context.Context, a *app, args []string) error {
	flags := newFlagSet("demo", "gospool demo [--keep]", demoHelp)
	keep := flags.Bool("keep", false, "keep the spool directory and print its path")
	pos, err := flags.parse(a, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q: demo takes no arguments", pos[0])
	}
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "gospool-demo-")
	if err != nil {
		return fmt.Errorf("creating a temporary spool directory: %w", err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	out := &demoOut{w: a.stdout}
	d := &demo{out: out, done: map[string]bool{}, allDone: make(chan struct{})}
	if err := d.run(ctx, dir); err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(a.stdout, "\nkept the spool directory %s\n  look at it: gospool stats --spooler %s\n", dir, dir)
	}
	return nil
}

// demo is one run of the quick start.
type demo struct {
	out *demoOut

	mu      sync.Mutex
	done    map[string]bool // task ids whose handler returned OK
	want    int
	allDone chan struct{}
}

type demoTask struct {
	t   *spooler.Task
	why string // why it goes to a file, when it does
}

func (d *demo) run(ctx context.Context, dir string) error {
	out := d.out
	fmt.Fprintf(out.w, `gospool demo: a spooler and a client in one process, on the spool directory
  %s
The spooler runs one task at a time with Go handlers: "resize" takes 50ms,
"send-email" fails on its first attempt, a default handler takes the rest.
The client hands it ten tasks: through the shared-memory ring when it can,
as uWSGI spool files when a task must wait or is too big for the ring.

`, dir)

	s, err := spooler.New(spooler.Config{
		Dir:        dir,
		Frequency:  30 * time.Second,
		RetryDelay: 500 * time.Millisecond,
		Quiet:      true, // the handlers below say what they do
		Logger:     log.New(out, "", 0),
	})
	if err != nil {
		return err
	}
	s.Handle("resize", d.resize)
	s.Handle("send-email", d.sendEmail)
	s.HandleDefault(d.anyTask)

	runCtx, stopSpooler := context.WithCancel(ctx)
	defer stopSpooler()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopSpooler()
		select {
		case err := <-ran:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("the spooler did not stop within 10s")
		}
	}
	defer stop()

	ringPath := filepath.Join(s.Dir(), ring.FileName)
	r, err := waitRing(ctx, s, ringPath, ran)
	if err != nil {
		return err
	}
	defer r.Close()
	out.printf("the spooler is up: it created the ring %s and waits for tasks", ring.FileName)

	c, err := spooler.NewClient(s.Dir(), spooler.ClientOptions{})
	if err != nil {
		return err
	}
	defer c.Close()

	tasks := d.tasks(r.Geometry())
	d.mu.Lock()
	d.want = len(tasks)
	d.mu.Unlock()
	for _, dt := range tasks {
		path, err := c.Spool(ctx, dt.t)
		if err != nil {
			return fmt.Errorf("spooling %s: %s", dt.t, cleanError(err))
		}
		where := "into the ring"
		if path != "" {
			where = "into the file " + filepath.Base(path)
			if dt.why != "" {
				where += ": " + dt.why
			}
		}
		out.printf("spooled %-30s %s", describe(dt.t), where)
	}

	select {
	case <-d.allDone:
	case err := <-ran:
		return fmt.Errorf("the spooler stopped early: %v", err)
	case <-ctx.Done():
		return fmt.Errorf("only %d of the %d tasks ran within %v", d.count(), len(tasks), demoTimeout)
	}
	// The handlers said OK; the spooler settles each task just after.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if st := r.Stats(); st.Done >= uint64(len(tasks)) && st.InFlight == 0 {
			break
		}
	}

	fmt.Fprintf(out.w, "\nall %d tasks ran. The ring's counters, as \"gospool stats --spooler DIR\" shows them:\n\n", len(tasks))
	printRing(out.w, ringPath, r.Stats())
	if files, err := stats.CountFiles(s.Dir(), time.Now()); err == nil {
		fmt.Fprintf(out.w, "spool files: %d due now, %d scheduled for later\n", files.Due, files.Scheduled)
	}
	fmt.Fprint(out.w, `
"spilled" counts the big task that went to a file instead of the ring, "retried"
and "failed" the e-mail that failed once. Next, with a real spool directory:
  gospool run   --spooler /tmp/spool --spooler-exec 'cat'       # prints each task as JSON
  gospool spool --spooler /tmp/spool task=resize image=cat.jpg  # in another terminal
`)
	c.Close()
	r.Close()
	return stop()
}

// waitRing waits until the spooler has attached to its ring, and opens it
// for the stats the demo prints.
func waitRing(ctx context.Context, s *spooler.Spooler, path string, ran <-chan error) (*ring.Ring, error) {
	select {
	case <-s.Ready():
		return ring.Open(path, ring.Options{ReadOnly: true})
	case err := <-ran:
		return nil, fmt.Errorf("the spooler stopped before it started: %v", err)
	case <-ctx.Done():
		return nil, fmt.Errorf("the spooler did not start within %v", demoTimeout)
	}
}

// tasks are the ten tasks the demo spools, in order.
func (d *demo) tasks(g ring.Geometry) []demoTask {
	n := 0
	id := func() string { n++; return strconv.Itoa(n) }
	resize := func(image, size string) demoTask {
		return demoTask{t: spooler.NewTask("task", "resize", "id", id(), "image", image, "size", size)}
	}
	at := fmt.Sprintf("%.3f", float64(time.Now().Add(2*time.Second).UnixMilli())/1000)
	upload := spooler.NewTask("task", "upload", "id", "", "name", "video.bin")
	upload.Body = bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16)
	list := []demoTask{
		resize("cat.jpg", "128x128"),
		resize("dog.jpg", "64x64"),
		resize("bird.png", "256x256"),
		{t: spooler.NewTask("task", "reminder", "id", id(), "text", "stand up and stretch", "at", at),
			why: "its \"at\" is 2 seconds ahead, so it waits in a file"},
		{t: upload, why: fmt.Sprintf("its 300 KiB body is more than a ring lane takes (%s), so it is spilled", sizeString(g.MaxRecord()))},
		{t: spooler.NewTask("task", "send-email", "id", "", "to", "alice@example.com")},
		{t: spooler.NewTask("task", "report", "id", "", "month", "2024-05")},
		resize("fish.gif", "32x32"),
		resize("owl.jpg", "512x512"),
		resize("bee.png", "16x16"),
	}
	for _, dt := range list {
		if v, _ := dt.t.Get("id"); len(v) == 0 {
			dt.t.Set("id", []byte(id()))
		}
	}
	return list
}

// describe is a task in a few words for the demo's lines.
func describe(t *spooler.Task) string {
	name := t.Name()
	for _, key := range []string{"image", "text", "name", "to", "month"} {
		if v, ok := t.Get(key); ok {
			return fmt.Sprintf("%s %s", name, v)
		}
	}
	return name
}

// where says where the running task came from, and how fast it got here.
func where(ctx context.Context) string {
	info := spooler.TaskInfo(ctx)
	var b strings.Builder
	if info.Spooled.IsZero() {
		b.WriteString("from a spool file")
	} else {
		fmt.Fprintf(&b, "from the ring, spooled %v ago", time.Since(info.Spooled).Round(time.Microsecond))
	}
	if info.Attempt > 1 {
		fmt.Fprintf(&b, ", attempt %d", info.Attempt)
	}
	return b.String()
}

func (d *demo) resize(ctx context.Context, t *spooler.Task) error {
	image, _ := t.Get("image")
	size, _ := t.Get("size")
	d.out.printf("  ran resize: %s to %s (%s), takes 50ms", image, size, where(ctx))
	select {
	case <-time.After(50 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	return d.ok(t)
}

func (d *demo) sendEmail(ctx context.Context, t *spooler.Task) error {
	to, _ := t.Get("to")
	if spooler.TaskInfo(ctx).Attempt == 1 {
		d.out.printf("  ran send-email to %s (%s): the mail server is busy, returning an error: the task will be retried", to, where(ctx))
		return errors.New("mail server busy (the demo's first attempt always fails)")
	}
	d.out.printf("  ran send-email to %s (%s): sent", to, where(ctx))
	return d.ok(t)
}

func (d *demo) anyTask(ctx context.Context, t *spooler.Task) error {
	body := ""
	if t.Body != nil {
		body = fmt.Sprintf(", body %s", sizeString(len(t.Body)))
	}
	d.out.printf("  ran %s with the default handler (%s%s)", describe(t), where(ctx), body)
	return d.ok(t)
}

// ok records that a task's handler succeeded.
func (d *demo) ok(t *spooler.Task) error {
	id, _ := t.Get("id")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done[string(id)] = true
	if len(d.done) == d.want {
		close(d.allDone)
	}
	return nil
}

func (d *demo) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.done)
}

// demoOut prints timestamped lines, from the handlers and from the
// spooler's log, one at a time.
type demoOut struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *demoOut) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Write takes the spooler's log lines.
func (o *demoOut) Write(p []byte) (int, error) {
	o.printf("  spooler log: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
