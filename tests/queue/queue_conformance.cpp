// The queue's conformance suite (queue_conformance.h): Queue end to end on a real store,
// with a SimulatedClock. Each test names the clause of src/queue/queue.h it checks.
#include "queue_conformance.h"

#include <gmock/gmock.h>

#include <algorithm>
#include <map>
#include <set>

#include "auth/crypto.h"
#include "common/ids.h"
#include "secrets/param_sealer.h"

namespace automan::testing {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

QueueOptions QueueConformanceTest::DefaultOptions() {
  QueueOptions o;
  o.lease = milliseconds(30'000);
  return o;
}

void QueueConformanceTest::SetUp() {
  auto store = GetParam().open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  store_ = std::move(store).value();
  queue_ = std::make_unique<Queue>(*store_, clock_, DefaultOptions());
  plain_ = ParseOrFail("id: plain\nsteps:\n  - id: s\n    shell: \"true\"\n");
  other_ = ParseOrFail("id: other\nsteps:\n  - id: s\n    shell: \"true\"\n");
  retrying_ = ParseOrFail(R"(id: retrying
retries: {count: 2, backoff: fixed, delay: 10s, no_retry_exit_codes: [75]}
steps:
  - id: s
    shell: exit 1
)");
}

void QueueConformanceTest::Reopen(QueueOptions options) {
  queue_ = std::make_unique<Queue>(*store_, clock_, options);
}

EnqueueRequest QueueConformanceTest::Req(const Runbook& rb, int priority) {
  EnqueueRequest r;
  r.runbook = &rb;
  r.triggered_by = "test";
  r.priority = priority;
  return r;
}

QueueConformanceTest::Run QueueConformanceTest::Enq(const EnqueueRequest& r) {
  auto e = queue_->Enqueue(r);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? e->run : Run{};
}

std::vector<QueueConformanceTest::Run> QueueConformanceTest::Claim(const std::string& owner,
                                                                   int max) {
  auto c = queue_->Claim(owner, max);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : std::vector<Run>{};
}

std::vector<std::string> QueueConformanceTest::ClaimIds(const std::string& owner, int max) {
  std::vector<std::string> ids;
  for (const Run& r : Claim(owner, max)) ids.push_back(r.id);
  return ids;
}

QueueConformanceTest::Run QueueConformanceTest::ClaimOne(const std::string& id,
                                                         const std::string& owner) {
  std::vector<Run> got = Claim(owner, 1000);
  EXPECT_EQ(got.size(), 1u);
  if (got.size() != 1) return Run{};
  EXPECT_EQ(got[0].id, id);
  return got[0];
}

Result<QueueConformanceTest::Run> QueueConformanceTest::Get(const std::string& id) {
  Run out;
  AUTOMAN_RETURN_IF_ERROR(store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.GetRun(id));
    return Status::Ok();
  }));
  return out;
}

QueueConformanceTest::Run QueueConformanceTest::MustGet(const std::string& id) {
  auto r = Get(id);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Run{};
}

std::vector<Attempt> QueueConformanceTest::Attempts(const std::string& id) {
  std::vector<Attempt> out;
  Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListAttempts(id));
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

std::vector<QueueConformanceTest::Run> QueueConformanceTest::AllRuns() {
  std::vector<Run> out;
  Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    RunFilter f;
    f.limit = 1000;
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListRuns(f));
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

std::map<RunStatus, int64_t> QueueConformanceTest::Counts() {
  std::map<RunStatus, int64_t> out;
  Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.CountRunsByStatus());
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

Result<HeartbeatResult> QueueConformanceTest::Beat(const Run& run) {
  LeaseRef l{run.id, run.fence};
  return queue_->Heartbeat({&l, 1});
}

namespace {

AttemptOutcome Outcome(RunStatus status, std::string error = "",
                       std::optional<int> exit_code = std::nullopt) {
  AttemptOutcome o;
  o.status = status;
  o.error = std::move(error);
  o.exit_code = exit_code;
  return o;
}

std::vector<std::string> Ids(const std::vector<Run>& runs) {
  std::vector<std::string> out;
  for (const Run& r : runs) out.push_back(r.id);
  return out;
}

int64_t Total(const std::map<RunStatus, int64_t>& counts) {
  int64_t n = 0;
  for (const auto& [status, count] : counts) n += count;
  return n;
}

// A runbook with `concurrency:` set from YAML text.
Runbook Keyed(const std::string& id, const std::string& concurrency) {
  return ParseOrFail("id: " + id + "\nconcurrency: " + concurrency +
                     "\nsteps:\n  - id: s\n    shell: \"true\"\n");
}

// ---------------------------------------------------------------------------------------
// Enqueue

TEST_P(QueueConformanceTest, EnqueueStoresTheRunWithItsExactRunbookVersion) {
  Runbook rb = Keyed("keyed", "[{key: web, limit: 2}, {key: sms, rate: 10/1m}]");
  EnqueueRequest r = Req(rb, 7);
  r.params = {{"service", {"string", "web"}}, {"count", {"int", "3"}}};
  r.trigger = Trigger::kApi;
  r.triggered_by = "alice";
  r.not_before = clock_.Now() + seconds(5);
  r.deadline_at = clock_.Now() + seconds(3600);
  r.idempotency_key = "deploy-1";
  r.max_attempts = 5;
  auto e = queue_->Enqueue(r);
  ASSERT_OK(e);
  EXPECT_TRUE(e->created);
  const Run& run = e->run;
  EXPECT_EQ(run.status, RunStatus::kPending);
  EXPECT_EQ(run.runbook_id, "keyed");
  EXPECT_EQ(run.runbook_version, rb.version);
  EXPECT_EQ(run.priority, 7);
  EXPECT_EQ(run.params, r.params);
  EXPECT_EQ(run.trigger, Trigger::kApi);
  EXPECT_EQ(run.triggered_by, "alice");
  EXPECT_EQ(run.not_before, r.not_before);
  EXPECT_EQ(run.deadline_at, r.deadline_at);
  EXPECT_EQ(run.idempotency_key, "deploy-1");
  EXPECT_EQ(run.max_attempts, 5);
  EXPECT_EQ(run.attempt, 0);
  EXPECT_EQ(run.created_at, clock_.Now());
  EXPECT_EQ(run.concurrency.size(), 2u);
  EXPECT_TRUE(run.lease_owner.empty());
  EXPECT_FALSE(run.lease_expires_at.has_value());
  EXPECT_FALSE(run.started_at.has_value());
  EXPECT_TRUE(IsValidId(run.id)) << run.id;
  // What Enqueue returned is what was committed.
  auto stored = Get(run.id);
  ASSERT_OK(stored);
  std::vector<ConcurrencyLimit> keys = stored->concurrency;
  EXPECT_THAT(keys, UnorderedElementsAre(rb.concurrency[0], rb.concurrency[1]));
  Run expected = run;
  expected.concurrency = stored->concurrency;  // the store may order the keys
  EXPECT_EQ(*stored, expected);
  // The exact YAML it will execute, stored by content hash.
  RunbookVersion v;
  ASSERT_OK(store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(v, tx.GetRunbookVersion(run.runbook_version));
    return Status::Ok();
  }));
  EXPECT_EQ(v.yaml, rb.yaml);
  EXPECT_EQ(v.runbook_id, "keyed");
  // A second run of the same version stores the version once and is a separate run.
  Run second = Enq(rb);
  EXPECT_NE(second.id, run.id);
  EXPECT_EQ(second.runbook_version, run.runbook_version);
}

TEST_P(QueueConformanceTest, MaxAttemptsIsOnePlusRetriesAndAtLeastTheMinimum) {
  EXPECT_EQ(Enq(plain_).max_attempts, 3);     // no retries: the minimum
  EXPECT_EQ(Enq(retrying_).max_attempts, 3);  // 1 + 2
  Runbook many = ParseOrFail(
      "id: many\nretries: {count: 5, delay: 1s}\nsteps:\n  - id: s\n    shell: \"true\"\n");
  EXPECT_EQ(Enq(many).max_attempts, 6);
  EnqueueRequest r = Req(plain_);
  r.max_attempts = 1;  // an explicit budget wins
  EXPECT_EQ(Enq(r).max_attempts, 1);
  QueueOptions o = DefaultOptions();
  o.min_attempts = 1;
  Reopen(o);
  EXPECT_EQ(Enq(plain_).max_attempts, 1);
  EXPECT_EQ(Enq(many).max_attempts, 6);
}

