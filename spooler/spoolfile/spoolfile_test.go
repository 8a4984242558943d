package spoolfile

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gospool/gospool/spooler/task"
)

// fileNameRE is uWSGI's name format. The host may contain '_', so it is the
// greedy part and the five numbers are anchored at the end.
var fileNameRE = regexp.MustCompile(`^uwsgi_spoolfile_on_(.*)_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)$`)

func TestWorkedExample(t *testing.T) {
	// Spec §1 and uWSGI's Spooler.rst.
	want := []byte("\x11\x0e\x00\x00\x05\x00hello\x05\x00world")
	got, err := Encode(task.New("hello", "world"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	tk, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(tk.Pairs) != 1 || string(tk.Pairs[0].Key) != "hello" || string(tk.Pairs[0].Value) != "world" || tk.Body != nil {
		t.Fatalf("decoded %v", tk)
	}
}

func TestDuplicatesKeptInOrder(t *testing.T) {
	in := task.New("a", "1", "b", "2", "a", "3", "a", "")
	data, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != in.String() {
		t.Fatalf("got %v, want %v", out, in)
	}
	if v, _ := out.Get("a"); len(v) != 0 {
		t.Fatalf("last a = %q, want empty", v)
	}
}

func TestBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    *task.Task
	}{
		{"no pairs no body", &task.Task{}},
		{"no pairs with body", &task.Task{Body: []byte("raw")}},
		{"pairs no body", task.New("k", "v")},
		{"pairs with body", &task.Task{Pairs: task.New("k", "v").Pairs, Body: []byte{0, 1, 2, 0x11}}},
		{"empty non-nil body", &task.Task{Body: []byte{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Encode(tc.t)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Body, tc.t.Body) || (out.Body == nil) != (len(tc.t.Body) == 0) {
				t.Fatalf("body %q (nil %v), want %q", out.Body, out.Body == nil, tc.t.Body)
			}
			if len(out.Pairs) != len(tc.t.Pairs) {
				t.Fatalf("%d pairs, want %d", len(out.Pairs), len(tc.t.Pairs))
			}
		})
	}
}

func TestDecodeAliasesInput(t *testing.T) {
	data := []byte("\x11\x0c\x00\x00\x01\x00a\x01\x00b\x01\x00c\x01\x00dBODY")
	tk, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	data[9] = 'B'
	if string(tk.Pairs[0].Value) != "B" {
		t.Fatal("Decode copied the value; it is documented to alias the input")
	}
	// Capacity is clipped: appending must not overwrite the next pair.
	_ = append(tk.Pairs[0].Value, 'X', 'X', 'X')
	_ = append(tk.Pairs[1].Value, 'X', 'X', 'X', 'X')
	if string(data) != "\x11\x0c\x00\x00\x01\x00a\x01\x00B\x01\x00c\x01\x00dBODY" {
		t.Fatalf("append to a decoded value clobbered the input: %q", data)
	}
}

