// The PostgreSQL backend: the conformance suite against a real PostgreSQL server (one
// fresh schema per test, see postgres_test_support.h), plus what only PostgreSQL has:
// URLs and passwords, connection failures, migrations recorded in schema_migrations (and
// the upgrade to the queue schema), synchronous_commit per durability mode, log-line and
// claim/complete throughput.
#include "store/postgres/postgres_store.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "postgres_test_support.h"
#include "store/postgres/migrations.h"
#include "store_conformance.h"

namespace automan::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"schema", OpenFreshPostgres}),
                         StoreBackendName);
INSTANTIATE_TEST_SUITE_P(Postgres, StoreQueueConformanceTest,
                         ::testing::Values(StoreBackend{"schema", OpenFreshPostgres}),
                         StoreBackendName);
INSTANTIATE_TEST_SUITE_P(Postgres, StoreScheduleConformanceTest,
                         ::testing::Values(StoreBackend{"schema", OpenFreshPostgres, PgUrlOf}),
                         StoreBackendName);
INSTANTIATE_TEST_SUITE_P(Postgres, StoreSecurityConformanceTest,
                         ::testing::Values(StoreBackend{"schema", OpenFreshPostgres, PgUrlOf,
                                                        PgRawExec}),
                         StoreBackendName);

class PostgresStoreTest : public StoreTest {};

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

void ExpectNoSecret(const Status& s, std::string_view secret) {
  EXPECT_EQ(s.message().find(secret), std::string::npos) << s.ToString();
}

// ---------------------------------------------------------------------------------------
// URLs, passwords and connection failures

TEST_F(PostgresStoreTest, BothSchemesOpenAndDescribeHidesThePassword) {
  std::string schema;
  ASSERT_OK(PgFreshUrl(&schema));
  const std::string base = PgBaseUrl();  // postgresql://postgres@127.0.0.1:PORT/postgres
  ASSERT_EQ(base.rfind("postgresql://postgres@", 0), 0u) << base;
  // Trust authentication ignores the password, which lets the test put one in the URL.
  const std::string with_pw = "postgresql://postgres:hunter2-pw@" +
                              base.substr(std::string("postgresql://postgres@").size());
  for (const std::string& url : {PgUrlWithSchema(with_pw, schema),
                                 PgUrlWithSchema("postgres" + with_pw.substr(10), schema)}) {
    auto store = Store::Open({.url = url});
    ASSERT_OK(store);
    EXPECT_EQ((*store)->Describe().find("hunter2"), std::string::npos) << (*store)->Describe();
    EXPECT_EQ((*store)->Describe().find("search_path"), std::string::npos);
    EXPECT_NE((*store)->Describe().find("127.0.0.1"), std::string::npos);
    EXPECT_EQ((*store)->SchemaVersion(), LatestPostgresSchemaVersion());
    EXPECT_FALSE((*store)->ReadsAreLocal());
  }
}

TEST_F(PostgresStoreTest, MalformedUrlIsInvalidArgumentWithoutThePassword) {
  auto bad_escape = Store::Open({.url = "postgresql://admin:s3%zzcret@127.0.0.1:5432/automan"});
  ASSERT_FALSE(bad_escape.ok());
  ExpectError(bad_escape.status(), ErrorCode::kInvalidArgument, {"invalid PostgreSQL URL"});
  ExpectNoSecret(bad_escape.status(), "s3%zzcret");
  ExpectNoSecret(bad_escape.status(), "zzcret");

  auto bad_param = Store::Open({.url = "postgres://admin:s3cret@127.0.0.1/automan?nosuch=1"});
  ASSERT_FALSE(bad_param.ok());
  ExpectError(bad_param.status(), ErrorCode::kInvalidArgument,
              {"invalid PostgreSQL URL", "\"postgres://127.0.0.1/automan\"", "nosuch"});
  ExpectNoSecret(bad_param.status(), "s3cret");
}

TEST_F(PostgresStoreTest, OtherSchemesAreStillUnsupported) {
  auto s = Store::Open({.url = "mysql://admin:s3cr3t-pw@db.internal/automan"});
  ASSERT_FALSE(s.ok());
  ExpectError(s.status(), ErrorCode::kInvalidArgument,
              {"unsupported database URL", "\"mysql://db.internal/automan\"", "sqlite:PATH",
               "postgresql://"});
  ExpectNoSecret(s.status(), "s3cr3t");
}

