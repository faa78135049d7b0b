#!/usr/bin/env python3
"""Writes the seed corpus of step_command_fuzz: kRunStep payloads (see src/sandbox/wire.h).

Payload: u32 argc, argc strings, u32 envc, envc strings, string cwd, i64 timeout ms (-1: none),
i64 kill grace ms, u32 sandbox (0/1) and when 1: u32 flags (1 private pids, 2 no network),
u32 count + writable strings, u32 count + hidden strings, string run_as, i64 memory,
processes, cpu seconds, open files, file size; a string is a u32 length and its bytes. Native endianness, which is
little-endian on every platform the project builds for.

Run from anywhere: python3 tests/fuzz/make_step_command_corpus.py
It rewrites tests/fuzz/corpus/step_command/ (the output is deterministic).
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "step_command")
MAX_DURATION_MS = 24 * 366 * 3600 * 1000  # kMaxStepDuration


def u32(v):
    return struct.pack("<I", v)


def i64(v):
    return struct.pack("<q", v)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return u32(len(b)) + b


def sandbox(flags=1, writable=(), hidden=(), run_as="", limits=(0, 0, 0, 0, 0)):
    out = u32(1) + u32(flags)
    out += u32(len(writable)) + b"".join(string(w) for w in writable)
    out += u32(len(hidden)) + b"".join(string(h) for h in hidden)
    return out + string(run_as) + b"".join(i64(v) for v in limits)


def cmd(argv, env=(), cwd="", timeout=-1, grace=5000, sb=None):
    out = u32(len(argv)) + b"".join(string(a) for a in argv)
    out += u32(len(env)) + b"".join(string(e) for e in env)
    return out + string(cwd) + i64(timeout) + i64(grace) + (sb if sb is not None else u32(0))


TYPICAL = cmd(["/bin/sh", "-c", "echo hi"],
              ["PATH=/usr/bin:/bin", "HOME=/root", "AUTOMAN_RUN_ID=01HZX3"], "/tmp/work", 30000)

SEEDS = {
    # Decodes.
    "valid-minimal": cmd(["true"]),
    "valid-typical": TYPICAL,
    "valid-limits": cmd(["x"], timeout=MAX_DURATION_MS, grace=MAX_DURATION_MS),
    "valid-zero-timeout-grace": cmd(["x"], timeout=0, grace=0),
    "valid-odd-strings": cmd(["prog", "", "caf\u00e9", "a=b"], ["A=", "K=a=b", "E=\u00ff"], "/"),
    "valid-sandbox-default": cmd(["true"], sb=sandbox()),
    "valid-sandbox-typical": cmd(["/bin/sh", "-c", "echo hi"], ["PATH=/usr/bin:/bin"], "/w",
                                 sb=sandbox(3, ["/var/lib/automan/work/w-1", "/var/log/app"],
                                            ["/var/lib/automan"], "nobody",
                                            (64 << 20, 32, 90, 256, 1 << 30))),
    "err-sandbox-flag": cmd(["x"], sb=u32(2)),
    "err-sandbox-flags-unknown": cmd(["x"], sb=sandbox(flags=4)),
    "err-sandbox-relative-path": cmd(["x"], sb=sandbox(writable=["relative"])),
    "err-sandbox-negative-limit": cmd(["x"], sb=sandbox(limits=(-1, 0, 0, 0, 0))),
    "err-sandbox-processes-huge": cmd(["x"], sb=sandbox(limits=(0, 2**32, 0, 0, 0))),
    "err-sandbox-truncated": cmd(["x"], sb=sandbox(hidden=["/data"]))[:-9],
    # Framing errors: truncated, trailing, impossible counts and lengths.
    "err-empty": b"",
    "err-truncated-count": b"\x01\x00\x00",
    "err-truncated-string": u32(1) + u32(100) + b"short",
    "err-truncated-durations": TYPICAL[:-4],
    "err-trailing-bytes": TYPICAL + b"\x00",
    "err-argc-huge": u32(0xFFFFFFFF) + string("x"),
    "err-envc-huge": u32(1) + string("x") + u32(0x40000000) + string("A=b"),
    "err-string-length-huge": u32(1) + u32(0xFFFFFFFF) + b"x" * 28,
    # Decodes, then fails ValidateStepCommand (or the timeout check before it).
    "err-no-argv": cmd([]),
    "err-empty-argv0": cmd(["", "arg"]),
    "err-nul-in-argv": cmd(["prog", "a\0b"]),
    "err-env-no-equals": cmd(["x"], ["NOEQUALS"]),
    "err-env-empty-key": cmd(["x"], ["=value"]),
    "err-env-nul": cmd(["x"], ["SECRET=a\0b"]),
    "err-cwd-nul": cmd(["x"], cwd="/tmp\0/etc"),
    "err-timeout-negative": cmd(["x"], timeout=-2),
    "err-timeout-too-long": cmd(["x"], timeout=MAX_DURATION_MS + 1),
    "err-grace-negative": cmd(["x"], grace=-1),
    "err-timeout-int64-max": cmd(["x"], timeout=2**63 - 1),
    "err-grace-int64-min": cmd(["x"], grace=-(2**63)),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {OUT}")


if __name__ == "__main__":
    main()
