// The queue primitives of StoreTx (see store.h, "Queue primitives"), part of the Store
// conformance suite (store_conformance.h). Instants are explicit (At(n)), never the wall
// clock, so rate limits and leases are checked exactly.
#include <algorithm>
#include <map>
#include <set>

#include "store_conformance.h"

namespace automan::testing {
namespace {

using std::chrono::milliseconds;

ConcurrencyLimit Key(std::string key, int limit, int rate_count = 0,
                     milliseconds rate_per = milliseconds(0)) {
  return ConcurrencyLimit{
      .key = std::move(key), .limit = limit, .rate_count = rate_count, .rate_per = rate_per};
}

// A run of `v` with a readable id (ids deliberately do not sort in enqueue order).
Run QueuedRun(const RunbookVersion& v, const std::string& id, int priority = 0) {
  Run r = SampleRun(v);
  r.id = id;
  r.priority = priority;
  return r;
}

std::vector<std::string> Ids(const std::vector<Run>& runs) {
  std::vector<std::string> out;
  for (const Run& r : runs) out.push_back(r.id);
  return out;
}

std::set<std::string> AsSet(const std::vector<std::string>& ids) {
  return std::set<std::string>(ids.begin(), ids.end());
}

}  // namespace

void StoreQueueConformanceTest::SetUp() {
  StoreConformanceTest::SetUp();
  if (HasFatalFailure()) return;
  v_ = SampleVersion();
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v_); }));
}

Status StoreQueueConformanceTest::Insert(std::initializer_list<Run> runs) {
  for (const Run& r : runs) {
    AUTOMAN_RETURN_IF_ERROR(Write([&](StoreTx& tx) { return tx.InsertRun(r); }));
  }
  return Status::Ok();
}

Result<std::vector<Run>> StoreQueueConformanceTest::Claimable(Timestamp now, int limit) {
  return WriteValue<std::vector<Run>>([&](StoreTx& tx) { return tx.ListClaimable(now, limit); });
}

Result<std::vector<std::string>> StoreQueueConformanceTest::ClaimableIds(Timestamp now, int limit) {
  auto runs = Claimable(now, limit);
  if (!runs.ok()) return runs.status();
  return Ids(*runs);
}

Result<bool> StoreQueueConformanceTest::Acquire(const Run& r, Timestamp now) {
  return WriteValue<bool>([&](StoreTx& tx) { return tx.AcquireSlots(r, now); });
}

Status StoreQueueConformanceTest::Release(const Run& r) {
  return Write([&](StoreTx& tx) { return tx.ReleaseSlots(r); });
}

Status StoreQueueConformanceTest::MarkRunning(Run& r, const std::string& owner, Timestamp expires) {
  r.status = RunStatus::kRunning;
  r.lease_owner = owner;
  r.lease_expires_at = expires;
  return Write([&](StoreTx& tx) { return tx.UpdateRun(r); });
}

Status StoreQueueConformanceTest::SetStatus(Run& r, RunStatus status,
                                            std::optional<Timestamp> finished_at) {
  r.status = status;
  r.finished_at = finished_at;
  return Write([&](StoreTx& tx) { return tx.UpdateRun(r); });
}

Status StoreQueueConformanceTest::Finished(const std::string& id, const RunbookVersion& v,
                                           int64_t finished, RunStatus status) {
  Run r = QueuedRun(v, id);
  r.status = status;
  r.finished_at = At(finished);
  return Insert({r});
}

Result<std::vector<std::string>> StoreQueueConformanceTest::Prunable(
    std::optional<Timestamp> before, std::optional<int> keep, int limit) {
  return ReadValue<std::vector<std::string>>(
      [&](StoreTx& tx) { return tx.ListPrunable(before, keep, limit); });
}

namespace {

// ---------------------------------------------------------------------------------------
// New run fields

TEST_P(StoreQueueConformanceTest, ConcurrencyAndCancelFlagRoundTrip) {
  Run r = QueuedRun(v_, "run-keys");
  r.concurrency = {Key("api", 3, 10, milliseconds(60'000)), Key("db", 1)};  // key order
  r.cancel_requested = true;
  Run plain = QueuedRun(v_, "run-plain");
  ASSERT_OK(Insert({r, plain}));

  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, r);
  auto got_plain = GetRun(plain.id);
  ASSERT_OK(got_plain);
  EXPECT_EQ(*got_plain, plain);
  EXPECT_TRUE(got_plain->concurrency.empty());
  EXPECT_FALSE(got_plain->cancel_requested);

  auto listed = ListRuns({});
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 2u);
  for (const Run& l : *listed) EXPECT_EQ(l, l.id == r.id ? r : plain);
}

TEST_P(StoreQueueConformanceTest, ConcurrencyKeysComeBackInKeyOrder) {
  Run r = QueuedRun(v_, "run-unsorted");
  r.concurrency = {Key("zeta", 1), Key("alpha", 2), Key("mid", 3, 1, milliseconds(5))};
  ASSERT_OK(Insert({r}));
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  std::vector<std::string> keys;
  for (const ConcurrencyLimit& k : got->concurrency) keys.push_back(k.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"alpha", "mid", "zeta"}));
  EXPECT_EQ(got->concurrency[1], Key("mid", 3, 1, milliseconds(5)));
}

