// Crash tests of the queue with real `automan worker` processes (docs/queue.md): a worker
// kill -9ed mid-run, an enqueuing process kill -9ed mid-burst, a worker paused past its
// lease and resumed (fencing), cancellation, SIGTERM with a grace period, the dead-letter
// queue.
//
// Each test works in its own temp dir: a SQLite data dir, the runbooks it writes, and the
// side-effect file `effects.d/effects`, to which every step appends "$AUTOMAN_RUN_ID
// $AUTOMAN_ATTEMPT" before doing anything else; the lines count executions per (run, attempt).
// Workers run with a short lease (1 s, rescue scan every 500 ms) and poll every 200 ms. Results are
// read through the store API, never inferred from timing: every wait polls a condition with a
// deadline, and the measured times are printed.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "queue/queue.h"
#include "runbook/runbook.h"
#include "store/store.h"
#include "support/proc_util.h"
#include "support/test_util.h"

extern char** environ;

namespace automan {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::PidsWithArg;
using testing::PidsWithEnv;
using testing::ReadFile;
using testing::RunCommand;
using testing::TempDir;
using testing::WriteFile;

const std::string kAutoman = AUTOMAN_BIN;
const std::vector<std::string> kWorkerFlags = {"--lease", "1s", "--poll", "200ms"};

double Seconds(steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A `sleep` argument unique to this test process and call ("2.004217"): its processes can
// be told apart from every other sleep on the machine.
std::string SleepMarker(int whole_seconds) {
  static int counter = 0;
  return fmt::format("{}.{:03d}{:03d}", whole_seconds, getpid() % 1000, ++counter % 1000);
}

using Child = testing::ChildProcess;
using testing::WaitFor;

class QueueCrashTest : public ::testing::Test {
 protected:
  std::string Data() const { return dir_.File("data"); }
  std::string EffectsDir() const { return dir_.File("effects.d"); }
  std::string EffectsFile() const { return dir_.File("effects.d/effects"); }

  // A runbook whose one step records its execution and then runs `body` (shell lines).
  std::string WriteRunbook(const std::string& id, const std::string& body,
                           const std::string& top = "") {
    // The sandbox lets the step append to the effects file, and nothing else outside.
    std::filesystem::create_directories(EffectsDir());
    std::string yaml = "id: " + id + "\n" + top + "sandbox: {writable: [" + EffectsDir() +
                       "]}\nsteps:\n  - id: work\n    shell: |\n";
    yaml += "      echo \"$AUTOMAN_RUN_ID $AUTOMAN_ATTEMPT\" >> '" + EffectsFile() + "'\n";
    std::stringstream lines(body);
    std::string line;
    while (std::getline(lines, line)) yaml += "      " + line + "\n";
    std::string path = dir_.File(id + ".yaml");
    WriteFile(path, yaml);
    return path;
  }

  // `automan ARGS --data DATA`, from the temp dir; stderr goes to the test's stderr.
  testing::CommandResult Automan(const std::string& args) {
    return RunCommand("cd '" + dir_.path() + "' && env -u AUTOMAN_DB -u AUTOMAN_DATA '" + kAutoman +
                      "' " + args + " --data '" + Data() + "'");
  }

  std::string Enqueue(const std::string& runbook, const std::string& flags = "") {
    auto r = Automan("enqueue '" + runbook + "' " + flags);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(id.size(), 36u) << r.out;
    return id;
  }

  std::unique_ptr<Child> StartWorker(const std::string& name, std::vector<std::string> flags = {}) {
    std::vector<std::string> args = {kAutoman, "worker", "--data", Data()};
    args.insert(args.end(), kWorkerFlags.begin(), kWorkerFlags.end());
    args.insert(args.end(), flags.begin(), flags.end());
    auto w = std::make_unique<Child>(args, dir_.File(name + ".log"), dir_.path());
    EXPECT_TRUE(w->ok());
    return w;
  }

  Store& store() {
    if (!store_) {
      StoreOptions so;
      so.url = "sqlite:" + Data() + "/automan.db";
      auto s = Store::Open(so);
      if (!s.ok()) throw std::runtime_error(s.status().ToString());
      store_ = std::move(s).value();
    }
    return *store_;
  }

  // Reads in one transaction; a store error fails the test and leaves the values empty.
  void Read(const std::function<Status(StoreTx&)>& fn) {
    Status s = store().Transact(Store::TxMode::kRead, fn);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  automan::Run GetRun(const std::string& id) {
    automan::Run run;
    Read([&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(run, tx.GetRun(id));
      return Status::Ok();
    });
    return run;
  }
  RunStatus StatusOf(const std::string& id) { return GetRun(id).status; }
  std::vector<Attempt> Attempts(const std::string& id) {
    std::vector<Attempt> out;
    Read([&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListAttempts(id));
      return Status::Ok();
    });
    return out;
  }
  std::vector<automan::Run> AllRuns() {
    std::vector<automan::Run> out;
    Read([&](StoreTx& tx) -> Status {
      RunFilter f;
      f.limit = 1000;
      AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListRuns(f));
      return Status::Ok();
    });
    return out;
  }
  std::map<RunStatus, int64_t> Counts() {
    std::map<RunStatus, int64_t> out;
    Read([&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(out, tx.CountRunsByStatus());
      return Status::Ok();
    });
    return out;
  }
  std::vector<LogLine> Logs(const std::string& id, std::optional<int> attempt = std::nullopt) {
    std::vector<LogLine> out;
    Read([&](StoreTx& tx) -> Status {
      LogQuery q;
      q.run_id = id;
      q.attempt = attempt;
      AUTOMAN_ASSIGN_OR_RETURN(out, tx.ReadLogLines(q));
      return Status::Ok();
    });
    return out;
  }

  // Executions recorded by the steps: (run id, attempt) -> how many times.
  std::map<std::pair<std::string, int>, int> Effects() {
    std::map<std::pair<std::string, int>, int> out;
    std::stringstream in(ReadFile(EffectsFile()));
    std::string id;
    int attempt = 0;
    while (in >> id >> attempt) out[{id, attempt}]++;
    return out;
  }
  int EffectCount(const std::string& id, int attempt) {
    auto e = Effects();
    auto it = e.find({id, attempt});
    return it == e.end() ? 0 : it->second;
  }
  int EffectLines() {
    int n = 0;
    for (const auto& [key, count] : Effects()) n += count;
    return n;
  }

  // SIGSTOPs `worker` at a moment it holds no SQLite write transaction. SQLite serialises
  // writers with one file lock; a process paused inside a write transaction would block
  // every other writer until it resumes (a property of SQLite, not of the queue), so a
  // pause that lands inside one is undone and tried again.
  bool PauseOutsideWrites(Child& worker) {
    StoreOptions so;
    so.url = "sqlite:" + Data() + "/automan.db";
    so.busy_timeout = milliseconds(300);
    auto probe = Store::Open(so);
    if (!probe.ok()) return false;
    for (int i = 0; i < 20; ++i) {
      worker.Signal(SIGSTOP);
      Status s = (*probe)->Transact(Store::TxMode::kWrite, [](StoreTx&) { return Status::Ok(); });
      if (s.ok()) return true;
      worker.Signal(SIGCONT);
      std::this_thread::sleep_for(milliseconds(30));
    }
    return false;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

bool Lost(const Attempt& a) {
  return a.status == RunStatus::kFailed && a.error.find("lost") != std::string::npos;
}

// 1. kill -9 of a worker mid-run: the shim kills the step's tree, another worker rescues
// the run after the lease and completes it exactly once.
TEST_F(QueueCrashTest, KilledWorkersRunIsRescuedAndCompletesOnce) {
  const std::string marker = SleepMarker(2);
  const std::string rb = WriteRunbook("slow", "sleep " + marker);
  const std::string id = Enqueue(rb);
  auto a = StartWorker("a");
  ASSERT_TRUE(WaitFor([&] { return !PidsWithArg(marker).empty(); }, seconds(20)))
      << "the step never started: " << a->Log();
  EXPECT_EQ(EffectCount(id, 1), 1);
  EXPECT_EQ(StatusOf(id), RunStatus::kRunning);

  a->Signal(SIGKILL);
  const auto killed = steady_clock::now();
  ASSERT_EQ(a->WaitExit(seconds(10)), 128 + SIGKILL);
  // The shim sees EOF on its control pipe and kills the tree.
  EXPECT_TRUE(WaitFor(
      [&] { return PidsWithArg(marker).empty() && PidsWithEnv("AUTOMAN_RUN_ID=" + id).empty(); },
      seconds(10)))
      << "the killed worker's step processes survive: " << PidsWithArg(marker).size();
  fmt::print("step tree of the killed worker gone {:.2f} s after kill -9\n",
             Seconds(steady_clock::now() - killed));
  EXPECT_EQ(StatusOf(id), RunStatus::kRunning);  // until its lease expires and is rescued

  auto b = StartWorker("b");
  ASSERT_TRUE(WaitFor([&] { return StatusOf(id) == RunStatus::kSuccess; }, seconds(30)))
      << ToString(StatusOf(id)) << "\nworker b:\n"
      << b->Log();
  fmt::print("run rescued and completed {:.2f} s after kill -9 (lease 1 s, step 2 s)\n",
             Seconds(steady_clock::now() - killed));

  automan::Run run = GetRun(id);
  EXPECT_EQ(run.attempt, 2);
  EXPECT_EQ(run.error, "");
  EXPECT_FALSE(run.lease_expires_at.has_value());
  auto attempts = Attempts(id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].number, 1);
  EXPECT_TRUE(Lost(attempts[0])) << ToString(attempts[0].status) << ": " << attempts[0].error;
  EXPECT_THAT(attempts[0].worker, HasSubstr(std::to_string(a->pid())));
  EXPECT_EQ(attempts[1].number, 2);
  EXPECT_EQ(attempts[1].status, RunStatus::kSuccess);
  EXPECT_THAT(attempts[1].worker, HasSubstr(std::to_string(b->pid())));
  EXPECT_EQ(Effects(), (std::map<std::pair<std::string, int>, int>{{{id, 1}, 1}, {{id, 2}, 1}}));
  auto counts = Counts();
  EXPECT_EQ(counts[RunStatus::kRunning], 0);
  EXPECT_EQ(counts[RunStatus::kPending], 0);
  EXPECT_EQ(counts[RunStatus::kSuccess], 1);

  b->Signal(SIGTERM);
  EXPECT_EQ(b->WaitExit(seconds(20)), 0) << b->Log();
  EXPECT_TRUE(PidsWithArg(marker).empty());
}

// 2a. kill -9 of a process group enqueuing runs one by one: every run it acknowledged
// (printed) is executed exactly once; nothing is lost or left behind.
TEST_F(QueueCrashTest, KilledEnqueuerLosesNoAcknowledgedRun) {
  const std::string rb = WriteRunbook("burst", "");
  const std::string ids_file = dir_.File("ids");
  const std::string script =
      fmt::format("for i in $(seq 200); do '{}' enqueue '{}' --data '{}' >> '{}' || exit 1; done",
                  kAutoman, rb, Data(), ids_file);
  Child driver({"/bin/sh", "-c", "unset AUTOMAN_DB AUTOMAN_DATA; " + script},
               dir_.File("driver.log"), dir_.path());
  ASSERT_TRUE(driver.ok());
  auto lines_in = [&](const std::string& text) {
    std::vector<std::string> ids;
    std::stringstream in(text);
    std::string line;
    // Only whole lines count as acknowledged: the process may die while printing.
    while (std::getline(in, line) && !in.eof()) {
      if (line.size() == 36) ids.push_back(line);
    }
    return ids;
  };
  const auto started = steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return lines_in(ReadFile(ids_file)).size() >= 20; }, seconds(60),
                      milliseconds(10)))
      << driver.Log();
  driver.SignalGroup(SIGKILL);  // the loop and the enqueue in flight
  ASSERT_EQ(driver.WaitExit(seconds(10)), 128 + SIGKILL);
  const std::vector<std::string> acked = lines_in(ReadFile(ids_file));
  fmt::print("enqueuer killed after {} acknowledged runs in {:.2f} s\n", acked.size(),
             Seconds(steady_clock::now() - started));
  ASSERT_GE(acked.size(), 20u);
  ASSERT_LT(acked.size(), 200u) << "the kill did not land mid-burst";

  std::vector<automan::Run> runs = AllRuns();
  std::set<std::string> stored;
  for (const automan::Run& r : runs) {
    stored.insert(r.id);
    EXPECT_EQ(r.status, RunStatus::kPending) << r.id;
  }
  for (const auto& id : acked) EXPECT_TRUE(stored.contains(id)) << "acknowledged run lost: " << id;
  // At most the one in flight was committed without being acknowledged.
  EXPECT_GE(runs.size(), acked.size());
  EXPECT_LE(runs.size(), acked.size() + 1);

  auto w = StartWorker("w", {"-c", "8"});
  const auto drain = steady_clock::now();
  ASSERT_TRUE(
      WaitFor([&] { return Counts()[RunStatus::kSuccess] == static_cast<int64_t>(runs.size()); },
              seconds(60)))
      << w->Log();
  fmt::print("{} runs drained in {:.2f} s\n", runs.size(), Seconds(steady_clock::now() - drain));
  auto effects = Effects();
  for (const automan::Run& r : runs) {
    automan::Run now = GetRun(r.id);
    EXPECT_EQ(now.status, RunStatus::kSuccess) << r.id;
    EXPECT_EQ(now.attempt, 1) << r.id;
    auto attempts = Attempts(r.id);
    ASSERT_EQ(attempts.size(), 1u) << r.id;
    EXPECT_EQ(attempts[0].status, RunStatus::kSuccess) << r.id;
    EXPECT_EQ((effects[{r.id, 1}]), 1) << r.id;
  }
  EXPECT_EQ(EffectLines(), static_cast<int>(runs.size()));
  auto counts = Counts();
  EXPECT_EQ(counts[RunStatus::kPending], 0);
  EXPECT_EQ(counts[RunStatus::kRunning], 0);
  w->Signal(SIGTERM);
  EXPECT_EQ(w->WaitExit(seconds(20)), 0) << w->Log();
}

