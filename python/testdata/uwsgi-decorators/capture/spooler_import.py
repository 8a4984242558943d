# --spooler-import of the dispatch run: wraps uwsgidecorators'
# manage_spool_request to record each task's outcome in $UD_RECORD.
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uwsgi  # noqa: E402
import ud_tasks  # noqa: E402

_inner = uwsgi.spooler


def _rec(**kw):
    with open(os.environ["UD_RECORD"], "a") as f:
        f.write(json.dumps(kw) + "\n")


def _outer(env):
    name = env["spooler_task_name"].decode()
    ud_tasks.CURRENT = name
    try:
        ret = _inner(env)
    except BaseException as e:
        _rec(task=name, outcome="raise", exception="%s: %s" % (type(e).__name__, e))
        raise
    _rec(task=name, outcome="return", value=repr(ret))
    return ret


uwsgi.spooler = _outer
