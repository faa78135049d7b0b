// The SQLite backend: the conformance suite on a file and in memory, plus what only SQLite
// has (files, pragmas, migrations, foreign files, locking between connections).
#include "store/sqlite/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "store/sqlite/migrations.h"
#include "store_conformance.h"
#include "support/test_util.h"

namespace automan::testing {
namespace {

// Every store the conformance suite opens lives here; removed at exit.
const TempDir& SuiteDir() {
  static TempDir dir;
  return dir;
}

Result<std::unique_ptr<Store>> OpenFreshFile() {
  static std::atomic<int> n{0};
  return Store::Open(
      {.url = "sqlite:" + SuiteDir().File("conformance-" + std::to_string(n++) + ".db")});
}

Result<std::unique_ptr<Store>> OpenMemory() { return Store::Open({.url = "sqlite::memory:"}); }

// Runs SQL on a file store's database through a connection of its own (foreign keys on, as
// the store's connections have them): StoreBackend::raw_exec.
Status RawFileExec(const Store& store, const std::string& sql) {
  const std::string path = store.Describe().substr(std::string_view("sqlite:").size());
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  Status out;
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    rc = sqlite3_exec(db, ("PRAGMA foreign_keys = ON; " + sql).c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      out = Error(ErrorCode::kInternal, "{}: {}", sql, err != nullptr ? err : sqlite3_errstr(rc));
    }
    sqlite3_free(err);
  } else {
    out = Error(ErrorCode::kInternal, "opening {}: {}", path, sqlite3_errstr(rc));
  }
  sqlite3_close_v2(db);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"file", OpenFreshFile},
                                           StoreBackend{"memory", OpenMemory}),
                         StoreBackendName);
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreQueueConformanceTest,
                         ::testing::Values(StoreBackend{"file", OpenFreshFile},
                                           StoreBackend{"memory", OpenMemory}),
                         StoreBackendName);
// A file store's URL is its Describe(); a memory store's data is its own.
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreScheduleConformanceTest,
                         ::testing::Values(StoreBackend{"file", OpenFreshFile,
                                                        [](const Store& s) {
                                                          return s.Describe();
                                                        }},
                                           StoreBackend{"memory", OpenMemory}),
                         StoreBackendName);
// A memory store has no raw access: the tests of the schema's own refusals skip there.
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreSecurityConformanceTest,
                         ::testing::Values(StoreBackend{"file", OpenFreshFile, nullptr,
                                                        RawFileExec},
                                           StoreBackend{"memory", OpenMemory}),
                         StoreBackendName);

// A raw connection for looking at (or tampering with) a file behind the store's back.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  // The first column of the first row, as text; "" when there is no row.
  std::string Query(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(st, 0);
      if (t != nullptr) out = reinterpret_cast<const char*>(t);
    } else if (rc != SQLITE_DONE) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_finalize(st);
    return out;
  }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (err ? err : "?");
    }
    sqlite3_free(err);
  }

 private:
  sqlite3* db_ = nullptr;
};

std::unique_ptr<SqliteStore> OpenSqlite(const std::string& path,
                                        Durability durability = Durability::kFull,
                                        std::chrono::milliseconds busy = std::chrono::seconds(5)) {
  auto s = SqliteStore::Open(path, {.durability = durability, .busy_timeout = busy});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

Status SeedRun(Store& store, const RunbookVersion& v, const Run& r) {
  return store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) {
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
    return tx.InsertRun(r);
  });
}

Result<Run> GetRunFrom(Store& store, const std::string& id) {
  std::optional<Run> out;
  Status s = store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(Run r, tx.GetRun(id));
    out = std::move(r);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return *out;
}

int ModeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 0777);
}

class StoreOpenTest : public StoreTest {};
class SqliteStoreTest : public StoreTest {};

// ---------------------------------------------------------------------------------------
// Store::Open and URLs

