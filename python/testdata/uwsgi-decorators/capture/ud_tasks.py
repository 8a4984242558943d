"""Task functions decorated with uWSGI's real uwsgidecorators, imported by
capture.py both where the tasks are spooled (a uWSGI mule) and where they
run (a uWSGI spooler), to record ground truth for gospool.compat.

Every call is appended to $UD_RECORD as one JSON line: the function's name,
repr() of its positional and keyword arguments, and the task's file name.
"""
import json
import os

import uwsgi
from uwsgidecorators import spool, spoolforever, spoolraw


# The running task's file name, set by spooler_import.py.
CURRENT = None


def _record(func, args, kwargs):
    path = os.environ.get("UD_RECORD")
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps({"task": CURRENT, "call": func, "args": repr(args), "kwargs": repr(kwargs)}) + "\n")


@spool
def hello(env):
    _record("hello", (env,), {})


@spoolforever
def forever(env):
    _record("forever", (env,), {})


@spoolraw
def raw(env):
    _record("raw", (env,), {})
    r = env.get("ret")
    return None if r == "none" else int(r)


@spool(pass_arguments=True)
def send(to, subject, retries=3, tags=None):
    _record("send", (to, subject), {"retries": retries, "tags": tags})


@spoolforever(pass_arguments=True)
def poll(n, label=None):
    _record("poll", (n,), {"label": label})


@spoolraw(pass_arguments=True)
def rawargs(*args, **kwargs):
    _record("rawargs", args, kwargs)
    return uwsgi.SPOOL_OK
