#!/usr/bin/env python3
"""Measure the cost of one spool call from Python: gospool.spool() handing a
small task to a running gospool spooler through the ring, and, when run
inside uWSGI, uWSGI's own uwsgi.spool() in the same process for comparison.

Outside uWSGI (a gospool spooler must serve DIR, so that the ring exists):

    go run ./cmd/gospool run --spooler /tmp/bench-spool --spooler-exec true &
    PYTHONPATH=python python3 python/tools/bench_spool.py --dir /tmp/bench-spool

Inside uWSGI (uwsgi.spool writes spool files into its first spooler
directory; gospool's spooler runs them too):

    uwsgi --plugin python3 --spooler-external /tmp/bench-spool \\
          --pyrun python/tools/bench_spool.py --pyargv "--dir /tmp/bench-spool"

Each call is timed alone with time.perf_counter_ns(); the two functions
are measured in alternating blocks so that both see the same machine. The
spooler keeps running the tasks meanwhile (its work competes for the CPU,
as in production). Prints p50, p90 and p99 in microseconds, where the
tasks went (ring or file), and the ratio uwsgi / gospool.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the package of this checkout

import gospool  # noqa: E402


def percentiles(ns):
    s = sorted(ns)

    def p(q):
        return s[min(len(s) - 1, int(len(s) * q))] / 1000.0
    return {"p50": p(0.50), "p90": p(0.90), "p99": p(0.99), "max": s[-1] / 1000.0, "n": len(s)}


def measure(fn, task, n, counts):
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        name = fn(task)
        out.append(clock() - t0)
        counts["ring" if name.startswith(b"ring:") else "file"] += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", help="spool directory (default: GOSPOOL_SPOOLER_DIRS, or uWSGI's first spooler)")
    ap.add_argument("--calls", type=int, default=5000, help="measured calls per function (default 5000)")
    ap.add_argument("--warmup", type=int, default=200, help="unmeasured calls first (default 200)")
    ap.add_argument("--block", type=int, default=500, help="calls per alternating block (default 500)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--no-uwsgi", action="store_true", help="do not measure uwsgi.spool even inside uWSGI")
    args = ap.parse_args(sys.argv[1:])

    try:
        import uwsgi
        native = None if args.no_uwsgi else getattr(uwsgi, "spool", None)
    except ImportError:
        uwsgi, native = None, None

    d = args.dir
    if d is None and uwsgi is not None and getattr(uwsgi, "spoolers", None):
        d = os.fsdecode(uwsgi.spoolers[0])
    gospool.configure([d] if d else None)
    target = os.fsdecode(gospool.spoolers()[0])

    task = {b"ud_spool_func": b"bench", b"to": b"ada@example.com", b"n": b"42"}
    fns = [("gospool.spool", gospool.spool)]
    if native is not None:
        fns.append(("uwsgi.spool", native))
    counts = {name: {"ring": 0, "file": 0} for name, _ in fns}
    for name, fn in fns:
        measure(fn, task, args.warmup, {"ring": 0, "file": 0})
    if not gospool.spool(task).startswith(b"ring:"):
        print("warning: gospool.spool() did not use the ring: is a gospool spooler serving %s?" % target,
              file=sys.stderr)
    samples = {name: [] for name, _ in fns}
    left = args.calls
    while left > 0:
        k = min(args.block, left)
        for name, fn in fns:
            samples[name] += measure(fn, task, k, counts[name])
        left -= k

    res = {"dir": target, "python": sys.version.split()[0], "inside_uwsgi": uwsgi is not None, "results": {}}
    for name, _ in fns:
        res["results"][name] = dict(percentiles(samples[name]), **counts[name])
    if native is not None:
        g, u = res["results"]["gospool.spool"], res["results"]["uwsgi.spool"]
        res["ratio_p50"] = u["p50"] / g["p50"]
        res["ratio_p99"] = u["p99"] / g["p99"]
    if args.json:
        print(json.dumps(res))
        return
    print("spool directory %s, Python %s%s" % (target, res["python"], ", inside uWSGI" if uwsgi else ""))
    for name, r in res["results"].items():
        print("%-14s p50 %7.2f us   p90 %7.2f us   p99 %8.2f us   max %9.2f us   (%d calls: %d ring, %d file)"
              % (name, r["p50"], r["p90"], r["p99"], r["max"], r["n"], r["ring"], r["file"]))
    if native is not None:
        print("uwsgi.spool / gospool.spool: %.1fx at p50, %.1fx at p99" % (res["ratio_p50"], res["ratio_p99"]))


if __name__ == "__main__":
    main()
