package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gospool/gospool/master/scoreboard"
	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/task"
)

// ErrNoMaster is returned by [Open] in a process the gospool master did not
// start (GOSPOOL_ROLE is not "worker").
var ErrNoMaster = errors.New("worker: not started by a gospool master (" + EnvRole + " is not \"" + RoleWorker + "\")")

// Worker is a worker process's handle on what its master gave it: the
// listening sockets, the spool directories' rings, and its scoreboard slot,
// through which the master sees its requests (for harakiri, max-requests
// and `gospool stats`). It is safe for concurrent use.
type Worker struct {
	id          int
	listeners   []net.Listener
	addrs       []string
	router      *spooler.Router
	tracker     *scoreboard.Tracker // nil when the master gave no scoreboard
	board       *scoreboard.Board
	maxRequests int64
	requests    atomic.Int64
	recycle     chan struct{}
	recycleOnce sync.Once
}

// Open builds the handle from the environment and descriptors the master
// passed (see the contract in env.go). Go programs started with
// `gospool run --worker-cmd` call it; [master.Run] calls it for its own
// workers.
func Open() (*Worker, error) {
	if os.Getenv(EnvRole) != RoleWorker {
		return nil, ErrNoMaster
	}
	w := &Worker{recycle: make(chan struct{})}
	var err error
	if w.id, err = envInt(EnvID); err != nil {
		return nil, err
	}
	max, err := envInt(EnvMaxRequests)
	if err != nil {
		return nil, err
	}
	w.maxRequests = int64(max)
	n, err := envInt(EnvListenFDs)
	if err != nil {
		return nil, err
	}
	if a := os.Getenv(EnvListenAddrs); a != "" {
		w.addrs = strings.Split(a, ",")
	}
	for i := 0; i < n; i++ {
		f := os.NewFile(uintptr(FDFirstListener+i), "listener")
		l, err := net.FileListener(f) // a dup; the inherited fd can go
		f.Close()
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("worker: inherited listener on fd %d: %w", FDFirstListener+i, err)
		}
		w.listeners = append(w.listeners, l)
	}
	if s := os.Getenv(EnvSlot); s != "" {
		slot, err := strconv.Atoi(s)
		f := os.NewFile(FDScoreboard, "scoreboard")
		if err == nil {
			w.board, err = scoreboard.FromFile(f)
		}
		if err == nil && (slot < 0 || slot >= w.board.Len()) {
			err = fmt.Errorf("slot %d out of range", slot)
		}
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("worker: scoreboard on fd %d: %w", FDScoreboard, err)
		}
		w.tracker = scoreboard.NewTracker(w.board.Slot(slot))
	}
	if d := os.Getenv(EnvSpoolerDirs); d != "" {
		// The ring is opened again by path: see "A ring descriptor" in env.go.
		w.router, err = spooler.NewRouter(strings.Split(d, ":"), spooler.ClientOptions{})
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("worker: %w", err)
		}
	}
	return w, nil
}

func envInt(name string) (int, error) {
	s := os.Getenv(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("worker: %s=%q: want a number (it is set by the gospool master)", name, s)
	}
	return n, nil
}

// ID is the worker's number, from 1, as uWSGI numbers its workers. A
// respawned worker keeps the number of the one it replaces.
func (w *Worker) ID() int { return w.id }

// Listeners are the sockets the master listens on, in the order they were
// configured. They stay open across reloads: the master holds them.
func (w *Worker) Listeners() []net.Listener { return w.listeners }

// Listener is Listeners()[i], or nil when there is no such listener.
func (w *Worker) Listener(i int) net.Listener {
	if i < 0 || i >= len(w.listeners) {
		return nil
	}
	return w.listeners[i]
}

// Spool hands a task to the spoolers: into the ring of its spool directory
// (the `spooler` key names one, else the first), or as a uWSGI spool file
// when the ring cannot take it now. It returns "" for the ring, else the
// file's path. Once it returns nil the task is acknowledged: it survives
// the death of this worker, of the spooler and of the master.
func (w *Worker) Spool(ctx context.Context, t *task.Task) (string, error) {
	if w.router == nil {
		return "", errors.New("worker: the master gave this worker no spool directory")
	}
	return w.router.Spool(ctx, t)
}

