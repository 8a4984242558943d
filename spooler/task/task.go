package task

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Special keys with a meaning to the spooler, as in uWSGI.
const (
	KeySpooler  = "spooler"
	KeyPriority = "priority"
	KeyAt       = "at"
	KeyBody     = "body"
)

// Result is what a handler decides about a task. The values are uWSGI's, so
// that a Python task function's return code means the same thing here.
type Result int

const (
	// OK: the task is done and is deleted (uWSGI SPOOL_OK).
	OK Result = -2
	// Retry: run the task again later (uWSGI SPOOL_RETRY).
	Retry Result = -1
	// Ignore: not this handler's task; keep it for another one (uWSGI SPOOL_IGNORE).
	Ignore Result = 0
)

// String names the result as uWSGI's Python constants do.
func (r Result) String() string {
	switch r {
	case OK:
		return "SPOOL_OK"
	case Retry:
		return "SPOOL_RETRY"
	case Ignore:
		return "SPOOL_IGNORE"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// Pair is one key and its value. Keys are never empty.
type Pair struct {
	Key   []byte
	Value []byte
}

// Task is an ordered list of pairs plus an optional body. The zero value is
// an empty task with no body.
type Task struct {
	Pairs []Pair
	// Body is carried after the pairs, of any length. nil means no body.
	Body []byte
}

// New builds a task from alternating keys and values:
// New("task", "resize", "user", "42"). It panics on an odd count, which is a
// programming error at the call site.
func New(keyValues ...string) *Task {
	if len(keyValues)%2 != 0 {
		panic("task.New: odd number of arguments; want key, value, key, value...")
	}
	t := &Task{Pairs: make([]Pair, 0, len(keyValues)/2)}
	for i := 0; i < len(keyValues); i += 2 {
		t.Add(keyValues[i], []byte(keyValues[i+1]))
	}
	return t
}

// Add appends a pair, keeping any earlier pair with the same key.
func (t *Task) Add(key string, value []byte) {
	t.Pairs = append(t.Pairs, Pair{Key: []byte(key), Value: value})
}

// Set replaces every pair with this key by one pair at the position of the
// first, or appends it when the key is absent.
func (t *Task) Set(key string, value []byte) {
	out := t.Pairs[:0]
	done := false
	for _, p := range t.Pairs {
		if string(p.Key) == key {
			if done {
				continue
			}
			p.Value = value
			done = true
		}
		out = append(out, p)
	}
	t.Pairs = out
	if !done {
		t.Add(key, value)
	}
}

// Get returns the value of the last pair with this key, the one that wins in
// the dict uWSGI builds, and whether there was one.
func (t *Task) Get(key string) ([]byte, bool) {
	for i := len(t.Pairs) - 1; i >= 0; i-- {
		if string(t.Pairs[i].Key) == key {
			return t.Pairs[i].Value, true
		}
	}
	return nil, false
}

// Delete removes every pair with this key.
func (t *Task) Delete(key string) {
	out := t.Pairs[:0]
	for _, p := range t.Pairs {
		if string(p.Key) != key {
			out = append(out, p)
		}
	}
	t.Pairs = out
}

// Spooler returns the target spool directory named by the `spooler` key.
func (t *Task) Spooler() (string, bool) {
	v, ok := t.Get(KeySpooler)
	return string(v), ok
}

// ErrBadPriority is wrapped by [Task.Priority] for a priority that is not a
// decimal number.
var ErrBadPriority = errors.New("priority must be a decimal number (it names a sub-directory)")

// ErrBadAt is wrapped by [Task.At] for an `at` that is not a unix time.
var ErrBadAt = errors.New("at must be a unix time in seconds, such as 1700000000 or 1700000000.5")

// Priority returns the `priority` key. uWSGI uses the value as a directory
// name without checking it, so "../x" escapes the spool directory; gospool
// accepts only digits and returns an error wrapping [ErrBadPriority] otherwise.
func (t *Task) Priority() (string, bool, error) {
	v, ok := t.Get(KeyPriority)
	if !ok {
		return "", false, nil
	}
	if len(v) == 0 || len(v) > 19 {
		return "", true, fmt.Errorf("task: priority %q: %w", v, ErrBadPriority)
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return "", true, fmt.Errorf("task: priority %q: %w", v, ErrBadPriority)
		}
	}
	return string(v), true, nil
}

// At returns the `at` key as a time. uWSGI uses the digits before the first
// dot, so "1700000000.5" works; gospool keeps the fraction. An empty or
// non-numeric value is an error wrapping [ErrBadAt], never a silent zero.
// A value of 0 means "no time set", as in uWSGI.
func (t *Task) At() (time.Time, bool, error) {
	v, ok := t.Get(KeyAt)
	if !ok {
		return time.Time{}, false, nil
	}
	at, err := ParseAt(v)
	if err != nil {
		return time.Time{}, true, err
	}
	if at.IsZero() {
		return time.Time{}, false, nil
	}
	return at, true, nil
}

// ParseAt parses a unix time written as uWSGI accepts it: decimal seconds,
// optionally followed by a dot and a fraction. Zero gives the zero Time.
func ParseAt(v []byte) (time.Time, error) {
	s := string(v)
	intPart, frac, hasDot := bytes.Cut(v, []byte("."))
	if len(intPart) == 0 || !allDigits(intPart) || (hasDot && (len(frac) == 0 || !allDigits(frac))) {
		return time.Time{}, fmt.Errorf("task: at %q: %w", s, ErrBadAt)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f > math.MaxInt64/1e9 {
		return time.Time{}, fmt.Errorf("task: at %q: %w", s, ErrBadAt)
	}
	sec, err := strconv.ParseInt(string(intPart), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("task: at %q: %w", s, ErrBadAt)
	}
	if sec == 0 && (!hasDot || f == 0) {
		return time.Time{}, nil
	}
	var nsec int64
	if hasDot {
		digits := string(frac)
		if len(digits) > 9 {
			digits = digits[:9]
		}
		for len(digits) < 9 {
			digits += "0"
		}
		nsec, _ = strconv.ParseInt(digits, 10, 64)
	}
	return time.Unix(sec, nsec), nil
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Validate checks the special keys: a bad `priority` or `at` is an error. It
// is what every writer calls before a task leaves the caller.
func (t *Task) Validate() error {
	for _, p := range t.Pairs {
		if len(p.Key) == 0 {
			return errors.New("task: a key is empty; uWSGI cannot read an empty key")
		}
	}
	if _, _, err := t.Priority(); err != nil {
		return err
	}
	if _, _, err := t.At(); err != nil {
		return err
	}
	return nil
}

// Clone returns a deep copy that shares no memory with t.
func (t *Task) Clone() *Task {
	c := &Task{Pairs: make([]Pair, len(t.Pairs))}
	for i, p := range t.Pairs {
		c.Pairs[i] = Pair{Key: bytes.Clone(p.Key), Value: bytes.Clone(p.Value)}
		if c.Pairs[i].Value == nil {
			c.Pairs[i].Value = []byte{}
		}
	}
	if t.Body != nil {
		c.Body = bytes.Clone(t.Body)
	}
	return c
}

// String renders the task for logs: keys and short values, body length.
func (t *Task) String() string {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range t.Pairs {
		if i > 0 {
			b.WriteString(", ")
		}
		v := p.Value
		cut := len(v) > 40
		if cut {
			v = v[:40]
		}
		fmt.Fprintf(&b, "%q: %q", p.Key, v)
		if cut {
			b.WriteString("...")
		}
	}
	if t.Body != nil {
		fmt.Fprintf(&b, ", body: %d bytes", len(t.Body))
	}
	b.WriteByte('}')
	return b.String()
}

// Keys that name a task's function: uwsgidecorators writes ud_spool_func;
// Go producers usually write task.
const (
	KeyFunc = "ud_spool_func"
	KeyTask = "task"
)

// Name is the name handlers are chosen by: the `ud_spool_func` key that
// uwsgidecorators writes when present, else the `task` key, else "".
func (t *Task) Name() string { return string(t.NameBytes()) }

// NameBytes is [Task.Name] without the copy: the value in the task, not to
// be modified (a map lookup with string(t.NameBytes()) allocates nothing).
func (t *Task) NameBytes() []byte {
	if v, ok := t.Get(KeyFunc); ok {
		return v
	}
	v, _ := t.Get(KeyTask)
	return v
}
