// Package bench measures the hand-off of tasks from producer processes to
// a spooler process, for `gospool bench`: the protocol between the bench
// process, the producers and the spooler's handler, the summary of a run
// (Result: the objects of `gospool bench --json`), and the table. It is
// written so that another implementation (uWSGI's spooler) can be
// measured the same way and printed alongside: one Result per
// implementation measured.
//
// # What is measured
//
// Hand-off: from just before the spool call in the producer to the first
// line of the spooler's handler, both read on CLOCK_MONOTONIC, which every
// process of a machine shares (ring.MonotonicNanos in Go,
// time.clock_gettime_ns(time.CLOCK_MONOTONIC) in Python). The producer puts
// its clock (T0) in the task; the handler, a no-op, takes the clock at its
// first line and records the difference. One value per task, into an HDR
// histogram (github.com/HdrHistogram/hdrhistogram-go, 1 ns to an hour, 3
// significant digits): p50, p90, p99, p99.9 and max.
//
// Spool call: the producer's clock after the spool call returns minus T0,
// per call; p50 and p99 over all producers.
//
// Throughput: tasks handled divided by the time from the first T0 to the
// last handler start. Paced, it is the rate asked for, unless the
// implementation cannot keep up with it.
//
// Tasks are numbered 0..Tasks-1; producer k of P sends k, k+P, k+2P...
// (Options.TasksOf). The handler records each number once: a task run
// twice (at-least-once delivery after a crash) counts once, and
// Result.Measured says how many distinct tasks were seen.
//
// # Pacing and coordinated omission
//
// Back to back (Rate 0), each producer spools its tasks as fast as its
// spool calls return. Paced, task n is due at start + n/Rate (all
// producers share one schedule and take turns); its producer sleeps until
// then. A producer that is late for a task sends it at once.
//
// A paced producer whose spool call blocks (a full ring lane waits for
// room; a uWSGI spool call writes and fsyncs a file) sends the following
// tasks late: measured from their own T0 alone, they would hide the very
// stall that delayed them (coordinated omission). The correction used here
// measures such a task from its intended send time instead, but only for
// the part of its lateness that the spool calls caused: the producer keeps
// a schedule in which only its spool calls take time,
//
//	s(j) = max(intended(j), s(j-1) + call(j-1))
//
// and task j carries Delay = s(j) - intended(j) (0 when the calls kept up),
// which is added to its hand-off. The producer's own lateness (a sleep that
// overslept, the process descheduled) is not counted: it is the load
// generator's, not the spooler's. This is the intended-send-time correction
// (as wrk2 does), not HdrHistogram's RecordCorrectedValue: the producer
// does not wait for the handler, so a slow hand-off delays no later task,
// and synthesizing values for it would count the same stall twice (the
// tasks sent meanwhile are measured anyway). Result.Delayed counts the
// tasks with a correction; back to back none has one.
//
// # How a run goes
//
// The bench process makes a Session: a temporary directory with the spool
// directory inside (SpoolDirName) and two FIFOs. It starts the
// implementation with P producers; for gospool, a master
// (package master) whose workers are the producers (Produce, with
// worker.Worker.Spool; or producer.py with gospool.spool for Python) and
// whose one spooler process runs Recorder.Handle. Each producer spools one
// warm-up task (not measured: it claims the producer's ring lane), says it
// is ready on the "ready" FIFO and blocks reading the "go" FIFO. When all
// are ready and the spooler has run the warm-up tasks, Session.Start
// writes the schedule's start and closes the last writer of "go": every
// producer sees EOF at once. Producers write their spool-call durations
// (calls-K files); the handler writes its samples once it has seen every
// task (the handoffs file: "N T0 HANDLED DELAY" lines); a failure is one
// line in an error-WHO file. The bench process reads them, Summarize builds
// the Result, and the session directory is removed.
//
// # uWSGI
//
// For `gospool bench --against-uwsgi`, Session.WriteUWSGI writes a uWSGI
// 2.0 configuration (plugins = python3, master) into a session of its
// own: the producers are uWSGI mules running producer.py with uwsgi.spool
// instead of gospool.spool (the mule's number stands for GOSPOOL_ID), and
// one uWSGI spooler on the session's spool directory runs a Python
// callable that records the tasks as Recorder does and writes the same
// handoffs file; it writes a "warmed" file once it has run every warm-up
// task. spooler-frequency is 1 (uWSGI's default is 30 s between scans).
//
// # Plots
//
// WritePlot draws each Result's hand-off histogram as an HdrHistogram
// percentile plot (gonum.org/v1/plot), SVG or PNG.
package bench
