"""A task module for uWSGI's raw spooler API: ``uwsgi.spooler = f``, no
uwsgidecorators, no gospool. Each call appends one JSON line to
$PYTASKS_OUT/calls.jsonl with repr() of the env it got."""
import json
import os

import uwsgi


def record(**kw):
    kw.update(pid=os.getpid())
    with open(os.path.join(os.environ["PYTASKS_OUT"], "calls.jsonl"), "a") as f:
        f.write(json.dumps(kw, sort_keys=True) + "\n")


def spooler(env):
    record(func="plain", task=env.get("spooler_task_name").decode(), env=repr(env),
           spooler=uwsgi.i_am_the_spooler())
    ret = env.get(b"ret", b"-2")
    return RETURNS[ret] if ret in RETURNS else int(ret)


# What the task returns, for the values of its "ret" key that are not ints.
RETURNS = {b"none": None, b"true": True, b"false": False, b"float": -2.0, b"str": "-2",
           b"huge": 2 ** 70, b"big": 2 ** 32 - 2}


uwsgi.spooler = spooler
