// The PostgreSQL schema as an ordered list of migrations compiled into the binary.
//
// Migration N turns a schema at version N-1 into version N; PostgresStore applies the
// missing ones at open in one transaction under an advisory lock and records each in
// `schema_migrations (version, name, applied_at)`. The tables and columns are those of
// the SQLite schema (store/sqlite/migrations.cpp): TEXT, BIGINT microseconds UTC, JSON
// text from store/store_json.h. Released migrations are never edited.
// Thread-safe (immutable data).
#pragma once

#include <span>
#include <string_view>

namespace automan {

struct PostgresMigration {
  int version;            // 1, 2, 3, ... without gaps
  std::string_view name;  // short description, appears in errors
  std::string_view sql;   // one or more statements
};

std::span<const PostgresMigration> PostgresMigrations();
int LatestPostgresSchemaVersion();

// The key of the advisory lock that serialises migrations ("automan1" as an int64).
inline constexpr long long kPostgresMigrationLockKey = 0x6175746F6D616E31LL;

}  // namespace automan
