"""Helpers shared by the tests (not a test module).

Importing it makes the gospool package importable from this checkout, so
that ``python3 -m unittest discover -s python/tests`` works from the
repository root without PYTHONPATH.
"""

import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

import gospool  # noqa: E402
from gospool import _msgpack, _ring, _spoolfile  # noqa: E402

SMALL = _ring.Geometry(lanes=2, slots_per_lane=8, lane_bytes=4096, consumers=4)


class Case(unittest.TestCase):
    """A test with a fresh temporary directory and a fresh gospool state."""

    def setUp(self):
        gospool.close()
        self._env = {k: os.environ.pop(k) for k in (gospool.ENV_SPOOLER_DIRS, gospool.ENV_SPOOLER_DIR)
                     if k in os.environ}
        self.tmp = tempfile.mkdtemp(prefix="gospool-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(self._restore)

    def _restore(self):
        gospool.close()
        for k in (gospool.ENV_SPOOLER_DIRS, gospool.ENV_SPOOLER_DIR):
            os.environ.pop(k, None)
        os.environ.update(self._env)

    def mkdir(self, name="spool"):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        return d

    def make_ring(self, d, geometry=SMALL):
        path = os.path.join(d, _ring.FILE_NAME)
        _ring.create_file(path, geometry)
        return path

    def spool_files(self, d):
        return sorted(os.path.join(d, n) for n in os.listdir(d) if n.startswith(_spoolfile.PREFIX))

    def read_file(self, path):
        with open(path, "rb") as f:
            return _spoolfile.decode(f.read())


def small_tmpfs(case, size="2m"):
    """A directory on a fresh tmpfs of the given size, unmounted at the end
    of the test: a disk that fills up for real. Mounting needs root: the
    test is skipped where it is not permitted, and fails under CI=true."""
    import subprocess
    d = tempfile.mkdtemp(prefix="gospool-tmpfs-")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", d],
                           capture_output=True, text=True)
        why = r.stderr.strip() if r.returncode else None
    except OSError as e:
        why = str(e)
    if why is not None:
        os.rmdir(d)
        msg = "cannot mount a %s tmpfs to fill up (%s)" % (size, why)
        if os.environ.get("CI") == "true":
            case.fail(msg + "; CI must run the full-disk tests (as root)")
        case.skipTest(msg)
    case.addCleanup(os.rmdir, d)
    case.addCleanup(subprocess.run, ["umount", "-l", d], check=True)
    return d


def fill_disk(d):
    """Write a file in d until the filesystem is full; returns its path."""
    import errno
    path = os.path.join(d, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 4096):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return path


class RingReader:
    """Reads a ring file the way a consumer would, for tests in one process
    with no other consumer: records are marked done with plain stores."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR)
        import mmap
        import struct
        st = os.fstat(self.fd)
        self.geo = _ring.decode_header(os.pread(self.fd, _ring.HEADER_SIZE, 0), st.st_size)
        self.mm = mmap.mmap(self.fd, self.geo.file_size)
        self.struct = struct
        # Shared words are read and written as the producer does, through
        # ctypes arrays over the mapping: one aligned 8- or 4-byte load or
        # store each (struct.pack_into copies byte by byte, and a reader
        # in another process could see a word half written).
        import ctypes
        self._w64 = (ctypes.c_uint64 * (self.geo.file_size // 8)).from_buffer(self.mm)
        self._w32 = (ctypes.c_uint32 * (self.geo.file_size // 4)).from_buffer(self.mm)

    def close(self):
        if self.fd < 0:
            return
        del self._w64, self._w32
        self.mm.close()
        os.close(self.fd)
        self.fd = -1

    def u64(self, off):
        return self._w64[off >> 3]

    def u32(self, off):
        return self._w32[off >> 2]

    def put64(self, off, v):
        """One aligned 8-byte store, as the producer's publish."""
        assert off % 8 == 0, off
        self._w64[off >> 3] = v

    def put32(self, off, v):
        assert off % 4 == 0, off
        self._w32[off >> 2] = v

    def lane_base(self, lane):
        return _ring.HEADER_SIZE + lane * self.geo.stride

    def slot_off(self, lane, seq):
        return self.lane_base(lane) + _ring.LANE_CTL_SIZE + (seq % self.geo.slots_per_lane) * _ring.SLOT_SIZE

    def slots(self, lane):
        """(seq, state, payload-or-None) for the lane's records from its tail."""
        out = []
        seq = self.u64(self.lane_base(lane) + _ring.LANE_TAIL)
        for _ in range(self.geo.slots_per_lane):
            off = self.slot_off(lane, seq)
            w = self.u64(off)
            if w >> 32 != seq & 0xFFFFFFFF:
                break
            state = (w >> 24) & 0xFF
            payload = None
            if state >= _ring.STATE_READY:
                pos = self.u64(off + _ring.SLOT_DATA)
                n = self.u32(off + _ring.SLOT_LENGTH)
                d = self.lane_base(lane) + self.geo.data_offset + pos % self.geo.lane_bytes
                payload = bytes(self.mm[d:d + n])
                import zlib
                if zlib.crc32(payload) != self.u32(off + _ring.SLOT_CRC):
                    raise AssertionError("lane %d seq %d: CRC mismatch" % (lane, seq))
            out.append((seq, state, payload))
            if state < _ring.STATE_READY:
                break
            seq += 1
        return out

    def take_all(self):
        """Decode every READY record of every lane, mark it DONE, count it
        done; returns [(lane, seq, pairs, body)]."""
        got = []
        for lane in range(self.geo.lanes):
            for seq, state, payload in self.slots(lane):
                if state != _ring.STATE_READY:
                    continue
                pairs, body = _msgpack.decode_record(payload)
                got.append((lane, seq, pairs, body))
                self.put64(self.slot_off(lane, seq), _ring.slot_word(seq, _ring.STATE_DONE))
                self.put64(_ring.OFF_DONE, self.u64(_ring.OFF_DONE) + 1)
        return got
