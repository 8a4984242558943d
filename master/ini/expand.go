package ini

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// expandAll runs uWSGI's passes over every value not applied at parse time:
// first $(ENV) over all of them, then @(file) (refused), then %(name).
// A reference that cannot be resolved (an unset variable, an unknown
// placeholder) stays as written, as in uWSGI. A value that cannot be
// expanded is noted as an error and its option left out.
func (l *loader) expandAll() {
	drop := func(e *entry, err error) {
		l.note(lineErr(e.Option, "%v", err))
		e.hidden, e.expand = true, false
	}
	for i := range l.entries {
		if e := &l.entries[i]; e.expand && !l.full() {
			orig := e.Value
			if err := scan(&e.Value, '$', os.LookupEnv); err != nil {
				e.Value = orig
				drop(e, err)
			}
		}
	}
	for i := range l.entries {
		var ref string
		if e := &l.entries[i]; e.expand && !l.full() {
			scan(&e.Value, '@', func(k string) (string, bool) {
				if ref == "" {
					ref = k
				}
				return "", false
			})
			if ref != "" {
				drop(e, fmt.Errorf("@(%s): reading values from files is not supported", ref))
			}
		}
	}
	runaway := false
	for i := range l.entries {
		e := &l.entries[i]
		switch {
		case !e.expand:
			continue
		case runaway || l.full():
			// Not expanded, so not known: left out, without a message
			// each (the values after a runaway one usually take part in
			// the same loop, and each would cost as much to find so).
			e.hidden = true
			continue
		}
		orig := e.Value
		err := scan(&e.Value, '%', l.placeholder)
		if err == nil && l.exprErr != "" {
			err = fmt.Errorf("%%(%s): placeholder expressions are not supported", l.exprErr)
		}
		l.exprErr = ""
		if err != nil {
			e.Value = orig
			drop(e, err)
			runaway = errors.Is(err, errRunaway)
		}
	}
}

// errRunaway: a value's expansion hit a bound below.
var errRunaway = errors.New("does not end (does a value refer to itself?)")

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
				return fmt.Errorf("expanding %c(...) %w", sym, errRunaway)
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
