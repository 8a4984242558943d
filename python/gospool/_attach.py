"""Is a gospool spooler attached to a ring right now? (Go: ring.Attachment)

spool() puts a task into the ring only while one is: otherwise it writes a
uWSGI spool file, which every spooler of the directory, uWSGI's or
gospool's, runs. The same rule as Go's spooler.Client and ``gospool
spool``; the spooler package's documentation ("Where a task goes") says
why.

The truth is the consumer entries' locks (Ring.has_live_consumer), but
asking costs a system call per entry. The answer is read from the entries'
words in the ring header instead, which each consumer keeps current::

    entry at 1024 + i*64
    +0  u32  generation  bumped when a process takes the entry
    +4  u32  pid         stored right after; set to 0 by a clean close,
                         before the lock is dropped

- attached (the hot path): the entry found attached last time still holds
  the same pid. A clean stop zeroes it, seen at the next call; a killed
  consumer leaves its pid behind, so its lock is asked again once a second
  (the clock is read every 16 calls).
- not attached: every pid word is 0, or the entries whose pid was left
  behind were found unlocked within the last second and no entry was taken
  since (the sum of the generations is unchanged).
"""

import ctypes
import fcntl
import os
import threading
import time

from . import _ring

RECHECK_NS = 1_000_000_000

_FLOCK = _ring._FLOCK  # struct flock


class Attachment:
    def __init__(self, ring):
        self._fd = ring._fd
        self._u32 = ring._u32
        n = ring.geometry.consumers
        base = _ring.CONSUMER_BASE
        self._lock_offs = [base + i * _ring.CONSUMER_SIZE for i in range(n)]
        self._pid_idx = [(off + 4) // 4 for off in self._lock_offs]
        self._gen_idx = [off // 4 for off in self._lock_offs]
        # The pid word of each entry as a ctypes object: its .value is one
        # aligned 4-byte load, the cheapest read Python has.
        self._pid_words = [ctypes.c_uint32.from_buffer(ring._mm, off + 4) for off in self._lock_offs]
        self._mu = threading.Lock()
        self._word = None  # the attached entry's pid word, or None
        self._pid = 0
        self._gens = 0
        self._until = 0
        self._calls = 0

    def attached(self):
        w = self._word
        if w is not None and w.value == self._pid:
            # The hot path: the clock only every 16 calls (a lost update
            # between threads only shifts when it is read).
            self._calls += 1
            if self._calls & 15 or time.monotonic_ns() < self._until:
                return True
        elif w is None:
            # Not attached: the task goes to a spool file, tens of
            # microseconds; these loads are nothing beside it.
            if time.monotonic_ns() < self._until and self._gen_sum() == self._gens:
                return False
            if not any(x.value for x in self._pid_words):
                return False
        return self._check(time.monotonic_ns())

    def _gen_sum(self):
        u = self._u32
        return sum(u[i] for i in self._gen_idx) & 0xFFFFFFFF

    def _locked(self, off):
        req = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, off, 1, 0)
        try:
            res = fcntl.fcntl(self._fd, fcntl.F_GETLK, req)
        except OSError:
            return True  # in doubt, attached: the task waits in the ring file, safe
        return _FLOCK.unpack(res)[0] != fcntl.F_UNLCK

    def _check(self, now):
        with self._mu:
            gens = self._gen_sum()  # before the locks: an entry taken meanwhile changes it
            for i, w in enumerate(self._pid_words):
                pid = w.value
                if pid and self._locked(self._lock_offs[i]):
                    self._pid = pid
                    self._until = now + RECHECK_NS
                    self._word = w
                    return True
            self._word = None
            self._gens = gens
            self._until = now + RECHECK_NS
            return False
