package main

import (
	"context"
	"fmt"

	"github.com/gospool/gospool/spooler"
)

const requeueHelp = `Put dead tasks of the spool directory DIR back: each NAME (a file in
DIR/gospool-dead/, as "gospool ls" shows it; all of them when no NAME is
given) is written again as a fresh spool file, attempt 1, in DIR or its
priority directory, and its dead copy and NAME.error are removed. Prints the
new spool files, one per line.`

func cmdRequeue(_ context.Context, a *app, args []string) error {
	flags := newFlagSet("requeue", "gospool requeue --spooler DIR [NAME...]", requeueHelp)
	var dirs listValue
	flags.Var(&dirs, "spooler", "the spool directory `DIR`")
	names, err := flags.parse(a, args)
	if err != nil {
		return err
	}
	dir, err := oneDir(dirs, "requeue")
	if err != nil {
		return err
	}
	if err := checkDir(dir); err != nil {
		return err
	}
	paths, err := spooler.Requeue(dir, names...)
	for _, p := range paths {
		fmt.Fprintln(a.stdout, p)
	}
	return err
}
