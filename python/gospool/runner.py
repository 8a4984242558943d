"""gospool.runner: runs uWSGI spooler task functions for a gospool spooler.

    python3 -m gospool.runner --import MODULE [--import MODULE ...]

The Go spooler (package github.com/gospool/gospool/python) starts one
runner per concurrency slot and hands it tasks over two pipes; everything
else (signals, retries, time limits) is the Go side's business.

Start-up: the runner installs gospool.compat's ``uwsgi`` and
``uwsgidecorators`` modules (``uwsgi.i_am_the_spooler()`` is True), imports
the modules in order (a name, or a path when it contains "/" or ends in
".py", as uWSGI's spooler-import), runs ``uwsgi.post_fork_hook`` once if one
is set (uwsgidecorators' @postfork functions), and sends the READY reply.
If an import fails, it prints the traceback on standard error and exits
with status 3 (EXIT_IMPORT) without sending READY.

Then, for each request, it calls ``uwsgi.spooler(env)`` with env as uWSGI
2.0.21 builds it: ``{'spooler_task_name': b'NAME', b'key': b'value', ...,
'body': b'...'}``, i.e. a str key ``spooler_task_name`` first with the task
name as bytes, the task's pairs with bytes keys and values in file order
(a repeated key keeps its first place and its last value), and a str key
``body`` last, present only when the body is not empty. Standard output and
error are the spooler's log; they are flushed after each task.

Results, as uWSGI 2.0.21's Python plugin maps them (observed with Debian's
uWSGI 2.0.21; see python/testdata/uwsgi-decorators/MANIFEST.md). The Go
side tells a task that returned the int -1 (SPOOL_RETRY, @spoolforever)
from one whose None or str uWSGI also maps to -1 by the empty note: the
first asked to run again and is no failure, the second counts as one.

    callable returns an int      that int, truncated to a C int (2**32-2
                                 is -2); an int beyond 64 bits is -1
    returns True / False         1 (retry) / 0 (ignore): bools are ints
    returns None, a float, a str anything not an int: -1 (SPOOL_RETRY)
    raises                       -1, with the traceback (EXCEPTION reply)
    raises SystemExit            the runner exits, as uWSGI's spooler
                                 process does (SYSEXIT reply first); the Go
                                 side retries the task and starts a new one
    uwsgi.spooler is not set     0 (SPOOL_IGNORE)
    the vars do not parse        -2: uWSGI deletes such a task

Pipe protocol (version 1). Requests on fd 3 (Go -> runner), replies on fd 4
(runner -> Go); all integers little-endian. A request is answered by exactly
one reply before the next request is read.

    request
    offset  size  field
    0       4     u32  L: the number of bytes after this field
    4       4     u32  attempt: 1 on the first run, 2 on the first retry...
    8       2     u16  n: length of the task name
    10      n          task name, UTF-8 (the spool file's bare name, or
                       ring:LANE:SEQ): env['spooler_task_name']
    10+n    L-6-n      the task in uWSGI spool-file encoding: the 4-byte
                       header (0x11, u16 N, 0x00), N bytes of vars
                       ([u16 klen][key][u16 vlen][value]...), then the body
                       up to the end of the frame

    +--------+---------+----+--------+-----+-------+------+------+
    | L u32  | attempt | n  | name   | x11 | N u16 | x00  | vars | body |
    +--------+---------+----+--------+-----+-------+------+------+

    reply
    offset  size  field
    0       4     u32  L: the number of bytes after this field
    4       1     u8   kind: 'R' READY, 'D' DONE, 'E' EXCEPTION,
                       'X' SYSEXIT
    5       4     i32  code: READY: the protocol version (1); DONE: the
                       uWSGI result code; EXCEPTION: -1; SYSEXIT: the exit
                       status the runner exits with right after
    9       L-5        text, UTF-8: READY: the Python version; DONE: empty
                       when the task returned that very int, else a note on
                       the unusual return value uWSGI maps to it (None,
                       True, an int out of C range); EXCEPTION and SYSEXIT:
                       the traceback

    +--------+------+----------+-----------------+
    | L u32  | kind | code i32 | text            |
    +--------+------+----------+-----------------+

EOF on fd 3 between requests is a clean stop: the runner exits with 0.
A malformed request makes it exit with status 4 (EXIT_PROTOCOL).
"""

import argparse
import importlib
import importlib.util
import os
import re
import struct
import sys
import traceback

PROTOCOL_VERSION = 1
EXIT_IMPORT = 3
EXIT_PROTOCOL = 4

READY = b"R"
DONE = b"D"
EXCEPTION = b"E"
SYSEXIT = b"X"

_HDR = struct.Struct("<I")
_REQ = struct.Struct("<IH")
_REPLY = struct.Struct("<IcI")


class ProtocolError(Exception):
    pass


def _read_exact(fd, n, eof_ok=False):
    chunks = []
    got = 0
    while got < n:
        b = os.read(fd, n - got)
        if not b:
            if eof_ok and got == 0:
                return None
            raise ProtocolError("request cut short: %d of %d bytes" % (got, n))
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def reply(fd, kind, code, text=""):
    t = text.encode("utf-8", "replace") if isinstance(text, str) else text
    _write_all(fd, _REPLY.pack(5 + len(t), kind, code & 0xFFFFFFFF) + t)


def read_request(fd):
    """(name, attempt, spool bytes) of the next request, or None at EOF."""
    h = _read_exact(fd, 4, eof_ok=True)
    if h is None:
        return None
    (length,) = _HDR.unpack(h)
    if length < 6:
        raise ProtocolError("request length %d is too short" % length)
    frame = _read_exact(fd, length)
    attempt, n = _REQ.unpack_from(frame, 0)
    if 6 + n > length:
        raise ProtocolError("task name length %d overruns the request" % n)
    name = frame[6:6 + n]
    return name, attempt, memoryview(frame)[6 + n:]


