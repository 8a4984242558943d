package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

const (
	// Modifier1 marks a uwsgi-protocol packet as a remote spool request.
	Modifier1 = 17

	// DefaultMaxPacket is the default [Server.MaxPacket], uWSGI's default
	// --buffer-size.
	DefaultMaxPacket = 4096

	// DefaultReadTimeout is the default [Server.ReadTimeout].
	DefaultReadTimeout = 10 * time.Second

	// MaxConns is how many connections one [Server.Serve] call handles at
	// once. Further clients wait in the listen backlog.
	MaxConns = 256
)

const (
	headerLen      = 4
	replyModifier1 = 255
	// lingerTimeout bounds how long a connection is drained after the reply.
	lingerTimeout = time.Second
	// lingerMax bounds how much is drained.
	lingerMax = 1 << 20
)

// Server accepts uWSGI remote spool requests (modifier1 17) on a listener
// and hands each task to Spool.
//
// The fields must not be changed while Serve runs. Serve may run on several
// listeners at once with the same Server.
type Server struct {
	// Spool stores the task (the gospool process passes a function that
	// routes by the `spooler` key and writes to the ring or a spool file).
	// Its error makes the reply a failure. The special keys `spooler`,
	// `priority` and `at` reach it unchanged and unchecked.
	//
	// Spool is called from many goroutines at once. The task owns its
	// memory: Spool may keep it. ctx is the one given to Serve, so a
	// shutdown cancels Spool calls in progress. A panic in Spool is not
	// recovered: it stops the process, as in any goroutine, because what
	// Spool left half done cannot be trusted.
	Spool func(ctx context.Context, t *task.Task) error

	// MaxPacket is the largest vars block accepted (uWSGI's --buffer-size,
	// default 4096). Zero or less means [DefaultMaxPacket]. The header's
	// 16-bit size field caps it at 65535 anyway.
	MaxPacket int

	// Logger for refusals (one line each, naming the peer and the reason);
	// nil = log.Default().
	Logger *log.Logger

	// ReadTimeout bounds how long a client may take to send its packet,
	// counted from the accept. Zero or less means [DefaultReadTimeout]. The
	// reply's write gets the same bound.
	ReadTimeout time.Duration
}

// Serve accepts connections on l and serves one request on each, each in
// its own goroutine, at most [MaxConns] at a time.
//
// Serve returns nil when ctx is done, and the error of l.Accept when the
// listener fails for good (running out of file descriptors only pauses it).
// Either way it closes l, and it returns only after every connection it
// accepted has been closed. A client still sending its packet at shutdown
// is cut off at once; a Spool call in progress sees ctx cancelled.
// A malformed packet never stops Serve.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	defer l.Close()
	if s.Spool == nil {
		return errors.New("remote: Server.Spool is nil")
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, MaxConns)
	var delay time.Duration
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := l.Accept()
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				return nil
			}
			if !temporary(err) {
				return err
			}
			// Out of descriptors or memory: connections that finish
			// free some, so wait and retry, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger().Printf("remote spool: accept on %s: %v; retrying in %v", l.Addr(), err, delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.serveConn(ctx, c)
		}()
	}
}

// temporary reports accept errors that go away once connections close.
func temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) logger() *log.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return log.Default()
}

func (s *Server) maxPacket() int {
	if s.MaxPacket <= 0 {
		return DefaultMaxPacket
	}
	return s.MaxPacket
}

func (s *Server) readTimeout() time.Duration {
	if s.ReadTimeout <= 0 {
		return DefaultReadTimeout
	}
	return s.ReadTimeout
}

// serveConn serves the one request of c and closes it.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	timeout := s.readTimeout()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	// A shutdown interrupts a client that is still sending, and the
	// draining after the reply.
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	t, err := readRequest(c, s.maxPacket())
	if err != nil {
		var re *readError
		switch {
		case errors.Is(err, errNoRequest):
			// Closed before sending anything: a port probe. uWSGI logs
			// nothing either.
		case ctx.Err() != nil:
			// Shutting down: not the client's fault.
		case errors.As(err, &re):
			s.logger().Printf("remote spool: %s: %s...closed", peerName(c), re.describe(timeout))
		default:
			s.logger().Printf("remote spool: %s: %v", peerName(c), err)
		}
		var bad *badVars
		if errors.As(err, &bad) {
			s.reply(ctx, c, false, timeout)
		}
		return
	}
	if err := s.Spool(ctx, t); err != nil {
		s.logger().Printf("remote spool: %s: spool failed: %v...refused", peerName(c), err)
		s.reply(ctx, c, false, timeout)
		return
	}
	if err := s.reply(ctx, c, true, timeout); err != nil {
		s.logger().Printf("remote spool: %s: task stored but the reply was lost (%v); the client may send it again: %v", peerName(c), err, t)
	}
}