TEST_P(QueueConformanceTest, EnqueueRefusesBadFieldsAndStoresNothing) {
  auto expect_invalid = [&](EnqueueRequest r, std::string_view word) {
    auto e = queue_->Enqueue(r);
    ASSERT_FALSE(e.ok());
    ExpectError(e.status(), ErrorCode::kInvalidArgument, {word});
  };
  EnqueueRequest none = Req(plain_);
  none.runbook = nullptr;
  expect_invalid(none, "runbook");
  expect_invalid(Req(plain_, 1001), "priority");
  expect_invalid(Req(plain_, -1001), "priority");
  EnqueueRequest key = Req(plain_);
  key.idempotency_key = "";
  expect_invalid(key, "idempotency key");
  key.idempotency_key = std::string(201, 'k');
  expect_invalid(key, "idempotency key");
  EnqueueRequest attempts = Req(plain_);
  attempts.max_attempts = 0;
  expect_invalid(attempts, "max attempts");
  attempts.max_attempts = 1001;
  expect_invalid(attempts, "max attempts");
  EnqueueRequest secret = Req(plain_);
  secret.params = {{"token", {"secret", "hunter2"}}};
  auto unsealed = queue_->Enqueue(secret);  // this queue has no sealer
  ASSERT_FALSE(unsealed.ok());
  ExpectError(unsealed.status(), ErrorCode::kFailedPrecondition, {"token", "secret", "key"});
  EXPECT_EQ(Total(Counts()), 0);
  // The limits themselves are fine.
  Enq(Req(plain_, 1000));
  Enq(Req(plain_, -1000));
  key.idempotency_key = std::string(200, 'k');
  Enq(key);
  EXPECT_EQ(Total(Counts()), 3);
}

TEST_P(QueueConformanceTest, EnqueueManyIsAllOrNothing) {
  std::vector<EnqueueRequest> bad = {Req(plain_, 1), Req(other_, 2), Req(plain_, 5000)};
  auto e = queue_->EnqueueMany(bad);
  ASSERT_FALSE(e.ok());
  ExpectError(e.status(), ErrorCode::kInvalidArgument, {"priority"});
  EXPECT_EQ(Total(Counts()), 0);
  EXPECT_THAT(AllRuns(), IsEmpty());

  std::vector<EnqueueRequest> good = {Req(plain_, 1), Req(other_, 2), Req(plain_, 3)};
  auto ok = queue_->EnqueueMany(good);
  ASSERT_OK(ok);
  ASSERT_EQ(ok->size(), 3u);
  for (size_t i = 0; i < ok->size(); ++i) {
    EXPECT_TRUE((*ok)[i].created);
    EXPECT_EQ((*ok)[i].run.priority, good[i].priority);
    EXPECT_EQ(MustGet((*ok)[i].run.id).status, RunStatus::kPending);
  }
  EXPECT_EQ(Counts()[RunStatus::kPending], 3);
}

TEST_P(QueueConformanceTest, EnqueueWakesThisProcesssListener) {
  auto listener = queue_->Listener();
  ASSERT_OK(listener);
  (void)(*listener)->Wait(milliseconds(0));  // drop anything pending
  EXPECT_FALSE((*listener)->Wait(milliseconds(0)));
  Enq(plain_);
  EXPECT_TRUE((*listener)->Wait(milliseconds(2000)));
}

// ---------------------------------------------------------------------------------------
// Claim order and delays

TEST_P(QueueConformanceTest, ClaimsHighestPriorityFirstThenFifo) {
  // Same instant for every enqueue: the order comes from the queue, not from timestamps.
  std::vector<std::string> ids;
  for (int p : {0, 5, 0, 5, -3, 0}) ids.push_back(Enq(plain_, p).id);
  // One at a time...
  EXPECT_THAT(ClaimIds("w1", 1), ElementsAre(ids[1]));
  EXPECT_THAT(ClaimIds("w1", 1), ElementsAre(ids[3]));
  // ...and in a batch, best first.
  EXPECT_THAT(ClaimIds("w2", 2), ElementsAre(ids[0], ids[2]));
  std::string late = Enq(plain_, 1).id;  // jumps ahead of the rest
  EXPECT_THAT(ClaimIds("w2", 10), ElementsAre(late, ids[5], ids[4]));
  EXPECT_THAT(ClaimIds("w2", 10), IsEmpty());
}