TEST_F(StoreOpenTest, UnsupportedSchemeIsInvalidArgumentAndHidesThePassword) {
  auto s = Store::Open({.url = "mysql://admin:s3cr3t-pw@db.internal:3306/automan?ssl=1"});
  ASSERT_FALSE(s.ok());
  ExpectError(s.status(), ErrorCode::kInvalidArgument,
              {"unsupported database URL", "\"mysql://db.internal:3306/automan\"",
               "use sqlite:PATH", "postgresql://"});
  EXPECT_EQ(s.status().message().find("s3cr3t"), std::string::npos) << s.status().ToString();
  EXPECT_EQ(s.status().message().find("admin"), std::string::npos) << s.status().ToString();

  auto kv = Store::Open({.url = "host=db.internal user=admin password=s3cr3t-pw dbname=a"});
  ASSERT_FALSE(kv.ok());
  ExpectError(kv.status(), ErrorCode::kInvalidArgument, {"unsupported database URL"});
  EXPECT_EQ(kv.status().message().find("s3cr3t"), std::string::npos) << kv.status().ToString();

  ExpectError(Store::Open({.url = "/var/lib/automan/automan.db"}).status(),
              ErrorCode::kInvalidArgument, {"\"/var/lib/automan/automan.db\"", "sqlite:PATH"});
  ExpectError(Store::Open({.url = ""}).status(), ErrorCode::kInvalidArgument,
              {"unsupported database URL"});
}

TEST_F(StoreOpenTest, RedactStoreUrl) {
  EXPECT_EQ(RedactStoreUrl("postgresql://u:p@h/db"), "postgresql://h/db");
  EXPECT_EQ(RedactStoreUrl("postgresql://u@h:1/db"), "postgresql://h:1/db");
  EXPECT_EQ(RedactStoreUrl("postgresql://u:p@ss@h/db"), "postgresql://h/db");
  EXPECT_EQ(RedactStoreUrl("postgresql://h/db?password=x&a=b"), "postgresql://h/db");
  EXPECT_EQ(RedactStoreUrl("postgresql://h/d@b"), "postgresql://h/d@b");
  EXPECT_EQ(RedactStoreUrl("host=h PassWord=x user=u"), "host=h PassWord=*** user=u");
  EXPECT_EQ(RedactStoreUrl("sqlite:/data/automan.db"), "sqlite:/data/automan.db");
}

TEST_F(StoreOpenTest, SqliteUrlNeedsAPath) {
  ExpectError(Store::Open({.url = "sqlite:"}).status(), ErrorCode::kInvalidArgument,
              {"sqlite:PATH"});
}

TEST_F(StoreOpenTest, DefaultStoreUrlOpensAFileInTheDataDirectory) {
  TempDir dir;
  const std::string data = dir.File("automan-data");
  EXPECT_EQ(DefaultStoreUrl(data), "sqlite:" + data + "/automan.db");
  auto store = Store::Open({.url = DefaultStoreUrl(data)});
  ASSERT_OK(store);
  EXPECT_EQ((*store)->Describe(), "sqlite:" + data + "/automan.db");
  EXPECT_EQ((*store)->SchemaVersion(), LatestSqliteSchemaVersion());
  EXPECT_TRUE((*store)->ReadsAreLocal()) << "WAL readers never wait for the writer";
  EXPECT_TRUE(std::filesystem::exists(data + "/automan.db"));
}

TEST_F(StoreOpenTest, MemoryStoresArePrivate) {
  auto a = Store::Open({.url = "sqlite::memory:"});
  auto b = Store::Open({.url = "sqlite::memory:"});
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ((*a)->Describe(), "sqlite::memory:");
  EXPECT_FALSE((*a)->ReadsAreLocal()) << "one connection: a read waits for a transaction";
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(SeedRun(**a, v, r));
  ASSERT_OK(GetRunFrom(**a, r.id));
  ExpectError(GetRunFrom(**b, r.id).status(), ErrorCode::kNotFound);
}

// ---------------------------------------------------------------------------------------
// Files, settings and schema

