// Concurrent appends produce one gap-free, valid chain: threads sharing an AuditLog,
// two Store objects on one file (as two processes would), and Verify running meanwhile.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "audit/audit_log.h"
#include "audit/audit_test_support.h"
#include "audit/verify.h"

namespace automan::audit {
namespace {

using testing::AuditFixture;

constexpr int kThreads = 8;
constexpr int kPerThread = 25;

void AppendFrom(AuditLog& log, int thread, int n) {
  for (int i = 0; i < n; ++i) {
    AuditEvent e;
    e.actor = fmt::format("worker-{}", thread);
    e.action = "run.create";
    e.target = fmt::format("run/{}-{}", thread, i);
    e.details_json = fmt::format("{{\"thread\":{},\"i\":{}}}", thread, i);
    Status st = log.Append(e);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
}

void ExpectGapFreeAndValid(AuditFixture& f, int64_t n) {
  auto all = f.All();
  ASSERT_EQ(static_cast<int64_t>(all.size()), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(all[i].seq, i + 1);
  VerifyReport r = f.Verify();
  EXPECT_TRUE(r.ok) << ::testing::PrintToString(r);
  EXPECT_EQ(r.entries_checked, n);
  EXPECT_EQ(r.anchor_seq, n) << "the head reached the newest entry";
  auto head = ReadHeadFile(f.head_path(), f.key());
  ASSERT_TRUE(head.ok() && head->has_value());
  EXPECT_EQ(**head, (HeadAnchor{n, all.back().hash}));
}

TEST(AuditConcurrency, ThreadsSharingOneLog) {
  AuditFixture f;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { AppendFrom(f.log(), t, kPerThread); });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(f.log().CheckpointStatus().ok()) << f.log().CheckpointStatus().ToString();
  ExpectGapFreeAndValid(f, kThreads * kPerThread);
}

TEST(AuditConcurrency, TwoStoresOnOneFile) {
  AuditFixture f;
  StoreOptions options;
  options.url = f.url();
  auto other = Store::Open(options);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  AuditLogOptions log_options;
  log_options.head_path = f.head_path();
  AuditLog other_log(**other, f.key(), f.clock(), log_options);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    AuditLog& log = t % 2 ? other_log : f.log();
    threads.emplace_back([&log, t] { AppendFrom(log, t, kPerThread); });
  }
  for (auto& t : threads) t.join();
  ExpectGapFreeAndValid(f, kThreads * kPerThread);
}

TEST(AuditConcurrency, AppendsInCallersTransactionsWithRollbacks) {
  AuditFixture f;
  std::atomic<int> committed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const bool roll_back = (i + t) % 3 == 0;
        Status st = f.store().Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
          AuditEvent e;
          e.actor = fmt::format("worker-{}", t);
          e.action = "user.update";
          AUTOMAN_RETURN_IF_ERROR(f.log().Append(tx, e));
          if (roll_back) return Error(ErrorCode::kAborted, "the action failed");
          return Status::Ok();
        });
        if (roll_back) {
          ASSERT_EQ(st.code(), ErrorCode::kAborted) << st.ToString();
        } else {
          ASSERT_TRUE(st.ok()) << st.ToString();
          ++committed;
          ASSERT_TRUE(f.log().Checkpoint().ok());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ExpectGapFreeAndValid(f, committed.load());
}

TEST(AuditConcurrency, VerifyWhileAppending) {
  AuditFixture f;
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] { AppendFrom(f.log(), t, kPerThread); });
  }
  int verifications = 0;
  std::thread verifier([&] {
    while (!done.load()) {
      auto r = VerifyAudit(f.store(), f.key(), {.head_path = f.head_path(), .page_size = 7});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      // The head is read first and only moves after commits: never a false alarm, except
      // "anchor" before the very first checkpoint has written the head.
      if (!r->ok) {
        ASSERT_EQ(r->kind, FaultKind::kAnchor) << ::testing::PrintToString(*r);
        ASSERT_LE(r->last_seq, kThreads) << ::testing::PrintToString(*r);
      }
      ++verifications;
    }
  });
  for (auto& t : threads) t.join();
  done = true;
  verifier.join();
  EXPECT_GT(verifications, 0);
  ExpectGapFreeAndValid(f, 4 * kPerThread);
}

}  // namespace
}  // namespace automan::audit
