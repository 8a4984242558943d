package ini

import (
	"strings"
	"testing"
)

// TestExpandRefs walks through the rules in expandRefs' comment, with the
// lookup it documents. TestReferencesAgainstUWSGI checks the same corners
// against the real uwsgi.
func TestExpandRefs(t *testing.T) {
	known := map[string]string{
		"A": "a", "B": "b", "Ab": "y", "f(1)": "F", "REF": "$(A)", "DOLLAR": "$", "EMPTY": "",
	}
	for _, c := range []struct{ in, want, why string }{
		{"$(A)/x", "a/x", "a known key is replaced"},
		{"$(A)$(B)", "ab", "every reference is replaced"},
		{"$(f(1))", "F", "parentheses pair up inside the key"},
		{"$(f(1)", "$(f(1)", "a key without its ')' is no reference"},
		{"$(A", "$(A", "unterminated"},
		{"x$(", "x$(", "a sym( at the end"},
		{"$()", "$()", "an empty key is no reference"},
		{"$()$(A)", "$()a", "the scan goes on after an empty key"},
		{"$(UNSET)", "$(UNSET)", "an unknown key stays as written"},
		{"$(UNSET)$(A)", "$(UNSET)a", "the scan goes on after an unknown key"},
		{"x$(A$(B))", "xy", "a sym( inside a key gives it up; the outer one is found on the rescan"},
		{"$(A$(B))", "$(Ab)", "the rescan starts at the second byte, so a reference left at the first is not seen"},
		{"$(A$(UNSET))", "$(A$(UNSET))", "the inner key is unknown, and the outer one was given up"},
		{"x$(A$B)", "x$(A$B)", "a bare sym inside a key gives it up and starts nothing"},
		{"$$(A)", "$a", "the second sym starts the reference"},
		{"x$(REF)", "xa", "a substituted value is scanned too"},
		{"$(REF)", "$(A)", "... but not from its first byte"},
		{"x$(DOLLAR)(A)", "xa", "a substitution can complete a reference"},
		{"$(EMPTY)$(A)", "$(A)", "an empty value moves what follows it to the first byte"},
		{")$(A))(", ")a)(", "stray parentheses are text"},
		{"%(A)", "%(A)", "only sym counts"},
	} {
		got := c.in
		if err := expandRefs(&got, '$', func(k string) (string, bool) { v, ok := known[k]; return v, ok }); err != nil {
			t.Errorf("%q: %v", c.in, err)
		} else if got != c.want {
			t.Errorf("%q became %q, want %q (%s)", c.in, got, c.want, c.why)
		}
	}
}

// TestExpandRefsLookups checks which keys are looked up, in order: an
// abandoned key never is, and the text before a substitution is looked at
// again.
func TestExpandRefsLookups(t *testing.T) {
	var asked []string
	v := "$(U)x$(A$(B))$(C"
	err := expandRefs(&v, '$', func(k string) (string, bool) {
		asked = append(asked, k)
		if k == "B" {
			return "b", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(asked, " "), "U B Ab"; got != want {
		t.Errorf("looked up %q, want %q", got, want)
	}
	if want := "$(U)x$(Ab)$(C"; v != want {
		t.Errorf("got %q, want %q", v, want)
	}
}

// TestExpandRefsBounded: a value that refers to itself, or that grows at
// every substitution, ends in an error instead of a hang.
func TestExpandRefsBounded(t *testing.T) {
	for name, lookup := range map[string]func(string) (string, bool){
		"self":    func(string) (string, bool) { return "x$(K)", true },
		"growing": func(string) (string, bool) { return "$(K)$(K)", true },
		"long":    func(string) (string, bool) { return strings.Repeat("y", 1<<16) + "$(K)", true },
	} {
		v := "x$(K)"
		err := expandRefs(&v, '$', lookup)
		if err == nil || !strings.Contains(err.Error(), "does not end") {
			t.Errorf("%s: got %v, want an error saying the expansion does not end", name, err)
		}
	}
}