TEST_F(SqliteStoreTest, ReopenFindsTheData) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.params = {{"k", {"string", "v"}}};
  std::vector<LogLine> lines = {SampleLine(r.id, 1, 1), SampleLine(r.id, 1, 2)};
  {
    auto store = OpenSqlite(path);
    ASSERT_NE(store, nullptr);
    ASSERT_OK(SeedRun(*store, v, r));
    ASSERT_OK(store->Transact(Store::TxMode::kWrite,
                              [&](StoreTx& tx) { return tx.AppendLogLines(lines); }));
  }
  auto store = OpenSqlite(path);
  ASSERT_NE(store, nullptr);
  auto got = GetRunFrom(*store, r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, r);
  std::vector<LogLine> read;
  ASSERT_OK(store->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(read, tx.ReadLogLines({.run_id = r.id}));
    return Status::Ok();
  }));
  EXPECT_EQ(read, lines);
  ASSERT_OK(store->CheckIntegrity());
}

TEST_F(SqliteStoreTest, WalSynchronousAndForeignKeysAreSet) {
  TempDir dir;
  {
    auto full = OpenSqlite(dir.File("full.db"), Durability::kFull, std::chrono::milliseconds(1234));
    ASSERT_NE(full, nullptr);
    EXPECT_EQ(*full->Pragma("journal_mode"), "wal");
    EXPECT_EQ(*full->Pragma("synchronous"), "2");  // FULL
    EXPECT_EQ(*full->Pragma("foreign_keys"), "1");
    EXPECT_EQ(*full->Pragma("busy_timeout"), "1234");
  }
  {
    auto fast = OpenSqlite(dir.File("fast.db"), Durability::kFast);
    ASSERT_NE(fast, nullptr);
    EXPECT_EQ(*fast->Pragma("journal_mode"), "wal");
    EXPECT_EQ(*fast->Pragma("synchronous"), "1");  // NORMAL
  }
  // WAL is a property of the file: another connection sees it too.
  RawDb raw(dir.File("full.db"));
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, ProgressCommitsRelaxOnlyThemselves) {
  TempDir dir;
  auto store = OpenSqlite(dir.File("p.db"), Durability::kFull);
  ASSERT_NE(store, nullptr);
  std::string inside;
  ASSERT_OK(store->Transact(Store::TxMode::kWriteProgress, [&](StoreTx& tx) -> Status {
    RunbookVersion v{.version = "sha256:p", .runbook_id = "p", .yaml = "id: p"};
    return tx.PutRunbookVersion(v);
  }));
  // The connection is back to FULL for the next durable commit, and the write is there.
  EXPECT_EQ(*store->Pragma("synchronous"), "2");
  ASSERT_OK(store->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(RunbookVersion got, tx.GetRunbookVersion("sha256:p"));
    inside = got.yaml;
    return Status::Ok();
  }));
  EXPECT_EQ(inside, "id: p");
  // A failed progress transaction restores the level too.
  EXPECT_EQ(store
                ->Transact(Store::TxMode::kWriteProgress,
                           [&](StoreTx&) { return Error(ErrorCode::kCancelled, "no"); })
                .code(),
            ErrorCode::kCancelled);
  EXPECT_EQ(*store->Pragma("synchronous"), "2");
}

TEST_F(SqliteStoreTest, PragmaAcceptsOnlyNames) {
  auto store = OpenSqlite(":memory:");
  ASSERT_NE(store, nullptr);
  ExpectError(store->Pragma("user_version; DROP TABLE runs").status(), ErrorCode::kInvalidArgument,
              {"not a pragma name"});
  ExpectError(store->Pragma("").status(), ErrorCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, SchemaVersionAndApplicationIdAreRecorded) {
  TempDir dir;
  const std::string path = dir.File("a.db");
  auto store = OpenSqlite(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), LatestSqliteSchemaVersion());
  RawDb raw(path);
  EXPECT_EQ(raw.Query("PRAGMA user_version"), std::to_string(LatestSqliteSchemaVersion()));
  EXPECT_EQ(raw.Query("PRAGMA application_id"), std::to_string(kSqliteApplicationId));
  EXPECT_EQ(raw.Query("SELECT count(*) FROM sqlite_schema WHERE name IN ('runbook_versions', "
                      "'runs', 'attempts', 'step_runs', 'log_lines')"),
            "5");
}

