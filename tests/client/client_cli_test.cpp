// The client commands as a user runs them: a real `automan server` on a free port, and the
// `automan` binary as a separate process talking to it (run --follow and its exit codes,
// Ctrl-C, cancel from another process, dry runs, runs, logs, retry, runbooks, schedules and
// the dead-letter queue through --server or AUTOMAN_SERVER, TLS, the token, completion).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "client/fake_http_server.h"
#include "support/http_client.h"
#include "support/proc_util.h"
#include "support/test_util.h"

namespace automan {
namespace {

namespace json = boost::json;
using std::chrono::seconds;
using testing::ChildProcess;
using testing::FakeHttpServer;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ReadFile;
using testing::RunCommand;
using testing::TempDir;
using testing::WaitFor;
using testing::WriteFile;

const std::string kAutoman = AUTOMAN_BIN;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

struct Output {
  int exit_code = -1;
  std::string out, err;
};

// The runbooks every test's server knows.
const std::pair<const char*, const char*> kRunbooks[] = {
    {"ok", "id: ok\nsteps:\n  - id: greet\n    shell: echo hello; echo oops >&2\n"},
    {"fail", "id: fail\nsteps:\n  - id: bad\n    shell: echo before; exit 3\n"},
    {"slow", "id: slow\ntimeout: 300ms\nsteps:\n  - id: wait\n    shell: sleep 30\n"},
    {"sleeper", "id: sleeper\nsteps:\n  - id: nap\n    shell: echo napping; sleep 30\n"},
    {"params",
     "id: params\nparams:\n  count: {type: int, required: true}\nsteps:\n  - id: show\n"
     "    shell: echo count=$AUTOMAN_PARAM_COUNT\n"},
    {"doomed",
     "id: doomed\nretries: {count: 1, delay: 100ms}\nsteps:\n  - id: s\n"
     "    shell: echo doomed >&2; exit 7\n"},
    {"chatty", "id: chatty\nsteps:\n  - id: count\n    shell: seq 1 2500\n"},
    {"waiter",
     "id: waiter\nparams:\n  flag: {type: string, required: true}\nsteps:\n  - id: w\n"
     "    shell: |\n      echo first\n      while [ ! -e \"$AUTOMAN_PARAM_FLAG\" ]; do sleep 0.05; "
     "done\n      echo second\n      echo to-stderr >&2\n"},
};

class ClientCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"home", "runbooks", "cwd", "flags"}) {
      std::filesystem::create_directories(dir_.File(d));
    }
    for (const auto& [name, yaml] : kRunbooks) {
      std::string text = yaml;
      // The waiter's sandbox lets it see the flag the test creates on the host.
      if (std::string_view(name) == "waiter") {
        text += "sandbox: {writable: [" + dir_.File("flags") + "]}\n";
      }
      WriteFile(dir_.File(std::string("runbooks/") + name + ".yaml"), text);
    }
  }
  void TearDown() override {
    if (server_) {
      server_->Signal(SIGTERM);
      EXPECT_TRUE(server_->WaitExit(seconds(30)).has_value()) << server_->Log();
    }
  }

  // Starts `automan server` on a free port and reads its URL from "listening on URL".
  void StartServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {kAutoman,       "server",
                                     "--listen",     "127.0.0.1:0",
                                     "--data",       dir_.File("data"),
                                     "--runbooks",   dir_.File("runbooks"),
                                     "--grace",      "1s",
                                     "--access-log", "off"};
    args.insert(args.end(), extra.begin(), extra.end());
    ::setenv("AUTOMAN_ADMIN_PASSWORD", testing::kTestAdminPassword, 1);
    server_ = std::make_unique<ChildProcess>(args, dir_.File("server.log"), dir_.path());
    ASSERT_TRUE(server_->ok());
    static const std::regex kListening("listening on (https?://[0-9.]+:[0-9]+)");
    ASSERT_TRUE(WaitFor(
        [&] {
          const std::string log = server_->Log();
          std::smatch m;  // refers into `log`: read it before `log` goes away
          if (!std::regex_search(log, m, kListening)) return false;
          url_ = m[1];
          return true;
        },
        seconds(20)))
        << server_->Log();
    if (url_.rfind("http://", 0) == 0) {
      const uint16_t port = static_cast<uint16_t>(std::stoi(url_.substr(url_.rfind(':') + 1)));
      std::string failure;
      token_ = testing::LoginToken(port, "admin", testing::kTestAdminPassword, &failure);
      ASSERT_FALSE(token_.empty()) << failure;
    }
  }

  // Runs automan with a clean environment (HOME in the test's directory, none of the
  // caller's AUTOMAN_* settings) plus `env` ("NAME=value ...").
  Output Automan(const std::string& args, const std::string& env = "") {
    const std::string err = dir_.File("err" + std::to_string(++calls_));
    auto r = RunCommand("cd " + dir_.File("cwd") + " && " + CleanEnv() + " " + env + " " +
                        kAutoman + " " + args + " 2>" + err);
    return {r.exit_code, r.out, ReadFile(err)};
  }
  // Automan(args + " --server URL").
  // As the bootstrap admin (AUTOMAN_TOKEN) unless `env` sets another token.
  Output Api(const std::string& args, const std::string& env = "") {
    return Automan(args + " --server " + url_, "AUTOMAN_TOKEN=" + token_ + " " + env);
  }

  // automan as a child process (its own pid: `env` execs it), output in `name`.log.
  std::unique_ptr<ChildProcess> Spawn(const std::vector<std::string>& args,
                                      const std::string& name) {
    std::vector<std::string> argv = {"/usr/bin/env",
                                     "-u",
                                     "AUTOMAN_SERVER",
                                     "-u",
                                     "AUTOMAN_CA_FILE",
                                     "AUTOMAN_TOKEN=" + token_,
                                     "HOME=" + dir_.File("home"),
                                     kAutoman};
    argv.insert(argv.end(), args.begin(), args.end());
    auto c = std::make_unique<ChildProcess>(argv, dir_.File(name + ".log"), dir_.File("cwd"));
    EXPECT_TRUE(c->ok());
    return c;
  }

  std::string CleanEnv() const {
    return "env -u AUTOMAN_SERVER -u AUTOMAN_TOKEN -u AUTOMAN_CA_FILE -u AUTOMAN_DATA -u "
           "AUTOMAN_DB HOME=" +
           dir_.File("home");
  }

  // The server's runs, newest first, through `automan runs --json`.
  std::vector<json::object> Runs(const std::string& filter = "") {
    Output r = Api("runs --json --limit 1000 " + filter);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json::object> out;
    for (const std::string& line : Lines(r.out)) out.push_back(json::parse(line).as_object());
    return out;
  }
  std::string StatusOf(const std::string& id) {
    for (const json::object& r : Runs()) {
      if (r.at("id").as_string() == id) return std::string(r.at("status").as_string());
    }
    return "";
  }

  // The run id in "automan: run ID of ..." of a following process's output.
  static std::string FollowedId(const std::string& log) {
    static const std::regex kId("run ([0-9a-f-]{36}) of");
    std::smatch m;
    return std::regex_search(log, m, kId) ? std::string(m[1]) : "";
  }

  TempDir dir_;
  std::unique_ptr<ChildProcess> server_;
  std::string url_;
  std::string token_;  // the bootstrap admin's
  int calls_ = 0;
};

