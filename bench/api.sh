#!/usr/bin/env bash
# Benchmarks of `automan server` (the REST API, its streams, its start-up), one go:
#
#   bench/api.sh [SECTIONS] [ROUNDS]          (SECTIONS = get,post,sse,idle,ready; ROUNDS = 3)
#
# Sections (each prints its figures; a table against the issue's goals comes last):
#   get    GET /healthz (no store access) and GET /api/v1/runs/{id} with wrk (64 keep-alive
#          connections, closed loop: throughput), with the server's access log on (its
#          default) and off; then the latency at a fixed rate with bench/api_load (open loop,
#          latency from each request's due time): at 25,000/s (half the 50,000/s goal) and at
#          half the throughput just measured.
#   post   POST /api/v1/runs with wrk (64 connections), --workers 0 (runs stay queued: the
#          API + the durable enqueue) and --workers 4 (a worker runs them meanwhile); then
#          POST /api/v1/runs/batch with 10,000 runs per request (2 connections), --workers 0.
#          A fresh store per round; the runs the store holds afterwards are checked against
#          the 201 answers.
#   sse    bench/api_sse: SSE subscribers of a run whose step prints timestamped lines;
#          latency from the line's write to each subscriber, the server's RSS, its CPU per
#          line delivered and (10,000 subscribers) while every stream waits idle: 1 subscriber
#          at 100,000 lines/s; 100 at 1,000 lines/s while an unwatched run prints 99,000/s;
#          10,000 at 10 and at 1 line/s; 100 at 100,000 lines/s each (one round).
#   idle   start to GET /healthz 200 (serving) and to GET /readyz 200 (ready), RSS and CPU
#          after 2 s idle, empty store, --workers 4 (the default) and --workers 0
#          (bench/api_ready, 5 starts each).
#   ready  the same with 1,000,000 runs in the store: created with the batch endpoint, due in
#          2099 (PENDING; --workers 4), then marked finished in the store (--workers 4 and 0).
#
# Authentication: every server is started with AUTOMAN_ADMIN_PASSWORD (so its new store gets
# the user admin with that password), and the script logs in once per server with curl
# (POST /api/v1/auth/login, "token": true). Every request then carries `Authorization: Bearer
# TOKEN`: curl's, wrk's (bench/api_wrk.lua), api_load's and api_sse's (all read the token
# from AUTOMAN_TOKEN, set for each command), api_ready's (it logs in itself for --fill).
# Servers run with `--api-rate-limit 0`: the per-subject API rate limit (default 500
# requests/s, burst 5,000) would otherwise throttle the load generators, which all send as
# one subject, to 500/s. The rate limiter's own cost is thus not in these figures
# (bench/auth_bench measures it in process). A login's argon2id verification allocates 64 MiB,
# so the server's VmHWM is reset after the login (/proc/PID/clear_refs), to keep the SSE
# memory figures about the streams. A binary from before authentication (no
# --api-rate-limit in its `server --help`) is run without either: AUTOMAN=path/to/old/automan
# gives a same-go baseline.
#
# How the 2 cores are split: "pinned" runs the server (and the processes its runs start) on
# CPU 0 (`taskset -c 0`) and the load generator on CPU 1 (`taskset -c 1`); "unpinned" lets
# the kernel place both. SPLITS chooses (default "pinned unpinned"; sse: see SSE_SPLITS).
#
# Environment:
#   AUTOMAN         the binary (build/release/automan); BENCH_BIN its bench dir
#   AUTOMAN_ADMIN_PASSWORD  the admin password the servers are started with (>= 8 bytes;
#                   default: a fixed bench-only one)
#   DURATION        seconds per wrk / api_load round (8)
#   SPLITS          "pinned unpinned"; SSE_SPLITS "pinned"
#   SSE_CASES       only these sse cases, comma-separated (e.g. "10000x10,100x1k+99k")
#   ACCESS_LOGS     access-log settings for `get` ("on off")
#   FILL            runs in the store for `ready` (1000000)
#   KEEP_DIR        keep the raw output (results.jsonl: one JSON line per figure) there
# The server's stderr (JSON logs, the access log) goes to /dev/null.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
sections="${1:-get,post,sse,idle,ready}"
rounds="${2:-3}"
automan="${AUTOMAN:-$root/build/release/automan}"
bin="${BENCH_BIN:-$root/build/release/bench}"
duration="${DURATION:-8}"
splits="${SPLITS:-pinned unpinned}"
sse_splits="${SSE_SPLITS:-pinned}"
access_logs="${ACCESS_LOGS:-on off}"
fill="${FILL:-1000000}"

