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
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <stdexcept>
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
                         std::string* id, Store::TxMode mode = Store::TxMode::kWrite) {
  Run r = SampleRun(v);
  r.triggered_by = by;
  std::vector<LogLine> lines;
  for (int i = 1; i <= kLinesPerRun; ++i) lines.push_back(SampleLine(r.id, 1, i));
  AUTOMAN_RETURN_IF_ERROR(store.Transact(mode, [&](StoreTx& tx) {
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

int ModeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 0777);
}

class SqliteStoreChildTest : public StoreTest {};
class SqliteStoreCrashTest : public StoreTest {};
class SqliteStoreProcessesTest : public StoreTest {};
class SqliteStoreThreadsTest : public StoreTest {};
class SqliteGroupCommitTest : public StoreTest {};
class SqliteQueueListenerTest : public StoreTest {};

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

// ---------------------------------------------------------------------------------------
// Group commit

// Keeps the group-commit leadership of `store` inside a write callback until Release(), so
// that the writers queued meanwhile (Queue) form the next batch together, in the order
// they were queued.
class HeldBatch {
 public:
  explicit HeldBatch(SqliteStore& store) : store_(store) {
    holder_ = std::thread([this] {
      Status s = store_.Transact(Store::TxMode::kWrite, [&](StoreTx&) {
        std::unique_lock<std::mutex> lock(mu_);
        holding_ = true;
        cv_.notify_all();
        cv_.wait(lock, [&] { return released_; });
        return Status::Ok();
      });
      EXPECT_TRUE(s.ok()) << s.ToString();
    });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return holding_; });
  }
  ~HeldBatch() { Release(); }

  // Starts Transact(mode, fn) on its own thread and returns once it waits in the queue.
  // Its outcome goes to `*out`; an exception it throws, to `*thrown`.
  void Queue(std::function<Status(StoreTx&)> fn, Status* out, std::string* thrown = nullptr,
             Store::TxMode mode = Store::TxMode::kWrite) {
    const size_t queued = store_.QueuedWrites();
    writers_.emplace_back([this, fn = std::move(fn), out, thrown, mode] {
      try {
        *out = store_.Transact(mode, fn);
      } catch (const std::exception& e) {
        if (thrown != nullptr) *thrown = e.what();
      }
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (store_.QueuedWrites() <= queued) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "the writer never queued";
        return;
      }
      std::this_thread::yield();
    }
  }

  // Lets the held batch commit and waits for every queued writer.
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
    if (holder_.joinable()) holder_.join();
    for (std::thread& t : writers_) t.join();
    writers_.clear();
  }

 private:
  SqliteStore& store_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool holding_ = false;   // guarded by mu_
  bool released_ = false;  // guarded by mu_
  std::thread holder_;
  std::vector<std::thread> writers_;
};

Status InsertRunNamed(StoreTx& tx, const RunbookVersion& v, const std::string& id,
                      const std::string& by = "test") {
  Run r = SampleRun(v);
  r.id = id;
  r.triggered_by = by;
  return tx.InsertRun(r);
}

bool Stored(Store& store, const std::string& id) {
  Status s =
      store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) { return tx.GetRun(id).status(); });
  EXPECT_TRUE(s.ok() || s.code() == ErrorCode::kNotFound) << s.ToString();
  return s.ok();
}

