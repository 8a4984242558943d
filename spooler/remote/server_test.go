package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/task"
)

// recorder is a Spool func that keeps what it is given.
type recorder struct {
	mu    sync.Mutex
	tasks []*task.Task
	err   error // returned by every call
}

func (r *recorder) spool(_ context.Context, t *task.Task) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.tasks = append(r.tasks, t)
	return nil
}

func (r *recorder) all() []*task.Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*task.Task(nil), r.tasks...)
}

type testServer struct {
	addr string // in Listen's form
	rec  *recorder
	log  *testproc.Buffer
}

// shortTempDir returns a directory whose paths fit in a sockaddr_un (108
// bytes), which t.TempDir's long names may not.
func shortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "gsr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startServer serves on a fresh unix socket or TCP port until the test ends,
// then checks that Serve returned nil.
func startServer(t testing.TB, network string, s *Server) *testServer {
	t.Helper()
	ts := &testServer{rec: &recorder{}, log: &testproc.Buffer{}}
	if s.Spool == nil {
		s.Spool = ts.rec.spool
	}
	if s.Logger == nil {
		s.Logger = log.New(ts.log, "", 0)
	}
	switch network {
	case "unix":
		ts.addr = "unix:" + filepath.Join(shortTempDir(t), "s.sock")
	case "tcp":
		ts.addr = "127.0.0.1:0"
	}
	l, err := Listen(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if network == "tcp" {
		ts.addr = l.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return 10s after cancel")
		}
	})
	return ts
}

// exchange sends data to addr on a new connection, optionally shuts the
// write side, and reads until the server closes (a reset counts as a close).
func exchange(t testing.TB, addr string, data []byte, shutWrite bool) []byte {
	t.Helper()
	network, address := SplitAddr(addr)
	c, err := net.Dial(network, address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(data); err != nil {
		t.Fatalf("write: %v", err)
	}
	if shutWrite {
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v (after %q)", err, reply)
	}
	return reply
}

func (ts *testServer) exchange(t testing.TB, data []byte, shutWrite bool) []byte {
	t.Helper()
	return exchange(t, ts.addr, data, shutWrite)
}

// waitLog waits for a log line containing want.
func (ts *testServer) waitLog(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ts.log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line containing %q; log:\n%s", want, ts.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkServing sends a good packet and expects it stored.
func (ts *testServer) checkServing(t testing.TB) {
	t.Helper()
	before := len(ts.rec.all())
	id := fmt.Sprint(time.Now().UnixNano())
	reply := ts.exchange(t, packet(kv("check", id)), false)
	if !bytes.Equal(reply, replyOK) {
		t.Fatalf("good packet after the bad one: reply % x, want % x; log:\n%s", reply, replyOK, ts.log.String())
	}
	got := ts.rec.all()
	if len(got) != before+1 {
		t.Fatalf("%d tasks recorded, want %d", len(got), before+1)
	}
	if v, _ := got[len(got)-1].Get("check"); string(v) != id {
		t.Fatalf("recorded check=%q, want %q", v, id)
	}
}

var (
	replyOK     = []byte{255, 0, 0, 1}
	replyFailed = []byte{255, 0, 0, 0}
)

func kv(k, v string) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(k)))
	b = append(b, k...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// packet builds a modifier1-17 packet around vars blocks.
func packet(vars ...[]byte) []byte {
	v := bytes.Join(vars, nil)
	return append([]byte{17, byte(len(v)), byte(len(v) >> 8), 0}, v...)
}

func pairsOf(t *task.Task) [][2]string {
	var out [][2]string
	for _, p := range t.Pairs {
		out = append(out, [2]string{string(p.Key), string(p.Value)})
	}
	return out
}

func forNetworks(t *testing.T, f func(t *testing.T, network string)) {
	for _, n := range []string{"unix", "tcp"} {
		t.Run(n, func(t *testing.T) { t.Parallel(); f(t, n) })
	}
}

func TestGoodPacket(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		ts := startServer(t, network, &Server{})
		want := [][2]string{
			{"task", "resize"},
			{"user", "42"},
			{"user", "43"}, // duplicates are kept, in order
			{"spooler", "/var/spool/x"},
			{"priority", "3"},
			{"at", "1700000000.5"},
			{"empty", ""},
			{"bin", "\x00\xff\x11"},
		}
		var vars [][]byte
		for _, p := range want {
			vars = append(vars, kv(p[0], p[1]))
		}
		pkt := packet(vars...)
		pkt[3] = 9 // modifier2 is ignored, as in uWSGI
		reply := ts.exchange(t, pkt, false)
		if !bytes.Equal(reply, replyOK) {
			t.Fatalf("reply % x, want % x; log:\n%s", reply, replyOK, ts.log)
		}
		got := ts.rec.all()
		if len(got) != 1 {
			t.Fatalf("%d tasks recorded, want 1", len(got))
		}
		if g := pairsOf(got[0]); fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("pairs\n got %q\nwant %q", g, want)
		}
		if got[0].Body != nil {
			t.Errorf("body %q, want nil", got[0].Body)
		}
		if l := ts.log.String(); l != "" {
			t.Errorf("log after a good request:\n%s", l)
		}
	})
}

