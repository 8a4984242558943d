"""The uWSGI side of gospool's interoperability tests (interop/*_test.go).

A WSGI app whose requests call uwsgi.spool(), and a spooler callable that
records the tasks uWSGI runs. The tests configure both through the
environment:

  INTEROP_OUT    where the callable records what it runs (a directory for
                 "dump", a file for "append" and "stamp")
  INTEROP_MODE   dump:   write the env dict, every key and value as hex, to
                         INTEROP_OUT/<spooler_task_name>.json
                 append: append "<id> uwsgi" to the file INTEROP_OUT
                 stamp:  append "<id> <t0> <now> uwsgi" (CLOCK_MONOTONIC ns)
  INTEROP_SLEEP  seconds the append callable sleeps per task (default 0)

Routes (each returns {"path": the spool file, "at": the at sent, if any}):

  /ping                   readiness
  /plain                  the fixed task PLAIN (non-UTF-8 and empty values)
  /body                   {id: body} with the fixed binary body BODY
  /spool?K=V&K=V...       the query's pairs in order; at=+S means now + S
                          seconds (a float string, as uWSGI accepts it)
  /stamp?id=N[&spooler=D] {id, t0: CLOCK_MONOTONIC ns just before the call}
"""

import json
import os
import time
from urllib.parse import parse_qsl

import uwsgi

# Python 3.7+ dicts keep insertion order, and uWSGI writes keys in the
# dict's order, so the spool file holds these pairs in this order.
PLAIN = {
    b"id": b"plain",
    b"name": "caf\u00e9".encode(),
    b"bin": b"\x00\xff\xfe\x80",
    b"empty": b"",
    b"eq": b"a=b",
}
BODY = bytes(range(256)) * 16 + b"\x00end"


def application(environ, start_response):
    route = environ["PATH_INFO"]
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    reply = {}
    if route == "/ping":
        pass
    elif route == "/plain":
        reply["path"] = uwsgi.spool(dict(PLAIN))
    elif route == "/body":
        reply["path"] = uwsgi.spool({b"id": b"body", b"body": BODY})
    elif route == "/spool":
        task = {}
        for k, v in query:
            if k == "at" and v.startswith("+"):
                v = repr(time.time() + float(v[1:]))
                reply["at"] = v
            task[k.encode()] = v.encode()
        reply["path"] = uwsgi.spool(task)
    elif route == "/stamp":
        q = dict(query)
        task = {b"id": q["id"].encode()}
        if "spooler" in q:
            task[b"spooler"] = q["spooler"].encode()
        t0 = time.monotonic_ns()
        task[b"t0"] = str(t0).encode()
        reply["path"] = uwsgi.spool(task)
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no route " + route.encode() + b"\n"]
    if "path" in reply:
        reply["path"] = reply["path"].decode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(reply).encode()]


def _append(path, line):
    # O_APPEND: lines from every spooler process land whole, never mixed.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def spooler(env):
    now = time.monotonic_ns()
    wall = time.time()
    mode = os.environ.get("INTEROP_MODE", "dump")
    out = os.environ["INTEROP_OUT"]
    if mode == "append":
        _append(out, "%s uwsgi\n" % env[b"id"].decode())
        delay = float(os.environ.get("INTEROP_SLEEP", "0"))
        if delay > 0:
            time.sleep(delay)
    elif mode == "stamp":
        _append(out, "%s %s %d uwsgi\n" % (env[b"id"].decode(), env[b"t0"].decode(), now))
    else:
        items = []
        for k, v in env.items():
            if isinstance(k, str):
                items.append({"str": k, "value": v.hex()})
            else:
                items.append({"hex": k.hex(), "value": v.hex()})
        name = env["spooler_task_name"].decode()
        doc = {"items": items, "time": wall, "pid": os.getpid()}
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, os.path.join(out, name + ".json"))
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler
