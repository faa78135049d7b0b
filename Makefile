# Automan: the two commands a new user needs are `make run` and `make test`.
.PHONY: all deps build run test check tsan format clean bench

all: build

deps:
	@scripts/deps.sh

# The release binary at build/release/automan.
build:
	@cmake --preset release >/dev/null
	@cmake --build --preset release

# The server on the embedded SQLite store in ./automan-data, at http://127.0.0.1:8080
# (override with AUTOMAN_LISTEN=ADDR:PORT or a config file: docs/configuration.md).
run: deps build
	./build/release/automan server

# deps + release build and suite + the whole suite under ASan/UBSan + the TSan subset.
test: deps
	@scripts/test.sh

# Fast loop while developing: the dev (ASan/UBSan) build and its suite only.
check:
	@cmake --preset dev >/dev/null
	@cmake --build --preset dev
	@ctest --preset dev

tsan:
	@cmake --preset tsan >/dev/null
	@cmake --build --preset tsan
	@ctest --preset tsan

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf build

# Benchmarks (release build); figures go to docs/benchmarks.md.
bench: build
	./build/release/bench/startup ./build/release/automan
	./build/release/bench/process_throughput
	./build/release/bench/log_ingestion
	./build/release/bench/queue_bench
	./build/release/bench/scheduler_bench
	./build/release/bench/auth_bench
	./bench/api.sh
