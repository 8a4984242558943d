// Package master runs a program as a gospool master and its children: N
// worker processes sharing the master's listening sockets, and K spooler
// processes per spool directory draining its ring and spool files. It is
// uWSGI's master for a Go program, or for any command (Config.WorkerCmd).
//
// A Go service's main is one call; the same binary is master, worker and
// spooler, because Go cannot fork without exec: the master re-executes it
// with the role in the environment, and [Run] dispatches on it.
//
//	err := master.Run(ctx, master.Config{
//		Workers: 4,
//		Listen:  []string{":8080"},
//		Worker: func(ctx context.Context, w *worker.Worker) error {
//			return serveHTTP(ctx, w) // w.Listener(0), w.Spool(ctx, task)
//		},
//		Spoolers: []master.Spooler{{Dir: "/var/spool/app", Setup: register}},
//	})
//
// # What the master does
//
// It locks the spool directories, creates them and their rings, the
// scoreboard (master/scoreboard), the listeners and a life pipe, then
// starts the children with the descriptors and environment documented in
// worker/env.go. Children die with it: SIGKILL as their parent-death signal
// (set from a locked OS thread) and EOF on the life pipe.
//
// One master per spool directory: each master holds an OFD lock on
// DIR/gospool.master.lock ([LockFileName], which holds its pid) for its
// whole life, on a descriptor no child inherits. A second master on a
// served directory exits with an error naming the first one's pid; the
// kernel drops the lock when the master dies, kill -9 included, so a new
// master starts at once. uWSGI spoolers sharing the directory ignore the
// file.
//
// A ring whose header is damaged (the checksum, geometry or magic, or a
// truncated file) does not stop the master: it moves the file aside as
// gospool.ring.corrupt-TIME, writes each task in it whose record still
// checks out as a uWSGI spool file (ready and claimed ones: at least once),
// starts with a fresh ring, and logs one line with how many tasks were
// saved and lost (see spooler/ring's SalvageFile).
//
// A child that dies is respawned with uWSGI 2.0's log lines:
//
//	DAMN ! worker 1 (pid: 123) died, killed by signal 11 :( trying respawn ...
//	Respawned gospool worker 1 (new pid: 456)
//	OOOPS the spooler is no more...trying respawn...
//	spawned the gospool spooler on dir /var/spool/app with pid 789
//
// uWSGI's own name becomes gospool's in lines that name the product. When
// processes of one role die faster than one per second each, the master
// logs "worker respawning too fast !!! i have to sleep a bit (2
// seconds)..." and waits Config.ForkbombDelay, then respawns; it never gives
// up. uWSGI throttles workers only; gospool throttles spoolers too, so a
// spooler that cannot start does not spin a CPU. After every death the
// master recovers the rings at once: records a dead spooler was running are
// put back (they run again), and a dead worker's lane is freed, its
// half-written record (never acknowledged) dropped.
//
// # Signals
//
//	signal           gospool                                  uWSGI 2.0
//	---------------  ---------------------------------------  ------------------------------
//	SIGHUP           graceful reload: a new generation of     graceful reload, but spoolers
//	                 every child starts, then the old one     are SIGKILLed, and the master
//	                 gets SIGTERM and finishes its requests   re-executes itself
//	                 and tasks; listeners never close
//	SIGTERM          graceful shutdown: children get SIGTERM  brutal reload (shutdown only
//	                 and finish what they run; exit 0         with --die-on-term)
//	SIGINT, SIGQUIT  shutdown: children get SIGINT; running   shutdown; spoolers SIGKILLed
//	                 tasks are cancelled and retried; exit 0
//	second signal    during a shutdown: SIGKILL to every      -
//	                 child now; exit 0
//
// A child asked to stop that is still alive after Config.ReloadMercy gets
// SIGKILL ("... is taking too much time to die...NO MERCY !!!"). SIGTERM
// means shutdown because that is what systemd, Docker and Kubernetes send
// when they stop a service; uWSGI's --die-on-term is therefore always on.
//
// # Limits
//
// Harakiri: a worker busy on one request (reported through
// worker.Worker.Handler or Begin) for longer than Config.Harakiri is
// SIGKILLed with "*** HARAKIRI ON WORKER N (pid: P, try: T) ***", every
// second until it is dead. A spooler task running longer than
// Config.SpoolerHarakiri is settled by the spooler itself as a failed
// attempt (retried with backoff, or moved to the dead letters), and if its
// handler still runs one second later the master SIGKILLs the spooler with
// "*** HARAKIRI ON THE SPOOLER (pid: P) ***". Config.MaxRequests recycles a
// worker ("...The work of process P is done. Seeya!", then "worker N killed
// successfully (pid: P)"); spooler.Config.MaxTasks recycles a spooler.
//
// # Stats
//
// Config.StatsAddr has the master serve uWSGI's stats server document and
// Prometheus metrics over HTTP (package master/stats), read at request time
// from the rings and the scoreboard; it logs "*** Stats server enabled on
// ADDR fd: N ***", and Run fails before making anything when it cannot
// listen there. Spoolers measure each ring task's hand-off latency into
// their scoreboard slot; the master adds a reaped spooler's counts to its
// directory's total before freeing the slot.
package master
