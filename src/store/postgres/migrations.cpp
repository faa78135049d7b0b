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

constexpr std::array<PostgresMigration, 1> kMigrations{{
    {1, "runbook versions, runs, attempts, step runs, log lines", kV1},
}};

}  // namespace

std::span<const PostgresMigration> PostgresMigrations() { return kMigrations; }

int LatestPostgresSchemaVersion() { return kMigrations.back().version; }

}  // namespace automan
