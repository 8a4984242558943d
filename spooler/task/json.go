package task

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Document is the JSON form of a task that `gospool inspect --json` prints
// and that `--spooler-exec` commands read on stdin:
//
//	{"path": P, "vars": [[K, V], ...], "body_len": N, "body_sha256": H}
//
// K and V are JSON strings when the bytes are valid UTF-8, else
// {"base64": "..."}; pairs stay in order, duplicates kept. BodyBase64 is
// added only for exec commands, and only when the task has a body.
type Document struct {
	Path       string    `json:"path"`
	Vars       [][2]Blob `json:"vars"`
	BodyLen    int       `json:"body_len"`
	BodySHA256 string    `json:"body_sha256"`
	BodyBase64 *string   `json:"body_base64,omitempty"`
}

// Blob is a byte string in a Document: a JSON string when it is valid
// UTF-8, {"base64": "..."} otherwise.
type Blob []byte

// MarshalJSON writes the string or base64 form.
func (b Blob) MarshalJSON() ([]byte, error) {
	if utf8.Valid(b) {
		return json.Marshal(string(b))
	}
	return json.Marshal(map[string]string{"base64": base64.StdEncoding.EncodeToString(b)})
}

// UnmarshalJSON reads either form.
func (b *Blob) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*b = Blob(s)
		return nil
	}
	var obj struct {
		Base64 *string `json:"base64"`
	}
	if err := json.Unmarshal(data, &obj); err != nil || obj.Base64 == nil {
		return fmt.Errorf("task: a value must be a JSON string or {\"base64\": ...}, got %s", data)
	}
	raw, err := base64.StdEncoding.DecodeString(*obj.Base64)
	if err != nil {
		return fmt.Errorf("task: bad base64 value: %w", err)
	}
	*b = raw
	return nil
}

// NewDocument describes t found at path. withBody adds body_base64 when the
// task has a body. The SHA-256 of an absent body is that of zero bytes.
func NewDocument(path string, t *Task, withBody bool) Document {
	sum := sha256.Sum256(t.Body)
	d := Document{Path: path, Vars: make([][2]Blob, len(t.Pairs)), BodyLen: len(t.Body), BodySHA256: hex.EncodeToString(sum[:])}
	for i, p := range t.Pairs {
		d.Vars[i] = [2]Blob{Blob(p.Key), Blob(p.Value)}
	}
	if withBody && len(t.Body) > 0 {
		s := base64.StdEncoding.EncodeToString(t.Body)
		d.BodyBase64 = &s
	}
	return d
}

// Task rebuilds the task a Document describes (the body only when
// body_base64 is present).
func (d Document) Task() (*Task, error) {
	t := &Task{Pairs: make([]Pair, len(d.Vars))}
	for i, kv := range d.Vars {
		t.Pairs[i] = Pair{Key: kv[0], Value: kv[1]}
	}
	if d.BodyBase64 != nil {
		b, err := base64.StdEncoding.DecodeString(*d.BodyBase64)
		if err != nil {
			return nil, fmt.Errorf("task: body_base64: %w", err)
		}
		t.Body = b
	}
	return t, nil
}
