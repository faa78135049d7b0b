// The schedule loop (src/scheduler/scheduler.h, whose header comment is the contract) end to
// end on a real store: schedules created the way `automan schedules add` creates them, runs
// enqueued through a real Queue, a SimulatedClock and Scheduler::Tick() — no threads, no
// sleeps — except one test of Start()/Stop() with the real clock.
//
// Covered: exactly one run per nominal fire time; cron in a time zone across DST changes
// (default, gap: skip, repeat: both, real-time schedules); restart (a new Scheduler and a
// re-opened store); misfire policies after downtime, bounded by max_lateness, and the
// summary of a long downtime; the four overlap policies; pause, edit, delete and deactivate
// between the loop's reload and its decision; clock steps; two loops on one store
// (leadership, takeover); ledger rows written by another loop; deadline-aligned schedules;
// jitter; and a multi-year sweep in 10 zones against ScheduleTiming's occurrence list.
//
// One source, two binaries: scheduler_loop_test (SQLite: a file per test, and ":memory:" for
// the sweep) and scheduler_loop_postgres_test (AUTOMAN_SCHEDULER_TEST_POSTGRES: a fresh schema
// per test on the ctest fixture `postgres`'s cluster; every test is skipped, saying why, when
// there is none).
#include "scheduler/scheduler.h"

#include <date/date.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "queue/queue.h"
#include "runbook/runbook.h"
#include "scheduler/changes.h"
#include "scheduler/definition.h"
#include "scheduler/timing.h"
#include "store/store.h"
#include "support/test_util.h"

#ifdef AUTOMAN_SCHEDULER_TEST_POSTGRES
#include "store/postgres_test_support.h"
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AUTOMAN_LOOP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define AUTOMAN_LOOP_SANITIZED 1
#endif
#endif

namespace automan::testing {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

#if defined(NDEBUG) && !defined(AUTOMAN_LOOP_SANITIZED)
constexpr bool kOptimizedBuild = true;
#else
constexpr bool kOptimizedBuild = false;
#endif

// The SQLite sweep covers 3 years in optimized builds and 1 under the sanitizers;
// AUTOMAN_SCHEDULER_FULL_SWEEP=1 forces the 3 years, =0 the 1 year.
[[maybe_unused]] bool FullSweep() {
  const char* env = std::getenv("AUTOMAN_SCHEDULER_FULL_SWEEP");
  if (env != nullptr && *env != '\0') return std::string_view(env) != "0";
  return kOptimizedBuild;
}

#define ASSERT_OK(expr)                                                          \
  do {                                                                           \
    const auto& automan_s_ = (expr);                                             \
    ASSERT_TRUE(::automan::testing::StatusOf(automan_s_).ok())                   \
        << #expr << ": " << ::automan::testing::StatusOf(automan_s_).ToString(); \
  } while (0)

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

Timestamp T(const char* rfc3339) {
  std::optional<Timestamp> t = ParseRfc3339(rfc3339);
  EXPECT_TRUE(t.has_value()) << rfc3339;
  return t.value_or(Timestamp{});
}

std::string Fmt(Timestamp t) { return FormatRfc3339(t); }

bool StartsWith(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string StatusName(FireStatus s) { return std::string(ToString(s)); }

// ---------------------------------------------------------------------------------------
// Backends

struct LoopBackend {
  std::string name;
  // The URL of a fresh, empty store; `dir` is a fresh temporary directory.
  std::function<Result<std::string>(const std::string& dir)> url;
};

void PrintTo(const LoopBackend& b, std::ostream* os) { *os << b.name; }

std::string LoopBackendName(const ::testing::TestParamInfo<LoopBackend>& info) {
  return info.param.name;
}

// Store methods outside StoreTx delegate to `inner`; before the next write transaction
// (the loop's decision: everything else it does reads) runs `before_next_write` once.
// This puts a change exactly between the loop's reload and its decision.
class HookStore final : public Store {
 public:
  explicit HookStore(Store& inner) : inner_(inner) {}

  std::function<void()> before_next_write;

  Status Transact(TxMode mode, const std::function<Status(StoreTx&)>& fn) override {
    if (mode != TxMode::kRead && before_next_write) {
      std::function<void()> hook = std::move(before_next_write);
      before_next_write = nullptr;
      hook();
    }
    return inner_.Transact(mode, fn);
  }
  std::string Describe() const override { return inner_.Describe(); }
  bool ReadsAreLocal() const override { return inner_.ReadsAreLocal(); }
  int SchemaVersion() const override { return inner_.SchemaVersion(); }
  Status NotifyQueue() override { return inner_.NotifyQueue(); }
  Result<std::unique_ptr<QueueListener>> ListenQueue() override { return inner_.ListenQueue(); }
  Result<std::unique_ptr<Leadership>> TryLead(std::string_view name) override {
    return inner_.TryLead(name);
  }

 private:
  Store& inner_;
};

// ---------------------------------------------------------------------------------------
// The fixture: a store (re-openable from its URL), a SimulatedClock, a Queue on both, and
// helpers that change schedules the way the CLI does (src/cli/schedule_commands.cpp).

constexpr const char* kRunbookYaml = R"(id: job
params:
  msg:
    type: string
    default: none
steps:
  - id: s
    shell: "true"
)";

class LoopFixture {
 protected:
  using Run = ::automan::Run;

  void Init(const LoopBackend& backend) {
    Result<std::string> url = backend.url(dir_.path());
    ASSERT_OK(url);
    url_ = *url;
    ASSERT_NO_FATAL_FAILURE(OpenStore());
    ParseResult parsed = ParseRunbook(kRunbookYaml, "job.yaml");
    ASSERT_TRUE(parsed.ok());
    rb_ = *parsed.runbook;
  }

  void OpenStore() {
    queue_.reset();
    store_.reset();
    Result<std::unique_ptr<Store>> s = Store::Open({.url = url_});
    ASSERT_OK(s);
    store_ = std::move(s).value();
    queue_ = std::make_unique<Queue>(*store_, clock_);
  }

  // Another Store handle on the same data (as another process would open it).
  std::unique_ptr<Store> OpenAnother() {
    Result<std::unique_ptr<Store>> s = Store::Open({.url = url_});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  bool Reopenable() const { return url_ != "sqlite::memory:"; }

  std::unique_ptr<Scheduler> NewScheduler(SchedulerOptions o = {}, Store* store = nullptr,
                                          Queue* queue = nullptr, const Clock* clock = nullptr) {
    o.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.push_back(line);
    };
    return std::make_unique<Scheduler>(store ? *store : *store_, queue ? *queue : *queue_,
                                       clock ? *clock : static_cast<const Clock&>(clock_),
                                       std::move(o));
  }

  std::optional<Timestamp> Tick(Scheduler& s) {
    Result<std::optional<Timestamp>> r = s.Tick();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }

  // Advances the clock by `step` and ticks, until the clock reaches `until`.
  void TickThrough(Scheduler& s, Timestamp until, Duration step) {
    while (clock_.Now() < until) {
      clock_.Advance(std::min(step, until - clock_.Now()));
      Tick(s);
    }
  }

  static ScheduleSpec Every(const std::string& id, Duration every) {
    ScheduleSpec s;
    s.id = id;
    s.every = std::chrono::duration_cast<milliseconds>(every);
    return s;
  }
  static ScheduleSpec Cron(const std::string& id, const std::string& cron,
                           const std::string& tz = "UTC") {
    ScheduleSpec s;
    s.id = id;
    s.cron = cron;
    s.tz = tz;
    return s;
  }

  // `automan schedules add`: the runbook version and the schedule, cursor = now.
  std::string Add(const ScheduleSpec& spec, bool paused = false) {
    const Timestamp now = clock_.Now();
    ScheduleRecord rec = NewScheduleRecord(rb_, spec, "cli", now);
    rec.paused = paused;
    Status s = store_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_RETURN_IF_ERROR(
          tx.PutRunbookVersion(RunbookVersion{rb_.version, rb_.id, rb_.yaml, rb_.source, now}));
      return PutScheduleChange(tx, rec, now).status();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return rec.id;
  }

