// Package scoreboard is the master's table of its child processes, shared
// with them through a small memory-mapped file, the way uWSGI keeps its
// workers' state in shared memory.
//
// The master writes who runs in each slot (pid, role, number, respawns);
// each child writes what it is doing (busy since when, on which task or
// request, how many it finished) and spoolers how long their ring tasks
// waited to be handed over (a fixed-bucket histogram, for the master's
// stats server). The master reads the busy clock once a
// second to enforce harakiri, and `gospool stats` reads the whole table
// without asking anyone: the file is `gospool.procs` in the first spool
// directory, with a symbolic link of the same name in every other one.
//
// Nothing in the file is needed for correctness of the spool itself: tasks
// live in the ring and in spool files. A damaged scoreboard can only make
// stats wrong or harakiri late; the master recreates it at every start.
//
// Every word two processes share is an aligned atomic. The current-task name
// is not atomic; it is bracketed by the busy-since word, which readers load
// before and after the name and discard the name when the two differ (a
// seqlock in which the clock is the sequence).
package scoreboard
