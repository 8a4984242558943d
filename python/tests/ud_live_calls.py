"""The same calls against a uwsgidecorators module, real or gospool's (not
a test module; test_compat_live.py runs it both ways and compares).

``run(uwsgi, ud)`` decorates functions with ``ud``, calls them with
uwsgi.spool replaced by a recorder, feeds hand-made task dicts to
``ud.manage_spool_request``, and returns what happened as JSON-able data:
repr() of every dict handed to uwsgi.spool, and per dispatch either
["return", repr] or ["raise", exception type name], plus what the task
function received.

Under uWSGI (``uwsgi --plugin python3 --spooler DIR --pyrun THIS``) with
UD_LIVE_OUT set, it runs against uWSGI's own modules and writes the result
there.
"""

import json
import os
import pickle

# Keyword arguments, first positional dicts and task dicts that the
# fixtures in python/testdata/uwsgi-decorators do not cover.
SPOOL_CALLS = [
    ("iterable of pairs", "plain", (([("k", "v"), ("k2", "v2")],), {})),
    ("bytes and str keys", "plain", (({b"bk": b"bv", "sk": "sv"},), {})),
    ("dict renames the function", "plain", (({"ud_spool_func": "other", "k": "v"},), {})),
    ("kwargs override the result", "plain", (({"k": "v"},), {"ud_spool_ret": "-1"})),
    ("values that are not str", "plain", (({"n": 5, "none": None, "l": [1, 2], "b": bytearray(b"x")},), {})),
    ("bytes key and str key collide", "plain", (({b"k": b"first", "k": "second"},), {})),
    ("empty call", "plain", ((), {})),
    ("every lifted keyword", "args", ((1, "two"), {"message_dict": "m", "spooler": b"/s", "priority": "3",
                                                   "at": b"123", "body": "B", "extra": [1]})),
    ("lifted bytes body", "args", ((), {"body": b"\x00\xff"})),
    ("no arguments", "args", ((), {})),
    ("forever with arguments", "forever_args", ((None,), {"k": {"nested": True}})),
    ("raw with arguments", "raw_args", (("x",), {"priority": b"9"})),
    ("forever plain", "forever", (({"k": "v"},), {})),
    ("raw plain", "raw", (({"k": "v"},), {})),
    ("decorate with empty parentheses", "parens", (({"k": "v"},), {})),
    ("spool_decorate bare", "decorate", (({"k": "v"},), {})),
]

# (name, task dict as a uWSGI spooler hands it, what the raw function returns
# or does)
DISPATCHES = [
    ("returns int", {b"ud_spool_func": b"target", b"do": b"-2"}),
    ("returns str digits", {b"ud_spool_func": b"target", b"do": b"'5'"}),
    ("returns None", {b"ud_spool_func": b"target", b"do": b"None"}),
    ("returns a float", {b"ud_spool_func": b"target", b"do": b"1.9"}),
    ("ud_spool_ret wins", {b"ud_spool_func": b"target", b"ud_spool_ret": b"-1", b"do": b"-2"}),
    ("ud_spool_ret not a number", {b"ud_spool_func": b"target", b"ud_spool_ret": b"abc", b"do": b"-2"}),
    ("function sets ud_spool_ret", {b"ud_spool_func": b"target", b"do": b"set"}),
    ("function raises", {b"ud_spool_func": b"target", b"do": b"raise"}),
    ("str body", {b"ud_spool_func": b"target", b"do": b"-2", "body": "héllo".encode()}),
    ("args and kwargs", {b"ud_spool_func": b"withargs", b"other": b"o",
                         b"args": pickle.dumps((1, b"\xff")), b"kwargs": pickle.dumps({"k": None})}),
    ("args without kwargs", {b"ud_spool_func": b"withargs", b"args": pickle.dumps(())}),
    ("kwargs without args", {b"ud_spool_func": b"target", b"kwargs": b"plain", b"do": b"-2"}),
    ("args not a pickle", {b"ud_spool_func": b"withargs", b"args": b"nope", b"kwargs": pickle.dumps({})}),
    ("args pickles a list", {b"ud_spool_func": b"withargs", b"args": pickle.dumps([7]),
                             b"kwargs": pickle.dumps({})}),
    # The documented differences (compat.py, differences 1 and 2).
    ("unknown function", {b"ud_spool_func": b"nobody"}),
    ("no function", {b"task": b"x"}),
    ("invalid UTF-8 value", {b"ud_spool_func": b"target", b"do": b"-2", b"blob": b"\xff"}),
]


def run(uwsgi, ud):
    spooled = []
    uwsgi.spool = lambda *args, **kwargs: spooled.append(repr(args[0] if args else kwargs)) or b"recorded"
    received = []

    def target(env):
        received.append(repr(env))
        do = env.get("do")
        if do == "set":
            env["ud_spool_ret"] = "-1"
            return -2
        if do == "raise":
            raise LookupError("from the task")
        return eval(do)

    def withargs(*args, **kwargs):
        received.append(repr((args, kwargs)))
        return -2

    def plain(env):
        pass

    def args(*a, **k):
        pass

    def forever_args(*a, **k):
        pass

    def raw_args(*a, **k):
        pass

    def forever(env):
        pass

    def raw(env):
        pass

    def parens(env):
        pass

    def decorate(env):
        pass

    decorated = {
        "plain": ud.spool(plain),
        "args": ud.spool(pass_arguments=True)(args),
        "forever_args": ud.spoolforever(pass_arguments=True)(forever_args),
        "raw_args": ud.spoolraw(pass_arguments=True)(raw_args),
        "forever": ud.spoolforever(forever),
        "raw": ud.spoolraw(raw),
        "parens": ud.spool()(parens),
        "decorate": ud.spool_decorate(decorate),
    }
    ud.spoolraw(target)
    ud.spoolraw(withargs)

    out = {"spool": {}, "dispatch": {}, "names": sorted(n for n in dir(ud) if not n.startswith("_"))}
    for name, which, (a, k) in SPOOL_CALLS:
        del spooled[:]
        try:
            ret = decorated[which](*a, **k)
            out["spool"][name] = ["return", repr(ret), list(spooled)]
        except Exception as e:
            out["spool"][name] = ["raise", type(e).__name__, list(spooled)]
    # The older API: the function's own .spool, and the decorated object's.
    for name, call in (("function.spool", plain.spool), ("decorated.spool", decorated["plain"].spool)):
        del spooled[:]
        call({"k": "v"})
        out["spool"][name] = ["return", "", list(spooled)]

    for name, task in DISPATCHES:
        del received[:]
        env = {"spooler_task_name": b"uwsgi_spoolfile_on_test"}
        env.update(task)
        try:
            ret = ud.manage_spool_request(env)
            out["dispatch"][name] = ["return", repr(ret), list(received)]
        except Exception as e:
            out["dispatch"][name] = ["raise", type(e).__name__, list(received)]
    return out


if __name__ == "__main__" and os.environ.get("UD_LIVE_OUT"):
    import uwsgi as _uwsgi
    import uwsgidecorators as _ud

    with open(os.environ["UD_LIVE_OUT"], "w") as f:
        json.dump(run(_uwsgi, _ud), f, indent=1)
