"""gospool.runner: its pipe protocol, env building and result mapping, and a
real ``python3 -m gospool.runner`` process driven over fds 3 and 4 the way
the Go side (package python) drives it."""

import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

from gospool import runner  # noqa: E402


def spool_bytes(pairs, body=b""):
    v = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(x)) + x for k, x in pairs)
    return bytes([17]) + struct.pack("<H", len(v)) + b"\0" + v + body


def request(name, attempt, pairs, body=b""):
    sp = spool_bytes(pairs, body)
    n = name.encode()
    return struct.pack("<IIH", 6 + len(n) + len(sp), attempt, len(n)) + n + sp


class TestPieces(unittest.TestCase):
    def test_parse_env_as_uwsgi(self):
        sp = spool_bytes([(b"a", b"1"), (b"spooler_task_name", b"X"), (b"a", b"2")], b"\x00body")
        env = runner.parse_env(b"task1", memoryview(sp))
        self.assertEqual(list(env.items()), [("spooler_task_name", b"task1"), (b"a", b"2"),
                                             (b"spooler_task_name", b"X"), ("body", b"\x00body")])
        self.assertNotIn("body", runner.parse_env(b"t", spool_bytes([(b"k", b"")])))
        self.assertEqual(runner.parse_env(b"t", spool_bytes([])), {"spooler_task_name": b"t"})
        for bad in (b"\x11\x05\x00\x00\x00\x00k\x00\x00",  # empty key
                    b"\x11\x09\x00\x00\x01\x00k\x05\x00v",  # value overruns
                    b"\x11\x02\x00\x00\x01\x00",  # fewer than 3 bytes for a key
                    b"\x11\x10\x00\x00", b"\x11"):
            self.assertIsNone(runner.parse_env(b"t", bad), bad)

    def test_result_codes_as_uwsgi(self):
        for ret, code in ((-2, -2), (-1, -1), (0, 0), (5, 5), (True, 1), (False, 0), (2 ** 32 - 2, -2),
                          (2 ** 31, -(2 ** 31)), (2 ** 63 - 1, -1), (2 ** 70, -1), (-(2 ** 70), -1),
                          (None, -1), (-2.0, -1), ("-2", -1), ([], -1)):
            self.assertEqual(runner.result_code(ret)[0], code, repr(ret))
        self.assertEqual(runner.result_code(-2)[1], "")
        self.assertIn("not an int", runner.result_code(None)[1])
        self.assertIn("True", runner.result_code(True)[1])

    def test_frames(self):
        r, w = os.pipe()
        try:
            os.write(w, request("nm", 3, [(b"k", b"v")], b"B"))
            name, attempt, sp = runner.read_request(r)
            self.assertEqual((name, attempt, bytes(sp)), (b"nm", 3, spool_bytes([(b"k", b"v")], b"B")))
            runner.reply(w, runner.DONE, -2, "note é")
            data = os.read(r, 100)
            self.assertEqual(data, struct.pack("<IcI", 5 + 7, b"D", 0xFFFFFFFE) + "note é".encode())
            os.write(w, struct.pack("<I", 3))  # shorter than attempt and name length
            with self.assertRaises(runner.ProtocolError):
                runner.read_request(r)
        finally:
            os.close(w)
        self.assertIsNone(runner.read_request(r))  # EOF: a clean stop
        os.close(r)

    def test_import_by_path(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "my_tasks.py")
            with open(p, "w") as f:
                f.write("X = 42\n")
            m = runner.import_module(p)
            self.assertEqual(m.X, 42)
            self.assertIs(sys.modules[m.__name__], m)
            sys.modules.pop(m.__name__)


class Runner:
    """A real runner process, driven over fds 3 and 4."""

    def __init__(self, tc, *modules, env=None):
        self.tc = tc
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        # The Go side puts the pipes at fds 3 and 4; here the (hidden)
        # options say where they are.
        args = [sys.executable, "-m", "gospool.runner", "--request-fd", str(req_r), "--reply-fd", str(rep_w)]
        for m in modules:
            args += ["--import", m]
        e = dict(os.environ, PYTHONPATH=os.pathsep.join([PYTHON_DIR, tc.mods]), PYTHONDONTWRITEBYTECODE="1")
        e.update(env or {})
        self.p = subprocess.Popen(args, env=e, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, pass_fds=(req_r, rep_w))
        os.close(req_r)
        os.close(rep_w)
        tc.addCleanup(self.close)

    def read_reply(self):
        h = self._read(4)
        if h is None:
            return None
        (n,) = struct.unpack("<I", h)
        body = self._read(n)
        kind, code = struct.unpack("<ci", body[:5])
        return kind, code, body[5:].decode()

    def _read(self, n):
        b = b""
        while len(b) < n:
            c = os.read(self.rep_r, n - len(b))
            if not c:
                return None if not b else b
            b += c
        return b

    def call(self, name, pairs, body=b"", attempt=1):
        os.write(self.req_w, request(name, attempt, pairs, body))
        return self.read_reply()

    def close(self):
        for fd in (self.req_w, self.rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.p.poll() is None:
            self.p.kill()
        self.p.communicate()


class TestRunnerProcess(unittest.TestCase):
    def setUp(self):
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        self.mods = d.name
        with open(os.path.join(d.name, "rt_tasks.py"), "w") as f:
            f.write(textwrap.dedent('''
                import os, sys
                import uwsgi

                def f(env):
                    what = env.get(b"do", b"ok")
                    if what == b"ok":
                        return uwsgi.SPOOL_OK
                    if what == b"echo":
                        print("ECHO", repr(env))
                        return uwsgi.SPOOL_OK
                    if what == b"raise":
                        raise ZeroDivisionError("nope")
                    if what == b"exit":
                        sys.exit(int(env[b"code"]))
                    if what == b"none":
                        return None
                    if what == b"attempt":
                        import gospool.compat
                        print("INFO", tuple(gospool.compat.task_info()), uwsgi.i_am_the_spooler())
                        return -2
                    return int(what)

                uwsgi.spooler = f
            '''))
        with open(os.path.join(d.name, "rt_bad.py"), "w") as f:
            f.write("import uwsgi\n1 / 0\n")
        with open(os.path.join(d.name, "rt_none.py"), "w") as f:
            f.write("import uwsgi\n")

    def test_protocol(self):
        r = Runner(self, "rt_tasks")
        kind, code, text = r.read_reply()
        self.assertEqual((kind, code), (b"R", 1))
        self.assertTrue(text.startswith("3."), text)
        self.assertEqual(r.call("a", [(b"do", b"ok")]), (b"D", -2, ""))
        self.assertEqual(r.call("b", [(b"do", b"7")]), (b"D", 7, ""))
        kind, code, text = r.call("c", [(b"do", b"none")])
        self.assertEqual((kind, code), (b"D", -1))
        self.assertIn("None, not an int", text)
        kind, code, text = r.call("d", [(b"do", b"raise")])
        self.assertEqual((kind, code), (b"E", -1))
        self.assertIn("ZeroDivisionError: nope", text)
        self.assertIn("rt_tasks.py", text)
        self.assertNotIn("gospool/runner.py", text)  # the traceback starts at the task
        self.assertEqual(r.call("e", [(b"do", b"echo"), (b"k", b"\xff")], b"\x00\x01"), (b"D", -2, ""))
        self.assertEqual(r.call("f", [(b"do", b"attempt")], attempt=4), (b"D", -2, ""))
        # The vars do not parse: uWSGI deletes such a task.
        os.write(r.req_w, struct.pack("<IIH", 6 + 1 + 5, 1, 1) + b"g" + b"\x11\x09\x00\x00\x00")
        self.assertEqual(r.read_reply()[:2], (b"D", -2))
        kind, code, text = r.call("h", [(b"do", b"exit"), (b"code", b"9")])
        self.assertEqual((kind, code), (b"X", 9))
        self.assertIn("SystemExit: 9", text)
        out, err = r.p.communicate(timeout=30)
        self.assertEqual(r.p.returncode, 9)
        self.assertIn(b"ECHO {'spooler_task_name': b'e', b'do': b'echo', b'k': b'\\xff', 'body': b'\\x00\\x01'}", out)
        self.assertIn(b"INFO ('f', 4) True", out)

    def test_eof_is_a_clean_stop(self):
        r = Runner(self, "rt_tasks")
        self.assertEqual(r.read_reply()[0], b"R")
        os.close(r.req_w)
        r.p.wait(30)
        self.assertEqual(r.p.returncode, 0)

    def test_import_error(self):
        r = Runner(self, "rt_tasks", "rt_bad")
        self.assertIsNone(r.read_reply())
        _, err = r.p.communicate(timeout=30)
        self.assertEqual(r.p.returncode, runner.EXIT_IMPORT)
        self.assertIn(b"ZeroDivisionError: division by zero", err)
        self.assertIn(b"--spooler-import rt_bad failed", err)

    def test_import_by_path(self):
        r = Runner(self, os.path.join(self.mods, "rt_tasks.py"))
        self.assertEqual(r.read_reply()[0], b"R")
        self.assertEqual(r.call("a", [(b"do", b"5")]), (b"D", 5, ""))

    def test_no_spooler_set_is_ignore(self):
        r = Runner(self, "rt_none")
        self.assertEqual(r.read_reply()[0], b"R")
        kind, code, text = r.call("a", [])
        self.assertEqual((kind, code), (b"D", 0))
        self.assertIn("uwsgi.spooler is not set", text)

    def test_malformed_request(self):
        r = Runner(self, "rt_tasks")
        self.assertEqual(r.read_reply()[0], b"R")
        os.write(r.req_w, struct.pack("<I", 2) + b"xx")
        r.p.wait(30)
        self.assertEqual(r.p.returncode, runner.EXIT_PROTOCOL)

    def test_without_fds(self):
        p = subprocess.run([sys.executable, "-m", "gospool.runner", "--import", "os", "--request-fd", "99",
                            "--reply-fd", "98"], env=dict(os.environ, PYTHONPATH=PYTHON_DIR),
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, runner.EXIT_PROTOCOL)
        self.assertIn(b"started by gospool run --spooler-import", p.stderr)


if __name__ == "__main__":
    unittest.main()
