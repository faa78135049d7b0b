// Scheduler benchmarks: what the schedule loop (src/scheduler) costs. Prints a small table
// per section and the command line that reproduces it. No assertions: figures only
// (docs/benchmarks.md, "Scheduler", has the results and how to read them).
//
//   build/release/bench/scheduler_bench [options]
//
//   --sections=lateness,scale,nextfire   (all)
//   --seconds=20        lateness: how long each configuration runs the loop
//   --schedules=1000    lateness: schedules `every: 1s`
//   --modes=durable,fast                 lateness: SQLite synchronous=FULL / NORMAL (both)
//   --load=both|on|off  lateness: with 2 busy-loop processes, without, or both (both)
//   --busy=N            lateness: busy-loop processes (number of cores)
//   --lookahead-ms=2000 lateness: SchedulerOptions::lookahead (automan worker's 2 s; 0: decide
//                       each fire at its due time)
//   --scale=100000      scale: schedules
//   --idle-seconds=10   scale: how long the loop runs with nothing due
//   --startups=3        scale: first Ticks timed (fresh Scheduler each; median printed)
//   --rounds=5          nextfire: runs of 1 s per figure (median printed)
//   --keep              keep the scratch directory with the SQLite files
//
// Sections:
//   1. lateness: N schedules `every: 1s` in a SQLite file store, the loop running on the
//      real clock with Scheduler::Start() for --seconds, while busy-loop processes keep
//      every core busy (and, as a baseline, without them). Lateness = when the fire's run
//      became claimable - due, i.e. max(0, commit of its transaction - due) (runs decided
//      ahead carry not_before = due), from SchedulerOptions::on_decided; also the ledger's
//      `delay` (decision time - due, 0 when decided ahead), fires/s, the loop's CPU, and a
//      check that every expected occurrence has exactly one ledger row. The runs pile up
//      PENDING (no worker).
//   2. scale: 100,000 active schedules, mixed cron expressions (names, ranges, steps,
//      L/W/#, 6 fields), intervals, deadline-aligned ones and jitter, in 10 zones; none
//      due within 90 minutes (candidates that would be are redrawn). Time to insert them
//      (one transaction), the loop's start-up (its first Tick: load, parse, compute next
//      for all), the VmRSS that adds, a Tick when nothing changed, and the CPU per second
//      of the loop running idle for --idle-seconds.
//   3. nextfire: CronExpr::Next and ScheduleTiming::Next calls per second for typical
//      expressions, each call continuing from the previous result (reset every 10 years).
#include "scheduler/scheduler.h"

#include <fmt/format.h>
#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "common/duration.h"
#include "queue/queue.h"
#include "scheduler/cron.h"
#include "scheduler/definition.h"
#include "scheduler/timing.h"
#include "store/store.h"

using namespace automan;
using namespace automan::bench;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------------------
// Options

struct Config {
  std::set<std::string> sections{"lateness", "scale", "nextfire"};
  int seconds = 20;
  int schedules = 1000;
  std::vector<std::string> modes{"durable", "fast"};
  std::string load = "both";
  int busy = 0;  // 0: number of cores
  int lookahead_ms = 2000;
  int scale = 100000;
  int idle_seconds = 10;
  int startups = 3;
  int rounds = 5;
  bool keep = false;
};