TEST_P(QueueConformanceTest, DelayedRunIsNotClaimedBeforeNotBefore) {
  EnqueueRequest r = Req(plain_, 100);
  r.not_before = clock_.Now() + seconds(10);
  std::string delayed = Enq(r).id;
  std::string now_run = Enq(plain_, 0).id;
  // The delayed run's high priority does not hold back the run behind it.
  EXPECT_THAT(ClaimIds("w1"), ElementsAre(now_run));
  clock_.Advance(milliseconds(9'999));
  EXPECT_THAT(ClaimIds("w1"), IsEmpty());
  clock_.Advance(milliseconds(1));
  EXPECT_THAT(ClaimIds("w1"), ElementsAre(delayed));
}

// ---------------------------------------------------------------------------------------
// Idempotency

TEST_P(QueueConformanceTest, IdempotencyKeyReturnsTheSameRunWithinTheWindow) {
  EnqueueRequest r = Req(plain_);
  r.idempotency_key = "deploy-2026-11-22";
  auto first = queue_->Enqueue(r);
  ASSERT_OK(first);
  EXPECT_TRUE(first->created);
  clock_.Advance(seconds(3600));
  r.priority = 9;  // a different request with the same key still returns the first run
  auto again = queue_->Enqueue(r);
  ASSERT_OK(again);
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->run.id, first->run.id);
  EXPECT_EQ(again->run.priority, 0);
  // Even once the run finished.
  Run claimed = ClaimOne(first->run.id);
  ASSERT_OK(queue_->Finish(claimed, Outcome(RunStatus::kSuccess), std::nullopt));
  auto third = queue_->Enqueue(r);
  ASSERT_OK(third);
  EXPECT_FALSE(third->created);
  EXPECT_EQ(third->run.id, first->run.id);
  EXPECT_EQ(third->run.status, RunStatus::kSuccess);
  // In a batch too; another key is a new run.
  EnqueueRequest other = Req(plain_);
  other.idempotency_key = "deploy-2026-11-23";
  std::vector<EnqueueRequest> batch = {r, other};
  auto many = queue_->EnqueueMany(batch);
  ASSERT_OK(many);
  EXPECT_FALSE((*many)[0].created);
  EXPECT_EQ((*many)[0].run.id, first->run.id);
  EXPECT_TRUE((*many)[1].created);
  EXPECT_EQ(Total(Counts()), 2);
}

TEST_P(QueueConformanceTest, IdempotencyKeyMakesANewRunAfterTheWindow) {
  QueueOptions o = DefaultOptions();
  o.idempotency_window = milliseconds(60'000);
  Reopen(o);
  EnqueueRequest r = Req(plain_);
  r.idempotency_key = "k";
  Run first = Enq(r);
  clock_.Advance(seconds(60));  // exactly the window: still the same run
  auto same = queue_->Enqueue(r);
  ASSERT_OK(same);
  EXPECT_FALSE(same->created);
  EXPECT_EQ(same->run.id, first.id);
  clock_.Advance(milliseconds(1));
  auto fresh = queue_->Enqueue(r);
  ASSERT_OK(fresh);
  EXPECT_TRUE(fresh->created);
  EXPECT_NE(fresh->run.id, first.id);
  // From now on the key names the new run.
  auto again = queue_->Enqueue(r);
  ASSERT_OK(again);
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->run.id, fresh->run.id);
  EXPECT_EQ(Total(Counts()), 2);
}

// ---------------------------------------------------------------------------------------
// Claim

TEST_P(QueueConformanceTest, ClaimSetsRunningLeaseAttemptFenceAndRecordsTheAttempt) {
  Run pending = Enq(plain_);
  clock_.Advance(seconds(2));
  std::vector<Run> got = Claim("worker:a", 5);
  ASSERT_EQ(got.size(), 1u);
  const Run& run = got[0];
  EXPECT_EQ(run.id, pending.id);
  EXPECT_EQ(run.status, RunStatus::kRunning);
  EXPECT_EQ(run.lease_owner, "worker:a");
  EXPECT_EQ(run.lease_expires_at, clock_.Now() + seconds(30));
  EXPECT_EQ(run.attempt, 1);
  EXPECT_GT(run.fence, pending.fence);
  EXPECT_EQ(run.started_at, clock_.Now());
  EXPECT_EQ(MustGet(run.id), run);
  EXPECT_THAT(Attempts(run.id), ElementsAre(Attempt{.run_id = run.id,
                                                    .number = 1,
                                                    .status = RunStatus::kRunning,
                                                    .worker = "worker:a",
                                                    .started_at = clock_.Now()}));
  // A claimed run is not claimable again.
  EXPECT_THAT(ClaimIds("worker:b"), IsEmpty());
}

TEST_P(QueueConformanceTest, ClaimRefusesABadBatchSize) {
  Enq(plain_);
  for (int max : {0, -1, 1001}) {
    auto c = queue_->Claim("w", max);
    ASSERT_FALSE(c.ok()) << max;
    ExpectError(c.status(), ErrorCode::kInvalidArgument, {"claim batch"});
  }
  EXPECT_EQ(Counts()[RunStatus::kPending], 1);
}

TEST_P(QueueConformanceTest, EnqueueClaimedEnqueuesAndClaimsInOneTransaction) {
  Runbook lock = Keyed("locked", "{key: db, limit: 1}");
  auto run = queue_->EnqueueClaimed(Req(lock), "exec:host:1");
  ASSERT_OK(run);
  EXPECT_EQ(run->status, RunStatus::kRunning);
  EXPECT_EQ(run->attempt, 1);
  EXPECT_EQ(run->lease_owner, "exec:host:1");
  EXPECT_EQ(MustGet(run->id), *run);
  EXPECT_EQ(Attempts(run->id).size(), 1u);
  // The key is held: a second one is refused and nothing is left behind.
  auto refused = queue_->EnqueueClaimed(Req(lock), "exec:host:2");
  ASSERT_FALSE(refused.ok());
  ExpectError(refused.status(), ErrorCode::kResourceExhausted, {"db"});
  EXPECT_EQ(Total(Counts()), 1);
  // An idempotency key that names an existing run is refused too.
  EnqueueRequest keyed = Req(plain_);
  keyed.idempotency_key = "once";
  ASSERT_OK(queue_->EnqueueClaimed(keyed, "exec:host:3"));
  auto dup = queue_->EnqueueClaimed(keyed, "exec:host:4");
  ASSERT_FALSE(dup.ok());
  ExpectError(dup.status(), ErrorCode::kAlreadyExists, {"once"});
  EXPECT_EQ(Total(Counts()), 2);
}

// ---------------------------------------------------------------------------------------
// Fencing

TEST_P(QueueConformanceTest, StaleFenceWritesAreRefusedAfterARescue) {
  Run pending = Enq(plain_);
  Run old = ClaimOne(pending.id, "w1");
  clock_.Advance(seconds(31));  // w1 paused past its lease
  auto moved = queue_->Rescue();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 1);
  Run current = ClaimOne(pending.id, "w2");
  EXPECT_EQ(current.attempt, 2);
  EXPECT_GT(current.fence, old.fence);

  // Every write of w1's attempt is refused and changes nothing.
  Run stale = old;
  stale.error = "w1 woke up";
  ExpectError(
      store_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.UpdateRun(stale); }),
      ErrorCode::kAborted);
  ExpectError(store_->Transact(Store::TxMode::kWrite,
                               [&](StoreTx& tx) { return tx.CheckFence(old.id, old.fence); }),
              ErrorCode::kAborted);
  LogLine line;
  line.run_id = old.id;
  line.attempt = old.attempt;
  line.step_id = "s";
  line.seq = 1;
  line.ts = clock_.Now();
  line.text = "from the past";
  ExpectError(store_->Transact(Store::TxMode::kWriteProgress,
                               [&](StoreTx& tx) -> Status {
                                 AUTOMAN_RETURN_IF_ERROR(tx.CheckFence(old.id, old.fence));
                                 std::vector<LogLine> lines = {line};
                                 return tx.AppendLogLines(lines);
                               }),
              ErrorCode::kAborted);
  auto finish = queue_->Finish(old, Outcome(RunStatus::kSuccess), std::nullopt);
  ASSERT_FALSE(finish.ok());
  ExpectError(finish.status(), ErrorCode::kAborted);
  auto beat = Beat(old);
  ASSERT_OK(beat);
  EXPECT_THAT(beat->lost, ElementsAre(old.id));
  EXPECT_EQ(MustGet(old.id), current);
  std::vector<LogLine> lines;
  ASSERT_OK(store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(lines, tx.ReadLogLines({.run_id = old.id}));
    return Status::Ok();
  }));
  EXPECT_THAT(lines, IsEmpty());
  // The rescue recorded w1's attempt as lost; w2's attempt is running.
  auto attempts = Attempts(old.id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].status, RunStatus::kFailed);
  EXPECT_EQ(attempts[0].worker, "w1");
  EXPECT_THAT(attempts[0].error, HasSubstr("lost"));
  EXPECT_EQ(attempts[1].status, RunStatus::kRunning);
  EXPECT_EQ(attempts[1].worker, "w2");
  // The current owner's writes go through.
  auto done = queue_->Finish(current, Outcome(RunStatus::kSuccess), std::nullopt);
  ASSERT_OK(done);
  EXPECT_EQ(MustGet(old.id).status, RunStatus::kSuccess);
}

// ---------------------------------------------------------------------------------------
// Heartbeat

TEST_P(QueueConformanceTest, HeartbeatRenewsTheLease) {
  Run run = ClaimOne(Enq(plain_).id);
  clock_.Advance(seconds(20));
  auto beat = Beat(run);
  ASSERT_OK(beat);
  EXPECT_THAT(beat->lost, IsEmpty());
  EXPECT_THAT(beat->cancel_requested, IsEmpty());
  EXPECT_EQ(MustGet(run.id).lease_expires_at, clock_.Now() + seconds(30));
  clock_.Advance(seconds(20));  // 40 s after the claim, 20 s after the renewal
  auto moved = queue_->Rescue();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 0);
  EXPECT_EQ(MustGet(run.id).status, RunStatus::kRunning);
  // Without another renewal the lease runs out.
  clock_.Advance(seconds(11));
  moved = queue_->Rescue();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 1);
  EXPECT_EQ(MustGet(run.id).status, RunStatus::kPending);
  // Nothing to renew is fine.
  auto none = queue_->Heartbeat({});
  ASSERT_OK(none);
  EXPECT_THAT(none->lost, IsEmpty());
}

TEST_P(QueueConformanceTest, HeartbeatReportsLostLeasesAndCancelRequests) {
  Run a = ClaimOne(Enq(plain_).id);
  Run b = ClaimOne(Enq(plain_).id);
  ASSERT_OK(queue_->Cancel(b.id));
  LeaseRef gone{"0190a4d2-7f6e-7000-8000-000000000000", 1};
  LeaseRef stale{a.id, a.fence - 1};
  std::vector<LeaseRef> leases = {{a.id, a.fence}, {b.id, b.fence}, gone, stale};
  auto beat = queue_->Heartbeat(leases);
  ASSERT_OK(beat);
  EXPECT_THAT(beat->cancel_requested, ElementsAre(b.id));
  EXPECT_THAT(beat->lost, UnorderedElementsAre(gone.run_id, a.id));  // a's stale ref
  // The valid leases were renewed in the same call.
  EXPECT_EQ(MustGet(a.id).lease_expires_at, clock_.Now() + seconds(30));
}

// ---------------------------------------------------------------------------------------
// Cooldown

