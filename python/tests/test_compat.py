"""gospool.compat against real uwsgidecorators.

The ground truth is python/testdata/uwsgi-decorators: spool files written by
uWSGI 2.0.21's real uwsgidecorators (Debian), and what its real
manage_spool_request did with each in a real uWSGI spooler (MANIFEST.md).
The same calls are made here with gospool.compat's decorators, and the same
files dispatched with its manage_spool_request.
"""

import ast
import importlib.util
import io
import json
import os
import pickle
import sys
import tempfile
import threading
import unittest
from contextlib import redirect_stderr

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

from gospool import compat  # noqa: E402

FIXTURES = os.path.join(PYTHON_DIR, "testdata", "uwsgi-decorators")
CAPTURE = os.path.join(FIXTURES, "capture")


def load_manifest():
    with open(os.path.join(FIXTURES, "manifest.json")) as f:
        return json.load(f)


def unshow(s):
    if s is None:
        return b""
    if s.startswith("hex:"):
        return bytes.fromhex(s[4:])
    return s.encode()


def parse_spool(data):
    """(pairs, body) of a spool file."""
    n = data[1] | (data[2] << 8)
    pairs, off, end = [], 4, 4 + n
    while off < end:
        kl = int.from_bytes(data[off:off + 2], "little")
        k = data[off + 2:off + 2 + kl]
        off += 2 + kl
        vl = int.from_bytes(data[off:off + 2], "little")
        v = data[off + 2:off + 2 + vl]
        off += 2 + vl
        pairs.append((k, v))
    return pairs, data[end:]


def uwsgi_env(task_name, data):
    """The dict a uWSGI 2.0.21 spooler passes to uwsgi.spooler."""
    pairs, body = parse_spool(data)
    env = {"spooler_task_name": task_name.encode()}
    for k, v in pairs:
        env[k] = v
    if body:
        env["body"] = body
    return env


class Modules:
    """Fresh compat modules in sys.modules, and capture/ud_tasks.py (the
    functions the fixtures were made with) imported against them."""

    def __init__(self, spooler=False):
        self.spooled = []
        self.saved = {k: sys.modules.get(k) for k in ("uwsgi", "uwsgidecorators", "ud_tasks")}
        self.saved_meta = list(sys.meta_path)
        self.uwsgi = compat.install_modules(spooler=spooler, dirs=["/tmp/gospool-test-spool"], replace=True)
        self.uwsgi.spool = self._spool  # uwsgidecorators looks uwsgi.spool up at each call
        spec = importlib.util.spec_from_file_location("ud_tasks", os.path.join(CAPTURE, "ud_tasks.py"))
        self.ud_tasks = importlib.util.module_from_spec(spec)
        sys.modules["ud_tasks"] = self.ud_tasks
        spec.loader.exec_module(self.ud_tasks)
        self.ud = sys.modules["uwsgidecorators"]

    def _spool(self, *args, **kwargs):
        d = args[0] if args else kwargs
        self.spooled.append(d)
        return b"/tmp/gospool-test-spool/uwsgi_spoolfile_on_test"

    def close(self):
        for k, v in self.saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        sys.meta_path[:] = self.saved_meta