// 2b. kill -9 of a worker (concurrency 8) in the middle of many short runs, then a
// restart: every run completes exactly once, each attempt executed at most once.
TEST_F(QueueCrashTest, KilledWorkerMidBurstEveryRunCompletesOnce) {
  constexpr int kRuns = 48;
  const std::string rb_path = WriteRunbook("short", "sleep 0.2");
  std::vector<std::string> ids;
  {
    // Set-up through the queue library, one transaction (48 `automan enqueue` processes
    // would cost seconds under the sanitizers; the enqueuing path has its own test above).
    ParseResult parsed = LoadRunbookFile(rb_path);
    ASSERT_TRUE(parsed.ok());
    Queue queue(store(), SystemClock());
    std::vector<EnqueueRequest> requests(kRuns);
    for (auto& r : requests) {
      r.runbook = &*parsed.runbook;
      r.triggered_by = "test";
    }
    auto enqueued = queue.EnqueueMany(requests);
    ASSERT_TRUE(enqueued.ok()) << enqueued.status().ToString();
    for (const auto& e : *enqueued) ids.push_back(e.run.id);
  }

  auto a = StartWorker("a", {"-c", "8"});
  ASSERT_TRUE(WaitFor([&] { return EffectLines() >= kRuns / 3; }, seconds(30))) << a->Log();
  a->Signal(SIGKILL);
  const auto killed = steady_clock::now();
  ASSERT_EQ(a->WaitExit(seconds(10)), 128 + SIGKILL);
  const int before_restart = EffectLines();

  auto b = StartWorker("b", {"-c", "8"});
  ASSERT_TRUE(WaitFor([&] { return Counts()[RunStatus::kSuccess] == kRuns; }, seconds(60)))
      << b->Log();
  fmt::print("killed after {} executions; all {} runs done {:.2f} s after kill -9\n",
             before_restart, kRuns, Seconds(steady_clock::now() - killed));

  auto effects = Effects();
  int rescued = 0;
  for (const auto& id : ids) {
    automan::Run run = GetRun(id);
    ASSERT_EQ(run.status, RunStatus::kSuccess) << id;
    auto attempts = Attempts(id);
    ASSERT_EQ(attempts.size(), static_cast<size_t>(run.attempt)) << id;
    int successes = 0;
    for (const Attempt& at : attempts) {
      const int executed = effects[{id, at.number}];
      EXPECT_LE(executed, 1) << id << " attempt " << at.number;
      if (at.status == RunStatus::kSuccess) {
        ++successes;
        EXPECT_EQ(at.number, run.attempt) << id;
        EXPECT_EQ(executed, 1) << id << " attempt " << at.number;
      } else {
        // Steps never fail here: every earlier attempt was lost with the killed worker.
        EXPECT_TRUE(Lost(at)) << id << " attempt " << at.number << ": " << at.error;
      }
    }
    EXPECT_EQ(successes, 1) << id;
    EXPECT_EQ(effects.count({id, run.attempt + 1}), 0u) << id;
    if (run.attempt > 1) ++rescued;
  }
  EXPECT_GE(EffectLines(), kRuns);
  EXPECT_GE(rescued, 1) << "the kill landed between runs; nothing was rescued";
  fmt::print("{} runs rescued, {} executions for {} runs\n", rescued, EffectLines(), kRuns);
  auto counts = Counts();
  EXPECT_EQ(counts[RunStatus::kPending], 0);
  EXPECT_EQ(counts[RunStatus::kRunning], 0);
  b->Signal(SIGTERM);
  EXPECT_EQ(b->WaitExit(seconds(20)), 0) << b->Log();
}

