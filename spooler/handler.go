package spooler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// HandlerFunc runs one task. Its error decides what happens to the task, in
// uWSGI's terms:
//
//   - nil: OK (SPOOL_OK, -2), the task is done and deleted;
//   - [ErrIgnore]: IGNORE (SPOOL_IGNORE, 0), not this handler's task: it is
//     kept as a spool file for another spooler (uWSGI or gospool);
//   - [ErrRetry]: RETRY (SPOOL_RETRY, -1) asked for on purpose: the task
//     ran as it should and wants to run again later (a heartbeat, uWSGI's
//     @spoolforever). It is not a failure: it is rescheduled after
//     Config.RerunDelay, its attempt count starts again at 1 and it never
//     counts toward Config.MaxRetries;
//   - any other error, or a panic: a failed attempt, also RETRY to uWSGI:
//     the task runs again later with exponential backoff, the error is
//     logged, and after Config.MaxRetries failed retries it is moved to
//     DeadDir.
//
// ctx is cancelled when the spooler stops quickly (Run's context is
// cancelled, or a [Spooler.Shutdown] runs out of time); a handler that
// returns ctx.Err() then has its task retried. A graceful Shutdown lets it
// finish. ctx is also cancelled when the handler runs longer than
// Config.Harakiri, with a cause wrapping [ErrHarakiri] ([context.Cause]):
// its task is already settled as a failed attempt by then.
type HandlerFunc func(ctx context.Context, t *Task) error

// ErrIgnore is returned by a handler that does not take the task.
var ErrIgnore = errors.New("spooler: task ignored by its handler")

// ErrRetry is returned (or wrapped) by a handler that asks for its task to
// run again later, as a uWSGI task function returns SPOOL_RETRY: a
// requested rerun, not a failure (see [HandlerFunc]).
var ErrRetry = errors.New("the task returned SPOOL_RETRY: run it again later")

// ResultHandler adapts a handler written with uWSGI's return codes: OK is
// done, Ignore is ignored, Retry is a requested rerun ([ErrRetry]), and any
// other value, which uWSGI also runs again, is a failed attempt: it is most
// likely a bug (a forgotten return value), and counting it keeps
// Config.MaxRetries able to stop it.
func ResultHandler(fn func(ctx context.Context, t *Task) Result) HandlerFunc {
	return func(ctx context.Context, t *Task) error {
		switch r := fn(ctx, t); r {
		case OK:
			return nil
		case Ignore:
			return ErrIgnore
		case Retry:
			return ErrRetry
		default:
			return fmt.Errorf("handler returned %d, which uWSGI treats as SPOOL_RETRY", int(r))
		}
	}
}

// ResultOf maps a handler's error to the uWSGI result it stands for.
func ResultOf(err error) Result {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrIgnore):
		return Ignore
	}
	return Retry
}

// Info describes the task a handler is running; see [TaskInfo].
type Info struct {
	// Name is the spool file's bare name, as uWSGI's spooler_task_name, or
	// "ring:LANE:SEQ" for a task taken from the ring.
	Name string
	// Path is the spool file's absolute path, or the ring's path plus
	// "#LANE:SEQ".
	Path string
	// Attempt is 1 on the first run, 2 on the first retry, and so on. It is
	// kept in the names of retried spool files, so it survives restarts.
	Attempt int
	// Spooled is when the producer published the task, for ring tasks
	// (zero for files).
	Spooled time.Time
	// Hold are open descriptors whose life holds the task's claim: the spool
	// file's lock, or this spooler's ring consumer entry. A handler that
	// runs the task in a child process should let it inherit them
	// (exec.Cmd.ExtraFiles): if this process then dies, the claim lasts
	// until the child is gone too, so no other spooler starts the task while
	// the child still runs it. Valid until the handler returns; do not
	// close them, nor change the slice (tasks share it).
	Hold []*os.File
}

type infoKey struct{}

// jobContext is a handler's context: its parent's, plus the job that
// TaskInfo reads. It lives inside the job, so that it costs no allocation
// per task (context.WithValue would); context.WithCancel and friends see
// through it to the parent's cancellation, as Value passes their keys on.
type jobContext struct {
	context.Context
	j *job
}

func (c *jobContext) Value(key any) any {
	if key == (infoKey{}) {
		return c.j
	}
	return c.Context.Value(key)
}

// TaskInfo returns the description of the task whose handler received ctx.
func TaskInfo(ctx context.Context) Info {
	j, ok := ctx.Value(infoKey{}).(*job)
	if !ok {
		return Info{}
	}
	return j.info()
}