TEST_F(PostgresStoreTest, UnreachableServerIsUnavailableWithoutThePassword) {
  const int port = ClosedPort();
  const std::string url =
      "postgresql://automan:pw-must-not-leak@127.0.0.1:" + std::to_string(port) + "/automan";
  const auto start = std::chrono::steady_clock::now();
  auto s = Store::Open({.url = url});
  ASSERT_FALSE(s.ok());
  ExpectError(s.status(), ErrorCode::kUnavailable,
              {"cannot connect", "127.0.0.1:" + std::to_string(port)});
  ExpectNoSecret(s.status(), "pw-must-not-leak");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  // A password given as a query parameter is hidden too.
  auto q = Store::Open({.url = "postgresql://127.0.0.1:" + std::to_string(port) +
                               "/automan?user=automan&password=pw-must-not-leak"});
  ASSERT_FALSE(q.ok());
  ExpectError(q.status(), ErrorCode::kUnavailable);
  ExpectNoSecret(q.status(), "pw-must-not-leak");
}

// ---------------------------------------------------------------------------------------
// Schema

TEST_F(PostgresStoreTest, ReopenFindsTheData) {
  auto url = PgFreshUrl();
  ASSERT_OK(url);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.params = {{"k", {"string", "v"}}};
  std::vector<LogLine> lines = {SampleLine(r.id, 1, 1), SampleLine(r.id, 1, 2)};
  {
    auto store = Store::Open({.url = *url});
    ASSERT_OK(store);
    ASSERT_OK(SeedRun(**store, v, r));
    ASSERT_OK((*store)->Transact(Store::TxMode::kWrite,
                                 [&](StoreTx& tx) { return tx.AppendLogLines(lines); }));
  }
  auto store = Store::Open({.url = *url});
  ASSERT_OK(store);
  auto got = GetRunFrom(**store, r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, r);
  std::vector<LogLine> read;
  ASSERT_OK((*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(read, tx.ReadLogLines({.run_id = r.id}));
    return Status::Ok();
  }));
  EXPECT_EQ(read, lines);
}

TEST_F(PostgresStoreTest, MigrationsAreRecordedOnce) {
  std::string schema;
  auto url = PgFreshUrl(&schema);
  ASSERT_OK(url);
  ASSERT_OK(Store::Open({.url = *url}));
  ASSERT_OK(Store::Open({.url = *url}));  // a second open applies nothing
  auto count =
      PgAdminQuery("SELECT count(*) || '/' || max(version) FROM " + schema + ".schema_migrations");
  ASSERT_OK(count);
  EXPECT_EQ(*count, std::to_string(PostgresMigrations().size()) + "/" +
                        std::to_string(LatestPostgresSchemaVersion()));
  int version = 0;
  for (const PostgresMigration& m : PostgresMigrations()) EXPECT_EQ(m.version, ++version);
}

TEST_F(PostgresStoreTest, NewerSchemaIsFailedPrecondition) {
  std::string schema;
  auto url = PgFreshUrl(&schema);
  ASSERT_OK(url);
  ASSERT_OK(Store::Open({.url = *url}));
  ASSERT_OK(PgAdminQuery("INSERT INTO " + schema +
                         ".schema_migrations VALUES (999, 'from the future', 0)"));
  auto s = Store::Open({.url = *url});
  ASSERT_FALSE(s.ok());
  ExpectError(s.status(), ErrorCode::kFailedPrecondition,
              {"schema version 999", "newer than this automan", "upgrade automan"});
}

TEST_F(PostgresStoreTest, SecretsNeverReachTheDatabase) {
  std::string schema;
  auto url = PgFreshUrl(&schema);
  ASSERT_OK(url);
  auto store = Store::Open({.url = *url});
  ASSERT_OK(store);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.params = {{"token", {"secret", "hunter2-in-the-db"}}};
  ASSERT_OK(SeedRun(**store, v, r));
  r.params["token"].text = "hunter3-in-the-db";
  ASSERT_OK(
      (*store)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.UpdateRun(r); }));
  auto hits =
      PgAdminQuery("SELECT count(*) FROM " + schema + ".runs WHERE params_json LIKE '%in-the-db%'");
  ASSERT_OK(hits);
  EXPECT_EQ(*hits, "0");
}

