"""gospool for Python: hand tasks to gospool (or uWSGI) spoolers.

Standard library only. The public API::

    gospool.spool(dict) -> bytes             # also spool(**kwargs), as uwsgi.spool
    gospool.send_to_spooler(dict) -> bytes   # the same function
    gospool.configure(dirs=None, *, ring=True, require_consumer=False,
                      sync=False, full_wait=0.002) -> None
    gospool.spoolers() -> tuple of bytes     # the known spool directories
    gospool.install(dirs=None) -> None       # route uwsgi.spool to gospool
    gospool.close() -> None                  # give the ring lanes back
    gospool.SPOOL_OK, SPOOL_RETRY, SPOOL_IGNORE   # -2, -1, 0

``spool`` takes its argument exactly as uWSGI 2.0.21's ``uwsgi.spool`` does
on Python 3 (same rules, same ValueError messages), then hands the task to
the spool directory's shared-memory ring when a gospool spooler made one
(``DIR/gospool.ring``; a few microseconds, no file), or writes a uWSGI
spool file that uWSGI and gospool spoolers both run. It returns the task's
name: the absolute path of the spool file as bytes (as ``uwsgi.spool``),
or ``b"ring:LANE:SEQ"`` for a task handed over in the ring, the name the
gospool spooler logs it under (``managing request ring:3:17 ...``).

Which directory: the ``spooler`` key when the task has one (matched by
realpath against the known directories), else the first known directory.
The known directories are those given to ``configure()`` (or
``install()``), else those the gospool master passes its children in
``GOSPOOL_SPOOLER_DIRS`` (colon-separated; ``GOSPOOL_SPOOLER_DIR`` is used
when only it is set).

Where the task goes, as Go's ``spooler.Client``: a spool file when it has a
``priority`` (a sub-directory, as in uWSGI) or an ``at`` in the future, when
the directory has no ring, when the ring's lane is full (after waiting up to
``full_wait`` seconds while the spoolers make progress), when the record is
bigger than a quarter of a lane, or when every lane is taken; the ring
otherwise. A spill bumps the ring's counters so that gospool spoolers look
at the directory at once. Nothing ever waits for a spooler.

Better than uWSGI, where it breaks nobody:

- a key or value of 64 KiB or more, or a vars block over 64 KiB, is a
  ValueError naming the key (uWSGI truncates values silently);
- a ``priority`` that is not decimal digits, an ``at`` that is not a unix
  time, an empty key are a ValueError("unable to spool job") with a note
  saying why, before anything is written;
- the caller's dict is never modified (uWSGI deletes ``b"body"`` from it);
- an empty ``b"body"`` is no body (uWSGI writes none either).

One difference cannot be helped: uWSGI's C function tells ``spool(**{})``
(it spools an empty task) from ``spool()`` (an error); a Python function
cannot, and raises for both. tests/test_uwsgi.py runs every other argument
rule against the real ``uwsgi.spool`` of uWSGI 2.0.21.

Thread-safe: threads of a process share one ring lane under a lock. Fork-
safe: a child never writes into its parent's lane, it takes its own.
"""

import os
import sys
import threading
import time
import warnings

from . import _msgpack, _ring, _spoolfile

__all__ = [
    "SPOOL_OK",
    "SPOOL_RETRY",
    "SPOOL_IGNORE",
    "spool",
    "send_to_spooler",
    "configure",
    "spoolers",
    "install",
    "close",
]

__version__ = "0.1.0"

# What a task function returns, as uWSGI's constants.
SPOOL_OK = -2
SPOOL_RETRY = -1
SPOOL_IGNORE = 0

ENV_SPOOLER_DIRS = "GOSPOOL_SPOOLER_DIRS"
ENV_SPOOLER_DIR = "GOSPOOL_SPOOLER_DIR"

# uWSGI 2.0.21's messages (plugins/python/uwsgi_pymodule.c), word for word.
_NOT_A_DICT = "The argument of spooler callable must be a dictionary"
_ONLY_BYTES = "spooler callable dictionary must contains only bytes"
_UNABLE = "unable to spool job"