class TestDecoratorsProduceWhatUwsgidecoratorsWrites(unittest.TestCase):
    def setUp(self):
        self.m = Modules()
        self.addCleanup(self.m.close)
        self.manifest = load_manifest()

    def test_every_fixture_call(self):
        for case in self.manifest["cases"]:
            with self.subTest(case=case["case"]):
                self.m.spooled.clear()
                eval(case["call"], {"ud": self.m.ud_tasks, "uwsgi": self.m.uwsgi})
                self.assertEqual(len(self.m.spooled), 1)
                d = dict(self.m.spooled[0])
                # uwsgi.spool (gospool.spool) takes b'body' out as the body.
                body = d.pop(b"body", b"")
                got = list(d.items())
                with open(os.path.join(FIXTURES, case["file"]), "rb") as f:
                    want_pairs, want_body = parse_spool(f.read())
                self.assertEqual(body, want_body)
                self.assertEqual([k for k, _ in got], [k for k, _ in want_pairs], "keys and their order")
                for (k, v), (_, w) in zip(got, want_pairs):
                    self.assertIsInstance(k, bytes)
                    self.assertIsInstance(v, bytes, k)
                    if k in (b"args", b"kwargs"):
                        # Pickled with the interpreter's default protocol:
                        # the same bytes when it is the fixtures' (4).
                        self.assertEqual(v[1], pickle.DEFAULT_PROTOCOL, "pickle protocol")
                        self.assertEqual(pickle.loads(v), pickle.loads(w))
                        if pickle.DEFAULT_PROTOCOL == w[1]:
                            self.assertEqual(v, w)
                    else:
                        self.assertEqual(v, w, k)
                # And the manifest says the same.
                self.assertEqual(case["pairs"][0][0], got[0][0].decode())

    def test_registration(self):
        ud, t = self.m.ud, self.m.ud_tasks
        for name in ("hello", "forever", "raw", "send", "poll", "rawargs"):
            self.assertIn(name, ud.spooler_functions)
            f = ud.spooler_functions[name]
            self.assertEqual(f.__name__, name)
            # f.spool enqueues too (the older spelling).
            self.assertTrue(callable(f.spool))
        self.assertIs(self.m.uwsgi.spooler, ud.manage_spool_request)
        # .f is the function itself; the decorated object, its .spool and
        # the function's .spool all spool the same task.
        self.assertIs(t.hello.f, ud.spooler_functions["hello"])
        self.assertEqual((t.send.pass_arguments, t.hello.pass_arguments), (True, False))
        for call in (t.hello, t.hello.spool, ud.spooler_functions["hello"].spool):
            self.m.spooled.clear()
            call({"x": "y"})
            self.assertEqual(self.m.spooled, [{b"ud_spool_func": b"hello", b"ud_spool_ret": b"-2", b"x": b"y"}])
        # What each decorator writes as ud_spool_ret.
        for f, want in ((t.hello, b"-2"), (t.forever, b"-1"), (t.raw, None)):
            self.m.spooled.clear()
            f({})
            self.assertEqual(self.m.spooled[0].get(b"ud_spool_ret"), want, f)

    def test_spool_decorate(self):
        ud = self.m.ud

        def job(env):
            pass

        def job2(a):
            pass

        ud.spool_decorate(job)({"k": "v"})
        ud.spool_decorate(ud_spool_ret=-2)(job)()
        ud.spool_decorate(pass_arguments=True)(job2)(1)
        self.assertEqual(self.m.spooled[0], {b"ud_spool_func": b"job", b"k": b"v"})
        self.assertEqual(self.m.spooled[1], {b"ud_spool_func": b"job", b"ud_spool_ret": b"-2"})
        self.assertEqual(list(self.m.spooled[2]), [b"ud_spool_func", b"args", b"kwargs"])
        self.assertIs(ud.spooler_functions["job2"], job2)

    def test_str_only_encoded(self):
        # Other values pass through unchanged, for uwsgi.spool to refuse.
        self.m.ud_tasks.raw({"n": 5, "s": "é"})
        self.assertEqual(self.m.spooled[-1], {b"ud_spool_func": b"raw", b"n": 5, b"s": "é".encode()})

    def test_no_spooler_option_raises_like_uwsgidecorators(self):
        del self.m.uwsgi.opt["spooler"]

        def f(env):
            pass

        # uWSGI's module raises a plain Exception here: RuntimeError is one.
        for deco in (self.m.ud.spool, self.m.ud.spoolforever(pass_arguments=True)):
            with self.assertRaisesRegex(Exception, r"^@spool\w* f: no spooler is configured"):
                deco(f)
        self.assertNotIn("f", self.m.ud.spooler_functions)


