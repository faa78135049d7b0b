// Queue benchmarks: what the queue (src/queue) and the worker (src/worker) cost, on the
// SQLite store (durable and fast) and PostgreSQL. Prints a text table and one JSON line per
// figure (lines starting with '{'; bench/queue_vs_bullmq.sh parses them). Every figure is
// the median of `rounds` rounds, each on a fresh store. No assertions: figures only.
// Next to each rate it prints the CPU time per run (user + system, all threads of this
// process; for runs with steps also the shims and the steps), which moves far less than
// wall-clock rates when other work shares the machine, and at start the fdatasync latency
// of the scratch disk, which every durable commit waits for.
//
//   build/release/bench/queue_bench [N] [rounds] [options]
//
//   N          runs per round of the dispatch workloads (20000)
//   rounds     rounds per figure (3)
//   --pg=URL   PostgreSQL to use (also AUTOMAN_BENCH_PG_URL). Without one, and with the
//              PostgreSQL binaries installed, a throw-away cluster is started with
//              scripts/pg-test-cluster.sh in a temporary directory and stopped at the end.
//              Each round uses a fresh schema (created and dropped with psql).
//   --no-pg    skip PostgreSQL
//   --sections=dispatch,latency,spawn,idle        (all)
//   --modes=sqlite_durable,sqlite_fast,postgres   (all)
//   --workloads=add,add_bulk,process_c1,process_c32,dispatch_c32   (all)
//   --inflight=64 --bulk=1000 --latency-samples=1000
//   --spawn-runs=3000 --spawn-concurrency=2xcores
//   --idle-runs=1000 --idle-sleep=5
//   --keep     keep the scratch directory with the SQLite files
//
// Sections (docs/benchmarks.md, "Queue", has the figures and how to read them):
//   1. dispatch: enqueue -> claim -> complete through Queue + Worker with a no-op executor.
//      Workloads as bench/peers/bullmq: add, add_bulk, process_c1, process_c32, dispatch_c32.
//   2. latency: enqueue -> executor start on an idle worker (concurrency 1), one at a time.
//   3. spawn: runs of one `/bin/true` step through the real EngineExecutor, worker
//      concurrency 2 x cores, against raw posix_spawn+wait of /bin/true in the same go.
//   4. idle: 1000 concurrently running runs of `sleep 5`: time to all started, peak RSS of
//      this process, RSS and PSS of the shims, CPU to all started / while waiting / to all
//      finished. When the shims start slower than the runs end, it says so (then try
//      --idle-sleep=30).
#include "queue/queue.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "engine/engine.h"
#include "sandbox/supervisor.h"
#include "worker/worker.h"

#ifndef AUTOMAN_SOURCE_DIR
#define AUTOMAN_SOURCE_DIR "."
#endif

using namespace automan;
using namespace automan::bench;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------------------
// Options

struct Config {
  int n = 20000;
  int rounds = 3;
  std::string pg_url;
  bool pg = true;
  std::set<std::string> sections{"dispatch", "latency", "spawn", "idle"};
  std::vector<std::string> modes{"sqlite_durable", "sqlite_fast", "postgres"};
  std::vector<std::string> workloads{"add", "add_bulk", "process_c1", "process_c32",
                                     "dispatch_c32"};
  int inflight = 64;
  int bulk = 1000;
  int latency_samples = 1000;
  int latency_warmup = 20;
  int spawn_runs = 3000;
  int spawn_concurrency = 0;  // 0: 2 x cores
  int idle_runs = 1000;
  int idle_sleep_s = 5;
  bool keep = false;  // keep the scratch directory (and the SQLite files) for a look
};

bool ParseArgs(int argc, char** argv, Config& c) {
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string_view name) -> std::optional<std::string> {
      std::string prefix = "--" + std::string(name) + "=";
      if (a.rfind(prefix, 0) == 0) return a.substr(prefix.size());
      return std::nullopt;
    };
    if (auto v = value("pg")) {
      c.pg_url = *v;
    } else if (a == "--keep") {
      c.keep = true;
    } else if (a == "--no-pg") {
      c.pg = false;
    } else if (auto v = value("sections")) {
      auto list = SplitCommas(*v);
      c.sections = {list.begin(), list.end()};
    } else if (auto v = value("modes")) {
      c.modes = SplitCommas(*v);
    } else if (auto v = value("workloads")) {
      c.workloads = SplitCommas(*v);
    } else if (auto v = value("inflight")) {
      c.inflight = std::atoi(v->c_str());
    } else if (auto v = value("bulk")) {
      c.bulk = std::atoi(v->c_str());
    } else if (auto v = value("latency-samples")) {
      c.latency_samples = std::atoi(v->c_str());
    } else if (auto v = value("spawn-runs")) {
      c.spawn_runs = std::atoi(v->c_str());
    } else if (auto v = value("spawn-concurrency")) {
      c.spawn_concurrency = std::atoi(v->c_str());
    } else if (auto v = value("idle-runs")) {
      c.idle_runs = std::atoi(v->c_str());
    } else if (auto v = value("idle-sleep")) {
      c.idle_sleep_s = std::atoi(v->c_str());
    } else if (!a.empty() && a[0] != '-' && positional == 0) {
      c.n = std::atoi(a.c_str());
      ++positional;
    } else if (!a.empty() && a[0] != '-' && positional == 1) {
      c.rounds = std::atoi(a.c_str());
      ++positional;
    } else {
      std::fprintf(stderr, "queue_bench: unknown argument \"%s\" (see bench/queue.cpp)\n",
                   a.c_str());
      return false;
    }
  }
  if (c.n < 1 || c.rounds < 1 || c.inflight < 1 || c.bulk < 1 || c.bulk > 100000 ||
      c.latency_samples < 1 || c.spawn_runs < 1 || c.idle_runs < 1 || c.idle_sleep_s < 1) {
    std::fprintf(stderr, "queue_bench: counts must be positive\n");
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Output: a text line per figure on stdout, and a JSON line for scripts.

std::string JsonNumbers(const std::vector<double>& v, int digits = 1) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ",";
    s += fmt::format("{:.{}f}", v[i], digits);
  }
  return s + "]";
}

