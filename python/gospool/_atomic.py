"""Atomic read-modify-write on shared memory, for the ring producer.

The ring's header counters (spooled, spilled, file seq, wake seq) are
shared with Go processes that update them with atomic adds. The standard
library has no atomic add on memory it does not own: ``ctypes`` can call C
functions, but the C library's atomics are compiler builtins
(``__atomic_fetch_add``), not functions anybody can call. So this module
carries four functions of a few instructions each, as machine code, and
calls them through ``ctypes``:

``add64(addr, n)`` and ``add32(addr, n)``
    atomically add ``n`` to the aligned 8- or 4-byte word at address
    ``addr`` and return the old value. x86-64: ``lock xadd``. aarch64: a
    load-acquire/store-release exclusive loop followed by ``dmb ish``
    (what GCC emits for a sequentially consistent ``__atomic_fetch_add``
    without LSE).
``cas64(addr, old, new)``
    atomically replace the aligned 8-byte word at ``addr`` with ``new`` if
    it holds ``old``, and return the value it held: the swap happened iff
    that is ``old``. x86-64: ``lock cmpxchg`` (which leaves the word's
    value in rax whether it swapped or not). aarch64: a load-acquire /
    store-release exclusive loop that gives up when the word differs,
    then ``dmb ish``. The ring producer takes a published record back
    with it (READY to DONE) when it finds the ring retired, the same
    compare-and-swap a consumer claims the record with: one of the two
    wins (see ``_ring.Ring._retired_after_publish``).
``fence()``
    a full memory barrier: ``mfence`` on x86-64, ``dmb ish`` on aarch64.

The adds and the compare-and-swap are also full barriers (``lock``-prefixed instructions are, on
x86-64; the trailing ``dmb ish`` makes them so on aarch64). The ring
producer relies on that: its ``spooled`` add sits between the store that
publishes a record and the load of the sleepers count, the Dekker-style
pair that keeps a wake-up from being lost (see ``_ring.Ring._wake``).

The code is copied into a private anonymous page that is then made
read+execute (never writable and executable at once). Each stub starts with
the CPU's indirect-branch landing pad (``endbr64`` / ``bti c``), a no-op on
CPUs without branch tracking. The byte sequences were produced by Go's
assembler and checked with ``go tool objdump`` (see the comments at each).

When the page cannot be made executable (a hardened kernel that forbids
anonymous executable memory, say), or on another architecture, ``OPS`` is
None and callers fall back: see ``_ring``.
"""

import ctypes
import mmap
import os
import platform
import sys

__all__ = ["OPS", "Ops", "unavailable_reason"]

# x86-64 System V: addr in rdi, n in rsi, result in rax.
_X86_64 = {
    # endbr64; mov rax, rsi; lock xadd [rdi], rax; ret
    "add64": "f30f1efa" "4889f0" "f0480fc107" "c3",
    # endbr64; mov eax, esi; lock xadd [rdi], eax; ret
    "add32": "f30f1efa" "89f0" "f00fc107" "c3",
    # endbr64; mov rax, rsi; lock cmpxchg [rdi], rdx; ret
    "cas64": "f30f1efa" "4889f0" "f0480fb117" "c3",
    # endbr64; mfence; ret
    "fence": "f30f1efa" "0faef0" "c3",
}

# AArch64 (AAPCS64): addr in x0, n (or old, new) in x1 (, x2), result in
# x0. Little-endian 32-bit instruction words.
_AARCH64 = {
    # bti c
    # 1: ldaxr x2, [x0]; add x3, x2, x1; stlxr w4, x3, [x0]; cbnz w4, 1b
    # dmb ish; mov x0, x2; ret
    "add64": (0xD503245F, 0xC85FFC02, 0x8B010043, 0xC804FC03, 0xB5FFFFA4,
              0xD5033BBF, 0xAA0203E0, 0xD65F03C0),
    # bti c
    # 1: ldaxr w2, [x0]; add w3, w2, w1; stlxr w4, w3, [x0]; cbnz w4, 1b
    # dmb ish; mov w0, w2; ret
    "add32": (0xD503245F, 0x885FFC02, 0x0B010043, 0x8804FC03, 0x35FFFFA4,
              0xD5033BBF, 0x2A0203E0, 0xD65F03C0),
    # bti c
    # 1: ldaxr x3, [x0]; cmp x3, x1; b.ne 2f; stlxr w4, x2, [x0]; cbnz w4, 1b
    # 2: dmb ish; mov x0, x3; ret
    "cas64": (0xD503245F, 0xC85FFC03, 0xEB01007F, 0x54000061, 0xC804FC02, 0x35FFFF84,
              0xD5033BBF, 0xAA0303E0, 0xD65F03C0),
    # bti c; dmb ish; ret
    "fence": (0xD503245F, 0xD5033BBF, 0xD65F03C0),
}


