package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/gospool/gospool/spooler"
	"github.com/gospool/gospool/spooler/task"
)

// execHandler runs --spooler-exec CMD for each task.
type execHandler struct {
	cmd      string
	dir      string        // the spool directory, absolute
	harakiri time.Duration // 0: no time limit
	log      *log.Logger
}

// The causes of a command's cancellation: --spooler-harakiri fired, or the
// spooler is shutting down.
var (
	errHarakiri = errors.New("harakiri")
	errShutdown = errors.New("the spooler is shutting down")
)

// killGrace is how long a command has to exit after SIGTERM at shutdown
// before it is killed.
const killGrace = 5 * time.Second

// handle runs CMD with the task as JSON on stdin: exit status 0 is OK,
// anything else RETRY.
func (h *execHandler) handle(ctx context.Context, t *spooler.Task) error {
	info := spooler.TaskInfo(ctx)
	doc, err := json.Marshal(task.NewDocument(info.Path, t, true))
	if err != nil {
		return fmt.Errorf("exec: the task as JSON: %w", err)
	}
	// The spooler cancels ctx when it shuts down.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if h.harakiri > 0 {
		var cancelTimeout context.CancelFunc
		runCtx, cancelTimeout = context.WithTimeoutCause(runCtx, h.harakiri, errHarakiri)
		defer cancelTimeout()
	}
	c := exec.CommandContext(runCtx, "/bin/sh", "-c", h.cmd)
	c.Stdin = bytes.NewReader(append(doc, '\n'))
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	c.Env = append(os.Environ(),
		"GOSPOOL_TASK_NAME="+info.Name,
		"GOSPOOL_TASK_PATH="+info.Path,
		"GOSPOOL_ATTEMPT="+strconv.Itoa(info.Attempt),
		"GOSPOOL_SPOOLER_DIR="+h.dir,
	)
	// Its own process group, so that stopping it reaches what the shell
	// started too: SIGTERM at shutdown (SIGKILL after killGrace), SIGKILL
	// at harakiri, as uWSGI does. If gospool itself dies, the shell gets
	// SIGKILL (Pdeathsig), and whatever it started keeps the task's claim
	// through the inherited descriptors (fd 3 and up), so no other spooler
	// runs the task until the last of them is gone.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c.ExtraFiles = info.Hold
	c.Cancel = func() error {
		sig := syscall.SIGTERM
		if errors.Is(context.Cause(runCtx), errHarakiri) {
			sig = syscall.SIGKILL
		}
		if err := syscall.Kill(-c.Process.Pid, sig); err != nil {
			return os.ErrProcessDone
		}
		return nil
	}
	c.WaitDelay = killGrace

	// Pdeathsig fires when the thread that started the child exits, not the
	// process: keep this goroutine on its thread until the child is reaped.
	runtime.LockOSThread()
	err = c.Run()
	runtime.UnlockOSThread()
	if err == nil {
		return nil
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("exec: stopped by the spooler's shutdown: %w", errShutdown)
	case errors.Is(context.Cause(runCtx), errHarakiri):
		h.log.Printf("*** HARAKIRI ON THE SPOOLER (pid: %d) *** task %s ran for more than %v; its command was killed and the task will be retried", os.Getpid(), info.Name, h.harakiri)
		return fmt.Errorf("harakiri: killed after %v", h.harakiri)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("exec: killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
		}
		return fmt.Errorf("exec: exit status %d", ee.ExitCode())
	}
	return fmt.Errorf("exec: %w", err)
}
