package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// SplitAddr parses a uWSGI-style socket address into the network and address
// that [net.Listen] and [net.Dial] take:
//
//   - "unix:/path" is the unix socket /path;
//   - an address containing '/' ("/run/spool.sock", "./spool.sock") is a unix
//     socket, as in uWSGI's --socket;
//   - "@name" is a Linux abstract unix socket, as in uWSGI;
//   - anything else ("host:port", ":port", "[::1]:port") is TCP.
func SplitAddr(addr string) (network, address string) {
	if rest, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "unix", rest
	}
	if strings.HasPrefix(addr, "@") || strings.Contains(addr, "/") {
		return "unix", addr
	}
	return "tcp", addr
}

// Listen opens a listener on addr, in the forms [SplitAddr] takes. For a
// unix socket path it first removes a stale socket file, one that nothing
// listens on any more (left by a process that was killed), so that a
// restart does not fail with "address already in use". It refuses to remove
// a socket that a live server answers on, or a file that is not a socket.
// The socket file is removed again when the listener is closed.
func Listen(addr string) (net.Listener, error) {
	network, address := SplitAddr(addr)
	if address == "" {
		return nil, fmt.Errorf("remote: listen: empty address %q", addr)
	}
	if network == "unix" && !strings.HasPrefix(address, "@") {
		if err := removeStale(address); err != nil {
			return nil, err
		}
	}
	return net.Listen(network, address)
}

// removeStale removes the socket file at path if no server listens on it.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remote: listen: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("remote: listen on %s: the path exists and is not a socket; not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("remote: listen on %s: a server is listening on this socket already", path)
	}
	// Only "connection refused" proves that nobody listens: a full
	// backlog (EAGAIN) or a timeout means a live but busy server.
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("remote: listen on %s: cannot tell whether the socket is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remote: listen: removing stale socket: %w", err)
	}
	return nil
}
