"""The ring's record format, msgpack, written byte for byte as Go's
``spooler/record`` package writes it (vmihailenco/msgpack/v5).

A record is one msgpack array of three elements::

    [ version , pairs , body ]
      version  positive fixint 1
      pairs    array of 2n bin values: key1, value1, key2, value2, ...
      body     bin, or nil when the task has no body

    {b"task": b"resize"}, no body:
    93 01 92 c4 04 74 61 73 6b c4 06 72 65 73 69 7a 65 c0

Only the msgpack types a record uses are here: positive fixint, nil,
bin 8/16/32 and fixarray/array 16/32 (lengths big-endian, as msgpack wants).
Go chooses the smallest form for every length, and so does this module, so
the bytes are identical (python/tests/vectors.json holds the shared
vectors; python_core_test.go checks them against the Go encoder).

``decode_record`` reads what ``encode_record`` writes and, like Go's
decoder, also str (fixstr, str 8/16/32) and nil values; it is for tests
and tools, the producer never decodes.
"""

import struct

__all__ = [
    "RECORD_VERSION",
    "pack_nil",
    "pack_uint",
    "pack_bin",
    "bin_header",
    "array_header",
    "encode_record",
    "decode_record",
    "FormatError",
]

RECORD_VERSION = 1

_NIL = b"\xc0"
# bin 8 headers for every length below 256, and fixarray headers below 16,
# built once: most records only use these.
_BIN8 = [bytes((0xC4, n)) for n in range(256)]
_FIXARRAY = [bytes((0x90 | n,)) for n in range(16)]
_PACK_U16 = struct.Struct(">BH").pack
_PACK_U32 = struct.Struct(">BI").pack


def pack_nil():
    """msgpack nil."""
    return _NIL


def pack_uint(n):
    """A positive fixint (0..127), the only integer a record holds."""
    if not 0 <= n <= 0x7F:
        raise ValueError("pack_uint: %d is not a positive fixint (0..127)" % n)
    return bytes((n,))


def bin_header(n):
    """The header of a bin value of n bytes: bin 8, bin 16 or bin 32."""
    if n < 256:
        return _BIN8[n]
    if n <= 0xFFFF:
        return _PACK_U16(0xC5, n)
    if n <= 0xFFFFFFFF:
        return _PACK_U32(0xC6, n)
    raise ValueError("msgpack bin values hold at most 4 GiB, got %d bytes" % n)


def pack_bin(b):
    """A bytes-like value as msgpack bin."""
    return bin_header(len(b)) + bytes(b)


def array_header(n):
    """The header of an array of n elements: fixarray, array 16 or array 32."""
    if n < 16:
        return _FIXARRAY[n]
    if n <= 0xFFFF:
        return _PACK_U16(0xDC, n)
    if n <= 0xFFFFFFFF:
        return _PACK_U32(0xDD, n)
    raise ValueError("msgpack arrays hold at most 2**32-1 elements, got %d" % n)


def encode_record(pairs, body=None):
    """Encode a task as a ring record.

    pairs is a sequence of (key, value) bytes tuples, kept in order with
    duplicates; body is bytes or None (nil: the task has no body).
    """
    n = len(pairs)
    parts = [b"\x93\x01", _FIXARRAY[2 * n] if n < 8 else array_header(2 * n)]
    for k, v in pairs:
        lk = len(k)
        lv = len(v)
        if lk < 256 and lv < 256:
            parts += (_BIN8[lk], k, _BIN8[lv], v)
        else:
            parts += (bin_header(lk), k, bin_header(lv), v)
    if body is None:
        parts.append(_NIL)
    else:
        parts += (bin_header(len(body)), body)
    return b"".join(parts)


class FormatError(ValueError):
    """Not a gospool ring record."""


def _array_len(data, pos):
    if pos >= len(data):
        raise FormatError("truncated at %d, want an array" % pos)
    c = data[pos]
    if 0x90 <= c <= 0x9F:
        return c & 0x0F, pos + 1
    if c == 0xDC:
        if pos + 3 > len(data):
            raise FormatError("truncated array 16 header at %d" % pos)
        return struct.unpack_from(">H", data, pos + 1)[0], pos + 3
    if c == 0xDD:
        if pos + 5 > len(data):
            raise FormatError("truncated array 32 header at %d" % pos)
        return struct.unpack_from(">I", data, pos + 1)[0], pos + 5
    raise FormatError("byte %#04x at %d is not an array header" % (c, pos))


def _bytes_at(data, pos):
    """A bin or str value (or nil, as None) at pos."""
    if pos >= len(data):
        raise FormatError("truncated at %d, want bin, str or nil" % pos)
    c = data[pos]
    if c == 0xC0:
        return None, pos + 1
    if 0xA0 <= c <= 0xBF:
        n, pos = c & 0x1F, pos + 1
    elif c in (0xC4, 0xD9):
        if pos + 2 > len(data):
            raise FormatError("truncated length at %d" % pos)
        n, pos = data[pos + 1], pos + 2
    elif c in (0xC5, 0xDA):
        if pos + 3 > len(data):
            raise FormatError("truncated length at %d" % pos)
        n, pos = struct.unpack_from(">H", data, pos + 1)[0], pos + 3
    elif c in (0xC6, 0xDB):
        if pos + 5 > len(data):
            raise FormatError("truncated length at %d" % pos)
        n, pos = struct.unpack_from(">I", data, pos + 1)[0], pos + 5
    else:
        raise FormatError("byte %#04x at %d is not bin, str or nil" % (c, pos))
    if pos + n > len(data):
        raise FormatError("value of %d bytes at %d runs past the end" % (n, pos))
    return bytes(data[pos:pos + n]), pos + n


def decode_record(data):
    """Decode a ring record: returns (pairs, body) as encode_record takes
    them. Raises FormatError (a ValueError) on anything else."""
    data = bytes(data)
    n, pos = _array_len(data, 0)
    if n != 3:
        raise FormatError("want an array of 3, got %d" % n)
    if pos >= len(data) or data[pos] != RECORD_VERSION:
        raise FormatError("want version %d" % RECORD_VERSION)
    n, pos = _array_len(data, pos + 1)
    if n % 2:
        raise FormatError("pairs: want an even-length array, got %d" % n)
    if n > len(data):
        raise FormatError("pairs: more elements than bytes")
    pairs = []
    for i in range(n // 2):
        k, pos = _bytes_at(data, pos)
        if not k:
            raise FormatError("key %d is empty or nil" % i)
        v, pos = _bytes_at(data, pos)
        pairs.append((k, b"" if v is None else v))
    body, pos = _bytes_at(data, pos)
    if pos != len(data):
        raise FormatError("%d bytes after the record" % (len(data) - pos))
    return pairs, body