// reply writes the 4-byte answer, then shuts the connection down gently.
func (s *Server) reply(ctx context.Context, c net.Conn, ok bool, timeout time.Duration) error {
	r := [headerLen]byte{replyModifier1, 0, 0, 0}
	if ok {
		r[3] = 1
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(r[:]); err != nil {
		return err
	}
	// Closing a socket with unread input makes the kernel send a reset,
	// which may destroy a reply not yet delivered. So send a FIN, and read
	// what the client still sends until it closes too (a client reads the
	// reply and closes at once). Not during a shutdown: the deadline set
	// here may have replaced the one the shutdown set.
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = c.SetReadDeadline(time.Now().Add(min(timeout, lingerTimeout)))
		if ctx.Err() == nil {
			_, _ = io.CopyN(io.Discard, c, lingerMax)
		}
	}
	return nil
}

// errNoRequest: the client closed before sending a single byte.
var errNoRequest = errors.New("connection closed before a request")

// readError is a request that did not arrive whole: the client closed the
// connection or was too slow. No reply is possible or expected.
type readError struct {
	got, want int    // bytes of the part being read
	part      string // "header" or "vars block"
	err       error
}

func (e *readError) Error() string { return e.describe(0) }

func (e *readError) Unwrap() error { return e.err }

// describe says what was read and why it stopped; timeout is the
// ReadTimeout in force, for the message.
func (e *readError) describe(timeout time.Duration) string {
	var why string
	switch {
	case errors.Is(e.err, os.ErrDeadlineExceeded):
		why = fmt.Sprintf("timed out after %v", timeout)
	case errors.Is(e.err, io.EOF), errors.Is(e.err, io.ErrUnexpectedEOF):
		why = "closed the connection"
	default:
		why = "failed: " + e.err.Error()
	}
	if e.part == "header" && e.got == 0 {
		return fmt.Sprintf("sent nothing, then %s", why)
	}
	return fmt.Sprintf("sent %d of the %d-byte %s, then %s", e.got, e.want, e.part, why)
}

// refusal is a packet that was read far enough to know it cannot be served.
type refusal string

func (r refusal) Error() string { return string(r) }

// badVars is a complete packet whose vars block uWSGI's parser rejects. It
// is answered with the failure reply.
type badVars struct{ err *spoolfile.FormatError }

func (e *badVars) Error() string {
	return fmt.Sprintf("invalid vars block: %s (at byte %d)...refused", e.err.Reason, e.err.Offset)
}

func (e *badVars) Unwrap() error { return e.err }

// readRequest reads one remote spool packet from r and parses it, reading
// nothing past the vars block. It returns the task, or an error that is
// errNoRequest, a *readError, a refusal or a *badVars.
//
// The task owns a fresh buffer: nothing else refers to its bytes.
func readRequest(r io.Reader, maxPacket int) (*task.Task, error) {
	var hdr [headerLen]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, errNoRequest
		}
		return nil, &readError{got: n, want: headerLen, part: "header", err: err}
	}
	if hdr[0] != Modifier1 {
		return nil, refusal(fmt.Sprintf("-- unavailable modifier requested: %d -- (only %d, remote spool, is served here)", hdr[0], Modifier1))
	}
	size := int(hdr[1]) | int(hdr[2])<<8
	if size > maxPacket {
		return nil, refusal(fmt.Sprintf("invalid request block size: %d (max %d)...skip", size, maxPacket))
	}
	pkt := make([]byte, headerLen+size)
	copy(pkt, hdr[:])
	if n, err := io.ReadFull(r, pkt[headerLen:]); err != nil {
		return nil, &readError{got: n, want: size, part: "vars block", err: err}
	}
	t, err := spoolfile.Decode(pkt)
	if err != nil {
		var fe *spoolfile.FormatError
		if errors.As(err, &fe) {
			return nil, &badVars{fe}
		}
		// Unreachable: pkt holds the header and exactly the vars block.
		return nil, &badVars{&spoolfile.FormatError{Reason: err.Error(), Err: spoolfile.ErrCorrupt}}
	}
	return t, nil
}
