package chaos

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Roles of the processes the harness kills. A role is found from where a
// process sits in the tree under the master, not from its name:
//
//	gospool run (master)                       roleMaster
//	 |- worker (GOSPOOL_ROLE=worker)           roleWorker: a Go producer
//	 '- spooler (GOSPOOL_ROLE=spooler)         roleSpooler
//	     '- python3 -m gospool.runner          roleRunner
//	         '- /bin/sh ... chaos-exec         roleExec: a command a task started
//	python3 producer.py (the test's children)  roleProducer
const (
	roleMaster   = "master"
	roleWorker   = "worker"
	roleSpooler  = "spooler"
	roleRunner   = "runner"
	roleExec     = "exec"
	roleProducer = "producer"
)

// monoNow is CLOCK_MONOTONIC in nanoseconds, the clock the task module and
// the producers stamp their lines with (Go's time.Now carries a monotonic
// reading too, but not one another process can compare with).
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// procInfo is one live process from /proc.
type procInfo struct {
	pid, ppid int
}

// procTable reads /proc: every live (not zombie) process and its parent.
func procTable() map[int]procInfo {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make(map[int]procInfo, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses,
		// so the fields start after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out[pid] = procInfo{pid: pid, ppid: ppid}
	}
	return out
}

// children indexes a table by parent.
func children(tab map[int]procInfo) map[int][]int {
	kids := map[int][]int{}
	for _, p := range tab {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	return kids
}

// descendants are pid's children, their children, and so on.
func descendants(kids map[int][]int, pid int) []int {
	var out []int
	stack := append([]int(nil), kids[pid]...)
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		out = append(out, p)
		stack = append(stack, kids[p]...)
	}
	return out
}

// envRole is the GOSPOOL_ROLE in a process's environment ("" when unset
// or unreadable).
func envRole(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("GOSPOOL_ROLE=")); ok {
			return string(v)
		}
	}
	return ""
}

func cmdlineHas(pid int, s string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && bytes.Contains(b, []byte(s))
}

// classify sorts the processes under the master by role. roleOf caches the
// role read from a child's environment (a pid's role does not change while
// it lives; a pid reused within one run is unlikely enough).
func classify(tab map[int]procInfo, master int, roleOf map[int]string) map[string][]int {
	kids := children(tab)
	out := map[string][]int{}
	if master == 0 {
		return out
	}
	if _, ok := tab[master]; ok {
		out[roleMaster] = []int{master}
	}
	for _, c := range kids[master] {
		r, ok := roleOf[c]
		if !ok {
			r = envRole(c)
			if r != "" {
				roleOf[c] = r
			}
		}
		switch r {
		case "worker":
			out[roleWorker] = append(out[roleWorker], c)
		case "spooler":
			out[roleSpooler] = append(out[roleSpooler], c)
			for _, runner := range kids[c] {
				out[roleRunner] = append(out[roleRunner], runner)
				for _, x := range kids[runner] {
					if cmdlineHas(x, "chaos-exec") {
						out[roleExec] = append(out[roleExec], x)
					}
				}
			}
		}
	}
	return out
}

// sigkill sends SIGKILL, reporting whether the process was there to get it.
func sigkill(pid int) bool {
	return syscall.Kill(pid, syscall.SIGKILL) == nil
}