TEST_F(SqliteStoreTest, MigrationsAreNumberedWithoutGaps) {
  auto migrations = SqliteMigrations();
  ASSERT_FALSE(migrations.empty());
  for (size_t i = 0; i < migrations.size(); ++i) {
    EXPECT_EQ(migrations[i].version, static_cast<int>(i) + 1);
    EXPECT_FALSE(migrations[i].name.empty());
    EXPECT_FALSE(migrations[i].sql.empty());
  }
  EXPECT_EQ(LatestSqliteSchemaVersion(), migrations.back().version);
}

// A file written by a version-1 binary (no queue columns or tables) is migrated in place:
// its runs keep their data and read back without keys and without a cancel request.
TEST_F(SqliteStoreTest, MigratesAVersion1File) {
  TempDir dir;
  const std::string path = dir.File("v1.db");
  {
    RawDb raw(path);
    raw.Exec(std::string(SqliteMigrations()[0].sql));
    raw.Exec("PRAGMA user_version = 1");
    raw.Exec(
        "INSERT INTO runbook_versions VALUES ('sha256:v1', 'old', 'id: old', 'old.yaml', 1);"
        "INSERT INTO runs (id, runbook_id, runbook_version, status, \"trigger\", triggered_by, "
        "params_json, priority, attempt, max_attempts, created_at, outputs_json, error, "
        "lease_owner, fence) VALUES ('run-v1', 'old', 'sha256:v1', 'PENDING', 'manual', 'me', "
        "'{}', 3, 0, 1, 5, '{}', '', '', 0)");
  }
  auto store = OpenSqlite(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), LatestSqliteSchemaVersion());
  EXPECT_EQ(RawDb(path).Query("PRAGMA user_version"), std::to_string(LatestSqliteSchemaVersion()));
  auto run = GetRunFrom(*store, "run-v1");
  ASSERT_OK(run);
  EXPECT_EQ(run->priority, 3);
  EXPECT_TRUE(run->concurrency.empty());
  EXPECT_FALSE(run->cancel_requested);
  std::vector<Run> claimable;
  ASSERT_OK(store->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(claimable, tx.ListClaimable(FromMicros(10), 10));
    return Status::Ok();
  }));
  ASSERT_EQ(claimable.size(), 1u);
  EXPECT_EQ(claimable[0].id, "run-v1");
  EXPECT_EQ(RawDb(path).Query("SELECT count(*) FROM sqlite_schema WHERE name IN "
                              "('run_keys', 'key_slots', 'runs_claimable', 'runs_leases', "
                              "'runs_retention', 'runs_by_runbook_version')"),
            "5");
  EXPECT_TRUE(store->CheckIntegrity().ok());
}

// A file written by a version-2 binary (the queue, no schedules) gains the schedule tables,
// the revision row and the active-runs index in place; its runs stay and are listed.
TEST_F(SqliteStoreTest, MigratesAVersion2File) {
  TempDir dir;
  const std::string path = dir.File("v2.db");
  {
    RawDb raw(path);
    raw.Exec(std::string(SqliteMigrations()[0].sql));
    raw.Exec(std::string(SqliteMigrations()[1].sql));
    raw.Exec("PRAGMA user_version = 2");
    raw.Exec(
        "INSERT INTO runbook_versions VALUES ('sha256:v2', 'old', 'id: old', 'old.yaml', 1);"
        "INSERT INTO runs (id, runbook_id, runbook_version, status, \"trigger\", triggered_by, "
        "params_json, priority, attempt, max_attempts, created_at, outputs_json, error, "
        "lease_owner, fence) VALUES ('run-v2', 'old', 'sha256:v2', 'RUNNING', 'schedule', "
        "'old/nightly', '{}', 0, 1, 1, 5, '{}', '', 'w', 1)");
  }
  auto store = OpenSqlite(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), LatestSqliteSchemaVersion());
  EXPECT_EQ(RawDb(path).Query("PRAGMA user_version"), std::to_string(LatestSqliteSchemaVersion()));
  EXPECT_EQ(RawDb(path).Query("SELECT count(*) FROM sqlite_schema WHERE name IN "
                              "('schedules', 'schedule_revision', 'fire_ledger', "
                              "'runs_active_by_trigger')"),
            "4");

  std::vector<Run> active;
  int64_t revision = -1;
  ScheduleRecord stored;
  ASSERT_OK(store->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(active, tx.ListActiveRuns(Trigger::kSchedule, "old/nightly", 10));
    ScheduleRecord s{.id = "old/nightly", .runbook_id = "old", .source = "cli", .spec_json = "{}"};
    AUTOMAN_ASSIGN_OR_RETURN(stored, tx.PutSchedule(s));
    AUTOMAN_RETURN_IF_ERROR(tx.InsertFire(FireRecord{.schedule_id = s.id, .nominal = At(1)}));
    AUTOMAN_ASSIGN_OR_RETURN(revision, tx.SchedulesRevision());
    return Status::Ok();
  }));
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].id, "run-v2");
  EXPECT_EQ(stored.generation, 1);
  EXPECT_EQ(revision, 1);
  EXPECT_TRUE(store->CheckIntegrity().ok());
}