_BODY = b"body"
_SPOOLER = b"spooler"
_PRIORITY = b"priority"
_AT = b"at"
_SPECIAL = frozenset((_SPOOLER, _PRIORITY, _AT))

_HOW_TO_CONFIGURE = (
    "no spool directory is known: call gospool.configure(dirs=['/path/to/spool']) "
    "(or gospool.install(dirs=[...])), or run under `gospool run --spooler DIR`, which sets "
    + ENV_SPOOLER_DIRS)


def _unable(note, cause=None):
    """uWSGI's ValueError("unable to spool job"), with why in a note."""
    e = ValueError(_UNABLE)
    e.add_note("gospool: " + note)
    e.__cause__ = cause
    return e


def _only_bytes(note, cause=None):
    e = ValueError(_ONLY_BYTES)
    e.add_note("gospool: " + note)
    e.__cause__ = cause
    return e


def _as_bytes(v):
    """PyObject_Bytes, which uWSGI applies to values that are not bytes:
    __bytes__, then the buffer protocol, then lists, tuples and iterables
    of ints; never str, and never an int (bytes(3) would be b"\\0\\0\\0")."""
    meth = getattr(type(v), "__bytes__", None)
    if meth is not None:
        r = meth(v)
        if not isinstance(r, bytes):
            raise TypeError("__bytes__ returned non-bytes (type %s)" % type(r).__name__)
        return r
    if isinstance(v, str):
        raise TypeError("cannot convert 'str' object to bytes")
    try:
        return memoryview(v).tobytes()
    except TypeError:
        pass
    try:
        it = iter(v)
    except TypeError:
        raise TypeError("cannot convert '%s' object to bytes" % type(v).__name__) from None
    return bytes(it)


def _convert_pair(k, v):
    """The slow path of a pair whose key or value is not exactly bytes:
    uWSGI's type rules. Returns (key, value) as bytes."""
    if type(k) is not bytes:
        if not isinstance(k, bytes):
            if isinstance(k, str):
                raise _only_bytes("key %r is str; uWSGI on Python 3 wants bytes keys (b%r)" % (k, k))
            raise _only_bytes("key %r is %s; keys must be bytes" % (k, type(k).__name__))
        k = memoryview(k).tobytes()  # a bytes subclass: its bytes, as uWSGI reads them
    if type(v) is not bytes:
        if isinstance(v, bytes):
            v = memoryview(v).tobytes()
        else:
            try:
                v = _as_bytes(v)
            except Exception as e:  # as uWSGI: any failure of the conversion
                raise _only_bytes("the value of %r is %s, which does not convert to bytes "
                                  "(bytes, bytearray, memoryview do; str and int do not)"
                                  % (k, type(v).__name__), e) from e
    return k, v


def _task_from_args(args, kwargs):
    """uWSGI's argument rules: the dict to spool, and its body (bytes or None)."""
    if args:
        d = args[0]
        if not isinstance(d, dict):
            raise ValueError(_NOT_A_DICT)
    elif kwargs:
        d = kwargs  # str keys: refused later, as in uWSGI on Python 3
    else:
        raise ValueError(_NOT_A_DICT)
    # b"body" with a bytes value is the task's body, not a pair.
    body = dict.get(d, _BODY)
    if not isinstance(body, bytes):
        body = None
    elif type(body) is not bytes:
        body = memoryview(body).tobytes()
    return d, body


