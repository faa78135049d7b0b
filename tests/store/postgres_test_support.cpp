#include "postgres_test_support.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <vector>

namespace automan::testing {
namespace {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

std::string& SkipReason() {
  static std::string reason;
  return reason;
}

struct Admin {
  std::mutex mu;
  PGconn* conn = nullptr;            // guarded by mu
  std::vector<std::string> schemas;  // created by this process; guarded by mu
};

Admin& TheAdmin() {
  static Admin* admin = new Admin;  // never destroyed: used until the very end
  return *admin;
}

Result<std::string> QueryLocked(Admin& a, const std::string& sql) {
  if (a.conn == nullptr) {
    a.conn = PQconnectdb(PgBaseUrl().c_str());
    if (PQstatus(a.conn) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(a.conn);
      PQfinish(a.conn);
      a.conn = nullptr;
      return Error(ErrorCode::kUnavailable, "admin connection to the test cluster: {}", msg);
    }
    PQsetNoticeProcessor(
        a.conn, [](void*, const char*) {}, nullptr);
  }
  PGresult* r = PQexec(a.conn, sql.c_str());
  const ExecStatusType st = PQresultStatus(r);
  Result<std::string> out = std::string();
  if (st == PGRES_TUPLES_OK) {
    if (PQntuples(r) > 0) out = std::string(PQgetvalue(r, 0, 0));
  } else if (st != PGRES_COMMAND_OK) {
    out = Error(ErrorCode::kInternal, "{}: {}", sql, PQerrorMessage(a.conn));
  }
  PQclear(r);
  return out;
}

// Skips every test when there is no cluster; drops this process's schemas at the end.
class PgEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (PgBaseUrl().empty()) GTEST_SKIP() << SkipReason();
    std::printf("[ postgres ] testing against %s\n", RedactStoreUrl(PgBaseUrl()).c_str());
  }
  void TearDown() override {
    Admin& a = TheAdmin();
    std::lock_guard<std::mutex> lock(a.mu);
    if (a.schemas.empty()) return;
    std::string sql;
    for (const std::string& s : a.schemas) sql += "DROP SCHEMA IF EXISTS " + s + " CASCADE;";
    (void)QueryLocked(a, sql);
    a.schemas.clear();
    if (a.conn != nullptr) PQfinish(a.conn);
    a.conn = nullptr;
  }
};

[[maybe_unused]] ::testing::Environment* const kPgEnvironment =
    ::testing::AddGlobalTestEnvironment(new PgEnvironment);

}  // namespace

const std::string& PgBaseUrl() {
  static const std::string url = [] {
    if (const char* env = std::getenv("AUTOMAN_TEST_PG_URL"); env != nullptr && *env != '\0') {
      return std::string(env);
    }
#ifdef AUTOMAN_TEST_PG_URL_FILE
    const std::string file = AUTOMAN_TEST_PG_URL_FILE;
    std::string u = ReadFirstLine(file);
    if (!u.empty()) return u;
    const std::string why = ReadFirstLine(file + ".unavailable");
    SkipReason() = "no PostgreSQL test cluster: " +
                   (why.empty() ? file +
                                      " is missing (run the tests through ctest, whose "
                                      "fixture `postgres` starts scripts/pg-test-cluster.sh, "
                                      "or set AUTOMAN_TEST_PG_URL)"
                                : why);
#else
    SkipReason() = "no PostgreSQL test cluster: set AUTOMAN_TEST_PG_URL";
#endif
    return std::string();
  }();
  return url;
}

std::string PgUrlWithSchema(const std::string& base, const std::string& schema) {
  return base + (base.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
         schema;
}

Result<std::string> PgFreshUrl(std::string* schema_out) {
  static std::atomic<int> n{0};
  const std::string schema =
      "automan_t_" + std::to_string(getpid()) + "_" + std::to_string(n.fetch_add(1));
  Admin& a = TheAdmin();
  {
    std::lock_guard<std::mutex> lock(a.mu);
    AUTOMAN_RETURN_IF_ERROR(QueryLocked(a, "CREATE SCHEMA " + schema).status());
    a.schemas.push_back(schema);
  }
  if (schema_out != nullptr) *schema_out = schema;
  return PgUrlWithSchema(PgBaseUrl(), schema);
}

Result<std::string> PgAdminQuery(const std::string& sql) {
  Admin& a = TheAdmin();
  std::lock_guard<std::mutex> lock(a.mu);
  return QueryLocked(a, sql);
}

namespace {
struct OpenedStores {
  std::mutex mu;
  std::map<const Store*, std::string> urls;  // guarded by mu
};
OpenedStores& Opened() {
  static OpenedStores* opened = new OpenedStores;  // never destroyed
  return *opened;
}
}  // namespace

Result<std::unique_ptr<Store>> OpenFreshPostgres() {
  AUTOMAN_ASSIGN_OR_RETURN(std::string url, PgFreshUrl());
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open({.url = url}));
  std::lock_guard<std::mutex> lock(Opened().mu);
  Opened().urls[store.get()] = url;  // a later store at the same address replaces it
  return store;
}

std::string PgUrlOf(const Store& store) {
  std::lock_guard<std::mutex> lock(Opened().mu);
  auto it = Opened().urls.find(&store);
  return it != Opened().urls.end() ? it->second : std::string();
}

Status PgRawExec(const Store& store, const std::string& sql) {
  const std::string url = PgUrlOf(store);
  if (url.empty()) return Error(ErrorCode::kInvalidArgument, "not a store of OpenFreshPostgres");
  PGconn* conn = PQconnectdb(url.c_str());
  Status out;
  if (PQstatus(conn) != CONNECTION_OK) {
    out =
        Error(ErrorCode::kUnavailable, "connecting to the test cluster: {}", PQerrorMessage(conn));
  } else {
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
    PGresult* r = PQexec(conn, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      out = Error(ErrorCode::kInternal, "{}: {} (SQLSTATE {})", sql, PQerrorMessage(conn),
                  state != nullptr ? state : "?");
    }
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);  // bound but never listening, and now closed: connections are refused
  return port;
}

}  // namespace automan::testing
