// The PostgreSQL backend under concurrency: threads sharing a Store (the conformance
// suite), two Store objects on one database, simultaneous first opens racing through the
// migration, a writer process killed with SIGKILL in the middle of its commits, the queue
// primitives across transactions (slot races, SKIP LOCKED, advisory locks) and the
// LISTEN/NOTIFY queue listener.
//
// Child processes are this test binary re-executed with
// --gtest_filter=PostgresStoreChildTest.Writer and AUTOMAN_PG_CHILD_* in the environment.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "postgres_test_support.h"
#include "store/postgres/migrations.h"
#include "store_conformance.h"
#include "writer_child.h"

extern char** environ;

namespace automan::testing {
namespace {

constexpr int kLinesPerRun = 20;  // log lines a writer commits with each run

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConcurrencyTest,
                         ::testing::Values(StoreBackend{"schema", OpenFreshPostgres}),
                         StoreBackendName);

// One run with its attempt and kLinesPerRun log lines, committed in one transaction.
Status WriteRunWithLines(Store& store, const RunbookVersion& v, const std::string& by,
                         std::string* id) {
  Run r = SampleRun(v);
  r.triggered_by = by;
  std::vector<LogLine> lines;
  for (int i = 1; i <= kLinesPerRun; ++i) lines.push_back(SampleLine(r.id, 1, i));
  AUTOMAN_RETURN_IF_ERROR(store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) {
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
    AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
    AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt(Attempt{.run_id = r.id, .number = 1}));
    return tx.AppendLogLines(lines);
  }));
  *id = r.id;
  return Status::Ok();
}

// Every run in `must_have` present, every stored run whole. Returns the number of runs.
size_t VerifyStore(const std::string& url, const std::vector<std::string>& must_have) {
  auto opened = Store::Open({.url = url});
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  if (!opened.ok()) return 0;
  std::vector<Run> runs;
  Status s = (*opened)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(runs, tx.ListRuns({.limit = 1000}));
    for (const std::string& id : must_have) {
      Status got = tx.GetRun(id).status();
      if (!got.ok()) ADD_FAILURE() << "reported-committed run lost: " << got.ToString();
    }
    for (const Run& r : runs) {
      AUTOMAN_ASSIGN_OR_RETURN(auto lines, tx.ReadLogLines({.run_id = r.id}));
      AUTOMAN_ASSIGN_OR_RETURN(auto attempts, tx.ListAttempts(r.id));
      EXPECT_EQ(lines.size(), static_cast<size_t>(kLinesPerRun)) << r.id;
      EXPECT_EQ(attempts.size(), 1u) << r.id;
    }
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return runs.size();
}

class PostgresStoreChildTest : public StoreTest {};
class PostgresStoreCrashTest : public StoreTest {};
class PostgresStoreThreadsTest : public StoreTest {};

// Not a test of its own: the body of a writer child process (see the file comment).
TEST_F(PostgresStoreChildTest, Writer) {
  const char* url = std::getenv("AUTOMAN_PG_CHILD_URL");
  if (url == nullptr) GTEST_SKIP() << "helper: runs only as a child process of the crash test";
  auto store = Store::Open({.url = url});
  ASSERT_OK(store);
  RunbookVersion v = SampleVersion();
  const std::string me = "child-" + std::to_string(getpid());
  while (true) {
    std::string id;
    ASSERT_OK(WriteRunWithLines(**store, v, me, &id));
    id += '\n';
    ASSERT_EQ(write(kWriterChildFd, id.data(), id.size()), static_cast<ssize_t>(id.size()));
  }
}

