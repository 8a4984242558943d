// Package spooler runs uWSGI-compatible spooler tasks in Go: a [Client]
// hands tasks to a spool directory, a [Spooler] runs handlers for them.
//
// A spool directory holds two kinds of pending task. Tasks that can run now
// travel through the directory's shared-memory ring (package
// [github.com/gospool/gospool/spooler/ring]): no file, no syscall when the
// spooler is awake, microseconds from Spool to handler. Tasks that must
// wait (an `at` in the future, a retry, a `priority`), that do not fit the
// ring, or that arrive while the ring is full are uWSGI spool files
// (package [github.com/gospool/gospool/spooler/spoolfile]), byte for byte
// what uWSGI 2.0.21 writes and reads, so gospool and uWSGI can share the
// directory.
//
// # Handlers
//
// A [HandlerFunc] returns nil for uWSGI's SPOOL_OK, [ErrIgnore] for
// SPOOL_IGNORE and any other error (or a panic) for SPOOL_RETRY. Handlers
// are chosen by the task's name: its `ud_spool_func` key (what Python's
// uwsgidecorators writes), else its `task` key; [Spooler.HandleDefault]
// takes the rest. [TaskInfo] tells a handler which file or ring record it
// runs and which attempt this is.
//
// # Delivery
//
// At least once, like uWSGI: a task whose Spool call returned is stored (in
// the ring's file mapping or in a spool file) and runs even if any process
// dies; a spooler killed while running a task leaves it to another spooler,
// or to itself once restarted. A retry is a new spool file due after an
// exponential, jittered backoff; its attempt number is in its name
// (".retryN"), so it survives restarts and stays invisible to uWSGI, which
// runs such a file like any other.
//
// # Concurrency
//
// A Client is safe for concurrent use. A Spooler is configured before Run
// and runs Config.Concurrency handlers at once; handlers must be safe for
// concurrent use when that is more than one.
package spooler