func TestGoodPacketEdges(t *testing.T) {
	ts := startServer(t, "unix", &Server{MaxPacket: 64})
	for _, tc := range []struct {
		name string
		data []byte
		want [][2]string
	}{
		{"empty vars block", packet(), nil},
		{"trailing bytes ignored", append(packet(kv("a", "1")), "a body is not possible remotely"...), [][2]string{{"a", "1"}}},
		{"exactly MaxPacket", packet(kv("k", strings.Repeat("v", 64-5))), [][2]string{{"k", strings.Repeat("v", 59)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ts.rec.all())
			reply := ts.exchange(t, tc.data, false)
			if !bytes.Equal(reply, replyOK) {
				t.Fatalf("reply % x, want % x; log:\n%s", reply, replyOK, ts.log)
			}
			got := ts.rec.all()[before]
			if g := pairsOf(got); fmt.Sprint(g) != fmt.Sprint(tc.want) {
				t.Errorf("pairs %q, want %q", g, tc.want)
			}
		})
	}
}

// TestTrailingData: a client that sends a body anyway, more than the socket
// buffers hold, before reading the reply. The server ignores the body but
// drains it, so the client's write completes and the reply arrives.
func TestTrailingData(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		ts := startServer(t, network, &Server{})
		data := append(packet(kv("a", "1")), bytes.Repeat([]byte("body"), 128<<10)...)
		if reply := ts.exchange(t, data, false); !bytes.Equal(reply, replyOK) {
			t.Fatalf("reply % x, want % x", reply, replyOK)
		}
		if got := ts.rec.all(); len(got) != 1 || got[0].Body != nil {
			t.Fatalf("stored %v", got)
		}
	})
}

func TestSpoolError(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		ts := startServer(t, network, &Server{})
		ts.rec.err = errors.New("ring full and disk full")
		reply := ts.exchange(t, packet(kv("a", "1")), false)
		if !bytes.Equal(reply, replyFailed) {
			t.Fatalf("reply % x, want % x", reply, replyFailed)
		}
		ts.waitLog(t, "spool failed: ring full and disk full...refused")
	})
}

func TestOversize(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		ts := startServer(t, network, &Server{})
		// The header alone: the server must refuse before reading the vars.
		reply := ts.exchange(t, []byte{17, 0x88, 0x13, 0}, false) // 5000
		if len(reply) != 0 {
			t.Fatalf("reply % x, want the connection closed without one", reply)
		}
		ts.waitLog(t, "invalid request block size: 5000 (max 4096)...skip")
		if network == "unix" {
			ts.waitLog(t, fmt.Sprintf("unix:%s (pid %d, uid %d): invalid", strings.TrimPrefix(ts.addr, "unix:"), os.Getpid(), os.Getuid()))
		} else {
			ts.waitLog(t, "127.0.0.1:")
		}
		// With the vars sent too (the server resets the connection).
		reply = ts.exchange(t, packet(kv("k", strings.Repeat("v", 4092))), false)
		if len(reply) != 0 {
			t.Fatalf("reply % x, want none", reply)
		}
		ts.waitLog(t, "invalid request block size: 4097 (max 4096)...skip")
		if n := len(ts.rec.all()); n != 0 {
			t.Fatalf("%d tasks stored", n)
		}
		ts.checkServing(t)
	})
}

