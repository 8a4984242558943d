package record

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/gospool/gospool/internal/allocs"
	"github.com/gospool/gospool/spooler/task"
)

func TestDocumentedExample(t *testing.T) {
	got, err := Append(nil, task.New("task", "resize"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("930192c4047461736bc406726573697a65c0")
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	cases := map[string]*task.Task{
		"empty":      {},
		"dups":       task.New("a", "1", "a", "2", "b", ""),
		"body":       {Pairs: []task.Pair{{Key: []byte("k"), Value: []byte{0, 255}}}, Body: bytes.Repeat([]byte{7}, 70000)},
		"empty body": {Body: []byte{}},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := Append(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Pairs) != len(in.Pairs) || (out.Body == nil) != (in.Body == nil) || !bytes.Equal(out.Body, in.Body) {
				t.Fatalf("got %v want %v", out, in)
			}
			for i := range in.Pairs {
				if !bytes.Equal(out.Pairs[i].Key, in.Pairs[i].Key) || !bytes.Equal(out.Pairs[i].Value, in.Pairs[i].Value) {
					t.Fatalf("pair %d: got %v want %v", i, out.Pairs[i], in.Pairs[i])
				}
			}
		})
	}
}

func TestAcceptsStrEncodedValues(t *testing.T) {
	// [1, ["task" (fixstr), "x" (fixstr)], nil]
	b, _ := hex.DecodeString("930192a47461736ba178c0")
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Name() != "x" {
		t.Fatalf("got %v", out)
	}
}

func TestRejects(t *testing.T) {
	good, _ := Append(nil, task.New("task", "resize"))
	bad := map[string][]byte{
		"empty":        {},
		"not array":    {0x01},
		"version 2":    append([]byte{0x93, 0x02}, good[2:]...),
		"odd pairs":    {0x93, 0x01, 0x91, 0xc4, 0x01, 'k', 0xc0},
		"truncated":    good[:len(good)-3],
		"trailing":     append(append([]byte{}, good...), 0),
		"empty key":    {0x93, 0x01, 0x92, 0xc4, 0x00, 0xc4, 0x00, 0xc0},
		"huge pairs":   {0x93, 0x01, 0xdd, 0x7f, 0xff, 0xff, 0xff},
		"bin too long": {0x93, 0x01, 0x92, 0xc6, 0x7f, 0xff, 0xff, 0xff},
		"int as value": {0x93, 0x01, 0x92, 0xc4, 0x01, 'k', 0x05, 0xc0},
		"body not bin": {0x93, 0x01, 0x90, 0x05},
		"missing body": {0x92, 0x01, 0x90},
	}
	for name, b := range bad {
		if _, err := Decode(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Append(nil, task.New("task", "resize", "user", "42"))
	f.Add(good)
	withBody, _ := Append(nil, &task.Task{Body: []byte("hello")})
	f.Add(withBody)
	for _, b := range [][]byte{
		{0x93, 0x01, 0xdd, 0x7f, 0xff, 0xff, 0xff},       // 2^31 pairs claimed
		{0x93, 0x01, 0x92, 0xc6, 0x7f, 0xff, 0xff, 0xff}, // a 2 GiB key claimed
		{0x93, 0x01, 0x92, 0xa1, 'k', 0xc0, 0xc0},        // nil value, nil body
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		var out *task.Task
		var err error
		mallocs, allocated := allocs.Measure(func() { out, err = Decode(b) })
		if !bytes.Equal(b, orig) {
			t.Fatal("Decode modified its input")
		}
		// What Decode allocates must follow from the bytes it was given, not
		// from the lengths they claim: one copy of the input, the task, its
		// pairs (48 bytes each, for at least 3 input bytes) and, on error, a
		// message.
		if limit := uint64(4096 + 18*len(b)); allocated > limit {
			t.Fatalf("Decode of %d bytes allocated %d bytes (limit %d)", len(b), allocated, limit)
		}
		if mallocs > 40 {
			t.Fatalf("Decode of %d bytes made %d allocations", len(b), mallocs)
		}
		if err != nil {
			if out != nil || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v with task %v; want ErrFormat and no task", err, out)
			}
			return
		}
		if cap(out.Pairs) > len(b)/3 {
			t.Fatalf("%d pairs from %d bytes", cap(out.Pairs), len(b))
		}
		again, err := Append(nil, out)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(again)
		if err != nil || len(back.Pairs) != len(out.Pairs) {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	tk := task.New("task", "resize", "user", "42", "size", "128x128")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = Append(buf[:0], tk)
	}
}

func BenchmarkDecode(b *testing.B) {
	rec, _ := Append(nil, task.New("task", "resize", "user", "42", "size", "128x128"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(rec); err != nil {
			b.Fatal(err)
		}
	}
}
