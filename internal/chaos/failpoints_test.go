package chaos

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Failpoints (internal/failpoint, and its Python twin in
// python/gospool/_ring.py) park a process at a named step of a protocol
// when GOSPOOL_FAILPOINT names it; the harness then kills it there. The
// names are found in the sources, so that a failpoint added to the code is
// exercised here without a change to the harness:
//
//	Go:     FailpointX = "name"   or   failpoint.Inject("name")
//	Python: FAILPOINT_X = "name"
var (
	goFailpointRe = regexp.MustCompile(`(?:Failpoint\w*\s*=\s*|failpoint\.Inject\()"([a-z0-9-]+)"`)
	pyFailpointRe = regexp.MustCompile(`(?m)^FAILPOINT_\w+\s*=\s*"([a-z0-9-]+)"`)
	parkedRe      = regexp.MustCompile(`failpoint (\S+) reached pid (\d+)`)
)

// findFailpoints returns the failpoint names of the Go sources (tests and
// internal/failpoint left out) and of the Python package under root.
func findFailpoints(root string) (goNames, pyNames []string) {
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || name == "failpoint" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		var re *regexp.Regexp
		var into *[]string
		switch {
		case strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go"):
			re, into = goFailpointRe, &goNames
		case strings.HasSuffix(path, ".py") && strings.Contains(path, filepath.Join("python", "gospool")):
			re, into = pyFailpointRe, &pyNames
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			*into = append(*into, string(m[1]))
		}
		return nil
	})
	slices.Sort(goNames)
	slices.Sort(pyNames)
	return slices.Compact(goNames), slices.Compact(pyNames)
}
