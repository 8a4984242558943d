"""uWSGI spool files, written as uWSGI 2.0.21 writes them (and as Go's
``spooler/spoolfile`` does), so that uWSGI and gospool spoolers both run
them.

File format (all lengths little-endian)::

    [0x11][u16 N][0x00]  vars: N bytes of [u16 klen][key][u16 vlen][value]...  body to EOF

    {b"hello": b"world"} -> 11 0e 00 00 05 00 68 65 6c 6c 6f 05 00 77 6f 72 6c 64

Name: ``DIR[/PRIORITY]/uwsgi_spoolfile_on_<host>_<pid>_<counter>_<rand>_<sec>_<usec>``.

Write protocol: the bytes go into a temporary file of the same directory
(``.gospool-writing-<pid>-<random>``, created O_EXCL, mode 0600), which
gets its atime and mtime set to ``at`` when the task has one (the spooler
skips the file until then) and, with sync, an fsync; it is closed, then
hard-linked under its uWSGI name (which fails instead of replacing a file
of the same name, as uWSGI's O_EXCL) and the temporary name removed. Where
the filesystem has no hard links it is renamed instead. So the file
appears under its name complete, with its final mtime, or not at all:
spoolers (uWSGI's and gospool's) look only at names with the uWSGI prefix,
and a writer killed at any point, or failing on a full disk, leaves no
half-written task that a spooler could run. (uWSGI writes the file under
its final name and holds a lock while it writes, which a kill drops: a
spooler can then run the half-written file. Its spooler also reads the
mtime before it locks, so it may run an ``at`` task early.) A writer
killed before the link leaves its hidden temporary file behind, which no
spooler runs. On a full disk the temporary file is removed and the error
is NoSpaceError, an OSError with errno ENOSPC (or EDQUOT) naming the spool
directory.

Special keys, checked as Go's ``task.Validate`` does: ``priority`` must be
decimal digits (uWSGI uses it as a directory name unchecked, so ``..``
would escape the spool directory); ``at`` must be a unix time such as
``1700000000`` or ``1700000000.5`` (uWSGI reads the digits before the dot
and turns anything else into garbage). gospool keeps the fraction in the
mtime's nanoseconds. Limits are uWSGI's: keys 1..65535 bytes, values
0..65535, the vars block at most 65535 bytes (uWSGI's Python writer
truncates bigger values silently; here they are an error that names the
key).
"""

import errno
import itertools
import os
import random
import socket
import struct
import time

__all__ = [
    "PREFIX",
    "MAX_VARS",
    "LimitError",
    "SpecialKeyError",
    "encode",
    "decode",
    "name",
    "parse_at",
    "check_priority",
    "check_limits",
    "Writer",
    "NoSpaceError",
    "TMP_PREFIX",
]

PREFIX = "uwsgi_spoolfile_on_"
TMP_PREFIX = ".gospool-writing-"  # neither uWSGI's prefix nor digits: no spooler looks at it
MAX_VARS = 65535
_MAX_TRIES = 16
_U16 = struct.Struct("<H").pack


class LimitError(ValueError):
    """A key, a value or the vars block is too big for a spool file."""

    def __init__(self, key, what, size):
        self.key, self.what, self.size = key, what, size
        if what == "vars block":
            msg = ("the keys and values take %d bytes (with 4 bytes per pair); uWSGI's "
                   "limit is %d, the largest pair is %r: put big data in b'body'" % (size, MAX_VARS, key))
        else:
            msg = ("the %s of %r is %d bytes; uWSGI's limit is %d (it would truncate it): "
                   "put big data in b'body'" % (what, key, size, MAX_VARS))
        super().__init__(msg)


class SpecialKeyError(ValueError):
    """A bad value for priority or at, or an empty key."""


class NoSpaceError(OSError, ValueError):
    """The spool directory's filesystem is full (errno ENOSPC) or the
    user's quota is (EDQUOT): the task was not spooled. An OSError with that
    errno, and a ValueError too, as every failure of uWSGI's spool()."""


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# link(2) refused because the filesystem has no hard links: rename instead.
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS)


def _no_space(e, directory):
    what = "no space left on device" if e.errno == errno.ENOSPC else "no space left (disk quota exceeded)"
    err = NoSpaceError(e.errno, "unable to spool job: %s in spool directory %s; the task was NOT spooled "
                                "(free some space, then spool it again)" % (what, directory))
    for note in getattr(e, "__notes__", ()):
        err.add_note(note)
    return err


def _published(tmp, path):
    """Whether the file at tmp was put in place at path (linked or renamed)."""
    if path is None:
        return False
    try:
        at_path = os.lstat(path)
    except OSError:
        return False
    try:
        at_tmp = os.lstat(tmp)
    except FileNotFoundError:
        return True  # renamed into place
    except OSError:
        return False
    return (at_path.st_dev, at_path.st_ino) == (at_tmp.st_dev, at_tmp.st_ino)