class TestDispatchLikeUwsgidecorators(unittest.TestCase):
    """manage_spool_request on the fixture files: what real
    uwsgidecorators did, except the documented fixes."""

    # case -> (what compat's dispatch does instead, why)
    FIXED = {
        "spool-bytes-value": "#2080: the non-UTF-8 value reaches the function as bytes",
        "args-binary-body": "#2261: a binary body does not stop the call",
        "raw-spool-no-func": "#543: no ud_spool_func is SPOOL_IGNORE",
    }

    def setUp(self):
        self.m = Modules(spooler=True)
        self.addCleanup(self.m.close)
        self.record = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)
        self.record.close()
        self.addCleanup(os.unlink, self.record.name)
        old = os.environ.get("UD_RECORD")
        os.environ["UD_RECORD"] = self.record.name
        self.addCleanup(lambda: os.environ.pop("UD_RECORD") if old is None else os.environ.__setitem__("UD_RECORD", old))

    def calls(self):
        with open(self.record.name) as f:
            return [json.loads(line) for line in f]

    def dispatch(self, case):
        with open(os.path.join(FIXTURES, case["file"]), "rb") as f:
            env = uwsgi_env(case["task"], f.read())
        self.m.ud_tasks.CURRENT = case["task"]
        open(self.record.name, "w").close()
        return self.m.uwsgi.spooler(env)

    def test_same_as_real(self):
        for case in load_manifest()["cases"]:
            if case["case"] in self.FIXED:
                continue
            truth = case["uwsgidecorators"]
            with self.subTest(case=case["case"]):
                if "raise" in truth["outcome"]:
                    exc = truth["outcome"]["raise"].split(":")[0]
                    with self.assertRaises(Exception) as cm:
                        self.dispatch(case)
                    self.assertEqual(type(cm.exception).__name__, exc)
                else:
                    self.assertEqual(repr(self.dispatch(case)), truth["outcome"]["return"])
                calls = self.calls()
                if truth["called"] is None:
                    self.assertEqual(calls, [])
                    continue
                self.assertEqual(len(calls), 1)
                self.assertEqual(calls[0]["call"], truth["called"]["func"])
                self.assertEqual(calls[0]["args"], truth["called"]["args"])
                self.assertEqual(calls[0]["kwargs"], truth["called"]["kwargs"])

    def case(self, name):
        return next(c for c in load_manifest()["cases"] if c["case"] == name)

    def test_binary_value_reaches_the_function_as_bytes(self):
        c = self.case("spool-bytes-value")
        self.assertIn("UnicodeDecodeError", c["uwsgidecorators"]["outcome"]["raise"])
        self.assertEqual(self.dispatch(c), -2)
        (call,) = self.calls()
        env = ast.literal_eval(call["args"])[0]
        self.assertEqual(env["blob"], b"\xff\x00\x01")
        self.assertEqual(env["ok"], "plain")  # valid UTF-8: the same str as under uWSGI
        self.assertEqual(env["ud_spool_func"], "hello")

    def test_binary_body_does_not_stop_pass_arguments(self):
        c = self.case("args-binary-body")
        self.assertIn("UnicodeDecodeError", c["uwsgidecorators"]["outcome"]["raise"])
        self.assertEqual(self.dispatch(c), -2)
        (call,) = self.calls()
        self.assertEqual((call["call"], call["args"]), ("send", "('carol', 'report')"))

    def test_binary_body_reaches_raw_function_as_bytes(self):
        got = []
        self.m.ud.spooler_functions["catch"] = lambda env: got.append(env) or -2
        env = {"spooler_task_name": b"t", b"ud_spool_func": b"catch", b"k": "é".encode(), "body": b"\x00\xff"}
        self.assertEqual(self.m.uwsgi.spooler(env), -2)
        self.assertEqual(got, [{"spooler_task_name": "t", "ud_spool_func": "catch", "k": "é", "body": b"\x00\xff"}])
        # A valid UTF-8 body is the str uWSGI gives.
        env["body"] = "héllo".encode()
        self.m.uwsgi.spooler(env)
        self.assertEqual(got[-1]["body"], "héllo")

    def test_unknown_function_is_ignored_with_a_log_line(self):
        c = self.case("raw-spool-no-func")
        self.assertIn("KeyError", c["uwsgidecorators"]["outcome"]["raise"])
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(self.dispatch(c), 0)
            self.assertEqual(self.m.uwsgi.spooler({"spooler_task_name": b"x", b"ud_spool_func": b"nope"}), 0)
        self.assertIn("has no ud_spool_func: SPOOL_IGNORE", err.getvalue())
        self.assertIn("names ud_spool_func 'nope', which no imported module registered", err.getvalue())
        self.assertEqual(self.calls(), [])

    def test_raw_function_may_set_its_result_in_env(self):
        # The result code is read from the task's dict after the call, so a
        # @spoolraw function can set ud_spool_ret instead of returning it.
        def decides(env):
            env["ud_spool_ret"] = "-1"
            return -2

        self.m.ud.spooler_functions["decides"] = decides
        self.assertEqual(self.m.uwsgi.spooler({"spooler_task_name": b"t", b"ud_spool_func": b"decides"}), -1)

    def test_exceptions_propagate(self):
        def boom(env):
            raise ValueError("x")

        self.m.ud.spooler_functions["boom"] = boom
        with self.assertRaises(ValueError):
            self.m.uwsgi.spooler({"spooler_task_name": b"t", b"ud_spool_func": b"boom"})
        # args without kwargs: a KeyError, as uwsgidecorators.
        with self.assertRaises(KeyError):
            self.m.uwsgi.spooler({"spooler_task_name": b"t", b"ud_spool_func": b"boom", b"args": pickle.dumps(())})


