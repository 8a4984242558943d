package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gospool/gospool/master/scoreboard"
	"github.com/gospool/gospool/master/stats"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/worker"
)

// proc is one child process as the master sees it.
type proc struct {
	role     scoreboard.Role
	number   int // worker N or spooler N (per directory), from 1
	dir      int // spooler: index in Config.Spoolers
	pid      int
	cmd      *exec.Cmd
	slot     *scoreboard.Slot
	started  time.Time
	stopping bool      // asked to stop: reload or shutdown; never respawned
	stopAt   time.Time // when it was asked
	noMercy  bool      // SIGKILL already sent
	harakiri bool      // killed by harakiri
}

func (p *proc) name() string {
	if p.role == scoreboard.Worker {
		return "worker " + strconv.Itoa(p.number)
	}
	return "spooler " + strconv.Itoa(p.number)
}

// exited is a reaped child.
type exited struct {
	p     *proc
	state *os.ProcessState
}

// master is the supervisor's state. Everything but the exits channel is
// touched only by the loop goroutine.
type master struct {
	cfg        *Config
	dirs       []string // absolute spool directories
	rings      []*ring.Ring
	board      *scoreboard.Board
	listeners  []*os.File
	addrs      []string
	lifeR      *os.File // read end of the life pipe, passed to every child
	lifeW      *os.File // kept open, never written: its close is the signal
	exe        string
	args       []string
	generation int

	// See checkRings.
	oldRings    []oldRing
	ringTrouble map[string]string // ring path: the problem last logged

	procs      map[*proc]bool
	exits      chan exited
	respawn    []*proc // respawns held back by the forkbomb throttle
	spawnAt    time.Time
	respawns   map[string]int // by role and number
	lastDeath  map[scoreboard.Role]time.Time
	fastDeaths map[scoreboard.Role]int

	shutdown bool // no respawns; exit when the last child is gone
	forced   bool

	statsL net.Listener // Config.StatsAddr, opened by setup, served by serveStats
	locks  []*os.File   // the spool directories' master locks, held until exit
	// retired adds up, per spool directory, the hand-off latency
	// histograms of the spoolers reaped so far. handMu covers it and the
	// freeing of slots, so that the stats server never counts a dead
	// spooler twice, or not at all.
	handMu  sync.Mutex
	retired []scoreboard.Histogram
}

