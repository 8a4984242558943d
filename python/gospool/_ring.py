"""The ring producer in pure Python: a peer of Go's ``ring.Producer``.

The ring is ``DIR/gospool.ring``, a file every gospool process maps
MAP_SHARED (byte diagram: spooler/ring/layout.go; protocol and crash
argument: spooler/ring/doc.go). This module mirrors Go's producer
(spooler/ring/producer.go) step for step; where it has to do something
differently, the comment says why.

Taking a lane. A producer process owns one lane, taken with a write lock
on the lane's first byte. Like Go, this module takes Linux open file
description (OFD) locks (``F_OFD_SETLK``, Linux 3.15+; on an older kernel
it falls back to classic POSIX locks, ``fcntl.lockf``). OFD locks and
POSIX locks conflict with each other, so a Python producer, a Go producer
and a test's ``lockf`` all see a lane taken by any of the others, and the
kernel drops the lock when its holder dies. An OFD lock belongs to the
open file, not to the process, which is what this module needs:

- opening and closing ``gospool.ring`` anywhere else in the process (a
  health check, a backup tool, ``gospool.stats``) leaves the lock alone.
  A POSIX lock would be dropped by closing *any* descriptor of the file,
  and another producer could take the lane and write over acknowledged
  records (that was the case up to this version);
- two Rings on one file in one process get two lanes, as two processes;
- a forked child shares its parent's open file, hence its lock: before
  taking a lane, a child opens the ring file again (a new open file of the
  same inode, through ``/proc/self/fd``) and closes the inherited
  descriptor. The child is detected by an ``os.register_at_fork`` hook
  and, because uWSGI forks its workers without running those hooks
  (unless ``--py-call-osafterfork``), by a per-process token kept in a
  MADV_WIPEONFORK page, which reads as zeros in any forked child
  (``os.getpid()`` would do too, but it is a system call, as long as the
  rest of a push on a VM). Until such a child pushes (or exits), its
  inherited descriptor keeps the parent's lane locked, even after the
  parent's death: the lane is idle meanwhile, its records are not lost.

Tripwires, in case the lock is lost anyway (a descriptor closed behind our
back, a kernel without OFD locks): every push first checks that the lane's
owner word still holds this process's pid (one load; whoever takes a lane
writes its own pid there, a master that recovers it writes 0), and every
100 ms of pushing the lock is taken again (a no-op while it is ours) and
the file is checked (size, link count, identity of the descriptor). A
lane found lost is left alone, logged, and another one is taken; a file
found truncated, removed or replaced is closed, and tasks go to spool
files until the directory's ring is usable again.

The retired word (header byte 52, as Go's ring: spooler/ring/health.go).
A process that finds the file removed, replaced or truncated raises it,
this one too (see _retire), so that every producer stops publishing into
a file no consumer may read any more. A push loads it before it writes
(set: the Ring is closed, the task goes to a spool file, and the
directory's ring file is opened again by path later) and again after its
publishing store, behind a full barrier: set then, the record is taken
back with the compare-and-swap a consumer claims it with (READY to DONE),
and whichever of the two wins has the task: a consumer runs it, or the
push raises RingRetired and the caller writes a spool file. Never both,
never neither. An msync that fails after the publish is counted in the
header's sync errors (byte 56, Go's Stats.SyncErrors).

Memory access. Every shared word is read and written through ctypes
arrays laid over the mapping (``c_uint64.from_buffer(mmap)``): an element
store is one aligned 8-byte (or 4-byte) ``mov`` (see ``push`` for why),
so no other process ever sees half a word. Counters are updated with the
atomic adds of ``_atomic`` (machine code called through ctypes) when they
are available, else with a plain load and store, which can lose an
increment when two processes add at once: counters are statistics (the
slots are the truth), as the package doc of spooler/ring says.

Failpoints (tests only). When the environment variable
``GOSPOOL_FAILPOINT`` names one of the ``FAILPOINT_*`` steps of ``push``,
the process that reaches it writes ``failpoint NAME reached pid PID`` to
standard error and sleeps forever, so that a test can kill it there with
SIGKILL, exactly as Go's internal/failpoint. Unset, it costs one truth
test of an empty string per step.
"""

import atexit
import ctypes
import errno
import fcntl
import mmap
import os
import platform
import struct
import sys
import threading
import time
import weakref
import zlib

from . import _atomic

__all__ = [
    "FILE_NAME", "MAGIC", "VERSION", "Geometry", "Ring", "open_ring",
    "RingError", "NotRingError", "RingVersionError", "CorruptHeaderError",
    "TruncatedError", "UnsupportedError", "NoSpaceError",
    "Refused", "RingFull", "RecordTooLarge", "NoLane", "RingClosed", "RingRetired",
]

FILE_NAME = "gospool.ring"
MAGIC = b"GOSPRING"
VERSION = 2

# Layout, as spooler/ring/layout.go.
HEADER_SIZE = 4096
CACHE_LINE = 64
CONSUMER_BASE = 1024
CONSUMER_SIZE = 64
LANE_CTL_SIZE = 64
SLOT_SIZE = 32
MAX_CONSUMERS = (HEADER_SIZE - CONSUMER_BASE) // CONSUMER_SIZE

OFF_MAGIC = 0
OFF_VERSION = 8
OFF_HDR_SIZE = 12
OFF_LANES = 16
OFF_SLOTS = 20
OFF_LANE_BYTES = 24
OFF_CONSUMERS = 28
OFF_STRIDE = 32
OFF_FILE_SIZE = 40
OFF_CHECKSUM = 48
CHECKSUMMED = 48
# Bytes 52..63, outside the checksum (zero in rings of older versions):
OFF_RETIRED = 52  # u32, non-zero: the file was found removed, replaced or short; publish no more
OFF_SYNC_ERRORS = 56  # u64, msync failures after a publish (the task was spooled)

OFF_SPOOLED = 64
OFF_SPILLED = 72
OFF_FILE_SEQ = 80
OFF_DONE = 128
OFF_RETRIED = 136
OFF_FAILED = 144
OFF_IGNORED = 152
OFF_CORRUPT = 160
OFF_IN_FLIGHT = 168
OFF_RECOVER_SEQ = 176
OFF_DEAD = 184
OFF_WAKE_SEQ = 192
OFF_SLEEPERS = 196