  // `automan schedules add --replace`: the new definition, cursor = max(now, cursor).
  // Every change goes through PutScheduleChange / DeleteScheduleChange, as in the CLI.
  void Replace(const ScheduleSpec& spec) {
    const Timestamp now = clock_.Now();
    Status s = store_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(ScheduleRecord rec,
                               tx.GetSchedule(ScheduleStoreId(rb_.id, spec.id)));
      rec.spec_json = EncodeScheduleDefinition({spec, rb_.version});
      rec.cursor = std::max(rec.cursor, now);
      rec.updated_at = now;
      return PutScheduleChange(tx, rec, now).status();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  // `automan schedules pause|resume`.
  void SetPaused(const std::string& id, bool paused) {
    const Timestamp now = clock_.Now();
    Status s = store_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(ScheduleRecord rec, tx.GetSchedule(id));
      rec.paused = paused;
      if (!paused) rec.cursor = std::max(rec.cursor, now);
      rec.updated_at = now;
      return PutScheduleChange(tx, rec, now).status();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  // `automan schedules delete`.
  void Delete(const std::string& id) {
    Status s = store_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      return DeleteScheduleChange(tx, id, clock_.Now());
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  // The whole ledger of a schedule, oldest nominal first.
  std::vector<FireRecord> Ledger(const std::string& id) {
    std::vector<FireRecord> all;
    std::optional<Timestamp> before;
    constexpr int kPage = 10000;
    for (;;) {
      std::vector<FireRecord> page;
      Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
        AUTOMAN_ASSIGN_OR_RETURN(page, tx.ListFires(id, before, kPage));
        return Status::Ok();
      });
      if (!s.ok()) {
        ADD_FAILURE() << s.ToString();
        break;
      }
      all.insert(all.end(), page.begin(), page.end());
      if (static_cast<int>(page.size()) < kPage) break;
      before = page.back().nominal;
    }
    std::reverse(all.begin(), all.end());
    return all;
  }

  static std::vector<FireRecord> WithStatus(const std::vector<FireRecord>& rows, FireStatus st) {
    std::vector<FireRecord> out;
    for (const FireRecord& r : rows) {
      if (r.status == st) out.push_back(r);
    }
    return out;
  }
  static std::vector<Timestamp> Nominals(const std::vector<FireRecord>& rows) {
    std::vector<Timestamp> out;
    for (const FireRecord& r : rows) out.push_back(r.nominal);
    return out;
  }

  // Every run the loop enqueued for schedule `id` (trigger schedule), oldest first.
  std::vector<Run> RunsOf(const std::string& id) {
    std::vector<Run> all;
    RunFilter f;
    f.trigger = Trigger::kSchedule;
    f.limit = 1000;
    for (;;) {
      std::vector<Run> page;
      Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
        AUTOMAN_ASSIGN_OR_RETURN(page, tx.ListRuns(f));
        return Status::Ok();
      });
      if (!s.ok()) {
        ADD_FAILURE() << s.ToString();
        break;
      }
      for (Run& r : page) {
        if (r.triggered_by == id) all.push_back(r);
      }
      if (static_cast<int>(page.size()) < f.limit) break;
      f.before_id = page.back().id;
    }
    std::sort(all.begin(), all.end(),
              [](const Run& a, const Run& b) { return a.idempotency_key < b.idempotency_key; });
    std::stable_sort(all.begin(), all.end(),
                     [](const Run& a, const Run& b) { return a.created_at < b.created_at; });
    return all;
  }

  Run GetRun(const std::string& run_id) {
    Run run;
    Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(run, tx.GetRun(run_id));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run;
  }

  int64_t TotalRuns() {
    std::map<RunStatus, int64_t> counts;
    Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(counts, tx.CountRunsByStatus());
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    int64_t n = 0;
    for (const auto& [st, c] : counts) n += c;
    return n;
  }

  std::vector<Run> Claim(const std::string& owner = "w1") {
    Result<std::vector<Run>> r = queue_->Claim(owner, 1000);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<Run>{};
  }

  void Finish(const Run& run, RunStatus status = RunStatus::kSuccess) {
    AttemptOutcome o;
    o.status = status;
    Result<Run> r = queue_->Finish(run, o, std::nullopt);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  }

  // The idempotency key of the run of (schedule, nominal) decided by `generation`.
  static std::string Key(const std::string& id, Timestamp nominal, int64_t generation = 1) {
    return fmt::format("schedule:{}@{}#{}", id, ToMicros(nominal), generation);
  }

  // The loops' messages, to explain a failure.
  void PrintLogOnFailure() {
    if (!::testing::Test::HasFailure()) return;
    for (const std::string& line : Log()) std::printf("[ loop log ] %s\n", line.c_str());
  }

  std::vector<std::string> Log() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return log_;
  }

  TempDir dir_;
  std::string url_;
  SimulatedClock clock_{T("2026-01-01T00:00:00Z")};
  std::unique_ptr<Store> store_;
  std::unique_ptr<Queue> queue_;
  Runbook rb_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

class SchedulerLoopTest : public LoopFixture, public ::testing::TestWithParam<LoopBackend> {
 protected:
  using Run = ::automan::Run;
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Init(GetParam())); }
  void TearDown() override { PrintLogOnFailure(); }
};

// ---------------------------------------------------------------------------------------
// Exactly one run per nominal fire time

TEST_P(SchedulerLoopTest, EveryMinuteFiresOneRunPerNominalTime) {
  const Timestamp t0 = T("2026-01-05T00:00:00Z");
  clock_.Set(t0);
  const std::string id = Add(Every("minutely", minutes(1)));
  auto s = NewScheduler();
  // The first Tick loads the schedule and answers when it is next due.
  EXPECT_EQ(Tick(*s), t0 + minutes(1));
  for (int i = 0; i < 60; ++i) {
    clock_.Advance(seconds(10));
    Tick(*s);
  }
  // Ticking again at the same instant decides nothing more.
  EXPECT_EQ(Tick(*s), t0 + minutes(11));

  std::vector<FireRecord> ledger = Ledger(id);
  ASSERT_EQ(ledger.size(), 10u);
  std::vector<Run> runs = RunsOf(id);
  ASSERT_EQ(runs.size(), 10u);
  EXPECT_EQ(TotalRuns(), 10);
  std::map<std::string, Run> by_id;
  for (const Run& r : runs) by_id[r.id] = r;
  for (int k = 0; k < 10; ++k) {
    const FireRecord& f = ledger[k];
    const Timestamp nominal = t0 + minutes(k + 1);
    SCOPED_TRACE(Fmt(nominal));
    EXPECT_EQ(f.schedule_id, id);
    EXPECT_EQ(f.nominal, nominal);
    EXPECT_EQ(f.due, nominal);
    EXPECT_EQ(StatusName(f.status), "fired");
    EXPECT_EQ(f.reason, "");
    EXPECT_EQ(f.delay, Duration(0));
    EXPECT_EQ(f.generation, 1);
    EXPECT_EQ(f.recorded_at, nominal);
    ASSERT_EQ(by_id.count(f.run_id), 1u) << f.run_id;
    const Run& run = by_id[f.run_id];
    EXPECT_EQ(run.trigger, Trigger::kSchedule);
    EXPECT_EQ(run.triggered_by, id);
    EXPECT_EQ(run.idempotency_key, Key(id, nominal));
    EXPECT_EQ(run.runbook_version, rb_.version);
    EXPECT_EQ(run.status, RunStatus::kPending);
    EXPECT_EQ(run.created_at, nominal);
    EXPECT_FALSE(run.deadline_at.has_value());
  }
  SchedulerStats st = s->stats();
  EXPECT_TRUE(st.leader);
  EXPECT_EQ(st.fired, 10);
  EXPECT_EQ(st.late + st.skipped + st.missed, 0);
  EXPECT_EQ(st.schedules, 1);
  EXPECT_EQ(st.errors, 0);
}

// ---------------------------------------------------------------------------------------
// Cron in a time zone across DST changes (Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST
// at 01:00Z; 2026-10-25 03:00 CEST -> 02:00 CET at 01:00Z)

