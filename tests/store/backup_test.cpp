// BackupStore: an online, consistent copy of a SQLite store; refusals; PostgreSQL advice;
// nothing half-written left behind.
#include "store/backup.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "store_conformance.h"
#include "support/test_util.h"

namespace automan::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// Nothing under `dest` or beside it: no copy, no temporary, no SQLite side files.
void ExpectNoCopy(const std::string& dest) {
  for (const char* suffix : {"", ".tmp", ".tmp-journal", ".tmp-wal", ".tmp-shm"}) {
    EXPECT_FALSE(Exists(dest + suffix)) << dest + suffix << " exists";
  }
}

// A raw connection, for checking a copy and for tampering with a store behind its back.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  // The first column of the first row, as text ("" when there is none or on error).
  std::string Text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class BackupTest : public StoreTest {
 protected:
  std::string db_path() const { return dir_.File("data/automan.db"); }
  std::string url() const { return "sqlite:" + db_path(); }

  std::unique_ptr<Store> OpenStore(const std::string& u) {
    auto s = Store::Open({.url = u});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  // A store with `versions` runbook versions of ~100 KB each (so the copy takes several
  // backup steps) and `runs` runs; returns the run ids.
  std::vector<std::string> Seed(Store& store, int versions, int runs) {
    std::vector<std::string> ids;
    const RunbookVersion v = SampleVersion();
    EXPECT_TRUE(store
                    .Transact(Store::TxMode::kWrite,
                              [&](StoreTx& tx) -> Status {
                                AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
                                for (int i = 0; i < versions; ++i) {
                                  RunbookVersion big = SampleVersion(
                                      "big-" + std::to_string(i),
                                      "id: big\n# " + std::string(100'000, 'a' + i % 26) + "\n");
                                  AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(big));
                                }
                                for (int i = 0; i < runs; ++i) {
                                  Run r = SampleRun(v);
                                  ids.push_back(r.id);
                                  AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
                                }
                                return Status::Ok();
                              })
                    .ok());
    return ids;
  }

  TempDir dir_;
};

TEST_F(BackupTest, CopiesALiveStoreConsistentlyWhileAnotherThreadWrites) {
  auto store = OpenStore(url());
  ASSERT_NE(store, nullptr);
  std::vector<std::string> before = Seed(*store, 60, 300);  // ~6 MB: several 1024-page steps

  // A writer commits runs, one transaction each, for the whole backup.
  std::mutex mu;
  std::vector<std::string> committed;
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  const RunbookVersion v = SampleVersion();
  std::thread writer([&] {
    while (!stop.load()) {
      Run r = SampleRun(v);
      r.error = std::string(2000, 'x');  // bigger rows, more pages per commit
      Status s =
          store->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.InsertRun(r); });
      if (!s.ok()) {
        ++failures;
        ADD_FAILURE() << s.ToString();
        continue;
      }
      std::lock_guard<std::mutex> lock(mu);
      committed.push_back(r.id);
    }
  });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joiner{stop, writer};
  // Let the writer get going, then note what is committed before the backup starts.
  for (;;) {
    ASSERT_EQ(failures.load(), 0);
    std::lock_guard<std::mutex> lock(mu);
    if (committed.size() >= 20) {
      before.insert(before.end(), committed.begin(), committed.end());
      break;
    }
  }
  const std::string dest = dir_.File("backup.db");
  Status s = BackupStore(url(), dest);
  size_t committed_at_return = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    committed_at_return = committed.size();
  }
  stop = true;
  writer.join();
  ASSERT_OK(s);
  EXPECT_EQ(failures.load(), 0) << "the backup blocked writers";

  for (const char* suffix : {".tmp", ".tmp-journal", ".tmp-wal", ".tmp-shm"}) {
    EXPECT_FALSE(Exists(dest + suffix)) << suffix;
  }
  struct stat st {};
  ASSERT_EQ(stat(dest.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_GT(st.st_size, 6'000'000);
  {
    RawDb raw(dest);
    EXPECT_EQ(raw.Text("PRAGMA quick_check"), "ok");
    EXPECT_EQ(raw.Text("PRAGMA integrity_check"), "ok");
  }

  // The copy opens as a store and holds every run committed before the backup started.
  auto copy = OpenStore("sqlite:" + dest);
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->SchemaVersion(), store->SchemaVersion());
  std::set<std::string> copied;
  Status read = copy->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    RunFilter f;
    f.limit = 1000;
    for (;;) {
      AUTOMAN_ASSIGN_OR_RETURN(auto page, tx.ListRuns(f));
      for (const Run& r : page) copied.insert(r.id);
      if (page.size() < 1000) return Status::Ok();
      f.before_id = page.back().id;
    }
  });
  ASSERT_OK(read);
  for (const std::string& id : before) EXPECT_TRUE(copied.count(id)) << id << " missing";
  // One instant: of the writer's runs (committed one after another) the copy holds a
  // prefix, none committed after BackupStore returned, and nothing that never committed.
  size_t prefix = 0;
  while (prefix < committed.size() && copied.count(committed[prefix])) ++prefix;
  for (size_t i = prefix; i < committed.size(); ++i) {
    EXPECT_FALSE(copied.count(committed[i])) << "run " << i << " of the writer is in the copy "
                                             << "but run " << prefix << " is not";
  }
  EXPECT_LE(prefix, committed_at_return);
  EXPECT_EQ(copied.size(), 300 + prefix) << "runs not committed by anyone";
}

