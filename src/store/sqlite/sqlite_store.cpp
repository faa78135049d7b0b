#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
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
  AUTOMAN_RETURN_IF_ERROR(
      conn->ExecScript(fmt::format("PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; "
                                   "PRAGMA journal_size_limit = 67108864;",
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
  return r;
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
    const std::string params = EncodeRunParams(run.params);
    const std::string outputs = EncodeRunOutputs(run.outputs);
    static const std::string kSql = fmt::format(
        "INSERT INTO runs ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
        "?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
        kRunColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    BindRun(st, run, params, outputs);
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

  Result<Run> GetRun(std::string_view id) override {
    static const std::string kSql = fmt::format("SELECT {} FROM runs WHERE id = ?1", kRunColumns);
    AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
    Stmt st(raw);
    st.TextRef(1, id);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return Error(ErrorCode::kNotFound, "run {} does not exist", id);
    if (rc != SQLITE_ROW) return SqliteStatus(rc, c_.db(), fmt::format("reading run {}", id));
    return ReadRun(st);
  }

  Status UpdateRun(const Run& run) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpdateRun"));
    AUTOMAN_RETURN_IF_ERROR(ValidateRun(run));
    const std::string params = EncodeRunParams(run.params);
    const std::string outputs = EncodeRunOutputs(run.outputs);
    // Every column but the key and the fence; the fence is the condition.
    constexpr std::string_view kSql =
        "UPDATE runs SET runbook_id = ?2, runbook_version = ?3, status = ?4, \"trigger\" = ?5, "
        "triggered_by = ?6, params_json = ?7, priority = ?8, attempt = ?9, max_attempts = ?10, "
        "created_at = ?11, not_before = ?12, started_at = ?13, finished_at = ?14, "
        "deadline_at = ?15, outputs_json = ?16, retry_of = ?17, idempotency_key = ?18, "
        "error = ?19, lease_owner = ?20, lease_expires_at = ?21 WHERE id = ?1 AND fence = ?22";
    {
      AUTOMAN_ASSIGN_OR_RETURN(sqlite3_stmt * raw, c_.Prepare(kSql));
      Stmt st(raw);
      BindRun(st, run, params, outputs);
      int rc = st.Step();
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return Error(ErrorCode::kNotFound,
                     "run {}: runbook version {} is not stored (PutRunbookVersion first)", run.id,
                     run.runbook_version);
      }
      if (rc != SQLITE_DONE) {
        return SqliteStatus(rc, c_.db(), fmt::format("updating run {}", run.id));
      }
      if (sqlite3_changes(c_.db()) == 1) return Status::Ok();
    }
    return FenceMismatch(run.id, run.fence, "update");
  }

  Result<std::vector<Run>> ListRuns(const RunFilter& f) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateRunFilter(f));
    std::string sql = fmt::format("SELECT {} FROM runs", kRunColumns);
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
    std::vector<Run> out;
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      AUTOMAN_ASSIGN_OR_RETURN(Run r, ReadRun(st));
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return SqliteStatus(rc, c_.db(), "listing runs");
    return out;
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
                   "signal, started_at, finished_at, error, outputs_json) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
                   "ON CONFLICT (run_id, attempt, step_id) DO UPDATE SET idx = excluded.idx, "
                   "status = excluded.status, exit_code = excluded.exit_code, "
                   "signal = excluded.signal, started_at = excluded.started_at, "
                   "finished_at = excluded.finished_at, error = excluded.error, "
                   "outputs_json = excluded.outputs_json"));
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
                   "finished_at, error, outputs_json FROM step_runs WHERE run_id = ?1 "
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

 private:
  Status RequireWrite(std::string_view op) const {
    if (mode_ == Store::TxMode::kWrite) return Status::Ok();
    return Error(ErrorCode::kFailedPrecondition,
                 "{} called in a read transaction; use Store::TxMode::kWrite", op);
  }

  Status RunMissing(std::string_view run_id) const {
    return Error(ErrorCode::kNotFound, "run {} does not exist", run_id);
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

  // Serialises this Store's write transactions (see the header). A flag under a mutex
  // rather than std::timed_mutex, whose timed lock ThreadSanitizer cannot follow.
  std::mutex write_mu;
  std::condition_variable write_cv;
  bool writing = false;  // guarded by write_mu

  bool BeginWrite(steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(write_mu);
    if (!write_cv.wait_until(lock, deadline, [&] { return !writing; })) return false;
    writing = true;
    return true;
  }
  void EndWrite() {
    {
      std::lock_guard<std::mutex> lock(write_mu);
      writing = false;
    }
    write_cv.notify_one();
  }

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

// Ends a write transaction's turn (see Impl::BeginWrite) on every path.
template <typename Impl>
class WriteGate {
 public:
  explicit WriteGate(Impl* impl) : impl_(impl) {}
  ~WriteGate() {
    if (impl_ != nullptr) impl_->EndWrite();
  }
  WriteGate(const WriteGate&) = delete;
  WriteGate& operator=(const WriteGate&) = delete;

 private:
  Impl* impl_;
};

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

Status SqliteStore::Transact(TxMode requested, const std::function<Status(StoreTx&)>& fn) {
  const bool relaxed =
      requested == TxMode::kWriteProgress && impl_->options.durability == Durability::kFull;
  const TxMode mode = requested == TxMode::kRead ? TxMode::kRead : TxMode::kWrite;
  const milliseconds timeout = impl_->options.busy_timeout;
  const auto deadline = steady_clock::now() + timeout;
  if (mode == TxMode::kWrite && !impl_->BeginWrite(deadline)) {
    return Error(ErrorCode::kUnavailable,
                 "store {} is busy: another write transaction of this process held it for "
                 "longer than the busy timeout ({} ms)",
                 impl_->Describe(), timeout.count());
  }
  // Declared before the connection lease, so it ends after the connection is returned.
  WriteGate gate(mode == TxMode::kWrite ? impl_.get() : nullptr);
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> borrowed, impl_->Acquire(deadline));
  Lease<Impl> c(*impl_, std::move(borrowed));

  // A progress commit skips the WAL fsync; the connection goes back to FULL afterwards, so
  // the next durable commit fsyncs the WAL with this transaction's frames in it.
  struct SyncLevel {
    Connection* c = nullptr;
    ~SyncLevel() {
      if (c != nullptr) (void)c->Exec("PRAGMA synchronous = FULL");
    }
  } restore;
  if (relaxed) {
    AUTOMAN_RETURN_IF_ERROR(c->Exec("PRAGMA synchronous = NORMAL"));
    restore.c = &*c;
  }

  Status begin;
  if (mode == TxMode::kWrite) {
    // Whatever is left of the timeout goes to waiting for other processes' writers.
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    sqlite3_busy_timeout(c->db(), BusyMillis(left));
    begin = c->Exec("BEGIN IMMEDIATE");
    sqlite3_busy_timeout(c->db(), BusyMillis(timeout));
  } else {
    begin = c->Exec("BEGIN");
  }
  if (begin.code() == ErrorCode::kUnavailable) {
    return Error(ErrorCode::kUnavailable,
                 "store {} is locked by another writer (another process or Store) for "
                 "longer than the busy timeout ({} ms): {}",
                 impl_->Describe(), timeout.count(), begin.message());
  }
  AUTOMAN_RETURN_IF_ERROR(begin.WithContext("starting a transaction"));

  SqliteTx tx(*c, mode);
  Status result = fn(tx);
  if (!result.ok()) {
    c->Rollback();
    return result;
  }
  if (!c->InTransaction()) {
    return Error(ErrorCode::kAborted,
                 "the database rolled the transaction back after an earlier error; nothing "
                 "was committed");
  }
  Status commit = c->Exec("COMMIT");
  if (!commit.ok()) {
    c->Rollback();
    return commit.WithContext("committing");
  }
  return Status::Ok();
}

std::string SqliteStore::Describe() const { return impl_->Describe(); }

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

}  // namespace automan