TEST_F(ClientCliTest, RunFollowPrintsTheLinesAndExitsZero) {
  StartServer();
  Output r = Api("run ok --follow");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[greet] hello\n");  // only the run's stdout lines on stdout
  EXPECT_THAT(r.err, HasSubstr("[greet] oops\n"));
  EXPECT_THAT(r.err, HasSubstr("SUCCESS"));
  EXPECT_THAT(r.err, HasSubstr("following it (Ctrl-C stops following)"));
}

TEST_F(ClientCliTest, RunFollowExitCodesFollowTheFinalStatus) {
  StartServer();
  Output failed = Api("run fail --follow");
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_EQ(failed.out, "[bad] before\n");
  EXPECT_THAT(failed.err, HasSubstr("FAILED"));
  Output timeout = Api("run slow --follow");
  EXPECT_EQ(timeout.exit_code, 3) << timeout.err;
  EXPECT_THAT(timeout.err, HasSubstr("TIMEOUT"));
  Output dead = Api("run doomed --follow");
  EXPECT_EQ(dead.exit_code, 1) << dead.err;
  EXPECT_THAT(dead.err, HasSubstr("automan: attempt 2\n"));
  EXPECT_THAT(dead.err, HasSubstr("DEAD"));
}

TEST_F(ClientCliTest, RunFollowJsonPrintsTheFinalRunOnStdout) {
  StartServer();
  Output r = Api("run ok --follow --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object run = json::parse(r.out).as_object();
  EXPECT_EQ(run.at("status").as_string(), "SUCCESS");
  EXPECT_EQ(run.at("runbook").as_string(), "ok");
  EXPECT_THAT(r.err, HasSubstr("[greet] hello\n"));  // the logs moved to stderr
}

TEST_F(ClientCliTest, CancelFromAnotherProcessEndsTheFollowWithFour) {
  StartServer();
  auto follow = Spawn({"run", "sleeper", "--follow", "--server", url_}, "follow");
  ASSERT_TRUE(WaitFor([&] { return follow->Log().find("[nap] napping") != std::string::npos; },
                      seconds(30)))
      << follow->Log();
  const std::string id = FollowedId(follow->Log());
  ASSERT_FALSE(id.empty()) << follow->Log();
  Output cancel = Api("cancel " + id);
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr(id));
  EXPECT_EQ(follow->WaitExit(seconds(30)), 4) << follow->Log();
  EXPECT_THAT(follow->Log(), HasSubstr("CANCELLED"));
  EXPECT_EQ(StatusOf(id), "CANCELLED");
}

