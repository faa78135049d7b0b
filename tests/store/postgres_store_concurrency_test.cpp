// The PostgreSQL backend under concurrency: threads sharing a Store (the conformance
// suite), two Store objects on one database, simultaneous first opens racing through the
// migration, and a writer process killed with SIGKILL in the middle of its commits.
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

}  // namespace
}  // namespace automan::testing
