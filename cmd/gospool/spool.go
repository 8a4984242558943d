package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/task"
)

const spoolHelp = `Spool one task into the spool directory DIR, as uwsgi.spool() does.

The task's pairs are the KEY=VALUE arguments in order, split at the first
'='; keys may repeat and values may be empty. KEY "body" sets the task's body
instead of adding a pair, as uWSGI's Python API does. --at and --priority add
the "at" and "priority" pairs after them.

The task goes into the shared-memory ring while a gospool spooler is
attached to DIR's ring, else into a uWSGI spool file, which uWSGI and
gospool spoolers both run (a task with --priority or a future --at always
goes to a file). This is the rule of Go clients and Python's
gospool.spool() too. A ring this gospool cannot use (another release's, or
damaged) gets a warning on standard error and the task goes to a file. One
line is printed: the spool file's absolute path, or "ring RINGFILE" when
the task went into the ring.

A task with a priority gets a warning when the gospool spoolers serving DIR
run without --spooler-ordered: they never run priority directories, so it
waits for a spooler that does.

DIR must exist: create it, or start "gospool run --spooler DIR" first.`

func cmdSpool(ctx context.Context, a *app, args []string) error {
	flags := newFlagSet("spool", "gospool spool --spooler DIR [--at T] [--priority P] [--body-file F] KEY=VALUE...", spoolHelp)
	var dirs listValue
	flags.Var(&dirs, "spooler", "the spool directory `DIR` (must exist)")
	at := flags.String("at", "", "run the task not before the unix time `T` (seconds, a fraction allowed: 1700000000.5)")
	priority := flags.String("priority", "", "the task's priority `P` (digits; lower runs first; a sub-directory of DIR, as in uWSGI)")
	bodyFile := flags.String("body-file", "", "read the task's body from file `F` (\"-\": standard input)")
	pos, err := flags.parse(a, args)
	if err != nil {
		return err
	}
	dir, err := oneDir(dirs, "spool")
	if err != nil {
		return err
	}
	t, err := buildTask(pos)
	if err != nil {
		return err
	}
	if set(flags, "at") {
		if _, err := task.ParseAt([]byte(*at)); err != nil {
			return usageErrorf("--at %q: want a unix time in seconds, such as 1700000000 or 1700000000.5", *at)
		}
		t.Add(task.KeyAt, []byte(*at))
	}
	if set(flags, "priority") {
		t.Add(task.KeyPriority, []byte(*priority))
		if _, _, err := t.Priority(); err != nil {
			return usageErrorf("--priority %q: want digits only, such as 5 (it names a sub-directory of DIR)", *priority)
		}
	}
	if set(flags, "body-file") {
		if *bodyFile == "" {
			return usageErrorf("--body-file is empty: name a file, or - for standard input")
		}
		if t.Body != nil {
			return usageErrorf("the body is given twice, by body=VALUE and by --body-file; give one")
		}
	}
	if len(t.Pairs) == 0 {
		return usageErrorf("nothing to spool: give at least one KEY=VALUE, such as task=resize")
	}
	if err := t.Validate(); err != nil {
		// A bad "at" or "priority" given as KEY=VALUE.
		return usageErrorf("%s", strings.TrimPrefix(err.Error(), "task: "))
	}
	if *bodyFile != "" {
		if t.Body, err = readBody(a, *bodyFile); err != nil {
			return err
		}
	}

	if err := checkDir(dir); err != nil {
		return err
	}
	c, err := spooler.NewClient(dir, spooler.ClientOptions{})
	if err != nil {
		// The ring cannot be used (another release's, damaged...): the
		// task still gets stored, as a spool file, which every spooler
		// (uWSGI, or gospool of any release) runs; the warning says why.
		files, ferr := spooler.NewClient(dir, spooler.ClientOptions{NoRing: true})
		if ferr != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "gospool spool: warning: %s; the task goes to a spool file instead\n", cleanError(err))
		c = files
	}
	defer c.Close()
	path, err := c.Spool(ctx, t)
	if err != nil {
		return fmt.Errorf("task not spooled: %s", cleanError(err))
	}
	if _, ok, _ := t.Priority(); ok && spooler.PriorityWaits(c.Dir()) {
		fmt.Fprintf(a.stderr, "gospool spool: warning: %s: the gospool spoolers serving it run without --spooler-ordered, "+
			"so this task (priority) waits until a spooler with it runs; restart them with --spooler-ordered, or spool without --priority\n", c.Dir())
	}
	ringPath := filepath.Join(c.Dir(), ring.FileName)
	if path == "" {
		fmt.Fprintf(a.stdout, "ring %s\n", ringPath)
	} else {
		fmt.Fprintln(a.stdout, path)
	}
	return c.Close()
}

// buildTask turns KEY=VALUE arguments into a task; KEY "body" sets the body.
func buildTask(pos []string) (*task.Task, error) {
	t := &task.Task{}
	for _, arg := range pos {
		key, value, ok := strings.Cut(arg, "=")
		switch {
		case !ok:
			if strings.HasPrefix(arg, "-") {
				return nil, usageErrorf("unknown flag %s (see gospool spool --help)", arg)
			}
			return nil, usageErrorf("argument %q is not KEY=VALUE: write it as key=value, such as task=resize", arg)
		case key == "":
			return nil, usageErrorf("argument %q has an empty key: write it as key=value", arg)
		case key == task.KeyBody:
			if t.Body != nil {
				return nil, usageErrorf("body=VALUE given twice; give the body once")
			}
			t.Body = []byte(value)
		default:
			t.Add(key, []byte(value))
		}
	}
	return t, nil
}

func readBody(a *app, name string) ([]byte, error) {
	if name == "-" {
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, fmt.Errorf("reading the body from standard input: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("--body-file: %w", err)
	}
	return b, nil
}

// checkDir reports a missing or unusable spool directory in the user's terms.
// uWSGI's writer does not create it either; the spooler does.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("spool directory %s does not exist: create it (mkdir -p %s) or start gospool run --spooler %s", dir, dir, dir)
	case err != nil:
		return fmt.Errorf("spool directory %s: %w", dir, unwrapPath(err))
	case !fi.IsDir():
		return fmt.Errorf("spool directory %s is not a directory: give --spooler the directory itself, not a file in it", dir)
	}
	return nil
}

// unwrapPath drops the "stat DIR: " part of an *fs.PathError whose path the
// message already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
