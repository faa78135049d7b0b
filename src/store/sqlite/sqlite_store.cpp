#include "store/sqlite/sqlite_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/connection_pool.h"
#include "store/sqlite/migrations.h"
#include "store/store_json.h"
#include "store/validation.h"

namespace automan {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr std::string_view kMemoryPath = ":memory:";

// ---------------------------------------------------------------------------------------
// Errors

ErrorCode CodeFor(int rc) {
  switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
      return ErrorCode::kAlreadyExists;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return ErrorCode::kNotFound;
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL:
      return ErrorCode::kUnavailable;
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
      return ErrorCode::kInvalidArgument;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return ErrorCode::kDataLoss;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return ErrorCode::kResourceExhausted;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return ErrorCode::kPermissionDenied;
    case SQLITE_CANTOPEN:
      return ErrorCode::kFailedPrecondition;
    case SQLITE_INTERRUPT:
      return ErrorCode::kCancelled;
    case SQLITE_SCHEMA:
      return ErrorCode::kAborted;
    default:
      return ErrorCode::kInternal;
  }
}

// `db` may be null (then the generic text of `rc` is used).
Status SqliteStatus(int rc, sqlite3* db, std::string_view what) {
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Error(CodeFor(rc), "{}: {}", what, msg != nullptr ? msg : sqlite3_errstr(rc));
}

// A timeout as sqlite3_busy_timeout takes it: milliseconds in an int, never negative.
int BusyMillis(milliseconds ms) {
  return static_cast<int>(std::clamp<int64_t>(ms.count(), 0, INT_MAX));
}

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

Status ErrnoStatus(int err, std::string_view what) {
  ErrorCode code = (err == EACCES || err == EPERM || err == EROFS) ? ErrorCode::kPermissionDenied
                                                                   : ErrorCode::kFailedPrecondition;
  return Error(code, "{}: {}", what, ErrnoText(err));
}

// ---------------------------------------------------------------------------------------
// Statements

// Borrows a prepared statement for one use: bind, step, read columns. Resets the statement
// and clears its bindings when it goes out of scope, so the next user starts clean and no
// binding outlives the strings it points into.
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* st) : st_(st) {}
  ~Stmt() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Copies the text.
  void Text(int i, std::string_view v) { BindText(i, v, SQLITE_TRANSIENT); }
  // Does not copy: `v` must stay alive until the next Reset() or the end of this Stmt.
  void TextRef(int i, std::string_view v) { BindText(i, v, SQLITE_STATIC); }
  void OptText(int i, const std::optional<std::string>& v) {
    if (v) {
      Text(i, *v);
    } else {
      Null(i);
    }
  }
  void Int(int i, int64_t v) { Check(sqlite3_bind_int64(st_, i, v)); }
  void OptInt(int i, const std::optional<int>& v) {
    if (v) {
      Int(i, *v);
    } else {
      Null(i);
    }
  }
  void Time(int i, Timestamp t) { Int(i, ToMicros(t)); }
  void OptTime(int i, const std::optional<Timestamp>& t) {
    if (t) {
      Time(i, *t);
    } else {
      Null(i);
    }
  }
  // Bytes as a BLOB, not copied (as TextRef); an empty value is a zero-length BLOB, never
  // NULL.
  void BlobRef(int i, std::string_view v) {
    const char* p = v.data() != nullptr ? v.data() : "";
    Check(sqlite3_bind_blob64(st_, i, p, v.size(), SQLITE_STATIC));
  }
  void Double(int i, double v) { Check(sqlite3_bind_double(st_, i, v)); }
  void Null(int i) { Check(sqlite3_bind_null(st_, i)); }

  // SQLITE_ROW, SQLITE_DONE or an error code (including a failed bind).
  int Step() {
    if (bind_rc_ != SQLITE_OK) return bind_rc_;
    return sqlite3_step(st_);
  }
  void Reset() {
    sqlite3_reset(st_);
    bind_rc_ = SQLITE_OK;
  }

  bool IsNull(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::string_view View(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, c));
    if (p == nullptr) return {};
    return std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(st_, c)));
  }
  std::string Str(int c) const { return std::string(View(c)); }
  std::optional<std::string> OptStr(int c) const {
    if (IsNull(c)) return std::nullopt;
    return Str(c);
  }
  // A BLOB column's bytes (any byte, NUL included).
  std::string Bytes(int c) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(st_, c));
    if (p == nullptr) return {};
    return std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, c)));
  }
  int64_t Int64(int c) const { return sqlite3_column_int64(st_, c); }
  int Int32(int c) const { return sqlite3_column_int(st_, c); }
  std::optional<int> OptInt32(int c) const {
    if (IsNull(c)) return std::nullopt;
    return Int32(c);
  }
  Timestamp Time(int c) const { return FromMicros(Int64(c)); }
  std::optional<Timestamp> OptTime(int c) const {
    if (IsNull(c)) return std::nullopt;
    return Time(c);
  }

  sqlite3* db() const { return sqlite3_db_handle(st_); }

 private:
  void BindText(int i, std::string_view v, sqlite3_destructor_type d) {
    // An empty string_view may have a null data pointer, which SQLite would store as NULL.
    const char* p = v.data() != nullptr ? v.data() : "";
    Check(sqlite3_bind_text64(st_, i, p, v.size(), d, SQLITE_UTF8));
  }
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3_stmt* st_;
  int bind_rc_ = SQLITE_OK;
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// One sqlite3 connection with its prepared-statement cache. Used by one thread at a time
// (the pool hands it out exclusively).
class Connection {
 public:
  explicit Connection(sqlite3* db) : db_(db) {}
  ~Connection() {
    for (auto& [sql, st] : cache_) sqlite3_finalize(st);
    sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }

  // A cached prepared statement for `sql` (compiled on first use).
  Result<sqlite3_stmt*> Prepare(std::string_view sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &st, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(st);
      return SqliteStatus(rc, db_, fmt::format("preparing \"{}\"", sql));
    }
    cache_.emplace(std::string(sql), st);
    return st;
  }

  // Runs a statement that returns no rows of interest, through the cache.
  Status Exec(std::string_view sql) {
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, Prepare(sql));
    Stmt st(raw);
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) return SqliteStatus(rc, db_, sql);
    return Status::Ok();
  }

  // Runs one-off statements (migrations, settings) without caching them.
  Status ExecScript(std::string_view sql, std::string_view what) {
    std::string text(sql);
    int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(rc, db_, what);
    return Status::Ok();
  }

  // The first column of the first row of a one-off query, as text ("" when no row).
  Result<std::string> QueryText(std::string_view sql) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(raw);
      return SqliteStatus(rc, db_, sql);
    }
    std::string out;
    {
      Stmt st(raw);
      rc = st.Step();
      if (rc == SQLITE_ROW) out = st.Str(0);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      Status s = SqliteStatus(rc, db_, sql);
      sqlite3_finalize(raw);
      return s;
    }
    sqlite3_finalize(raw);
    return out;
  }

  Result<int64_t> QueryInt(std::string_view sql) {
    AUTOMAN_ASSIGN_OR_RETURN(std::string text, QueryText(sql));
    return static_cast<int64_t>(std::strtoll(text.c_str(), nullptr, 10));
  }

  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

  // Ends an open transaction without committing; a no-op when none is open.
  void Rollback() {
    if (InTransaction()) (void)Exec("ROLLBACK");
  }

 private:
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*, StringHash, std::equal_to<>> cache_;
};

Result<std::unique_ptr<Connection>> OpenConnection(const std::string& path,
                                                   const StoreOptions& options) {
  sqlite3* db = nullptr;
  const int flags =
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  auto conn = std::make_unique<Connection>(db);  // closes `db` on every path
  if (rc != SQLITE_OK) return SqliteStatus(rc, db, fmt::format("opening \"{}\"", path));
  sqlite3_busy_timeout(db, BusyMillis(options.busy_timeout));
  // Defensive mode refuses writes that can corrupt the file (writable_schema and friends);
  // double-quoted strings are identifiers only, so a typo is an error, not a literal.
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 0, nullptr);
  std::string_view sync = options.durability == Durability::kFull ? "FULL" : "NORMAL";
  AUTOMAN_RETURN_IF_ERROR(conn->ExecScript(
      fmt::format("PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; "
                  "PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY;",
                  sync),
      "configuring the connection"));
  return conn;
}

// Creates the missing directories of `dir`, each with mode 0700.
Status EnsureDirectory(const fs::path& dir) {
  fs::path cur;
  for (const fs::path& part : dir) {
    cur /= part;
    struct stat st;
    if (stat(cur.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return Error(ErrorCode::kFailedPrecondition, "\"{}\" is not a directory", cur.string());
      }
      continue;
    }
    if (mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, fmt::format("creating directory \"{}\"", cur.string()));
    }
  }
  return Status::Ok();
}

// Creates the database file with mode 0600 if it does not exist; an existing file keeps
// its mode (the operator may have chosen another one).
Status EnsureDatabaseFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, fmt::format("opening store file \"{}\"", path));
  ::close(fd);
  return Status::Ok();
}

template <typename E>
Result<E> ParseName(std::optional<E> parsed, std::string_view name, std::string_view what,
                    std::string_view owner) {
  if (!parsed) {
    return Error(ErrorCode::kDataLoss, "{}: unknown {} \"{}\" in the store", owner, what, name);
  }
  return *parsed;
}

// ---------------------------------------------------------------------------------------
// Rows

constexpr std::string_view kRunColumns =
    "id, runbook_id, runbook_version, status, \"trigger\", triggered_by, params_json, "
    "priority, attempt, max_attempts, created_at, not_before, started_at, finished_at, "
    "deadline_at, outputs_json, retry_of, idempotency_key, error, lease_owner, "
    "lease_expires_at, fence";

// What a read selects: kRunColumns, then the queue's columns that InsertRun writes and
// UpdateRun leaves alone (ReadRun's columns 22 and 23).
const std::string kRunReadColumns = fmt::format("{}, cancel_requested, key_count", kRunColumns);

// Binds the 22 run columns in kRunColumns order to parameters ?1..?22. The JSON texts are
// passed in so that they outlive the statement's use.
void BindRun(Stmt& st, const Run& r, const std::string& params_json,
             const std::string& outputs_json) {
  st.TextRef(1, r.id);
  st.TextRef(2, r.runbook_id);
  st.TextRef(3, r.runbook_version);
  st.TextRef(4, ToString(r.status));
  st.TextRef(5, ToString(r.trigger));
  st.TextRef(6, r.triggered_by);
  st.TextRef(7, params_json);
  st.Int(8, r.priority);
  st.Int(9, r.attempt);
  st.Int(10, r.max_attempts);
  st.Time(11, r.created_at);
  st.OptTime(12, r.not_before);
  st.OptTime(13, r.started_at);
  st.OptTime(14, r.finished_at);
  st.OptTime(15, r.deadline_at);
  st.TextRef(16, outputs_json);
  st.OptText(17, r.retry_of);
  st.OptText(18, r.idempotency_key);
  st.TextRef(19, r.error);
  st.TextRef(20, r.lease_owner);
  st.OptTime(21, r.lease_expires_at);
  st.Int(22, r.fence);
}

Result<Run> ReadRun(const Stmt& st) {
  Run r;
  r.id = st.Str(0);
  r.runbook_id = st.Str(1);
  r.runbook_version = st.Str(2);
  const std::string owner = fmt::format("run {}", r.id);
  AUTOMAN_ASSIGN_OR_RETURN(r.status,
                           ParseName(ParseRunStatus(st.View(3)), st.View(3), "status", owner));
  AUTOMAN_ASSIGN_OR_RETURN(r.trigger,
                           ParseName(ParseTrigger(st.View(4)), st.View(4), "trigger", owner));
  r.triggered_by = st.Str(5);
  auto params = DecodeRunParams(st.View(6));
  if (!params.ok()) return params.status().WithContext(owner);
  r.params = std::move(params).value();
  r.priority = st.Int32(7);
  r.attempt = st.Int32(8);
  r.max_attempts = st.Int32(9);
  r.created_at = st.Time(10);
  r.not_before = st.OptTime(11);
  r.started_at = st.OptTime(12);
  r.finished_at = st.OptTime(13);
  r.deadline_at = st.OptTime(14);
  auto outputs = DecodeRunOutputs(st.View(15));
  if (!outputs.ok()) return outputs.status().WithContext(owner);
  r.outputs = std::move(outputs).value();
  r.retry_of = st.OptStr(16);
  r.idempotency_key = st.OptStr(17);
  r.error = st.Str(18);
  r.lease_owner = st.Str(19);
  r.lease_expires_at = st.OptTime(20);
  r.fence = st.Int64(21);
  r.cancel_requested = st.Int64(22) != 0;
  return r;
}

// The number of run_keys rows of the run ReadRun just read (0: no need to read them).
int64_t KeyCountOf(const Stmt& st) { return st.Int64(23); }

// Statuses as SQL string literals, for conditions that must name them literally (a partial
// index is used only when the query's WHERE implies the index's).
std::string StatusList(bool (*pred)(RunStatus)) {
  std::vector<std::string> names;
  for (int i = 0; i <= static_cast<int>(RunStatus::kDead); ++i) {
    auto s = static_cast<RunStatus>(i);
    if (pred(s)) names.push_back(fmt::format("'{}'", ToString(s)));
  }
  return fmt::format("{}", fmt::join(names, ", "));
}
const std::string& TerminalStatuses() {
  static const std::string kList = StatusList(&IsTerminal);
  return kList;
}

constexpr std::string_view kScheduleColumns =
    "id, runbook_id, source, spec_json, paused, generation, cursor_at, created_at, updated_at";

