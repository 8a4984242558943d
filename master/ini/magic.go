package ini

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// magic expands uWSGI's %-variables over the whole text of a file before it
// is split into lines, as uWSGI's magic_sub does: in keys, values, section
// headers and comments alike. "%(" is kept for the placeholder pass, "%%" is
// "%", and any other unknown "%c" becomes nothing (so "%" at the end of a
// line joins it to the next). It returns the text, the source line each
// output line starts on, and errors for variables gospool cannot compute,
// by output line, to be reported only if that line is used.
func (l *loader) magic(data []byte, f *file) (text string, lines []int, errs map[int]error) {
	var b strings.Builder
	lines = []int{1}
	src := 1
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c != '%' {
			b.WriteByte(c)
			if c == '\n' {
				src++
				lines = append(lines, src)
			}
			continue
		}
		if i+1 == len(data) {
			break // uWSGI reads "%" + the terminating NUL: nothing
		}
		i++
		if data[i] == '\n' {
			src++
		}
		v, err := l.magicVar(data[i], f)
		if err != nil {
			if errs == nil {
				errs = map[int]error{}
			}
			if errs[len(lines)-1] == nil {
				errs[len(lines)-1] = err
			}
		}
		for j := 0; j < len(v); j++ {
			b.WriteByte(v[j])
			if v[j] == '\n' {
				lines = append(lines, src)
			}
		}
	}
	return b.String(), lines, errs
}

// magicVar is uWSGI 2.0.21's magic table. The capital letters describe the
// first file read (uWSGI: the first non-template config).
func (l *loader) magicVar(c byte, f *file) (string, error) {
	if c >= 'A' && c <= 'Z' && strings.IndexByte("OPSDNECX", c) >= 0 {
		f, c = l.top, c+('a'-'A')
	}
	p := f.abs
	s := p[strings.LastIndexByte(p, '/')+1:]
	d := p[:len(p)-len(s)]
	switch c {
	case '%':
		return "%", nil
	case '(':
		return "%(", nil
	case 'o':
		return f.given, nil
	case 'p':
		return p, nil
	case 's':
		return s, nil
	case 'd':
		return d, nil
	case 'n':
		if i := strings.LastIndexByte(s, '.'); i >= 0 {
			return s[:i], nil
		}
		return s, nil
	case 'e':
		if i := strings.LastIndexByte(s, '.'); i >= 0 {
			return s[i+1:], nil
		}
		return "", nil
	case 'c':
		dir := strings.TrimSuffix(d, "/")
		return dir[strings.LastIndexByte(dir, '/')+1:], nil
	case 'x':
		return f.section, nil
	case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		parts := strings.FieldsFunc(d, func(r rune) bool { return r == '/' })
		if n := int(c - '0'); n < len(parts) {
			return parts[n], nil
		}
		return "", nil
	case 'v':
		return l.cwd, nil
	case 'h':
		h, _ := os.Hostname()
		return h, nil
	case 'k':
		return strconv.Itoa(runtime.NumCPU()), nil
	case 'u':
		return strconv.Itoa(os.Getuid()), nil
	case 'g':
		return strconv.Itoa(os.Getgid()), nil
	case 't':
		return strconv.FormatInt(l.now.Unix(), 10), nil
	case 'T':
		return strconv.FormatInt(l.now.UnixMicro(), 10), nil
	case '[':
		return "\x1b", nil
	case 'V', 'U', 'G', 'i', 'j', 'J':
		return "", fmt.Errorf("magic variable %%%c is not supported", c)
	}
	return "", nil
}
