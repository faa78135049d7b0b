// End-to-end tests of the automan binary as a user runs it: exit codes, output, the store
// it leaves behind, SIGINT cancellation.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "store/store.h"
#include "support/proc_util.h"
#include "support/test_util.h"

extern char** environ;

namespace automan {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::TempDir;
using testing::WriteFile;

const std::string kAutoman = AUTOMAN_BIN;

class CliTest : public ::testing::Test {
 protected:
  std::string Cmd(const std::string& args) {
    return "cd " + dir_.path() + " && " + kAutoman + " " + args;
  }
  std::string Runbook(const std::string& name, const std::string& yaml) {
    std::string path = dir_.File(name);
    WriteFile(path, yaml);
    return path;
  }
  int RunCount() {
    StoreOptions so;
    so.url = "sqlite:" + dir_.File("automan-data/automan.db");
    if (!std::filesystem::exists(dir_.File("automan-data/automan.db"))) return 0;
    auto store = Store::Open(so);
    EXPECT_TRUE(store.ok());
    int n = 0;
    EXPECT_TRUE((*store)
                    ->Transact(Store::TxMode::kRead,
                               [&](StoreTx& tx) {
                                 RunFilter f;
                                 f.limit = 1000;
                                 AUTOMAN_ASSIGN_OR_RETURN(auto runs, tx.ListRuns(f));
                                 n = static_cast<int>(runs.size());
                                 return Status::Ok();
                               })
                    .ok());
    return n;
  }
  TempDir dir_;
};

TEST_F(CliTest, VersionPrintsTheVersion) {
  auto r = RunCommand(Cmd("version"));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, ::testing::StartsWith("automan "));
}

TEST_F(CliTest, UnknownCommandIsInvalidInput) {
  auto r = RunCommand(Cmd("frobnicate 2>&1"));
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(CliTest, ExecSuccessPrintsLinesAndSummaryAndRecordsTheRun) {
  auto file = Runbook("ok.yaml", R"(
id: ok
params:
  name: {type: string, default: world}
steps:
  - id: greet
    shell: echo "hello $AUTOMAN_PARAM_NAME"
)");
  auto r = RunCommand(Cmd("exec " + file + " -p name=ops"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("[greet] hello ops\n"));
  EXPECT_THAT(r.out, HasSubstr("SUCCESS"));
  EXPECT_EQ(RunCount(), 1);
}

TEST_F(CliTest, ExecFailedIsExitOne) {
  auto file = Runbook("fail.yaml", "id: fail\nsteps:\n  - id: bad\n    shell: exit 3\n");
  auto r = RunCommand(Cmd("exec " + file));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("FAILED"));
}

TEST_F(CliTest, ExecTimeoutIsExitThree) {
  auto file = Runbook("slow.yaml",
                      "id: slow\nsteps:\n  - id: wait\n    timeout: 200ms\n    shell: sleep 30\n");
  auto r = RunCommand(Cmd("exec " + file));
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_THAT(r.out, HasSubstr("TIMEOUT"));
}

TEST_F(CliTest, InvalidInputIsExitTwoAndRecordsNothing) {
  auto file = Runbook("p.yaml", R"(
id: p
params:
  count: {type: int, required: true}
steps:
  - id: s
    shell: "true"
)");
  EXPECT_EQ(RunCommand(Cmd("exec " + file + " 2>&1")).exit_code, 2);  // missing required
  EXPECT_EQ(RunCommand(Cmd("exec " + file + " -p count=abc 2>&1")).exit_code, 2);
  EXPECT_EQ(RunCommand(Cmd("exec " + file + " -p count=1 -p nope=2 2>&1")).exit_code, 2);
  EXPECT_EQ(RunCommand(Cmd("exec " + file + " -p count 2>&1")).exit_code, 2);
  auto bad = Runbook("bad.yaml", "id: Bad\nstpes: []\n");
  auto r = RunCommand(Cmd("exec " + bad + " 2>&1"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("bad.yaml:"));
  EXPECT_EQ(RunCommand(Cmd("exec " + dir_.File("missing.yaml") + " 2>&1")).exit_code, 2);
  EXPECT_EQ(RunCount(), 0);
}

TEST_F(CliTest, MissingParamMessageNamesIt) {
  auto file = Runbook("p.yaml", R"(
id: p
params:
  service: {type: string, required: true}
steps:
  - id: s
    shell: "true"
)");
  auto r = RunCommand(Cmd("exec " + file + " 2>&1"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("service"));
}

TEST_F(CliTest, DryRunShowsThePlanAndRecordsNothing) {
  auto file = Runbook("d.yaml", R"(
id: d
params:
  token: {type: secret, required: true}
steps:
  - id: s
    shell: touch should-not-exist
)");
  // A secret never comes from the command line: -p refuses it, --secret-param reads stdin.
  auto refused = RunCommand(Cmd("exec --dry-run " + file + " -p token=abcdef 2>&1"));
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_THAT(refused.out, HasSubstr("--secret-param token"));
  testing::WriteFile(dir_.File("token"), "abcdef\n");
  auto r =
      RunCommand(Cmd("exec --dry-run " + file + " --secret-param token < " + dir_.File("token")));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("touch should-not-exist"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("abcdef")));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("should-not-exist")));
  EXPECT_EQ(RunCount(), 0);
}