// A database left at version 1 by an older automan: migration 2 numbers the existing runs
// in enqueue order (created_at, then id), and runs enqueued afterwards come after them.
TEST_F(PostgresStoreTest, MigrationTwoKeepsExistingRunsInEnqueueOrder) {
  std::string schema;
  auto url = PgFreshUrl(&schema);
  ASSERT_OK(url);
  std::string sql = "BEGIN; SET LOCAL search_path = " + schema +
                    "; CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT "
                    "NULL, applied_at BIGINT NOT NULL);" +
                    std::string(PostgresMigrations()[0].sql) +
                    "INSERT INTO schema_migrations VALUES (1, 'v1', 0);"
                    "INSERT INTO runbook_versions VALUES ('sha256:v1', 'rb', 'id: rb', 'x', 0);";
  // Ids sort against creation order; created_at decides.
  const std::vector<std::pair<std::string, int>> old_runs = {
      {"run-c", 1}, {"run-a", 2}, {"run-b", 3}};
  for (const auto& [id, created] : old_runs) {
    sql += "INSERT INTO runs VALUES ('" + id +
           "', 'rb', 'sha256:v1', 'PENDING', 'manual', 'x', '{}', 0, 0, 1, " +
           std::to_string(ToMicros(At(created))) +
           ", NULL, NULL, NULL, NULL, '{}', NULL, NULL, '', '', NULL, 0);";
  }
  ASSERT_OK(PgAdminQuery(sql + "COMMIT"));

  auto store = Store::Open({.url = *url});
  ASSERT_OK(store);
  EXPECT_EQ((*store)->SchemaVersion(), LatestPostgresSchemaVersion());
  Run newer;
  newer.id = "run-0-newest";
  newer.runbook_id = "rb";
  newer.runbook_version = "sha256:v1";
  newer.created_at = At(0);  // earlier instant, later enqueue: seq decides, not created_at
  ASSERT_OK(
      (*store)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.InsertRun(newer); }));
  std::vector<std::string> order;
  ASSERT_OK((*store)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(auto runs, tx.ListClaimable(At(10), 10));
    for (const Run& r : runs) order.push_back(r.id);
    return Status::Ok();
  }));
  EXPECT_EQ(order, (std::vector<std::string>{"run-c", "run-a", "run-b", "run-0-newest"}));
  auto old = GetRunFrom(**store, "run-a");
  ASSERT_OK(old);
  EXPECT_FALSE(old->cancel_requested);
  EXPECT_TRUE(old->concurrency.empty());
}

// A database left at version 2 by an older automan gains the schedule tables, the
// revision row and the active-runs index; its runs are listed by ListActiveRuns.
TEST_F(PostgresStoreTest, MigrationThreeAddsSchedulesToAVersion2Database) {
  std::string schema;
  auto url = PgFreshUrl(&schema);
  ASSERT_OK(url);
  ASSERT_OK(PgAdminQuery(
      "BEGIN; SET LOCAL search_path = " + schema +
      "; CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
      "applied_at BIGINT NOT NULL);" +
      std::string(PostgresMigrations()[0].sql) + std::string(PostgresMigrations()[1].sql) +
      "INSERT INTO schema_migrations VALUES (1, 'v1', 0), (2, 'v2', 0);"
      "INSERT INTO runbook_versions VALUES ('sha256:v2', 'rb', 'id: rb', 'x', 0);"
      "INSERT INTO runs (id, runbook_id, runbook_version, status, \"trigger\", triggered_by, "
      "params_json, priority, attempt, max_attempts, created_at, outputs_json, error, "
      "lease_owner, fence) VALUES ('run-v2', 'rb', 'sha256:v2', 'WAITING', 'schedule', "
      "'rb/nightly', '{}', 0, 1, 1, 5, '{}', '', 'w', 1); COMMIT"));

  auto store = Store::Open({.url = *url});
  ASSERT_OK(store);
  EXPECT_EQ((*store)->SchemaVersion(), LatestPostgresSchemaVersion());
  auto indexes = PgAdminQuery("SELECT count(*) FROM pg_indexes WHERE schemaname = '" + schema +
                              "' AND indexname = 'runs_active_by_trigger'");
  ASSERT_OK(indexes);
  EXPECT_EQ(*indexes, "1");
  std::vector<Run> active;
  int64_t revision = -1;
  ASSERT_OK((*store)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(active, tx.ListActiveRuns(Trigger::kSchedule, "rb/nightly", 10));
    ScheduleRecord s{.id = "rb/nightly", .runbook_id = "rb", .source = "cli", .spec_json = "{}"};
    AUTOMAN_RETURN_IF_ERROR(tx.PutSchedule(s).status());
    AUTOMAN_RETURN_IF_ERROR(tx.InsertFire(FireRecord{.schedule_id = s.id, .nominal = At(1)}));
    AUTOMAN_ASSIGN_OR_RETURN(revision, tx.SchedulesRevision());
    return Status::Ok();
  }));
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].id, "run-v2");
  EXPECT_EQ(revision, 1);
}