func runMaster(ctx context.Context, cfg *Config) error {
	m := &master{cfg: cfg, procs: map[*proc]bool{}, exits: make(chan exited, 16),
		respawns: map[string]int{}, lastDeath: map[scoreboard.Role]time.Time{}, fastDeaths: map[scoreboard.Role]int{}}
	m.ringTrouble = map[string]string{}
	defer m.close()
	if err := m.setup(); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	log := cfg.Logger
	log.Printf("gospool master (pid: %d) starting %d worker(s) and %d spooler process(es)", os.Getpid(), cfg.Workers, m.spoolerCount())
	for i := range cfg.Spoolers {
		for n := 1; n <= cfg.Spoolers[i].Processes; n++ {
			m.start(&proc{role: scoreboard.Spooler, number: n, dir: i}, false)
		}
	}
	for n := 1; n <= cfg.Workers; n++ {
		m.start(&proc{role: scoreboard.Worker, number: n}, false)
	}
	if m.statsL != nil {
		stop := m.serveStats()
		defer stop() // before close (deferred earlier) unmaps what it reads
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	done := ctx.Done()
	for {
		select {
		case sig := <-sigs:
			m.onSignal(sig.(syscall.Signal))
		case <-done:
			done = nil
			m.onSignal(syscall.SIGTERM)
		case e := <-m.exits:
			m.reap(e)
		case <-tick.C:
			m.checkRings()
			m.checkHarakiri()
			m.checkMercy()
			m.flushRespawns()
		}
		if m.shutdown && len(m.procs) == 0 {
			log.Printf("goodbye to gospool.")
			return nil
		}
	}
}

func (m *master) spoolerCount() int {
	n := 0
	for _, s := range m.cfg.Spoolers {
		n += s.Processes
	}
	return n
}

// setup opens the stats listener, creates the spool directories, their
// rings, the scoreboard, the listeners and the life pipe.
func (m *master) setup() error {
	cfg := m.cfg
	var err error
	if m.exe = cfg.Executable; m.exe == "" {
		if m.exe, err = os.Executable(); err != nil {
			return fmt.Errorf("master: cannot find this program to start its children: %w", err)
		}
	}
	if m.args = cfg.Args; m.args == nil {
		m.args = os.Args[1:]
	}
	// First the locks of the directories that exist: a second master on
	// a directory stops here, having changed nothing, with the first one's
	// pid (and not on the stats address the first one holds too).
	var abs []string
	for _, s := range cfg.Spoolers {
		a, err := filepath.Abs(s.Dir)
		if err != nil {
			return fmt.Errorf("master: spool directory %s: %w", s.Dir, err)
		}
		abs = append(abs, a)
		if fi, err := os.Stat(a); err == nil && fi.IsDir() {
			if err := m.lock(a); err != nil {
				return err
			}
		}
	}
	if cfg.StatsAddr != "" {
		// Then a busy address stops the start before anything is made.
		if m.statsL, err = stats.Listen(cfg.StatsAddr); err != nil {
			return fmt.Errorf("master: cannot serve stats on %s: %w", cfg.StatsAddr, err)
		}
	}
	for i, s := range cfg.Spoolers {
		if err := os.MkdirAll(abs[i], 0o750); err != nil {
			return fmt.Errorf("master: spool directory: %w", err)
		}
		if err := m.lock(abs[i]); err != nil { // a directory made just now
			return err
		}
		r, err := m.openRing(abs[i], s.Config.Ring)
		if errors.Is(err, syscall.ENOSPC) {
			// A full disk: no ring file, so producers write spool files
			// (and get a clear ENOSPC there while it lasts).
			cfg.Logger.Printf("master: %v", err)
			r, err = ring.NewPrivate(filepath.Join(abs[i], ring.FileName), s.Config.Ring)
		}
		if err != nil {
			return fmt.Errorf("master: %w", err)
		}
		m.dirs = append(m.dirs, abs[i])
		m.rings = append(m.rings, r)
	}
	// What the children of a previous master left in the rings.
	m.recoverRings()
	slots := 2*(cfg.Workers+m.spoolerCount()) + 4 // a reload runs two generations at once
	if m.board, err = scoreboard.Create(filepath.Join(m.dirs[0], scoreboard.FileName), slots); err != nil {
		return fmt.Errorf("master: %w", err)
	}
	m.board.SetMaster(os.Getpid(), time.Now())
	for _, d := range m.dirs[1:] {
		link := filepath.Join(d, scoreboard.FileName)
		if d == m.dirs[0] {
			continue
		}
		os.Remove(link)
		if err := os.Symlink(filepath.Join(m.dirs[0], scoreboard.FileName), link); err != nil {
			cfg.Logger.Printf("master: %v; `gospool stats --spooler %s` will not show the processes", err, d)
		}
	}
	for _, addr := range cfg.Listen {
		f, err := listen(addr)
		if err != nil {
			return err
		}
		m.listeners = append(m.listeners, f)
		m.addrs = append(m.addrs, addr)
	}
	m.retired = make([]scoreboard.Histogram, len(m.dirs))
	if m.lifeR, m.lifeW, err = os.Pipe(); err != nil {
		return fmt.Errorf("master: life pipe: %w", err)
	}
	return nil
}

// serveStats serves Config.StatsAddr until the returned stop is called,
// which waits until the server no longer reads the rings, scoreboard and
// listeners, so that close may unmap and close them.
func (m *master) serveStats() (stop func()) {
	var socks []stats.Socket
	for i, f := range m.listeners {
		socks = append(socks, stats.Socket{Name: m.addrs[i], File: f})
	}
	srv := stats.New(stats.Source{Dirs: m.dirs, Board: m.board, Sockets: socks, Handoff: m.handoff}, m.cfg.Logger)
	hs := &http.Server{Handler: srv.Handler(), ErrorLog: m.cfg.Logger, ReadHeaderTimeout: 10 * time.Second}
	l := m.statsL
	m.statsL = nil // hs closes it
	addr, fd := l.Addr().String(), -1
	if sc, ok := l.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(d uintptr) { fd = int(d) })
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(hs, l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.cfg.Logger.Printf("master: stats server on %s: %v", addr, err)
		}
	}()
	m.cfg.Logger.Printf("*** Stats server enabled on %s fd: %d ***", addr, fd)
	return func() {
		hs.Close()
		<-done
		srv.Close() // waits for the requests still reading
	}
}

