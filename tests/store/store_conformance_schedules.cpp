// Schedules, the fire ledger, ListActiveRuns and Store::TryLead: part of the Store
// conformance suite (store_conformance.h, StoreScheduleConformanceTest). Instants are
// explicit (At(n)), never the wall clock.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "store_conformance.h"
#include "writer_child.h"

namespace automan::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr std::string_view kLeadChildEnv = "AUTOMAN_STORE_LEAD_CHILD_URL";

ScheduleRecord SampleSchedule(const std::string& id = "disk-cleanup/nightly") {
  ScheduleRecord s;
  s.id = id;
  s.runbook_id = id.substr(0, id.find('/'));
  s.source = "file:/srv/runbooks/disk-cleanup.yaml";
  s.spec_json = R"({"id":"nightly","cron":"30 2 * * *","tz":"Europe/Zürich"})";
  s.cursor = At(100);
  s.created_at = At(10);
  s.updated_at = At(10);
  return s;
}

FireRecord SampleFire(const std::string& schedule_id, int64_t nominal,
                      FireStatus status = FireStatus::kFired) {
  FireRecord f;
  f.schedule_id = schedule_id;
  f.nominal = At(nominal);
  f.due = At(nominal - 5);
  f.status = status;
  if (status == FireStatus::kFired || status == FireStatus::kLate) {
    f.run_id = "run-" + std::to_string(nominal);
    f.delay = Duration(status == FireStatus::kLate ? 90000123 : 1234);
  } else {
    f.reason = status == FireStatus::kSkipped ? "overlap: run-1 still RUNNING" : "max_lateness";
  }
  f.wall = "2026-03-29T02:30:00 Europe/Zürich";
  f.generation = 1;
  f.recorded_at = At(nominal + 1);
  return f;
}

// Nominal instants as seconds after At(0).
std::vector<int64_t> NominalSeconds(const std::vector<FireRecord>& fires) {
  std::vector<int64_t> out;
  for (const FireRecord& f : fires) out.push_back((f.nominal - At(0)) / std::chrono::seconds(1));
  return out;
}

std::vector<std::string> ScheduleIds(const std::vector<ScheduleRecord>& schedules) {
  std::vector<std::string> out;
  for (const ScheduleRecord& s : schedules) out.push_back(s.id);
  return out;
}

// Polls TryLead(name) until it returns a holder or `timeout` passes (a released lock of
// another process or connection may take a moment to be seen free).
std::unique_ptr<Leadership> LeadWithin(Store& store, const std::string& name,
                                       milliseconds timeout) {
  const auto deadline = steady_clock::now() + timeout;
  while (true) {
    auto lead = store.TryLead(name);
    EXPECT_TRUE(lead.ok()) << lead.status().ToString();
    if (!lead.ok()) return nullptr;
    if (*lead != nullptr || steady_clock::now() >= deadline) return std::move(lead).value();
    std::this_thread::sleep_for(milliseconds(20));
  }
}

bool Leads(Store& store, const std::string& name) {
  auto lead = store.TryLead(name);
  EXPECT_TRUE(lead.ok()) << lead.status().ToString();
  return lead.ok() && *lead != nullptr;
}

}  // namespace

