package testproc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size ("2m") on a new directory, unmounted when
// the test ends: a disk that really fills up. Mounting needs root; where it
// is refused, the test skips, or fails under CI=true (see [InCI]).
func Tmpfs(tb testing.TB, size string) string {
	tb.Helper()
	dir := tb.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := "cannot mount a " + size + " tmpfs to fill up (root needed): " + err.Error() + ": " + strings.TrimSpace(string(out))
		if InCI() {
			tb.Fatal(msg + "; CI=true: the full-disk tests must run")
			return ""
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// FillDisk writes a file in dir until its filesystem is full, to the last
// byte, and returns the file's path (remove it to free the space).
func FillDisk(tb testing.TB, dir string) string {
	tb.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				tb.Fatal(err)
			}
			break
		}
	}
	for n := 1; n > 0; { // the last partial block
		n, _ = f.Write(block[:1])
	}
	return path
}
