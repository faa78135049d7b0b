// SqliteStore: the embedded Store backend (the default), on the sqlite3 C API.
//
// Connections: a small mutex-protected pool (at most kMaxConnections per Store). A
// transaction borrows one connection and returns it afterwards; each connection caches
// its prepared statements, so a statement is compiled once per connection. Readers run in
// parallel (WAL). An in-memory store (":memory:") has exactly one connection, so its
// transactions run one at a time.
//
// Group commit: the kWrite and kWriteProgress transactions of one Store share SQLite
// transactions. A caller queues its callback; the first caller that finds no leader
// becomes the leader, takes up to kMaxGroupCommit queued callbacks, runs BEGIN IMMEDIATE,
// each callback inside its own SAVEPOINT, and one COMMIT (one fsync for all of them), then
// hands over to a waiting caller. Every caller still gets its own outcome: a callback's
// error rolls back to its savepoint only and is returned to that caller; the COMMIT's
// outcome goes to every member whose callback succeeded. If SQLite itself rolls the whole
// transaction back (an I/O error, a full disk, a RAISE(ROLLBACK) trigger), nothing of the
// batch is committed: that member gets its error, the members run before it and those not
// yet run get kAborted (retry). A batch of kWriteProgress members only commits with
// synchronous=NORMAL; one kWrite member makes the whole batch durable.
// So a callback runs on the leader's thread, which may be another thread than its
// caller's, while the caller waits: it must not depend on thread-local state, and an
// exception it throws is carried back and rethrown on the caller's thread.
// Waiting is bounded by StoreOptions::busy_timeout: for being taken into a batch, and for
// SQLite's write lock (writers of other processes and other Stores); a caller still
// waiting at its deadline gets kUnavailable. A member taken into a batch waits for the
// batch's outcome.
//
// Settings: WAL journal, synchronous=FULL (Durability::kFull) or NORMAL (kFast),
// foreign_keys=ON, busy_timeout from the options, temp_store=MEMORY (savepoint journals
// stay in memory instead of spilling to temp files). Write batches start with
// BEGIN IMMEDIATE (they take the write lock up front, so they never fail half-way on a
// lock), kRead with a deferred BEGIN; a write method called in a kRead transaction returns
// kFailedPrecondition. The parent directory is created if missing (mode 0700) and a new
// database file is created with mode 0600 (SQLite gives its -wal/-shm files the same mode).
//
// Queue wake-ups (NotifyQueue / ListenQueue): each listener binds an AF_UNIX datagram
// socket named "<pid>-<counter>" in the directory "<database file>.wake/" (mode 0700,
// created by the first listener); NotifyQueue sends one byte to every socket there without
// blocking (a full receive queue means a wake-up is pending anyway) and removes the socket
// files nobody is bound to any more (ECONNREFUSED: their process died). It keeps the
// names it read and reads the directory again only when its mtime changed, 100 ms after
// the last reading, or after a failed send (a stat per call, not a readdir). Socket paths
// too long for sun_path are reached through /proc/self/fd/N/. A listener's Wait polls its
// socket and an eventfd (Wake) and drains everything pending, so notifications that
// arrive before a Wait count as one. A ":memory:" store's listeners are in-process:
// NotifyQueue wakes the listeners of that Store object only.
//
// Leadership (TryLead): an flock(LOCK_EX | LOCK_NB) on "<database file>.<name>.lock"
// (created 0600 beside the database, never removed), opened anew by every call, so it
// excludes other processes and other calls of this process alike; the kernel releases it
// when the Leadership is destroyed or the process dies. Held() is always true. A
// ":memory:" store's leaderships are process-local (a set of names in the Store).
//
// Schema: migrations from store/sqlite/migrations.h, applied at Open.
//
// Thread safety: as Store. Transact must not be called from inside a Transact callback of
// the same Store: a nested write waits for the batch the outer one is in, which cannot end
// first, so it gets kUnavailable after the busy timeout (and the outer one goes on); a
// nested read needs a second connection, which an in-memory store does not have.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "store/store.h"

namespace automan {

class SqliteStore final : public Store {
 public:
  static constexpr int kMaxConnections = 8;
  // At most this many write transactions share one commit: bounds how long a batch holds
  // SQLite's write lock (other processes wait that long) and what an SQLite-level
  // rollback of the batch takes with it.
  static constexpr size_t kMaxGroupCommit = 64;

  // `path` is a file path (relative to the current directory, or absolute) or ":memory:".
  // Errors: kPermissionDenied / kFailedPrecondition when the file or its directory cannot
  // be created or opened, kDataLoss when the file is not an SQLite database or is corrupt,
  // kFailedPrecondition when it belongs to another application or its schema is newer
  // than this binary, kUnavailable when another process holds the lock too long.
  static Result<std::unique_ptr<SqliteStore>> Open(std::string_view path,
                                                   const StoreOptions& options);

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Status Transact(TxMode mode, const std::function<Status(StoreTx&)>& fn) override;
  std::string Describe() const override;
  bool ReadsAreLocal() const override;
  int SchemaVersion() const override;
  Status NotifyQueue() override;
  Result<std::unique_ptr<QueueListener>> ListenQueue() override;
  Result<std::unique_ptr<Leadership>> TryLead(std::string_view name) override;

  // The value of `PRAGMA <name>` (a bare name such as "synchronous") on a pooled
  // connection, as text: for diagnostics (`automan doctor`) and tests.
  // kInvalidArgument for a name that is not [a-z_]+.
  Result<std::string> Pragma(std::string_view name);
  // PRAGMA integrity_check: OK, or kDataLoss listing the first problems found.
  Status CheckIntegrity();
  // Write transactions of this Store queued for a group commit and not yet taken into a
  // batch: for diagnostics and tests.
  size_t QueuedWrites();

 private:
  struct Impl;
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace automan
