// The engine and the sandbox together: every step of a runbook runs in the jail its
// profile asks for, records what was in force, and `sandbox: off` or a server without the
// sandbox run steps unconfined and say so. (The jail itself: tests/sandbox/jail_test.cpp.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/engine.h"
#include "support/test_util.h"

namespace automan {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class SandboxEngineTest : public ::testing::Test {
 protected:
  using Run = ::automan::Run;

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the sandbox needs root; running as uid " << geteuid();
    // Outside /tmp, like a server's /var/lib/automan: hiding works by rebuilding listings.
    char tmpl[] = "/var/tmp/automan-sbx-engine-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ + "/data");
    fs::create_directories(root_ + "/out");
    std::ofstream(root_ + "/data/master.key") << "key-material";
    auto s = Store::Open({.url = "sqlite:" + root_ + "/data/automan.db"});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    options_.work_root = root_ + "/data/work";
    options_.kill_grace = std::chrono::milliseconds(300);
    options_.sandbox.hidden = {root_ + "/data"};
  }
  void TearDown() override {
    store_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }

  Runbook Parse(const std::string& yaml) {
    ParseResult r = ParseRunbook(yaml, "test.yaml");
    std::string diags;
    for (const auto& d : r.diagnostics) diags += d.ToString() + "\n";
    EXPECT_TRUE(r.ok()) << diags;
    return r.ok() ? *r.runbook : Runbook{};
  }

  // Runs `rb` to its end; returns the run and its step records.
  std::pair<Run, std::vector<StepRun>> Exec(const Runbook& rb) {
    auto params = BindParams(rb, {});
    EXPECT_TRUE(params.ok());
    Engine engine(*store_, SystemClock(), options_);
    NewRun how;
    how.lease_owner = "test:1";
    auto run = engine.CreateRun(rb, *params, how);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    CancelSignal cancel;
    auto done = engine.Execute(rb, *run, *params, cancel);
    EXPECT_TRUE(done.ok()) << done.status().ToString();
    std::vector<StepRun> steps;
    (void)store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(steps, tx.ListStepRuns(done->id));
      return Status::Ok();
    });
    return {done.ok() ? *done : Run{}, steps};
  }

  std::string root_;
  std::unique_ptr<Store> store_;
  EngineOptions options_;
};

TEST_F(SandboxEngineTest, StepsRunJailedAndRecordWhatWasInForce) {
  Runbook rb = Parse(
      "id: jailed\nsteps:\n"
      "  - id: look\n"
      "    shell: |\n"
      "      test -e \"" +
      root_ +
      "/data/master.key\" && echo key-visible\n"
      "      echo x > \"$AUTOMAN_WORK_DIR/shared\"\n"
      "      echo \"n=$(ls /proc | grep -cE '^[0-9]+$')\" >> \"$AUTOMAN_OUTPUT\"\n"
      "    outputs: [n]\n"
      "  - id: next\n"
      "    shell: cat \"$AUTOMAN_WORK_DIR/shared\"; touch \"" +
      root_ + "/out/x\" 2>/dev/null && echo wrote-outside; true\n");
  auto [run, steps] = Exec(rb);
  ASSERT_EQ(run.status, RunStatus::kSuccess) << run.error;
  ASSERT_EQ(steps.size(), 2u);
  for (const auto& s : steps) {
    EXPECT_THAT(s.sandbox, HasSubstr("namespaces: mount, PID, IPC, UTS")) << s.sandbox;
    EXPECT_THAT(s.sandbox, HasSubstr("hidden: " + root_ + "/data")) << s.sandbox;
    EXPECT_THAT(s.sandbox, HasSubstr("open files 8192")) << s.sandbox;
  }
  EXPECT_LE(std::stoi(steps[0].outputs.at("n")), 5);
  EXPECT_FALSE(fs::exists(root_ + "/out/x"));
}

TEST_F(SandboxEngineTest, TheProfileReachesTheJail) {
  Runbook rb = Parse(
      "id: profiled\n"
      "sandbox:\n  pid: host\n  network: none\n  writable: [" +
      root_ +
      "/out]\n  open_files: 100\n  cpu_time: 90s\n"
      "steps:\n"
      "  - id: s\n"
      "    shell: |\n"
      "      echo \"nofile=$(ulimit -n)\" >> \"$AUTOMAN_OUTPUT\"\n"
      "      echo \"cpu=$(ulimit -t)\" >> \"$AUTOMAN_OUTPUT\"\n"
      "      test -d /proc/" +
      std::to_string(getpid()) +
      " && echo host=yes >> \"$AUTOMAN_OUTPUT\"\n"
      "      touch \"" +
      root_ + "/out/made\"\n");
  auto [run, steps] = Exec(rb);
  ASSERT_EQ(run.status, RunStatus::kSuccess) << run.error;
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].outputs.at("nofile"), "100");
  EXPECT_EQ(steps[0].outputs.at("cpu"), "90");
  EXPECT_EQ(steps[0].outputs.at("host"), "yes");
  EXPECT_TRUE(fs::exists(root_ + "/out/made"));
  EXPECT_THAT(steps[0].sandbox, HasSubstr("network (no network)"));
  EXPECT_THAT(steps[0].sandbox, Not(HasSubstr("PID")));
}

TEST_F(SandboxEngineTest, AMemoryLimitFailsTheStepWithAReason) {
  Runbook rb = Parse(
      "id: hungry\nsandbox: {memory: 16MiB}\nsteps:\n"
      "  - id: eat\n    shell: dd if=/dev/zero of=/dev/null bs=128M count=1\n");
  auto [run, steps] = Exec(rb);
  ASSERT_EQ(steps.size(), 1u);
  if (steps[0].sandbox.find("no cgroup") != std::string::npos) {
    GTEST_SKIP() << "no writable cgroup on this host: " << steps[0].sandbox;
  }
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_THAT(run.error, HasSubstr("memory limit of 16 MiB was reached")) << run.error;
}

TEST_F(SandboxEngineTest, SandboxOffAndADisabledSandboxRunUnconfinedAndSaySo) {
  Runbook off = Parse(
      "id: unconfined\nsandbox: off\nsteps:\n"
      "  - id: s\n    shell: touch \"" +
      root_ + "/out/off\"\n");
  auto [run, steps] = Exec(off);
  ASSERT_EQ(run.status, RunStatus::kSuccess) << run.error;
  EXPECT_TRUE(fs::exists(root_ + "/out/off"));
  EXPECT_EQ(steps.at(0).sandbox, "none: the runbook sets sandbox: off");

  options_.sandbox.enabled = false;
  Runbook plain =
      Parse("id: plain\nsteps:\n  - id: s\n    shell: touch \"" + root_ + "/out/disabled\"\n");
  auto [run2, steps2] = Exec(plain);
  ASSERT_EQ(run2.status, RunStatus::kSuccess) << run2.error;
  EXPECT_TRUE(fs::exists(root_ + "/out/disabled"));
  EXPECT_EQ(steps2.at(0).sandbox, "none: sandboxing is disabled on this server");
}

TEST_F(SandboxEngineTest, AWritablePathInsideTheDataDirectoryIsRefused) {
  Runbook rb = Parse("id: sneaky\nsandbox: {writable: [" + root_ +
                     "/data]}\nsteps:\n"
                     "  - id: s\n    shell: cat master.key\n");
  auto [run, steps] = Exec(rb);
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_THAT(run.error, HasSubstr("is inside " + root_ + "/data, which steps may not see"))
      << run.error;
}

}  // namespace
}  // namespace automan
