package stats

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gospool/gospool/spooler/ring"
)

// Server answers the stats requests of one master. Its handler may run on
// any goroutine; Close waits for the requests being answered, after which
// nothing in Source is touched again.
type Server struct {
	src     Source
	handler http.Handler

	mu       sync.RWMutex // read-held while reading Source; Close takes it
	closed   bool
	ringMu   sync.Mutex // guards rings and ringErrs
	rings    []*ring.Ring
	ringErrs []error
}

// New returns a server reading src. It maps each directory's ring
// read-only; a ring that cannot be opened yet is tried again at each
// request, and reported in the directory's "error" meanwhile.
func New(src Source, logger *log.Logger) *Server {
	s := &Server{src: src, rings: make([]*ring.Ring, len(src.Dirs)), ringErrs: make([]error, len(src.Dirs))}
	for i, d := range src.Dirs {
		s.rings[i], s.ringErrs[i] = openRing(d)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}
	if logger != nil {
		opts.ErrorLog = logger
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveStats)
	mux.HandleFunc("GET /stats", s.serveStats)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, opts))
	s.handler = mux
	return s
}

// Handler serves GET / and GET /stats (the JSON document) and GET /metrics
// (Prometheus's text format).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	sn, ok := s.read()
	if !ok {
		http.Error(w, "the master is stopping", http.StatusServiceUnavailable)
		return
	}
	b, err := json.MarshalIndent(s.document(sn), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// Close stops reading Source, after the readings under way, and unmaps the
// rings. Requests answered after it get 503.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	for _, r := range s.rings {
		if r != nil {
			r.Close()
		}
	}
	return nil
}

// ring returns directory i's ring, opening it when it could not be before.
func (s *Server) ring(i int) (*ring.Ring, error) {
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	if s.rings[i] == nil {
		s.rings[i], s.ringErrs[i] = openRing(s.src.Dirs[i])
	}
	return s.rings[i], s.ringErrs[i]
}

// Listen opens the stats server's listener on addr: "host:port" (TCP), or a
// path with a slash (a unix socket; a stale socket file is replaced).
func Listen(addr string) (net.Listener, error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.Dial("unix", addr); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen unix %s: a server is already answering on that socket", addr)
			}
			os.Remove(addr) // a stale socket of a previous run
		}
	}
	return net.Listen(network, addr)
}

// rawWait is how long a new connection may stay silent before it is taken
// for a raw client (uWSGI's stats socket, which uwsgitop and the Telegraf,
// Datadog and Netdata collectors read: they connect and read, sending
// nothing) rather than an HTTP one, which sends its request at once.
const rawWait = 200 * time.Millisecond

// Serve answers on l until hs is closed, both ways uWSGI's stats server
// does: a client that sends an HTTP request gets hs's answer (as with
// uWSGI's stats-http), and one that sends nothing for rawWait gets the
// document as raw JSON, then the connection is closed (as uWSGI's default
// stats socket). hs.Handler is normally s.Handler(). Serve closes l.
func (s *Server) Serve(hs *http.Server, l net.Listener) error {
	cl := &connListener{l: l, conns: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				cl.fail(err)
				return
			}
			go s.sniff(c, cl)
		}
	}()
	return hs.Serve(cl)
}

// sniff waits for a connection's first byte: it hands an HTTP client to
// the HTTP server, and answers a silent one with the raw document.
func (s *Server) sniff(c net.Conn, cl *connListener) {
	c.SetReadDeadline(time.Now().Add(rawWait))
	br := bufio.NewReader(c)
	if _, err := br.Peek(1); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.writeRaw(c)
		}
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	select {
	case cl.conns <- &peekedConn{Conn: c, r: br}:
	case <-cl.done:
		c.Close()
	}
}

// writeRaw writes the document to a raw client, then half-closes, so that
// a client reading until EOF (uwsgitop does) gets all of it.
func (s *Server) writeRaw(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	sn, ok := s.read()
	if !ok {
		return // the master is stopping: EOF at once
	}
	b, err := json.MarshalIndent(s.document(sn), "", "  ")
	if err != nil {
		return
	}
	c.Write(append(b, '\n'))
}

// connListener is the listener the HTTP server serves: the connections
// sniff found to speak HTTP. Closing it closes the real one.
type connListener struct {
	l     net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error // why accepting ended, set before done is closed
}

func (cl *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-cl.conns:
		return c, nil
	case <-cl.done:
		return nil, cl.err
	}
}

func (cl *connListener) fail(err error) {
	cl.once.Do(func() { cl.err = err; close(cl.done) })
}

func (cl *connListener) Close() error {
	cl.fail(net.ErrClosed)
	return cl.l.Close()
}

func (cl *connListener) Addr() net.Addr { return cl.l.Addr() }

// peekedConn is a connection whose first bytes sniff has read ahead.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