def _log():
    import logging  # only on the rare paths that log
    return logging.getLogger("gospool")


def check_limits(pairs):
    """Raise LimitError (naming the key) when pairs do not fit a spool file,
    SpecialKeyError for an empty key. Returns the size of the vars block."""
    total = 0
    largest, largest_len = None, -1
    for k, v in pairs:
        lk, lv = len(k), len(v)
        if lk == 0:
            raise SpecialKeyError("a key is empty; uWSGI cannot read an empty key")
        if lk > MAX_VARS:
            raise LimitError(k[:64] + b"...", "key", lk)
        if lv > MAX_VARS:
            raise LimitError(k, "value", lv)
        size = 4 + lk + lv
        if size > largest_len:
            largest, largest_len = k, size
        total += size
    if total > MAX_VARS:
        raise LimitError(largest, "vars block", total)
    return total


def encode(pairs, body=None):
    """The bytes of a spool file. Call check_limits first: lengths are not
    checked here."""
    n = 0
    parts = [None]
    for k, v in pairs:
        parts += (_U16(len(k)), k, _U16(len(v)), v)
        n += 4 + len(k) + len(v)
    parts[0] = bytes((0x11, n & 0xFF, n >> 8, 0))
    if body:
        parts.append(body)
    return b"".join(parts)


def decode(data):
    """Parse a spool file as uWSGI does: (pairs, body or None). For tests
    and tools."""
    if len(data) < 4:
        raise ValueError("spool file shorter than its 4-byte header")
    end = 4 + (data[1] | data[2] << 8)
    if end > len(data):
        raise ValueError("vars block runs past the end of the file")
    pairs = []
    off = 4
    while off < end:
        if end - off < 3:
            raise ValueError("corrupt vars block at %d" % off)
        kl = data[off] | data[off + 1] << 8
        if kl == 0 or off + 2 + kl > end or off + 2 + kl + 2 > end:
            raise ValueError("corrupt key at %d" % off)
        k = bytes(data[off + 2:off + 2 + kl])
        off += 2 + kl
        vl = data[off] | data[off + 1] << 8
        if off + 2 + vl > end:
            raise ValueError("corrupt value at %d" % off)
        pairs.append((k, bytes(data[off + 2:off + 2 + vl])))
        off += 2 + vl
    body = bytes(data[end:]) if end < len(data) else None
    return pairs, body


