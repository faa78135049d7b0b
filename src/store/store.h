// Store: the durable record of runbook versions, runs, attempts, step runs and log lines.
//
// One abstract interface, two backends: SQLite (the embedded default, store/sqlite/) and
// PostgreSQL (store/postgres/, for several processes on several machines; docs/store.md).
// Every backend passes the same conformance suite
// (tests/store/store_conformance.h), which is the executable form of this contract.
//
// Contract
// - All reads and writes happen inside Transact(): the callback receives a StoreTx and
//   either returns OK (the transaction commits) or an error (it rolls back, and Transact
//   returns that error). Nothing written in a rolled-back transaction is visible, ever.
// - "Committed" means durable: when Transact returns OK for a kWrite transaction under
//   Durability::kFull, the data survives a kill -9 of the process and a power loss.
//   Durability::kFast (opt-in) may lose the last commits on power loss, never on a crash.
// - Several processes may open the same store (a server and `automan exec` sharing a data
//   dir). Writers are serialised by the backend; a writer that cannot get the lock within
//   the busy timeout gets kUnavailable.
// - Fencing: UpdateRun succeeds only when the stored run's fence equals run.fence
//   (kAborted otherwise), and CheckFence lets a writer of step runs and log lines verify, in
//   the same transaction, that its lease is still current. Only a claim changes the fence.
// - Thread safety: a Store may be shared by threads; each Transact call is independent.
//   A StoreTx must not escape its callback or be used from another thread, and a callback
//   must not call Transact on the same Store (a nested kWrite waits for the outer one).
//   A callback may run on another thread than the caller's, while the caller waits (SQLite
//   runs the concurrent write transactions of one Store in one group commit, on the
//   leader's thread): it must not rely on thread-local state; an exception it throws
//   reaches its own caller.
//   A kRead transaction only reads: its write methods return kFailedPrecondition.
// - Errors: kNotFound for a missing row, kAlreadyExists for a duplicate key,
//   kFailedPrecondition for a database whose schema is newer than this binary,
//   kDataLoss for a corrupt file, kUnavailable for busy/locked, kInvalidArgument for a bad
//   URL.
//   A row whose parent is missing is kNotFound too (a run whose runbook version was never
//   put; an attempt, step run or log line of a run that does not exist). Malformed rows
//   (empty ids, attempt or seq below 1) and out-of-range limits are kInvalidArgument.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "core/run.h"