// 3. A worker paused (SIGSTOP) past its lease: another worker rescues and completes the
// run; when the first resumes, the fence refuses everything it still writes.
TEST_F(QueueCrashTest, PausedWorkerIsFencedOffAfterTheRescue) {
  const std::string marker = SleepMarker(3);
  const std::string rb = WriteRunbook("paused",
                                      "echo \"before attempt $AUTOMAN_ATTEMPT\"\n"
                                      "sleep " +
                                          marker +
                                          "\n"
                                          "echo \"after attempt $AUTOMAN_ATTEMPT\"");
  const std::string id = Enqueue(rb);
  auto a = StartWorker("a");
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& l : Logs(id, 1)) {
          if (l.text == "before attempt 1") return true;
        }
        return false;
      },
      seconds(20)))
      << a->Log();
  ASSERT_FALSE(PidsWithArg(marker).empty());
  ASSERT_TRUE(PauseOutsideWrites(*a)) << "worker a kept holding the SQLite write lock";
  const auto paused = steady_clock::now();

  auto b = StartWorker("b");
  ASSERT_TRUE(WaitFor([&] { return StatusOf(id) == RunStatus::kSuccess; }, seconds(30)))
      << ToString(StatusOf(id)) << "\nworker b:\n"
      << b->Log();
  fmt::print("paused worker's run rescued and completed {:.2f} s after SIGSTOP\n",
             Seconds(steady_clock::now() - paused));
  const automan::Run completed = GetRun(id);
  EXPECT_EQ(completed.attempt, 2);

  a->Signal(SIGCONT);
  const auto resumed = steady_clock::now();
  ASSERT_TRUE(
      WaitFor([&] { return a->Log().find("lease lost") != std::string::npos; }, seconds(15)))
      << "worker a:\n"
      << a->Log();
  fmt::print("resumed worker noticed the lost lease after {:.2f} s\n",
             Seconds(steady_clock::now() - resumed));
  EXPECT_TRUE(WaitFor([&] { return PidsWithArg(marker).empty(); }, seconds(10)));

  // Stopping worker a (it drains) makes sure it has nothing left in flight to write.
  a->Signal(SIGTERM);
  EXPECT_EQ(a->WaitExit(seconds(20)), 0) << a->Log();
  EXPECT_THAT(a->Log(), HasSubstr("1 lost"));

  EXPECT_EQ(GetRun(id), completed);  // nothing of the stale attempt reached the run
  auto attempts = Attempts(id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_TRUE(Lost(attempts[0])) << ToString(attempts[0].status) << ": " << attempts[0].error;
  EXPECT_EQ(attempts[1].status, RunStatus::kSuccess);
  EXPECT_THAT(attempts[1].worker, HasSubstr(std::to_string(b->pid())));
  int successes = 0;
  for (const auto& at : attempts) successes += at.status == RunStatus::kSuccess;
  EXPECT_EQ(successes, 1);

  // Attempt 2's lines are its own; the paused worker's later lines are nowhere.
  auto second = Logs(id, 2);
  std::vector<std::string> texts;
  for (const auto& l : second) texts.push_back(l.text);
  EXPECT_THAT(texts, ::testing::ElementsAre("before attempt 2", "after attempt 2"));
  for (const auto& l : Logs(id)) {
    EXPECT_NE(l.text, "after attempt 1") << "a line of the fenced-off attempt was stored";
    if (l.attempt == 1) {
      EXPECT_EQ(l.text, "before attempt 1");
    }
  }
  std::vector<StepRun> steps;
  Read([&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(steps, tx.ListStepRuns(id));
    return Status::Ok();
  });
  for (const auto& s : steps) {
    if (s.attempt == 1) {
      EXPECT_NE(s.status, StepStatus::kSuccess) << "a stale step result was stored";
    } else {
      EXPECT_EQ(s.status, StepStatus::kSuccess);
    }
  }
  EXPECT_EQ(EffectCount(id, 1), 1);
  EXPECT_EQ(EffectCount(id, 2), 1);
  b->Signal(SIGTERM);
  EXPECT_EQ(b->WaitExit(seconds(20)), 0) << b->Log();
}

