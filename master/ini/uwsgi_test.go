package ini

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAgainstUWSGI loads one configuration with Load and with the real
// uwsgi, and compares the options uwsgi prints with --show-config: magic
// variables, $(ENV), placeholders, set and set-ph, ini = (relative to the
// working directory, with %d, and :section), include and inherit. uwsgi is
// stopped right after the dump by a --chdir that fails.
func TestAgainstUWSGI(t *testing.T) {
	bin, err := exec.LookPath("uwsgi")
	if err != nil {
		t.Skip("uwsgi is not installed")
	}
	dir := t.TempDir()
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	writeFiles(t, dir, map[string]string{
		"conf/app.ini": `[uwsgi]
spooler = %dspool-a
spooler-processes = 2
Spooler_Processes = 5
spooler-frequency = 7
master
base = %d
name = %n
env = FROM_ENV=$(GOSPOOL_INI_TEST)
env = UNSET=$(GOSPOOL_INI_UNSET)
env = NESTED=x$(GOSPOOL_INI_REC)
env = NOT_NESTED=$(GOSPOOL_INI_REC)
rec0 = $(GOSPOOL_INI_REC)
odd = $()$(
key$(GOSPOOL_INI_TEST) = k
spooler-processes = $(GOSPOOL_INI_TEST)
fwd = %(later)|%(base)
later = L
base = second
quoted = "a b" ; not a comment
magic = %p|%s|%n|%e|%c|%o|%x|%0|%%|%q|%X|%(
joined = 100%
continued = yes
placeholder = %(base)spool-%(name)/%(nope)
set-ph = ph=$(GOSPOOL_INI_TEST)
set = spooler-harakiri=%(ph)
seeph = %(ph)|%%(name)
ini = %dinc.ini
ini = :alt
ini = conf/rel.ini
include = %dinc2.ini
inherit = %dtmpl.ini
spooler = %dspool-b
[alt]
from-alt = app
`,
		"conf/inc.ini": `[uwsgi]
spooler = %dspool-inc
from-inc = %P %p %o %x %X
[alt]
from-alt = inc %p %o %x
`,
		"conf/rel.ini":  "[uwsgi]\nfrom-rel = %o\n",
		"conf/inc2.ini": "[uwsgi]\nfrom-inc2 = %s\n",
		"conf/tmpl.ini": "[uwsgi]\ntmpl = %(base) $(GOSPOOL_INI_TEST) %d\n",
	})
	t.Chdir(dir)
	t.Setenv("GOSPOOL_INI_TEST", "from-env")
	t.Setenv("GOSPOOL_INI_REC", "$(GOSPOOL_INI_TEST)")

	got, err := Load("conf/app.ini")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--ini", "conf/app.ini", "--show-config", "--chdir", filepath.Join(dir, "no-such-dir"))
	cmd.Dir = dir
	cmd.Env = os.Environ()
	out, _ := cmd.CombinedOutput() // it exits with status 1 at the --chdir
	_, dump, ok := strings.Cut(string(out), ";uWSGI instance configuration\n[uwsgi]\n")
	dump, _, ok2 := strings.Cut(dump, ";end of configuration\n")
	if !ok || !ok2 {
		t.Fatalf("no configuration dump in the output of uwsgi:\n%s", out)
	}
	// Load keeps the loading directives and placeholders to itself, and the
	// command line adds show-config and chdir.
	skip := map[string]bool{"ini": true, "include": true, "inherit": true, "set": true, "set-ph": true, "ph": true, "show-config": true, "chdir": true}
	var want []string
	for _, line := range strings.Split(strings.TrimSuffix(dump, "\n"), "\n") {
		k, v, _ := strings.Cut(line, " = ")
		if !skip[k] {
			want = append(want, k+" = "+v)
		}
	}
	var have []string
	for _, o := range got {
		have = append(have, o.Key+" = "+o.Value)
	}
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Errorf("Load and uwsgi --show-config differ:\nLoad:\n%s\n\nuwsgi:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
	// Spot checks, so that a change on both sides cannot pass unnoticed.
	for _, w := range []string{
		"env = FROM_ENV=from-env",
		"env = UNSET=$(GOSPOOL_INI_UNSET)",
		"rec0 = $(GOSPOOL_INI_TEST)", // a replaced value is rescanned from its second byte
		"fwd = L|" + dir + "/conf/",
		"spooler-processes = $(GOSPOOL_INI_TEST)", // uWSGI applies it while parsing
		"spooler = " + dir + "/conf/spool-a",
		"from-inc = " + dir + "/conf/app.ini " + dir + "/conf/inc.ini " + dir + "/conf/inc.ini",
		"from-rel = conf/rel.ini",
		"from-alt = inc " + dir + "/conf/inc.ini  alt",
		"tmpl = %(base) $(GOSPOOL_INI_TEST) " + dir + "/conf/",
	} {
		if !strings.Contains(strings.Join(have, "\n")+"\n", w+"\n") {
			t.Errorf("Load's options lack %q", w)
		}
	}
}

// TestNeighbours: no real uWSGI option is taken for a typo of one of
// ours, and uwsgiNeighbours names only real options. The options are those
// uwsgi --help lists, with the python3 plugin's when it loads.
func TestNeighbours(t *testing.T) {
	bin, err := exec.LookPath("uwsgi")
	if err != nil {
		t.Skip("uwsgi is not installed")
	}
	real := map[string]bool{}
	for _, args := range [][]string{{"--help"}, {"--plugin", "python3", "--help"}} {
		out, _ := exec.Command(bin, args...).Output() // --help exits 1 on some builds
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], "-") {
				continue
			}
			// "-s|--socket" or "--spooler-import"
			for _, name := range strings.Split(f[0], "|") {
				if strings.HasPrefix(name, "--") {
					real[strings.TrimPrefix(name, "--")] = true
				}
			}
		}
	}
	if !real["spooler-processes"] || !real["socket"] {
		t.Fatalf("uwsgi --help lists %d options, not spooler-processes and socket; its format changed?", len(real))
	}
	for opt := range real {
		if near := closest(opt); len(near) > 0 && !slices.Contains(near, opt) {
			t.Errorf("the uWSGI option %q would be taken for a typo of %v: add it to uwsgiNeighbours", opt, near)
		}
	}
	for opt := range uwsgiNeighbours {
		if !real[opt] {
			t.Errorf("uwsgiNeighbours lists %q, which uwsgi --help does not", opt)
		}
	}
}