bool ParseArgs(int argc, char** argv, Config& c) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string_view name) -> std::optional<std::string> {
      std::string prefix = "--" + std::string(name) + "=";
      if (a.rfind(prefix, 0) == 0) return a.substr(prefix.size());
      return std::nullopt;
    };
    if (auto v = value("sections")) {
      auto list = SplitCommas(*v);
      c.sections = {list.begin(), list.end()};
    } else if (auto v = value("seconds")) {
      c.seconds = std::atoi(v->c_str());
    } else if (auto v = value("schedules")) {
      c.schedules = std::atoi(v->c_str());
    } else if (auto v = value("modes")) {
      c.modes = SplitCommas(*v);
    } else if (auto v = value("load")) {
      c.load = *v;
    } else if (auto v = value("busy")) {
      c.busy = std::atoi(v->c_str());
    } else if (auto v = value("lookahead-ms")) {
      c.lookahead_ms = std::atoi(v->c_str());
    } else if (auto v = value("scale")) {
      c.scale = std::atoi(v->c_str());
    } else if (auto v = value("idle-seconds")) {
      c.idle_seconds = std::atoi(v->c_str());
    } else if (auto v = value("startups")) {
      c.startups = std::atoi(v->c_str());
    } else if (auto v = value("rounds")) {
      c.rounds = std::atoi(v->c_str());
    } else if (a == "--keep") {
      c.keep = true;
    } else {
      std::fprintf(stderr, "scheduler_bench: unknown argument \"%s\" (see bench/scheduler.cpp)\n",
                   a.c_str());
      return false;
    }
  }
  if (c.seconds < 1 || c.schedules < 1 || c.scale < 1 || c.idle_seconds < 1 || c.startups < 1 ||
      c.rounds < 1 || c.busy < 0) {
    std::fprintf(stderr, "scheduler_bench: counts must be positive\n");
    return false;
  }
  if (c.load != "both" && c.load != "on" && c.load != "off") {
    std::fprintf(stderr, "scheduler_bench: --load is both, on or off\n");
    return false;
  }
  for (const auto& m : c.modes) {
    if (m != "durable" && m != "fast") {
      std::fprintf(stderr, "scheduler_bench: --modes takes durable and fast\n");
      return false;
    }
  }
  if (c.busy == 0) c.busy = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return true;
}

// ---------------------------------------------------------------------------------------
// Helpers

std::string g_tmp;  // scratch directory

[[noreturn]] void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "scheduler_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what, r.status());
  return std::move(*r);
}

void Must(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what, s);
}

double Ms(Duration d) { return static_cast<double>(d.count()) / 1e3; }

// Busy-loop processes: each spins on a core until killed (and dies with this process).
std::vector<pid_t> StartBusy(int n) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      volatile uint64_t x = 0;
      for (;;) x = x + 1;
    }
    if (pid > 0) pids.push_back(pid);
  }
  return pids;
}

void StopBusy(std::vector<pid_t>& pids) {
  for (pid_t p : pids) kill(p, SIGKILL);
  for (pid_t p : pids) waitpid(p, nullptr, 0);
  pids.clear();
}

std::unique_ptr<Store> OpenStore(const std::string& path, Durability durability) {
  StoreOptions o;
  o.url = "sqlite:" + path;
  o.durability = durability;
  return Must(Store::Open(o), "open " + path);
}

// The runbook every schedule runs (the runs are never executed here).
Runbook BenchRunbook() {
  ParseResult parsed =
      ParseRunbook("id: bench-sched\nsteps:\n  - id: t\n    argv: [/bin/true]\n", "bench");
  if (!parsed.ok()) {
    std::fprintf(stderr, "bench runbook: %s\n", parsed.diagnostics.front().ToString().c_str());
    std::exit(1);
  }
  return std::move(*parsed.runbook);
}

// Inserts the runbook version and the schedules in one transaction.
void PutSchedules(Store& store, const Runbook& rb, const std::vector<ScheduleRecord>& recs,
                  Timestamp now) {
  Must(store.Transact(Store::TxMode::kWrite,
                      [&](StoreTx& tx) -> Status {
                        AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(
                            RunbookVersion{rb.version, rb.id, rb.yaml, rb.source, now}));
                        for (const ScheduleRecord& r : recs) {
                          AUTOMAN_RETURN_IF_ERROR(tx.PutSchedule(r).status());
                        }
                        return Status::Ok();
                      }),
       "insert schedules");
}

// A Store that forwards everything and counts the committed write transactions (only the
// schedule loop writes during the lateness section).
class TimedStore final : public Store {
 public:
  struct Window {
    Timestamp begin, end;
  };
  explicit TimedStore(Store& inner) : inner_(inner) {}

  Status Transact(TxMode mode, const std::function<Status(StoreTx&)>& fn) override {
    if (mode == TxMode::kRead) return inner_.Transact(mode, fn);
    const Timestamp begin = SystemClock().Now();
    Status s = inner_.Transact(mode, fn);
    const Timestamp end = SystemClock().Now();
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      windows_.push_back({begin, end});
    }
    return s;
  }
  std::string Describe() const override { return inner_.Describe(); }
  bool ReadsAreLocal() const override { return inner_.ReadsAreLocal(); }
  int SchemaVersion() const override { return inner_.SchemaVersion(); }
  Status NotifyQueue() override { return inner_.NotifyQueue(); }
  Result<std::unique_ptr<QueueListener>> ListenQueue() override { return inner_.ListenQueue(); }
  Result<std::unique_ptr<Leadership>> TryLead(std::string_view name) override {
    return inner_.TryLead(name);
  }

  size_t transactions() const {
    std::lock_guard<std::mutex> lock(mu_);
    return windows_.size();
  }

 private:
  Store& inner_;
  mutable std::mutex mu_;
  std::vector<Window> windows_;
};

