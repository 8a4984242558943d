"""The app's spooler tasks, written for uWSGI's spooler and left unchanged
for gospool: no gospool import anywhere in this file.

Three kinds, the three ways uWSGI apps write tasks:

- send_welcome: @spool(pass_arguments=True), called like a function;
- heartbeat: @spoolforever, runs again and again (uWSGI retries it forever);
- a raw `uwsgi.spooler` callable for tasks spooled with uwsgi.spool(dict),
  here thumbnails whose image travels in the task's body.

Each task appends one line to tasks.log in $EXAMPLE_DIR (README.md makes
that directory with mktemp) so that you, and the tests, can see it ran.
"""
import hashlib
import os
import tempfile
import time

import uwsgi
from uwsgidecorators import spool, spoolforever, manage_spool_request

DIR = os.environ.get("EXAMPLE_DIR") or tempfile.gettempdir()
OUT = os.path.join(DIR, "tasks.log")


def record(line):
    with open(OUT, "a") as f:
        f.write("%s pid=%d\n" % (line, os.getpid()))


@spool(pass_arguments=True)
def send_welcome(email, lang="en", fail_first=""):
    """Sends a welcome email (here: writes a line). fail_first, when not
    empty, names this one signup: its first attempt raises, to show a retry,
    and a marker file by that name makes the next attempt succeed. (A name
    per signup, not the email, so that every signup asked to fail does.)"""
    if fail_first:
        marker = os.path.join(DIR, "failed-once-" + fail_first)
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("SMTP server not answering for %s" % email)
    seconds = float(os.environ.get("EXAMPLE_TASK_SECONDS", "0"))
    if seconds:
        record("working email=%s" % email)
        time.sleep(seconds)
    record("welcome email=%s lang=%s" % (email, lang))


@spoolforever
def heartbeat(env):
    """Runs forever: uWSGI (and gospool) run it again after each run."""
    record("heartbeat name=%s" % env.get("name"))


def raw_spooler(env):
    """The app's own spooler callable. uwsgidecorators installs its
    dispatcher as uwsgi.spooler; the app keeps it for decorated tasks and
    handles its raw tasks itself, a common pattern."""
    if b"ud_spool_func" in env:
        return manage_spool_request(env)
    if env.get(b"kind") == b"thumbnail":
        body = env.get("body", b"")
        record("thumbnail name=%s bytes=%d sha256=%s" % (
            env[b"name"].decode(), len(body), hashlib.sha256(body).hexdigest()[:16]))
        return uwsgi.SPOOL_OK
    return uwsgi.SPOOL_IGNORE


uwsgi.spooler = raw_spooler
