#!/usr/bin/env python3
"""Writes the seed corpus of redactor_fuzz (see redactor_fuzz.cpp for the input format).

Input: byte 0 = number of secrets (mod 5); per secret a length byte (mod 48) and its bytes;
one byte seeding the write split; the rest is the text. The split byte also picks the
offset (mod 8) of the embedded-base64 check: the default 5 puts an 8-byte secret where
both its first and last base64 characters mix in neighbouring bits.

Run from anywhere: python3 tests/fuzz/make_redactor_corpus.py
It rewrites tests/fuzz/corpus/redactor/ (the output is deterministic).
"""
import base64
import os
import random
import shutil

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "redactor")


def seed(secrets, text, split=5):
    out = bytes([len(secrets)])
    for s in secrets:
        b = s.encode() if isinstance(s, str) else s
        assert len(b) < 48
        out += bytes([len(b)]) + b
    t = text.encode() if isinstance(text, str) else text
    return out + bytes([split]) + t


JSON_SECRET = 'p"ss\\w\n\u00e9\U0001F600'
rng = random.Random(20261203)
BINARY = bytes(rng.randrange(256) for _ in range(300))
HEX_RUN = "".join("\\u%04x" % ord(c) for c in "0123456789abcdef0123456789abcde".encode().hex())

SEEDS = {
    # Secrets present in one form or another.
    "valid-raw": seed(["hunter22"], "password=hunter22\nok hunter2\n"),
    "valid-hex": seed(["hunter22"], "68756e7465723232 68756E7465723232", split=1),
    "valid-base64-alone": seed(["hunter22"], "aHVudGVyMjI= aHVudGVyMjI -- aHVudGVyMjI", split=2),
    "valid-basic-auth": seed(["hunter22"], "Authorization: Basic dXNlcjpodW50ZXIyMg==\r\n"),
    "valid-base64-offsets": seed(
        ["hunter22"],
        " ".join(base64.b64encode(b"x" * p + b"hunter22" + b"y" * q).decode()
                 for p in range(4) for q in range(3))),
    "valid-base64url": seed([b"\xfb\xffhunter22?"], "t=-_9odW50ZXIyMj8 u=+/9odW50ZXIyMj8="),
    "valid-percent": seed(["p@ss w/rd+1"],
                          "GET /?pw=p%40ss%20w%2Frd%2B1 body pw=p%40ss+w%2frd%2b1&x /p%40ss%20w%2Frd+1/"),
    "valid-json": seed([JSON_SECRET],
                       '{"pw": "p\\"ss\\\\w\\n\\u00e9\\ud83d\\ude00", "x": "p\\u0022ss\\u005Cw\\u000A'
                       '\\u00E9\\uD83D\\uDE00"}'),
    "valid-base64-in-url-and-json": seed([b"\xfb\xffhunter22?"],
                                         '?t=%2B%2F9odW50ZXIyMj8%3D {"t":"+\\/9odW50ZXIyMj8="}'),
    "valid-overlap": seed(["abcdef", "defghi"], "xxabcdefghixx xxdefghiabcdefxx", split=3),
    "valid-prefix": seed(["abcd", "abcdefgh"], "abcdefgh abcd abcdefg abcdabcd"),
    "valid-four-secrets": seed(["hunter22", "s3cr3t!", "p@ss w/rd+1", "tok_0123456789"],
                               "hunter22 s3cr3t! p%40ss+w%2Frd%2B1 dG9rXzAxMjM0NTY3ODk= tok_0123"),
    # Boundaries.
    "edge-empty": b"",
    "edge-no-secrets": seed([], "nothing to hide\n"),
    "edge-short-secrets": seed(["", "a", "abc"], "abc ab a"),
    "edge-four-bytes": seed(["abcd"], "abcd YWJjZA== 61626364 %61%62%63%64 \\u0061bcd"),
    "edge-longest-secret": seed(["Z" * 47], "Z" * 100 + "\n" + base64.b64encode(b"Z" * 47).decode()),
    "edge-secret-at-ends": seed(["hunter22"], "hunter22 middle hunter22", split=0),
    "edge-split-seed-255": seed(["hunter22"], "a hunter22 b " * 20, split=255),
    # Hostile.
    "hostile-binary": seed([BINARY[:20], BINARY[20:40]], BINARY[40:] + BINARY[:20]),
    "hostile-nul": seed([b"\0\0\0\0"], b"\0" * 10 + b"AAAAAA==" + b"%00%00%00%00"),
    "hostile-escapes": seed(["hunter22"],
                            "%%%4%zz\\\\\\uD83D\\u12G\\uDE00\\uD83D\\u0068unter22\\q\\"),
    "hostile-secret-with-replacement": seed(["x***", "abcd"], "xabcd ***abcd***"),
    "hostile-long-holdback": seed(["0123456789abcdef0123456789abcdef"], HEX_RUN),
    "hostile-truncated": seed(["hunter22"], "")[:5],
}


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