TEST_F(BackupTest, BacksUpAStoreNoOneHasOpen) {
  {
    auto store = OpenStore(url());
    ASSERT_NE(store, nullptr);
    Seed(*store, 0, 10);
  }
  const std::string dest = dir_.File("offline.db");
  ASSERT_OK(BackupStore(url(), dest));
  RawDb raw(dest);
  EXPECT_EQ(raw.Text("SELECT count(*) FROM runs"), "10");
}

TEST_F(BackupTest, RefusesAnExistingDestination) {
  auto store = OpenStore(url());
  ASSERT_NE(store, nullptr);
  const std::string dest = dir_.File("exists.db");
  WriteFile(dest, "precious");
  Status s = BackupStore(url(), dest);
  ExpectError(s, ErrorCode::kAlreadyExists, {dest, "already exists"});
  EXPECT_EQ(ReadFile(dest), "precious");
  EXPECT_FALSE(Exists(dest + ".tmp"));

  // A dangling symlink counts as existing too.
  const std::string link = dir_.File("link.db");
  ASSERT_EQ(symlink(dir_.File("nowhere").c_str(), link.c_str()), 0);
  ExpectError(BackupStore(url(), link), ErrorCode::kAlreadyExists);
  EXPECT_FALSE(Exists(dir_.File("nowhere")));
}

TEST_F(BackupTest, LeavesAnotherBackupsTemporaryFileAlone) {
  auto store = OpenStore(url());
  ASSERT_NE(store, nullptr);
  const std::string dest = dir_.File("busy.db");
  WriteFile(dest + ".tmp", "someone else's");
  ExpectError(BackupStore(url(), dest), ErrorCode::kAlreadyExists,
              {dest + ".tmp", "another backup"});
  EXPECT_EQ(ReadFile(dest + ".tmp"), "someone else's");
  EXPECT_FALSE(Exists(dest));
}

TEST_F(BackupTest, PostgresUrlGetsPgDumpAdviceWithoutThePassword) {
  const std::string dest = dir_.File("pg.dump");
  Status s = BackupStore(
      "postgresql://automan:s3cret@db.internal:5432/automan?sslmode=require&password=pw-in-query",
      dest);
  ExpectError(s, ErrorCode::kFailedPrecondition,
              {"pg_dump --format=custom", "'postgresql://db.internal:5432/automan'", "pg_restore",
               "--file='" + dest + "'"});
  EXPECT_THAT(s.message(), Not(HasSubstr("s3cret")));
  EXPECT_THAT(s.message(), Not(HasSubstr("pw-in-query")));
  ExpectError(BackupStore("postgres://u@h/db", dest), ErrorCode::kFailedPrecondition,
              {"pg_dump", "'postgres://h/db'"});
  ExpectNoCopy(dest);
}

