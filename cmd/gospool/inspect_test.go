package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

func writeSpoolFile(t *testing.T, path string, tk *task.Task) {
	t.Helper()
	data, err := spoolfile.Encode(tk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Bytes that are not UTF-8 cannot come from a shell's KEY=VALUE, so the
// file is written directly.
func TestInspectBinary(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "uwsgi_spoolfile_on_test_1")
	tk := &task.Task{Pairs: []task.Pair{
		{Key: []byte("task"), Value: []byte("bin")},
		{Key: []byte("val"), Value: []byte{0xff, 0x00, 'a'}},
		{Key: []byte{0xc3}, Value: []byte("key not utf-8")},
		{Key: []byte("nl"), Value: []byte("a\nb")},
	}, Body: []byte{1, 2, 3}}
	writeSpoolFile(t, path, tk)

	r := gospool(t, "inspect", "--json", path).mustSucceed(t)
	want := `{"path":"` + path + `","vars":[["task","bin"],["val",{"base64":"` + base64.StdEncoding.EncodeToString([]byte{0xff, 0, 'a'}) +
		`"}],[{"base64":"ww=="},"key not utf-8"],["nl","a\nb"]],"body_len":3,"body_sha256":"` + sha([]byte{1, 2, 3}) + `"}` + "\n"
	if r.stdout != want {
		t.Errorf("inspect --json:\n got %s\nwant %s", r.stdout, want)
	}
	r = gospool(t, "inspect", path).mustSucceed(t)
	wantText := path + "\n  task = bin\n  val = \"\\xff\\x00a\"\n  \"\\xc3\" = key not utf-8\n  nl = \"a\\nb\"\n  body: 3 bytes sha256 " + sha([]byte{1, 2, 3}) + "\n"
	if r.stdout != wantText {
		t.Errorf("inspect:\n got %q\nwant %q", r.stdout, wantText)
	}
}

// A bad file is reported and skipped; the others are still shown; exit 1.
func TestInspectBadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeSpoolFile(t, good, task.New("task", "ok"))
	truncated := filepath.Join(dir, "truncated")
	if err := os.WriteFile(truncated, []byte{0x11, 0x20, 0x00, 0x00, 0x01}, 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte{0x11}, 0o600); err != nil {
		t.Fatal(err)
	}
	r := gospool(t, "inspect", "--json", truncated, good, short)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if !strings.HasPrefix(r.stdout, `{"path":"`+good+`"`) || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("stdout %q, want the good file only", r.stdout)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "gospool inspect: "+truncated+": truncated") ||
		!strings.HasPrefix(lines[1], "gospool inspect: "+short+": ") {
		t.Errorf("stderr %q, want one line per bad file naming it", r.stderr)
	}
}

// A text file, random bytes and an empty file are said not to be spool
// files, not truncated at some byte; a real uWSGI spool file cut short is
// still truncated.
func TestInspectNotSpoolFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	random := filepath.Join(dir, "random.bin")
	empty := filepath.Join(dir, "empty")
	cut := filepath.Join(dir, "uwsgi_spoolfile_cut")
	noise := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(11, 17))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	noise[0] = 0xa7 // not 17 or 0 (1 chance in 128 for random bytes)
	real, err := os.ReadFile("../../spooler/spoolfile/testdata/uwsgi-spool/01-plain/uwsgi_spoolfile_on_vm_17079_1_100799708_1795818994_525728")
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{
		text:   []byte("hello, this is a text file\nwith two lines\n"),
		random: noise,
		empty:  nil,
		cut:    real[:20], // inside the second pair
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ path, want string }{
		{text, text + `: not a uWSGI spool file: it starts with "hell", and a spool file's first byte is 17 (0x11)`},
		{random, random + `: not a uWSGI spool file: it starts with "\xa7`},
		{empty, empty + ": empty file, not a uWSGI spool file (unless its writer has not written it yet)"},
		{cut, cut + ": truncated at byte 20: the header announces a 39-byte vars block, the file holds only 16 bytes after the header"},
	} {
		for _, args := range [][]string{{"inspect", c.path}, {"inspect", "--json", c.path}} {
			r := gospool(t, args...)
			if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "gospool inspect: "+c.want) {
				t.Errorf("gospool %q: exit %d, stdout %q, stderr %q; want exit 1 and %q", args, r.code, r.stdout, r.stderr, c.want)
			}
			oneErrorLine(t, r, "gospool inspect: ")
		}
	}
}

