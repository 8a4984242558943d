"""The ring producer: header checks, the push protocol (slots, payload
ring, wrap-around, full lanes), lane ownership (locks, takeover of a dead
producer's lane, fork), interrupted pushes, counters and wake-ups."""

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import unittest
import zlib

import support
from support import gospool, _msgpack, _ring
from gospool import _atomic

LOCK_HOLDER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]), 0)
    print("locked", flush=True)
    time.sleep(600)
""")


class RingCase(support.Case):
    geometry = support.SMALL
    attach = False  # True: a spooler is attached, so gospool.spool() uses the ring

    def setUp(self):
        super().setUp()
        self.dir = self.mkdir()
        self.path = self.make_ring(self.dir, self.geometry)
        self.reader = support.RingReader(self.path, attach=self.attach)
        self.addCleanup(self.reader.close)

    def ring(self, **kw):
        r = _ring.Ring(self.path, **kw)
        self.addCleanup(r.close)
        return r

    def hold_lock(self, offset):
        """A process holding a POSIX lock on one byte of the ring file."""
        p = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, self.path, str(offset)],
                             stdout=subprocess.PIPE, text=True)
        self.addCleanup(p.stdout.close)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline().strip(), "locked")
        return p


class TestHeader(support.Case):
    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.mkdir(), _ring.FILE_NAME)

    def write(self, data, size=None):
        with open(self.path, "wb") as f:
            f.write(data)
            if size is not None:
                f.truncate(size)

    def header(self, g=support.SMALL, **fields):
        h = bytearray(_ring.encode_header(g))
        for off, fmt, v in fields.values():
            struct.pack_into(fmt, h, off, v)
        if fields:
            struct.pack_into("<I", h, _ring.OFF_CHECKSUM, zlib.crc32(h[:_ring.CHECKSUMMED]))
        return bytes(h)

    def assertOpenFails(self, exc, text):
        with self.assertRaises(exc) as cm:
            _ring.Ring(self.path)
        self.assertIn(text, str(cm.exception))
        self.assertIn(self.path, str(cm.exception))

    def test_good(self):
        _ring.create_file(self.path, support.SMALL)
        r = _ring.Ring(self.path)
        self.addCleanup(r.close)
        self.assertEqual(r.geometry, support.SMALL)
        self.assertEqual(os.path.getsize(self.path), support.SMALL.file_size)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_header_layout(self):
        h = _ring.encode_header(support.SMALL)
        self.assertEqual(h[:8], b"GOSPRING")
        self.assertEqual(struct.unpack_from("<IIIIII", h, 8), (2, 4096, 2, 8, 4096, 4))
        # stride: 64 + 8*32 = 320, rounded to 64, + 4096 data, rounded to 4096
        self.assertEqual(struct.unpack_from("<QQ", h, 32), (8192, 4096 + 2 * 8192))
        self.assertEqual(struct.unpack_from("<I", h, 48)[0], zlib.crc32(h[:48]))

    def test_not_a_ring(self):
        self.write(b"x" * 8192)
        self.assertOpenFails(_ring.NotRingError, "not a gospool ring file")

    def test_short(self):
        self.write(b"GOSPRING")
        self.assertOpenFails(_ring.TruncatedError, "a ring header needs 4096")

    def test_other_version(self):
        self.write(self.header(v=(8, "<I", 1)), support.SMALL.file_size)
        self.assertOpenFails(_ring.RingVersionError, "file has version 1, this gospool (Python) reads version 2")

    def test_bad_checksum(self):
        h = bytearray(_ring.encode_header(support.SMALL))
        h[16] = 3  # lanes, without fixing the checksum
        self.write(bytes(h), support.SMALL.file_size)
        self.assertOpenFails(_ring.CorruptHeaderError, "header checksum")

    def test_bad_geometry(self):
        for name, field in (("lanes", (16, "<I", 0)), ("slots", (20, "<I", 6)), ("lane bytes", (24, "<I", 1000)),
                            ("consumers", (28, "<I", 49))):
            with self.subTest(name):
                self.write(self.header(f=field), support.SMALL.file_size)
                self.assertOpenFails(_ring.CorruptHeaderError, name)

    def test_sizes_do_not_follow(self):
        self.write(self.header(f=(32, "<Q", 4096)), support.SMALL.file_size)
        self.assertOpenFails(_ring.CorruptHeaderError, "sizes in the header")

    def test_truncated(self):
        self.write(_ring.encode_header(support.SMALL), support.SMALL.file_size - 1)
        self.assertOpenFails(_ring.TruncatedError, "its header says")

    def test_missing(self):
        with self.assertRaises(FileNotFoundError):
            _ring.Ring(self.path)

    def test_create_leaves_existing(self):
        _ring.create_file(self.path, support.SMALL)
        _ring.create_file(self.path, _ring.Geometry(1, 2, 4096, 1))
        with open(self.path, "rb") as f:
            self.assertEqual(_ring.decode_header(f.read(4096), 1 << 30), support.SMALL)
        self.assertEqual([n for n in os.listdir(os.path.dirname(self.path)) if n != _ring.FILE_NAME], [])


class TestPush(RingCase):
    def test_records(self):
        r = self.ring()
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        got = [r.push(b"payload-%d" % i) for i in range(3)]
        self.assertEqual(got, [(0, 0), (0, 1), (0, 2)])
        self.assertEqual(r.lane, 0)
        slots = self.reader.slots(0)
        self.assertEqual([(s, st, p) for s, st, p in slots],
                         [(i, _ring.STATE_READY, b"payload-%d" % i) for i in range(3)])
        stamp = self.reader.u64(self.reader.slot_off(0, 2) + _ring.SLOT_STAMP)
        self.assertTrue(before <= stamp <= time.clock_gettime_ns(time.CLOCK_MONOTONIC))
        base = self.reader.lane_base(0)
        self.assertEqual(self.reader.u32(base + _ring.LANE_OWNER), os.getpid())
        self.assertEqual(self.reader.u64(base + _ring.LANE_HEAD), 3)
        self.assertEqual(self.reader.u64(base + _ring.LANE_DATA_HEAD), sum(len(b"payload-%d" % i) for i in range(3)))
        self.assertEqual(self.reader.u64(_ring.OFF_SPOOLED), 3)

    def test_wrap_around(self):
        # 8 slots and 4 KiB per lane; records of 0 to 1024 bytes, consumed
        # as they come: slots and payloads wrap many times.
        r = self.ring()
        for i in range(300):
            payload = bytes([i % 251]) * ((i * 37) % 1025)
            self.assertEqual(r.push(payload), (0, i))
            (lane, seq, _, _), = [(l, s, p, b) for l, s, p, b in self.take_raw()]
            self.assertEqual((lane, seq), (0, i))
            self.assertEqual(self.last_payload, payload)

    def take_raw(self):
        out = []
        for seq, state, payload in self.reader.slots(0):
            if state == _ring.STATE_READY:
                self.last_payload = payload
                out.append((0, seq, payload, None))
                self.reader.put64(self.reader.slot_off(0, seq), _ring.slot_word(seq, _ring.STATE_DONE))
        return out

    def test_full_slots(self):
        r = self.ring()
        for i in range(8):
            r.push(b"x")
        with self.assertRaises(_ring.RingFull):
            r.push(b"x")
        self.take_raw()
        self.assertEqual(r.push(b"x"), (0, 8))

    def test_full_bytes(self):
        r = self.ring()
        for i in range(4):
            r.push(b"x" * 1024)
        with self.assertRaises(_ring.RingFull):
            r.push(b"y")
        self.take_raw()
        self.assertEqual(r.push(b"y" * 1024), (0, 4))
        # The next 1024 do not fit before the end of the data area: they
        # start at the next lap, and the lane is full again after 3.
        self.take_raw()

    def test_too_large(self):
        r = self.ring()
        r.push(b"x" * 1024)
        with self.assertRaises(_ring.RecordTooLarge):
            r.push(b"x" * 1025)

    def test_claimed_records_hold_space(self):
        r = self.ring()
        for i in range(8):
            r.push(b"x")
        # A consumer claimed seq 0 and is still running it: nothing frees.
        self.reader.put64(self.reader.slot_off(0, 0), _ring.slot_word(0, _ring.STATE_CLAIMED, 1 << 16 | 1))
        for s in range(1, 8):
            self.reader.put64(self.reader.slot_off(0, s), _ring.slot_word(s, _ring.STATE_DONE))
        with self.assertRaises(_ring.RingFull):
            r.push(b"x")
        self.reader.put64(self.reader.slot_off(0, 0), _ring.slot_word(0, _ring.STATE_DONE))
        self.assertEqual(r.push(b"x"), (0, 8))

    def test_counters_and_spill_notes(self):
        r = self.ring()
        r.push(b"a")
        r.note_spill()
        r.note_file()
        c = r.counters()
        self.assertEqual((c["spooled"], c["spilled"], c["file_seq"]), (1, 1, 2))
        self.assertEqual(r.progress(), 0)
        self.reader.put64(_ring.OFF_DONE, 5)
        self.assertEqual(r.progress(), 5)

    @unittest.skipIf(_atomic.OPS is None, "without the atomic helper every push wakes")
    def test_wake_only_with_sleepers(self):
        r = self.ring()
        r.push(b"a")
        self.assertEqual(self.reader.u32(_ring.OFF_WAKE_SEQ), 0, "nobody sleeps: no wake-up")
        struct.pack_into("<I", self.reader.mm, _ring.OFF_SLEEPERS, 1)
        r.push(b"b")
        r.note_file()
        self.assertEqual(self.reader.u32(_ring.OFF_WAKE_SEQ), 2)

    def test_without_atomics(self):
        # The fallback when machine code cannot run: plain counter updates
        # and a wake-up at every push.
        r = self.ring(atomics=None)
        r.push(b"a")
        r.push(b"b")
        r.note_spill()
        c = r.counters()
        self.assertEqual((c["spooled"], c["spilled"], c["file_seq"], c["wake_seq"]), (2, 1, 1, 3))
        self.assertEqual([p for _, _, p in self.reader.slots(0)], [b"a", b"b"])

    def test_closed(self):
        r = _ring.Ring(self.path)
        r.push(b"a")
        r.close()
        with self.assertRaises(_ring.RingClosed):
            r.push(b"b")
        r.close()
        self.assertEqual(self.reader.u32(self.reader.lane_base(0)), 0, "owner cleared")


@unittest.skipIf(_atomic.OPS is None, "no atomic helper: %s" % _atomic.unavailable_reason)
class TestAtomics(unittest.TestCase):
    def test_add(self):
        import ctypes
        import threading
        x = ctypes.c_uint64(0)
        y = ctypes.c_uint32(0)
        ax, ay = ctypes.addressof(x), ctypes.addressof(y)

        def work():
            for _ in range(20000):
                _atomic.OPS.add64(ax, 1)
                _atomic.OPS.add32(ay, 3)
        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual((x.value, y.value), (80000, 240000))
        self.assertEqual(_atomic.OPS.add64(ax, 2**64 - 80000), 80000)
        self.assertEqual(x.value, 0)
        _atomic.OPS.fence()


class TestLanes(RingCase):
    def test_lane_taken_by_another_process(self):
        self.hold_lock(self.reader.lane_base(0))
        r = self.ring()
        self.assertEqual(r.push(b"a"), (1, 0))

    def test_no_lane(self):
        self.hold_lock(self.reader.lane_base(0))
        self.hold_lock(self.reader.lane_base(1))
        r = self.ring()
        with self.assertRaises(_ring.NoLane):
            r.push(b"a")
        with self.assertRaises(_ring.NoLane):
            r.push(b"a")  # within a second: no new attempt

    def test_release_lane(self):
        r = self.ring()
        r.push(b"a")
        r.release_lane()
        self.assertEqual(self.reader.u32(self.reader.lane_base(0)), 0)
        p = self.hold_lock(self.reader.lane_base(0))  # free again
        self.assertEqual(r.push(b"b"), (1, 0))
        p.kill()

    def test_open_ring_is_one_per_file(self):
        link = os.path.join(self.tmp, "link")
        os.symlink(self.dir, link)
        a = _ring.open_ring(self.path)
        b = _ring.open_ring(os.path.join(link, _ring.FILE_NAME))
        self.assertIs(a, b)

    def test_has_live_consumer(self):
        r = self.ring()
        self.assertFalse(r.has_live_consumer())
        self.hold_lock(_ring.CONSUMER_BASE + 3 * _ring.CONSUMER_SIZE)
        self.assertTrue(r.has_live_consumer())


VICTIM = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from gospool import _ring
    fp = _ring._FAILPOINT
    _ring._FAILPOINT = ""
    r = _ring.Ring(sys.argv[1])
    for i in range(3):
        r.push(b"acked-%d" % i)
    _ring._FAILPOINT = fp
    r.push(b"torn")
""")


