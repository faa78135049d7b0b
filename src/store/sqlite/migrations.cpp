#include "store/sqlite/migrations.h"

#include <array>

namespace automan {

namespace {

// Version 1: runbook versions, runs (with the columns the durable queue and the scheduler
// need: priority, not_before, deadline_at, idempotency_key, lease_owner, lease_expires_at,
// fence), attempts, step runs and log lines.
//
// - Instants are INTEGER microseconds since the Unix epoch, UTC; NULL when unset.
// - Statuses, triggers and streams are their text names from core/run.h; no CHECK
//   constraints, so adding a status needs no table rebuild (readers reject unknown names).
// - params_json / outputs_json use the encoding of store/store_json.h.
// - log_lines is WITHOUT ROWID: lines are stored once, clustered by (run, attempt, seq),
//   instead of a rowid table plus a separate primary-key index; appends of one run go to
//   the end of its key range. Measured on this machine: see src/store/README.md.
// - Child rows reference runs(id), so a child of a missing run is refused (kNotFound).
//   Runs reference the exact runbook version they execute.
// - Indexes for the queue's claim and lease scans come with the queue, which owns those
//   query shapes.
constexpr std::string_view kV1 = R"sql(
PRAGMA application_id = 1098216557;  -- kSqliteApplicationId, "Autm"

CREATE TABLE runbook_versions (
  version     TEXT NOT NULL PRIMARY KEY,
  runbook_id  TEXT NOT NULL,
  yaml        TEXT NOT NULL,
  source      TEXT NOT NULL,
  created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX runbook_versions_by_runbook ON runbook_versions (runbook_id, created_at);

CREATE TABLE runs (
  id                TEXT NOT NULL PRIMARY KEY,
  runbook_id        TEXT NOT NULL,
  runbook_version   TEXT NOT NULL REFERENCES runbook_versions (version),
  status            TEXT NOT NULL,
  "trigger"         TEXT NOT NULL,
  triggered_by      TEXT NOT NULL,
  params_json       TEXT NOT NULL,
  priority          INTEGER NOT NULL,
  attempt           INTEGER NOT NULL,
  max_attempts      INTEGER NOT NULL,
  created_at        INTEGER NOT NULL,
  not_before        INTEGER,
  started_at        INTEGER,
  finished_at       INTEGER,
  deadline_at       INTEGER,
  outputs_json      TEXT NOT NULL,
  retry_of          TEXT,
  idempotency_key   TEXT,
  error             TEXT NOT NULL,
  lease_owner       TEXT NOT NULL,
  lease_expires_at  INTEGER,
  fence             INTEGER NOT NULL
) STRICT;
CREATE INDEX runs_by_runbook ON runs (runbook_id, id);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_runbook_version ON runs (runbook_version);

CREATE TABLE attempts (
  run_id       TEXT NOT NULL REFERENCES runs (id),
  number       INTEGER NOT NULL,
  status       TEXT NOT NULL,
  worker       TEXT NOT NULL,
  started_at   INTEGER NOT NULL,
  finished_at  INTEGER,
  error        TEXT NOT NULL,
  PRIMARY KEY (run_id, number)
) STRICT, WITHOUT ROWID;

CREATE TABLE step_runs (
  run_id        TEXT NOT NULL REFERENCES runs (id),
  attempt       INTEGER NOT NULL,
  step_id       TEXT NOT NULL,
  idx           INTEGER NOT NULL,
  status        TEXT NOT NULL,
  exit_code     INTEGER,
  signal        INTEGER,
  started_at    INTEGER,
  finished_at   INTEGER,
  error         TEXT NOT NULL,
  outputs_json  TEXT NOT NULL,
  PRIMARY KEY (run_id, attempt, step_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE log_lines (
  run_id   TEXT NOT NULL REFERENCES runs (id),
  attempt  INTEGER NOT NULL,
  seq      INTEGER NOT NULL,
  step_id  TEXT NOT NULL,
  stream   TEXT NOT NULL,
  ts       INTEGER NOT NULL,
  text     TEXT NOT NULL,
  partial  INTEGER NOT NULL,
  PRIMARY KEY (run_id, attempt, seq)
) STRICT, WITHOUT ROWID;
)sql";

// Version 2: the durable queue (src/queue/queue.h). Additive only, so an older file
// migrates in place: ALTER TABLE ADD COLUMN with a constant default rewrites no row.
//
// - runs.cancel_requested: set by RequestCancel, polled by the run's worker.
// - runs.key_count: the number of run_keys rows of the run, fixed at InsertRun. Readers
//   query run_keys only for runs with keys, and the claim query skips its key check for
//   the others, so runs without concurrency keys cost no extra lookup anywhere.
// - run_keys: a run's concurrency rules (ConcurrencyLimit), one row per key, clustered
//   by run (WITHOUT ROWID: every query reads them by run_id; RecountSlots goes from the
//   few RUNNING/WAITING runs to their keys, so no index on `key`, which no query would
//   use). rate_count 0 means no rate limit.
// - key_slots: per key, the slots taken (`running`, kept by AcquireSlots/ReleaseSlots,
//   recomputed by RecountSlots) and the token bucket of a rate-limited key: `tokens`
//   available at `refilled_at` (microseconds); NULL means a full bucket.
// - Partial indexes, one per query shape of the queue, so each holds only the rows its
//   query can return and costs nothing for the others (a partial index whose WHERE matches
//   neither the old nor the new row is not touched by an UPDATE). The queries name them
//   with INDEXED BY: without statistics SQLite would rather take runs_by_status and sort.
//   runs_claimable   ListClaimable: PENDING runs by priority, then enqueue order. Every
//                    index entry ends with the table's rowid, and rowids of a table without
//                    an INTEGER PRIMARY KEY are assigned increasing (max + 1), so the entry
//                    order (priority DESC, rowid) is "highest priority first, FIFO within
//                    a priority" and the ORDER BY needs no sort. (VACUUM may renumber
//                    rowids but keeps their order.)
//   runs_delayed     NextNotBefore: delayed PENDING runs by not_before (without it, every
//                    PENDING run is read to find the minimum).
//   runs_leases      ListExpiredLeases: RUNNING and WAITING runs by expiry.
//   runs_idempotency FindRunByIdempotencyKey.
//   runs_cancel      ListCancelRequested: only runs whose cancellation was requested.
//   runs_retention   ListPrunable: terminal runs by runbook and finish time. The status list
//                    is every terminal status of core/run.h, in its order (the queries
//                    repeat it; a new terminal status needs a new index).
// - runs_by_runbook_version is dropped: no query reads runs by version, and every enqueue
//   paid for it. (SQLite would need it to check the foreign key if runbook versions were
//   ever deleted; nothing deletes them.) runs_by_status and runs_by_runbook stay: ListRuns
//   filters and CountRunsByStatus use them. Measured with bench/store_commit (cycle
//   12800 64 fast): each costs ~10-15% of the store's CPU time per run on the
//   enqueue-claim-finish road, and in unbatched commits one more 4 KiB WAL page per write
//   (src/store/README.md).
constexpr std::string_view kV2 = R"sql(
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN key_count INTEGER NOT NULL DEFAULT 0;

CREATE TABLE run_keys (
  run_id       TEXT NOT NULL REFERENCES runs (id),
  key          TEXT NOT NULL,
  lim          INTEGER NOT NULL,
  rate_count   INTEGER NOT NULL,
  rate_per_ms  INTEGER NOT NULL,
  PRIMARY KEY (run_id, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE key_slots (
  key          TEXT PRIMARY KEY,
  running      INTEGER NOT NULL,
  tokens       REAL,
  refilled_at  INTEGER
) STRICT;

CREATE INDEX runs_claimable ON runs (priority DESC) WHERE status = 'PENDING';
CREATE INDEX runs_delayed ON runs (not_before)
  WHERE status = 'PENDING' AND not_before IS NOT NULL;
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE status IN ('RUNNING', 'WAITING');
CREATE INDEX runs_idempotency ON runs (idempotency_key, created_at)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_cancel ON runs (lease_owner) WHERE cancel_requested = 1;
CREATE INDEX runs_retention ON runs (runbook_id, finished_at)
  WHERE finished_at IS NOT NULL
    AND status IN ('SUCCESS', 'FAILED', 'TIMEOUT', 'CANCELLED', 'ROLLED_BACK', 'DEAD');

DROP INDEX runs_by_runbook_version;
)sql";

// Version 3: schedules and the fire ledger (scheduler/). Additive only.
//
// - schedules: one row per schedule; spec_json is the definition as the scheduler writes
//   it (the store does not interpret it). `generation` counts definition changes (1 for a
//   new schedule), `cursor_at` is the nominal instant up to which occurrences are decided.
// - schedule_revision: one row, a counter bumped by every PutSchedule and DeleteSchedule, so
//   a schedule loop notices changes made by other processes with one cheap read.
// - fire_ledger: one row per expected occurrence, (schedule_id, nominal_at) the primary key:
//   the permanent guarantee of at most one decision (and one run) per nominal fire time.
//   WITHOUT ROWID, clustered by schedule and nominal instant (ListFires reads a schedule's
//   rows newest first). No foreign key to schedules: the rows stay after a schedule is
//   deleted (InsertFire checks that the schedule exists). delay_us is microseconds.
// - runs_active_by_trigger: ListActiveRuns (a schedule's PENDING, RUNNING and WAITING runs,
//   for the overlap policies), partial over the active statuses so it holds only the few
//   active runs, oldest first.
constexpr std::string_view kV3 = R"sql(
CREATE TABLE schedules (
  id          TEXT NOT NULL PRIMARY KEY,
  runbook_id  TEXT NOT NULL,
  source      TEXT NOT NULL,
  spec_json   TEXT NOT NULL,
  paused      INTEGER NOT NULL,
  generation  INTEGER NOT NULL,
  cursor_at   INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE schedule_revision (
  id        INTEGER PRIMARY KEY CHECK (id = 1),
  revision  INTEGER NOT NULL
) STRICT;
INSERT INTO schedule_revision (id, revision) VALUES (1, 0);

CREATE TABLE fire_ledger (
  schedule_id  TEXT NOT NULL,
  nominal_at   INTEGER NOT NULL,
  due_at       INTEGER NOT NULL,
  status       TEXT NOT NULL,
  reason       TEXT NOT NULL,
  run_id       TEXT NOT NULL,
  delay_us     INTEGER NOT NULL,
  wall         TEXT NOT NULL,
  generation   INTEGER NOT NULL,
  recorded_at  INTEGER NOT NULL,
  PRIMARY KEY (schedule_id, nominal_at)
) STRICT, WITHOUT ROWID;

CREATE INDEX runs_active_by_trigger ON runs ("trigger", triggered_by, created_at)
  WHERE status IN ('PENDING', 'RUNNING', 'WAITING');
)sql";

// Version 4: the security rows (store.h: users, credentials, secrets, the audit trail).
// Additive only. The store does not interpret them (hashing, sealing, expiry and the audit
// hash chain are the callers').
//
// - users: by username (WITHOUT ROWID, small rows). PutUser is an upsert, never a
//   REPLACE, which would delete the row and cascade to the user's credentials.
// - credentials: sessions and API tokens by id; secret_hash is UNIQUE (the lookup of every
//   authenticated request); owner references users and goes with its user.
//   credentials_by_kind_owner serves ListCredentials (one kind, optionally one owner,
//   oldest first).
// - secrets: sealed bytes (nonce || ciphertext) as a BLOB; rowid table, since a sealed
//   value may be a few KiB.
// - audit: seq is the rowid (INTEGER PRIMARY KEY, so a taken seq is a primary-key
//   conflict); indexes for ListAudit's filters. The triggers refuse every UPDATE and
//   DELETE, so not even our own code can rewrite history by mistake (someone with the
//   sqlite3 tool can drop them; the callers' hash chain shows that).
constexpr std::string_view kV4 = R"sql(
CREATE TABLE users (
  username              TEXT NOT NULL PRIMARY KEY,
  password_hash         TEXT NOT NULL,
  role                  TEXT NOT NULL,
  disabled              INTEGER NOT NULL,
  must_change_password  INTEGER NOT NULL,
  failed_logins         INTEGER NOT NULL,
  locked_until          INTEGER,
  created_at            INTEGER NOT NULL,
  updated_at            INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE credentials (
  id            TEXT NOT NULL PRIMARY KEY,
  kind          TEXT NOT NULL,
  secret_hash   TEXT NOT NULL UNIQUE,
  owner         TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
  name          TEXT NOT NULL,
  role          TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER,
  last_used_at  INTEGER,
  revoked_at    INTEGER
) STRICT;
CREATE INDEX credentials_by_kind_owner ON credentials (kind, owner, created_at);

CREATE TABLE secrets (
  name         TEXT NOT NULL PRIMARY KEY,
  sealed       BLOB NOT NULL,
  description  TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  updated_by   TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
  seq           INTEGER PRIMARY KEY,
  at            INTEGER NOT NULL,
  actor         TEXT NOT NULL,
  action        TEXT NOT NULL,
  target        TEXT NOT NULL,
  outcome       TEXT NOT NULL,
  remote        TEXT NOT NULL,
  details_json  TEXT NOT NULL,
  hash          TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_actor ON audit (actor, seq);
CREATE INDEX audit_by_action ON audit (action, seq);
CREATE INDEX audit_by_at ON audit (at);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
  SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
  SELECT RAISE(ABORT, 'audit entries are append-only');
END;
)sql";

// Version 5: what the sandbox enforced for each step (engine/engine.h), in words; empty
// for steps recorded before.
constexpr std::string_view kV5 = R"sql(
ALTER TABLE step_runs ADD COLUMN sandbox TEXT NOT NULL DEFAULT '';
)sql";

constexpr std::array<SqliteMigration, 5> kMigrations{{
    {1, "runbook versions, runs, attempts, step runs, log lines", kV1},
    {2, "queue: cancel flag, concurrency keys, key slots, queue indexes", kV2},
    {3, "schedules, schedule revision, fire ledger, active runs by trigger", kV3},
    {4, "users, credentials, secrets, audit trail", kV4},
    {5, "step runs: the sandbox in force", kV5},
}};

}  // namespace

std::span<const SqliteMigration> SqliteMigrations() { return kMigrations; }

int LatestSqliteSchemaVersion() { return kMigrations.back().version; }

}  // namespace automan
