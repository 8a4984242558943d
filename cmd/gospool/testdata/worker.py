"""A --worker-cmd worker in Python, for the tests: it serves the listener the
gospool master passed at fd 5 with a line protocol. "who" answers with its
environment; "spool ID" spools a task with `gospool spool` into the first
spool directory and answers "ok" once it is stored."""
import os
import socket
import subprocess

assert os.environ["GOSPOOL_ROLE"] == "worker"
assert os.environ["GOSPOOL_LISTEN_FDS"] == "1"
listener = socket.socket(fileno=5)
listener.setblocking(True)  # the flag is shared with the sibling workers, which agree
dirs = os.environ["GOSPOOL_SPOOLER_DIRS"].split(":")
while True:
    conn, _ = listener.accept()
    with conn:
        line = conn.makefile().readline().split()
        if line[:1] == ["who"]:
            answer = "worker %s pid %d dirs %s ring-fds %s\n" % (
                os.environ["GOSPOOL_ID"], os.getpid(), dirs, os.environ["GOSPOOL_RING_FDS"])
        elif line[:1] == ["spool"]:
            subprocess.run([os.environ["GOSPOOL_BIN"], "spool", "--spooler", dirs[0], "id=" + line[1]],
                           check=True, stdout=subprocess.DEVNULL)
            answer = "ok\n"
        else:
            answer = "?\n"
        conn.sendall(answer.encode())
