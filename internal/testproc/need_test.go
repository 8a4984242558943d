package testproc

import (
	"fmt"
	"strings"
	"testing"
)

// outcome stands in for a test's testing.TB to see whether Missing skipped
// or failed it. Skip and Fatal only record: the real ones stop the test's
// goroutine, which would stop this test too.
type outcome struct {
	testing.TB
	skipped, failed string
}

func (o *outcome) Helper()           {}
func (o *outcome) Skip(args ...any)  { o.skipped = fmt.Sprint(args...) }
func (o *outcome) Fatal(args ...any) { o.failed = fmt.Sprint(args...) }

func TestMissingSkipsOutsideCIAndFailsUnderCI(t *testing.T) {
	for _, ci := range []string{"", "false", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			o := &outcome{TB: t}
			if path := NeedProgram(o, "gospool-no-such-program", "gospool-test-package"); path != "" {
				t.Fatalf("found %s", path)
			}
			got := o.skipped
			if ci == "true" {
				got = o.failed
				if o.skipped != "" {
					t.Errorf("skipped under CI=true: %s", o.skipped)
				}
			} else if o.failed != "" {
				t.Errorf("failed outside CI: %s", o.failed)
			}
			for _, want := range []string{"gospool-no-such-program is not installed", "apt-get install gospool-test-package", InstallAll} {
				if !strings.Contains(got, want) {
					t.Errorf("message %q lacks %q", got, want)
				}
			}
		})
	}
}

func TestNeedFindsInstalledProgram(t *testing.T) {
	o := &outcome{TB: t}
	if path := NeedProgram(o, "sh", "dash"); path == "" || o.skipped != "" || o.failed != "" {
		t.Fatalf("sh: path %q, skipped %q, failed %q", path, o.skipped, o.failed)
	}
}