TEST_P(StoreQueueConformanceTest, UpdateRunChangesNeitherKeysNorCancelFlag) {
  Run r = QueuedRun(v_, "run-update");
  r.concurrency = {Key("db", 1)};
  ASSERT_OK(Insert({r}));
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.RequestCancel(r.id); }));

  Run changed = r;
  changed.concurrency = {Key("other", 5)};
  changed.cancel_requested = false;
  changed.error = "updated";
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRun(changed); }));
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->error, "updated");
  EXPECT_EQ(got->concurrency, r.concurrency);
  EXPECT_TRUE(got->cancel_requested);
}

TEST_P(StoreQueueConformanceTest, MalformedConcurrencyIsInvalidArgument) {
  auto refused = [&](std::vector<ConcurrencyLimit> keys, std::string_view word) {
    Run r = QueuedRun(v_, "run-bad");
    r.concurrency = std::move(keys);
    ExpectError(Write([&](StoreTx& tx) { return tx.InsertRun(r); }), ErrorCode::kInvalidArgument,
                {word});
    ExpectError(GetRun(r.id).status(), ErrorCode::kNotFound);
  };
  refused({Key("", 1)}, "run-bad");
  refused({Key("db", 0)}, "db");
  refused({Key("db", 1), Key("db", 2)}, "db");
  refused({Key("api", 1, 5, milliseconds(0))}, "api");
  refused({Key("api", 1, -1, milliseconds(10))}, "api");
}

// ---------------------------------------------------------------------------------------
// ListClaimable

TEST_P(StoreQueueConformanceTest, ClaimableIsHighestPriorityFirstThenEnqueueOrder) {
  // Ids sort against enqueue order, and every run has the same created_at.
  ASSERT_OK(Insert({QueuedRun(v_, "run-e"), QueuedRun(v_, "run-d", 5), QueuedRun(v_, "run-c"),
                    QueuedRun(v_, "run-b", -3), QueuedRun(v_, "run-a", 5)}));
  auto ids = ClaimableIds(At(10));
  ASSERT_OK(ids);
  EXPECT_EQ(*ids, (std::vector<std::string>{"run-d", "run-a", "run-e", "run-c", "run-b"}));
  auto two = ClaimableIds(At(10), 2);
  ASSERT_OK(two);
  EXPECT_EQ(*two, (std::vector<std::string>{"run-d", "run-a"}));
}

TEST_P(StoreQueueConformanceTest, ClaimableRunsAreDuePendingAndNotCancelled) {
  Run due = QueuedRun(v_, "run-due");
  due.not_before = At(10);
  Run later = QueuedRun(v_, "run-later");
  later.not_before = At(11);
  Run cancelled = QueuedRun(v_, "run-cancelled");
  Run running = QueuedRun(v_, "run-running");
  running.status = RunStatus::kRunning;
  Run done = QueuedRun(v_, "run-done");
  done.status = RunStatus::kSuccess;
  Run plain = QueuedRun(v_, "run-plain");
  ASSERT_OK(Insert({due, later, cancelled, running, done, plain}));
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.RequestCancel(cancelled.id); }));

  auto at10 = ClaimableIds(At(10));
  ASSERT_OK(at10);
  EXPECT_EQ(*at10, (std::vector<std::string>{"run-due", "run-plain"}));
  auto at11 = ClaimableIds(At(11));
  ASSERT_OK(at11);
  EXPECT_EQ(*at11, (std::vector<std::string>{"run-due", "run-later", "run-plain"}));
  // The full row comes back.
  auto runs = Claimable(At(11), 1);
  ASSERT_OK(runs);
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ(runs->front(), due);
}

TEST_P(StoreQueueConformanceTest, RunsOfAFullKeyAreSkippedWithoutBlockingTheRunsBehindThem) {
  Run holder = QueuedRun(v_, "run-holder");
  holder.concurrency = {Key("db", 1)};
  ASSERT_OK(Insert({holder}));
  ASSERT_OK(Acquire(holder, At(1)));
  ASSERT_OK(MarkRunning(holder, "w1", At(100)));

  Run blocked1 = QueuedRun(v_, "run-blocked-1", 9);
  blocked1.concurrency = {Key("db", 1)};
  Run blocked2 = QueuedRun(v_, "run-blocked-2", 9);
  blocked2.concurrency = {Key("other", 4), Key("db", 1)};
  Run roomier = QueuedRun(v_, "run-roomier", 1);  // its own limit for the key is 2
  roomier.concurrency = {Key("db", 2)};
  Run free1 = QueuedRun(v_, "run-free-1");
  Run free2 = QueuedRun(v_, "run-free-2");
  free2.concurrency = {Key("other", 4)};
  ASSERT_OK(Insert({blocked1, blocked2, roomier, free1, free2}));

  // The blocked runs come first in order and the limit is 2: the two runs after them that
  // can start are returned all the same.
  auto ids = ClaimableIds(At(2), 2);
  ASSERT_OK(ids);
  EXPECT_EQ(*ids, (std::vector<std::string>{"run-roomier", "run-free-1"}));
  auto all = ClaimableIds(At(2));
  ASSERT_OK(all);
  EXPECT_EQ(*all, (std::vector<std::string>{"run-roomier", "run-free-1", "run-free-2"}));

  // The holder finishes and gives its slot back: the blocked runs are claimable again.
  ASSERT_OK(SetStatus(holder, RunStatus::kSuccess, At(3)));
  ASSERT_OK(Release(holder));
  auto after = ClaimableIds(At(3));
  ASSERT_OK(after);
  EXPECT_EQ(*after, (std::vector<std::string>{"run-blocked-1", "run-blocked-2", "run-roomier",
                                              "run-free-1", "run-free-2"}));
}