Result<ScheduleRecord> StoreScheduleConformanceTest::PutSchedule(const ScheduleRecord& s) {
  std::optional<ScheduleRecord> out;
  Status st = Write([&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.PutSchedule(s));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return *out;
}

Result<ScheduleRecord> StoreScheduleConformanceTest::GetSchedule(const std::string& id) {
  return ReadValue<ScheduleRecord>([&](StoreTx& tx) { return tx.GetSchedule(id); });
}

Result<std::vector<ScheduleRecord>> StoreScheduleConformanceTest::ListSchedules() {
  return ReadValue<std::vector<ScheduleRecord>>([&](StoreTx& tx) { return tx.ListSchedules(); });
}

Result<int64_t> StoreScheduleConformanceTest::Revision() {
  return ReadValue<int64_t>([&](StoreTx& tx) { return tx.SchedulesRevision(); });
}

Status StoreScheduleConformanceTest::DeleteSchedule(const std::string& id) {
  return Write([&](StoreTx& tx) { return tx.DeleteSchedule(id); });
}

Status StoreScheduleConformanceTest::Advance(const std::string& id, int64_t generation,
                                             Timestamp cursor) {
  return Write([&](StoreTx& tx) { return tx.AdvanceScheduleCursor(id, generation, cursor); });
}

Status StoreScheduleConformanceTest::InsertFire(const FireRecord& f) {
  return Write([&](StoreTx& tx) { return tx.InsertFire(f); });
}

Result<std::vector<FireRecord>> StoreScheduleConformanceTest::ListFires(
    const std::string& id, std::optional<Timestamp> before, int limit) {
  return ReadValue<std::vector<FireRecord>>(
      [&](StoreTx& tx) { return tx.ListFires(id, before, limit); });
}

Result<std::vector<std::string>> StoreScheduleConformanceTest::ActiveRunIds(Trigger trigger,
                                                                            const std::string& by,
                                                                            int limit) {
  auto runs = ReadValue<std::vector<Run>>(
      [&](StoreTx& tx) { return tx.ListActiveRuns(trigger, by, limit); });
  if (!runs.ok()) return runs.status();
  std::vector<std::string> out;
  for (const Run& r : *runs) out.push_back(r.id);
  return out;
}

std::unique_ptr<Store> StoreScheduleConformanceTest::OpenSecond() {
  if (!GetParam().url_of) return nullptr;
  auto second = Store::Open({.url = GetParam().url_of(*store_)});
  EXPECT_TRUE(second.ok()) << second.status().ToString();
  return second.ok() ? std::move(second).value() : nullptr;
}

namespace {

// ---------------------------------------------------------------------------------------
// Schedules

TEST_P(StoreScheduleConformanceTest, PutScheduleInsertsThenReplacesWithTheNextGeneration) {
  ScheduleRecord s = SampleSchedule();
  s.generation = 42;  // ignored
  auto first = PutSchedule(s);
  ASSERT_OK(first);
  ScheduleRecord expected = s;
  expected.generation = 1;
  EXPECT_EQ(*first, expected);
  auto read = GetSchedule(s.id);
  ASSERT_OK(read);
  EXPECT_EQ(*read, expected);

  // A replacement: every field but created_at from the call, the next generation.
  ScheduleRecord changed = s;
  changed.runbook_id = "disk-cleanup-v2";
  changed.source = "cli";
  changed.spec_json = R"({"id":"nightly","every":"90s"})";
  changed.paused = true;
  changed.generation = 0;
  changed.cursor = At(500);
  changed.created_at = At(400);  // kept as first stored
  changed.updated_at = At(450);
  auto second = PutSchedule(changed);
  ASSERT_OK(second);
  expected = changed;
  expected.generation = 2;
  expected.created_at = At(10);
  EXPECT_EQ(*second, expected);
  read = GetSchedule(s.id);
  ASSERT_OK(read);
  EXPECT_EQ(*read, expected);

  auto third = PutSchedule(changed);
  ASSERT_OK(third);
  EXPECT_EQ(third->generation, 3);
  EXPECT_EQ(third->created_at, At(10));
}

TEST_P(StoreScheduleConformanceTest, GetScheduleOfAMissingIdIsNotFound) {
  ExpectError(GetSchedule("disk-cleanup/none").status(), ErrorCode::kNotFound,
              {"schedule disk-cleanup/none"});
}

TEST_P(StoreScheduleConformanceTest, ListSchedulesIsOrderedByIdAsBytes) {
  auto empty = ListSchedules();
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
  for (const char* id : {"b/x", "a/y", "a/x", "B/z", "a/x-2"}) {
    ASSERT_OK(PutSchedule(SampleSchedule(id)));
  }
  auto all = ListSchedules();
  ASSERT_OK(all);
  EXPECT_EQ(ScheduleIds(*all), (std::vector<std::string>{"B/z", "a/x", "a/x-2", "a/y", "b/x"}));
  EXPECT_EQ((*all)[0].runbook_id, "B");
  EXPECT_EQ((*all)[0].generation, 1);
}

TEST_P(StoreScheduleConformanceTest, RevisionMovesOnPutAndDeleteOnly) {
  auto r0 = Revision();
  ASSERT_OK(r0);
  ASSERT_OK(PutSchedule(SampleSchedule()));
  auto r1 = Revision();
  ASSERT_OK(r1);
  EXPECT_NE(*r1, *r0);
  ASSERT_OK(PutSchedule(SampleSchedule()));  // the same definition again still counts
  auto r2 = Revision();
  ASSERT_OK(r2);
  EXPECT_NE(*r2, *r1);

  // The loop's own writes do not move it.
  ASSERT_OK(Advance(SampleSchedule().id, 2, At(200)));
  ASSERT_OK(InsertFire(SampleFire(SampleSchedule().id, 150)));
  EXPECT_EQ(*Revision(), *r2);

  // Neither does a rolled-back put, nor a refused delete.
  ExpectError(Write([&](StoreTx& tx) -> Status {
                AUTOMAN_RETURN_IF_ERROR(tx.PutSchedule(SampleSchedule("other/one")).status());
                return Error(ErrorCode::kCancelled, "changed my mind");
              }),
              ErrorCode::kCancelled);
  ExpectError(DeleteSchedule("other/one"), ErrorCode::kNotFound);
  EXPECT_EQ(*Revision(), *r2);

  ASSERT_OK(DeleteSchedule(SampleSchedule().id));
  auto r3 = Revision();
  ASSERT_OK(r3);
  EXPECT_NE(*r3, *r2);

  // Several changes in one transaction: it moves (by any amount) once they commit.
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.PutSchedule(SampleSchedule("a/1")).status());
    AUTOMAN_RETURN_IF_ERROR(tx.PutSchedule(SampleSchedule("a/2")).status());
    return tx.DeleteSchedule("a/1");
  }));
  EXPECT_NE(*Revision(), *r3);
}