func TestMalformed(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		ts := startServer(t, network, &Server{ReadTimeout: 5 * time.Second})
		for _, tc := range []struct {
			name      string
			data      []byte
			shutWrite bool
			reply     []byte // nil: closed without a reply
			log       string
		}{
			{"key length 0", packet([]byte("\x00\x00\x01\x00v")), false, replyFailed, "invalid vars block: key length 0 (at byte 4)...refused"},
			{"key overrun", packet([]byte("\x05\x00ab")), false, replyFailed, "invalid vars block: key length 5 runs past the end"},
			{"value overrun", packet([]byte("\x01\x00k\x09\x00ab")), false, replyFailed, "invalid vars block: value length 9 of key \"k\" runs past"},
			{"no room for a value length", packet([]byte("\x01\x00k\x00")), false, replyFailed, "no room for the value length"},
			{"2 bytes after a pair", packet(kv("k", "v"), []byte("\x01\x00")), false, replyFailed, "2 bytes left where a key starts"},
			{"truncated vars then EOF", packet(kv("hello", "world"))[:10], true, nil, "sent 6 of the 14-byte vars block, then closed the connection...closed"},
			{"truncated header then EOF", []byte{17, 14}, true, nil, "sent 2 of the 4-byte header, then closed the connection...closed"},
			{"modifier1 0", append([]byte{0}, packet(kv("a", "b"))[1:]...), false, nil, "-- unavailable modifier requested: 0 --"},
			{"HTTP", []byte("GET / HTTP/1.0\r\n\r\n"), false, nil, "-- unavailable modifier requested: 71 --"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				reply := ts.exchange(t, tc.data, tc.shutWrite)
				if !bytes.Equal(reply, tc.reply) {
					t.Fatalf("reply % x, want % x", reply, tc.reply)
				}
				ts.waitLog(t, tc.log)
				ts.checkServing(t)
			})
		}
		if n := len(ts.rec.all()); n != 9 {
			t.Errorf("%d tasks stored, want the 9 checks only", n)
		}
	})
}

func TestIdleClientTimesOut(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		const timeout = 200 * time.Millisecond
		ts := startServer(t, network, &Server{ReadTimeout: timeout})
		for _, tc := range []struct {
			name string
			data []byte
			log  string
		}{
			{"nothing", nil, "sent nothing, then timed out after 200ms...closed"},
			{"half a header", []byte{17, 5}, "sent 2 of the 4-byte header, then timed out after 200ms...closed"},
			{"half the vars", packet(kv("k", "v"))[:6], "sent 2 of the 6-byte vars block, then timed out after 200ms...closed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				start := time.Now()
				reply := ts.exchange(t, tc.data, false)
				took := time.Since(start)
				if len(reply) != 0 {
					t.Fatalf("reply % x, want none", reply)
				}
				if took < timeout-20*time.Millisecond || took > 5*time.Second {
					t.Fatalf("closed after %v, want about %v", took, timeout)
				}
				ts.waitLog(t, tc.log)
				ts.checkServing(t)
			})
		}
	})
}

func TestPortProbeNotLogged(t *testing.T) {
	ts := startServer(t, "tcp", &Server{})
	reply := ts.exchange(t, nil, true)
	if len(reply) != 0 {
		t.Fatalf("reply % x, want none", reply)
	}
	ts.checkServing(t)
	time.Sleep(50 * time.Millisecond)
	if l := ts.log.String(); l != "" {
		t.Fatalf("a connect-and-close was logged:\n%s", l)
	}
}