TEST_P(QueueConformanceTest, CooldownRefusesNewRunsUntilItEnds) {
  const Runbook cooled =
      ParseOrFail("id: cooled\ncooldown: 10m\nsteps:\n  - id: s\n    shell: \"true\"\n");
  const Run first = Enq(cooled);
  clock_.Advance(minutes(4));
  auto refused = queue_->Enqueue(Req(cooled));
  ASSERT_FALSE(refused.ok());
  ExpectError(refused.status(), ErrorCode::kFailedPrecondition,
              {"cooled", "cooling down", "10m", FormatRfc3339(first.created_at + minutes(10))});
  // Other runbooks are not affected; nothing was stored for the refusal.
  Enq(plain_);
  EXPECT_EQ(Total(Counts()), 2);
  Result<std::optional<Timestamp>> ends = Status(ErrorCode::kInternal, "");
  ASSERT_OK(store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    ends = queue_->CooldownEnds(tx, cooled, clock_.Now());
    return ends.status();
  }));
  ASSERT_TRUE(ends->has_value());
  EXPECT_EQ(**ends, first.created_at + minutes(10));
  // An idempotent repeat of an existing run is answered, not refused.
  EnqueueRequest keyed = Req(cooled);
  keyed.idempotency_key = "k1";
  clock_.Advance(minutes(6));
  const Run second = Enq(keyed);
  EXPECT_NE(second.id, first.id);
  clock_.Advance(seconds(1));
  auto again = queue_->Enqueue(keyed);
  ASSERT_OK(again);
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->run.id, second.id);
  // A run cancelled before it started never acted: it does not count.
  clock_.Advance(minutes(10));
  const Run third = Enq(cooled);
  ASSERT_OK(queue_->Cancel(third.id));
  clock_.Advance(seconds(1));
  const Run fourth = Enq(cooled);
  EXPECT_EQ(fourth.status, RunStatus::kPending);
  EXPECT_FALSE(queue_->Enqueue(Req(cooled)).ok());
  // A runbook without a cooldown has none.
  Result<std::optional<Timestamp>> none = Status(ErrorCode::kInternal, "");
  ASSERT_OK(store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    none = queue_->CooldownEnds(tx, plain_, clock_.Now());
    return none.status();
  }));
  EXPECT_FALSE(none->has_value());
}

// ---------------------------------------------------------------------------------------
// Secret parameters

// A secret's value is in the store only sealed, only while its run can still execute.
TEST_P(QueueConformanceTest, SecretParamsAreSealedWhileQueuedAndDeletedWhenTheRunEnds) {
  auth::Key key{};
  key.fill('p');
  secrets::KeySealer sealer(key);
  QueueOptions o = DefaultOptions();
  o.sealer = &sealer;
  Reopen(o);
  auto sealed_of = [&](const std::string& id) { return MustGet(id).params.at("token").sealed; };
  EnqueueRequest r = Req(retrying_);
  r.params = {{"token", {"secret", "hunter2-value"}}, {"user", {"string", "ops"}}};

  // Queued: sealed, never in clear; it opens to the value.
  Run run = Enq(r);
  Run stored = MustGet(run.id);
  EXPECT_EQ(stored.params.at("token").text, "");
  EXPECT_EQ(stored.params.at("user"), (ParamValue{"string", "ops"}));
  const std::string sealed = stored.params.at("token").sealed;
  ASSERT_FALSE(sealed.empty());
  EXPECT_EQ(sealed.find("hunter2"), std::string::npos);
  auto opened = sealer.Open(sealed);
  ASSERT_OK(opened);
  EXPECT_EQ(*opened, "hunter2-value");

  // A failed attempt sent back for a retry keeps it; the last attempt's end deletes it.
  Run claimed = ClaimOne(run.id);
  EXPECT_EQ(claimed.params.at("token").sealed, sealed);
  ASSERT_OK(queue_->Finish(claimed, Outcome(RunStatus::kFailed, "x", 1), retrying_.retries));
  EXPECT_EQ(sealed_of(run.id), sealed);
  clock_.Advance(seconds(10));
  claimed = ClaimOne(run.id);
  auto done = queue_->Finish(claimed, Outcome(RunStatus::kSuccess), retrying_.retries);
  ASSERT_OK(done);
  EXPECT_EQ(done->params.at("token").sealed, "");
  EXPECT_EQ(sealed_of(run.id), "");
  EXPECT_EQ(MustGet(run.id).params.at("user"), (ParamValue{"string", "ops"}));

  // ...and so a replay cannot carry it: it says why.
  auto replay = queue_->Replay(run.id, "bob");
  ASSERT_FALSE(replay.ok());
  ExpectError(replay.status(), ErrorCode::kFailedPrecondition, {"token", "deleted"});

  // Cancelled before it started, or dead after its lease ran out: deleted as well.
  Run pending = Enq(r);
  ASSERT_FALSE(sealed_of(pending.id).empty());
  ASSERT_OK(queue_->Cancel(pending.id));
  EXPECT_EQ(sealed_of(pending.id), "");
  EnqueueRequest once = r;
  once.max_attempts = 1;
  Run lost = ClaimOne(Enq(once).id);
  clock_.Advance(o.lease + seconds(1));
  ASSERT_OK(queue_->Rescue());
  EXPECT_EQ(MustGet(lost.id).status, RunStatus::kDead);
  EXPECT_EQ(sealed_of(lost.id), "");
}

// A value sealed under another key, or altered, does not open.
TEST_P(QueueConformanceTest, SealedParamsOpenOnlyUnderTheirKeyAndUnaltered) {
  auth::Key a{}, b{};
  a.fill('a');
  b.fill('b');
  secrets::KeySealer sa(a), sb(b);
  const std::string sealed = sa.Seal("value-1");
  EXPECT_NE(sa.Seal("value-1"), sealed);  // a fresh nonce every time
  ASSERT_OK(sa.Open(sealed));
  auto other = sb.Open(sealed);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), ErrorCode::kDataLoss);
  std::string altered = sealed;
  altered[altered.size() / 2] = altered[altered.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(sa.Open(altered).ok());
  EXPECT_FALSE(sa.Open("not base64 !").ok());
  EXPECT_FALSE(sa.Open("").ok());
}

// ---------------------------------------------------------------------------------------
// Finish

TEST_P(QueueConformanceTest, FinishSuccessIsTerminalWithOutputs) {
  Run run = ClaimOne(Enq(plain_).id);
  clock_.Advance(seconds(3));
  AttemptOutcome o = Outcome(RunStatus::kSuccess);
  o.outputs = {{"s", {{"version", "1.2.3"}}}};
  auto done = queue_->Finish(run, o, std::nullopt);
  ASSERT_OK(done);
  EXPECT_EQ(done->status, RunStatus::kSuccess);
  EXPECT_EQ(done->finished_at, clock_.Now());
  EXPECT_EQ(done->outputs, o.outputs);
  EXPECT_TRUE(done->error.empty());
  EXPECT_FALSE(done->lease_expires_at.has_value());
  Run stored = MustGet(run.id);
  EXPECT_EQ(stored, *done);
  auto attempts = Attempts(run.id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].status, RunStatus::kSuccess);
  EXPECT_EQ(attempts[0].finished_at, clock_.Now());
  EXPECT_EQ(attempts[0].started_at, clock_.Now() - seconds(3));
  // A terminal run is never claimed again, nor rescued.
  clock_.Advance(seconds(3600));
  EXPECT_THAT(ClaimIds("w2"), IsEmpty());
  auto moved = queue_->Rescue();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 0);
  EXPECT_EQ(MustGet(run.id), stored);
}