TEST_P(StoreScheduleConformanceTest, AdvanceScheduleCursorIsFencedByTheGeneration) {
  ScheduleRecord s = SampleSchedule();
  ASSERT_OK(PutSchedule(s));
  ASSERT_OK(Advance(s.id, 1, At(200)));
  auto read = GetSchedule(s.id);
  ASSERT_OK(read);
  EXPECT_EQ(read->cursor, At(200));
  EXPECT_EQ(read->generation, 1);        // unchanged
  EXPECT_EQ(read->updated_at, At(10));   // a definition time, not the cursor's
  ASSERT_OK(Advance(s.id, 1, At(150)));  // the caller decides where it goes
  EXPECT_EQ(GetSchedule(s.id)->cursor, At(150));

  // The definition changes: a loop that read generation 1 must not move the cursor.
  s.cursor = At(300);
  ASSERT_OK(PutSchedule(s));
  ExpectError(Advance(s.id, 1, At(400)), ErrorCode::kAborted, {s.id, "generation 1", "2"});
  EXPECT_EQ(GetSchedule(s.id)->cursor, At(300));
  ASSERT_OK(Advance(s.id, 2, At(400)));
  EXPECT_EQ(GetSchedule(s.id)->cursor, At(400));

  ASSERT_OK(DeleteSchedule(s.id));
  ExpectError(Advance(s.id, 2, At(500)), ErrorCode::kNotFound, {s.id});
  ExpectError(Advance("never/was", 1, At(500)), ErrorCode::kNotFound, {"never/was"});
}

