"""A Python producer of the chaos harness (internal/chaos): not a child of
the gospool master, it hands tasks to the spool directory's ring with
gospool.spool(), as a web app's process would.

    python3 producer.py chaos DIR LOGS NAME SEED
    python3 producer.py paced DIR LOGS PHASE COUNT INTERVAL_S

chaos: spools tasks with unique ids in small bursts until the file
LOGS/stop exists, recording in LOGS/producer-NAME.log (O_APPEND):

    I ID     before the first spool call of the task: the id exists
    S ID     before each spool call of it
    A ID W   after a spool call returned: the task is acknowledged; W is
             where it went: "ring", or "file" (a spool file)
    X ID ... a spool call of it raised an exception an injected one caused
    E ID ... a spool call of it raised another exception (a bug)

A SIGALRM timer, armed 5 us to 5 ms ahead before one spool call in three,
raises Injected (a BaseException, like KeyboardInterrupt) wherever
the producer is then, mostly inside gospool's code; the producer then
spools the same task again, as a web app whose request timed out would be
retried. Now and then it gives its lane back (gospool.close()), so that the
next call takes a lane over again, under the same timer. With
GOSPOOL_FAILPOINT set there is no timer: the process parks at the failpoint
for the harness to kill it.

paced: COUNT hand-off probes, one every INTERVAL_S seconds, each carrying
its CLOCK_MONOTONIC stamp just before its spool call; prints "spilled N"
(probes that went to spool files, not the ring) and exits.
"""
import hashlib
import os
import random
import signal
import sys
import time

import gospool


class Injected(BaseException):
    """The exception SIGALRM raises at a random point."""


def chaos(dir_, logs, name, seed):
    # Where spool() finds the directory, then again after each close()
    # (which forgets what configure() said).
    os.environ["GOSPOOL_SPOOLER_DIRS"] = dir_
    p = _Producer(logs, name, seed)
    if p.inject:
        def alarm(signum, frame):
            # Not in this loop itself, which must survive to spool again;
            # anywhere below it, gospool's code included.
            if frame is not None and frame.f_code is not chaos.__code__:
                raise Injected()
        signal.signal(signal.SIGALRM, alarm)
    while not p.stopped:
        try:
            p.step()
        except Injected:
            pass  # anywhere: the loop resumes; an interrupted spool is redone
    p.disarm()
    gospool.close()


class _Producer:
    """The producer's state, which survives an exception at any point."""

    def __init__(self, logs, name, seed):
        self.rnd = random.Random("%s-%s-%d" % (seed, name, os.getpid()))
        self.fd = os.open(os.path.join(logs, "producer-%s.log" % name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.stop = os.path.join(logs, "stop")
        self.prefix = "%s.%d.%08x" % (name, os.getpid(), self.rnd.getrandbits(32))
        self.inject = not os.environ.get("GOSPOOL_FAILPOINT")
        self.seq = 0
        self.burst = 0
        self.wake_at = None  # the end of the pause between bursts
        self.task = self.tid = None  # the task being spooled, until acknowledged
        self.stopped = False

    def rec(self, kind, tid, extra=""):
        os.write(self.fd, ("%s %s%s\n" % (kind, tid, extra)).encode())

    def arm(self):
        """One call in three gets an exception 5 us to 5 ms later (log-
        uniform): a spool call takes tens of microseconds, the first of a
        process (or after close()) a millisecond or more, as it opens the
        ring and takes a lane over, so the exception lands anywhere in it,
        or just after it."""
        if self.inject and self.rnd.random() < 0.33:
            signal.setitimer(signal.ITIMER_REAL, 0.000005 * 1000 ** self.rnd.random())

    def disarm(self):
        if self.inject:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def step(self):
        """Spools one task. Whatever interrupts it, the next call spools
        the same task again until a call returned (S lines count them)."""
        rnd = self.rnd
        self.disarm()
        if self.task is None:
            if self.burst <= 0:
                if os.path.exists(self.stop):
                    self.stopped = True
                    return
                if self.wake_at is None:
                    self.wake_at = time.monotonic() + rnd.uniform(0.06, 0.2)
                pause = self.wake_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                self.wake_at = None
                self.burst = rnd.randint(1, 6)
                if rnd.random() < 0.25:
                    # Give the lane back now and then: the next call takes
                    # a lane again (maybe another producer's old one), and
                    # an exception may land in the take-over.
                    self.arm()
                    gospool.close()
                    self.disarm()
            self.seq += 1
            t = "%s.%d" % (self.prefix, self.seq)
            n = rnd.choice((8, 40, 200, 900, 1500, 2500)) if rnd.random() < 0.1 else rnd.randint(1, 400)
            data = rnd.randbytes(n)
            body = rnd.randbytes(rnd.randint(1, 300)) if rnd.random() < 0.2 else b""
            d = {b"id": t.encode(), b"data": data,
                 b"sum": hashlib.sha256(t.encode() + data + body).hexdigest()[:16].encode()}
            if body:
                d[b"body"] = body
            self.rec("I", t)
            self.task, self.tid = d, t
        self.rec("S", self.tid)
        try:
            self.arm()
            name = gospool.spool(self.task)
            self.disarm()
        except Exception as e:
            self.disarm()
            cause = e
            while cause is not None and not isinstance(cause, Injected):
                cause = cause.__cause__ or cause.__context__
            self.rec("X" if cause is not None else "E", self.tid, " " + repr(e).replace("\n", " "))
            time.sleep(0.01)
            return
        self.rec("A", self.tid, " ring" if name.startswith(b"ring:") else " file")
        self.task = None
        self.burst -= 1


def paced(dir_, logs, phase, count, interval):
    gospool.configure(dirs=[dir_])
    spilled = 0
    nxt = time.monotonic()
    for i in range(count):
        nxt += interval
        stamp = time.monotonic_ns()
        name = gospool.spool({b"id": ("lat.%s.%d" % (phase, i)).encode(), b"lat": str(stamp).encode()})
        if not name.startswith(b"ring:"):
            spilled += 1
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    gospool.close()
    print("spilled %d" % spilled, flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "chaos":
        chaos(a[1], a[2], a[3], a[4])
    elif a[0] == "paced":
        paced(a[1], a[2], a[3], int(a[4]), float(a[5]))
    else:
        sys.exit("usage: producer.py chaos|paced ...")
