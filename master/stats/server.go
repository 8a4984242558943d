package stats

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

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
