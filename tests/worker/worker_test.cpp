// A real Worker (src/worker/worker.h): its dispatcher, executor threads and heartbeat
// thread on a SQLite file with the system clock and a short lease, so that expiry, rescue
// and lost leases happen for real. A test RunExecutor records every call and blocks on the
// run's CancelSignal or a latch; the last test runs the real EngineExecutor.
//
// Nothing here asserts speed: conditions are awaited with generous deadlines, and the one
// latency that matters (cancellation reaching the executor) is printed and only checked
// against a bound far above what it should take.
#include "worker/worker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine/engine.h"
#include "support/test_util.h"

namespace automan {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ReadFile;
using testing::TempDir;

constexpr milliseconds kLease{600};

#define ASSERT_OK_STATUS(expr)                             \
  do {                                                     \
    const ::automan::Status automan_s_ = (expr);           \
    ASSERT_TRUE(automan_s_.ok()) << automan_s_.ToString(); \
  } while (0)

// Polls `done` until it holds or `timeout` passes; returns whether it held.
bool Eventually(const std::function<bool()>& done, milliseconds timeout = milliseconds(20'000)) {
  const auto deadline = steady_clock::now() + timeout;
  while (!done()) {
    if (steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

class TestExecutor final : public RunExecutor {
 public:
  enum class Mode {
    kQuick,       // returns SUCCESS at once
    kLatch,       // waits for Release() (or the CancelSignal), then SUCCESS
    kCancelOnly,  // waits for the CancelSignal
  };
  struct Call {
    std::string run_id;
    int attempt = 0;
    int64_t fence = 0;
  };

  explicit TestExecutor(Mode mode) : mode_(mode) {}

  // What an attempt that was stopped by its CancelSignal reports (default: FAILED, as the
  // engine reports a killed step).
  void set_outcome_when_cancelled(RunStatus s) {
    std::lock_guard lock(mu_);
    outcome_when_cancelled_ = s;
  }

  Result Execute(Run& run, const CancelSignal& cancel) override {
    {
      std::lock_guard lock(mu_);
      calls_.push_back({run.id, run.attempt, run.fence});
      max_running_ = std::max(max_running_, ++running_);
    }
    bool cancelled = false;
    if (mode_ != Mode::kQuick) {
      while (true) {
        if (cancel.cancelled()) {
          cancelled = true;
          break;
        }
        {
          std::lock_guard lock(mu_);
          if (mode_ == Mode::kLatch && released_) break;
        }
        pollfd p{cancel.fd(), POLLIN, 0};
        (void)poll(&p, 1, 10);
      }
    }
    Result r;
    {
      std::lock_guard lock(mu_);
      --running_;
      if (cancelled) {
        cancel_seen_[run.id] = steady_clock::now();
        r.outcome.status = outcome_when_cancelled_;
        r.outcome.error = "killed by the test executor";
      }
      returned_.push_back(run.id);
    }
    return r;
  }

  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
  }
  std::vector<Call> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  int running() {
    std::lock_guard lock(mu_);
    return running_;
  }
  int max_running() {
    std::lock_guard lock(mu_);
    return max_running_;
  }
  size_t returned() {
    std::lock_guard lock(mu_);
    return returned_.size();
  }
  std::optional<steady_clock::time_point> cancel_seen(const std::string& id) {
    std::lock_guard lock(mu_);
    auto it = cancel_seen_.find(id);
    if (it == cancel_seen_.end()) return std::nullopt;
    return it->second;
  }

 private:
  const Mode mode_;
  std::mutex mu_;
  std::vector<Call> calls_;                                      // guarded by mu_
  std::vector<std::string> returned_;                            // guarded by mu_
  std::map<std::string, steady_clock::time_point> cancel_seen_;  // guarded by mu_
  int running_ = 0;                                              // guarded by mu_
  int max_running_ = 0;                                          // guarded by mu_
  bool released_ = false;                                        // guarded by mu_
  RunStatus outcome_when_cancelled_ = RunStatus::kFailed;        // guarded by mu_
};

// A Worker running on its own thread until Stop().
class RunningWorker {
 public:
  RunningWorker(Queue& queue, RunExecutor& executor, WorkerOptions options)
      : worker_(queue, executor, std::move(options)) {
    thread_ = std::thread([this] { status_ = worker_.Run(stop_); });
  }
  ~RunningWorker() { (void)Stop(); }
  // Fires the stop signal and waits for Run to return (after the drain).
  Status Stop() {
    stop_.Cancel();
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  void Signal() { stop_.Cancel(); }
  const WorkerStats& stats() const { return worker_.stats(); }

 private:
  CancelSignal stop_;
  Worker worker_;
  Status status_;
  std::thread thread_;
};

class WorkerTest : public ::testing::Test {
 protected:
  using Run = ::automan::Run;

  void SetUp() override {
    store_ = OpenStore();
    ASSERT_NE(store_, nullptr);
    queue_ = std::make_unique<Queue>(*store_, SystemClock(), QueueOptions{.lease = kLease});
    plain_ = Parse("id: plain\nsteps:\n  - id: s\n    shell: \"true\"\n");
  }

  // Another connection to the same file, as a second process would have.
  std::unique_ptr<Store> OpenStore() {
    auto s = Store::Open({.url = "sqlite:" + dir_.File("automan.db")});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static Runbook Parse(const std::string& yaml) {
    ParseResult r = ParseRunbook(yaml, "test.yaml");
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.diagnostics.front().ToString());
    return r.ok() ? *r.runbook : Runbook{};
  }

  static WorkerOptions Options(const std::string& owner, int concurrency) {
    WorkerOptions o;
    o.owner = owner;
    o.concurrency = concurrency;
    o.poll = milliseconds(50);
    o.rescue_interval = milliseconds(100);
    o.grace = seconds(10);
    return o;
  }

  std::vector<std::string> Enqueue(int n, const Runbook& rb) {
    std::vector<EnqueueRequest> reqs(static_cast<size_t>(n));
    for (auto& r : reqs) {
      r.runbook = &rb;
      r.triggered_by = "test";
    }
    auto e = queue_->EnqueueMany(reqs);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    std::vector<std::string> ids;
    if (e.ok()) {
      for (const Enqueued& x : *e) ids.push_back(x.run.id);
    }
    return ids;
  }

  Run Get(const std::string& id) {
    Run run;
    Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(run, tx.GetRun(id));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run;
  }
  std::vector<Attempt> Attempts(const std::string& id) {
    std::vector<Attempt> out;
    Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListAttempts(id));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  int64_t Count(RunStatus status) {
    std::map<RunStatus, int64_t> counts;
    Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(counts, tx.CountRunsByStatus());
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return counts[status];
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Queue> queue_;
  Runbook plain_;
};

TEST_F(WorkerTest, EveryRunIsExecutedExactlyOnce) {
  TestExecutor exec(TestExecutor::Mode::kQuick);
  std::vector<std::string> ids = Enqueue(30, plain_);
  RunningWorker w(*queue_, exec, Options("worker:a", 4));
  // Enqueued while the worker runs, too (it is woken, or polls).
  std::vector<std::string> more = Enqueue(10, plain_);
  ids.insert(ids.end(), more.begin(), more.end());
  ASSERT_TRUE(Eventually([&] { return Count(RunStatus::kSuccess) == 40; }))
      << Count(RunStatus::kSuccess) << " of 40 runs succeeded";
  ASSERT_OK_STATUS(w.Stop());
  std::multiset<std::string> executed;
  for (const auto& c : exec.calls()) {
    executed.insert(c.run_id);
    EXPECT_EQ(c.attempt, 1) << c.run_id;
  }
  EXPECT_EQ(executed, std::multiset<std::string>(ids.begin(), ids.end()));
  EXPECT_EQ(w.stats().claimed.load(), 40u);
  EXPECT_EQ(w.stats().finished.load(), 40u);
  EXPECT_EQ(w.stats().lost.load(), 0u);
  for (const std::string& id : ids) {
    Run r = Get(id);
    EXPECT_EQ(r.attempt, 1);
    EXPECT_FALSE(r.lease_expires_at.has_value());
    ASSERT_EQ(Attempts(id).size(), 1u);
    EXPECT_EQ(Attempts(id)[0].status, RunStatus::kSuccess);
    EXPECT_EQ(Attempts(id)[0].worker, "worker:a");
  }
}

TEST_F(WorkerTest, ConcurrencyIsRespected) {
  TestExecutor exec(TestExecutor::Mode::kLatch);
  std::vector<std::string> ids = Enqueue(8, plain_);
  RunningWorker w(*queue_, exec, Options("worker:a", 3));
  ASSERT_TRUE(Eventually([&] { return exec.running() == 3; }));
  // Let a dispatcher that over-claims show it: several poll intervals pass with the three
  // runs blocked (the heartbeat keeps their leases meanwhile).
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_EQ(Count(RunStatus::kRunning), 3);
  EXPECT_EQ(Count(RunStatus::kPending), 5);
  exec.Release();
  ASSERT_TRUE(Eventually([&] { return Count(RunStatus::kSuccess) == 8; }));
  ASSERT_OK_STATUS(w.Stop());
  EXPECT_EQ(exec.max_running(), 3);
  EXPECT_EQ(exec.calls().size(), 8u);
}

TEST_F(WorkerTest, CancellationReachesTheExecutorPromptly) {
  TestExecutor exec(TestExecutor::Mode::kCancelOnly);
  std::string id = Enqueue(1, plain_).at(0);
  RunningWorker w(*queue_, exec, Options("worker:a", 2));
  ASSERT_TRUE(Eventually([&] { return exec.running() == 1; }));
  const auto asked = steady_clock::now();
  auto c = queue_->Cancel(id);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->cancel_requested);
  ASSERT_TRUE(Eventually([&] { return exec.cancel_seen(id).has_value(); }));
  const auto took = *exec.cancel_seen(id) - asked;
  std::printf("[ latency  ] cancellation reached the executor after %.0f ms\n",
              std::chrono::duration<double, std::milli>(took).count());
  EXPECT_LT(took, seconds(3));
  // The worker records the attempt as CANCELLED, whatever the killed attempt reported.
  ASSERT_TRUE(Eventually([&] { return Get(id).status == RunStatus::kCancelled; }));
  ASSERT_OK_STATUS(w.Stop());
  EXPECT_EQ(Get(id).attempt, 1);
  EXPECT_THAT(Attempts(id), ::testing::SizeIs(1));
  EXPECT_EQ(Attempts(id)[0].status, RunStatus::kCancelled);
  EXPECT_EQ(w.stats().finished.load(), 1u);
}

TEST_F(WorkerTest, ShutdownWithinGraceLetsRunsFinishAndRecordsThem) {
  TestExecutor exec(TestExecutor::Mode::kLatch);
  std::vector<std::string> ids = Enqueue(4, plain_);
  RunningWorker w(*queue_, exec, Options("worker:a", 3));
  ASSERT_TRUE(Eventually([&] { return exec.running() == 3; }));
  w.Signal();
  // Ordering only: the dispatcher has long seen the stop when the runs finish, so a
  // dispatcher that kept claiming would take the fourth run.
  std::this_thread::sleep_for(milliseconds(200));
  exec.Release();
  ASSERT_OK_STATUS(w.Stop());
  EXPECT_EQ(Count(RunStatus::kSuccess), 3);
  EXPECT_EQ(Count(RunStatus::kPending), 1);  // never claimed after the stop
  EXPECT_EQ(w.stats().finished.load(), 3u);
  EXPECT_EQ(w.stats().abandoned.load(), 0u);
  EXPECT_EQ(exec.calls().size(), 3u);
}

TEST_F(WorkerTest, ShutdownPastGraceLeavesLeasesThatAnotherWorkerRescues) {
  TestExecutor stuck(TestExecutor::Mode::kCancelOnly);
  std::vector<std::string> ids = Enqueue(2, plain_);
  WorkerOptions o = Options("worker:old", 2);
  o.grace = milliseconds(200);
  {
    RunningWorker w(*queue_, stuck, o);
    ASSERT_TRUE(Eventually([&] { return stuck.running() == 2; }));
    ASSERT_OK_STATUS(w.Stop());
    EXPECT_EQ(w.stats().abandoned.load(), 2u);
    EXPECT_EQ(w.stats().finished.load(), 0u);
  }
  // Killed and left for another worker: still RUNNING, under the old lease.
  for (const std::string& id : ids) {
    Run r = Get(id);
    EXPECT_EQ(r.status, RunStatus::kRunning);
    EXPECT_EQ(r.lease_owner, "worker:old");
    EXPECT_TRUE(r.lease_expires_at.has_value());
    EXPECT_TRUE(stuck.cancel_seen(id).has_value());
  }
  // A second worker, as another process would: its own store connection.
  std::unique_ptr<Store> store2 = OpenStore();
  ASSERT_NE(store2, nullptr);
  Queue queue2(*store2, SystemClock(), QueueOptions{.lease = kLease});
  TestExecutor fresh(TestExecutor::Mode::kQuick);
  RunningWorker w2(queue2, fresh, Options("worker:new", 2));
  ASSERT_TRUE(Eventually([&] { return Count(RunStatus::kSuccess) == 2; }));
  ASSERT_OK_STATUS(w2.Stop());
  for (const auto& c : fresh.calls()) EXPECT_EQ(c.attempt, 2) << c.run_id;
  EXPECT_EQ(fresh.calls().size(), 2u);
  for (const std::string& id : ids) {
    EXPECT_EQ(Get(id).attempt, 2);
    auto attempts = Attempts(id);
    ASSERT_EQ(attempts.size(), 2u);
    EXPECT_EQ(attempts[0].status, RunStatus::kFailed);
    EXPECT_EQ(attempts[0].worker, "worker:old");
    EXPECT_THAT(attempts[0].error, HasSubstr("lost"));
    EXPECT_EQ(attempts[1].status, RunStatus::kSuccess);
    EXPECT_EQ(attempts[1].worker, "worker:new");
  }
}

TEST_F(WorkerTest, LostLeaseStopsTheExecutorAndNothingMoreIsRecorded) {
  TestExecutor exec(TestExecutor::Mode::kCancelOnly);
  // The stopped attempt claims success: a worker that recorded it would overwrite the
  // run that another worker now owns.
  exec.set_outcome_when_cancelled(RunStatus::kSuccess);
  std::string id = Enqueue(1, plain_).at(0);
  RunningWorker w(*queue_, exec, Options("worker:a", 1));
  ASSERT_TRUE(Eventually([&] { return exec.running() == 1; }));
  // Another process, whose clock is an hour ahead, finds the lease expired and rescues the
  // run: the fence moves on, and the run is not due again for an hour.
  std::unique_ptr<Store> store2 = OpenStore();
  ASSERT_NE(store2, nullptr);
  SimulatedClock later(SystemClock().Now() + std::chrono::hours(1));
  Queue other(*store2, later, QueueOptions{.lease = kLease});
  auto moved = other.Rescue();
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  ASSERT_EQ(*moved, 1);
  const Run rescued = Get(id);
  ASSERT_EQ(rescued.status, RunStatus::kPending);
  // The next heartbeat tells the worker; it stops the attempt and records nothing.
  ASSERT_TRUE(Eventually([&] { return w.stats().lost.load() == 1; }));
  EXPECT_TRUE(exec.cancel_seen(id).has_value());
  EXPECT_EQ(exec.returned(), 1u);
  ASSERT_OK_STATUS(w.Stop());
  EXPECT_EQ(w.stats().finished.load(), 0u);
  EXPECT_EQ(Get(id), rescued);
  auto attempts = Attempts(id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].status, RunStatus::kFailed);
  EXPECT_EQ(exec.calls().size(), 1u);
}

TEST_F(WorkerTest, EngineExecutorRunsRunbooksEndToEnd) {
  EngineOptions eo;
  eo.work_root = dir_.File("work");
  eo.kill_grace = milliseconds(300);
  Engine engine(*store_, SystemClock(), eo, QueueOptions{.lease = kLease});
  EngineExecutor executor(engine);
  // The steps write outside their work directory, into a path their sandbox lets them.
  std::filesystem::create_directories(dir_.File("out"));
  const std::string step =
      "params:\n  out: {type: string}\n"
      "sandbox: {writable: [" +
      dir_.File("out") +
      "]}\n"
      "steps:\n  - id: note\n    shell: echo \"$AUTOMAN_RUN_ID $AUTOMAN_ATTEMPT\" >> "
      "\"$AUTOMAN_PARAM_OUT\"";
  Runbook ok = Parse("id: ok\n" + step + "\n");
  // Fails every attempt: with `retries` it is retried, then ends DEAD (1 + 2 retries).
  Runbook flaky = Parse("id: flaky\nretries: {count: 2, delay: 100ms}\n" + step + "; exit 4\n");
  auto enqueue = [&](const Runbook& rb, const std::string& out) {
    EnqueueRequest r;
    r.runbook = &rb;
    auto params = BindParams(rb, {{"out", out}});
    EXPECT_TRUE(params.ok()) << params.status().ToString();
    if (params.ok()) r.params = *params;
    auto e = engine.queue().Enqueue(r);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? e->run.id : std::string();
  };
  const std::string ok_id = enqueue(ok, dir_.File("out/ok.txt"));
  const std::string flaky_id = enqueue(flaky, dir_.File("out/flaky.txt"));
  RunningWorker w(engine.queue(), executor, Options("worker:engine", 2));
  ASSERT_TRUE(Eventually(
      [&] { return IsTerminal(Get(ok_id).status) && IsTerminal(Get(flaky_id).status); }));
  ASSERT_OK_STATUS(w.Stop());
  Run okr = Get(ok_id);
  EXPECT_EQ(okr.status, RunStatus::kSuccess) << okr.error;
  EXPECT_EQ(ReadFile(dir_.File("out/ok.txt")), ok_id + " 1\n");
  Run fr = Get(flaky_id);
  EXPECT_EQ(fr.status, RunStatus::kDead) << fr.error;
  EXPECT_EQ(fr.attempt, 3);
  EXPECT_THAT(fr.error, HasSubstr("4"));  // the last attempt's error: exit code 4
  EXPECT_EQ(ReadFile(dir_.File("out/flaky.txt")),
            flaky_id + " 1\n" + flaky_id + " 2\n" + flaky_id + " 3\n");
  // Each attempt's step is recorded under its attempt number.
  std::vector<StepRun> steps;
  ASSERT_TRUE(store_
                  ->Transact(Store::TxMode::kRead,
                             [&](StoreTx& tx) -> Status {
                               AUTOMAN_ASSIGN_OR_RETURN(steps, tx.ListStepRuns(flaky_id));
                               return Status::Ok();
                             })
                  .ok());
  ASSERT_EQ(steps.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(steps[static_cast<size_t>(i)].attempt, i + 1);
    EXPECT_EQ(steps[static_cast<size_t>(i)].status, StepStatus::kFailed);
    EXPECT_EQ(steps[static_cast<size_t>(i)].exit_code, 4);
  }
}

// A run whose secret parameter was kept nowhere (automan exec's own run, rescued after that
// process died) is refused by the worker, naming the parameter: its step never runs with
// an empty secret.
TEST_F(WorkerTest, EngineExecutorRefusesASecretParamThatWasNeverKept) {
  EngineOptions eo;
  eo.work_root = dir_.File("work");
  Engine engine(*store_, SystemClock(), eo, QueueOptions{.lease = kLease});
  EngineExecutor executor(engine);
  Runbook rb = Parse(
      "id: keyed\nparams:\n  api_key: {type: secret}\nsteps:\n  - id: s\n"
      "    shell: touch \"" +
      dir_.File("ran") + "\"\n");
  EnqueueRequest r;
  r.runbook = &rb;
  r.params = {{"api_key", ParamValue{"secret", ""}}};  // as Engine::CreateRun stores it
  auto e = engine.queue().Enqueue(r);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  RunningWorker w(engine.queue(), executor, Options("worker:unkept", 1));
  ASSERT_TRUE(Eventually([&] { return IsTerminal(Get(e->run.id).status); }));
  ASSERT_OK_STATUS(w.Stop());
  Run run = Get(e->run.id);
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_THAT(run.error, HasSubstr("api_key"));
  EXPECT_THAT(run.error, HasSubstr("never kept"));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("ran")));
}

}  // namespace
}  // namespace automan
