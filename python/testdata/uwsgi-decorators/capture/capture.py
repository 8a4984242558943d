#!/usr/bin/env python3
"""Regenerates the fixtures in python/testdata/uwsgi-decorators with real
uWSGI and its real uwsgidecorators (Debian bookworm: uwsgi-core,
uwsgi-plugin-python3, python3-uwsgidecorators, all 2.0.21-5.1).

    python3 capture.py OUTDIR

1. Spool: a uWSGI instance whose first spooler is spooler-external = EXT
   (the default target, no process consumes it) plus a dummy `spooler` (the
   decorators refuse to work without one) runs produce.py in a mule, which
   makes the calls listed in cases.py with the decorators of ud_tasks.py.
   Each call's spool file is copied to OUTDIR/files/CASE/.
2. Dispatch: the files are put in one spool directory served by a real
   uWSGI spooler that imports spooler_import.py (ud_tasks plus a recorder)
   for a few seconds; what each function received and what
   manage_spool_request returned or raised is recorded, and whether the
   file was deleted.
3. OUTDIR/manifest.json gets everything (pairs in file order, hex for
   values that are not printable ASCII, body, sha256, dispatch results).
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cases import CASES  # noqa: E402


def run_uwsgi(ini, env, until, timeout):
    log = open(ini + ".log", "w")
    p = subprocess.Popen(["uwsgi", "--ini", ini], stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline and not until():
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    log.close()
    return open(ini + ".log").read()


def parse(data):
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
    return data[:4], pairs, data[end:]


def show(b):
    if all(0x20 <= c < 0x7F for c in b):
        return b.decode()
    return "hex:" + b.hex()


def main():
    out = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="ud-capture-")
    ext, dummy, run = (os.path.join(tmp, d) for d in ("ext", "dummy", "run"))
    for d in (ext, dummy, run):
        os.mkdir(d)
    env = dict(os.environ, UD_PATHS=os.path.join(tmp, "paths.json"))
    env.pop("UD_RECORD", None)
    ini = os.path.join(tmp, "spool.ini")
    with open(ini, "w") as f:
        f.write("[uwsgi]\nplugin = python3\nmaster = true\nspooler-external = %s\nspooler = %s\n"
                "mule = %s\nspooler-frequency = 3600\n" % (ext, dummy, os.path.join(HERE, "produce.py")))
    run_uwsgi(ini, env, lambda: os.path.exists(env["UD_PATHS"] + ".done"), 30)
    paths = json.load(open(env["UD_PATHS"]))

    shutil.rmtree(os.path.join(out, "files"), ignore_errors=True)
    manifest = []
    for case, call in CASES:
        p = paths[case]
        if p.startswith("ERROR"):
            raise SystemExit("%s: %s" % (case, p))
        rel = os.path.relpath(p, ext)
        dst = os.path.join(out, "files", case, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(p, dst)
        shutil.copyfile(p, os.path.join(run, os.path.basename(p)))
        data = open(p, "rb").read()
        header, pairs, body = parse(data)
        manifest.append({
            "case": case, "call": call, "file": os.path.relpath(dst, out), "task": os.path.basename(p),
            "size": len(data), "header_hex": header.hex(),
            "pairs": [[show(k), show(v)] for k, v in pairs],
            "body": show(body) if body else None, "sha256": hashlib.sha256(data).hexdigest(),
        })

    record = os.path.join(tmp, "record.jsonl")
    env2 = dict(os.environ, UD_RECORD=record)
    ini2 = os.path.join(tmp, "run.ini")
    with open(ini2, "w") as f:
        f.write("[uwsgi]\nplugin = python3\nmaster = true\nspooler = %s\nspooler-import = %s\n"
                "spooler-frequency = 1\n" % (run, os.path.join(HERE, "spooler_import.py")))

    def all_seen():
        if not os.path.exists(record):
            return False
        seen = {json.loads(l)["task"] for l in open(record) if '"outcome"' in l}
        return len(seen) >= len(manifest)

    log = run_uwsgi(ini2, env2, all_seen, 20)
    calls, outcomes = {}, {}
    for line in open(record):
        r = json.loads(line)
        if "outcome" in r:
            outcomes.setdefault(r["task"], r)
        else:
            calls.setdefault(r["task"], r)
    left = set(os.listdir(run))
    for m in manifest:
        c = calls.get(m["task"])
        o = outcomes.get(m["task"])
        m["uwsgidecorators"] = {
            "called": None if c is None else {"func": c["call"], "args": c["args"], "kwargs": c["kwargs"]},
            "outcome": None if o is None else ({"return": o["value"]} if o["outcome"] == "return"
                                               else {"raise": o["exception"]}),
            "file_deleted": m["task"] not in left,
        }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"uwsgi": subprocess.run(["uwsgi", "--version"], capture_output=True, text=True).stdout.strip(),
                   "python": subprocess.run(["uwsgi", "--plugin", "python3", "--python-version"],
                                            capture_output=True, text=True).stdout.strip().splitlines()[-1],
                   "cases": manifest}, f, indent=1, ensure_ascii=True)
        f.write("\n")
    with open(os.path.join(out, "dispatch.log"), "w") as f:
        f.write(log)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