TEST_P(StoreQueueConformanceTest, RateTokensRefillContinuously) {
  // 2 starts per second, a bucket of 2, no concurrency limit to speak of.
  auto rated = [&](const std::string& id) {
    Run r = QueuedRun(v_, id);
    r.concurrency = {Key("api", 100, 2, milliseconds(1000))};
    return r;
  };
  Run a = rated("run-a"), b = rated("run-b"), c = rated("run-c"), d = rated("run-d");
  ASSERT_OK(Insert({a, b, c, d}));
  const Timestamp t0 = At(100);

  // A full bucket: every run is claimable, two of them get a token.
  auto first = ClaimableIds(t0);
  ASSERT_OK(first);
  EXPECT_EQ(first->size(), 4u);
  auto got_a = Acquire(a, t0);
  auto got_b = Acquire(b, t0);
  auto got_c = Acquire(c, t0);
  ASSERT_OK(got_a);
  ASSERT_OK(got_b);
  ASSERT_OK(got_c);
  EXPECT_TRUE(*got_a);
  EXPECT_TRUE(*got_b);
  EXPECT_FALSE(*got_c);
  ASSERT_OK(MarkRunning(a, "w", At(1000)));
  ASSERT_OK(MarkRunning(b, "w", At(1000)));

  // Empty until half a second has refilled one token.
  auto empty = ClaimableIds(t0 + milliseconds(499));
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty()) << (*empty)[0];
  auto early = Acquire(c, t0 + milliseconds(499));
  ASSERT_OK(early);
  EXPECT_FALSE(*early);
  auto refilled = ClaimableIds(t0 + milliseconds(500));
  ASSERT_OK(refilled);
  EXPECT_EQ(*refilled, (std::vector<std::string>{"run-c", "run-d"}));
  auto on_time = Acquire(c, t0 + milliseconds(500));
  ASSERT_OK(on_time);
  EXPECT_TRUE(*on_time);
  auto none_left = Acquire(d, t0 + milliseconds(500));
  ASSERT_OK(none_left);
  EXPECT_FALSE(*none_left);

  // Releasing a slot gives no token back.
  ASSERT_OK(Release(a));
  auto still = Acquire(d, t0 + milliseconds(999));
  ASSERT_OK(still);
  EXPECT_FALSE(*still);
  // The bucket never holds more than its capacity: after a long pause, two starts, not more.
  Run e = rated("run-e"), f = rated("run-f");
  ASSERT_OK(Insert({e, f}));
  const Timestamp later = t0 + milliseconds(60'000);
  for (const Run* r : {&d, &e}) {
    auto ok = Acquire(*r, later);
    ASSERT_OK(ok);
    EXPECT_TRUE(*ok) << r->id;
  }
  auto over = Acquire(f, later);
  ASSERT_OK(over);
  EXPECT_FALSE(*over);
}

TEST_P(StoreQueueConformanceTest, ClaimableValidatesTheLimit) {
  for (int limit : {0, -1, 1001}) {
    ExpectError(Claimable(At(1), limit).status(), ErrorCode::kInvalidArgument,
                {std::to_string(limit)});
  }
  ASSERT_OK(Claimable(At(1), 1000));
}

// ---------------------------------------------------------------------------------------
// Slots

TEST_P(StoreQueueConformanceTest, RunWithoutKeysAlwaysGetsItsSlots) {
  Run r = QueuedRun(v_, "run-free");
  ASSERT_OK(Insert({r}));
  for (int i = 0; i < 3; ++i) {
    auto got = Acquire(r, At(1));
    ASSERT_OK(got);
    EXPECT_TRUE(*got);
  }
  ASSERT_OK(Release(r));
}

TEST_P(StoreQueueConformanceTest, AcquireSlotsIsAllOrNothingAcrossKeys) {
  Run holds_b = QueuedRun(v_, "run-holds-b");
  holds_b.concurrency = {Key("b", 1)};
  Run both = QueuedRun(v_, "run-both");
  both.concurrency = {Key("a", 1), Key("b", 1)};
  Run only_a = QueuedRun(v_, "run-only-a");
  only_a.concurrency = {Key("a", 1)};
  ASSERT_OK(Insert({holds_b, both, only_a}));

  auto first = Acquire(holds_b, At(1));
  ASSERT_OK(first);
  ASSERT_TRUE(*first);
  auto refused = Acquire(both, At(1));
  ASSERT_OK(refused);
  EXPECT_FALSE(*refused);
  // Key a is untouched by the refusal.
  auto a = Acquire(only_a, At(1));
  ASSERT_OK(a);
  EXPECT_TRUE(*a);
  auto a_again = Acquire(only_a, At(1));
  ASSERT_OK(a_again);
  EXPECT_FALSE(*a_again);
}

