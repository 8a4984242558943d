package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/remote"
	"github.com/gospool/gospool/spooler/task"
)

// shortTempDir returns a directory whose paths fit in a sockaddr_un.
func shortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "gsw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type recorder struct {
	mu    sync.Mutex
	tasks []*task.Task
}

func (r *recorder) all() []*task.Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*task.Task(nil), r.tasks...)
}

// serve runs a remote.Server on network until the test ends. spoolErr, when
// not nil, is what its Spool returns.
func serve(t *testing.T, network string, s *remote.Server, spoolErr error) (addr string, rec *recorder) {
	t.Helper()
	rec = &recorder{}
	s.Spool = func(_ context.Context, tk *task.Task) error {
		if spoolErr != nil {
			return spoolErr
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.tasks = append(rec.tasks, tk)
		return nil
	}
	s.Logger = log.New(io.Discard, "", 0)
	addr = "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(shortTempDir(t), "s.sock") // the bare-path form
	}
	l, err := remote.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	if network == "tcp" {
		addr = l.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr, rec
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSpoolRemote(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			addr, rec := serve(t, network, &remote.Server{}, nil)
			tk := task.New("task", "resize", "user", "42", "user", "43", "at", "1700000000.5", "priority", "7")
			tk.Add("bin", []byte{0, 0xff, 0x11})
			if err := SpoolRemote(ctxTimeout(t, 10*time.Second), addr, tk); err != nil {
				t.Fatal(err)
			}
			got := rec.all()
			if len(got) != 1 {
				t.Fatalf("%d tasks stored, want 1", len(got))
			}
			if fmt.Sprintf("%q", got[0].Pairs) != fmt.Sprintf("%q", tk.Pairs) {
				t.Errorf("stored %v, want %v", got[0], tk)
			}
		})
	}
	t.Run("unix: prefix", func(t *testing.T) {
		addr, rec := serve(t, "unix", &remote.Server{}, nil)
		if err := SpoolRemote(ctxTimeout(t, 10*time.Second), "unix:"+addr, task.New("a", "b")); err != nil {
			t.Fatal(err)
		}
		if len(rec.all()) != 1 {
			t.Fatal("not stored")
		}
	})
	t.Run("empty body is no body", func(t *testing.T) {
		addr, _ := serve(t, "tcp", &remote.Server{}, nil)
		tk := task.New("a", "b")
		tk.Body = []byte{}
		if err := SpoolRemote(ctxTimeout(t, 10*time.Second), addr, tk); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSpoolRemoteBytes checks the exact packet on the wire against the
// worked example of the spec.
func TestSpoolRemoteBytes(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 18)
		_, _ = io.ReadFull(c, buf)
		got <- buf
		_, _ = c.Write([]byte{255, 0, 0, 1})
	}()
	if err := SpoolRemote(ctxTimeout(t, 10*time.Second), l.Addr().String(), task.New("hello", "world")); err != nil {
		t.Fatal(err)
	}
	want := []byte("\x11\x0e\x00\x00\x05\x00hello\x05\x00world")
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("packet % x, want % x", b, want)
	}
}

func TestSpoolRemoteRefused(t *testing.T) {
	addr, _ := serve(t, "unix", &remote.Server{}, errors.New("disk full"))
	err := SpoolRemote(ctxTimeout(t, 10*time.Second), addr, task.New("a", "b"))
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("err = %v, want ErrRefused", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the address", err)
	}
}

func TestSpoolRemoteOversize(t *testing.T) {
	addr, rec := serve(t, "tcp", &remote.Server{MaxPacket: 16}, nil)
	err := SpoolRemote(ctxTimeout(t, 10*time.Second), addr, task.New("key", strings.Repeat("v", 100)))
	if !errors.Is(err, ErrNoReply) {
		t.Fatalf("err = %v, want ErrNoReply", err)
	}
	if !strings.Contains(err.Error(), "107-byte vars block") {
		t.Errorf("error %q does not give the size", err)
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d tasks stored", n)
	}
}

func TestSpoolRemoteRejectsBeforeSending(t *testing.T) {
	// Nothing listens here: these must fail before dialing.
	addr := filepath.Join(shortTempDir(t), "nobody.sock")
	ctx := ctxTimeout(t, 10*time.Second)

	withBody := task.New("a", "b")
	withBody.Body = []byte("payload")
	if err := SpoolRemote(ctx, addr, withBody); !errors.Is(err, ErrBody) {
		t.Errorf("task with a body: err = %v, want ErrBody", err)
	}
	if err := SpoolRemote(ctx, addr, task.New("priority", "../x")); !errors.Is(err, task.ErrBadPriority) {
		t.Errorf("bad priority: err = %v, want ErrBadPriority", err)
	}
	if err := SpoolRemote(ctx, addr, task.New("at", "soon")); !errors.Is(err, task.ErrBadAt) {
		t.Errorf("bad at: err = %v, want ErrBadAt", err)
	}
	if err := SpoolRemote(ctx, addr, task.New("k", strings.Repeat("v", 70000))); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("70000-byte value: err = %v, want the 64 KiB limit", err)
	}
	if err := SpoolRemote(ctx, addr, nil); err == nil {
		t.Error("nil task accepted")
	}
	// And then the dial error itself.
	err := SpoolRemote(ctx, addr, task.New("a", "b"))
	if err == nil || errors.Is(err, ErrRefused) || errors.Is(err, ErrNoReply) {
		t.Errorf("no server: err = %v, want a dial error", err)
	}
}

// TestSpoolRemoteTimeout: a server that accepts and never answers, and one
// that never accepts (the kernel completes the connection into the backlog).
func TestSpoolRemoteTimeout(t *testing.T) {
	for _, accept := range []bool{true, false} {
		t.Run(fmt.Sprintf("accept=%v", accept), func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if accept {
				go func() {
					for {
						c, err := l.Accept()
						if err != nil {
							return
						}
						defer c.Close()
					}
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err = SpoolRemote(ctx, l.Addr().String(), task.New("a", "b"))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want DeadlineExceeded", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("returned after %v", took)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		l, err := net.Listen("unix", filepath.Join(shortTempDir(t), "s.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		err = SpoolRemote(ctx, "unix:"+l.Addr().String(), task.New("a", "b"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
	})
}

func TestSpoolRemoteBadReply(t *testing.T) {
	for _, tc := range []struct {
		reply []byte
		want  string
	}{
		{[]byte("HTTP/1.1 400"), "not a uWSGI spool reply: 48 54 54 50"},
		{[]byte{255, 0, 0, 2}, "not a uWSGI spool reply: ff 00 00 02"},
		{[]byte{255, 0}, "closed the connection without a reply"},
	} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = io.ReadFull(c, make([]byte, 10))
			_, _ = c.Write(tc.reply)
		}()
		err = SpoolRemote(ctxTimeout(t, 10*time.Second), l.Addr().String(), task.New("a", "b"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("reply % x: err = %v, want %q", tc.reply, err, tc.want)
		}
	}
}

func TestSpoolRemoteConcurrent(t *testing.T) {
	addr, rec := serve(t, "unix", &remote.Server{}, nil)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := SpoolRemote(ctxTimeout(t, 20*time.Second), addr, task.New("id", fmt.Sprint(i))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(rec.all()); got != n {
		t.Fatalf("%d tasks stored, want %d", got, n)
	}
}
