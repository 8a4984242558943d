"""The ring producer: header checks, the push protocol (slots, payload
ring, wrap-around, full lanes), lane ownership (locks, takeover of a dead
producer's lane, fork), interrupted pushes, counters and wake-ups."""

import fcntl
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import unittest
from unittest import mock
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
        self.reader.put32(_ring.OFF_SLEEPERS, 1)
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

    def test_cas64(self):
        # Threads increment one word by compare-and-swap loops (ctypes
        # calls drop the GIL: the CPUs really contend); none is lost. All 64
        # bits take part.
        import ctypes
        import threading
        cas = _atomic.OPS.cas64
        base = (1 << 63) | (1 << 40)
        x = ctypes.c_uint64(base)
        ax = ctypes.addressof(x)
        self.assertEqual(cas(ax, 5, 6), base, "no swap: the word's value comes back")
        self.assertEqual(x.value, base)
        misses = [0]

        def work():
            for _ in range(20000):
                while True:
                    old = x.value
                    if cas(ax, old, old + 1) == old:
                        break
                    misses[0] += 1
        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(x.value, base + 80000)


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


class Injected(KeyboardInterrupt):
    """What a signal handler raises, injected by a tracer at a chosen line."""


class LineInjector:
    """Raises Injected at the n-th line executed (n counts from 1) in the
    functions named, in the module _ring, as a signal handler's exception
    could land there (an exception at a line event lands before the line
    runs). self.lines counts the lines seen; self.fired says whether it
    raised. skip: (function, line) pairs where no signal can land but a
    tracer can: the line of a `with` runs again when the block ends, just
    before the lock's __exit__, outside the block's exception handler (a
    signal handler runs only after a call returns, __exit__ included)."""

    def __init__(self, n, names, skip=()):
        self.n, self.names, self.skip = n, names, set(skip)
        self.lines = 0
        self.fired = False
        self.message = None

    def __enter__(self):
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc):
        sys.settrace(None)

    def _global(self, frame, event, arg):
        code = frame.f_code
        if code.co_name in self.names and code.co_filename == _ring.__file__:
            return self._local
        return None

    def _local(self, frame, event, arg):
        if event == "line" and not self.fired and (frame.f_code.co_name, frame.f_lineno) not in self.skip:
            self.lines += 1
            if self.lines == self.n:
                self.fired = True
                self.message = "injected at %s:%d" % (frame.f_code.co_name, frame.f_lineno)
                raise Injected(self.message)
        return self._local


DYING_PRODUCER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[1])
    from gospool import _ring
    for path in sys.stdin:
        r = _ring.Ring(path.strip())
        print([r.push(b"b-%d" % i) for i in range(3)], flush=True)
        sys.stdin.readline()
        os.close(r._fd)
        r.closed = True  # no release at exit: it died
        print("dead", flush=True)
""")


HOLD_LANE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from gospool import _ring
    r = _ring.Ring(sys.argv[1])
    print([r.push(b"b-%d" % i) for i in range(3)], flush=True)
    time.sleep(600)
""")


def ready_payloads(reader):
    """{lane: [payload, ...]} of every READY record, CRCs checked."""
    return {lane: [p for _, st, p in reader.slots(lane) if st == _ring.STATE_READY]
            for lane in range(reader.geo.lanes)}


