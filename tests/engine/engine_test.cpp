// Integration tests of the engine: real processes under the real supervisor shim (this
// test binary re-executed as `__supervise`), a real SQLite store in a temp dir.
#include "engine/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "support/proc_util.h"
#include "support/test_util.h"

namespace automan {
namespace {

using ::testing::HasSubstr;
using testing::PidsWithEnv;
using testing::TempDir;

class Collector final : public RunObserver {
 public:
  void OnLog(const LogLine& l) override {
    std::lock_guard lock(mu_);
    lines.push_back(l);
  }
  std::vector<std::string> Texts(LogStream s) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& l : lines) {
      if (l.stream == s) out.push_back(l.text);
    }
    return out;
  }
  std::mutex mu_;
  std::vector<LogLine> lines;
};

class EngineTest : public ::testing::Test {
 protected:
  using Run = ::automan::Run;  // not testing::Test::Run

  void SetUp() override {
    StoreOptions so;
    so.url = "sqlite:" + dir_.File("automan.db");
    auto s = Store::Open(so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    options_.work_root = dir_.File("work");
    options_.kill_grace = std::chrono::milliseconds(300);
  }

  Runbook Parse(const std::string& yaml) {
    ParseResult r = ParseRunbook(yaml, "test.yaml");
    std::string diags;
    for (const auto& d : r.diagnostics) diags += d.ToString() + "\n";
    EXPECT_TRUE(r.ok()) << diags;
    return r.ok() ? *r.runbook : Runbook{};
  }

  Run Exec(const Runbook& rb, std::vector<std::pair<std::string, std::string>> given = {},
           CancelSignal* cancel = nullptr) {
    auto params = BindParams(rb, given);
    EXPECT_TRUE(params.ok()) << params.status().ToString();
    Engine engine(*store_, SystemClock(), options_);
    NewRun how;
    how.triggered_by = "test";
    how.lease_owner = "test:1";
    auto run = engine.CreateRun(rb, *params, how);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    CancelSignal own;
    auto done = engine.Execute(rb, *run, *params, cancel ? *cancel : own, &collector_);
    EXPECT_TRUE(done.ok()) << done.status().ToString();
    return done.ok() ? *done : Run{};
  }

  std::vector<LogLine> StoredLines(const std::string& run_id) {
    std::vector<LogLine> lines;
    Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) {
      LogQuery q;
      q.run_id = run_id;
      q.limit = 100000;
      AUTOMAN_ASSIGN_OR_RETURN(lines, tx.ReadLogLines(q));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return lines;
  }

  std::vector<StepRun> Steps(const std::string& run_id) {
    std::vector<StepRun> steps;
    Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) {
      AUTOMAN_ASSIGN_OR_RETURN(steps, tx.ListStepRuns(run_id));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return steps;
  }

  Run Stored(const std::string& run_id) {
    Run run;
    Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) {
      AUTOMAN_ASSIGN_OR_RETURN(run, tx.GetRun(run_id));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return run;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  EngineOptions options_;
  Collector collector_;
};

TEST_F(EngineTest, OutputsPassBetweenStepsAndAreRecorded) {
  Runbook rb = Parse(R"(
id: outputs
steps:
  - id: produce
    outputs: [greeting, count]
    shell: |
      echo "greeting=hello world" >> "$AUTOMAN_OUTPUT"
      echo "count=3" >> "$AUTOMAN_OUTPUT"
  - id: consume
    shell: echo "got $AUTOMAN_OUT_PRODUCE_GREETING x$AUTOMAN_OUT_PRODUCE_COUNT"
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
  EXPECT_EQ(run.outputs["produce"]["greeting"], "hello world");
  EXPECT_EQ(run.outputs["produce"]["count"], "3");
  EXPECT_THAT(collector_.Texts(LogStream::kStdout), ::testing::ElementsAre("got hello world x3"));
  Run stored = Stored(run.id);
  EXPECT_EQ(stored.status, RunStatus::kSuccess);
  EXPECT_EQ(stored.outputs, run.outputs);
  auto steps = Steps(run.id);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].status, StepStatus::kSuccess);
  EXPECT_EQ(steps[0].exit_code, 0);
  EXPECT_EQ(steps[0].outputs.at("count"), "3");
}

TEST_F(EngineTest, ParameterValuesAreInertData) {
  TempDir victim;
  const std::string marker = victim.File("pwned");
  Runbook rb = Parse(R"(
id: inert
params:
  value: {type: string}
steps:
  - id: echo
    shell: echo "value=[$AUTOMAN_PARAM_VALUE]"
  - id: argv
    argv: [printf, "%s\n", "$AUTOMAN_PARAM_VALUE"]
)");
  const std::string hostile = "$(touch " + marker + "); rm -rf /; `touch " + marker + "`";
  Run run = Exec(rb, {{"value", hostile}});
  EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
  auto out = collector_.Texts(LogStream::kStdout);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], "value=[" + hostile + "]");
  // argv is never given to a shell: the literal text, unexpanded.
  EXPECT_EQ(out[1], "$AUTOMAN_PARAM_VALUE");
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(EngineTest, StdoutAndStderrAreStoredInOrderWithSequenceNumbers) {
  Runbook rb = Parse(R"(
id: streams
steps:
  - id: talk
    shell: |
      echo one
      sleep 0.05
      echo two >&2
      sleep 0.05
      echo three
)");
  Run run = Exec(rb);
  ASSERT_EQ(run.status, RunStatus::kSuccess) << run.error;
  auto lines = StoredLines(run.id);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].text, "one");
  EXPECT_EQ(lines[0].stream, LogStream::kStdout);
  EXPECT_EQ(lines[1].text, "two");
  EXPECT_EQ(lines[1].stream, LogStream::kStderr);
  EXPECT_EQ(lines[2].text, "three");
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].seq, static_cast<int64_t>(i + 1));
    EXPECT_EQ(lines[i].step_id, "talk");
    EXPECT_EQ(lines[i].attempt, 1);
  }
}

