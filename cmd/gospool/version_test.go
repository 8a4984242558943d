package main

import (
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// The line says the module version when Go recorded one, else the git
// revision and whether the tree had changes, else that nothing was recorded.
func TestVersionLine(t *testing.T) {
	t.Parallel()
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "8b05511528dbded9cdb64d4905c8ab9da9bd4616"
	for _, c := range []struct {
		info *debug.BuildInfo
		want string
	}{
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, "gospool v1.2.3 go1.26.8"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261128052554-8b05511528db+dirty"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "true")},
			"gospool v0.0.0-20261128052554-8b05511528db+dirty go1.26.8"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs", "git", "vcs.revision", rev, "vcs.modified", "false")},
			"gospool (devel) revision 8b05511528db go1.26.8"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "true")},
			"gospool (devel) revision 8b05511528db with uncommitted changes go1.26.8"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"gospool (devel) go1.26.8: no version recorded (built outside a git checkout, or with -buildvcs=false)"},
		{nil, "gospool (devel) " + runtime.Version() + ": built without module information"},
	} {
		if got := versionLine(c.info); got != c.want {
			t.Errorf("versionLine(%+v)\n got %q\nwant %q", c.info, got, c.want)
		}
	}
}

// `gospool version` and `gospool --version` print the same line, which
// agrees with what `go version -m` reads from the binary.
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	r := gospool(t, "version").mustSucceed(t, "version")
	if r.stderr != "" || strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(r.stdout, "gospool ") {
		t.Fatalf("gospool version: stdout %q, stderr %q; want one line", r.stdout, r.stderr)
	}
	for _, flag := range []string{"--version", "-version"} {
		if again := gospool(t, flag).mustSucceed(t, flag); again.stdout != r.stdout {
			t.Errorf("gospool %s printed %q, gospool version %q", flag, again.stdout, r.stdout)
		}
	}
	if u := gospool(t, "version", "extra"); u.code != 2 || !strings.Contains(u.stderr, `unexpected argument "extra"`) {
		t.Errorf("gospool version extra: exit %d, stderr %q", u.code, u.stderr)
	}

	goTool := "go"
	if _, err := exec.LookPath(goTool); err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	out, err := exec.Command(goTool, "version", "-m", gospoolBin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	var modVersion, revision string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/gospool/gospool":
			modVersion = f[2]
		case len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
			revision = strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	switch {
	case modVersion == "":
		t.Fatalf("go version -m shows no main module:\n%s", out)
	case modVersion != "(devel)":
		if !strings.HasPrefix(r.stdout, "gospool "+modVersion+" ") {
			t.Errorf("gospool version printed %q, go version -m says %s", r.stdout, modVersion)
		}
	case revision != "":
		if !strings.Contains(r.stdout, "revision "+revision[:12]) {
			t.Errorf("gospool version printed %q, go version -m says revision %s", r.stdout, revision)
		}
	default:
		if !strings.Contains(r.stdout, "no version recorded") {
			t.Errorf("gospool version printed %q for a binary without version information", r.stdout)
		}
	}
	t.Logf("%s(go version -m: %s %s)", r.stdout, modVersion, revision)
}
