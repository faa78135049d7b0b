// SqliteStore: the embedded Store backend (the default), on the sqlite3 C API.
//
// Connections: a small mutex-protected pool (at most kMaxConnections per Store). Transact
// borrows one connection for the whole transaction and returns it afterwards; each
// connection caches its prepared statements, so a statement is compiled once per
// connection. Readers run in parallel (WAL); writers of one Store wait for each other on an
// in-process mutex (no busy-polling between threads) and for writers of other processes
// on SQLite's lock, both within StoreOptions::busy_timeout, after which Transact returns
// kUnavailable. An in-memory store (":memory:") has exactly one connection, so its
// transactions run one at a time.
//
// Settings: WAL journal, synchronous=FULL (Durability::kFull) or NORMAL (kFast),
// foreign_keys=ON, busy_timeout from the options. kWrite transactions start with
// BEGIN IMMEDIATE (they take the write lock up front, so they never fail half-way on a
// lock), kRead with a deferred BEGIN; a write method called in a kRead transaction returns
// kFailedPrecondition. The parent directory is created if missing (mode 0700) and a new
// database file is created with mode 0600 (SQLite gives its -wal/-shm files the same mode).
//
// Schema: migrations from store/sqlite/migrations.h, applied at Open.
//
// Thread safety: as Store. Transact must not be called from inside a Transact callback of
// the same Store (a nested kWrite waits for the outer one and times out).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "store/store.h"

namespace automan {

class SqliteStore final : public Store {
 public:
  static constexpr int kMaxConnections = 8;

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
  int SchemaVersion() const override;

  // The value of `PRAGMA <name>` (a bare name such as "synchronous") on a pooled
  // connection, as text: for diagnostics (`automan doctor`) and tests.
  // kInvalidArgument for a name that is not [a-z_]+.
  Result<std::string> Pragma(std::string_view name);
  // PRAGMA integrity_check: OK, or kDataLoss listing the first problems found.
  Status CheckIntegrity();

 private:
  struct Impl;
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace automan