func TestDecodeIgnoresModifiers(t *testing.T) {
	for _, m := range [][2]byte{{0, 0}, {0xff, 0xff}, {17, 1}} {
		data := []byte("\x11\x06\x00\x00\x01\x00k\x01\x00v")
		data[0], data[3] = m[0], m[1]
		if _, err := Decode(data); err != nil {
			t.Errorf("modifiers %v: %v", m, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   string
		want   error
		offset int
		reason string
	}{
		{"empty", "", ErrShortHeader, 0, ""},
		{"3 bytes", "\x11\x00\x00", ErrShortHeader, 0, ""},
		{"vars longer than file", "\x11\x05\x00\x00\x01\x00", ErrTruncated, 6, "5-byte vars block"},
		{"vars longer than file by one", "\x11\x06\x00\x00\x01\x00k\x01\x00", ErrTruncated, 9, "only 5 bytes"},
		{"2 bytes where a key starts", "\x11\x02\x00\x00\x01\x00", ErrCorrupt, 4, "2 bytes left where a key starts"},
		{"1 byte where a key starts", "\x11\x01\x00\x00\x01BODY", ErrCorrupt, 4, "1 bytes left"},
		{"2 bytes after a pair", "\x11\x08\x00\x00\x01\x00k\x01\x00v\x01\x00", ErrCorrupt, 10, "2 bytes left"},
		{"key length 0", "\x11\x05\x00\x00\x00\x00\x01\x00v", ErrCorrupt, 4, "key length 0"},
		{"key overruns", "\x11\x04\x00\x00\x05\x00ab", ErrCorrupt, 4, "key length 5 runs past"},
		{"key overruns into body", "\x11\x04\x00\x00\x05\x00abcdefgh", ErrCorrupt, 4, "key length 5 runs past"},
		{"no value length", "\x11\x04\x00\x00\x01\x00a\x00", ErrCorrupt, 7, `value length of key "a"`},
		{"no value length at end", "\x11\x03\x00\x00\x01\x00a", ErrCorrupt, 7, `value length of key "a"`},
		{"value overruns", "\x11\x06\x00\x00\x01\x00a\x05\x00b", ErrCorrupt, 7, `value length 5 of key "a" runs past`},
		{"second pair corrupt", "\x11\x0b\x00\x00\x01\x00a\x01\x00b\x00\x00\x01\x00x", ErrCorrupt, 10, "key length 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := Decode([]byte(tc.data))
			if !errors.Is(err, tc.want) || tk != nil {
				t.Fatalf("got %v, %v; want %v", tk, err, tc.want)
			}
			if tc.want == ErrShortHeader {
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%T is not a *FormatError", err)
			}
			if fe.Offset != tc.offset || !strings.Contains(fe.Reason, tc.reason) {
				t.Fatalf("offset %d reason %q; want %d, containing %q", fe.Offset, fe.Reason, tc.offset, tc.reason)
			}
		})
	}
}

func TestFormatErrorMessage(t *testing.T) {
	err := error(&FormatError{Path: "/x/y", Offset: 12, Reason: "key length 0", Err: ErrCorrupt})
	if want := "spoolfile: /x/y: corrupt at byte 12: key length 0 (uWSGI would delete this file)"; err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	err = &FormatError{Offset: 9, Reason: "r", Err: ErrTruncated}
	if want := "spoolfile: truncated at byte 9: r (uWSGI would delete this file)"; err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
}

func TestEncodeErrors(t *testing.T) {
	big := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	pairs := func(kv ...[]byte) *task.Task {
		t := &task.Task{}
		for i := 0; i < len(kv); i += 2 {
			t.Pairs = append(t.Pairs, task.Pair{Key: kv[i], Value: kv[i+1]})
		}
		return t
	}
	for _, tc := range []struct {
		name string
		t    *task.Task
		what string // "" = no error; "empty" = the empty-key error
		size int
		key  string
	}{
		{"empty key", pairs([]byte("a"), nil, []byte{}, []byte("v")), "empty", 0, ""},
		// A pair costs 4 + len(key) + len(value) bytes of the vars block.
		{"value fills the block", pairs([]byte("k"), big(65530)), "", 0, ""},
		{"value one over the block", pairs([]byte("k"), big(65531)), "vars block", 65536, "k"},
		{"value at the field limit", pairs([]byte("k"), big(65535)), "vars block", 65540, "k"},
		{"value over the field limit", pairs([]byte("k"), big(65536)), "value", 65536, "k"},
		{"key fills the block", pairs(big(65531), nil), "", 0, ""},
		{"key at the field limit", pairs(big(65535), nil), "vars block", 65539, string(big(65535))},
		{"key over the field limit", pairs(big(65536), nil), "key", 65536, string(big(65536))},
		{"many pairs fill the block", pairs(big(32763), nil, []byte("b"), big(32763)), "", 0, ""},
		{"many pairs over the block", pairs([]byte("a"), big(100), []byte("b"), big(32763), []byte("c"), big(32763)), "vars block", 65641, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := AppendEncode(dst, tc.t)
			switch tc.what {
			case "":
				if err != nil {
					t.Fatal(err)
				}
				if len(out) != len(dst)+4+MaxVarsLen {
					t.Fatalf("%d bytes, want a full block", len(out))
				}
				if back, err := Decode(out[len(dst):]); err != nil || len(back.Pairs) != len(tc.t.Pairs) {
					t.Fatalf("round trip: %v", err)
				}
				return
			case "empty":
				if err == nil || !strings.Contains(err.Error(), "empty key") {
					t.Fatalf("got %v, want an empty key error", err)
				}
			default:
				var le *LimitError
				if !errors.As(err, &le) || !errors.Is(err, ErrTooLarge) {
					t.Fatalf("got %v, want a *LimitError wrapping ErrTooLarge", err)
				}
				if le.What != tc.what || le.Size != tc.size || le.Limit != MaxVarsLen || le.Key != tc.key {
					t.Fatalf("got What %q Size %d Limit %d key %.10q; want %q %d", le.What, le.Size, le.Limit, le.Key, tc.what, tc.size)
				}
				if msg := err.Error(); !strings.Contains(msg, "body") || len(msg) > 300 {
					t.Fatalf("message should be short and point to the body: %s", msg)
				}
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed on error: %q", out)
			}
		})
	}
}

func TestName(t *testing.T) {
	got := Name("web1", 4242, 7, 1804289383, time.Unix(1700000000, 5123999))
	if want := "uwsgi_spoolfile_on_web1_4242_7_1804289383_1700000000_5123"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	got = Name("my_host", 1, 1, 0, time.Unix(5, 0))
	if m := fileNameRE.FindStringSubmatch(got); m == nil || m[1] != "my_host" || m[6] != "0" {
		t.Fatalf("%s: %q", got, m)
	}
}

func benchTask() *task.Task {
	t := task.New("ud_spool_func", "send_mail", "ud_spool_ret", "-2", "to", "alice@example.com", "subject", "hello")
	t.Body = bytes.Repeat([]byte("b"), 4096)
	return t
}

func BenchmarkEncode(b *testing.B) {
	t := benchTask()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendEncode(buf[:0], t); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecode(b *testing.B) {
	data, err := Encode(benchTask())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAllocs(t *testing.T) {
	tk := benchTask()
	data, _ := Encode(tk)
	buf := make([]byte, 0, len(data))
	if n := testing.AllocsPerRun(100, func() { buf, _ = AppendEncode(buf[:0], tk) }); n != 0 {
		t.Errorf("AppendEncode into a big enough buffer: %v allocs, want 0", n)
	}
	// The task and one exactly sized pairs slice.
	if n := testing.AllocsPerRun(100, func() { Decode(data) }); n != 2 {
		t.Errorf("Decode: %v allocs, want 2", n)
	}
}