TEST_F(ClientCliTest, CtrlCStopsFollowingAndSaysHowToCancel) {
  StartServer();
  auto follow = Spawn({"run", "sleeper", "-f", "--server", url_}, "follow");
  ASSERT_TRUE(WaitFor([&] { return follow->Log().find("[nap] napping") != std::string::npos; },
                      seconds(30)))
      << follow->Log();
  const std::string id = FollowedId(follow->Log());
  follow->Signal(SIGINT);
  EXPECT_EQ(follow->WaitExit(seconds(10)), 130) << follow->Log();
  EXPECT_THAT(follow->Log(), HasSubstr("automan cancel " + id + " --server " + url_));
  EXPECT_EQ(StatusOf(id), "RUNNING");  // stopping the follow does not stop the run
  EXPECT_EQ(Api("cancel " + id).exit_code, 0);
}

TEST_F(ClientCliTest, DryRunShowsThePlanAndRecordsNothing) {
  StartServer();
  Output r = Api("run params --dry-run -p count=42");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("dry run of params"));
  EXPECT_THAT(r.out, HasSubstr("count = 42  -> $AUTOMAN_PARAM_COUNT"));
  EXPECT_THAT(r.out, HasSubstr("1. show (shell)"));
  Output j = Api("run params --dry-run -p count=42 --json");
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_EQ(json::parse(j.out).at("dry_run").as_bool(), true);
  EXPECT_TRUE(Runs().empty());
  Output bad = Api("run params --dry-run -p count=many");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("\"count\""));
}

TEST_F(ClientCliTest, RunPrintsTheIdAndRunsListsIt) {
  StartServer();
  Output r = Api("run params -p count=7 --priority 5 --idempotency-key k1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id = Lines(r.out).at(0);
  ASSERT_EQ(id.size(), 36u) << r.out;
  ASSERT_TRUE(WaitFor([&] { return StatusOf(id) == "SUCCESS"; }, seconds(30)));
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].at("params").at("count").as_int64(), 7);
  EXPECT_EQ(runs[0].at("priority").as_int64(), 5);
  // The same key again: the same run, and a note that nothing new was queued.
  Output again = Api("run params -p count=7 --idempotency-key k1");
  EXPECT_EQ(Lines(again.out).at(0), id);
  EXPECT_THAT(again.err, HasSubstr("already used by run " + id));
  Output table = Api("runs");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  auto lines = Lines(table.out);
  ASSERT_EQ(lines.size(), 2u) << table.out;
  EXPECT_THAT(lines[0], ::testing::MatchesRegex("ID +RUNBOOK +STATUS +TRIGGER +CREATED +DURATION"));
  EXPECT_THAT(lines[1], HasSubstr(id));
  EXPECT_THAT(lines[1], HasSubstr("SUCCESS"));
  EXPECT_EQ(Runs("--status failed").size(), 0u);
  EXPECT_EQ(Runs("--runbook params").size(), 1u);
  EXPECT_EQ(Api("runs --status nonsense").exit_code, 2);
}