TEST_F(EngineTest, FailingStepFailsTheRunAndSkipsTheRest) {
  Runbook rb = Parse(R"(
id: fails
steps:
  - id: bad
    shell: exit 7
  - id: never
    shell: echo should not run
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_THAT(run.error, HasSubstr("bad"));
  EXPECT_THAT(run.error, HasSubstr("7"));
  auto steps = Steps(run.id);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].exit_code, 7);
  EXPECT_EQ(steps[0].status, StepStatus::kFailed);
}

TEST_F(EngineTest, ContinueOnErrorKeepsGoing) {
  Runbook rb = Parse(R"(
id: continues
steps:
  - id: bad
    shell: exit 1
    continue_on_error: true
  - id: good
    shell: echo fine
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
  auto steps = Steps(run.id);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].status, StepStatus::kFailed);
  EXPECT_EQ(steps[1].status, StepStatus::kSuccess);
}

TEST_F(EngineTest, MissingPromisedOutputFailsTheStep) {
  Runbook rb = Parse(R"(
id: promise
steps:
  - id: liar
    outputs: [state]
    shell: "true"
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_THAT(run.error, HasSubstr("state"));
}

TEST_F(EngineTest, StepTimeoutKillsDoubleForkedDaemons) {
  Runbook rb = Parse(R"(
id: daemon
steps:
  - id: spawn
    timeout: 500ms
    shell: |
      (setsid sh -c 'sleep 1000 & sleep 1000' &) 
      sh -c 'sleep 1000 &'
      echo spawned
      sleep 1000
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kTimeout) << run.error;
  EXPECT_THAT(run.error, HasSubstr("timed out"));
  EXPECT_TRUE(PidsWithEnv("AUTOMAN_RUN_ID=" + run.id).empty())
      << "a process of the run survived its timeout";
  auto steps = Steps(run.id);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].status, StepStatus::kTimeout);
}