// Nearest-rank percentile, as bench/peers/bullmq/bench.mjs.
std::string ModeDurability(const std::string& mode) {
  if (mode == "sqlite_durable")
    return "SQLite synchronous=FULL: every enqueue/claim/finish commit fsynced (group commit)";
  if (mode == "sqlite_fast")
    return "SQLite synchronous=NORMAL (WAL): no fsync per commit; survives a crash, not a power "
           "cut";
  if (mode == "postgres") return "PostgreSQL, synchronous_commit=on (fsync=on) for kWrite";
  return "";
}

// `cpu_us` (optional): this process's CPU time per run, all threads (user + system).
void PrintRate(const std::string& mode, const std::string& workload, int n,
               const std::vector<double>& per_round, const std::vector<double>& cpu_us = {}) {
  const double med = Median(per_round);
  std::string rounds;
  for (double r : per_round) rounds += fmt::format(" {:.0f}", r);
  std::string cpu_text, cpu_json;
  if (!cpu_us.empty()) {
    cpu_text = fmt::format("  cpu {:.0f} us/run", Median(cpu_us));
    cpu_json = fmt::format(",\"cpu_us_per_run\":{:.1f},\"per_round_cpu_us_per_run\":{}",
                           Median(cpu_us), JsonNumbers(cpu_us));
  }
  std::printf("  %-15s %-13s n=%-6d %10.0f /s%s   (rounds:%s)\n", mode.c_str(), workload.c_str(), n,
              med, cpu_text.c_str(), rounds.c_str());
  std::printf(
      "{\"peer\":\"automan\",\"mode\":\"%s\",\"workload\":\"%s\",\"n\":%d,\"rounds\":%zu,"
      "\"median_per_s\":%.1f,\"per_round_per_s\":%s%s}\n",
      mode.c_str(), workload.c_str(), n, per_round.size(), med, JsonNumbers(per_round).c_str(),
      cpu_json.c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------
// Stores: a fresh one per round.

std::string g_tmp;    // this process's scratch directory
bool g_keep = false;  // --keep

struct PgCluster {
  std::string dir;  // set when we started it
  std::string url;
};
PgCluster g_pg;

bool RunShell(const std::string& cmd) { return std::system(cmd.c_str()) == 0; }

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'') {
      out += "'\\''";
    } else {
      out += ch;
    }
  }
  return out + "'";
}

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Starts a throw-away cluster (as the ctest fixture `postgres` does) unless one was given.
std::string StartPg(const Config& c) {
  if (!c.pg) return "";
  if (!c.pg_url.empty()) return c.pg_url;
  if (const char* env = std::getenv("AUTOMAN_BENCH_PG_URL"); env && *env) return env;
  const std::string script = std::string(AUTOMAN_SOURCE_DIR) + "/scripts/pg-test-cluster.sh";
  // Its own directory, traversable by the `postgres` user the script runs the server as
  // (the scratch directory is private).
  char tmpl[] = "/tmp/automan-queue-bench-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return "";
  chmod(tmpl, 0755);
  g_pg.dir = std::string(tmpl) + "/cluster";
  std::fprintf(stderr, "queue_bench: starting a PostgreSQL test cluster in %s\n", g_pg.dir.c_str());
  if (!RunShell(ShellQuote(script) + " start " + ShellQuote(g_pg.dir) + " >/dev/null")) {
    std::fprintf(stderr, "queue_bench: no PostgreSQL (%s); skipping it\n",
                 Trimmed(ReadFileText(g_pg.dir + "/url.unavailable")).c_str());
    std::filesystem::remove_all(tmpl);
    g_pg.dir.clear();
    return "";
  }
  return Trimmed(ReadFileText(g_pg.dir + "/url"));
}

void StopPg() {
  if (g_pg.dir.empty()) return;
  const std::string script = std::string(AUTOMAN_SOURCE_DIR) + "/scripts/pg-test-cluster.sh";
  (void)RunShell(ShellQuote(script) + " stop " + ShellQuote(g_pg.dir) + " >/dev/null");
  std::filesystem::remove_all(std::filesystem::path(g_pg.dir).parent_path());
}