class TestUwsgiModule(unittest.TestCase):
    def test_constants_and_identity(self):
        u, ud = compat.make_modules(spooler=True, dirs=["/a", b"/b"])
        self.assertEqual((u.SPOOL_OK, u.SPOOL_RETRY, u.SPOOL_IGNORE), (-2, -1, 0))
        self.assertIs(u.i_am_the_spooler(), True)
        self.assertEqual(u.spoolers, (b"/a", b"/b"))
        self.assertEqual(u.opt["spooler"], [b"/a", b"/b"])
        self.assertNotEqual(u.masterpid(), 0)
        self.assertEqual(u.worker_id(), 0)
        u2, _ = compat.make_modules(dirs=["/a"])
        self.assertIsNone(u2.i_am_the_spooler())  # None, not False, as uWSGI
        self.assertEqual(u2.opt["spooler"], b"/a")
        self.assertTrue(u2.__gospool_compat__)

    def test_dirs_from_environment(self):
        old = {k: os.environ.pop(k, None) for k in ("GOSPOOL_SPOOLER_DIRS", "GOSPOOL_SPOOLER_DIR")}
        try:
            os.environ["GOSPOOL_SPOOLER_DIRS"] = "/x:/y"
            u, _ = compat.make_modules()
            self.assertEqual(u.spoolers, (b"/x", b"/y"))
            del os.environ["GOSPOOL_SPOOLER_DIRS"]
            os.environ["GOSPOOL_SPOOLER_DIR"] = "/z"
            u, _ = compat.make_modules()
            self.assertEqual(u.spoolers, (b"/z",))
            del os.environ["GOSPOOL_SPOOLER_DIR"]
            u, _ = compat.make_modules()
            self.assertEqual(u.spoolers, ())
            self.assertIn("spooler", u.opt)  # so that the decorators work
        finally:
            for k, v in old.items():
                if v is not None:
                    os.environ[k] = v
                else:
                    os.environ.pop(k, None)

    def test_spool_arguments_like_uwsgi(self):
        u, _ = compat.make_modules(dirs=["/a"])
        for bad in ((), ("x",), ([],)):
            with self.assertRaisesRegex(ValueError, "The argument of spooler callable must be a dictionary"):
                u.spool(*bad)
        self.assertIs(u.send_to_spooler, u.spool)

    def test_spool_delegates_to_gospool(self):
        import gospool

        if not hasattr(gospool, "spool"):
            self.skipTest("gospool.spool is not there yet")
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(d))
        if hasattr(gospool, "configure"):
            gospool.configure([d])
            self.addCleanup(gospool.close)
        u, _ = compat.make_modules(dirs=[d])
        path = u.spool({b"k": b"v", b"body": b"B"})
        self.assertIsInstance(path, bytes)
        self.assertEqual(u.parsefile(os.fsdecode(path)), {b"k": b"v"})
        self.assertEqual(u.spooler_jobs(), [path])
        with self.assertRaises(ValueError):
            u.spool(k="v")  # str keys: refused, as uWSGI on py3

    def test_parsefile(self):
        u, _ = compat.make_modules(dirs=[])
        for case in load_manifest()["cases"]:
            path = os.path.join(FIXTURES, case["file"])
            with open(path, "rb") as f:
                pairs, _ = parse_spool(f.read())
            self.assertEqual(u.parsefile(path), dict(pairs))
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "f")
            for data, want in ((b"\x00\x00\x00\x00", {}), (b"\x11\x05\x00\x00\x01\x00k\x00\x00", {b"k": b""}),
                               (b"\x11\x09\x00\x00\x01\x00k\x05\x00v", None), (b"\x11", None),
                               (b"\x05\x00\x00\x00", None)):
                with open(p, "wb") as f:
                    f.write(data)
                self.assertEqual(u.parsefile(p), want, data)
            self.assertIsNone(u.parsefile(os.path.join(d, "missing")))
            self.assertEqual(u.spooler_get_task(p), None)

    def test_install_keeps_a_foreign_uwsgi(self):
        saved = {k: sys.modules.get(k) for k in ("uwsgi", "uwsgidecorators")}
        saved_meta = list(sys.meta_path)
        try:
            import types

            real = types.ModuleType("uwsgi")
            sys.modules["uwsgi"] = real
            self.assertIs(compat.install_modules(), real)
            mine = compat.install_modules(replace=True)
            self.assertIsNot(mine, real)
            self.assertIs(sys.modules["uwsgi"], mine)
            # uwsgidecorators takes uwsgi.spooler when imported, as uWSGI's.
            def f(env):
                return -2

            mine.spooler = f
            import uwsgidecorators

            self.assertIs(mine.spooler, uwsgidecorators.manage_spool_request)
            self.assertTrue(uwsgidecorators.__gospool_compat__)
            mine.spooler = f  # and a later assignment wins
            self.assertIs(mine.spooler, f)
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
            sys.meta_path[:] = saved_meta

    def test_spooler_absent_until_set(self):
        saved = {k: sys.modules.get(k) for k in ("uwsgi", "uwsgidecorators")}
        saved_meta = list(sys.meta_path)
        try:
            u = compat.install_modules(replace=True)
            self.assertFalse(hasattr(u, "spooler"))
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
            sys.meta_path[:] = saved_meta


