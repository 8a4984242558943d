"""Task functions for the runner tests, written for uWSGI's spooler: they
use uwsgi and uwsgidecorators only, never gospool, and import unchanged
under gospool.compat.

Every call appends one JSON line to $PYTASKS_OUT/calls.jsonl.
"""
import json
import os
import sys
import time

import uwsgi
from uwsgidecorators import (cron, filemon, harakiri, lock, mule, mulefunc, postfork, rbtimer, rpc, signal,
                             spool, spoolforever, spoolraw, thread, timer)


def record(func, **kw):
    out = os.environ.get("PYTASKS_OUT")
    if not out:
        return
    kw.update(func=func, pid=os.getpid())
    line = (json.dumps(kw, sort_keys=True) + "\n").encode()
    fd = os.open(os.path.join(out, "calls.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _task(env):
    t = env.pop("spooler_task_name", None)
    return t.decode() if isinstance(t, bytes) else t


# The functions of the uwsgi-decorators fixtures (capture/ud_tasks.py), with
# the same names and signatures.


@spool
def hello(env):
    task = _task(env)
    record("hello", task=task, env=repr(env))


@spoolforever
def forever(env):
    task = _task(env)
    record("forever", task=task, env=repr(env))


@spoolraw
def raw(env):
    task = _task(env)
    record("raw", task=task, env=repr(env))
    r = env.get("ret")
    return None if r == "none" else int(r)


@spool(pass_arguments=True)
def send(to, subject, retries=3, tags=None):
    record("send", args=repr((to, subject)), kwargs=repr({"retries": retries, "tags": tags}))


@spoolforever(pass_arguments=True)
def poll(n, label=None):
    record("poll", args=repr((n,)), kwargs=repr({"label": label}))


@spoolraw(pass_arguments=True)
def rawargs(*args, **kwargs):
    record("rawargs", args=repr(args), kwargs=repr(kwargs))
    return uwsgi.SPOOL_OK


# The function of the uWSGI fixture 05-decorator-args, in
# spooler/spoolfile/testdata/uwsgi-spool.
@spool(pass_arguments=True)
def send_mail(to, subject, retries=3, tags=None):
    record("send_mail", args=repr((to, subject)), kwargs=repr({"retries": retries, "tags": tags}))


# ctl does what its `do` key says.
@spoolraw
def ctl(env):
    task = _task(env)
    do = env.get("do")
    record("ctl", task=task, do=do, body=repr(env.get("body")))
    if do == "ok":
        return uwsgi.SPOOL_OK
    if do == "retry":
        return uwsgi.SPOOL_RETRY
    if do == "ignore":
        return uwsgi.SPOOL_IGNORE
    if do == "code":
        return int(env["code"])
    if do == "none":
        return None
    if do == "true":
        return True
    if do == "false":
        return False
    if do == "raise":
        raise ValueError("boom: " + env.get("msg", ""))
    if do == "print":
        print("PRINTED " + env.get("msg", ""))
        sys.stderr.write("STDERR " + env.get("msg", "") + "\n")
        return uwsgi.SPOOL_OK
    if do == "exit":
        sys.exit(int(env.get("code", "1")))
    if do == "osexit":
        os._exit(int(env.get("code", "1")))
    if do == "kill":
        os.kill(os.getpid(), 9)
    if do == "hang":
        time.sleep(3600)
    if do == "touch":
        open(os.path.join(os.environ["PYTASKS_OUT"], "mark-" + env["mark"]), "w").close()
        return uwsgi.SPOOL_OK
    if do == "waitfor":
        mark = os.path.join(os.environ["PYTASKS_OUT"], "mark-" + env["mark"])
        for _ in range(2000):
            if os.path.exists(mark):
                return uwsgi.SPOOL_OK
            time.sleep(0.01)
        raise TimeoutError("no " + mark)
    if do == "flaky":
        # Fails on its first run, succeeds on the next.
        mark = os.path.join(os.environ["PYTASKS_OUT"], "flaky-" + env.get("id", ""))
        if not os.path.exists(mark):
            open(mark, "w").close()
            raise RuntimeError("flaky: first run fails")
        return uwsgi.SPOOL_OK
    raise KeyError("unknown do: %r" % (do,))


# Other uwsgidecorators that task modules use at import time: they must
# import and decorate, even though gospool does not run them.


@postfork
def after_fork():
    record("postfork", spooler=uwsgi.i_am_the_spooler())


@timer(30)
def every_30s(signum):
    pass


@rbtimer(30)
def every_30s_rb(signum):
    pass


@cron(0, 3, -1, -1, -1)
def nightly(signum):
    pass


@filemon("/tmp")
def on_tmp(signum):
    pass


@signal(17)
def on_17(signum):
    pass


@mulefunc
def in_a_mule(x):
    pass


@mule(1)
def mule_main():
    record("mule")


@rpc("hello_rpc")
def hello_rpc():
    return b"hi"


@lock
def locked():
    return "locked"


@thread
def in_thread():
    pass


@harakiri(10)
def limited():
    return "limited"
