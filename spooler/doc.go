// Package spooler runs uWSGI-compatible spooler tasks in Go: a [Client]
// hands tasks to a spool directory, a [Spooler] runs handlers for them.
//
// A spool directory holds two kinds of pending task. Tasks that can run now
// travel through the directory's shared-memory ring (package
// [github.com/gospool/gospool/spooler/ring]) while a gospool spooler is
// attached to it: no file, no syscall when the spooler is awake,
// microseconds from Spool to handler. Tasks that must wait (an `at` in the
// future, a retry, a `priority`), that do not fit the ring, that arrive
// while the ring is full or while no gospool spooler is attached are uWSGI
// spool files
// (package [github.com/gospool/gospool/spooler/spoolfile]), byte for byte
// what uWSGI 2.0.21 writes and reads, so gospool and uWSGI can share the
// directory.
//
// # Where a task goes
//
// One rule for every gospool producer: a [Client] (and so a Go worker's
// worker.Spool and a [Router]), `gospool spool`, and Python's
// gospool.spool(). A task goes into the directory's ring only while a
// gospool spooler process is attached to the ring; otherwise it is written
// as a uWSGI spool file. Ring records are run by gospool spoolers only, but
// they survive any crash and restart and run when a gospool spooler
// attaches; spool files are run by uWSGI and gospool spoolers alike. So a
// task never lands where no spooler serving the directory would run it:
// when gospool is not running (not started yet, or stopped while uWSGI
// spoolers serve the directory again), tasks are files that uWSGI runs.
//
// "Attached" is read from the ring header's consumer table on every spool
// call ([ring.Attachment]: one shared load on the hot path, the kernel's
// locks asked once a second). A spooler's clean stop (a shutdown, a
// --spooler-max-tasks recycling) is seen by the next call; a spooler killed
// outright, within a second. While a master respawns its only spooler,
// tasks are files for those milliseconds: slower, just as safe. A task
// that reaches the ring just as the last spooler goes away waits in the
// ring file for the next one, as the tasks of a stopped master do.
//
// Even with a spooler attached, a task goes to a file when it must wait
// (an `at` in the future, a retry), when it has a `priority` (a numbered
// sub-directory, as in uWSGI), when its ring lane is full, when it is
// bigger than a lane accepts, or when every lane is taken.
//
// Priority sub-directories are run only by spoolers started with
// --spooler-ordered (Config.Ordered), as in uWSGI. Spoolers without it keep
// an [UnorderedMark] file in the directory; while they are attached,
// `gospool spool --priority` and Python's spool() with a priority warn once
// that the task will wait, and `gospool ls` and `gospool stats` show such
// tasks as waiting for an ordered spooler ([PriorityWaits]).
//
// # Handlers
//
// A [HandlerFunc] returns nil for uWSGI's SPOOL_OK, [ErrIgnore] for
// SPOOL_IGNORE, [ErrRetry] for a SPOOL_RETRY asked for on purpose (a
// heartbeat that runs again after Config.RerunDelay, by default the scan
// period, as uWSGI reruns it at its next scan; never a failure, never
// counted toward Config.MaxRetries), and any other error (or a panic) for
// a failed attempt, retried with backoff and buried after MaxRetries. Handlers
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
// # Stopping
//
// Cancelling Run's context is a quick stop: running handlers see their
// context cancelled at once, and their tasks are retried. [Spooler.Shutdown]
// is a graceful one, like http.Server.Shutdown: Run takes no new task and
// returns once the running handlers have finished; only if Shutdown's own
// context ends first are they cancelled. After Config.MaxTasks tasks Run
// likewise lets the running handlers finish, then returns [ErrMaxTasks] so
// that a supervisor starts a fresh process.
//
// # Harakiri
//
// With Config.Harakiri, a handler still running after that long has its
// task settled at once as a failed attempt (retried with backoff, or buried
// after Config.MaxRetries), its context cancelled with a cause wrapping
// [ErrHarakiri], and a "*** HARAKIRI ON THE SPOOLER (pid: N) ***" log line
// naming the task. Go cannot kill a goroutine: a handler that ignores its
// context keeps its concurrency slot until it returns, its late result is
// ignored, and the process stays busy in the eyes of Config.OnTaskStart and
// Config.OnTaskEnd, so that its master can see it stuck and kill it, as
// uWSGI's master kills a spooler process. Handlers that run a command
// should kill it when their context is cancelled.
//
// # Supervision
//
// Config.OnTaskStart and Config.OnTaskEnd are called around every handler
// call, on the goroutine that runs it, with the task's [Info] and the
// [Result] applied: enough for a supervisor to publish "busy since",
// "current task" and "tasks done" in shared memory. When they are nil the
// hot path does not build the Info.
//
// # Concurrency
//
// A Client is safe for concurrent use. A Spooler is configured before Run
// and runs Config.Concurrency handlers at once; handlers must be safe for
// concurrent use when that is more than one. Shutdown may be called from
// any goroutine, at any time.
package spooler