TEST_P(SchedulerLoopTest, CronInBerlinAcrossSpringForward) {
  clock_.Set(T("2026-03-27T22:00:00Z"));
  const std::string daily = Add(Cron("daily", "30 2 * * *", "Europe/Berlin"));
  ScheduleSpec skip = Cron("gapskip", "30 2 * * *", "Europe/Berlin");
  skip.dst_gap = "skip";
  const std::string gapskip = Add(skip);
  auto s = NewScheduler();
  Tick(*s);
  TickThrough(*s, T("2026-03-30T22:00:00Z"), minutes(5));

  // One run per day; 02:30 does not exist on the 29th: it fires at 03:00 CEST = 01:00Z.
  const std::vector<Timestamp> want = {T("2026-03-28T01:30:00Z"), T("2026-03-29T01:00:00Z"),
                                       T("2026-03-30T00:30:00Z")};
  std::vector<FireRecord> ledger = Ledger(daily);
  EXPECT_EQ(Nominals(ledger), want);
  EXPECT_EQ(WithStatus(ledger, FireStatus::kFired).size(), 3u);
  std::vector<Run> runs = RunsOf(daily);
  ASSERT_EQ(runs.size(), 3u);
  for (size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(runs[i].created_at, want[i]);
    EXPECT_EQ(runs[i].idempotency_key, Key(daily, want[i]));
  }
  ASSERT_EQ(ledger.size(), 3u);
  EXPECT_TRUE(StartsWith(ledger[1].wall, "2026-03-29T02:30:00")) << ledger[1].wall;

  // gap: skip records the skip and runs nothing that day.
  std::vector<FireRecord> g = Ledger(gapskip);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(StatusName(g[0].status), "fired");
  EXPECT_EQ(StatusName(g[1].status), "skipped");
  EXPECT_TRUE(StartsWith(g[1].reason, "dst_gap")) << g[1].reason;
  EXPECT_EQ(g[1].run_id, "");
  EXPECT_EQ(StatusName(g[2].status), "fired");
  EXPECT_EQ(RunsOf(gapskip).size(), 2u);
  EXPECT_EQ(TotalRuns(), 5);
}

TEST_P(SchedulerLoopTest, CronInBerlinAcrossFallBackFiresOnceUnlessRepeatIsBoth) {
  clock_.Set(T("2026-10-23T22:00:00Z"));
  const std::string daily = Add(Cron("daily", "30 2 * * *", "Europe/Berlin"));
  ScheduleSpec both = Cron("both", "30 2 * * *", "Europe/Berlin");
  both.dst_repeat = "both";
  const std::string twice = Add(both);
  auto s = NewScheduler();
  Tick(*s);
  TickThrough(*s, T("2026-10-26T22:00:00Z"), minutes(5));

  // Default (first): ONE run on the 25th, at the first 02:30 (CEST, 00:30Z); the second
  // 02:30 (CET, 01:30Z) is recorded as skipped.
  std::vector<Run> runs = RunsOf(daily);
  std::vector<Timestamp> created;
  for (const Run& r : runs) created.push_back(r.created_at);
  EXPECT_EQ(created, (std::vector<Timestamp>{T("2026-10-24T00:30:00Z"), T("2026-10-25T00:30:00Z"),
                                             T("2026-10-26T01:30:00Z")}));
  std::vector<FireRecord> ledger = Ledger(daily);
  ASSERT_EQ(ledger.size(), 4u);
  EXPECT_EQ(ledger[2].nominal, T("2026-10-25T01:30:00Z"));
  EXPECT_EQ(StatusName(ledger[2].status), "skipped");
  EXPECT_TRUE(StartsWith(ledger[2].reason, "dst_repeat")) << ledger[2].reason;
  int fired_on_25th = 0;
  for (const FireRecord& f : WithStatus(ledger, FireStatus::kFired)) {
    if (StartsWith(f.wall, "2026-10-25")) ++fired_on_25th;
  }
  EXPECT_EQ(fired_on_25th, 1);

  // repeat: both: two runs on the 25th, one at each 02:30.
  std::vector<Run> both_runs = RunsOf(twice);
  std::vector<Timestamp> both_created;
  for (const Run& r : both_runs) both_created.push_back(r.created_at);
  EXPECT_EQ(both_created,
            (std::vector<Timestamp>{T("2026-10-24T00:30:00Z"), T("2026-10-25T00:30:00Z"),
                                    T("2026-10-25T01:30:00Z"), T("2026-10-26T01:30:00Z")}));
  EXPECT_EQ(WithStatus(Ledger(twice), FireStatus::kFired).size(), 4u);
  EXPECT_EQ(TotalRuns(), 7);
}

TEST_P(SchedulerLoopTest, RealTimeCronFiresEveryRealHalfHourThroughFallBack) {
  const Timestamp from = T("2026-10-24T22:00:00Z");  // 00:00 CEST on the 25th
  const Timestamp to = T("2026-10-25T04:00:00Z");
  clock_.Set(from);
  const std::string id = Add(Cron("halfhourly", "*/30 * * * *", "Europe/Berlin"));
  auto s = NewScheduler();
  Tick(*s);
  TickThrough(*s, to, minutes(5));
  std::vector<Timestamp> want;
  for (Timestamp t = from + minutes(30); t <= to; t += minutes(30)) want.push_back(t);
  std::vector<FireRecord> ledger = Ledger(id);
  EXPECT_EQ(Nominals(ledger), want);
  EXPECT_EQ(WithStatus(ledger, FireStatus::kFired).size(), want.size());
  // Wall 02:00 and 02:30 each twice (CEST, then CET).
  std::map<std::string, int> walls;
  for (const FireRecord& f : ledger) ++walls[f.wall.substr(0, 19)];
  EXPECT_EQ(walls["2026-10-25T02:00:00"], 2);
  EXPECT_EQ(walls["2026-10-25T02:30:00"], 2);
  EXPECT_EQ(walls["2026-10-25T03:00:00"], 1);
  std::vector<Run> runs = RunsOf(id);
  ASSERT_EQ(runs.size(), want.size());
  for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i].created_at, want[i]);
}

// ---------------------------------------------------------------------------------------
// Restart

TEST_P(SchedulerLoopTest, RestartContinuesWithoutDuplicatesOrGaps) {
  const Timestamp t0 = T("2026-02-02T10:00:00Z");
  clock_.Set(t0);
  const std::string id = Add(Every("minutely", minutes(1)));
  auto a = NewScheduler();
  Tick(*a);
  TickThrough(*a, t0 + minutes(5), seconds(10));  // fires 1..5
  a.reset();
  // A new loop at the same instant: minute 5 was decided already.
  auto b = NewScheduler();
  EXPECT_EQ(Tick(*b), t0 + minutes(6));
  TickThrough(*b, t0 + minutes(8) + seconds(30), seconds(10));  // 6..8
  b.reset();
  if (Reopenable()) {
    // A re-opened store (another process starting on the same data).
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }
  auto c = NewScheduler();
  EXPECT_EQ(Tick(*c), t0 + minutes(9));
  TickThrough(*c, t0 + minutes(12), seconds(10));  // 9..12

  std::vector<Timestamp> want;
  for (int k = 1; k <= 12; ++k) want.push_back(t0 + minutes(k));
  std::vector<FireRecord> ledger = Ledger(id);
  EXPECT_EQ(Nominals(ledger), want);
  EXPECT_EQ(WithStatus(ledger, FireStatus::kFired).size(), 12u);
  std::vector<Run> runs = RunsOf(id);
  ASSERT_EQ(runs.size(), 12u);
  std::set<std::string> keys;
  for (const Run& r : runs) keys.insert(*r.idempotency_key);
  EXPECT_EQ(keys.size(), 12u);
  EXPECT_EQ(TotalRuns(), 12);
}

// ---------------------------------------------------------------------------------------
// Misfire after downtime: every 10m; the loop is down from just after 00:10 to 03:15.
// Occurrences 00:20 .. 03:10 (18): lateness > 1h for 00:20 .. 02:10 (12), <= 1h for
// 02:20 .. 03:10 (6).

// A fire that meets the runbook's cooldown (queue/queue.h, "Cooldown") is skipped with the
// reason and no run; the others run, never closer together than the cooldown.
TEST_P(SchedulerLoopTest, AFireDuringTheRunbooksCooldownIsSkippedWithTheReason) {
  ParseResult parsed =
      ParseRunbook("id: job\ncooldown: 150s\nsteps:\n  - id: s\n    shell: \"true\"\n", "job.yaml");
  ASSERT_TRUE(parsed.ok());
  rb_ = *parsed.runbook;
  const Timestamp t0 = T("2026-01-05T00:00:00Z");
  clock_.Set(t0);
  const std::string id = Add(Every("minutely", minutes(1)));
  auto s = NewScheduler();
  Tick(*s);
  for (int i = 0; i < 60; ++i) {
    clock_.Advance(seconds(10));
    Tick(*s);
  }
  std::vector<FireRecord> ledger = Ledger(id);
  std::string rows;
  for (const FireRecord& f : ledger) {
    rows += FormatRfc3339(f.nominal) + " " + StatusName(f.status) + " " + f.reason + "\n";
  }
  ASSERT_EQ(ledger.size(), 10u) << rows;
  std::vector<FireRecord> skipped = WithStatus(ledger, FireStatus::kSkipped);
  EXPECT_GE(skipped.size(), 5u) << rows;
  for (const FireRecord& f : skipped) {
    EXPECT_TRUE(StartsWith(f.reason, "cooldown: runbook job may run again at")) << f.reason;
    EXPECT_EQ(f.run_id, "");
  }
  std::vector<Run> runs = RunsOf(id);
  EXPECT_EQ(runs.size() + skipped.size(), 10u);
  ASSERT_GE(runs.size(), 3u);
  std::sort(runs.begin(), runs.end(),
            [](const Run& a, const Run& b) { return a.created_at < b.created_at; });
  for (size_t i = 1; i < runs.size(); ++i) {
    EXPECT_GE(runs[i].created_at - runs[i - 1].created_at, seconds(150));
  }
}

