package interop_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/spoolfile"
)

// remotePacket builds a remote spool packet: modifier1, the vars block's
// size (u16le), modifier2 0, then the pairs as [u16le len][bytes].
func remotePacket(mod1 byte, kv ...string) []byte {
	var vars []byte
	for _, s := range kv {
		vars = binary.LittleEndian.AppendUint16(vars, uint16(len(s)))
		vars = append(vars, s...)
	}
	return append([]byte{mod1, byte(len(vars)), byte(len(vars) >> 8), 0}, vars...)
}

// noReply is what sendRaw returns when the server closed the connection
// without answering.
const noReply = "no reply"

// sendRaw is the test's own remote client: it writes data to the unix
// socket sock, closes its side for writing and returns the reply in hex,
// or noReply.
func sendRaw(t *testing.T, sock string, data []byte) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// A server that refuses an oversize packet closes without reading it:
	// the write may fail (EPIPE, ECONNRESET), which is a refusal too.
	if _, err := c.Write(data); err == nil {
		c.(*net.UnixConn).CloseWrite()
	}
	reply, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: no reply and no close within 10 s", sock)
	}
	if len(reply) == 0 {
		return noReply
	}
	return fmt.Sprintf("%x", reply)
}

// The remote spool socket of `gospool run --socket` against real uWSGI's
// (the spooler plugin on a uwsgi socket), packet by packet, from a client
// written here: the 4-byte replies match; a task routed by its `spooler`
// key lands in that directory (gospool runs it there, uWSGI writes it
// there); an unknown target, an oversize packet, a truncated one and
// malformed vars are refused with a log line (uWSGI's own words where it
// has them), and the listener still serves afterwards.
func TestRemoteSpoolLikeUWSGI(t *testing.T) {
	h := newHarness(t)
	uA, uB := h.mkdir("uwsgi-a"), h.mkdir("uwsgi-b")
	gA, gB := h.mkdir("gospool-a"), h.mkdir("gospool-b")
	uSock, gSock := filepath.Join(h.dir, "u.sock"), filepath.Join(h.dir, "g.sock")
	outFile := filepath.Join(h.dir, "ran")

	u := h.start(t, "uwsgi-remote", nil, uwsgiBin, "--plugin", "spooler", "--socket", uSock,
		"--spooler-external", uA, "--spooler-external", uB, "--master", "--processes", "1", "--die-on-term")
	g := h.gospoolRun(t, "gospool-remote", gospoolBin, []string{"INTEROP_OUT=" + outFile},
		"--spooler", gA, "--spooler", gB, "--spooler-exec", `read -r doc
id=${doc#*'["id","'}
id=${id%%'"'*}
echo "$id $GOSPOOL_SPOOLER_DIR" >> "$INTEROP_OUT"`, "--socket", gSock)
	for _, sock := range []string{uSock, gSock} {
		h.waitFor(t, 10*time.Second, sock+" to accept", func() bool {
			c, err := net.Dial("unix", sock)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}

	type target struct {
		name, sock, a, b string
		log              func() string
	}
	targets := []target{{"uWSGI", uSock, uA, uB, u.log}, {"gospool", gSock, gA, gB, g.log}}
	for _, tc := range []struct {
		name   string
		packet func(tg target) []byte
		reply  string
		// gospoolOnly: uWSGI answers differently on purpose (it stores
		// malformed vars as far as they parse).
		gospoolOnly bool
		log         string // a line gospool logs
	}{
		{name: "plain", reply: "ff000001",
			packet: func(target) []byte { return remotePacket(17, "id", "r1", "k", "v") }},
		{name: "routed to the second dir", reply: "ff000001",
			packet: func(tg target) []byte { return remotePacket(17, "id", "r2", "spooler", tg.b) }},
		{name: "unknown spooler", reply: "ff000000", log: `unknown spooler "/nonexistent/spool"`,
			packet: func(target) []byte { return remotePacket(17, "id", "r3", "spooler", "/nonexistent/spool") }},
		{name: "oversize", reply: noReply, log: "invalid request block size: 5007 (max 4096)...skip",
			packet: func(target) []byte { return remotePacket(17, "big", strings.Repeat("x", 5000)) }},
		{name: "truncated", reply: noReply, log: "sent 3 of the 100-byte vars block, then closed the connection",
			packet: func(target) []byte { return []byte{17, 100, 0, 0, 'a', 'b', 'c'} }},
		{name: "malformed vars", reply: "ff000000", gospoolOnly: true, log: "invalid vars block: key length 0",
			packet: func(target) []byte { return []byte{17, 3, 0, 0, 0, 0, 'x'} }},
		{name: "not modifier1 17", reply: noReply, log: "unavailable modifier requested: 0",
			packet: func(target) []byte { return remotePacket(0, "id", "x") }},
		{name: "after the refusals", reply: "ff000001",
			packet: func(target) []byte { return remotePacket(17, "id", "r9") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, tg := range targets {
				if tc.gospoolOnly && tg.name == "uWSGI" {
					t.Logf("uWSGI answers %s", sendRaw(t, tg.sock, tc.packet(tg)))
					continue
				}
				if got := sendRaw(t, tg.sock, tc.packet(tg)); got != tc.reply {
					t.Errorf("%s answered %s, want %s", tg.name, got, tc.reply)
				}
			}
			if tc.log != "" {
				h.waitFor(t, 5*time.Second, fmt.Sprintf("gospool to log %q", tc.log), func() bool {
					return strings.Contains(g.log(), tc.log)
				})
			}
		})
	}

	// Where the stored tasks went: uWSGI wrote files, gospool ran them.
	files := func(dir string) int {
		m, _ := filepath.Glob(filepath.Join(dir, spoolfile.Prefix+"*"))
		return len(m)
	}
	// uWSGI: r1, r9 and the malformed packet it stored; r2.
	if a, b := files(uA), files(uB); a != 3 || b != 1 {
		t.Errorf("uWSGI wrote %d files in its first dir and %d in the second, want 3 and 1", a, b)
	}
	want := []string{"r1 " + gA, "r2 " + gB, "r9 " + gA}
	h.waitFor(t, 10*time.Second, "gospool to run the 3 stored tasks", func() bool { return len(readLines(outFile)) >= len(want) })
	got := map[string]bool{}
	for _, line := range readLines(outFile) {
		got[line] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("gospool ran %q, want a line %q", readLines(outFile), w)
		}
	}
	if g.exitedNow() || bytes.Contains([]byte(g.log()), []byte("panic")) {
		t.Errorf("gospool: %s", g.status())
	}
}
