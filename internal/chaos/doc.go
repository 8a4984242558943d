// Package chaos holds gospool's torture run (issue 10): a whole service,
// real processes, SIGKILL every few milliseconds, and an accounting that
// proves no acknowledged task is lost, none runs torn, and every duplicate
// run has a reason. It has tests only; this file is its manual.
//
// # What runs
//
// TestChaos builds the gospool command and testdata/worker (a Go worker
// that spools through package worker), with -race when the test has it,
// makes a small ring in a temporary spool directory (4 lanes of 16 slots
// and 8 KiB: lanes wrap every few tasks, fill, and spill to spool files),
// and starts:
//
//	gospool run --spooler DIR --spooler-import testdata/chaostasks.py \
//	    --spooler-processes 2 --spooler-concurrency 3 \
//	    --workers 2 --worker-cmd testdata/worker ...
//	python3 testdata/producer.py chaos ...   (three; not the master's children)
//
// so there are five producers for four lanes. Every task has a unique id
// (producer, pid, a random word, a sequence number), random data, sometimes
// a body or a size over what a lane takes, and a checksum of all of it.
// Each producer spools bursts of 1-6 tasks 60-200 ms apart (some 130 tasks
// a second in all) and logs to LOGS/producer-NAME.log, one O_APPEND write
// per line: I (the id exists), S (before each spool call), A (after the
// call returned: acknowledged; with "ring" or "file", where it went). The
// task function (testdata/chaostasks.py, in the Python runners) checks the
// checksum, then by a hash of the id returns at once, sleeps, runs a short
// command, or fails once (raising, or returning SPOOL_RETRY, so tasks take
// the retry path); when it succeeds it appends "D ID PID SPOOLER_PID START
// END ok|bad" to LOGS/runs.log.
//
// # The chaos
//
// For -chaos.duration (20 s by default), every 5 to 50 ms the harness sends
// SIGKILL to a process picked by role: a Python runner, a command a task
// started, a Python producer, a Go worker or a spooler (each role with a
// least age for its victims, which bounds its kill rate), and every 5 to
// 15 s the master, restarted 50-300 ms later (its children die with it).
// Half the masters it restarts run for 2-4 s with a Go failpoint
// (internal/failpoint; the names are found in the sources): their Go
// workers park at that step of the ring's push and are killed there. One
// Python producer start in eight parks likewise at a step of
// python/gospool/_ring.py's push. The other Python producers get
// exceptions: before one spool call in three a SIGALRM timer is armed 5 us
// to 5 ms ahead, and its handler raises wherever the producer is then,
// mostly inside gospool's code (opening the ring, taking a lane over,
// writing a spool file); the producer spools the interrupted task again, as
// a web app's retried request would, and gives its lane back now and then
// so that take-overs keep happening. chaos.out lists the kills.
//
// # The verdict
//
// Then the load stops, every acknowledged task must run (within
// -chaos.drain, 90 s by default) and the ring and directory empty. The test
// prints one JSON line and fails when
//
//   - lost > 0: a task acknowledged, never run and not dead-lettered;
//   - torn > 0: a run whose payload checksum is wrong, or of an id no
//     producer made;
//   - dup_unexplained > 0: a task ran again with no kill of the process
//     that ran it before (between the two runs), of its spooler (before
//     the rerun) or of the master, and no repeated spool call by its
//     producer (after an injected exception) to account for it;
//   - the ring is not at rest: something READY or CLAIMED, or the sleepers
//     count not equal to the live consumers whose entry says they sleep;
//   - the paced hand-off from a Python spool call to the task function
//     (200 probes at 200/s) has a median over twice the one measured
//     before the chaos plus 2 ms, six times in a row, 1 to 5 s apart;
//   - a spool call failed by itself, the master exited on its own, a
//     producer died of anything but our SIGKILL, or the master's log shows
//     a data race, a panic or a fault.
//
// The JSON line has: seed, kills per role, failpoint parks and masters,
// master starts, produced, acknowledged (and through the ring), spool
// retries, ran (distinct ids), runs, lost, torn, duplicates explained by a
// kill or an exception and unexplained, dead letters, spool files left
// torn by killed writers, drain time, hand-off p50 before and after (each
// try), the ring at rest and its spooled, spilled and corrupt counters.
//
// # Running it
//
// The short form runs with the repository's tests (go test -race -count=1
// ./...) in about a minute; -short skips it; without python3 it skips,
// and fails under CI=true. The long form, with a seed printed by an earlier
// run to replay its choices (the timing of a run cannot be replayed):
//
//	go test ./internal/chaos -run TestChaos -chaos.duration 10m -chaos.seed N -v -timeout 30m
//
// (-timeout: the default 10 minutes is too short for it.) -chaos.keep DIR
// keeps the spool directory, the logs and every process's output in DIR;
// -chaos.kills=false runs the same load without kills, as a baseline.
package chaos