func TestConcurrentClients(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		ts := startServer(t, network, &Server{})
		const n = 200
		network, address := SplitAddr(ts.addr)
		// Connect all first, then send, so that the connections really
		// are open at the same time.
		conns := make([]net.Conn, n)
		for i := range conns {
			c, err := net.Dial(network, address)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			conns[i] = c
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i, c := range conns {
			wg.Go(func() {
				if _, err := c.Write(packet(kv("id", fmt.Sprint(i)), kv("pad", strings.Repeat("x", i)))); err != nil {
					errs <- err
					return
				}
				reply, err := io.ReadAll(c)
				if err != nil || !bytes.Equal(reply, replyOK) {
					errs <- fmt.Errorf("client %d: reply % x, err %v", i, reply, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		seen := map[string]bool{}
		for _, tk := range ts.rec.all() {
			id, _ := tk.Get("id")
			pad, _ := tk.Get("pad")
			if seen[string(id)] {
				t.Errorf("id %s stored twice", id)
			}
			seen[string(id)] = true
			if fmt.Sprint(len(pad)) != string(id) {
				t.Errorf("id %s has a %d-byte pad", id, len(pad))
			}
		}
		if len(seen) != n {
			t.Errorf("%d tasks stored, want %d", len(seen), n)
		}
	})
}

func TestShutdown(t *testing.T) {
	dir := shortTempDir(t)
	path := filepath.Join(dir, "s.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs testproc.Buffer
	inSpool := make(chan struct{})
	s := &Server{
		Logger:      log.New(&logs, "", 0),
		ReadTimeout: time.Minute,
		Spool: func(ctx context.Context, t *task.Task) error {
			close(inSpool)
			<-ctx.Done() // a Spool call sees the shutdown
			return ctx.Err()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()

	// One client idle, one stuck in Spool.
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := busy.Write(packet(kv("a", "b"))); err != nil {
		t.Fatal(err)
	}
	<-inSpool

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Serve took %v to return: the idle client was not cut off", took)
	}
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	if reply, _ := io.ReadAll(busy); !bytes.Equal(reply, replyFailed) {
		t.Errorf("client in Spool at shutdown: reply % x, want % x", reply, replyFailed)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Serve returned: %v", err)
	}
	if strings.Contains(logs.String(), "sent nothing") {
		t.Errorf("the idle client cut off by the shutdown was logged as a refusal:\n%s", logs.String())
	}
}

func TestServeListenerFails(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- (&Server{Spool: (&recorder{}).spool}).Serve(context.Background(), l) }()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve returned %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return when its listener failed")
	}
}

func TestServeNilSpool(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Server{}).Serve(context.Background(), l); err == nil {
		t.Fatal("Serve with a nil Spool returned nil")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("listener still open after Serve returned: %v", err)
	}
}

func TestSplitAddr(t *testing.T) {
	for _, tc := range []struct{ in, network, address string }{
		{"unix:/run/s.sock", "unix", "/run/s.sock"},
		{"unix:s.sock", "unix", "s.sock"},
		{"/run/s.sock", "unix", "/run/s.sock"},
		{"./s.sock", "unix", "./s.sock"},
		{"@abstract", "unix", "@abstract"},
		{"127.0.0.1:3031", "tcp", "127.0.0.1:3031"},
		{":3031", "tcp", ":3031"},
		{"[::1]:3031", "tcp", "[::1]:3031"},
		{"spool.example:3031", "tcp", "spool.example:3031"},
	} {
		n, a := SplitAddr(tc.in)
		if n != tc.network || a != tc.address {
			t.Errorf("SplitAddr(%q) = %q, %q; want %q, %q", tc.in, n, a, tc.network, tc.address)
		}
	}
}

func TestListenUnixSocketFile(t *testing.T) {
	dir := shortTempDir(t)
	path := filepath.Join(dir, "s.sock")

	// A socket file left by a killed process is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("setup: %v", err)
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket file: %v", err)
	}

	// A live one is not.
	if l2, err := Listen("unix:" + path); err == nil {
		l2.Close()
		t.Fatal("Listen took over the socket of a live listener")
	} else if !strings.Contains(err.Error(), "a server is listening") {
		t.Fatalf("Listen on a live socket: %v", err)
	}
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left after Close: %v", err)
	}

	// Nor is a file that is not a socket.
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := Listen(path); err == nil {
		l.Close()
		t.Fatal("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("Listen damaged a regular file")
	}

	if l, err := Listen(""); err == nil {
		l.Close()
		t.Fatal(`Listen("") succeeded`)
	}
}