TEST_P(StoreScheduleConformanceTest, DeleteScheduleKeepsItsLedger) {
  ScheduleRecord s = SampleSchedule();
  ASSERT_OK(PutSchedule(s));
  ASSERT_OK(PutSchedule(SampleSchedule("disk-cleanup/hourly")));
  ASSERT_OK(InsertFire(SampleFire(s.id, 100)));
  ASSERT_OK(InsertFire(SampleFire(s.id, 200, FireStatus::kSkipped)));

  ASSERT_OK(DeleteSchedule(s.id));
  ExpectError(GetSchedule(s.id).status(), ErrorCode::kNotFound);
  EXPECT_EQ(ScheduleIds(*ListSchedules()), std::vector<std::string>{"disk-cleanup/hourly"});
  ExpectError(DeleteSchedule(s.id), ErrorCode::kNotFound, {s.id});
  auto fires = ListFires(s.id);
  ASSERT_OK(fires);
  EXPECT_EQ(NominalSeconds(*fires), (std::vector<int64_t>{200, 100}));
  // No more decisions for a deleted schedule.
  ExpectError(InsertFire(SampleFire(s.id, 300)), ErrorCode::kNotFound, {s.id});

  // Recreated under the same id: a new schedule (generation 1), and the ledger's key is
  // permanent: an occurrence decided before the delete is not decided again.
  auto again = PutSchedule(s);
  ASSERT_OK(again);
  EXPECT_EQ(again->generation, 1);
  ExpectError(InsertFire(SampleFire(s.id, 200)), ErrorCode::kAlreadyExists);
  ASSERT_OK(InsertFire(SampleFire(s.id, 300)));
  EXPECT_EQ(NominalSeconds(*ListFires(s.id)), (std::vector<int64_t>{300, 200, 100}));
}

// ---------------------------------------------------------------------------------------
// The fire ledger

TEST_P(StoreScheduleConformanceTest, FireRowsRoundTrip) {
  ScheduleRecord s = SampleSchedule();
  ASSERT_OK(PutSchedule(s));
  std::vector<FireRecord> fires = {
      SampleFire(s.id, 40, FireStatus::kMissed), SampleFire(s.id, 30, FireStatus::kSkipped),
      SampleFire(s.id, 20, FireStatus::kLate), SampleFire(s.id, 10, FireStatus::kFired)};
  fires[2].generation = 7;
  fires[2].delay = Duration(-3);  // a jittered fire may be enqueued before its due time
  for (auto it = fires.rbegin(); it != fires.rend(); ++it) ASSERT_OK(InsertFire(*it));
  auto read = ListFires(s.id);
  ASSERT_OK(read);
  EXPECT_EQ(*read, fires);
}

TEST_P(StoreScheduleConformanceTest, DuplicateFireIsAlreadyExistsAndTheTransactionGoesOn) {
  ScheduleRecord s = SampleSchedule();
  ASSERT_OK(PutSchedule(s));
  const FireRecord first = SampleFire(s.id, 100);
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.InsertFire(first));
    FireRecord again = SampleFire(s.id, 100, FireStatus::kSkipped);
    Status dup = tx.InsertFire(again);
    ExpectError(dup, ErrorCode::kAlreadyExists, {s.id, "already in the fire ledger"});
    // The transaction is still usable and commits everything else.
    AUTOMAN_RETURN_IF_ERROR(tx.InsertFire(SampleFire(s.id, 200)));
    AUTOMAN_RETURN_IF_ERROR(tx.AdvanceScheduleCursor(s.id, 1, At(200)));
    AUTOMAN_ASSIGN_OR_RETURN(auto inside, tx.ListFires(s.id, std::nullopt, 10));
    EXPECT_EQ(NominalSeconds(inside), (std::vector<int64_t>{200, 100}));
    return Status::Ok();
  }));
  auto fires = ListFires(s.id);
  ASSERT_OK(fires);
  ASSERT_EQ(NominalSeconds(*fires), (std::vector<int64_t>{200, 100}));
  EXPECT_EQ((*fires)[1], first);  // the first decision stands
  EXPECT_EQ(GetSchedule(s.id)->cursor, At(200));

  // In a later transaction too; and the same instant of another schedule is its own.
  ExpectError(InsertFire(SampleFire(s.id, 200, FireStatus::kMissed)), ErrorCode::kAlreadyExists);
  ASSERT_OK(PutSchedule(SampleSchedule("disk-cleanup/other")));
  ASSERT_OK(InsertFire(SampleFire("disk-cleanup/other", 200)));
}

TEST_P(StoreScheduleConformanceTest, FireOfAnUnknownScheduleIsNotFound) {
  ASSERT_OK(PutSchedule(SampleSchedule()));
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    ExpectError(tx.InsertFire(SampleFire("nope/none", 100)), ErrorCode::kNotFound,
                {"schedule nope/none"});
    // Not fatal to the transaction either.
    return tx.InsertFire(SampleFire(SampleSchedule().id, 100));
  }));
  EXPECT_TRUE(ListFires("nope/none")->empty());
  EXPECT_EQ(ListFires(SampleSchedule().id)->size(), 1u);
}