// ---------------------------------------------------------------------------------------
// 1. Fire lateness

struct LatenessResult {
  std::string mode, load;
  double p50 = 0, p99 = 0, max = 0;   // ledger delay, ms
  double c50 = 0, c99 = 0, cmax = 0;  // until claimable (committed and due), ms
  double warmup_max = 0;              // the same, for fires due in the warm-up
  double first50 = 0, firstmax = 0;   // first fire of each due instant, ms
  double last50 = 0, lastmax = 0;     // last fire of each due instant, ms
  int64_t rows = 0, fired = 0, late = 0, skipped = 0, missed = 0;
  int64_t expected = 0, exactly_one = 0, missing = 0, extra = 0;
  double fires_per_s = 0;
  double cpu_ms_per_s = 0;
  size_t log_lines = 0;
  std::string first_log;
  size_t transactions = 0;
};

LatenessResult RunLateness(const Config& c, const std::string& mode, bool loaded, int index) {
  LatenessResult r;
  r.mode = mode;
  r.load = loaded ? fmt::format("{} busy", c.busy) : "idle";
  const std::string path = fmt::format("{}/lateness-{}.db", g_tmp, index);
  auto inner = OpenStore(path, mode == "durable" ? Durability::kFull : Durability::kFast);
  TimedStore store(*inner);
  const Runbook rb = BenchRunbook();
  const Timestamp c0 = SystemClock().Now();
  std::vector<ScheduleRecord> recs;
  for (int i = 0; i < c.schedules; ++i) {
    ScheduleSpec s;
    s.id = fmt::format("every1s-{:05}", i);
    s.every = Millis(1000);
    recs.push_back(NewScheduleRecord(rb, s, "cli", c0));
  }
  PutSchedules(store, rb, recs, c0);

  std::vector<pid_t> busy;
  if (loaded) busy = StartBusy(c.busy);
  std::this_thread::sleep_for(milliseconds(200));  // let the spinners get going

  Queue queue(store, SystemClock());
  std::mutex log_mu;
  std::vector<std::string> log;
  SchedulerOptions opts;
  opts.log = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mu);
    log.push_back(line);
  };
  opts.lookahead = milliseconds(c.lookahead_ms);
  // The first seconds after Start() are a warm-up: those fires are due before the loop
  // could decide them ahead. They are reported apart (warmup_max).
  std::mutex claimable_mu;
  std::vector<double> claimable;
  Timestamp warm_until = Timestamp::max();
  opts.on_decided = [&](const FireRecord& f, Timestamp committed_at) {
    if (f.status != FireStatus::kFired && f.status != FireStatus::kLate) return;
    const double ms = Ms(std::max(Duration(0), committed_at - f.due));
    std::lock_guard<std::mutex> lock(claimable_mu);
    if (f.due < warm_until) {
      r.warmup_max = std::max(r.warmup_max, ms);
    } else {
      claimable.push_back(ms);
    }
  };
  Timestamp stop_at;
  double cpu = 0;
  {
    Scheduler sched(store, queue, SystemClock(), opts);
    const double cpu0 = SelfCpu();
    {
      std::lock_guard<std::mutex> lock(claimable_mu);
      warm_until = SystemClock().Now() + milliseconds(c.lookahead_ms) + seconds(1);
    }
    sched.Start();
    std::this_thread::sleep_for(seconds(c.seconds));
    stop_at = SystemClock().Now();
    sched.Stop();
    cpu = SelfCpu() - cpu0;
  }
  StopBusy(busy);
  r.cpu_ms_per_s = cpu * 1e3 / c.seconds;
  r.log_lines = log.size();
  if (!log.empty()) r.first_log = log.front();
  r.transactions = store.transactions();

  // The ledger: every tick in (c0, max(cursor, stop - 1s)] must have exactly one row.
  std::vector<double> delays, commits;
  std::map<Timestamp, std::pair<double, double>> bursts;  // due -> (first, last) delay
  const Duration tick = seconds(1);
  auto first_tick_after = [&](Timestamp t) {
    const int64_t us = ToMicros(t);
    const int64_t step = tick.count();
    return FromMicros((us / step + 1) * step);
  };
  Must(store.Transact(Store::TxMode::kRead,
                      [&](StoreTx& tx) -> Status {
                        for (const ScheduleRecord& rec : recs) {
                          AUTOMAN_ASSIGN_OR_RETURN(ScheduleRecord now_rec, tx.GetSchedule(rec.id));
                          AUTOMAN_ASSIGN_OR_RETURN(std::vector<FireRecord> rows,
                                                   tx.ListFires(rec.id, std::nullopt, 10000));
                          const Timestamp until = std::max(now_rec.cursor, stop_at - tick);
                          std::map<Timestamp, int> seen;
                          for (const FireRecord& f : rows) {
                            ++r.rows;
                            ++seen[f.nominal];
                            switch (f.status) {
                              case FireStatus::kFired:
                                ++r.fired;
                                break;
                              case FireStatus::kLate:
                                ++r.late;
                                break;
                              case FireStatus::kSkipped:
                                ++r.skipped;
                                break;
                              case FireStatus::kMissed:
                                ++r.missed;
                                break;
                            }
                            if (f.status == FireStatus::kFired || f.status == FireStatus::kLate) {
                              delays.push_back(Ms(f.delay));
                              auto [b, fresh] = bursts.try_emplace(f.due, Ms(f.delay), Ms(f.delay));
                              if (!fresh) {
                                b->second.first = std::min(b->second.first, Ms(f.delay));
                                b->second.second = std::max(b->second.second, Ms(f.delay));
                              }
                            }
                          }
                          int64_t expected_here = 0;
                          for (Timestamp t = first_tick_after(c0); t <= until; t += tick) {
                            ++expected_here;
                            auto it = seen.find(t);
                            if (it == seen.end()) {
                              ++r.missing;
                            } else {
                              if (it->second == 1) ++r.exactly_one;
                              seen.erase(it);
                            }
                          }
                          r.expected += expected_here;
                          for (const auto& [t, n] : seen) r.extra += n;  // off-tick or beyond
                        }
                        return Status::Ok();
                      }),
       "read the ledger");
  r.p50 = Percentile(delays, 0.5);
  r.p99 = Percentile(delays, 0.99);
  r.max = delays.empty() ? 0 : *std::max_element(delays.begin(), delays.end());
  {
    std::lock_guard<std::mutex> lock(claimable_mu);
    commits = claimable;
  }
  r.c50 = Percentile(commits, 0.5);
  r.c99 = Percentile(commits, 0.99);
  r.cmax = commits.empty() ? 0 : *std::max_element(commits.begin(), commits.end());
  r.fires_per_s = static_cast<double>(r.fired + r.late) / c.seconds;
  std::vector<double> firsts, lasts;
  for (const auto& [due, fl] : bursts) {
    firsts.push_back(fl.first);
    lasts.push_back(fl.second);
  }
  r.first50 = Percentile(firsts, 0.5);
  r.firstmax = firsts.empty() ? 0 : *std::max_element(firsts.begin(), firsts.end());
  r.last50 = Percentile(lasts, 0.5);
  r.lastmax = lasts.empty() ? 0 : *std::max_element(lasts.begin(), lasts.end());
  return r;
}