// The leadership lives in its connection's session: when the server ends that session
// (a restart, a network failure; here pg_terminate_backend), Held() turns false within
// about a second and stays false, and another holder can take over.
TEST_F(PostgresStoreTest, LeadershipIsLostWithItsConnection) {
  std::string schema;
  auto url = PgFreshUrl(&schema);
  ASSERT_OK(url);
  const std::string app = "automan_lead_" + schema;
  auto store = Store::Open({.url = *url + "&application_name=" + app});
  ASSERT_OK(store);
  auto lead = (*store)->TryLead("scheduler");
  ASSERT_OK(lead);
  ASSERT_NE(*lead, nullptr);
  EXPECT_TRUE((*lead)->Held());
  auto other = Store::Open({.url = *url});
  ASSERT_OK(other);
  auto refused = (*other)->TryLead("scheduler");
  ASSERT_OK(refused);
  EXPECT_EQ(*refused, nullptr);

  // Only the session of this store that holds an advisory lock: the leadership's.
  auto killed = PgAdminQuery(
      "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a WHERE "
      "a.application_name = '" +
      app +
      "' AND EXISTS (SELECT 1 FROM pg_locks l WHERE "
      "l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)");
  ASSERT_OK(killed);
  ASSERT_EQ(*killed, "1");

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*lead)->Held() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE((*lead)->Held());
  EXPECT_FALSE((*lead)->Held());  // for good

  std::unique_ptr<Leadership> next;
  while (next == nullptr && std::chrono::steady_clock::now() < deadline) {
    auto l = (*other)->TryLead("scheduler");
    ASSERT_OK(l);
    next = std::move(l).value();
    if (next == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(next, nullptr);
  EXPECT_TRUE(next->Held());
}

// The claim's write: fenced on the old token, stores the new one.
TEST_F(PostgresStoreTest, UpdateRunAdvancingFenceMovesTheFenceOnce) {
  auto store = OpenFreshPostgres();
  ASSERT_OK(store);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.fence = 3;
  ASSERT_OK(SeedRun(**store, v, r));
  auto advance = [&](Run next, int64_t expected) {
    return (*store)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) {
      return tx.UpdateRunAdvancingFence(next, expected);
    });
  };
  Run claimed = r;
  claimed.fence = 4;
  claimed.status = RunStatus::kRunning;
  claimed.lease_owner = "w1";
  ASSERT_OK(advance(claimed, 3));
  auto got = GetRunFrom(**store, r.id);
  ASSERT_OK(got);
  EXPECT_EQ(*got, claimed);
  // A second claimer that read fence 3 loses; the old holder's writes are refused.
  Run late = r;
  late.fence = 4;
  ExpectError(advance(late, 3), ErrorCode::kAborted, {r.id, "stale"});
  ExpectError(
      (*store)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.UpdateRun(r); }),
      ErrorCode::kAborted);
  ExpectError(advance(claimed, 4), ErrorCode::kInvalidArgument, {"greater"});
  Run missing = SampleRun(v);
  missing.fence = 2;
  ExpectError(advance(missing, 1), ErrorCode::kNotFound, {missing.id});
}