ScheduleRecord ReadSchedule(const Stmt& st) {
  ScheduleRecord s;
  s.id = st.Str(0);
  s.runbook_id = st.Str(1);
  s.source = st.Str(2);
  s.spec_json = st.Str(3);
  s.paused = st.Int64(4) != 0;
  s.generation = st.Int64(5);
  s.cursor = st.Time(6);
  s.created_at = st.Time(7);
  s.updated_at = st.Time(8);
  return s;
}

constexpr std::string_view kFireColumns =
    "schedule_id, nominal_at, due_at, status, reason, run_id, delay_us, wall, generation, "
    "recorded_at";

Result<FireRecord> ReadFire(const Stmt& st) {
  FireRecord f;
  f.schedule_id = st.Str(0);
  f.nominal = st.Time(1);
  f.due = st.Time(2);
  AUTOMAN_ASSIGN_OR_RETURN(
      f.status,
      ParseName(ParseFireStatus(st.View(3)), st.View(3), "fire status",
                fmt::format("schedule {} fire at {}", f.schedule_id, FormatRfc3339(f.nominal))));
  f.reason = st.Str(4);
  f.run_id = st.Str(5);
  f.delay = Duration(st.Int64(6));
  f.wall = st.Str(7);
  f.generation = st.Int64(8);
  f.recorded_at = st.Time(9);
  return f;
}

constexpr std::string_view kUserColumns =
    "username, password_hash, role, disabled, must_change_password, failed_logins, "
    "locked_until, created_at, updated_at";

UserRecord ReadUser(const Stmt& st) {
  UserRecord u;
  u.username = st.Str(0);
  u.password_hash = st.Str(1);
  u.role = st.Str(2);
  u.disabled = st.Int64(3) != 0;
  u.must_change_password = st.Int64(4) != 0;
  u.failed_logins = st.Int32(5);
  u.locked_until = st.OptTime(6);
  u.created_at = st.Time(7);
  u.updated_at = st.Time(8);
  return u;
}

constexpr std::string_view kCredentialColumns =
    "id, kind, secret_hash, owner, name, role, created_at, expires_at, last_used_at, "
    "revoked_at";

Result<CredentialRecord> ReadCredential(const Stmt& st) {
  CredentialRecord c;
  c.id = st.Str(0);
  AUTOMAN_ASSIGN_OR_RETURN(c.kind, ParseName(ParseCredentialKind(st.View(1)), st.View(1), "kind",
                                             fmt::format("credential {}", c.id)));
  c.secret_hash = st.Str(2);
  c.owner = st.Str(3);
  c.name = st.Str(4);
  c.role = st.Str(5);
  c.created_at = st.Time(6);
  c.expires_at = st.OptTime(7);
  c.last_used_at = st.OptTime(8);
  c.revoked_at = st.OptTime(9);
  return c;
}

constexpr std::string_view kSecretColumns =
    "name, sealed, description, created_at, updated_at, updated_by";

SecretRecord ReadSecret(const Stmt& st) {
  SecretRecord s;
  s.name = st.Str(0);
  s.sealed = st.Bytes(1);
  s.description = st.Str(2);
  s.created_at = st.Time(3);
  s.updated_at = st.Time(4);
  s.updated_by = st.Str(5);
  return s;
}

constexpr std::string_view kAuditColumns =
    "seq, at, actor, action, target, outcome, remote, details_json, hash";

AuditRecord ReadAudit(const Stmt& st) {
  AuditRecord e;
  e.seq = st.Int64(0);
  e.at = st.Time(1);
  e.actor = st.Str(2);
  e.action = st.Str(3);
  e.target = st.Str(4);
  e.outcome = st.Str(5);
  e.remote = st.Str(6);
  e.details_json = st.Str(7);
  e.hash = st.Str(8);
  return e;
}

// The end of the byte range of the strings that start with `prefix` (which ends in '.'):
// "run." gives "run/", so "run.create" is inside and "runbook.x" and "run" are not.
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  ++end.back();
  return end;
}

// Checks a run's concurrency rules before they are stored or used (see ConcurrencyLimit).
Status ValidateConcurrency(const Run& run) {
  for (size_t i = 0; i < run.concurrency.size(); ++i) {
    const ConcurrencyLimit& k = run.concurrency[i];
    if (k.key.empty()) {
      return Error(ErrorCode::kInvalidArgument, "run {}: concurrency key {} is empty", run.id,
                   i + 1);
    }
    if (k.limit < 1) {
      return Error(ErrorCode::kInvalidArgument, "run {}: concurrency key {}: limit {} is below 1",
                   run.id, k.key, k.limit);
    }
    if (k.rate_count < 0) {
      return Error(ErrorCode::kInvalidArgument,
                   "run {}: concurrency key {}: rate count {} is negative", run.id, k.key,
                   k.rate_count);
    }
    if (k.rate_count > 0 && k.rate_per.count() < 1) {
      return Error(ErrorCode::kInvalidArgument,
                   "run {}: concurrency key {}: a rate of {} needs a period of at least 1 ms "
                   "(got {} ms)",
                   run.id, k.key, k.rate_count, k.rate_per.count());
    }
    for (size_t j = 0; j < i; ++j) {
      if (run.concurrency[j].key == k.key) {
        return Error(ErrorCode::kInvalidArgument, "run {}: concurrency key {} appears twice",
                     run.id, k.key);
      }
    }
  }
  return Status::Ok();
}

// Token buckets. A key's bucket holds at most rate_count tokens and gains rate_count per
// rate_per, continuously; `tokens` were there at `refilled_at` (no row, or NULL: full).
// ListClaimable computes the same expression in SQL, in the same order of operations, so
// both agree on whether a token is there.
constexpr double kTokenEpsilon = 1e-9;  // absorbs rounding of fractional refills

double TokensAt(std::optional<double> tokens, std::optional<int64_t> refilled_at,
                const ConcurrencyLimit& k, int64_t now_us) {
  if (!tokens || !refilled_at) return k.rate_count;
  const int64_t elapsed = std::max<int64_t>(0, now_us - *refilled_at);
  const double refill = (static_cast<double>(elapsed) * 1.0 * k.rate_count) /
                        (static_cast<double>(k.rate_per.count()) * 1000.0);
  return std::min<double>(k.rate_count, *tokens + refill);
}

// ---------------------------------------------------------------------------------------
// The transaction

class SqliteTx final : public StoreTx {
 public:
  SqliteTx(Connection& c, Store::TxMode mode) : c_(c), mode_(mode) {}

