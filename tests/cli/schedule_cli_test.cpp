// `automan cron` and `automan schedules`, and the schedule loop inside real `automan worker`
// processes: file schedules kept in sync, one loop per store, exactly one run per fire.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "support/proc_util.h"
#include "support/test_util.h"

namespace automan {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::ChildProcess;
using ::testing::HasSubstr;
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

class ScheduleCliTest : public ::testing::Test {
 protected:
  std::string Cmd(const std::string& args) {
    return "cd " + dir_.path() + " && " + kAutoman + " " + args;
  }
  std::string Data() const { return dir_.File("data"); }
  // The ledger of `id` as JSON objects, newest first.
  std::vector<boost::json::object> Ledger(const std::string& id) {
    auto r = RunCommand(Cmd("schedules ledger " + id + " --json --limit 10000 --data " + Data()));
    std::vector<boost::json::object> out;
    for (const std::string& line : Lines(r.out))
      out.push_back(boost::json::parse(line).as_object());
    return out;
  }
  std::unique_ptr<ChildProcess> StartWorker(const std::string& name,
                                            std::vector<std::string> flags = {}) {
    std::vector<std::string> args = {kAutoman, "worker", "--data", Data(), "--poll", "200ms"};
    args.insert(args.end(), flags.begin(), flags.end());
    auto c = std::make_unique<ChildProcess>(args, dir_.File(name + ".log"), dir_.path());
    EXPECT_TRUE(c->ok());
    return c;
  }
  TempDir dir_;
};

TEST_F(ScheduleCliTest, CronNextShiftsANamedTimeOutOfTheSpringGap) {
  auto r =
      RunCommand(Cmd("cron next '30 2 * * *' --tz Europe/Berlin --from 2026-03-27T00:00:00Z -n 4"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(Lines(r.out),
            (std::vector<std::string>{"2026-03-27T02:30:00+01:00", "2026-03-28T02:30:00+01:00",
                                      "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}));
  // With gap: skip the night of the change has no fire.
  r =
      RunCommand(Cmd("cron next '30 2 * * *' --tz Europe/Berlin --dst-gap skip "
                     "--from 2026-03-28T12:00:00Z -n 1"));
  EXPECT_EQ(Lines(r.out), std::vector<std::string>{"2026-03-30T02:30:00+02:00"});
}

TEST_F(ScheduleCliTest, CronNextFollowsRealTimeThroughTheRepeatedHour) {
  auto r = RunCommand(
      Cmd("cron next '*/30 * * * *' --tz Europe/Berlin --from 2026-10-25T00:00:00+02:00 -n 8"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(Lines(r.out),
            (std::vector<std::string>{"2026-10-25T00:30:00+02:00", "2026-10-25T01:00:00+02:00",
                                      "2026-10-25T01:30:00+02:00", "2026-10-25T02:00:00+02:00",
                                      "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
                                      "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"}));
  // A named hour fires once through the repeat, twice with --dst-repeat both.
  r = RunCommand(Cmd("cron next '30 2 * * *' --tz Europe/Berlin --from 2026-10-24T12:00:00Z -n 2"));
  EXPECT_EQ(Lines(r.out),
            (std::vector<std::string>{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}));
  r =
      RunCommand(Cmd("cron next '30 2 * * *' --tz Europe/Berlin --dst-repeat both "
                     "--from 2026-10-24T12:00:00Z -n 2"));
  EXPECT_EQ(Lines(r.out),
            (std::vector<std::string>{"2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"}));
}

TEST_F(ScheduleCliTest, CronNextAcceptsAWallTimeInTheZoneAndOddOffsets) {
  auto r = RunCommand(Cmd("cron next '0 0 * * *' --tz Asia/Kolkata --from 2026-01-01T00:00 -n 1"));
  EXPECT_EQ(Lines(r.out), std::vector<std::string>{"2026-01-02T00:00:00+05:30"});
  r = RunCommand(Cmd("cron next '0 0 29 2 *' --from 2097-01-01T00:00:00Z -n 1"));
  EXPECT_EQ(Lines(r.out), std::vector<std::string>{"2104-02-29T00:00:00+00:00"});
}

TEST_F(ScheduleCliTest, CronRejectsBadInputWithExitTwoAndAMessage) {
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"next '*/0 * * * *'", "minute"},
           {"next '60 * * * *'", "60"},
           {"next '0 0 30 2 *'", "never fires"},
           {"next 'CRON_TZ=UTC 0 0 * * *'", "CRON_TZ"},
           {"next '* * * * *' --tz Mars/Olympus", "unknown time zone"},
           {"next '* * * * *' --tz ../../etc/passwd", "not a time zone name"},
           {"next '* * * * *' --from yesterday", "--from"},
           {"explain '1-99/7 * * * *'", "minute"},
       }) {
    SCOPED_TRACE(c.args);
    auto r = RunCommand(Cmd("cron " + c.args + " 2>&1"));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.out, HasSubstr(c.message));
  }
}

TEST_F(ScheduleCliTest, CronExplainSaysItInWords) {
  auto r = RunCommand(Cmd("cron explain '0 9 * * MON-FRI'"));
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("09:00"));
  EXPECT_THAT(r.out, HasSubstr("Monday"));
}

TEST_F(ScheduleCliTest, ValidateChecksCronAndZoneWithFileAndLine) {
  WriteFile(dir_.File("bad.yaml"), R"(id: bad
steps:
  - id: s
    shell: "true"
schedules:
  - id: never
    cron: "0 0 30 2 *"
  - id: zone
    every: 1m
    tz: Mars/Olympus
)");
  auto r = RunCommand(Cmd("validate bad.yaml 2>&1"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("bad.yaml:6:5: schedules[0].cron: never fires"));
  EXPECT_THAT(r.out, HasSubstr("bad.yaml:8:5: schedules[1].tz: unknown time zone"));
}

TEST_F(ScheduleCliTest, SchedulesAddListShowPauseResumeDelete) {
  WriteFile(dir_.File("web.yaml"), R"(id: web
params:
  service: {type: string, required: true}
steps:
  - id: s
    shell: "true"
)");
  const std::string d = " --data " + Data();
  auto r =
      RunCommand(Cmd("schedules add web.yaml --id nightly --cron '30 2 * * *' --tz "
                     "Europe/Berlin -p service=api --overlap skip" +
                     d));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("web/nightly added"));
  // Same id again: refused unless --replace.
  r = RunCommand(
      Cmd("schedules add web.yaml --id nightly --every 1h -p service=api" + d + " 2>&1"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("--replace"));
  r =
      RunCommand(Cmd("schedules add web.yaml --id nightly --cron '0 3 * * *' --tz Europe/Berlin "
                     "-p service=api --overlap skip --replace" +
                     d));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  // Bad definitions are refused before anything is stored.
  for (const std::string& bad :
       {std::string("--id x --cron '0 0 30 2 *' -p service=a"), std::string("--id x --every 1h"),
        std::string("--id x --every 1h -p service=a -p nope=1"),
        std::string("--id X --every 1h -p service=a"),
        std::string("--id x --cron '* * * * *' --tz Nowhere/Land -p service=a")}) {
    SCOPED_TRACE(bad);
    r = RunCommand(Cmd("schedules add web.yaml " + bad + d));
    EXPECT_EQ(r.exit_code, 2);
  }

  r = RunCommand(Cmd("schedules list" + d));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("web/nightly"));
  EXPECT_THAT(r.out, HasSubstr("cron \"0 3 * * *\""));
  EXPECT_EQ(Lines(r.out).size(), 2u);  // header + one schedule

  r = RunCommand(Cmd("schedules show web/nightly" + d));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("overlap:     skip"));
  EXPECT_THAT(r.out, HasSubstr("params:      service=api"));
  EXPECT_THAT(r.out, HasSubstr("next fires:"));
  EXPECT_THAT(r.out, HasSubstr("generation 2"));

  EXPECT_EQ(RunCommand(Cmd("schedules pause web/nightly" + d)).exit_code, 0);
  r = RunCommand(Cmd("schedules list --json" + d));
  auto j = boost::json::parse(Lines(r.out).at(0)).as_object();
  EXPECT_EQ(j.at("state").as_string(), "paused");
  EXPECT_TRUE(j.at("next_fire_at").is_null());
  EXPECT_EQ(RunCommand(Cmd("schedules resume web/nightly" + d)).exit_code, 0);
  r = RunCommand(Cmd("schedules list --json" + d));
  j = boost::json::parse(Lines(r.out).at(0)).as_object();
  EXPECT_EQ(j.at("state").as_string(), "active");

  EXPECT_EQ(RunCommand(Cmd("schedules show web/nope" + d)).exit_code, 2);
  EXPECT_EQ(RunCommand(Cmd("schedules delete web/nightly" + d)).exit_code, 0);
  EXPECT_EQ(RunCommand(Cmd("schedules delete web/nightly" + d)).exit_code, 2);
  r = RunCommand(Cmd("schedules list" + d));
  EXPECT_EQ(Lines(r.out).size(), 1u);
}

// A runbook file's schedules, synced by the worker: fires arrive once per nominal time, an
// edit of the file takes effect, removing the schedule stops it.
TEST_F(ScheduleCliTest, WorkerKeepsFileSchedulesInSyncAndFiresThem) {
  std::filesystem::create_directories(dir_.File("runbooks"));
  const std::string file = dir_.File("runbooks/tick.yaml");
  auto write = [&](const std::string& schedule) {
    WriteFile(
        file,
        "id: tick\nsteps:\n  - id: s\n    shell: echo \"deadline=$AUTOMAN_DEADLINE\"\n" + schedule);
  };
  write("schedules:\n  - id: fast\n    every: 1s\n");
  auto w = StartWorker("w", {"--runbooks", dir_.File("runbooks")});
  // The loop decides up to 2 s ahead; an edit withdraws what was not due yet.
  ASSERT_TRUE(WaitFor([&] { return Ledger("tick/fast").size() >= 6; }, milliseconds(20000)))
      << w->Log();
  // Edit: a slower interval in its place; the old definition must not fire again.
  write("schedules:\n  - id: fast\n    every: 1h\n");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = RunCommand(Cmd("schedules show tick/fast --data " + Data()));
        return r.out.find("every 1h") != std::string::npos;
      },
      milliseconds(10000)))
      << w->Log();
  const size_t after_edit = Ledger("tick/fast").size();
  std::this_thread::sleep_for(milliseconds(2500));
  EXPECT_EQ(Ledger("tick/fast").size(), after_edit) << "the old every-1s definition fired";

  // Removed from the file: gone from the store.
  write("");
  ASSERT_TRUE(WaitFor(
      [&] { return RunCommand(Cmd("schedules show tick/fast --data " + Data())).exit_code == 2; },
      milliseconds(10000)))
      << w->Log();
  w->Signal(SIGTERM);
  ASSERT_EQ(w->WaitExit(milliseconds(20000)), 0) << w->Log();
  EXPECT_THAT(w->Log(), HasSubstr("schedule loop stopped"));

  // Every fired row has its own run, which ran.
  std::set<std::string> runs;
  for (const auto& row : Ledger("tick/fast")) {
    if (row.at("status").as_string() == "fired" || row.at("status").as_string() == "late") {
      EXPECT_TRUE(runs.insert(std::string(row.at("run_id").as_string())).second);
    }
  }
  EXPECT_GE(runs.size(), 3u);
}

