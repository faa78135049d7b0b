// Supervisors under concurrency: cancellation from another thread, several runs at once
// on several threads, and start/destroy churn without descriptor or child leaks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "sandbox/sandbox_test_util.h"
#include "sandbox/supervisor.h"
#include "sandbox/supervisor_pool.h"

namespace automan {
namespace {

using std::chrono::milliseconds;
using testing::RandomToken;
using testing::RecordingSink;
using testing::Shell;
using Kind = StepExit::Kind;

// Runs `cmd` and, once the step printed "ready", cancels it from another thread.
StepExit RunAndCancelFromAnotherThread(RunSupervisor& sup, const StepCommand& cmd,
                                       RecordingSink& sink) {
  CancelSignal cancel;
  std::promise<void> ready;
  sink.on_line = [&, fired = false](LogStream, std::string_view text) mutable {
    if (text == "ready" && !fired) {
      fired = true;
      ready.set_value();
    }
  };
  std::thread canceller([&] {
    ready.get_future().wait();
    cancel.Cancel();
  });
  Result<StepExit> r = sup.RunStep(cmd, sink, cancel);
  canceller.join();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : StepExit{.kind = Kind::kSpawnFailed};
}

TEST(SupervisorConcurrencyTest, CancelFromAnotherThreadStopsTheTree) {
  auto sup = RunSupervisor::Start();
  ASSERT_TRUE(sup.ok()) << sup.status().ToString();
  std::string marker = RandomToken();
  RecordingSink sink;
  StepExit e = RunAndCancelFromAnotherThread(
      **sup, Shell("(setsid sleep 1000 &); sleep 1000 & echo ready; wait", marker), sink);
  EXPECT_EQ(e, (StepExit{.kind = Kind::kCancelled}));
  EXPECT_EQ(testing::ProcessesWithMarker(marker), std::vector<pid_t>{});
  EXPECT_EQ(testing::DescendantsOf((*sup)->pid()), std::vector<pid_t>{});

  // The supervisor serves the next step normally.
  RecordingSink next;
  CancelSignal cancel;
  Result<StepExit> r = (*sup)->RunStep(Shell("echo after"), next, cancel);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(next.Texts(LogStream::kStdout), std::vector<std::string>{"after"});
}

TEST(SupervisorConcurrencyTest, CancelOfAStepTrappingTermWaitsForTheGrace) {
  auto sup = RunSupervisor::Start();
  ASSERT_TRUE(sup.ok());
  std::string marker = RandomToken();
  StepCommand cmd = Shell("trap '' TERM; echo ready; sleep 1000", marker);
  cmd.kill_grace = milliseconds(300);
  RecordingSink sink;
  auto start = std::chrono::steady_clock::now();
  StepExit e = RunAndCancelFromAnotherThread(**sup, cmd, sink);
  EXPECT_EQ(e.kind, Kind::kCancelled);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(300));
  EXPECT_EQ(testing::ProcessesWithMarker(marker), std::vector<pid_t>{});
}

TEST(SupervisorConcurrencyTest, SeveralSupervisorsOnSeveralThreads) {
  constexpr int kThreads = 4;
  constexpr int kSteps = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &failures] {
      auto fail = [&](const std::string& what) {
        ++failures;
        ADD_FAILURE() << "thread " << t << ": " << what;
      };
      auto sup = RunSupervisor::Start();
      if (!sup.ok()) return fail(sup.status().ToString());
      CancelSignal cancel;
      for (int i = 0; i < kSteps; ++i) {
        RecordingSink sink;
        // Each step also lists its shell's descriptors (no pipeline: the shell would hold
        // the pipe while ls runs): a pipe of another run leaking into it would show here.
        std::string script = fmt::format(
            "echo out-{0}-{1}; echo err-{0}-{1} >&2; ls /proc/$$/fd; exit {2}", t, i, i % 4);
        Result<StepExit> r = (*sup)->RunStep(Shell(script), sink, cancel);
        if (!r.ok()) return fail(r.status().ToString());
        if (*r != StepExit{.kind = Kind::kExited, .exit_code = i % 4}) {
          return fail(fmt::format("step {} ended as kind {} code {}", i, static_cast<int>(r->kind),
                                  r->exit_code));
        }
        std::vector<std::string> out = sink.Texts(LogStream::kStdout);
        std::vector<std::string> want = {fmt::format("out-{}-{}", t, i), "0", "1", "2"};
        if (out != want) return fail(fmt::format("step {} stdout: {}", i, fmt::join(out, "|")));
        if (sink.Texts(LogStream::kStderr) !=
            std::vector<std::string>{fmt::format("err-{}-{}", t, i)}) {
          return fail(fmt::format("step {} stderr wrong", i));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(SupervisorConcurrencyTest, StartAndDestroyChurnLeaksNothing) {
  {
    auto warm = RunSupervisor::Start();
    ASSERT_TRUE(warm.ok());
  }
  int before = testing::CountOpenFds();
  ASSERT_TRUE(testing::NoChildren());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&failures] {
      for (int i = 0; i < 10; ++i) {
        auto sup = RunSupervisor::Start();
        if (!sup.ok()) {
          ++failures;
          continue;
        }
        if (i % 2 == 0) continue;  // destroyed without ever running a step
        RecordingSink sink;
        CancelSignal cancel;
        Result<StepExit> r = (*sup)->RunStep(Shell("echo x"), sink, cancel);
        if (!r.ok() || r->kind != Kind::kExited) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(testing::CountOpenFds(), before);
  EXPECT_TRUE(testing::NoChildren());
}

}  // namespace
}  // namespace automan

namespace automan {
namespace {

TEST(SupervisorPoolConcurrencyTest, RunsFromSeveralThreadsShareThePool) {
  SupervisorPool pool({.max_idle = 2});
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, &failures, t] {
      for (int i = 0; i < 10; ++i) {
        auto sup = pool.Acquire();
        if (!sup.ok()) {
          ++failures;
          continue;
        }
        testing::RecordingSink sink;
        CancelSignal cancel;
        std::string text = fmt::format("{}-{}", t, i);
        Result<StepExit> r = (*sup)->RunStep(testing::Shell("echo " + text), sink, cancel);
        if (!r.ok() || sink.Texts(LogStream::kStdout) != std::vector<std::string>{text}) {
          ++failures;
        }
        pool.Release(std::move(*sup));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(pool.idle(), 2u);
}

}  // namespace
}  // namespace automan