// Many threads commit small transactions at once (durable and progress ones, some of which
// fail on purpose): each caller gets its own outcome, and exactly the acknowledged runs are
// in the file after reopening it.
TEST_F(SqliteGroupCommitTest, ManyThreadsEachGetTheirOwnOutcome) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  constexpr int kThreads = 16;
  constexpr int kPerThread = 25;
  RunbookVersion v = SampleVersion();
  std::mutex mu;
  std::vector<std::string> acknowledged;
  int refused = 0;
  {
    auto opened = SqliteStore::Open(path, {});
    ASSERT_OK(opened);
    SqliteStore& store = **opened;
    ASSERT_OK(store.Transact(Store::TxMode::kWrite,
                             [&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const bool fail = (t * kPerThread + i) % 7 == 3;
          const auto mode = i % 2 == 0 ? Store::TxMode::kWrite : Store::TxMode::kWriteProgress;
          Run r = SampleRun(v);
          std::vector<LogLine> lines;
          for (int k = 1; k <= kLinesPerRun; ++k) lines.push_back(SampleLine(r.id, 1, k));
          Status s = store.Transact(mode, [&](StoreTx& tx) -> Status {
            AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
            AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt(Attempt{.run_id = r.id, .number = 1}));
            AUTOMAN_RETURN_IF_ERROR(tx.AppendLogLines(lines));
            if (fail) return Error(ErrorCode::kFailedPrecondition, "run {} gives up", r.id);
            return Status::Ok();
          });
          std::lock_guard<std::mutex> lock(mu);
          if (fail) {
            ++refused;
            EXPECT_EQ(s.code(), ErrorCode::kFailedPrecondition) << s.ToString();
            EXPECT_NE(s.message().find(r.id), std::string::npos) << s.ToString();
          } else if (s.ok()) {
            acknowledged.push_back(r.id);
          } else {
            ADD_FAILURE() << s.ToString();
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  EXPECT_EQ(acknowledged.size() + refused, static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(VerifyStore(path, acknowledged), acknowledged.size());
}

// A member whose callback fails is rolled back alone: the members before and after it in
// the same batch commit.
TEST_F(SqliteGroupCommitTest, AFailingMemberDoesNotAffectTheOthers) {
  TempDir dir;
  auto opened = SqliteStore::Open(dir.File("automan.db"), {});
  ASSERT_OK(opened);
  SqliteStore& store = **opened;
  RunbookVersion v = SampleVersion();
  ASSERT_OK(
      store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  ASSERT_OK(store.Transact(Store::TxMode::kWrite,
                           [&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-existing"); }));

  Status before, failing, duplicate, after;
  {
    HeldBatch held(store);
    held.Queue([&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-before"); }, &before);
    held.Queue(
        [&](StoreTx& tx) -> Status {
          AUTOMAN_RETURN_IF_ERROR(InsertRunNamed(tx, v, "run-failing"));
          return Error(ErrorCode::kFailedPrecondition, "member gives up");
        },
        &failing);
    held.Queue(
        [&](StoreTx& tx) -> Status {
          AUTOMAN_RETURN_IF_ERROR(InsertRunNamed(tx, v, "run-partial"));
          return InsertRunNamed(tx, v, "run-existing");  // a failed statement
        },
        &duplicate, nullptr, Store::TxMode::kWriteProgress);
    held.Queue([&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-after"); }, &after);
    EXPECT_EQ(store.QueuedWrites(), 4u);
  }
  ASSERT_OK(before);
  ASSERT_OK(after);
  ExpectError(failing, ErrorCode::kFailedPrecondition, {"member gives up"});
  ExpectError(duplicate, ErrorCode::kAlreadyExists, {"run-existing"});
  EXPECT_TRUE(Stored(store, "run-before"));
  EXPECT_TRUE(Stored(store, "run-after"));
  EXPECT_FALSE(Stored(store, "run-failing"));
  EXPECT_FALSE(Stored(store, "run-partial"));
}

// SQLite rolls the whole transaction back (here a trigger's RAISE(ROLLBACK)): nothing of the
// batch is committed, every member learns it, and the store goes on working.
TEST_F(SqliteGroupCommitTest, AnSqliteRollbackFailsTheWholeBatch) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  auto opened = SqliteStore::Open(path, {});
  ASSERT_OK(opened);
  SqliteStore& store = **opened;
  RunbookVersion v = SampleVersion();
  ASSERT_OK(
      store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(raw,
                                "CREATE TRIGGER poison BEFORE INSERT ON runs "
                                "WHEN NEW.triggered_by = 'poison' "
                                "BEGIN SELECT RAISE(ROLLBACK, 'poisoned run'); END",
                                nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "");
    sqlite3_free(err);
    sqlite3_close(raw);
  }

  Status before, poisoned, after;
  {
    HeldBatch held(store);
    held.Queue([&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-before"); }, &before);
    held.Queue(
        [&](StoreTx& tx) -> Status {
          // The error is ignored: SQLite has rolled everything back all the same.
          (void)InsertRunNamed(tx, v, "run-poisoned", "poison");
          return Status::Ok();
        },
        &poisoned);
    held.Queue([&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-after"); }, &after);
  }
  ExpectError(before, ErrorCode::kAborted, {"group commit", "poisoned run", "retry"});
  ExpectError(poisoned, ErrorCode::kAborted, {"rolled the transaction back"});
  ExpectError(after, ErrorCode::kAborted, {"not run", "poisoned run"});
  for (const char* id : {"run-before", "run-poisoned", "run-after"}) {
    EXPECT_FALSE(Stored(store, id)) << id;
  }
  // The same when the member returns the error: it gets its own error.
  {
    HeldBatch held(store);
    held.Queue([&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-before"); }, &before);
    held.Queue([&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-poisoned", "poison"); },
               &poisoned);
  }
  ExpectError(before, ErrorCode::kAborted, {"group commit", "poisoned run"});
  ExpectError(poisoned, ErrorCode::kInvalidArgument, {"run-poisoned", "poisoned run"});
  EXPECT_FALSE(Stored(store, "run-before"));

  ASSERT_OK(store.Transact(Store::TxMode::kWrite,
                           [&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-later"); }));
  EXPECT_TRUE(Stored(store, "run-later"));
}

// A callback runs on the leader's thread; an exception it throws comes back to its own
// caller, and its batch-mates commit.
TEST_F(SqliteGroupCommitTest, AnExceptionReachesItsOwnCaller) {
  TempDir dir;
  auto opened = SqliteStore::Open(dir.File("automan.db"), {});
  ASSERT_OK(opened);
  SqliteStore& store = **opened;
  RunbookVersion v = SampleVersion();
  ASSERT_OK(
      store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  Status before, throwing, after;
  std::string thrown;
  {
    HeldBatch held(store);
    held.Queue([&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-before"); }, &before);
    held.Queue(
        [&](StoreTx& tx) -> Status {
          AUTOMAN_RETURN_IF_ERROR(InsertRunNamed(tx, v, "run-throwing"));
          throw std::runtime_error("callback exploded");
        },
        &throwing, &thrown);
    held.Queue([&](StoreTx& tx) { return InsertRunNamed(tx, v, "run-after"); }, &after);
  }
  EXPECT_EQ(thrown, "callback exploded");
  ASSERT_OK(before);
  ASSERT_OK(after);
  EXPECT_TRUE(Stored(store, "run-before"));
  EXPECT_TRUE(Stored(store, "run-after"));
  EXPECT_FALSE(Stored(store, "run-throwing"));
}

// A write transaction started inside another one's callback cannot be in a batch before
// the outer one ends: it gets kUnavailable after the busy timeout, and the outer commits.
TEST_F(SqliteGroupCommitTest, NestedWriteTimesOutAndTheOuterCommits) {
  TempDir dir;
  auto opened =
      SqliteStore::Open(dir.File("automan.db"), {.busy_timeout = std::chrono::milliseconds(50)});
  ASSERT_OK(opened);
  SqliteStore& store = **opened;
  RunbookVersion v = SampleVersion();
  Status nested;
  ASSERT_OK(store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
    nested = store.Transact(Store::TxMode::kWrite,
                            [&](StoreTx& inner) { return InsertRunNamed(inner, v, "run-inner"); });
    return InsertRunNamed(tx, v, "run-outer");
  }));
  ExpectError(nested, ErrorCode::kUnavailable, {"busy timeout (50 ms)"});
  EXPECT_TRUE(Stored(store, "run-outer"));
  EXPECT_FALSE(Stored(store, "run-inner"));
  EXPECT_EQ(store.QueuedWrites(), 0u);
}

// ---------------------------------------------------------------------------------------
// Queue wake-ups

std::unique_ptr<QueueListener> Listen(Store& store) {
  auto l = store.ListenQueue();
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return l.ok() ? std::move(l).value() : nullptr;
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out.push_back(e.path().filename().string());
  }
  return out;
}

TEST_F(SqliteQueueListenerTest, NotifyFromAnotherStoreWakesAListener) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  auto listening = SqliteStore::Open(path, {});
  auto notifying = SqliteStore::Open(path, {});
  ASSERT_OK(listening);
  ASSERT_OK(notifying);
  auto listener = Listen(**listening);
  ASSERT_NE(listener, nullptr);
  EXPECT_EQ(ModeOf(path + ".wake"), 0700);
  EXPECT_EQ(FilesIn(path + ".wake").size(), 1u);

  EXPECT_FALSE(listener->Wait(std::chrono::milliseconds(0)));
  // Three notifications before the Wait count as one.
  for (int i = 0; i < 3; ++i) ASSERT_OK((*notifying)->NotifyQueue());
  EXPECT_TRUE(listener->Wait(std::chrono::seconds(30)));
  EXPECT_FALSE(listener->Wait(std::chrono::milliseconds(20)));

  // A notification while the listener waits.
  std::thread notifier([&] { ASSERT_OK((*notifying)->NotifyQueue()); });
  EXPECT_TRUE(listener->Wait(std::chrono::seconds(30)));
  notifier.join();

  // Every listener gets it, those of the notifying store's process included.
  auto second = Listen(**notifying);
  ASSERT_NE(second, nullptr);
  ASSERT_OK((*listening)->NotifyQueue());
  EXPECT_TRUE(listener->Wait(std::chrono::seconds(30)));
  EXPECT_TRUE(second->Wait(std::chrono::seconds(30)));

  // A listener removes its socket when it goes.
  listener.reset();
  second.reset();
  EXPECT_TRUE(FilesIn(path + ".wake").empty());
  ASSERT_OK((*notifying)->NotifyQueue());
}

TEST_F(SqliteQueueListenerTest, NotifyWithoutListenersIsFine) {
  TempDir dir;
  auto store = SqliteStore::Open(dir.File("automan.db"), {});
  ASSERT_OK(store);
  ASSERT_OK((*store)->NotifyQueue());
  EXPECT_EQ(ModeOf(dir.File("automan.db.wake")), -1);  // created by the first listener only
}

TEST_F(SqliteQueueListenerTest, WakeReturnsAtOnceAndTimeoutReturnsFalse) {
  TempDir dir;
  auto store = SqliteStore::Open(dir.File("automan.db"), {});
  ASSERT_OK(store);
  auto listener = Listen(**store);
  ASSERT_NE(listener, nullptr);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(listener->Wait(std::chrono::milliseconds(30)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(30));

  listener->Wake();
  listener->Wake();
  EXPECT_TRUE(listener->Wait(std::chrono::seconds(30)));
  EXPECT_FALSE(listener->Wait(std::chrono::milliseconds(0)));

  std::thread waker([&] { listener->Wake(); });
  EXPECT_TRUE(listener->Wait(std::chrono::seconds(30)));
  waker.join();
}

// A listener whose process died leaves its socket file behind: the next notification finds
// nobody bound to it and removes it, and leaves other files alone.
TEST_F(SqliteQueueListenerTest, DeadListenerSocketsAreRemoved) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  const std::string wake_dir = path + ".wake";
  auto store = SqliteStore::Open(path, {});
  ASSERT_OK(store);
  auto live = Listen(**store);
  ASSERT_NE(live, nullptr);
  {
    // What a killed listener leaves: a bound socket file, closed without unlinking.
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string dead = wake_dir + "/999999-1";
    ASSERT_LT(dead.size(), sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, dead.c_str(), dead.size() + 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
    close(fd);
  }
  WriteFile(wake_dir + "/not-a-socket", "x");
  EXPECT_EQ(FilesIn(wake_dir).size(), 3u);

  auto other = SqliteStore::Open(path, {});
  ASSERT_OK(other);
  ASSERT_OK((*other)->NotifyQueue());
  std::vector<std::string> left = FilesIn(wake_dir);
  EXPECT_EQ(left.size(), 2u);
  EXPECT_EQ(std::count(left.begin(), left.end(), "999999-1"), 0);
  EXPECT_EQ(std::count(left.begin(), left.end(), "not-a-socket"), 1);
  EXPECT_TRUE(live->Wait(std::chrono::seconds(30)));
}

// A database path too long for a socket address still gets its wake-ups.
TEST_F(SqliteQueueListenerTest, LongPathsWork) {
  TempDir dir;
  const std::string path = dir.File(std::string(120, 'd') + "/automan.db");
  auto listening = SqliteStore::Open(path, {});
  auto notifying = SqliteStore::Open(path, {});
  ASSERT_OK(listening);
  ASSERT_OK(notifying);
  auto listener = Listen(**listening);
  ASSERT_NE(listener, nullptr);
  ASSERT_OK((*notifying)->NotifyQueue());
  EXPECT_TRUE(listener->Wait(std::chrono::seconds(30)));
}

TEST_F(SqliteQueueListenerTest, MemoryStoresWakeTheirOwnListenersOnly) {
  auto a = Store::Open({.url = "sqlite::memory:"});
  auto b = Store::Open({.url = "sqlite::memory:"});
  ASSERT_OK(a);
  ASSERT_OK(b);
  auto la = Listen(**a);
  auto la2 = Listen(**a);
  auto lb = Listen(**b);
  ASSERT_NE(la, nullptr);
  ASSERT_NE(la2, nullptr);
  ASSERT_NE(lb, nullptr);
  ASSERT_OK((*a)->NotifyQueue());
  ASSERT_OK((*a)->NotifyQueue());
  EXPECT_TRUE(la->Wait(std::chrono::seconds(30)));
  EXPECT_TRUE(la2->Wait(std::chrono::seconds(30)));
  EXPECT_FALSE(la->Wait(std::chrono::milliseconds(0)));
  EXPECT_FALSE(lb->Wait(std::chrono::milliseconds(20)));

  std::thread notifier([&] { ASSERT_OK((*b)->NotifyQueue()); });
  EXPECT_TRUE(lb->Wait(std::chrono::seconds(30)));
  notifier.join();
  lb->Wake();
  EXPECT_TRUE(lb->Wait(std::chrono::milliseconds(0)));
  // A listener may outlive its store.
  a->reset();
  EXPECT_FALSE(la->Wait(std::chrono::milliseconds(0)));
}

}  // namespace
}  // namespace automan::testing