struct FreshStore {
  std::unique_ptr<Store> store;
  std::string dir;     // SQLite: its directory
  std::string schema;  // PostgreSQL: its schema
  ~FreshStore() {
    store.reset();
    if (!dir.empty() && !g_keep) std::filesystem::remove_all(dir);
    if (!schema.empty()) {
      (void)RunShell("psql -X -q " + ShellQuote(g_pg.url) + " -c " +
                     ShellQuote("DROP SCHEMA IF EXISTS " + schema + " CASCADE") +
                     " >/dev/null 2>&1");
    }
  }
};

std::unique_ptr<FreshStore> OpenFresh(const std::string& mode) {
  static int counter = 0;
  auto f = std::make_unique<FreshStore>();
  StoreOptions so;
  so.busy_timeout = milliseconds(60'000);
  if (mode == "postgres") {
    f->schema = fmt::format("automan_bench_{}_{}", getpid(), counter++);
    if (!RunShell("psql -X -q -v ON_ERROR_STOP=1 " + ShellQuote(g_pg.url) + " -c " +
                  ShellQuote("CREATE SCHEMA " + f->schema) + " >/dev/null")) {
      std::fprintf(stderr, "queue_bench: cannot create schema %s with psql\n", f->schema.c_str());
      f->schema.clear();
      return nullptr;
    }
    so.url = g_pg.url + (g_pg.url.find('?') == std::string::npos ? "?" : "&") +
             "options=-csearch_path%3D" + f->schema;
  } else {
    f->dir = fmt::format("{}/{}-{}", g_tmp, mode, counter++);
    std::filesystem::create_directories(f->dir);
    so.url = "sqlite:" + f->dir + "/automan.db";
    so.durability = mode == "sqlite_fast" ? Durability::kFast : Durability::kFull;
  }
  auto s = Store::Open(so);
  if (!s.ok()) {
    std::fprintf(stderr, "queue_bench: opening %s: %s\n", mode.c_str(),
                 s.status().ToString().c_str());
    return nullptr;
  }
  f->store = std::move(s).value();
  return f;
}

// ---------------------------------------------------------------------------------------
// Workers

// Returns SUCCESS at once; optionally notes when it was called (for the latency).
class NoopExecutor final : public RunExecutor {
 public:
  std::atomic<int64_t> last_start_ns{0};
  Result Execute(Run&, const CancelSignal&) override {
    last_start_ns.store(steady_clock::now().time_since_epoch().count());
    return Result{};
  }
};

class RunningWorker {
 public:
  RunningWorker(Queue& queue, RunExecutor& executor, int concurrency) {
    static std::atomic<int> n{0};
    WorkerOptions o;
    o.owner = fmt::format("bench:{}:{}", getpid(), n.fetch_add(1));
    o.concurrency = concurrency;
    worker_ = std::make_unique<Worker>(queue, executor, o);
    thread_ = std::thread([this] { status_ = worker_->Run(stop_); });
  }
  ~RunningWorker() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    stop_.Cancel();
    thread_.join();
    if (!status_.ok()) {
      std::fprintf(stderr, "queue_bench: worker: %s\n", status_.ToString().c_str());
    }
  }
  uint64_t finished() const { return worker_->stats().finished.load(); }
  // Waits until `target` outcomes are recorded; false when nothing more finished for
  // `stall` (a broken store or worker: say so instead of hanging).
  bool WaitFinished(uint64_t target, std::chrono::seconds stall = std::chrono::seconds(60)) {
    uint64_t last = finished();
    auto progress_at = steady_clock::now();
    while (true) {
      const uint64_t now_finished = finished();
      if (now_finished >= target) return true;
      const auto now = steady_clock::now();
      if (now_finished != last) {
        last = now_finished;
        progress_at = now;
      } else if (now - progress_at > stall) {
        std::fprintf(stderr, "queue_bench: only %llu of %llu runs finished; none for %llds\n",
                     static_cast<unsigned long long>(now_finished),
                     static_cast<unsigned long long>(target),
                     static_cast<long long>(stall.count()));
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

 private:
  CancelSignal stop_;
  std::unique_ptr<Worker> worker_;
  std::thread thread_;
  Status status_;
};

struct Job {
  std::optional<Runbook> runbook;
  RunParams params;
  EnqueueRequest Request() const {
    EnqueueRequest r;
    r.runbook = &*runbook;
    r.params = params;
    r.triggered_by = "bench";
    return r;
  }
};

Job MakeJob(const std::string& yaml) {
  Job j;
  ParseResult parsed = ParseRunbook(yaml, "bench");
  if (!parsed.ok()) {
    std::fprintf(stderr, "bench runbook: %s\n", parsed.diagnostics.front().ToString().c_str());
    std::exit(1);
  }
  j.runbook = std::move(*parsed.runbook);
  auto p = BindParams(*j.runbook, {});
  if (!p.ok()) std::exit(1);
  j.params = *p;
  return j;
}

// `n` Enqueue calls from `threads` producer threads (each with one call in flight).
bool Produce(Queue& q, const Job& job, int n, int threads) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> ts;
  const EnqueueRequest req = job.Request();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      while (next.fetch_add(1) < n) {
        auto e = q.Enqueue(req);
        if (!e.ok()) {
          if (!failed.exchange(true)) {
            std::fprintf(stderr, "queue_bench: enqueue: %s\n", e.status().ToString().c_str());
          }
          return;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  return !failed;
}

bool Prefill(Queue& q, const Job& job, int n, int chunk) {
  std::vector<EnqueueRequest> reqs(static_cast<size_t>(chunk), job.Request());
  for (int done = 0; done < n;) {
    const int k = std::min(chunk, n - done);
    auto e = q.EnqueueMany(std::span<const EnqueueRequest>(reqs.data(), static_cast<size_t>(k)));
    if (!e.ok()) {
      std::fprintf(stderr, "queue_bench: enqueue many: %s\n", e.status().ToString().c_str());
      return false;
    }
    done += k;
  }
  return true;
}

// After a process/dispatch round: every run must be SUCCESS (a warning otherwise).
void CheckAllSucceeded(Store& store, int n, const std::string& what) {
  std::map<RunStatus, int64_t> counts;
  Status s = store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(counts, tx.CountRunsByStatus());
    return Status::Ok();
  });
  if (!s.ok() || counts[RunStatus::kSuccess] != n) {
    std::fprintf(stderr, "queue_bench: WARNING %s: %lld of %d runs SUCCESS\n", what.c_str(),
                 static_cast<long long>(counts[RunStatus::kSuccess]), n);
  }
}

// ---------------------------------------------------------------------------------------
// 1. Dispatch throughput

const char* kNoopYaml = "id: bench-noop\nsteps:\n  - id: t\n    argv: [/bin/true]\n";

struct RoundResult {
  double per_s = 0;
  double cpu_us_per_run = 0;  // this process, all threads
};

// One round of `workload`; nullopt on failure.
std::optional<RoundResult> DispatchRound(const Config& c, const std::string& mode,
                                         const std::string& workload, int n, const Job& job) {
  auto f = OpenFresh(mode);
  if (!f) return std::nullopt;
  Queue q(*f->store, SystemClock());
  NoopExecutor noop;
  steady_clock::time_point t0;
  double cpu0 = 0;
  auto start = [&] {
    cpu0 = SelfCpu();
    t0 = steady_clock::now();
  };
  auto result = [&] {
    RoundResult r;
    r.per_s = n / Seconds(t0, steady_clock::now());
    r.cpu_us_per_run = (SelfCpu() - cpu0) * 1e6 / n;
    return r;
  };
  if (workload == "add") {
    start();
    if (!Produce(q, job, n, c.inflight)) return std::nullopt;
    return result();
  }
  if (workload == "add_bulk") {
    start();
    if (!Prefill(q, job, n, c.bulk)) return std::nullopt;
    return result();
  }
  if (workload == "process_c1" || workload == "process_c32") {
    if (!Prefill(q, job, n, c.bulk)) return std::nullopt;
    start();
    RunningWorker w(q, noop, workload == "process_c1" ? 1 : 32);
    if (!w.WaitFinished(static_cast<uint64_t>(n))) return std::nullopt;
    RoundResult r = result();
    w.Stop();
    CheckAllSucceeded(*f->store, n, mode + " " + workload);
    return r;
  }
  if (workload == "dispatch_c32") {
    RunningWorker w(q, noop, 32);
    std::this_thread::sleep_for(milliseconds(300));  // idle, waiting for work
    start();
    if (!Produce(q, job, n, c.inflight)) return std::nullopt;
    if (!w.WaitFinished(static_cast<uint64_t>(n))) return std::nullopt;
    RoundResult r = result();
    w.Stop();
    CheckAllSucceeded(*f->store, n, mode + " " + workload);
    return r;
  }
  std::fprintf(stderr, "queue_bench: unknown workload %s\n", workload.c_str());
  return std::nullopt;
}

void SectionDispatch(const Config& c, const std::vector<std::string>& modes) {
  std::printf("\n== 1. dispatch throughput, no-op runs (N=%d, median of %d rounds)\n", c.n,
              c.rounds);
  const Job job = MakeJob(kNoopYaml);
  for (const std::string& mode : modes) {
    std::printf(" %s: %s\n", mode.c_str(), ModeDurability(mode).c_str());
    // Warm-up (untimed): page cache, threads, the PostgreSQL backends' plans.
    (void)DispatchRound(c, mode, "dispatch_c32", std::min(1000, c.n), job);
    for (const std::string& workload : c.workloads) {
      std::vector<double> rates, cpu;
      for (int r = 0; r < c.rounds; ++r) {
        auto round = DispatchRound(c, mode, workload, c.n, job);
        if (!round) break;
        rates.push_back(round->per_s);
        cpu.push_back(round->cpu_us_per_run);
      }
      if (rates.size() == static_cast<size_t>(c.rounds)) PrintRate(mode, workload, c.n, rates, cpu);
    }
  }
}

// ---------------------------------------------------------------------------------------
// 2. Enqueue -> start latency

void SectionLatency(const Config& c, const std::vector<std::string>& modes) {
  std::printf(
      "\n== 2. enqueue -> start latency, idle worker (concurrency 1), %d samples "
      "one at a time, median of %d rounds\n",
      c.latency_samples, c.rounds);
  const Job job = MakeJob(kNoopYaml);
  const EnqueueRequest req = job.Request();
  for (const std::string& mode : modes) {
    std::vector<double> p50s, p99s, maxes, enq50s;
    for (int round = 0; round < c.rounds; ++round) {
      auto f = OpenFresh(mode);
      if (!f) break;
      Queue q(*f->store, SystemClock());
      NoopExecutor noop;
      RunningWorker w(q, noop, 1);
      std::this_thread::sleep_for(milliseconds(300));
      std::vector<double> samples, enqueue_ms;
      bool ok = true;
      const int total = c.latency_warmup + c.latency_samples;
      for (int i = 0; i < total && ok; ++i) {
        const auto t0 = steady_clock::now();
        if (!q.Enqueue(req).ok()) ok = false;
        const auto enqueued = steady_clock::now();
        if (!w.WaitFinished(static_cast<uint64_t>(i + 1), std::chrono::seconds(60))) ok = false;
        const auto started =
            steady_clock::time_point(steady_clock::duration(noop.last_start_ns.load()));
        if (i >= c.latency_warmup) {
          samples.push_back(Seconds(t0, started) * 1e3);
          enqueue_ms.push_back(Seconds(t0, enqueued) * 1e3);
        }
        // An idle system: let the dispatcher go back to sleep on its listener.
        std::this_thread::sleep_for(milliseconds(1));
      }
      if (!ok) break;
      p50s.push_back(Percentile(samples, 0.50));
      p99s.push_back(Percentile(samples, 0.99));
      maxes.push_back(Percentile(samples, 1.0));
      enq50s.push_back(Percentile(enqueue_ms, 0.50));
    }
    if (p50s.size() != static_cast<size_t>(c.rounds)) continue;
    const double p50 = Median(p50s), p99 = Median(p99s);
    std::printf(
        "  %-15s p50 %.3f ms  p99 %.3f ms  max %.3f ms  (Enqueue() call alone: p50 "
        "%.3f ms; rounds p50:%s p99:%s)\n",
        mode.c_str(), p50, p99, Median(maxes), Median(enq50s), JsonNumbers(p50s, 3).c_str(),
        JsonNumbers(p99s, 3).c_str());
    std::printf(
        "{\"peer\":\"automan\",\"mode\":\"%s\",\"workload\":\"latency\",\"n\":%d,\"rounds\":%d,"
        "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"enqueue_call_p50_ms\":%.3f,\"per_round_p50_ms\":%s,"
        "\"per_round_p99_ms\":%s}\n",
        mode.c_str(), c.latency_samples, c.rounds, p50, p99, Median(enq50s),
        JsonNumbers(p50s, 3).c_str(), JsonNumbers(p99s, 3).c_str());
    std::fflush(stdout);
  }
}

// ---------------------------------------------------------------------------------------
// /proc helpers: CPU and memory of this process, its shims and their steps.

struct ProcInfo {
  pid_t pid;
  pid_t ppid;
  std::string comm;
  double cpu_s = 0;         // its own CPU time, from /proc/PID/schedstat (ns; /proc/PID/stat's
                            // utime+stime are whole ticks, which a short-lived shim rounds to 0)
  double reaped_cpu_s = 0;  // cutime + cstime: the children it waited for (whole ticks)
};

double SchedCpu(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/schedstat", pid));
  double ns = 0;
  in >> ns;
  return ns / 1e9;
}

std::vector<ProcInfo> ListProcs() {
  static const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::vector<ProcInfo> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300];
    std::snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[1024];
    ssize_t len = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (len <= 0) continue;
    buf[len] = 0;
    char* open_paren = std::strchr(buf, '(');
    char* close_paren = std::strrchr(buf, ')');
    if (!open_paren || !close_paren) continue;
    ProcInfo p;
    p.pid = std::atoi(buf);
    p.comm.assign(open_paren + 1, close_paren);
    // After the comm: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    const char* q = close_paren + 2;
    while (*q && *q != ' ') ++q;  // the state
    long long field[14] = {};     // fields 4..17
    for (long long& v : field) {
      char* end = nullptr;
      v = std::strtoll(q, &end, 10);
      q = end;
    }
    p.ppid = static_cast<pid_t>(field[0]);
    p.reaped_cpu_s = static_cast<double>(field[12] + field[13]) / tick;
    out.push_back(std::move(p));
  }
  closedir(d);
  return out;
}