// The writer is killed with SIGKILL in the middle of its stream of commits, twice: every
// run it reported committed is there, and every stored run is whole.
TEST_F(PostgresStoreCrashTest, KillNineOfAWriterLosesNoCommittedRun) {
  auto url = PgFreshUrl();
  ASSERT_OK(url);
  ASSERT_OK(Store::Open({.url = *url}));  // migrate before the child starts
  std::vector<std::string> reported;
  for (int round = 1; round <= 2; ++round) {
    WriterChild child =
        WriterChild::Spawn("PostgresStoreChildTest.Writer",
                           {"AUTOMAN_PG_CHILD_URL=" + *url, "AUTOMAN_TEST_PG_URL=" + PgBaseUrl()});
    const size_t target = reported.size() + 25;
    bool killed = false;
    std::string id;
    while (child.Next(&id)) {
      reported.push_back(id);
      if (!killed && reported.size() >= target) {
        child.Kill();
        killed = true;
      }
    }
    const int status = child.Wait();
    ASSERT_TRUE(killed) << "the writer stopped before it was killed (status " << status << ")";
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    const size_t stored = VerifyStore(*url, reported);
    std::printf("[ crash    ] round %d: %zu runs reported committed, %zu stored\n", round,
                reported.size(), stored);
    EXPECT_GE(stored, reported.size());
    EXPECT_LE(stored, reported.size() + static_cast<size_t>(round));
  }
  std::set<std::string> unique(reported.begin(), reported.end());
  EXPECT_EQ(unique.size(), reported.size());
}

TEST_F(PostgresStoreThreadsTest, TwoStoresOnOneDatabase) {
  auto url = PgFreshUrl();
  ASSERT_OK(url);
  auto first = Store::Open({.url = *url});
  auto second = Store::Open({.url = *url});
  ASSERT_OK(first);
  ASSERT_OK(second);
  RunbookVersion v = SampleVersion();
  constexpr int kThreadsPerStore = 2;
  constexpr int kRuns = 8;
  std::mutex mu;
  std::vector<std::string> ids;
  std::vector<std::thread> threads;
  for (Store* store : {first->get(), second->get()}) {
    for (int t = 0; t < kThreadsPerStore; ++t) {
      threads.emplace_back([&, store] {
        for (int i = 0; i < kRuns; ++i) {
          std::string id;
          Status s = WriteRunWithLines(*store, v, "thread", &id);
          if (!s.ok()) {
            ADD_FAILURE() << s.ToString();
            continue;
          }
          std::lock_guard<std::mutex> lock(mu);
          ids.push_back(id);
        }
      });
    }
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(ids.size(), static_cast<size_t>(2 * kThreadsPerStore * kRuns));
  for (Store* store : {first->get(), second->get()}) {
    std::vector<Run> runs;
    ASSERT_OK(store->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(runs, tx.ListRuns({.limit = 1000}));
      return Status::Ok();
    }));
    EXPECT_EQ(runs.size(), ids.size());
  }
  EXPECT_EQ(VerifyStore(*url, ids), ids.size());
}

TEST_F(PostgresStoreThreadsTest, SimultaneousFirstOpensMigrateOnce) {
  std::string schema;
  auto url = PgFreshUrl(&schema);
  ASSERT_OK(url);
  constexpr int kOpeners = 4;
  std::vector<std::unique_ptr<Store>> stores(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] {
      auto s = Store::Open({.url = *url});
      if (!s.ok()) {
        ADD_FAILURE() << s.status().ToString();
        return;
      }
      stores[i] = std::move(s).value();
    });
  }
  for (std::thread& t : threads) t.join();
  RunbookVersion v = SampleVersion();
  std::vector<std::string> ids;
  for (auto& store : stores) {
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->SchemaVersion(), LatestPostgresSchemaVersion());
    std::string id;
    ASSERT_OK(WriteRunWithLines(*store, v, "opener", &id));
    ids.push_back(id);
  }
  auto rows = PgAdminQuery("SELECT count(*) FROM " + schema + ".schema_migrations");
  ASSERT_OK(rows);
  EXPECT_EQ(*rows, std::to_string(LatestPostgresSchemaVersion()));
  EXPECT_EQ(VerifyStore(*url, ids), ids.size());
}

// ---------------------------------------------------------------------------------------
// Queue primitives across transactions: row locks, SKIP LOCKED, advisory locks

class PostgresQueueConcurrencyTest : public StoreTest {
 protected:
  // A fresh schema reached under a unique application_name, so that WaitForLockWait can
  // find this test's backends among everything else running on the cluster.
  void SetUp() override {
    static std::atomic<int> n{0};
    app_ = "automan_qc_" + std::to_string(getpid()) + "_" + std::to_string(n.fetch_add(1));
    auto url = PgFreshUrl(&schema_);
    ASSERT_OK(url);
    url_ = *url + "&application_name=" + app_;
    auto a = Store::Open({.url = url_});
    auto b = Store::Open({.url = url_});
    ASSERT_OK(a);
    ASSERT_OK(b);
    a_ = std::move(a).value();
    b_ = std::move(b).value();
    version_ = SampleVersion();
  }

