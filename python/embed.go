package python

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// files is the Python package gospool, as built into this binary.
//
//go:embed gospool/*.py
var files embed.FS

var (
	extractMu  sync.Mutex
	extractDir string // set once extracted
)

// PackageDir returns a directory that holds the embedded Python package
// gospool (DIR/gospool/*.py): the entry to put first on PYTHONPATH. The
// files are extracted once per content, to the first of these that works:
//
//   - $XDG_CACHE_HOME/gospool/python-HASH, when XDG_CACHE_HOME is an
//     absolute path (the XDG base directory rules ignore a relative one);
//   - $HOME/.cache/gospool/python-HASH;
//   - $TMPDIR/gospool-UID/python-HASH (/tmp when TMPDIR is unset), for a
//     home that cannot be written (a service account whose home is / or
//     /nonexistent, a read-only home).
//
// A place that does not work is passed over silently; only when none works
// is there an error, naming each. The gospool directory is made mode 0700,
// and one that another user owns or may write to is passed over, since the
// code extracted there runs as this user. HASH is the SHA-256 of the files,
// so binaries of different versions never share a directory.
// The directory is made under a temporary name and renamed into place, so
// concurrent processes never see it half-written; one found with the wrong
// content is replaced.
func PackageDir() (string, error) {
	extractMu.Lock()
	defer extractMu.Unlock()
	if extractDir != "" {
		// Still there? (A cleaner of the temporary directory may have
		// removed it while this process ran.)
		if _, err := os.Stat(filepath.Join(extractDir, "gospool", "runner.py")); err == nil {
			return extractDir, nil
		}
		extractDir = ""
	}
	sum, err := contentHash()
	if err != nil {
		return "", err
	}
	name := "python-" + sum[:16]
	// Each place that fails is passed over without a word: a service
	// account without a writable home is no reason for a warning.
	var errs []any
	var format []string
	for _, base := range cacheBases() {
		dir := filepath.Join(base, name)
		if err := extractTo(base, dir); err != nil {
			errs = append(errs, base, err)
			format = append(format, "in %s: %w")
			continue
		}
		extractDir = dir
		return dir, nil
	}
	// One line naming every place tried, each error still matchable.
	return "", fmt.Errorf("python: extracting the embedded gospool package: "+strings.Join(format, "; ")+
		" (set XDG_CACHE_HOME or TMPDIR to a directory this user may write)", errs...)
}

// pyFiles are the embedded files' names, sorted.
func pyFiles() ([]string, error) {
	names, err := fs.Glob(files, "gospool/*.py")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func contentHash() (string, error) {
	names, err := pyFiles()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cacheBases are the candidate parent directories, best first: the user's
// cache directory by the XDG rules (os.UserCacheDir gives up on a
// relative XDG_CACHE_HOME instead of falling back to $HOME/.cache), then a
// per-user one in the temporary directory.
func cacheBases() []string {
	var bases []string
	if d := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		bases = append(bases, filepath.Join(d, "gospool"))
	} else if h := os.Getenv("HOME"); filepath.IsAbs(h) {
		bases = append(bases, filepath.Join(h, ".cache", "gospool"))
	}
	return append(bases, filepath.Join(os.TempDir(), fmt.Sprintf("gospool-%d", os.Getuid())))
}

// extractTo makes dir (in base) hold the embedded files.
func extractTo(base, dir string) error {
	if err := os.MkdirAll(base, 0o700); err != nil {
		return err
	}
	if err := checkPrivate(base); err != nil {
		return err
	}
	if sameContent(dir) {
		return nil
	}
	// Missing, or wrong (an interrupted cleanup, a hand edit): move a wrong
	// one aside first, then put a complete one in place.
	if _, err := os.Lstat(dir); err == nil {
		old, err := os.MkdirTemp(base, ".old-")
		if err != nil {
			return err
		}
		if err := os.Rename(dir, filepath.Join(old, "x")); err != nil && !errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(old)
			return err
		}
		os.RemoveAll(old)
	}
	tmp, err := os.MkdirTemp(base, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(tmp, "gospool"), 0o755); err != nil {
		return err
	}
	names, err := pyFiles()
	if err != nil {
		return err
	}
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, filepath.FromSlash(n)), b, 0o644); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process put it in place first (the rename of a directory
		// onto a non-empty one fails): fine if it is right.
		if sameContent(dir) {
			return nil
		}
		return err
	}
	return nil
}

// sameContent reports whether dir/gospool holds exactly the embedded bytes
// for each embedded file (other files, such as __pycache__, may be there).
func sameContent(dir string) bool {
	names, err := pyFiles()
	if err != nil {
		return false
	}
	for _, n := range names {
		want, err := files.ReadFile(n)
		if err != nil {
			return false
		}
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil || !bytes.Equal(got, want) {
			return false
		}
	}
	return true
}

// checkPrivate refuses a parent directory that another user could write
// into: the code extracted there runs as this user.
func checkPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s: owned by uid %d, not by this user", dir, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s: writable by others (mode %v)", dir, fi.Mode().Perm())
	}
	return nil
}