class TestOtherDecorators(unittest.TestCase):
    # Every public name of uWSGI 2.0.21's uwsgidecorators.
    NAMES = ["postfork", "spool", "spoolforever", "spoolraw", "spool_decorate", "mulefunc", "mule_msg_dispatcher",
             "rpc", "farm_loop", "farm", "mule_brain", "mule_brainloop", "mule", "muleloop", "mulemsg_loop",
             "mulemsg", "signal", "timer", "cron", "rbtimer", "filemon", "erlang", "lock", "thread", "harakiri",
             "spooler_functions", "mule_functions", "postfork_chain", "get_free_signal", "manage_spool_request",
             "postfork_chain_hook", "uwsgi", "pickle", "partial", "Thread", "sys"]

    def test_all_names(self):
        _, ud = compat.make_modules(dirs=["/a"])
        for n in self.NAMES:
            self.assertTrue(hasattr(ud, n), n)

    def test_import_time_use(self):
        u, ud = compat.make_modules(spooler=True, dirs=["/a"])
        ran = []
        err = io.StringIO()
        with redirect_stderr(err):
            @ud.timer(10)
            def t1(n):
                pass

            @ud.cron(0, 0, -1, -1, -1, target="spooler")
            def c1(n):
                pass

            @ud.rbtimer(5)
            def r1(n):
                pass

            @ud.filemon("/tmp")
            def f1(n):
                pass

            @ud.signal(3)
            def s1(n):
                pass

            @ud.rpc("x")
            def rp():
                return 1

            @ud.erlang("e")
            def er():
                pass

            @ud.postfork
            def pf():
                ran.append("postfork")

            @ud.postfork(2)
            def pf2():
                ran.append("postfork2")

            @ud.mule(1)
            def m1():
                ran.append("mule")

            @ud.muleloop(1)
            def m2():
                ran.append("muleloop")

            @ud.mulemsg(1)
            def m3(msg):
                ran.append("mulemsg")

            @ud.farm("f")
            def fa(msg):
                ran.append("farm")

            @ud.mulefunc
            def mf(x):
                ran.append("mulefunc")

            @ud.lock
            def lk():
                return "locked"

            @ud.harakiri(3)
            def hk():
                return "hk"

            @ud.thread
            def th():
                ran.append("thread")

        for f in (t1, c1, r1, f1, s1, rp, er):
            self.assertTrue(callable(f))
        u.post_fork_hook()
        self.assertEqual(ran, ["postfork"])  # worker 2's and the mules' never run
        self.assertIsNone(lk())  # uwsgidecorators' lock skips the call in the spooler
        self.assertEqual(hk(), "hk")
        with self.assertRaises(RuntimeError):
            mf(1)
        for w in ("@timer(10) t1", "@cron c1", "@rbtimer(5) r1", "@filemon('/tmp') f1", "register_signal(3",
                  "register_rpc", "@harakiri(3) hk"):
            self.assertIn(w, err.getvalue())
        u2, ud2 = compat.make_modules(spooler=False, dirs=["/a"])

        @ud2.lock
        def lk2():
            return "locked"

        self.assertEqual(lk2(), "locked")

    def test_postfork_targets(self):
        u, ud = compat.make_modules(dirs=["/a"])
        ran = []

        def every():
            ran.append("every")

        def worker0():
            ran.append("worker0")

        def worker2():
            ran.append("worker2")

        # Each form leaves a callable that runs the function when called.
        self.assertIs(ud.postfork(every), every)
        self.assertIs(ud.postfork(0)(worker0), worker0)
        self.assertIs(ud.postfork(2)(worker2), worker2)
        self.assertEqual(len(ud.postfork_chain), 3)
        u.post_fork_hook()
        self.assertEqual(ran, ["every", "worker0"])  # worker_id() is 0: worker 2's never runs

    def test_mule_functions(self):
        u, ud = compat.make_modules(dirs=["/a"])

        def add(a, b=0):
            return a + b

        def loop():
            pass

        sent = ud.mulefunc(3)(add)
        self.assertIs(ud.mule_functions["add"], add)
        with self.assertRaisesRegex(RuntimeError, "no mules"):
            sent(1, b=2)
        # The message a mulefunc call sends, run by the dispatcher a mule
        # would run it with.
        msgs = []
        u.mule_msg = lambda msg, mule: msgs.append((msg, mule))
        sent(1, b=2)
        ((msg, mule),) = msgs
        self.assertEqual(mule, 3)
        self.assertIs(u.mule_msg_hook, ud.mule_msg_dispatcher)
        self.assertEqual(ud.mule_msg_dispatcher(msg), 3)
        self.assertIsNone(ud.mule_msg_dispatcher(pickle.dumps({"service": "other"})))
        # Mule and farm functions stay callable, and never run here.
        for deco in (ud.mule(1), ud.muleloop(1), ud.mulemsg(1), ud.farm("f")):
            self.assertIs(deco(loop), loop)
        u.post_fork_hook()
        self.assertEqual(ud.postfork_chain, [])

    def test_free_signal(self):
        u, ud = compat.make_modules(dirs=["/a"])
        with redirect_stderr(io.StringIO()):
            self.assertEqual(ud.get_free_signal(), 0)
            ud.signal(0)(lambda n: None)
            ud.signal(1, target="workers")(lambda n: None)
            self.assertEqual(ud.get_free_signal(), 2)
            for n in range(2, 256):
                u.register_signal(n, "", print)
        with self.assertRaisesRegex(RuntimeError, "every uWSGI signal number"):
            ud.get_free_signal()

    def test_thread(self):
        _, ud = compat.make_modules(dirs=["/a"])
        done = threading.Event()
        got = []

        def work(a, b=None):
            got.append((a, b, threading.current_thread() is not threading.main_thread()))
            done.set()

        self.assertIs(ud.thread(work)(1, b=2), work)
        self.assertTrue(done.wait(30))
        self.assertEqual(got, [(1, 2, True)])

    def test_uwsgi_calls_without_effect_warn(self):
        u, _ = compat.make_modules(dirs=["/a"])
        err = io.StringIO()
        with redirect_stderr(err):
            u.set_user_harakiri(10)
            u.set_user_harakiri(0)
        self.assertEqual(err.getvalue().count("set_user_harakiri"), 1)

    def test_task_info(self):
        self.assertIsNone(compat.task_info())


if __name__ == "__main__":
    unittest.main()