TEST_P(StoreQueueConformanceTest, AcquireSlotsCountsUpToTheLimit) {
  Run r = QueuedRun(v_, "run-limited");
  r.concurrency = {Key("pool", 3)};
  ASSERT_OK(Insert({r}));
  for (int i = 0; i < 3; ++i) {
    auto got = Acquire(r, At(1));
    ASSERT_OK(got);
    EXPECT_TRUE(*got) << i;
  }
  auto full = Acquire(r, At(1));
  ASSERT_OK(full);
  EXPECT_FALSE(*full);
  ASSERT_OK(Release(r));
  auto again = Acquire(r, At(1));
  ASSERT_OK(again);
  EXPECT_TRUE(*again);
}

TEST_P(StoreQueueConformanceTest, ReleaseSlotsNeverGoesBelowZero) {
  Run r = QueuedRun(v_, "run-release");
  r.concurrency = {Key("lock", 1)};
  ASSERT_OK(Insert({r}));
  ASSERT_OK(Release(r));  // never acquired: nothing to give back
  auto got = Acquire(r, At(1));
  ASSERT_OK(got);
  ASSERT_TRUE(*got);
  ASSERT_OK(Release(r));
  ASSERT_OK(Release(r));
  ASSERT_OK(Release(r));
  // One slot, not three.
  auto first = Acquire(r, At(1));
  auto second = Acquire(r, At(1));
  ASSERT_OK(first);
  ASSERT_OK(second);
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*second);
}

TEST_P(StoreQueueConformanceTest, RecountSlotsCountsRunningAndWaitingHolders) {
  auto holder = [&](const std::string& id) {
    Run r = QueuedRun(v_, id);
    r.concurrency = {Key("pool", 3)};
    return r;
  };
  Run running = holder("run-running"), waiting = holder("run-waiting"),
      finished = holder("run-finished"), probe = holder("run-probe");
  Run lock_user = QueuedRun(v_, "run-lock");
  lock_user.concurrency = {Key("lock", 1)};
  ASSERT_OK(Insert({running, waiting, finished, probe, lock_user}));
  // Slots were taken for all three, then `finished` ended without giving its slot back
  // (a crash between the two), and `lock` leaked a slot of a run that never started.
  for (const Run* r : {&running, &waiting, &finished, &lock_user}) {
    auto got = Acquire(*r, At(1));
    ASSERT_OK(got);
    ASSERT_TRUE(*got);
  }
  ASSERT_OK(MarkRunning(running, "w", At(100)));
  ASSERT_OK(SetStatus(waiting, RunStatus::kWaiting));
  ASSERT_OK(SetStatus(finished, RunStatus::kFailed, At(2)));
  auto full = Acquire(probe, At(3));
  ASSERT_OK(full);
  EXPECT_FALSE(*full);

  ASSERT_OK(Write([&](StoreTx& tx) { return tx.RecountSlots(); }));
  // pool: running + waiting = 2 of 3; lock: 0 of 1.
  auto one = Acquire(probe, At(3));
  ASSERT_OK(one);
  EXPECT_TRUE(*one);
  auto none = Acquire(probe, At(3));
  ASSERT_OK(none);
  EXPECT_FALSE(*none);
  auto lock = Acquire(lock_user, At(3));
  ASSERT_OK(lock);
  EXPECT_TRUE(*lock);
}

// ---------------------------------------------------------------------------------------
// Leases, delays, cancellation

TEST_P(StoreQueueConformanceTest, ListExpiredLeasesEarliestFirst) {
  Run r10 = QueuedRun(v_, "run-r10"), w5 = QueuedRun(v_, "run-w5"), r30 = QueuedRun(v_, "run-r30"),
      p1 = QueuedRun(v_, "run-p1"), s1 = QueuedRun(v_, "run-s1");
  ASSERT_OK(Insert({r10, w5, r30, p1, s1}));
  ASSERT_OK(MarkRunning(r10, "w", At(10)));
  ASSERT_OK(MarkRunning(w5, "w", At(5)));
  ASSERT_OK(SetStatus(w5, RunStatus::kWaiting));
  ASSERT_OK(MarkRunning(r30, "w", At(30)));
  p1.lease_expires_at = At(1);  // not RUNNING or WAITING: never "expired"
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRun(p1); }));
  ASSERT_OK(MarkRunning(s1, "w", At(1)));
  ASSERT_OK(SetStatus(s1, RunStatus::kSuccess, At(2)));

  auto expired =
      WriteValue<std::vector<Run>>([&](StoreTx& tx) { return tx.ListExpiredLeases(At(20), 100); });
  ASSERT_OK(expired);
  EXPECT_EQ(Ids(*expired), (std::vector<std::string>{"run-w5", "run-r10"}));
  EXPECT_EQ(expired->front(), w5);
  // Strictly before `now`.
  auto at10 =
      WriteValue<std::vector<Run>>([&](StoreTx& tx) { return tx.ListExpiredLeases(At(10), 100); });
  ASSERT_OK(at10);
  EXPECT_EQ(Ids(*at10), (std::vector<std::string>{"run-w5"}));
  auto one =
      WriteValue<std::vector<Run>>([&](StoreTx& tx) { return tx.ListExpiredLeases(At(100), 1); });
  ASSERT_OK(one);
  EXPECT_EQ(Ids(*one), (std::vector<std::string>{"run-w5"}));
  for (int limit : {0, 1001}) {
    ExpectError(Write([&](StoreTx& tx) { return tx.ListExpiredLeases(At(1), limit).status(); }),
                ErrorCode::kInvalidArgument, {std::to_string(limit)});
  }
}