TEST_F(ClientCliTest, LogsPagesThroughEveryLine) {
  StartServer();
  Output run = Api("run chatty --follow");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string id = Runs().at(0).at("id").as_string().c_str();
  Output logs = Api("logs " + id);
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  auto lines = Lines(logs.out);
  ASSERT_EQ(lines.size(), 2500u);  // three pages of at most 1000
  for (int i = 0; i < 2500; ++i) ASSERT_EQ(lines[i], "[count] " + std::to_string(i + 1));
  Output json_lines = Api("logs " + id + " --json --stream stdout");
  auto jl = Lines(json_lines.out);
  ASSERT_EQ(jl.size(), 2500u);
  EXPECT_EQ(json::parse(jl.back()).at("text").as_string(), "2500");
  EXPECT_TRUE(Lines(Api("logs " + id + " --stream stderr").out).empty());
  EXPECT_EQ(Api("logs 01a23ada-0000-7000-8000-000000000000").exit_code, 2);
}

TEST_F(ClientCliTest, LogsFollowPrintsNewLinesUntilTheRunEnds) {
  StartServer();
  const std::string flag = dir_.File("flags/go");
  Output started = Api("run waiter -p flag=" + flag);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const std::string id = Lines(started.out).at(0);
  ASSERT_TRUE(WaitFor([&] { return Api("logs " + id).out == "[w] first\n"; }, seconds(30)));
  auto follow = Spawn({"logs", id, "-f", "--server", url_}, "logs");
  ASSERT_TRUE(
      WaitFor([&] { return follow->Log().find("[w] first") != std::string::npos; }, seconds(30)))
      << follow->Log();
  WriteFile(flag, "");
  EXPECT_EQ(follow->WaitExit(seconds(30)), 0) << follow->Log();
  const std::string log = follow->Log();
  EXPECT_THAT(log, HasSubstr("[w] second"));
  EXPECT_THAT(log, HasSubstr("[w] to-stderr"));
  EXPECT_THAT(log, HasSubstr("ended SUCCESS"));
  EXPECT_EQ(log.find("[w] first"), log.rfind("[w] first"));  // no line twice
  // With a filter, only the chosen stream's lines.
  Output only_err = Api("logs " + id + " --stream stderr -f");
  EXPECT_EQ(only_err.exit_code, 0);
  EXPECT_EQ(only_err.err, "[w] to-stderr\n");
}

TEST_F(ClientCliTest, RetryRunsAFinishedRunAgain) {
  StartServer();
  ASSERT_EQ(Api("run fail --follow").exit_code, 1);
  const std::string failed = Runs().at(0).at("id").as_string().c_str();
  Output r = Api("retry " + failed);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string again = Lines(r.out).at(0);
  EXPECT_NE(again, failed);
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].at("id").as_string(), again);
  EXPECT_EQ(runs[0].at("retry_of").as_string(), failed);
  EXPECT_EQ(runs[0].at("trigger").as_string(), "retry");
  Output followed = Api("retry " + failed + " --follow");
  EXPECT_EQ(followed.exit_code, 1);
  EXPECT_EQ(followed.out, "[bad] before\n");
}

TEST_F(ClientCliTest, RunbooksListsFiltersAndShows) {
  StartServer();
  Output list = Api("runbooks");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, ::testing::StartsWith("ID "));
  EXPECT_THAT(list.out, HasSubstr("host-info"));
  EXPECT_THAT(list.out, HasSubstr("sleeper"));
  Output q = Api("runbooks -q slee --json");
  auto lines = Lines(q.out);
  ASSERT_EQ(lines.size(), 1u) << q.out;
  EXPECT_EQ(json::parse(lines[0]).at("id").as_string(), "sleeper");
  Output cat = Api("runbooks --category diagnostics --json");
  ASSERT_EQ(Lines(cat.out).size(), 1u) << cat.out;
  Output show = Api("runbooks show params");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_THAT(show.out, HasSubstr("id:          params"));
  EXPECT_THAT(show.out, ::testing::ContainsRegex("count +integer +required"));
  EXPECT_THAT(show.out, HasSubstr("| echo count=$AUTOMAN_PARAM_COUNT"));
  Output missing = Api("runbooks show nope");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("runbook \"nope\" does not exist"));
  EXPECT_EQ(Api("runbooks show").exit_code, 2);
}