class _Dir:
    """One spool directory: its file writer and, when it has one, its ring."""

    def __init__(self, real):
        self.real = real
        self.breal = os.fsencode(real)
        self.writer = _spoolfile.Writer(real)
        self.ring = None
        self.use_ring = True
        self.require_consumer = False
        self.sync = False
        self.full_wait = 0.002
        self._looked_at = None
        self._warned = False
        self._lock = threading.Lock()

    def set_options(self, *, ring, require_consumer, sync, full_wait):
        with self._lock:
            self.use_ring = ring
            self.require_consumer = require_consumer
            self.sync = sync
            self.writer.sync = sync
            self.full_wait = full_wait
            if not ring:
                self.ring = None
            elif self.ring is not None:
                self.ring.sync = sync
            self._looked_at = None

    def current_ring(self):
        """The ring, looking for it again at most once a second while the
        directory has none (a spooler may start after the producer)."""
        r = self.ring
        if r is not None:
            if not r.closed:
                return r
            self.ring = None
        if not self.use_ring:
            return None
        now = time.monotonic()
        with self._lock:
            if self.ring is not None or (self._looked_at is not None and now - self._looked_at < 1.0):
                return self.ring
            self._looked_at = now
            path = os.path.join(self.real, _ring.FILE_NAME)
            try:
                r = _ring.open_ring(path, sync=self.sync)
            except FileNotFoundError:
                return None  # no gospool spooler served this directory yet: files
            except (_ring.RingError, OSError) as e:
                if not self._warned:
                    self._warned = True
                    warnings.warn("gospool: %s; tasks for %s go to spool files" % (e, self.real),
                                  RuntimeWarning, stacklevel=4)
                return None
            if self.require_consumer and not r.has_live_consumer():
                return None  # maybe a uWSGI spooler serves it: files, which it runs
            r.sync = self.sync
            self.ring = r
            return r

    def spool(self, pairs, body, priority, at_ns):
        r = self.current_ring()
        if r is None:
            return self._file(pairs, body, priority, at_ns)
        if priority is None and (at_ns is None or at_ns <= time.time_ns()):
            try:
                lane, seq = self._push(r, _msgpack.encode_record(pairs, body))
                return b"ring:%d:%d" % (lane, seq)
            except _ring.Refused:
                pass
            path = self._file(pairs, body, priority, at_ns)
            r.note_spill()
            return path
        path = self._file(pairs, body, priority, at_ns)
        r.note_file()  # spoolers learn of its `at` now, not at their next scan
        return path

    def _push(self, r, rec):
        """Go's Client.push: when the lane is full, wait for room while the
        consumers visibly make progress, never longer than full_wait, never
        when they make none; then the caller spills."""
        try:
            return r.push(rec)
        except _ring.RingFull:
            if self.full_wait <= 0:
                raise
        wait = self.full_wait
        start = last_move = time.monotonic()
        progress = r.progress()
        while True:
            # Sleep, do not spin: the consumer may need this CPU.
            time.sleep(20e-6)
            try:
                return r.push(rec)
            except _ring.RingFull as e:
                err = e
            now = time.monotonic()
            p = r.progress()
            if p != progress:
                progress, last_move = p, now
            if now - start > wait or now - last_move > wait / 2:
                raise err

    def _file(self, pairs, body, priority, at_ns):
        data = _spoolfile.encode(pairs, body)
        try:
            path = self.writer.write(data, priority=priority, at_ns=at_ns)
        except _spoolfile.NoSpaceError:
            raise  # an OSError (ENOSPC) and a ValueError, naming the directory: clear as it is
        except OSError as e:
            raise _unable("writing a spool file in %s failed: %s" % (self.real, e), e) from e
        return os.fsencode(path)


class _Config:
    def __init__(self, dirs):
        self.dirs = dirs  # tuple of _Dir, the first is the default
        self.by_path = {d.breal: d for d in dirs}

    def find(self, target):
        d = self.by_path.get(target)
        if d is not None:
            return d
        try:
            real = os.fsencode(os.path.realpath(os.fsdecode(target)))
        except (ValueError, TypeError):
            return None
        return self.by_path.get(real)


_lock = threading.Lock()
_config = None
_all_dirs = {}  # realpath -> _Dir, kept for the process's life: a ring stays open once opened


def _resolve(dirs):
    out = []
    for p in dirs:
        p = os.fsdecode(os.fspath(p))
        if not p:
            continue
        real = os.path.realpath(p)
        if not os.path.isdir(real):
            raise FileNotFoundError(2, "gospool: spool directory does not exist (create it first, or "
                                       "start `gospool run --spooler DIR`, which does)", p)
        if real not in out:
            out.append(real)
    return out


