package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

const versionHelp = `Print gospool's version as one line: the module version the binary was
built from (go install github.com/gospool/gospool/cmd/gospool@v1.2.3 gives
v1.2.3; a build in a git checkout gives a pseudo-version such as
v0.0.0-20261128052554-8b05511528db, "+dirty" when there were uncommitted
changes), or, when Go recorded none, "(devel)" and the git revision, then
the Go version it was built with. "gospool --version" is the same.`

func cmdVersion(_ context.Context, a *app, args []string) error {
	flags := newFlagSet("version", "gospool version", versionHelp)
	pos, err := flags.parse(a, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q: version takes no arguments", pos[0])
	}
	info, _ := debug.ReadBuildInfo() // nil in a binary built without module support
	_, err = fmt.Fprintln(a.stdout, versionLine(info))
	return err
}

// versionLine says which gospool this is, from the build information Go
// records in the binary: the main module's version when there is one, else
// the version control revision of the source ("(devel)" is what Go records
// for a build of a working tree when it could not work out a version, for
// instance under -buildvcs=false or outside a git checkout).
func versionLine(info *debug.BuildInfo) string {
	goVersion := runtime.Version()
	if info == nil {
		return "gospool (devel) " + goVersion + ": built without module information"
	}
	if info.GoVersion != "" {
		goVersion = info.GoVersion
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return "gospool " + v + " " + goVersion
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision == "" {
		return "gospool (devel) " + goVersion + ": no version recorded (built outside a git checkout, or with -buildvcs=false)"
	}
	if len(revision) > 12 {
		revision = revision[:12] // as in Go's pseudo-versions: enough to be unique
	}
	line := "gospool (devel) revision " + revision
	if modified == "true" {
		line += " with uncommitted changes"
	}
	return line + " " + goVersion
}