  Status PutRunbookVersion(const RunbookVersion& v) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PutRunbookVersion"));
    AUTOMAN_RETURN_IF_ERROR(ValidateRunbookVersion(v));
    {
      AUTOMAN_ASSIGN_OR_RETURN(
          sqlite3_stmt * raw,
          c_.Prepare("INSERT INTO runbook_versions (version, runbook_id, yaml, source, "
                     "created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (version) DO NOTHING"));
      Stmt st(raw);
      st.TextRef(1, v.version);
      st.TextRef(2, v.runbook_id);
      st.TextRef(3, v.yaml);
      st.TextRef(4, v.source);
      st.Time(5, v.created_at);
      int rc = st.Step();
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(), fmt::format("storing runbook version {}", v.version));
      }
      if (sqlite3_changes(c_.db()) == 1) return Status::Ok();
    }
    // Already stored: content addressing makes that a no-op unless the text differs.
    AUTOMAN_ASSIGN_OR_RETURN(RunbookVersion existing, GetRunbookVersion(v.version));
    if (existing.yaml != v.yaml) {
      return Error(ErrorCode::kAlreadyExists,
                   "runbook version {} is already stored with different content", v.version);
    }
    return Status::Ok();
  }

  Result<RunbookVersion> GetRunbookVersion(std::string_view version) override {
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                             c_.Prepare("SELECT version, runbook_id, yaml, source, created_at "
                                        "FROM runbook_versions WHERE version = ?1"));
    Stmt st(raw);
    st.TextRef(1, version);
    int rc = st.Step();
    if (rc == SQLITE_DONE) {
      return Error(ErrorCode::kNotFound, "runbook version {} does not exist", version);
    }
    if (rc != SQLITE_ROW) {
      return SqliteStatus(rc, c_.db(), fmt::format("reading runbook version {}", version));
    }
    RunbookVersion v;
    v.version = st.Str(0);
    v.runbook_id = st.Str(1);
    v.yaml = st.Str(2);
    v.source = st.Str(3);
    v.created_at = st.Time(4);
    return v;
  }

  Status InsertRun(const Run& run) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("InsertRun"));
    AUTOMAN_RETURN_IF_ERROR(ValidateRun(run));
    AUTOMAN_RETURN_IF_ERROR(ValidateConcurrency(run));
    const std::string params = EncodeRunParams(run.params);
    const std::string outputs = EncodeRunOutputs(run.outputs);
    if (run.concurrency.empty()) return InsertRunRow(run, params, outputs);
    // The run and its keys, all or nothing within the caller's transaction.
    AUTOMAN_RETURN_IF_ERROR(c_.Exec("SAVEPOINT insert_run"));
    Status s = InsertRunRow(run, params, outputs);
    if (s.ok()) s = InsertRunKeys(run);
    if (!s.ok()) {
      // Fails harmlessly when SQLite already rolled the whole transaction back.
      (void)c_.Exec("ROLLBACK TO insert_run");
      (void)c_.Exec("RELEASE insert_run");
      return s;
    }
    return c_.Exec("RELEASE insert_run");
  }

  Result<Run> GetRun(std::string_view id) override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM runs WHERE id = ?1", kRunReadColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, id);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return Error(ErrorCode::kNotFound, "run {} does not exist", id);
    if (rc != SQLITE_ROW) return SqliteStatus(rc, c_.db(), fmt::format("reading run {}", id));
    return ReadFullRun(st);
  }

  Status UpdateRun(const Run& run) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpdateRun"));
    return WriteRun(run, run.fence, "update");
  }

  Status UpdateRunAdvancingFence(const Run& run, int64_t expected_fence) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpdateRunAdvancingFence"));
    if (run.fence <= expected_fence) {
      return Error(ErrorCode::kInvalidArgument,
                   "run {}: the new fencing token {} must be greater than the current {}", run.id,
                   run.fence, expected_fence);
    }
    return WriteRun(run, expected_fence, "claim");
  }

  Result<std::vector<Run>> ListRuns(const RunFilter& f) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateRunFilter(f));
    std::string sql = fmt::format("SELECT {} FROM runs", kRunReadColumns);
    std::vector<std::string_view> args;
    auto where = [&](std::string_view cond, std::string_view value) {
      sql += args.empty() ? " WHERE " : " AND ";
      sql += cond;
      args.push_back(value);
    };
    if (f.runbook_id) where("runbook_id = ?", *f.runbook_id);
    if (f.status) where("status = ?", ToString(*f.status));
    if (f.trigger) where("\"trigger\" = ?", ToString(*f.trigger));
    if (f.before_id) where("id < ?", *f.before_id);
    sql += " ORDER BY id DESC LIMIT ?";

    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(sql));
    Stmt st(raw);
    int i = 1;
    for (std::string_view a : args) st.TextRef(i++, a);
    st.Int(i, f.limit);
    return ReadRuns(st, "listing runs");
  }

  Status CheckFence(std::string_view run_id, int64_t fence) override {
    AUTOMAN_ASSIGN_OR_RETURN(int64_t current, CurrentFence(run_id));
    if (current != fence) return FenceMismatch(run_id, fence, "write");
    return Status::Ok();
  }

  Status UpsertAttempt(const Attempt& a) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpsertAttempt"));
    AUTOMAN_RETURN_IF_ERROR(ValidateAttempt(a));
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("INSERT INTO attempts (run_id, number, status, worker, started_at, "
                   "finished_at, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                   "ON CONFLICT (run_id, number) DO UPDATE SET status = excluded.status, "
                   "worker = excluded.worker, started_at = excluded.started_at, "
                   "finished_at = excluded.finished_at, error = excluded.error"));
    Stmt st(raw);
    st.TextRef(1, a.run_id);
    st.Int(2, a.number);
    st.TextRef(3, ToString(a.status));
    st.TextRef(4, a.worker);
    st.Time(5, a.started_at);
    st.OptTime(6, a.finished_at);
    st.TextRef(7, a.error);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return Status::Ok();
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return RunMissing(a.run_id);
    return SqliteStatus(rc, c_.db(),
                        fmt::format("storing attempt {} of run {}", a.number, a.run_id));
  }

  Result<std::vector<Attempt>> ListAttempts(std::string_view run_id) override {
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("SELECT number, status, worker, started_at, finished_at, error "
                   "FROM attempts WHERE run_id = ?1 ORDER BY number"));
    Stmt st(raw);
    st.TextRef(1, run_id);
    std::vector<Attempt> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      Attempt a;
      a.run_id = std::string(run_id);
      a.number = st.Int32(0);
      AUTOMAN_ASSIGN_OR_RETURN(a.status,
                               ParseName(ParseRunStatus(st.View(1)), st.View(1), "attempt status",
                                         fmt::format("run {} attempt {}", run_id, a.number)));
      a.worker = st.Str(2);
      a.started_at = st.Time(3);
      a.finished_at = st.OptTime(4);
      a.error = st.Str(5);
      out.push_back(std::move(a));
    }
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("listing attempts of run {}", run_id));
    }
    return out;
  }

  Status UpsertStepRun(const StepRun& s) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpsertStepRun"));
    AUTOMAN_RETURN_IF_ERROR(ValidateStepRun(s));
    const std::string outputs = EncodeStringMap(s.outputs);
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("INSERT INTO step_runs (run_id, attempt, step_id, idx, status, exit_code, "
                   "signal, started_at, finished_at, error, outputs_json, sandbox) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
                   "ON CONFLICT (run_id, attempt, step_id) DO UPDATE SET idx = excluded.idx, "
                   "status = excluded.status, exit_code = excluded.exit_code, "
                   "signal = excluded.signal, started_at = excluded.started_at, "
                   "finished_at = excluded.finished_at, error = excluded.error, "
                   "outputs_json = excluded.outputs_json, sandbox = excluded.sandbox"));
    Stmt st(raw);
    st.TextRef(1, s.run_id);
    st.Int(2, s.attempt);
    st.TextRef(3, s.step_id);
    st.Int(4, s.index);
    st.TextRef(5, ToString(s.status));
    st.OptInt(6, s.exit_code);
    st.OptInt(7, s.signal);
    st.OptTime(8, s.started_at);
    st.OptTime(9, s.finished_at);
    st.TextRef(10, s.error);
    st.TextRef(11, outputs);
    st.TextRef(12, s.sandbox);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return Status::Ok();
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return RunMissing(s.run_id);
    return SqliteStatus(
        rc, c_.db(),
        fmt::format("storing step {} of run {} attempt {}", s.step_id, s.run_id, s.attempt));
  }

  Result<std::vector<StepRun>> ListStepRuns(std::string_view run_id) override {
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("SELECT attempt, step_id, idx, status, exit_code, signal, started_at, "
                   "finished_at, error, outputs_json, sandbox FROM step_runs WHERE run_id = ?1 "
                   "ORDER BY attempt, idx, step_id"));
    Stmt st(raw);
    st.TextRef(1, run_id);
    std::vector<StepRun> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      StepRun s;
      s.run_id = std::string(run_id);
      s.attempt = st.Int32(0);
      s.step_id = st.Str(1);
      s.index = st.Int32(2);
      const std::string owner =
          fmt::format("run {} attempt {} step {}", run_id, s.attempt, s.step_id);
      AUTOMAN_ASSIGN_OR_RETURN(
          s.status, ParseName(ParseStepStatus(st.View(3)), st.View(3), "step status", owner));
      s.exit_code = st.OptInt32(4);
      s.signal = st.OptInt32(5);
      s.started_at = st.OptTime(6);
      s.finished_at = st.OptTime(7);
      s.error = st.Str(8);
      auto outputs = DecodeStringMap(st.View(9));
      if (!outputs.ok()) return outputs.status().WithContext(owner);
      s.outputs = std::move(outputs).value();
      s.sandbox = st.Str(10);
      out.push_back(std::move(s));
    }
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("listing step runs of run {}", run_id));
    }
    return out;
  }

  Status AppendLogLines(std::span<const LogLine> lines) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("AppendLogLines"));
    if (lines.empty()) return Status::Ok();
    AUTOMAN_RETURN_IF_ERROR(ValidateLogLines(lines));
    // All or nothing within the caller's transaction, which may go on after an error.
    AUTOMAN_RETURN_IF_ERROR(c_.Exec("SAVEPOINT append_log_lines"));
    Status s = InsertLogLines(lines);
    if (!s.ok()) {
      // Fails harmlessly when SQLite already rolled the whole transaction back.
      (void)c_.Exec("ROLLBACK TO append_log_lines");
      (void)c_.Exec("RELEASE append_log_lines");
      return s;
    }
    return c_.Exec("RELEASE append_log_lines");
  }

  Result<std::vector<LogLine>> ReadLogLines(const LogQuery& q) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateLogQuery(q));
    std::string sql =
        "SELECT attempt, seq, step_id, stream, ts, text, partial FROM log_lines "
        "WHERE run_id = ?1 AND seq > ?2";
    int next = 3;
    const int attempt_param = q.attempt ? next++ : 0;
    const int step_param = q.step_id ? next++ : 0;
    const int stream_param = q.stream ? next++ : 0;
    const int limit_param = next;
    if (attempt_param) sql += fmt::format(" AND attempt = ?{}", attempt_param);
    if (step_param) sql += fmt::format(" AND step_id = ?{}", step_param);
    if (stream_param) sql += fmt::format(" AND stream = ?{}", stream_param);
    sql += fmt::format(" ORDER BY attempt, seq LIMIT ?{}", limit_param);

    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(sql));
    Stmt st(raw);
    st.TextRef(1, q.run_id);
    st.Int(2, q.after_seq);
    if (attempt_param) st.Int(attempt_param, *q.attempt);
    if (step_param) st.TextRef(step_param, *q.step_id);
    if (stream_param) st.TextRef(stream_param, ToString(*q.stream));
    st.Int(limit_param, q.limit);
    std::vector<LogLine> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      LogLine l;
      l.run_id = q.run_id;
      l.attempt = st.Int32(0);
      l.seq = st.Int64(1);
      l.step_id = st.Str(2);
      AUTOMAN_ASSIGN_OR_RETURN(
          l.stream,
          ParseName(ParseLogStream(st.View(3)), st.View(3), "log stream",
                    fmt::format("run {} attempt {} line {}", q.run_id, l.attempt, l.seq)));
      l.ts = st.Time(4);
      l.text = st.Str(5);
      l.partial = st.Int64(6) != 0;
      out.push_back(std::move(l));
    }
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("reading log lines of run {}", q.run_id));
    }
    return out;
  }

  // ---- Queue primitives

  // SQLite's write transactions are serial (one writer per database file, and one batch
  // per Store under group commit), so a check-then-insert is already atomic.
  Status LockKey(std::string_view) override { return Status::Ok(); }

  Result<std::optional<Run>> FindRunByIdempotencyKey(std::string_view key,
                                                     Timestamp since) override {
    static const std::string kSql = fmt::format(
        "SELECT {} FROM runs INDEXED BY runs_idempotency WHERE idempotency_key = ?1 "
        "AND created_at >= ?2 ORDER BY created_at DESC, rowid DESC LIMIT 1",
        kRunReadColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, key);
    st.Time(2, since);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return std::optional<Run>();
    if (rc != SQLITE_ROW) {
      return SqliteStatus(rc, c_.db(), fmt::format("looking up idempotency key \"{}\"", key));
    }
    AUTOMAN_ASSIGN_OR_RETURN(Run r, ReadFullRun(st));
    return std::optional<Run>(std::move(r));
  }

  Result<std::vector<Run>> ListClaimable(Timestamp now, int limit) override {
    AUTOMAN_RETURN_IF_ERROR(CheckLimit("claimable run list", limit, 1000));
    // Walks runs_claimable in (priority DESC, rowid) order and stops after `limit` hits.
    // A run with keys is skipped when one of them is full or has no token at ?1; the key
    // check is a lookup by primary key in run_keys and key_slots per candidate, and runs
    // without keys (key_count = 0) skip it.
    static const std::string kSql = fmt::format(
        "SELECT {} FROM runs AS r INDEXED BY runs_claimable WHERE r.status = 'PENDING' "
        "AND r.cancel_requested = 0 "
        "AND (r.not_before IS NULL OR r.not_before <= ?1) "
        "AND (r.key_count = 0 OR NOT EXISTS (SELECT 1 FROM run_keys AS k "
        "LEFT JOIN key_slots AS s ON s.key = k.key WHERE k.run_id = r.id "
        "AND (coalesce(s.running, 0) >= k.lim OR (k.rate_count > 0 AND s.tokens IS NOT NULL "
        "AND s.refilled_at IS NOT NULL AND s.tokens + (max(0, ?1 - s.refilled_at) * 1.0 * "
        "k.rate_count) / (k.rate_per_ms * 1000.0) < 1.0 - {})))) "
        "ORDER BY r.priority DESC, r.rowid LIMIT ?2",
        kRunReadColumns, kTokenEpsilon);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.Time(1, now);
    st.Int(2, limit);
    return ReadRuns(st, "listing claimable runs");
  }

  Result<bool> AcquireSlots(const Run& run, Timestamp now) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("AcquireSlots"));
    if (run.concurrency.empty()) return true;
    AUTOMAN_RETURN_IF_ERROR(ValidateConcurrency(run));
    const int64_t now_us = ToMicros(now);
    // Every key first: all or nothing.
    std::vector<std::optional<double>> tokens_after(run.concurrency.size());
    for (size_t i = 0; i < run.concurrency.size(); ++i) {
      const ConcurrencyLimit& k = run.concurrency[i];
      AUTOMAN_ASSIGN_OR_RETURN(
          sqlite3_stmt * raw,
          c_.Prepare("SELECT running, tokens, refilled_at FROM key_slots WHERE key = ?1"));
      Stmt st(raw);
      st.TextRef(1, k.key);
      int64_t running = 0;
      std::optional<double> tokens;
      std::optional<int64_t> refilled_at;
      int rc = st.Step();
      if (rc == SQLITE_ROW) {
        running = st.Int64(0);
        if (!st.IsNull(1)) tokens = sqlite3_column_double(raw, 1);
        if (!st.IsNull(2)) refilled_at = st.Int64(2);
      } else if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(), fmt::format("reading the slots of key {}", k.key));
      }
      if (running >= k.limit) return false;
      if (k.rate_count > 0) {
        const double available = TokensAt(tokens, refilled_at, k, now_us);
        if (available < 1.0 - kTokenEpsilon) return false;
        tokens_after[i] = std::max(0.0, available - 1.0);
      }
    }
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("INSERT INTO key_slots (key, running, tokens, refilled_at) "
                   "VALUES (?1, 1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET "
                   "running = running + 1, tokens = coalesce(excluded.tokens, tokens), "
                   "refilled_at = coalesce(excluded.refilled_at, refilled_at)"));
    Stmt st(raw);
    for (size_t i = 0; i < run.concurrency.size(); ++i) {
      const ConcurrencyLimit& k = run.concurrency[i];
      st.TextRef(1, k.key);
      if (tokens_after[i]) {
        st.Double(2, *tokens_after[i]);
        st.Int(3, now_us);
      } else {
        st.Null(2);
        st.Null(3);
      }
      int rc = st.Step();
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(),
                            fmt::format("taking a slot of key {} for run {}", k.key, run.id));
      }
      st.Reset();
    }
    return true;
  }

  Status ReleaseSlots(const Run& run) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("ReleaseSlots"));
    if (run.concurrency.empty()) return Status::Ok();
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("UPDATE key_slots SET running = max(running - 1, 0) WHERE key = ?1"));
    Stmt st(raw);
    for (const ConcurrencyLimit& k : run.concurrency) {
      st.TextRef(1, k.key);
      int rc = st.Step();
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(),
                            fmt::format("releasing the slot of key {} for run {}", k.key, run.id));
      }
      st.Reset();
    }
    return Status::Ok();
  }

  Status RecountSlots() override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("RecountSlots"));
    AUTOMAN_RETURN_IF_ERROR(c_.Exec("UPDATE key_slots SET running = 0 WHERE running <> 0")
                                .WithContext("recounting key slots"));
    return c_
        .Exec(
            "INSERT INTO key_slots (key, running) SELECT k.key, count(*) FROM runs AS r "
            "JOIN run_keys AS k ON k.run_id = r.id WHERE r.status IN ('RUNNING', 'WAITING') "
            "GROUP BY k.key ON CONFLICT (key) DO UPDATE SET running = excluded.running")
        .WithContext("recounting key slots");
  }

  Result<std::vector<Run>> ListExpiredLeases(Timestamp now, int limit) override {
    AUTOMAN_RETURN_IF_ERROR(CheckLimit("expired lease list", limit, 1000));
    static const std::string kSql = fmt::format(
        "SELECT {} FROM runs INDEXED BY runs_leases WHERE status IN ('RUNNING', 'WAITING') "
        "AND lease_expires_at < ?1 ORDER BY lease_expires_at, rowid LIMIT ?2",
        kRunReadColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.Time(1, now);
    st.Int(2, limit);
    return ReadRuns(st, "listing expired leases");
  }

  Result<std::optional<Timestamp>> NextNotBefore(Timestamp now) override {
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("SELECT min(not_before) FROM runs INDEXED BY runs_delayed "
                   "WHERE status = 'PENDING' AND not_before IS NOT NULL AND not_before > ?1"));
    Stmt st(raw);
    st.Time(1, now);
    int rc = st.Step();
    if (rc != SQLITE_ROW) {
      return SqliteStatus(rc, c_.db(), "finding the next delayed run");
    }
    return st.OptTime(0);
  }

  Result<bool> RenewLease(std::string_view run_id, int64_t fence, Timestamp expires_at) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("RenewLease"));
    {
      AUTOMAN_ASSIGN_OR_RETURN(
          sqlite3_stmt * raw,
          c_.Prepare("UPDATE runs SET lease_expires_at = ?3 WHERE id = ?1 AND fence = ?2 "
                     "AND status IN ('RUNNING', 'WAITING') RETURNING cancel_requested"));
      Stmt st(raw);
      st.TextRef(1, run_id);
      st.Int(2, fence);
      st.Time(3, expires_at);
      int rc = st.Step();
      if (rc == SQLITE_ROW) {
        const bool cancel = st.Int64(0) != 0;
        rc = st.Step();  // runs the statement to its end
        if (rc == SQLITE_DONE) return cancel;
      }
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(), fmt::format("renewing the lease of run {}", run_id));
      }
    }
    return FenceMismatch(run_id, fence, "lease renewal");
  }

  Status RequestCancel(std::string_view run_id) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("RequestCancel"));
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                             c_.Prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?1"));
    Stmt st(raw);
    st.TextRef(1, run_id);
    int rc = st.Step();
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("requesting cancellation of run {}", run_id));
    }
    if (sqlite3_changes(c_.db()) == 0) return RunMissing(run_id);
    return Status::Ok();
  }

  Result<std::vector<std::string>> ListCancelRequested(std::string_view lease_owner) override {
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("SELECT id FROM runs INDEXED BY runs_cancel WHERE cancel_requested = 1 "
                   "AND lease_owner = ?1 AND status IN ('RUNNING', 'WAITING') ORDER BY id"));
    Stmt st(raw);
    st.TextRef(1, lease_owner);
    std::vector<std::string> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back(st.Str(0));
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(),
                          fmt::format("listing cancellations for lease owner {}", lease_owner));
    }
    return out;
  }

  Result<std::map<RunStatus, int64_t>> CountRunsByStatus() override {
    std::map<RunStatus, int64_t> out;
    for (int i = 0; i <= static_cast<int>(RunStatus::kDead); ++i) {
      out[static_cast<RunStatus>(i)] = 0;
    }
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                             c_.Prepare("SELECT status, count(*) FROM runs GROUP BY status"));
    Stmt st(raw);
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      AUTOMAN_ASSIGN_OR_RETURN(
          RunStatus s, ParseName(ParseRunStatus(st.View(0)), st.View(0), "status", "runs table"));
      out[s] = st.Int64(1);
    }
    if (rc != SQLITE_DONE) return SqliteStatus(rc, c_.db(), "counting runs by status");
    return out;
  }

  Result<std::vector<std::string>> ListPrunable(std::optional<Timestamp> finished_before,
                                                std::optional<int> keep_per_runbook,
                                                int limit) override {
    AUTOMAN_RETURN_IF_ERROR(CheckLimit("prunable run list", limit, 10000));
    if (keep_per_runbook && *keep_per_runbook < 0) {
      return Error(ErrorCode::kInvalidArgument, "keep_per_runbook {} is negative",
                   *keep_per_runbook);
    }
    if (!finished_before && !keep_per_runbook) return std::vector<std::string>();
    // Per runbook, through runs_retention (terminal runs by runbook_id, finished_at,
    // rowid): the prunable runs are a prefix of that order, up to the newer of two bounds,
    // the age and the newest run past the count (found by skipping `keep` entries). The
    // oldest `limit` of each runbook's prefix are merged, oldest first. Cost: a few index
    // seeks per runbook plus `keep` index steps, not a pass over every finished run.
    struct Candidate {
      int64_t finished_at;
      int64_t rowid;
      std::string id;
    };
    std::vector<Candidate> found;
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<std::string> runbooks, RetainedRunbooks());
    for (const std::string& runbook : runbooks) {
      // Everything strictly before (bound_at, bound_rowid) is prunable.
      std::optional<std::pair<int64_t, int64_t>> bound;
      if (finished_before) bound = std::pair{ToMicros(*finished_before), INT64_MIN};
      if (keep_per_runbook) {
        AUTOMAN_ASSIGN_OR_RETURN(auto newest_past, NewestPastCount(runbook, *keep_per_runbook));
        if (newest_past) {
          const std::pair<int64_t, int64_t> after = {newest_past->first, newest_past->second + 1};
          if (!bound || after > *bound) bound = after;
        }
      }
      if (!bound) continue;
      static const std::string kSql = fmt::format(
          "SELECT id, finished_at, rowid FROM runs INDEXED BY runs_retention "
          "WHERE runbook_id = ?1 AND finished_at IS NOT NULL AND status IN ({}) "
          "AND finished_at <= ?2 AND (finished_at, rowid) < (?2, ?3) "
          "ORDER BY finished_at, rowid LIMIT ?4",
          TerminalStatuses());
      AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
      Stmt st(raw);
      st.TextRef(1, runbook);
      st.Int(2, bound->first);
      st.Int(3, bound->second);
      st.Int(4, limit);
      int rc;
      while ((rc = st.Step()) == SQLITE_ROW) {
        found.push_back(Candidate{st.Int64(1), st.Int64(2), st.Str(0)});
      }
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(),
                            fmt::format("listing prunable runs of runbook {}", runbook));
      }
    }
    std::sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.finished_at, a.rowid) < std::tie(b.finished_at, b.rowid);
    });
    if (found.size() > static_cast<size_t>(limit)) found.resize(limit);
    std::vector<std::string> out;
    for (Candidate& c : found) out.push_back(std::move(c.id));
    return out;
  }

  Status DeleteRuns(std::span<const std::string> ids) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("DeleteRuns"));
    if (ids.empty()) return Status::Ok();
    // Refuse before deleting anything.
    {
      AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                               c_.Prepare("SELECT status FROM runs WHERE id = ?1"));
      Stmt st(raw);
      for (const std::string& id : ids) {
        st.TextRef(1, id);
        int rc = st.Step();
        if (rc == SQLITE_ROW) {
          AUTOMAN_ASSIGN_OR_RETURN(RunStatus status,
                                   ParseName(ParseRunStatus(st.View(0)), st.View(0), "status",
                                             fmt::format("run {}", id)));
          if (!IsTerminal(status)) {
            return Error(ErrorCode::kFailedPrecondition,
                         "run {} is {}, not terminal: refusing to delete it (nothing was "
                         "deleted)",
                         id, ToString(status));
          }
        } else if (rc != SQLITE_DONE) {
          return SqliteStatus(rc, c_.db(), fmt::format("reading the status of run {}", id));
        }
        st.Reset();
      }
    }
    AUTOMAN_RETURN_IF_ERROR(c_.Exec("SAVEPOINT delete_runs"));
    Status s = DeleteRunRows(ids);
    if (!s.ok()) {
      (void)c_.Exec("ROLLBACK TO delete_runs");
      (void)c_.Exec("RELEASE delete_runs");
      return s;
    }
    return c_.Exec("RELEASE delete_runs");
  }

  // ---- Schedules and the fire ledger

  // The revision goes up first: if the upsert then fails, the caller's transaction only
  // carries a spurious bump (a loop re-reads the schedules once), never a change without
  // one.
  Result<ScheduleRecord> PutSchedule(const ScheduleRecord& s) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PutSchedule"));
    AUTOMAN_RETURN_IF_ERROR(ValidateSchedule(s));
    AUTOMAN_RETURN_IF_ERROR(BumpSchedulesRevision());
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("INSERT INTO schedules (id, runbook_id, source, spec_json, paused, generation, "
                   "cursor_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8) "
                   "ON CONFLICT (id) DO UPDATE SET runbook_id = excluded.runbook_id, "
                   "source = excluded.source, spec_json = excluded.spec_json, "
                   "paused = excluded.paused, generation = schedules.generation + 1, "
                   "cursor_at = excluded.cursor_at, updated_at = excluded.updated_at "
                   "RETURNING generation, created_at"));
    Stmt st(raw);
    st.TextRef(1, s.id);
    st.TextRef(2, s.runbook_id);
    st.TextRef(3, s.source);
    st.TextRef(4, s.spec_json);
    st.Int(5, s.paused ? 1 : 0);
    st.Time(6, s.cursor);
    st.Time(7, s.created_at);
    st.Time(8, s.updated_at);
    int rc = st.Step();
    if (rc != SQLITE_ROW) {
      return SqliteStatus(rc, c_.db(), fmt::format("storing schedule {}", s.id));
    }
    ScheduleRecord out = s;
    out.generation = st.Int64(0);
    out.created_at = st.Time(1);
    rc = st.Step();  // runs the statement to its end
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("storing schedule {}", s.id));
    }
    return out;
  }

  Result<ScheduleRecord> GetSchedule(std::string_view id) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(id));
    static const std::string kSql =
        fmt::format("SELECT {} FROM schedules WHERE id = ?1", kScheduleColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, id);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return ScheduleMissing(id);
    if (rc != SQLITE_ROW) {
      return SqliteStatus(rc, c_.db(), fmt::format("reading schedule {}", id));
    }
    return ReadSchedule(st);
  }

  Result<std::vector<ScheduleRecord>> ListSchedules() override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM schedules ORDER BY id", kScheduleColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    std::vector<ScheduleRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back(ReadSchedule(st));
    if (rc != SQLITE_DONE) return SqliteStatus(rc, c_.db(), "listing schedules");
    return out;
  }

  // Deletes first and bumps only when a row went (a refused delete writes nothing).
  Status DeleteSchedule(std::string_view id) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("DeleteSchedule"));
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(id));
    {
      AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                               c_.Prepare("DELETE FROM schedules WHERE id = ?1"));
      Stmt st(raw);
      st.TextRef(1, id);
      int rc = st.Step();
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(), fmt::format("deleting schedule {}", id));
      }
      if (sqlite3_changes(c_.db()) == 0) return ScheduleMissing(id);
    }
    return BumpSchedulesRevision();
  }

  Result<int64_t> SchedulesRevision() override {
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                             c_.Prepare("SELECT revision FROM schedule_revision WHERE id = 1"));
    Stmt st(raw);
    int rc = st.Step();
    if (rc == SQLITE_ROW) return st.Int64(0);
    if (rc == SQLITE_DONE) {
      return Error(ErrorCode::kDataLoss, "the schedules revision row is missing");
    }
    return SqliteStatus(rc, c_.db(), "reading the schedules revision");
  }

  Status AdvanceScheduleCursor(std::string_view id, int64_t generation, Timestamp cursor) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("AdvanceScheduleCursor"));
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(id));
    {
      AUTOMAN_ASSIGN_OR_RETURN(
          sqlite3_stmt * raw,
          c_.Prepare("UPDATE schedules SET cursor_at = ?3 WHERE id = ?1 AND generation = ?2"));
      Stmt st(raw);
      st.TextRef(1, id);
      st.Int(2, generation);
      st.Time(3, cursor);
      int rc = st.Step();
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(), fmt::format("moving the cursor of schedule {}", id));
      }
      if (sqlite3_changes(c_.db()) == 1) return Status::Ok();
    }
    AUTOMAN_ASSIGN_OR_RETURN(ScheduleRecord current, GetSchedule(id));
    return GenerationMismatch(id, generation, current.generation);
  }

  // One statement inserts the row only if the schedule exists and the key is new; when it
  // inserts nothing, a lookup of the schedule tells the two refusals apart.
  Status InsertFire(const FireRecord& f) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("InsertFire"));
    AUTOMAN_RETURN_IF_ERROR(ValidateFire(f));
    {
      AUTOMAN_ASSIGN_OR_RETURN(
          sqlite3_stmt * raw,
          c_.Prepare("INSERT INTO fire_ledger (schedule_id, nominal_at, due_at, status, reason, "
                     "run_id, delay_us, wall, generation, recorded_at) "
                     "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 "
                     "WHERE EXISTS (SELECT 1 FROM schedules WHERE id = ?1) "
                     "ON CONFLICT (schedule_id, nominal_at) DO NOTHING"));
      Stmt st(raw);
      st.TextRef(1, f.schedule_id);
      st.Time(2, f.nominal);
      st.Time(3, f.due);
      st.TextRef(4, ToString(f.status));
      st.TextRef(5, f.reason);
      st.TextRef(6, f.run_id);
      st.Int(7, f.delay.count());
      st.TextRef(8, f.wall);
      st.Int(9, f.generation);
      st.Time(10, f.recorded_at);
      int rc = st.Step();
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(),
                            fmt::format("recording a fire of schedule {}", f.schedule_id));
      }
      if (sqlite3_changes(c_.db()) == 1) return Status::Ok();
    }
    AUTOMAN_RETURN_IF_ERROR(GetSchedule(f.schedule_id).status());
    return FireExists(f);
  }

  Result<std::vector<FireRecord>> WithdrawFires(std::string_view schedule_id,
                                                Timestamp due_after) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("WithdrawFires"));
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(schedule_id));
    static const std::string kSql =
        fmt::format("DELETE FROM fire_ledger WHERE schedule_id = ?1 AND due_at > ?2 RETURNING {}",
                    kFireColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, schedule_id);
    st.Time(2, due_after);
    std::vector<FireRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      AUTOMAN_ASSIGN_OR_RETURN(FireRecord f, ReadFire(st));
      out.push_back(std::move(f));
    }
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(),
                          fmt::format("withdrawing early fires of schedule {}", schedule_id));
    }
    return out;
  }

  Result<std::vector<FireRecord>> ListFires(std::string_view schedule_id,
                                            std::optional<Timestamp> before, int limit) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(schedule_id));
    AUTOMAN_RETURN_IF_ERROR(ValidateFireListLimit(limit));
    static const std::string kAll = fmt::format(
        "SELECT {} FROM fire_ledger WHERE schedule_id = ?1 ORDER BY nominal_at DESC LIMIT ?2",
        kFireColumns);
    static const std::string kBefore = fmt::format(
        "SELECT {} FROM fire_ledger WHERE schedule_id = ?1 AND nominal_at < ?3 "
        "ORDER BY nominal_at DESC LIMIT ?2",
        kFireColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(before ? kBefore : kAll));
    Stmt st(raw);
    st.TextRef(1, schedule_id);
    st.Int(2, limit);
    if (before) st.Time(3, *before);
    std::vector<FireRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      AUTOMAN_ASSIGN_OR_RETURN(FireRecord f, ReadFire(st));
      out.push_back(std::move(f));
    }
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(),
                          fmt::format("listing the fire ledger of schedule {}", schedule_id));
    }
    return out;
  }

  Result<std::vector<Run>> ListActiveRuns(Trigger trigger, std::string_view triggered_by,
                                          int limit) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateActiveRunListLimit(limit));
    static const std::string kSql = fmt::format(
        "SELECT {} FROM runs INDEXED BY runs_active_by_trigger WHERE \"trigger\" = ?1 "
        "AND triggered_by = ?2 AND status IN ('PENDING', 'RUNNING', 'WAITING') "
        "ORDER BY created_at, id LIMIT ?3",
        kRunReadColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, ToString(trigger));
    st.TextRef(2, triggered_by);
    st.Int(3, limit);
    return ReadRuns(
        st, fmt::format("listing the active runs of {} {}", ToString(trigger), triggered_by));
  }

  // ---- Users, credentials, secrets, audit trail

  // An upsert, never INSERT OR REPLACE: a REPLACE deletes the row first, and the delete
  // would cascade to the user's credentials.
  Status PutUser(const UserRecord& u) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PutUser"));
    AUTOMAN_RETURN_IF_ERROR(ValidateUser(u));
    static const std::string kSql = fmt::format(
        "INSERT INTO users ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
        "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, "
        "role = excluded.role, disabled = excluded.disabled, "
        "must_change_password = excluded.must_change_password, "
        "failed_logins = excluded.failed_logins, locked_until = excluded.locked_until, "
        "updated_at = excluded.updated_at",
        kUserColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, u.username);
    st.TextRef(2, u.password_hash);
    st.TextRef(3, u.role);
    st.Int(4, u.disabled ? 1 : 0);
    st.Int(5, u.must_change_password ? 1 : 0);
    st.Int(6, u.failed_logins);
    st.OptTime(7, u.locked_until);
    st.Time(8, u.created_at);
    st.Time(9, u.updated_at);
    int rc = st.Step();
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("storing user {}", u.username));
    }
    return Status::Ok();
  }

  Result<UserRecord> GetUser(std::string_view username) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateUsername(username));
    static const std::string kSql =
        fmt::format("SELECT {} FROM users WHERE username = ?1", kUserColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, username);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return Error(ErrorCode::kNotFound, "user {} does not exist", username);
    if (rc != SQLITE_ROW) {
      return SqliteStatus(rc, c_.db(), fmt::format("reading user {}", username));
    }
    return ReadUser(st);
  }

  Result<std::vector<UserRecord>> ListUsers() override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM users ORDER BY username", kUserColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    std::vector<UserRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back(ReadUser(st));
    if (rc != SQLITE_DONE) return SqliteStatus(rc, c_.db(), "listing users");
    return out;
  }

  Status InsertCredential(const CredentialRecord& cr) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("InsertCredential"));
    AUTOMAN_RETURN_IF_ERROR(ValidateCredential(cr));
    {
      static const std::string kSql = fmt::format(
          "INSERT INTO credentials ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
          kCredentialColumns);
      AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
      Stmt st(raw);
      st.TextRef(1, cr.id);
      st.TextRef(2, ToString(cr.kind));
      st.TextRef(3, cr.secret_hash);
      st.TextRef(4, cr.owner);
      st.TextRef(5, cr.name);
      st.TextRef(6, cr.role);
      st.Time(7, cr.created_at);
      st.OptTime(8, cr.expires_at);
      st.OptTime(9, cr.last_used_at);
      st.OptTime(10, cr.revoked_at);
      int rc = st.Step();
      if (rc == SQLITE_DONE) return Status::Ok();
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return OwnerMissing(cr);
      if (CodeFor(rc) != ErrorCode::kAlreadyExists) {
        return SqliteStatus(rc, c_.db(), fmt::format("inserting credential {}", cr.id));
      }
    }
    // Which key was taken (never naming the hash: it stands for a secret).
    Result<CredentialRecord> same_id = GetCredential(cr.id);
    if (!same_id.ok() && same_id.status().code() != ErrorCode::kNotFound) return same_id.status();
    return CredentialExists(cr, same_id.ok());
  }

  Result<CredentialRecord> FindCredentialByHash(std::string_view secret_hash) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateCredentialHash(secret_hash));
    static const std::string kSql =
        fmt::format("SELECT {} FROM credentials WHERE secret_hash = ?1", kCredentialColumns);
    return ReadOneCredential(kSql, secret_hash, "");
  }

  Result<CredentialRecord> GetCredential(std::string_view id) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateCredentialId(id));
    static const std::string kSql =
        fmt::format("SELECT {} FROM credentials WHERE id = ?1", kCredentialColumns);
    return ReadOneCredential(kSql, id, id);
  }

  Result<std::vector<CredentialRecord>> ListCredentials(CredentialKind kind,
                                                        std::string_view owner) override {
    static const std::string kAll = fmt::format(
        "SELECT {} FROM credentials WHERE kind = ?1 ORDER BY created_at, id", kCredentialColumns);
    static const std::string kOfOwner = fmt::format(
        "SELECT {} FROM credentials WHERE kind = ?1 AND owner = ?2 ORDER BY created_at, id",
        kCredentialColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(owner.empty() ? kAll : kOfOwner));
    Stmt st(raw);
    st.TextRef(1, ToString(kind));
    if (!owner.empty()) st.TextRef(2, owner);
    std::vector<CredentialRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      AUTOMAN_ASSIGN_OR_RETURN(CredentialRecord c, ReadCredential(st));
      out.push_back(std::move(c));
    }
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("listing {} credentials", ToString(kind)));
    }
    return out;
  }

  Status UpdateCredential(const CredentialRecord& cr) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpdateCredential"));
    AUTOMAN_RETURN_IF_ERROR(ValidateCredentialId(cr.id));
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("UPDATE credentials SET name = ?2, role = ?3, expires_at = ?4, "
                   "last_used_at = ?5, revoked_at = COALESCE(revoked_at, ?6) WHERE id = ?1"));
    Stmt st(raw);
    st.TextRef(1, cr.id);
    st.TextRef(2, cr.name);
    st.TextRef(3, cr.role);
    st.OptTime(4, cr.expires_at);
    st.OptTime(5, cr.last_used_at);
    st.OptTime(6, cr.revoked_at);
    int rc = st.Step();
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("updating credential {}", cr.id));
    }
    if (sqlite3_changes(c_.db()) == 0) return CredentialMissing(cr.id);
    return Status::Ok();
  }

  Result<int64_t> PurgeCredentials(Timestamp before) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PurgeCredentials"));
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("DELETE FROM credentials WHERE expires_at < ?1 OR revoked_at < ?1"));
    Stmt st(raw);
    st.Time(1, before);
    int rc = st.Step();
    if (rc != SQLITE_DONE) return SqliteStatus(rc, c_.db(), "purging credentials");
    return static_cast<int64_t>(sqlite3_changes(c_.db()));
  }

  Status PutSecret(const SecretRecord& s) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PutSecret"));
    AUTOMAN_RETURN_IF_ERROR(ValidateSecret(s));
    static const std::string kSql = fmt::format(
        "INSERT INTO secrets ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
        "ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, "
        "description = excluded.description, updated_at = excluded.updated_at, "
        "updated_by = excluded.updated_by",
        kSecretColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, s.name);
    st.BlobRef(2, s.sealed);
    st.TextRef(3, s.description);
    st.Time(4, s.created_at);
    st.Time(5, s.updated_at);
    st.TextRef(6, s.updated_by);
    int rc = st.Step();
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("storing secret {}", s.name));
    }
    return Status::Ok();
  }

  Result<SecretRecord> GetSecret(std::string_view name) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateSecretName(name));
    static const std::string kSql =
        fmt::format("SELECT {} FROM secrets WHERE name = ?1", kSecretColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, name);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return SecretMissing(name);
    if (rc != SQLITE_ROW) return SqliteStatus(rc, c_.db(), fmt::format("reading secret {}", name));
    return ReadSecret(st);
  }

  Result<std::vector<SecretRecord>> ListSecrets() override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM secrets ORDER BY name", kSecretColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    std::vector<SecretRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back(ReadSecret(st));
    if (rc != SQLITE_DONE) return SqliteStatus(rc, c_.db(), "listing secrets");
    return out;
  }

  Status DeleteSecret(std::string_view name) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("DeleteSecret"));
    AUTOMAN_RETURN_IF_ERROR(ValidateSecretName(name));
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare("DELETE FROM secrets WHERE name = ?1"));
    Stmt st(raw);
    st.TextRef(1, name);
    int rc = st.Step();
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("deleting secret {}", name));
    }
    if (sqlite3_changes(c_.db()) == 0) return SecretMissing(name);
    return Status::Ok();
  }

  Result<std::optional<AuditRecord>> LastAudit() override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM audit ORDER BY seq DESC LIMIT 1", kAuditColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return std::optional<AuditRecord>();
    if (rc != SQLITE_ROW) return SqliteStatus(rc, c_.db(), "reading the last audit entry");
    return std::optional<AuditRecord>(ReadAudit(st));
  }

  Status AppendAudit(const AuditRecord& e) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("AppendAudit"));
    AUTOMAN_RETURN_IF_ERROR(ValidateAudit(e));
    static const std::string kSql = fmt::format(
        "INSERT INTO audit ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", kAuditColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.Int(1, e.seq);
    st.Time(2, e.at);
    st.TextRef(3, e.actor);
    st.TextRef(4, e.action);
    st.TextRef(5, e.target);
    st.TextRef(6, e.outcome);
    st.TextRef(7, e.remote);
    st.TextRef(8, e.details_json);
    st.TextRef(9, e.hash);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return Status::Ok();
    if (CodeFor(rc) == ErrorCode::kAlreadyExists) return AuditExists(e.seq);
    return SqliteStatus(rc, c_.db(), fmt::format("appending audit entry {}", e.seq));
  }

  // The statement text depends on which filters are set (a few dozen variants, each
  // cached). An action prefix "p." is the byte range ["p.", "p/"), so the index on
  // (action, seq) serves it and no LIKE wildcard needs escaping.
  Result<std::vector<AuditRecord>> ListAudit(const AuditFilter& f) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateAuditFilter(f));
    std::string sql = fmt::format("SELECT {} FROM audit WHERE seq > ?1", kAuditColumns);
    int n = 1;
    auto cond = [&](std::string_view text) {
      sql += fmt::format(" AND {} ?{}", text, ++n);
      return n;
    };
    const int actor = f.actor ? cond("actor =") : 0;
    const bool prefix = f.action && f.action->ends_with('.');
    const int action = f.action ? cond(prefix ? "action >=" : "action =") : 0;
    const int action_end = prefix ? cond("action <") : 0;
    const int since = f.since ? cond("at >=") : 0;
    const int until = f.until ? cond("at <") : 0;
    sql += fmt::format(" ORDER BY seq LIMIT ?{}", ++n);
    const std::string end = prefix ? PrefixEnd(*f.action) : std::string();

    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(sql));
    Stmt st(raw);
    st.Int(1, f.after_seq);
    if (actor) st.TextRef(actor, *f.actor);
    if (action) st.TextRef(action, *f.action);
    if (action_end) st.TextRef(action_end, end);
    if (since) st.Time(since, *f.since);
    if (until) st.Time(until, *f.until);
    st.Int(n, f.limit);
    std::vector<AuditRecord> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) out.push_back(ReadAudit(st));
    if (rc != SQLITE_DONE) return SqliteStatus(rc, c_.db(), "listing audit entries");
    return out;
  }

 private:
  // One credential by a key; `id` names it in the kNotFound message ("" for a hash).
  Result<CredentialRecord> ReadOneCredential(const std::string& sql, std::string_view key,
                                             std::string_view id) {
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(sql));
    Stmt st(raw);
    st.TextRef(1, key);
    int rc = st.Step();
    if (rc == SQLITE_DONE) {
      if (id.empty()) return Error(ErrorCode::kNotFound, "no credential has this secret hash");
      return CredentialMissing(id);
    }
    if (rc != SQLITE_ROW) return SqliteStatus(rc, c_.db(), "reading a credential");
    return ReadCredential(st);
  }

  Status CredentialMissing(std::string_view id) const {
    return Error(ErrorCode::kNotFound, "credential {} does not exist", id);
  }

  Status OwnerMissing(const CredentialRecord& c) const {
    return Error(ErrorCode::kNotFound, "credential {}: owner {} is not a user", c.id, c.owner);
  }

  Status CredentialExists(const CredentialRecord& c, bool same_id) const {
    if (same_id) return Error(ErrorCode::kAlreadyExists, "credential {} already exists", c.id);
    return Error(ErrorCode::kAlreadyExists,
                 "credential {}: another credential has the same secret hash", c.id);
  }

  Status SecretMissing(std::string_view name) const {
    return Error(ErrorCode::kNotFound, "secret {} does not exist", name);
  }

  Status AuditExists(int64_t seq) const {
    return Error(ErrorCode::kAlreadyExists, "audit entry {} already exists", seq);
  }

  Status BumpSchedulesRevision() {
    return c_.Exec("UPDATE schedule_revision SET revision = revision + 1 WHERE id = 1")
        .WithContext("bumping the schedules revision");
  }
  Status InsertRunRow(const Run& run, const std::string& params, const std::string& outputs) {
    static const std::string kSql = fmt::format(
        "INSERT INTO runs ({}, cancel_requested, key_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
        "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
        kRunColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    BindRun(st, run, params, outputs);
    st.Int(23, run.cancel_requested ? 1 : 0);
    st.Int(24, static_cast<int64_t>(run.concurrency.size()));
    int rc = st.Step();
    if (rc == SQLITE_DONE) return Status::Ok();
    if (CodeFor(rc) == ErrorCode::kAlreadyExists) {
      return Error(ErrorCode::kAlreadyExists, "run {} already exists", run.id);
    }
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return Error(ErrorCode::kNotFound,
                   "run {}: runbook version {} is not stored (PutRunbookVersion first)", run.id,
                   run.runbook_version);
    }
    return SqliteStatus(rc, c_.db(), fmt::format("inserting run {}", run.id));
  }

  Status InsertRunKeys(const Run& run) {
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("INSERT INTO run_keys (run_id, key, lim, rate_count, rate_per_ms) "
                   "VALUES (?1, ?2, ?3, ?4, ?5)"));
    Stmt st(raw);
    for (const ConcurrencyLimit& k : run.concurrency) {
      st.TextRef(1, run.id);
      st.TextRef(2, k.key);
      st.Int(3, k.limit);
      st.Int(4, k.rate_count);
      st.Int(5, k.rate_per.count());
      int rc = st.Step();
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(),
                            fmt::format("storing concurrency key {} of run {}", k.key, run.id));
      }
      st.Reset();
    }
    return Status::Ok();
  }

  // ReadRun plus the run's concurrency keys, read only when the row says it has some.
  Result<Run> ReadFullRun(const Stmt& st) {
    AUTOMAN_ASSIGN_OR_RETURN(Run r, ReadRun(st));
    if (KeyCountOf(st) > 0) AUTOMAN_RETURN_IF_ERROR(ReadRunKeys(r));
    return r;
  }

  Status ReadRunKeys(Run& r) {
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                             c_.Prepare("SELECT key, lim, rate_count, rate_per_ms FROM run_keys "
                                        "WHERE run_id = ?1 ORDER BY key"));
    Stmt st(raw);
    st.TextRef(1, r.id);
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      r.concurrency.push_back(ConcurrencyLimit{.key = st.Str(0),
                                               .limit = st.Int32(1),
                                               .rate_count = st.Int32(2),
                                               .rate_per = milliseconds(st.Int64(3))});
    }
    if (rc != SQLITE_DONE) {
      return SqliteStatus(rc, c_.db(), fmt::format("reading the concurrency keys of run {}", r.id));
    }
    return Status::Ok();
  }

  // Runs of a query over kRunReadColumns, in the query's order.
  Result<std::vector<Run>> ReadRuns(Stmt& st, std::string_view what) {
    std::vector<Run> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      AUTOMAN_ASSIGN_OR_RETURN(Run r, ReadFullRun(st));
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return SqliteStatus(rc, c_.db(), what);
    return out;
  }

  // The runbooks that have terminal runs: one index seek each (a skip scan of
  // runs_retention), not a pass over their runs.
  Result<std::vector<std::string>> RetainedRunbooks() {
    static const std::string kSql = fmt::format(
        "SELECT runbook_id FROM runs INDEXED BY runs_retention WHERE runbook_id > ?1 "
        "AND finished_at IS NOT NULL AND status IN ({}) ORDER BY runbook_id LIMIT 1",
        TerminalStatuses());
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    std::vector<std::string> out;
    std::string last;  // runbook ids are never empty
    while (true) {
      st.TextRef(1, last);
      int rc = st.Step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return SqliteStatus(rc, c_.db(), "listing runbooks with finished runs");
      last = st.Str(0);
      out.push_back(last);
      st.Reset();
    }
    return out;
  }

  // (finished_at, rowid) of the newest terminal run of `runbook` that is not among its
  // newest `keep`, if there is one.
  Result<std::optional<std::pair<int64_t, int64_t>>> NewestPastCount(std::string_view runbook,
                                                                     int keep) {
    static const std::string kSql = fmt::format(
        "SELECT finished_at, rowid FROM runs INDEXED BY runs_retention WHERE runbook_id = ?1 "
        "AND finished_at IS NOT NULL AND status IN ({}) "
        "ORDER BY finished_at DESC, rowid DESC LIMIT 1 OFFSET ?2",
        TerminalStatuses());
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, runbook);
    st.Int(2, keep);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return std::optional<std::pair<int64_t, int64_t>>();
    if (rc != SQLITE_ROW) {
      return SqliteStatus(rc, c_.db(), fmt::format("counting the runs of runbook {}", runbook));
    }
    return std::optional<std::pair<int64_t, int64_t>>(std::pair{st.Int64(0), st.Int64(1)});
  }

  Status CheckLimit(std::string_view what, int limit, int max) const {
    if (limit < 1 || limit > max) {
      return Error(ErrorCode::kInvalidArgument, "{} limit {} is out of range 1..{}", what, limit,
                   max);
    }
    return Status::Ok();
  }

  // Children first: their foreign keys reference the run.
  Status DeleteRunRows(std::span<const std::string> ids) {
    static constexpr std::string_view kDeletes[] = {
        "DELETE FROM log_lines WHERE run_id = ?1", "DELETE FROM step_runs WHERE run_id = ?1",
        "DELETE FROM attempts WHERE run_id = ?1",  "DELETE FROM run_keys WHERE run_id = ?1",
        "DELETE FROM runs WHERE id = ?1",
    };
    for (std::string_view sql : kDeletes) {
      AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(sql));
      Stmt st(raw);
      for (const std::string& id : ids) {
        st.TextRef(1, id);
        int rc = st.Step();
        if (rc != SQLITE_DONE) {
          return SqliteStatus(rc, c_.db(), fmt::format("deleting run {}", id));
        }
        st.Reset();
      }
    }
    return Status::Ok();
  }

  Status RequireWrite(std::string_view op) const {
    if (mode_ == Store::TxMode::kWrite) return Status::Ok();
    return Error(ErrorCode::kFailedPrecondition,
                 "{} called in a read transaction; use Store::TxMode::kWrite", op);
  }

  Status RunMissing(std::string_view run_id) const {
    return Error(ErrorCode::kNotFound, "run {} does not exist", run_id);
  }

  Status ScheduleMissing(std::string_view id) const {
    return Error(ErrorCode::kNotFound, "schedule {} does not exist", id);
  }

  Status GenerationMismatch(std::string_view id, int64_t expected, int64_t current) const {
    return Error(ErrorCode::kAborted,
                 "schedule {}: cursor not moved, generation {} is stale (the schedule is at "
                 "generation {}: its definition changed)",
                 id, expected, current);
  }

  Status FireExists(const FireRecord& f) const {
    return Error(ErrorCode::kAlreadyExists,
                 "schedule {}: the occurrence at {} is already in the fire ledger", f.schedule_id,
                 FormatRfc3339(f.nominal));
  }

  Result<int64_t> CurrentFence(std::string_view run_id) {
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                             c_.Prepare("SELECT fence FROM runs WHERE id = ?1"));
    Stmt st(raw);
    st.TextRef(1, run_id);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return RunMissing(run_id);
    if (rc != SQLITE_ROW) {
      return SqliteStatus(rc, c_.db(), fmt::format("reading the fence of run {}", run_id));
    }
    return st.Int64(0);
  }

  // kNotFound when the run is missing, else kAborted naming both fences.
  // Writes every column of `run` (its fence included) where the stored fence is
  // `expected_fence`: UpdateRun (expected == run.fence) and claims/rescues (the fence moves
  // on) share one statement.
  Status WriteRun(const Run& run, int64_t expected_fence, std::string_view op) {
    AUTOMAN_RETURN_IF_ERROR(ValidateRun(run));
    const std::string params = EncodeRunParams(run.params);
    const std::string outputs = EncodeRunOutputs(run.outputs);
    constexpr std::string_view kSql =
        "UPDATE runs SET runbook_id = ?2, runbook_version = ?3, status = ?4, \"trigger\" = ?5, "
        "triggered_by = ?6, params_json = ?7, priority = ?8, attempt = ?9, max_attempts = ?10, "
        "created_at = ?11, not_before = ?12, started_at = ?13, finished_at = ?14, "
        "deadline_at = ?15, outputs_json = ?16, retry_of = ?17, idempotency_key = ?18, "
        "error = ?19, lease_owner = ?20, lease_expires_at = ?21, fence = ?22 "
        "WHERE id = ?1 AND fence = ?23";
    {
      AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
      Stmt st(raw);
      BindRun(st, run, params, outputs);
      st.Int(23, expected_fence);
      int rc = st.Step();
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return Error(ErrorCode::kNotFound,
                     "run {}: runbook version {} is not stored (PutRunbookVersion first)", run.id,
                     run.runbook_version);
      }
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(), fmt::format("{} of run {}", op, run.id));
      }
      if (sqlite3_changes(c_.db()) == 1) return Status::Ok();
    }
    return FenceMismatch(run.id, expected_fence, op);
  }

  Status FenceMismatch(std::string_view run_id, int64_t fence, std::string_view op) {
    AUTOMAN_ASSIGN_OR_RETURN(int64_t current, CurrentFence(run_id));
    return Error(ErrorCode::kAborted,
                 "run {}: {} refused, fencing token {} is stale (the run's fence is {}; "
                 "another worker claimed it)",
                 run_id, op, fence, current);
  }

  Status InsertLogLines(std::span<const LogLine> lines) {
    AUTOMAN_ASSIGN_OR_RETURN(
        sqlite3_stmt * raw,
        c_.Prepare("INSERT INTO log_lines (run_id, attempt, seq, step_id, stream, ts, text, "
                   "partial) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    Stmt st(raw);
    for (const LogLine& l : lines) {
      st.TextRef(1, l.run_id);
      st.Int(2, l.attempt);
      st.Int(3, l.seq);
      st.TextRef(4, l.step_id);
      st.TextRef(5, ToString(l.stream));
      st.Time(6, l.ts);
      st.TextRef(7, l.text);
      st.Int(8, l.partial ? 1 : 0);
      int rc = st.Step();
      if (rc != SQLITE_DONE) {
        if (CodeFor(rc) == ErrorCode::kAlreadyExists) {
          return Error(ErrorCode::kAlreadyExists,
                       "log line (run {}, attempt {}, seq {}) already exists", l.run_id, l.attempt,
                       l.seq);
        }
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return RunMissing(l.run_id);
        return SqliteStatus(rc, c_.db(), fmt::format("appending log lines of run {}", l.run_id));
      }
      st.Reset();
    }
    return Status::Ok();
  }

  Connection& c_;
  Store::TxMode mode_;
};

// ---------------------------------------------------------------------------------------
// Group commit

// One caller's write transaction, from Transact until its batch committed (see
// Impl::Write). Lives on the caller's stack; the leader's thread runs `fn`.
struct WriteMember {
  const std::function<Status(StoreTx&)>* fn = nullptr;
  bool progress = false;              // TxMode::kWriteProgress
  steady_clock::time_point deadline;  // for being taken into a batch and for the lock
  bool taken = false;                 // in a leader's batch; guarded by Impl::write_mu
  bool done = false;                  // `result` is final; guarded by Impl::write_mu
  Status result;                      // written by the leader before `done`
  std::exception_ptr exception;       // thrown by `fn`; rethrown on the caller's thread
  // The caller waits here, so that a leader wakes exactly the callers it is done with, or
  // the one that leads next (not every waiting thread after every batch).
  std::condition_variable cv;
};

// ---------------------------------------------------------------------------------------
// Wake-ups (Store::NotifyQueue / ListenQueue)

// Listeners of a ":memory:" store: in-process only. Shared by the store and its listeners,
// so either may go first.
class MemoryListener;
struct MemoryWakeups {
  std::mutex mu;
  std::vector<MemoryListener*> listeners;  // guarded by mu
};

class MemoryListener final : public QueueListener {
 public:
  explicit MemoryListener(std::shared_ptr<MemoryWakeups> hub) : hub_(std::move(hub)) {
    std::lock_guard<std::mutex> lock(hub_->mu);
    hub_->listeners.push_back(this);
  }
  ~MemoryListener() override {
    std::lock_guard<std::mutex> lock(hub_->mu);
    std::erase(hub_->listeners, this);
  }

  bool Wait(milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    const bool woken =
        cv_.wait_for(lock, std::max(timeout, milliseconds(0)), [&] { return pending_; });
    pending_ = false;
    return woken;
  }
  void Wake() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::shared_ptr<MemoryWakeups> hub_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;  // guarded by mu_
};

// A file store's listeners are AF_UNIX datagram sockets bound in `<database>.wake/`, one per
// listener, named "<pid>-<counter>", so any process can wake any other without a server.
// A socket path longer than sun_path is addressed through the directory's descriptor as
// "/proc/self/fd/N/<name>".
std::string WakeDirOf(const std::string& db_path) { return db_path + ".wake"; }

// The address of socket `name` in `dir`; `dirfd` (an O_PATH descriptor of `dir`, or -1) is
// used when the plain path does not fit. False when neither fits.
bool WakeAddress(const std::string& dir, int dirfd, std::string_view name, sockaddr_un* addr,
                 socklen_t* len) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  std::string path = fmt::format("{}/{}", dir, name);
  if (path.size() >= sizeof(addr->sun_path)) {
    if (dirfd < 0) return false;
    path = fmt::format("/proc/self/fd/{}/{}", dirfd, name);
    if (path.size() >= sizeof(addr->sun_path)) return false;
  }
  std::memcpy(addr->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

class SocketListener final : public QueueListener {
 public:
  static Result<std::unique_ptr<QueueListener>> Create(const std::string& dir) {
    static std::atomic<uint64_t> counter{0};
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, fmt::format("creating the wake-up directory \"{}\"", dir));
    }
    auto l = std::unique_ptr<SocketListener>(new SocketListener());
    l->wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake_ < 0) return ErrnoStatus(errno, "creating a queue listener's eventfd");
    l->sock_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->sock_ < 0) return ErrnoStatus(errno, "creating a queue listener's socket");
    const int dirfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return ErrnoStatus(errno, fmt::format("opening \"{}\"", dir));
    Status bound = Error(ErrorCode::kInternal, "no free socket name in \"{}\"", dir);
    // A name can be taken by the socket file of a dead process that had the same pid;
    // NotifyQueue removes those, and the next counter value is free.
    for (int tries = 0; tries < 100; ++tries) {
      const std::string name = fmt::format("{}-{}", getpid(), counter.fetch_add(1));
      sockaddr_un addr;
      socklen_t len;
      if (!WakeAddress(dir, dirfd, name, &addr, &len)) {
        bound = Error(ErrorCode::kFailedPrecondition,
                      "the wake-up socket path \"{}/{}\" is too long for AF_UNIX", dir, name);
        break;
      }
      if (bind(l->sock_, reinterpret_cast<const sockaddr*>(&addr), len) == 0) {
        l->path_ = fmt::format("{}/{}", dir, name);
        bound = Status::Ok();
        break;
      }
      if (errno != EADDRINUSE) {
        bound = ErrnoStatus(errno, fmt::format("binding a queue listener's socket in \"{}\"", dir));
        break;
      }
    }
    ::close(dirfd);
    AUTOMAN_RETURN_IF_ERROR(bound);
    return std::unique_ptr<QueueListener>(std::move(l));
  }

  ~SocketListener() override {
    if (sock_ >= 0) ::close(sock_);
    if (wake_ >= 0) ::close(wake_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  bool Wait(milliseconds timeout) override {
    const auto deadline = steady_clock::now() + std::max(timeout, milliseconds(0));
    while (true) {
      pollfd fds[2] = {{.fd = sock_, .events = POLLIN, .revents = 0},
                       {.fd = wake_, .events = POLLIN, .revents = 0}};
      const auto left = std::chrono::ceil<milliseconds>(deadline - steady_clock::now());
      const int n = poll(fds, 2, static_cast<int>(std::clamp<int64_t>(left.count(), 0, INT_MAX)));
      if (n > 0) break;
      if (n == 0) return false;
      if (errno != EINTR) return false;  // cannot happen with valid descriptors
    }
    Drain();
    return true;
  }

  void Wake() override {
    const uint64_t one = 1;
    // Only fails when the counter is about to overflow, i.e. a wake-up is pending anyway.
    (void)!::write(wake_, &one, sizeof(one));
  }

 private:
  SocketListener() = default;

  // Consumes every pending notification, so they count as one.
  void Drain() {
    char buf[16];
    while (recv(sock_, buf, sizeof(buf), MSG_DONTWAIT) >= 0) {
    }
    uint64_t count;
    (void)!::read(wake_, &count, sizeof(count));
  }

  int sock_ = -1;
  int wake_ = -1;
  std::string path_;
};

// Sends a file store's wake-ups. The socket names read from the directory are reused until
// its mtime changes (a listener came or went), kWakeRelist has passed (mtime granularity
// can hide a change) or a send failed; so a call costs a stat and one non-blocking send
// per listener, not a readdir.
constexpr milliseconds kWakeRelist{100};

class WakeSender {
 public:
  WakeSender() = default;
  ~WakeSender() {
    if (sock_ >= 0) ::close(sock_);
    if (dirfd_ >= 0) ::close(dirfd_);
  }
  WakeSender(const WakeSender&) = delete;
  WakeSender& operator=(const WakeSender&) = delete;

  Status Notify(const std::string& dir) {
    std::lock_guard<std::mutex> lock(mu_);
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) {
      if (errno == ENOENT) return Status::Ok();  // nobody ever listened
      return ErrnoStatus(errno, fmt::format("notifying the queue listeners in \"{}\"", dir));
    }
    const auto now = steady_clock::now();
    if (!listed_ || now - listed_at_ >= kWakeRelist || st.st_mtim.tv_sec != mtime_.tv_sec ||
        st.st_mtim.tv_nsec != mtime_.tv_nsec) {
      AUTOMAN_RETURN_IF_ERROR(List(dir));
      listed_at_ = now;
      mtime_ = st.st_mtim;
      listed_ = true;
    }
    if (names_.empty()) return Status::Ok();
    if (sock_ < 0) {
      sock_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (sock_ < 0) return ErrnoStatus(errno, "creating the queue notification socket");
    }
    const char byte = 1;
    for (const std::string& name : names_) {
      sockaddr_un addr;
      socklen_t len;
      if (!WakeAddress(dir, dirfd_, name, &addr, &len)) continue;
      if (sendto(sock_, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&addr), len) == 1) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) continue;  // a wake-up is pending there
      // ECONNREFUSED: nobody is bound to it (its process died without cleaning up).
      if (errno == ECONNREFUSED) ::unlink(fmt::format("{}/{}", dir, name).c_str());
      listed_ = false;  // list again next time
    }
    return Status::Ok();
  }

 private:
  // Reads the socket names (only sockets: nothing else in the directory is ours to remove).
  Status List(const std::string& dir) {
    names_.clear();
    if (dirfd_ >= 0) ::close(dirfd_);  // the directory may have been recreated
    dirfd_ = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) {
      return ErrnoStatus(errno, fmt::format("listing the queue listeners in \"{}\"", dir));
    }
    while (dirent* e = readdir(d)) {
      bool is_socket = e->d_type == DT_SOCK;
      if (e->d_type == DT_UNKNOWN) {
        struct stat st;
        is_socket =
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode);
      }
      if (is_socket) names_.emplace_back(e->d_name);
    }
    closedir(d);
    return Status::Ok();
  }

  std::mutex mu_;  // guards everything below
  int sock_ = -1;
  int dirfd_ = -1;
  std::vector<std::string> names_;
  bool listed_ = false;
  steady_clock::time_point listed_at_{};
  timespec mtime_{};
};

