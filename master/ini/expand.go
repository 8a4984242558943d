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
			if err := expandRefs(&e.Value, '$', os.LookupEnv); err != nil {
				e.Value = orig
				drop(e, err)
			}
		}
	}
	for i := range l.entries {
		var ref string
		if e := &l.entries[i]; e.expand && !l.full() {
			expandRefs(&e.Value, '@', func(k string) (string, bool) {
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
		err := expandRefs(&e.Value, '%', l.placeholder)
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

// restartAt is where the scan starts again after a substitution: the
// value's second byte, not the place of the substitution. uWSGI 2.0.21 does
// this (TestReferencesAgainstUWSGI), and it has two visible effects: text
// before the substitution is looked at again, which is how a composed name
// such as $(APP_$(ENV)) resolves; and a reference that ends up at the
// value's first byte is never seen, so "$(APP_$(ENV))" alone stays
// "$(APP_prod)" while "x$(APP_$(ENV))" becomes "x" + $APP_prod.
const restartAt = 1

// expandRefs replaces the references sym(key) in *v with what lookup
// returns for key, where sym is '$' (environment variables), '%'
// (placeholders) or '@' (files). These are the rules, as uWSGI applies them
// (the examples use sym '$', with A=a, B=b and Ab=y set):
//
//   - A reference is sym, '(', a key of at least one byte, and the ')'
//     that closes it. Parentheses inside the key pair up and belong to it:
//     "$(f(1))" has the key "f(1)". Without its ')' there is no reference:
//     "$(A" stays as it is.
//   - sym inside a key gives up that key, and the scan goes on from that
//     sym: in "$(A$(B))" the first reference found is $(B). In "$(A$B)" a
//     '(' does not follow the second '$', so there is no reference at all.
//   - "$()" is not a reference and stays as written.
//   - A key lookup does not know stays as written ("$(UNSET)"), and the
//     scan goes on after its ')'.
//   - A known one is replaced by its value, and the scan starts again from
//     the second byte of the whole of *v (restartAt), so the substituted
//     text is scanned too, with what is around it:
//     "x$(A$(B))" becomes "x$(Ab)", then "xy"; "$$(A)" becomes "$a".
//
// An error means the expansion does not end (see maxSubst).
func expandRefs(v *string, sym byte, lookup func(key string) (string, bool)) error {
	substitutions, copied := 0, 0
	for from := 0; ; {
		start, end, found := nextReference(*v, sym, from)
		if !found {
			return nil
		}
		val, known := lookup((*v)[start+2 : end-1])
		if !known {
			from = end
			continue
		}
		*v = (*v)[:start] + val + (*v)[end:]
		substitutions++
		copied += len(*v)
		if substitutions > maxSubst || len(*v) > maxValue || copied > maxCopied {
			return fmt.Errorf("expanding %c(...) %w", sym, errRunaway)
		}
		from = restartAt
	}
}

// nextReference finds the first reference sym(key) in v that starts at or
// after from, by the rules of expandRefs: v[start:end] is the reference and
// v[start+2:end-1] its key, which is never empty.
func nextReference(v string, sym byte, from int) (start, end int, found bool) {
	for from < len(v) {
		i := strings.IndexByte(v[from:], sym)
		if i < 0 {
			return 0, 0, false
		}
		start = from + i
		if start+1 >= len(v) || v[start+1] != '(' {
			from = start + 1 // a sym without '(' starts nothing
			continue
		}
		keyStart := start + 2
		closing, closed := keyEnd(v, sym, keyStart)
		switch {
		case !closed:
			from = closing // another sym gave this key up, or v ended
		case closing == keyStart:
			from = closing + 1 // sym() is not a reference
		default:
			return start, closing + 1, true
		}
	}
	return 0, 0, false
}

// keyEnd reads a key from v[i:] and returns the index of the ')' that ends
// it, with closed true. With closed false, the key was given up: at is the
// index of a sym met inside it (where the search goes on), or len(v) if
// the value ended before the key was closed.
func keyEnd(v string, sym byte, i int) (at int, closed bool) {
	open := 0 // '(' inside the key not closed yet
	for ; i < len(v); i++ {
		switch v[i] {
		case sym:
			return i, false
		case '(':
			open++
		case ')':
			if open == 0 {
				return i, true
			}
			open--
		}
	}
	return len(v), false
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
