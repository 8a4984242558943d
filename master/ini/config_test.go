package ini

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.ini": `[uwsgi]
plugins = python3
master = true
spooler = /var/spool/a
spooler = /var/spool/b
spooler-external = /var/spool/ext
spooler-processes = 2
spooler-processes = 3
spooler-frequency = 30
spooler-freq = 0.25
spooler-ordered
spooler-quiet = On
spooler-max-tasks = 100
spooler-harakiri = 60
spooler-chdir = /srv/app
spooler-import = tasks
spooler-pyimport = more_tasks
spooler-py-import = /srv/app/t.py
spooler-python-import = last
processes = 4
workers = 8
harakiri = 30
socket = 127.0.0.1:3031
uwsgi-socket = /run/app.sock
http-socket = :8080
die-on-term = yes
buffer-size = 100000
max-requests = 5000
reload-mercy = 10
vacuum = true
enable-threads = true
module = app:application
spooler_processes = 9
p = 2
module = other
stats-server = 127.0.0.1:1717
stats = 127.0.0.1:9191
stats-http = true
`})
	o, err := Load(filepath.Join(dir, "app.ini"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(o)
	if err != nil {
		t.Fatal(err)
	}
	freq := 0.25
	p := filepath.Join(dir, "app.ini")
	want := Config{
		Spoolers:         []string{"/var/spool/a", "/var/spool/b"},
		ExternalSpoolers: []string{"/var/spool/ext"},
		SpoolerProcesses: 3,
		SpoolerFrequency: &freq,
		SpoolerOrdered:   true,
		SpoolerQuiet:     true,
		SpoolerMaxTasks:  100,
		SpoolerHarakiri:  60,
		SpoolerChdir:     "/srv/app",
		SpoolerImports:   []string{"tasks", "more_tasks", "/srv/app/t.py", "last"},
		Processes:        8,
		Harakiri:         30,
		Master:           true,
		Sockets:          []string{"127.0.0.1:3031", "/run/app.sock"},
		HTTPSockets:      []string{":8080"},
		DieOnTerm:        true,
		BufferSize:       65535,
		MaxRequests:      5000,
		ReloadMercy:      10,
		Stats:            "127.0.0.1:9191",
		Unsupported: []Option{
			{Key: "module", Value: "app:application", File: p, Line: 32},
			{Key: "spooler_processes", Value: "9", File: p, Line: 33},
			{Key: "p", Value: "2", File: p, Line: 34},
			{Key: "module", Value: "other", File: p, Line: 35},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", c, want)
	}
	if *c.SpoolerFrequency != 0.25 {
		t.Errorf("SpoolerFrequency = %v, want 0.25", *c.SpoolerFrequency)
	}
}

func TestParseZero(t *testing.T) {
	c, err := Parse(nil)
	if err != nil || !reflect.DeepEqual(c, Config{}) {
		t.Errorf("Parse(nil) = %+v, %v; want the zero Config", c, err)
	}
}

func TestParseBools(t *testing.T) {
	for v, want := range map[string]bool{
		"": true, "true": true, "TRUE": true, "yes": true, "on": true, "1": true,
		"false": false, "False": false, "no": false, "OFF": false, "0": false,
	} {
		c, err := Parse([]Option{{Key: "master", Value: "true"}, {Key: "master", Value: v}})
		if err != nil || c.Master != want {
			t.Errorf("master = %q: got %v, %v; want %v", v, c.Master, err, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ key, value, want string }{
		{"spooler-processes", "two", `app.ini:12: spooler-processes = "two": want a whole number`},
		{"spooler-processes", "-1", `app.ini:12: spooler-processes = "-1": must not be negative`},
		{"spooler-processes", "", `app.ini:12: spooler-processes = "": want a whole number`},
		{"spooler-processes", "$(N)", `app.ini:12: spooler-processes = "$(N)": want a whole number`},
		{"spooler-processes", "2.5", `app.ini:12: spooler-processes = "2.5": want a whole number`},
		{"spooler-frequency", "soon", `app.ini:12: spooler-frequency = "soon": want a number of seconds`},
		{"spooler-frequency", "NaN", `app.ini:12: spooler-frequency = "NaN": want a number of seconds`},
		{"spooler-freq", "-0.5", `app.ini:12: spooler-freq = "-0.5": must not be negative`},
		{"spooler-ordered", "maybe", `app.ini:12: spooler-ordered = "maybe": want true or false (also yes/no, on/off, 1/0)`},
		{"spooler-quiet", "2", `app.ini:12: spooler-quiet = "2": want true or false (also yes/no, on/off, 1/0)`},
		{"spooler-max-tasks", "1e3", `app.ini:12: spooler-max-tasks = "1e3": want a whole number`},
		{"spooler-harakiri", "-5", `app.ini:12: spooler-harakiri = "-5": must not be negative`},
		{"processes", "four", `app.ini:12: processes = "four": want a whole number`},
		{"workers", "-2", `app.ini:12: workers = "-2": must not be negative`},
		{"harakiri", "30s", `app.ini:12: harakiri = "30s": want a whole number`},
		{"master", "yes please", `app.ini:12: master = "yes please": want true or false (also yes/no, on/off, 1/0)`},
		{"die-on-term", "y", `app.ini:12: die-on-term = "y": want true or false (also yes/no, on/off, 1/0)`},
		{"buffer-size", "32k", `app.ini:12: buffer-size = "32k": want a whole number`},
		{"buffer-size", "-1", `app.ini:12: buffer-size = "-1": must not be negative`},
		{"max-requests", "-99999999999999999999", `app.ini:12: max-requests = "-99999999999999999999": must not be negative`},
		{"reload-mercy", `"10"`, `app.ini:12: reload-mercy = "\"10\"": want a whole number`},
	}
	for _, tt := range tests {
		_, err := Parse([]Option{{Key: "spooler", Value: "/x", File: "app.ini", Line: 3}, {Key: tt.key, Value: tt.value, File: "app.ini", Line: 12}})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s = %q:\n got %v\nwant %s", tt.key, tt.value, err, tt.want)
		}
	}
}

func TestParseLargeNumbers(t *testing.T) {
	c, err := Parse([]Option{{Key: "processes", Value: "99999999999999999999999"}, {Key: "buffer-size", Value: "65536"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Processes != 1<<31-1 || c.BufferSize != 65535 {
		t.Errorf("got processes %d, buffer-size %d; want them capped", c.Processes, c.BufferSize)
	}
}

func TestHint(t *testing.T) {
	tests := map[string]string{
		"spooler_processes": `uWSGI 2.0 ignores "spooler_processes" in ini files too; did you mean "spooler-processes"?`,
		"Master":            `uWSGI 2.0 ignores "Master" in ini files too; did you mean "master"?`,
		"p":                 `uWSGI 2.0 ignores "p" in ini files too; did you mean "processes"?`,
		"Q":                 `uWSGI 2.0 ignores "Q" in ini files too; did you mean "spooler"?`,
		"Enable_Threads":    `uWSGI 2.0 ignores "Enable_Threads" in ini files too; did you mean "enable-threads"?`,
		"module":            "",
		"chdir":             "",
		"spooler":           "",
		// Typos: one or two edits from a known option.
		"spooler-proceses":  `uWSGI 2.0 ignores "spooler-proceses" too; did you mean "spooler-processes"?`,
		"spoolre-processes": `uWSGI 2.0 ignores "spoolre-processes" too; did you mean "spooler-processes"?`,
		"spooler-procesess": `uWSGI 2.0 ignores "spooler-procesess" too; did you mean "spooler-processes"?`,
		"Spooler_Proceses":  `uWSGI 2.0 ignores "Spooler_Proceses" too; did you mean "spooler-processes"?`,
		"spooler-harakri":   `uWSGI 2.0 ignores "spooler-harakri" too; did you mean "spooler-harakiri"?`,
		"spooler-imports":   `uWSGI 2.0 ignores "spooler-imports" too; did you mean "spooler-import"?`,
		"proceses":          `uWSGI 2.0 ignores "proceses" too; did you mean "processes"?`,
		"stat":              `uWSGI 2.0 ignores "stat" too; did you mean "stats"?`,
		"enable-thread":     `uWSGI 2.0 ignores "enable-thread" too; did you mean "enable-threads"?`,
		"includ":            `uWSGI 2.0 ignores "includ" too; did you mean "include"?`,
		"spooler-p-import":  `uWSGI 2.0 ignores "spooler-p-import" too; did you mean "spooler-py-import" or "spooler-pyimport"?`,
		// Too far, or real uWSGI options close to ours: no guess.
		"spooler-procs":    "",
		"uid":              "",
		"https-socket":     "",
		"suwsgi-socket":    "",
		"harakiri-verbose": "",
		"st":               "",
	}
	for key, want := range tests {
		if got := Hint(key); got != want {
			t.Errorf("Hint(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		max  int
		want int
	}{
		{"", "", 2, 0},
		{"abc", "abc", 2, 0},
		{"ab", "ba", 2, 1},  // a swap is one edit
		{"abc", "ca", 5, 3}, // optimal string alignment: no edit of a swapped pair
		{"kitten", "sitting", 5, 3},
		{"kitten", "sitting", 2, 3}, // past max: max+1
		{"a", "abcdef", 2, 3},
		{"spooler-proceses", "spooler-processes", 2, 1},
		{"spooler-processes", "spooler-", 2, 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b, tt.max); got != tt.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tt.a, tt.b, tt.max, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a, tt.max); got != tt.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tt.b, tt.a, tt.max, got, tt.want)
		}
	}
}

// Every bad value is reported, each with its file and line, in order.
func TestParseReportsEveryBadValue(t *testing.T) {
	_, err := Parse([]Option{
		{Key: "spooler-processes", Value: "two", File: "app.ini", Line: 2},
		{Key: "spooler", Value: "/x", File: "app.ini", Line: 3},
		{Key: "master", Value: "maybe", File: "app.ini", Line: 4},
		{Key: "harakiri", Value: "-1", File: "inc.ini", Line: 1},
	})
	want := `app.ini:2: spooler-processes = "two": want a whole number` + "\n" +
		`app.ini:4: master = "maybe": want true or false (also yes/no, on/off, 1/0)` + "\n" +
		`inc.ini:1: harakiri = "-1": must not be negative`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Key != "spooler-processes" {
		t.Errorf("errors.As(*Error) = %+v, want the first", e)
	}
}