TEST_P(SchedulerLoopTest, MisfireAfterDowntimeFollowsPolicyWithinMaxLateness) {
  const Timestamp t0 = T("2026-02-02T00:00:00Z");
  clock_.Set(t0);
  auto spec = [](const std::string& id, const std::string& misfire, bool lateness_1h) {
    ScheduleSpec s = Every(id, minutes(10));
    s.misfire = misfire;
    if (lateness_1h) s.max_lateness = milliseconds(hours(1));
    return s;
  };
  const std::string skip = Add(spec("skip", "skip", true));
  const std::string once = Add(spec("once", "run_once", true));
  const std::string all = Add(spec("all", "run_all", true));
  const std::string dflt = Add(spec("dflt", "run_all", false));  // max_lateness: one period
  auto s = NewScheduler();
  Tick(*s);
  clock_.Set(t0 + minutes(10));
  Tick(*s);  // 00:10 fires on time everywhere
  clock_.Set(T("2026-02-02T03:15:00Z"));
  Tick(*s);

  auto check = [&](const std::string& id, int missed, int skipped, int late) {
    SCOPED_TRACE(id);
    std::vector<FireRecord> ledger = Ledger(id);
    ASSERT_EQ(ledger.size(), 19u);
    EXPECT_EQ(StatusName(ledger[0].status), "fired");
    std::vector<FireRecord> m = WithStatus(ledger, FireStatus::kMissed);
    std::vector<FireRecord> sk = WithStatus(ledger, FireStatus::kSkipped);
    std::vector<FireRecord> l = WithStatus(ledger, FireStatus::kLate);
    EXPECT_EQ(m.size(), static_cast<size_t>(missed));
    EXPECT_EQ(sk.size(), static_cast<size_t>(skipped));
    EXPECT_EQ(l.size(), static_cast<size_t>(late));
    // Missed: exactly the oldest ones (more than max_lateness late); never a run.
    for (size_t i = 0; i < m.size(); ++i) {
      EXPECT_EQ(m[i].nominal, t0 + minutes(20 + 10 * static_cast<int>(i)));
      EXPECT_TRUE(StartsWith(m[i].reason, "max_lateness")) << m[i].reason;
      EXPECT_EQ(m[i].run_id, "");
    }
    for (const FireRecord& f : sk) {
      EXPECT_TRUE(StartsWith(f.reason, "misfire")) << f.reason;
      EXPECT_EQ(f.run_id, "");
      EXPECT_GT(f.nominal, m.empty() ? t0 : m.back().nominal);
    }
    // Late ones run, with their delay; none beyond max_lateness.
    std::set<std::string> late_runs;
    for (const FireRecord& f : l) {
      EXPECT_NE(f.run_id, "");
      late_runs.insert(f.run_id);
      EXPECT_EQ(f.delay, clock_.Now() - f.due);
      EXPECT_LE(f.delay, Duration(hours(1)));
      EXPECT_EQ(GetRun(f.run_id).idempotency_key, Key(id, f.nominal));
    }
    std::vector<Run> runs = RunsOf(id);
    EXPECT_EQ(runs.size(), 1u + late);  // 00:10 and the late ones
  };
  check(skip, 12, 6, 0);
  check(once, 12, 5, 1);
  check(all, 12, 0, 6);
  check(dflt, 17, 0, 1);
  // run_once runs the latest one.
  std::vector<FireRecord> l = WithStatus(Ledger(once), FireStatus::kLate);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].nominal, T("2026-02-02T03:10:00Z"));
  EXPECT_EQ(l[0].delay, Duration(minutes(5)));
  // run_all: 02:20 .. 03:10 all run.
  EXPECT_EQ(WithStatus(Ledger(all), FireStatus::kLate).front().nominal, T("2026-02-02T02:20:00Z"));

  // Back on time afterwards.
  clock_.Set(T("2026-02-02T03:20:00Z"));
  Tick(*s);
  for (const std::string& id : {skip, once, all, dflt}) {
    std::vector<FireRecord> ledger = Ledger(id);
    ASSERT_EQ(ledger.size(), 20u);
    EXPECT_EQ(StatusName(ledger.back().status), "fired");
    EXPECT_EQ(ledger.back().nominal, T("2026-02-02T03:20:00Z"));
  }
  EXPECT_EQ(TotalRuns(), 4 /* 00:10 */ + 0 + 1 + 6 + 1 + 4 /* 03:20 */);
}

TEST_P(SchedulerLoopTest, LongDowntimeIsSummarisedAndBounded) {
  const Timestamp t0 = T("2026-02-03T00:00:00Z");
  clock_.Set(t0);
  const std::string id = Add(Every("everysecond", seconds(1)));  // max_lateness: 1s
  auto s = NewScheduler();
  Tick(*s);
  clock_.Advance(seconds(1));
  Tick(*s);  // t0+1s fires
  clock_.Advance(hours(24));
  const Timestamp now = clock_.Now();
  Tick(*s);
  // Occurrences t0+2s .. now (86400); more than 1s late: t0+2s .. now-2s.
  const int64_t stale = 86400 - 2;
  std::vector<FireRecord> ledger = Ledger(id);
  std::vector<FireRecord> missed = WithStatus(ledger, FireStatus::kMissed);
  std::vector<FireRecord> fired = WithStatus(ledger, FireStatus::kFired);
  EXPECT_LE(ledger.size(), 110u);
  ASSERT_EQ(missed.size(), 101u);  // 100 one by one and a summary
  int summaries = 0;
  for (const FireRecord& f : missed) {
    if (f.reason.find(fmt::format("{} more occurrences", stale - 100)) != std::string::npos) {
      ++summaries;
      EXPECT_EQ(f.nominal, now - seconds(2));  // at the last one it stands for
    }
    EXPECT_EQ(f.run_id, "");
  }
  EXPECT_EQ(summaries, 1);
  // What runs is within max_lateness (1s) of now.
  EXPECT_EQ(Nominals(fired), (std::vector<Timestamp>{t0 + seconds(1), now - seconds(1), now}));
  std::set<std::string> keys;
  for (const Run& r : RunsOf(id)) keys.insert(r.idempotency_key.value_or(""));
  EXPECT_EQ(keys, (std::set<std::string>{Key(id, t0 + seconds(1)), Key(id, now - seconds(1)),
                                         Key(id, now)}));
  EXPECT_EQ(TotalRuns(), 3);
  EXPECT_EQ(s->stats().missed, 101);
  // The next second is on time again.
  clock_.Advance(seconds(1));
  Tick(*s);
  EXPECT_EQ(StatusName(Ledger(id).back().status), "fired");
}

// ---------------------------------------------------------------------------------------
// Overlap policies: every 1m; the first run is claimed (RUNNING) before the next fire.

TEST_P(SchedulerLoopTest, OverlapAllowRunsAnyway) {
  const Timestamp t0 = T("2026-02-04T00:00:00Z");
  clock_.Set(t0);
  const std::string id = Add(Every("allow", minutes(1)));
  auto s = NewScheduler();
  Tick(*s);
  TickThrough(*s, t0 + minutes(1), minutes(1));
  ASSERT_EQ(Claim().size(), 1u);
  TickThrough(*s, t0 + minutes(2), minutes(1));
  std::vector<Run> runs = RunsOf(id);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].status, RunStatus::kRunning);
  EXPECT_EQ(runs[1].status, RunStatus::kPending);
  EXPECT_EQ(WithStatus(Ledger(id), FireStatus::kFired).size(), 2u);
  // Nothing serialises them: both run at once.
  EXPECT_EQ(Claim("w2").size(), 1u);
}