// ---------------------------------------------------------------------------------------
// Leadership (Store::TryLead)

// A file store's leaderships: an flock on "<database>.<name>.lock". flock locks belong to
// the open file description, so each TryLead opens the file anew: two TryLead calls of one
// process exclude each other as two processes do, and the kernel releases the lock when
// the descriptor is closed or its process dies.
class FileLeadership final : public Leadership {
 public:
  explicit FileLeadership(int fd) : fd_(fd) {}
  ~FileLeadership() override { ::close(fd_); }
  FileLeadership(const FileLeadership&) = delete;
  FileLeadership& operator=(const FileLeadership&) = delete;
  bool Held() override { return true; }  // nothing takes an flock away from its holder

 private:
  int fd_;
};

std::string LeadLockPath(const std::string& db_path, std::string_view name) {
  return fmt::format("{}.{}.lock", db_path, name);
}

Result<std::unique_ptr<Leadership>> TryFileLead(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(errno, fmt::format("opening the lock file \"{}\"", path));
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return std::unique_ptr<Leadership>();
    return ErrnoStatus(err, fmt::format("locking \"{}\"", path));
  }
  return std::unique_ptr<Leadership>(new FileLeadership(fd));
}

// A ":memory:" store's leaderships: process-local, the names held in a set shared by the
// store and its Leadership objects (so either may go first).
struct MemoryLeads {
  std::mutex mu;
  std::set<std::string, std::less<>> held;  // guarded by mu
};

