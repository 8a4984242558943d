"""gospool.spool(): uWSGI 2.0.21's Python 3 argument rules and messages,
the special keys, the limits, where tasks go and what spool() returns."""

import collections
import os
import threading
import time

import support
from support import gospool, _ring, _spoolfile

NOT_A_DICT = "The argument of spooler callable must be a dictionary"
ONLY_BYTES = "spooler callable dictionary must contains only bytes"
UNABLE = "unable to spool job"


class Bytesy:
    def __bytes__(self):
        return b"from __bytes__"


class BadBytes:
    def __bytes__(self):
        return "not bytes"


class FileCase(support.Case):
    """Tasks written as spool files (no ring), read back."""

    def setUp(self):
        super().setUp()
        self.dir = self.mkdir()
        gospool.configure([self.dir], ring=False)

    def spooled(self, *args, **kwargs):
        """spool(), then the task read back from its file: (path, pairs, body)."""
        name = gospool.spool(*args, **kwargs)
        self.assertIsInstance(name, bytes)
        path = os.fsdecode(name)
        self.assertTrue(os.path.isabs(path), path)
        pairs, body = self.read_file(path)
        return path, pairs, body

    def assertValueError(self, msg, *args, **kwargs):
        before = self.spool_files(self.dir)
        with self.assertRaises(ValueError) as cm:
            gospool.spool(*args, **kwargs)
        self.assertEqual(str(cm.exception), msg)
        self.assertEqual(self.spool_files(self.dir), before, "nothing may be written on an error")
        return cm.exception


class TestArguments(FileCase):
    def test_constants(self):
        self.assertEqual((gospool.SPOOL_OK, gospool.SPOOL_RETRY, gospool.SPOOL_IGNORE), (-2, -1, 0))
        self.assertIs(gospool.send_to_spooler, gospool.spool)

    def test_no_argument(self):
        self.assertValueError(NOT_A_DICT)
        self.assertValueError(NOT_A_DICT, **{})

    def test_first_positional_must_be_a_dict(self):
        for bad in (None, [(b"a", b"b")], ((b"a", b"b"),), b"a=b", "a=b", 3, collections.UserDict({b"a": b"b"})):
            with self.subTest(bad=bad):
                self.assertValueError(NOT_A_DICT, bad)
                self.assertValueError(NOT_A_DICT, bad, {b"a": b"b"})

    def test_dict_subclass(self):
        _, pairs, _ = self.spooled(collections.OrderedDict([(b"z", b"1"), (b"a", b"2")]))
        self.assertEqual(pairs, [(b"z", b"1"), (b"a", b"2")])

    def test_order_kept(self):
        d = {b"c": b"3", b"a": b"1", b"b": b"2"}
        _, pairs, body = self.spooled(d)
        self.assertEqual(pairs, list(d.items()))
        self.assertIsNone(body)

    def test_extra_positionals_ignored(self):
        _, pairs, _ = self.spooled({b"a": b"1"}, {b"b": b"2"}, 3, "x")
        self.assertEqual(pairs, [(b"a", b"1")])

    def test_kwargs_ignored_with_a_dict(self):
        _, pairs, _ = self.spooled({b"a": b"1"}, task="x", b=3)
        self.assertEqual(pairs, [(b"a", b"1")])

    def test_kwargs_alone_have_str_keys(self):
        e = self.assertValueError(ONLY_BYTES, task=b"x")
        self.assertIn("str", "".join(e.__notes__))

    def test_empty_dict(self):
        _, pairs, body = self.spooled({})
        self.assertEqual((pairs, body), ([], None))

    def test_keys_must_be_bytes(self):
        for key in ("task", 1, memoryview(b"task"), None, (b"t",), frozenset([b"t"])):
            with self.subTest(key=key):
                self.assertValueError(ONLY_BYTES, {b"ok": b"1", key: b"x"})

    def test_bytes_subclass_key_and_value(self):
        class B(bytes):
            pass
        _, pairs, _ = self.spooled({B(b"key"): B(b"value")})
        self.assertEqual(pairs, [(b"key", b"value")])
        self.assertIs(type(pairs[0][0]), bytes)

    def test_values_convertible_to_bytes(self):
        cases = {
            b"bytes": (b"v", b"v"),
            b"bytearray": (bytearray(b"ba"), b"ba"),
            b"memoryview": (memoryview(b"mv"), b"mv"),
            b"list": ([104, 105], b"hi"),
            b"tuple": ((104, 105), b"hi"),
            b"range": (range(97, 100), b"abc"),
            b"__bytes__": (Bytesy(), b"from __bytes__"),
            b"empty": (b"", b""),
        }
        _, pairs, _ = self.spooled({k: v for k, (v, _) in cases.items()})
        self.assertEqual(pairs, [(k, want) for k, (_, want) in cases.items()])

    def test_values_not_convertible(self):
        for v in ("str", 3, 0, True, 1.5, None, object(), [256], ["a"], BadBytes(), {"a": 1}):
            with self.subTest(value=v):
                e = self.assertValueError(ONLY_BYTES, {b"key": v})
                self.assertIn("b'key'", "".join(e.__notes__))

    def test_caller_dict_untouched(self):
        d = {b"a": b"1", b"body": b"the body"}
        before = dict(d)
        _, pairs, body = self.spooled(d)
        self.assertEqual(d, before)
        self.assertEqual((pairs, body), ([(b"a", b"1")], b"the body"))


