package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// app is what a subcommand talks to: its standard streams. Subcommands never
// touch os.Stdout and friends directly, so that what they print is easy to
// follow and to redirect.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// command is one subcommand.
type command struct {
	name    string
	summary string // one line for `gospool help`
	run     func(ctx context.Context, a *app, args []string) error
	later   bool // in the contract, not built yet
}

// commands in the order `gospool help` lists them.
var commands = []command{
	{name: "run", summary: "run a master: spooler processes executing a command per task, and workers", run: cmdRun},
	{name: "spool", summary: "spool one task into a spool directory", run: cmdSpool},
	{name: "inspect", summary: "show the tasks in spool files (or a ring file's state)", run: cmdInspect},
	{name: "stats", summary: "show a spool directory's ring counters, lanes, consumers and pending files", run: cmdStats},
	{name: "demo", summary: "the quick start: a spooler, a client and ten tasks, in one process", run: cmdDemo},
	{name: "ls", summary: "list the pending, running and dead tasks of a spool directory", run: cmdLs},
	{name: "requeue", summary: "put dead tasks back into their spool directory", run: cmdRequeue},
	{name: "bench", summary: "measure hand-off latency, spool call and throughput: producer processes into a spooler", run: cmdBench},
	{name: "version", summary: "print gospool's version (also gospool --version)", run: cmdVersion},
	{name: "help", summary: "show this help, or a command's with `gospool help CMD`"},
}

func main() {
	os.Exit(mainArgs(context.Background(), &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}

// mainArgs runs the command line args and returns the exit status: 0 for
// success, 2 for a usage error, 1 for anything that went wrong at run time.
// Every failure is reported as one line on stderr, "gospool CMD: what".
func mainArgs(ctx context.Context, a *app, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(a.stderr, "gospool: no command given; the commands are "+commandList()+" (gospool help shows more)")
		return 2
	}
	name, rest := args[0], args[1:]
	if name == "help" && len(rest) > 0 && rest[0] != "help" {
		// `gospool help spool` is `gospool spool --help`.
		name, rest = rest[0], []string{"--help"}
	}
	switch name {
	case "help", "-h", "-help", "--help":
		printMainUsage(a.stdout)
		return 0
	case "--version", "-version":
		name = "version"
	}
	for _, c := range commands {
		switch {
		case c.name != name:
		case c.later:
			return report(a, name, usageErrorf("this command is part of the contract but not in this release yet"))
		default:
			return report(a, name, c.run(ctx, a, rest))
		}
	}
	fmt.Fprintf(a.stderr, "gospool: unknown command %q; the commands are %s (gospool help shows more)\n", name, commandList())
	return 2
}

func commandList() string {
	var names []string
	for _, c := range commands {
		if !c.later {
			names = append(names, c.name)
		}
	}
	return strings.Join(names, ", ")
}

func printMainUsage(w io.Writer) {
	fmt.Fprint(w, `gospool is a uWSGI-compatible spooler: tasks handed over through a shared-memory
ring, or as uWSGI spool files that uWSGI and gospool spoolers share.

usage: gospool COMMAND [flags] [args]

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "gospool COMMAND --help" for a command's flags. Start with "gospool demo".
`)
}

// report prints err as one line and maps it to the exit status.
func report(a *app, name string, err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return 0
	case errors.Is(err, errReported):
		return 1
	case errors.As(err, &ue):
		for _, msg := range ue.msgs {
			fmt.Fprintf(a.stderr, "gospool %s: %s\n", name, oneLine(msg))
		}
		return 2
	}
	fmt.Fprintf(a.stderr, "gospool %s: %s\n", name, oneLine(cleanError(err)))
	return 1
}

// usageError is a mistake in the command line: exit status 2. It has one
// message per mistake, each printed as its own line: an ini file can have
// several bad lines, and the user fixes them all in one go.
type usageError struct{ msgs []string }

func (e *usageError) Error() string { return strings.Join(e.msgs, "\n") }

func usageErrorf(format string, args ...any) error {
	return &usageError{msgs: []string{fmt.Sprintf(format, args...)}}
}

var (
	// errHelpShown: --help printed the usage; exit 0.
	errHelpShown = errors.New("help shown")
	// errReported: the failure was already printed (inspect reports each
	// file as it goes); exit 1 without another line.
	errReported = errors.New("failure already reported")
)

// cleanError drops the package prefixes ("spoolfile: ", "spooler: ") that
// mean something to a Go caller and nothing to a command line user.
func cleanError(err error) string {
	s := err.Error()
	for _, p := range []string{"spoolfile: ", "spooler: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(s)
}

// flagSet is a subcommand's FlagSet plus the text of its --help.
type flagSet struct {
	*flag.FlagSet
	synopsis    string // "gospool spool --spooler DIR ..."
	description string // what the command does, a few lines
}

func newFlagSet(name, synopsis, description string) *flagSet {
	fs := flag.NewFlagSet("gospool "+name, flag.ContinueOnError)
	// The flag package's own messages and usage dumps would be several
	// lines; parse reports one line instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, synopsis: synopsis, description: description}
}

// parse parses args, flags and positional arguments in any order: flags may
// follow positional arguments ("KEY=VALUE --spooler DIR"). A "--" ends the
// flags; everything after it is positional. It returns the positional
// arguments, errHelpShown after printing the usage for -h/--help, or a
// usageError.
func (fs *flagSet) parse(a *app, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printUsage(a.stdout)
				return nil, errHelpShown
			}
			return nil, usageErrorf("%s (see %s --help)", dashes(err.Error()), fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// dashes rewrites the flag package's "-name" to the "--name" that gospool's
// documentation uses.
func dashes(msg string) string {
	for _, p := range []string{"for flag -", " for -", "not defined: -", "needs an argument: -"} {
		if i := strings.Index(msg, p); i >= 0 {
			j := i + len(p) - 1
			return msg[:j] + "-" + msg[j:]
		}
	}
	return msg
}

// printUsage writes the --help text: synopsis, description, flags.
func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", fs.synopsis, strings.TrimSpace(fs.description))
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprint(w, "\nflags:\n")
			first = false
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintln(w, line)
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "[]" {
			usage += " (default " + def + ")"
		}
		fmt.Fprintf(w, "        %s\n", usage)
	})
}

// listValue is a repeatable string flag.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }
func (l *listValue) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// oneDir returns the single --spooler DIR of spool and stats.
func oneDir(dirs listValue, sub string) (string, error) {
	switch len(dirs) {
	case 0:
		return "", usageErrorf("missing --spooler DIR: name the spool directory (see gospool %s --help)", sub)
	case 1:
		if dirs[0] == "" {
			return "", usageErrorf("--spooler is empty: name the spool directory")
		}
		return dirs[0], nil
	}
	return "", usageErrorf("--spooler given %d times; give one spool directory", len(dirs))
}

// intValue is an integer flag with a lower bound.
type intValue struct {
	n   *int
	min int
}

func (v intValue) String() string {
	if v.n == nil {
		return ""
	}
	return strconv.Itoa(*v.n)
}

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("want a whole number")
	}
	if n < v.min {
		return fmt.Errorf("want %d or more", v.min)
	}
	*v.n = n
	return nil
}

// set reports whether the flag was given on the command line.
func set(fs *flagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}