// handoff is the hand-off latency histogram of each spool directory since
// the master started: the live spoolers' and the reaped ones'.
func (m *master) handoff() []scoreboard.Histogram {
	m.handMu.Lock()
	defer m.handMu.Unlock()
	h := stats.LiveHandoff(m.board, len(m.dirs))
	for i := range h {
		h[i].Add(m.retired[i])
	}
	return h
}

// freeSlotOf frees a reaped child's scoreboard slot, adding a spooler's
// hand-off latencies to the directory's totals first.
func (m *master) freeSlotOf(p *proc) {
	m.handMu.Lock()
	defer m.handMu.Unlock()
	if p.role == scoreboard.Spooler && p.dir < len(m.retired) {
		m.retired[p.dir].Add(p.slot.Handoff())
	}
	p.slot.Free()
}

// listen opens a listener and returns its file, which children inherit.
func listen(addr string) (*os.File, error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(addr) // a stale socket of a previous run
		}
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("master: listen on %s: %w", addr, err)
	}
	var f *os.File
	switch l := l.(type) {
	case *net.TCPListener:
		f, err = l.File()
	case *net.UnixListener:
		l.SetUnlinkOnClose(false)
		f, err = l.File()
	}
	l.Close() // f is a dup: the socket stays open through it
	if err != nil {
		return nil, fmt.Errorf("master: listen on %s: %w", addr, err)
	}
	return untouchableFile(f)
}

// untouchableFile returns a descriptor of f's socket whose file status
// flags the master never changes again.
//
// O_NONBLOCK belongs to the open file description, which the master and
// every worker share. os/exec calls Fd() on each ExtraFile, and Fd() of a
// non-blocking *os.File switches the descriptor to blocking mode: every
// respawn would turn the socket blocking under the running Go workers, whose
// runtime then sits in a blocking accept4 that Close cannot interrupt, so
// they could never stop gracefully. An *os.File made from a descriptor that
// is blocking at the time is not "non-blocking" to package os, and its Fd()
// leaves the flags alone. The socket starts blocking, what a --worker-cmd
// program expects; Go workers make it non-blocking (net.FileListener does),
// and it stays so. Workers of one master all run the same code, so they
// agree on the mode.
func untouchableFile(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd())) // Fd() has made it blocking
	if err != nil {
		return nil, fmt.Errorf("master: dup listener: %w", err)
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func (m *master) close() {
	if m.statsL != nil {
		m.statsL.Close()
	}
	for _, f := range m.listeners {
		f.Close()
	}
	for _, r := range m.rings {
		r.Close()
	}
	for _, o := range m.oldRings {
		o.r.Close()
	}
	if m.board != nil {
		m.board.Close()
	}
	if m.lifeW != nil {
		m.lifeW.Close()
		m.lifeR.Close()
	}
	for _, f := range m.locks {
		f.Close() // last: the directories are free once nothing else is open
	}
}

// lock takes the master lock of the spool directory dir (see lockDir),
// once per directory however many times Config.Spoolers names it: two
// locks of this process on one file would conflict with each other.
func (m *master) lock(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("master: spool directory: %w", err)
	}
	for _, f := range m.locks {
		if held, err := os.Stat(filepath.Dir(f.Name())); err == nil && os.SameFile(held, st) {
			return nil
		}
	}
	f, err := lockDir(dir)
	if err != nil {
		return err
	}
	m.locks = append(m.locks, f)
	return nil
}

// freeSlot finds a scoreboard slot no child uses.
func (m *master) freeSlot() *scoreboard.Slot {
	used := map[int]bool{}
	for p := range m.procs {
		used[p.slot.Index()] = true
	}
	for i := 0; i < m.board.Len(); i++ {
		if !used[i] {
			return m.board.Slot(i)
		}
	}
	return nil
}