namespace automan {

// The exact text of a runbook as a run executed it. Content-addressed by `version`.
struct RunbookVersion {
  std::string version;  // "sha256:<hex>" of yaml
  std::string runbook_id;
  std::string yaml;
  std::string source;  // where it was loaded from, informational
  Timestamp created_at{};
  bool operator==(const RunbookVersion&) const = default;
};

// A schedule as the store keeps it. The store does not interpret `spec_json` (the
// schedule's definition, written and read by scheduler/definition.h).
struct ScheduleRecord {
  std::string id;          // "<runbook id>/<schedule id>", 1..200 bytes
  std::string runbook_id;  // non-empty
  std::string source;      // "file:/abs/path.yaml" (kept in sync with the file) or "cli"
  std::string spec_json;   // non-empty
  bool paused = false;
  int64_t generation = 0;  // set by PutSchedule; every change increments it
  // Occurrences whose nominal time is at or before the cursor have been decided (fired,
  // skipped or missed, see the ledger); the loop decides the ones after it.
  Timestamp cursor{};
  Timestamp created_at{};
  Timestamp updated_at{};
  bool operator==(const ScheduleRecord&) const = default;
};

enum class FireStatus { kFired, kLate, kSkipped, kMissed };
std::string_view ToString(FireStatus s);  // "fired" "late" "skipped" "missed"
std::optional<FireStatus> ParseFireStatus(std::string_view name);

// One expected occurrence of a schedule and what became of it.
struct FireRecord {
  std::string schedule_id;
  Timestamp nominal{};  // the occurrence (for a deadline-aligned schedule, the send time)
  Timestamp due{};      // when its run was to start: nominal - lead + jitter
  FireStatus status = FireStatus::kFired;
  // skipped/missed: why ("overlap", "paused", "dst_gap", "dst_repeat", "misfire",
  // "max_lateness", ... with detail after ": "); empty for fired.
  std::string reason;
  std::string run_id;      // fired/late: the run; empty otherwise
  Duration delay{};        // fired/late: when it was enqueued minus due
  std::string wall;        // the local wall time it stands for, "2026-03-29T02:30:00" + zone
  int64_t generation = 0;  // of the schedule definition that decided it
  Timestamp recorded_at{};
  bool operator==(const FireRecord&) const = default;
};

// Newest first. `before_id` is the cursor: only runs whose id sorts before it.
struct RunFilter {
  std::optional<std::string> runbook_id;
  std::optional<RunStatus> status;
  std::optional<Trigger> trigger;
  std::optional<std::string> before_id;
  int limit = 50;  // 1..1000
};

// Lines of one run in sequence order, after `after_seq`. Sequence numbers restart with
// every attempt, so `after_seq` applies within each attempt: to page through a run's lines
// set `attempt` (ListAttempts gives the numbers) and pass the last seq received.
struct LogQuery {
  std::string run_id;
  std::optional<int> attempt;  // all attempts when unset (ordered by attempt, seq)
  std::optional<std::string> step_id;
  std::optional<LogStream> stream;
  int64_t after_seq = 0;
  int limit = 1000;  // 1..100000
};

// Security (src/auth, src/audit). The store keeps these rows; it does not interpret them
// (hashing, encryption, expiry and the audit chain are the callers').

// A user who can log in. `username` is the key.
struct UserRecord {
  std::string username;
  std::string password_hash;  // argon2id PHC string ("$argon2id$v=19$...")
  std::string role;
  bool disabled = false;
  bool must_change_password = false;
  int failed_logins = 0;                   // consecutive, reset by a successful login
  std::optional<Timestamp> locked_until;   // login refused before this instant
  Timestamp created_at{};
  Timestamp updated_at{};
  bool operator==(const UserRecord&) const = default;
};

enum class CredentialKind { kSession, kToken };
std::string_view ToString(CredentialKind k);  // "session" "token"
std::optional<CredentialKind> ParseCredentialKind(std::string_view name);

// A login session (cookie) or an API token (bearer). Only the SHA-256 of the secret is
// kept; `id` is a public handle for listing and revoking.
struct CredentialRecord {
  std::string id;
  CredentialKind kind = CredentialKind::kToken;
  std::string secret_hash;  // lower-case hex SHA-256 of the secret; unique
  std::string owner;        // a username
  std::string name;         // a token's name; "" for sessions
  std::string role;         // "" = the owner's role; else the (narrower) role granted
  Timestamp created_at{};
  std::optional<Timestamp> expires_at;  // absolute expiry
  std::optional<Timestamp> last_used_at;
  std::optional<Timestamp> revoked_at;
  bool operator==(const CredentialRecord&) const = default;
};

// A secret, sealed by the caller (auth/crypto.h); the store never sees the plaintext.
struct SecretRecord {
  std::string name;
  std::string sealed;  // bytes: nonce || ciphertext
  std::string description;
  Timestamp created_at{};  // kept on replacement
  Timestamp updated_at{};
  std::string updated_by;
  bool operator==(const SecretRecord&) const = default;
};

// One entry of the append-only audit trail (src/audit). `seq` is 1, 2, 3, ... with no gap;
// `hash` chains the entry to the previous one (computed by the caller).
struct AuditRecord {
  int64_t seq = 0;
  Timestamp at{};
  std::string actor;    // a username, "system", or "anonymous"
  std::string action;   // "auth.login", "run.create", ...
  std::string target;   // what it acted on ("run/ID", "user/NAME"); may be empty
  std::string outcome;  // "ok", "denied", "failed"
  std::string remote;   // client address; may be empty
  std::string details_json;  // a JSON object
  std::string hash;          // lower-case hex
  bool operator==(const AuditRecord&) const = default;
};

// Oldest first (by seq). Every set field must match.
struct AuditFilter {
  int64_t after_seq = 0;
  std::optional<std::string> actor;
  std::optional<std::string> action;  // exact, or a prefix ending in '.' ("run.")
  std::optional<Timestamp> since;     // at >= since
  std::optional<Timestamp> until;     // at < until
  int limit = 1000;                   // 1..100000
};

class StoreTx {
 public:
  virtual ~StoreTx() = default;

