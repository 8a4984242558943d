# The Python producer of `gospool bench --python`: the same protocol and
# the same measurement as bench.Produce and bench.Send in Go (see the
# package documentation of internal/bench). It runs as a worker of the
# measured gospool master: GOSPOOL_ID (from 1) and GOSPOOL_SPOOLER_DIRS come
# from the master, the rest from GOSPOOL_BENCH_*; the package gospool is on
# PYTHONPATH.
import os
import signal
import time


def _quit(signum, frame):
    os._exit(0)


signal.signal(signal.SIGTERM, _quit)
signal.signal(signal.SIGINT, _quit)

DIR = os.environ["GOSPOOL_BENCH_DIR"]
K = int(os.environ["GOSPOOL_ID"]) - 1
TASKS = int(os.environ["GOSPOOL_BENCH_TASKS"])
PRODUCERS = int(os.environ["GOSPOOL_BENCH_PRODUCERS"])
RATE = float(os.environ["GOSPOOL_BENCH_RATE"])


def path(name):
    return os.path.join(DIR, name)


def write_atomic(name, data):
    with open(path(name + ".tmp"), "wb") as f:
        f.write(data)
    os.rename(path(name + ".tmp"), path(name))


def idle():
    # A worker that exited would be respawned: wait for the master's
    # SIGTERM or SIGINT.
    while True:
        signal.pause()


def send(spool, start):
    clock = time.clock_gettime_ns
    mono = time.CLOCK_MONOTONIC
    count = TASKS // PRODUCERS + (1 if K < TASKS % PRODUCERS else 0)
    calls = [0] * count
    sched = prev_call = 0
    for j in range(count):
        n = K + j * PRODUCERS
        delay = 0
        if RATE:
            intended = start + int(n * 1e9 / RATE)
            wait = intended - clock(mono)
            if wait > 0:
                time.sleep(wait / 1e9)
            s = intended
            if j and sched + prev_call > s:
                s = sched + prev_call
            delay = s - intended
            sched = s
        nb = b"%d" % n
        db = b"%d" % delay
        t0 = clock(mono)
        spool({b"n": nb, b"t0": b"%d" % t0, b"d": db})
        prev_call = clock(mono) - t0
        calls[j] = prev_call
    return calls


def main():
    try:
        fd = os.open(path("started-%d" % K), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise RuntimeError("died and was respawned; its tasks are not sent again")
    os.close(fd)
    import gospool
    spool = gospool.spool
    # The session holds a writer on the FIFO: the open does not block, and
    # the read returns at EOF, when the session releases the producers.
    with open(path("go"), "rb") as go:
        spool({b"warmup": b"1"})
        with open(path("ready"), "wb") as ready:
            ready.write(b"%d\n" % K)
        go.read()
    with open(path("start"), "rb") as f:
        start = int(f.read())
    calls = send(spool, start)
    write_atomic("calls-%d" % K, b"".join(b"%d\n" % c for c in calls))


try:
    main()
except Exception as e:
    write_atomic("error-producer-%d" % K, (" ".join(("%s: %s" % (type(e).__name__, e)).split()) + "\n").encode())
idle()
