"""The chaos harness's task module (internal/chaos), run by gospool's
Python runners through --spooler-import. It uses uWSGI's raw spooler API
(``uwsgi.spooler = f``), so it sees every task whatever its keys.

Every task carries ``id``, ``data`` and ``sum`` (the first 16 hex digits of
SHA-256 over id, data and body); some carry a body. The function checks the
sum, then behaves by a hash of the id: most tasks return at once, some sleep,
some run a short command (an "exec'd command" the harness may kill), and
some fail once (a marker file says the failure happened), by raising or by
returning SPOOL_RETRY. When it returns SPOOL_OK it first appends one line to
$CHAOS_LOGS/runs.log with O_APPEND (one write, never torn):

    D ID PID SPOOLER_PID START_NS END_NS ok|bad

times on CLOCK_MONOTONIC. A task without an id is written as ``G PID
REPR``: garbage that should never reach a handler.

Hand-off probes (key ``lat``, the producer's CLOCK_MONOTONIC just before
its spool call) append ``L ID PID NANOSECONDS`` to $CHAOS_LOGS/latency.log
at the first line of the function and return SPOOL_OK.
"""
import hashlib
import os
import subprocess
import time
import zlib

import uwsgi

LOGS = os.environ["CHAOS_LOGS"]
# The spooler that started this runner: os.getppid() at import. Read later,
# it could already be 1 (a runner outlives its spooler for a moment).
SPOOLER = os.getppid()
_fds = {}


def _append(name, line):
    fd = _fds.get(name)
    if fd is None:
        fd = _fds[name] = os.open(os.path.join(LOGS, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, line.encode())


def _fail_once(tid, how):
    """True the first time it is asked about tid: the marker file is made
    with O_EXCL, so exactly one run of the task sees True."""
    try:
        os.close(os.open(os.path.join(LOGS, "markers", how + "-" + tid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return True
    except FileExistsError:
        return False


def spooler(env):
    start = time.monotonic_ns()
    lat = env.get(b"lat")
    if lat is not None:
        _append("latency.log", "L %s %d %d\n" % (env.get(b"id", b"?").decode(), os.getpid(), start - int(lat)))
        return uwsgi.SPOOL_OK
    tid = env.get(b"id")
    if tid is None:
        _append("runs.log", "G %d %r\n" % (os.getpid(), env))
        return uwsgi.SPOOL_OK
    tid = tid.decode()
    body = env.get("body", b"")
    data = env.get(b"data", b"")
    ok = hashlib.sha256(tid.encode() + data + body).hexdigest()[:16].encode() == env.get(b"sum")

    # An attempt that does not succeed is logged too ("F"): its spooler
    # settles it (a retry file, then the ring record done), and a kill of
    # that spooler in between is what explains a later extra run.
    def failed():
        _append("runs.log", "F %s %d %d %d\n" % (tid, os.getpid(), SPOOLER, start))

    h = zlib.crc32(tid.encode()) % 100
    if h < 6 and _fail_once(tid, "raise"):
        failed()
        raise RuntimeError("chaos: planned failure of " + tid)
    if 6 <= h < 10 and _fail_once(tid, "retry"):
        failed()
        return uwsgi.SPOOL_RETRY
    if 10 <= h < 15:
        time.sleep(0.005 + (h - 10) * 0.008)
    if 15 <= h < 22:
        # A child process the harness may SIGKILL: then the task fails and
        # is retried. "chaos-exec" is $0, so the harness finds it by name.
        try:
            subprocess.run(["/bin/sh", "-c", "sleep %.2f; true" % ((h - 10) * 0.01), "chaos-exec"], check=True)
        except subprocess.CalledProcessError:
            failed()
            raise

    _append("runs.log", "D %s %d %d %d %d %s\n" % (tid, os.getpid(), SPOOLER, start, time.monotonic_ns(), "ok" if ok else "bad"))
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler
