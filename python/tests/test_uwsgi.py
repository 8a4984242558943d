"""gospool.spool() side by side with the real uwsgi.spool() of uWSGI 2.0.21
(Debian's uwsgi-core and uwsgi-plugin-python3), in one uWSGI process: the
same arguments must give the same task or the same exception and message.
Also gospool.install() under real uWSGI. Skipped when uWSGI is not
installed."""

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
import unittest

import support

SCRIPT = textwrap.dedent(r'''
    import collections, json, os, sys, time
    sys.path.insert(0, os.environ["GOSPOOL_PYTHON_DIR"])
    import uwsgi
    import gospool
    from gospool import _spoolfile

    class Bytesy:
        def __bytes__(self):
            return b"from __bytes__"

    AT = b"%d" % (int(time.time()) + 3600)
    CASES = [
        ("no argument", lambda f: f()),
        ("a list", lambda f: f([(b"a", b"b")])),
        ("None", lambda f: f(None)),
        ("a str", lambda f: f("a=b")),
        ("kwargs only", lambda f: f(a=b"x")),
        # Known difference: uWSGI's C function tells f(**{}) (an empty
        # task, written) from f() (an error); a Python function cannot, and
        # gospool raises for both.
        ("empty kwargs", lambda f: f(**{})),
        ("dict and kwargs", lambda f: f({b"a": b"1"}, b=b"2")),
        ("dict and more positionals", lambda f: f({b"a": b"1"}, {b"b": b"2"}, 3)),
        ("empty dict", lambda f: f({})),
        ("OrderedDict", lambda f: f(collections.OrderedDict([(b"z", b"1"), (b"a", b"2")]))),
        ("str key", lambda f: f({b"ok": b"1", "a": b"1"})),
        ("int key", lambda f: f({1: b"1"})),
        ("str value", lambda f: f({b"a": "1"})),
        ("int value", lambda f: f({b"a": 1})),
        ("None value", lambda f: f({b"a": None})),
        ("float value", lambda f: f({b"a": 1.5})),
        ("bytearray value", lambda f: f({b"a": bytearray(b"ba")})),
        ("memoryview value", lambda f: f({b"a": memoryview(b"mv")})),
        ("list of ints value", lambda f: f({b"a": [104, 105]})),
        ("__bytes__ value", lambda f: f({b"a": Bytesy()})),
        ("empty value", lambda f: f({b"a": b""})),
        ("binary", lambda f: f({b"\x00\xff": bytes(range(256))})),
        ("bytes body", lambda f: f({b"a": b"1", b"body": b"\x00BODY\xff"})),
        ("bytearray body is a pair", lambda f: f({b"body": bytearray(b"B"), b"a": b"1"})),
        ("str body", lambda f: f({b"body": "B"})),
        ("empty body", lambda f: f({b"a": b"1", b"body": b""})),
        ("unknown spooler", lambda f: f({b"spooler": b"/nonexistent/spool"})),
        ("priority", lambda f: f({b"a": b"1", b"priority": b"3"})),
        ("at", lambda f: f({b"a": b"1", b"at": AT})),
    ]

    def run(fn, call):
        try:
            name = call(fn)
        except BaseException as e:
            return ["error", type(e).__name__, str(e)]
        if not isinstance(name, bytes) or not os.path.isabs(name):
            return ["bad return", repr(name)]
        with open(name, "rb") as fh:
            pairs, body = _spoolfile.decode(fh.read())
        st = os.stat(name)
        sub = os.path.basename(os.path.dirname(name)).decode()
        return ["ok", [[k.hex(), v.hex()] for k, v in pairs], body.hex() if body else None,
                sub if sub.isdigit() else "", st.st_mode & 0o777, int(st.st_mtime)]

    out = {}
    native = uwsgi.spool
    gospool.configure([os.environ["GOSPOOL_OTHER_DIR"]], ring=False)
    for name, call in CASES:
        out[name] = [run(native, call), run(gospool.spool, call)]
    gospool.close()
    gospool.install()
    out["install"] = [uwsgi.spool is gospool.spool, uwsgi.send_to_spooler is gospool.spool,
                      [os.fsdecode(d) for d in gospool.spoolers()], os.fsdecode(gospool.spool({b"x": b"1"}))]
    with open(os.environ["GOSPOOL_TEST_OUT"], "w") as fh:
        json.dump(out, fh)
''')


def uwsgi_python3():
    exe = shutil.which("uwsgi")
    if exe is None:
        return None
    probe = subprocess.run([exe, "--plugin", "python3", "--help"], capture_output=True)
    return exe if probe.returncode == 0 else None


@unittest.skipIf(uwsgi_python3() is None, "uwsgi with the python3 plugin is not installed")
class TestAgainstRealUWSGI(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gospool-uwsgi-")
        cls.native_dir = os.path.join(cls.tmp, "native")
        cls.other_dir = os.path.join(cls.tmp, "gospool")
        os.mkdir(cls.native_dir)
        os.mkdir(cls.other_dir)
        script = os.path.join(cls.tmp, "compare.py")
        with open(script, "w") as f:
            f.write(SCRIPT)
        out = os.path.join(cls.tmp, "out.json")
        env = dict(os.environ, GOSPOOL_PYTHON_DIR=support.PYTHON_DIR, GOSPOOL_OTHER_DIR=cls.other_dir,
                   GOSPOOL_TEST_OUT=out)
        for k in ("GOSPOOL_SPOOLER_DIRS", "GOSPOOL_SPOOLER_DIR"):
            env.pop(k, None)
        p = subprocess.run([uwsgi_python3(), "--plugin", "python3", "--spooler-external", cls.native_dir,
                            "--pyrun", script], env=env, capture_output=True, text=True, timeout=120)
        if not os.path.exists(out):
            raise AssertionError("uwsgi --pyrun failed (%d):\n%s%s" % (p.returncode, p.stdout, p.stderr))
        with open(out) as f:
            cls.results = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def test_same_as_uwsgi(self):
        cases = {k: v for k, v in self.results.items() if k != "install"}
        self.assertGreater(len(cases), 25)
        for name, (native, ours) in cases.items():
            with self.subTest(name):
                if name == "empty kwargs":
                    self.assertEqual(native[0], "ok")
                    self.assertEqual(ours, ["error", "ValueError", "The argument of spooler callable must be a dictionary"])
                    continue
                self.assertEqual(ours, native)

    def test_errors_are_uwsgis(self):
        # A sample, so that a uWSGI that changed would be noticed here too.
        r = self.results
        self.assertEqual(r["no argument"][0], ["error", "ValueError", "The argument of spooler callable must be a dictionary"])
        self.assertEqual(r["str value"][0], ["error", "ValueError", "spooler callable dictionary must contains only bytes"])
        self.assertEqual(r["unknown spooler"][0], ["error", "ValueError", "unable to spool job"])
        self.assertEqual(r["bytes body"][0][1:3], [[["61", "31"]], "00424f4459ff"])

    def test_install(self):
        is_spool, is_send, dirs, name = self.results["install"]
        self.assertTrue(is_spool)
        self.assertTrue(is_send)
        self.assertEqual(dirs, [os.path.realpath(self.native_dir)])
        # No gospool spooler serves the directory (no ring): a spool file.
        self.assertEqual(os.path.dirname(name), os.path.realpath(self.native_dir))


if __name__ == "__main__":
    unittest.main()
