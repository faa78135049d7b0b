// The SQLite backend under concurrency: threads sharing a Store (the conformance suite),
// several Store objects and several processes on one file, and a writer killed with
// SIGKILL in the middle of its stream of commits.
//
// Child processes are this test binary re-executed with
// --gtest_filter=SqliteStoreChildTest.Writer and AUTOMAN_STORE_CHILD_* in the environment:
// a real separate process writing through the Store API.
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
#include <set>
#include <thread>

#include "store/sqlite/migrations.h"
#include "store/sqlite/sqlite_store.h"
#include "store_conformance.h"
#include "support/test_util.h"
#include "writer_child.h"

extern char** environ;

namespace automan::testing {
namespace {

constexpr int kLinesPerRun = 20;  // log lines a writer commits with each run

const TempDir& SuiteDir() {
  static TempDir dir;
  return dir;
}

Result<std::unique_ptr<Store>> OpenFreshFile() {
  static std::atomic<int> n{0};
  return Store::Open(
      {.url = "sqlite:" + SuiteDir().File("concurrency-" + std::to_string(n++) + ".db")});
}

Result<std::unique_ptr<Store>> OpenMemory() { return Store::Open({.url = "sqlite::memory:"}); }

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConcurrencyTest,
                         ::testing::Values(StoreBackend{"file", OpenFreshFile},
                                           StoreBackend{"memory", OpenMemory}),
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

// Checks the file: integrity, every run in `must_have` present, every stored run complete
// (its transaction was all or nothing). Returns the number of stored runs.
size_t VerifyStore(const std::string& path, const std::vector<std::string>& must_have) {
  auto opened = SqliteStore::Open(path, {});
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  if (!opened.ok()) return 0;
  SqliteStore& store = **opened;
  EXPECT_TRUE(store.CheckIntegrity().ok()) << store.CheckIntegrity().ToString();
  std::vector<Run> runs;
  Status s = store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
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

class SqliteStoreChildTest : public StoreTest {};
class SqliteStoreCrashTest : public StoreTest {};
class SqliteStoreProcessesTest : public StoreTest {};
class SqliteStoreThreadsTest : public StoreTest {};

// ---------------------------------------------------------------------------------------
// Child processes

// Not a test of its own: the body of a writer child process (see the file comment).
// Writes AUTOMAN_STORE_CHILD_RUNS runs (0: until killed), reporting each id on the pipe
// after its transaction committed.
TEST_F(SqliteStoreChildTest, Writer) {
  const char* db = std::getenv("AUTOMAN_STORE_CHILD_DB");
  const char* runs_env = std::getenv("AUTOMAN_STORE_CHILD_RUNS");
  if (db == nullptr || runs_env == nullptr) {
    GTEST_SKIP() << "helper: runs only as a child process of the multi-process tests";
  }
  const int runs = std::atoi(runs_env);
  auto store = Store::Open({.url = std::string("sqlite:") + db});
  ASSERT_OK(store);
  RunbookVersion v = SampleVersion();
  const std::string me = "child-" + std::to_string(getpid());
  for (int i = 0; runs == 0 || i < runs; ++i) {
    std::string id;
    ASSERT_OK(WriteRunWithLines(**store, v, me, &id));
    id += '\n';
    ASSERT_EQ(write(kWriterChildFd, id.data(), id.size()), static_cast<ssize_t>(id.size()));
  }
}

// A writer child on the database file `db` that writes `runs` runs (0: until killed).
WriterChild SpawnWriter(const std::string& db, int runs) {
  return WriterChild::Spawn(
      "SqliteStoreChildTest.Writer",
      {"AUTOMAN_STORE_CHILD_DB=" + db, "AUTOMAN_STORE_CHILD_RUNS=" + std::to_string(runs)});
}

// The writer is killed with SIGKILL in the middle of its stream of commits, twice. Every
// run it reported as committed must be there after reopening, every stored run must be
// whole, and the file must pass PRAGMA integrity_check.
TEST_F(SqliteStoreCrashTest, KillNineOfAWriterLosesNoCommittedRun) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  std::vector<std::string> reported;
  for (int round = 1; round <= 2; ++round) {
    WriterChild child = SpawnWriter(path, 0);
    const size_t target = reported.size() + 25;
    bool killed = false;
    std::string id;
    while (child.Next(&id)) {
      reported.push_back(id);
      if (!killed && reported.size() >= target) {
        child.Kill();  // it keeps committing until the signal lands
        killed = true;
      }
    }
    const int status = child.Wait();
    ASSERT_TRUE(killed) << "the writer stopped before it was killed (status " << status << ")";
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

    const size_t stored = VerifyStore(path, reported);
    std::printf("[ crash    ] round %d: %zu runs reported committed, %zu stored\n", round,
                reported.size(), stored);
    // At most one commit per round can be durable without having been reported yet.
    EXPECT_GE(stored, reported.size());
    EXPECT_LE(stored, reported.size() + static_cast<size_t>(round));
  }
  std::set<std::string> unique(reported.begin(), reported.end());
  EXPECT_EQ(unique.size(), reported.size());
}

// Two other processes and this one write the same file at the same time, starting from a
// file that does not exist yet (so they also race through creation and migration).
TEST_F(SqliteStoreProcessesTest, ThreeProcessesWriteOneFile) {
  TempDir dir;
  const std::string path = dir.File("shared/automan.db");
  constexpr int kRuns = 15;
  WriterChild a = SpawnWriter(path, kRuns);
  WriterChild b = SpawnWriter(path, kRuns);

  std::vector<std::string> ids;
  {
    auto store = SqliteStore::Open(path, {});
    ASSERT_OK(store);
    RunbookVersion v = SampleVersion();
    for (int i = 0; i < kRuns; ++i) {
      std::string id;
      ASSERT_OK(WriteRunWithLines(**store, v, "parent", &id));
      ids.push_back(id);
    }
  }
  for (WriterChild* c : {&a, &b}) {
    std::string id;
    while (c->Next(&id)) ids.push_back(id);
    const int status = c->Wait();
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(3 * kRuns));
  EXPECT_EQ(VerifyStore(path, ids), static_cast<size_t>(3 * kRuns));
}

// ---------------------------------------------------------------------------------------
// Several Store objects in one process

TEST_F(SqliteStoreThreadsTest, TwoStoresOnOneFile) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  auto first = SqliteStore::Open(path, {});
  auto second = SqliteStore::Open(path, {});
  ASSERT_OK(first);
  ASSERT_OK(second);
  RunbookVersion v = SampleVersion();
  constexpr int kThreadsPerStore = 2;
  constexpr int kRuns = 8;
  std::mutex mu;
  std::vector<std::string> ids;
  std::vector<std::thread> threads;
  for (SqliteStore* store : {first->get(), second->get()}) {
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
  // Each store sees what the other wrote.
  for (SqliteStore* store : {first->get(), second->get()}) {
    std::vector<Run> runs;
    ASSERT_OK(store->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(runs, tx.ListRuns({.limit = 1000}));
      return Status::Ok();
    }));
    EXPECT_EQ(runs.size(), ids.size());
  }
  first->reset();
  second->reset();
  EXPECT_EQ(VerifyStore(path, ids), ids.size());
}

