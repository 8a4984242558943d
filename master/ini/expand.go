package ini

import (
	"fmt"
	"os"
	"strings"
)

// expandAll runs uWSGI's passes over every value not applied at parse time:
// first $(ENV) over all of them, then @(file) (refused), then %(name).
// A reference that cannot be resolved (an unset variable, an unknown
// placeholder) stays as written, as in uWSGI.
func (l *loader) expandAll() error {
	for i := range l.entries {
		if e, o := &l.entries[i], l.entries[i].Option; e.expand {
			if err := scan(&e.Value, '$', os.LookupEnv); err != nil {
				return lineErr(o, "%v", err)
			}
		}
	}
	for _, e := range l.entries {
		var ref string
		if e.expand {
			scan(&e.Value, '@', func(k string) (string, bool) {
				if ref == "" {
					ref = k
				}
				return "", false
			})
		}
		if ref != "" {
			return lineErr(e.Option, "@(%s): reading values from files is not supported", ref)
		}
	}
	for i := range l.entries {
		if e, o := &l.entries[i], l.entries[i].Option; e.expand {
			if err := scan(&e.Value, '%', l.placeholder); err != nil {
				return lineErr(o, "%v", err)
			}
			if l.exprErr != "" {
				return lineErr(o, "%%(%s): placeholder expressions are not supported", l.exprErr)
			}
		}
	}
	return nil
}

// Bounds on one value's expansion, so that a value that refers to itself,
// or that doubles at every step, ends in an error instead of a hang: the
// number of substitutions, the value's length, and the bytes all the
// substitutions copy together (each one rebuilds the value, so without
// that bound 10000 substitutions into a 1 MiB value would copy 10 GB).
const (
	maxSubst  = 10000
	maxValue  = 1 << 20
	maxCopied = 32 << 20
)

// scan replaces sym(key) with hook(key) in *v, in place and one reference at
// a time, the way uWSGI's uwsgi_apply_config_pass does: nested parentheses
// belong to the key, a replaced value is scanned again from its second
// byte, and a reference the hook does not know stays as it is.
func scan(v *string, sym byte, hook func(string) (string, bool)) error {
	has, depth, start, n, copied := 0, 0, 0, 0, 0
	for j := 0; j < len(*v); j++ {
		c := (*v)[j]
		switch {
		case c == sym:
			has = 1
		case c == '(' && has == 1:
			has, depth, start = 2, 0, j+1
		case has < 2:
			has = 0
		case c == '(':
			has++
			depth++
		case c != ')':
			has++
		case depth > 0:
			has++
			depth--
		case has == 2:
			has = 0
		default:
			keyLen := has - 2
			has = 0
			val, ok := hook((*v)[start : start+keyLen])
			if !ok {
				continue
			}
			*v = (*v)[:start-2] + val + (*v)[start+keyLen+1:]
			n++
			copied += len(*v)
			if n > maxSubst || len(*v) > maxValue || copied > maxCopied {
				return fmt.Errorf("expanding %c(...) does not end (does a value refer to itself?)", sym)
			}
			j = 0
		}
	}
	return nil
}

// placeholder resolves %(name): the first option or placeholder called
// name, with its value as expanded so far.
func (l *loader) placeholder(key string) (string, bool) {
	if strings.Contains(key, " ") {
		l.exprErr = key
		return "", false
	}
	return l.lookup(key)
}

func (l *loader) lookup(key string) (string, bool) {
	for _, e := range l.entries {
		if e.Key == key {
			return e.Value, true
		}
	}
	return "", false
}
