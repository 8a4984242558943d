"""uWSGI spool files: the encoding (shared vectors with Go), the names, the
write protocol (O_EXCL, 0600, written under a hidden temporary name and
linked into place complete, `at` as mtime, the priority directory, no
partial file left on failure, a kill or a full disk), the special key
checks."""

import os
import socket
import subprocess
import sys
import time
import unittest

import support
from support import _spoolfile
from test_msgpack import load_vectors


class TestEncode(unittest.TestCase):
    def test_vectors(self):
        for v in load_vectors():
            with self.subTest(v["name"]):
                self.assertEqual(_spoolfile.encode(v["pairs"], v["body"]).hex(), v["spoolfile"])
                pairs, body = _spoolfile.decode(bytes.fromhex(v["spoolfile"]))
                self.assertEqual(pairs, v["pairs"])
                self.assertEqual(body, v["body"] or None)

    def test_doc_example(self):
        self.assertEqual(_spoolfile.encode([(b"hello", b"world")]).hex(" "),
                         "11 0e 00 00 05 00 68 65 6c 6c 6f 05 00 77 6f 72 6c 64")

    def test_limits(self):
        self.assertEqual(_spoolfile.check_limits([(b"k", b"x" * 65530)]), 65535)
        with self.assertRaises(_spoolfile.LimitError) as cm:
            _spoolfile.check_limits([(b"k", b"x" * 65531)])
        self.assertEqual(cm.exception.what, "vars block")
        with self.assertRaises(_spoolfile.LimitError) as cm:
            _spoolfile.check_limits([(b"ok", b""), (b"k", b"x" * 65536)])
        self.assertEqual((cm.exception.key, cm.exception.what, cm.exception.size), (b"k", "value", 65536))
        with self.assertRaises(_spoolfile.LimitError) as cm:
            _spoolfile.check_limits([(b"k" * 65536, b"")])
        self.assertEqual(cm.exception.what, "key")
        with self.assertRaises(_spoolfile.SpecialKeyError):
            _spoolfile.check_limits([(b"", b"v")])


class TestSpecialKeys(unittest.TestCase):
    def test_parse_at(self):
        good = {
            b"1700000000": 1700000000 * 10**9,
            b"1700000000.5": 1700000000 * 10**9 + 500_000_000,
            b"1700000000.123": 1700000000 * 10**9 + 123_000_000,
            b"1700000000.1234567891": 1700000000 * 10**9 + 123_456_789,
            b"4102444800": 4102444800 * 10**9,
            b"0.5": 500_000_000,
        }
        for v, ns in good.items():
            with self.subTest(at=v):
                self.assertEqual(_spoolfile.parse_at(v), ns)
        for zero in (b"0", b"0.0", b"000"):
            self.assertIsNone(_spoolfile.parse_at(zero), "0 means no time, as in uWSGI")
        for bad in (b"", b"soon", b"-5", b"1e9", b"12a", b"1.", b".5", b" 1", b"1.2.3",
                    b"99999999999999999999", b"\xd9\xa1", b"1_000"):
            with self.subTest(at=bad):
                with self.assertRaises(_spoolfile.SpecialKeyError):
                    _spoolfile.parse_at(bad)

    def test_priority(self):
        self.assertEqual(_spoolfile.check_priority(b"5"), "5")
        self.assertEqual(_spoolfile.check_priority(b"0010"), "0010")
        self.assertEqual(_spoolfile.check_priority(b"9" * 19), "9" * 19)
        for bad in (b"", b"x", b"-1", b"../1", b"1/2", b"9" * 20, b"1 "):
            with self.subTest(priority=bad):
                with self.assertRaises(_spoolfile.SpecialKeyError):
                    _spoolfile.check_priority(bad)