TEST_F(CliTest, JsonPrintsTheRunObjectOnStdout) {
  auto file = Runbook("j.yaml", R"(
id: j
params:
  n: {type: int, default: 5}
  token: {type: secret, default_from_env: no}
steps:
  - id: s
    outputs: [x]
    shell: echo "x=1" >> "$AUTOMAN_OUTPUT"; echo log line
)");
  // `default_from_env` is not a key: validation must refuse it.
  EXPECT_EQ(RunCommand(Cmd("exec --json " + file + " 2>/dev/null")).exit_code, 2);
  file = Runbook("j.yaml", R"(
id: j
params:
  n: {type: int, default: 5}
  token: {type: secret}
steps:
  - id: s
    outputs: [x]
    shell: echo "x=1" >> "$AUTOMAN_OUTPUT"; echo log line
)");
  testing::WriteFile(dir_.File("token"), "s3cr3t-value\n");
  auto r = RunCommand(Cmd("exec --json " + file + " --secret-param token < " + dir_.File("token") +
                          " 2>/dev/null"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto v = boost::json::parse(r.out);
  const auto& o = v.as_object();
  EXPECT_EQ(o.at("status").as_string(), "SUCCESS");
  EXPECT_EQ(o.at("runbook").as_string(), "j");
  EXPECT_EQ(o.at("trigger").as_string(), "manual");
  EXPECT_EQ(o.at("params").as_object().at("n").as_int64(), 5);
  EXPECT_EQ(o.at("params").as_object().at("token").as_string(), "***");
  EXPECT_EQ(o.at("outputs").as_object().at("s").as_object().at("x").as_string(), "1");
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(std::string(o.at("created_at").as_string()), ::testing::EndsWith("Z"));
}

TEST_F(CliTest, SigintCancelsCleanlyWithExitFour) {
  auto file = Runbook("long.yaml", R"(
id: long
steps:
  - id: wait
    shell: |
      (setsid sleep 1000 &)
      echo ready
      sleep 1000
)");
  int out_pipe[2];
  ASSERT_EQ(pipe2(out_pipe, O_CLOEXEC), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_addchdir_np(&fa, dir_.path().c_str());
  std::vector<std::string> args = {kAutoman, "exec", file};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, kAutoman.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  std::string out;
  char buf[4096];
  // Never hang the suite: give up (and kill the child) after 30 s without the marker.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (out.find("[wait] ready") == std::string::npos) {
    pollfd p{out_pipe[0], POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0 || poll(&p, 1, left) <= 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      FAIL() << "no live output from automan exec within 30 s: " << out;
    }
    ssize_t n = read(out_pipe[0], buf, sizeof buf);
    ASSERT_GT(n, 0) << out;
    out.append(buf, n);
  }
  size_t p = out.find("run ");
  ASSERT_NE(p, std::string::npos);
  std::string run_id = out.substr(p + 4, 36);
  ASSERT_EQ(kill(pid, SIGINT), 0);
  while (true) {
    ssize_t n = read(out_pipe[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, n);
  }
  close(out_pipe[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 4) << out;
  EXPECT_THAT(out, HasSubstr("CANCELLED"));
  EXPECT_TRUE(testing::PidsWithEnv("AUTOMAN_RUN_ID=" + run_id).empty());
}

TEST_F(CliTest, ValidateExitsTwoOnErrorsWithFileLineColumn) {
  auto good = Runbook("good.yaml", "id: good\nsteps:\n  - id: s\n    shell: 'true'\n");
  auto bad = Runbook("bad.yaml", "id: bad\nsteps:\n  - id: s\n    shel: 'true'\n");
  auto ok = RunCommand(Cmd("validate " + good));
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_THAT(ok.out, HasSubstr("ok"));
  auto r = RunCommand(Cmd("validate " + good + " " + bad + " 2>&1"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr(bad + ":4:"));
  EXPECT_THAT(r.out, HasSubstr("shel"));
}

TEST_F(CliTest, StoreFlagsChooseTheDatabase) {
  auto file = Runbook("ok.yaml", "id: ok\nsteps:\n  - id: s\n    shell: 'true'\n");
  auto r = RunCommand(Cmd("exec " + file + " --data " + dir_.File("elsewhere")));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir_.File("elsewhere/automan.db")));
  r = RunCommand(Cmd("exec " + file + " --db sqlite:" + dir_.File("x.db")));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir_.File("x.db")));
  // The binary loads libpq on demand: a PostgreSQL URL reaches libpq's own connect error.
  r = RunCommand(Cmd("exec " + file + " --db postgresql://u:s3cret@127.0.0.1:1/db 2>&1"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("cannot connect to postgresql://127.0.0.1:1/db"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("s3cret")));
  r = RunCommand(Cmd("exec " + file + " --db mysql://u:pw@h/db 2>&1"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("pw@")));
}

TEST_F(CliTest, BackupCopiesTheStoreAndRefusesToOverwrite) {
  auto file = Runbook("ok.yaml", "id: ok\nsteps:\n  - id: s\n    shell: 'true'\n");
  ASSERT_EQ(RunCommand(Cmd("exec " + file)).exit_code, 0);
  ASSERT_EQ(RunCommand(Cmd("exec " + file)).exit_code, 0);
  auto r = RunCommand(Cmd("backup " + dir_.File("copy.db")));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("backed up"));
  // The copy is a store of its own with both runs.
  StoreOptions so;
  so.url = "sqlite:" + dir_.File("copy.db");
  auto copy = Store::Open(so);
  ASSERT_TRUE(copy.ok()) << copy.status().message();
  int n = 0;
  ASSERT_TRUE((*copy)
                  ->Transact(Store::TxMode::kRead,
                             [&](StoreTx& tx) {
                               AUTOMAN_ASSIGN_OR_RETURN(auto runs, tx.ListRuns(RunFilter{}));
                               n = static_cast<int>(runs.size());
                               return Status::Ok();
                             })
                  .ok());
  EXPECT_EQ(n, 2);
  r = RunCommand(Cmd("backup " + dir_.File("copy.db") + " 2>&1"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("exists"));
  r = RunCommand(
      Cmd("backup --db postgresql://u:s3cret@127.0.0.1:1/db " + dir_.File("pg.dump") + " 2>&1"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("pg_dump"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("s3cret")));
}

}  // namespace
}  // namespace automan