  // Idempotent: putting an existing version again is OK and changes nothing.
  virtual Status PutRunbookVersion(const RunbookVersion& v) = 0;
  virtual Result<RunbookVersion> GetRunbookVersion(std::string_view version) = 0;

  virtual Status InsertRun(const Run& run) = 0;  // kAlreadyExists on a duplicate id
  virtual Result<Run> GetRun(std::string_view id) = 0;
  // Replaces every field of the run with this id; fenced (see the header comment).
  virtual Status UpdateRun(const Run& run) = 0;
  virtual Result<std::vector<Run>> ListRuns(const RunFilter& filter) = 0;
  // kAborted when the run's stored fence is not `fence`; kNotFound when there is no run.
  virtual Status CheckFence(std::string_view run_id, int64_t fence) = 0;

  // Insert or replace by (run_id, number).
  virtual Status UpsertAttempt(const Attempt& a) = 0;
  virtual Result<std::vector<Attempt>> ListAttempts(std::string_view run_id) = 0;

  // Insert or replace by (run_id, attempt, step_id).
  virtual Status UpsertStepRun(const StepRun& s) = 0;
  // Ordered by attempt, then index.
  virtual Result<std::vector<StepRun>> ListStepRuns(std::string_view run_id) = 0;

  // kAlreadyExists if any (run_id, attempt, seq) is already stored (nothing is written).
  virtual Status AppendLogLines(std::span<const LogLine> lines) = 0;
  virtual Result<std::vector<LogLine>> ReadLogLines(const LogQuery& q) = 0;

  // ---- Queue primitives. queue/queue.h builds the queue's semantics on these; nothing
  // else should need them. InsertRun stores run.concurrency and run.cancel_requested;
  // UpdateRun never changes either (RequestCancel sets the flag, enqueue fixes the keys).

  // A claim's or a rescue's write: as UpdateRun, and also sets the stored fence to
  // run.fence, on condition that the stored fence is `expected_fence` (kAborted
  // otherwise, kNotFound when there is no run). run.fence must be greater.
  virtual Status UpdateRunAdvancingFence(const Run& run, int64_t expected_fence) = 0;

  // Serialises the transactions that lock the same `key`, until each ends. PostgreSQL:
  // an advisory transaction lock; SQLite: a no-op (its write transactions are serial).
  // Used around read-then-insert sequences (idempotency keys).
  virtual Status LockKey(std::string_view key) = 0;

  // The newest run with this idempotency key created at or after `since`, if any.
  virtual Result<std::optional<Run>> FindRunByIdempotencyKey(std::string_view key,
                                                             Timestamp since) = 0;

  // Runs a worker may claim at `now`, at most `limit` (1..1000): status PENDING,
  // not_before unset or <= now, cancel not requested, and none of whose concurrency keys
  // is full (RUNNING + WAITING holders >= the run's limit for the key) or out of rate
  // tokens at `now`. Highest priority first, then enqueue order (FIFO). Runs held back by
  // a key are skipped, so they never block runs behind them. PostgreSQL locks the rows
  // it returns and skips rows other transactions hold (FOR UPDATE SKIP LOCKED).
  virtual Result<std::vector<Run>> ListClaimable(Timestamp now, int limit) = 0;

  // Takes one slot of every key of run.concurrency, and one rate token of each key with
  // a rate, if all are available at `now`; otherwise changes nothing and returns false.
  // A run without keys always gets true. Slots are counted per key in the store.
  virtual Result<bool> AcquireSlots(const Run& run, Timestamp now) = 0;
  // Gives back the slots AcquireSlots took (tokens are not given back). Never below 0.
  virtual Status ReleaseSlots(const Run& run) = 0;
  // Recomputes every key's slot count from the runs that are RUNNING or WAITING (start-up
  // reconciliation).
  virtual Status RecountSlots() = 0;

  // RUNNING or WAITING runs whose lease_expires_at is before `now`, earliest expiry first,
  // at most `limit` (1..1000). PostgreSQL: FOR UPDATE SKIP LOCKED.
  virtual Result<std::vector<Run>> ListExpiredLeases(Timestamp now, int limit) = 0;

  // The earliest not_before after `now` among PENDING runs (when the next delayed run
  // becomes claimable), if any.
  virtual Result<std::optional<Timestamp>> NextNotBefore(Timestamp now) = 0;

  // Sets lease_expires_at when the run's fence is `fence` and it is RUNNING or WAITING
  // (kAborted otherwise: a late heartbeat never touches a finished or re-queued run;
  // kNotFound when there is no run) and answers whether cancellation was requested.
  virtual Result<bool> RenewLease(std::string_view run_id, int64_t fence, Timestamp expires_at) = 0;
  // Sets cancel_requested (not fenced: anyone may ask). kNotFound when there is no run.
  virtual Status RequestCancel(std::string_view run_id) = 0;
  // Ids of the RUNNING or WAITING runs leased to `lease_owner` whose cancellation was
  // requested.
  virtual Result<std::vector<std::string>> ListCancelRequested(std::string_view lease_owner) = 0;

  // Runs per status (every status present; absent ones are 0).
  virtual Result<std::map<RunStatus, int64_t>> CountRunsByStatus() = 0;

  // Ids of terminal runs a retention policy removes, oldest finished first, at most
  // `limit` (1..10000): finished before `finished_before`, or not among the newest
  // `keep_per_runbook` terminal runs of their runbook. Both unset: none.
  virtual Result<std::vector<std::string>> ListPrunable(std::optional<Timestamp> finished_before,
                                                        std::optional<int> keep_per_runbook,
                                                        int limit) = 0;
  // Deletes these runs with their attempts, step runs, log lines and keys. Missing ids
  // are ignored. A run that is not terminal is refused (kFailedPrecondition, nothing
  // deleted).
  virtual Status DeleteRuns(std::span<const std::string> ids) = 0;

  // ---- Schedules and the fire ledger. scheduler/ builds the schedule loop on these.

  // Inserts or replaces the schedule `s.id` and returns it as stored: generation is 1 for
  // a new schedule and the stored generation + 1 for a replacement (s.generation is
  // ignored), created_at is kept on replacement, and every call bumps the schedules
  // revision. The caller sets cursor (a replacement normally moves it to now, so no
  // occurrence of the old definition is decided after the change).
  virtual Result<ScheduleRecord> PutSchedule(const ScheduleRecord& s) = 0;
  virtual Result<ScheduleRecord> GetSchedule(std::string_view id) = 0;  // kNotFound
  // Every schedule, by id.
  virtual Result<std::vector<ScheduleRecord>> ListSchedules() = 0;
  // kNotFound when there is none. The schedule's ledger rows are kept (history); bumps
  // the revision.
  virtual Status DeleteSchedule(std::string_view id) = 0;
  // A counter that changes whenever PutSchedule or DeleteSchedule commits (any schedule),
  // so a loop can notice changes made by other processes with one cheap read.
  virtual Result<int64_t> SchedulesRevision() = 0;
  // Moves the cursor of schedule `id` to `cursor` on condition that its generation is
  // still `generation` (kAborted otherwise: the definition changed since the caller read
  // it; kNotFound when it was deleted). Changes neither generation nor revision. In the
  // same transaction as the ledger rows and enqueues it decides, so a change to the
  // schedule and a fire of its old definition never both commit.
  virtual Status AdvanceScheduleCursor(std::string_view id, int64_t generation,
                                       Timestamp cursor) = 0;