// Two workers on one data directory: one schedule loop, one run per nominal fire time.
TEST_F(ScheduleCliTest, TwoWorkersFireEachOccurrenceOnce) {
  WriteFile(dir_.File("t.yaml"), "id: t\nsteps:\n  - id: s\n    shell: \"true\"\n");
  ASSERT_EQ(RunCommand(Cmd("schedules add t.yaml --id s --every 1s --data " + Data())).exit_code,
            0);
  auto a = StartWorker("a");
  auto b = StartWorker("b");
  ASSERT_TRUE(WaitFor([&] { return Ledger("t/s").size() >= 4; }, milliseconds(20000)))
      << a->Log() << b->Log();
  // The leader goes away; the other takes over within its retry interval.
  const bool a_leads = a->Log().find("standing by") == std::string::npos;
  (a_leads ? a : b)->Signal(SIGTERM);
  (a_leads ? a : b)->WaitExit(milliseconds(20000));
  const size_t before = Ledger("t/s").size();
  ASSERT_TRUE(WaitFor([&] { return Ledger("t/s").size() >= before + 3; }, milliseconds(20000)))
      << a->Log() << b->Log();
  (a_leads ? b : a)->Signal(SIGTERM);
  (a_leads ? b : a)->WaitExit(milliseconds(20000));

  std::set<std::string> nominals, runs;
  for (const auto& row : Ledger("t/s")) {
    EXPECT_TRUE(nominals.insert(std::string(row.at("nominal_at").as_string())).second);
    if (!row.at("run_id").as_string().empty()) {
      EXPECT_TRUE(runs.insert(std::string(row.at("run_id").as_string())).second);
    }
  }
  // Every decided occurrence is in the ledger once; the takeover may record the seconds it
  // missed as late/skipped, never twice.
  EXPECT_GE(runs.size(), 4u);
  auto store = Store::Open(StoreOptions{"sqlite:" + Data() + "/automan.db"});
  ASSERT_TRUE(store.ok());
  int schedule_runs = 0;
  ASSERT_TRUE((*store)
                  ->Transact(Store::TxMode::kRead,
                             [&](StoreTx& tx) -> Status {
                               RunFilter f;
                               f.trigger = Trigger::kSchedule;
                               f.limit = 1000;
                               AUTOMAN_ASSIGN_OR_RETURN(auto all, tx.ListRuns(f));
                               schedule_runs = static_cast<int>(all.size());
                               return Status::Ok();
                             })
                  .ok());
  EXPECT_EQ(schedule_runs, static_cast<int>(runs.size()));
}

}  // namespace
}  // namespace automan