TEST_P(QueueConformanceTest, FinishIsRecordedAtMostOncePerAttempt) {
  Run run = ClaimOne(Enq(plain_).id);
  ASSERT_OK(queue_->Finish(run, Outcome(RunStatus::kSuccess), std::nullopt));
  Run stored = MustGet(run.id);
  // The same attempt's completion again (a duplicate, a confused caller) changes nothing.
  auto again = queue_->Finish(run, Outcome(RunStatus::kFailed, "late failure"), std::nullopt);
  EXPECT_FALSE(again.ok());
  if (!again.ok()) ExpectError(again.status(), ErrorCode::kAborted);
  EXPECT_EQ(MustGet(run.id), stored);
  EXPECT_EQ(Attempts(run.id).at(0).status, RunStatus::kSuccess);

  // Nor does a second completion of an attempt that was sent back to the queue.
  Run r = ClaimOne(Enq(retrying_).id);
  auto retried = queue_->Finish(r, Outcome(RunStatus::kFailed, "boom", 1), retrying_.retries);
  ASSERT_OK(retried);
  ASSERT_EQ(retried->status, RunStatus::kPending);
  Run pending = MustGet(r.id);
  auto dup = queue_->Finish(r, Outcome(RunStatus::kSuccess), retrying_.retries);
  EXPECT_FALSE(dup.ok());
  EXPECT_EQ(MustGet(r.id), pending);
}

TEST_P(QueueConformanceTest, FailureWithoutRetryPolicyIsFinal) {
  Run run = ClaimOne(Enq(plain_).id);
  auto done =
      queue_->Finish(run, Outcome(RunStatus::kFailed, "step s exited with 1", 1), std::nullopt);
  ASSERT_OK(done);
  EXPECT_EQ(done->status, RunStatus::kFailed);
  EXPECT_EQ(done->error, "step s exited with 1");
  EXPECT_EQ(done->attempt, 1);  // attempts were left, but failures retry only with a policy
  EXPECT_EQ(MustGet(run.id), *done);
  Run t = ClaimOne(Enq(plain_).id);
  auto timed_out = queue_->Finish(t, Outcome(RunStatus::kTimeout, "run timed out"), std::nullopt);
  ASSERT_OK(timed_out);
  EXPECT_EQ(timed_out->status, RunStatus::kTimeout);
  for (RunStatus s : {RunStatus::kCancelled, RunStatus::kRolledBack}) {
    Run r = ClaimOne(Enq(retrying_).id);
    auto f = queue_->Finish(r, Outcome(s, "x"), retrying_.retries);
    ASSERT_OK(f);
    EXPECT_EQ(f->status, s);  // terminal even with a policy
  }
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
}

TEST_P(QueueConformanceTest, FailureWithRetryPolicyGoesBackToPendingWithBackoff) {
  std::set<int64_t> delays;
  for (int i = 0; i < 20; ++i) {
    Run run = ClaimOne(Enq(retrying_).id);
    clock_.Advance(seconds(1));
    auto f = queue_->Finish(run, Outcome(RunStatus::kFailed, "exit 1", 1), retrying_.retries);
    ASSERT_OK(f);
    EXPECT_EQ(f->status, RunStatus::kPending);
    EXPECT_EQ(f->attempt, 1);
    EXPECT_EQ(f->error, "exit 1");
    EXPECT_TRUE(f->lease_owner.empty());
    EXPECT_FALSE(f->lease_expires_at.has_value());
    EXPECT_FALSE(f->finished_at.has_value());
    ASSERT_TRUE(f->not_before.has_value());
    // Equal jitter: between half the delay and the delay.
    const auto delay = *f->not_before - clock_.Now();
    EXPECT_GE(delay, seconds(5));
    EXPECT_LE(delay, seconds(10));
    delays.insert(delay.count());
    // The backoff is persisted.
    EXPECT_EQ(MustGet(run.id), *f);
    EXPECT_EQ(Attempts(run.id).at(0).status, RunStatus::kFailed);
    // Not claimable before its time; then attempt 2.
    clock_.Set(*f->not_before - milliseconds(1));
    EXPECT_THAT(ClaimIds("w2"), IsEmpty());
    clock_.Set(*f->not_before);
    Run second = ClaimOne(run.id, "w2");
    EXPECT_EQ(second.attempt, 2);
    ASSERT_OK(queue_->Finish(second, Outcome(RunStatus::kSuccess), retrying_.retries));
  }
  EXPECT_GT(delays.size(), 1u) << "20 retries all got the same delay: no jitter";
}

TEST_P(QueueConformanceTest, ExhaustedAttemptsEndDeadWithTheReason) {
  std::string id = Enq(retrying_).id;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Run run = ClaimOne(id);
    ASSERT_EQ(run.attempt, attempt);
    auto f =
        queue_->Finish(run, Outcome(RunStatus::kTimeout, "timed out #" + std::to_string(attempt)),
                       retrying_.retries);
    ASSERT_OK(f);
    if (attempt < 3) {
      ASSERT_EQ(f->status, RunStatus::kPending);
      clock_.Set(*f->not_before);
    } else {
      EXPECT_EQ(f->status, RunStatus::kDead);
      EXPECT_THAT(f->error, HasSubstr("timed out #3"));  // the last attempt's error
      EXPECT_EQ(f->finished_at, clock_.Now());
    }
  }
  auto attempts = Attempts(id);
  ASSERT_EQ(attempts.size(), 3u);
  for (const Attempt& a : attempts) EXPECT_EQ(a.status, RunStatus::kTimeout);
  clock_.Advance(seconds(3600));
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
  EXPECT_EQ(Counts()[RunStatus::kDead], 1);
}

TEST_P(QueueConformanceTest, FailuresAreRetriedOnlyAsOftenAsThePolicyAndBudgetAllow) {
  // retries.count 1: one retry, although the budget (at least 3) would allow more.
  Runbook once = ParseOrFail(
      "id: once\nretries: {count: 1, delay: 1s}\nsteps:\n  - id: s\n    shell: \"true\"\n");
  std::string id = Enq(once).id;
  ASSERT_EQ(MustGet(id).max_attempts, 3);
  Run a1 = ClaimOne(id);
  auto f1 = queue_->Finish(a1, Outcome(RunStatus::kFailed, "first", 1), once.retries);
  ASSERT_OK(f1);
  ASSERT_EQ(f1->status, RunStatus::kPending);
  clock_.Set(*f1->not_before);
  Run a2 = ClaimOne(id);
  auto f2 = queue_->Finish(a2, Outcome(RunStatus::kFailed, "second", 1), once.retries);
  ASSERT_OK(f2);
  EXPECT_EQ(f2->status, RunStatus::kDead);
  EXPECT_EQ(f2->attempt, 2);
  EXPECT_THAT(f2->error, HasSubstr("second"));
  // An explicit budget below the policy's count ends the retries sooner.
  EnqueueRequest r = Req(retrying_);
  r.max_attempts = 1;
  Run b = ClaimOne(Enq(r).id);
  auto fb = queue_->Finish(b, Outcome(RunStatus::kFailed, "only", 1), retrying_.retries);
  ASSERT_OK(fb);
  EXPECT_EQ(fb->status, RunStatus::kDead);
  EXPECT_EQ(fb->attempt, 1);
}

TEST_P(QueueConformanceTest, NoRetryExitCodeFailsAtOnce) {
  Run run = ClaimOne(Enq(retrying_).id);
  auto f = queue_->Finish(run, Outcome(RunStatus::kFailed, "exit 75", 75), retrying_.retries);
  ASSERT_OK(f);
  EXPECT_EQ(f->status, RunStatus::kFailed);
  EXPECT_EQ(f->attempt, 1);
  EXPECT_EQ(MustGet(run.id).status, RunStatus::kFailed);
  // Another exit code is retried.
  Run other = ClaimOne(Enq(retrying_).id);
  auto g = queue_->Finish(other, Outcome(RunStatus::kFailed, "exit 74", 74), retrying_.retries);
  ASSERT_OK(g);
  EXPECT_EQ(g->status, RunStatus::kPending);
}