// start spawns p; respawn says whether it replaces a dead one (for the log
// line and the counter). A failure to start is logged and retried later.
func (m *master) start(p *proc, respawn bool) {
	cfg := m.cfg
	key := p.name()
	if p.role == scoreboard.Spooler {
		key += " " + m.dirs[p.dir]
	}
	if respawn {
		m.respawns[key]++
	}
	p.slot = m.freeSlot()
	if p.slot == nil {
		cfg.Logger.Printf("master: no free scoreboard slot for %s; retrying", p.name())
		m.respawn = append(m.respawn, p)
		return
	}
	env := append(os.Environ(), cfg.Env...)
	var ringFDs []string
	extra := []*os.File{m.lifeR, m.board.File()}
	extra = append(extra, m.listeners...)
	for _, r := range m.rings {
		ringFDs = append(ringFDs, strconv.Itoa(worker.FDLife+len(extra)))
		extra = append(extra, r.File())
	}
	role := worker.RoleWorker
	if p.role == scoreboard.Spooler {
		role = worker.RoleSpooler
		env = append(env, worker.EnvSpoolerDir+"="+m.dirs[p.dir])
	}
	env = append(env,
		worker.EnvRole+"="+role,
		worker.EnvID+"="+strconv.Itoa(p.number),
		worker.EnvMasterPid+"="+strconv.Itoa(os.Getpid()),
		worker.EnvSlot+"="+strconv.Itoa(p.slot.Index()),
		worker.EnvListenFDs+"="+strconv.Itoa(len(m.listeners)),
		worker.EnvListenAddrs+"="+strings.Join(m.addrs, ","),
		worker.EnvRingFDs+"="+strings.Join(ringFDs, ","),
		worker.EnvSpoolerDirs+"="+strings.Join(m.dirs, ":"),
		worker.EnvHarakiri+"="+strconv.Itoa(int(cfg.Harakiri/time.Second)),
		worker.EnvMaxRequests+"="+strconv.Itoa(cfg.MaxRequests),
		worker.EnvGeneration+"="+strconv.Itoa(m.generation),
	)
	var cmd *exec.Cmd
	if p.role == scoreboard.Worker && cfg.WorkerCmd != "" {
		// exec: the shell becomes the command, which then gets the
		// signals, the parent-death signal and the respawn.
		line := cfg.WorkerCmd
		if !strings.HasPrefix(strings.TrimSpace(line), "exec ") {
			line = "exec " + line
		}
		cmd = exec.Command("/bin/sh", "-c", line)
	} else {
		cmd = exec.Command(m.exe, m.args...)
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.ExtraFiles = extra
	// Its own process group: a terminal's Ctrl-C reaches the master only,
	// which decides; harakiri kills the whole group. Pdeathsig kills the
	// child when the thread that started it dies, so the start happens on
	// a locked thread that lives as long as the master: Go never ends a
	// thread unless a goroutine exits while locked to it, and this one
	// unlocks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		cfg.Logger.Printf("master: cannot start %s: %v; trying again in %v", p.name(), err, cfg.ForkbombDelay)
		p.slot = nil
		m.respawn = append(m.respawn, p)
		m.spawnAt = time.Now().Add(cfg.ForkbombDelay)
		return
	}
	p.cmd, p.pid, p.started = cmd, cmd.Process.Pid, time.Now()
	p.stopping, p.noMercy, p.harakiri = false, false, false
	p.slot.Claim(p.pid, p.role, p.number, m.respawns[key], p.dir, p.started)
	m.procs[p] = true
	go func() {
		cmd.Wait()
		m.exits <- exited{p: p, state: cmd.ProcessState}
	}()
	switch {
	case p.role == scoreboard.Spooler:
		cfg.Logger.Printf("spawned the gospool spooler on dir %s with pid %d", m.dirs[p.dir], p.pid)
	case respawn:
		cfg.Logger.Printf("Respawned gospool worker %d (new pid: %d)", p.number, p.pid)
	default:
		cfg.Logger.Printf("spawned gospool worker %d (pid: %d, cores: 1)", p.number, p.pid)
	}
}

