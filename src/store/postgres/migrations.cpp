#include "store/postgres/migrations.h"

#include <array>

namespace automan {

namespace {

// Version 1: the tables of SQLite's migration 1, column for column.
// - Instants are BIGINT microseconds since the Unix epoch, UTC; NULL when unset.
// - Key text columns are COLLATE "C": ids and step ids sort and compare as bytes, as in
//   SQLite, whatever the database's default collation (and their indexes serve ORDER BY).
// - Statuses, triggers and streams are their text names from core/run.h, no CHECKs.
// - log_lines has its primary key (run_id, attempt, seq) as its only index.
// - Child rows reference runs(id); runs reference runbook_versions(version).
constexpr std::string_view kV1 = R"sql(
CREATE TABLE runbook_versions (
  version     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  runbook_id  TEXT COLLATE "C" NOT NULL,
  yaml        TEXT NOT NULL,
  source      TEXT NOT NULL,
  created_at  BIGINT NOT NULL
);
CREATE INDEX runbook_versions_by_runbook ON runbook_versions (runbook_id, created_at);

CREATE TABLE runs (
  id                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  runbook_id        TEXT COLLATE "C" NOT NULL,
  runbook_version   TEXT COLLATE "C" NOT NULL REFERENCES runbook_versions (version),
  status            TEXT NOT NULL,
  "trigger"         TEXT NOT NULL,
  triggered_by      TEXT NOT NULL,
  params_json       TEXT NOT NULL,
  priority          BIGINT NOT NULL,
  attempt           BIGINT NOT NULL,
  max_attempts      BIGINT NOT NULL,
  created_at        BIGINT NOT NULL,
  not_before        BIGINT,
  started_at        BIGINT,
  finished_at       BIGINT,
  deadline_at       BIGINT,
  outputs_json      TEXT NOT NULL,
  retry_of          TEXT,
  idempotency_key   TEXT,
  error             TEXT NOT NULL,
  lease_owner       TEXT NOT NULL,
  lease_expires_at  BIGINT,
  fence             BIGINT NOT NULL
);
CREATE INDEX runs_by_runbook ON runs (runbook_id, id);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_runbook_version ON runs (runbook_version);

CREATE TABLE attempts (
  run_id       TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
  number       BIGINT NOT NULL,
  status       TEXT NOT NULL,
  worker       TEXT NOT NULL,
  started_at   BIGINT NOT NULL,
  finished_at  BIGINT,
  error        TEXT NOT NULL,
  PRIMARY KEY (run_id, number)
);

CREATE TABLE step_runs (
  run_id        TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
  attempt       BIGINT NOT NULL,
  step_id       TEXT COLLATE "C" NOT NULL,
  idx           BIGINT NOT NULL,
  status        TEXT NOT NULL,
  exit_code     BIGINT,
  signal        BIGINT,
  started_at    BIGINT,
  finished_at   BIGINT,
  error         TEXT NOT NULL,
  outputs_json  TEXT NOT NULL,
  PRIMARY KEY (run_id, attempt, step_id)
);

CREATE TABLE log_lines (
  run_id   TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
  attempt  BIGINT NOT NULL,
  seq      BIGINT NOT NULL,
  step_id  TEXT COLLATE "C" NOT NULL,
  stream   TEXT NOT NULL,
  ts       BIGINT NOT NULL,
  text     TEXT NOT NULL,
  partial  BOOLEAN NOT NULL,
  PRIMARY KEY (run_id, attempt, seq)
);
)sql";

// Version 2: the queue (store.h's queue primitives), the PostgreSQL form of SQLite's
// migration 2. Adds columns, tables and indexes; drops one unused index.
// - runs.cancel_requested: set by RequestCancel, never by UpdateRun.
// - runs.seq: enqueue order, FIFO within a priority (SQLite uses its rowid). A BIGSERIAL
//   in effect (a sequence owned by the column), spelled out so that existing rows are
//   numbered in (created_at, id) order rather than in whatever order the table rewrite
//   visits them. Numbers are taken at insert, so runs inserted by concurrent transactions
//   may commit out of seq order; FIFO is exact for one enqueuer.
// - runs.has_keys: whether the run has run_keys rows, so that reads and the claim query
//   look at run_keys only for runs that have keys (see postgres_store.cpp, kKeysColumn).
// - run_keys: the run's concurrency rules, fixed at enqueue (lim, rate_count, and
//   rate_per_ms for the token bucket; rate_count 0 is no rate). Read by run only (its
//   primary key), so no index on key.
// - key_slots: per key, the RUNNING + WAITING holders (`running`) and the token bucket
//   (`tokens` at `refilled_at`, microseconds UTC; NULL tokens is a full bucket).
// - Partial indexes, one per query shape: claimable (ListClaimable's order), leases
//   (ListExpiredLeases), idempotency (FindRunByIdempotencyKey), cancel
//   (ListCancelRequested), retention (ListPrunable, finished terminal runs), and delayed
//   (NextNotBefore: the first entry after `now` instead of reading every PENDING run;
//   only delayed PENDING runs have an entry).
// - runs_by_runbook_version goes, as in SQLite: no query reads by it, and every
//   non-HOT update of a run (each claim and completion changes the indexed status) adds
//   an entry to every index of runs.
constexpr std::string_view kV2 = R"sql(
ALTER TABLE runs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE runs ADD COLUMN has_keys BOOLEAN NOT NULL DEFAULT false;
CREATE SEQUENCE runs_seq_seq AS BIGINT;
ALTER TABLE runs ADD COLUMN seq BIGINT;
UPDATE runs SET seq = o.n
  FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM runs) AS o
  WHERE runs.id = o.id;