LANE_OWNER = 0
LANE_HEAD = 8
LANE_TAIL = 16
LANE_DATA_HEAD = 24
LANE_DATA_TAIL = 32

SLOT_WORD = 0
SLOT_DATA = 8
SLOT_LENGTH = 16
SLOT_CRC = 20
SLOT_STAMP = 24

STATE_EMPTY = 0
STATE_WRITING = 1
STATE_READY = 2
STATE_CLAIMED = 3
STATE_DONE = 4

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_READY_BITS = STATE_READY << 24
_SLEEPERS_U32 = OFF_SLEEPERS >> 2
_RETIRED_U32 = OFF_RETIRED >> 2
_SPOOLED_U64 = OFF_SPOOLED >> 3
_crc32 = zlib.crc32
_CHECK_NS = 100_000_000  # how often a pushing producer checks the file and its lock (_check_file)
_clock_ns = time.clock_gettime_ns
_MONOTONIC = time.CLOCK_MONOTONIC

FAILPOINT_LANE_TAKEN = "ring-producer-lane-taken"
FAILPOINT_RESERVED = "ring-producer-reserved"
FAILPOINT_WRITING = "ring-producer-writing"
FAILPOINT_PAYLOAD_HALF = "ring-producer-payload-half"
FAILPOINT_PAYLOAD_WRITTEN = "ring-producer-payload-written"
FAILPOINT_PUBLISHED = "ring-producer-published"
FAILPOINT_HEAD_ADVANCED = "ring-producer-head-advanced"
FAILPOINT_RETIRED_CHECKED = "ring-producer-retired-checked"

# Test hook, see the module doc. A test may also assign it directly.
_FAILPOINT = os.environ.get("GOSPOOL_FAILPOINT", "")


def _failpoint(name):
    if _FAILPOINT != name:
        return
    sys.stderr.write("failpoint %s reached pid %d\n" % (name, os.getpid()))
    sys.stderr.flush()
    while True:
        time.sleep(3600)


def slot_word(seq, state, owner=0):
    """seq<<32 | state<<24 | owner, seq keeping its low 32 bits."""
    return (seq & _M32) << 32 | state << 24 | owner & 0xFFFFFF


# The futex wake. Linux system call numbers: futex is 202 on x86-64 and 98
# on aarch64 (the asm-generic table). FUTEX_WAKE without
# FUTEX_PRIVATE_FLAG: the word is in a MAP_SHARED file mapping and the
# sleepers are other processes.
_FUTEX_WAKE = 1
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower())
_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]


def _futex_wake(addr, n):
    if _SYS_FUTEX is not None:
        _syscall(_SYS_FUTEX, addr, _FUTEX_WAKE, n, None, None, 0)


class RingError(Exception):
    """The ring file cannot be used: the message says why and what to do."""


class NotRingError(RingError):
    """The file does not start with the ring magic."""


class RingVersionError(RingError):
    """The file was written by another version of the ring layout."""


class CorruptHeaderError(RingError):
    """The header checksum or geometry does not hold."""


class TruncatedError(RingError):
    """The file is shorter than its header says."""


class UnsupportedError(RingError):
    """This Python cannot write the ring safely on this CPU."""


class NoSpaceError(RingError):
    """The disk has no room for the ring file's pages."""


class Refused(Exception):
    """The ring cannot take this record now: the caller writes a spool file
    instead. Never a failure of the task."""


class RingFull(Refused):
    """The lane has no room for the record now (Go: ErrFull)."""


class RecordTooLarge(Refused):
    """The record is bigger than a lane accepts, a quarter of it (Go: ErrTooLarge)."""


class NoLane(Refused):
    """Every lane is taken by another live producer process (Go: ErrNoLane)."""


class RingClosed(Refused):
    """The ring was closed in this process."""


class RingRetired(RingClosed):
    """A process found the ring's file removed, replaced or cut short and
    raised the header's retired word (Go: ErrRetired): the record was not
    published, or was taken back. The Ring is closed; the directory's ring
    file is opened again by path later (a new one, once there is one)."""


class Geometry:
    """The shape of a ring file, fixed when it is created."""

    __slots__ = ("lanes", "slots_per_lane", "lane_bytes", "consumers")

    def __init__(self, lanes, slots_per_lane, lane_bytes, consumers):
        self.lanes = lanes
        self.slots_per_lane = slots_per_lane
        self.lane_bytes = lane_bytes
        self.consumers = consumers

    def __repr__(self):
        return "Geometry(lanes=%d, slots_per_lane=%d, lane_bytes=%d, consumers=%d)" % (
            self.lanes, self.slots_per_lane, self.lane_bytes, self.consumers)

    def __eq__(self, other):
        return isinstance(other, Geometry) and all(
            getattr(self, a) == getattr(other, a) for a in self.__slots__)

    @property
    def max_record(self):
        return self.lane_bytes // 4

    def validate(self):
        """The reason the geometry is invalid, or None (Go: Geometry.validate)."""
        def pow2(n):
            return n > 0 and n & (n - 1) == 0
        if not 1 <= self.lanes <= 4096:
            return "lanes %d: want 1 to 4096" % self.lanes
        if not pow2(self.slots_per_lane) or not 2 <= self.slots_per_lane <= 1 << 20:
            return "slots per lane %d: want a power of two from 2 to 1048576" % self.slots_per_lane
        if not pow2(self.lane_bytes) or not 4096 <= self.lane_bytes <= 1 << 30:
            return "lane bytes %d: want a power of two from 4096 to 1 GiB" % self.lane_bytes
        if not 1 <= self.consumers <= MAX_CONSUMERS:
            return "consumers %d: want 1 to %d" % (self.consumers, MAX_CONSUMERS)
        return None

    # Offsets of a lane's slots and data, relative to the lane's start.
    @property
    def slots_offset(self):
        return LANE_CTL_SIZE

    @property
    def data_offset(self):
        return _round_up(LANE_CTL_SIZE + self.slots_per_lane * SLOT_SIZE, CACHE_LINE)

    @property
    def stride(self):
        return _round_up(self.data_offset + self.lane_bytes, 4096)

    @property
    def file_size(self):
        return HEADER_SIZE + self.lanes * self.stride


def _round_up(n, to):
    return (n + to - 1) // to * to


