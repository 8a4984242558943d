package ini

import (
	"sort"
	"strconv"
	"strings"
)

// loaderKeys are the options Load acts on itself.
var loaderKeys = []string{"ini", "include", "inherit", "set", "set-placeholder", "set-ph"}

// uwsgiNeighbours are real uWSGI 2.0.21 options (core and python3 plugin,
// from uwsgi --help) within a typo's reach of an option gospool knows:
// they are not typos, so Hint proposes nothing for them. TestNeighbours
// checks the list against the installed uwsgi.
var uwsgiNeighbours = map[string]bool{
	"get": true, "st": true, "sni": true, "paste": true, "ifplugin": true,
	"https-socket": true, "http11-socket": true, "suwsgi-socket": true, "puwsgi-socket": true,
}

// typoReach is how many edits (insertions, deletions, substitutions and
// swaps of two neighbouring bytes) a key may be from a known one to be
// taken for a typo of it: 2, or 1 when either is 4 bytes or shorter, where
// 2 edits turn most words into other words ("uid" into "ini").
func typoReach(a, b string) int {
	if len(a) <= 4 || len(b) <= 4 {
		return 1
	}
	return 2
}

// closest returns the known options nearest to key within typo reach,
// sorted; none when key is an option uWSGI knows.
func closest(key string) []string {
	if uwsgiNeighbours[key] {
		return nil
	}
	best, found := 3, []string(nil)
	consider := func(k string) {
		d := editDistance(key, k, typoReach(key, k))
		switch {
		case d > typoReach(key, k) || d > best:
		case d < best:
			best, found = d, []string{k}
		default:
			found = append(found, k)
		}
	}
	for k := range fields {
		consider(k)
	}
	for k := range Ignored {
		consider(k)
	}
	for _, k := range loaderKeys {
		consider(k)
	}
	sort.Strings(found)
	return found
}

// didYouMean is "did you mean "a"?" or "did you mean "a" or "b"?".
func didYouMean(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = strconv.Quote(k)
	}
	return "did you mean " + strings.Join(q, " or ") + "?"
}

// editDistance is the optimal string alignment distance between a and b
// (Levenshtein's insertions, deletions and substitutions, plus the swap of
// two neighbouring bytes, the commonest typo), counted in bytes. Past max
// it returns max+1 without finishing: only small distances matter here.
func editDistance(a, b string, max int) int {
	if d := len(a) - len(b); d > max || -d > max {
		return max + 1
	}
	// Three rows of the classic table: the one before the previous one is
	// what a swap looks back to.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			cur[j] = d
			rowMin = min(rowMin, d)
		}
		if rowMin > max {
			return max + 1 // every path through this row is already too long
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(b)], max+1)
}