// VmRSS/VmHWM-style "Name:   123 kB" from a /proc file, in KiB.
double SelfAndReapedCpu() {
  rusage self{}, kids{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(self.ru_utime) + s(self.ru_stime) + s(kids.ru_utime) + s(kids.ru_stime);
}

double ThreadCpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

// CPU seconds used so far by this process, its children (the shims, live: schedstat; reaped:
// rusage) and the shims' live children (the steps). The /proc reading itself happens
// after this process's own figure is taken; its cost goes to *reading.
double TreeCpu(pid_t me, double* reading) {
  const double self = SelfAndReapedCpu();
  const double t = ThreadCpu();
  std::set<pid_t> shims;
  auto procs = ListProcs();
  double sum = self;
  for (const auto& p : procs) {
    if (p.ppid == me) {
      shims.insert(p.pid);
      sum += SchedCpu(p.pid) + p.reaped_cpu_s;
    }
  }
  for (const auto& p : procs) {
    if (shims.count(p.ppid)) sum += SchedCpu(p.pid);
  }
  *reading += ThreadCpu() - t;
  return sum;
}

// ---------------------------------------------------------------------------------------
// 3. Process-step runs through the engine

// posix_spawn + waitpid of /bin/true from `threads` threads; runs/s, and the CPU per spawn
// (this process and the children) in *cpu_us.
double RawSpawnRate(int n, int threads, double* cpu_us = nullptr) {
  std::atomic<int> next{0};
  const double cpu0 = SelfAndReapedCpu();
  auto t0 = steady_clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      while (next.fetch_add(1) < n) SpawnWait({"/bin/true"});
    });
  }
  for (auto& t : ts) t.join();
  const double rate = n / Seconds(t0, steady_clock::now());
  if (cpu_us != nullptr) *cpu_us = (SelfAndReapedCpu() - cpu0) * 1e6 / n;
  return rate;
}

