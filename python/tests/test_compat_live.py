"""gospool.compat's uwsgidecorators against the real one, live.

ud_live_calls.run() makes the same decorator calls and dispatches with
uWSGI's own uwsgidecorators (inside ``uwsgi --pyrun``) and with
gospool.compat's, and the results must match, except where compat.py
documents a difference. It complements test_compat.py, whose ground truth
is files captured once: this one runs whatever uwsgidecorators is
installed, on calls the captured files do not cover.

Needs uwsgi with the python3 plugin and uwsgidecorators (Debian:
uwsgi-core uwsgi-plugin-python3 python3-uwsgidecorators): skipped without
them, failed under CI=true.
"""

import io
import json
import os
import shutil
import subprocess
import tempfile
import unittest
from contextlib import redirect_stderr

import support  # noqa: F401  (makes gospool importable)
import ud_live_calls
from gospool import compat

HERE = os.path.dirname(os.path.abspath(__file__))

# Where gospool.compat deliberately differs from uwsgidecorators (compat.py's
# docstring, differences 1 and 2): case -> (uwsgidecorators' outcome, ours).
DIFFERENCES = {
    "unknown function": (["raise", "KeyError"], ["return", "0"]),
    "no function": (["raise", "KeyError"], ["return", "0"]),
    "invalid UTF-8 value": (["raise", "UnicodeDecodeError"], ["return", "-2"]),
}


def real_results():
    """run() under uWSGI with its own uwsgidecorators, or a reason to skip."""
    exe = shutil.which("uwsgi")
    missing = "uwsgi with the python3 plugin and uwsgidecorators (apt-get install uwsgi-core " \
              "uwsgi-plugin-python3 python3-uwsgidecorators)"
    if exe is None:
        return None, missing + ": no uwsgi"
    tmp = tempfile.mkdtemp(prefix="gospool-udlive-")
    try:
        spool = os.path.join(tmp, "spool")
        os.mkdir(spool)
        out = os.path.join(tmp, "out.json")
        env = dict(os.environ, UD_LIVE_OUT=out, PYTHONDONTWRITEBYTECODE="1")
        # --spooler: uwsgidecorators refuses to decorate without one.
        p = subprocess.run([exe, "--plugin", "python3", "--spooler", spool, "--pyrun",
                            os.path.join(HERE, "ud_live_calls.py")],
                           env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
        if not os.path.exists(out):
            log = p.stdout + p.stderr
            if "No module named 'uwsgidecorators'" in log or "unable to load" in log:
                return None, missing + ":\n" + log[-2000:]
            raise AssertionError("uwsgi --pyrun ud_live_calls.py wrote nothing (%d):\n%s" % (p.returncode, log))
        with open(out) as f:
            return json.load(f), None
    finally:
        shutil.rmtree(tmp, True)


class TestSameAsRealUwsgidecorators(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.real, why = real_results()
        if cls.real is None:
            if os.environ.get("CI") == "true":
                raise AssertionError("CI=true and " + why)
            raise unittest.SkipTest(why)
        _, ud = compat.make_modules(dirs=["/tmp/gospool-live"])
        u = ud.uwsgi
        err = io.StringIO()
        with redirect_stderr(err):
            cls.ours = json.loads(json.dumps(ud_live_calls.run(u, ud)))
        cls.ours_log = err.getvalue()

    def test_spool_calls(self):
        self.assertEqual(set(self.ours["spool"]), set(self.real["spool"]))
        for name, real in self.real["spool"].items():
            with self.subTest(name):
                self.assertEqual(self.ours["spool"][name], real)

    def test_dispatch(self):
        self.assertEqual(set(self.ours["dispatch"]), set(self.real["dispatch"]))
        for name, real in self.real["dispatch"].items():
            ours = self.ours["dispatch"][name]
            with self.subTest(name):
                if name in DIFFERENCES:
                    want_real, want_ours = DIFFERENCES[name]
                    self.assertEqual(real[:2], want_real, "uwsgidecorators changed")
                    self.assertEqual(ours[:2], want_ours)
                else:
                    self.assertEqual(ours, real)
        self.assertIn("'blob': b'\\xff'", self.ours["dispatch"]["invalid UTF-8 value"][2][0])
        self.assertIn("which no imported module registered", self.ours_log)

    def test_every_public_name(self):
        self.assertEqual(sorted(set(self.real["names"]) - set(self.ours["names"])), [])


if __name__ == "__main__":
    unittest.main()
