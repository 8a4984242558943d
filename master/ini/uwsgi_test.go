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

	"github.com/gospool/gospool/internal/testproc"
)

// TestAgainstUWSGI loads one configuration with Load and with the real
// uwsgi, and compares the options uwsgi prints with --show-config: magic
// variables, $(ENV), placeholders, set and set-ph, ini = (relative to the
// working directory, with %d, and :section), include and inherit. uwsgi is
// stopped right after the dump by a --chdir that fails.
func TestAgainstUWSGI(t *testing.T) {
	bin := testproc.NeedUWSGI(t)
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

	have, want := loadedOptions(got), uwsgiOptions(t, bin, dir, "conf/app.ini")
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

// TestReferencesAgainstUWSGI pins how uWSGI scans a value for $(NAME) and
// %(name) references, corner by corner: a reference whose key holds
// another (composed names), a bare $ or % inside a key, doubled symbols,
// parentheses inside a key, empty, unknown and unterminated references,
// and where the scan starts again after a substitution. Each option is
// compared with the real uwsgi, and the spot checks below say what uWSGI
// made of it, so that the rules in expand.go stay tied to observed facts.
func TestReferencesAgainstUWSGI(t *testing.T) {
	bin := testproc.NeedUWSGI(t)
	dir := t.TempDir()
	// Magic variables are expanded over the raw file before any reference
	// is scanned: "%%%%(" reaches the placeholder pass as "%%(", and a
	// lone "%" has to be written "%%".
	writeFiles(t, dir, map[string]string{"app.ini": `[uwsgi]
pa = PA
which = a
n(1) = N1
compose = z$(GOSPOOL_X_$(GOSPOOL_X_NAME))
compose-at-start = $(GOSPOOL_X_$(GOSPOOL_X_NAME))
compose-unknown-outer = z$(GOSPOOL_X_$(GOSPOOL_X_OTHER))
compose-unknown-inner = z$(GOSPOOL_X_$(GOSPOOL_X_UNSET))
bare-sym = z$(GOSPOOL_X_$GOSPOOL_X_NAME)
bare-sym-then-ref = z$(GOSPOOL_X_$GOSPOOL_X_NAME$(GOSPOOL_X_A))
double-sym = x$$(GOSPOOL_X_A)
double-sym-at-start = $$(GOSPOOL_X_A)
parens = <$(GOSPOOL_X_(P))>
parens-deep = <$(GOSPOOL_X_((P)()))>
parens-unbalanced = <$(GOSPOOL_X_(P)>
empty = a$()b$($(GOSPOOL_X_A))c
unterminated = a$(GOSPOOL_X_A
unterminated-after = $(GOSPOOL_X_A)$(
stray = )$(GOSPOOL_X_A))(
unknown-then-known = $(GOSPOOL_X_UNSET)$(GOSPOOL_X_A)
twice = $(GOSPOOL_X_A)$(GOSPOOL_X_A)
made-ref = x$(GOSPOOL_X_DOLLAR)(GOSPOOL_X_A)
made-ref-at-start = $(GOSPOOL_X_DOLLAR)(GOSPOOL_X_A)
made-ref-after-start = $(GOSPOOL_X_REC)$(GOSPOOL_X_A)
made-compose = $(GOSPOOL_X_A)$(GOSPOOL_X_$(GOSPOOL_X_NAME))
emptied-at-start = $(GOSPOOL_X_EMPTY)$(GOSPOOL_X_A)
emptied = x$(GOSPOOL_X_EMPTY)$(GOSPOOL_X_A)
env-then-ph = $(GOSPOOL_X_%(which))
ph-in-env-key = %(p$(GOSPOOL_X_LOWER))
ph-compose = z%(p%(which))
ph-compose-at-start = %(p%(which))
ph-bare-sym = z%(p%%which)
ph-double-sym = x%%%%(pa)
ph-parens = <%(n(1))>
ph-empty = a%()b
ph-unterminated = %(pa
ph-unknown-then-known = %(nope)%(pa)
`})
	t.Chdir(dir)
	for k, v := range map[string]string{
		"GOSPOOL_X_A":       "va",
		"GOSPOOL_X_EMPTY":   "",
		"GOSPOOL_X_NAME":    "A",
		"GOSPOOL_X_OTHER":   "B",
		"GOSPOOL_X_LOWER":   "a",
		"GOSPOOL_X_(P)":     "paren",
		"GOSPOOL_X_((P)())": "deep",
		"GOSPOOL_X_DOLLAR":  "$",
		"GOSPOOL_X_REC":     "$(GOSPOOL_X_A)",
	} {
		t.Setenv(k, v)
	}
	for _, k := range []string{"GOSPOOL_X_UNSET", "GOSPOOL_X_B"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}

	got, err := Load("app.ini")
	if err != nil {
		t.Fatal(err)
	}
	have, want := loadedOptions(got), uwsgiOptions(t, bin, dir, "app.ini")
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Errorf("Load and uwsgi --show-config differ:\nLoad:\n%s\n\nuwsgi:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range []string{
		// A sym( inside a key abandons it: the inner reference is replaced,
		// then the scan starts again and finds the outer one whole.
		"compose = zva",
		// ... but the scan starts again from the second byte, so an outer
		// reference at the very start is not seen again.
		"compose-at-start = $(GOSPOOL_X_A)",
		"compose-unknown-outer = z$(GOSPOOL_X_B)",
		"compose-unknown-inner = z$(GOSPOOL_X_$(GOSPOOL_X_UNSET))",
		// A sym not followed by '(' abandons the key too, and starts nothing.
		"bare-sym = z$(GOSPOOL_X_$GOSPOOL_X_NAME)",
		"bare-sym-then-ref = z$(GOSPOOL_X_$GOSPOOL_X_NAMEva)",
		"double-sym = x$va",
		"double-sym-at-start = $va",
		// Parentheses inside a key pair up and belong to it.
		"parens = <paren>",
		"parens-deep = <deep>",
		"parens-unbalanced = <$(GOSPOOL_X_(P)>",
		// An empty reference is not one; its ')' ends nothing else.
		"empty = a$()b$(va)c",
		"unterminated = a$(GOSPOOL_X_A",
		"unterminated-after = va$(",
		"stray = )va)(",
		"unknown-then-known = $(GOSPOOL_X_UNSET)va",
		"twice = vava",
		// A substituted value is scanned again, with what is around it.
		"made-ref = xva",
		"made-ref-at-start = $(GOSPOOL_X_A)",
		"made-ref-after-start = $(GOSPOOL_X_A)va",
		"made-compose = vava",
		// Even when the substituted value is empty: what follows it moved
		// to the first byte, and the scan starts after that.
		"emptied-at-start = $(GOSPOOL_X_A)",
		"emptied = xva",
		// $(...) is done over every value before %(...).
		"env-then-ph = $(GOSPOOL_X_a)",
		"ph-in-env-key = PA",
		"ph-compose = zPA",
		"ph-compose-at-start = %(pa)",
		"ph-bare-sym = z%(p%which)",
		"ph-double-sym = x%PA",
		"ph-parens = <N1>",
		"ph-empty = a%()b",
		"ph-unterminated = %(pa",
		"ph-unknown-then-known = %(nope)PA",
	} {
		if !strings.Contains(strings.Join(have, "\n")+"\n", w+"\n") {
			t.Errorf("Load's options lack %q", w)
		}
	}
}

// loadedOptions formats Load's options as uwsgi --show-config prints them.
func loadedOptions(opts []Option) []string {
	var lines []string
	for _, o := range opts {
		lines = append(lines, o.Key+" = "+o.Value)
	}
	return lines
}

// uwsgiOptions runs the real uwsgi on the ini file at path (relative to
// dir, which is also its working directory) and returns the options of its
// --show-config dump, without the ones Load keeps to itself. uwsgi is
// stopped right after the dump by a --chdir that fails.
func uwsgiOptions(t *testing.T, bin, dir, path string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--ini", path, "--show-config", "--chdir", filepath.Join(dir, "no-such-dir"))
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
	var lines []string
	for _, line := range strings.Split(strings.TrimSuffix(dump, "\n"), "\n") {
		k, v, _ := strings.Cut(line, " = ")
		if !skip[k] {
			lines = append(lines, k+" = "+v)
		}
	}
	return lines
}

// TestNeighbours: no real uWSGI option is taken for a typo of one of
// ours, and uwsgiNeighbours names only real options. The options are those
// uwsgi --help lists, with the python3 plugin's when it loads.
func TestNeighbours(t *testing.T) {
	bin := testproc.NeedUWSGI(t)
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
