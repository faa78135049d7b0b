// The SQLite schema as an ordered list of migrations compiled into the binary.
//
// Migration N turns a schema at version N-1 into version N. SqliteStore applies the
// missing ones at open, each in its own write transaction together with
// `PRAGMA user_version = N`, so a crash leaves the database at a whole version and a
// concurrent opener re-reads the version under the write lock and skips what is done.
// Released migrations are never edited: a change is a new migration at the end.
// Thread-safe (immutable data).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace automan {

struct SqliteMigration {
  int version;            // 1, 2, 3, ... without gaps
  std::string_view name;  // short description, appears in errors
  std::string_view sql;   // one or more statements
};

std::span<const SqliteMigration> SqliteMigrations();
// The version of the last migration: the schema this binary writes.
int LatestSqliteSchemaVersion();

// `PRAGMA application_id` of an automan store ("Autm"): tells an automan database apart
// from some other application's SQLite file.
inline constexpr int32_t kSqliteApplicationId = 0x4175746D;

}  // namespace automan