class MemoryLeadership final : public Leadership {
 public:
  MemoryLeadership(std::shared_ptr<MemoryLeads> leads, std::string name)
      : leads_(std::move(leads)), name_(std::move(name)) {}
  ~MemoryLeadership() override {
    std::lock_guard<std::mutex> lock(leads_->mu);
    leads_->held.erase(name_);
  }
  bool Held() override { return true; }

 private:
  std::shared_ptr<MemoryLeads> leads_;
  std::string name_;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// The store

struct SqliteStore::Impl {
  std::string path;  // absolute, or ":memory:"
  bool memory = false;
  StoreOptions options;
  int schema_version = 0;
  // Set up by Open once the path is known; an in-memory database has exactly one
  // connection (the database lives in it).
  std::optional<store_detail::ConnectionPool<Connection>> pool;

  // Group commit (see Transact): callers' write transactions wait in `write_queue`; the
  // one leader at a time takes a batch of them into one SQLite transaction.
  std::mutex write_mu;
  std::deque<WriteMember*> write_queue;  // guarded by write_mu
  bool leading = false;                  // a leader is running batches; guarded by write_mu

  // Wake-ups (NotifyQueue, ListenQueue): the in-process hub of a ":memory:" store, or the
  // sender of a file store.
  std::shared_ptr<MemoryWakeups> memory_wakeups = std::make_shared<MemoryWakeups>();
  WakeSender wake_sender;