// manifestFixture is an entry of the uWSGI fixtures' manifest.json.
type manifestFixture struct {
	Name    string      `json:"name"`
	Path    string      `json:"path"`
	KV      [][2]string `json:"kv_in_file_order"`
	BodyLen int         `json:"body_len"`
}

// inspect --json on files written by real uWSGI 2.0.21 says what the
// manifest says they hold.
func TestInspectUWSGIFixtures(t *testing.T) {
	t.Parallel()
	fixtures, err := filepath.Abs("../../spooler/spoolfile/testdata/uwsgi-spool")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(fixtures, "manifest.json"))
	if os.IsNotExist(err) {
		t.Skip("no uWSGI fixtures in " + fixtures)
	}
	if err != nil {
		t.Fatal(err)
	}
	var manifest []manifestFixture
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	args := []string{"inspect", "--json"}
	for _, fx := range manifest {
		args = append(args, filepath.Join(fixtures, fx.Path))
	}
	r := gospool(t, args...).mustSucceed(t, args...)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(manifest) {
		t.Fatalf("%d lines for %d files:\n%s", len(lines), len(manifest), r.stdout)
	}
	for i, fx := range manifest {
		var doc task.Document
		if err := json.Unmarshal([]byte(lines[i]), &doc); err != nil {
			t.Fatalf("%s: %v in %s", fx.Name, err, lines[i])
		}
		if doc.Path != args[2+i] {
			t.Errorf("%s: path %q, want %q", fx.Name, doc.Path, args[2+i])
		}
		if len(doc.Vars) != len(fx.KV) {
			t.Fatalf("%s: %d vars, want %d", fx.Name, len(doc.Vars), len(fx.KV))
		}
		for j, kv := range fx.KV {
			value := []byte(kv[1])
			if h, ok := strings.CutPrefix(kv[1], "hex:"); ok {
				if value, err = hex.DecodeString(h); err != nil {
					t.Fatal(err)
				}
			}
			if string(doc.Vars[j][0]) != kv[0] || !bytes.Equal(doc.Vars[j][1], value) {
				t.Errorf("%s: pair %d is %q=%q, want %q=%q", fx.Name, j, doc.Vars[j][0], doc.Vars[j][1], kv[0], value)
			}
			// Binary values (pickles) come as base64, the rest as strings.
			if isB64 := strings.Contains(lines[i], `{"base64":"`+base64.StdEncoding.EncodeToString(value)+`"}`); isB64 == utf8.Valid(value) {
				t.Errorf("%s: pair %d: base64 form %v for a value with valid UTF-8 %v", fx.Name, j, isB64, utf8.Valid(value))
			}
		}
		data, err := os.ReadFile(args[2+i])
		if err != nil {
			t.Fatal(err)
		}
		body := data[4+int(data[1])|int(data[2])<<8:]
		if doc.BodyLen != fx.BodyLen || doc.BodySHA256 != sha(body) || doc.BodyBase64 != nil {
			t.Errorf("%s: body_len %d sha256 %s (base64 %v), want %d %s and no body_base64", fx.Name, doc.BodyLen, doc.BodySHA256, doc.BodyBase64 != nil, fx.BodyLen, sha(body))
		}
	}
}

// A ring file shows the ring's state instead of a task.
func TestInspectRing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ring.FileName)
	r, err := ring.Create(path, ring.Options{Geometry: ring.Geometry{Lanes: 2, SlotsPerLane: 8, LaneBytes: 4096, Consumers: 2}})
	if err != nil {
		t.Fatal(err)
	}
	r.Add(ring.Done, 3)
	r.Close()
	// Under another name the magic gives it away.
	other := filepath.Join(dir, "copy-of-ring")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, data, 0o600); err != nil {
		t.Fatal(err)
	}

	res := gospool(t, "inspect", "--json", path, other).mustSucceed(t)
	for i, line := range strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n") {
		var doc struct {
			Path string
			Ring map[string]any
		}
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("%v in %s", err, line)
		}
		if want := []string{path, other}[i]; doc.Path != want || doc.Ring["done"] != 3.0 {
			t.Errorf("inspect --json %s: %s", want, line)
		}
	}
	res = gospool(t, "inspect", path).mustSucceed(t)
	if !strings.Contains(res.stdout, "2 lanes of 8 records and 4 KiB") || !strings.Contains(res.stdout, "  done       3\n") {
		t.Errorf("inspect %s:\n%s", path, res.stdout)
	}
}