if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [get,post,sse,idle,ready] [rounds]" >&2
    exit 2
fi
for f in "$automan" "$bin/api_load" "$bin/api_sse" "$bin/api_ready"; do
    if [[ ! -x "$f" ]]; then
        echo "$f not found: build it (make build, or cmake --build --preset release --target automan api_load api_sse api_ready)" >&2
        exit 1
    fi
done
for tool in wrk taskset python3 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
export AUTOMAN_ADMIN_PASSWORD="${AUTOMAN_ADMIN_PASSWORD:-automan-bench-admin-password}"
if [[ "${#AUTOMAN_ADMIN_PASSWORD}" -lt 8 ]]; then
    echo "AUTOMAN_ADMIN_PASSWORD must be at least 8 bytes" >&2
    exit 2
fi
# A binary from before authentication has neither the flag nor the login route.
if "$automan" server --help 2>&1 | grep -q -- '--api-rate-limit'; then
    with_auth=1
    auth_flags=(--api-rate-limit 0)
else
    with_auth=0
    auth_flags=()
fi
token=""      # the admin's token on the running server ("" without authentication)
auth_h=()     # curl's -H for it

work="$(mktemp -d "${TMPDIR:-/tmp}/automan-api-bench.XXXXXX")"
out="${KEEP_DIR:-$work}"
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf -- "$work"
}
trap cleanup EXIT

# 10,000 streams need as many descriptors in the server and in the client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# The runbooks the benchmarks run: one `true` step; a step printing timestamped lines.
mkdir -p "$work/runbooks"
cat >"$work/runbooks/bench-noop.yaml" <<'EOF'
id: bench-noop
name: One true step
description: The cheapest run (bench/api.sh).
steps:
  - id: noop
    argv: ["true"]
EOF
cat >"$work/runbooks/bench-emit.yaml" <<EOF
id: bench-emit
name: Timestamped lines
description: Prints RATE lines per second for SECONDS once GO_FILE exists (bench/api_sse.cpp).
params:
  rate: {type: int, default: 1000}
  seconds: {type: int, default: 10}
  go_file: {type: string, default: ""}
steps:
  - id: emit
    shell: exec '$bin/api_sse' emit --rate="\$AUTOMAN_PARAM_RATE" --seconds="\$AUTOMAN_PARAM_SECONDS" --go-file="\$AUTOMAN_PARAM_GO_FILE"
    timeout: 10m
EOF

pin_server() { if [[ "$1" == pinned ]]; then echo "taskset -c 0"; fi; }
pin_client() { if [[ "$1" == pinned ]]; then echo "taskset -c 1"; fi; }

# login: a token of admin on the server at $port into token and auth_h (nothing for a binary
# from before authentication). The password goes to curl on stdin, never in argv.
login() {
    token=""
    auth_h=()
    [[ "$with_auth" == 1 ]] || return 0
    token="$(python3 -c 'import json, os; print(json.dumps({"username": "admin", "password": os.environ["AUTOMAN_ADMIN_PASSWORD"], "token": True}))' |
        curl -s -X POST -H 'Content-Type: application/json' --data-binary @- \
            "http://127.0.0.1:$port/api/v1/auth/login" |
        python3 -c 'import json, sys; print(json.load(sys.stdin).get("token", ""))' 2>/dev/null || true)"
    if [[ -z "$token" ]]; then
        echo "cannot log in as admin on the server (port $port)" >&2
        exit 1
    fi
    auth_h=(-H "Authorization: Bearer $token")
    # The login's argon2id verification took 64 MiB for a moment: start VmHWM afresh.
    echo 5 >"/proc/$server_pid/clear_refs" 2>/dev/null || true
}