  // TryLead of a ":memory:" store.
  std::shared_ptr<MemoryLeads> memory_leads = std::make_shared<MemoryLeads>();

  Status Write(TxMode mode, const std::function<Status(StoreTx&)>& fn);
  void RunBatch(const std::vector<WriteMember*>& batch);

  std::string Describe() const { return memory ? "sqlite::memory:" : "sqlite:" + path; }

  Result<std::unique_ptr<Connection>> Acquire(steady_clock::time_point deadline) {
    return pool->Acquire(deadline);
  }

  void Release(std::unique_ptr<Connection> c) {
    c->Rollback();
    // One that could not end its transaction is not handed out again, except an in-memory
    // database's only connection.
    const bool keep = !c->InTransaction() || memory;
    pool->Release(std::move(c), keep);
  }
};

namespace {

template <typename Impl>
using Lease = store_detail::PooledConnection<Impl, Connection>;

// The error for a file SQLite cannot read as a database.
Status NotADatabase(std::string_view describe, const Status& cause) {
  return Error(ErrorCode::kDataLoss,
               "{} is not an SQLite database or is corrupt ({}); move it away or restore it "
               "from a backup",
               describe, cause.message());
}

// Reads the identity and version of the database in one snapshot, refuses files that are
// not ours or are newer than this binary, switches to WAL and applies missing migrations.
Status PrepareSchema(Connection& c, const std::string& describe, bool memory,
                     milliseconds busy_timeout, int* schema_version) {
  const int latest = LatestSqliteSchemaVersion();
  auto newer = [&](int64_t v) {
    return Error(ErrorCode::kFailedPrecondition,
                 "database schema version {} is newer than this automan (knows up to {}); "
                 "upgrade automan ({})",
                 v, latest, describe);
  };
  int64_t app_id = 0, version = 0, objects = 0;
  {
    Status s = c.Exec("BEGIN");
    if (s.ok()) {
      auto a = c.QueryInt("PRAGMA application_id");
      auto v = a.ok() ? c.QueryInt("PRAGMA user_version") : Result<int64_t>(a.status());
      auto n =
          v.ok() ? c.QueryInt("SELECT count(*) FROM sqlite_schema") : Result<int64_t>(v.status());
      s = n.status();
      if (s.ok()) {
        app_id = *a;
        version = *v;
        objects = *n;
      }
    }
    c.Rollback();
    if (s.code() == ErrorCode::kDataLoss) return NotADatabase(describe, s);
    AUTOMAN_RETURN_IF_ERROR(s.WithContext(fmt::format("reading the schema of {}", describe)));
  }
  if (app_id != 0 && app_id != kSqliteApplicationId) {
    return Error(ErrorCode::kFailedPrecondition,
                 "{} belongs to another application (SQLite application_id {:#x}), not to "
                 "automan",
                 describe, app_id);
  }
  if (app_id == 0 && (version != 0 || objects != 0)) {
    return Error(ErrorCode::kFailedPrecondition,
                 "{} is an SQLite database of another application (it has tables but no "
                 "automan schema); refusing to modify it",
                 describe);
  }
  if (version > latest) return newer(version);

  if (!memory) {
    // Switching a new file to WAL needs an exclusive lock, and SQLite answers BUSY at once,
    // without its busy handler, when another connection is opening the same new file: retry
    // until the busy timeout.
    const auto deadline = steady_clock::now() + busy_timeout;
    Result<std::string> wal = c.QueryText("PRAGMA journal_mode = WAL");
    while (!wal.ok() && wal.status().code() == ErrorCode::kUnavailable &&
           steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      wal = c.QueryText("PRAGMA journal_mode = WAL");
    }
    AUTOMAN_ASSIGN_OR_RETURN(std::string mode, std::move(wal));
    if (mode != "wal") {
      return Error(ErrorCode::kFailedPrecondition,
                   "cannot put {} in WAL mode (journal mode stays \"{}\"); is it on a network "
                   "file system?",
                   describe, mode);
    }
  }

  for (const SqliteMigration& m : SqliteMigrations()) {
    if (m.version <= version) continue;
    Status s = c.Exec("BEGIN IMMEDIATE");
    if (!s.ok()) return s.WithContext(fmt::format("migrating {}", describe));
    // Another process may have migrated since the snapshot above.
    auto current = c.QueryInt("PRAGMA user_version");
    if (!current.ok()) {
      c.Rollback();
      return current.status().WithContext(fmt::format("migrating {}", describe));
    }
    if (*current > latest) {
      c.Rollback();
      return newer(*current);
    }
    if (*current < m.version) {
      s = c.ExecScript(
          m.sql, fmt::format("applying migration {} ({}) to {}", m.version, m.name, describe));
      if (s.ok()) {
        s = c.ExecScript(fmt::format("PRAGMA user_version = {}", m.version),
                         "recording the schema version");
      }
      if (!s.ok()) {
        c.Rollback();
        return s;
      }
    }
    s = c.Exec("COMMIT");
    if (!s.ok()) {
      c.Rollback();
      return s.WithContext(fmt::format("committing migration {} to {}", m.version, describe));
    }
    version = std::max<int64_t>(*current, m.version);
  }
  *schema_version = static_cast<int>(std::max<int64_t>(version, latest));
  return Status::Ok();
}

}  // namespace

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(std::string_view path,
                                                       const StoreOptions& options) {
  if (options.busy_timeout.count() < 0) {
    return Error(ErrorCode::kInvalidArgument, "busy timeout {} ms is negative",
                 options.busy_timeout.count());
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (path == kMemoryPath) {
    impl->memory = true;
    impl->path = std::string(kMemoryPath);
  } else {
    if (path.empty()) {
      return Error(ErrorCode::kInvalidArgument, "empty SQLite database path; use sqlite:PATH");
    }
    std::error_code ec;
    fs::path abs = fs::absolute(fs::path(path), ec);
    if (ec) {
      return Error(ErrorCode::kFailedPrecondition, "resolving \"{}\": {}", path, ec.message());
    }
    impl->path = abs.lexically_normal().string();
    AUTOMAN_RETURN_IF_ERROR(EnsureDirectory(fs::path(impl->path).parent_path()));
    AUTOMAN_RETURN_IF_ERROR(EnsureDatabaseFile(impl->path));
  }
  const std::string describe = impl->Describe();
  auto conn = OpenConnection(impl->path, options);
  if (conn.status().code() == ErrorCode::kDataLoss) return NotADatabase(describe, conn.status());
  if (!conn.ok()) return conn.status().WithContext(fmt::format("opening {}", describe));
  AUTOMAN_RETURN_IF_ERROR(
      PrepareSchema(**conn, describe, impl->memory, options.busy_timeout, &impl->schema_version));
  impl->pool.emplace(
      impl->memory ? 1 : kMaxConnections,
      [file = impl->path, options, describe]() -> Result<std::unique_ptr<Connection>> {
        auto c = OpenConnection(file, options);
        if (!c.ok()) {
          return c.status().WithContext(fmt::format("opening a connection to {}", describe));
        }
        return std::move(c).value();
      },
      describe, options.busy_timeout);
  impl->pool->Adopt(std::move(conn).value());
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

Status SqliteStore::Transact(TxMode mode, const std::function<Status(StoreTx&)>& fn) {
  if (mode != TxMode::kRead) return impl_->Write(mode, fn);
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> borrowed,
                           impl_->Acquire(steady_clock::now() + impl_->options.busy_timeout));
  Lease<Impl> c(*impl_, std::move(borrowed));
  AUTOMAN_RETURN_IF_ERROR(c->Exec("BEGIN").WithContext("starting a transaction"));
  SqliteTx tx(*c, TxMode::kRead);
  Status result = fn(tx);
  if (!result.ok()) {
    c->Rollback();
    return result;
  }
  // Ends the read snapshot; a read-only transaction has nothing to make durable.
  Status commit = c->Exec("COMMIT");
  if (!commit.ok()) {
    c->Rollback();
    return commit.WithContext("committing");
  }
  return Status::Ok();
}

// Group commit, leader/follower. Every caller queues its member; whoever finds no leader
// becomes one and runs batches (the oldest kMaxGroupCommit members, its own eventually
// among them) until its own member is done, then wakes the first queued caller to lead
// next. A batch is one BEGIN IMMEDIATE … COMMIT, each member's callback inside its own
// savepoint, so concurrent writers of one Store share one fsync. Each caller waits on its
// own cv; a member still queued at its deadline leaves with kUnavailable, a member taken
// into a batch waits for the batch's outcome.
Status SqliteStore::Impl::Write(TxMode mode, const std::function<Status(StoreTx&)>& fn) {
  WriteMember me;
  me.fn = &fn;
  me.progress = mode == TxMode::kWriteProgress;
  me.deadline = steady_clock::now() + options.busy_timeout;
  std::unique_lock<std::mutex> lock(write_mu);
  write_queue.push_back(&me);
  while (!me.done) {
    if (!leading && !me.taken) {
      leading = true;
      while (!me.done) {
        std::vector<WriteMember*> batch;
        while (!write_queue.empty() && batch.size() < kMaxGroupCommit) {
          batch.push_back(write_queue.front());
          write_queue.pop_front();
          batch.back()->taken = true;
        }
        lock.unlock();
        try {
          RunBatch(batch);
        } catch (...) {
          // Not a callback's (those are caught per member): the batch's own bookkeeping
          // failed (out of memory). The connection rolled back on its way back to the pool.
          for (WriteMember* m : batch) {
            m->result = Error(ErrorCode::kInternal,
                              "group commit failed with an exception; nothing was committed");
          }
        }
        lock.lock();
        for (WriteMember* m : batch) {
          m->done = true;
          if (m != &me) m->cv.notify_one();
        }
      }
      leading = false;
      if (!write_queue.empty()) write_queue.front()->cv.notify_one();  // it leads next
      break;
    }
    if (me.taken) {
      me.cv.wait(lock);
    } else if (steady_clock::now() >= me.deadline) {
      std::erase(write_queue, &me);
      return Error(ErrorCode::kUnavailable,
                   "store {} is busy: another write transaction of this process held it for "
                   "longer than the busy timeout ({} ms)",
                   Describe(), options.busy_timeout.count());
    } else {
      me.cv.wait_until(lock, me.deadline);
    }
  }
  lock.unlock();
  if (me.exception) std::rethrow_exception(me.exception);
  return me.result;
}

// Runs one batch on the leader's thread and sets every member's result (not `done`).
void SqliteStore::Impl::RunBatch(const std::vector<WriteMember*>& batch) {
  auto fail_all = [&](const std::vector<WriteMember*>& members, const Status& s) {
    for (WriteMember* m : members) m->result = s;
  };
  steady_clock::time_point latest = batch.front()->deadline;
  for (WriteMember* m : batch) latest = std::max(latest, m->deadline);
  auto borrowed = Acquire(latest);
  if (!borrowed.ok()) return fail_all(batch, borrowed.status());
  Lease<Impl> c(*this, std::move(borrowed).value());

  // A batch of progress commits only skips the WAL fsync (the level cannot change inside a
  // transaction); the connection goes back to FULL afterwards, so the next durable commit
  // fsyncs the WAL with this batch's frames in it. One durable member makes all durable.
  const bool relaxed =
      options.durability == Durability::kFull &&
      std::all_of(batch.begin(), batch.end(), [](const WriteMember* m) { return m->progress; });
  struct SyncLevel {
    Connection* c = nullptr;
    ~SyncLevel() {
      if (c != nullptr) (void)c->Exec("PRAGMA synchronous = FULL");
    }
  } restore;
  if (relaxed) {
    Status s = c->Exec("PRAGMA synchronous = NORMAL");
    if (!s.ok()) return fail_all(batch, s);
    restore.c = &*c;
  }

  // Takes SQLite's write lock (other processes' writers) within the members' deadlines:
  // members whose deadline passes while waiting leave with kUnavailable, the rest go on.
  const milliseconds timeout = options.busy_timeout;
  std::vector<WriteMember*> live = batch;
  while (true) {
    steady_clock::time_point earliest = live.front()->deadline;
    for (WriteMember* m : live) earliest = std::min(earliest, m->deadline);
    const auto left = std::chrono::duration_cast<milliseconds>(earliest - steady_clock::now());
    sqlite3_busy_timeout(c->db(), BusyMillis(left));
    Status begin = c->Exec("BEGIN IMMEDIATE");
    sqlite3_busy_timeout(c->db(), BusyMillis(timeout));
    if (begin.ok()) break;
    if (begin.code() != ErrorCode::kUnavailable) {
      return fail_all(live, begin.WithContext("starting a transaction"));
    }
    const Status locked =
        Error(ErrorCode::kUnavailable,
              "store {} is locked by another writer (another process or Store) for longer "
              "than the busy timeout ({} ms): {}",
              Describe(), timeout.count(), begin.message());
    const auto now = steady_clock::now();
    std::vector<WriteMember*> waiting;
    for (WriteMember* m : live) {
      if (m->deadline <= now) {
        m->result = locked;
      } else {
        waiting.push_back(m);
      }
    }
    // SQLite may answer BUSY before the timeout (without its busy handler): no retry then.
    if (waiting.size() == live.size()) return fail_all(live, locked);
    if (waiting.empty()) return;
    live = std::move(waiting);
  }

  // Each member in its own savepoint: a member's error undoes only that member.
  for (size_t i = 0; i < live.size(); ++i) {
    WriteMember* m = live[i];
    Status s = c->Exec("SAVEPOINT group_commit_member");
    if (s.ok()) {
      SqliteTx tx(*c, TxMode::kWrite);
      try {
        s = (*m->fn)(tx);
      } catch (...) {
        m->exception = std::current_exception();
        s = Error(ErrorCode::kInternal, "the transaction callback threw an exception");
      }
      if (s.ok() && c->InTransaction()) {
        s = c->Exec("RELEASE group_commit_member").WithContext("ending the write's savepoint");
      }
      if (!s.ok() && c->InTransaction()) {
        (void)c->Exec("ROLLBACK TO group_commit_member");
        (void)c->Exec("RELEASE group_commit_member");
      }
    }
    if (!c->InTransaction()) {
      // SQLite rolled the whole transaction back (an I/O error, a full disk, a
      // RAISE(ROLLBACK)...): the members before this one lost their work too, and the
      // ones after it are not run.
      m->result = s.ok() ? Error(ErrorCode::kAborted,
                                 "the database rolled the transaction back after an earlier "
                                 "error ({}); nothing was committed",
                                 sqlite3_errmsg(c->db()))
                         : s;
      const std::string& cause = m->result.message();
      for (size_t j = 0; j < i; ++j) {
        if (!live[j]->result.ok()) continue;
        live[j]->result = Error(ErrorCode::kAborted,
                                "the database rolled back the transaction this write shared "
                                "with other writes (group commit) after an error in one of "
                                "them ({}); nothing was committed, retry",
                                cause);
      }
      for (size_t j = i + 1; j < live.size(); ++j) {
        live[j]->result = Error(ErrorCode::kAborted,
                                "not run: the database rolled back the transaction this write "
                                "was to share with other writes (group commit) after an error "
                                "in one of them ({}); retry",
                                cause);
      }
      return;
    }
    m->result = s;
  }

  Status commit = c->Exec("COMMIT");
  if (!commit.ok()) {
    c->Rollback();
    commit = commit.WithContext("committing");
    for (WriteMember* m : live) {
      if (m->result.ok()) m->result = commit;
    }
  }
}

std::string SqliteStore::Describe() const { return impl_->Describe(); }

// An in-memory database has one connection, so a read waits for any transaction in hand.
bool SqliteStore::ReadsAreLocal() const { return !impl_->memory; }

int SqliteStore::SchemaVersion() const { return impl_->schema_version; }

Result<std::string> SqliteStore::Pragma(std::string_view name) {
  if (name.empty() || !std::all_of(name.begin(), name.end(),
                                   [](char ch) { return (ch >= 'a' && ch <= 'z') || ch == '_'; })) {
    return Error(ErrorCode::kInvalidArgument, "\"{}\" is not a pragma name", name);
  }
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> borrowed,
                           impl_->Acquire(steady_clock::now() + impl_->options.busy_timeout));
  Lease<Impl> c(*impl_, std::move(borrowed));
  return c->QueryText(fmt::format("PRAGMA {}", name));
}

Status SqliteStore::CheckIntegrity() {
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> borrowed,
                           impl_->Acquire(steady_clock::now() + impl_->options.busy_timeout));
  Lease<Impl> c(*impl_, std::move(borrowed));
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(c->db(), "PRAGMA integrity_check(20)", -1, &raw, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return SqliteStatus(rc, c->db(), "checking integrity");
  }
  std::vector<std::string> problems;
  {
    Stmt st(raw);
    while ((rc = st.Step()) == SQLITE_ROW) {
      std::string row = st.Str(0);
      if (row != "ok") problems.push_back(std::move(row));
    }
  }
  sqlite3_finalize(raw);
  if (rc != SQLITE_DONE) return SqliteStatus(rc, c->db(), "checking integrity");
  if (!problems.empty()) {
    return Error(ErrorCode::kDataLoss, "{} failed its integrity check: {}", impl_->Describe(),
                 fmt::join(problems, "; "));
  }
  return Status::Ok();
}