TEST_F(ClientCliTest, SchedulesThroughTheServer) {
  StartServer();
  Output add = Api("schedules add ok --id tick --every 1s");
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_THAT(add.out, HasSubstr("ok/tick added: every 1s, tz UTC; next fire "));
  Output dup = Api("schedules add ok --id tick --every 1s");
  EXPECT_EQ(dup.exit_code, 2);
  EXPECT_THAT(dup.err, HasSubstr("--replace"));
  EXPECT_EQ(Api("schedules add ok --id tick --every 2s --replace").exit_code, 0);
  ASSERT_TRUE(WaitFor(
      [&] { return Api("schedules ledger ok/tick").out.find("fired") != std::string::npos; },
      seconds(30)));
  Output list = Api("schedules list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, ::testing::ContainsRegex("ok/tick +every 2s +UTC +active"));
  EXPECT_THAT(list.out, HasSubstr("fired "));
  Output ledger = Api("schedules ledger ok/tick --json");
  ASSERT_FALSE(Lines(ledger.out).empty());
  EXPECT_EQ(json::parse(Lines(ledger.out)[0]).at("status").as_string(), "fired");
  Output show = Api("schedules show ok/tick");
  EXPECT_THAT(show.out, HasSubstr("state:       active"));
  EXPECT_THAT(show.out, HasSubstr("recent fires (newest first):"));
  EXPECT_THAT(show.out, HasSubstr("next fires:"));
  // Pausing withdraws the fires enqueued ahead of their time; the list says paused.
  Output pause = Api("schedules pause ok/tick");
  ASSERT_EQ(pause.exit_code, 0) << pause.err;
  EXPECT_EQ(pause.out, "ok/tick paused\n");
  auto listed = Lines(Api("schedules list --json").out);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(json::parse(listed[0]).at("state").as_string(), "paused");
  EXPECT_THAT(Api("schedules show ok/tick").out, HasSubstr("state:       paused"));
  EXPECT_EQ(Api("schedules resume ok/tick").out, "ok/tick resumed\n");
  EXPECT_EQ(Api("schedules delete ok/tick").exit_code, 0);
  EXPECT_EQ(Api("schedules show ok/tick").exit_code, 2);
  EXPECT_EQ(Api("schedules add params --id p --every 1h -p count=x").exit_code, 2);
  EXPECT_EQ(Api("schedules sync x.yaml").exit_code, 2);
  // Nothing went to a local store.
  EXPECT_FALSE(std::filesystem::exists(dir_.File("cwd/automan-data")));
}

TEST_F(ClientCliTest, DeadLetterQueueThroughTheServer) {
  StartServer();
  EXPECT_EQ(Api("dlq list").out, "the dead-letter queue is empty\n");
  ASSERT_EQ(Api("run doomed --follow").exit_code, 1);
  const std::string dead = Runs().at(0).at("id").as_string().c_str();
  Output list = Api("dlq list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr(dead));
  EXPECT_THAT(list.out, HasSubstr("DEAD"));
  json::array arr = json::parse(Api("dlq list --json").out).as_array();
  ASSERT_EQ(arr.size(), 1u);
  EXPECT_EQ(arr[0].at("id").as_string(), dead);
  Output show = Api("dlq show " + dead);
  EXPECT_THAT(show.out, HasSubstr("reason: "));
  Output replay = Api("dlq replay " + dead);
  ASSERT_EQ(replay.exit_code, 0) << replay.err;
  EXPECT_THAT(replay.out, ::testing::StartsWith(dead + " replayed as "));
  ASSERT_TRUE(WaitFor([&] { return Runs("--status dead").size() == 2; }, seconds(30)));
  Output purge = Api("dlq purge");
  EXPECT_EQ(purge.out, "purged 2 dead runs\n");
  EXPECT_EQ(Api("dlq list").out, "the dead-letter queue is empty\n");
  // Without a server, purge says where it works.
  Output local = Automan("dlq purge");
  EXPECT_EQ(local.exit_code, 2);
  EXPECT_THAT(local.err, HasSubstr("--server"));
}

TEST_F(ClientCliTest, AutomanServerInTheEnvironmentSelectsTheApi) {
  StartServer();
  const std::string env = "AUTOMAN_TOKEN=" + token_ + " AUTOMAN_SERVER=" + url_;
  Output r = Automan("run ok --follow", env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[greet] hello\n");
  // cancel, dlq and schedules go to the API too: no local store appears.
  EXPECT_EQ(Automan("schedules list", env).exit_code, 0);
  EXPECT_EQ(Automan("dlq list", env).exit_code, 0);
  Output cancel = Automan("cancel 01a23ada-0000-7000-8000-000000000000", env);
  EXPECT_EQ(cancel.exit_code, 2);
  EXPECT_THAT(cancel.err, HasSubstr("does not exist"));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("cwd/automan-data")));
  // Without it they keep working on the local data directory.
  EXPECT_EQ(Automan("schedules list").exit_code, 0);
  EXPECT_TRUE(std::filesystem::exists(dir_.File("cwd/automan-data")));
}

TEST_F(ClientCliTest, AnUnreachableServerSaysSoAndExitsOne) {
  int port = 0;
  {
    FakeHttpServer probe([](const FakeHttpServer::Request&, int) { return false; });
    port = probe.port();
  }  // nothing listens there any more
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  for (const std::string args : {"runs", "run ok --follow", "cancel x", "dlq list"}) {
    Output r = Automan(args + " --server " + url);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_THAT(r.err, HasSubstr("cannot reach the server at " + url +
                                 " (is automan server running? set --server or AUTOMAN_SERVER)"))
        << args;
  }
  Output bad_url = Automan("runs --server 127.0.0.1:8080");
  EXPECT_EQ(bad_url.exit_code, 2);
  EXPECT_THAT(bad_url.err, HasSubstr("http://"));
}

TEST_F(ClientCliTest, InvalidInputIsExitTwoWithTheServersMessage) {
  StartServer();
  Output bad = Api("run params -p count=abc");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("error: parameter \"count\" must be an integer"));
  Output missing = Api("run params");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("count"));
  Output malformed = Api("run params -p count");
  EXPECT_EQ(malformed.exit_code, 2);
  EXPECT_THAT(malformed.err, HasSubstr("name=value"));
  Output unknown = Api("run nope");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("runbook \"nope\" does not exist"));
  Output file = Api("run ./ok.yaml");
  EXPECT_EQ(file.exit_code, 2);
  EXPECT_THAT(file.err, HasSubstr("automan exec ./ok.yaml"));
  EXPECT_TRUE(Runs().empty());
}

