#!/usr/bin/env bash
# Automan's queue against BullMQ, same workloads, same N, same machine, one go:
#
#   bench/queue_vs_bullmq.sh [N] [rounds]        (N = 5000, rounds = 3)
#
# Runs bench/peers/bullmq/run.sh N (BullMQ on a private Redis, modes aof_always and
# no_persistence), then queue_bench N rounds --sections=dispatch,latency (SQLite durable and
# fast, PostgreSQL when available), and prints Automan/BullMQ per workload:
#   sqlite_durable vs aof_always     (both fsync every commit before answering)
#   postgres       vs aof_always     (PostgreSQL, synchronous_commit=on)
#   sqlite_fast    vs no_persistence (neither fsyncs; Redis keeps nothing at all)
# Rates: ratio > 1 means Automan is faster. Latency: ratio < 1 means Automan is quicker.
#
# Environment:
#   QUEUE_BENCH       the queue_bench binary (build/release/bench/queue_bench)
#   QUEUE_BENCH_ARGS  extra arguments for it (e.g. --no-pg, --pg=URL)
#   KEEP_DIR          keep both sides' raw output (JSON lines) in this directory
# BullMQ's own knobs (BULLMQ_BENCH_MODES, BENCH_*) pass through to run.sh; BENCH_ROUNDS is
# set from `rounds`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
n="${1:-5000}"
rounds="${2:-3}"
queue_bench="${QUEUE_BENCH:-$root/build/release/bench/queue_bench}"

if ! [[ "$n" =~ ^[1-9][0-9]*$ && "$rounds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [N] [rounds]" >&2
    exit 2
fi
if [[ ! -x "$queue_bench" ]]; then
    echo "$queue_bench not found: run \`make build\` first (or set QUEUE_BENCH)" >&2
    exit 1
fi

out="${KEEP_DIR:-}"
if [[ -z "$out" ]]; then
    out="$(mktemp -d "${TMPDIR:-/tmp}/queue-vs-bullmq.XXXXXX")"
    trap 'rm -rf -- "$out"' EXIT
else
    mkdir -p "$out"
fi

# fdatasync latency at the moment: every durable figure waits for it, and on shared or
# throttled disks it moves between runs (queue_bench prints its own at its start).
fsync_probe() {
    python3 - "${TMPDIR:-/tmp}" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], f"fsync-probe-{os.getpid()}")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
ms = []
for i in range(200):
    os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
    t = time.perf_counter()
    os.fdatasync(fd)
    ms.append((time.perf_counter() - t) * 1e3)
os.close(fd)
os.unlink(path)
ms.sort()
print(f"{ms[len(ms) // 2]:.3f} {ms[int(len(ms) * 0.99)]:.3f}")
PY
}
read -r bull_fsync50 bull_fsync99 < <(fsync_probe)

echo "queue_vs_bullmq: BullMQ, N=$n, $rounds rounds ..." >&2
BENCH_ROUNDS="$rounds" "$here/peers/bullmq/run.sh" "$n" >"$out/bullmq.jsonl"
echo "queue_vs_bullmq: Automan, N=$n, $rounds rounds ..." >&2
# shellcheck disable=SC2086  # QUEUE_BENCH_ARGS is a list of words on purpose
"$queue_bench" "$n" "$rounds" --sections=dispatch,latency ${QUEUE_BENCH_ARGS:-} \
    >"$out/automan.txt"

python3 - "$out/bullmq.jsonl" "$out/automan.txt" "$bull_fsync50" "$bull_fsync99" <<'EOF'
import json, sys

def lines(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                yield json.loads(line)

bull = {(o["mode"], o["workload"]): o for o in lines(sys.argv[1]) if "workload" in o}
auto = {(o["mode"], o["workload"]): o for o in lines(sys.argv[2]) if "workload" in o}
head = [o for o in lines(sys.argv[1]) if o.get("kind") == "versions"]
if head:
    h = head[0]
    print(f"BullMQ {h.get('bullmq')} / Redis {h.get('redis')} / Node {h.get('node')}, "
          f"N={h.get('n')}, {h.get('rounds')} rounds, Redis data on {h.get('data_fs')}")
a_head = [o for o in lines(sys.argv[2]) if o.get("kind") == "versions"]
a_fsync = (f"{a_head[0].get('fsync_p50_ms', 0):.3f}/{a_head[0].get('fsync_p99_ms', 0):.3f} ms"
           if a_head else "?")
print(f"fdatasync p50/p99 (4 KiB): before BullMQ {float(sys.argv[3]):.3f}/"
      f"{float(sys.argv[4]):.3f} ms, before Automan {a_fsync}")

pairs = [("sqlite_durable", "aof_always"), ("postgres", "aof_always"),
         ("sqlite_fast", "no_persistence")]
workloads = ["add", "add_bulk", "process_c1", "process_c32", "dispatch_c32"]
print(f"{'Automan mode':<15} {'BullMQ mode':<15} {'workload':<13} {'Automan':>12} "
      f"{'BullMQ':>12} {'Automan/BullMQ':>15}")
for a_mode, b_mode in pairs:
    for w in workloads:
        a, b = auto.get((a_mode, w)), bull.get((b_mode, w))
        if not a or not b:
            continue
        ar, br = a["median_per_s"], b["median_per_s"]
        print(f"{a_mode:<15} {b_mode:<15} {w:<13} {ar:>10.0f}/s {br:>10.0f}/s "
              f"{ar / br:>14.2f}x")
    a, b = auto.get((a_mode, "latency")), bull.get((b_mode, "latency"))
    if a and b:
        for p in ("p50", "p99"):
            am, bm = a[p + "_ms"], b[p + "_ms"]
            print(f"{a_mode:<15} {b_mode:<15} {'latency ' + p:<13} {am:>9.3f} ms "
                  f"{bm:>9.3f} ms {am / bm:>14.2f}x  (lower is better)")
EOF