class TestBody(FileCase):
    def test_bytes_body(self):
        _, pairs, body = self.spooled({b"body": b"\x00\xff" * 40000, b"a": b"1"})
        self.assertEqual(pairs, [(b"a", b"1")])
        self.assertEqual(body, b"\x00\xff" * 40000)

    def test_body_not_bytes_is_a_pair(self):
        # uWSGI takes b"body" as the body only when it is bytes; otherwise
        # it is an ordinary pair, converted like any value.
        _, pairs, body = self.spooled({b"body": bytearray(b"pair"), b"a": b"1"})
        self.assertEqual(pairs, [(b"body", b"pair"), (b"a", b"1")])
        self.assertIsNone(body)
        self.assertValueError(ONLY_BYTES, {b"body": "str body"})

    def test_str_body_key_is_not_the_body(self):
        self.assertValueError(ONLY_BYTES, {"body": b"x"})

    def test_empty_body_is_no_body(self):
        _, pairs, body = self.spooled({b"a": b"1", b"body": b""})
        self.assertEqual((pairs, body), ([(b"a", b"1")], None))

    def test_big_body_is_fine(self):
        _, _, body = self.spooled({b"body": b"x" * 300000})
        self.assertEqual(len(body), 300000)


class TestLimits(FileCase):
    def test_value_of_64k_names_the_key(self):
        with self.assertRaises(ValueError) as cm:
            gospool.spool({b"small": b"1", b"big": b"x" * 65536})
        msg = str(cm.exception)
        self.assertTrue(msg.startswith(UNABLE + ": "), msg)
        self.assertIn("b'big'", msg)
        self.assertIn("65536", msg)
        self.assertEqual(self.spool_files(self.dir), [])

    def test_largest_value_that_fits(self):
        _, pairs, _ = self.spooled({b"k": b"x" * (65535 - 5)})
        self.assertEqual(len(pairs[0][1]), 65530)

    def test_key_of_64k(self):
        with self.assertRaises(ValueError) as cm:
            gospool.spool({b"k" * 65536: b"v"})
        self.assertIn("key", str(cm.exception))

    def test_vars_block_over_64k_names_the_largest(self):
        with self.assertRaises(ValueError) as cm:
            gospool.spool({b"a": b"x" * 40000, b"b": b"y" * 30000})
        self.assertIn("b'a'", str(cm.exception))
        self.assertIn("70010", str(cm.exception))

    def test_empty_key(self):
        e = self.assertValueError(UNABLE, {b"": b"v"})
        self.assertIn("empty", "".join(e.__notes__))