TEST_F(EngineTest, DaemonLeftBehindBySuccessfulStepIsKilled) {
  Runbook rb = Parse(R"(
id: leftover
steps:
  - id: spawn
    shell: |
      (setsid sleep 1000 &)
      echo done
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
  EXPECT_TRUE(PidsWithEnv("AUTOMAN_RUN_ID=" + run.id).empty());
}

TEST_F(EngineTest, RunTimeoutAppliesAcrossSteps) {
  Runbook rb = Parse(R"(
id: run-timeout
timeout: 600ms
steps:
  - id: first
    shell: sleep 0.3
  - id: second
    shell: sleep 5
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kTimeout);
  EXPECT_THAT(run.error, HasSubstr("run timeout"));
}

TEST_F(EngineTest, CancelStopsTheRunAndItsProcesses) {
  Runbook rb = Parse(R"(
id: cancel-me
steps:
  - id: wait
    shell: |
      (setsid sleep 1000 &)
      echo ready
      sleep 1000
  - id: never
    shell: echo no
)");
  CancelSignal cancel;
  std::thread canceller([&] {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard lock(collector_.mu_);
        for (const auto& l : collector_.lines) {
          if (l.text == "ready") goto ready;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  ready:
    cancel.Cancel();
  });
  Run run = Exec(rb, {}, &cancel);
  canceller.join();
  EXPECT_EQ(run.status, RunStatus::kCancelled);
  EXPECT_EQ(ExitCodeFor(run.status), kExitCancelled);
  EXPECT_TRUE(PidsWithEnv("AUTOMAN_RUN_ID=" + run.id).empty());
  auto steps = Steps(run.id);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].status, StepStatus::kCancelled);
}

TEST_F(EngineTest, StepRetriesUntilSuccess) {
  Runbook rb = Parse(R"(
id: flaky
steps:
  - id: flaky
    retries: {count: 3, delay: 10ms}
    shell: |
      n=$(cat "$AUTOMAN_WORK_DIR/count" 2>/dev/null || echo 0)
      n=$((n + 1))
      echo "$n" > "$AUTOMAN_WORK_DIR/count"
      echo "try $n"
      [ "$n" -ge 3 ]
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
  auto out = collector_.Texts(LogStream::kStdout);
  EXPECT_THAT(out, ::testing::ElementsAre("try 1", "try 2", "try 3"));
}

TEST_F(EngineTest, NoRetryExitCodesFailAtOnce) {
  Runbook rb = Parse(R"(
id: permanent
steps:
  - id: bad
    retries: {count: 5, delay: 10ms, no_retry_exit_codes: [9]}
    shell: echo try; exit 9
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_EQ(collector_.Texts(LogStream::kStdout).size(), 1u);
}

TEST_F(EngineTest, RunRetriesStartNewAttemptsWithAttemptNumber) {
  Runbook rb = Parse(R"(
id: attempts
retries: {count: 2, delay: 10ms}
steps:
  - id: check
    shell: |
      echo "attempt $AUTOMAN_ATTEMPT"
      [ "$AUTOMAN_ATTEMPT" = 3 ]
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
  EXPECT_EQ(run.attempt, 3);
  EXPECT_THAT(collector_.Texts(LogStream::kStdout),
              ::testing::ElementsAre("attempt 1", "attempt 2", "attempt 3"));
  std::vector<Attempt> attempts;
  ASSERT_TRUE(store_
                  ->Transact(Store::TxMode::kRead,
                             [&](StoreTx& tx) {
                               AUTOMAN_ASSIGN_OR_RETURN(attempts, tx.ListAttempts(run.id));
                               return Status::Ok();
                             })
                  .ok());
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].status, RunStatus::kFailed);
  EXPECT_EQ(attempts[2].status, RunStatus::kSuccess);
  // Each attempt numbers its lines from 1.
  auto lines = StoredLines(run.id);
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& l : lines) EXPECT_EQ(l.seq, 1);
}

// The engine goes through the queue (src/queue/queue.h): with run-level `retries`, a run
// that fails every attempt ends DEAD (the dead-letter queue), not FAILED.
TEST_F(EngineTest, RunFailingEveryAttemptEndsDead) {
  Runbook rb = Parse(R"(
id: always-fails
retries: {count: 1, delay: 10ms}
steps:
  - id: check
    shell: echo "attempt $AUTOMAN_ATTEMPT"; exit 3
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kDead) << run.error;
  EXPECT_EQ(ExitCodeFor(run.status), kExitFailed);
  EXPECT_EQ(run.attempt, 2);
  EXPECT_FALSE(run.error.empty());
  EXPECT_THAT(collector_.Texts(LogStream::kStdout),
              ::testing::ElementsAre("attempt 1", "attempt 2"));
  EXPECT_EQ(Stored(run.id).status, RunStatus::kDead);
  // Without `retries` the same failure is final at once: FAILED.
  Runbook once = Parse("id: fails-once\nsteps:\n  - id: check\n    shell: exit 3\n");
  Run single = Exec(once);
  EXPECT_EQ(single.status, RunStatus::kFailed);
  EXPECT_EQ(single.attempt, 1);
}

