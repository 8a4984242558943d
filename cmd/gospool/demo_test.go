package main

import (
	"strings"
	"testing"
)

// The quick start's first command runs all its tasks and exits 0.
func TestDemo(t *testing.T) {
	t.Parallel()
	r := gospool(t, "demo").mustSucceed(t, "demo")
	for _, want := range []string{
		"into the ring",
		`its "at" is 2 seconds ahead, so it waits in a file`,
		"so it is spilled",
		"ran send-email to alice@example.com (from a spool file, attempt 2): sent",
		"ran reminder stand up and stretch with the default handler (from a spool file)",
		"all 10 tasks ran.",
		"  done       10\n",
		"  spilled    1\n",
		"  retried    1\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output does not say %q:\n%s", want, r.stdout)
		}
	}
	if strings.Count(r.stdout, "  ran resize: ") != 6 {
		t.Errorf("demo did not run 6 resizes:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "kept the spool directory") {
		t.Error("demo kept its directory without --keep")
	}
}