# start_server SPLIT FLAGS...: a server on a fresh data directory, logged in to; sets
# server_pid, port, token.
start_server() {
    local split="$1"
    shift
    local dir
    dir="$(mktemp -d "$work/server.XXXXXX")"
    # shellcheck disable=SC2046  # the pin prefix is a list of words
    $(pin_server "$split") "$automan" server --listen 127.0.0.1:0 --data "$dir/data" \
        --runbooks "$work/runbooks" --max-streams 20000 --max-streams-per-subject 20000 \
        "${auth_flags[@]}" "$@" >"$dir/stdout" 2>/dev/null &
    server_pid=$!
    for _ in $(seq 1 400); do
        if grep -q '^listening on' "$dir/stdout" 2>/dev/null; then
            port="$(sed -n 's/^listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$dir/stdout")"
            login
            return 0
        fi
        sleep 0.025
    done
    echo "the server did not start (flags: $*)" >&2
    exit 1
}
stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    token=""
    auth_h=()
}

# tag TAG: the JSON lines of stdin, with "tag" added, appended to results.jsonl.
tag() { grep '^{' | sed "s|^{|{\"tag\":\"$1\",\"loadavg\":\"$(cut -d' ' -f1 /proc/loadavg)\",|" >>"$results"; }

# Server CPU in clock ticks (user + system, all threads).
server_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }

# wrk_round TAG SPLIT CONNECTIONS URL: one wrk run, its JSON line tagged (with the server's
# CPU per request added), a short summary.
wrk_round() {
    local t="$1" split="$2" c="$3" url="$4" o c0 c1 json
    c0="$(server_ticks)"
    # shellcheck disable=SC2046
    o="$(AUTOMAN_TOKEN="$token" $(pin_client "$split") wrk -t1 -c"$c" -d"${duration}s" --timeout 30s -s "$here/api_wrk.lua" "$url")"
    c1="$(server_ticks)"
    json="$(grep '^{' <<<"$o" | python3 -c 'import json,sys; o=json.load(sys.stdin); t=(int(sys.argv[2])-int(sys.argv[1]))/int(sys.argv[3]); o["server_cpu_s"]=t; o["server_cpu_us_per_req"]=round(t*1e6/max(1,o["requests"]),1); print(json.dumps(o))' "$c0" "$c1" "$(getconf CLK_TCK)")"
    tag "$t" <<<"$json"
    python3 - "$t" "$json" <<'EOF'
import json, sys
o = json.loads(sys.argv[2])
errors = o["errors_status"] + o["errors_read"] + o["errors_connect"] + o["errors_timeout"]
print(f"  {sys.argv[1]}: {o['rps']:,.0f} req/s, {o['runs_per_s']:,.0f} runs/s, "
      f"wrk p99 {o['p99_ms']:.2f} ms, errors {errors}, server CPU "
      f"{o['server_cpu_us_per_req']:.1f} µs per request ({100 * o['server_cpu_s'] / o['seconds']:.0f}% of a core)")
EOF
}

median_of() {  # median_of TAG FIELD
    python3 - "$results" "$1" "$2" <<'EOF'
import json, statistics, sys
v = [json.loads(l)[sys.argv[3]] for l in open(sys.argv[1]) if json.loads(l).get("tag") == sys.argv[2]]
print(f"{statistics.median(v):.0f}" if v else 0)
EOF
}

echo "== api bench: $(date -u +%FT%TZ), sections $sections, $rounds rounds, ${duration}s each"
"$bin/api_ready" --probe="$work" | tee >(tag conditions) | grep -v '^{'
echo "  ulimit -n $(ulimit -n); binary $automan ($(stat -c %y "$automan" | cut -d. -f1)); $(
    [[ "$with_auth" == 1 ]] && echo "authentication on (admin's bearer token, --api-rate-limit 0)" ||
        echo "a binary from before authentication (no credentials sent)")"