// 4a. `automan cancel` of a running run: CANCELLED promptly, its process tree gone.
TEST_F(QueueCrashTest, CancelStopsARunningRunAndItsTree) {
  const std::string marker = SleepMarker(30);
  const std::string rb = WriteRunbook("long", "sleep " + marker);
  const std::string id = Enqueue(rb);
  auto w = StartWorker("w");
  ASSERT_TRUE(WaitFor([&] { return !PidsWithArg(marker).empty(); }, seconds(20))) << w->Log();

  const auto asked = steady_clock::now();
  auto r = Automan("cancel " + id);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("cancellation requested"));
  ASSERT_TRUE(WaitFor([&] { return StatusOf(id) == RunStatus::kCancelled; }, seconds(20)))
      << ToString(StatusOf(id)) << "\n"
      << w->Log();
  const double took = Seconds(steady_clock::now() - asked);
  fmt::print("running run CANCELLED {:.2f} s after `automan cancel`\n", took);
  EXPECT_LT(took, 5.0);
  EXPECT_TRUE(WaitFor(
      [&] { return PidsWithArg(marker).empty() && PidsWithEnv("AUTOMAN_RUN_ID=" + id).empty(); },
      seconds(10)));

  automan::Run run = GetRun(id);
  EXPECT_EQ(run.attempt, 1);
  EXPECT_THAT(run.error, HasSubstr("cancel"));
  auto attempts = Attempts(id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].status, RunStatus::kCancelled);
  EXPECT_EQ(EffectLines(), 1);
  EXPECT_EQ(Automan("cancel " + id).exit_code, 0);  // cancelling again changes nothing
  EXPECT_EQ(GetRun(id), run);
  w->Signal(SIGTERM);
  EXPECT_EQ(w->WaitExit(seconds(20)), 0) << w->Log();
}