TEST_P(QueueConformanceTest, KeepLeaseForRetryKeepsTheRunWithItsOwner) {
  Run run = ClaimOne(Enq(retrying_).id, "exec:1");
  clock_.Advance(seconds(1));
  auto kept = queue_->Finish(run, Outcome(RunStatus::kFailed, "exit 1", 1), retrying_.retries,
                             Queue::FinishOptions{.keep_lease_for_retry = true});
  ASSERT_OK(kept);
  EXPECT_EQ(kept->status, RunStatus::kRunning);
  EXPECT_EQ(kept->attempt, 2);
  EXPECT_EQ(kept->fence, run.fence);
  EXPECT_EQ(kept->lease_owner, "exec:1");
  ASSERT_TRUE(kept->not_before.has_value());
  EXPECT_GE(*kept->not_before - clock_.Now(), seconds(5));
  EXPECT_LE(*kept->not_before - clock_.Now(), seconds(10));
  // The lease covers the wait.
  EXPECT_EQ(kept->lease_expires_at, *kept->not_before + seconds(30));
  EXPECT_EQ(MustGet(run.id), *kept);
  auto attempts = Attempts(run.id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].status, RunStatus::kFailed);
  EXPECT_EQ(attempts[1].status, RunStatus::kRunning);
  EXPECT_EQ(attempts[1].worker, "exec:1");
  // Nobody else gets it, even once the retry is due.
  clock_.Set(*kept->not_before);
  EXPECT_THAT(ClaimIds("w2"), IsEmpty());
  auto done = queue_->Finish(*kept, Outcome(RunStatus::kSuccess), retrying_.retries,
                             Queue::FinishOptions{.keep_lease_for_retry = true});
  ASSERT_OK(done);
  EXPECT_EQ(done->status, RunStatus::kSuccess);
  EXPECT_EQ(done->attempt, 2);
  EXPECT_EQ(Attempts(run.id).at(1).status, RunStatus::kSuccess);
}

// ---------------------------------------------------------------------------------------
// Cancel

TEST_P(QueueConformanceTest, CancelPendingIsImmediateAndTheRunIsNeverClaimed) {
  Run run = Enq(plain_);
  auto c = queue_->Cancel(run.id);
  ASSERT_OK(c);
  EXPECT_EQ(c->status, RunStatus::kCancelled);
  EXPECT_EQ(c->finished_at, clock_.Now());
  EXPECT_EQ(MustGet(run.id).status, RunStatus::kCancelled);
  clock_.Advance(seconds(3600));
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
  EXPECT_THAT(Attempts(run.id), IsEmpty());
  // A run waiting for its retry is pending too.
  Run r = ClaimOne(Enq(retrying_).id);
  ASSERT_OK(queue_->Finish(r, Outcome(RunStatus::kFailed, "x", 1), retrying_.retries));
  auto c2 = queue_->Cancel(r.id);
  ASSERT_OK(c2);
  EXPECT_EQ(c2->status, RunStatus::kCancelled);
  clock_.Advance(seconds(3600));
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
}

TEST_P(QueueConformanceTest, CancelRunningRequestsCancellationFromItsWorker) {
  Run run = ClaimOne(Enq(plain_).id);
  auto c = queue_->Cancel(run.id);
  ASSERT_OK(c);
  EXPECT_EQ(c->status, RunStatus::kRunning);
  EXPECT_TRUE(c->cancel_requested);
  Run stored = MustGet(run.id);
  EXPECT_EQ(stored.status, RunStatus::kRunning);
  EXPECT_TRUE(stored.cancel_requested);
  std::vector<std::string> asked;
  ASSERT_OK(store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(asked, tx.ListCancelRequested("w1"));
    return Status::Ok();
  }));
  EXPECT_THAT(asked, ElementsAre(run.id));
  auto beat = Beat(run);
  ASSERT_OK(beat);
  EXPECT_THAT(beat->cancel_requested, ElementsAre(run.id));
  // The worker kills the tree and records the cancellation.
  auto f =
      queue_->Finish(run, Outcome(RunStatus::kCancelled, "cancelled on request"), std::nullopt);
  ASSERT_OK(f);
  EXPECT_EQ(MustGet(run.id).status, RunStatus::kCancelled);
}

TEST_P(QueueConformanceTest, CancelRequestedRunIsNotRetried) {
  // The attempt failed on its own before the worker saw the request: the run must still
  // end, not go back to a queue that never hands out cancel-requested runs.
  Run run = ClaimOne(Enq(retrying_).id);
  ASSERT_OK(queue_->Cancel(run.id));
  auto f = queue_->Finish(run, Outcome(RunStatus::kFailed, "exit 1", 1), retrying_.retries);
  ASSERT_OK(f);
  Run stored = MustGet(run.id);
  EXPECT_TRUE(IsTerminal(stored.status)) << ToString(stored.status);
  EXPECT_EQ(stored.status, RunStatus::kCancelled);
}

TEST_P(QueueConformanceTest, CancelLeavesTerminalRunsAsTheyAre) {
  Run run = ClaimOne(Enq(plain_).id);
  ASSERT_OK(queue_->Finish(run, Outcome(RunStatus::kSuccess), std::nullopt));
  Run before = MustGet(run.id);
  clock_.Advance(seconds(5));
  auto c = queue_->Cancel(run.id);
  ASSERT_OK(c);
  EXPECT_EQ(c->status, RunStatus::kSuccess);
  EXPECT_EQ(MustGet(run.id), before);
  auto missing = queue_->Cancel("0190a4d2-7f6e-7000-8000-000000000000");
  ASSERT_FALSE(missing.ok());
  ExpectError(missing.status(), ErrorCode::kNotFound);
}

// ---------------------------------------------------------------------------------------
// Rescue

TEST_P(QueueConformanceTest, RescueRequeuesAnExpiredLeaseAsAnAttempt) {
  Run run = ClaimOne(Enq(plain_).id, "w1");
  clock_.Advance(seconds(30));  // expires exactly now: not yet before now
  auto moved = queue_->Rescue();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 0);
  clock_.Advance(milliseconds(1));
  moved = queue_->Rescue();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 1);
  Run r = MustGet(run.id);
  EXPECT_EQ(r.status, RunStatus::kPending);
  EXPECT_EQ(r.attempt, 1);  // counted
  EXPECT_GT(r.fence, run.fence);
  EXPECT_TRUE(r.lease_owner.empty());
  EXPECT_FALSE(r.lease_expires_at.has_value());
  EXPECT_THAT(r.error, HasSubstr("w1"));
  auto attempts = Attempts(run.id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].status, RunStatus::kFailed);
  EXPECT_EQ(attempts[0].finished_at, clock_.Now());
  EXPECT_THAT(attempts[0].error, HasSubstr("lost"));
  // Claimable at once.
  Run again = ClaimOne(run.id, "w2");
  EXPECT_EQ(again.attempt, 2);
  // A live lease is left alone.
  clock_.Advance(seconds(29));
  moved = queue_->Rescue();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 0);
}

TEST_P(QueueConformanceTest, RescueAfterTheLastAttemptIsDead) {
  EnqueueRequest req = Req(plain_);
  req.max_attempts = 2;
  std::string id = Enq(req).id;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    Run run = ClaimOne(id, "w" + std::to_string(attempt));
    ASSERT_EQ(run.attempt, attempt);
    clock_.Advance(seconds(31));
    auto moved = queue_->Rescue();
    ASSERT_OK(moved);
    EXPECT_EQ(*moved, 1);
  }
  Run dead = MustGet(id);
  EXPECT_EQ(dead.status, RunStatus::kDead);
  EXPECT_EQ(dead.finished_at, clock_.Now());
  EXPECT_THAT(dead.error, HasSubstr("2 attempts"));
  EXPECT_THAT(dead.error, HasSubstr("w2"));
  EXPECT_EQ(Attempts(id).size(), 2u);
  // Rescues and failures share the budget.
  std::string mixed = Enq(retrying_).id;  // 3 attempts
  Run a1 = ClaimOne(mixed);
  auto f = queue_->Finish(a1, Outcome(RunStatus::kFailed, "x", 1), retrying_.retries);
  ASSERT_OK(f);
  clock_.Set(*f->not_before);
  ClaimOne(mixed);
  clock_.Advance(seconds(31));
  ASSERT_OK(queue_->Rescue());
  Run a3 = ClaimOne(mixed);
  EXPECT_EQ(a3.attempt, 3);
  auto last = queue_->Finish(a3, Outcome(RunStatus::kFailed, "x", 1), retrying_.retries);
  ASSERT_OK(last);
  EXPECT_EQ(last->status, RunStatus::kDead);
}