// The queue's hot path at the store level, as src/queue drives it: claims of up to 64
// runs per transaction (ListClaimable, then AcquireSlots + UpdateRunAdvancingFence +
// UpsertAttempt per run) and one kWrite transaction per completion (ReleaseSlots +
// UpdateRun + UpsertAttempt), from four worker threads sharing one Store; a quarter of the
// runs have a concurrency key. Durability::kFull (every completion waits for a WAL flush)
// and kFast (shows what the statements themselves cost). Prints the rates; asserts only
// that every run completed exactly once, without deadlocks between claimers and
// finishers.
class PostgresThroughputTest : public StoreTest,
                               public ::testing::WithParamInterface<Durability> {};

INSTANTIATE_TEST_SUITE_P(Durability, PostgresThroughputTest,
                         ::testing::Values(Durability::kFull, Durability::kFast),
                         [](const ::testing::TestParamInfo<Durability>& info) {
                           return info.param == Durability::kFull ? "Full" : "Fast";
                         });

TEST_P(PostgresThroughputTest, QueueClaimAndComplete) {
  auto url = PgFreshUrl();
  ASSERT_OK(url);
  auto store = Store::Open({.url = *url, .durability = GetParam()});
  ASSERT_OK(store);
  Store& st = **store;
  RunbookVersion v = SampleVersion();
  constexpr int kRuns = 3000;
  constexpr int kEnqueueBatch = 100;
  std::vector<Run> runs;
  for (int i = 0; i < kRuns; ++i) {
    Run r = SampleRun(v);
    if (i % 4 == 0)
      r.concurrency = {ConcurrencyLimit{.key = "k" + std::to_string(i % 16), .limit = 1000}};
    runs.push_back(std::move(r));
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int b = 0; b < kRuns; b += kEnqueueBatch) {
    ASSERT_OK(st.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
      for (int i = b; i < b + kEnqueueBatch; ++i) AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(runs[i]));
      return Status::Ok();
    }));
  }
  const auto t1 = std::chrono::steady_clock::now();
  std::atomic<int> completed{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> errors;  // guarded by mu
  auto fail = [&](const Status& s) {
    std::lock_guard<std::mutex> lock(mu);
    errors.push_back(s.ToString());
    stop = true;
  };
  auto worker = [&](int w) {
    const std::string owner = "w" + std::to_string(w);
    while (!stop && completed.load() < kRuns) {
      std::vector<Run> claimed;
      Status s = st.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
        claimed.clear();
        AUTOMAN_ASSIGN_OR_RETURN(auto candidates, tx.ListClaimable(At(100), 64));
        for (Run& r : candidates) {
          AUTOMAN_ASSIGN_OR_RETURN(bool slots, tx.AcquireSlots(r, At(100)));
          if (!slots) continue;
          const int64_t expected = r.fence;
          r.status = RunStatus::kRunning;
          r.attempt += 1;
          r.fence += 1;
          r.lease_owner = owner;
          r.lease_expires_at = At(130);
          AUTOMAN_RETURN_IF_ERROR(tx.UpdateRunAdvancingFence(r, expected));
          AUTOMAN_RETURN_IF_ERROR(tx.UpsertAttempt(Attempt{
              .run_id = r.id, .number = r.attempt, .worker = owner, .started_at = At(100)}));
          claimed.push_back(r);
        }
        return Status::Ok();
      });
      if (!s.ok()) return fail(s);
      if (claimed.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      for (Run& r : claimed) {
        Status f = st.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
          AUTOMAN_RETURN_IF_ERROR(tx.ReleaseSlots(r));
          r.status = RunStatus::kSuccess;
          r.finished_at = At(101);
          r.lease_expires_at.reset();
          AUTOMAN_RETURN_IF_ERROR(tx.UpdateRun(r));
          return tx.UpsertAttempt(Attempt{.run_id = r.id,
                                          .number = r.attempt,
                                          .status = RunStatus::kSuccess,
                                          .worker = owner,
                                          .started_at = At(100),
                                          .finished_at = At(101)});
        });
        if (!f.ok()) return fail(f);
        ++completed;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) threads.emplace_back(worker, w);
  for (std::thread& t : threads) t.join();
  const auto t2 = std::chrono::steady_clock::now();
  const double enqueue_s = std::chrono::duration<double>(t1 - t0).count();
  const double cycle_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf(
      "[ rate     ] %s: enqueue %.0f runs/s (batches of %d); claim (batches of 64) + "
      "complete (one kWrite each), 4 threads: %.0f runs/s\n",
      GetParam() == Durability::kFull ? "kFull" : "kFast", kRuns / enqueue_s, kEnqueueBatch,
      kRuns / cycle_s);
  ASSERT_TRUE(errors.empty()) << errors.front();
  ASSERT_EQ(completed.load(), kRuns);
  std::map<RunStatus, int64_t> counts;
  ASSERT_OK(st.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(counts, tx.CountRunsByStatus());
    return Status::Ok();
  }));
  EXPECT_EQ(counts[RunStatus::kSuccess], kRuns);
}

