"""A small WSGI app (standard library only) that spools tasks the three ways
uWSGI apps do. Run it under uWSGI with one of the ini files here; see
README.md."""
import uuid
from urllib.parse import parse_qs

import uwsgi

import tasks


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))

    def arg(name, default=""):
        return query.get(name, [default])[0]

    if path == "/signup":
        # @spool(pass_arguments=True): the call enqueues, it does not run.
        # fail=1: this signup's first attempt raises (see tasks.py).
        fail_first = uuid.uuid4().hex if arg("fail") == "1" else ""
        name = tasks.send_welcome(arg("email"), lang=arg("lang", "en"), fail_first=fail_first)
    elif path == "/heartbeat":
        name = tasks.heartbeat.spool({"name": arg("name", "beat")})
    elif path == "/thumbnail":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        image = environ["wsgi.input"].read(size)
        name = uwsgi.spool({b"kind": b"thumbnail", b"name": arg("name").encode(), b"body": image})
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"try /signup?email=..., /heartbeat, or POST /thumbnail?name=...\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    if isinstance(name, str):
        name = name.encode()
    return [b"queued " + (name or b"") + b"\n"]