// reap handles a child's death: the log line, the ring recovery, the
// respawn.
func (m *master) reap(e exited) {
	p, log := e.p, m.cfg.Logger
	delete(m.procs, p)
	recycling := false
	if pr, ok := p.slot.Read(); ok {
		recycling = pr.State == scoreboard.Recycling
	}
	m.freeSlotOf(p)
	m.recoverRings()
	ws := e.state.Sys().(syscall.WaitStatus)
	sig := 0
	if ws.Signaled() {
		sig = int(ws.Signal())
	}
	if p.role == scoreboard.Spooler {
		if p.stopping {
			log.Printf("spooler (pid: %d) annihilated", p.pid)
			return
		}
		log.Printf("OOOPS the spooler is no more...trying respawn...")
	} else {
		switch {
		case p.stopping:
			log.Printf("worker %d buried after %d seconds", p.number, int(time.Since(p.stopAt).Seconds()))
			return
		case recycling && ws.Exited() && ws.ExitStatus() == 0:
			log.Printf("worker %d killed successfully (pid: %d)", p.number, p.pid)
		case sig != 0:
			log.Printf("DAMN ! worker %d (pid: %d) died, killed by signal %d :( trying respawn ...", p.number, p.pid, sig)
		default:
			log.Printf("DAMN ! worker %d (pid: %d) died :( trying respawn ...", p.number, p.pid)
		}
	}
	if m.shutdown {
		return
	}
	m.scheduleRespawn(&proc{role: p.role, number: p.number, dir: p.dir})
}

// recoverRings puts back what a dead child left in the rings: records a
// dead spooler had claimed run again at once, and a dead worker's lane is
// freed with its half-written record (never acknowledged) dropped.
func (m *master) recoverRings() {
	for i, r := range m.rings {
		if n := r.ReleaseDead(); n > 0 {
			m.cfg.Logger.Printf("master: %d task(s) a dead spooler was running put back in the ring of %s", n, m.dirs[i])
		}
		if lanes, torn := r.RecoverLanes(); torn > 0 {
			m.cfg.Logger.Printf("master: %d half-written record(s) of %d dead worker(s) dropped from the ring of %s (never acknowledged)", torn, lanes, m.dirs[i])
		}
	}
}

// scheduleRespawn respawns at once unless processes of the role die faster
// than one per second each: then, as uWSGI's forkbomb guard, it waits
// ForkbombDelay first. It never gives up.
func (m *master) scheduleRespawn(p *proc) {
	now := time.Now()
	numproc := m.cfg.Workers
	if p.role == scoreboard.Spooler {
		numproc = m.spoolerCount()
	}
	if now.Sub(m.lastDeath[p.role]) < time.Second {
		m.fastDeaths[p.role]++
	} else {
		m.fastDeaths[p.role] = 0
	}
	m.lastDeath[p.role] = now
	if m.fastDeaths[p.role] > numproc || now.Before(m.spawnAt) {
		if !now.Before(m.spawnAt) {
			m.cfg.Logger.Printf("%s respawning too fast !!! i have to sleep a bit (%d seconds)...", p.role, int(m.cfg.ForkbombDelay/time.Second))
			m.spawnAt = now.Add(m.cfg.ForkbombDelay)
			m.fastDeaths[p.role] = 0
		}
		m.respawn = append(m.respawn, p)
		return
	}
	m.start(p, true)
}

// flushRespawns starts the respawns the throttle held back, once due.
func (m *master) flushRespawns() {
	if len(m.respawn) == 0 || time.Now().Before(m.spawnAt) || m.shutdown {
		return
	}
	held := m.respawn
	m.respawn = nil
	for _, p := range held {
		m.start(p, true)
	}
}

// onSignal implements the signal table in the package doc.
func (m *master) onSignal(sig syscall.Signal) {
	log := m.cfg.Logger
	if m.shutdown {
		if sig == syscall.SIGHUP || m.forced {
			return
		}
		m.forced = true
		log.Printf("%s received during shutdown: killing every child now (SIGKILL)", signame(sig))
		for p := range m.procs {
			m.kill(p, syscall.SIGKILL)
		}
		return
	}
	switch sig {
	case syscall.SIGHUP:
		m.reload()
	case syscall.SIGTERM:
		m.shutdown = true
		log.Printf("SIGTERM received: graceful shutdown, workers finish their requests and spoolers their tasks (at most %v)...", m.cfg.ReloadMercy)
		m.stopAll(syscall.SIGTERM)
	default:
		m.shutdown = true
		log.Printf("%s received...killing workers...", signame(sig))
		m.stopAll(syscall.SIGINT)
	}
	m.respawn = nil
}