TEST_F(BackupTest, RefusesUrlsWithNothingToCopy) {
  const std::string dest = dir_.File("x.db");
  ExpectError(BackupStore("sqlite::memory:", dest), ErrorCode::kInvalidArgument,
              {"private to the process"});
  ExpectError(BackupStore("sqlite:", dest), ErrorCode::kInvalidArgument, {"names no file"});
  ExpectError(BackupStore("mysql://root:pw@h/db", dest), ErrorCode::kInvalidArgument,
              {"unsupported database URL"});
  ExpectError(BackupStore(url(), ""), ErrorCode::kInvalidArgument, {"no destination"});
  ExpectNoCopy(dest);
}

TEST_F(BackupTest, MissingStoreOrDirectoryLeavesNothing) {
  const std::string dest = dir_.File("x.db");
  ExpectError(BackupStore("sqlite:" + dir_.File("absent.db"), dest), ErrorCode::kNotFound,
              {"no store at"});
  EXPECT_FALSE(Exists(dir_.File("absent.db")));  // not created by the attempt
  ExpectNoCopy(dest);

  auto store = OpenStore(url());
  ASSERT_NE(store, nullptr);
  const std::string in_missing_dir = dir_.File("no/such/dir/x.db");
  ExpectError(BackupStore(url(), in_missing_dir), ErrorCode::kNotFound, {"creating"});
  ExpectNoCopy(in_missing_dir);
}

TEST_F(BackupTest, NotADatabaseOrAnotherApplicationsIsRefused) {
  const std::string junk = dir_.File("junk.db");
  WriteFile(junk, std::string(8192, 'j'));
  const std::string dest = dir_.File("x.db");
  ExpectError(BackupStore("sqlite:" + junk, dest), ErrorCode::kDataLoss, {"not a database"});
  ExpectNoCopy(dest);

  const std::string other = dir_.File("other.db");
  {
    RawDb raw(other);
    raw.Text("PRAGMA application_id = 42");
    raw.Text("CREATE TABLE t(x)");
  }
  ExpectError(BackupStore("sqlite:" + other, dest), ErrorCode::kFailedPrecondition,
              {"another application"});
  ExpectNoCopy(dest);
}

TEST_F(BackupTest, CorruptStoreFailsTheCheckAndLeavesNoTemporaryFile) {
  {
    auto store = OpenStore(url());
    ASSERT_NE(store, nullptr);
    Seed(*store, 0, 500);
  }
  int page_size = 0, root = 0;
  {
    RawDb raw(db_path());
    raw.Text("PRAGMA wal_checkpoint(TRUNCATE)");
    page_size = std::stoi(raw.Text("PRAGMA page_size"));
    root = std::stoi(raw.Text("SELECT rootpage FROM sqlite_schema WHERE name = 'runs'"));
  }
  ASSERT_GT(root, 1);
  // Scribble over the runs table's root page (page 1, the schema, stays intact).
  int fd = open(db_path().c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  std::string junk(page_size, '\x5a');
  ASSERT_EQ(pwrite(fd, junk.data(), junk.size(), off_t{root - 1} * page_size),
            static_cast<ssize_t>(junk.size()));
  close(fd);

  const std::string dest = dir_.File("corrupt-copy.db");
  Status s = BackupStore(url(), dest);
  ExpectError(s, ErrorCode::kDataLoss, {"quick_check", "integrity_check"});
  ExpectNoCopy(dest);
}

}  // namespace
}  // namespace automan::testing