class TestTakeover(RingCase):
    geometry = _ring.Geometry(lanes=1, slots_per_lane=8, lane_bytes=4096, consumers=4)

    def victim(self, failpoint):
        env = dict(os.environ, GOSPOOL_FAILPOINT=failpoint)
        p = subprocess.Popen([sys.executable, "-c", VICTIM, self.path, support.PYTHON_DIR], env=env,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.stderr.close)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.assertIn("failpoint %s reached pid %d" % (failpoint, p.pid), p.stderr.readline())
        os.kill(p.pid, signal.SIGKILL)
        p.wait()

    def test_takeover(self):
        cases = [
            (_ring.FAILPOINT_RESERVED, 3), (_ring.FAILPOINT_WRITING, 3),
            (_ring.FAILPOINT_PAYLOAD_HALF, 3), (_ring.FAILPOINT_PAYLOAD_WRITTEN, 3),
            (_ring.FAILPOINT_PUBLISHED, 4), (_ring.FAILPOINT_HEAD_ADVANCED, 4),
        ]
        for failpoint, kept in cases:
            with self.subTest(failpoint):
                gospool.close()
                os.unlink(self.path)
                self.make_ring(self.dir, self.geometry)
                self.reader.close()
                self.reader = support.RingReader(self.path)
                self.victim(failpoint)
                r = _ring.Ring(self.path)
                try:
                    # The next producer resumes after the complete records and
                    # overwrites a torn one.
                    self.assertEqual(r.push(b"next"), (0, kept))
                    want = [b"acked-0", b"acked-1", b"acked-2"] + [b"torn"] * (kept - 3) + [b"next"]
                    self.assertEqual([p for _, st, p in self.reader.slots(0) if st == _ring.STATE_READY], want)
                finally:
                    r.close()