TEST_P(SchedulerLoopTest, OverlapSkipSkipsWhileARunIsActive) {
  const Timestamp t0 = T("2026-02-04T00:00:00Z");
  clock_.Set(t0);
  ScheduleSpec spec = Every("skip", minutes(1));
  spec.overlap = "skip";
  const std::string id = Add(spec);
  auto s = NewScheduler();
  Tick(*s);
  TickThrough(*s, t0 + minutes(1), minutes(1));
  std::vector<Run> first = Claim();
  ASSERT_EQ(first.size(), 1u);
  TickThrough(*s, t0 + minutes(2), minutes(1));
  std::vector<FireRecord> ledger = Ledger(id);
  ASSERT_EQ(ledger.size(), 2u);
  EXPECT_EQ(StatusName(ledger[1].status), "skipped");
  EXPECT_TRUE(StartsWith(ledger[1].reason, "overlap")) << ledger[1].reason;
  EXPECT_NE(ledger[1].reason.find(first[0].id), std::string::npos) << ledger[1].reason;
  EXPECT_EQ(RunsOf(id).size(), 1u);
  Finish(first[0]);
  TickThrough(*s, t0 + minutes(3), minutes(1));
  ledger = Ledger(id);
  ASSERT_EQ(ledger.size(), 3u);
  EXPECT_EQ(StatusName(ledger[2].status), "fired");
  EXPECT_EQ(RunsOf(id).size(), 2u);
}

TEST_P(SchedulerLoopTest, OverlapQueueOneQueuesOneBehindTheRunningRun) {
  const Timestamp t0 = T("2026-02-04T00:00:00Z");
  clock_.Set(t0);
  ScheduleSpec spec = Every("queueone", minutes(1));
  spec.overlap = "queue_one";
  const std::string id = Add(spec);
  auto s = NewScheduler();
  Tick(*s);
  TickThrough(*s, t0 + minutes(1), minutes(1));
  std::vector<Run> first = Claim();
  ASSERT_EQ(first.size(), 1u);
  TickThrough(*s, t0 + minutes(3), minutes(1));
  std::vector<FireRecord> ledger = Ledger(id);
  ASSERT_EQ(ledger.size(), 3u);
  EXPECT_EQ(StatusName(ledger[1].status), "fired");  // queued behind the first
  EXPECT_EQ(StatusName(ledger[2].status), "skipped");
  EXPECT_TRUE(StartsWith(ledger[2].reason, "overlap")) << ledger[2].reason;
  std::vector<Run> runs = RunsOf(id);
  ASSERT_EQ(runs.size(), 2u);
  const Run queued = GetRun(ledger[1].run_id);
  EXPECT_EQ(queued.status, RunStatus::kPending);
  bool keyed = false;
  for (const ConcurrencyLimit& k : queued.concurrency) {
    if (k.key == "schedule:" + id && k.limit == 1) keyed = true;
  }
  EXPECT_TRUE(keyed);
  // Not claimable while the first runs.
  EXPECT_TRUE(Claim("w2").empty());
  Finish(first[0]);
  std::vector<Run> next = Claim("w2");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, queued.id);
}

TEST_P(SchedulerLoopTest, OverlapCancelPreviousCancelsAndQueues) {
  const Timestamp t0 = T("2026-02-04T00:00:00Z");
  clock_.Set(t0);
  ScheduleSpec spec = Every("cancelprev", minutes(1));
  spec.overlap = "cancel_previous";
  const std::string id = Add(spec);
  auto s = NewScheduler();
  Tick(*s);
  TickThrough(*s, t0 + minutes(1), minutes(1));
  std::vector<Run> first = Claim();
  ASSERT_EQ(first.size(), 1u);
  TickThrough(*s, t0 + minutes(2), minutes(1));
  // The running run is asked to cancel; a new one is queued.
  std::vector<FireRecord> ledger = Ledger(id);
  ASSERT_EQ(ledger.size(), 2u);
  EXPECT_EQ(StatusName(ledger[1].status), "fired");
  Run running = GetRun(first[0].id);
  EXPECT_EQ(running.status, RunStatus::kRunning);
  EXPECT_TRUE(running.cancel_requested);
  const std::string second = ledger[1].run_id;
  EXPECT_EQ(GetRun(second).status, RunStatus::kPending);
  // The next fire cancels the pending one at once and queues another.
  TickThrough(*s, t0 + minutes(3), minutes(1));
  ledger = Ledger(id);
  ASSERT_EQ(ledger.size(), 3u);
  EXPECT_EQ(StatusName(ledger[2].status), "fired");
  EXPECT_EQ(GetRun(second).status, RunStatus::kCancelled);
  const std::string third = ledger[2].run_id;
  EXPECT_EQ(GetRun(third).status, RunStatus::kPending);
  EXPECT_EQ(RunsOf(id).size(), 3u);
  // The new one waits for the cancelled run to end (one key).
  EXPECT_TRUE(Claim("w2").empty());
  Finish(first[0], RunStatus::kCancelled);
  std::vector<Run> next = Claim("w2");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, third);
}

// ---------------------------------------------------------------------------------------
// Pause, edit, delete, deactivate: a change committed between the loop's reload and its
// decision (HookStore) is never overtaken by a fire of the old definition.

class ChangeTest : public SchedulerLoopTest {
 protected:
  // Creates `spec` at t0 and lets a loop (on a HookStore) load it; then, at the due time,
  // arms `change` to run just before the loop's decision, and ticks.
  void ChangeAtDecision(const ScheduleSpec& spec, const std::function<void()>& change) {
    t0_ = T("2026-02-05T00:00:00Z");
    clock_.Set(t0_);
    id_ = Add(spec);
    hook_ = std::make_unique<HookStore>(*store_);
    s_ = NewScheduler({}, hook_.get());
    EXPECT_EQ(Tick(*s_), t0_ + minutes(1));
    clock_.Set(t0_ + minutes(1));
    hook_->before_next_write = change;
    Tick(*s_);
    EXPECT_FALSE(hook_->before_next_write) << "the loop made no decision to interrupt";
  }

  Timestamp t0_{};
  std::string id_;
  std::unique_ptr<HookStore> hook_;
  std::unique_ptr<Scheduler> s_;
};

TEST_P(ChangeTest, PauseTakesEffectImmediately) {
  ASSERT_NO_FATAL_FAILURE(
      ChangeAtDecision(Every("paused", minutes(1)), [&] { SetPaused(id_, true); }));
  EXPECT_TRUE(RunsOf(id_).empty());
  // The loop sees the pause and records the occurrence as skipped: paused.
  Tick(*s_);
  TickThrough(*s_, t0_ + minutes(3), seconds(10));
  std::vector<FireRecord> ledger = Ledger(id_);
  ASSERT_EQ(ledger.size(), 3u);
  for (const FireRecord& f : ledger) {
    EXPECT_EQ(StatusName(f.status), "skipped");
    EXPECT_EQ(f.reason, "paused");
    EXPECT_EQ(f.generation, 2);
  }
  EXPECT_EQ(ledger[0].nominal, t0_ + minutes(1));
  EXPECT_TRUE(RunsOf(id_).empty());
  // Resume: on from the next occurrence, nothing caught up.
  clock_.Advance(seconds(30));
  SetPaused(id_, false);
  TickThrough(*s_, t0_ + minutes(5), seconds(10));
  ledger = Ledger(id_);
  ASSERT_EQ(ledger.size(), 5u);
  EXPECT_EQ(StatusName(ledger[3].status), "fired");
  EXPECT_EQ(StatusName(ledger[4].status), "fired");
  EXPECT_EQ(RunsOf(id_).size(), 2u);
}

TEST_P(ChangeTest, EditFiresOnlyTheNewDefinition) {
  ScheduleSpec old_spec = Every("edited", minutes(1));
  old_spec.params = {{"msg", "old"}};
  ScheduleSpec new_spec = old_spec;
  new_spec.params = {{"msg", "new"}};
  ASSERT_NO_FATAL_FAILURE(ChangeAtDecision(old_spec, [&] { Replace(new_spec); }));
  EXPECT_TRUE(RunsOf(id_).empty());
  EXPECT_TRUE(Ledger(id_).empty());
  TickThrough(*s_, t0_ + minutes(3), seconds(10));
  // The edit moved the cursor to the time of the change (t0+1m): the new definition fires
  // from the next occurrence on.
  std::vector<FireRecord> ledger = Ledger(id_);
  EXPECT_EQ(Nominals(ledger), (std::vector<Timestamp>{t0_ + minutes(2), t0_ + minutes(3)}));
  for (const FireRecord& f : ledger) EXPECT_EQ(f.generation, 2);
  std::vector<Run> runs = RunsOf(id_);
  ASSERT_EQ(runs.size(), 2u);
  for (const Run& r : runs) EXPECT_EQ(r.params.at("msg").text, "new");
  // An edit the loop sees at its reload: the next occurrence fires the newest definition.
  clock_.Advance(seconds(20));
  Tick(*s_);
  ScheduleSpec newer = old_spec;
  newer.params = {{"msg", "newer"}};
  clock_.Advance(seconds(10));
  Replace(newer);
  TickThrough(*s_, t0_ + minutes(4), seconds(10));
  runs = RunsOf(id_);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs.back().params.at("msg").text, "newer");
  EXPECT_EQ(runs.back().idempotency_key, Key(id_, t0_ + minutes(4), 3));
}

