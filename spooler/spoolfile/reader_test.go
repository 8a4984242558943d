//go:build linux

package spoolfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gospool/gospool/internal/testproc"
	"github.com/gospool/gospool/spooler/task"
)

// The lock tests need a second process, because classic POSIX locks never
// conflict within one process. The test binary re-executes itself with these
// variables set and plays the part of a uWSGI spooler.
const (
	childRoleEnv = "SPOOLFILE_TEST_CHILD_ROLE"
	childPathEnv = "SPOOLFILE_TEST_CHILD_PATH"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(runChild(role, os.Getenv(childPathEnv)))
	}
	os.Exit(m.Run())
}

// runChild takes a classic fcntl lock, as uWSGI's spooler does (core/lock.c).
// "trylock" reports what F_SETLK says; "hold" waits for F_SETLKW, says
// LOCKED, and keeps the lock until its stdin is closed.
func runChild(role, path string) int {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	switch role {
	case "trylock":
		switch err := unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk); err {
		case nil:
			fmt.Println("OK")
		case unix.EAGAIN:
			fmt.Println("EAGAIN")
		case unix.EACCES:
			fmt.Println("EACCES")
		default:
			fmt.Println("ERR", err)
		}
	case "hold":
		if err := unix.FcntlFlock(uintptr(fd), unix.F_SETLKW, &lk); err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		fmt.Println("LOCKED")
		io.Copy(io.Discard, os.Stdin)
	default:
		fmt.Println("ERR unknown role", role)
		return 1
	}
	return 0
}

func childCmd(role, path string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childRoleEnv+"="+role, childPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	return cmd
}

// childTryLock returns OK, EAGAIN, EACCES or an error line.
func childTryLock(t *testing.T, path string) string {
	out, err := childCmd("trylock", path).Output()
	if err != nil {
		t.Errorf("child: %v (%s)", err, out)
	}
	return strings.TrimSpace(string(out))
}

// childHold returns once a child process holds a classic lock on path; the
// returned func releases it.
func childHold(t *testing.T, path string) (release func()) {
	t.Helper()
	cmd := childCmd("hold", path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "LOCKED\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q", line)
	}
	return func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}
}

