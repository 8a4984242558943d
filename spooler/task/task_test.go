package task

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestGetLastWinsAndSetDelete(t *testing.T) {
	tk := New("a", "1", "b", "2", "a", "3")
	if v, _ := tk.Get("a"); string(v) != "3" {
		t.Fatalf("Get returned %q, want the last value as in uWSGI's dict", v)
	}
	tk.Set("a", []byte("4"))
	if len(tk.Pairs) != 2 || string(tk.Pairs[0].Key) != "a" || string(tk.Pairs[0].Value) != "4" {
		t.Fatalf("Set: %v", tk)
	}
	tk.Delete("a")
	if _, ok := tk.Get("a"); ok || len(tk.Pairs) != 1 {
		t.Fatalf("Delete: %v", tk)
	}
}

func TestAt(t *testing.T) {
	good := map[string]time.Time{
		"1700000000":     time.Unix(1700000000, 0),
		"1700000000.5":   time.Unix(1700000000, 500000000),
		"1700000000.123": time.Unix(1700000000, 123000000),
		"4102444800":     time.Unix(4102444800, 0),
	}
	for in, want := range good {
		got, ok, err := New("at", in).At()
		if err != nil || !ok || !got.Equal(want) {
			t.Errorf("At(%q) = %v %v %v, want %v", in, got, ok, err, want)
		}
	}
	for _, zero := range []string{"0", "0.0"} {
		if _, ok, err := New("at", zero).At(); ok || err != nil {
			t.Errorf("At(%q): ok %v err %v; 0 means no time, as in uWSGI", zero, ok, err)
		}
	}
	for _, bad := range []string{"", "soon", "-5", "1e9", "12a", "1.", ".5", " 1", "1.2.3", "99999999999999999999"} {
		if _, _, err := New("at", bad).At(); !errors.Is(err, ErrBadAt) {
			t.Errorf("At(%q): err %v, want ErrBadAt (never a silent 0)", bad, err)
		}
	}
	if _, ok, err := New().At(); ok || err != nil {
		t.Errorf("no at key: %v %v", ok, err)
	}
}

func TestPriority(t *testing.T) {
	if p, ok, err := New("priority", "5").Priority(); p != "5" || !ok || err != nil {
		t.Fatalf("got %q %v %v", p, ok, err)
	}
	for _, bad := range []string{"", "../x", "5/6", "high", "-1", " 1"} {
		if _, _, err := New("priority", bad).Priority(); !errors.Is(err, ErrBadPriority) {
			t.Errorf("Priority(%q): %v, want ErrBadPriority", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := New("task", "x", "at", "12", "priority", "3").Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (&Task{Pairs: []Pair{{Key: nil, Value: []byte("v")}}}).Validate(); err == nil {
		t.Fatal("empty key accepted")
	}
	if err := New("at", "later").Validate(); !errors.Is(err, ErrBadAt) {
		t.Fatalf("bad at: %v", err)
	}
}

func TestName(t *testing.T) {
	if n := New("task", "a", "ud_spool_func", "b").Name(); n != "b" {
		t.Fatalf("ud_spool_func should win: %q", n)
	}
	if n := New("task", "a").Name(); n != "a" {
		t.Fatalf("%q", n)
	}
}

func TestDocumentJSON(t *testing.T) {
	tk := &Task{Pairs: []Pair{{Key: []byte("k"), Value: []byte("v")}, {Key: []byte("bin"), Value: []byte{0xff, 0}}, {Key: []byte("k"), Value: []byte("w")}}, Body: []byte("body")}
	b, err := json.Marshal(NewDocument("/p", tk, false))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"path":"/p","vars":[["k","v"],["bin",{"base64":"/wA="}],["k","w"]],"body_len":4,"body_sha256":"230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(NewDocument("/p", tk, true))
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	back, err := d.Task()
	if err != nil || string(back.Body) != "body" || string(back.Pairs[1].Value) != "\xff\x00" || len(back.Pairs) != 3 {
		t.Fatalf("round trip: %v %v", back, err)
	}
}