void SectionSpawn(const Config& c, const std::vector<std::string>& modes) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int conc = c.spawn_concurrency > 0 ? c.spawn_concurrency : 2 * cores;
  const int n = c.spawn_runs;
  std::printf(
      "\n== 3. runs of one /bin/true step through the engine, worker concurrency %d "
      "(%d cores), %d runs per round, median of %d rounds\n",
      conc, cores, n, c.rounds);
  const Job job = MakeJob("id: bench-true\nsteps:\n  - id: t\n    argv: [/bin/true]\n");
  for (const std::string& mode : modes) {
    auto f = OpenFresh(mode);
    if (!f) continue;
    EngineOptions eo;
    eo.work_root = g_tmp + "/work-" + mode;
    eo.idle_supervisors = static_cast<size_t>(conc);
    Engine engine(*f->store, SystemClock(), eo);
    EngineExecutor executor(engine);
    Queue& q = engine.queue();
    std::vector<double> engine_rates, raw_par_rates, raw_ser_rates, engine_cpu, raw_cpu;
    uint64_t finished_before = 0;
    bool ok = true;
    // Round 0 is an untimed warm-up: starts the pooled shims.
    for (int round = 0; round <= c.rounds && ok; ++round) {
      const int runs = round == 0 ? 4 * conc : n;
      double raw_cpu_us = 0;
      double raw_par = RawSpawnRate(runs, conc, &raw_cpu_us);
      double raw_ser = RawSpawnRate(runs, 1);
      if (!Prefill(q, job, runs, c.bulk)) break;
      double reading = 0;
      const double cpu0 = TreeCpu(getpid(), &reading);
      auto t0 = steady_clock::now();
      RunningWorker w(q, executor, conc);
      if (!w.WaitFinished(static_cast<uint64_t>(runs))) {
        ok = false;
        break;
      }
      double rate = runs / Seconds(t0, steady_clock::now());
      const double first_reading = reading;  // inside the window; the second one is not
      const double cpu_us = (TreeCpu(getpid(), &reading) - cpu0 - first_reading) * 1e6 / runs;
      w.Stop();
      finished_before += static_cast<uint64_t>(runs);
      if (round == 0) continue;
      engine_rates.push_back(rate);
      raw_par_rates.push_back(raw_par);
      raw_ser_rates.push_back(raw_ser);
      engine_cpu.push_back(cpu_us);
      raw_cpu.push_back(raw_cpu_us);
      std::printf(
          "  round %d: engine %.0f runs/s (cpu %.0f us/run), raw posix_spawn+wait x%d threads "
          "%.0f/s (cpu %.0f us/spawn), x1 %.0f/s\n",
          round, rate, cpu_us, conc, raw_par, raw_cpu_us, raw_ser);
    }
    if (!ok || engine_rates.size() != static_cast<size_t>(c.rounds)) continue;
    CheckAllSucceeded(*f->store, static_cast<int>(finished_before), mode + " spawn");
    const double eng = Median(engine_rates), rp = Median(raw_par_rates), rs = Median(raw_ser_rates);
    const double ecpu = Median(engine_cpu), rcpu = Median(raw_cpu);
    std::printf(
        "  %-15s engine %.0f runs/s = %.0f runs/s per core (goal >= 1100); raw x%d "
        "%.0f/s (engine/raw %.0f%%), raw x1 %.0f/s; CPU per run %.0f us (raw spawn %.0f us: "
        "%.1fx)\n",
        mode.c_str(), eng, eng / cores, conc, rp, 100 * eng / rp, rs, ecpu, rcpu, ecpu / rcpu);
    std::printf(
        "{\"peer\":\"automan\",\"mode\":\"%s\",\"workload\":\"spawn_true\",\"n\":%d,"
        "\"rounds\":%d,\"concurrency\":%d,\"cores\":%d,\"median_per_s\":%.1f,"
        "\"per_core_per_s\":%.1f,\"raw_parallel_per_s\":%.1f,\"raw_serial_per_s\":%.1f,"
        "\"engine_over_raw\":%.3f,\"cpu_us_per_run\":%.1f,\"raw_cpu_us_per_spawn\":%.1f,"
        "\"per_round_per_s\":%s,\"per_round_raw_parallel_per_s\":%s}\n",
        mode.c_str(), n, c.rounds, conc, cores, eng, eng / cores, rp, rs, eng / rp, ecpu, rcpu,
        JsonNumbers(engine_rates).c_str(), JsonNumbers(raw_par_rates).c_str());
    std::fflush(stdout);
  }
}