  // Blocks until one of this test's backends waits for a lock of `type` ('transactionid'
  // for a row lock held by another transaction, 'advisory' for pg_advisory_xact_lock).
  void WaitForLockWait(const std::string& type) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      auto n =
          PgAdminQuery("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app_ +
                       "' AND wait_event_type = 'Lock' AND wait_event = '" + type + "'");
      ASSERT_OK(n);
      if (*n != "0") return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL() << "no transaction of this test started waiting for a " << type << " lock";
  }

  Run KeyedRun(const std::string& key, int limit) {
    Run r = SampleRun(version_);
    r.concurrency = {ConcurrencyLimit{.key = key, .limit = limit}};
    return r;
  }

  Status Seed(const std::vector<Run>& runs) {
    return a_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(version_));
      for (const Run& r : runs) AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
      return Status::Ok();
    });
  }

  Result<std::string> Running(const std::string& key) {
    return PgAdminQuery("SELECT running FROM " + schema_ + ".key_slots WHERE key = '" + key + "'");
  }

  std::string schema_, app_, url_;
  std::unique_ptr<Store> a_, b_;
  RunbookVersion version_;
};

// The second transaction waits for the first one's row lock on the key, then re-checks
// the limit on the committed count: exactly one of them gets the slot.
TEST_F(PostgresQueueConcurrencyTest, RacingAcquireSlotsOnALimitOneKeyHasOneWinner) {
  Run first = KeyedRun("deploy", 1);
  Run second = KeyedRun("deploy", 1);
  ASSERT_OK(Seed({first, second}));
  for (const bool commit_first : {true, false}) {
    Result<bool> second_got = false;
    std::thread waiter;
    Status s = a_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(bool got, tx.AcquireSlots(first, At(10)));
      EXPECT_TRUE(got);
      waiter = std::thread([&] {
        Status w = b_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx2) -> Status {
          second_got = tx2.AcquireSlots(second, At(10));
          return second_got.status();
        });
        EXPECT_TRUE(w.ok()) << w.ToString();
      });
      WaitForLockWait("transactionid");
      return commit_first ? Status::Ok() : Error(ErrorCode::kCancelled, "roll back");
    });
    waiter.join();
    ASSERT_OK(second_got);
    if (commit_first) {
      ASSERT_OK(s);
      EXPECT_FALSE(*second_got) << "the limit-1 key was given to both transactions";
      EXPECT_EQ(*Running("deploy"), "1");
      // Back to zero for the second round.
      ASSERT_OK(
          a_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.ReleaseSlots(first); }));
    } else {
      ExpectError(s, ErrorCode::kCancelled);
      EXPECT_TRUE(*second_got) << "the slot of a rolled-back acquisition stayed taken";
      EXPECT_EQ(*Running("deploy"), "1");
    }
  }
}

// Many threads, each acquiring for its own run at once: the key's limit holds exactly.
TEST_F(PostgresQueueConcurrencyTest, ManyRacingAcquisitionsNeverOverbookAKey) {
  constexpr int kThreads = 8;
  constexpr int kLimit = 3;
  std::vector<Run> runs;
  for (int i = 0; i < kThreads; ++i) {
    Run r = KeyedRun("pool", kLimit);
    // Half also hold a second key with room for everyone: all-or-nothing across keys.
    if (i % 2 == 0) r.concurrency.push_back({.key = "wide", .limit = 100});
    runs.push_back(r);
  }
  ASSERT_OK(Seed(runs));
  std::atomic<int> winners{0};
  std::atomic<int> winners_wide{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Store& store = i % 2 == 0 ? *a_ : *b_;
      Status s = store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
        AUTOMAN_ASSIGN_OR_RETURN(bool got, tx.AcquireSlots(runs[i], At(10)));
        if (got) {
          ++winners;
          if (i % 2 == 0) ++winners_wide;
        }
        return Status::Ok();
      });
      EXPECT_TRUE(s.ok()) << s.ToString();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(winners.load(), kLimit);
  EXPECT_EQ(*Running("pool"), std::to_string(kLimit));
  // A run refused by "pool" gave back the "wide" slot it took first.
  EXPECT_EQ(*Running("wide"), std::to_string(winners_wide.load()));
}

