package spoolfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureDir holds real files written by uWSGI 2.0.21 (see its MANIFEST.md),
// copied from the shared fixtures so that a clean clone can run the tests.
const fixtureDir = "testdata/uwsgi-spool"

type fixture struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Size   int    `json:"size"`
	Header struct {
		Modifier1 int `json:"modifier1"`
		PktSize   int `json:"pktsize_le16"`
		Modifier2 int `json:"modifier2"`
	} `json:"header"`
	KV      [][2]string `json:"kv_in_file_order"`
	BodyLen int         `json:"body_len"`
	SHA256  string      `json:"sha256"`
}

func loadFixtures(tb testing.TB) []fixture {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtureDir, "manifest.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var fx []fixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		tb.Fatal(err)
	}
	if len(fx) == 0 {
		tb.Fatal("manifest.json lists no fixtures")
	}
	return fx
}

func (fx fixture) data(tb testing.TB) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, fx.Path))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// manifestValue decodes the manifest's "hex:" convention for binary values.
func manifestValue(tb testing.TB, v string) []byte {
	if h, ok := strings.CutPrefix(v, "hex:"); ok {
		b, err := hex.DecodeString(h)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	return []byte(v)
}

func TestFixtures(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.Name, func(t *testing.T) {
			data := fx.data(t)
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != fx.SHA256 {
				t.Fatalf("sha256 %x, manifest says %s: the testdata copy differs from the fixture", sum, fx.SHA256)
			}
			if len(data) != fx.Size {
				t.Errorf("size %d, want %d", len(data), fx.Size)
			}
			if !fileNameRE.MatchString(filepath.Base(fx.Path)) {
				t.Errorf("uWSGI's name %s does not match our name pattern", filepath.Base(fx.Path))
			}
			if int(data[0]) != fx.Header.Modifier1 || int(data[1])|int(data[2])<<8 != fx.Header.PktSize || int(data[3]) != fx.Header.Modifier2 {
				t.Errorf("header % x, want modifier1 %d pktsize %d modifier2 %d", data[:4], fx.Header.Modifier1, fx.Header.PktSize, fx.Header.Modifier2)
			}

			tk, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(tk.Pairs) != len(fx.KV) {
				t.Fatalf("%d pairs, want %d", len(tk.Pairs), len(fx.KV))
			}
			for i, kv := range fx.KV {
				p := tk.Pairs[i]
				if string(p.Key) != kv[0] || !bytes.Equal(p.Value, manifestValue(t, kv[1])) {
					t.Errorf("pair %d = %q: %q, want %q: %q", i, p.Key, p.Value, kv[0], kv[1])
				}
			}
			if len(tk.Body) != fx.BodyLen || (fx.BodyLen == 0) != (tk.Body == nil) {
				t.Errorf("body %d bytes (nil %v), want %d", len(tk.Body), tk.Body == nil, fx.BodyLen)
			}
			if err := tk.Validate(); err != nil {
				t.Errorf("a task uWSGI wrote does not validate: %v", err)
			}

			enc, err := Encode(tk)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, data) {
				t.Errorf("Encode(Decode(file)) differs from the file:\n got % x\nwant % x", enc, data)
			}
		})
	}
}

// The fixtures' special keys mean what uWSGI made of them: 02-priority lives
// in the sub-directory named after its priority, 03-at-future carries the
// time uWSGI put into its mtime.
func TestFixtureSpecialKeys(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		tk, err := Decode(fx.data(t))
		if err != nil {
			t.Fatal(err)
		}
		prio, ok, _ := tk.Priority()
		if parent := filepath.Base(filepath.Dir(fx.Path)); ok && parent != prio {
			t.Errorf("%s: priority %q but uWSGI put it in %q", fx.Name, prio, parent)
		}
		if at, ok, _ := tk.At(); ok && at.Unix() != 4102444800 {
			t.Errorf("%s: at %v", fx.Name, at)
		}
	}
}

// Every file in the fixture directory is listed in manifest.json, so that
// TestFixtures checks them all, and every listed file exists.
func TestManifestListsEveryFixture(t *testing.T) {
	listed := map[string]bool{}
	for _, fx := range loadFixtures(t) {
		listed[fx.Path] = true
	}
	found := map[string]bool{}
	err := filepath.WalkDir(fixtureDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(fixtureDir, path)
		if err != nil {
			return err
		}
		if rel == "manifest.json" || rel == "MANIFEST.md" {
			return nil
		}
		found[rel] = true
		if !listed[rel] {
			t.Errorf("%s is in %s but not in manifest.json: no test checks it", rel, fixtureDir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range listed {
		if !found[p] {
			t.Errorf("manifest.json lists %s, which is not in %s", p, fixtureDir)
		}
	}
}