// 4b. `automan cancel` of a pending run: CANCELLED at once and never executed.
TEST_F(QueueCrashTest, CancelledPendingRunNeverExecutes) {
  const std::string rb = WriteRunbook("quick", "");
  const std::string id = Enqueue(rb);
  auto r = Automan("cancel " + id);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, id + " cancelled\n");
  EXPECT_EQ(StatusOf(id), RunStatus::kCancelled);
  // A run queued behind it: once the worker completed that one, it had its chance.
  const std::string after = Enqueue(rb);
  auto w = StartWorker("w");
  ASSERT_TRUE(WaitFor([&] { return StatusOf(after) == RunStatus::kSuccess; }, seconds(20)))
      << w->Log();
  automan::Run run = GetRun(id);
  EXPECT_EQ(run.status, RunStatus::kCancelled);
  EXPECT_EQ(run.attempt, 0);
  EXPECT_TRUE(Attempts(id).empty());
  EXPECT_EQ(EffectCount(id, 1), 0);
  EXPECT_EQ(EffectLines(), 1);
  w->Signal(SIGTERM);
  EXPECT_EQ(w->WaitExit(seconds(20)), 0) << w->Log();
  EXPECT_EQ(StatusOf(id), RunStatus::kCancelled);
}

// 5a. SIGTERM with a running run shorter than the grace period: it finishes, and the
// worker exits 0.
TEST_F(QueueCrashTest, SigtermLetsARunningRunFinishWithinTheGrace) {
  const std::string marker = SleepMarker(1);
  const std::string rb = WriteRunbook("second", "sleep " + marker);
  const std::string id = Enqueue(rb);
  auto w = StartWorker("w", {"--grace", "5s"});
  ASSERT_TRUE(WaitFor([&] { return !PidsWithArg(marker).empty(); }, seconds(20))) << w->Log();
  w->Signal(SIGTERM);
  const auto term = steady_clock::now();
  EXPECT_EQ(w->WaitExit(seconds(30)), 0) << w->Log();
  fmt::print("worker exited {:.2f} s after SIGTERM (step 1 s, grace 5 s)\n",
             Seconds(steady_clock::now() - term));
  automan::Run run = GetRun(id);
  EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
  EXPECT_EQ(run.attempt, 1);
  auto attempts = Attempts(id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].status, RunStatus::kSuccess);
  EXPECT_THAT(w->Log(), HasSubstr("1 claimed, 1 finished"));
}