// A claimer holding rows does not block a second one, which gets the other rows.
TEST_F(PostgresQueueConcurrencyTest, TwoClaimersSeeDisjointRows) {
  std::vector<Run> runs;
  for (int i = 0; i < 10; ++i) runs.push_back(SampleRun(version_));
  ASSERT_OK(Seed(runs));
  std::set<std::string> first_ids, second_ids;
  ASSERT_OK(a_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(auto mine, tx.ListClaimable(At(10), 4));
    for (const Run& r : mine) first_ids.insert(r.id);
    // Still holding the four rows, from a second connection (a read that locks nothing
    // sees all ten).
    Status s = b_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx2) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(auto theirs, tx2.ListClaimable(At(10), 10));
      for (const Run& r : theirs) second_ids.insert(r.id);
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    Status r = b_->Transact(Store::TxMode::kRead, [&](StoreTx& tx2) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(auto all, tx2.ListClaimable(At(10), 10));
      EXPECT_EQ(all.size(), 10u);
      return Status::Ok();
    });
    EXPECT_TRUE(r.ok()) << r.ToString();
    return Status::Ok();
  }));
  EXPECT_EQ(first_ids.size(), 4u);
  EXPECT_EQ(second_ids.size(), 6u);
  for (const std::string& id : first_ids) EXPECT_EQ(second_ids.count(id), 0u) << id;
}

TEST_F(PostgresQueueConcurrencyTest, RescuersSeeDisjointExpiredLeases) {
  std::vector<Run> runs;
  for (int i = 0; i < 6; ++i) {
    Run r = SampleRun(version_);
    r.status = RunStatus::kRunning;
    r.lease_owner = "gone";
    r.lease_expires_at = At(i);
    runs.push_back(r);
  }
  ASSERT_OK(Seed(runs));
  ASSERT_OK(a_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(auto mine, tx.ListExpiredLeases(At(100), 2));
    EXPECT_EQ(mine.size(), 2u);
    Status s = b_->Transact(Store::TxMode::kWrite, [&](StoreTx& tx2) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(auto theirs, tx2.ListExpiredLeases(At(100), 10));
      EXPECT_EQ(theirs.size(), 4u);
      for (const Run& r : theirs) {
        for (const Run& m : mine) EXPECT_NE(r.id, m.id);
      }
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return Status::Ok();
  }));
}

// Check-then-insert under LockKey: the second transaction waits for the first one's
// advisory lock and then finds its run, so one run is created.
TEST_F(PostgresQueueConcurrencyTest, LockKeySerialisesIdempotencyChecks) {
  ASSERT_OK(Seed({}));
  // One enqueue: LockKey, look the key up, insert when absent. Returns whether it created.
  auto enqueue = [&](Store& store, const std::string& key,
                     const std::function<void()>& before_commit) -> Result<bool> {
    bool created = false;
    Status s = store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_RETURN_IF_ERROR(tx.LockKey("idem:" + key));
      AUTOMAN_ASSIGN_OR_RETURN(auto existing, tx.FindRunByIdempotencyKey(key, At(0)));
      if (!existing) {
        Run r = SampleRun(version_);
        r.idempotency_key = key;
        AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
        created = true;
      }
      if (before_commit) before_commit();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return created;
  };
  // Deterministic: the second enqueue starts while the first holds the lock.
  Result<bool> second = false;
  std::thread t;
  auto first = enqueue(*a_, "k0", [&] {
    t = std::thread([&] { second = enqueue(*b_, "k0", nullptr); });
    WaitForLockWait("advisory");
  });
  t.join();
  ASSERT_OK(first);
  ASSERT_OK(second);
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*second);
  // Free-running: four threads race over the same keys.
  constexpr int kKeys = 20;
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 1; k <= kKeys; ++k) {
        auto got = enqueue(i % 2 == 0 ? *a_ : *b_, "k" + std::to_string(k), nullptr);
        EXPECT_TRUE(got.ok()) << got.status().ToString();
        if (got.ok() && *got) ++created;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(created.load(), kKeys);
  auto rows = PgAdminQuery("SELECT count(*) FROM " + schema_ + ".runs");
  ASSERT_OK(rows);
  EXPECT_EQ(*rows, std::to_string(kKeys + 1));
}