TEST_P(StoreQueueConformanceTest, NextNotBeforeIsTheNextDelayedPendingRun) {
  Run a = QueuedRun(v_, "run-a"), b = QueuedRun(v_, "run-b"), c = QueuedRun(v_, "run-c"),
      d = QueuedRun(v_, "run-d");
  a.not_before = At(5);
  b.not_before = At(10);
  d.not_before = At(7);
  ASSERT_OK(Insert({a, b, c, d}));
  ASSERT_OK(MarkRunning(d, "w", At(100)));  // not PENDING: does not count
  auto next = [&](Timestamp now) {
    return ReadValue<std::optional<Timestamp>>([&](StoreTx& tx) { return tx.NextNotBefore(now); });
  };
  auto at0 = next(At(0));
  ASSERT_OK(at0);
  EXPECT_EQ(*at0, std::optional<Timestamp>(At(5)));
  auto at5 = next(At(5));
  ASSERT_OK(at5);
  EXPECT_EQ(*at5, std::optional<Timestamp>(At(10)));
  auto at10 = next(At(10));
  ASSERT_OK(at10);
  EXPECT_EQ(*at10, std::nullopt);
}

TEST_P(StoreQueueConformanceTest, RenewLeaseIsFencedAndReportsCancellation) {
  Run r = QueuedRun(v_, "run-lease");
  r.fence = 4;
  ASSERT_OK(Insert({r}));
  ASSERT_OK(MarkRunning(r, "w1", At(10)));

  auto renewed = WriteValue<bool>([&](StoreTx& tx) { return tx.RenewLease(r.id, 4, At(40)); });
  ASSERT_OK(renewed);
  EXPECT_FALSE(*renewed);
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->lease_expires_at, std::optional<Timestamp>(At(40)));
  EXPECT_EQ(got->fence, 4);

  ASSERT_OK(Write([&](StoreTx& tx) { return tx.RequestCancel(r.id); }));
  auto cancel = WriteValue<bool>([&](StoreTx& tx) { return tx.RenewLease(r.id, 4, At(50)); });
  ASSERT_OK(cancel);
  EXPECT_TRUE(*cancel);

  ExpectError(Write([&](StoreTx& tx) { return tx.RenewLease(r.id, 3, At(60)).status(); }),
              ErrorCode::kAborted, {r.id});
  ExpectError(Write([&](StoreTx& tx) { return tx.RenewLease("run-missing", 1, At(60)).status(); }),
              ErrorCode::kNotFound, {"run-missing"});
  got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->lease_expires_at, std::optional<Timestamp>(At(50)));
}

TEST_P(StoreQueueConformanceTest, RenewLeaseNeverTouchesAFinishedRun) {
  // A heartbeat that commits just after the run's outcome (same fence) must not put a
  // lease back on it.
  Run r = QueuedRun(v_, "run-late-beat");
  r.fence = 2;
  ASSERT_OK(Insert({r}));
  ASSERT_OK(MarkRunning(r, "w1", At(10)));
  auto running = GetRun(r.id);
  ASSERT_OK(running);
  Run done = *running;
  done.status = RunStatus::kSuccess;
  done.finished_at = At(20);
  done.lease_expires_at.reset();
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRun(done); }));
  ExpectError(Write([&](StoreTx& tx) { return tx.RenewLease(r.id, 2, At(60)).status(); }),
              ErrorCode::kAborted, {r.id});
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->lease_expires_at, std::nullopt);
  EXPECT_EQ(got->status, RunStatus::kSuccess);
}