TEST_F(ClientCliTest, HttpsVerifiesTheCertificateUnlessToldOtherwise) {
  if (RunCommand("command -v openssl >/dev/null").exit_code != 0) {
    GTEST_SKIP() << "openssl is not installed";
  }
  const std::string cert = dir_.File("cert.pem"), key = dir_.File("key.pem");
  ASSERT_EQ(RunCommand("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                       "-nodes -days 2 -subj /CN=localhost -addext "
                       "subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
                       key + " -out " + cert + " 2>/dev/null")
                .exit_code,
            0);
  StartServer({"--tls-cert", cert, "--tls-key", key});
  ASSERT_THAT(url_, ::testing::StartsWith("https://"));
  // automan login over TLS keeps the token in the CLI config file, which later commands use.
  WriteFile(dir_.File("pw"), std::string(testing::kTestAdminPassword) + "\n");
  Output login = Automan("login -u admin --password-stdin --ca-file " + cert + " --server " + url_ +
                         " < " + dir_.File("pw"));
  ASSERT_EQ(login.exit_code, 0) << login.err;
  EXPECT_THAT(login.err, HasSubstr("logged in to " + url_ + " as admin"));
  Output refused = Api("runbooks");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("certificate"));
  EXPECT_THAT(refused.err, HasSubstr("--ca-file"));
  Output with_ca = Api("runbooks --ca-file " + cert);
  EXPECT_EQ(with_ca.exit_code, 0) << with_ca.err;
  EXPECT_THAT(with_ca.out, HasSubstr("host-info"));
  EXPECT_EQ(Api("runbooks", "AUTOMAN_CA_FILE=" + cert).exit_code, 0);
  EXPECT_EQ(Api("runbooks --insecure").exit_code, 0);
  Output followed = Api("run ok --follow --ca-file " + cert);
  EXPECT_EQ(followed.exit_code, 0) << followed.err;
  EXPECT_EQ(followed.out, "[greet] hello\n");
  std::string plain = url_;
  plain.replace(0, 5, "http");
  Output wrong = Automan("runbooks --server " + plain);
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("https://"));
}