class TestSpecialKeys(FileCase):
    def test_priority_goes_to_its_directory(self):
        path, pairs, _ = self.spooled({b"a": b"1", b"priority": b"42"})
        self.assertEqual(os.path.dirname(path), os.path.join(os.path.realpath(self.dir), "42"))
        self.assertEqual(pairs, [(b"a", b"1"), (b"priority", b"42")])

    def test_bad_priority(self):
        for bad in (b"", b"../x", b"-1", b"1.5", b"a", b"1" * 20, b"\xd9\xa3"):
            with self.subTest(priority=bad):
                e = self.assertValueError(UNABLE, {b"priority": bad})
                self.assertIn("priority", "".join(e.__notes__))

    def test_at_in_the_future_sets_mtime(self):
        at = int(time.time()) + 3600
        for value, ns in ((b"%d" % at, at * 10**9), (b"%d.25" % at, at * 10**9 + 250_000_000)):
            with self.subTest(at=value):
                path, pairs, _ = self.spooled({b"at": value})
                self.assertEqual(os.stat(path).st_mtime_ns, ns)
                self.assertEqual(pairs, [(b"at", value)])

    def test_at_zero_is_no_time(self):
        path, _, _ = self.spooled({b"at": b"0"})
        self.assertLess(abs(os.stat(path).st_mtime - time.time()), 3600)

    def test_bad_at(self):
        for bad in (b"", b"soon", b"-5", b"1e9", b"12a", b"1.", b".5", b" 1", b"1.2.3", b"99999999999999999999"):
            with self.subTest(at=bad):
                e = self.assertValueError(UNABLE, {b"at": bad})
                self.assertIn("unix time", "".join(e.__notes__))

    def test_spooler_key_routes(self):
        other = self.mkdir("other")
        link = os.path.join(self.tmp, "link")
        os.symlink(other, link)
        gospool.configure([self.dir, other], ring=False)
        self.assertEqual(gospool.spoolers(), (os.fsencode(os.path.realpath(self.dir)),
                                              os.fsencode(os.path.realpath(other))))
        for target in (os.fsencode(os.path.realpath(other)), os.fsencode(link), os.fsencode(other + "/.")):
            with self.subTest(spooler=target):
                path, pairs, _ = self.spooled({b"spooler": target, b"a": b"1"})
                self.assertEqual(os.path.dirname(path), os.path.realpath(other))
                self.assertEqual(pairs[0], (b"spooler", target))
        path, _, _ = self.spooled({b"a": b"1"})
        self.assertEqual(os.path.dirname(path), os.path.realpath(self.dir), "the first directory is the default")

    def test_unknown_spooler(self):
        elsewhere = self.mkdir("elsewhere")
        for target in (b"/no/such/dir", os.fsencode(elsewhere)):
            with self.subTest(spooler=target):
                e = self.assertValueError(UNABLE, {b"spooler": target})
                notes = "".join(e.__notes__)
                self.assertIn(repr(target), notes)
                self.assertIn(os.path.realpath(self.dir), notes)


