package ini

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Option is one key = value line of the section, in file order. Keys repeat:
// many uWSGI options, such as spooler, are lists.
type Option struct {
	Key, Value string
	// File is the path the line was read from, as it was given to Load or
	// written after ini =, include = or inherit =.
	File string
	Line int
}

// Error is a problem with one option line.
type Error struct {
	Option
	Msg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: %s = %q: %s", e.File, e.Line, e.Key, e.Value, e.Msg)
}

func lineErr(o Option, format string, args ...any) error {
	return &Error{Option: o, Msg: fmt.Sprintf(format, args...)}
}

// Load reads the section of the ini file at path the way uWSGI 2.0's --ini
// does: "file.ini" reads [uwsgi], "file.ini:name" reads [name]. It follows
// ini =, include = and inherit =, expands magic variables, $(ENV) and
// %(placeholder) references, and returns the options in uWSGI's order.
// See the package documentation for the rules and for what is not supported.
//
// A file that cannot be read, or lacks the section, is an error prefixed
// "ini: " (wrapping the system's error, so errors.Is(err, fs.ErrNotExist)
// holds for a missing file). A problem with a line is an [*Error] naming
// its file and line; Load goes on reading after one, so that every bad
// line is reported at once (up to [MaxErrors]; the error is then an
// [errors.Join] of them), and returns the options of the other lines with
// it, for the caller to check with [Parse] too.
func Load(path string) ([]Option, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("ini: %w", err)
	}
	l := &loader{cwd: cwd, now: time.Now()}
	l.entries = append(l.entries, entry{Option: Option{Key: "ini", Value: path, File: path}, hidden: true})
	if err := l.load(path, nil); err != nil {
		return nil, errors.Join(append(l.errs, err)...)
	}
	l.expandAll()
	// inherit = is applied after the expansion passes, as uWSGI does, and
	// appends the template's options at the end, unexpanded.
	for i := 0; i < len(l.entries) && !l.full(); i++ {
		if e := l.entries[i]; e.hidden && e.Key == "inherit" {
			if err := l.inherit(e); err != nil {
				l.note(err)
			}
		}
	}
	var out []Option
	for _, e := range l.entries {
		if !e.hidden {
			out = append(out, e.Option)
		}
	}
	if len(l.errs) > 0 {
		if l.full() {
			l.errs = append(l.errs, fmt.Errorf("ini: %s: stopped after %d errors", path, MaxErrors))
		}
		return out, errors.Join(l.errs...)
	}
	return out, nil
}

// MaxErrors is how many bad lines Load reports before it stops reading.
const MaxErrors = 20

// note records a problem with one line; reading goes on unless full.
func (l *loader) note(err error) { l.errs = append(l.errs, err) }

// full reports whether MaxErrors problems were found: stop reading.
func (l *loader) full() bool { return len(l.errs) >= MaxErrors }

type entry struct {
	Option
	hidden bool     // not returned: ini, include, inherit, set, set-ph and the placeholders they define
	expand bool     // subject to the $(...) and %(...) passes
	via    []string // the inherit chain that loaded it, to catch inherit cycles
}

// A file as uWSGI's magic table describes it.
type file struct {
	given   string // %o: the path as written
	abs     string // %p
	section string // %x: the section when one was asked for
}

type loader struct {
	cwd     string
	now     time.Time
	top     *file    // the first file, for the capital magic variables
	last    *file    // uWSGI's last_file: "ini = :name" reads it again
	stack   []string // files being read, for include cycles
	via     []string // set while reading an inherited template
	entries []entry
	exprErr string  // a %(a b) expression met by the placeholder pass
	errs    []error // the bad lines met so far, in order
}

// immediate lists the options uWSGI 2.0.21 applies while it parses, before
// the $(...) and %(...) passes, so their values are never expanded. Checked
// with --show-config; only the options that matter here are listed.
var immediate = map[string]bool{
	"spooler-processes": true, "plugin": true, "plugins": true, "need-plugin": true, "need-plugins": true,
}

// refused says why Load stops at key: ignoring it would change what the
// rest of the configuration means.
func refused(key string) string {
	switch key {
	case "yaml", "yml", "json", "js", "xml", "xmlconfig", "sqlite", "ldap", "config":
		return "only ini files are read"
	case "inject-before", "inject-after", "declare-option", "declare-option2":
		return "not supported"
	case "for", "for-glob", "for-times", "for-readline", "endfor", "end-for", "endif", "end-if":
		return "uWSGI config logic (for, if-*, endif, endfor) is not supported"
	}
	if strings.HasPrefix(key, "if-") {
		return refused("for")
	}
	return ""
}

