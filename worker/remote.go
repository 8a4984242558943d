package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/gospool/gospool/spooler/remote"
	"github.com/gospool/gospool/spooler/spoolfile"
	"github.com/gospool/gospool/spooler/task"
)

var (
	// ErrRefused: the server answered that it did not store the task (reply
	// modifier2 0). uWSGI refuses a `spooler` it does not have, or any task
	// when it has no spooler; gospool also refuses what its Spool function
	// fails to store and malformed vars. The task was not stored.
	ErrRefused = errors.New("the remote spooler refused the task")

	// ErrNoReply: the server closed the connection without a reply. uWSGI
	// does so when the vars block is larger than its --buffer-size (4096
	// bytes by default) and when the socket is not serving modifier1 17.
	ErrNoReply = errors.New("the remote spooler closed the connection without a reply")

	// ErrBody: the task has a body. uWSGI's remote packet has no room for
	// one, so the body would be lost.
	ErrBody = errors.New("remote spooling carries no body, as in uWSGI; put big data elsewhere and its key in the task")
)

// SpoolRemote sends t to a uWSGI or gospool instance listening on addr (same
// address forms as remote.Listen) as a modifier1-17 packet and waits for the
// 4-byte reply. t.Body must be empty (error: remote spooling carries no body,
// as in uWSGI).
//
// t is checked as a local spool call checks it ([task.Task.Validate]:
// non-empty keys, numeric `priority`, `at` a unix time) and must fit a spool
// file's vars block (65535 bytes; the server's limit is usually 4096).
//
// ctx bounds the whole exchange: without a deadline, SpoolRemote waits as
// long as the server keeps the connection open without answering.
//
// A nil error means the server stored the task. An error wrapping
// [ErrRefused] means it did not. After any other error (wrapping
// [ErrNoReply], the ctx error, a network error) the task was most likely not
// stored, but a task stored just before the connection broke is possible:
// sending it again may run it twice.
func SpoolRemote(ctx context.Context, addr string, t *task.Task) error {
	fail := func(err error) error { return fmt.Errorf("worker: spool to %s: %w", addr, err) }
	if t == nil {
		return fail(errors.New("nil task"))
	}
	if len(t.Body) > 0 {
		return fail(ErrBody)
	}
	if err := t.Validate(); err != nil {
		return fail(err)
	}
	pkt, err := spoolfile.Encode(t)
	if err != nil {
		return fail(err)
	}

	network, address := remote.SplitAddr(addr)
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// Cancellation unblocks the write or read in progress.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	ioFail := func(err error) error {
		// The only deadlines on c come from ctx: its own, or the one
		// that cancellation sets, which may fire just before ctx reports.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			<-ctx.Done()
		}
		if ctx.Err() != nil {
			return fail(fmt.Errorf("no reply: %w", context.Cause(ctx)))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return fail(fmt.Errorf("%w (%w) to a %d-byte vars block; uWSGI does so when it is over its --buffer-size, 4096 by default", ErrNoReply, err, len(pkt)-4))
		}
		return fail(err)
	}

	if _, err := c.Write(pkt); err != nil {
		return ioFail(err)
	}
	var reply [4]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return ioFail(err)
	}
	switch reply {
	case [4]byte{255, 0, 0, 1}:
		return nil
	case [4]byte{255, 0, 0, 0}:
		return fail(ErrRefused)
	}
	return fail(fmt.Errorf("not a uWSGI spool reply: % x (want ff 00 00 01 or ff 00 00 00)", reply))
}