  // kAlreadyExists when (schedule_id, nominal) is already in the ledger: the permanent
  // guarantee of at most one decision, and so at most one run, per nominal fire time.
  // kNotFound when the schedule does not exist.
  virtual Status InsertFire(const FireRecord& f) = 0;
  // Deletes and returns the ledger rows of `schedule_id` whose due time is after
  // `due_after`: decisions the loop made ahead of time that a change to the schedule
  // withdraws before they were due (scheduler/changes.h). Rows already due stay forever.
  virtual Result<std::vector<FireRecord>> WithdrawFires(std::string_view schedule_id,
                                                        Timestamp due_after) = 0;
  // Ledger rows of one schedule, newest nominal first; `before`: only rows whose nominal
  // is earlier (the cursor for paging). limit 1..10000.
  virtual Result<std::vector<FireRecord>> ListFires(std::string_view schedule_id,
                                                    std::optional<Timestamp> before, int limit) = 0;
  // PENDING, RUNNING and WAITING runs with this trigger and triggered_by, oldest first, at
  // most `limit` (1..1000). (Overlap policies ask this about a schedule's runs.)
  virtual Result<std::vector<Run>> ListActiveRuns(Trigger trigger, std::string_view triggered_by,
                                                  int limit) = 0;

  // --- Users (username is the key; empty username or password_hash: kInvalidArgument).
  // Inserts or replaces; created_at is kept on replacement.
  virtual Status PutUser(const UserRecord& u) = 0;
  virtual Result<UserRecord> GetUser(std::string_view username) = 0;  // kNotFound
  virtual Result<std::vector<UserRecord>> ListUsers() = 0;            // by username

  // --- Credentials (sessions and API tokens).
  // kAlreadyExists on a duplicate id or secret_hash; kNotFound when the owner is no user.
  virtual Status InsertCredential(const CredentialRecord& c) = 0;
  virtual Result<CredentialRecord> FindCredentialByHash(std::string_view secret_hash) = 0;
  virtual Result<CredentialRecord> GetCredential(std::string_view id) = 0;  // kNotFound
  // Of one kind; `owner` "" for every owner. Oldest first.
  virtual Result<std::vector<CredentialRecord>> ListCredentials(CredentialKind kind,
                                                                std::string_view owner) = 0;
  // Replaces last_used_at, expires_at, role and name of the credential `c.id` and sets
  // revoked_at if it is not set yet (a revocation is never undone, also not by a writer
  // holding an older copy); kNotFound when there is none. The secret hash, owner and kind
  // never change.
  virtual Status UpdateCredential(const CredentialRecord& c) = 0;
  // Deletes credentials that expired or were revoked before `before`; returns how many.
  virtual Result<int64_t> PurgeCredentials(Timestamp before) = 0;

  // --- Secrets (name is the key).
  // Inserts or replaces (created_at kept on replacement).
  virtual Status PutSecret(const SecretRecord& s) = 0;
  virtual Result<SecretRecord> GetSecret(std::string_view name) = 0;  // kNotFound
  virtual Result<std::vector<SecretRecord>> ListSecrets() = 0;        // by name
  virtual Status DeleteSecret(std::string_view name) = 0;             // kNotFound

