package python

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospool/gospool/internal/testproc"
)

// freshPackageDir runs PackageDir as a new process would: without the
// directory this one extracted to before.
func freshPackageDir(t *testing.T) (string, error) {
	t.Helper()
	extractMu.Lock()
	saved := extractDir
	extractDir = ""
	extractMu.Unlock()
	t.Cleanup(func() {
		extractMu.Lock()
		extractDir = saved
		extractMu.Unlock()
	})
	return PackageDir()
}

// The package goes to $XDG_CACHE_HOME/gospool, else $HOME/.cache/gospool,
// and, when the home cannot be written, to $TMPDIR/gospool-UID, silently;
// python3 imports it from wherever it went. Not parallel: it sets the
// environment.
func TestPackageDirPlaces(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(tmp, "home")
	xdg := filepath.Join(tmp, "xdg")
	tmpdir := filepath.Join(tmp, "tmp")
	for _, d := range []string{home, tmpdir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	temp := filepath.Join(tmpdir, fmt.Sprintf("gospool-%d", os.Getuid()))
	cases := []struct {
		name            string
		xdg, home, tdir string
		want            string // the parent of python-HASH
	}{
		{"XDG_CACHE_HOME", xdg, home, tmpdir, filepath.Join(xdg, "gospool")},
		{"HOME", "", home, tmpdir, filepath.Join(home, ".cache", "gospool")},
		{"relative XDG_CACHE_HOME is ignored", "cache", home, tmpdir, filepath.Join(home, ".cache", "gospool")},
		// Tests run as root, which permissions do not stop: a path under a
		// regular file cannot be made by anyone (ENOTDIR).
		{"HOME not writable", "", filepath.Join(file, "home"), tmpdir, temp},
		{"XDG_CACHE_HOME not writable", filepath.Join(file, "cache"), home, tmpdir, temp},
		{"no HOME", "", "", tmpdir, temp},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", c.xdg)
			t.Setenv("HOME", c.home)
			t.Setenv("TMPDIR", c.tdir)
			dir, err := freshPackageDir(t)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(dir) != c.want || !strings.HasPrefix(filepath.Base(dir), "python-") {
				t.Fatalf("PackageDir = %s, want %s/python-HASH", dir, c.want)
			}
			if !sameContent(dir) {
				t.Errorf("%s does not hold the package", dir)
			}
			if fi, err := os.Stat(c.want); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v, mode %v; want 0700", c.want, err, fi.Mode().Perm())
			}
			py := exec.Command(testproc.NeedPython3(t), "-c", "import gospool.runner, gospool.compat; print(gospool.__file__)")
			py.Env = append(os.Environ(), "PYTHONPATH="+dir)
			py.Dir = t.TempDir() // not python/, which holds the package too
			out, err := py.CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), dir+"/gospool/") {
				t.Errorf("python3 imports gospool from %s: %v %s", dir, err, out)
			}
		})
	}

	// Nowhere to go: one error naming each place tried.
	t.Setenv("XDG_CACHE_HOME", filepath.Join(file, "cache"))
	t.Setenv("TMPDIR", filepath.Join(file, "tmp"))
	_, err := freshPackageDir(t)
	if err == nil || !strings.Contains(err.Error(), "in "+filepath.Join(file, "cache", "gospool")+": ") ||
		!strings.Contains(err.Error(), "in "+filepath.Join(file, "tmp", fmt.Sprintf("gospool-%d", os.Getuid()))+": ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("PackageDir with nowhere to write: %v, want one line naming both places", err)
	}
}