TEST_P(StoreScheduleConformanceTest, ListFiresIsNewestFirstAndPages) {
  const std::string id = SampleSchedule().id;
  ASSERT_OK(PutSchedule(SampleSchedule()));
  ASSERT_OK(PutSchedule(SampleSchedule("disk-cleanup/noise")));
  for (int64_t n : {30, 10, 50, 20, 40}) ASSERT_OK(InsertFire(SampleFire(id, n)));
  for (int64_t n : {25, 60}) ASSERT_OK(InsertFire(SampleFire("disk-cleanup/noise", n)));

  EXPECT_EQ(NominalSeconds(*ListFires(id)), (std::vector<int64_t>{50, 40, 30, 20, 10}));
  EXPECT_EQ(NominalSeconds(*ListFires(id, std::nullopt, 2)), (std::vector<int64_t>{50, 40}));
  EXPECT_EQ(NominalSeconds(*ListFires(id, At(40), 2)), (std::vector<int64_t>{30, 20}));
  EXPECT_EQ(NominalSeconds(*ListFires(id, At(20), 2)), (std::vector<int64_t>{10}));
  EXPECT_TRUE(ListFires(id, At(10), 2)->empty());
  // `before` is exclusive to the microsecond.
  EXPECT_EQ(NominalSeconds(*ListFires(id, At(30) + Duration(1), 1)), (std::vector<int64_t>{30}));
  EXPECT_TRUE(ListFires("disk-cleanup/unknown")->empty());
}

TEST_P(StoreScheduleConformanceTest, WithdrawFiresDeletesOnlyRowsNotYetDue) {
  const std::string id = SampleSchedule().id;
  ASSERT_OK(PutSchedule(SampleSchedule()));
  ASSERT_OK(PutSchedule(SampleSchedule("disk-cleanup/noise")));
  // SampleFire's due is nominal - 5 s.
  for (int64_t n : {10, 20, 30, 40}) ASSERT_OK(InsertFire(SampleFire(id, n)));
  ASSERT_OK(InsertFire(SampleFire("disk-cleanup/noise", 40)));
  std::vector<FireRecord> withdrawn;
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(withdrawn, tx.WithdrawFires(id, At(25)));  // due 25 stays
    return Status::Ok();
  }));
  std::sort(withdrawn.begin(), withdrawn.end(),
            [](const FireRecord& a, const FireRecord& b) { return a.nominal < b.nominal; });
  EXPECT_EQ(NominalSeconds(withdrawn), (std::vector<int64_t>{40}));
  ASSERT_EQ(withdrawn.size(), 1u);
  EXPECT_EQ(withdrawn[0], SampleFire(id, 40));
  EXPECT_EQ(NominalSeconds(*ListFires(id)), (std::vector<int64_t>{30, 20, 10}));
  EXPECT_EQ(NominalSeconds(*ListFires("disk-cleanup/noise")), (std::vector<int64_t>{40}));
  // The occurrence can be decided again.
  ASSERT_OK(InsertFire(SampleFire(id, 40)));
  ASSERT_OK(Read([&](StoreTx& tx) -> Status {
    ExpectError(tx.WithdrawFires(id, At(0)).status(), ErrorCode::kFailedPrecondition,
                {"WithdrawFires"});
    return Status::Ok();
  }));
}

// ---------------------------------------------------------------------------------------
// ListActiveRuns