func (m *master) stopAll(sig syscall.Signal) {
	for p := range m.procs {
		m.stop(p, sig)
	}
}

// stop asks p to stop with sig; after ReloadMercy it gets SIGKILL.
func (m *master) stop(p *proc, sig syscall.Signal) {
	if !p.stopping {
		p.stopping, p.stopAt = true, time.Now()
		p.slot.SetState(scoreboard.Stopping)
	}
	m.kill(p, sig)
}

// kill signals p's process group (the child and what it started).
func (m *master) kill(p *proc, sig syscall.Signal) {
	if sig == syscall.SIGKILL {
		p.noMercy = true
	}
	if err := syscall.Kill(-p.pid, sig); err != nil {
		syscall.Kill(p.pid, sig)
	}
}

// reload is SIGHUP: a new generation of every child starts first, then the
// old one is asked to stop gracefully. The listeners stay open in the
// master the whole time, so connections wait in the accept queue rather
// than being refused, and the ring and spool files keep every task.
func (m *master) reload() {
	log := m.cfg.Logger
	m.generation++
	m.board.NoteReload()
	log.Printf("...gracefully reloading workers and spoolers (generation %d)...", m.generation)
	var old []*proc
	for p := range m.procs {
		if !p.stopping {
			old = append(old, p)
		}
	}
	held := m.respawn
	m.respawn = nil
	for _, p := range old {
		m.start(&proc{role: p.role, number: p.number, dir: p.dir}, false)
	}
	for _, p := range held {
		m.start(p, false)
	}
	for _, p := range old {
		if p.role == scoreboard.Worker {
			log.Printf("Gracefully killing worker %d (pid: %d)...", p.number, p.pid)
		} else {
			log.Printf("gracefully stopping the spooler with pid %d (it finishes its current task)", p.pid)
		}
		m.stop(p, syscall.SIGTERM)
	}
}

// checkHarakiri kills children busy on one thing for too long. Workers:
// past Harakiri, every second until dead, as uWSGI. Spoolers: one second
// past SpoolerHarakiri, by which time the spooler itself has settled the
// task as a failed attempt, so the task is retried, not lost, and not run
// again at once.
func (m *master) checkHarakiri() {
	now := time.Now()
	for p := range m.procs {
		limit := m.cfg.Harakiri
		if p.role == scoreboard.Spooler {
			limit = m.cfg.SpoolerHarakiri
			if limit > 0 {
				limit += time.Second
			}
		}
		if limit <= 0 || p.noMercy && p.harakiri && p.role == scoreboard.Spooler {
			continue
		}
		since, busy := p.slot.BusySince()
		if !busy || now.Sub(since) <= limit {
			continue
		}
		stamp := now.Format("Mon Jan _2 15:04:05 2006")
		if p.role == scoreboard.Worker {
			m.cfg.Logger.Printf("%s - *** HARAKIRI ON WORKER %d (pid: %d, try: %d) ***", stamp, p.number, p.pid, p.slot.AddHarakiriTry())
		} else {
			m.cfg.Logger.Printf("%s - *** HARAKIRI ON THE SPOOLER (pid: %d) ***", stamp, p.pid)
		}
		p.harakiri = true
		m.kill(p, syscall.SIGKILL)
	}
}

// checkMercy SIGKILLs children that take longer than ReloadMercy to stop.
func (m *master) checkMercy() {
	for p := range m.procs {
		if p.stopping && !p.noMercy && time.Since(p.stopAt) > m.cfg.ReloadMercy {
			m.cfg.Logger.Printf("%s (pid: %d) is taking too much time to die...NO MERCY !!!", p.name(), p.pid)
			m.kill(p, syscall.SIGKILL)
		}
	}
}

func signame(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}