class TestInterruptedPush(RingCase):
    """An exception raised in the middle of a push (a signal handler's
    KeyboardInterrupt, say) leaves the lane as a dead producer would: the
    next push of the same Ring resumes correctly."""

    def test_every_step(self):
        steps = [_ring.FAILPOINT_RESERVED, _ring.FAILPOINT_WRITING, _ring.FAILPOINT_PAYLOAD_HALF,
                 _ring.FAILPOINT_PAYLOAD_WRITTEN, _ring.FAILPOINT_PUBLISHED, _ring.FAILPOINT_HEAD_ADVANCED]
        saved = _ring._failpoint, _ring._FAILPOINT

        def interrupt(name):
            if name == _ring._FAILPOINT:
                raise KeyboardInterrupt(name)
        _ring._failpoint = interrupt
        try:
            r = self.ring()
            expect = []
            for i, step in enumerate(steps * 3):
                _ring._FAILPOINT = step
                with self.assertRaises(KeyboardInterrupt):
                    r.push(b"interrupted-%d" % i)
                if step in (_ring.FAILPOINT_PUBLISHED, _ring.FAILPOINT_HEAD_ADVANCED):
                    expect.append(b"interrupted-%d" % i)  # published: it exists
                _ring._FAILPOINT = ""
                r.push(b"ok-%d" % i)
                expect.append(b"ok-%d" % i)
                got = []
                for seq, st, p in self.reader.slots(0):
                    if st == _ring.STATE_READY:
                        got.append(p)
                        self.reader.put64(self.reader.slot_off(0, seq), _ring.slot_word(seq, _ring.STATE_DONE))
                self.assertEqual(got, expect, step)
                expect = []
        finally:
            _ring._failpoint, _ring._FAILPOINT = saved