TEST_P(StoreScheduleConformanceTest, ListActiveRunsFiltersAndOrdersOldestFirst) {
  RunbookVersion v = SampleVersion();
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  const std::string by = "disk-cleanup/nightly";
  auto run = [&](const std::string& id, int64_t created, RunStatus status,
                 Trigger trigger = Trigger::kSchedule, const std::string& triggered_by = "") {
    Run r = SampleRun(v);
    r.id = id;
    r.created_at = At(created);
    r.status = status;
    r.trigger = trigger;
    r.triggered_by = triggered_by.empty() ? by : triggered_by;
    return r;
  };
  // Ids deliberately not in creation order; equal instants go by id.
  const std::vector<Run> runs = {
      run("run-c", 1, RunStatus::kPending),
      run("run-a", 2, RunStatus::kRunning),
      run("run-b", 3, RunStatus::kWaiting),
      run("run-e", 5, RunStatus::kPending),
      run("run-d", 5, RunStatus::kPending),
      run("run-done", 0, RunStatus::kSuccess),
      run("run-dead", 0, RunStatus::kDead),
      run("run-cancelled", 0, RunStatus::kCancelled),
      run("run-other-schedule", 0, RunStatus::kPending, Trigger::kSchedule, "disk-cleanup/hourly"),
      run("run-manual", 0, RunStatus::kRunning, Trigger::kManual),
  };
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    for (const Run& r : runs) AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
    return Status::Ok();
  }));

  EXPECT_EQ(*ActiveRunIds(Trigger::kSchedule, by),
            (std::vector<std::string>{"run-c", "run-a", "run-b", "run-d", "run-e"}));
  EXPECT_EQ(*ActiveRunIds(Trigger::kSchedule, by, 2), (std::vector<std::string>{"run-c", "run-a"}));
  EXPECT_EQ(*ActiveRunIds(Trigger::kManual, by), std::vector<std::string>{"run-manual"});
  EXPECT_EQ(*ActiveRunIds(Trigger::kSchedule, "disk-cleanup/hourly"),
            std::vector<std::string>{"run-other-schedule"});
  EXPECT_TRUE(ActiveRunIds(Trigger::kSchedule, "disk-cleanup/none")->empty());
  EXPECT_TRUE(ActiveRunIds(Trigger::kApi, by)->empty());

  // A run that finishes leaves the list.
  Run finished = runs[1];
  finished.status = RunStatus::kFailed;
  finished.finished_at = At(9);
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRun(finished); }));
  EXPECT_EQ(*ActiveRunIds(Trigger::kSchedule, by),
            (std::vector<std::string>{"run-c", "run-b", "run-d", "run-e"}));
}

// ---------------------------------------------------------------------------------------
// Validation and read transactions

TEST_P(StoreScheduleConformanceTest, MalformedSchedulesAndFiresAreInvalidArgument) {
  auto with = [](auto change) {
    ScheduleRecord s = SampleSchedule();
    change(s);
    return s;
  };
  auto revision = Revision();
  ASSERT_OK(revision);
  ExpectError(PutSchedule(with([](ScheduleRecord& s) { s.id.clear(); })).status(),
              ErrorCode::kInvalidArgument, {"schedule id is empty"});
  ExpectError(PutSchedule(with([](ScheduleRecord& s) { s.id = std::string(201, 'x'); })).status(),
              ErrorCode::kInvalidArgument, {"201 bytes"});
  ExpectError(PutSchedule(with([](ScheduleRecord& s) { s.runbook_id.clear(); })).status(),
              ErrorCode::kInvalidArgument, {"no runbook id"});
  ExpectError(PutSchedule(with([](ScheduleRecord& s) { s.spec_json.clear(); })).status(),
              ErrorCode::kInvalidArgument, {"spec_json"});
  EXPECT_TRUE(ListSchedules()->empty());
  EXPECT_EQ(*Revision(), *revision);  // nothing was written, not even the counter

  // The longest id is fine, everywhere.
  const std::string longest = "rb/" + std::string(197, 'y');
  ASSERT_OK(PutSchedule(with([&](ScheduleRecord& s) { s.id = longest; })));
  ASSERT_OK(GetSchedule(longest));
  ASSERT_OK(InsertFire(SampleFire(longest, 1)));
  ASSERT_OK(Advance(longest, 1, At(5)));

  const std::string too_long(201, 'z');
  for (const std::string& bad : {std::string(), too_long}) {
    ExpectError(GetSchedule(bad).status(), ErrorCode::kInvalidArgument);
    ExpectError(DeleteSchedule(bad), ErrorCode::kInvalidArgument);
    ExpectError(Advance(bad, 1, At(1)), ErrorCode::kInvalidArgument);
    ExpectError(InsertFire(SampleFire(bad, 1)), ErrorCode::kInvalidArgument);
    ExpectError(ListFires(bad).status(), ErrorCode::kInvalidArgument);
  }
  ExpectError(ListFires(longest, std::nullopt, 0).status(), ErrorCode::kInvalidArgument,
              {"limit 0", "1..10000"});
  ExpectError(ListFires(longest, std::nullopt, 10001).status(), ErrorCode::kInvalidArgument);
  ASSERT_OK(ListFires(longest, std::nullopt, 10000));
  ExpectError(ActiveRunIds(Trigger::kSchedule, longest, 0).status(), ErrorCode::kInvalidArgument,
              {"limit 0", "1..1000"});
  ExpectError(ActiveRunIds(Trigger::kSchedule, longest, 1001).status(),
              ErrorCode::kInvalidArgument);
  ASSERT_OK(ActiveRunIds(Trigger::kSchedule, longest, 1000));
}

