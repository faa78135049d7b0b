// The Store conformance suite: the executable form of the contract in src/store/store.h.
// Every backend runs it unchanged.
//
// A backend's test binary adds store_conformance.cpp (every StoreTx method, ordering,
// errors, rollback), store_conformance_queue.cpp (the queue primitives) and/or
// store_conformance_concurrency.cpp (threads sharing one Store; give that binary the ctest
// label `concurrency`) to its sources, and instantiates the suites with factories that
// open a fresh, empty store on every call:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
//                            ::testing::Values(StoreBackend{"file", OpenFreshFileStore}),
//                            StoreBackendName);
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConcurrencyTest, ..., StoreBackendName);
//
// store_conformance_schedules.cpp (schedules, the fire ledger, leadership) instantiates
// StoreScheduleConformanceTest the same way, store_conformance_security.cpp (users,
// credentials, secrets, the audit trail) StoreSecurityConformanceTest.
//
// The suite uses only the public Store API and values every backend must be able to
// store (valid UTF-8 text without NUL characters; any bytes in SecretRecord::sealed),
// except the tests that use StoreBackend::raw_exec.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "core/run.h"
#include "store/store.h"

namespace automan::testing {

using StoreFactory = std::function<Result<std::unique_ptr<Store>>()>;

struct StoreBackend {
  std::string name;   // the test-name suffix: letters, digits and '_'
  StoreFactory open;  // a fresh, empty store on every call
  // The URL (for Store::Open) of the data of a store `open` returned, to open it again as
  // another Store or another process would. Unset when a store's data is private to its
  // Store object (sqlite::memory:); the tests that need it are skipped then.
  std::function<std::string(const Store&)> url_of;
  // Runs `sql` on the data of a store `open` returned, behind the store's back (a
  // connection of the backend's own client library), for the tests of what the schema
  // itself refuses. Returns the error the database gave. Unset: those tests are skipped.
  std::function<Status(const Store&, const std::string& sql)> raw_exec;
};

inline void PrintTo(const StoreBackend& b, std::ostream* os) { *os << b.name; }

inline std::string StoreBackendName(const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param.name;
}

// gtest's Test::Run() would hide automan::Run inside test bodies; fixtures bring it back.
class StoreTest : public ::testing::Test {
 protected:
  using Run = ::automan::Run;
};

class StoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  using Run = ::automan::Run;