SELECT setval('runs_seq_seq', (SELECT coalesce(max(seq), 0) + 1 FROM runs), false);
ALTER TABLE runs ALTER COLUMN seq SET DEFAULT nextval('runs_seq_seq'),
                 ALTER COLUMN seq SET NOT NULL;
ALTER SEQUENCE runs_seq_seq OWNED BY runs.seq;

CREATE TABLE run_keys (
  run_id       TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
  key          TEXT COLLATE "C" NOT NULL,
  lim          BIGINT NOT NULL,
  rate_count   BIGINT NOT NULL,
  rate_per_ms  BIGINT NOT NULL,
  PRIMARY KEY (run_id, key)
);

CREATE TABLE key_slots (
  key          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  running      BIGINT NOT NULL,
  tokens       DOUBLE PRECISION,
  refilled_at  BIGINT
);

CREATE INDEX runs_claimable ON runs (priority DESC, seq) WHERE status = 'PENDING';
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE status IN ('RUNNING', 'WAITING');
CREATE INDEX runs_by_idempotency_key ON runs (idempotency_key, created_at)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_cancel_requested ON runs (lease_owner) WHERE cancel_requested;
CREATE INDEX runs_retention ON runs (runbook_id, finished_at)
  WHERE finished_at IS NOT NULL
    AND status IN ('SUCCESS', 'FAILED', 'TIMEOUT', 'CANCELLED', 'ROLLED_BACK', 'DEAD');
CREATE INDEX runs_delayed ON runs (not_before)
  WHERE status = 'PENDING' AND not_before IS NOT NULL;

DROP INDEX runs_by_runbook_version;
)sql";

// Version 3: schedules and the fire ledger, the PostgreSQL form of SQLite's migration 3.
// - schedules (by id, COLLATE "C" so ListSchedules sorts as bytes), schedule_revision (one
//   row; PutSchedule and DeleteSchedule update it in their transaction, so the counter
//   moves exactly when they commit, never before: a sequence would move at the call and
//   let a loop read the new value before the change is visible), fire_ledger (primary key
//   (schedule_id, nominal_at); no foreign key, rows outlive their schedule).
// - runs_active_by_trigger: ListActiveRuns, partial over PENDING, RUNNING and WAITING.
constexpr std::string_view kV3 = R"sql(
CREATE TABLE schedules (
  id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  runbook_id  TEXT COLLATE "C" NOT NULL,
  source      TEXT NOT NULL,
  spec_json   TEXT NOT NULL,
  paused      BOOLEAN NOT NULL,
  generation  BIGINT NOT NULL,
  cursor_at   BIGINT NOT NULL,
  created_at  BIGINT NOT NULL,
  updated_at  BIGINT NOT NULL
);

CREATE TABLE schedule_revision (
  id        INTEGER PRIMARY KEY CHECK (id = 1),
  revision  BIGINT NOT NULL
);
INSERT INTO schedule_revision (id, revision) VALUES (1, 0);

