package spooler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spooldir"
	"github.com/gospool/gospool/spooler/spoolfile"
)

// Pending is one task waiting in, or running from, a spool directory, as
// `gospool ls` shows it.
type Pending struct {
	// Where is "ring" or "file".
	Where string `json:"where"`
	// Name is "ring:LANE:SEQ", or the file's path relative to the spool
	// directory ("5/uwsgi_spoolfile_on_..." for priority 5).
	Name string `json:"name"`
	// Path is the file's absolute path ("" for ring records).
	Path string `json:"path,omitempty"`
	// State is "ready", "scheduled" (an `at` in the future), "retry" (a
	// retry, due at At), "running" or "dead".
	State string `json:"state"`
	// At is when a scheduled task or a retry falls due.
	At *time.Time `json:"at,omitempty"`
	// Attempt is the attempt the task's next run will be (2 for a first
	// retry). For a dead task it is the number of attempts it failed (its
	// NAME.error says the same): a requeued task starts again at 1.
	Attempt int `json:"attempt"`
	// Pid runs the task, when State is "running" and the pid is known:
	// uWSGI's POSIX locks name their process; gospool's OFD locks do not
	// (`gospool ls` finds those in the master's scoreboard, DIR/gospool.procs,
	// with master/scoreboard's Board.RunningTask).
	Pid int `json:"pid,omitempty"`
	// Priority is the priority directory, if any.
	Priority string `json:"priority,omitempty"`
	// Error is the last error of a dead task or a retry.
	Error string `json:"error,omitempty"`
}

// List returns every pending task of the spool directory dir: the ring's
// records, the spool files (including those of priority directories, which
// only ordered spoolers run) and the dead ones. It changes nothing and
// needs only read access. A damaged ring (see ring.Damaged) is skipped.
func List(dir string) ([]Pending, error) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("spool directory %s: %w", dir, err)
	}
	var out []Pending
	ringPath := filepath.Join(abs, ring.FileName)
	r, err := ring.Open(ringPath, ring.Options{ReadOnly: true})
	_, damaged := ring.Damaged(ringPath, err)
	switch {
	case err == nil:
		for _, ri := range r.Records() {
			p := Pending{Where: "ring", Name: ri.String(), State: "ready", Attempt: 1}
			if ri.Claimed {
				p.State, p.Pid = "running", ri.Pid
			}
			out = append(out, p)
		}
		r.Close()
	case errors.Is(err, fs.ErrNotExist):
	case damaged:
		// Its records cannot be listed until a master salvages them into
		// spool files (see ring.SalvageFile); the files still can be.
	default:
		return nil, err
	}
	now := time.Now()
	files, err := listFiles(abs, "", now)
	if err != nil {
		return nil, err
	}
	out = append(out, files...)
	dead, err := listDead(abs)
	if err != nil {
		return nil, err
	}
	return append(out, dead...), nil
}

func listFiles(dir, sub string, now time.Time) ([]Pending, error) {
	ents, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		if sub != "" && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("spool directory %s: %w", filepath.Join(dir, sub), err)
	}
	var out []Pending
	for _, e := range ents {
		name := e.Name()
		if sub == "" && e.IsDir() && isDigits(name) {
			more, err := listFiles(dir, name, now)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
			continue
		}
		if !strings.HasPrefix(name, spooldir.Prefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		rel := filepath.Join(sub, name)
		p := Pending{Where: "file", Name: rel, Path: filepath.Join(dir, rel), State: "ready", Attempt: attemptOf(name), Priority: sub}
		if mt := fi.ModTime().UTC(); mt.After(now) {
			p.At = &mt
			p.State = "scheduled"
			if p.Attempt > 1 {
				p.State = "retry"
			}
		}
		if p.Attempt > 1 {
			if note, err := os.ReadFile(filepath.Join(dir, ErrorsDir, name+".error")); err == nil {
				p.Error = lastErrorOf(string(note))
			}
		}
		if pid, locked, err := spoolfile.LockHolder(p.Path); err == nil && locked {
			p.State, p.Pid = "running", pid
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func listDead(dir string) ([]Pending, error) {
	dead := filepath.Join(dir, DeadDir)
	ents, err := os.ReadDir(dead)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dead-letter directory %s: %w", dead, err)
	}
	var out []Pending
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, spooldir.Prefix) || strings.HasSuffix(name, ".error") || !e.Type().IsRegular() {
			continue
		}
		p := Pending{Where: "file", Name: filepath.Join(DeadDir, name), Path: filepath.Join(dead, name), State: "dead", Attempt: attemptOf(name)}
		if note, err := os.ReadFile(p.Path + ".error"); err == nil {
			p.Error = lastErrorOf(string(note))
		}
		out = append(out, p)
	}
	return out, nil
}

// lastErrorOf extracts the "last error:" line of a NAME.error file.
func lastErrorOf(note string) string {
	for _, line := range strings.Split(note, "\n") {
		if v, ok := strings.CutPrefix(line, "last error: "); ok {
			return v
		}
	}
	return strings.TrimSpace(note)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// Requeue puts dead tasks of the spool directory dir back: each is written
// again as a fresh spool file (attempt 1, into its priority directory if it
// has one), then its dead file and NAME.error are removed. names are bare
// file names in the dead-letter directory; none means all. It returns the
// new spool files' paths.
func Requeue(dir string, names ...string) ([]string, error) {
	w, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{})
	if err != nil {
		return nil, err
	}
	dead := filepath.Join(w.Dir(), DeadDir)
	if len(names) == 0 {
		ents, err := os.ReadDir(dead)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("dead-letter directory %s: %w", dead, err)
		}
		for _, e := range ents {
			if n := e.Name(); strings.HasPrefix(n, spooldir.Prefix) && !strings.HasSuffix(n, ".error") {
				names = append(names, n)
			}
		}
	}
	var out []string
	for _, name := range names {
		name = filepath.Base(name)
		path := filepath.Join(dead, name)
		f, err := spoolfile.Open(path) // locked: two requeues never both copy it
		if err != nil {
			return out, fmt.Errorf("requeue %s: %w", name, err)
		}
		t, err := f.Task()
		if err != nil {
			f.Close()
			return out, fmt.Errorf("requeue %s: %w", name, err)
		}
		np, err := w.Write(t.Clone())
		if err != nil {
			f.Close()
			return out, fmt.Errorf("requeue %s: %w", name, err)
		}
		if err := f.Remove(); err != nil {
			return out, fmt.Errorf("requeue %s: written again as %s, but the dead copy stays: %w", name, np, err)
		}
		os.Remove(path + ".error")
		out = append(out, np)
	}
	if r, err := ring.Open(filepath.Join(w.Dir(), ring.FileName), ring.Options{}); err == nil {
		r.NoteFile()
		r.Close()
	}
	return out, nil
}