  void SetUp() override {
    auto store = GetParam().open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  // Runs `fn` in a write transaction and returns its status.
  Status Write(const std::function<Status(StoreTx&)>& fn) {
    return store_->Transact(Store::TxMode::kWrite, fn);
  }
  Status Read(const std::function<Status(StoreTx&)>& fn) {
    return store_->Transact(Store::TxMode::kRead, fn);
  }

  // Reads one value in a read transaction.
  template <typename T>
  Result<T> ReadValue(const std::function<Result<T>(StoreTx&)>& fn) {
    std::optional<T> out;
    Status s = Read([&](StoreTx& tx) -> Status {
      Result<T> r = fn(tx);
      if (!r.ok()) return r.status();
      out = std::move(r).value();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return std::move(*out);
  }
  Result<Run> GetRun(const std::string& id) {
    return ReadValue<Run>([&](StoreTx& tx) { return tx.GetRun(id); });
  }
  Result<RunbookVersion> GetVersion(const std::string& version) {
    return ReadValue<RunbookVersion>([&](StoreTx& tx) { return tx.GetRunbookVersion(version); });
  }
  Result<std::vector<Run>> ListRuns(const RunFilter& f) {
    return ReadValue<std::vector<Run>>([&](StoreTx& tx) { return tx.ListRuns(f); });
  }
  Result<std::vector<Attempt>> ListAttempts(const std::string& run_id) {
    return ReadValue<std::vector<Attempt>>([&](StoreTx& tx) { return tx.ListAttempts(run_id); });
  }
  Result<std::vector<StepRun>> ListStepRuns(const std::string& run_id) {
    return ReadValue<std::vector<StepRun>>([&](StoreTx& tx) { return tx.ListStepRuns(run_id); });
  }
  Result<std::vector<LogLine>> ReadLines(const LogQuery& q) {
    return ReadValue<std::vector<LogLine>>([&](StoreTx& tx) { return tx.ReadLogLines(q); });
  }
  // Stores `v` and `run` in one write transaction.
  Status Seed(const RunbookVersion& v, const Run& run) {
    return Write([&](StoreTx& tx) {
      AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(v));
      return tx.InsertRun(run);
    });
  }

  std::unique_ptr<Store> store_;
};

// Schedules, the fire ledger, ListActiveRuns and Store::TryLead
// (store_conformance_schedules.cpp). Instantiated like StoreConformanceTest; give the
// backend a `url_of` so the leadership tests can open a second Store and a child process
// on the same data. The test binary also needs writer_child.cpp.
class StoreScheduleConformanceTest : public StoreConformanceTest {
 protected:
  // Each in its own transaction.
  Result<ScheduleRecord> PutSchedule(const ScheduleRecord& s);
  Result<ScheduleRecord> GetSchedule(const std::string& id);
  Result<std::vector<ScheduleRecord>> ListSchedules();
  Result<int64_t> Revision();
  Status DeleteSchedule(const std::string& id);
  Status Advance(const std::string& id, int64_t generation, Timestamp cursor);
  Status InsertFire(const FireRecord& f);
  Result<std::vector<FireRecord>> ListFires(const std::string& id,
                                            std::optional<Timestamp> before = std::nullopt,
                                            int limit = 100);
  // Ids of ListActiveRuns.
  Result<std::vector<std::string>> ActiveRunIds(Trigger trigger, const std::string& by,
                                                int limit = 100);
  // A second Store on this test's data (GetParam().url_of), or null when the backend has
  // no shareable data.
  std::unique_ptr<Store> OpenSecond();
};

// Users, credentials, secrets and the audit trail (store_conformance_security.cpp).
// Instantiated like StoreConformanceTest; give the backend a `raw_exec` for the tests of
// the schema's own refusals (the audit table's triggers, the owner's cascade).
class StoreSecurityConformanceTest : public StoreConformanceTest {
 protected:
  // Each in its own transaction.
  Status PutUser(const UserRecord& u);
  Result<UserRecord> GetUser(const std::string& username);
  Result<std::vector<UserRecord>> ListUsers();
  Status InsertCredential(const CredentialRecord& c);
  Result<CredentialRecord> GetCredential(const std::string& id);
  Result<CredentialRecord> FindCredential(const std::string& secret_hash);
  Result<std::vector<CredentialRecord>> ListCredentials(CredentialKind kind,
                                                        const std::string& owner = "");
  Status UpdateCredential(const CredentialRecord& c);
  Result<int64_t> PurgeCredentials(Timestamp before);
  Status PutSecret(const SecretRecord& s);
  Result<SecretRecord> GetSecret(const std::string& name);
  Result<std::vector<SecretRecord>> ListSecrets();
  Status DeleteSecret(const std::string& name);
  Result<std::optional<AuditRecord>> LastAudit();
  Status AppendAudit(const AuditRecord& e);
  Result<std::vector<AuditRecord>> ListAudit(const AuditFilter& f);
  // The seqs ListAudit returns.
  Result<std::vector<int64_t>> AuditSeqs(const AuditFilter& f);
};

// Threads sharing one Store (a separate suite so it can carry the `concurrency` label).
class StoreConcurrencyTest : public StoreConformanceTest {};

// The queue primitives of StoreTx (store_conformance_queue.cpp). Instantiated like
// StoreConformanceTest:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreQueueConformanceTest, ..., StoreBackendName);
class StoreQueueConformanceTest : public StoreConformanceTest {
 protected:
  // Also stores v_.
  void SetUp() override;

  // Inserts the runs in this order, one transaction each (enqueue order).
  Status Insert(std::initializer_list<Run> runs);
  // ListClaimable in a write transaction.
  Result<std::vector<Run>> Claimable(Timestamp now, int limit = 100);
  Result<std::vector<std::string>> ClaimableIds(Timestamp now, int limit = 100);
  Result<bool> Acquire(const Run& r, Timestamp now);
  Status Release(const Run& r);
  // Stores `r` as RUNNING with a lease, as a claim leaves it (the fence stays).
  Status MarkRunning(Run& r, const std::string& owner, Timestamp expires);
  Status SetStatus(Run& r, RunStatus status, std::optional<Timestamp> finished_at = {});
  // Inserts a run of `v` in `status` (terminal by default) finished at At(finished).
  Status Finished(const std::string& id, const RunbookVersion& v, int64_t finished,
                  RunStatus status = RunStatus::kSuccess);
  Result<std::vector<std::string>> Prunable(std::optional<Timestamp> before,
                                            std::optional<int> keep, int limit = 100);

  // Reads one value in a write transaction (for the primitives that lock what they list).
  template <typename T>
  Result<T> WriteValue(const std::function<Result<T>(StoreTx&)>& fn) {
    std::optional<T> out;
    Status s = Write([&](StoreTx& tx) -> Status {
      Result<T> r = fn(tx);
      if (!r.ok()) return r.status();
      out = std::move(r).value();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return std::move(*out);
  }

  RunbookVersion v_;  // SampleVersion(), stored by SetUp
};

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

// Asserts that a Status or Result is OK, printing the error otherwise.
#define ASSERT_OK(expr)                                                          \
  do {                                                                           \
    const auto& automan_r_ = (expr);                                             \
    ASSERT_TRUE(::automan::testing::StatusOf(automan_r_).ok())                   \
        << #expr << ": " << ::automan::testing::StatusOf(automan_r_).ToString(); \
  } while (0)

// Expects the specific error code and that the message contains every word.
inline void ExpectError(const Status& s, ErrorCode code,
                        std::initializer_list<std::string_view> words = {}) {
  EXPECT_EQ(ErrorCodeName(s.code()), ErrorCodeName(code)) << s.ToString();
  for (std::string_view w : words) {
    EXPECT_NE(s.message().find(w), std::string::npos)
        << "expected \"" << w << "\" in: " << s.ToString();
  }
}

// Row builders shared by the suites (defined in store_conformance_rows.cpp).
RunbookVersion SampleVersion(const std::string& runbook_id = "disk-cleanup",
                             const std::string& yaml = "id: disk-cleanup\nsteps: []\n");
// A run of `v` with a fresh time-ordered id and only the required fields set.
Run SampleRun(const RunbookVersion& v);
LogLine SampleLine(const std::string& run_id, int attempt, int64_t seq,
                   const std::string& step_id = "step", LogStream stream = LogStream::kStdout);
// A fixed, microsecond-precise instant plus `seconds`.
Timestamp At(int64_t seconds);

}  // namespace automan::testing