TEST_F(ClientCliTest, TheTokenComesFromTheEnvironmentOrAPrivateConfigFile) {
  FakeHttpServer fake([](const FakeHttpServer::Request&, int fd) {
    return FakeHttpServer::SendAll(
        fd, FakeHttpServer::Response(200, R"({"items":[],"next_cursor":null})"));
  });
  const std::string config = dir_.File("home/.config/automan/cli.yaml");
  std::filesystem::create_directories(dir_.File("home/.config/automan"));
  WriteFile(config, "token: from-file\n");
  chmod(config.c_str(), 0600);
  ASSERT_EQ(Automan("runs --server " + fake.url()).exit_code, 0);
  EXPECT_EQ(fake.requests().back().Header("authorization"), "Bearer from-file");
  ASSERT_EQ(Automan("runs --server " + fake.url(), "AUTOMAN_TOKEN=from-env").exit_code, 0);
  EXPECT_EQ(fake.requests().back().Header("authorization"), "Bearer from-env");
  chmod(config.c_str(), 0644);
  Output open = Automan("runs --server " + fake.url());
  EXPECT_EQ(open.exit_code, 0);
  EXPECT_THAT(open.err, HasSubstr("warning: not reading " + config));
  EXPECT_THAT(open.err, HasSubstr("chmod 600"));
  EXPECT_EQ(fake.requests().back().Header("authorization"), "");
}

TEST_F(ClientCliTest, CompletionScriptsAreValidAndComplete) {
  Output bash = Automan("completion bash");
  ASSERT_EQ(bash.exit_code, 0) << bash.err;
  const std::string script = dir_.File("automan.bash");
  WriteFile(script, bash.out);
  EXPECT_EQ(RunCommand("bash -n " + script).exit_code, 0);
  auto complete = [&](const std::string& words, int cword) {
    return RunCommand("bash -c 'source " + script + "; COMP_WORDS=(" + words + "); COMP_CWORD=" +
                      std::to_string(cword) + "; _automan; echo \"${COMPREPLY[*]}\"'")
        .out;
  };
  EXPECT_EQ(complete("automan ru", 1), "run runs runbooks\n");
  EXPECT_EQ(complete("automan run x --fo", 3), "--follow\n");
  EXPECT_EQ(complete("automan logs ID --stream s", 4), "stdout stderr system\n");
  EXPECT_EQ(complete("automan dlq \"\"", 2), "list show replay purge\n");
  EXPECT_EQ(complete("automan --version com", 2), "completion\n");
  // The value of a flag is not taken for a positional.
  EXPECT_EQ(complete("automan schedules --tz UTC pa", 4), "pause\n");
  for (const auto& [shell, check] :
       {std::pair<std::string, std::string>{"zsh", "zsh -n"}, {"fish", "fish --no-execute"}}) {
    Output out = Automan("completion " + shell);
    ASSERT_EQ(out.exit_code, 0);
    EXPECT_THAT(out.out, HasSubstr("completion"));
    if (RunCommand("command -v " + shell + " >/dev/null").exit_code != 0) continue;
    const std::string file = dir_.File("automan." + shell);
    WriteFile(file, out.out);
    EXPECT_EQ(RunCommand(check + " " + file).exit_code, 0) << shell;
  }
  EXPECT_EQ(Automan("completion tcsh").exit_code, 2);
}

}  // namespace
}  // namespace automan