def name(host, pid, counter, rnd, now_ns):
    """uWSGI's spool file name; now_ns is the unix time in nanoseconds."""
    sec, ns = divmod(now_ns, 1_000_000_000)
    return "%s%s_%d_%d_%d_%d_%d" % (PREFIX, host, pid, counter, rnd, sec, ns // 1000)


_MAX_AT = 9223372036854775807 / 1e9  # Go: math.MaxInt64 / 1e9, a float


def parse_at(v):
    """Parse an ``at`` value as gospool (Go's task.ParseAt) does: decimal
    seconds, optionally a dot and decimal fraction digits. Returns unix
    nanoseconds, or None for 0 (uWSGI: no time set). Raises
    SpecialKeyError otherwise."""
    v = bytes(v)
    int_part, dot, frac = v.partition(b".")
    bad = (not int_part or not int_part.isdigit()
           or (dot and (not frac or not frac.isdigit())))
    if not bad:
        try:
            f = float(v)
        except ValueError:
            bad = True
        else:
            bad = f > _MAX_AT
    if bad:
        raise SpecialKeyError(
            "at %r: at must be a unix time in seconds, such as 1700000000 or 1700000000.5" % v)
    sec = int(int_part)
    if sec > 0x7FFFFFFFFFFFFFFF:
        raise SpecialKeyError("at %r: out of range" % v)
    if sec == 0 and (not dot or f == 0):
        return None
    nsec = int(frac[:9].ljust(9, b"0")) if dot else 0
    return sec * 1_000_000_000 + nsec


def check_priority(v):
    """Return the priority as a str directory name, or raise
    SpecialKeyError unless it is 1 to 19 decimal digits."""
    v = bytes(v)
    if not 0 < len(v) <= 19 or not v.isdigit():
        raise SpecialKeyError(
            "priority %r: priority must be a decimal number (it names a sub-directory)" % v)
    return v.decode("ascii")


_counter = itertools.count(1)  # per process, as uWSGI's; next() is atomic under the GIL


class Writer:
    """Writes spool files into one spool directory. Safe for concurrent use
    by threads; fork-safe (the pid in the names is read at each write)."""

    def __init__(self, directory, *, host=None, sync=False):
        real = os.path.realpath(directory)
        if not os.path.isdir(real):
            raise FileNotFoundError(
                errno.ENOENT, "spool directory does not exist (create it first, or start "
                "`gospool run --spooler DIR`, which does)", os.fsdecode(directory))
        if host is None:
            host = socket.gethostname()
        if "/" in host or "\x00" in host:
            raise ValueError("host %r cannot be part of a file name" % host)
        self.dir = real
        self.host = host
        self.sync = sync

    def write(self, data, *, priority=None, at_ns=None, _hook=None):
        """Create a spool file holding data (from encode) and return its
        absolute path (str). priority is a checked str or None; at_ns unix
        nanoseconds or None. Raises NoSpaceError when the disk is full, an
        OSError otherwise; either way no file is left for a spooler. _hook
        (tests) is called with the temporary path once the data is in it."""
        d = self.dir
        try:
            if priority is not None:
                d = os.path.join(d, priority)
                try:
                    os.mkdir(d, 0o777)  # as uWSGI: one level, 0777 minus umask
                except FileExistsError:
                    pass
            return self._write(d, data, at_ns, _hook)
        except OSError as e:
            if e.errno in _NO_SPACE and not isinstance(e, NoSpaceError) and \
                    not getattr(e, "gospool_spooled", None):
                raise _no_space(e, d) from e
            raise

    def _write(self, d, data, at_ns, hook):
        pid = os.getpid()
        tmp = fd = path = None
        linked = False
        # Everything from the open on is inside the try: an exception a
        # signal handler raises anywhere in it (between the open and the
        # first write, say) closes the file and removes it. A writer killed
        # outright leaves its temporary file, which spoolers delete once it
        # is ten minutes old (spooldir.Options.RemoveAbandoned).
        try:
            tries = 0
            while True:
                tries += 1
                tmp = os.path.join(d, "%s%d-%x" % (TMP_PREFIX, pid, random.getrandbits(64)))
                try:
                    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
                    break
                except FileExistsError:
                    tmp = None
                    if tries >= _MAX_TRIES:
                        raise
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written == 0:
                    raise OSError(errno.EIO, "short write", tmp)
                view = view[written:]
            if hook is not None:
                hook(tmp)
            if at_ns is not None:
                os.utime(fd, ns=(at_ns, at_ns))
            if self.sync:
                os.fsync(fd)
            # close reports some write errors (NFS): before the file is in
            # place. fd is forgotten first: closed twice, its number could
            # be another thread's file by then.
            closing, fd = fd, None
            os.close(closing)
            tries = 0
            while True:
                tries += 1
                # Counted before the attempt, failed ones included, as uWSGI does.
                n = next(_counter)
                path = os.path.join(d, name(self.host, pid, n, random.getrandbits(31), time.time_ns()))
                try:
                    os.link(tmp, path)
                    linked = True
                    break
                except FileExistsError:
                    if tries >= _MAX_TRIES:
                        raise
                except OSError as e:
                    if e.errno not in _NO_LINKS:
                        raise
                    # No hard links here: rename, which would replace a file of
                    # that name; the name has the pid, a counter, 31 random
                    # bits and the microsecond, as uWSGI's own.
                    os.rename(tmp, path)
                    break
            # From here on the task is spooled (a spooler may be running it).
            if linked:
                try:
                    os.unlink(tmp)
                except OSError as e:
                    _log().warning("gospool: removing the temporary file %s failed (%s); the task is spooled as %s, "
                                   "and no spooler runs the temporary file: delete it by hand", tmp, e, path)
            if self.sync:
                self._sync_dir(d)
        except BaseException as e:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if tmp is None:
                raise  # nothing was created
            if _published(tmp, path):
                # The exception (a signal handler's, say) landed after the
                # file was put in place: it exists, and will run.
                if linked or os.path.lexists(tmp):
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass
                try:
                    e.gospool_spooled = os.fsencode(path)
                    e.add_note("gospool: the task was spooled as %s before this exception; spooling it again "
                               "would run it twice" % path)
                except Exception:
                    pass
                raise
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            except OSError as rm:
                e.add_note("gospool: removing the temporary file %s failed too (%s): delete it by hand "
                           "(no spooler runs it)" % (tmp, rm))
            e.add_note("gospool: no spool file was written in %s; the task was NOT spooled" % d)
            raise
        return path

    @staticmethod
    def _sync_dir(d):
        """fsync the directory, so that the new name survives a power loss.
        The task is spooled already: a failure is logged, not raised."""
        try:
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            _log().warning("gospool: fsync of spool directory %s failed (%s); the task is spooled, but its file "
                           "may not survive a power loss", d, e)
