"""The msgpack record encoder: the shared vectors (bytes the Go encoder
writes, tests/vectors.json), every length boundary, and the decoder."""

import json
import os
import unittest

import support  # noqa: F401  (makes gospool importable)
from gospool import _msgpack


def load_vectors():
    with open(os.path.join(support.HERE, "vectors.json")) as f:
        vs = json.load(f)["vectors"]
    for v in vs:
        v["pairs"] = [(bytes.fromhex(k), bytes.fromhex(x)) for k, x in v["pairs"]]
        v["body"] = None if v["body"] is None else bytes.fromhex(v["body"])
    return vs


class TestVectors(unittest.TestCase):
    def test_encode_matches_go(self):
        vs = load_vectors()
        self.assertGreaterEqual(len(vs), 15)
        for v in vs:
            with self.subTest(v["name"]):
                self.assertEqual(_msgpack.encode_record(v["pairs"], v["body"]).hex(), v["record"])

    def test_decode_go(self):
        for v in load_vectors():
            with self.subTest(v["name"]):
                self.assertEqual(_msgpack.decode_record(bytes.fromhex(v["record"])), (v["pairs"], v["body"]))

    def test_doc_example(self):
        self.assertEqual(_msgpack.encode_record([(b"task", b"resize")]).hex(" "),
                         "93 01 92 c4 04 74 61 73 6b c4 06 72 65 73 69 7a 65 c0")


class TestPrimitives(unittest.TestCase):
    def test_nil_and_fixint(self):
        self.assertEqual(_msgpack.pack_nil(), b"\xc0")
        self.assertEqual(_msgpack.pack_uint(0), b"\x00")
        self.assertEqual(_msgpack.pack_uint(1), b"\x01")
        self.assertEqual(_msgpack.pack_uint(127), b"\x7f")
        for bad in (-1, 128, 1000):
            with self.assertRaises(ValueError):
                _msgpack.pack_uint(bad)

    def test_bin_lengths(self):
        cases = [
            (0, "c400"), (1, "c401"), (31, "c41f"), (32, "c420"), (255, "c4ff"),
            (256, "c50100"), (65535, "c5ffff"),
            (65536, "c600010000"), (1 << 24, "c601000000"),
        ]
        for n, want in cases:
            with self.subTest(n=n):
                self.assertEqual(_msgpack.bin_header(n).hex(), want)
        self.assertEqual(_msgpack.pack_bin(b"ab"), b"\xc4\x02ab")
        self.assertEqual(_msgpack.pack_bin(bytearray(300))[:3], b"\xc5\x01\x2c")
        with self.assertRaises(ValueError):
            _msgpack.bin_header(1 << 32)

    def test_array_lengths(self):
        cases = [(0, "90"), (1, "91"), (15, "9f"), (16, "dc0010"), (65535, "dcffff"),
                 (65536, "dd00010000"), (80000, "dd00013880")]
        for n, want in cases:
            with self.subTest(n=n):
                self.assertEqual(_msgpack.array_header(n).hex(), want)

    def test_records_at_the_boundaries(self):
        def record(pairs, body=None):
            return _msgpack.encode_record(pairs, body)
        # 7 pairs: fixarray of 14; 8 pairs: array 16 of 16.
        self.assertEqual(record([(b"k", b"v")] * 7)[:3], b"\x93\x01\x9e")
        self.assertEqual(record([(b"k", b"v")] * 8)[:5], b"\x93\x01\xdc\x00\x10")
        # 32768 pairs: array 32 of 65536.
        big = record([(b"k", b"")] * 32768)
        self.assertEqual(big[:7], b"\x93\x01\xdd\x00\x01\x00\x00")
        self.assertEqual(len(big), 2 + 5 + 32768 * 5 + 1)
        # Values and body of every bin size.
        for n, hdr in ((255, b"\xc4\xff"), (256, b"\xc5\x01\x00"), (65536, b"\xc6\x00\x01\x00\x00")):
            r = record([(b"k", b"x" * n)], b"y" * n)
            self.assertEqual(r[3:6], b"\xc4\x01k")
            self.assertEqual(r[6:6 + len(hdr)], hdr)
            self.assertTrue(r.endswith(hdr + b"y" * n))
            self.assertEqual(_msgpack.decode_record(r), ([(b"k", b"x" * n)], b"y" * n))
        self.assertEqual(record([], b""), b"\x93\x01\x90\xc4\x00")
        self.assertEqual(record([]), b"\x93\x01\x90\xc0")


class TestDecode(unittest.TestCase):
    def test_str_values_accepted(self):
        # Go's decoder takes str where bin is expected; so does this one.
        data = b"\x93\x01\x92\xa4task\xd9\x03abc\xa0"
        self.assertEqual(_msgpack.decode_record(data), ([(b"task", b"abc")], b""))

    def test_nil_value_is_empty(self):
        self.assertEqual(_msgpack.decode_record(b"\x93\x01\x92\xc4\x01k\xc0\xc0"), ([(b"k", b"")], None))

    def test_bad_records(self):
        bad = {
            "empty": b"",
            "not an array": b"\xc0",
            "array of 2": b"\x92\x01\x90",
            "version 2": b"\x93\x02\x90\xc0",
            "odd pairs": b"\x93\x01\x91\xc4\x01k\xc0",
            "truncated value": b"\x93\x01\x92\xc4\x01k\xc4\x05ab",
            "trailing bytes": b"\x93\x01\x90\xc0\x00",
            "empty key": b"\x93\x01\x92\xc4\x00\xc4\x00\xc0",
            "int key": b"\x93\x01\x92\x01\xc4\x00\xc0",
            "more pairs than bytes": b"\x93\x01\xdc\xff\xfe\xc0",
        }
        for name, data in bad.items():
            with self.subTest(name):
                with self.assertRaises(_msgpack.FormatError):
                    _msgpack.decode_record(data)


if __name__ == "__main__":
    unittest.main()