// ---------------------------------------------------------------------------------------
// Durability modes

TEST_F(PostgresStoreTest, SynchronousCommitFollowsTheDurability) {
  auto url = PgFreshUrl();
  ASSERT_OK(url);
  auto full = PostgresStore::Open({.url = *url});
  ASSERT_OK(full);
  EXPECT_EQ(*(*full)->Setting("synchronous_commit"), "on");
  auto fast = PostgresStore::Open({.url = *url, .durability = Durability::kFast});
  ASSERT_OK(fast);
  EXPECT_EQ(*(*fast)->Setting("synchronous_commit"), "off");
  ExpectError((*full)->Setting("x; DROP TABLE runs").status(), ErrorCode::kInvalidArgument);
}

TEST_F(PostgresStoreTest, ProgressAndFastCommitsAreVisible) {
  auto url = PgFreshUrl();
  ASSERT_OK(url);
  auto full = PostgresStore::Open({.url = *url});
  auto fast = PostgresStore::Open({.url = *url, .durability = Durability::kFast});
  ASSERT_OK(full);
  ASSERT_OK(fast);
  RunbookVersion v = SampleVersion();
  Run a = SampleRun(v);
  Run b = SampleRun(v);
  ASSERT_OK((*full)->Transact(Store::TxMode::kWriteProgress, [&](StoreTx& tx) {
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
    return tx.InsertRun(a);
  }));
  // The progress commit relaxed only itself.
  EXPECT_EQ(*(*full)->Setting("synchronous_commit"), "on");
  ASSERT_OK((*fast)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) { return tx.InsertRun(b); }));
  ASSERT_OK((*fast)->Transact(Store::TxMode::kWriteProgress, [&](StoreTx& tx) {
    std::vector<LogLine> lines = {SampleLine(b.id, 1, 1)};
    return tx.AppendLogLines(lines);
  }));
  // Each store sees the other's commits.
  ASSERT_OK(GetRunFrom(**fast, a.id));
  ASSERT_OK(GetRunFrom(**full, b.id));
  std::vector<LogLine> got;
  ASSERT_OK((*full)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(got, tx.ReadLogLines({.run_id = b.id}));
    return Status::Ok();
  }));
  EXPECT_EQ(got.size(), 1u);
  // A failed progress transaction leaves nothing behind.
  EXPECT_EQ((*full)
                ->Transact(Store::TxMode::kWriteProgress,
                           [&](StoreTx&) { return Error(ErrorCode::kCancelled, "no"); })
                .code(),
            ErrorCode::kCancelled);
  EXPECT_EQ(*(*full)->Setting("synchronous_commit"), "on");
}

// ---------------------------------------------------------------------------------------
// Errors that only a server has

