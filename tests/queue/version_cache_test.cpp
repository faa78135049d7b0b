// Queue::EnqueueMany skips PutRunbookVersion for versions this Queue saw committed (see
// Queue::stored_versions_). Should such a version vanish from the store anyway, the next
// enqueue must still succeed: InsertRun answers kNotFound, the Queue forgets what it knew
// and puts the version again.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "queue/queue.h"
#include "support/test_util.h"

namespace automan::testing {
namespace {

Runbook OneStep() {
  ParseResult r = ParseRunbook("id: cached\nsteps:\n  - id: s\n    argv: [/bin/true]\n", "t.yaml");
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r.runbook : Runbook{};
}

// Runs one statement on the database file with a connection of its own.
void ExecSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

TEST(QueueVersionCacheTest, EnqueueSucceedsAfterTheCachedVersionVanished) {
  TempDir dir;
  const std::string path = dir.File("automan.db");
  auto store = Store::Open({.url = "sqlite:" + path});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Queue q(**store, SystemClock());
  const Runbook rb = OneStep();
  EnqueueRequest req;
  req.runbook = &rb;

  auto first = q.Enqueue(req);  // puts the version; the Queue now remembers it
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  // Make the version vanish: the run goes first (it references the version).
  ASSERT_TRUE(q.Cancel(first->run.id).ok());
  ASSERT_TRUE((*store)
                  ->Transact(Store::TxMode::kWrite,
                             [&](StoreTx& tx) {
                               std::vector<std::string> ids{first->run.id};
                               return tx.DeleteRuns(ids);
                             })
                  .ok());
  ExecSql(path, "DELETE FROM runbook_versions");

  auto second = q.Enqueue(req);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  Status read = (*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(RunbookVersion v, tx.GetRunbookVersion(rb.version));
    EXPECT_EQ(v.yaml, rb.yaml);
    AUTOMAN_ASSIGN_OR_RETURN(automan::Run run, tx.GetRun(second->run.id));
    EXPECT_EQ(run.status, RunStatus::kPending);
    return Status::Ok();
  });
  EXPECT_TRUE(read.ok()) << read.ToString();

  // And a batch of several runs of one version puts it once and stores them all.
  std::vector<EnqueueRequest> many(5, req);
  auto batch = q.EnqueueMany(many);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->size(), 5u);
}

}  // namespace
}  // namespace automan::testing
