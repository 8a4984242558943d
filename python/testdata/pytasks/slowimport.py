"""A task module whose import takes SLOWIMPORT_SECONDS (default 1.5 s),
like a large Django app's."""
import os
import time

time.sleep(float(os.environ.get("SLOWIMPORT_SECONDS", "1.5")))