// The lock file is "<database>.<name>.lock" beside the database, private (0600), and stays
// after the Leadership is gone (only the flock on it comes and goes).
TEST_F(SqliteStoreTest, LeadershipLocksAPrivateFileBesideTheDatabase) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  auto store = OpenSqlite(path);
  ASSERT_NE(store, nullptr);
  {
    auto lead = store->TryLead("scheduler");
    ASSERT_OK(lead);
    ASSERT_NE(*lead, nullptr);
    EXPECT_EQ(ModeOf(path + ".scheduler.lock"), 0600);
  }
  EXPECT_TRUE(std::filesystem::exists(path + ".scheduler.lock"));
  auto again = store->TryLead("scheduler");
  ASSERT_OK(again);
  EXPECT_NE(*again, nullptr);
  // A lock file that cannot be created is an error, not a lost election.
  std::filesystem::create_directory(path + ".janitor.lock");
  auto broken = store->TryLead("janitor");
  EXPECT_FALSE(broken.ok());
}

TEST_F(SqliteStoreTest, CreatesAPrivateDirectoryAndFile) {
  TempDir dir;
  const std::string path = dir.File("a/b/automan.db");
  auto store = OpenSqlite(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ModeOf(dir.File("a")), 0700);
  EXPECT_EQ(ModeOf(dir.File("a/b")), 0700);
  EXPECT_EQ(ModeOf(path), 0600);
  RunbookVersion v = SampleVersion();
  ASSERT_OK(SeedRun(*store, v, SampleRun(v)));
  EXPECT_EQ(ModeOf(path + "-wal"), 0600);  // SQLite copies the database file's mode
}

TEST_F(SqliteStoreTest, RelativePathResolvesAgainstTheWorkingDirectory) {
  TempDir dir;
  char old_cwd[4096];
  ASSERT_NE(getcwd(old_cwd, sizeof old_cwd), nullptr);
  ASSERT_EQ(chdir(dir.path().c_str()), 0);
  auto store = Store::Open({.url = "sqlite:data/./x/../automan.db"});
  ASSERT_EQ(chdir(old_cwd), 0);
  ASSERT_OK(store);
  const std::string real = std::filesystem::canonical(dir.path()).string();
  EXPECT_TRUE((*store)->Describe() == "sqlite:" + dir.path() + "/data/automan.db" ||
              (*store)->Describe() == "sqlite:" + real + "/data/automan.db")
      << (*store)->Describe();
  EXPECT_TRUE(std::filesystem::exists(dir.File("data/automan.db")));
}

TEST_F(SqliteStoreTest, NewerSchemaIsFailedPrecondition) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  { ASSERT_NE(OpenSqlite(path), nullptr); }
  RawDb(path).Exec("PRAGMA user_version = 7");
  auto store = SqliteStore::Open(path, {});
  ASSERT_FALSE(store.ok());
  ExpectError(store.status(), ErrorCode::kFailedPrecondition,
              {"database schema version 7 is newer than this automan (knows up to " +
                   std::to_string(LatestSqliteSchemaVersion()) + "); upgrade automan",
               path});
}

