// The audit trail on PostgreSQL: appenders on separate connections (two Store objects,
// as two servers would have) serialise through StoreTx::LockKey("audit") into one
// gap-free chain; text round-trips exactly, so hashes verify; and tampering through a
// connection of its own (append-only trigger disabled) is reported as on SQLite.
// Skipped, saying why, when there is no PostgreSQL test cluster (tests/store/CMakeLists.txt).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "audit/audit_log.h"
#include "audit/audit_test_support.h"
#include "audit/verify.h"
#include "postgres_test_support.h"

namespace automan::audit {
namespace {

using automan::testing::OpenFreshPostgres;
using automan::testing::PgRawExec;
using automan::testing::PgUrlOf;
using testing::TestKey;

class AuditPostgres : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenFreshPostgres();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    log_ = std::make_unique<AuditLog>(*store_, key_, clock_,
                                      AuditLogOptions{.head_path = dir_.File("audit.head")});
  }

  void AppendMany(AuditLog& log, const std::string& actor, int n) {
    for (int i = 0; i < n; ++i) {
      AuditEvent e;
      e.actor = actor;
      e.action = "run.create";
      e.target = fmt::format("run/{}-{}", actor, i);
      e.remote = "2001:db8::1";
      e.details_json = fmt::format(R"({{"i":{},"note":"grüße \"x\"\n","f":0.1}})", i);
      Status st = log.Append(e);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
  }

  VerifyReport Verify() {
    auto r = log_->Verify();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : VerifyReport{};
  }

  automan::testing::TempDir dir_;
  AuditKey key_ = TestKey(11);
  SimulatedClock clock_{FromMicros(1'800'000'000'000'000)};
  std::unique_ptr<Store> store_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(AuditPostgres, ConcurrentAppendersOnTwoStoresMakeOneChain) {
  auto other = Store::Open({.url = PgUrlOf(*store_)});
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  AuditLog other_log(**other, key_, clock_, AuditLogOptions{.head_path = dir_.File("audit.head")});
  constexpr int kThreads = 6, kEach = 20;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    AuditLog& log = t % 2 ? other_log : *log_;
    threads.emplace_back([&, t, &log = log] { AppendMany(log, fmt::format("w{}", t), kEach); });
  }
  for (auto& t : threads) t.join();
  AuditFilter all;
  all.limit = 100000;
  auto entries = log_->List(all);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), size_t{kThreads * kEach});
  for (size_t i = 0; i < entries->size(); ++i) ASSERT_EQ((*entries)[i].seq, int64_t(i + 1));
  VerifyReport r = Verify();
  EXPECT_TRUE(r.ok) << ::testing::PrintToString(r);
  EXPECT_EQ(r.anchor_seq, kThreads * kEach);
}

TEST_F(AuditPostgres, TamperingIsReported) {
  AppendMany(*log_, "alice", 10);
  ASSERT_TRUE(Verify().ok);
  // The append-only trigger refuses edits until disabled.
  EXPECT_FALSE(PgRawExec(*store_, "UPDATE audit SET actor = 'mallory' WHERE seq = 5").ok());
  ASSERT_TRUE(PgRawExec(*store_,
                        "ALTER TABLE audit DISABLE TRIGGER audit_append_only;"
                        "UPDATE audit SET actor = 'mallory' WHERE seq = 5")
                  .ok());
  VerifyReport r = Verify();
  EXPECT_EQ(r.kind, FaultKind::kModified) << ::testing::PrintToString(r);
  EXPECT_EQ(r.first_bad_seq, 5);

  ASSERT_TRUE(PgRawExec(*store_, "UPDATE audit SET actor = 'alice' WHERE seq = 5").ok());
  ASSERT_TRUE(Verify().ok) << "restored";
  ASSERT_TRUE(PgRawExec(*store_, "DELETE FROM audit WHERE seq = 6").ok());
  r = Verify();
  EXPECT_EQ(r.kind, FaultKind::kMissing) << ::testing::PrintToString(r);
  EXPECT_EQ(r.first_bad_seq, 6);

  ASSERT_TRUE(PgRawExec(*store_, "DELETE FROM audit WHERE seq >= 6").ok());
  r = Verify();
  EXPECT_EQ(r.kind, FaultKind::kTruncated) << ::testing::PrintToString(r);
  EXPECT_EQ(r.first_bad_seq, 6);
}

}  // namespace
}  // namespace automan::audit