TEST_P(QueueConformanceTest, RescueOfACancelRequestedRunCancelsIt) {
  Run run = ClaimOne(Enq(plain_).id);
  ASSERT_OK(queue_->Cancel(run.id));
  clock_.Advance(seconds(31));
  auto moved = queue_->Rescue();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 1);
  Run r = MustGet(run.id);
  EXPECT_EQ(r.status, RunStatus::kCancelled);
  EXPECT_EQ(r.finished_at, clock_.Now());
  EXPECT_THAT(r.error, HasSubstr("cancel"));
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
}

TEST_P(QueueConformanceTest, RescueTakesAtMostTheLimitEarliestExpiryFirst) {
  Run a = ClaimOne(Enq(plain_).id);
  clock_.Advance(seconds(1));
  Run b = ClaimOne(Enq(plain_).id);
  clock_.Advance(seconds(1));
  Run c = ClaimOne(Enq(plain_).id);
  clock_.Advance(seconds(60));
  auto moved = queue_->Rescue(1);
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 1);
  EXPECT_EQ(MustGet(a.id).status, RunStatus::kPending);
  EXPECT_EQ(MustGet(b.id).status, RunStatus::kRunning);
  moved = queue_->Rescue();
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 2);
  EXPECT_EQ(MustGet(c.id).status, RunStatus::kPending);
}

TEST_P(QueueConformanceTest, ReconcileRescuesEveryExpiredLeaseAndRecountsSlots) {
  Runbook lock = Keyed("locked", "{key: db, limit: 1}");
  // More expired leases than one rescue pass takes.
  std::vector<EnqueueRequest> reqs(520, Req(plain_));
  ASSERT_OK(queue_->EnqueueMany(reqs));
  ASSERT_EQ(Claim("w1", 1000).size(), 520u);
  Run holder = ClaimOne(Enq(lock).id, "w1");
  clock_.Advance(seconds(31));
  ASSERT_OK(queue_->Reconcile());
  auto counts = Counts();
  EXPECT_EQ(counts[RunStatus::kRunning], 0);
  EXPECT_EQ(counts[RunStatus::kPending], 521);
  // The key is free again: its run is claimable.
  std::vector<std::string> all = ClaimIds("w2", 1000);
  EXPECT_EQ(all.size(), 521u);
  EXPECT_NE(std::find(all.begin(), all.end(), holder.id), all.end());
}

TEST_P(QueueConformanceTest, ReconcileFreesASlotThatNoRunHolds) {
  Runbook lock = Keyed("locked", "{key: db, limit: 1}");
  Run run = Enq(lock);
  // Take the key's only slot behind the queue's back, as a crashed writer might leave it.
  ASSERT_OK(store_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(bool got, tx.AcquireSlots(run, clock_.Now()));
    EXPECT_TRUE(got);
    return Status::Ok();
  }));
  EXPECT_THAT(ClaimIds("w"), IsEmpty());  // the key looks full
  ASSERT_OK(queue_->Reconcile());
  EXPECT_THAT(ClaimIds("w"), ElementsAre(run.id));
}

// ---------------------------------------------------------------------------------------
// Concurrency keys and rates

TEST_P(QueueConformanceTest, LockKeyRunsOneAtATime) {
  Runbook lock = Keyed("locked", "{key: deploy-web, limit: 1}");
  Run a = Enq(lock);
  Run b = Enq(lock);
  std::vector<Run> got = Claim("w1");
  ASSERT_EQ(got.size(), 1u);  // one batch never takes two slots of a lock
  EXPECT_EQ(got[0].id, a.id);
  EXPECT_THAT(ClaimIds("w2"), IsEmpty());
  ASSERT_OK(queue_->Finish(got[0], Outcome(RunStatus::kSuccess), std::nullopt));
  EXPECT_THAT(ClaimIds("w2"), ElementsAre(b.id));
}

TEST_P(QueueConformanceTest, LimitTwoRunsTwoAtATime) {
  Runbook two = Keyed("two", "{key: db, limit: 2}");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Enq(two).id);
  std::vector<Run> first = Claim("w1");
  EXPECT_THAT(Ids(first), ElementsAre(ids[0], ids[1]));
  EXPECT_THAT(ClaimIds("w1"), IsEmpty());
  ASSERT_OK(queue_->Finish(first[1], Outcome(RunStatus::kSuccess), std::nullopt));
  EXPECT_THAT(ClaimIds("w1"), ElementsAre(ids[2]));
  EXPECT_THAT(ClaimIds("w1"), IsEmpty());
}

TEST_P(QueueConformanceTest, EveryKeyOfARunMustAllowIt) {
  Runbook web = Keyed("web", "{key: web, limit: 1}");
  Runbook db = Keyed("db", "{key: db, limit: 1}");
  Runbook both = Keyed("both", "[{key: web, limit: 1}, {key: db, limit: 1}]");
  Run w = ClaimOne(Enq(web).id);
  Run b = Enq(both);
  Run d = Enq(db);
  // `both` waits for web; db alone is free and is not held back by it.
  EXPECT_THAT(ClaimIds("w2"), ElementsAre(d.id));
  ASSERT_OK(queue_->Finish(w, Outcome(RunStatus::kSuccess), std::nullopt));
  EXPECT_THAT(ClaimIds("w2"), IsEmpty());  // db is taken now
  Run dr = MustGet(d.id);
  ASSERT_OK(queue_->Finish(dr, Outcome(RunStatus::kSuccess), std::nullopt));
  EXPECT_THAT(ClaimIds("w2"), ElementsAre(b.id));
  // Holding both, it blocks both.
  Enq(web);
  Enq(db);
  EXPECT_THAT(ClaimIds("w3"), IsEmpty());
}