// ---------------------------------------------------------------------------------------
// 4. 1000 concurrently running runs

void SectionIdle(const Config& c) {
  const int n = c.idle_runs;
  std::printf(
      "\n== 4. %d concurrently running runs (each `sleep %d`), worker concurrency %d, "
      "SQLite durable, one round\n",
      n, c.idle_sleep_s, n);
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);

  auto f = OpenFresh("sqlite_durable");
  if (!f) return;
  const Job job = MakeJob(fmt::format(
      "id: bench-sleep\nsteps:\n  - id: s\n    argv: [/bin/sleep, \"{}\"]\n", c.idle_sleep_s));
  EngineOptions eo;
  eo.work_root = g_tmp + "/work-idle";
  eo.idle_supervisors = 4;
  Engine engine(*f->store, SystemClock(), eo);
  EngineExecutor executor(engine);
  Queue& q = engine.queue();
  const pid_t me = getpid();
  const long long hwm_before = ProcKb("/proc/self/status", "VmHWM");

  RunningWorker w(q, executor, n);
  std::this_thread::sleep_for(milliseconds(500));  // idle, waiting for work
  double poll_cpu = 0;                             // the /proc scans' own CPU, subtracted
  const double cpu0 = SelfAndReapedCpu();
  const auto t0 = steady_clock::now();
  if (!Prefill(q, job, n, c.bulk)) return;
  const double enqueue_s = Seconds(t0, steady_clock::now());

  // Poll /proc for the `sleep` processes below our shims until all n run.
  int peak = 0;
  double t_peak = 0, t_all = -1;
  long long shim_rss_kb = 0, shim_pss_kb = 0, sleep_rss_kb = 0;
  int shims = 0;
  double cpu_all = 0, live_cpu_all = 0, step_cpu = 0;
  while (Seconds(t0, steady_clock::now()) < c.idle_sleep_s + 60.0) {
    const double tc0 = ThreadCpu();
    auto procs = ListProcs();
    std::set<pid_t> shim_pids;
    for (const auto& p : procs) {
      if (p.ppid == me) shim_pids.insert(p.pid);
    }
    int sleeping = 0;
    for (const auto& p : procs) {
      if (p.comm == "sleep" && shim_pids.count(p.ppid)) ++sleeping;
    }
    const double elapsed = Seconds(t0, steady_clock::now());
    poll_cpu += ThreadCpu() - tc0;
    if (sleeping > peak) {
      peak = sleeping;
      t_peak = elapsed;
    }
    if (sleeping >= n) {
      t_all = elapsed;
      // The moment all run: memory of the shims and their steps, CPU so far. This
      // thread's /proc reading is not counted (before self_all, or in poll_cpu after).
      const double self_all = SelfAndReapedCpu();
      const double tc1 = ThreadCpu();
      for (const auto& p : procs) {
        const std::string base = fmt::format("/proc/{}/", p.pid);
        if (shim_pids.count(p.pid)) {
          ++shims;
          shim_rss_kb += ProcKb(base + "status", "VmRSS");
          shim_pss_kb += ProcKb(base + "smaps_rollup", "Pss");
          live_cpu_all += SchedCpu(p.pid) + p.reaped_cpu_s;
        } else if (p.comm == "sleep" && shim_pids.count(p.ppid)) {
          sleep_rss_kb += ProcKb(base + "status", "VmRSS");
          step_cpu += SchedCpu(p.pid);
        }
      }
      cpu_all = self_all - cpu0 - poll_cpu + live_cpu_all + step_cpu;
      poll_cpu += ThreadCpu() - tc1;
      break;
    }
    if (w.finished() > 0) break;  // the first runs ended before all started
    std::this_thread::sleep_for(milliseconds(20));
  }

  // While all run: what 1000 idle runs cost per second (heartbeats, cancel polls, threads).
  double steady_cpu_pct = -1, steady_window = 0;
  if (t_all >= 0) {
    steady_window = std::min(10.0, c.idle_sleep_s - t_all - 1.0);
    if (steady_window >= 1.0) {
      const double a = TreeCpu(me, &poll_cpu);
      const double pa = poll_cpu;
      const auto ta = steady_clock::now();
      std::this_thread::sleep_for(std::chrono::duration<double>(steady_window));
      const double b = TreeCpu(me, &poll_cpu);
      steady_window = Seconds(ta, steady_clock::now());
      // The first reading's own cost lands between a and b: take it out.
      steady_cpu_pct = 100.0 * (b - a - (poll_cpu - pa) / 2) / steady_window;
    }
  }

  // Then until all are recorded finished.
  const bool all_done = w.WaitFinished(static_cast<uint64_t>(n), std::chrono::seconds(120));
  const double t_done = Seconds(t0, steady_clock::now());
  const double self_done = SelfAndReapedCpu();
  double live_cpu_done = 0;
  for (const auto& p : ListProcs()) {
    if (p.ppid == me) live_cpu_done += SchedCpu(p.pid) + p.reaped_cpu_s;
  }
  // Shims that exited (the pool keeps 4) are in RUSAGE_CHILDREN with the steps they
  // waited for; the kept ones' steps appear only in whole ticks (a few ms lost at most).
  const double cpu_done = self_done - cpu0 - poll_cpu + live_cpu_done;
  const long long hwm = ProcKb("/proc/self/status", "VmHWM");
  w.Stop();
  if (all_done) CheckAllSucceeded(*f->store, n, "idle");

  if (t_all < 0) {
    std::printf(
        "  NOT all %d running at once: peak %d concurrent `sleep`s at %.2f s "
        "(the first runs finished before the last started)\n",
        n, peak, t_peak);
  } else {
    std::printf(
        "  all %d steps running %.2f s after the first enqueue (enqueue of all: "
        "%.3f s, one transaction)\n",
        n, t_all, enqueue_s);
    std::printf(
        "  shims: %d, RSS sum %.1f MiB (%.0f KiB each), PSS sum %.1f MiB (%.0f KiB "
        "each); the `sleep`s: RSS sum %.1f MiB\n",
        shims, shim_rss_kb / 1024.0, shims ? double(shim_rss_kb) / shims : 0, shim_pss_kb / 1024.0,
        shims ? double(shim_pss_kb) / shims : 0, sleep_rss_kb / 1024.0);
    std::printf(
        "  CPU (this process + shims + steps): %.2f s to all running (of which the "
        "`sleep`s %.2f s), %.2f s to all finished (at %.2f s)\n",
        cpu_all, step_cpu, cpu_done, t_done);
  }
  if (steady_cpu_pct >= 0) {
    std::printf(
        "  while all %d wait: %.1f%% of one core (this process + shims + steps, over "
        "%.1f s)\n",
        n, steady_cpu_pct, steady_window);
  }
  std::printf("  this process: peak RSS (VmHWM) %.1f MiB (%.1f MiB before the worker)\n",
              hwm / 1024.0, hwm_before / 1024.0);
  std::printf(
      "{\"peer\":\"automan\",\"mode\":\"sqlite_durable\",\"workload\":\"idle_%d\",\"n\":%d,"
      "\"sleep_s\":%d,\"all_running\":%s,\"time_to_all_running_s\":%.3f,\"peak_running\":%d,"
      "\"enqueue_s\":%.3f,\"peak_rss_mib\":%.1f,\"shims\":%d,\"shim_rss_sum_mib\":%.1f,"
      "\"shim_pss_sum_mib\":%.1f,\"step_rss_sum_mib\":%.1f,\"cpu_s_to_all_running\":%.3f,"
      "\"cpu_s_to_all_finished\":%.3f,\"time_to_all_finished_s\":%.3f,\"step_cpu_s\":%.3f,"
      "\"steady_cpu_pct_of_core\":%.1f}\n",
      n, n, c.idle_sleep_s, t_all >= 0 ? "true" : "false", t_all >= 0 ? t_all : t_peak, peak,
      enqueue_s, hwm / 1024.0, shims, shim_rss_kb / 1024.0, shim_pss_kb / 1024.0,
      sleep_rss_kb / 1024.0, cpu_all, cpu_done, t_done, step_cpu, steady_cpu_pct);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && kSupervisorCommand == argv[1]) return SupervisorMain(argc, argv);
  Config c;
  if (!ParseArgs(argc, argv, c)) return 2;
  char tmpl[] = "/tmp/automan-queue-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  g_tmp = tmpl;
  g_keep = c.keep;

  std::vector<std::string> modes;
  const bool pg_sections = c.sections.count("dispatch") || c.sections.count("latency");
  for (const std::string& m : c.modes) {
    if (m == "postgres") {
      if (!pg_sections) continue;  // sections 3 and 4 run on SQLite only
      if (g_pg.url.empty()) g_pg.url = StartPg(c);
      if (g_pg.url.empty()) continue;
    }
    modes.push_back(m);
  }
  std::vector<std::string> sqlite_modes;
  for (const auto& m : modes) {
    if (m != "postgres") sqlite_modes.push_back(m);
  }
  std::printf("queue_bench: %s; N=%d, %d rounds, %d in flight, bulk %d; scratch %s (%s)\n",
              MachineLine().c_str(), c.n, c.rounds, c.inflight, c.bulk, g_tmp.c_str(),
              Trimmed(ReadFileText("/proc/sys/kernel/osrelease")).c_str());
  const auto [fsync50, fsync99] = FsyncProbe(g_tmp);
  std::printf("fdatasync of a 4 KiB write in the scratch directory: p50 %.3f ms, p99 %.3f ms\n",
              fsync50, fsync99);
  std::printf(
      "{\"peer\":\"automan\",\"kind\":\"versions\",\"n\":%d,\"rounds\":%d,"
      "\"inflight\":%d,\"bulk_chunk\":%d,\"latency_samples\":%d,\"cores\":%u,"
      "\"fsync_p50_ms\":%.3f,\"fsync_p99_ms\":%.3f}\n",
      c.n, c.rounds, c.inflight, c.bulk, c.latency_samples, std::thread::hardware_concurrency(),
      fsync50, fsync99);
  std::fflush(stdout);

  if (c.sections.count("dispatch")) SectionDispatch(c, modes);
  if (c.sections.count("latency")) SectionLatency(c, modes);
  if (c.sections.count("spawn")) SectionSpawn(c, sqlite_modes);
  if (c.sections.count("idle")) SectionIdle(c);

  StopPg();
  if (!c.keep) std::filesystem::remove_all(g_tmp);
  return 0;
}