class TestFork(RingCase):
    attach = True
    def forked(self, fn):
        """Run fn in a forked child; returns what it wrote to the pipe."""
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(rfd)
                os.write(wfd, repr(fn()).encode())
            except BaseException as e:
                os.write(wfd, ("error %r" % e).encode())
            finally:
                os._exit(0)
        os.close(wfd)
        out = b""
        while True:
            b = os.read(rfd, 4096)
            if not b:
                break
            out += b
        os.close(rfd)
        os.waitpid(pid, 0)
        return out.decode()

    def test_child_takes_its_own_lane(self):
        gospool.configure([self.dir], full_wait=0)
        self.assertEqual(gospool.spool({b"who": b"parent"}), b"ring:0:0")
        self.assertEqual(self.forked(lambda: gospool.spool({b"who": b"child"})), "b'ring:1:0'")
        self.assertEqual(gospool.spool({b"who": b"parent"}), b"ring:0:1")
        owners = [self.reader.u32(self.reader.lane_base(i)) for i in range(2)]
        self.assertEqual(owners[0], os.getpid())
        self.assertNotIn(owners[1], (0, os.getpid()))

    def test_fork_without_hooks(self):
        # uWSGI forks its workers in C: the after-fork hooks do not run.
        # The MADV_WIPEONFORK page (or the pid) still tells the child apart.
        r = self.ring()
        r.push(b"parent")

        def child():
            r._lock = __import__("threading").Lock()  # what the hook would do, nothing more
            r._lane = 0  # as if the hook had not run: the parent's lane state
            return r.push(b"child")
        # os.fork runs the hooks; undo their effect in the child above.
        self.assertEqual(self.forked(child), "(1, 0)")

    def test_child_spills_when_no_lane(self):
        self.reader.close()
        gospool.close()
        os.unlink(self.path)
        self.make_ring(self.dir, _ring.Geometry(1, 8, 4096, 4))
        self.reader = support.RingReader(self.path, attach=True)
        gospool.configure([self.dir], full_wait=0)
        self.assertEqual(gospool.spool({b"who": b"parent"}), b"ring:0:0")
        out = self.forked(lambda: gospool.spool({b"who": b"child"}))
        self.assertIn("uwsgi_spoolfile_on_", out)
        self.assertEqual(self.reader.u64(_ring.OFF_SPILLED), 1)


class TestRecordFromSpool(RingCase):
    attach = True
    def test_spool_writes_go_records(self):
        gospool.configure([self.dir])
        gospool.spool({b"task": b"resize", b"body": b"img"})
        (_, _, payload), = self.reader.slots(0)
        self.assertEqual(payload, _msgpack.encode_record([(b"task", b"resize")], b"img"))


if __name__ == "__main__":
    unittest.main()