_REMOVE_HINT = " (start or restart gospool run on this directory: its master moves the file aside and saves the tasks in it as spool files)"


def decode_header(h, file_len):
    """Check the immutable header and return its Geometry (Go: decodeHeader)."""
    if len(h) < HEADER_SIZE:
        raise TruncatedError("ring file is truncated: %d bytes, a ring header needs %d%s"
                             % (len(h), HEADER_SIZE, _REMOVE_HINT))
    if h[OFF_MAGIC:OFF_MAGIC + 8] != MAGIC:
        raise NotRingError("not a gospool ring file: magic %r, want %r" % (bytes(h[:8]), MAGIC))
    version, hdr_size, lanes, slots, lane_bytes, consumers, stride, file_size, checksum = \
        struct.unpack_from("<IIIIIIQQI", h, OFF_VERSION)
    if version != VERSION:
        raise RingVersionError(
            "ring file of another version: file has version %d, this gospool (Python) reads version %d; "
            "use the same gospool release for the spoolers and the Python package" % (version, VERSION))
    computed = zlib.crc32(h[:CHECKSUMMED])
    if computed != checksum:
        raise CorruptHeaderError("ring header is corrupt: header checksum %08x, computed %08x%s"
                                 % (checksum, computed, _REMOVE_HINT))
    g = Geometry(lanes, slots, lane_bytes, consumers)
    why = g.validate()
    if why:
        raise CorruptHeaderError("ring header is corrupt: %s%s" % (why, _REMOVE_HINT))
    if hdr_size != HEADER_SIZE or stride != g.stride or file_size != g.file_size:
        raise CorruptHeaderError("ring header is corrupt: sizes in the header do not follow from its geometry"
                                 + _REMOVE_HINT)
    if file_len < g.file_size:
        raise TruncatedError("ring file is truncated: file is %d bytes, its header says %d%s"
                             % (file_len, g.file_size, _REMOVE_HINT))
    return g


def encode_header(g):
    """The immutable header of a ring of geometry g, checksum included."""
    h = bytearray(HEADER_SIZE)
    h[0:8] = MAGIC
    struct.pack_into("<IIIIIIQQ", h, OFF_VERSION, VERSION, HEADER_SIZE, g.lanes, g.slots_per_lane,
                     g.lane_bytes, g.consumers, g.stride, g.file_size)
    struct.pack_into("<I", h, OFF_CHECKSUM, zlib.crc32(h[:CHECKSUMMED]))
    return bytes(h)


def create_file(path, g, *, allocate=True):
    """Create a ring file as Go's ring.Create does (header written to a
    temporary file linked into place, so nobody maps a half-written one;
    its blocks allocated first, so that no write into the mapping can find
    the disk full). For tests and tools: gospool spoolers create their
    rings themselves. allocate=False leaves the file sparse, as rings of
    older versions are. An existing file is left alone."""
    why = g.validate()
    if why:
        raise ValueError("ring %s: bad geometry: %s" % (path, why))
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, ".gospool.ring.tmp-%d-%d" % (os.getpid(), time.monotonic_ns()))
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.pwrite(fd, encode_header(g), 0)
        os.ftruncate(fd, g.file_size)  # the rest is zeros: every slot "empty"
        if allocate:
            try:
                _allocate(fd, g.file_size)
            except NoSpaceError as e:
                raise NoSpaceError("ring %s: %s" % (path, e)) from None
        os.fsync(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.close(fd)
        os.unlink(tmp)


# Fork detection without a system call (os.getpid() is one, 1 us on a VM
# with the usual mitigations, as long as the rest of a push): a private
# page marked MADV_WIPEONFORK (Linux 4.14+) reads as zeros in a forked
# child, whoever forked it (os.fork, or uWSGI's fork() in C, which runs no
# Python hooks). It holds a random token per process; a lane taken under
# another token belongs to an ancestor. Where madvise refuses, the pid is
# the token.
_MADV_WIPEONFORK = 18
try:
    _fork_page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    _fork_page.madvise(_MADV_WIPEONFORK)
    _FORK_WORDS = memoryview(_fork_page).cast("Q")
except (OSError, ValueError, AttributeError):
    _FORK_WORDS = None
_token_lock = threading.Lock()


def _process_token():
    """A value that is the same all along this process and differs in
    every process it forks."""
    w = _FORK_WORDS
    if w is None:
        return os.getpid()
    t = w[0]
    if t == 0:
        with _token_lock:
            t = w[0]
            if t == 0:
                t = w[0] = int.from_bytes(os.urandom(8), "little") | 1
    return t


_FLOCK = struct.Struct("hhqqi4x")  # struct flock on LP64 Linux (x86-64, aarch64)
# fcntl commands of OFD locks (linux/fcntl.h); the fcntl module has them
# since Python 3.9.
_F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_ofd_locks = True  # cleared when the kernel refuses them (before Linux 3.15)


def _try_lock_byte(fd, off):
    """Take a write lock on one byte of the file without waiting: True when
    taken (or ours already), False when another open file (or process)
    holds it. OFD lock where the kernel has them, else a POSIX one."""
    global _ofd_locks
    if _ofd_locks:
        try:
            # l_pid must be 0 for OFD locks.
            fcntl.fcntl(fd, _F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, off, 1, 0))
            return True
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return False
            if e.errno != errno.EINVAL:
                raise
            _ofd_locks = False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, off, os.SEEK_SET)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _unlock_byte(fd, off):
    if _ofd_locks:
        fcntl.fcntl(fd, _F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, off, 1, 0))
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, off, os.SEEK_SET)


def _log():
    import logging  # only on the rare paths that log
    return logging.getLogger("gospool")