def configure(dirs=None, *, ring=True, require_consumer=False, sync=False, full_wait=0.002):
    """Set the spool directories spool() knows; the first is the default.

    dirs: paths (str, bytes or path-like) of existing directories; None
    reads GOSPOOL_SPOOLER_DIRS as spool() would. ring: use the directory's
    ring when it has one (False: always write spool files, as uWSGI).
    require_consumer: use the ring only while a gospool spooler is attached
    to it (checked when the ring is first found; install() sets it under
    uWSGI, where a uWSGI spooler may be the one serving the directory).
    sync: msync the ring and fsync spool files before spool() returns (a
    task then survives a power loss, not only a crash). full_wait: seconds
    to wait for room in a full lane while spoolers make progress before
    spilling to a file (0: spill at once).
    """
    global _config
    if dirs is None:
        dirs = _env_dirs()
        if not dirs:
            raise ValueError("gospool.configure(): " + _HOW_TO_CONFIGURE)
    elif isinstance(dirs, (str, bytes, os.PathLike)):
        dirs = [dirs]
    reals = _resolve(dirs)
    if not reals:
        raise ValueError("gospool.configure(): dirs is empty; " + _HOW_TO_CONFIGURE)
    with _lock:
        new = []
        for real in reals:
            d = _all_dirs.get(real)
            if d is None:
                d = _all_dirs[real] = _Dir(real)
            d.set_options(ring=ring, require_consumer=require_consumer, sync=sync, full_wait=full_wait)
            new.append(d)
        _config = _Config(tuple(new))


def _env_dirs():
    v = os.environ.get(ENV_SPOOLER_DIRS) or os.environ.get(ENV_SPOOLER_DIR) or ""
    return [p for p in v.split(":") if p]


def _current():
    c = _config
    if c is not None:
        return c
    dirs = _env_dirs()
    if not dirs:
        raise ValueError(_UNABLE + ": " + _HOW_TO_CONFIGURE)
    try:
        configure(dirs)
    except FileNotFoundError as e:
        raise _unable("%s names %s" % (ENV_SPOOLER_DIRS, e), e) from e
    return _config


def spoolers():
    """The known spool directories, absolute, symlinks resolved, as bytes
    (like uwsgi.spoolers); the first is the default. Empty when none is
    known yet."""
    c = _config
    if c is None:
        try:
            c = _current()
        except ValueError:
            return ()
    return tuple(d.breal for d in c.dirs)


def spool(*args, **kwargs):
    """Spool a task, as uwsgi.spool: spool({b"key": b"value", ...}).

    The first positional argument must be a dict (other positionals are
    ignored, and so are keyword arguments when a dict is given); without
    one, the keyword arguments are the dict, whose str keys uWSGI refuses
    on Python 3. Keys must be bytes; values bytes or convertible to bytes
    (bytearray, memoryview, lists of ints; not str, not int). Special keys:
    b"spooler" (the directory), b"priority" (digits: a sub-directory),
    b"at" (unix time: not before), b"body" (bytes carried after the pairs).

    Returns the spool file's absolute path (bytes) or b"ring:LANE:SEQ".
    Raises ValueError with uWSGI's messages: "The argument of spooler
    callable must be a dictionary", "spooler callable dictionary must
    contains only bytes", "unable to spool job" (with a note that says why).
    """
    d, body = _task_from_args(args, kwargs)
    pairs = []
    append = pairs.append
    target = priority = at = None
    total = 0
    big = False
    # One pass: uWSGI's type rules, the special keys, the sizes.
    for k, v in dict.items(d):
        if type(k) is not bytes or type(v) is not bytes:
            k, v = _convert_pair(k, v)
        if body is not None and k == _BODY:
            continue
        lk = len(k)
        lv = len(v)
        if lk > 0xFFFF or lv > 0xFFFF or not lk:
            big = True
        total += lk + lv + 4
        if k in _SPECIAL:
            if k == _SPOOLER:
                target = v
            elif k == _PRIORITY:
                priority = v
            else:
                at = v
        append((k, v))
    c = _config or _current()
    if target is None:
        sd = c.dirs[0]
    else:
        sd = c.find(target)
        if sd is None:
            raise _unable("no known spool directory matches spooler=%r (known: %s)"
                          % (target, ", ".join(x.real for x in c.dirs)))
    try:
        if big or total > 0xFFFF:
            _spoolfile.check_limits(pairs)
        if priority is not None:
            priority = _spoolfile.check_priority(priority)
        at_ns = None if at is None else _spoolfile.parse_at(at)
    except _spoolfile.LimitError as e:
        raise ValueError("%s: %s" % (_UNABLE, e)) from e
    except _spoolfile.SpecialKeyError as e:
        raise _unable(str(e), e) from e
    if not body:
        body = None
    return sd.spool(pairs, body, priority, at_ns)