if [[ ",$sections," == *,get,* ]]; then
    echo "== get: wrk -t1 -c64 (closed loop), server defaults (--workers 4)"
    for split in $splits; do
        for log in $access_logs; do
            start_server "$split" --access-log "$log"
            id="$(curl -s "${auth_h[@]}" -X POST -d '{"runbook":"bench-noop","params":{}}' \
                "http://127.0.0.1:$port/api/v1/runs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
            sleep 1  # the run finishes: GET returns a finished run with its step
            for _ in $(seq 1 "$rounds"); do
                wrk_round "get/healthz/$split/log-$log" "$split" 64 "http://127.0.0.1:$port/healthz"
                wrk_round "get/run/$split/log-$log" "$split" 64 "http://127.0.0.1:$port/api/v1/runs/$id"
            done
            stop_server
        done
    done
    echo "== get: latency at a fixed rate (api_load, 64 connections, open loop, ${duration}s + 2s warm-up)"
    for split in $splits; do
        start_server "$split"
        id="$(curl -s "${auth_h[@]}" -X POST -d '{"runbook":"bench-noop","params":{}}' \
            "http://127.0.0.1:$port/api/v1/runs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
        sleep 1
        for ep in healthz run; do
            path=/healthz
            [[ "$ep" == run ]] && path="/api/v1/runs/$id"
            half="$(( $(median_of "get/$ep/$split/log-on" rps) / 2 ))"
            for rate in 25000 "$half"; do
                [[ "$rate" -gt 0 ]] || continue
                for _ in $(seq 1 "$rounds"); do
                    # shellcheck disable=SC2046
                    AUTOMAN_TOKEN="$token" $(pin_client "$split") "$bin/api_load" "127.0.0.1:$port" "$path" --rate="$rate" \
                        --connections=64 --seconds="$duration" --warmup=2 --label="GET $ep" --server-pid="$server_pid" \
                        | tee >(tag "lat/$ep/$split/$([[ $rate == 25000 ]] && echo 25k || echo half)") \
                        | grep -v '^{' | sed 's/^/  /' || true
                done
            done
        done
        stop_server
    done
fi

if [[ ",$sections," == *,post,* ]]; then
    echo "== post: POST /api/v1/runs (wrk -t1 -c64), fresh store each round"
    body='{"runbook":"bench-noop","params":{}}'
    for split in $splits; do
        for workers in 0 4; do
            for _ in $(seq 1 "$rounds"); do
                start_server "$split" --workers "$workers"
                API_WRK_METHOD=POST API_WRK_BODY="$body" \
                    wrk_round "post/single/$split/workers-$workers" "$split" 64 "http://127.0.0.1:$port/api/v1/runs"
                echo "    store: $(curl -s "${auth_h[@]}" "http://127.0.0.1:$port/api/v1/queue/stats")"
                stop_server
            done
        done
    done
    echo "== post: POST /api/v1/runs/batch, 10,000 runs per request (wrk -t1 -c2), --workers 0"
    for split in $splits; do
        for _ in $(seq 1 "$rounds"); do
            start_server "$split" --workers 0
            API_WRK_BATCH=10000 API_WRK_RUNBOOK=bench-noop \
                wrk_round "post/batch/$split/workers-0" "$split" 2 "http://127.0.0.1:$port/api/v1/runs/batch"
            echo "    store: $(curl -s "${auth_h[@]}" "http://127.0.0.1:$port/api/v1/queue/stats")"
            stop_server
        done
    done
fi

if [[ ",$sections," == *,sse,* ]]; then
    echo "== sse: subscribers of a run whose step prints timestamped lines (api_sse); server --access-log off"
    # case name, subscribers, watched lines/s, unwatched lines/s, seconds, rounds, seconds
    # all subscribers wait before the lines start (the server's CPU meanwhile is measured)
    cases=(
        "1x100k 1 100000 0 10 $rounds 0"
        "100x1k+99k 100 1000 99000 10 $rounds 0"
        "10000x10 10000 10 0 10 $rounds 5"
        "10000x1 10000 1 0 10 $rounds 5"
        "100x100k 100 100000 0 2 1 0"
    )
    for split in $sse_splits; do
        for c in "${cases[@]}"; do
            read -r name subs rate bg secs n idle <<<"$c"
            [[ -z "${SSE_CASES:-}" || ",$SSE_CASES," == *",$name,"* ]] || continue
            for _ in $(seq 1 "$n"); do
                start_server "$split" --access-log off
                # shellcheck disable=SC2046
                AUTOMAN_TOKEN="$token" $(pin_client "$split") "$bin/api_sse" subscribe "127.0.0.1:$port" --subscribers="$subs" \
                    --rate="$rate" --background-rate="$bg" --seconds="$secs" --server-pid="$server_pid" \
                    --go-dir="$work" --idle="$idle" --timeout=$((secs + idle + 90)) \
                    | tee >(tag "sse/$name/$split") | grep -v '^{' | sed 's/^/  /' || true
                stop_server
            done
        done
    done
