#!/usr/bin/env bash
# BullMQ peer benchmark: run.sh [N]
#
# Runs setup.sh, then for each Redis persistence mode starts a private redis-server on a free
# loopback port with its own temp dir, runs bench.mjs against it and stops it again.
# stdout: JSON lines only (first a versions line, then one line per mode x workload).
#
# Environment:
#   BULLMQ_BENCH_N      jobs per round when no N argument is given (5000)
#   BULLMQ_BENCH_MODES  modes to run, in order ("aof_always no_persistence")
#   BENCH_ROUNDS, BENCH_LAT_SAMPLES, BENCH_INFLIGHT, BENCH_BULK, BENCH_WORKLOADS
#                       passed through to bench.mjs (see its header)
#   TMPDIR              where the per-mode Redis data dirs are created (/tmp)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
n="${1:-${BULLMQ_BENCH_N:-5000}}"
modes="${BULLMQ_BENCH_MODES:-aof_always no_persistence}"

if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [N]   (N = jobs per round, positive integer)" >&2
    exit 2
fi

"$here/setup.sh"

redis_server="$(command -v redis-server || echo /usr/bin/redis-server)"
redis_cli="$(command -v redis-cli || echo /usr/bin/redis-cli)"

redis_pid=""
redis_dir=""
stop_redis() {
    if [[ -n "$redis_pid" ]] && kill -0 "$redis_pid" 2>/dev/null; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    redis_pid=""
    if [[ -n "$redis_dir" ]]; then
        rm -rf -- "$redis_dir"
    fi
    redis_dir=""
}
trap stop_redis EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1: let the kernel pick one (python3), else probe upwards.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local p
    for ((p = 20000 + RANDOM % 20000; p < 65535; p++)); do
        if ! (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

start_redis() { # mode
    local mode="$1" port
    local -a persist
    case "$mode" in
        aof_always) persist=(--appendonly yes --appendfsync always) ;;
        no_persistence) persist=(--appendonly no) ;;
        *) echo "unknown mode $mode (aof_always | no_persistence)" >&2; return 2 ;;
    esac
    redis_dir="$(mktemp -d "${TMPDIR:-/tmp}/bullmq-bench-redis.XXXXXX")"
    local attempt
    for attempt in 1 2 3; do
        port="$(free_port)"
        "$redis_server" --bind 127.0.0.1 --port "$port" --dir "$redis_dir" \
            --save "" "${persist[@]}" --daemonize no --protected-mode yes \
            --logfile "$redis_dir/redis.log" &
        redis_pid=$!
        local i
        for ((i = 0; i < 100; i++)); do
            if [[ "$("$redis_cli" -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" == PONG ]]; then
                redis_port="$port"
                return 0
            fi
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.05
        done
        # Port lost to a race, or redis failed: show its log and retry on another port.
        echo "redis-server did not come up on port $port (attempt $attempt):" >&2
        tail -n 5 "$redis_dir/redis.log" >&2 || true
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
        redis_pid=""
    done
    return 1
}

redis_port=""
header=1
start_s=$SECONDS
for mode in $modes; do
    start_redis "$mode"
    echo "run.sh: mode=$mode redis pid=$redis_pid port=$redis_port dir=$redis_dir" >&2
    data_fs="$(stat -f -c %T "$redis_dir" 2>/dev/null || echo unknown)"
    (
        cd "$here"
        REDIS_HOST=127.0.0.1 REDIS_PORT="$redis_port" BENCH_MODE="$mode" BENCH_N="$n" \
            BENCH_HEADER="$header" BENCH_DATA_FS="$data_fs" node bench.mjs
    )
    header=0
    stop_redis
done
echo "run.sh: total $((SECONDS - start_s)) s" >&2