TEST_P(QueueConformanceTest, SlotIsReleasedOnFinishRescueAndCancel) {
  Runbook lock = Keyed("locked", "{key: db, limit: 1}");
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(Enq(lock).id);
  // Finish (success).
  Run r0 = ClaimOne(ids[0]);
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
  ASSERT_OK(queue_->Finish(r0, Outcome(RunStatus::kSuccess), std::nullopt));
  // Finish sending the run back for a retry.
  Run r1 = ClaimOne(ids[1]);
  auto f = queue_->Finish(r1, Outcome(RunStatus::kFailed, "x", 1),
                          RetryPolicy{.count = 2, .delay = milliseconds(600'000)});
  ASSERT_OK(f);
  ASSERT_EQ(f->status, RunStatus::kPending);
  // Rescue.
  Run r2 = ClaimOne(ids[2]);
  clock_.Advance(seconds(31));
  ASSERT_OK(queue_->Rescue());
  // r2 is pending again and first in line.
  Run r2b = ClaimOne(ids[2]);
  EXPECT_EQ(r2b.attempt, 2);
  // Cancel of a running run: released when its worker records the cancellation...
  ASSERT_OK(queue_->Cancel(ids[2]));
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
  ASSERT_OK(queue_->Finish(r2b, Outcome(RunStatus::kCancelled, "cancelled"), std::nullopt));
  Run r3 = ClaimOne(ids[3]);
  // ...or when its lease runs out.
  ASSERT_OK(queue_->Cancel(ids[3]));
  clock_.Advance(seconds(31));
  ASSERT_OK(queue_->Rescue());
  EXPECT_EQ(MustGet(ids[3]).status, RunStatus::kCancelled);
  // Cancelling a pending run does not free a slot it never had.
  ASSERT_OK(queue_->Cancel(ids[4]));
  Run r5 = ClaimOne(ids[5]);
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
  (void)r3;
  (void)r5;
}

TEST_P(QueueConformanceTest, RateLimitsStartsAndRefillsOverTime) {
  Runbook rated = Keyed("rated", "{key: sms, rate: 2/10s}");  // no limit on how many run
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Enq(rated).id);
  EXPECT_THAT(ClaimIds("w"), ElementsAre(ids[0], ids[1]));
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
  clock_.Advance(milliseconds(4'999));  // 0.9998 tokens
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
  clock_.Advance(milliseconds(1));  // one token
  EXPECT_THAT(ClaimIds("w"), ElementsAre(ids[2]));
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
  // Tokens are not given back when a run finishes.
  for (Run& r : AllRuns()) {
    if (r.status == RunStatus::kRunning) {
      ASSERT_OK(queue_->Finish(r, Outcome(RunStatus::kSuccess), std::nullopt));
    }
  }
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
  // The bucket holds at most 2: a long pause does not bank more starts.
  for (int i = 0; i < 3; ++i) ids.push_back(Enq(rated).id);
  clock_.Advance(seconds(3600));
  EXPECT_THAT(ClaimIds("w"), ElementsAre(ids[3], ids[4]));
  EXPECT_THAT(ClaimIds("w"), IsEmpty());
}

TEST_P(QueueConformanceTest, SaturatedKeyDoesNotBlockLaterRuns) {
  Runbook lock = Keyed("hot", "{key: hot, limit: 1}");
  Runbook cold = Keyed("cold", "{key: cold, limit: 1}");
  std::vector<EnqueueRequest> flood(1000, Req(lock, 10));
  ASSERT_OK(queue_->EnqueueMany(flood));
  std::vector<Run> holder = Claim("w1", 1000);
  ASSERT_EQ(holder.size(), 1u);
  clock_.Advance(seconds(1));
  Run unkeyed = Enq(plain_, 0);
  Run other = Enq(cold, -5);
  // 999 better-placed runs of the full key are skipped.
  EXPECT_THAT(ClaimIds("w2", 1), ElementsAre(unkeyed.id));
  EXPECT_THAT(ClaimIds("w2", 1), ElementsAre(other.id));
  EXPECT_THAT(ClaimIds("w2", 1000), IsEmpty());
  // When the key frees up its runs go on in order.
  ASSERT_OK(queue_->Finish(holder[0], Outcome(RunStatus::kSuccess), std::nullopt));
  std::vector<Run> next = Claim("w2", 1000);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(Counts()[RunStatus::kPending], 998);
}

// ---------------------------------------------------------------------------------------
// Dead-letter queue

TEST_P(QueueConformanceTest, ReplayEnqueuesANewRunOfTheSameVersionAndParams) {
  EnqueueRequest req = Req(retrying_, 4);
  req.params = {{"service", {"string", "web"}}};
  req.max_attempts = 1;
  std::string id = Enq(req).id;
  Run run = ClaimOne(id);
  auto dead = queue_->Finish(run, Outcome(RunStatus::kFailed, "x", 1), retrying_.retries);
  ASSERT_OK(dead);
  ASSERT_EQ(dead->status, RunStatus::kDead);
  clock_.Advance(seconds(10));
  auto replay = queue_->Replay(id, "bob");
  ASSERT_OK(replay);
  EXPECT_NE(replay->id, id);
  EXPECT_EQ(replay->status, RunStatus::kPending);
  EXPECT_EQ(replay->retry_of, id);
  EXPECT_EQ(replay->trigger, Trigger::kRetry);
  EXPECT_EQ(replay->triggered_by, "bob");
  EXPECT_EQ(replay->runbook_version, retrying_.version);
  EXPECT_EQ(replay->params, req.params);
  EXPECT_EQ(replay->priority, 4);
  EXPECT_EQ(replay->attempt, 0);
  EXPECT_EQ(replay->created_at, clock_.Now());
  EXPECT_EQ(MustGet(replay->id), *replay);
  // The dead run keeps its record.
  EXPECT_EQ(MustGet(id), *dead);
  EXPECT_EQ(Attempts(id).size(), 1u);
  EXPECT_THAT(ClaimIds("w"), ElementsAre(replay->id));
}

TEST_P(QueueConformanceTest, ReplayRefusesRunsThatAreNotFinished) {
  Run pending = Enq(plain_);
  auto p = queue_->Replay(pending.id, "bob");
  ASSERT_FALSE(p.ok());
  ExpectError(p.status(), ErrorCode::kFailedPrecondition, {"PENDING"});
  Run running = ClaimOne(pending.id);
  auto r = queue_->Replay(running.id, "bob");
  ASSERT_FALSE(r.ok());
  ExpectError(r.status(), ErrorCode::kFailedPrecondition, {"RUNNING"});
  auto missing = queue_->Replay("0190a4d2-7f6e-7000-8000-000000000000", "bob");
  ASSERT_FALSE(missing.ok());
  ExpectError(missing.status(), ErrorCode::kNotFound);
  EXPECT_EQ(Total(Counts()), 1);
}

// ---------------------------------------------------------------------------------------
// Retention

TEST_P(QueueConformanceTest, PruneBatchDeletesOldTerminalRunsWithEverythingTheyHave) {
  auto finish_one = [&](const Runbook& rb) {
    Run run = ClaimOne(Enq(rb).id);
    LogLine l;
    l.run_id = run.id;
    l.attempt = run.attempt;
    l.step_id = "s";
    l.seq = 1;
    l.ts = clock_.Now();
    l.text = "hello";
    StepRun s;
    s.run_id = run.id;
    s.attempt = run.attempt;
    s.step_id = "s";
    s.status = StepStatus::kSuccess;
    EXPECT_TRUE(store_
                    ->Transact(Store::TxMode::kWrite,
                               [&](StoreTx& tx) -> Status {
                                 std::vector<LogLine> lines = {l};
                                 AUTOMAN_RETURN_IF_ERROR(tx.AppendLogLines(lines));
                                 return tx.UpsertStepRun(s);
                               })
                    .ok());
    EXPECT_TRUE(queue_->Finish(run, Outcome(RunStatus::kSuccess), std::nullopt).ok());
    return run.id;
  };
  std::string p1 = finish_one(plain_);  // t0
  clock_.Advance(seconds(5));
  std::string o1 = finish_one(other_);  // t5
  clock_.Advance(seconds(5));
  std::string p2 = finish_one(plain_);  // t10
  clock_.Advance(seconds(10));
  std::string p3 = finish_one(plain_);  // t20
  Run pending = Enq(plain_);
  Run running = ClaimOne(pending.id);
  clock_.Advance(seconds(80));  // t100

  // Nothing asked: nothing deleted.
  auto none = queue_->PruneBatch({});
  ASSERT_OK(none);
  EXPECT_EQ(*none, 0);
  // Older than 92 s (finished before t8), one run per transaction.
  RetentionPolicy by_age{.max_age = milliseconds(92'000), .batch = 1};
  auto n = queue_->PruneBatch(by_age);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 1);
  ExpectError(Get(p1).status(), ErrorCode::kNotFound);  // oldest first
  ASSERT_OK(Get(o1));
  n = queue_->PruneBatch(by_age);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 1);
  ExpectError(Get(o1).status(), ErrorCode::kNotFound);
  n = queue_->PruneBatch(by_age);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0);
  // Their attempts, step runs and log lines went with them.
  for (const std::string& id : {p1, o1}) {
    std::vector<Attempt> attempts;
    std::vector<StepRun> steps;
    std::vector<LogLine> lines;
    Status s = store_->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      auto a = tx.ListAttempts(id);
      if (a.ok()) attempts = *a;
      auto st = tx.ListStepRuns(id);
      if (st.ok()) steps = *st;
      auto li = tx.ReadLogLines({.run_id = id});
      if (li.ok()) lines = *li;
      return Status::Ok();
    });
    ASSERT_OK(s);
    EXPECT_THAT(attempts, IsEmpty());
    EXPECT_THAT(steps, IsEmpty());
    EXPECT_THAT(lines, IsEmpty());
  }
  // Keep the newest run per runbook.
  auto kept = queue_->PruneBatch({.keep_per_runbook = 1});
  ASSERT_OK(kept);
  EXPECT_EQ(*kept, 1);
  ExpectError(Get(p2).status(), ErrorCode::kNotFound);
  ASSERT_OK(Get(p3));
  // Runs that are not finished are never pruned, however old.
  clock_.Advance(seconds(100'000));
  auto all = queue_->PruneBatch({.max_age = milliseconds(1)});
  ASSERT_OK(all);
  EXPECT_EQ(*all, 1);  // p3
  EXPECT_EQ(MustGet(running.id).status, RunStatus::kRunning);
  auto counts = Counts();
  EXPECT_EQ(Total(counts), 1);
}

}  // namespace
}  // namespace automan::testing