TEST_P(ChangeTest, DeleteTakesEffectImmediately) {
  ASSERT_NO_FATAL_FAILURE(ChangeAtDecision(Every("deleted", minutes(1)), [&] { Delete(id_); }));
  TickThrough(*s_, t0_ + minutes(5), seconds(10));
  EXPECT_TRUE(Ledger(id_).empty());
  EXPECT_TRUE(RunsOf(id_).empty());
  EXPECT_EQ(s_->stats().schedules, 0);
  EXPECT_EQ(TotalRuns(), 0);
}

TEST_P(ChangeTest, DeactivateThenRestartNeverFires) {
  ScheduleSpec spec = Every("deactivated", minutes(1));
  ScheduleSpec inactive = spec;
  inactive.active = false;
  ASSERT_NO_FATAL_FAILURE(ChangeAtDecision(spec, [&] { Replace(inactive); }));
  TickThrough(*s_, t0_ + minutes(3), seconds(10));
  s_.reset();
  if (Reopenable()) {
    hook_.reset();
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }
  auto s = NewScheduler();
  EXPECT_EQ(Tick(*s), std::nullopt);
  TickThrough(*s, t0_ + minutes(10), seconds(10));
  EXPECT_TRUE(Ledger(id_).empty());  // inactive schedules record nothing
  EXPECT_TRUE(RunsOf(id_).empty());
  EXPECT_EQ(s->stats().fired, 0);
}

// ---------------------------------------------------------------------------------------
// Deciding ahead (SchedulerOptions::lookahead)

TEST_P(SchedulerLoopTest, LookaheadDecidesAheadAndTheRunWaitsForItsDueTime) {
  const Timestamp t0 = T("2026-02-10T00:00:00Z");
  clock_.Set(t0);
  const std::string ahead = Add(Every("ahead", minutes(1)));
  ScheduleSpec skip = Every("notahead", minutes(1));
  skip.overlap = "skip";  // needs the state at its due time: decided then
  const std::string at_due = Add(skip);
  SchedulerOptions o;
  o.lookahead = seconds(10);
  auto s = NewScheduler(o);
  EXPECT_EQ(Tick(*s), t0 + seconds(50));
  clock_.Set(t0 + seconds(50));
  Tick(*s);
  std::vector<FireRecord> ledger = Ledger(ahead);
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].nominal, t0 + minutes(1));
  EXPECT_EQ(ledger[0].due, t0 + minutes(1));
  EXPECT_EQ(StatusName(ledger[0].status), "fired");
  EXPECT_EQ(ledger[0].delay, Duration(0));
  const Run run = GetRun(ledger[0].run_id);
  EXPECT_EQ(run.status, RunStatus::kPending);
  EXPECT_EQ(run.not_before, t0 + minutes(1));
  EXPECT_TRUE(Ledger(at_due).empty());
  // Not claimable before its due time.
  clock_.Set(t0 + seconds(59));
  Tick(*s);
  EXPECT_TRUE(Claim().empty());
  clock_.Set(t0 + minutes(1));
  Tick(*s);
  EXPECT_EQ(Ledger(at_due).size(), 1u);
  std::vector<Run> claimed = Claim();
  std::set<std::string> claimed_ids;
  for (const Run& r : claimed) claimed_ids.insert(r.id);
  EXPECT_EQ(claimed_ids.count(run.id), 1u);
  EXPECT_EQ(claimed.size(), 2u);
  EXPECT_EQ(Ledger(ahead).size(), 1u);  // the next one is decided at 1m50s
}

TEST_P(SchedulerLoopTest, AChangeWithdrawsDecisionsMadeAhead) {
  const Timestamp t0 = T("2026-02-10T00:00:00Z");
  clock_.Set(t0);
  ScheduleSpec p = Every("paused", minutes(1));
  ScheduleSpec e = Every("edited", minutes(1));
  e.params = {{"msg", "old"}};
  ScheduleSpec d = Every("deleted", minutes(1));
  const std::string paused = Add(p), edited = Add(e), deleted = Add(d);
  SchedulerOptions o;
  o.lookahead = seconds(10);
  auto s = NewScheduler(o);
  Tick(*s);
  clock_.Set(t0 + seconds(50));
  Tick(*s);
  std::map<std::string, std::string> early;  // schedule -> its run decided ahead
  for (const std::string& id : {paused, edited, deleted}) {
    std::vector<FireRecord> ledger = Ledger(id);
    ASSERT_EQ(ledger.size(), 1u) << id;
    early[id] = ledger[0].run_id;
  }
  clock_.Set(t0 + seconds(55));
  SetPaused(paused, true);
  e.params = {{"msg", "new"}};
  Replace(e);
  Delete(deleted);
  // Withdrawn in the change's transaction: the early runs are cancelled, their rows gone.
  for (const auto& [id, run_id] : early) {
    SCOPED_TRACE(id);
    EXPECT_EQ(GetRun(run_id).status, RunStatus::kCancelled);
    EXPECT_TRUE(Ledger(id).empty());
  }
  Tick(*s);
  clock_.Set(t0 + minutes(1));
  Tick(*s);
  // The paused one records the occurrence as paused; the edited one runs its new
  // definition; the deleted one records nothing.
  std::vector<FireRecord> p_ledger = Ledger(paused);
  ASSERT_EQ(p_ledger.size(), 1u);
  EXPECT_EQ(p_ledger[0].nominal, t0 + minutes(1));
  EXPECT_EQ(p_ledger[0].reason, "paused");
  std::vector<FireRecord> e_ledger = Ledger(edited);
  ASSERT_EQ(e_ledger.size(), 1u);
  EXPECT_EQ(e_ledger[0].nominal, t0 + minutes(1));
  EXPECT_EQ(e_ledger[0].generation, 2);
  const Run fresh = GetRun(e_ledger[0].run_id);
  EXPECT_EQ(fresh.params.at("msg").text, "new");
  EXPECT_EQ(fresh.idempotency_key, Key(edited, t0 + minutes(1), 2));
  EXPECT_TRUE(Ledger(deleted).empty());
  // The only run that can start is the new definition's.
  std::vector<Run> claimed = Claim();
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, fresh.id);
}

// ---------------------------------------------------------------------------------------
// Clock steps

TEST_P(SchedulerLoopTest, ClockStepsNeitherRepeatNorRunStaleFires) {
  const Timestamp t0 = T("2026-02-06T00:00:00Z");
  clock_.Set(t0);
  const std::string id = Add(Every("minutely", minutes(1)));
  auto s = NewScheduler();
  Tick(*s);
  TickThrough(*s, t0 + minutes(5), seconds(10));  // 1..5
  // Back 1h: the decided occurrences are not decided again; the loop waits for 6.
  clock_.Set(clock_.Now() - hours(1));
  EXPECT_EQ(Tick(*s), t0 + minutes(6));
  TickThrough(*s, t0 + minutes(7), seconds(10));  // 6, 7 once the clock is there again
  std::vector<Timestamp> want;
  for (int k = 1; k <= 7; ++k) want.push_back(t0 + minutes(k));
  EXPECT_EQ(Nominals(Ledger(id)), want);
  EXPECT_EQ(RunsOf(id).size(), 7u);

  // Forward 2h (+30s): like downtime; run_once within max_lateness (one period, 1m).
  clock_.Set(t0 + minutes(7) + hours(2) + seconds(30));
  Tick(*s);
  std::vector<FireRecord> ledger = Ledger(id);
  std::vector<FireRecord> late = WithStatus(ledger, FireStatus::kLate);
  std::vector<FireRecord> missed = WithStatus(ledger, FireStatus::kMissed);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].nominal, t0 + minutes(7) + hours(2));
  EXPECT_EQ(late[0].delay, Duration(seconds(30)));
  // 8 .. 126 are more than 1m late: 100 listed and one summary of the other 19.
  EXPECT_EQ(missed.size(), 101u);
  EXPECT_EQ(WithStatus(ledger, FireStatus::kSkipped).size(), 0u);
  EXPECT_EQ(RunsOf(id).size(), 8u);
  EXPECT_EQ(TotalRuns(), 8);
}

