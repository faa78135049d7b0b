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

constexpr std::array<SqliteMigration, 1> kMigrations{{
    {1, "runbook versions, runs, attempts, step runs, log lines", kV1},
}};

}  // namespace

std::span<const SqliteMigration> SqliteMigrations() { return kMigrations; }

int LatestSqliteSchemaVersion() { return kMigrations.back().version; }

}  // namespace automan