class TestConfiguration(support.Case):
    def test_no_directory_known(self):
        with self.assertRaises(ValueError) as cm:
            gospool.spool({b"a": b"1"})
        msg = str(cm.exception)
        self.assertTrue(msg.startswith(UNABLE), msg)
        self.assertIn("gospool.configure(dirs=", msg)
        self.assertIn(gospool.ENV_SPOOLER_DIRS, msg)
        self.assertEqual(gospool.spoolers(), ())

    def test_environment(self):
        a, b = self.mkdir("a"), self.mkdir("b")
        os.environ[gospool.ENV_SPOOLER_DIRS] = a + ":" + b
        name = gospool.spool({b"x": b"1"})
        self.assertEqual(os.path.dirname(name), os.fsencode(os.path.realpath(a)))
        name = gospool.spool({b"x": b"1", b"spooler": os.fsencode(b)})
        self.assertEqual(os.path.dirname(name), os.fsencode(os.path.realpath(b)))

    def test_environment_single_dir(self):
        a = self.mkdir("a")
        os.environ[gospool.ENV_SPOOLER_DIR] = a
        self.assertEqual(gospool.spoolers(), (os.fsencode(os.path.realpath(a)),))

    def test_environment_missing_dir(self):
        os.environ[gospool.ENV_SPOOLER_DIRS] = os.path.join(self.tmp, "missing")
        with self.assertRaises(ValueError) as cm:
            gospool.spool({b"x": b"1"})
        self.assertIn("missing", "".join(cm.exception.__notes__))

    def test_configure_errors(self):
        with self.assertRaises(FileNotFoundError):
            gospool.configure([os.path.join(self.tmp, "missing")])
        with self.assertRaises(ValueError):
            gospool.configure([])
        with self.assertRaises(ValueError):
            gospool.configure()  # no environment either

    def test_configure_one_path(self):
        a = self.mkdir("a")
        gospool.configure(a)
        self.assertEqual(gospool.spoolers(), (os.fsencode(os.path.realpath(a)),))
        gospool.configure(os.fsencode(a))
        self.assertEqual(gospool.spoolers(), (os.fsencode(os.path.realpath(a)),))


