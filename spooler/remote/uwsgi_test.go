//go:build linux

package remote

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

// uwsgiInstance is a real uWSGI serving the spooler plugin on a unix socket,
// with an external spooler so that nothing consumes the files it writes.
type uwsgiInstance struct {
	addr string // "unix:/path"
	dir  string // the spool dir, realpath'd as uWSGI does
	out  *testproc.Buffer
}

// startUWSGI starts uWSGI, or skips the test when it is not installed.
// Only the spooler plugin is loaded: modifier1 17 needs nothing else.
func startUWSGI(t *testing.T) *uwsgiInstance {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	u := &uwsgiInstance{
		addr: "unix:" + filepath.Join(shortTempDir(t), "u.sock"),
		dir:  dir,
	}
	u.out = testproc.StartUWSGI(t, "--plugin", "spooler",
		"--socket", strings.TrimPrefix(u.addr, "unix:"),
		"--spooler-external", dir,
		"--master", "--processes", "1")
	network, address := SplitAddr(u.addr)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial(network, address); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uWSGI did not open %s in 10s:\n%s", u.addr, u.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return u
}

// files returns the spool files under dir, by path.
func spoolFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), spoolfile.Prefix) {
			out[p] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMatchesUWSGI sends the same packets to real uWSGI 2.0 and to a Server
// and compares the replies, and for stored tasks the spool file uWSGI wrote
// with the encoding of the task the Server got. The Server's Spool routes by
// the `spooler` key as gospool does: an unknown spool dir is an error.
func TestMatchesUWSGI(t *testing.T) {
	u := startUWSGI(t)
	var (
		mu  sync.Mutex
		got *task.Task // the last task the Server was given
	)
	ts := startServer(t, "unix", &Server{Spool: func(_ context.Context, tk *task.Task) error {
		mu.Lock()
		got = tk
		mu.Unlock()
		if sp, ok := tk.Spooler(); ok && sp != u.dir {
			return fmt.Errorf("unable to find spooler %q", sp)
		}
		return nil
	}})
	last := func() *task.Task {
		mu.Lock()
		defer mu.Unlock()
		tk := got
		got = nil
		return tk
	}

	for _, tc := range []struct {
		name      string
		data      []byte
		shutWrite bool
		// differs: gospool refuses malformed vars that uWSGI stores.
		differs bool
	}{
		{"good", packet(kv("hello", "world"), kv("a", "1"), kv("a", "2")), false, false},
		{"modifier2 set", append([]byte{17, 6, 0, 7}, kv("k", "v")...), false, false},
		{"trailing bytes", append(packet(kv("k", "v")), "not a body"...), false, false},
		{"empty vars", packet(), false, false},
		{"exactly 4096", packet(kv("k", strings.Repeat("v", 4091))), false, false},
		{"4097", packet(kv("k", strings.Repeat("v", 4092))), false, false},
		{"binary value", packet(kv("b", "\x00\x11\xff")), false, false},
		{"at", packet(kv("at", "1999999999.5"), kv("k", "v")), false, false},
		{"priority", packet(kv("priority", "3"), kv("k", "v")), false, false},
		{"known spooler", nil, false, false}, // filled in below
		{"unknown spooler", packet(kv("spooler", "/nope")), false, false},
		{"modifier1 0", append([]byte{0}, packet(kv("k", "v"))[1:]...), false, false},
		{"modifier1 5", append([]byte{5}, packet(kv("k", "v"))[1:]...), false, false},
		{"truncated then EOF", packet(kv("hello", "world"))[:9], true, false},
		{"key length 0", packet([]byte("\x00\x00\x01\x00v")), false, true},
		{"key overrun", packet([]byte("\x05\x00ab")), false, true},
		{"value overrun", packet([]byte("\x01\x00k\x09\x00ab")), false, true},
		{"2 bytes after a pair", packet(kv("k", "v"), []byte("\x01\x00")), false, true},
	} {
		if tc.name == "known spooler" {
			tc.data = packet(kv("spooler", u.dir), kv("k", "v"))
		}
		t.Run(tc.name, func(t *testing.T) {
			before := spoolFiles(t, u.dir)
			fromUWSGI := exchange(t, u.addr, tc.data, tc.shutWrite)
			last()
			fromUs := exchange(t, ts.addr, tc.data, tc.shutWrite)
			t.Logf("uWSGI % x, gospool % x", fromUWSGI, fromUs)

			switch {
			case tc.differs:
				if !bytes.Equal(fromUWSGI, replyOK) || !bytes.Equal(fromUs, replyFailed) {
					t.Fatalf("malformed vars: uWSGI % x (want % x: it stores them), gospool % x (want % x)", fromUWSGI, replyOK, fromUs, replyFailed)
				}
			case !bytes.Equal(fromUWSGI, fromUs):
				t.Fatalf("replies differ: uWSGI % x, gospool % x", fromUWSGI, fromUs)
			}

			var added []string
			for p := range spoolFiles(t, u.dir) {
				if !before[p] {
					added = append(added, p)
				}
			}
			if !bytes.Equal(fromUWSGI, replyOK) {
				if len(added) != 0 {
					t.Fatalf("uWSGI refused but wrote %v", added)
				}
				return
			}
			if len(added) != 1 {
				t.Fatalf("uWSGI accepted and wrote %d files", len(added))
			}
			if tc.differs {
				return
			}
			file, err := os.ReadFile(added[0])
			if err != nil {
				t.Fatal(err)
			}
			tk := last()
			if tk == nil {
				t.Fatal("the Server did not call Spool")
			}
			enc, err := spoolfile.Encode(tk)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(file, enc) {
				t.Fatalf("uWSGI's spool file and the Server's task differ:\nuWSGI % x\n   us % x", file, enc)
			}
		})
	}
	// uWSGI logs the same refusals.
	for _, want := range []string{
		"invalid request block size: 4097 (max 4096)...skip",
		"-- unavailable modifier requested: 0 --",
		`unable to find spooler "/nope"`,
	} {
		// uWSGI's log reaches us through a pipe, maybe after its reply.
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(u.out.String(), want) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !strings.Contains(u.out.String(), want) {
			t.Errorf("uWSGI did not log %q", want)
		}
		if !strings.Contains(ts.log.String(), want) {
			t.Errorf("the Server did not log %q:\n%s", want, ts.log)
		}
	}
}
