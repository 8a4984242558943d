// Command gospool runs and feeds gospool spoolers: a uWSGI-compatible
// spooler whose tasks travel through a shared-memory ring in the spool
// directory, or as uWSGI spool files that uWSGI and gospool spoolers share.
//
// Usage:
//
//	gospool run     --spooler DIR --spooler-exec CMD [--spooler-processes K] [--workers N --worker-cmd CMD] ...
//	gospool spool   --spooler DIR [--at T] [--priority P] [--body-file F] KEY=VALUE...
//	gospool inspect [--json] FILE...
//	gospool stats   --spooler DIR [--json]
//	gospool ls      --spooler DIR [--json]
//	gospool requeue --spooler DIR [NAME...]
//	gospool demo    [--keep]
//	gospool bench   [--json] [--producers N] [--tasks N] [--rate R] [--python]
//	gospool version
//	gospool help [COMMAND]
//
// Every command accepts --help. Flags may come before or after the
// arguments; "--" ends the flags. A failure is reported as one line on
// standard error, "gospool COMMAND: what is wrong", with exit status 2 for
// a mistake in the command line and 1 for a failure at run time.
//
// # gospool demo
//
// The quick start (go run ./cmd/gospool demo): in one process, a spooler
// with Go handlers on a temporary spool directory and a client that spools
// ten tasks into it. It prints each hand-off and each run with a timestamp:
// most tasks go through the ring; one with an "at" two seconds ahead waits
// in a spool file; one with a 300 KiB body is spilled to a file; one fails
// once and is retried. Then it prints the ring's counters and exits 0, or 1
// when the tasks did not all run within 30 seconds. --keep keeps the
// directory and prints its path.
//
// # gospool run
//
// Runs a gospool master in the foreground: K spooler processes on each DIR
// (created when missing) and, with --workers, N worker processes running
// --worker-cmd. The master respawns a child that dies, with uWSGI's log
// lines, and its children die with it. A spooler takes tasks from DIR's
// ring and from the uWSGI spool files in DIR (and, with --spooler-ordered,
// in its numeric priority sub-directories, lower numbers first), sees new
// files at once through inotify, and runs the shell command CMD (/bin/sh -c
// CMD) for each. The command reads the task on standard input as one line
// of JSON ending in a newline (so --spooler-exec cat prints one line per
// task), the object that inspect --json prints plus "body_base64" when
// the task has a body, and finds in its environment GOSPOOL_TASK_NAME (the
// spool file's name, or ring:LANE:SEQ), GOSPOOL_TASK_PATH (the file's path,
// or RINGFILE#LANE:SEQ), GOSPOOL_ATTEMPT (1, then 2 on the first retry...)
// and GOSPOOL_SPOOLER_DIR. Its standard output and error are gospool's.
// Exit status 0 means done (uWSGI's SPOOL_OK); anything else means run it
// again later (SPOOL_RETRY).
//
// With --spooler-import MODULE instead of --spooler-exec, the tasks run
// Python task functions written for uWSGI's spooler, unchanged: Python
// runner processes (package python; one per concurrency slot, reused) import
// the modules with gospool's stand-in uwsgi and uwsgidecorators modules and
// call uwsgi.spooler(env) per task, with uWSGI's result codes. A task that
// raises, or whose runner dies, is retried.
//
// Flags:
//
//	--spooler DIR                a spool directory (repeat for several)
//	--spooler-exec CMD           the command run per task (this or --spooler-import)
//	--spooler-import MODULE      a Python task module (repeatable; a name or a .py path)
//	--spooler-python PATH        the interpreter of --spooler-import (default python3)
//	--spooler-processes K        spooler processes per DIR (default 1)
//	--spooler-frequency S        scan DIR every S seconds (default 30; 0: never)
//	--spooler-max-tasks N        recycle a spooler process after N tasks (0: never)
//	--spooler-harakiri S         kill a task's command after S seconds; the task is retried
//	--spooler-busy-poll          poll the ring instead of sleeping: lowest latency, one CPU
//	--spooler-concurrency N      tasks run at once per spooler process (default 1)
//	--spooler-retry-delay S      first retry after S seconds (default 1), then doubling
//	--spooler-retry-max-delay S  up to S seconds (default 300)
//	--spooler-quiet              no log line per task
//	--spooler-ordered            also run DIR/P/ priority directories, lower P first
//	--spooler-max-retries N      after N failed retries, move the task to DIR/gospool-dead/
//	--workers N                  worker processes running --worker-cmd
//	--worker-cmd CMD             the workers' command, run as /bin/sh -c "exec CMD"
//	--listen ADDR                a socket the master opens for the workers (repeatable)
//	--harakiri S                 kill a worker busy on one reported request for longer
//	--max-requests N             recycle a worker after N reported requests
//	--reload-mercy S             SIGKILL a child still alive S seconds after it was asked to stop (default 60)
//	--socket ADDR                accept uWSGI remote spool packets (modifier1 17) on host:port or a unix socket
//	--buffer-size BYTES          the largest remote packet accepted (default 4096, as uWSGI)
//	--stats ADDR                 serve the master's stats over HTTP on host:port or a unix socket
//
// A worker finds the listeners at descriptors 5 and up and the rest in
// GOSPOOL_* variables; the contract is in package worker (env.go).
//
// --ini FILE reads a uWSGI ini file ([uwsgi], or FILE:SECTION), as uWSGI
// 2.0.21 reads it (magic variables, $(ENV), includes): spooler, spooler-import,
// spooler-processes, spooler-frequency, spooler-ordered, spooler-quiet,
// spooler-max-tasks, spooler-harakiri, buffer-size, processes/workers (with
// --worker-cmd), socket and http-socket (as --listen), harakiri,
// max-requests, reload-mercy, stats (and stats-server); master,
// die-on-term and stats-http are accepted. Flags
// given on the command line win; every other option is reported once as
// not used, with "did you mean" when it is one or two typos (a byte added,
// dropped, changed, or two swapped) away from a known option. Bad values
// and lines gospool cannot read are errors, exit status 2 before anything
// starts: every one in the file (and the files it includes) is reported, a
// line each naming the file, line and option.
//
// --stats ADDR is uWSGI's stats server, served by the master, raw (the
// document to a client that connects and only reads, as uWSGI's stats
// socket, for uwsgitop) and over HTTP (as uWSGI's with stats-http) on the
// same address: GET /stats (or /) answers uWSGI's stats
// document (pid, workers, and spoolers with dir, pid, tasks, respawns,
// running) plus a "gospool" object with each spool directory's ring
// counters (the keys of stats --json), spool files and hand-off latency
// histogram, and the scoreboard's processes; GET /metrics answers the same
// in Prometheus's text format (gospool_tasks_spooled_total,
// gospool_handoff_latency_seconds, ... with a dir label). The master logs
// "*** Stats server enabled on ADDR fd: N ***", and fails to start, exit
// status 1, when it cannot listen on ADDR. Package master/stats documents
// every key and series. gospool stats reads the same files without it.
//
// Signals to the master: SIGHUP reloads gracefully (new children start,
// the old ones finish their requests and tasks, the listeners never
// close); SIGTERM shuts down gracefully (children finish what they run);
// SIGINT and SIGQUIT shut down now (running commands get SIGTERM, SIGKILL
// 5 seconds later, and their tasks are retried later); a second signal
// during a shutdown kills every child at once. The exit status is 0. A
// command still running after --spooler-harakiri seconds is killed with
// SIGKILL (its process group), logged as "*** HARAKIRI ON THE SPOOLER (pid:
// P) ***", and its task retried.
//
// # gospool spool
//
// Spools one task into DIR, which must exist. Its pairs are the KEY=VALUE
// arguments in order, split at the first '='; keys may repeat and values
// may be empty. KEY "body" sets the body instead of a pair, as uWSGI's
// Python API does; so does --body-file F ("-" for standard input). --at T
// (a unix time, a fraction allowed) and --priority P (digits) add the "at"
// and "priority" pairs after the others.
//
// The task goes into DIR's ring when a gospool spooler is attached to it
// right now, else into a uWSGI spool file, which uWSGI spoolers can run as
// well; tasks with a priority or a future "at" always go to files. gospool
// spool prints one line: the spool file's absolute path, or
// "ring RINGFILE" when the task went into the ring.
//
// # gospool inspect
//
// Shows the task in each spool FILE without locking it. As text: the path,
// then "  KEY = VALUE" per pair in file order (Go-quoted when not valid UTF-8
// or holding control characters), then "  body: N bytes sha256 H" or
// "  body: none". With --json, one object per file and per line:
//
//	{"path": P, "vars": [[K, V], ...], "body_len": N, "body_sha256": H}
//
// where P is the path as given and K, V are JSON strings when the bytes are
// valid UTF-8, else {"base64": "..."}; pairs keep their order and
// duplicates. A ring file (gospool.ring) shows the ring's geometry and
// counters instead ({"path": P, "ring": {...}} with --json, the keys of
// stats --json). A file that cannot be read is reported on standard error
// and the others are still shown; the exit status is then 1. A file that is
// not a uWSGI spool file at all (its first byte is not 17, or the pairs
// after its header do not fit the size the header announces) is reported
// as such; a spool file cut short as truncated.
//
// # gospool stats
//
// Shows DIR's ring without disturbing it: the counters kept in the ring's
// header by every process that uses it (spooled, spilled, done, retried,
// failed, ignored, corrupt, in flight), the records ready and claimed right
// now, the fill of its payload space in percent, the consumers asleep, the
// lanes with a producer or with records, the spooler processes attached,
// and how many spool files wait in DIR and its priority sub-directories
// (due now, or scheduled for later by their "at"). With --json, one object:
//
//	{"dir": DIR, "ring": {"spooled", "spilled", "done", "retried", "failed",
//	  "ignored", "corrupt", "in_flight", "ready", "claimed", "fill", "sleepers",
//	  "lanes": [{"lane", "owner_pid", "ready", "claimed", "writing"}],
//	  "consumers": [{"entry", "pid", "tasks", "since"}]},
//	 "files": {"due", "scheduled"}}
//
// "fill" is a percentage and "since" an RFC 3339 time. A DIR no gospool
// spooler has served has no ring, which is an error.
//
// # gospool ls
//
// Lists every pending task of DIR: the ring's records, the spool files
// (priority directories included) and the dead letters, each with its state
// (ready, scheduled at T, retry N at T, running in pid P, dead with its last
// error). --json prints one object per task:
//
//	{"where": "ring"|"file", "name", "path", "state", "at", "attempt", "pid",
//	 "priority", "error"}
//
// # gospool requeue
//
// Puts dead tasks back (all, or the NAMEs given): each is written again as
// a fresh spool file, attempt 1, and its dead copy and NAME.error removed.
//
// # gospool bench
//
// Measures the hand-off from producer processes to a spooler process: it
// starts a gospool master on a temporary spool directory (removed at the
// end) with one spooler process, whose handler does nothing but take the
// time, and --producers N worker processes (default 2; Go, or Python with
// --python, which needs python3 and uses the gospool package built into
// the binary) that spool --tasks N tasks in all (the total across the
// producers; default 20000), back to back or paced at --rate R tasks per
// second in all (0, the default: back to back). Each producer spools one
// warm-up task first, and all start together.
//
// Hand-off is from just before the spool call in the producer to the first
// line of the handler, on CLOCK_MONOTONIC, into an HDR histogram
// (hdrhistogram-go). Paced, a task its producer sent late because earlier
// spool calls blocked is measured from its intended send time (the
// coordinated-omission correction; internal/bench documents it). It prints
// a table: hand-off p50, p90, p99, p99.9 and max, spool call p50 and p99,
// throughput (tasks from the first spooled to the last handled), with
// units chosen per value. --json prints a list, one object per
// implementation measured:
//
//	{"impl": "gospool", "producers": N, "tasks": N, "rate": R,
//	 "handoff_ns": {"p50", "p90", "p99", "p999", "max"},
//	 "spool_call_ns": {"p50", "p99"}, "throughput_per_s": X,
//	 "producer_lang": "go"|"python", "measured": N, "co_delayed": N,
//	 "spilled": N}
//
// where "measured" counts the distinct tasks the handler saw (every one,
// once), "co_delayed" those carrying the correction, and "spilled" (left
// out when 0) those that went through spool files. When standard error is
// a terminal a counter of the tasks handled is drawn on it; otherwise
// nothing is written there unless the run fails. The run fails (exit 1)
// when a producer or the spooler dies, or when no task is handled for 30
// seconds.
//
// # gospool version
//
// Prints one line: the module version the binary was built from (v1.2.3
// from go install ...@v1.2.3; a pseudo-version such as
// v0.0.0-20261128052554-8b05511528db, "+dirty" with uncommitted changes,
// from a build in a git checkout), or "(devel)" with the git revision when
// Go recorded no version, then the Go version. "gospool --version" is the
// same command.
//
// # Not in this release
//
// gospool bench --against-uwsgi and --plot FILE belong to the command line
// contract and come later: giving them exits with status 2.
package main