// 5b. SIGTERM with a run longer than the grace period: the worker kills it and exits
// promptly, leaving the run RUNNING under its lease; a new worker rescues and finishes it.
TEST_F(QueueCrashTest, SigtermPastTheGraceLeavesTheRunToBeRescued) {
  const std::string marker = SleepMarker(30);
  const std::string rb =
      WriteRunbook("first-long", "if [ \"$AUTOMAN_ATTEMPT\" = 1 ]; then sleep " + marker + "; fi");
  const std::string id = Enqueue(rb);
  auto a = StartWorker("a", {"--grace", "200ms"});
  ASSERT_TRUE(WaitFor([&] { return !PidsWithArg(marker).empty(); }, seconds(20))) << a->Log();
  a->Signal(SIGTERM);
  const auto term = steady_clock::now();
  EXPECT_EQ(a->WaitExit(seconds(20)), 0) << a->Log();
  fmt::print("worker exited {:.2f} s after SIGTERM (grace 200 ms, step 30 s)\n",
             Seconds(steady_clock::now() - term));
  EXPECT_THAT(a->Log(), HasSubstr("1 left to expire"));
  EXPECT_TRUE(WaitFor([&] { return PidsWithArg(marker).empty(); }, seconds(10)));
  automan::Run left = GetRun(id);
  EXPECT_EQ(left.status, RunStatus::kRunning);
  EXPECT_TRUE(left.lease_expires_at.has_value());
  EXPECT_THAT(left.lease_owner, HasSubstr(std::to_string(a->pid())));
  EXPECT_EQ(left.attempt, 1);

  auto b = StartWorker("b");
  const auto started = steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return StatusOf(id) == RunStatus::kSuccess; }, seconds(30)))
      << ToString(StatusOf(id)) << "\n"
      << b->Log();
  fmt::print("new worker rescued and finished the run in {:.2f} s\n",
             Seconds(steady_clock::now() - started));
  automan::Run run = GetRun(id);
  EXPECT_EQ(run.attempt, 2);
  auto attempts = Attempts(id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_TRUE(Lost(attempts[0])) << ToString(attempts[0].status) << ": " << attempts[0].error;
  EXPECT_EQ(attempts[1].status, RunStatus::kSuccess);
  EXPECT_EQ(Effects(), (std::map<std::pair<std::string, int>, int>{{{id, 1}, 1}, {{id, 2}, 1}}));
  b->Signal(SIGTERM);
  EXPECT_EQ(b->WaitExit(seconds(20)), 0) << b->Log();
}