def _code_for(machine):
    if machine in ("x86_64", "amd64"):
        return {k: bytes.fromhex(v) for k, v in _X86_64.items()}
    if machine in ("aarch64", "arm64"):
        return {k: b"".join(w.to_bytes(4, "little") for w in v) for k, v in _AARCH64.items()}
    return None


class Ops:
    """The four functions, callable from Python: ``add64(addr, n) -> old``,
    ``add32(addr, n) -> old``, ``cas64(addr, old, new) -> previous``,
    ``fence()``. Addresses are plain ints."""

    def __init__(self, add64, add32, fence, page, cas64=None):
        self.add64 = add64
        self.add32 = add32
        self.cas64 = cas64
        self.fence = fence
        self._page = page  # the executable page; never unmapped

    # TSO is true where plain stores are seen by other CPUs in program
    # order and plain loads are not reordered with other loads (x86-64):
    # the ring then needs no fence between a payload and its publish store.
    tso = False


unavailable_reason = None


def _load():
    global unavailable_reason
    if sys.byteorder != "little":
        unavailable_reason = "big-endian host"
        return None
    machine = platform.machine().lower()
    code = _code_for(machine)
    if code is None:
        unavailable_reason = "no atomic stubs for CPU %r" % machine
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.mprotect.restype = ctypes.c_int
        size = mmap.PAGESIZE
        # A private anonymous page, writable while we fill it ...
        page = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                         prot=mmap.PROT_READ | mmap.PROT_WRITE)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
        offsets = {}
        pos = 0
        for name, blob in code.items():
            offsets[name] = pos
            page[pos:pos + len(blob)] = blob
            pos += (len(blob) + 15) & ~15
        # ... then read+execute only. The mmap object is never written again
        # (it would fault) and never closed (the functions live in it); the
        # ctypes export taken above keeps Python from closing it.
        if libc.mprotect(addr, size, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            err = ctypes.get_errno()
            unavailable_reason = "mprotect(PROT_EXEC): %s" % os.strerror(err)
            return None
        if machine in ("aarch64", "arm64"):
            # Make the new instructions visible to the instruction cache.
            # Linux does it when a page turns executable, but libgcc's
            # __clear_cache is the documented way, when it is there.
            try:
                gcc = ctypes.CDLL("libgcc_s.so.1")
                gcc.__clear_cache.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
                gcc.__clear_cache(addr, addr + size)
            except (OSError, AttributeError):
                pass
        fadd64 = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64)(addr + offsets["add64"])
        fadd32 = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32)(addr + offsets["add32"])
        fcas64 = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64,
                                  ctypes.c_uint64)(addr + offsets["cas64"])
        ffence = ctypes.CFUNCTYPE(None)(addr + offsets["fence"])
        ops = Ops(fadd64, fadd32, ffence, page, fcas64)
        ops.tso = machine in ("x86_64", "amd64")
        # Self-check on a scratch word before anyone relies on it.
        scratch = ctypes.c_uint64(41)
        if fadd64(ctypes.addressof(scratch), 1) != 41 or scratch.value != 42:
            unavailable_reason = "self-check of add64 failed"
            return None
        scratch32 = ctypes.c_uint32(0xFFFFFFFF)
        if fadd32(ctypes.addressof(scratch32), 1) != 0xFFFFFFFF or scratch32.value != 0:
            unavailable_reason = "self-check of add32 failed"
            return None
        big = (1 << 63) | 7  # all 64 bits must go through
        scratch.value = big
        if fcas64(ctypes.addressof(scratch), 8, 9) != big or scratch.value != big:
            unavailable_reason = "self-check of cas64 (no swap) failed"
            return None
        if fcas64(ctypes.addressof(scratch), big, 5) != big or scratch.value != 5:
            unavailable_reason = "self-check of cas64 (swap) failed"
            return None
        ffence()
        return ops
    except (OSError, ValueError, AttributeError, TypeError) as e:
        unavailable_reason = "%s: %s" % (type(e).__name__, e)
        return None


if os.environ.get("GOSPOOL_NO_ATOMICS"):
    # Test hook: exercise the fallback paths of the ring producer.
    OPS = None
    unavailable_reason = "GOSPOOL_NO_ATOMICS is set"
else:
    OPS = _load()