send_to_spooler = spool


def close():
    """Give this process's ring lanes back and close the rings; forget the
    configuration. Tasks already spooled are unaffected. The next spool()
    starts afresh (configure() again, or the environment)."""
    global _config
    with _lock:
        _config = None
        dirs = list(_all_dirs.values())
        _all_dirs.clear()
    for d in dirs:
        d.ring = None
    with _ring._registry_lock:
        rings = list(_ring._registry.values())
        _ring._registry.clear()
    for r in rings:
        r.close()


def _is_real_uwsgi(mod):
    # uWSGI's embedded module has `opt` (its options); gospool.compat's
    # stand-in marks itself.
    return hasattr(mod, "opt") and not getattr(mod, "__gospool_compat__", False) \
        and getattr(mod, "__file__", None) is None


def _uwsgi_dirs(uwsgi):
    """The spool directories uwsgi.spool() knows, in its order: uwsgi.spoolers
    (realpaths, configuration order), else the spooler-external and spooler
    options."""
    sp = getattr(uwsgi, "spoolers", None)
    if sp:
        return [os.fsdecode(x) for x in sp]
    dirs = []
    for key, val in dict(getattr(uwsgi, "opt", {}) or {}).items():
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if key not in ("spooler", "spooler-external"):
            continue
        for v in val if isinstance(val, (list, tuple)) else [val]:
            if isinstance(v, (bytes, str)) and v:
                dirs.append(os.fsdecode(v))
    return dirs


def install(dirs=None):
    """Make gospool the spooler API of this process.

    Under uWSGI (its ``uwsgi`` module is importable and has ``opt``):
    replaces ``uwsgi.spool`` and ``uwsgi.send_to_spooler`` with
    gospool.spool; uwsgidecorators looks ``uwsgi.spool`` up at each call,
    so the decorators follow. Without dirs, the directories are uWSGI's own
    (``uwsgi.spoolers``: the ``spooler-external`` and ``spooler`` options,
    realpath'd, first is the default), and the ring is used only when a
    gospool spooler serves it (else uWSGI's spooler may be the one running
    the directory: files).

    Outside uWSGI: puts gospool's stand-in ``uwsgi`` and ``uwsgidecorators``
    modules in sys.modules (gospool.compat.install_modules()), so that code
    written for uWSGI imports and spools unchanged; dirs, when given, are
    passed to configure() and become the stand-in's ``uwsgi.spoolers``. When
    the stand-in is installed already (in gospool's Python runner, say) it
    is left as it is.
    """
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        try:
            import uwsgi  # noqa: F811
        except ImportError:
            uwsgi = None
    if uwsgi is not None and _is_real_uwsgi(uwsgi):
        if dirs is None:
            dirs = _uwsgi_dirs(uwsgi)
            if not dirs:
                raise ValueError("gospool.install(): uWSGI has no spooler: add `spooler-external = DIR` "
                                 "(or `spooler = DIR`) to its options, or call install(dirs=[...])")
        configure(dirs, require_consumer=True)
        uwsgi.spool = spool
        uwsgi.send_to_spooler = send_to_spooler
        return
    if dirs is not None:
        configure(dirs)
    if uwsgi is not None and getattr(uwsgi, "__gospool_compat__", False):
        return  # gospool's stand-in already: its spool() is gospool.spool
    try:
        from . import compat
    except ImportError as e:
        raise ImportError("gospool.install(): not running under uWSGI, and gospool.compat (the stand-in "
                          "uwsgi and uwsgidecorators modules) cannot be imported: %s" % e) from e
    if dirs is None:
        compat.install_modules()
    else:
        compat.install_modules(dirs=[os.fsencode(d) for d in spoolers()])
