# Run as a uWSGI mule: makes the calls of CASES with the real decorators
# and writes {case: spool file path} to $UD_PATHS, then $UD_PATHS.done.
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uwsgi  # noqa: E402
import ud_tasks  # noqa: E402
from cases import CASES  # noqa: E402

paths = {}
for name, call in CASES:
    try:
        p = eval(call, {"ud": ud_tasks, "uwsgi": uwsgi})
        paths[name] = p.decode() if isinstance(p, bytes) else p
    except Exception:
        paths[name] = "ERROR: " + traceback.format_exc()
with open(os.environ["UD_PATHS"], "w") as f:
    json.dump(paths, f, indent=1)
open(os.environ["UD_PATHS"] + ".done", "w").close()
