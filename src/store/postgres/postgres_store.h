// PostgresStore: the Store backend for clusters (several servers and workers sharing one
// PostgreSQL database), on libpq.
//
// URL: "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?param=value...]" (or
// "postgres://"), any libpq connection URI; query parameters are libpq keywords (for
// example `sslmode`, or `options=-csearch_path%3Dmyschema` to use another schema).
// The password never appears in a message or in Describe() (see RedactStoreUrl).
//
// Connections: a mutex-protected pool of at most kMaxConnections libpq connections per
// Store (a libpq connection is not thread-safe: the pool hands each one to a single
// Transact at a time). Waiting for a free connection and for row locks held by other
// transactions (`lock_timeout`) are both bounded by StoreOptions::busy_timeout, after
// which Transact returns kUnavailable. A connection that broke is dropped, not reused.
//
// Transactions: kWrite is BEGIN ... COMMIT (READ COMMITTED; synchronous_commit=on, so a
// commit is flushed to the WAL on disk before Transact returns). kWriteProgress adds
// `SET LOCAL synchronous_commit = off` (survives a crash of this process, may be lost on a
// crash of the server host until the next synchronous commit). kRead is BEGIN READ ONLY,
// and its write methods return kFailedPrecondition without reaching the server.
// Durability::kFast sets synchronous_commit=off for every transaction of the Store.
//
// Fencing: UpdateRun is `UPDATE ... WHERE id = $1 AND fence = $22` (PostgreSQL re-checks
// the condition on the newest row version after waiting for a concurrent writer), and
// CheckFence in a write transaction reads the fence `FOR SHARE`: a claim that would change
// the fence waits until this transaction ends, so the checked fence stays current until
// commit. Writers of the same run (line appenders) do not block each other.
//
// Errors after a failed statement: PostgreSQL aborts the whole transaction on any error.
// The methods whose errors a caller may want to survive do not let that happen:
// AppendLogLines runs in a savepoint (a refused batch writes nothing and the transaction
// goes on), and a duplicate InsertRun is detected with ON CONFLICT DO NOTHING. After any
// other failed statement the transaction can only roll back: later calls return kAborted
// and so does Transact if the callback still returns OK.
//
// Schema: versioned migrations (store/postgres/migrations.h) recorded in
// `schema_migrations`, applied at Open in one transaction under
// `pg_advisory_xact_lock`, so processes opening at the same time migrate once.
// Unqualified table names: the tables live in the first schema of the search_path.
//
// Queue primitives (store.h): ListClaimable and ListExpiredLeases lock the rows they
// return FOR UPDATE SKIP LOCKED (concurrent claimers get disjoint runs without waiting),
// and ListClaimable also locks the key_slots rows of the returned runs' keys in key order,
// so claimers sharing keys queue up instead of deadlocking. AcquireSlots takes each key
// with one INSERT ... ON CONFLICT DO UPDATE ... WHERE running < limit, which re-checks the
// limit on the newest row version after waiting for another transaction's row lock.
// LockKey is pg_advisory_xact_lock on a 64-bit FNV-1a hash of "automan:lock-key:" + key.
// Statements with parameters are prepared once per connection.
//
// Wake-ups: NotifyQueue runs pg_notify('automan_queue', current_schema()) on a pooled
// connection in its own transaction (synchronous_commit off). ListenQueue opens a
// dedicated connection that LISTENs; its Wait polls that socket and an eventfd (Wake),
// ignores notifications of other schemas, and reconnects (with backoff) when the
// connection breaks, returning true so that the caller re-polls.
//
// Schedules (schema version 3): PutSchedule and DeleteSchedule bump the one-row
// schedule_revision in their statement, locking it before the schedule's row. InsertFire
// is one statement that locks the schedule's row FOR KEY SHARE (a concurrent delete waits
// for the transaction) and inserts ON CONFLICT DO NOTHING, so a duplicate (kAlreadyExists)
// leaves the transaction usable. AdvanceScheduleCursor is one conditional UPDATE on
// (id, generation).
//
// Leadership (TryLead): a dedicated connection (the Store's URL and schema) runs
// pg_try_advisory_lock(FNV-1a 64 of "automan:lead:<current_schema>/<name>"); the session
// lock lasts until the Leadership closes the connection or the process dies. Held() runs
// `SELECT 1` on it at most once a second and is false for good after a failure.
//
// Text: PostgreSQL text must be valid UTF-8 without NUL characters (a UTF8 database);
// other bytes are refused with kInvalidArgument.
//
// Thread safety: as Store.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "store/store.h"

namespace automan {

class PostgresStore final : public Store {
 public:
  static constexpr int kMaxConnections = 8;

  // Errors: kInvalidArgument for a URL libpq cannot parse, kUnavailable when the server
  // cannot be reached or refuses the connection, kFailedPrecondition when the schema is
  // newer than this binary.
  static Result<std::unique_ptr<PostgresStore>> Open(const StoreOptions& options);

  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  Status Transact(TxMode mode, const std::function<Status(StoreTx&)>& fn) override;
  // "postgresql://HOST:PORT/DB" (no user, password or parameters).
  std::string Describe() const override;
  bool ReadsAreLocal() const override { return false; }  // a network round trip
  int SchemaVersion() const override;
  Status NotifyQueue() override;
  Result<std::unique_ptr<QueueListener>> ListenQueue() override;
  Result<std::unique_ptr<Leadership>> TryLead(std::string_view name) override;

  // The value of a server setting (`SHOW name`) on a pooled connection, for diagnostics
  // and tests. kInvalidArgument for a name that is not [a-z_]+.
  Result<std::string> Setting(std::string_view name);

 private:
  struct Impl;
  explicit PostgresStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace automan