TEST_P(StoreQueueConformanceTest, UpdateRunAdvancingFenceMovesTheFenceOnce) {
  Run r = QueuedRun(v_, "run-claim");
  r.fence = 7;
  r.concurrency = {Key("db", 1)};
  ASSERT_OK(Insert({r}));

  Run claimed = r;
  claimed.status = RunStatus::kRunning;
  claimed.attempt = 1;
  claimed.fence = 8;
  claimed.lease_owner = "w1";
  claimed.lease_expires_at = At(30);
  claimed.concurrency = {};  // not changed by the write either
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.UpdateRunAdvancingFence(claimed, 7); }));
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->fence, 8);
  EXPECT_EQ(got->lease_owner, "w1");
  EXPECT_EQ(got->concurrency, r.concurrency);

  // A second claim from the same old fence loses; the old holder's writes are refused.
  Run rival = claimed;
  rival.lease_owner = "w2";
  ExpectError(Write([&](StoreTx& tx) { return tx.UpdateRunAdvancingFence(rival, 7); }),
              ErrorCode::kAborted, {r.id});
  ExpectError(Write([&](StoreTx& tx) { return tx.UpdateRun(r); }), ErrorCode::kAborted, {r.id});
  ExpectError(Write([&](StoreTx& tx) { return tx.CheckFence(r.id, 7); }), ErrorCode::kAborted);
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.CheckFence(r.id, 8); }));
  // The fence only goes up; a missing run is kNotFound.
  Run same = claimed;
  ExpectError(Write([&](StoreTx& tx) { return tx.UpdateRunAdvancingFence(same, 8); }),
              ErrorCode::kInvalidArgument, {r.id});
  Run missing = QueuedRun(v_, "run-missing");
  missing.fence = 2;
  ExpectError(Write([&](StoreTx& tx) { return tx.UpdateRunAdvancingFence(missing, 1); }),
              ErrorCode::kNotFound, {"run-missing"});
  got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->lease_owner, "w1");
}

TEST_P(StoreQueueConformanceTest, RequestCancelAndListCancelRequested) {
  Run mine_running = QueuedRun(v_, "run-1"), mine_waiting = QueuedRun(v_, "run-2"),
      mine_untouched = QueuedRun(v_, "run-3"), theirs = QueuedRun(v_, "run-4"),
      mine_done = QueuedRun(v_, "run-5"), pending = QueuedRun(v_, "run-6");
  ASSERT_OK(Insert({mine_running, mine_waiting, mine_untouched, theirs, mine_done, pending}));
  ASSERT_OK(MarkRunning(mine_running, "w1", At(100)));
  ASSERT_OK(MarkRunning(mine_waiting, "w1", At(100)));
  ASSERT_OK(SetStatus(mine_waiting, RunStatus::kWaiting));
  ASSERT_OK(MarkRunning(mine_untouched, "w1", At(100)));
  ASSERT_OK(MarkRunning(theirs, "w2", At(100)));
  ASSERT_OK(MarkRunning(mine_done, "w1", At(100)));
  ASSERT_OK(SetStatus(mine_done, RunStatus::kCancelled, At(5)));

  auto none = ReadValue<std::vector<std::string>>(
      [&](StoreTx& tx) { return tx.ListCancelRequested("w1"); });
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());

  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    for (const Run* r : {&mine_running, &mine_waiting, &theirs, &mine_done, &pending}) {
      AUTOMAN_RETURN_IF_ERROR(tx.RequestCancel(r->id));
    }
    return tx.RequestCancel(mine_running.id);  // asking twice is fine
  }));
  auto mine = ReadValue<std::vector<std::string>>(
      [&](StoreTx& tx) { return tx.ListCancelRequested("w1"); });
  ASSERT_OK(mine);
  EXPECT_EQ(AsSet(*mine), (std::set<std::string>{"run-1", "run-2"}));
  auto other = ReadValue<std::vector<std::string>>(
      [&](StoreTx& tx) { return tx.ListCancelRequested("w2"); });
  ASSERT_OK(other);
  EXPECT_EQ(*other, (std::vector<std::string>{"run-4"}));
  auto got = GetRun(pending.id);
  ASSERT_OK(got);
  EXPECT_TRUE(got->cancel_requested);
  EXPECT_EQ(got->status, RunStatus::kPending);

  ExpectError(Write([&](StoreTx& tx) { return tx.RequestCancel("run-missing"); }),
              ErrorCode::kNotFound, {"run-missing"});
}

// ---------------------------------------------------------------------------------------
// Idempotency, counts

TEST_P(StoreQueueConformanceTest, FindRunByIdempotencyKeyWithinTheWindow) {
  Run old = QueuedRun(v_, "run-old");
  old.idempotency_key = "deploy-42";
  old.created_at = At(1);
  Run recent = QueuedRun(v_, "run-recent");
  recent.idempotency_key = "deploy-42";
  recent.created_at = At(5);
  Run other = QueuedRun(v_, "run-other");
  other.idempotency_key = "deploy-43";
  other.created_at = At(6);
  Run none = QueuedRun(v_, "run-none");
  none.created_at = At(7);
  ASSERT_OK(Insert({old, recent, other, none}));

  auto find = [&](const std::string& key, Timestamp since) {
    return WriteValue<std::optional<Run>>([&](StoreTx& tx) -> Result<std::optional<Run>> {
      AUTOMAN_RETURN_IF_ERROR(tx.LockKey(key));
      return tx.FindRunByIdempotencyKey(key, since);
    });
  };
  auto newest = find("deploy-42", At(0));
  ASSERT_OK(newest);
  ASSERT_TRUE(newest->has_value());
  EXPECT_EQ(**newest, recent);
  auto at5 = find("deploy-42", At(5));
  ASSERT_OK(at5);
  ASSERT_TRUE(at5->has_value());
  EXPECT_EQ((*at5)->id, "run-recent");
  auto outside = find("deploy-42", At(6));
  ASSERT_OK(outside);
  EXPECT_FALSE(outside->has_value());
  auto unknown = find("deploy-44", At(0));
  ASSERT_OK(unknown);
  EXPECT_FALSE(unknown->has_value());
}

