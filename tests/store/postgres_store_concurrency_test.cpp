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

extern char** environ;

namespace automan::testing {
namespace {

constexpr int kChildFd = 100;     // where a child finds the write end of its pipe
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
    ASSERT_EQ(write(kChildFd, id.data(), id.size()), static_cast<ssize_t>(id.size()));
  }
}

class Child {
 public:
  static Child Spawn(const std::string& url) {
    Child c;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2 failed";
      return c;
    }
    char exe[PATH_MAX] = {};
    if (readlink("/proc/self/exe", exe, sizeof exe - 1) <= 0) ADD_FAILURE() << "readlink";
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    env_strings.push_back("AUTOMAN_PG_CHILD_URL=" + url);
    env_strings.push_back("AUTOMAN_TEST_PG_URL=" + PgBaseUrl());
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string filter = "--gtest_filter=PostgresStoreChildTest.Writer";
    char* argv[] = {exe, filter.data(), nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], kChildFd);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&c.pid_, exe, &fa, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn failed: " << rc;
      close(fds[0]);
      c.pid_ = -1;
      return c;
    }
    c.fd_ = fds[0];
    return c;
  }

  Child() = default;
  Child(Child&& o) noexcept : pid_(o.pid_), fd_(o.fd_), buf_(std::move(o.buf_)) {
    o.pid_ = -1;
    o.fd_ = -1;
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  // The next reported id; false at end of stream.
  bool Next(std::string* line) {
    while (true) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        *line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      if (fd_ < 0) return false;
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (poll(&p, 1, 60000) != 1) {
        ADD_FAILURE() << "child " << pid_ << " reported nothing for 60 s";
        return false;
      }
      char chunk[4096];
      ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close(fd_);
        fd_ = -1;
        buf_.clear();
        return false;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  void Kill() { kill(pid_, SIGKILL); }
  int Wait() {
    int status = -1;
    if (pid_ > 0) waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
};

// The writer is killed with SIGKILL in the middle of its stream of commits, twice: every
// run it reported committed is there, and every stored run is whole.
TEST_F(PostgresStoreCrashTest, KillNineOfAWriterLosesNoCommittedRun) {
  auto url = PgFreshUrl();
  ASSERT_OK(url);
  ASSERT_OK(Store::Open({.url = *url}));  // migrate before the child starts
  std::vector<std::string> reported;
  for (int round = 1; round <= 2; ++round) {
    Child child = Child::Spawn(*url);
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