// Begin tells the master that this worker started serving something named
// name (a request line, say); call end when it is finished. The master
// kills a worker busy for longer than its harakiri, and after max-requests
// finished ones the worker's [Worker.Recycle] channel closes.
func (w *Worker) Begin(name string) (end func()) {
	var endSlot func()
	if w.tracker != nil {
		endSlot = w.tracker.Begin(name)
	}
	return func() {
		if endSlot != nil {
			endSlot()
		}
		if n := w.requests.Add(1); w.maxRequests > 0 && n >= w.maxRequests {
			w.recycleOnce.Do(func() {
				if w.tracker != nil {
					w.tracker.SetState(scoreboard.Recycling)
				}
				close(w.recycle)
			})
		}
	}
}

// Handler wraps h so that every request goes through [Worker.Begin].
func (w *Worker) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		end := w.Begin(r.Method + " " + r.URL.RequestURI())
		defer end()
		h.ServeHTTP(rw, r)
	})
}

// Serve runs srv on every listener until ctx is done, then stops
// gracefully without dropping a request: it stops accepting (the master's
// socket stays open, so sibling workers take the next connections), turns
// keep-alives off, waits until every connection it accepted has been
// answered (the master's reload mercy bounds how long), and then shuts srv
// down. srv.Handler is wrapped with [Worker.Handler], so harakiri,
// max-requests and `gospool stats` see the requests. This is the usual
// body of a Go worker:
//
//	Worker: func(ctx context.Context, w *worker.Worker) error {
//		return w.Serve(ctx, &http.Server{Handler: mux})
//	}
//
// Why not srv.Shutdown alone: net/http drops, without an answer, a request
// it reads after Shutdown began, which is right for a server that goes away
// but wrong for one whose siblings could have served it. And srv.Serve
// returns as soon as Shutdown closes the listener, before the requests in
// flight are answered: a worker that returned then would exit under them.
func (w *Worker) Serve(ctx context.Context, srv *http.Server) error {
	if len(w.listeners) == 0 {
		return errors.New("worker: the master gave this worker no listener (Config.Listen, or --listen)")
	}
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = w.Handler(h)
	// Connections accepted and not yet idle or closed, with when they were
	// accepted (zero once a request was read from them).
	var mu sync.Mutex
	counted := map[net.Conn]time.Time{}
	hook := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		switch st {
		case http.StateNew:
			counted[c] = time.Now()
		case http.StateActive:
			counted[c] = time.Time{}
		default: // idle, hijacked, closed
			delete(counted, c)
		}
		mu.Unlock()
		if hook != nil {
			hook(c, st)
		}
	}
	errs := make(chan error, len(w.listeners))
	for _, l := range w.listeners {
		go func() { errs <- srv.Serve(l) }()
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs: // a listener failed: stop the others too
	}
	srv.SetKeepAlivesEnabled(false) // answers say Connection: close; idle ones close now
	for _, l := range w.listeners {
		l.Close() // this process's copy: the socket stays open in the master
	}
	for range len(w.listeners) - btoi(first != nil) {
		<-errs // Serve returns once Accept fails; what it accepted is counted
	}
	// Wait for the requests in flight. A connection on which the client has
	// sent nothing for 5 s (browsers open spare ones) does not hold the
	// worker up: net/http's Shutdown makes the same call.
	for {
		mu.Lock()
		n := 0
		for _, since := range counted {
			if since.IsZero() || time.Since(since) < 5*time.Second {
				n++
			}
		}
		mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	err := srv.Shutdown(context.Background())
	if first != nil && !errors.Is(first, http.ErrServerClosed) && !errors.Is(first, net.ErrClosed) {
		return first
	}
	return err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Recycle is closed once the worker has served max-requests requests: it
// should then stop gracefully (finish what it serves, return), and the
// master starts a fresh one, as uWSGI does.
func (w *Worker) Recycle() <-chan struct{} { return w.recycle }

// Requests is how many requests the worker finished.
func (w *Worker) Requests() int64 { return w.requests.Load() }

// Close closes the listeners (this process's copies; the master keeps the
// sockets open), the spool clients and the scoreboard.
func (w *Worker) Close() error {
	var errs []error
	for _, l := range w.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if w.router != nil {
		errs = append(errs, w.router.Close())
	}
	if w.board != nil {
		errs = append(errs, w.board.Close())
	}
	return errors.Join(errs...)
}