TEST_P(StoreQueueConformanceTest, CountRunsByStatusListsEveryStatus) {
  auto empty =
      ReadValue<std::map<RunStatus, int64_t>>([&](StoreTx& tx) { return tx.CountRunsByStatus(); });
  ASSERT_OK(empty);
  EXPECT_EQ(empty->size(), static_cast<size_t>(RunStatus::kDead) + 1);
  for (const auto& [status, n] : *empty) EXPECT_EQ(n, 0) << ToString(status);

  Run a = QueuedRun(v_, "run-a"), b = QueuedRun(v_, "run-b"), c = QueuedRun(v_, "run-c"),
      d = QueuedRun(v_, "run-d");
  c.status = RunStatus::kDead;
  d.status = RunStatus::kRunning;
  ASSERT_OK(Insert({a, b, c, d}));
  auto counts =
      ReadValue<std::map<RunStatus, int64_t>>([&](StoreTx& tx) { return tx.CountRunsByStatus(); });
  ASSERT_OK(counts);
  EXPECT_EQ(counts->size(), static_cast<size_t>(RunStatus::kDead) + 1);
  EXPECT_EQ(counts->at(RunStatus::kPending), 2);
  EXPECT_EQ(counts->at(RunStatus::kDead), 1);
  EXPECT_EQ(counts->at(RunStatus::kRunning), 1);
  EXPECT_EQ(counts->at(RunStatus::kSuccess), 0);
}

// ---------------------------------------------------------------------------------------
// Retention

TEST_P(StoreQueueConformanceTest, ListPrunableByAgeOldestFirst) {
  ASSERT_OK(Finished("run-3", v_, 3));
  ASSERT_OK(Finished("run-1", v_, 1, RunStatus::kFailed));
  ASSERT_OK(Finished("run-2", v_, 2, RunStatus::kDead));
  ASSERT_OK(Finished("run-5", v_, 5));
  // Not terminal, even with a finish time (a failed attempt waiting for its retry).
  Run retrying = QueuedRun(v_, "run-retrying");
  retrying.finished_at = At(0);
  Run running = QueuedRun(v_, "run-running");
  running.status = RunStatus::kRunning;
  ASSERT_OK(Insert({retrying, running}));

  auto old = Prunable(At(5), std::nullopt);
  ASSERT_OK(old);
  EXPECT_EQ(*old, (std::vector<std::string>{"run-1", "run-2", "run-3"}));
  auto two = Prunable(At(5), std::nullopt, 2);
  ASSERT_OK(two);
  EXPECT_EQ(*two, (std::vector<std::string>{"run-1", "run-2"}));
  auto nothing = Prunable(std::nullopt, std::nullopt);
  ASSERT_OK(nothing);
  EXPECT_TRUE(nothing->empty());
}

TEST_P(StoreQueueConformanceTest, ListPrunableKeepsTheNewestPerRunbook) {
  RunbookVersion other = SampleVersion("backup", "id: backup\nsteps: []\n");
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(other); }));
  ASSERT_OK(Finished("a-1", v_, 1));
  ASSERT_OK(Finished("a-2", v_, 2));
  ASSERT_OK(Finished("a-3", v_, 3, RunStatus::kCancelled));
  ASSERT_OK(Finished("a-4", v_, 4));
  ASSERT_OK(Finished("b-1", other, 5));
  ASSERT_OK(Finished("b-2", other, 6));
  Run pending = QueuedRun(v_, "a-pending");
  ASSERT_OK(Insert({pending}));

  auto keep2 = Prunable(std::nullopt, 2);
  ASSERT_OK(keep2);
  EXPECT_EQ(*keep2, (std::vector<std::string>{"a-1", "a-2"}));
  auto keep1 = Prunable(std::nullopt, 1);
  ASSERT_OK(keep1);
  EXPECT_EQ(*keep1, (std::vector<std::string>{"a-1", "a-2", "a-3", "b-1"}));
  auto keep0 = Prunable(std::nullopt, 0, 3);
  ASSERT_OK(keep0);
  EXPECT_EQ(*keep0, (std::vector<std::string>{"a-1", "a-2", "a-3"}));
  // Either rule removes a run: beyond the count, or older than the age.
  auto either = Prunable(At(6), 3);
  ASSERT_OK(either);
  EXPECT_EQ(*either, (std::vector<std::string>{"a-1", "a-2", "a-3", "a-4", "b-1"}));
}

TEST_P(StoreQueueConformanceTest, ListPrunableValidatesItsArguments) {
  for (int limit : {0, 10001}) {
    ExpectError(Prunable(At(1), std::nullopt, limit).status(), ErrorCode::kInvalidArgument,
                {std::to_string(limit)});
  }
  ExpectError(Prunable(std::nullopt, -1).status(), ErrorCode::kInvalidArgument, {"-1"});
  ASSERT_OK(Prunable(At(1), 5, 10000));
}