_fallocate = _libc.fallocate
_fallocate.restype = ctypes.c_int
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def _allocate(fd, size):
    """Give every page of the ring file its disk blocks now, unless it has
    them. A page of a sparse file gets its block when it is first written,
    and through a mapping a write that finds the disk full cannot fail: the
    kernel kills the process with SIGBUS. gospool creates rings with their
    blocks allocated; a ring made by an older version may still have holes.
    Raises RingError when the disk has no room for them (the caller then
    writes spool files, and gets a clear ENOSPC there)."""
    st = os.fstat(fd)
    if st.st_blocks * 512 >= size:
        # Every page has its block. (Where st_blocks counts metadata blocks
        # too, ext4's extent tree, a ring with a few holes among many
        # extents could pass: only an old, much-used sparse ring.)
        return
    missing = size - st.st_blocks * 512
    try:
        vfs = os.fstatvfs(fd)
        free = vfs.f_bavail * vfs.f_frsize
    except OSError:
        free = None
    # Check first: a failed fallocate may keep what it allocated (ext4,
    # XFS), and would take the last free blocks of the disk from everyone.
    if free is not None and free < missing:
        raise NoSpaceError("no space left on device for the %d bytes its pages still need (%d free); "
                           "tasks go to spool files" % (missing, free))
    # fallocate(2), not os.posix_fallocate: glibc emulates the latter, where
    # the filesystem cannot, by writing into the file, which would race
    # with the other processes that write into the ring.
    if _fallocate(fd, 0, 0, size) != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSPC, errno.EDQUOT):
            raise NoSpaceError("no space left on device for its %d bytes (%s); tasks go to spool files"
                               % (size, os.strerror(err)))
        # EOPNOTSUPP and the like: the filesystem cannot; use the ring as it is.


_rings = weakref.WeakSet()
_retired_logged = {}  # path -> time.monotonic() when a retired ring there was last logged
_registry = {}  # (st_dev, st_ino) -> Ring
_registry_lock = threading.Lock()


def _flush_mapping(mm):
    """msync(MS_SYNC) of the whole mapping. A module function so that a
    test can make it fail: a real msync fails only on a failing disk."""
    mm.flush()


def _note_spooled(e, lane, seq):
    """Mark an exception that landed after the record was published: the
    task is spooled, the caller must not spool it again."""
    name = b"ring:%d:%d" % (lane, seq)
    try:
        e.gospool_spooled = name
        e.add_note("gospool: the task was spooled as %s before this exception; spooling it again "
                   "would run it twice" % name.decode())
    except Exception:
        pass