// A cancellation requested through the store (Queue::Cancel, as `automan cancel` does)
// reaches the executing process and stops the run.
TEST_F(EngineTest, CancelThroughTheQueueStopsTheRun) {
  Runbook rb = Parse(R"(
id: cancel-via-queue
steps:
  - id: wait
    shell: echo ready; sleep 1000
)");
  auto params = BindParams(rb, {});
  ASSERT_TRUE(params.ok());
  Engine engine(*store_, SystemClock(), options_);
  NewRun how;
  how.triggered_by = "test";
  how.lease_owner = "test:cancel";
  auto run = engine.CreateRun(rb, *params, how);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  std::thread canceller([&] {
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard lock(collector_.mu_);
        for (const auto& l : collector_.lines) {
          if (l.text == "ready") goto ready;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  ready:
    Queue other(*store_, SystemClock());
    auto c = other.Cancel(run->id);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
  });
  CancelSignal cancel;
  auto done = engine.Execute(rb, *run, *params, cancel, &collector_);
  canceller.join();
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->status, RunStatus::kCancelled) << done->error;
  EXPECT_EQ(Stored(run->id).status, RunStatus::kCancelled);
  EXPECT_TRUE(PidsWithEnv("AUTOMAN_RUN_ID=" + run->id).empty());
}

TEST_F(EngineTest, RollbackRunsAfterFailure) {
  Runbook rb = Parse(R"(
id: rollback
steps:
  - id: change
    shell: echo changed
  - id: verify
    shell: exit 1
rollback:
  - id: undo
    shell: echo undone
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kRolledBack) << run.error;
  EXPECT_EQ(ExitCodeFor(run.status), kExitFailed);
  EXPECT_THAT(collector_.Texts(LogStream::kStdout), ::testing::ElementsAre("changed", "undone"));
}

