// The multi-threaded part of the Store conformance suite (see store_conformance.h).
#include <atomic>
#include <mutex>
#include <thread>

#include "store_conformance.h"

namespace automan::testing {
namespace {

constexpr int kWriters = 4;
constexpr int kRunsPerWriter = 6;
constexpr int kBatches = 4;
constexpr int kBatchSize = 250;

// Writers insert runs and append their lines in batches while readers list runs and read
// lines: every call succeeds, readers only ever see whole batches, and at the end every
// line is stored exactly once, in order.
TEST_P(StoreConcurrencyTest, WritersAndReadersShareOneStore) {
  RunbookVersion v = SampleVersion();
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));

  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::string> run_ids;
  auto fail = [&](std::string what) {
    std::lock_guard<std::mutex> lock(mu);
    failures.push_back(std::move(what));
  };

  std::atomic<int> writers_left{kWriters};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kRunsPerWriter; ++i) {
        Run r = SampleRun(v);
        r.triggered_by = "writer-" + std::to_string(w);
        Status s = Write([&](StoreTx& tx) {
          AUTOMAN_RETURN_IF_ERROR(tx.InsertRun(r));
          return tx.UpsertAttempt(Attempt{.run_id = r.id, .number = 1, .worker = r.triggered_by});
        });
        if (!s.ok()) {
          fail("insert: " + s.ToString());
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          run_ids.push_back(r.id);
        }
        for (int b = 0; b < kBatches; ++b) {
          std::vector<LogLine> batch;
          for (int k = 1; k <= kBatchSize; ++k) {
            batch.push_back(SampleLine(r.id, 1, b * kBatchSize + k, "step"));
          }
          s = Write([&](StoreTx& tx) {
            AUTOMAN_RETURN_IF_ERROR(tx.CheckFence(r.id, r.fence));
            return tx.AppendLogLines(batch);
          });
          if (!s.ok()) fail("append: " + s.ToString());
        }
      }
      writers_left.fetch_sub(1);
    });
  }
  for (int rd = 0; rd < 2; ++rd) {
    threads.emplace_back([&] {
      while (writers_left.load() > 0) {
        auto runs = ListRuns(RunFilter{.limit = 1000});
        if (!runs.ok()) {
          fail("list: " + runs.status().ToString());
          return;
        }
        for (const Run& r : *runs) {
          auto lines = ReadLines(LogQuery{.run_id = r.id, .limit = 100000});
          if (!lines.ok()) {
            fail("read: " + lines.status().ToString());
            return;
          }
          if (lines->size() % kBatchSize != 0) {
            fail("saw a partial batch: " + std::to_string(lines->size()) + " lines");
          }
          for (size_t i = 0; i < lines->size(); ++i) {
            if ((*lines)[i].seq != static_cast<int64_t>(i) + 1) {
              fail("lines out of order");
              break;
            }
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& f : failures) ADD_FAILURE() << f;

  ASSERT_EQ(run_ids.size(), static_cast<size_t>(kWriters * kRunsPerWriter));
  auto runs = ListRuns(RunFilter{.limit = 1000});
  ASSERT_OK(runs);
  EXPECT_EQ(runs->size(), run_ids.size());
  for (const std::string& id : run_ids) {
    auto lines = ReadLines(LogQuery{.run_id = id, .limit = 100000});
    ASSERT_OK(lines);
    ASSERT_EQ(lines->size(), static_cast<size_t>(kBatches * kBatchSize)) << id;
    for (size_t i = 0; i < lines->size(); ++i) ASSERT_EQ((*lines)[i].seq, int64_t(i) + 1);
    auto attempts = ListAttempts(id);
    ASSERT_OK(attempts);
    EXPECT_EQ(attempts->size(), 1u);
  }
}

// Threads racing to insert the same run: exactly one wins, the rest see kAlreadyExists.
TEST_P(StoreConcurrencyTest, RacingInsertsOfOneRunHaveOneWinner) {
  RunbookVersion v = SampleVersion();
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutRunbookVersion(v); }));
  const Run r = SampleRun(v);
  constexpr int kThreads = 8;
  std::atomic<int> won{0}, lost{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Run mine = r;
      mine.triggered_by = "thread-" + std::to_string(i);
      Status s = Write([&](StoreTx& tx) { return tx.InsertRun(mine); });
      if (s.ok()) {
        won.fetch_add(1);
      } else if (s.code() == ErrorCode::kAlreadyExists) {
        lost.fetch_add(1);
      } else {
        other.fetch_add(1);
        ADD_FAILURE() << s.ToString();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(lost.load(), kThreads - 1);
  EXPECT_EQ(other.load(), 0);
  auto got = GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->triggered_by.rfind("thread-", 0), 0u);
}

// Schedule loops racing to decide the same occurrence (a second process on the same data,
// a retried loop): exactly one records it and moves the cursor, the others see
// kAlreadyExists and their transactions commit nothing.
TEST_P(StoreConcurrencyTest, RacingFiresOfOneOccurrenceHaveOneWinner) {
  ScheduleRecord sched{.id = "rb/nightly", .runbook_id = "rb", .source = "cli", .spec_json = "{}"};
  ASSERT_OK(Write([&](StoreTx& tx) { return tx.PutSchedule(sched).status(); }));
  constexpr int kThreads = 8;
  std::atomic<int> won{0}, lost{0}, winner{-1};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      FireRecord f{.schedule_id = sched.id, .nominal = At(100), .due = At(100)};
      f.run_id = "run-of-thread-" + std::to_string(i);
      Status s = Write([&](StoreTx& tx) {
        AUTOMAN_RETURN_IF_ERROR(tx.InsertFire(f));
        return tx.AdvanceScheduleCursor(sched.id, 1, At(100 + i));
      });
      if (s.ok()) {
        won.fetch_add(1);
        winner.store(i);
      } else if (s.code() == ErrorCode::kAlreadyExists) {
        lost.fetch_add(1);
      } else {
        ADD_FAILURE() << s.ToString();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(won.load(), 1);
  EXPECT_EQ(lost.load(), kThreads - 1);
  std::vector<FireRecord> fires;
  ScheduleRecord stored;
  ASSERT_OK(Read([&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(fires, tx.ListFires(sched.id, std::nullopt, 100));
    AUTOMAN_ASSIGN_OR_RETURN(stored, tx.GetSchedule(sched.id));
    return Status::Ok();
  }));
  ASSERT_EQ(fires.size(), 1u);
  // The fire and the cursor are the winner's: they committed together.
  EXPECT_EQ(fires[0].run_id, "run-of-thread-" + std::to_string(winner.load()));
  EXPECT_EQ(stored.cursor, At(100 + winner.load()));
}

// Writers holding different fencing tokens race on one run (a stale worker and the current
// one): only the holder of the stored fence gets lines in; the others get kAborted and
// write nothing.
TEST_P(StoreConcurrencyTest, OnlyTheCurrentFenceHolderWrites) {
  RunbookVersion v = SampleVersion();
  Run r = SampleRun(v);
  r.fence = 3;
  ASSERT_OK(Seed(v, r));
  std::atomic<int> written{0}, aborted{0};
  std::vector<std::thread> threads;
  for (int fence = 1; fence <= 5; ++fence) {
    threads.emplace_back([&, fence] {
      for (int i = 0; i < 10; ++i) {
        std::vector<LogLine> line = {SampleLine(r.id, 1, fence * 100 + i)};
        Status s = Write([&](StoreTx& tx) {
          AUTOMAN_RETURN_IF_ERROR(tx.CheckFence(r.id, fence));
          return tx.AppendLogLines(line);
        });
        if (s.ok()) {
          written.fetch_add(1);
        } else if (s.code() == ErrorCode::kAborted) {
          aborted.fetch_add(1);
        } else {
          ADD_FAILURE() << s.ToString();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(written.load(), 10);
  EXPECT_EQ(aborted.load(), 40);
  auto lines = ReadLines(LogQuery{.run_id = r.id});
  ASSERT_OK(lines);
  ASSERT_EQ(lines->size(), 10u);
  for (const LogLine& l : *lines) EXPECT_EQ(l.seq / 100, 3);
}

}  // namespace
}  // namespace automan::testing