  // --- Audit trail (append-only: there is no update or delete).
  // The entry with the highest seq, if any.
  virtual Result<std::optional<AuditRecord>> LastAudit() = 0;
  // kAlreadyExists when `e.seq` is taken; kInvalidArgument when seq < 1. Writers serialise
  // appends by calling LockKey("audit") first in the same transaction.
  virtual Status AppendAudit(const AuditRecord& e) = 0;
  virtual Result<std::vector<AuditRecord>> ListAudit(const AuditFilter& filter) = 0;
};

// Wake-ups across processes for the queue: after committing new claimable work a process
// calls Store::NotifyQueue(); dispatchers wait on a QueueListener. Best effort: a lost
// wake-up costs one polling interval, never a run (dispatchers poll as a backstop).
// PostgreSQL: LISTEN/NOTIFY on a dedicated connection; SQLite: one datagram socket per
// listener in a directory beside the database file (in-process only for ":memory:").
class QueueListener {
 public:
  virtual ~QueueListener() = default;
  // Returns when a notification arrived (true) or after `timeout` (false). Several
  // notifications that arrive before a Wait are coalesced into one.
  virtual bool Wait(std::chrono::milliseconds timeout) = 0;
  // Makes a pending or the next Wait return true at once (for shutdown, and for
  // enqueues in this process).
  virtual void Wake() = 0;
};

// A held singleton lock (Store::TryLead).
class Leadership {
 public:
  virtual ~Leadership() = default;
  // False once the lock is known lost (PostgreSQL: its connection broke). Cheap enough
  // to call before every decision; may do a round trip at most once a second.
  virtual bool Held() = 0;
};

enum class Durability { kFull, kFast };

struct StoreOptions {
  // "sqlite:PATH", "sqlite::memory:" (a private in-memory store, for tests), or
  // "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?PARAMS]" (also "postgres://").
  std::string url;
  Durability durability = Durability::kFull;
  std::chrono::milliseconds busy_timeout{5000};
};

class Store {
 public:
  enum class TxMode {
    kRead,
    // Committed means durable (as StoreOptions::durability promises).
    kWrite,
    // For progress whose loss on power failure is acceptable (step started/finished, log
    // lines): the commit survives a crash of this process but not necessarily a power loss
    // until the next kWrite commit, which makes everything before it durable too.
    // (SQLite: synchronous=NORMAL for this commit; PostgreSQL: synchronous_commit=off.)
    kWriteProgress,
  };

  virtual ~Store() = default;

  // Opens (creating if needed) and migrates the store named by options.url.
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);

  virtual Status Transact(TxMode mode, const std::function<Status(StoreTx&)>& fn) = 0;

  // "sqlite:/abs/path/automan.db"
  virtual std::string Describe() const = 0;
  // True when a read is a local file read that never waits for a writer (SQLite in WAL
  // mode): callers may then read on latency-sensitive threads (the server's I/O threads).
  virtual bool ReadsAreLocal() const = 0;
  // The schema version of the open database (the latest this binary knows, after Open).
  virtual int SchemaVersion() const = 0;

  // See QueueListener. NotifyQueue is cheap and never blocks on listeners.
  virtual Status NotifyQueue() = 0;
  virtual Result<std::unique_ptr<QueueListener>> ListenQueue() = 0;

  // Leadership of one named singleton task among every process using this store (the
  // schedule loop: "scheduler"). Returns the held lock, or nullptr when another holder
  // has it. Released when the Leadership is destroyed or its process dies. SQLite: an
  // flock on "<db>.<name>.lock" beside the database (process-local for ":memory:");
  // PostgreSQL: a session advisory lock on a dedicated connection, scoped to the schema.
  virtual Result<std::unique_ptr<Leadership>> TryLead(std::string_view name) = 0;
};

// The default store URL for a data directory: "sqlite:DIR/automan.db".
std::string DefaultStoreUrl(const std::string& data_dir);

// `url` fit for messages and logs: without userinfo ("user:password@"), query string and
// fragment, and with the value of any "password=" keyword replaced by "***".
std::string RedactStoreUrl(std::string_view url);

}  // namespace automan