TEST_P(StoreQueueConformanceTest, DeleteRunsRemovesEverythingOfTheRuns) {
  Run gone = QueuedRun(v_, "run-gone");
  gone.concurrency = {Key("db", 1)};
  Run kept = QueuedRun(v_, "run-kept");
  kept.concurrency = {Key("db", 1)};
  ASSERT_OK(Insert({gone, kept}));
  for (const Run* r : {&gone, &kept}) {
    ASSERT_OK(Write([&](StoreTx& tx) -> Status {
      AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt(Attempt{.run_id = r->id, .number = 1}));
      AUTOMAN_RETURN_IF_ERROR(
          tx.UpsertStepRun(StepRun{.run_id = r->id, .attempt = 1, .step_id = "s"}));
      std::vector<LogLine> lines = {SampleLine(r->id, 1, 1), SampleLine(r->id, 1, 2)};
      return tx.AppendLogLines(lines);
    }));
  }
  ASSERT_OK(SetStatus(gone, RunStatus::kSuccess, At(2)));
  ASSERT_OK(SetStatus(kept, RunStatus::kFailed, At(3)));

  const std::vector<std::string> ids = {"run-gone", "run-never-existed"};
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.DeleteRuns(ids); }));
  ExpectError(GetRun(gone.id).status(), ErrorCode::kNotFound);
  auto attempts = ListAttempts(gone.id);
  ASSERT_OK(attempts);
  EXPECT_TRUE(attempts->empty());
  auto steps = ListStepRuns(gone.id);
  ASSERT_OK(steps);
  EXPECT_TRUE(steps->empty());
  auto lines = ReadLines({.run_id = gone.id});
  ASSERT_OK(lines);
  EXPECT_TRUE(lines->empty());

  // The other run is whole, keys included, and the id can be used again.
  auto other = GetRun(kept.id);
  ASSERT_OK(other);
  EXPECT_EQ(*other, kept);
  auto kept_lines = ReadLines({.run_id = kept.id});
  ASSERT_OK(kept_lines);
  EXPECT_EQ(kept_lines->size(), 2u);
  Run again = QueuedRun(v_, "run-gone");
  ASSERT_OK(Insert({again}));
  auto reinserted = GetRun(again.id);
  ASSERT_OK(reinserted);
  EXPECT_TRUE(reinserted->concurrency.empty());
}

TEST_P(StoreQueueConformanceTest, DeleteRunsRefusesRunsThatAreNotTerminal) {
  Run done = QueuedRun(v_, "run-done");
  done.status = RunStatus::kSuccess;
  done.finished_at = At(1);
  Run active = QueuedRun(v_, "run-active");
  active.status = RunStatus::kWaiting;
  ASSERT_OK(Insert({done, active}));
  const std::vector<std::string> ids = {"run-done", "run-active"};
  ExpectError(Write([&](StoreTx& tx) { return tx.DeleteRuns(ids); }),
              ErrorCode::kFailedPrecondition, {"run-active", "WAITING"});
  // Nothing was deleted, not even the terminal run listed first, within the same
  // transaction either.
  ASSERT_OK(GetRun(done.id));
  ASSERT_OK(GetRun(active.id));
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    Status refused = tx.DeleteRuns(ids);
    if (refused.ok()) return Error(ErrorCode::kInternal, "DeleteRuns was not refused");
    return tx.GetRun(done.id).status();
  }));
  ASSERT_OK(GetRun(done.id));
}

// ---------------------------------------------------------------------------------------
// Read transactions

TEST_P(StoreQueueConformanceTest, QueueWritesInAReadTransactionAreRefused) {
  Run r = QueuedRun(v_, "run-read");
  r.concurrency = {Key("db", 1)};
  r.status = RunStatus::kSuccess;
  ASSERT_OK(Insert({r}));
  const std::vector<std::string> ids = {r.id};
  std::vector<std::pair<std::string, std::function<Status(StoreTx&)>>> writes = {
      {"UpdateRunAdvancingFence",
       [&](StoreTx& tx) {
         Run next = r;
         next.fence = 1;
         return tx.UpdateRunAdvancingFence(next, 0);
       }},
      {"AcquireSlots", [&](StoreTx& tx) { return tx.AcquireSlots(r, At(1)).status(); }},
      {"ReleaseSlots", [&](StoreTx& tx) { return tx.ReleaseSlots(r); }},
      {"RecountSlots", [&](StoreTx& tx) { return tx.RecountSlots(); }},
      {"RenewLease", [&](StoreTx& tx) { return tx.RenewLease(r.id, 0, At(9)).status(); }},
      {"RequestCancel", [&](StoreTx& tx) { return tx.RequestCancel(r.id); }},
      {"DeleteRuns", [&](StoreTx& tx) { return tx.DeleteRuns(ids); }},
  };
  for (const auto& [name, fn] : writes) {
    ExpectError(Read(fn), ErrorCode::kFailedPrecondition, {name});
  }
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, r);
}

}  // namespace
}  // namespace automan::testing