TEST_F(EngineTest, FailedRollbackFailsTheRun) {
  Runbook rb = Parse(R"(
id: rollback-fails
steps:
  - id: verify
    shell: exit 1
rollback:
  - id: undo
    shell: exit 2
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_THAT(run.error, HasSubstr("rollback failed"));
}

TEST_F(EngineTest, SecretsNeverReachLogsOrTheStore) {
  Runbook rb = Parse(R"(
id: secret
params:
  token: {type: secret, required: true}
steps:
  - id: leak
    shell: echo "token is $AUTOMAN_PARAM_TOKEN"; echo "$AUTOMAN_PARAM_TOKEN" >&2
)");
  Run run = Exec(rb, {{"token", "hunter2-very-secret"}});
  EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
  for (const auto& l : StoredLines(run.id)) {
    EXPECT_EQ(l.text.find("hunter2"), std::string::npos) << l.text;
  }
  for (const auto& l : collector_.lines) {
    EXPECT_EQ(l.text.find("hunter2"), std::string::npos) << l.text;
  }
  Run stored = Stored(run.id);
  EXPECT_EQ(stored.params.at("token").text, "");
  EXPECT_EQ(stored.params.at("token").type, "secret");
}

TEST_F(EngineTest, FloodWithoutNewlinesIsCappedAndCompletes) {
  options_.max_log_bytes = 8 << 20;
  Runbook rb = Parse(R"(
id: flood
steps:
  - id: flood
    shell: head -c 100000000 /dev/zero | tr '\0' x
  - id: after
    shell: echo still here
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
  auto lines = StoredLines(run.id);
  ASSERT_FALSE(lines.empty());
  bool marker = false, discarded = false;
  size_t bytes = 0;
  for (const auto& l : lines) {
    if (l.stream == LogStream::kStdout && l.step_id == "flood") {
      bytes += l.text.size();
      EXPECT_LE(l.text.size(), kMaxLineBytes);
    }
    if (l.stream == LogStream::kSystem && l.text.find("log truncated") != std::string::npos) {
      marker = true;
    }
    if (l.stream == LogStream::kSystem && l.text.find("discarded") != std::string::npos) {
      discarded = true;
    }
  }
  EXPECT_TRUE(marker);
  EXPECT_TRUE(discarded);
  EXPECT_LE(bytes, options_.max_log_bytes);
  EXPECT_GT(bytes, options_.max_log_bytes / 2);
}

TEST_F(EngineTest, CleanEnvironment) {
  setenv("AUTOMAN_TEST_SHOULD_NOT_LEAK", "1", 1);
  Runbook rb = Parse(R"(
id: env
steps:
  - id: env
    env: {GREETING: hi}
    shell: env | sort
)");
  Run run = Exec(rb);
  unsetenv("AUTOMAN_TEST_SHOULD_NOT_LEAK");
  ASSERT_EQ(run.status, RunStatus::kSuccess) << run.error;
  auto out = collector_.Texts(LogStream::kStdout);
  std::string all;
  for (const auto& l : out) all += l + "\n";
  EXPECT_THAT(all, HasSubstr("GREETING=hi\n"));
  EXPECT_THAT(all, HasSubstr("AUTOMAN_RUN_ID=" + run.id + "\n"));
  EXPECT_THAT(all, HasSubstr("AUTOMAN_ATTEMPT=1\n"));
  EXPECT_THAT(all, HasSubstr("AUTOMAN_STEP_ID=env\n"));
  EXPECT_THAT(all, HasSubstr("PATH="));
  EXPECT_THAT(all, ::testing::Not(HasSubstr("AUTOMAN_TEST_SHOULD_NOT_LEAK")));
}

TEST_F(EngineTest, MissingExecutableFailsWithReason) {
  Runbook rb = Parse(R"(
id: missing
steps:
  - id: nope
    argv: [automan-no-such-program-xyz]
)");
  Run run = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_THAT(run.error, HasSubstr("could not start"));
}

TEST_F(EngineTest, EveryRunStartsInAnEmptyPrivateWorkDirectory) {
  Runbook rb = Parse(R"(
id: workdir
steps:
  - id: look
    shell: |
      pwd
      stat -c %a .
      ls -A | wc -l
      touch scratch
      mkdir -p sub/deeper && touch sub/deeper/file
)");
  Run first = Exec(rb);
  ASSERT_EQ(first.status, RunStatus::kSuccess) << first.error;
  Run second = Exec(rb);
  ASSERT_EQ(second.status, RunStatus::kSuccess) << second.error;
  auto out = collector_.Texts(LogStream::kStdout);
  ASSERT_EQ(out.size(), 6u);
  for (int run = 0; run < 2; ++run) {
    EXPECT_THAT(out[run * 3], ::testing::StartsWith(options_.work_root)) << out[run * 3];
    EXPECT_EQ(out[run * 3 + 1], "700");
    EXPECT_EQ(out[run * 3 + 2], "0") << "run " << run << " did not start in an empty directory";
  }
  EXPECT_FALSE(std::filesystem::exists(out[3] + "/scratch"));
}

TEST_F(EngineTest, OneEngineRunsSeveralRunsAtOnce) {
  Runbook rb = Parse(R"(
id: parallel
steps:
  - id: work
    outputs: [me]
    shell: |
      ls -A | wc -l
      touch leftover
      echo "me=$AUTOMAN_RUN_ID" >> "$AUTOMAN_OUTPUT"
      seq 1 200
)");
  auto params = BindParams(rb, {});
  ASSERT_TRUE(params.ok());
  Engine engine(*store_, SystemClock(), options_);
  constexpr int kThreads = 4;
  constexpr int kRunsEach = 3;
  std::vector<std::vector<Run>> done(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRunsEach; ++i) {
        NewRun how;
        how.lease_owner = "test:" + std::to_string(t);
        auto run = engine.CreateRun(rb, *params, how);
        if (!run.ok()) return;
        CancelSignal cancel;
        auto r = engine.Execute(rb, *run, *params, cancel);
        if (r.ok()) done[t].push_back(*r);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(done[t].size(), static_cast<size_t>(kRunsEach));
    for (const Run& run : done[t]) {
      EXPECT_EQ(run.status, RunStatus::kSuccess) << run.error;
      // Outputs and logs stay with their own run.
      EXPECT_EQ(run.outputs.at("work").at("me"), run.id);
      auto lines = StoredLines(run.id);
      ASSERT_EQ(lines.size(), 201u);
      EXPECT_EQ(lines[0].text, "0") << "the work directory was shared with another run";
      EXPECT_EQ(lines[200].text, "200");
    }
  }
}

}  // namespace
}  // namespace automan