TEST_P(StoreScheduleConformanceTest, ReadTransactionsRefuseScheduleWrites) {
  ScheduleRecord s = SampleSchedule();
  ASSERT_OK(PutSchedule(s));
  ASSERT_OK(InsertFire(SampleFire(s.id, 1)));
  ASSERT_OK(Read([&](StoreTx& tx) -> Status {
    ExpectError(tx.PutSchedule(SampleSchedule("rb/new")).status(), ErrorCode::kFailedPrecondition,
                {"PutSchedule", "read transaction"});
    ExpectError(tx.DeleteSchedule(s.id), ErrorCode::kFailedPrecondition, {"DeleteSchedule"});
    ExpectError(tx.AdvanceScheduleCursor(s.id, 1, At(900)), ErrorCode::kFailedPrecondition,
                {"AdvanceScheduleCursor"});
    ExpectError(tx.InsertFire(SampleFire(s.id, 2)), ErrorCode::kFailedPrecondition, {"InsertFire"});
    // Reads work.
    AUTOMAN_RETURN_IF_ERROR(tx.GetSchedule(s.id).status());
    AUTOMAN_RETURN_IF_ERROR(tx.ListSchedules().status());
    AUTOMAN_RETURN_IF_ERROR(tx.SchedulesRevision().status());
    AUTOMAN_RETURN_IF_ERROR(tx.ListFires(s.id, std::nullopt, 10).status());
    return tx.ListActiveRuns(Trigger::kSchedule, s.id, 10).status();
  }));
  EXPECT_EQ(GetSchedule(s.id)->cursor, s.cursor);
  EXPECT_EQ(ListFires(s.id)->size(), 1u);
  ExpectError(GetSchedule("rb/new").status(), ErrorCode::kNotFound);
}