fi

if [[ ",$sections," == *,idle,* ]]; then
    echo "== idle: start to /healthz and /readyz 200 and RSS after 2 s idle, empty store (unpinned)"
    for workers in 4 0; do
        "$bin/api_ready" "$automan" --data="$work/idle-$workers" --starts=5 --settle=2 \
            --label="empty store, --workers $workers" -- --workers "$workers" "${auth_flags[@]}" \
            | tee >(tag "idle/workers-$workers") | grep -v '^{' | sed 's/^/  /'
    done
fi

if [[ ",$sections," == *,ready,* ]]; then
    echo "== ready: start to /healthz and /readyz 200 with $fill runs in the store (unpinned)"
    # First as created (PENDING, due in 2099: the worker has nothing to claim but looks),
    # then all finished (what a store that has served for a while holds).
    "$bin/api_ready" "$automan" --data="$work/full" --fill="$fill" --starts=5 --settle=2 \
        --label="$fill PENDING runs due in 2099, --workers 4" -- --workers 4 "${auth_flags[@]}" \
        | tee >(tag "ready/delayed/workers-4") | grep -v '^{' | sed 's/^/  /'
    for workers in 4 0; do
        finish=()
        [[ "$workers" == 4 ]] && finish=(--finish)
        "$bin/api_ready" "$automan" --data="$work/full" "${finish[@]}" --starts=5 --settle=2 \
            --label="$fill finished runs, --workers $workers" -- --workers "$workers" "${auth_flags[@]}" \
            | tee >(tag "ready/finished/workers-$workers") | grep -v '^{' | sed 's/^/  /'
    done
fi

sleep 0.5  # the tee'd taggers finish
echo "== summary (medians over rounds; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
python3 - "$results" "$fill" <<'EOF'
import json, statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    o = json.loads(line)
    rows[o["tag"]].append(o)
def med(tag, field):
    v = [o[field] for o in rows.get(tag, []) if field in o]
    return statistics.median(v) if v else None
def fmt(v, unit="", d=0):
    return "—" if v is None else f"{v:,.{d}f}{unit}"
def mark(v, goal, lower_is_better=False):
    if v is None: return ""
    return "✔" if (v <= goal if lower_is_better else v >= goal) else "✘"
print(f"{'figure':<62} {'median':>14} {'goal':>12}")
def line(name, v, goal_text, ok, unit="", d=0, extra=""):
    print(f"{name:<62} {fmt(v, unit, d):>14} {goal_text:>12} {ok:<2} {extra}".rstrip())
def cpu(tag):
    v = med(tag, "server_cpu_us_per_req")
    return "" if v is None else f"server CPU {v:.1f} µs/request"
for split in ("pinned", "unpinned"):
    for log in ("on", "off"):
        v = med(f"get/run/{split}/log-{log}", "rps")
        if v is not None:
            line(f"GET /api/v1/runs/{{id}} req/s, {split}, access log {log}", v, ">= 50,000", mark(v, 50000),
                 extra=cpu(f"get/run/{split}/log-{log}"))
        v = med(f"get/healthz/{split}/log-{log}", "rps")
        if v is not None:
            line(f"GET /healthz req/s (baseline), {split}, access log {log}", v, "—", "",
                 extra=cpu(f"get/healthz/{split}/log-{log}"))
for split in ("pinned", "unpinned"):
    for ep in ("run", "healthz"):
        for which, label in (("25k", "half the goal"), ("half", "half its max")):
            rs = rows.get(f"lat/{ep}/{split}/{which}", [])
            if not rs: continue
            v = med(f"lat/{ep}/{split}/{which}", "p99_ms")
            rate = rs[0]["rate"]
            name = f"GET {'/api/v1/runs/{id}' if ep == 'run' else '/healthz'} p99 at {rate:,.0f}/s ({label}), {split}"
            line(name, v, "<= 5 ms" if ep == "run" else "—",
                 mark(v, 5, True) if ep == "run" else "", " ms", 2,
                 extra=f"p50 {fmt(med(f'lat/{ep}/{split}/{which}', 'p50_ms'), ' ms', 2)}, "
                       f"answered {fmt(med(f'lat/{ep}/{split}/{which}', 'answered_per_s'), '/s')}")
