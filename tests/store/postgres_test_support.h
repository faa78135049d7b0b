// Test support for the PostgreSQL store tests: finds the test cluster, hands out fresh,
// isolated stores (one schema each) and skips every test, saying why, when there is no
// PostgreSQL to test against.
//
// The cluster's URL comes from AUTOMAN_TEST_PG_URL or from the file the ctest fixture
// `postgres` writes (scripts/pg-test-cluster.sh, path compiled in as
// AUTOMAN_TEST_PG_URL_FILE). Each fresh store is a new schema automan_t_<pid>_<n> in that
// database, reached with `options=-csearch_path=<schema>`: CREATE SCHEMA takes
// milliseconds where CREATE DATABASE copies a template and checkpoints. The schemas are
// dropped when the test program ends.
#pragma once

#include <string>

#include "common/status.h"
#include "store/store.h"

namespace automan::testing {

// The base URL of the test cluster; "" when there is none (then every test is skipped).
const std::string& PgBaseUrl();
// `base` with the search_path set to `schema`.
std::string PgUrlWithSchema(const std::string& base, const std::string& schema);
// A new empty schema; returns the URL that uses it (and its name in *schema if given).
Result<std::string> PgFreshUrl(std::string* schema = nullptr);
// Runs SQL on the test cluster's admin connection; the first column of the first row.
Result<std::string> PgAdminQuery(const std::string& sql);
// A fresh, empty store (a StoreFactory).
Result<std::unique_ptr<Store>> OpenFreshPostgres();
// The URL OpenFreshPostgres opened `store` with ("" for a store it did not open): the
// StoreBackend::url_of of the PostgreSQL backend.
std::string PgUrlOf(const Store& store);
// Runs `sql` on the schema of a store OpenFreshPostgres opened, through a connection of
// its own (the StoreBackend::raw_exec of the PostgreSQL backend); the server's error if it
// fails.
Status PgRawExec(const Store& store, const std::string& sql);
// A port on 127.0.0.1 nothing listens on.
int ClosedPort();

}  // namespace automan::testing