// ---------------------------------------------------------------------------------------
// Two loops

TEST_P(SchedulerLoopTest, OneLoopLeadsAndTheOtherTakesOverWhenItIsGone) {
  if (!Reopenable()) GTEST_SKIP() << "needs a second handle on the same data";
  const Timestamp t0 = T("2026-02-07T00:00:00Z");
  clock_.Set(t0);
  const std::string id = Add(Every("minutely", minutes(1)));
  std::unique_ptr<Store> other = OpenAnother();
  ASSERT_NE(other, nullptr);
  Queue other_queue(*other, clock_);
  SchedulerOptions o;
  o.leadership_retry = milliseconds(2000);
  auto a = NewScheduler(o);
  auto b = NewScheduler(o, other.get(), &other_queue);
  Tick(*a);
  EXPECT_EQ(Tick(*b), std::nullopt);  // standing by
  EXPECT_TRUE(a->stats().leader);
  EXPECT_FALSE(b->stats().leader);
  while (clock_.Now() < t0 + minutes(3)) {
    clock_.Advance(seconds(10));
    Tick(*a);
    Tick(*b);
  }
  EXPECT_FALSE(b->stats().leader);
  EXPECT_EQ(b->stats().fired, 0);
  EXPECT_EQ(a->stats().fired, 3);
  // The leader goes away; the other takes over once leadership_retry has passed since its
  // last attempt.
  a.reset();
  Tick(*b);
  EXPECT_FALSE(b->stats().leader);
  clock_.Advance(seconds(1));
  Tick(*b);
  EXPECT_FALSE(b->stats().leader);
  clock_.Advance(seconds(1));
  Tick(*b);
  EXPECT_TRUE(b->stats().leader);
  TickThrough(*b, t0 + minutes(6), seconds(10));
  EXPECT_EQ(b->stats().fired, 3);
  std::vector<Timestamp> want;
  for (int k = 1; k <= 6; ++k) want.push_back(t0 + minutes(k));
  EXPECT_EQ(Nominals(Ledger(id)), want);
  EXPECT_EQ(RunsOf(id).size(), 6u);
  bool standing_by = false;
  for (const std::string& line : Log()) {
    if (line.find("standing by") != std::string::npos) standing_by = true;
  }
  EXPECT_TRUE(standing_by);
}

// Leadership is not what makes fires unique: a nominal already in the ledger (decided by
// another loop, e.g. one whose PostgreSQL session was lost) never gets a second run or a
// second decision.
TEST_P(SchedulerLoopTest, ANominalAlreadyInTheLedgerIsNotDecidedAgain) {
  const Timestamp t0 = T("2026-02-08T00:00:00Z");
  clock_.Set(t0);
  const std::string id = Add(Every("minutely", minutes(1)));
  const Timestamp n2 = t0 + minutes(2), n3 = t0 + minutes(3);
  // Another loop skipped n2, and fired n3 (its run, enqueued with the loop's key).
  FireRecord skipped;
  skipped.schedule_id = id;
  skipped.nominal = n2;
  skipped.due = n2;
  skipped.status = FireStatus::kSkipped;
  skipped.reason = "overlap: decided by another loop";
  skipped.generation = 1;
  skipped.recorded_at = t0;
  ASSERT_OK(store_->Transact(Store::TxMode::kWrite,
                             [&](StoreTx& tx) -> Status { return tx.InsertFire(skipped); }));
  EnqueueRequest req;
  req.runbook = &rb_;
  req.trigger = Trigger::kSchedule;
  req.triggered_by = id;
  req.idempotency_key = Key(id, n3);
  Result<Enqueued> other_run = queue_->Enqueue(req);
  ASSERT_OK(other_run);
  FireRecord fired;
  fired.schedule_id = id;
  fired.nominal = n3;
  fired.due = n3;
  fired.status = FireStatus::kFired;
  fired.run_id = other_run->run.id;
  fired.generation = 1;
  fired.recorded_at = t0;
  ASSERT_OK(store_->Transact(Store::TxMode::kWrite,
                             [&](StoreTx& tx) -> Status { return tx.InsertFire(fired); }));

  auto s = NewScheduler();
  Tick(*s);
  TickThrough(*s, t0 + minutes(4), seconds(10));
  std::vector<FireRecord> ledger = Ledger(id);
  ASSERT_EQ(ledger.size(), 4u);
  EXPECT_EQ(StatusName(ledger[0].status), "fired");
  EXPECT_EQ(ledger[1].reason, skipped.reason);  // kept as the other loop decided it
  EXPECT_EQ(ledger[1].run_id, "");
  EXPECT_EQ(ledger[2].run_id, other_run->run.id);
  EXPECT_EQ(StatusName(ledger[3].status), "fired");
  std::vector<Run> runs = RunsOf(id);
  std::map<std::string, int> per_key;
  for (const Run& r : runs) ++per_key[*r.idempotency_key];
  EXPECT_EQ(per_key.count(Key(id, n2)), 0u) << "a run for a nominal the ledger says was skipped";
  EXPECT_EQ(per_key[Key(id, n3)], 1);
  EXPECT_EQ(runs.size(), 3u);
  EXPECT_EQ(TotalRuns(), 3);
}

// ---------------------------------------------------------------------------------------
// Deadline-aligned and jitter

TEST_P(SchedulerLoopTest, DeadlineAlignedRunStartsLeadBeforeTheSendTime) {
  clock_.Set(T("2026-05-04T08:00:00Z"));
  ScheduleSpec spec = Cron("campaign", "0 9 * * *");
  spec.lead = milliseconds(minutes(30));
  const std::string id = Add(spec);
  auto s = NewScheduler();
  EXPECT_EQ(Tick(*s), T("2026-05-04T08:30:00Z"));
  clock_.Set(T("2026-05-04T08:29:59Z"));
  Tick(*s);
  EXPECT_TRUE(RunsOf(id).empty());
  clock_.Set(T("2026-05-04T08:30:00Z"));
  EXPECT_EQ(Tick(*s), T("2026-05-05T08:30:00Z"));
  std::vector<Run> runs = RunsOf(id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].created_at, T("2026-05-04T08:30:00Z"));
  EXPECT_EQ(runs[0].deadline_at, T("2026-05-04T09:00:00Z"));
  EXPECT_EQ(runs[0].idempotency_key, Key(id, T("2026-05-04T09:00:00Z")));
  std::vector<FireRecord> ledger = Ledger(id);
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].nominal, T("2026-05-04T09:00:00Z"));
  EXPECT_EQ(ledger[0].due, T("2026-05-04T08:30:00Z"));
  EXPECT_EQ(StatusName(ledger[0].status), "fired");
  EXPECT_EQ(ledger[0].delay, Duration(0));
}

TEST_P(SchedulerLoopTest, JitterDelaysTheDueTimeWithinItsBound) {
  const Timestamp t0 = T("2026-02-09T00:00:00Z");
  clock_.Set(t0);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ScheduleSpec spec = Every(fmt::format("jittered{}", i), minutes(1));
    spec.jitter = milliseconds(seconds(30));
    ids.push_back(Add(spec));
  }
  auto s = NewScheduler();
  Tick(*s);
  int delayed = 0;
  // Until 3m40s: the occurrence at 3m is due before 3m30s, the one at 4m not before 4m.
  while (clock_.Now() < t0 + minutes(3) + seconds(40)) {
    clock_.Advance(seconds(1));
    std::optional<Timestamp> next = Tick(*s);
    ASSERT_TRUE(next.has_value());
    EXPECT_GT(*next, clock_.Now());
  }
  for (const std::string& id : ids) {
    SCOPED_TRACE(id);
    std::vector<FireRecord> ledger = Ledger(id);
    ASSERT_EQ(ledger.size(), 3u);
    for (const FireRecord& f : ledger) {
      EXPECT_GE(f.due, f.nominal);
      EXPECT_LT(f.due, f.nominal + seconds(30));
      if (f.due != f.nominal) ++delayed;
      EXPECT_EQ(StatusName(f.status), "fired");
      const Run run = GetRun(f.run_id);
      // Enqueued at the first tick at or after its due time (ticks every second).
      EXPECT_GE(run.created_at, f.due);
      EXPECT_LT(run.created_at, f.due + seconds(1));
    }
  }
  EXPECT_GT(delayed, 0);
}