// 6. A run that always fails with `retries: {count: 1}` ends DEAD after 2 attempts; the
// dead-letter commands list, show and replay it.
TEST_F(QueueCrashTest, AlwaysFailingRunGoesDeadAndIsReplayed) {
  const std::string rb =
      WriteRunbook("doomed", "echo doomed >&2\nexit 7", "retries: {count: 1, delay: 100ms}\n");
  const std::string id = Enqueue(rb);
  auto w = StartWorker("w");
  ASSERT_TRUE(WaitFor([&] { return IsTerminal(StatusOf(id)); }, seconds(30))) << w->Log();
  automan::Run run = GetRun(id);
  EXPECT_EQ(run.status, RunStatus::kDead) << run.error;
  EXPECT_EQ(run.attempt, 2);
  EXPECT_THAT(run.error, HasSubstr("7"));
  auto attempts = Attempts(id);
  ASSERT_EQ(attempts.size(), 2u);
  for (const auto& at : attempts) {
    EXPECT_EQ(at.status, RunStatus::kFailed);
    EXPECT_THAT(at.error, Not(HasSubstr("lost")));
  }
  EXPECT_EQ(Effects(), (std::map<std::pair<std::string, int>, int>{{{id, 1}, 1}, {{id, 2}, 1}}));

  auto list = Automan("dlq list");
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_THAT(list.out, HasSubstr(id));
  EXPECT_THAT(list.out, HasSubstr(run.error));
  auto json = Automan("dlq list --json");
  ASSERT_EQ(json.exit_code, 0);
  auto arr = boost::json::parse(json.out).as_array();
  ASSERT_EQ(arr.size(), 1u);
  EXPECT_EQ(arr[0].as_object().at("id").as_string(), id);
  EXPECT_EQ(arr[0].as_object().at("status").as_string(), "DEAD");

  auto show = Automan("dlq show " + id);
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_THAT(show.out, HasSubstr("attempt 1 FAILED"));
  EXPECT_THAT(show.out, HasSubstr("attempt 2 FAILED"));
  EXPECT_THAT(show.out, HasSubstr("reason: " + run.error));

  auto replay = Automan("dlq replay " + id);
  ASSERT_EQ(replay.exit_code, 0);
  const std::string prefix = id + " replayed as ";
  ASSERT_THAT(replay.out, ::testing::StartsWith(prefix));
  const std::string replayed = replay.out.substr(prefix.size(), 36);
  automan::Run again = GetRun(replayed);
  EXPECT_EQ(again.retry_of, id);
  EXPECT_EQ(again.trigger, Trigger::kRetry);
  EXPECT_EQ(again.runbook_version, run.runbook_version);
  EXPECT_EQ(again.params, run.params);
  // The worker executes the replay (it fails the same way).
  ASSERT_TRUE(WaitFor([&] { return IsTerminal(StatusOf(replayed)); }, seconds(30))) << w->Log();
  EXPECT_EQ(StatusOf(replayed), RunStatus::kDead);
  EXPECT_EQ(EffectCount(replayed, 1), 1);
  EXPECT_EQ(StatusOf(id), RunStatus::kDead);  // the dead run stays as it was
  w->Signal(SIGTERM);
  EXPECT_EQ(w->WaitExit(seconds(20)), 0) << w->Log();
}