TEST_F(SqliteStoreTest, GarbageFileIsDataLossNamingThePath) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  std::string garbage;
  for (int i = 0; i < 200; ++i) garbage += "this is not a database, it is a text file\n";
  WriteFile(path, garbage);
  auto store = Store::Open({.url = "sqlite:" + path});
  ASSERT_FALSE(store.ok());
  ExpectError(store.status(), ErrorCode::kDataLoss, {path, "not an SQLite database"});
  EXPECT_EQ(ReadFile(path), garbage);  // left alone
}

TEST_F(SqliteStoreTest, AnotherApplicationsDatabaseIsRefusedAndLeftAlone) {
  TempDir dir;
  const std::string tables = dir.File("tables.db");
  RawDb(tables).Exec("CREATE TABLE notes (body TEXT)");
  ExpectError(SqliteStore::Open(tables, {}).status(), ErrorCode::kFailedPrecondition,
              {tables, "another application"});
  EXPECT_EQ(RawDb(tables).Query("SELECT count(*) FROM sqlite_schema"), "1");

  const std::string foreign_id = dir.File("foreign.db");
  RawDb(foreign_id).Exec("PRAGMA application_id = 42");
  ExpectError(SqliteStore::Open(foreign_id, {}).status(), ErrorCode::kFailedPrecondition,
              {foreign_id, "another application", "0x2a"});
}

TEST_F(SqliteStoreTest, DirectoryInPlaceOfTheFileIsRefused) {
  TempDir dir;
  std::filesystem::create_directory(dir.File("automan.db"));
  auto store = SqliteStore::Open(dir.File("automan.db"), {});
  ASSERT_FALSE(store.ok());
  ExpectError(store.status(), ErrorCode::kFailedPrecondition, {dir.File("automan.db")});

  WriteFile(dir.File("plain"), "x");
  ExpectError(SqliteStore::Open(dir.File("plain/automan.db"), {}).status(),
              ErrorCode::kFailedPrecondition, {"not a directory"});
}

TEST_F(SqliteStoreTest, SecretsNeverReachTheFile) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  const std::string secret = "hunter2-SECRET-value-9f8e7d";
  const std::string visible = "visible-MARKER-value-1a2b3c";
  auto files_contain = [&](const std::string& needle) {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      if (ReadFile(path + suffix).find(needle) != std::string::npos) return true;
    }
    return false;
  };
  {
    auto store = OpenSqlite(path);
    ASSERT_NE(store, nullptr);
    RunbookVersion v = SampleVersion();
    Run r = SampleRun(v);
    r.params = {{"token", {"secret", secret}}, {"note", {"string", visible}}};
    ASSERT_OK(SeedRun(*store, v, r));
    r.status = RunStatus::kSuccess;
    ASSERT_OK(store->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.UpdateRun(r); }));
    // The check can fail: the non-secret value is in the files.
    EXPECT_TRUE(files_contain(visible));
    EXPECT_FALSE(files_contain(secret));
  }
  EXPECT_TRUE(files_contain(visible));
  EXPECT_FALSE(files_contain(secret));
}

TEST_F(SqliteStoreTest, TextIsStoredAsBytes) {
  // Step output is not always UTF-8; SQLite keeps whatever bytes it is given.
  auto store = OpenSqlite(":memory:");
  ASSERT_NE(store, nullptr);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  using namespace std::string_literals;
  const std::string bytes = "latin-1 \xe9t\xe9, a NUL \0 inside, \xff\xfe"s;
  ASSERT_EQ(bytes.size(), 31u);
  r.outputs = {{"s", {{"raw", bytes}}}};
  r.params = {{"p", {"string", bytes}}};
  ASSERT_OK(SeedRun(*store, v, r));
  std::vector<LogLine> lines = {SampleLine(r.id, 1, 1)};
  lines[0].text = bytes;
  StepRun step{.run_id = r.id, .attempt = 1, .step_id = "s", .outputs = {{"raw", bytes}}};
  ASSERT_OK(store->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) {
    AUTOMAN_RETURN_IF_ERROR(tx.UpsertStepRun(step));
    return tx.AppendLogLines(lines);
  }));
  auto got = GetRunFrom(*store, r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, r);
  ASSERT_OK(store->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(auto read, tx.ReadLogLines({.run_id = r.id}));
    EXPECT_EQ(read, lines);
    AUTOMAN_ASSIGN_OR_RETURN(auto steps, tx.ListStepRuns(r.id));
    EXPECT_EQ(steps, std::vector<StepRun>{step});
    return Status::Ok();
  }));
}