size_t SqliteStore::QueuedWrites() {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  return impl_->write_queue.size();
}

Status SqliteStore::NotifyQueue() {
  if (impl_->memory) {
    std::lock_guard<std::mutex> lock(impl_->memory_wakeups->mu);
    for (MemoryListener* l : impl_->memory_wakeups->listeners) l->Wake();
    return Status::Ok();
  }
  return impl_->wake_sender.Notify(WakeDirOf(impl_->path));
}

Result<std::unique_ptr<QueueListener>> SqliteStore::ListenQueue() {
  if (impl_->memory) {
    return std::unique_ptr<QueueListener>(new MemoryListener(impl_->memory_wakeups));
  }
  return SocketListener::Create(WakeDirOf(impl_->path));
}

Result<std::unique_ptr<Leadership>> SqliteStore::TryLead(std::string_view name) {
  AUTOMAN_RETURN_IF_ERROR(ValidateLeadershipName(name));
  if (impl_->memory) {
    std::lock_guard<std::mutex> lock(impl_->memory_leads->mu);
    if (!impl_->memory_leads->held.emplace(name).second) return std::unique_ptr<Leadership>();
    return std::unique_ptr<Leadership>(
        new MemoryLeadership(impl_->memory_leads, std::string(name)));
  }
  return TryFileLead(LeadLockPath(impl_->path, name));
}

}  // namespace automan