// load reads spec ("path", "path:section" or ":section") and adds its options.
// from is the line that asked for it, nil for the file given to Load.
func (l *loader) load(spec string, from *Option) error {
	if strings.Contains(spec, "://") || spec == "-" {
		return l.fail(from, spec, "reading config from a URL, a scheme or stdin is not supported")
	}
	name, section, explicit := splitSpec(spec)
	var f *file
	if name == "" {
		if l.last == nil {
			return l.fail(from, spec, "no file to read the section from")
		}
		f = &file{abs: l.last.abs, given: "", section: section}
		name = l.last.given
	} else {
		f = &file{given: name, abs: l.absPath(name)}
		if explicit {
			f.section = section
		}
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return l.readErr(from, name, err)
	}
	id := f.abs + "\x00" + section
	for i, s := range l.stack {
		if s == id {
			var chain []string
			for _, s := range l.stack[i:] {
				chain = append(chain, strings.Replace(s, "\x00", ":", 1))
			}
			chain = append(chain, f.abs+":"+section)
			return l.fail(from, spec, "include cycle: %s", strings.Join(chain, " -> "))
		}
	}
	if l.top == nil {
		l.top = f
	}
	// ":section" keeps the given name and the path of the last file; the
	// later magic variables still describe it, as in uWSGI.
	l.last = &file{given: name, abs: f.abs, section: f.section}
	l.stack = append(l.stack, id)
	defer func() { l.stack = l.stack[:len(l.stack)-1] }()

	text, lines, magicErrs := l.magic(data, f)
	cur, found := "", false
	for idx, raw := range strings.Split(text, "\n") {
		if l.full() {
			break
		}
		s := strings.Trim(raw, " \t\r")
		switch {
		case s == "":
			continue
		case s[0] == '[':
			cur = ""
			if len(s) >= 2 {
				cur = s[1 : len(s)-1]
			}
			found = found || cur == section
			continue
		case s[0] == ';' || s[0] == '#', cur != section:
			continue
		}
		key, val, _ := strings.Cut(s, "=")
		o := Option{Key: strings.TrimRight(key, " \t\r"), Value: strings.Trim(val, " \t\r"), File: name, Line: lines[idx]}
		if err := magicErrs[idx]; err != nil {
			l.note(lineErr(o, "%v", err))
			continue
		}
		if err := l.add(o); err != nil {
			l.note(err) // and read on: report every bad line at once
		}
	}
	if !found {
		msg := fmt.Sprintf("%s: no [%s] section", name, section)
		if strings.HasPrefix(string(data), "\ufeff") {
			msg += " (the file starts with a UTF-8 byte order mark, which uWSGI does not skip)"
		}
		if from != nil {
			return lineErr(*from, "%s", msg)
		}
		return errors.New("ini: " + msg)
	}
	return nil
}

// add records one option line; the loading directives act at once, as
// uWSGI's immediate options do.
func (l *loader) add(o Option) error {
	if why := refused(o.Key); why != "" {
		return lineErr(o, "%s", why)
	}
	e := entry{Option: o, hidden: true, via: l.via}
	switch o.Key {
	case "ini", "include", "inherit":
		if o.Key != "ini" && !strings.HasSuffix(o.Value, ".ini") {
			return lineErr(o, "only ini files are read")
		}
		// inherit waits for the expansion passes, which also see its value.
		e.expand = o.Key == "inherit" && l.via == nil
		l.entries = append(l.entries, e)
		if o.Key == "inherit" {
			return nil
		}
		return l.load(o.Value, &o)
	case "set", "set-placeholder", "set-ph":
		k, v, ok := strings.Cut(o.Value, "=")
		if !ok {
			return lineErr(o, "want name=value")
		}
		l.entries = append(l.entries, e)
		if o.Key == "set" {
			return l.add(Option{Key: k, Value: v, File: o.File, Line: o.Line})
		}
		l.entries = append(l.entries, entry{Option: Option{Key: k, Value: v, File: o.File, Line: o.Line}, hidden: true})
		return nil
	}
	e.hidden, e.expand = false, l.via == nil && !immediate[o.Key]
	l.entries = append(l.entries, e)
	return nil
}

// splitSpec splits "path:section" at the last colon, as uWSGI does.
func splitSpec(spec string) (name, section string, explicit bool) {
	name, section = spec, "uwsgi"
	if i := strings.LastIndexByte(spec, ':'); i >= 0 {
		name = spec[:i]
		if i+1 < len(spec) {
			section, explicit = spec[i+1:], true
		}
	}
	return name, section, explicit
}

func (l *loader) inherit(e entry) error {
	name, section, _ := splitSpec(e.Value)
	id := l.absPath(name) + ":" + section
	for _, v := range e.via {
		if v == id {
			return lineErr(e.Option, "inherit cycle: %s -> %s", strings.Join(e.via, " -> "), id)
		}
	}
	l.via = append(append([]string(nil), e.via...), id)
	defer func() { l.via = nil }()
	return l.load(e.Value, &e.Option)
}

// absPath is uWSGI's %p: the real path, except that a symlink keeps its own
// name (joined to the working directory when relative).
func (l *loader) absPath(name string) string {
	if fi, err := os.Lstat(name); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if filepath.IsAbs(name) {
			return name
		}
		return l.cwd + "/" + name
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.cwd, p)
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func (l *loader) readErr(from *Option, name string, err error) error {
	if from == nil {
		return fmt.Errorf("ini: %w", err)
	}
	msg := err.Error()
	if errors.Is(err, fs.ErrNotExist) && !filepath.IsAbs(name) {
		alt := filepath.Join(filepath.Dir(l.absPath(from.File)), name)
		if _, serr := os.Stat(alt); serr == nil {
			msg += fmt.Sprintf("; uWSGI resolves %s against the working directory, not against %s: write %%d%s", name, from.File, name)
		}
	}
	return lineErr(*from, "%s", msg)
}

func (l *loader) fail(from *Option, spec, format string, args ...any) error {
	if from == nil {
		return fmt.Errorf("ini: %s: %s", spec, fmt.Sprintf(format, args...))
	}
	return lineErr(*from, format, args...)
}
