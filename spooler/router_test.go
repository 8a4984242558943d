package spooler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRouterFollowsTheSpoolerKey(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(b, link); err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter([]string{a, b}, ClientOptions{NoRing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	realA, _ := filepath.EvalSymlinks(a)
	realB, _ := filepath.EvalSymlinks(b)
	for _, tc := range []struct {
		task *Task
		dir  string
	}{
		{NewTask("id", "default"), realA},
		{NewTask("id", "b", "spooler", realB), realB},
		{NewTask("id", "via link", "spooler", link), realB},
	} {
		path, err := r.Spool(ctx, tc.task)
		if err != nil || filepath.Dir(path) != tc.dir {
			t.Errorf("%v went to %s (%v), want %s", tc.task, path, err, tc.dir)
		}
	}
	_, err = r.Spool(ctx, NewTask("spooler", "/nowhere"))
	if !errors.Is(err, ErrUnknownSpooler) || !strings.Contains(err.Error(), realA) {
		t.Fatalf("unknown target: %v", err)
	}
}
