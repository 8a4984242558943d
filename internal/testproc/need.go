package testproc

import (
	"os"
	"os/exec"
	"testing"
)

// InstallAll is the one command that installs every program and module the
// tests need beyond Go (Debian package names). The README and .ci/run give
// the same line.
const InstallAll = "apt-get install uwsgi-core uwsgi-plugin-python3 python3-uwsgidecorators curl"

// uwsgiPython3Plugin is where Debian's uwsgi-plugin-python3 puts the plugin
// that `--plugin python3` loads.
const uwsgiPython3Plugin = "/usr/lib/uwsgi/plugins/python3_plugin.so"

// uwsgiDecorators is where Debian's python3-uwsgidecorators puts the module
// that the Python plugin imports for `from uwsgidecorators import spool`.
// It cannot be found by importing it: it imports the uwsgi module, which
// exists only inside uWSGI.
const uwsgiDecorators = "/usr/lib/python3/dist-packages/uwsgidecorators.py"

// InCI reports whether the tests run under CI (CI=true), where a missing
// dependency is a failure: .ci/run installs everything, so a test that would
// skip there means an install step is missing.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing reports that the test cannot run because what is not installed.
// Outside CI the test is skipped with a message naming the package to
// install; under CI=true it fails, so a missing install step never passes
// silently.
func Missing(tb testing.TB, what, pkg string) {
	tb.Helper()
	msg := what + " is not installed (apt-get install " + pkg + "; every test dependency: " + InstallAll + ")"
	if InCI() {
		tb.Fatal(msg + "; CI=true: .ci/run must install it")
		return
	}
	tb.Skip(msg)
}

// NeedProgram returns the path of the program name on PATH, or reports it
// missing (see [Missing]) with pkg as the package that provides it.
func NeedProgram(tb testing.TB, name, pkg string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, name, pkg)
	}
	return path
}

// NeedPython3 returns the path of python3, or reports it missing.
func NeedPython3(tb testing.TB) string {
	tb.Helper()
	return NeedProgram(tb, "python3", "python3")
}

// NeedUWSGI returns the path of uwsgi after checking that its Python 3
// plugin is installed too, or reports what is missing.
func NeedUWSGI(tb testing.TB) string {
	tb.Helper()
	path := NeedProgram(tb, "uwsgi", "uwsgi-core uwsgi-plugin-python3")
	if _, err := os.Stat(uwsgiPython3Plugin); err != nil {
		Missing(tb, "uWSGI's Python 3 plugin ("+uwsgiPython3Plugin+")", "uwsgi-plugin-python3")
	}
	return path
}

// NeedUWSGIDecorators checks for uWSGI and the uwsgidecorators module its
// Python plugin imports, or reports what is missing.
func NeedUWSGIDecorators(tb testing.TB) string {
	tb.Helper()
	path := NeedUWSGI(tb)
	if _, err := os.Stat(uwsgiDecorators); err != nil {
		Missing(tb, "uWSGI's uwsgidecorators module ("+uwsgiDecorators+")", "python3-uwsgidecorators")
	}
	return path
}