void SectionLateness(const Config& c) {
  std::printf(
      "\n== 1. fire lateness: %d schedules `every: 1s`, SQLite file store, real clock, "
      "Scheduler::Start() for %d s per line ==\n",
      c.schedules, c.seconds);
  std::printf(
      "   lateness = until the run was claimable (its transaction committed and its due time "
      "came) - due; decision delay = the ledger's delay; lookahead %d ms\n",
      c.lookahead_ms);
  std::vector<bool> loads;
  if (c.load != "on") loads.push_back(false);
  if (c.load != "off") loads.push_back(true);
  std::vector<LatenessResult> results;
  int index = 0;
  for (const std::string& mode : c.modes) {
    for (bool loaded : loads) {
      std::fprintf(stderr, "scheduler_bench: lateness %s %s (%d s)...\n", mode.c_str(),
                   loaded ? "loaded" : "idle", c.seconds);
      results.push_back(RunLateness(c, mode, loaded, index++));
      std::printf("   load average after: %s\n", ReadLine("/proc/loadavg").c_str());
      std::fflush(stdout);
    }
  }
  std::printf(
      "\n| store | load | lateness p50 / p99 / max (ms) | decision delay p50 / p99 / max (ms) | "
      "fires/s | loop CPU | ledger rows | every expected occurrence: exactly one row |\n"
      "|---|---|---|---|---|---|---|---|\n");
  for (const LatenessResult& r : results) {
    std::printf(
        "| %s | %s | %.2f / %.2f / %.2f | %.2f / %.2f / %.2f | %.0f | %.0f ms/s | %lld "
        "(fired %lld, late %lld, skipped %lld, missed %lld) | %s: %lld of %lld (missing %lld, "
        "extra %lld) |\n",
        r.mode == "durable" ? "SQLite durable" : "SQLite fast", r.load.c_str(), r.c50, r.c99,
        r.cmax, r.p50, r.p99, r.max, r.fires_per_s, r.cpu_ms_per_s, (long long)r.rows,
        (long long)r.fired, (long long)r.late, (long long)r.skipped, (long long)r.missed,
        (r.missing == 0 && r.extra == 0 && r.exactly_one == r.expected) ? "yes" : "NO",
        (long long)r.exactly_one, (long long)r.expected, (long long)r.missing, (long long)r.extra);
  }
  for (const LatenessResult& r : results) {
    std::printf(
        "   %s %s: warm-up (fires due within lookahead + 1 s of Start(), left out "
        "above): lateness max %.2f ms\n",
        r.mode.c_str(), r.load.c_str(), r.warmup_max);
    if (r.log_lines > 0) {
      std::printf("   %s %s: %zu scheduler log lines (first: %s)\n", r.mode.c_str(), r.load.c_str(),
                  r.log_lines, r.first_log.c_str());
    }
  }
  std::printf(
      "\n| store | load | first fire of each second: p50 / max (ms) | last fire of each second: "
      "p50 / max (ms) | loop CPU per fire | write transactions |\n|---|---|---|---|---|---|\n");
  for (const LatenessResult& r : results) {
    std::printf("| %s | %s | %.2f / %.2f | %.2f / %.2f | %.1f µs | %zu |\n",
                r.mode == "durable" ? "SQLite durable" : "SQLite fast", r.load.c_str(), r.first50,
                r.firstmax, r.last50, r.lastmax,
                r.fires_per_s > 0 ? r.cpu_ms_per_s * 1e3 / r.fires_per_s : 0.0, r.transactions);
  }
  std::printf("   goal: p99 <= 10 ms with both cores busy\n");
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------
// 2. 100,000 schedules

const char* const kZones[] = {"UTC",
                              "Europe/Berlin",
                              "America/New_York",
                              "Asia/Kolkata",
                              "Australia/Lord_Howe",
                              "Pacific/Chatham",
                              "Europe/Dublin",
                              "America/Los_Angeles",
                              "Asia/Tokyo",
                              "America/Sao_Paulo"};

// One candidate of kind `kind` with random fields.
ScheduleSpec Candidate(int kind, std::mt19937& rng) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  ScheduleSpec s;
  s.tz = kZones[pick(0, 9)];
  const int h = pick(0, 23), h2 = pick(0, 23), m = pick(0, 59);
  switch (kind) {
    case 0:
      s.cron = fmt::format("{} {} * * *", m, h);
      break;
    case 1:
      s.cron = fmt::format("*/15 {} * * *", h);
      break;
    case 2:
      s.cron = fmt::format("{} {} * * MON-FRI", m, h);
      break;
    case 3:
      s.cron = fmt::format("0 {} 1 * *", h);
      break;
    case 4:
      s.cron = fmt::format("{} {} L * ?", m, h);
      break;
    case 5:
      s.cron = fmt::format("0 {} * * 1#2", h);
      break;
    case 6:
      s.cron = fmt::format("0 {} 15W * *", h);
      break;
    case 7:
      s.cron = fmt::format("30 {} * * 5L", h);
      break;
    case 8:
      s.cron = fmt::format("{} {} {} * * *", pick(0, 59), m, h);
      break;
    case 9:
      s.cron = fmt::format("0 {},{} * JAN-JUN,SEP *", std::min(h, h2), std::max(h, h2));
      break;
    case 10:
      s.cron = fmt::format("{}-{}/10 {} * * SAT,SUN", m / 2, m / 2 + 20, h);
      break;
    case 11:
      s.cron = "0 0 29 2 *";
      break;
    case 12:
      s.cron = "@yearly";
      break;
    case 13: {  // deadline-aligned: send at h:m, start 15 minutes before
      s.cron = fmt::format("{} {} * * *", m, h);
      s.lead = Millis(15 * 60 * 1000);
      break;
    }
    case 14: {  // jitter
      s.cron = fmt::format("{} {} * * 1-5", m, h);
      s.jitter = Millis(30 * 1000);
      break;
    }
    default: {  // intervals (epoch-aligned)
      static const int64_t kHours[] = {3, 6, 12, 24, 48, 168};
      s.every = Millis(kHours[pick(0, 5)] * 3600 * 1000);
      s.tz = "UTC";
      break;
    }
  }
  return s;
}