// ---------------------------------------------------------------------------------------
// Start()/Stop() with the real clock

TEST_P(SchedulerLoopTest, StartFiresOnTheRealClockAndStopReleasesTheLoop) {
  Queue real_queue(*store_, SystemClock());
  const Timestamp now = SystemClock().Now();
  const ScheduleRecord rec = NewScheduleRecord(rb_, Every("realtime", seconds(1)), "cli", now);
  ASSERT_OK(store_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(
        tx.PutRunbookVersion(RunbookVersion{rb_.version, rb_.id, rb_.yaml, rb_.source, now}));
    return tx.PutSchedule(rec).status();
  }));
  auto s = NewScheduler({}, store_.get(), &real_queue, &SystemClock());
  s->Start();
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (s->stats().fired + s->stats().late == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  s->Stop();
  const SchedulerStats st = s->stats();
  EXPECT_GE(st.fired + st.late, 1) << "no fire within 20 s";
  EXPECT_TRUE(st.leader);
  std::vector<FireRecord> ledger = Ledger(rec.id);
  ASSERT_FALSE(ledger.empty());
  EXPECT_EQ(static_cast<int64_t>(ledger.size()), st.fired + st.late + st.skipped + st.missed);
  EXPECT_GT(ledger.front().nominal, now);
  EXPECT_EQ(RunsOf(rec.id).size(), static_cast<size_t>(st.fired + st.late));
  // Stop released the leadership: another loop leads at once.
  auto t = NewScheduler({}, store_.get(), &real_queue, &SystemClock());
  ASSERT_OK(t->Tick());
  EXPECT_TRUE(t->stats().leader);
}

// ---------------------------------------------------------------------------------------
// The multi-year sweep: 10 zones, a daily schedule that names its hour and a 6-hourly one,
// the clock jumping straight to each due time. The ledger must equal ScheduleTiming's
// occurrence list, every fire must have exactly one run, and (independently of
// ScheduleTiming) the daily schedule fires once per local day, with no wall time twice.

struct SweepBackend {
  LoopBackend backend;
  const char* from;
  const char* to;
};

void PrintTo(const SweepBackend& b, std::ostream* os) { *os << b.backend.name; }

std::string SweepBackendName(const ::testing::TestParamInfo<SweepBackend>& info) {
  return info.param.backend.name;
}

class SchedulerSweepTest : public LoopFixture, public ::testing::TestWithParam<SweepBackend> {
 protected:
  using Run = ::automan::Run;
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Init(GetParam().backend)); }
  void TearDown() override { PrintLogOnFailure(); }
};

TEST_P(SchedulerSweepTest, FiresEqualTheOccurrencesInTenZones) {
  const std::vector<std::string> zones = {
      "Europe/Berlin",    "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
      "Pacific/Chatham",  "Europe/Dublin",    "America/Sao_Paulo",   "Australia/Sydney",
      "America/St_Johns", "Pacific/Apia"};
  const Timestamp from = T(GetParam().from);
  const Timestamp to = T(GetParam().to);
  std::printf("[ sweep    ] %s .. %s\n", GetParam().from, GetParam().to);
  clock_.Set(from);
  struct Sched {
    std::string id;
    ScheduleSpec spec;
    bool daily;
  };
  std::vector<Sched> scheds;
  for (size_t i = 0; i < zones.size(); ++i) {
    for (bool daily : {true, false}) {
      ScheduleSpec spec = Cron(fmt::format("{}{}", daily ? "daily" : "sixhourly", i),
                               daily ? "30 2 * * *" : "0 */6 * * *", zones[i]);
      scheds.push_back({Add(spec), spec, daily});
    }
  }
  auto s = NewScheduler();
  int ticks = 0;
  for (std::optional<Timestamp> next = Tick(*s); next && *next < to; next = Tick(*s)) {
    ASSERT_GE(*next, clock_.Now());
    clock_.Set(*next);
    ++ticks;
    if (::testing::Test::HasFailure()) return;
  }
  int64_t total_fired = 0;
  std::set<std::string> run_ids;
  for (const Sched& sc : scheds) {
    SCOPED_TRACE(sc.id);
    Result<ScheduleTiming> timing = ScheduleTiming::Make(sc.spec);
    ASSERT_OK(timing);
    std::vector<Occurrence> want;
    for (std::optional<Occurrence> o = timing->Next(from); o && o->nominal < to;
         o = timing->Next(o->nominal)) {
      want.push_back(*o);
    }
    std::vector<FireRecord> ledger = Ledger(sc.id);
    ASSERT_EQ(ledger.size(), want.size());
    std::set<std::string> fired_walls;
    std::optional<date::local_days> last_day;
    for (size_t i = 0; i < want.size(); ++i) {
      const FireRecord& f = ledger[i];
      const Occurrence& o = want[i];
      ASSERT_EQ(f.nominal, o.nominal) << i;
      switch (o.kind) {
        case Occurrence::Kind::kFire:
          ASSERT_EQ(StatusName(f.status), "fired") << Fmt(f.nominal) << " " << f.reason;
          ASSERT_NE(f.run_id, "");
          ASSERT_TRUE(run_ids.insert(f.run_id).second) << "one run for two fires";
          ASSERT_TRUE(fired_walls.insert(f.wall).second) << "wall time fired twice: " << f.wall;
          ++total_fired;
          if (sc.daily) {
            // One fire per local day, every day.
            const date::local_days day = date::floor<date::days>(o.wall);
            if (last_day) {
              ASSERT_EQ((day - *last_day).count(), 1) << f.wall;
            }
            last_day = day;
          }
          break;
        case Occurrence::Kind::kSkipDstGap:
          ASSERT_EQ(StatusName(f.status), "skipped");
          ASSERT_TRUE(StartsWith(f.reason, "dst_gap")) << f.reason;
          break;
        case Occurrence::Kind::kSkipDstRepeat:
          ASSERT_EQ(StatusName(f.status), "skipped");
          ASSERT_TRUE(StartsWith(f.reason, "dst_repeat")) << f.reason;
          break;
      }
      ASSERT_EQ(f.due, f.nominal);
      ASSERT_EQ(f.delay, Duration(0));
    }
  }
  // Every run belongs to exactly one fired ledger row.
  EXPECT_EQ(TotalRuns(), total_fired);
  EXPECT_EQ(s->stats().fired, total_fired);
  EXPECT_EQ(s->stats().late + s->stats().missed, 0);
  std::printf("[ sweep    ] %d ticks, %lld fires\n", ticks, static_cast<long long>(total_fired));
}

// ---------------------------------------------------------------------------------------
// Backends

#ifdef AUTOMAN_SCHEDULER_TEST_POSTGRES

Result<std::string> FreshPg(const std::string&) { return PgFreshUrl(); }

INSTANTIATE_TEST_SUITE_P(Postgres, SchedulerLoopTest,
                         ::testing::Values(LoopBackend{"schema", FreshPg}), LoopBackendName);
INSTANTIATE_TEST_SUITE_P(Postgres, ChangeTest, ::testing::Values(LoopBackend{"schema", FreshPg}),
                         LoopBackendName);
// Every decision is a round trip: two weeks around the March/April changes of both
// hemispheres (Berlin, Dublin, New York's is earlier; Sydney, Lord Howe, Chatham fall back).
INSTANTIATE_TEST_SUITE_P(Postgres, SchedulerSweepTest,
                         ::testing::Values(SweepBackend{
                             {"schema", FreshPg}, "2026-03-26T00:00:00Z", "2026-04-09T00:00:00Z"}),
                         SweepBackendName);

#else

Result<std::string> FreshFile(const std::string& dir) { return "sqlite:" + dir + "/automan.db"; }
Result<std::string> Memory(const std::string&) { return std::string("sqlite::memory:"); }

INSTANTIATE_TEST_SUITE_P(Sqlite, SchedulerLoopTest,
                         ::testing::Values(LoopBackend{"file", FreshFile}), LoopBackendName);
INSTANTIATE_TEST_SUITE_P(Sqlite, ChangeTest, ::testing::Values(LoopBackend{"file", FreshFile}),
                         LoopBackendName);
// See FullSweep().
INSTANTIATE_TEST_SUITE_P(Sqlite, SchedulerSweepTest,
                         ::testing::Values(SweepBackend{
                             {"memory", Memory},
                             "2026-01-01T00:00:00Z",
                             FullSweep() ? "2029-01-01T00:00:00Z" : "2027-01-01T00:00:00Z"}),
                         SweepBackendName);

#endif

}  // namespace
}  // namespace automan::testing
