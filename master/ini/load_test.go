package ini

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles creates files (name -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// opts makes Options written compactly: "file:line key=value".
func opts(t *testing.T, specs ...string) []Option {
	t.Helper()
	var out []Option
	for _, s := range specs {
		loc, kv, ok := strings.Cut(s, " ")
		file, line, ok2 := strings.Cut(loc, ":")
		k, v, ok3 := strings.Cut(kv, "=")
		if !ok || !ok2 || !ok3 {
			t.Fatalf("bad spec %q", s)
		}
		n := 0
		for _, c := range line {
			n = n*10 + int(c-'0')
		}
		out = append(out, Option{Key: k, Value: v, File: file, Line: n})
	}
	return out
}

func TestLoad(t *testing.T) {
	type tc struct {
		name  string
		files map[string]string
		load  string
		env   map[string]string
		want  []string // "file:line key=value"; {DIR} is the temp dir
	}
	tests := []tc{{
		name: "lines",
		files: map[string]string{"app.ini": "top = ignored\n" +
			"[uwsgi]\n" +
			"; a comment\n" +
			"  # another\n" +
			"\n" +
			"\tspooler-quiet\r\n" +
			"  spooler   =   /var/spool/a  \n" +
			"spooler=/var/spool/b\n" +
			"buffer-size = \"4096\"\n" +
			"socket = 127.0.0.1:3031 ; not a comment\n" +
			"Spooler_Processes = 3\n" +
			"env = A=B=C\n" +
			"empty =\n" +
			"spaced key = v  al\n" +
			"[other]\n" +
			"spooler = /nope\n" +
			"[uwsgi]\n" +
			"spooler = /var/spool/c"},
		load: "app.ini",
		want: []string{
			"app.ini:6 spooler-quiet=",
			"app.ini:7 spooler=/var/spool/a",
			"app.ini:8 spooler=/var/spool/b",
			`app.ini:9 buffer-size="4096"`,
			"app.ini:10 socket=127.0.0.1:3031 ; not a comment",
			"app.ini:11 Spooler_Processes=3",
			"app.ini:12 env=A=B=C",
			"app.ini:13 empty=",
			"app.ini:14 spaced key=v  al",
			"app.ini:18 spooler=/var/spool/c",
		},
	}, {
		name:  "section",
		files: map[string]string{"app.ini": "[uwsgi]\na = 1\n[other]\nb = 2\n[other ]\nc = 3\n"},
		load:  "app.ini:other",
		want:  []string{"app.ini:4 b=2"},
	}, {
		name:  "empty section name after colon",
		files: map[string]string{"app.ini": "[uwsgi]\na = 1\n[other]\nb = 2\n"},
		load:  "app.ini:",
		want:  []string{"app.ini:2 a=1"},
	}, {
		name: "magic",
		files: map[string]string{"sub.d/my.app.ini": "[uwsgi]\n" +
			"a = %d|%p|%s|%n|%e|%c|%o|%x|%%|%(x)|%q|%\n" +
			"b = %1|%5\n" +
			"[%n]\n" +
			"c = %x\n"},
		load: "sub.d/my.app.ini",
		want: []string{
			"sub.d/my.app.ini:2 a={DIR}/sub.d/|{DIR}/sub.d/my.app.ini|my.app.ini|my.app|ini|sub.d|sub.d/my.app.ini||%|%(x)||b = {P1}|",
		},
	}, {
		name:  "magic section and name without extension",
		files: map[string]string{"noext": "[uwsgi]\n[my]\nc = %x %X %n[%e]\n"},
		load:  "noext:my",
		want:  []string{"noext:3 c=my my noext[]"},
	}, {
		name:  "comment may hold any magic",
		files: map[string]string{"app.ini": "[uwsgi]\n; built by %V\na = 1\n"},
		load:  "app.ini",
		want:  []string{"app.ini:3 a=1"},
	}, {
		name:  "env",
		files: map[string]string{"app.ini": "[uwsgi]\na = $(GOSPOOL_T_A)/x\nb = $(GOSPOOL_T_UNSET)\nc = [$(GOSPOOL_T_EMPTY)]\nd = x$(GOSPOOL_T_REC)\ne = $(GOSPOOL_T_REC)\nf = $()$(\ng$(GOSPOOL_T_A) = k\nspooler-processes = $(GOSPOOL_T_A)\nh = $(GOSPOOL_T_PH)\n"},
		load:  "app.ini",
		env:   map[string]string{"GOSPOOL_T_A": "va", "GOSPOOL_T_EMPTY": "", "GOSPOOL_T_REC": "$(GOSPOOL_T_A)", "GOSPOOL_T_PH": "%(a)"},
		want: []string{
			"app.ini:2 a=va/x",
			"app.ini:3 b=$(GOSPOOL_T_UNSET)",
			"app.ini:4 c=[]",
			"app.ini:5 d=xva",
			"app.ini:6 e=$(GOSPOOL_T_A)", // uWSGI rescans from the second byte
			"app.ini:7 f=$()$(",
			"app.ini:8 g$(GOSPOOL_T_A)=k",
			"app.ini:9 spooler-processes=$(GOSPOOL_T_A)", // applied at parse time by uWSGI
			"app.ini:10 h=va/x",
		},
	}, {
		name: "placeholders",
		files: map[string]string{"app.ini": "[uwsgi]\n" +
			"base = /srv\n" +
			"dir = %(base)/%(name)/%(nope)\n" +
			"base = /other\n" +
			"name = app\n" +
			"set-ph = ph=$(GOSPOOL_T_A)\n" +
			"set-placeholder = ph2=two\n" +
			"set = spooler=%(base)/s\n" +
			"x = %(ph)|%(ph2)|%(set)\n" +
			"y = %%(base)\n"},
		load: "app.ini",
		env:  map[string]string{"GOSPOOL_T_A": "va"},
		want: []string{
			"app.ini:2 base=/srv",
			"app.ini:3 dir=/srv/app/%(nope)",
			"app.ini:4 base=/other",
			"app.ini:5 name=app",
			"app.ini:8 spooler=/srv/s",
			"app.ini:9 x=$(GOSPOOL_T_A)|two|spooler=/srv/s", // set-ph values are not expanded; the rest is rescanned
			"app.ini:10 y=/srv",
		},
	}, {
		name: "includes",
		files: map[string]string{
			"conf/app.ini": "[uwsgi]\nspooler = /s1\nini = conf/b.ini\nspooler = /s2\nini = :alt\ninclude = %dc.ini\ninherit = %dt.ini\nspooler = /s3\n[alt]\nspooler = /alt-of-app\n",
			"conf/b.ini":   "[uwsgi]\nspooler = /b %P %p\nini = conf/d.ini:sec\n[alt]\nspooler = /alt-of-b\n",
			"conf/c.ini":   "[uwsgi]\nspooler = /c\n",
			"conf/d.ini":   "[sec]\nspooler = /d %x %X\n[alt]\nspooler = /alt-of-d\n",
			"conf/t.ini":   "[uwsgi]\nspooler = /t %(x)\nx = t\n",
		},
		load: "conf/app.ini",
		want: []string{
			"conf/app.ini:2 spooler=/s1",
			"conf/b.ini:2 spooler=/b {DIR}/conf/app.ini {DIR}/conf/b.ini",
			"conf/d.ini:2 spooler=/d sec",
			"conf/app.ini:4 spooler=/s2",
			"conf/d.ini:4 spooler=/alt-of-d", // ini = :alt reads the file read last
			"{DIR}/conf/c.ini:2 spooler=/c",
			"conf/app.ini:8 spooler=/s3",
			"{DIR}/conf/t.ini:2 spooler=/t %(x)",
			"{DIR}/conf/t.ini:3 x=t",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if d, err := filepath.EvalSymlinks(dir); err == nil {
				dir = d
			}
			writeFiles(t, dir, tt.files)
			t.Chdir(dir)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			// {P1} is %1: the second part of the file's directory.
			r := strings.NewReplacer("{DIR}", dir, "{P1}", strings.Split(dir, "/")[2])
			var want []Option
			for _, w := range tt.want {
				want = append(want, opts(t, r.Replace(w))...)
			}
			got, err := Load(tt.load)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load(%q):\n got %s\nwant %s", tt.load, show(got), show(want))
			}
		})
	}
}