TEST_F(SqliteStoreTest, WriterLockedOutByAnotherConnectionGetsUnavailable) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  auto store = OpenSqlite(path, Durability::kFull, std::chrono::milliseconds(200));
  ASSERT_NE(store, nullptr);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(SeedRun(*store, v, r));

  RawDb other(path);
  other.Exec("BEGIN IMMEDIATE");
  Status s = store->Transact(Store::TxMode::kWrite,
                             [&](StoreTx& tx) { return tx.InsertRun(SampleRun(v)); });
  ExpectError(s, ErrorCode::kUnavailable, {"locked", "busy timeout (200 ms)", path});
  // Readers are not blocked by a writer (WAL).
  ASSERT_OK(GetRunFrom(*store, r.id));
  other.Exec("COMMIT");
  ASSERT_OK(store->Transact(Store::TxMode::kWrite,
                            [&](StoreTx& tx) { return tx.InsertRun(SampleRun(v)); }));
}

TEST_F(SqliteStoreTest, CorruptedPagesAreDataLoss) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  RunbookVersion v = SampleVersion();
  std::vector<std::string> ids;
  {
    auto store = OpenSqlite(path);
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
      for (int i = 0; i < 200; ++i) {
        Run r = SampleRun(v);
        r.error = std::string(500, 'e');
        ids.push_back(r.id);
        AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
      }
      return Status::Ok();
    }));
  }  // closing checkpoints the WAL into the file
  ASSERT_FALSE(std::filesystem::exists(path + "-wal"));
  // Overwrite everything after the first page (header and schema) with junk.
  std::string content = ReadFile(path);
  const size_t page = 4096;
  ASSERT_GT(content.size(), 4 * page);
  for (size_t i = page; i < content.size(); ++i) content[i] = static_cast<char>(0xA5);
  WriteFile(path, content);

  auto opened = SqliteStore::Open(path, {});
  if (!opened.ok()) {
    // The schema outgrew the first page, so Open already meets the damage.
    ExpectError(opened.status(), ErrorCode::kDataLoss, {path});
    return;
  }
  ExpectError(GetRunFrom(**opened, ids[100]).status(), ErrorCode::kDataLoss);
  ExpectError((*opened)->CheckIntegrity(), ErrorCode::kDataLoss, {"integrity check"});
}

TEST_F(SqliteStoreTest, AppendLogLinesThroughput) {
  // Not a timing assertion: prints the rate so a human can compare builds. The engine's
  // target is >= 100k lines/s in release builds with batches of a few thousand lines.
  TempDir dir;
  auto store = OpenSqlite(dir.File("automan.db"));
  ASSERT_NE(store, nullptr);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(SeedRun(*store, v, r));
  constexpr int kLines = 100000;
  constexpr int kBatch = 5000;
  std::vector<LogLine> batch(kBatch);
  const auto start = std::chrono::steady_clock::now();
  for (int done = 0; done < kLines; done += kBatch) {
    for (int i = 0; i < kBatch; ++i) {
      batch[i] = SampleLine(r.id, 1, done + i + 1);
      batch[i].text = "2026-03-29 01:02:03 INFO request served in 12ms path=/api/v1/runs";
    }
    ASSERT_OK(store->Transact(Store::TxMode::kWrite,
                              [&](StoreTx& tx) { return tx.AppendLogLines(batch); }));
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ rate     ] %d lines in batches of %d: %.0f lines/s\n", kLines, kBatch,
              kLines / secs);
  std::vector<LogLine> last;
  ASSERT_OK(store->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(last, tx.ReadLogLines({.run_id = r.id, .after_seq = kLines - 1}));
    return Status::Ok();
  }));
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].seq, kLines);
}

}  // namespace
}  // namespace automan::testing