def parse_env(name, spool):
    """env as uWSGI builds it, or None when the vars do not parse."""
    if len(spool) < 4:
        return None
    nvars = spool[1] | (spool[2] << 8)
    end = 4 + nvars
    if end > len(spool):
        return None
    env = {"spooler_task_name": bytes(name)}
    off = 4
    while off < end:
        if end - off < 3:
            return None
        klen = spool[off] | (spool[off + 1] << 8)
        off += 2
        if klen == 0 or off + klen > end:
            return None
        key = bytes(spool[off:off + klen])
        off += klen
        if end - off < 2:
            return None
        vlen = spool[off] | (spool[off + 1] << 8)
        off += 2
        if off + vlen > end:
            return None
        env[key] = bytes(spool[off:off + vlen])
        off += vlen
    if len(spool) > end:
        env["body"] = bytes(spool[end:])
    return env


def result_code(ret):
    """(code, note) for what uwsgi.spooler returned, as uWSGI 2.0.21."""
    if isinstance(ret, int):
        v = int(ret)
        if -(1 << 63) <= v < (1 << 63):
            code = ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            note = ""
            if isinstance(ret, bool):
                note = "the task returned %r, which uWSGI takes as %d" % (ret, code)
            elif code != v:
                note = "the task returned %d, which uWSGI truncates to the C int %d" % (v, code)
            return code, note
        return -1, "the task returned %d, too big for uWSGI (a C long): SPOOL_RETRY" % v
    return -1, "the task returned %s, not an int, which uWSGI treats as SPOOL_RETRY" % _short_repr(ret)


def _short_repr(v):
    try:
        r = repr(v)
    except Exception:
        r = "<%s>" % type(v).__name__
    if len(r) > 80:
        r = r[:77] + "..."
    return r


def _pythonize(path):
    base = path[:-3] if path.endswith(".py") else path
    return re.sub(r"\W", "_", base.lstrip("./")) or "spooler_import"


def import_module(spec):
    if "/" in spec or spec.endswith(".py"):
        name = _pythonize(spec)
        s = importlib.util.spec_from_file_location(name, spec)
        if s is None or s.loader is None:
            raise ImportError("cannot import %s: not a Python file" % spec)
        mod = importlib.util.module_from_spec(s)
        sys.modules[name] = mod
        try:
            s.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return mod
    return importlib.import_module(spec)


def _flush():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass


def _exit_status(e):
    # As CPython's handling of an uncaught SystemExit.
    c = e.code
    if c is None:
        return 0
    if isinstance(c, int):
        return c & 0xFF
    try:
        sys.stderr.write("%s\n" % (c,))
    except Exception:
        pass
    return 1


def _format(e):
    """The traceback of e raised by uwsgi.spooler, from the task's frames
    on: the runner's own frame is left out, as uWSGI's C caller has none."""
    tb = e.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


def serve(uwsgi, compat, rfd, wfd):
    """Answer requests until EOF on rfd."""
    while True:
        req = read_request(rfd)
        if req is None:
            return
        name, attempt, spool = req
        env = parse_env(name, spool)
        if env is None:
            reply(wfd, DONE, -2, "the task's vars do not parse; uWSGI deletes such a task")
            continue
        spooler = getattr(uwsgi, "spooler", None)
        if spooler is None:
            reply(wfd, DONE, 0, "uwsgi.spooler is not set: no imported module assigned it or imported uwsgidecorators")
            continue
        compat._set_task_info(compat.TaskInfo(name.decode("utf-8", "replace"), attempt))
        try:
            ret = spooler(env)
        except SystemExit as e:
            status = _exit_status(e)
            tb = _format(e)
            _flush()
            reply(wfd, SYSEXIT, status, tb)
            os._exit(status)
        except BaseException as e:
            tb = _format(e)
            _flush()
            reply(wfd, EXCEPTION, -1, tb)
            continue
        finally:
            compat._set_task_info(None)
        code, note = result_code(ret)
        _flush()
        reply(wfd, DONE, code, note)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m gospool.runner",
                                 description="Run uWSGI spooler task functions for a gospool spooler.")
    ap.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                    help="import MODULE (a name, or a path to a .py file); repeatable")
    ap.add_argument("--request-fd", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--reply-fd", type=int, default=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    rfd, wfd = args.request_fd, args.reply_fd
    for fd in (rfd, wfd):
        try:
            os.set_inheritable(fd, False)
        except OSError as e:
            sys.stderr.write("gospool runner: fd %d: %s (the runner is started by gospool run --spooler-import)\n"
                             % (fd, e.strerror))
            return EXIT_PROTOCOL
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except Exception:
        pass

    from gospool import compat

    uwsgi = compat.install_modules(spooler=True, replace=True)
    for spec in args.imports:
        try:
            import_module(spec)
        except BaseException:
            traceback.print_exc()
            sys.stderr.write("gospool runner: --spooler-import %s failed (python %s)\n"
                             % (spec, sys.version.split()[0]))
            _flush()
            return EXIT_IMPORT
    hook = getattr(uwsgi, "post_fork_hook", None)
    if hook is not None:
        try:
            hook()
        except Exception:
            traceback.print_exc()
    _flush()
    try:
        reply(wfd, READY, PROTOCOL_VERSION, sys.version.split("\n")[0])
        serve(uwsgi, compat, rfd, wfd)
    except ProtocolError as e:
        sys.stderr.write("gospool runner: %s\n" % e)
        return EXIT_PROTOCOL
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