// Secret parameters with `automan enqueue` and `automan worker` on the store directly: both
// need the server's master key file; the worker opens the sealed value for the step.
TEST_F(QueueCrashTest, WorkerOpensSecretParamsWithTheMasterKeyFile) {
  const std::string rb =
      WriteRunbook("keyed",
                   "H=$(printf %s \"$AUTOMAN_PARAM_API_KEY\" | sha256sum | cut -c1-16)\n"
                   "[ \"$H\" = afdab1cb642f1b02 ] || { echo \"wrong value\" >&2; exit 3; }",
                   "params:\n  api_key: {type: secret, required: true}\n");
  WriteFile(dir_.File("key"), "k3y-V4lue-9f8e7d\n");
  // Without a key file: refused, saying how to give one; the value is not echoed.
  auto refused =
      Automan("enqueue '" + rb + "' --secret-param api_key < '" + dir_.File("key") + "' 2>&1");
  EXPECT_NE(refused.exit_code, 0) << refused.out;
  EXPECT_THAT(refused.out, HasSubstr("--key-file"));
  EXPECT_THAT(refused.out, Not(HasSubstr("k3y-V4lue")));
  // On the command line: refused before anything is read.
  auto inline_value = Automan("enqueue '" + rb + "' -p api_key=k3y-V4lue-9f8e7d 2>&1");
  EXPECT_EQ(inline_value.exit_code, 2) << inline_value.out;
  EXPECT_THAT(inline_value.out, HasSubstr("--secret-param api_key"));

  // The server's key file (its format: auth/keys.cpp), given to both.
  const std::string key_file = dir_.File("master.key");
  WriteFile(key_file, "automan-master-key-v1\n" + std::string(43, 'k') + "\n");
  ASSERT_EQ(::chmod(key_file.c_str(), 0600), 0);
  const std::string id = Enqueue(
      rb, "--key-file '" + key_file + "' --secret-param api_key < '" + dir_.File("key") + "'");
  EXPECT_EQ(ReadFile(Data() + "/automan.db").find("k3y-V4lue"), std::string::npos);
  EXPECT_FALSE(GetRun(id).params.at("api_key").sealed.empty());

  // A worker without the key fails the run and names the parameter...
  auto blind = StartWorker("blind");
  ASSERT_TRUE(WaitFor([&] { return IsTerminal(StatusOf(id)); }, seconds(30))) << blind->Log();
  EXPECT_THAT(GetRun(id).error, HasSubstr("api_key"));
  EXPECT_THAT(blind->Log(), HasSubstr("no master key file"));
  blind->Signal(SIGTERM);
  EXPECT_EQ(blind->WaitExit(seconds(20)), 0) << blind->Log();
  EXPECT_EQ(GetRun(id).params.at("api_key").sealed, "") << "an ended run keeps no sealed value";

  // ...one with it runs the step with the value.
  const std::string ok = Enqueue(
      rb, "--key-file '" + key_file + "' --secret-param api_key < '" + dir_.File("key") + "'");
  auto w = StartWorker("keyed", {"--key-file", key_file});
  ASSERT_TRUE(WaitFor([&] { return IsTerminal(StatusOf(ok)); }, seconds(30))) << w->Log();
  EXPECT_EQ(StatusOf(ok), RunStatus::kSuccess) << GetRun(ok).error;
  EXPECT_EQ(GetRun(ok).params.at("api_key").sealed, "");
  w->Signal(SIGTERM);
  EXPECT_EQ(w->WaitExit(seconds(20)), 0) << w->Log();
}

}  // namespace
}  // namespace automan