// ---------------------------------------------------------------------------------------
// Queue wake-ups (LISTEN/NOTIFY)

class PostgresQueueListenerTest : public PostgresQueueConcurrencyTest {};

TEST_F(PostgresQueueListenerTest, NotifyFromAnotherStoreWakesTheListener) {
  auto listener = a_->ListenQueue();
  ASSERT_OK(listener);
  ASSERT_OK(b_->NotifyQueue());
  EXPECT_TRUE((*listener)->Wait(std::chrono::seconds(20)));
  // Several notifications before a Wait: one wake-up. They are delivered asynchronously,
  // so give them time to arrive before the Wait that coalesces them.
  for (int i = 0; i < 3; ++i) ASSERT_OK(b_->NotifyQueue());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE((*listener)->Wait(std::chrono::seconds(20)));
  EXPECT_FALSE((*listener)->Wait(std::chrono::milliseconds(100)));
  // The notifying store's own listener hears it too.
  auto own = b_->ListenQueue();
  ASSERT_OK(own);
  ASSERT_OK(b_->NotifyQueue());
  EXPECT_TRUE((*own)->Wait(std::chrono::seconds(20)));
}

TEST_F(PostgresQueueListenerTest, WaitTimesOutWithoutNotification) {
  auto listener = a_->ListenQueue();
  ASSERT_OK(listener);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE((*listener)->Wait(std::chrono::milliseconds(150)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(150));
  EXPECT_FALSE((*listener)->Wait(std::chrono::milliseconds(0)));
}

TEST_F(PostgresQueueListenerTest, WakeReturnsAPendingOrTheNextWait) {
  auto listener = a_->ListenQueue();
  ASSERT_OK(listener);
  QueueListener& l = **listener;
  // Before the Wait: the next Wait returns at once, and only that one.
  l.Wake();
  l.Wake();
  EXPECT_TRUE(l.Wait(std::chrono::seconds(20)));
  EXPECT_FALSE(l.Wait(std::chrono::milliseconds(50)));
  // During the Wait, from another thread.
  const auto start = std::chrono::steady_clock::now();
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    l.Wake();
  });
  EXPECT_TRUE(l.Wait(std::chrono::seconds(20)));
  waker.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

// The payload names the schema: stores in other schemas of the database stay asleep.
TEST_F(PostgresQueueListenerTest, NotificationsOfAnotherSchemaAreIgnored) {
  auto listener = a_->ListenQueue();
  ASSERT_OK(listener);
  auto other = OpenFreshPostgres();
  ASSERT_OK(other);
  ASSERT_OK((*other)->NotifyQueue());
  EXPECT_FALSE((*listener)->Wait(std::chrono::milliseconds(300)));
}

// The server ends the listener's connection: Wait says so (true: re-poll), reconnects,
// and later notifications arrive again.
TEST_F(PostgresQueueListenerTest, ListenerReconnectsAfterItsConnectionIsKilled) {
  auto listener = a_->ListenQueue();
  ASSERT_OK(listener);
  auto killed = PgAdminQuery(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name "
      "= '" +
      app_ + "' AND query = 'LISTEN automan_queue'");
  ASSERT_OK(killed);
  ASSERT_EQ(*killed, "1");
  EXPECT_TRUE((*listener)->Wait(std::chrono::seconds(20)));
  // Reconnected (in that Wait or the next one); drain whatever the reconnection reported.
  while ((*listener)->Wait(std::chrono::milliseconds(200))) {
  }
  ASSERT_OK(b_->NotifyQueue());
  EXPECT_TRUE((*listener)->Wait(std::chrono::seconds(20)));
}

}  // namespace
}  // namespace automan::testing