for split in ("pinned", "unpinned"):
    for w in (0, 4):
        v = med(f"post/single/{split}/workers-{w}", "rps")
        if v is not None:
            line(f"POST /api/v1/runs runs/s, {split}, --workers {w}", v, ">= 30,000", mark(v, 30000),
                 extra=cpu(f"post/single/{split}/workers-{w}"))
    v = med(f"post/batch/{split}/workers-0", "runs_per_s")
    if v is not None:
        line(f"POST /api/v1/runs/batch runs/s (10,000 per request), {split}", v, ">= 200,000", mark(v, 200000),
             extra=cpu(f"post/batch/{split}/workers-0").replace("request", "10,000 runs"))
for tagname in sorted(t for t in rows if t.startswith("sse/")):
    p99 = med(tagname, "p99_ms")
    hwm = med(tagname, "hwm_kb")
    o = rows[tagname][0]
    retried = sum(1 for r in rows[tagname] if r.get("attempts", 1) > 1)
    name = f"SSE {o['label']} (+{o['background_rate']:,.0f}/s unwatched), {tagname.split('/')[-1]}"
    line(name + ": p99", p99, "<= 50 ms", mark(p99, 50, True), " ms", 1,
         extra=f"p50 {fmt(med(tagname, 'p50_ms'), ' ms', 1)}" +
               (f"; {retried} of {len(rows[tagname])} rounds: the run was retried" if retried else ""))
    line("  server VmHWM", hwm / 1024 if hwm else None,
         "<= 150 MB" if o["subscribers"] >= 10000 else "—",
         mark(hwm * 1024 / 1e6 if hwm else None, 150, True) if o["subscribers"] >= 10000 else "",
         " MiB", 1, extra=f"with all subscribed, before the go: {med(tagname, 'rss_subscribed_kb') / 1024:.1f} MiB" +
                          (f"; CPU while they wait idle {med(tagname, 'idle_core_pct'):.0f}% of a core"
                           if (med(tagname, 'idle_s') or 0) > 0 else ""))
    line("  lines delivered per second (all subscribers)", med(tagname, "delivered_per_s"), "—", "",
         extra=f"server CPU {fmt(med(tagname, 'server_us_per_line'), ' µs', 1)} per line delivered")
for w in (4, 0):
    t = f"idle/workers-{w}"
    v = med(t, "rss_mib")
    if v is None: continue
    line(f"idle VmRSS, empty store, --workers {w}", v, "<= 20 MB", mark(v * 1.048576, 20, True), " MiB", 1,
         extra=f"idle CPU {fmt(med(t, 'idle_cpu_pct'), '% of a core', 1)}")
    line(f"start to /readyz 200, empty store, --workers {w}", med(t, "ready_ms"), "—", "", " ms", 1,
         extra=f"to /healthz 200 {fmt(med(t, 'serving_ms'), ' ms', 1)}")
for kind, w in (("finished", 4), ("finished", 0), ("delayed", 4)):
    t = f"ready/{kind}/workers-{w}"
    v = med(t, "ready_ms")
    if v is None: continue
    n = int(sys.argv[2])
    what = f"{n:,} finished runs" if kind == "finished" else f"{n:,} PENDING runs due in 2099"
    line(f"start to /readyz 200, {what}, --workers {w}", v, "<= 50 ms", mark(v, 50, True), " ms", 1,
         extra=f"to /healthz 200 {fmt(med(t, 'serving_ms'), ' ms', 1)}; "
               f"one /readyz {fmt(med(t, 'readyz_ms'), ' ms', 1)}")
    line(f"  idle VmRSS, --workers {w}", med(t, "rss_mib"), "—", "", " MiB", 1,
         extra=f"idle CPU {fmt(med(t, 'idle_cpu_pct'), '% of a core', 1)}")
EOF
if [[ -n "${KEEP_DIR:-}" ]]; then echo "raw figures: $results"; fi