class TestWriter(support.Case):
    def setUp(self):
        super().setUp()
        self.dir = self.mkdir()
        self.w = _spoolfile.Writer(self.dir)

    def test_name_and_mode(self):
        before = time.time_ns()
        path = self.w.write(_spoolfile.encode([(b"a", b"1")]))
        after = time.time_ns()
        self.assertEqual(os.path.dirname(path), os.path.realpath(self.dir))
        name = os.path.basename(path)
        host = socket.gethostname()
        self.assertTrue(name.startswith("uwsgi_spoolfile_on_%s_%d_" % (host, os.getpid())), name)
        counter, rnd, sec, usec = name[len("uwsgi_spoolfile_on_%s_%d_" % (host, os.getpid())):].split("_")
        self.assertGreater(int(counter), 0)
        self.assertTrue(0 <= int(rnd) < 2**31)
        self.assertTrue(before // 1000 <= int(sec) * 10**6 + int(usec) <= after // 1000)
        self.assertNotRegex(sec + usec, "^0|_0")  # no padding
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path, "rb") as f:
            self.assertEqual(_spoolfile.decode(f.read()), ([(b"a", b"1")], None))

    def test_counter_grows(self):
        names = [os.path.basename(self.w.write(b"\x11\x00\x00\x00")) for _ in range(3)]
        counters = [int(n.split("_")[5]) for n in names]
        self.assertEqual(counters, sorted(counters))
        self.assertEqual(len(set(counters)), 3)

    def test_name_function(self):
        self.assertEqual(_spoolfile.name("web1", 4242, 7, 1804289383, 1700000000_005123_000),
                         "uwsgi_spoolfile_on_web1_4242_7_1804289383_1700000000_5123")

    def test_at_sets_atime_and_mtime(self):
        at = 1700000000 * 10**9 + 250_000_000
        path = self.w.write(b"\x11\x00\x00\x00", at_ns=at)
        st = os.stat(path)
        self.assertEqual((st.st_mtime_ns, st.st_atime_ns), (at, at))

    def test_priority_directory(self):
        path = self.w.write(b"\x11\x00\x00\x00", priority="12")
        self.assertEqual(os.path.dirname(path), os.path.join(os.path.realpath(self.dir), "12"))
        path2 = self.w.write(b"\x11\x00\x00\x00", priority="12")  # the directory exists: fine
        self.assertEqual(os.path.dirname(path2), os.path.dirname(path))

    def test_invisible_while_written(self):
        # While the bytes are being written, no file with the spool file
        # prefix exists: a spooler cannot run a half-written task.
        seen = []

        def hook(tmp):
            seen.append((os.path.basename(tmp), self.spool_files(self.dir)))
        path = self.w.write(_spoolfile.encode([(b"k", b"v")], b"body"), _hook=hook)
        (tmp, during), = seen
        self.assertTrue(tmp.startswith(_spoolfile.TMP_PREFIX), tmp)
        self.assertEqual(during, [])
        self.assertEqual(self.spool_files(self.dir), [path])
        self.assertEqual(sorted(os.listdir(self.dir)), [os.path.basename(path)], "temporary file removed")

    def test_failure_removes_the_file(self):
        paths = []

        def hook(path):
            paths.append(path)
            raise OSError(28, "No space left on device (test)")
        with self.assertRaises(OSError) as cm:
            self.w.write(b"\x11\x00\x00\x00", _hook=hook)
        self.assertFalse(os.path.exists(paths[0]))
        self.assertIn("NOT spooled", "".join(cm.exception.__notes__))
        self.assertEqual(self.spool_files(self.dir), [])

    def test_never_overwrites(self):
        # O_EXCL: a name that exists is never reused (uWSGI's names repeat
        # in forked workers that share the master's rand() sequence).
        path = self.w.write(b"\x11\x00\x00\x00")
        with self.assertRaises(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))

    def test_missing_directory(self):
        with self.assertRaises(FileNotFoundError):
            _spoolfile.Writer(os.path.join(self.tmp, "missing"))

    def test_bad_host(self):
        with self.assertRaises(ValueError):
            _spoolfile.Writer(self.dir, host="a/b")

    def test_big_file(self):
        data = _spoolfile.encode([(b"k", b"v")], b"x" * (3 << 20))
        path = self.w.write(data)
        self.assertEqual(os.path.getsize(path), len(data))


KILLED_WRITER = """
import os, sys, time
sys.path.insert(0, sys.argv[2])
from gospool import _spoolfile

def park(tmp):
    print("writing", tmp, flush=True)
    time.sleep(600)

_spoolfile.Writer(sys.argv[1]).write(_spoolfile.encode([(b"k", b"v")], b"body" * 1000), _hook=park)
"""


class TestWriterCrash(support.Case):
    def test_killed_mid_write_leaves_no_spool_file(self):
        # SIGKILL while the bytes are being written: no file a spooler
        # would run is left behind (uWSGI's protocol leaves one, unlocked).
        d = self.mkdir()
        p = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, d, support.PYTHON_DIR],
                             stdout=subprocess.PIPE, text=True)
        self.addCleanup(p.stdout.close)
        line = p.stdout.readline()
        self.assertTrue(line.startswith("writing "), line)
        p.kill()
        p.wait()
        self.assertEqual(self.spool_files(d), [])
        (left,) = os.listdir(d)
        self.assertTrue(left.startswith(_spoolfile.TMP_PREFIX), left)

    def test_exception_after_link_names_the_file(self):
        # An exception (a signal handler's) landing once the file is in
        # place: it carries the file's name, and the file stays.
        d = self.mkdir()
        w = _spoolfile.Writer(d)
        real_unlink = os.unlink

        def interrupted(path, *a, **kw):
            if os.path.basename(path).startswith(_spoolfile.TMP_PREFIX) and self.spool_files(d):
                os.unlink = real_unlink
                raise KeyboardInterrupt("injected after the link")
            return real_unlink(path, *a, **kw)
        os.unlink = interrupted
        try:
            with self.assertRaises(KeyboardInterrupt) as cm:
                w.write(b"\x11\x00\x00\x00")
        finally:
            os.unlink = real_unlink
        (path,) = self.spool_files(d)
        self.assertEqual(cm.exception.gospool_spooled, os.fsencode(path))
        self.assertIn("spooling it again would run it twice", "".join(cm.exception.__notes__))
        self.assertEqual(sorted(os.listdir(d)), [os.path.basename(path)], "temporary name removed")


class TestFullDisk(support.Case):
    def test_no_space(self):
        d = support.small_tmpfs(self)
        w = _spoolfile.Writer(d)
        support.fill_disk(d)
        for kw in ({}, {"priority": "3"}):
            with self.subTest(**kw):
                with self.assertRaises(_spoolfile.NoSpaceError) as cm:
                    w.write(_spoolfile.encode([(b"k", b"v")], b"x" * 8192), **kw)
                e = cm.exception
                self.assertEqual(e.errno, 28)
                self.assertIsInstance(e, ValueError)  # as uWSGI's "unable to spool job"
                self.assertIn("no space left on device in spool directory %s" % d, str(e))
                self.assertEqual([n for n in os.listdir(d) if n not in ("filler", "3")], [])
        self.assertEqual(os.listdir(os.path.join(d, "3")), [])
        # Through gospool.spool, the ring aside: the same exception.
        import gospool
        gospool.configure([d], ring=False)
        with self.assertRaises(OSError) as cm:
            gospool.spool({b"k": b"v", b"body": b"x" * 8192})
        self.assertEqual(cm.exception.errno, 28)
        self.assertIn("spool directory " + d, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