class TestRingOrFile(support.Case):
    """Where a task goes when the directory has a ring, and what spool()
    returns for it."""

    def setUp(self):
        super().setUp()
        self.dir = self.mkdir()
        self.ring_path = self.make_ring(self.dir)
        gospool.configure([self.dir], full_wait=0)
        self.reader = support.RingReader(self.ring_path, attach=True)
        self.addCleanup(self.reader.close)

    def test_ring_name(self):
        names = [gospool.spool({b"n": b"%d" % i}) for i in range(3)]
        lane = gospool._all_dirs[os.path.realpath(self.dir)].ring.lane
        self.assertEqual(names, [b"ring:%d:%d" % (lane, i) for i in range(3)])
        got = self.reader.take_all()
        self.assertEqual([(l, s, p) for l, s, p, _ in got], [(lane, i, [(b"n", b"%d" % i)]) for i in range(3)])

    def test_body_in_the_ring(self):
        gospool.spool({b"a": b"1", b"body": b"\x00body"})
        gospool.spool({b"a": b"2", b"body": b""})
        got = self.reader.take_all()
        self.assertEqual([(p, b) for _, _, p, b in got], [([(b"a", b"1")], b"\x00body"), ([(b"a", b"2")], None)])

    def test_priority_and_future_at_go_to_files(self):
        seq = self.reader.u32(_ring.OFF_FILE_SEQ)
        n1 = gospool.spool({b"priority": b"1"})
        n2 = gospool.spool({b"at": b"%d" % (time.time() + 3600)})
        self.assertTrue(n1.startswith(os.fsencode(os.path.realpath(self.dir)) + b"/1/"), n1)
        self.assertTrue(os.path.exists(n2), n2)
        self.assertEqual(self.reader.u32(_ring.OFF_FILE_SEQ), seq + 2, "spoolers must hear of the new files")
        self.assertEqual(self.reader.take_all(), [])

    def test_past_at_goes_to_the_ring(self):
        # As Go's Client: only an `at` in the future must wait in a file.
        name = gospool.spool({b"at": b"1700000000"})
        self.assertTrue(name.startswith(b"ring:"), name)

    def test_full_lane_spills_and_counts(self):
        names = [gospool.spool({b"n": b"%d" % i}) for i in range(12)]
        self.assertTrue(all(n.startswith(b"ring:") for n in names[:8]), names)
        self.assertTrue(all(os.path.exists(n) for n in names[8:]), names)
        self.assertEqual(self.reader.u64(_ring.OFF_SPOOLED), 8)
        self.assertEqual(self.reader.u64(_ring.OFF_SPILLED), 4)
        self.assertEqual(self.reader.u32(_ring.OFF_FILE_SEQ), 4)
        # Once consumers finish records, the lane takes tasks again.
        self.assertEqual(len(self.reader.take_all()), 8)
        self.assertTrue(gospool.spool({b"n": b"again"}).startswith(b"ring:"))

    def test_too_large_for_the_ring(self):
        name = gospool.spool({b"body": b"x" * 1025})  # a lane of 4 KiB takes 1 KiB records
        self.assertTrue(os.path.exists(name), name)
        self.assertEqual(self.reader.u64(_ring.OFF_SPILLED), 1)
        self.assertEqual(self.reader.take_all(), [])

    def test_full_wait_waits_for_progress(self):
        gospool.configure([self.dir], full_wait=5.0)
        for i in range(8):
            gospool.spool({b"n": b"%d" % i})
        stop = threading.Event()

        def consumer():
            while not stop.is_set():
                self.reader.take_all()
                time.sleep(0.001)
        t = threading.Thread(target=consumer)
        t.start()
        try:
            names = [gospool.spool({b"n": b"more-%d" % i}) for i in range(20)]
        finally:
            stop.set()
            t.join()
        self.assertTrue(all(n.startswith(b"ring:") for n in names), names)

    def test_ring_appears_later(self):
        other = self.mkdir("later")
        gospool.configure([other], full_wait=0)
        self.assertTrue(os.path.exists(gospool.spool({b"a": b"1"})))
        self.addCleanup(support.attach_consumer(self.make_ring(other)))
        gospool._all_dirs[os.path.realpath(other)]._looked_at -= 2  # the next look is due
        self.assertTrue(gospool.spool({b"a": b"2"}).startswith(b"ring:"))

    def test_ring_false(self):
        gospool.configure([self.dir], ring=False)
        self.assertTrue(os.path.exists(gospool.spool({b"a": b"1"})))

    def test_ring_only_while_a_spooler_is_attached(self):
        # The rule of "Where a task goes": a ring with no spooler attached
        # (none started yet, or all stopped: maybe a uWSGI spooler serves
        # the directory) gets no task; files, which every spooler runs.
        self.assertTrue(gospool.spool({b"a": b"1"}).startswith(b"ring:"))
        self.reader.detach()  # the spooler stops cleanly
        name = gospool.spool({b"a": b"2"})
        self.assertTrue(os.path.exists(name), name)
        other = self.mkdir("never-attached")
        self.make_ring(other)
        gospool.configure([other], full_wait=0)
        name = gospool.spool({b"a": b"3"})
        self.assertTrue(os.path.exists(name), name)
        # A spooler attaches: seen at once (its entry's generation moved).
        self.addCleanup(support.attach_consumer(os.path.join(other, _ring.FILE_NAME), entry=2))
        self.assertTrue(gospool.spool({b"a": b"4"}).startswith(b"ring:"))
        # require_consumer, of earlier releases, is accepted and changes nothing.
        gospool.configure([other], require_consumer=False)
        self.assertTrue(gospool.spool({b"a": b"5"}).startswith(b"ring:"))

    def test_threads(self):
        gospool.configure([self.dir], full_wait=0)
        names = []
        lock = threading.Lock()

        def work(i):
            mine = [gospool.spool({b"t": b"%d" % i, b"j": b"%d" % j}) for j in range(50)]
            with lock:
                names.extend(mine)
        ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(len(set(names)), 400)
        ring_names = [n for n in names if n.startswith(b"ring:")]
        tasks = {p[1][1] + b"/" + p[0][1] for _, _, p, _ in self.reader.take_all()}
        for n in names:
            if not n.startswith(b"ring:"):
                pairs, _ = self.read_file(n)
                tasks.add(pairs[1][1] + b"/" + pairs[0][1])
        self.assertEqual(len(tasks), 400)
        self.assertGreater(len(ring_names), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