func show(list []Option) string {
	var b strings.Builder
	for _, o := range list {
		b.WriteString("\n  " + o.File + ":" + itoa(o.Line) + " " + o.Key + "=" + o.Value)
	}
	return b.String()
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// "%" at the end of a line joins the next line to it (uWSGI's magic pass
// swallows the newline), and the lines after keep their own numbers.
func TestLoadPercentJoinsLines(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.ini": "[uwsgi]\na = 100%\n[other]\nb = 2\nc = 3\n"})
	got, err := Load(filepath.Join(dir, "app.ini"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "app.ini")
	want := []Option{{"a", "100[other]", p, 2}, {"b", "2", p, 4}, {"c", "3", p, 5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %s\nwant %s", show(got), show(want))
	}
}

func TestLoadSymlinkKeepsItsName(t *testing.T) {
	dir := t.TempDir()
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	writeFiles(t, dir, map[string]string{"real/app.ini": "[uwsgi]\na = %p %d\n"})
	if err := os.Symlink("real/app.ini", filepath.Join(dir, "link.ini")); err != nil {
		t.Skip(err)
	}
	t.Chdir(dir)
	got, err := Load("./link.ini")
	if err != nil {
		t.Fatal(err)
	}
	if want := dir + "/./link.ini " + dir + "/./"; got[0].Value != want {
		t.Errorf("got %q, want %q", got[0].Value, want)
	}
	got, err = Load("real/app.ini")
	if err != nil {
		t.Fatal(err)
	}
	if want := dir + "/real/app.ini " + dir + "/real/"; got[0].Value != want {
		t.Errorf("got %q, want %q", got[0].Value, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		load  string
		want  string // the whole message
	}{
		{"missing file", nil, "nope.ini", "ini: open nope.ini: no such file or directory"},
		{"no section", map[string]string{"app.ini": "[uwsgi2]\na = 1\n"}, "app.ini", "ini: app.ini: no [uwsgi] section"},
		{"no asked section", map[string]string{"app.ini": "[uwsgi]\na = 1\n"}, "app.ini:prod", "ini: app.ini: no [prod] section"},
		{"byte order mark", map[string]string{"app.ini": "\ufeff[uwsgi]\na = 1\n"}, "app.ini",
			"ini: app.ini: no [uwsgi] section (the file starts with a UTF-8 byte order mark, which uWSGI does not skip)"},
		{"included file without the section", map[string]string{"app.ini": "[uwsgi]\nini = b.ini\n", "b.ini": "a = 1\n"}, "app.ini",
			`app.ini:2: ini = "b.ini": b.ini: no [uwsgi] section`},
		{"missing include", map[string]string{"app.ini": "[uwsgi]\n\nini = b.ini\n"}, "app.ini",
			`app.ini:3: ini = "b.ini": open b.ini: no such file or directory`},
		{"include relative to the including file", map[string]string{"conf/app.ini": "[uwsgi]\nini = b.ini\n", "conf/b.ini": "[uwsgi]\n"}, "conf/app.ini",
			`conf/app.ini:2: ini = "b.ini": open b.ini: no such file or directory; uWSGI resolves b.ini against the working directory, not against conf/app.ini: write %db.ini`},
		{"cycle", map[string]string{"a.ini": "[uwsgi]\nini = b.ini\n", "b.ini": "[uwsgi]\nx = 1\nini = a.ini\n"}, "a.ini",
			`b.ini:3: ini = "a.ini": include cycle: {DIR}/a.ini:uwsgi -> {DIR}/b.ini:uwsgi -> {DIR}/a.ini:uwsgi`},
		{"self via section", map[string]string{"a.ini": "[uwsgi]\nini = :x\n[x]\nini = a.ini\n"}, "a.ini",
			`a.ini:4: ini = "a.ini": include cycle: {DIR}/a.ini:uwsgi -> {DIR}/a.ini:x -> {DIR}/a.ini:uwsgi`},
		{"inherit cycle", map[string]string{"a.ini": "[uwsgi]\ninherit = t.ini\n", "t.ini": "[uwsgi]\ninherit = u.ini\n", "u.ini": "[uwsgi]\ninherit = t.ini\n"}, "a.ini",
			`u.ini:2: inherit = "t.ini": inherit cycle: {DIR}/t.ini:uwsgi -> {DIR}/u.ini:uwsgi -> {DIR}/t.ini:uwsgi`},
		{"include yaml", map[string]string{"a.ini": "[uwsgi]\ninclude = b.yml\n"}, "a.ini", `a.ini:2: include = "b.yml": only ini files are read`},
		{"yaml key", map[string]string{"a.ini": "[uwsgi]\nyaml = b.yml\n"}, "a.ini", `a.ini:2: yaml = "b.yml": only ini files are read`},
		{"config logic", map[string]string{"a.ini": "[uwsgi]\nif-env = HOME\nsocket = x\nendif =\n"}, "a.ini",
			`a.ini:2: if-env = "HOME": uWSGI config logic (for, if-*, endif, endfor) is not supported` + "\n" +
				`a.ini:4: endif = "": uWSGI config logic (for, if-*, endif, endfor) is not supported`},
		{"for", map[string]string{"a.ini": "[uwsgi]\nfor = a b\n"}, "a.ini", `a.ini:2: for = "a b": uWSGI config logic (for, if-*, endif, endfor) is not supported`},
		{"at file", map[string]string{"a.ini": "[uwsgi]\nname = @(/etc/hostname)\n"}, "a.ini", `a.ini:2: name = "@(/etc/hostname)": @(/etc/hostname): reading values from files is not supported`},
		{"version", map[string]string{"a.ini": "[uwsgi]\nname = %V\n"}, "a.ini", `a.ini:2: name = "": magic variable %V is not supported`},
		{"url", map[string]string{"a.ini": "[uwsgi]\nini = http://example.com/x.ini\n"}, "a.ini",
			`a.ini:2: ini = "http://example.com/x.ini": reading config from a URL, a scheme or stdin is not supported`},
		{"stdin", nil, "-", "ini: -: reading config from a URL, a scheme or stdin is not supported"},
		{"set without =", map[string]string{"a.ini": "[uwsgi]\nset-ph = x\n"}, "a.ini", `a.ini:2: set-ph = "x": want name=value`},
		{"self reference", map[string]string{"a.ini": "[uwsgi]\na = x%(a)\n"}, "a.ini", `a.ini:2: a = "x%(a)": expanding %(...) does not end (does a value refer to itself?)`},
		// Each value doubles the next: 2^22 copies of the last. The bound on
		// the bytes the substitutions copy ends it early, in an error.
		{"doubling", map[string]string{"a.ini": "[uwsgi]\na = %(b)%(b)\nb = %(c)%(c)\nc = %(d)%(d)\nd = %(e)%(e)\ne = %(f)%(f)\nf = %(g)%(g)\ng = %(h)%(h)\nh = %(i)%(i)\ni = %(j)%(j)\nj = %(k)%(k)\nk = %(l)%(l)\nl = %(m)%(m)\nm = %(n)%(n)\nn = %(o)%(o)\no = %(p)%(p)\np = %(q)%(q)\nq = %(r)%(r)\nr = %(s)%(s)\ns = %(t)%(t)\nt = %(u)%(u)\nu = %(v)%(v)\nv = %(w)%(w)\nw = xxxxxxxxxx\n"}, "a.ini", `a.ini:2: a = "%(b)%(b)": expanding %(...) does not end (does a value refer to itself?)`},
		{"expression", map[string]string{"a.ini": "[uwsgi]\nn = 2\nm = %(n + 1)\n"}, "a.ini", `a.ini:3: m = "%(n + 1)": %(n + 1): placeholder expressions are not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if d, err := filepath.EvalSymlinks(dir); err == nil {
				dir = d
			}
			writeFiles(t, dir, tt.files)
			t.Chdir(dir)
			_, err := Load(tt.load)
			want := strings.ReplaceAll(tt.want, "{DIR}", dir)
			if err == nil || err.Error() != want {
				t.Errorf("Load(%q) error:\n got %v\nwant %s", tt.load, err, want)
			}
		})
	}
}

func TestLoadMissingFileIsNotExist(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.ini"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want an fs.ErrNotExist", err)
	}
}

// Every bad line is reported, in the included file too, and the good lines
// still come back for Parse to check.
func TestLoadReportsEveryBadLine(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.ini":  "[uwsgi]\nspooler = /a\nyaml = x.yml\nname = %V\ninclude = more.ini\nset-ph = broken\nprocesses = %(n + 1)\nsocket = :80\nspooler-processes = two\n",
		"more.ini": "[uwsgi]\nfor = a b\nspooler = /b\n",
	})
	t.Chdir(dir)
	got, err := Load("app.ini")
	want := strings.Join([]string{
		`app.ini:3: yaml = "x.yml": only ini files are read`,
		`app.ini:4: name = "": magic variable %V is not supported`,
		`more.ini:2: for = "a b": uWSGI config logic (for, if-*, endif, endfor) is not supported`,
		`app.ini:6: set-ph = "broken": want name=value`,
		`app.ini:7: processes = "%(n + 1)": %(n + 1): placeholder expressions are not supported`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("Load error:\n got %v\nwant %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 3 {
		t.Errorf("errors.As(*Error) = %+v, want the first bad line", e)
	}
	wantOpts := opts(t, "app.ini:2 spooler=/a", "more.ini:3 spooler=/b", "app.ini:8 socket=:80", "app.ini:9 spooler-processes=two")
	if !reflect.DeepEqual(got, wantOpts) {
		t.Errorf("the good lines:\n got %+v\nwant %+v", got, wantOpts)
	}
	// Parse then finds the bad value among them.
	if _, err := Parse(got); err == nil || err.Error() != `app.ini:9: spooler-processes = "two": want a whole number` {
		t.Errorf("Parse: %v", err)
	}
}

// A file of nothing but bad lines: MaxErrors of them, then a last line
// saying the rest was not read.
func TestLoadStopsAfterMaxErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.ini": "[uwsgi]\n" + strings.Repeat("for = x\n", 3*MaxErrors)})
	t.Chdir(dir)
	_, err := Load("app.ini")
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != MaxErrors+1 || lines[MaxErrors] != "ini: app.ini: stopped after 20 errors" {
		t.Errorf("%d lines, the last %q", len(lines), lines[len(lines)-1])
	}
}