TEST_F(SqliteStoreThreadsTest, SimultaneousFirstOpensMigrateOnce) {
  TempDir dir;
  const std::string path = dir.File("new/automan.db");
  constexpr int kOpeners = 4;
  std::vector<std::unique_ptr<SqliteStore>> stores(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] {
      auto s = SqliteStore::Open(path, {});
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
    EXPECT_EQ(store->SchemaVersion(), LatestSqliteSchemaVersion());
    std::string id;
    ASSERT_OK(WriteRunWithLines(*store, v, "opener", &id));
    ids.push_back(id);
  }
  stores.clear();
  EXPECT_EQ(VerifyStore(path, ids), ids.size());
}

// A writer that holds the write lock longer than another writer's busy timeout: the other
// one gets kUnavailable rather than waiting forever, and succeeds once the lock is free.
TEST_F(SqliteStoreThreadsTest, BusyTimeoutBetweenThreadsIsUnavailable) {
  TempDir dir;
  auto opened =
      SqliteStore::Open(dir.File("automan.db"), {.busy_timeout = std::chrono::milliseconds(100)});
  ASSERT_OK(opened);
  SqliteStore& store = **opened;
  RunbookVersion v = SampleVersion();
  std::atomic<bool> holding{false}, release{false};
  std::thread holder([&] {
    Status s = store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) {
      AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
      holding = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  });
  while (!holding) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Status blocked = store.Transact(Store::TxMode::kWrite,
                                  [&](StoreTx& tx) { return tx.InsertRun(SampleRun(v)); });
  ExpectError(blocked, ErrorCode::kUnavailable, {"busy timeout (100 ms)"});
  // Reads go on meanwhile.
  EXPECT_TRUE(
      store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) { return tx.ListRuns({}).status(); })
          .ok());
  release = true;
  holder.join();
  ASSERT_OK(store.Transact(Store::TxMode::kWrite,
                           [&](StoreTx& tx) { return tx.InsertRun(SampleRun(v)); }));
}

}  // namespace
}  // namespace automan::testing