func writeTask(t *testing.T, tk *task.Task) string {
	t.Helper()
	path, err := newTestWriter(t, WriterOptions{}).Write(tk)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpen(t *testing.T) {
	in := task.New("task", "resize", "at", "1700000000.5")
	in.Body = []byte("payload")
	path := writeTask(t, in)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := f.Task()
	if err != nil || got.String() != in.String() || !bytes.Equal(got.Body, in.Body) {
		t.Fatalf("Task() = %v, %v; want %v", got, err, in)
	}
	if f.Path() != path || !f.ModTime().Equal(time.Unix(1700000000, 5e8)) {
		t.Fatalf("Path %s ModTime %v", f.Path(), f.ModTime())
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file still there after Remove: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close after Remove: %v", err)
	}
	if err := f.Remove(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Remove after Close: %v", err)
	}
}

func TestOpenMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), Prefix+"gone")
	for name, fn := range map[string]func() error{
		"Open":     func() error { _, err := Open(path); return err },
		"ReadFile": func() error { _, err := ReadFile(path); return err },
		"IsLocked": func() error { _, err := IsLocked(path); return err },
	} {
		if err := fn(); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A spooler that removed and released the file between our open and our lock
// must not make us run the task again.
func TestOpenRemovedBeforeLock(t *testing.T) {
	path := writeTask(t, task.New("k", "v"))
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	os.Remove(path)
	f := &File{path: path, fd: fd}
	if err := f.load(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want fs.ErrNotExist", err)
	}
}

// OFD locks are per open file: two Opens in one process exclude each other,
// which classic fcntl locks would not do.
func TestOpenLockedInProcess(t *testing.T) {
	path := writeTask(t, task.New("k", "v"))
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v, want ErrLocked naming the path", err)
	}
	if locked, err := IsLocked(path); err != nil || !locked {
		t.Fatalf("IsLocked = %v, %v", locked, err)
	}
	f.Close()
	if locked, err := IsLocked(path); err != nil || locked {
		t.Fatalf("IsLocked after Close = %v, %v", locked, err)
	}
	f, err = Open(path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	f.Close()
}

// Our lock is a real POSIX record lock: uWSGI's classic fcntl lock in another
// process is refused while we hold the file, and still refused after this
// process opened and closed the file again (which drops classic locks).
func TestOpenExcludesClassicLock(t *testing.T) {
	path := writeTask(t, task.New("k", "v"))
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := childTryLock(t, path); got != "EAGAIN" && got != "EACCES" {
		t.Fatalf("child got %q while we hold the file", got)
	}
	if _, err := ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if got := childTryLock(t, path); got != "EAGAIN" && got != "EACCES" {
		t.Fatalf("child got %q after ReadFile closed another descriptor", got)
	}
	f.Close()
	if got := childTryLock(t, path); got != "OK" {
		t.Fatalf("child got %q after Close", got)
	}
}

// And the reverse: a uWSGI spooler holding the file makes Open fail.
func TestOpenSeesClassicLock(t *testing.T) {
	path := writeTask(t, task.New("k", "v"))
	release := childHold(t, path)
	if _, err := Open(path); !errors.Is(err, ErrLocked) {
		release()
		t.Fatalf("Open while a child holds a classic lock: %v", err)
	}
	if locked, err := IsLocked(path); err != nil || !locked {
		t.Errorf("IsLocked = %v, %v", locked, err)
	}
	release()
	f, err := Open(path)
	if err != nil {
		t.Fatalf("Open after the child let go: %v", err)
	}
	f.Close()
}

func TestPythonLockfConflicts(t *testing.T) {
	py := testproc.NeedPython3(t)
	path := writeTask(t, task.New("k", "v"))
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	script := `
import errno, fcntl, sys
with open(sys.argv[1], "r+") as fh:
    try:
        fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("OK")
    except OSError as e:
        print(errno.errorcode[e.errno])
`
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || (got != "EAGAIN" && got != "EACCES") {
		t.Fatalf("python lockf: %q, %v", got, err)
	}
}

func TestOpenBadContent(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, Prefix+"short")
	corrupt := filepath.Join(dir, Prefix+"corrupt")
	os.WriteFile(short, []byte{0x11, 0}, 0o600)
	os.WriteFile(corrupt, []byte("\x11\x05\x00\x00\x00\x00\x01\x00v"), 0o600)

	f, err := Open(short)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Task(); !errors.Is(err, ErrShortHeader) || !strings.Contains(err.Error(), short) {
		t.Fatalf("short: %v", err)
	}
	f.Close()

	f, err = Open(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Task()
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Path != corrupt || fe.Offset != 4 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt: %v", err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(short); !errors.Is(err, ErrShortHeader) || !strings.Contains(err.Error(), short) {
		t.Fatalf("ReadFile short: %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("Open of a directory succeeded")
	}
}

// uWSGI's own files survive a trip through Writer and Open unchanged, land
// where uWSGI put them, and get the mtime uWSGI gave them.
func TestFixturesThroughDisk(t *testing.T) {
	w := newTestWriter(t, WriterOptions{})
	for _, fx := range loadFixtures(t) {
		data := fx.data(t)
		in, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		path, err := w.Write(in)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(w.Dir(), filepath.Dir(path))
		if want := filepath.Dir(strings.TrimPrefix(fx.Path, fx.Name+"/")); rel != want {
			t.Errorf("%s: written to %q, uWSGI used %q", fx.Name, rel, want)
		}
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		out, err := f.Task()
		if err != nil {
			t.Fatal(err)
		}
		if enc, _ := Encode(out); !bytes.Equal(enc, data) {
			t.Errorf("%s: bytes changed on the way", fx.Name)
		}
		if at, ok, _ := in.At(); ok && !f.ModTime().Equal(at) {
			t.Errorf("%s: mtime %v, want %v", fx.Name, f.ModTime(), at)
		}
		f.Close()
	}
}

// ReadFile is what inspection tools call on a path a person typed: its
// errors name the path and say what to do, and still match fs errors.
func TestReadFileErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	_, err := ReadFile(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing+": no such file (check the path") {
		t.Errorf("missing file: %v", err)
	}
	_, err = ReadFile(dir)
	if !errors.Is(err, unix.EISDIR) || !strings.Contains(err.Error(), dir+": is a directory, not a spool file") {
		t.Errorf("directory: %v", err)
	}
	if os.Geteuid() == 0 {
		t.Log("running as root: mode 000 does not deny a read, the permission case is not checked")
		return
	}
	locked := filepath.Join(dir, Prefix+"private")
	if err := os.WriteFile(locked, []byte("\x11\x00\x00\x00"), 0); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(locked)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), locked+": permission denied (spool files are mode 0600") {
		t.Errorf("unreadable file: %v", err)
	}
}
