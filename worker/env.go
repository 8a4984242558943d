package worker

// The contract between the gospool master and the processes it starts, in
// one place: environment variable names and inherited file descriptors.
// Workers of any language rely on it (a --worker-cmd program reads these
// variables); Go workers read it through [Open].
//
//	fd  what                                    environment
//	--  --------------------------------------  ------------------------------
//	0-2 stdin (/dev/null), stdout, stderr       (the master's stdout, stderr)
//	3   life pipe, read end: EOF when the       GOSPOOL_MASTER_PID
//	    master is gone (children also get
//	    SIGKILL as their parent-death signal)
//	4   the scoreboard file (see                GOSPOOL_SCOREBOARD_SLOT: the
//	    master/scoreboard), mapped shared        child's slot
//	5.. the listening sockets, in order         GOSPOOL_LISTEN_FDS: how many;
//	                                            GOSPOOL_LISTEN_ADDRS: their
//	                                            addresses, comma-separated
//	then the ring files, one per spool          GOSPOOL_RING_FDS: their fd
//	    directory, in GOSPOOL_SPOOLER_DIRS       numbers, comma-separated
//	    order
//
// Other variables: GOSPOOL_ROLE ("worker" or "spooler"), GOSPOOL_ID (worker
// or spooler number, from 1), GOSPOOL_SPOOLER_DIRS (the absolute spool
// directories, colon-separated like PATH; a task without a `spooler` key
// goes to the first), GOSPOOL_SPOOLER_DIR (a spooler's own directory),
// GOSPOOL_HARAKIRI and GOSPOOL_MAX_REQUESTS (seconds and a count, "0" when
// unset), GOSPOOL_GENERATION (bumped at each graceful reload).
//
// A ring descriptor is the master's open file: its locks (lane and
// consumer locks are Linux OFD locks, owned by the open file, not the
// process) would be shared with every sibling. A child must therefore open
// the ring again, by path or through /proc/self/fd/N, before producing or
// consuming; the inherited descriptor only says which file it is. A Python
// or other program can simply open DIR/gospool.ring.
const (
	EnvRole         = "GOSPOOL_ROLE"
	EnvID           = "GOSPOOL_ID"
	EnvMasterPid    = "GOSPOOL_MASTER_PID"
	EnvSlot         = "GOSPOOL_SCOREBOARD_SLOT"
	EnvListenFDs    = "GOSPOOL_LISTEN_FDS"
	EnvListenAddrs  = "GOSPOOL_LISTEN_ADDRS"
	EnvRingFDs      = "GOSPOOL_RING_FDS"
	EnvSpoolerDirs  = "GOSPOOL_SPOOLER_DIRS"
	EnvSpoolerDir   = "GOSPOOL_SPOOLER_DIR"
	EnvHarakiri     = "GOSPOOL_HARAKIRI"
	EnvMaxRequests  = "GOSPOOL_MAX_REQUESTS"
	EnvGeneration   = "GOSPOOL_GENERATION"
	RoleWorker      = "worker"
	RoleSpooler     = "spooler"
	FDLife          = 3
	FDScoreboard    = 4
	FDFirstListener = 5
)