constexpr int kKinds = 20;  // 15 cron kinds, 5 of 20 intervals

void SectionScale(const Config& c) {
  std::printf(
      "\n== 2. %d active schedules: mixed cron / interval / deadline-aligned / jitter, 10 "
      "zones, none due within 90 minutes; SQLite durable ==\n",
      c.scale);
  const Runbook rb = BenchRunbook();
  const Timestamp now = SystemClock().Now();
  const Timestamp horizon = now + std::chrono::minutes(90);
  std::mt19937 rng(20261122);
  std::vector<ScheduleRecord> recs;
  recs.reserve(static_cast<size_t>(c.scale));
  int redrawn = 0, fallback = 0;
  std::map<std::string, int> kinds;
  const auto gen0 = steady_clock::now();
  for (int i = 0; i < c.scale; ++i) {
    const int kind = i % kKinds;
    std::optional<ScheduleSpec> chosen;
    for (int attempt = 0; attempt < 50 && !chosen; ++attempt) {
      ScheduleSpec s = Candidate(attempt < 25 ? kind : (kind + attempt) % kKinds, rng);
      auto timing = ScheduleTiming::Make(s);
      if (!timing.ok()) Die("schedule " + s.cron, timing.status());
      auto occ = timing->Next(now);
      if (occ &&
          timing->Due(occ->nominal, ScheduleStoreId(rb.id, fmt::format("s{:06}", i))) <= horizon) {
        ++redrawn;
        continue;
      }
      chosen = s;
    }
    if (!chosen) {
      ++fallback;
      chosen = ScheduleSpec{};
      chosen->cron = "0 0 29 2 *";
    }
    chosen->id = fmt::format("s{:06}", i);
    ++kinds[chosen->every ? "interval" : chosen->lead ? "cron+lead" : "cron"];
    recs.push_back(NewScheduleRecord(rb, *chosen, "cli", now));
  }
  const double gen_s = Seconds(gen0, steady_clock::now());
  std::printf(
      "   generated in %.2f s (%d candidates redrawn because due within 90 minutes, %d "
      "fallbacks); cron %d, cron with lead %d, interval %d\n",
      gen_s, redrawn, fallback, kinds["cron"], kinds["cron+lead"], kinds["interval"]);

  const std::string path = g_tmp + "/scale.db";
  auto store = OpenStore(path, Durability::kFull);
  const auto ins0 = steady_clock::now();
  PutSchedules(*store, rb, recs, now);
  const double insert_s = Seconds(ins0, steady_clock::now());
  recs.clear();
  recs.shrink_to_fit();
  malloc_trim(0);

  Queue queue(*store, SystemClock());
  std::vector<double> startups;
  long long rss_before = 0, rss_after = 0, hwm = 0;
  double tick_again_ms = 0;
  std::optional<Timestamp> earliest;
  SchedulerStats stats;
  for (int round = 0; round < c.startups; ++round) {
    malloc_trim(0);
    if (round == 0) rss_before = ProcKb("/proc/self/status", "VmRSS");
    Scheduler sched(*store, queue, SystemClock());
    const auto t0 = steady_clock::now();
    auto next = Must(sched.Tick(), "first Tick");
    startups.push_back(Seconds(t0, steady_clock::now()));
    if (round == 0) {
      rss_after = ProcKb("/proc/self/status", "VmRSS");
      hwm = ProcKb("/proc/self/status", "VmHWM");
      earliest = next;
      stats = sched.stats();
      std::vector<double> again;
      for (int i = 0; i < 5; ++i) {
        const auto a0 = steady_clock::now();
        Must(sched.Tick(), "Tick");
        again.push_back(Seconds(a0, steady_clock::now()) * 1e3);
      }
      tick_again_ms = Median(again);
    }
  }

  // Idle: the loop's own thread, nothing due.
  double idle_cpu = 0;
  int64_t fired_idle = 0;
  {
    Scheduler sched(*store, queue, SystemClock());
    Must(sched.Tick(), "Tick");  // load first: the idle figure is the steady state
    const double cpu0 = SelfCpu();
    sched.Start();
    std::this_thread::sleep_for(seconds(c.idle_seconds));
    sched.Stop();
    idle_cpu = SelfCpu() - cpu0;
    const SchedulerStats st = sched.stats();
    fired_idle = st.fired + st.late + st.skipped + st.missed;
  }

  const double rss_mib = (rss_after - rss_before) / 1024.0;
  std::printf("\n| figure | result |\n|---|---|\n");
  std::printf(
      "| insert %d schedules (one transaction, synchronous=FULL) | %.2f s (%.1f µs each) |\n",
      c.scale, insert_s, insert_s * 1e6 / c.scale);
  std::printf(
      "| loop start-up: first Tick (leadership, read all, decode, parse, next fire for all) | "
      "**%.2f s** median of %d (%s) |\n",
      Median(startups), c.startups,
      [&] {
        std::string s;
        for (double v : startups) s += fmt::format("{}{:.2f}", s.empty() ? "" : ", ", v);
        return s;
      }()
          .c_str());
  std::printf("| loaded | %lld schedules, %lld errors; earliest due in %.0f min |\n",
              (long long)stats.schedules, (long long)stats.errors,
              earliest ? std::chrono::duration<double>(*earliest - SystemClock().Now()).count() / 60
                       : -1.0);
  std::printf(
      "| VmRSS added by the loaded Scheduler | **%.1f MiB** (%.0f bytes per schedule); "
      "VmRSS %.1f -> %.1f MiB, VmHWM %.1f MiB |\n",
      rss_mib, (rss_after - rss_before) * 1024.0 / c.scale, rss_before / 1024.0, rss_after / 1024.0,
      hwm / 1024.0);
  std::printf("| a Tick when nothing changed and nothing is due | %.2f ms (median of 5) |\n",
              tick_again_ms);
  std::printf(
      "| CPU of the idle loop (Start() for %d s, nothing due) | **%.1f ms per s** "
      "(%.2f%% of a core); %lld ledger rows |\n",
      c.idle_seconds, idle_cpu * 1e3 / c.idle_seconds, idle_cpu * 100 / c.idle_seconds,
      (long long)fired_idle);
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------
// 3. Next-fire computations per second

struct NextCase {
  std::string expr;
  std::string tz;
  std::string from = "2026-01-01T00:00:00Z";
  bool interval = false;  // expr is an `every` duration
};

// Calls of `step` per second over `seconds_` of wall time.
template <typename F>
double CallsPerSecond(F&& step, double seconds_ = 1.0) {
  const auto t0 = steady_clock::now();
  int64_t calls = 0;
  double elapsed = 0;
  do {
    for (int i = 0; i < 256; ++i) step();
    calls += 256;
    elapsed = Seconds(t0, steady_clock::now());
  } while (elapsed < seconds_);
  return static_cast<double>(calls) / elapsed;
}

void SectionNextFire(const Config& c) {
  std::printf(
      "\n== 3. next-fire computations per second (each call continues from the previous "
      "result; reset every 10 years); median of %d runs of 1 s ==\n",
      c.rounds);
  const std::vector<NextCase> cases = {
      {"*/5 * * * *", "UTC"},
      {"30 2 * * *", "Europe/Berlin"},
      {"0 9 * * MON-FRI", "America/New_York"},
      {"15 10 L * ?", "Asia/Kolkata"},
      {"0 12 * * 5#3", "Australia/Lord_Howe"},
      {"*/10 * * * * *", "Europe/Dublin"},
      {"0 0 29 2 *", "UTC"},
      {"0 0 29 2 *", "UTC", "2097-03-01T00:00:00Z"},
      {"90s", "UTC", "2026-01-01T00:00:00Z", true},
  };
  std::printf(
      "\n| expression | tz | from | CronExpr::Next /s | ScheduleTiming::Next /s |\n"
      "|---|---|---|---|---|\n");
  for (const NextCase& nc : cases) {
    const Timestamp from = *ParseRfc3339(nc.from);
    const Timestamp reset_at = from + std::chrono::hours(24 * 3653);
    ScheduleSpec spec;
    spec.id = "bench";
    spec.tz = nc.tz;
    if (nc.interval) {
      spec.every = std::chrono::duration_cast<Millis>(*ParseDuration(nc.expr));
    } else {
      spec.cron = nc.expr;
    }
    const ScheduleTiming timing = Must(ScheduleTiming::Make(spec), "timing " + nc.expr);
    std::vector<double> cron_rates, timing_rates;
    const bool worst = nc.from != "2026-01-01T00:00:00Z";
    for (int round = 0; round < c.rounds; ++round) {
      if (!nc.interval) {
        const CronExpr expr = Must(CronExpr::Parse(nc.expr), "parse " + nc.expr);
        const LocalSeconds start{std::chrono::floor<seconds>(from).time_since_epoch()};
        const LocalSeconds reset{std::chrono::floor<seconds>(reset_at).time_since_epoch()};
        LocalSeconds t = start;
        cron_rates.push_back(CallsPerSecond([&] {
          auto n = expr.Next(t + seconds(1));
          t = (!n || *n > reset || worst) ? start : *n;
        }));
      }
      Timestamp t = from;
      timing_rates.push_back(CallsPerSecond([&] {
        auto n = timing.Next(t);
        t = (!n || n->nominal > reset_at || worst) ? from : n->nominal;
      }));
    }
    auto range = [](const std::vector<double>& v) {
      if (v.empty()) return std::string("—");
      return fmt::format("**{:.0f}k** ({:.0f}k–{:.0f}k)", Median(v) / 1e3,
                         *std::min_element(v.begin(), v.end()) / 1e3,
                         *std::max_element(v.begin(), v.end()) / 1e3);
    };
    std::printf("| `%s`%s | %s | %s%s | %s | %s |\n", nc.expr.c_str(),
                nc.interval ? " (every)" : "", nc.tz.c_str(), nc.from.substr(0, 10).c_str(),
                worst ? " (every call from here)" : "", range(cron_rates).c_str(),
                range(timing_rates).c_str());
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  if (!ParseArgs(argc, argv, c)) return 2;
  char tmpl[] = "/tmp/automan-sched-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  g_tmp = tmpl;
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  std::printf("scheduler_bench: %s\n", MachineLine().c_str());
  std::printf("command: %s\n", command.c_str());
  std::printf(
      "settings: --sections=%s --seconds=%d --schedules=%d --modes=%s --load=%s --busy=%d "
      "--scale=%d --idle-seconds=%d --startups=%d --rounds=%d\n",
      [&] {
        std::string s;
        for (const auto& x : c.sections) s += (s.empty() ? "" : ",") + x;
        return s;
      }()
          .c_str(),
      c.seconds, c.schedules,
      [&] {
        std::string s;
        for (const auto& x : c.modes) s += (s.empty() ? "" : ",") + x;
        return s;
      }()
          .c_str(),
      c.load.c_str(), c.busy, c.scale, c.idle_seconds, c.startups, c.rounds);
  const auto [fsync50, fsync99] = FsyncProbe(g_tmp);
  std::printf(
      "scratch %s; fdatasync of a 4 KiB write there: p50 %.3f ms, p99 %.3f ms; load "
      "average %s\n",
      g_tmp.c_str(), fsync50, fsync99, ReadLine("/proc/loadavg").c_str());
  std::fflush(stdout);

  if (c.sections.count("lateness")) SectionLateness(c);
  if (c.sections.count("scale")) SectionScale(c);
  if (c.sections.count("nextfire")) SectionNextFire(c);

  if (!c.keep) std::filesystem::remove_all(g_tmp);
  return 0;
}
