// Package stats is the gospool master's stats server (`gospool run --stats
// ADDR`, master.Config.StatsAddr): uWSGI's stats server document and
// Prometheus metrics over HTTP, read at request time from what the
// master already shares with its children (the spool directories' rings,
// the scoreboard) and from the spool directories themselves. Nothing is
// polled in the background, and `gospool stats`, which reads the same
// files, keeps working without any server.
//
// # GET /stats (and GET /)
//
// One JSON object, indented, shaped like uWSGI 2.0's stats server document
// for what gospool has:
//
//	version        "gospool VERSION"
//	listen_queue   connections waiting in the accept queues of the
//	               workers' TCP listeners, summed (Linux TCP_INFO)
//	pid, uid, gid, cwd   the master's
//	sockets        [{name, queue, max_queue}]: the --listen sockets (queue
//	               and max_queue are 0 for unix sockets)
//	load           the workers busy now
//	workers        [{id, pid, accepting, requests, delta_requests, status,
//	               rss, vsz, last_spawn, respawn_count, cores, ...}]:
//	               status is "busy" or "idle"; requests are those the
//	               worker reported since it started (a --worker-cmd program
//	               reports none); one core with the same requests and
//	               in_request 1 while busy
//	spoolers       [{dir, pid, tasks, respawns, running}]: one per spooler
//	               process, as uWSGI has one per process of each directory;
//	               tasks counts the tasks run since the process started (it
//	               starts from 0 at each respawn, as uWSGI's), running is 1
//	               while it runs a task
//	gospool        what uWSGI's document has no place for:
//	  started, reloads                 the master's start (RFC 3339) and
//	                                   graceful reloads
//	  dirs: [{dir, ring, files, handoff, error}]
//	    ring       the ring's counters, with the keys of `gospool stats
//	               --json`'s "ring": spooled, spilled, done, retried,
//	               failed, ignored, corrupt, dead, in_flight, ready,
//	               claimed, fill (percent), sleepers, lanes, consumers
//	    files      {due, scheduled}: uWSGI spool files waiting
//	    handoff    {count, sum_seconds, buckets: [{le, count}]}: the
//	               hand-off latency histogram, cumulative as Prometheus's
//	  processes    the scoreboard, with the keys of `gospool stats --json`'s
//	               "master.processes", plus dir for spoolers
//
// Every key real uWSGI 2.0.21 writes at the top level, in workers (and
// their one core) and in sockets is there (a test reads uWSGI's own
// stats socket and compares), so that the tools written for uWSGI find
// what they index. What gospool does not count is always 0 or empty:
// listen_queue_errors, signal_queue, locks; in workers exceptions,
// harakiri_count, signals, signal_queue, running_time, tx, avg_rt, apps;
// in sockets proto (""), shared, can_offload. load is the number of busy
// workers; rss and vsz come from /proc/PID/statm. During a graceful reload
// both generations of a process are listed.
//
// # Raw JSON and HTTP on one address
//
// uWSGI's stats socket writes the document to whoever connects and closes
// (uwsgitop, and the Telegraf, Datadog and Netdata collectors, read it that
// way); with stats-http it speaks HTTP instead. [Server.Serve] does both:
// a client that sends a request within 200 ms gets HTTP, one that stays
// silent gets the raw document.
//
// # GET /metrics
//
// Prometheus's text format (client_golang), every series labelled with the
// spool directory, dir:
//
//	gospool_tasks_spooled_total     counter  published into the ring
//	gospool_tasks_spilled_total     counter  written as spool files instead
//	gospool_tasks_done_total        counter  handler succeeded (ring or file)
//	gospool_tasks_retried_total     counter  failed attempts written back for later
//	gospool_tasks_failed_total      counter  handler error or panic
//	gospool_tasks_ignored_total     counter  no handler took it
//	gospool_tasks_corrupt_total     counter  ring records dropped as corrupt
//	gospool_tasks_dead_total        counter  moved to the dead letters
//	gospool_tasks_in_flight         gauge    claimed from the ring, not settled
//	gospool_ring_fill_ratio         gauge    ring payload space in use, 0 to 1
//	gospool_ring_records{state}     gauge    ready or claimed records
//	gospool_spool_files{state}      gauge    due or scheduled spool files
//	gospool_handoff_latency_seconds histogram  publish to handler start
//
// and, from the scoreboard, gospool_process_respawns{role, number, dir}
// (gauge; dir is empty for workers), gospool_processes{role, state}
// (gauge) and gospool_master_reloads_total, plus client_golang's go_* and
// process_* series of the master process. The task counters are the ring
// header's: they count what every gospool process did with the directory
// since its ring was created, so they survive master restarts. A custom
// Collector reads them at scrape time.
//
// # Hand-off latency
//
// The hand-off latency of a ring task is the time from its producer's
// publish (the record's CLOCK_MONOTONIC stamp, spooler.Info.Spooled) to the
// start of its handler in a spooler: the wait in the ring plus the
// wake-up. Tasks run from spool files (retries, "at", spilled tasks) have
// no such stamp and are not counted, so the histogram's count is the number
// of ring tasks started (a task put back after its spooler died is counted
// each time it starts).
//
// Only the spooler processes see it, and the master serves /metrics, so
// the figure travels through the scoreboard: each spooler slot holds a
// fixed-bucket histogram (scoreboard.HandoffBounds, 10µs to 10s and
// above, 15 counts and a sum of 8-byte atomics) that the spooler adds to as
// each ring task starts, with two atomic additions. The master adds
// a reaped spooler's histogram to its directory's total before it frees the
// slot, under the lock the server takes to read the live slots, so that no
// observation is lost or counted twice when spoolers die, recycle or
// reload. The histogram therefore covers the master's life: it starts
// from zero when the master starts, a counter reset to Prometheus. The ring
// file's format is untouched; the scoreboard's layout went to version 2
// (256-byte slots).
package stats