class TestTakeoverInterrupted(RingCase):
    """Issue 10 item 4: an exception (a KeyboardInterrupt, a timeout's
    SIGALRM handler) raised at any line of a lane take-over must not make
    the next push write into the new lane at the old lane's positions, over
    another producer's acknowledged records."""

    TAKEOVER = {"_take_over", "_take_lane", "_recover", "_try_lock_byte", "_renew_fd"}

    def setUp(self):
        super().setUp()
        # Another producer process, which writes b-0..2 into lane 0 of each
        # ring it is sent, then "dies" when told: closes its descriptor,
        # which drops its lock as death does and leaves its records.
        self.other = subprocess.Popen([sys.executable, "-c", DYING_PRODUCER, support.PYTHON_DIR],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(self.other.wait)
        self.addCleanup(self.other.stdin.close)
        self.addCleanup(self.other.stdout.close)

    def ask(self, line):
        self.other.stdin.write(line + "\n")
        self.other.stdin.flush()
        return self.other.stdout.readline().strip()

    def setup_lanes(self):
        """Lane 0 holds b-0..2 of a producer that died; this process's
        Ring pushed r-0 and r-1 into lane 1 and gave it back: its cached
        positions (head 2) point at b-2 in lane 0."""
        self.reader.close()
        gospool.close()
        os.unlink(self.path)
        self.make_ring(self.dir, self.geometry)
        self.reader = support.RingReader(self.path)
        self.assertEqual(self.ask(self.path), "[(0, 0), (0, 1), (0, 2)]")
        r = _ring.Ring(self.path)
        self.assertEqual([r.push(b"r-0"), r.push(b"r-1")], [(1, 0), (1, 1)])
        self.assertEqual(self.ask("die"), "dead")
        r.release_lane()
        return r

    def test_every_line(self):
        n = 0
        while True:
            n += 1
            with self.subTest(line=n):
                r = self.setup_lanes()
                try:
                    acked = {0: [b"b-0", b"b-1", b"b-2"], 1: [b"r-0", b"r-1"]}
                    with LineInjector(n, self.TAKEOVER) as inj:
                        try:
                            lane, _ = r.push(b"x")
                            acked[lane].append(b"x")
                        except Injected:
                            pass
                    for i in range(3):
                        lane, _ = r.push(b"after-%d" % i)
                        acked[lane].append(b"after-%d" % i)
                    self.assertEqual(ready_payloads(self.reader), acked)
                finally:
                    r.close()
            if not inj.fired:
                break
        print("take-over lines", n, file=sys.stderr)
        self.assertGreater(n, 20, "the take-over has more lines than that")


OPEN_CLOSE_VICTIM = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from gospool import _ring
    r = _ring.Ring(sys.argv[1])
    acked = []
    for i in range(3):
        try:
            lane, seq = r.push(b"p-%d" % i)
            acked.append("p-%d" % i)
        except _ring.NoLane:
            print("no lane", flush=True)
            break
    print(" ".join(acked), flush=True)
""")


class TestLaneLock(RingCase):
    """Issue 10 item 5: the lane lock survives other code in the process
    opening and closing gospool.ring, and the tripwires catch a lane lost
    anyway."""
    geometry = _ring.Geometry(lanes=1, slots_per_lane=16, lane_bytes=4096, consumers=4)

    def other_producer(self):
        out = subprocess.run([sys.executable, "-c", OPEN_CLOSE_VICTIM, self.path, support.PYTHON_DIR],
                             capture_output=True, text=True, check=True).stdout
        return out.split("\n")

    def test_open_close_keeps_the_lock(self):
        r = self.ring()
        acked = [b"r-%d" % i for i in range(3)]
        for p in acked:
            r.push(p)
        # What a health check or a backup tool in the same process does.
        os.close(os.open(self.path, os.O_RDWR))
        with open(self.path, "rb") as f:
            f.read(16)
        lines = self.other_producer()
        acked += [p.encode() for line in lines if line != "no lane" for p in line.split()]
        r.push(b"r-3")
        acked.append(b"r-3")
        self.assertEqual(ready_payloads(self.reader), {0: acked})
        self.assertEqual(lines[0], "no lane", "another process took the lane of a live producer")

    def test_tripwire_owner_word(self):
        # The lock is lost anyway (here: given up behind the Ring's back):
        # another producer takes the lane and writes its pid into the owner
        # word; our next push sees it and takes another lane.
        self.reader.close()
        gospool.close()
        os.unlink(self.path)
        self.make_ring(self.dir, support.SMALL)
        self.reader = support.RingReader(self.path)
        r = self.ring()
        acked = {0: [b"r-0", b"r-1"], 1: []}
        for p in acked[0]:
            r.push(p)
        _ring._unlock_byte(r._fd, self.reader.lane_base(0))
        p = subprocess.Popen([sys.executable, "-c", HOLD_LANE, self.path, support.PYTHON_DIR],
                             stdout=subprocess.PIPE, text=True)
        self.addCleanup(p.stdout.close)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline().strip(), "[(0, 2), (0, 3), (0, 4)]")
        acked[0] += [b"b-0", b"b-1", b"b-2"]
        with self.assertLogs("gospool", "WARNING") as logs:
            self.assertEqual(r.push(b"r-2"), (1, 0))
        acked[1].append(b"r-2")
        self.assertIn("lane 0 is no longer this process's", logs.output[0])
        self.assertEqual(r.lanes_lost, 1)
        self.assertEqual(ready_payloads(self.reader), acked)

    def test_tripwire_lock(self):
        # Lost lock, and the new holder did not write the owner word: the
        # periodic check takes the lock again, finds it held, moves on.
        self.reader.close()
        gospool.close()
        os.unlink(self.path)
        self.make_ring(self.dir, support.SMALL)
        self.reader = support.RingReader(self.path)
        r = self.ring()
        r.push(b"r-0")
        _ring._unlock_byte(r._fd, self.reader.lane_base(0))
        self.hold_lock(self.reader.lane_base(0))
        r._check_at = 0  # the check is due (it runs every 100 ms)
        with self.assertLogs("gospool", "WARNING") as logs:
            self.assertEqual(r.push(b"r-1"), (1, 0))
        self.assertIn("another process holds its lock", logs.output[0])

    def test_two_rings_in_one_process_get_two_lanes(self):
        # OFD locks belong to the open file: two Rings conflict as two
        # processes do (POSIX locks would have given both lane 0).
        self.reader.close()
        gospool.close()
        os.unlink(self.path)
        self.make_ring(self.dir, support.SMALL)
        self.reader = support.RingReader(self.path)
        a, b = self.ring(), self.ring()
        self.assertEqual([a.push(b"a"), b.push(b"b")], [(0, 0), (1, 0)])

    def test_go_sees_the_lock(self):
        # F_OFD_GETLK, what Go's byteLockedByOther asks, from another open file.
        r = self.ring()
        r.push(b"r-0")
        fd = os.open(self.path, os.O_RDWR)
        try:
            req = _ring._FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, self.reader.lane_base(0), 1, 0)
            res = fcntl.fcntl(fd, _ring._F_OFD_GETLK, req)
            self.assertEqual(_ring._FLOCK.unpack(res)[0], fcntl.F_WRLCK)
        finally:
            os.close(fd)


TRUNCATE = textwrap.dedent("""
    import os, sys, warnings
    sys.path.insert(0, sys.argv[2])
    import gospool
    from gospool import _ring
    path = sys.argv[1]
    gospool.configure([os.path.dirname(path)], full_wait=0)
    print(gospool.spool({b"n": b"1"}).decode(), flush=True)
    r = _ring.open_ring(path)
    os.truncate(path, _ring.HEADER_SIZE)
    r._check_at = 0  # the check is due (it runs every 100 ms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        print(gospool.spool({b"n": b"2"}).decode(), flush=True)
    print(r.closed, flush=True)
""")


class TestBrokenFile(RingCase):
    def test_truncated_while_mapped(self):
        # Issue 10 item 1/6: no SIGBUS on a short mapping: the periodic
        # check sees the short file before the push touches it, and the
        # task goes to a spool file. (A spooler is attached: gospool.spool
        # uses the ring only then.)
        self.addCleanup(support.attach_consumer(self.path))
        p = subprocess.run([sys.executable, "-c", TRUNCATE, self.path, support.PYTHON_DIR],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        first, second, closed = p.stdout.split()
        self.assertEqual(first, "ring:0:0")
        self.assertIn("/" + _spoolfile_prefix(), second)
        self.assertEqual(closed, "True")
        self.assertIn("was truncated to 4096 bytes while in use", p.stderr)
        # The header page is still there: the producer raised the retired
        # word in it, for the Go processes that map the file.
        self.assertEqual(self.reader.u32(_ring.OFF_RETIRED), 1)

    def test_replaced_while_mapped(self):
        r = self.ring()
        r.push(b"old")
        os.unlink(self.path)
        self.make_ring(self.dir, self.geometry)
        r._check_at = 0
        with self.assertLogs("gospool", "WARNING") as logs:
            with self.assertRaises(_ring.RingClosed):
                r.push(b"into the removed file")
        self.assertIn("removed or replaced", logs.output[0])
        self.assertTrue(r.closed)
        self.assertEqual(self.reader.u32(_ring.OFF_RETIRED), 1, "the old file is retired")
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(64)[_ring.OFF_RETIRED], 0, "the new file is not")

    def test_renamed_over_while_mapped(self):
        # Another name keeps the old file linked (st_nlink 1): the path
        # names another file all the same.
        r = self.ring()
        r.push(b"old")
        os.link(self.path, self.path + ".kept")
        self.addCleanup(os.unlink, self.path + ".kept")
        os.unlink(self.path)
        self.make_ring(self.dir, self.geometry)
        r._check_at = 0
        with self.assertLogs("gospool", "WARNING"):
            with self.assertRaises(_ring.RingClosed):
                r.push(b"into the old file")
        self.assertEqual(self.reader.u32(_ring.OFF_RETIRED), 1)

    def test_descriptor_closed_behind_our_back(self):
        r = self.ring()
        r.push(b"a")
        os.close(r._fd)
        keep = os.open(os.devnull, os.O_RDONLY)  # takes the number over
        self.addCleanup(os.close, keep)
        self.assertEqual(keep, r._fd)
        r._check_at = 0
        with self.assertLogs("gospool", "WARNING"):
            with self.assertRaises(_ring.RingClosed):
                r.push(b"b")
        os.fstat(keep)  # not closed by the Ring: it is not its file
        self.assertEqual(self.reader.u32(_ring.OFF_RETIRED), 0, "the file itself is fine")


def _spoolfile_prefix():
    return support._spoolfile.PREFIX


def _with_line(fn, text):
    import inspect
    lines, first = inspect.getsourcelines(fn)
    (i,) = [i for i, line in enumerate(lines) if line.strip() == text]
    return first + i


PUSH_WITH_LINE = _with_line(_ring.Ring.push, "with self._lock:")


class TestAfterPublish(RingCase):
    """Issue 10 item 7: once the record is published the push succeeds;
    an msync failure is logged; an exception that lands after the publish
    carries the task's name."""

    attach = True  # gospool.spool uses the ring only while a spooler is attached

    def test_msync_failure_is_logged(self):
        saved = _ring._flush_mapping

        def failing(mm):
            raise OSError(5, "Input/output error (injected)")
        _ring._flush_mapping = failing
        try:
            r = self.ring(sync=True)
            with self.assertLogs("gospool", "WARNING") as logs:
                self.assertEqual(r.push(b"a"), (0, 0))
            self.assertIn("msync failed", logs.output[0])
            gospool.configure([self.dir], sync=True)
            with self.assertLogs("gospool", "WARNING"):
                self.assertEqual(gospool.spool({b"k": b"v"}), b"ring:1:0")
        finally:
            _ring._flush_mapping = saved
        self.assertEqual(ready_payloads(self.reader)[0], [b"a"])
        self.assertEqual(self.reader.u64(_ring.OFF_SYNC_ERRORS), 2)  # Go's Stats().SyncErrors

    def test_exception_at_every_line(self):
        # Inject at each line of a push (sync on, a sleeper to wake: every
        # branch after the publish runs). The exception names the task iff
        # the record was published; the next pushes never overwrite one.
        self.reader.put32(_ring.OFF_SLEEPERS, 1)
        r = self.ring(sync=True)
        expect = []
        n = 0
        while True:
            n += 1
            payload = b"t-%d" % n
            with LineInjector(n, {"push", "_msync", "_wake", "_bump32"}, [("push", PUSH_WITH_LINE)]) as inj:
                try:
                    lane, seq = r.push(payload)
                    expect.append(payload)
                except Injected as e:
                    name = getattr(e, "gospool_spooled", None)
                    if name is not None:
                        expect.append(payload)
                        self.assertIn("spooling it again would run it twice", "".join(e.__notes__))
            got = [p for p in ready_payloads(self.reader)[0]]
            self.assertEqual(got, expect, "injection %d: %s" % (n, inj.message))
            if name is not None:
                lane_, seq_ = r.push(b"check")
                self.assertEqual(name, b"ring:%d:%d" % (lane_, seq_ - 1))
                expect.append(b"check")
            for seq, st, _ in self.reader.slots(0):
                if st == _ring.STATE_READY:
                    self.reader.put64(self.reader.slot_off(0, seq), _ring.slot_word(seq, _ring.STATE_DONE))
            expect = []
            name = None
            if not inj.fired:
                break
        self.assertGreater(n, 30)


class TestRetiredWord(RingCase):
    """The header's retired word (spooler/ring/health.go): no push into a
    retired ring; a record published as the ring is retired is taken back
    (the caller spools it as a file) unless a consumer claimed it first."""

    def lanes(self):
        return bytes(self.reader.mm[_ring.HEADER_SIZE:])

    def retire_when_published(self):
        """Raise the retired word right after the next publishing store,
        as another process would in that instant."""
        def hook(name):
            if name == _ring.FAILPOINT_PUBLISHED:
                self.reader.put32(_ring.OFF_RETIRED, 1)
        return mock.patch.multiple(_ring, _failpoint=hook, _FAILPOINT=_ring.FAILPOINT_PUBLISHED)

    def test_no_push_into_a_retired_ring(self):
        r = self.ring()
        r.push(b"a")
        before = self.lanes()
        self.reader.put32(_ring.OFF_RETIRED, 1)
        with self.assertLogs("gospool", "WARNING") as logs:
            with self.assertRaises(_ring.RingRetired):
                r.push(b"b")
        self.assertIn("retired word is set", logs.output[0])
        self.assertTrue(r.closed)
        self.assertEqual(self.lanes(), before)
        # Opened again (the same file: its path still names it), refused
        # again, said once.
        r2 = self.ring()
        with self.assertNoLogs("gospool", "WARNING"):
            with self.assertRaises(_ring.RingRetired):
                r2.push(b"c")
        self.assertEqual(self.lanes(), before)

    def test_taken_back_after_publish(self):
        r = self.ring()
        with self.retire_when_published(), self.assertLogs("gospool", "WARNING"):
            with self.assertRaises(_ring.RingRetired) as cm:
                r.push(b"x")
        self.assertIsNone(getattr(cm.exception, "gospool_spooled", None))
        w = self.reader.u64(self.reader.slot_off(0, 0))
        self.assertEqual(w, _ring.slot_word(0, _ring.STATE_DONE, os.getpid()))
        self.assertEqual(self.reader.u64(_ring.OFF_SPOOLED), 0)
        self.assertTrue(r.closed)

    def test_claimed_first_is_not_taken_back(self):
        r = self.ring()

        def hook(name):
            if name == _ring.FAILPOINT_PUBLISHED:
                off = self.reader.slot_off(0, 0)  # a consumer claims it, then the ring is retired
                self.reader.put64(off, _ring.slot_word(0, _ring.STATE_CLAIMED, 7))
                self.reader.put32(_ring.OFF_RETIRED, 1)
        with mock.patch.multiple(_ring, _failpoint=hook, _FAILPOINT=_ring.FAILPOINT_PUBLISHED):
            self.assertEqual(r.push(b"x"), (0, 0))
        self.assertEqual(self.reader.u64(self.reader.slot_off(0, 0)), _ring.slot_word(0, _ring.STATE_CLAIMED, 7))
        self.assertEqual(self.reader.u64(_ring.OFF_SPOOLED), 1)

    def test_without_compare_and_swap(self):
        # No atomic helper: the record cannot be taken back safely. It
        # stays, and the push fails all the same: the caller's spool file
        # may run it a second time, nothing loses it.
        r = self.ring(atomics=None)
        with self.retire_when_published(), self.assertLogs("gospool", "WARNING") as logs:
            with self.assertRaises(_ring.RingRetired) as cm:
                r.push(b"x")
        self.assertIn("may run twice", "\n".join(logs.output))
        self.assertIsNone(getattr(cm.exception, "gospool_spooled", None))
        self.assertEqual(ready_payloads(self.reader)[0], [b"x"])

    def test_exception_at_every_line_of_the_take_back(self):
        # A signal's exception at any line: the task is either still in the
        # ring and the exception names it, or taken back and it does not.
        n = 0
        while True:
            n += 1
            d = self.mkdir("n%d" % n)
            reader = support.RingReader(self.make_ring(d))
            self.addCleanup(reader.close)
            self.reader = reader
            r = _ring.Ring(os.path.join(d, _ring.FILE_NAME))
            self.addCleanup(r.close)
            name = None
            with self.retire_when_published(), self.assertLogs("gospool", "WARNING") as logs:
                _ring._log().warning("(so that assertLogs has one)")
                with LineInjector(n, {"push", "_retired_after_publish"}, [("push", PUSH_WITH_LINE)]) as inj:
                    try:
                        r.push(b"x")
                        name = b"returned"
                    except (Injected, _ring.RingRetired) as e:
                        name = getattr(e, "gospool_spooled", None)
            state = (reader.u64(reader.slot_off(0, 0)) >> 24) & 0xFF
            if name is None:
                self.assertIn(state, (_ring.STATE_EMPTY, _ring.STATE_WRITING, _ring.STATE_DONE),
                              "injection %d: %s; logs %s" % (n, inj.message, logs.output))
            else:
                self.assertEqual(state, _ring.STATE_READY, "injection %d: %s" % (n, inj.message))
            if not inj.fired:
                break
        self.assertGreater(n, 30)


class TestCFork(RingCase):
    def test_fork_in_c(self):
        # uWSGI forks its workers in C: no after-fork hook runs, the child's
        # descriptor shares the parent's open file and its OFD lock. The
        # child must open its own before taking a lane, or it would take the
        # parent's lane (re-locking it through the shared open file).
        import ctypes
        r = self.ring()
        r.push(b"parent-0")
        rfd, wfd = os.pipe()
        # PyDLL: the GIL stays held across fork(), as in a C program (a
        # CDLL call releases it, and another thread could hold it at the fork).
        pid = ctypes.PyDLL(None).fork()
        if pid == 0:
            try:
                out = repr(r.push(b"child-0")).encode()
            except BaseException as e:
                out = repr(e).encode()
            os.write(wfd, out)
            os._exit(0)
        os.close(wfd)
        with os.fdopen(rfd, "rb") as f:
            got = f.read().decode()
        os.waitpid(pid, 0)
        self.assertEqual(got, "(1, 0)")
        self.assertEqual(r.push(b"parent-1"), (0, 1))
        self.assertEqual(ready_payloads(self.reader), {0: [b"parent-0", b"parent-1"], 1: [b"child-0"]})


FULL_DISK_PRODUCER = textwrap.dedent("""
    import errno, os, sys, warnings
    sys.path.insert(0, sys.argv[2])
    import gospool
    from gospool import _ring
    sys.path.insert(0, os.path.join(sys.argv[2], "tests"))
    import support
    d = sys.argv[1]
    warnings.simplefilter("ignore")
    gospool.configure([d], full_wait=0)
    if sys.argv[3] == "fill":
        print(gospool.spool({b"id": b"before"}).decode(), flush=True)
        support.fill_disk(d)
    for i in range(int(sys.argv[4])):
        try:
            print(gospool.spool({b"id": b"task-%d" % i}).decode(), flush=True)
        except OSError as e:
            print("error", type(e).__name__, e.errno, isinstance(e, ValueError), str(e), flush=True)
    try:
        _ring.Ring(os.path.join(d, _ring.FILE_NAME))
        print("ring opened", flush=True)
    except _ring.RingError as e:
        print("ring error", type(e).__name__, e, flush=True)
""")


class TestFullDisk(support.Case):
    """Issue 10 item 1, on a real 2 MB tmpfs: a producer on a full disk gets
    a clear exception, never SIGBUS, and leaves no partial spool file."""

    def producer(self, d, mode, n):
        p = subprocess.run([sys.executable, "-c", FULL_DISK_PRODUCER, d, support.PYTHON_DIR, mode, str(n)],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, "the producer died (-7 is SIGBUS): %s" % p.stderr)
        return p.stdout.splitlines()

    def test_sparse_ring_then_space_then_full(self):
        d = support.small_tmpfs(self)
        g = _ring.Geometry(lanes=2, slots_per_lane=16, lane_bytes=1 << 16, consumers=4)
        path = os.path.join(d, _ring.FILE_NAME)
        _ring.create_file(path, g, allocate=False)  # holes, as rings of older versions
        # A spooler attached (its words are in the header page, which has
        # its block): the producer would write files, ring or not, otherwise.
        self.addCleanup(support.attach_consumer(path))
        filler = support.fill_disk(d)

        # The ring's pages have no blocks and the disk has none left: the
        # producer must not use the ring (a write would be SIGBUS), and the
        # spool file it writes instead fails with a clear ENOSPC.
        out = self.producer(d, "", 1)
        self.assertRegex(out[0], r"^error NoSpaceError 28 True \[Errno 28\] unable to spool job: no space left "
                                 r"on device in spool directory %s" % d)
        self.assertRegex(out[1], r"^ring error NoSpaceError ring %s: no space left on device" % path)
        self.assertEqual(sorted(os.listdir(d)), ["filler", _ring.FILE_NAME], "no partial or temporary file left")

        # Space again: the ring gets its blocks when the producer opens it;
        # then the disk fills up: the ring keeps taking tasks (no page of it
        # needs a block any more) until the lane is full, then the spool
        # files fail cleanly.
        os.unlink(filler)
        out = self.producer(d, "fill", 20)
        self.assertEqual(out[0], "ring:0:0")
        ring_names = [line for line in out[1:] if line.startswith("ring:")]
        self.assertEqual(ring_names, ["ring:0:%d" % i for i in range(1, 16)])
        errors = out[16:-1]
        self.assertEqual(len(errors), 5)
        for line in errors:
            self.assertIn("error NoSpaceError 28 True", line)
        self.assertEqual(out[-1], "ring opened")
        reader = support.RingReader(path)
        self.addCleanup(reader.close)
        ids = [dict(pairs)[b"id"] for _, _, pairs, _ in reader.take_all()]
        self.assertEqual(ids, [b"before"] + [b"task-%d" % i for i in range(15)])
        self.assertEqual(sorted(n for n in os.listdir(d) if n != "filler"), [_ring.FILE_NAME])


if __name__ == "__main__":
    unittest.main()