CREATE TABLE fire_ledger (
  schedule_id  TEXT COLLATE "C" NOT NULL,
  nominal_at   BIGINT NOT NULL,
  due_at       BIGINT NOT NULL,
  status       TEXT NOT NULL,
  reason       TEXT NOT NULL,
  run_id       TEXT COLLATE "C" NOT NULL,
  delay_us     BIGINT NOT NULL,
  wall         TEXT NOT NULL,
  generation   BIGINT NOT NULL,
  recorded_at  BIGINT NOT NULL,
  PRIMARY KEY (schedule_id, nominal_at)
);

CREATE INDEX runs_active_by_trigger ON runs ("trigger", triggered_by, created_at)
  WHERE status IN ('PENDING', 'RUNNING', 'WAITING');
)sql";

// Version 4: the security rows, the PostgreSQL form of SQLite's migration 4.
// - users (by username), credentials (by id; secret_hash UNIQUE; owner references users,
//   ON DELETE CASCADE; credentials_by_kind_owner for ListCredentials), secrets (sealed is
//   bytea), audit (seq the primary key; indexes for ListAudit's filters). Key text columns
//   are COLLATE "C": listings sort as bytes and ListAudit's action prefix is a byte range.
// - audit_append_only(): a statement trigger refuses every UPDATE, DELETE and TRUNCATE of
//   audit (SQLSTATE 23001, restrict_violation), as SQLite's triggers do.
constexpr std::string_view kV4 = R"sql(
CREATE TABLE users (
  username              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  password_hash         TEXT NOT NULL,
  role                  TEXT NOT NULL,
  disabled              BOOLEAN NOT NULL,
  must_change_password  BOOLEAN NOT NULL,
  failed_logins         BIGINT NOT NULL,
  locked_until          BIGINT,
  created_at            BIGINT NOT NULL,
  updated_at            BIGINT NOT NULL
);

CREATE TABLE credentials (
  id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  kind          TEXT COLLATE "C" NOT NULL,
  secret_hash   TEXT COLLATE "C" NOT NULL UNIQUE,
  owner         TEXT COLLATE "C" NOT NULL REFERENCES users (username) ON DELETE CASCADE,
  name          TEXT NOT NULL,
  role          TEXT NOT NULL,
  created_at    BIGINT NOT NULL,
  expires_at    BIGINT,
  last_used_at  BIGINT,
  revoked_at    BIGINT
);
CREATE INDEX credentials_by_kind_owner ON credentials (kind, owner, created_at);

CREATE TABLE secrets (
  name         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  sealed       BYTEA NOT NULL,
  description  TEXT NOT NULL,
  created_at   BIGINT NOT NULL,
  updated_at   BIGINT NOT NULL,
  updated_by   TEXT NOT NULL
);

CREATE TABLE audit (
  seq           BIGINT NOT NULL PRIMARY KEY,
  at            BIGINT NOT NULL,
  actor         TEXT COLLATE "C" NOT NULL,
  action        TEXT COLLATE "C" NOT NULL,
  target        TEXT NOT NULL,
  outcome       TEXT NOT NULL,
  remote        TEXT NOT NULL,
  details_json  TEXT NOT NULL,
  hash          TEXT NOT NULL
);
CREATE INDEX audit_by_actor ON audit (actor, seq);
CREATE INDEX audit_by_action ON audit (action, seq);
CREATE INDEX audit_by_at ON audit (at);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'audit entries are append-only' USING ERRCODE = 'restrict_violation';
END
$fn$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
)sql";

// Version 5: what the sandbox enforced for each step (engine/engine.h), in words; empty
// for steps recorded before.
constexpr std::string_view kV5 = R"sql(
ALTER TABLE step_runs ADD COLUMN sandbox TEXT NOT NULL DEFAULT '';
)sql";

constexpr std::array<PostgresMigration, 5> kMigrations{{
    {1, "runbook versions, runs, attempts, step runs, log lines", kV1},
    {2, "queue: cancel flag, enqueue order, concurrency keys and slots, queue indexes", kV2},
    {3, "schedules, schedule revision, fire ledger, active runs by trigger", kV3},
    {4, "users, credentials, secrets, audit trail", kV4},
    {5, "step runs: the sandbox in force", kV5},
}};

}  // namespace

std::span<const PostgresMigration> PostgresMigrations() { return kMigrations; }

int LatestPostgresSchemaVersion() { return kMigrations.back().version; }

}  // namespace automan
