// Package python runs uWSGI spooler task functions written in Python from a
// Go spooler: the handler behind `gospool run --spooler-import MODULE`.
//
// The directory holding this package is also the root of the Python package
// gospool (python/gospool): spool() and install() for producers,
// gospool.compat (stand-in uwsgi and uwsgidecorators modules) and
// gospool.runner (the process this package starts). The Python files are
// embedded in the Go binary ([PackageDir] extracts them), so the Go side
// needs no installed Python package, only an interpreter.
//
// A [Pool] gives a [spooler.HandlerFunc]: each task is run by a long-lived
// `python3 -m gospool.runner --import MODULE...` process, one per
// concurrency slot, which imports the task modules once with gospool's
// uwsgi and uwsgidecorators modules in place and then calls
// `uwsgi.spooler(env)` per task, as a uWSGI spooler does. The result codes
// are uWSGI's; the pipe protocol between the two is described in runner.go.
//
// # Where the Python files go
//
// The runners import the embedded package from disk, so [PackageDir]
// writes it once per version of its contents, to
// $XDG_CACHE_HOME/gospool/python-HASH (an absolute XDG_CACHE_HOME only),
// else ~/.cache/gospool/python-HASH. When the home cannot be written (a
// service account whose home is / or /nonexistent, a read-only home), it
// goes to $TMPDIR/gospool-UID/python-HASH instead (/tmp without TMPDIR),
// without a warning. The gospool directory is made mode 0700, and one
// another user owns or may write to is not used. Old python-HASH
// directories are not removed: they are a few hundred KiB each, and
// deleting any of them is safe while no gospool runs from it.
package python
