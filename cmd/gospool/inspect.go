package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/gospool/gospool/master/stats"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

const inspectHelp = `Show the task in each spool FILE, without locking it (a spooler may be
running it), as uwsgi.parsefile() reads it. Works on files written by uWSGI
and by gospool.

Text: the path, then each pair as "  KEY = VALUE" in file order (a key or
value that is not valid UTF-8 or holds control characters is printed
Go-quoted), then "  body: N bytes sha256 H" or "  body: none".

--json prints one object per file, one per line:
  {"path": P, "vars": [[K, V], ...], "body_len": N, "body_sha256": H}
where P is the path as given, and K and V are JSON strings when the bytes are
valid UTF-8, else {"base64": "..."}. Pairs stay in file order, duplicates
kept. This is also what --spooler-exec commands read on stdin.

A ring file (gospool.ring) shows the ring's geometry and counters instead,
as {"path": P, "ring": {...}} with --json (the keys of gospool stats --json).

A file that cannot be read is reported on stderr and the others are still
shown; the exit status is then 1. A file that is not a uWSGI spool file at
all (its first byte is not 17, or the pairs after its header do not fit the
size the header announces: a text file, random bytes) is reported as such;
a spool file cut short as truncated, one whose pairs do not parse as
corrupt.`

func cmdInspect(_ context.Context, a *app, args []string) error {
	flags := newFlagSet("inspect", "gospool inspect [--json] FILE...", inspectHelp)
	asJSON := flags.Bool("json", false, "print one JSON object per file, one per line")
	files, err := flags.parse(a, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageErrorf("no FILE given: name one or more spool files")
	}
	failed := false
	for _, path := range files {
		if err := inspectOne(a.stdout, path, *asJSON); err != nil {
			fmt.Fprintf(a.stderr, "gospool inspect: %s\n", oneLine(cleanError(err)))
			failed = true
		}
	}
	if failed {
		return errReported
	}
	return nil
}

func inspectOne(w io.Writer, path string, asJSON bool) error {
	if isRingFile(path) {
		return inspectRing(w, path, asJSON)
	}
	t, err := spoolfile.ReadFile(path)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, task.NewDocument(path, t, false))
	}
	var b bytes.Buffer
	fmt.Fprintln(&b, path)
	for _, p := range t.Pairs {
		fmt.Fprintf(&b, "  %s = %s\n", printable(p.Key), printable(p.Value))
	}
	if t.Body == nil {
		fmt.Fprintln(&b, "  body: none")
	} else {
		sum := sha256.Sum256(t.Body)
		fmt.Fprintf(&b, "  body: %d bytes sha256 %s\n", len(t.Body), hex.EncodeToString(sum[:]))
	}
	_, err = w.Write(b.Bytes())
	return err
}

// printable returns b as is when it is valid UTF-8 without control
// characters, else Go-quoted so that the output stays one line per pair and
// shows every byte.
func printable(b []byte) string {
	if !utf8.Valid(b) || bytes.IndexFunc(b, unicode.IsControl) >= 0 {
		return strconv.Quote(string(b))
	}
	return string(b)
}

func isRingFile(path string) bool {
	if filepath.Base(path) == ring.FileName {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, len(ring.Magic))
	_, err = io.ReadFull(f, head)
	return err == nil && string(head) == ring.Magic
}

func inspectRing(w io.Writer, path string, asJSON bool) error {
	r, err := ring.Open(path, ring.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer r.Close()
	st := r.Stats()
	if asJSON {
		return writeJSON(w, struct {
			Path string     `json:"path"`
			Ring stats.Ring `json:"ring"`
		}{path, stats.RingOf(st)})
	}
	printRing(w, path, st)
	return nil
}