TEST_F(PostgresStoreTest, RowLockHeldPastTheBusyTimeoutIsUnavailable) {
  auto url = PgFreshUrl();
  ASSERT_OK(url);
  auto holder = Store::Open({.url = *url});
  auto waiter = Store::Open({.url = *url, .busy_timeout = std::chrono::milliseconds(200)});
  ASSERT_OK(holder);
  ASSERT_OK(waiter);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(SeedRun(**holder, v, r));
  Status blocked;
  ASSERT_OK((*holder)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.UpdateRun(r));  // holds the row lock until commit
    blocked = (*waiter)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx2) {
      Run other = r;
      other.status = RunStatus::kFailed;
      return tx2.UpdateRun(other);
    });
    return Status::Ok();
  }));
  ExpectError(blocked, ErrorCode::kUnavailable, {"lock"});
  // The waiter's connection is fine afterwards.
  ASSERT_OK(GetRunFrom(**waiter, r.id));
}

TEST_F(PostgresStoreTest, TransactionAbortedByAnIgnoredErrorDoesNotCommit) {
  auto store = OpenFreshPostgres();
  ASSERT_OK(store);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  Status s = (*store)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
    (void)tx.UpsertAttempt(Attempt{.run_id = "no-such-run", .number = 1});  // ignored
    return Status::Ok();
  });
  ExpectError(s, ErrorCode::kAborted, {"nothing was committed"});
  auto got = (*store)->Transact(
      Store::TxMode::kRead, [&](StoreTx& tx) { return tx.GetRunbookVersion(v.version).status(); });
  ExpectError(got, ErrorCode::kNotFound);
}

// AppendLogLines uses COPY's text format: its escapes and its NULL marker are data here.
TEST_F(PostgresStoreTest, LogTextSurvivesCopyEscaping) {
  auto store = OpenFreshPostgres();
  ASSERT_OK(store);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(SeedRun(**store, v, r));
  std::vector<LogLine> lines;
  for (const char* text : {"\\N", "a\r\nb\tc\\", "\\.", "", "\\", "tab\there\n"}) {
    LogLine l = SampleLine(r.id, 1, static_cast<int64_t>(lines.size()) + 1, "s\tep\\1");
    l.text = text;
    lines.push_back(l);
  }
  ASSERT_OK((*store)->Transact(Store::TxMode::kWrite,
                               [&](StoreTx& tx) { return tx.AppendLogLines(lines); }));
  std::vector<LogLine> got;
  ASSERT_OK((*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(got, tx.ReadLogLines({.run_id = r.id}));
    return Status::Ok();
  }));
  EXPECT_EQ(got, lines);
  std::vector<LogLine> nul = {SampleLine(r.id, 1, 100)};
  nul[0].text = std::string("a\0b", 3);
  ExpectError((*store)->Transact(Store::TxMode::kWrite,
                                 [&](StoreTx& tx) { return tx.AppendLogLines(nul); }),
              ErrorCode::kInvalidArgument, {"NUL"});
}

// Prints the rate; asserts only that the lines arrived.
TEST_F(PostgresStoreTest, AppendLogLinesThroughput) {
  auto store = OpenFreshPostgres();
  ASSERT_OK(store);
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  ASSERT_OK(SeedRun(**store, v, r));
  constexpr int kBatches = 25;
  constexpr int kBatchSize = 2000;
  const auto start = std::chrono::steady_clock::now();
  for (int b = 0; b < kBatches; ++b) {
    std::vector<LogLine> batch;
    batch.reserve(kBatchSize);
    for (int i = 1; i <= kBatchSize; ++i) {
      LogLine l = SampleLine(r.id, 1, b * kBatchSize + i, "build");
      l.text = "2026-03-29T01:02:03Z compiling src/module_" + std::to_string(i) + ".cpp ...";
      batch.push_back(std::move(l));
    }
    ASSERT_OK((*store)->Transact(Store::TxMode::kWrite, [&](StoreTx& tx) {
      AUTOMAN_RETURN_IF_ERROR(tx.CheckFence(r.id, r.fence));
      return tx.AppendLogLines(batch);
    }));
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ rate     ] %d lines in %.3f s: %.0f lines/s (kFull, batches of %d)\n",
              kBatches * kBatchSize, secs, kBatches * kBatchSize / secs, kBatchSize);
  std::vector<LogLine> last;
  ASSERT_OK((*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(
        last, tx.ReadLogLines({.run_id = r.id, .after_seq = kBatches * kBatchSize - 1}));
    return Status::Ok();
  }));
  ASSERT_EQ(last.size(), 1u);
}

}  // namespace
}  // namespace automan::testing