TEST_P(StoreScheduleConformanceTest, FireStatusNames) {
  for (FireStatus st :
       {FireStatus::kFired, FireStatus::kLate, FireStatus::kSkipped, FireStatus::kMissed}) {
    EXPECT_EQ(ParseFireStatus(ToString(st)), st) << ToString(st);
  }
  EXPECT_EQ(ToString(FireStatus::kLate), "late");
  EXPECT_EQ(ParseFireStatus("FIRED"), std::nullopt);
  EXPECT_EQ(ParseFireStatus(""), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// Leadership

TEST_P(StoreScheduleConformanceTest, TryLeadNamesAreValidated) {
  for (const std::string& bad :
       {std::string(), std::string("Scheduler"), std::string("1st"), std::string("-x"),
        std::string("_x"), std::string("a/b"), std::string("../etc"), std::string("a b"),
        std::string("a.b"), std::string("sch\xC3\xA9"), std::string(65, 'a')}) {
    ExpectError(store_->TryLead(bad).status(), ErrorCode::kInvalidArgument, {"leadership name"});
  }
  for (const std::string& good : {std::string("scheduler"), std::string("a"), std::string("a_b-9"),
                                  "a" + std::string(63, 'z')}) {
    auto lead = store_->TryLead(good);
    ASSERT_OK(lead);
    EXPECT_NE(*lead, nullptr) << good;
  }
}

// Two TryLead calls on one Store exclude each other (SQLite: each opens the lock file
// anew, and flock locks belong to the open file description, not the process).
TEST_P(StoreScheduleConformanceTest, TryLeadExcludesWithinOneStore) {
  auto first = store_->TryLead("scheduler");
  ASSERT_OK(first);
  ASSERT_NE(*first, nullptr);
  EXPECT_TRUE((*first)->Held());
  EXPECT_FALSE(Leads(*store_, "scheduler"));
  EXPECT_FALSE(Leads(*store_, "scheduler"));  // a refused try leaves nothing behind

  auto other = store_->TryLead("janitor");  // names are independent
  ASSERT_OK(other);
  EXPECT_NE(*other, nullptr);

  first->reset();
  auto next = LeadWithin(*store_, "scheduler", milliseconds(10000));
  ASSERT_NE(next, nullptr);
  EXPECT_TRUE(next->Held());
  EXPECT_FALSE(Leads(*store_, "scheduler"));
}

TEST_P(StoreScheduleConformanceTest, TryLeadExcludesAnotherStoreOnTheSameData) {
  std::unique_ptr<Store> second = OpenSecond();
  if (HasFailure()) return;
  if (second == nullptr) GTEST_SKIP() << "this backend's data cannot be shared by two stores";

  auto mine = store_->TryLead("scheduler");
  ASSERT_OK(mine);
  ASSERT_NE(*mine, nullptr);
  EXPECT_FALSE(Leads(*second, "scheduler"));
  auto theirs_other = second->TryLead("janitor");
  ASSERT_OK(theirs_other);
  EXPECT_NE(*theirs_other, nullptr);
  EXPECT_FALSE(Leads(*store_, "janitor"));

  mine->reset();
  auto theirs = LeadWithin(*second, "scheduler", milliseconds(10000));
  ASSERT_NE(theirs, nullptr);
  EXPECT_TRUE(theirs->Held());
  EXPECT_FALSE(Leads(*store_, "scheduler"));

  // The data of another test (a fresh store) has its own leadership.
  auto fresh = GetParam().open();
  ASSERT_OK(fresh);
  EXPECT_TRUE(Leads(**fresh, "scheduler"));
}

// Not a test of its own: the body of a leader child process. Opens the store at
// $AUTOMAN_STORE_LEAD_CHILD_URL, tries to lead "scheduler", reports "held" or "not held"
// on the pipe and then waits to be killed.
class StoreLeaderChildTest : public StoreTest {};

TEST_F(StoreLeaderChildTest, Holder) {
  const char* url = std::getenv(std::string(kLeadChildEnv).c_str());
  if (url == nullptr) GTEST_SKIP() << "helper: runs only as a child process of the lead tests";
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test that started it
  auto store = Store::Open({.url = url});
  ASSERT_OK(store);
  auto lead = (*store)->TryLead("scheduler");
  ASSERT_OK(lead);
  const std::string line = *lead != nullptr ? "held\n" : "not held\n";
  ASSERT_EQ(write(kWriterChildFd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  std::this_thread::sleep_for(std::chrono::minutes(2));  // the parent kills it long before
}

TEST_P(StoreScheduleConformanceTest, TryLeadIsReleasedWhenTheHolderIsKilled) {
  if (!GetParam().url_of) GTEST_SKIP() << "this backend's data cannot be shared by processes";
  WriterChild child =
      WriterChild::Spawn("StoreLeaderChildTest.Holder",
                         {std::string(kLeadChildEnv) + "=" + GetParam().url_of(*store_)});
  std::string line;
  ASSERT_TRUE(child.Next(&line)) << "the child reported nothing";
  ASSERT_EQ(line, "held");
  EXPECT_FALSE(Leads(*store_, "scheduler"));

  child.Kill();
  const int status = child.Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // PostgreSQL releases the lock when the dead client's backend notices the closed socket.
  auto mine = LeadWithin(*store_, "scheduler", milliseconds(30000));
  ASSERT_NE(mine, nullptr) << "the killed holder's lock was never released";
  EXPECT_TRUE(mine->Held());
}

}  // namespace
}  // namespace automan::testing
