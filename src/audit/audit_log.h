// AuditLog: appends events to the tamper-evident audit trail and verifies it.
//
// Each entry is a row of the store's append-only audit table (store.h: AuditRecord),
// chained to the previous one by a keyed hash (chain.h). Who calls it: the API and auth
// code, for logins, permission denials, and every change they make.
//
// Contract
// - Append(tx, event) appends in the CALLER's transaction, so an action and its audit
//   entry commit or roll back together. It takes the store's "audit" key lock
//   (StoreTx::LockKey), reads the newest entry, and appends seq = newest + 1 with
//   at = clock.Now() and the chained hash: concurrent appenders (threads, processes,
//   hosts sharing a PostgreSQL store) produce one gap-free chain. The lock is held until
//   the caller's transaction ends, so keep audited transactions short.
// - Append(event) does the same in its own kWrite transaction, then Checkpoint().
// - Checkpoint() advances the head file (head.h) to the newest committed entry. Callers
//   of Append(tx, event) call it after their transaction commits; until then, the newest
//   entries could be cut off without Verify noticing. It never moves the head back, and
//   refuses (kDataLoss) to move it when the chain no longer has the anchored entry: after
//   tampering the anchor keeps its evidence.
// - Events are validated: actor and action non-empty, outcome "ok", "denied" or
//   "failed", details_json a JSON object (at most 64 KiB); kInvalidArgument otherwise.
//   details_json is stored re-serialised (boost::json::serialize: one line, no
//   insignificant whitespace, member order kept), so an export can embed it verbatim.
//   Text fields are stored as valid UTF-8 (invalid sequences and NUL become U+FFFD), so
//   what is hashed is exactly what either backend stores and returns.
// - Thread-safe: one AuditLog may be shared by threads. Head updates are serialised
//   across threads and processes by an flock on "<head>.lock".
// - Cost per Append(event), SQLite with Durability::kFull: one write transaction (its
//   commit's fsync, shared by group commit) plus the head update (a read transaction, a
//   small file written, fsynced and renamed; one head write serves every append that
//   committed before it). See README.md for numbers.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "audit/chain.h"
#include "audit/verify.h"
#include "common/clock.h"
#include "common/status.h"
#include "store/store.h"

namespace automan::audit {

struct AuditEvent {
  std::string actor;                // a username, "system", or "anonymous"
  std::string action;               // "auth.login", "run.create", ...
  std::string target;               // "run/ID", "user/NAME"; may be empty
  std::string outcome = "ok";       // "ok", "denied", "failed"
  std::string remote;               // client address; may be empty
  std::string details_json = "{}";  // a JSON object (stored compact: see the contract)
};

struct AuditLogOptions {
  // The head file (head.h), e.g. DATA/audit.head. "" = none: Verify then cannot detect
  // removal of the newest entries.
  std::string head_path;
  // fsync the new head file before it replaces the old one (WriteHeadFile's `sync`).
  bool sync_head = true;
};

class AuditLog {
 public:
  // `store` and `clock` must outlive the AuditLog. The key is copied (and wiped on
  // destruction).
  AuditLog(Store& store, const AuditKey& key, const Clock& clock, AuditLogOptions options = {});
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends in the caller's transaction (see the contract). On error the caller's
  // transaction should roll back (return the error from the callback).
  Status Append(StoreTx& tx, AuditEvent event);
  // Appends in its own kWrite transaction, then advances the head. Returns the append's
  // error, or OK once the entry is committed: a failure to advance the head afterwards is
  // not the append's (retrying would append twice); it is kept in CheckpointStatus() and
  // written to stderr.
  Status Append(AuditEvent event);

  // Advances the head file to the newest committed entry (see the contract). OK without
  // a head path, or when the chain is empty.
  Status Checkpoint();
  // The result of the last Checkpoint, including the ones Append(event) made.
  Status CheckpointStatus() const;

  Result<std::vector<AuditRecord>> List(const AuditFilter& filter);

  // VerifyAudit over this log's store, key and head file (plus `extra_anchors`).
  Result<VerifyReport> Verify(std::vector<HeadAnchor> extra_anchors = {});

  const std::string& head_path() const { return options_.head_path; }

 private:
  Result<AuditRecord> MakeRecord(AuditEvent event) const;
  Result<int64_t> AppendInTx(StoreTx& tx, AuditEvent event);  // the new entry's seq
  // Checkpoint(), except that the head file is not rewritten when it already covers
  // entry `seq` (a concurrent appender anchored it): one head write serves a whole group
  // of concurrent appends, as one fsync serves a group commit.
  Status CheckpointCovering(std::optional<int64_t> seq);

  Store& store_;
  AuditKey key_;
  const Clock& clock_;
  AuditLogOptions options_;
  mutable std::mutex mu_;
  Status checkpoint_status_;  // guarded by mu_
};

}  // namespace automan::audit