def open_ring(path, *, sync=False):
    """The process's Ring for the file at path, opened on first use. One
    Ring per file per process: its threads share one lane (each Ring takes
    its own, as a process would)."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    with _registry_lock:
        r = _registry.get(key)
        if r is not None and not r.closed:
            return r
        r = Ring(path, sync=sync)
        _registry[key] = r
        return r


class Ring:
    """An open, mapped ring file and this process's lane in it (taken at
    the first push). Safe for concurrent use by threads: they share the
    lane under a lock held while bytes are copied, as Go's Producer."""

    def __init__(self, path, *, sync=False, atomics=_atomic.OPS):
        if atomics is None and not _tso():
            # Without a fence the payload stores could become visible after
            # the publishing store on this CPU: a consumer could run garbage.
            raise UnsupportedError(
                "ring %s: this CPU (%s) orders memory weakly and the memory-barrier helper is not "
                "available (%s); tasks go to spool files" % (path, platform.machine(), _atomic.unavailable_reason))
        self.path = path
        self.sync = sync
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            h = os.pread(fd, HEADER_SIZE, 0)
            try:
                # The size is checked against the header before mapping:
                # touching a page past the end of the file is SIGBUS.
                g = decode_header(h, st.st_size)
                _allocate(fd, g.file_size)
            except RingError as e:
                raise type(e)("ring %s: %s" % (path, e)) from None
            mm = mmap.mmap(fd, g.file_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._fd_token = _process_token()  # the process that opened _fd (see _renew_fd)
        self._ident = (st.st_dev, st.st_ino)
        self._mm = mm
        self.geometry = g
        self._file_size = g.file_size
        self._u64 = (ctypes.c_uint64 * (g.file_size // 8)).from_buffer(mm)
        self._u32 = (ctypes.c_uint32 * (g.file_size // 4)).from_buffer(mm)
        self._addr = ctypes.addressof(self._u64)
        self._S = g.slots_per_lane
        self._D = g.lane_bytes
        self._max_record = g.max_record
        self._stride = g.stride
        self._data_rel = g.data_offset
        self._atomics = atomics
        self._fence = None if atomics is None or atomics.tso else atomics.fence
        self._lock = threading.Lock()
        self.closed = False
        # The lane. _lane is assigned last when a lane is taken, after every
        # other field below describes it: whatever exception interrupts a
        # take-over (a signal handler's, at any line), _lane is None or the
        # fields are right for it. See _take_lane.
        self._lane = None
        self._lane_pid = 0  # our pid, as written into the lane's owner word
        self._owner32 = 0  # u32 index of the lane's owner word
        self._token = None
        self._no_lane_at = None
        self._dirty = False
        self._check_at = 0  # CLOCK_MONOTONIC ns of the next _check_file
        self.lanes_lost = 0  # lanes found taken from us (see the module doc)
        _rings.add(self)

    # -- lane ownership ----------------------------------------------------

    def _lane_base(self, lane):
        return HEADER_SIZE + lane * self._stride

    def _take_lane(self):
        """Take the first free lane (Go: Ring.Producer). Called with the lock
        held and self._lane None.

        An exception raised anywhere in here (KeyboardInterrupt, a request
        timeout's SIGALRM handler) must leave no state that a later push
        could use in the wrong lane: the lane's fields are computed and
        recovered first, and self._lane is assigned last. An exception that
        lands after the lock is taken leaves the lane locked by us and
        unused until the next push takes it again (re-locking a byte this
        open file holds succeeds) and recovers it afresh; recovering twice
        is harmless, it only moves the lane's words forward."""
        now = time.monotonic()
        if self._no_lane_at is not None and now - self._no_lane_at < 1.0:
            raise NoLane("every ring lane is taken by another producer process")
        token = _process_token()
        if self._fd_token != token:
            try:
                self._renew_fd(token)
            except OSError as e:
                self._no_lane_at = now
                raise NoLane("ring %s: opening it again in this forked process: %s" % (self.path, e)) from e
        for lane in range(self.geometry.lanes):
            base = self._lane_base(lane)
            try:
                if not _try_lock_byte(self._fd, base):
                    continue
            except OSError as e:
                self._no_lane_at = now
                raise NoLane("ring %s: locking lane %d: %s" % (self.path, lane, e)) from e
            pid = os.getpid()
            head, tail, dh, dt = self._recover(base, pid)
            self._base = base
            self._base8 = base >> 3
            self._owner32 = base >> 2
            self._slots8 = (base + LANE_CTL_SIZE) >> 3
            self._data = base + self._data_rel
            self._writing_bits = STATE_WRITING << 24 | pid & 0xFFFFFF
            self._head, self._tail, self._dh, self._dt = head, tail, dh, dt
            self._lane_pid = pid
            self._token = token
            self._no_lane_at = None
            self._dirty = False
            self._lane = lane
            if _FAILPOINT:
                _failpoint(FAILPOINT_LANE_TAKEN)
            return
        self._no_lane_at = now
        raise NoLane("every ring lane is taken by another producer process")

    def _renew_fd(self, token):
        """Open the ring file again for a forked child: the descriptor it
        inherited shares the parent's open file, so a lock taken through it
        would be the parent's lock (re-locking the parent's lane would
        succeed). /proc/self/fd opens the same inode even if the file was
        replaced or removed since; the path is the fallback."""
        old = self._fd
        try:
            fd = os.open("/proc/self/fd/%d" % old, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self._ident:
            os.close(fd)
            raise NoLane("ring %s: the file was replaced since this process (or its parent) opened it" % self.path)
        self._fd = fd
        self._fd_token = token
        # Closing the inherited descriptor drops no lock of the parent (its
        # own descriptor keeps the open file) and none of ours (we hold none).
        os.close(old)

    def _recover(self, base, pid):
        """Resume the lane at base from its shared control words, as its new
        owner pid, and return (head, tail, data head, data tail) (Go:
        Producer.recover). Records the previous owner published (READY or
        later) after its last head update are kept: they are complete, since
        READY is stored after the payload and its CRC. A record still
        WRITING was never acknowledged to anyone and is overwritten. Stores
        the owner pid and the control words; running it again is harmless."""
        u, u32 = self._u64, self._u32
        b8 = base >> 3
        head, tail, dh, dt = u[b8 + 1], u[b8 + 2], u[b8 + 3], u[b8 + 4]
        S, D = self._S, self._D
        if head < tail or head - tail > S or dh < dt or dh - dt > D:
            # Impossible unless the file was damaged: start the lane afresh
            # after its last sequence, so stale slots can never match.
            tail, dt = head, dh
            if dh < dt:
                dh = dt
        mask = S - 1
        slots8 = (base + LANE_CTL_SIZE) >> 3
        while head - tail < S:
            si = slots8 + (head & mask) * 4
            w = u[si]
            if w >> 32 != head & _M32 or (w >> 24) & 0xFF < STATE_READY:
                break
            end = u[si + 1] + u32[2 * si + 4]
            if end > dh:
                dh = end
            head += 1
        u32[base >> 2] = pid  # owner pid: informational, and the tripwire's word
        u[b8 + 3] = dh
        u[b8 + 4] = dt
        u[b8 + 2] = tail
        u[b8 + 1] = head
        return head, tail, dh, dt

    def _resume(self):
        """After a push interrupted by an exception: resume from the shared
        words, as a new owner would. self._dirty stays set until it is done."""
        self._head, self._tail, self._dh, self._dt = self._recover(self._base, self._lane_pid)
        self._dirty = False

    def _lose_lane(self, why):
        """The lane is not ours any more: forget it without touching its
        words (its new owner writes them) and log why."""
        lane, self._lane = self._lane, None
        self.lanes_lost += 1
        try:
            _unlock_byte(self._fd, self._base)  # in case the lock is still ours
        except OSError:
            pass
        _log().warning("gospool: ring %s: lane %d is no longer this process's (pid %d): %s; taking another "
                       "lane (was gospool.ring closed by other code in this process?)",
                       self.path, lane, os.getpid(), why)

    def _check_file(self, now):
        """Every 100 ms of pushing: is the file still the full-size ring we
        mapped, linked in its directory, behind our own descriptor, and is
        the lane's lock still ours? fstat costs microseconds on a VM, too
        much for every push; between two checks a truncation by hand can
        still fault (SIGBUS) a push, a removal can still lose its task."""
        self._check_at = now + _CHECK_NS
        try:
            st = os.fstat(self._fd)
            ours = (st.st_dev, st.st_ino) == self._ident
        except OSError:
            ours = False
        if not ours:
            self._abandon("its descriptor %d was closed (by other code in this process)" % self._fd, close_fd=False)
        elif st.st_size < self._file_size:
            self._retire(st.st_size)
            self._abandon("the file was truncated to %d bytes while in use (its header says %d)"
                          % (st.st_size, self._file_size))
        elif st.st_nlink == 0 or self._path_names_another(st):
            self._retire(st.st_size)
            self._abandon("the file was removed or replaced while in use (tasks put in it would never run)")
        elif self._lane is not None and self._token == _process_token():
            try:
                mine = _try_lock_byte(self._fd, self._base)
            except OSError:
                mine = True  # cannot tell: the owner word still guards every push
            if not mine:
                self._lose_lane("another process holds its lock")

    def _path_names_another(self, st):
        """Whether the ring's path no longer names the open file st (it was
        removed, or removed and created again: by hand, or moved aside by a
        master's salvage). A link count of 0 says so for most; this catches
        a file that has another name too."""
        try:
            now = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return True
        except OSError:
            return False  # cannot tell
        return (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)

    def _retire(self, size):
        """Raise the header's retired word (Go: Ring.Check does the same),
        so that every process that maps the file, Go's too, stops
        publishing into it, and a consumer or master that looks at it knows.
        Written with pwrite, not through the mapping: a store into a page
        the file no longer has would be SIGBUS, and the file may be cut
        shorter still between our fstat and the store. Only when the
        header page is in the file (a write past the end would grow it
        back). One byte, 0 to 1: no reader can see it torn."""
        if size < HEADER_SIZE:
            return
        try:
            os.pwrite(self._fd, b"\x01", OFF_RETIRED)
        except OSError:
            pass  # the others find out by themselves, on their own periodic check

    def _abandon(self, why, close_fd=True, exc=RingClosed, raise_=True):
        """Stop using a ring file that is broken under us: no further access
        to the mapping (a truncated one faults), no lane release (the same;
        closing our descriptor drops the lane's lock, and a master recovers
        the lane). The caller spills; the directory's ring is looked for
        again later (by path: a new file, once there is one)."""
        self.closed = True
        self._lane = None
        now = time.monotonic()
        if exc is not RingRetired or now - _retired_logged.get(self.path, -1e9) > 60:
            # A retired file that its path still names is opened again
            # (once a second, see gospool._Dir.open_ring) and abandoned
            # again: said once a minute.
            if exc is RingRetired:
                _retired_logged[self.path] = now
            _log().warning("gospool: ring %s: %s; tasks go to spool files until the spool directory has a "
                           "usable ring", self.path, why)
        del self._u64, self._u32
        try:
            self._mm.close()
        except BufferError:
            pass
        if close_fd:
            os.close(self._fd)
        if raise_:
            raise exc("ring %s: %s" % (self.path, why))

    def _reclaim(self):
        """Advance the tail over records consumers have finished (Go: reclaim)."""
        u, u32 = self._u64, self._u32
        mask = self._S - 1
        tail, head, dt = self._tail, self._head, self._dt
        while tail < head:
            si = self._slots8 + (tail & mask) * 4
            w = u[si]
            if w >> 32 != tail & _M32 or (w >> 24) & 0xFF != STATE_DONE:
                break
            dt = u[si + 1] + u32[2 * si + 4]
            tail += 1
        if tail == head:
            dt = self._dh
        if self._fence is not None and tail != self._tail:
            # Weakly ordered CPUs: the consumers' reads of the reclaimed
            # payloads (ordered before their DONE by their CAS) must not be
            # overtaken by our coming writes into that space.
            self._fence()
        self._tail, self._dt = tail, dt
        u[self._base8 + 4] = dt
        u[self._base8 + 2] = tail

    # -- the hot path --------------------------------------------------------

    def push(self, payload):
        """Publish one record; returns (lane, seq). Raises RingFull,
        RecordTooLarge, NoLane, RingClosed or RingRetired (all Refused)
        when the ring cannot take it now: the caller spills the task to a
        spool file. RingRetired may come after the publish, when the ring
        was retired meanwhile and the record was taken back: it is not in
        the ring.
        When push returns, the record is in the shared mapping and survives
        the death of any process (and, with sync, a power loss).

        Once the record is published, push does not fail: an msync error
        is logged, not raised (the task exists, and a caller that retried
        would run it twice). An exception raised by a signal handler (a
        KeyboardInterrupt, a request timeout) can still land after the
        publish, while push finishes or as it returns: Python runs pending
        handlers whenever a call returns, so no code can close that window.
        When it lands inside push, the exception carries the task's name
        (``gospool_spooled``, and a note) so that the caller does not spool
        it again.

        This is the hot path: Go's Producer.Push step for step, with
        place() and the wake-up check inlined and attributes read once
        (each costs as much as an 8-byte store into the mapping)."""
        n = len(payload)
        if n > self._max_record:
            raise RecordTooLarge("record of %d bytes, the limit is %d" % (n, self._max_record))
        crc = _crc32(payload)
        published = -1
        try:
            with self._lock:
                if self.closed:
                    raise RingClosed("ring %s is closed" % self.path)
                # The publish stamp (taken here, a microsecond before the
                # publish, to time the file check too).
                now = _clock_ns(_MONOTONIC)
                if now >= self._check_at:
                    self._check_file(now)
                u = self._u64
                u32 = self._u32
                if u32[_RETIRED_U32]:
                    # Another process found the file removed, replaced or
                    # short: records put in it may never run.
                    self._abandon("a process found the file removed, replaced or truncated (its retired "
                                  "word is set)", exc=RingRetired)
                fw = _FORK_WORDS
                if (self._lane is None or (fw[0] if fw is not None else os.getpid()) != self._token
                        or u32[self._owner32] != self._lane_pid):
                    # First push; a forked child that inherited the parent's
                    # state; or the tripwire: someone else wrote the lane's
                    # owner word, so the lane is not ours any more.
                    self._take_over()
                elif self._dirty:
                    # An exception (KeyboardInterrupt, say) left the last push
                    # half done: resume from the shared words, as a new owner
                    # would.
                    self._resume()
                S = self._S
                D = self._D
                head = self._head
                if head - self._tail >= S:
                    self._reclaim()
                    if head - self._tail >= S:
                        raise RingFull("ring lane %d is full (%d records)" % (self._lane, S))
                # place(): payloads are contiguous; one that would cross the end
                # of the data area starts at the next lap, wasting the end.
                pos = self._dh
                off = pos & (D - 1)
                if off + n > D:
                    pos += D - off
                    off = 0
                if pos + n - self._dt > D:
                    self._reclaim()
                    pos = self._dh
                    off = pos & (D - 1)
                    if off + n > D:
                        pos += D - off
                        off = 0
                    if pos + n - self._dt > D:
                        raise RingFull("ring lane %d is full (%d payload bytes)" % (self._lane, D))
                self._dirty = True  # cleared below, once the cached state is current again
                if _FAILPOINT:
                    _failpoint(FAILPOINT_RESERVED)

                lane = self._lane
                si = self._slots8 + ((head & (S - 1)) << 2)  # u64 index of the slot
                seqbits = (head & _M32) << 32
                # 1. Mark the slot as being written in this lap. Consumers stop at it.
                u[si] = seqbits | self._writing_bits
                if _FAILPOINT:
                    _failpoint(FAILPOINT_WRITING)

                # 2. Copy the payload and its description. Nothing reads them
                # before step 3.
                d = self._data + off
                if _FAILPOINT:
                    half = n // 2
                    self._mm[d:d + half] = payload[:half]
                    _failpoint(FAILPOINT_PAYLOAD_HALF)
                    self._mm[d + half:d + n] = payload[half:]
                else:
                    self._mm[d:d + n] = payload
                u[si + 1] = pos
                u32[2 * si + 4] = n
                u32[2 * si + 5] = crc
                u[si + 3] = now
                if _FAILPOINT:
                    _failpoint(FAILPOINT_PAYLOAD_WRITTEN)

                # 3. Publish: ONE aligned 8-byte store of the slot word.
                #
                # Why it is one store: u is a ctypes c_uint64 array over the
                # mapping, u[i] = w is what c_uint64.from_buffer(mmap, 8*i).value
                # = w does. The setter (L_set in CPython's
                # Modules/_ctypes/cfield.c) converts the int and copies its 8
                # bytes with a fixed-size memcpy, which C compilers emit as a
                # single 64-bit mov (objdump of CPython 3.11's _ctypes: `mov
                # %rbx,(%r12)`). The slot is 8-aligned (the mapping is
                # page-aligned; slots are 32 bytes apart from a 64-aligned
                # base), and aligned 8-byte stores are single-copy atomic on
                # x86-64 and aarch64: no consumer ever sees half a word.
                #
                # Why the payload is visible first: x86-64 is TSO. Stores become
                # visible to other CPUs in program order, so a consumer that
                # loads READY (with its CAS, a full barrier) also sees the
                # payload, length, CRC and stamp stored above. One that has not
                # seen READY stops at the slot (WRITING, or an older lap).
                #
                # A weakly ordered CPU (aarch64, POWER, RISC-V) may make stores
                # visible out of order: the publish then needs release
                # semantics, a full barrier (dmb ish) before the store or a
                # store-release (stlr). _atomic provides that barrier as machine
                # code and self._fence calls it on such CPUs; without it the ring
                # is refused there (UnsupportedError) and tasks go to files.
                if self._fence is not None:
                    self._fence()
                # The publish and the note that it happened, on one line with
                # no call between them: neither a signal handler nor a
                # tracer can run in between.
                u[si] = seqbits | _READY_BITS; published = head  # noqa: E702
                if _FAILPOINT:
                    _failpoint(FAILPOINT_PUBLISHED)

                # 4. Tell the lane's next owner where we are.
                self._head = head + 1
                self._dh = dh = pos + n
                b8 = self._base8
                u[b8 + 3] = dh
                u[b8 + 1] = head + 1
                self._dirty = False
                if _FAILPOINT:
                    _failpoint(FAILPOINT_HEAD_ADVANCED)

                # 5. Was the ring retired while we wrote (Go: Push step 5)?
                # The load of the retired word must not be ordered before
                # the READY store (x86-64 lets a load pass an earlier
                # store): the atomic add of the spooled counter is the full
                # barrier between them (lock xadd), as it is for the
                # sleepers count (see _wake). So either the retiring
                # process, which raises the word before it looks at the
                # lanes, sees our record, or we see the word.
                ops = self._atomics
                if ops is not None:
                    ops.add64(self._addr + OFF_SPOOLED, 1)
                    if u32[_RETIRED_U32]:
                        self._retired_after_publish(si, seqbits)
                else:
                    # No barrier to be had: a retire that lands in this
                    # instant can be missed (the record then waits in the
                    # old file for a consumer of it, or a master's move).
                    if u32[_RETIRED_U32]:
                        self._retired_after_publish(si, seqbits)
                    u[_SPOOLED_U64] = (u[_SPOOLED_U64] + 1) & _M64
                if _FAILPOINT:
                    _failpoint(FAILPOINT_RETIRED_CHECKED)
                if self.sync:
                    self._msync()
                # The wake-up, as Go's Push. The sleepers count is loaded
                # after the barrier above: see _wake.
                if ops is None or u32[_SLEEPERS_U32]:
                    self._wake()
                return lane, head
        except BaseException as e:
            # RingRetired after the publish: taken back, or (without the
            # compare-and-swap) to be spooled again on purpose.
            if published >= 0 and not isinstance(e, RingRetired) and not self._taken_back(si, seqbits):
                _note_spooled(e, lane, published)
            if isinstance(e, RingRetired) and not self.closed:
                self._abandon("a process found the file removed, replaced or truncated (its retired word "
                              "is set); the task goes to a spool file", exc=RingRetired, raise_=False)
            raise

    def _take_over(self):
        """Take a lane: the first, a forked child's own, or a new one when
        the tripwire found ours taken."""
        if self._lane is not None and self._token == _process_token():
            owner = self._u32[self._owner32]
            self._lose_lane("process %d wrote its pid into the lane's owner word" % owner if owner else
                            "a gospool master recovered it as a dead producer's lane")
        self._lane = None
        self._take_lane()

    def _retired_after_publish(self, si, seqbits):
        """The retired word was found set after our record was published
        (slot word at u64 index si): take it back with the compare-and-swap
        a consumer claims it with, READY to DONE. Exactly one of the two
        wins. Taken back, it is done (the lane reuses its space; the DONE
        word carries our pid as owner, which no consumer's DONE does, so
        that push's exception handler can tell) and RingRetired is raised:
        the caller spools the task elsewhere. Claimed by a consumer, it
        runs: the push succeeded, return.

        Without the compare-and-swap (no atomic helper), the record is left
        READY and RingRetired is raised all the same: the task may then run
        twice (from the old file and from the spool file the caller
        writes), never zero times."""
        ready = seqbits | _READY_BITS
        ops = self._atomics
        if ops is None or ops.cas64 is None:
            if self._u64[si] != ready:
                return  # a consumer has it
            _log().warning("gospool: ring %s: retired after a publish, and this process cannot take the record "
                           "back (no atomic compare-and-swap: %s); it is spooled again as a file and may run "
                           "twice", self.path, _atomic.unavailable_reason)
            raise RingRetired("ring %s is retired (a process found it removed, replaced or truncated)" % self.path)
        taken = seqbits | STATE_DONE << 24 | self._lane_pid & 0xFFFFFF
        if ops.cas64(self._addr + (si << 3), ready, taken) != ready:
            return  # a consumer claimed it first: it runs
        ops.add64(self._addr + OFF_SPOOLED, _M64)  # minus one: it was not spooled here after all
        raise RingRetired("ring %s is retired (a process found it removed, replaced or truncated); the record "
                          "was taken back" % self.path)

    def _taken_back(self, si, seqbits):
        """Whether _retired_after_publish took the record at si back (its
        DONE word with our pid as owner): an exception that lands between
        that compare-and-swap and its raise must not call the task spooled."""
        try:
            return self._u64[si] == seqbits | STATE_DONE << 24 | self._lane_pid & 0xFFFFFF
        except AttributeError:  # abandoned meanwhile: not by _retired_after_publish
            return False

    def _msync(self):
        """Write the mapping to disk (sync). The record is published
        already: a failure is logged and counted in the header's sync
        errors (Go: Stats.SyncErrors, shown by `gospool stats`), the push
        still succeeds."""
        try:
            _flush_mapping(self._mm)
        except (OSError, ValueError) as e:
            self._bump64(OFF_SYNC_ERRORS)
            _log().warning("gospool: ring %s: msync failed (%s); the task is spooled, but may not survive a "
                           "power loss", self.path, e)

    def _wake(self):
        """The producer's half of the sleep protocol (Go: Ring.wake).

        A consumer about to sleep raises the sleepers count (atomic, a full
        barrier), looks at the lanes once more, then sleeps on the wake seq
        futex. A producer publishes, then loads the sleepers count, and
        pays the FUTEX_WAKE syscall only when it is non-zero. For no
        wake-up to be lost, the producer's load must not be ordered before
        its publish: x86-64 lets a load pass an earlier store (store
        buffering), so a full barrier must sit between them. The atomic
        add of the spooled (or spilled / file seq) counter just before is
        that barrier (lock xadd). Without the atomic helper there is no
        barrier to be had, so the producer always bumps the wake seq and
        calls FUTEX_WAKE (the kernel orders it: either the sleeper sees the
        new wake seq or the waker sees the sleeper)."""
        if self._atomics is not None and self._u32[OFF_SLEEPERS >> 2] == 0:
            return
        self._bump32(OFF_WAKE_SEQ)
        _futex_wake(self._addr + OFF_WAKE_SEQ, 1)

    def _bump64(self, off):
        """Adds 1 to the header's u64 at off: atomically (lock xadd, a full
        barrier) with the helper, else a plain store (statistics only)."""
        if self._atomics is not None:
            self._atomics.add64(self._addr + off, 1)
        else:
            i = off >> 3
            self._u64[i] = (self._u64[i] + 1) & _M64

    def _bump32(self, off):
        """_bump64 for the header's u32 at off."""
        if self._atomics is not None:
            self._atomics.add32(self._addr + off, 1)
        else:
            i = off >> 2
            self._u32[i] = (self._u32[i] + 1) & _M32

    # -- spills and counters -------------------------------------------------

    def note_spill(self):
        """A task went to a spool file instead of the ring: count it and make
        the consumers rescan the directory now (Go: Ring.NoteSpill)."""
        with self._lock:
            if self.closed:
                return
            self._bump64(OFF_SPILLED)
            self._note_file_locked()

    def note_file(self):
        """A spool file appeared (a task with at or priority): consumers
        rescan now instead of at their next periodic scan (Go: Ring.NoteFile)."""
        with self._lock:
            if not self.closed:
                self._note_file_locked()

    def _note_file_locked(self):
        self._bump32(OFF_FILE_SEQ)
        self._wake()

    def progress(self):
        """Changes whenever a consumer finishes a record (Go: Ring.Progress)."""
        with self._lock:
            if self.closed:
                return 0
            u = self._u64
            return (u[OFF_DONE >> 3] + u[OFF_RETRIED >> 3] + u[OFF_IGNORED >> 3] + u[OFF_CORRUPT >> 3]) & _M64

    def counters(self):
        """The header's live counters, as a dict (for tests and tools)."""
        with self._lock:
            if self.closed:
                return {}
            u, u32 = self._u64, self._u32
            return {
                "spooled": u[OFF_SPOOLED >> 3], "spilled": u[OFF_SPILLED >> 3],
                "file_seq": u32[OFF_FILE_SEQ >> 2], "done": u[OFF_DONE >> 3],
                "retried": u[OFF_RETRIED >> 3], "failed": u[OFF_FAILED >> 3],
                "ignored": u[OFF_IGNORED >> 3], "corrupt": u[OFF_CORRUPT >> 3],
                "in_flight": u[OFF_IN_FLIGHT >> 3], "dead": u[OFF_DEAD >> 3],
                "wake_seq": u32[OFF_WAKE_SEQ >> 2], "sleepers": u32[OFF_SLEEPERS >> 2],
            }

    @property
    def lane(self):
        """The lane this process owns, or None."""
        if self._lane is not None and _process_token() == self._token:
            return self._lane
        return None

    def has_live_consumer(self):
        """Whether some process holds a consumer entry, i.e. a gospool
        spooler serves the ring (Go: Ring.HasLiveConsumer). F_GETLK reports
        the OFD locks of consumers as conflicts with our would-be lock."""
        for i in range(self.geometry.consumers):
            req = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, CONSUMER_BASE + i * CONSUMER_SIZE, 1, 0)
            try:
                res = fcntl.fcntl(self._fd, fcntl.F_GETLK, req)
            except OSError:
                return True  # when in doubt, alive
            if _FLOCK.unpack(res)[0] != fcntl.F_UNLCK:
                return True
        return False

    # -- closing -------------------------------------------------------------

    def release_lane(self):
        """Give the lane back (Go: Producer.Close). Records already pushed
        stay in the ring."""
        with self._lock:
            self._release_lane_locked()

    def _release_lane_locked(self):
        # _lane first: an exception landing after it leaves at worst our
        # lock on a lane we no longer use (taken again by our next push, or
        # dropped when the process exits), never a lane we use unlocked.
        lane, self._lane = self._lane, None
        if lane is None or _process_token() != self._token or self.closed:
            return
        self._u32[self._owner32] = 0
        _unlock_byte(self._fd, self._base)

    def close(self):
        """Release the lane and unmap the ring."""
        with self._lock:
            if self.closed:
                return
            self._release_lane_locked()
            self.closed = True
            del self._u64, self._u32
            try:
                self._mm.close()
            except BufferError:
                pass  # a frame still holds a view; unmapped when it goes
            os.close(self._fd)

    def _after_fork_child(self):
        # The parent's lane is not ours; the lock object may have been held
        # by a parent thread at the fork; the descriptor shares the parent's
        # open file, and its lane lock: open our own now (else at our first
        # push), so that the parent's lock goes when the parent does.
        self._lock = threading.Lock()
        self._lane = None
        self._no_lane_at = None
        if not self.closed:
            try:
                self._renew_fd(_process_token())
            except Exception:
                pass  # tried again when this child takes a lane


def _tso():
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def _after_fork_child():
    for r in list(_rings):
        r._after_fork_child()
    global _registry_lock
    _registry_lock = threading.Lock()


def _at_exit():
    for r in list(_rings):
        try:
            r.release_lane()
        except Exception:
            pass


os.register_at_fork(after_in_child=_after_fork_child)
atexit.register(_at_exit)
