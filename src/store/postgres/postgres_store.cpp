#include "store/postgres/postgres_store.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/connection_pool.h"
#include "store/postgres/libpq.h"
#include "store/postgres/migrations.h"
#include "store/store_json.h"
#include "store/validation.h"

namespace automan {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// Secrets and errors

// Removes every occurrence of each secret from `text` (libpq messages may quote parts of a
// connection string).
std::string Scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& s : secrets) {
    if (s.empty()) continue;
    size_t pos = 0;
    while ((pos = text.find(s, pos)) != std::string::npos) {
      text.replace(pos, s.size(), "***");
      pos += 3;
    }
  }
  return text;
}

std::string TrimMessage(std::string_view m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.remove_suffix(1);
  return std::string(m);
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const char hex[3] = {s[i + 1], s[i + 2], '\0'};
      char* end = nullptr;
      const long v = std::strtol(hex, &end, 16);
      if (end == hex + 2) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// The passwords a URL may carry, raw and percent-decoded: the userinfo password and the
// value of any "password=" query parameter.
std::vector<std::string> PasswordsIn(std::string_view url) {
  std::vector<std::string> out;
  const size_t scheme_end = url.find("://");
  if (scheme_end != std::string_view::npos) {
    const size_t authority = scheme_end + 3;
    const size_t authority_end = std::min(url.find_first_of("/?#", authority), url.size());
    std::string_view auth = url.substr(authority, authority_end - authority);
    const size_t at = auth.rfind('@');
    if (at != std::string_view::npos) {
      std::string_view userinfo = auth.substr(0, at);
      const size_t colon = userinfo.find(':');
      if (colon != std::string_view::npos) out.emplace_back(userinfo.substr(colon + 1));
    }
  }
  std::string lower(url);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t pos = 0;
  while ((pos = lower.find("password=", pos)) != std::string::npos) {
    const size_t value = pos + 9;
    const size_t end = std::min(lower.find_first_of("&# ", value), lower.size());
    out.emplace_back(url.substr(value, end - value));
    pos = end;
  }
  const size_t n = out.size();
  for (size_t i = 0; i < n; ++i) {
    std::string decoded = PercentDecode(out[i]);
    if (decoded != out[i]) out.push_back(std::move(decoded));
  }
  // Longest first, so a password that contains another one is removed whole.
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

ErrorCode CodeForSqlState(std::string_view state) {
  if (state == "23505") return ErrorCode::kAlreadyExists;                // unique_violation
  if (state == "23503") return ErrorCode::kNotFound;                     // foreign_key_violation
  if (state == "40001" || state == "40P01") return ErrorCode::kAborted;  // serialization, deadlock
  if (state == "25P02") return ErrorCode::kAborted;             // in_failed_sql_transaction
  if (state == "25006") return ErrorCode::kFailedPrecondition;  // read_only_sql_transaction
  if (state == "55P03") return ErrorCode::kUnavailable;         // lock_not_available
  if (state == "57014") return ErrorCode::kUnavailable;         // query_canceled (timeouts)
  if (state == "42501") return ErrorCode::kPermissionDenied;    // insufficient_privilege
  if (state.size() != 5) return ErrorCode::kInternal;
  std::string_view cls = state.substr(0, 2);
  if (cls == "08" || cls == "57" || cls == "58") return ErrorCode::kUnavailable;
  if (cls == "53") return ErrorCode::kResourceExhausted;
  if (cls == "28") return ErrorCode::kPermissionDenied;
  if (cls == "22" || cls == "23") return ErrorCode::kInvalidArgument;
  if (cls == "40") return ErrorCode::kAborted;
  if (cls == "XX") return ErrorCode::kDataLoss;
  return ErrorCode::kInternal;
}

struct ResultDeleter {
  void operator()(PGresult* r) const { store_detail::LibPq().PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

std::string_view Field(const PGresult* r, int field) {
  const char* f = r != nullptr ? store_detail::LibPq().PQresultErrorField(r, field) : nullptr;
  return f != nullptr ? std::string_view(f) : std::string_view();
}

// ---------------------------------------------------------------------------------------
// Parameters (text format; pointers stay valid until the Params object dies)

class Params {
 public:
  void Text(std::string_view v) {
    if (v.find('\0') != std::string_view::npos) has_nul_ = true;
    owned_.emplace_back(v);
    values_.push_back(owned_.back().c_str());
  }
  void Int(int64_t v) {
    owned_.push_back(std::to_string(v));
    values_.push_back(owned_.back().c_str());
  }
  void Bool(bool v) { values_.push_back(v ? "t" : "f"); }
  void Null() { values_.push_back(nullptr); }
  void OptText(const std::optional<std::string>& v) { v ? Text(*v) : Null(); }
  void OptInt(const std::optional<int>& v) { v ? Int(*v) : Null(); }
  void Time(Timestamp t) { Int(ToMicros(t)); }
  void OptTime(const std::optional<Timestamp>& t) { t ? Time(*t) : Null(); }
  // One-dimensional array literals ("{...}"), for `= ANY($n::text[])` and unnest().
  void TextArray(const std::vector<std::string>& v) {
    std::string lit = "{";
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i].find('\0') != std::string::npos) has_nul_ = true;
      if (i > 0) lit += ',';
      lit += '"';
      for (char ch : v[i]) {
        if (ch == '"' || ch == '\\') lit += '\\';
        lit += ch;
      }
      lit += '"';
    }
    lit += '}';
    Owned(std::move(lit));
  }
  void IntArray(const std::vector<int64_t>& v) {
    std::string lit = "{";
    for (size_t i = 0; i < v.size(); ++i)
      fmt::format_to(std::back_inserter(lit), "{}{}", i > 0 ? "," : "", v[i]);
    lit += '}';
    Owned(std::move(lit));
  }
  void BoolArray(const std::vector<bool>& v) {
    std::string lit = "{";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i > 0) lit += ',';
      lit += v[i] ? 't' : 'f';
    }
    lit += '}';
    Owned(std::move(lit));
  }

  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }
  bool has_nul() const { return has_nul_; }

 private:
  void Owned(std::string v) {
    owned_.push_back(std::move(v));
    values_.push_back(owned_.back().c_str());
  }

  std::deque<std::string> owned_;
  std::vector<const char*> values_;
  bool has_nul_ = false;
};

// ---------------------------------------------------------------------------------------
// A connection

class Connection {
 public:
  Connection(PGconn* conn, const std::vector<std::string>* secrets)
      : conn_(conn), secrets_(secrets) {}
  ~Connection() { store_detail::LibPq().PQfinish(conn_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  PGconn* raw() const { return conn_; }
  bool Broken() const { return store_detail::LibPq().PQstatus(conn_) != CONNECTION_OK; }
  PGTransactionStatusType TxStatus() const {
    return store_detail::LibPq().PQtransactionStatus(conn_);
  }

  // The status of a failed statement (`r` may be null).
  Status StatusOf(const PGresult* r, std::string_view what) const {
    std::string_view state = Field(r, PG_DIAG_SQLSTATE);
    std::string_view primary = Field(r, PG_DIAG_MESSAGE_PRIMARY);
    std::string msg = primary.empty() ? TrimMessage(store_detail::LibPq().PQerrorMessage(conn_))
                                      : std::string(primary);
    ErrorCode code =
        state.empty() ? (Broken() || r == nullptr ? ErrorCode::kUnavailable : ErrorCode::kInternal)
                      : CodeForSqlState(state);
    if (state.empty() && Broken()) msg = "lost the connection to the server: " + msg;
    return Status(code, fmt::format("{}: {}", what, Scrub(std::move(msg), *secrets_)));
  }

  // Runs one or more statements without parameters (simple query protocol).
  Result<PgResult> Exec(const std::string& sql, std::string_view what) {
    PgResult r(store_detail::LibPq().PQexec(conn_, sql.c_str()));
    return Check(std::move(r), what);
  }
  Result<PgResult> Exec(const std::string& sql) { return Exec(sql, sql); }

  // Statements with parameters are prepared once per connection (named "a1", "a2", ...
  // by their text) and then executed by name: the server parses and analyses each text
  // once per connection instead of on every call. Past kMaxPrepared texts (only ListRuns
  // and ReadLogLines build their text from the filter, a few dozen variants in all) the
  // statement is sent unprepared. Prepared statements outlive transactions, including
  // rolled-back ones, and die with the connection.
  Result<PgResult> Exec(const std::string& sql, const Params& p, std::string_view what) {
    if (p.has_nul()) {
      return Error(ErrorCode::kInvalidArgument, "{}: text contains a NUL character", what);
    }
    const store_detail::LibPqApi& pq = store_detail::LibPq();
    auto it = prepared_.find(sql);
    if (it == prepared_.end() && prepared_.size() < kMaxPrepared) {
      std::string name = fmt::format("a{}", prepared_.size() + 1);
      PgResult r(pq.PQprepare(conn_, name.c_str(), sql.c_str(), p.size(), nullptr));
      AUTOMAN_RETURN_IF_ERROR(Check(std::move(r), what).status());
      it = prepared_.emplace(sql, std::move(name)).first;
    }
    PgResult r(it != prepared_.end() ? pq.PQexecPrepared(conn_, it->second.c_str(), p.size(),
                                                         p.values(), nullptr, nullptr, 0)
                                     : pq.PQexecParams(conn_, sql.c_str(), p.size(), nullptr,
                                                       p.values(), nullptr, nullptr, 0));
    return Check(std::move(r), what);
  }

  // Ends an open transaction without committing; a no-op when none is open.
  void Rollback() {
    if (TxStatus() == PQTRANS_INTRANS || TxStatus() == PQTRANS_INERROR) {
      PgResult r(store_detail::LibPq().PQexec(conn_, "ROLLBACK"));
    }
  }

 private:
  Result<PgResult> Check(PgResult r, std::string_view what) {
    ExecStatusType st = r ? store_detail::LibPq().PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    return StatusOf(r.get(), what);
  }

  static constexpr size_t kMaxPrepared = 200;

  PGconn* conn_;
  const std::vector<std::string>* secrets_;
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
};

void IgnoreNotice(void*, const char*) {}

// Column readers (text format).
std::string Str(const PGresult* r, int row, int col) {
  return std::string(store_detail::LibPq().PQgetvalue(r, row, col),
                     static_cast<size_t>(store_detail::LibPq().PQgetlength(r, row, col)));
}
std::string_view View(const PGresult* r, int row, int col) {
  return std::string_view(store_detail::LibPq().PQgetvalue(r, row, col),
                          static_cast<size_t>(store_detail::LibPq().PQgetlength(r, row, col)));
}
bool IsNull(const PGresult* r, int row, int col) {
  return store_detail::LibPq().PQgetisnull(r, row, col) != 0;
}
int64_t Int64(const PGresult* r, int row, int col) {
  return std::strtoll(store_detail::LibPq().PQgetvalue(r, row, col), nullptr, 10);
}
int Int32(const PGresult* r, int row, int col) { return static_cast<int>(Int64(r, row, col)); }
std::optional<int> OptInt32(const PGresult* r, int row, int col) {
  if (IsNull(r, row, col)) return std::nullopt;
  return Int32(r, row, col);
}
std::optional<std::string> OptStr(const PGresult* r, int row, int col) {
  if (IsNull(r, row, col)) return std::nullopt;
  return Str(r, row, col);
}
Timestamp Time(const PGresult* r, int row, int col) { return FromMicros(Int64(r, row, col)); }
std::optional<Timestamp> OptTime(const PGresult* r, int row, int col) {
  if (IsNull(r, row, col)) return std::nullopt;
  return Time(r, row, col);
}
int64_t Affected(const PGresult* r) {
  return std::strtoll(store_detail::LibPq().PQcmdTuples(const_cast<PGresult*>(r)), nullptr, 10);
}

template <typename E>
Result<E> ParseName(std::optional<E> parsed, std::string_view name, std::string_view what,
                    std::string_view owner) {
  if (!parsed) {
    return Error(ErrorCode::kDataLoss, "{}: unknown {} \"{}\" in the store", owner, what, name);
  }
  return *parsed;
}

// The key values in a constraint error's detail: "Key (a, b)=(x, y) already exists."
// gives "x, y".
std::string KeyValues(const PGresult* r) {
  std::string_view d = Field(r, PG_DIAG_MESSAGE_DETAIL);
  const size_t start = d.find(")=(");
  if (start == std::string_view::npos) return {};
  d.remove_prefix(start + 3);
  const size_t end = d.rfind(") ");
  if (end == std::string_view::npos) return {};
  return std::string(d.substr(0, end));
}

// ---------------------------------------------------------------------------------------
// Rows

constexpr std::string_view kRunColumns =
    "id, runbook_id, runbook_version, status, \"trigger\", triggered_by, params_json, "
    "priority, attempt, max_attempts, created_at, not_before, started_at, finished_at, "
    "deadline_at, outputs_json, retry_of, idempotency_key, error, lease_owner, "
    "lease_expires_at, fence";

// What reads select: kRunColumns, then cancel_requested (22) and the run's concurrency
// keys (23) as one text, so a run comes back whole in one round trip. The keys are read
// from run_keys only for runs with has_keys (the CASE is evaluated per row and skips the
// subquery otherwise), so keyless runs cost no probe of run_keys. Each key is
// "<lim>,<rate_count>,<rate_per_ms>,<bytes>:<key>", concatenated in key order (the
// length prefix keeps any key text unambiguous); NULL without keys. Needs `runs` in FROM
// under its own name.
const std::string& RunSelectColumns() {
  static const std::string kColumns = fmt::format(
      "{}, cancel_requested, CASE WHEN runs.has_keys THEN (SELECT string_agg(k.lim || ',' || "
      "k.rate_count || ',' || k.rate_per_ms || ',' || octet_length(k.key) || ':' || k.key, '' "
      "ORDER BY k.key) FROM run_keys k WHERE k.run_id = runs.id) END",
      kRunColumns);
  return kColumns;
}

// Parses RunSelectColumns' column 23.
Result<std::vector<ConcurrencyLimit>> DecodeKeys(std::string_view s, std::string_view owner) {
  std::vector<ConcurrencyLimit> out;
  auto bad = [&] {
    return Error(ErrorCode::kDataLoss, "{}: malformed concurrency keys in the store", owner);
  };
  while (!s.empty()) {
    int64_t n[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; ++i) {
      const char stop = i < 3 ? ',' : ':';
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n[i]);
      if (ec != std::errc() || end == s.data() + s.size() || *end != stop) return bad();
      s.remove_prefix(static_cast<size_t>(end - s.data()) + 1);
    }
    if (n[3] < 0 || static_cast<size_t>(n[3]) > s.size()) return bad();
    ConcurrencyLimit c;
    c.limit = static_cast<int>(n[0]);
    c.rate_count = static_cast<int>(n[1]);
    c.rate_per = std::chrono::milliseconds(n[2]);
    c.key = std::string(s.substr(0, static_cast<size_t>(n[3])));
    s.remove_prefix(static_cast<size_t>(n[3]));
    out.push_back(std::move(c));
  }
  return out;
}

// Checked by InsertRun before anything is sent (the keys become run_keys rows).
Status ValidateConcurrency(const Run& run) {
  std::set<std::string_view> seen;
  for (const ConcurrencyLimit& c : run.concurrency) {
    if (c.key.empty()) {
      return Error(ErrorCode::kInvalidArgument, "run {}: a concurrency key is empty", run.id);
    }
    if (!seen.insert(c.key).second) {
      return Error(ErrorCode::kInvalidArgument, "run {}: concurrency key {} appears twice", run.id,
                   c.key);
    }
    if (c.limit < 1) {
      return Error(ErrorCode::kInvalidArgument,
                   "run {}: concurrency key {} has limit {} (at least 1)", run.id, c.key, c.limit);
    }
    if (c.rate_count < 0 || (c.rate_count > 0 && c.rate_per.count() < 1)) {
      return Error(ErrorCode::kInvalidArgument,
                   "run {}: concurrency key {} has rate {} per {} ms (a count of at least 1 per "
                   "at least 1 ms, or a count of 0 for no rate)",
                   run.id, c.key, c.rate_count, c.rate_per.count());
    }
  }
  return Status::Ok();
}

// The 22 run columns in kRunColumns order, as $1..$22.
void BindRun(Params& p, const Run& r) {
  p.Text(r.id);
  p.Text(r.runbook_id);
  p.Text(r.runbook_version);
  p.Text(ToString(r.status));
  p.Text(ToString(r.trigger));
  p.Text(r.triggered_by);
  p.Text(EncodeRunParams(r.params));
  p.Int(r.priority);
  p.Int(r.attempt);
  p.Int(r.max_attempts);
  p.Time(r.created_at);
  p.OptTime(r.not_before);
  p.OptTime(r.started_at);
  p.OptTime(r.finished_at);
  p.OptTime(r.deadline_at);
  p.Text(EncodeRunOutputs(r.outputs));
  p.OptText(r.retry_of);
  p.OptText(r.idempotency_key);
  p.Text(r.error);
  p.Text(r.lease_owner);
  p.OptTime(r.lease_expires_at);
  p.Int(r.fence);
}

Result<Run> ReadRun(const PGresult* res, int row) {
  Run r;
  r.id = Str(res, row, 0);
  r.runbook_id = Str(res, row, 1);
  r.runbook_version = Str(res, row, 2);
  const std::string owner = fmt::format("run {}", r.id);
  AUTOMAN_ASSIGN_OR_RETURN(
      r.status, ParseName(ParseRunStatus(View(res, row, 3)), View(res, row, 3), "status", owner));
  AUTOMAN_ASSIGN_OR_RETURN(
      r.trigger, ParseName(ParseTrigger(View(res, row, 4)), View(res, row, 4), "trigger", owner));
  r.triggered_by = Str(res, row, 5);
  auto params = DecodeRunParams(View(res, row, 6));
  if (!params.ok()) return params.status().WithContext(owner);
  r.params = std::move(params).value();
  r.priority = Int32(res, row, 7);
  r.attempt = Int32(res, row, 8);
  r.max_attempts = Int32(res, row, 9);
  r.created_at = Time(res, row, 10);
  r.not_before = OptTime(res, row, 11);
  r.started_at = OptTime(res, row, 12);
  r.finished_at = OptTime(res, row, 13);
  r.deadline_at = OptTime(res, row, 14);
  auto outputs = DecodeRunOutputs(View(res, row, 15));
  if (!outputs.ok()) return outputs.status().WithContext(owner);
  r.outputs = std::move(outputs).value();
  r.retry_of = OptStr(res, row, 16);
  r.idempotency_key = OptStr(res, row, 17);
  r.error = Str(res, row, 18);
  r.lease_owner = Str(res, row, 19);
  r.lease_expires_at = OptTime(res, row, 20);
  r.fence = Int64(res, row, 21);
  r.cancel_requested = View(res, row, 22) == "t";
  if (!IsNull(res, row, 23)) {
    AUTOMAN_ASSIGN_OR_RETURN(r.concurrency, DecodeKeys(View(res, row, 23), owner));
  }
  return r;
}

constexpr std::string_view kScheduleColumns =
    "id, runbook_id, source, spec_json, paused, generation, cursor_at, created_at, updated_at";

ScheduleRecord ReadSchedule(const PGresult* r, int row) {
  ScheduleRecord s;
  s.id = Str(r, row, 0);
  s.runbook_id = Str(r, row, 1);
  s.source = Str(r, row, 2);
  s.spec_json = Str(r, row, 3);
  s.paused = View(r, row, 4) == "t";
  s.generation = Int64(r, row, 5);
  s.cursor = Time(r, row, 6);
  s.created_at = Time(r, row, 7);
  s.updated_at = Time(r, row, 8);
  return s;
}

constexpr std::string_view kFireColumns =
    "schedule_id, nominal_at, due_at, status, reason, run_id, delay_us, wall, generation, "
    "recorded_at";

Result<FireRecord> ReadFire(const PGresult* r, int row) {
  FireRecord f;
  f.schedule_id = Str(r, row, 0);
  f.nominal = Time(r, row, 1);
  f.due = Time(r, row, 2);
  AUTOMAN_ASSIGN_OR_RETURN(
      f.status,
      ParseName(ParseFireStatus(View(r, row, 3)), View(r, row, 3), "fire status",
                fmt::format("schedule {} fire at {}", f.schedule_id, FormatRfc3339(f.nominal))));
  f.reason = Str(r, row, 4);
  f.run_id = Str(r, row, 5);
  f.delay = Duration(Int64(r, row, 6));
  f.wall = Str(r, row, 7);
  f.generation = Int64(r, row, 8);
  f.recorded_at = Time(r, row, 9);
  return f;
}

constexpr std::string_view kUserColumns =
    "username, password_hash, role, disabled, must_change_password, failed_logins, "
    "locked_until, created_at, updated_at";

UserRecord ReadUser(const PGresult* r, int row) {
  UserRecord u;
  u.username = Str(r, row, 0);
  u.password_hash = Str(r, row, 1);
  u.role = Str(r, row, 2);
  u.disabled = View(r, row, 3) == "t";
  u.must_change_password = View(r, row, 4) == "t";
  u.failed_logins = Int32(r, row, 5);
  u.locked_until = OptTime(r, row, 6);
  u.created_at = Time(r, row, 7);
  u.updated_at = Time(r, row, 8);
  return u;
}

constexpr std::string_view kCredentialColumns =
    "id, kind, secret_hash, owner, name, role, created_at, expires_at, last_used_at, "
    "revoked_at";

Result<CredentialRecord> ReadCredential(const PGresult* r, int row) {
  CredentialRecord c;
  c.id = Str(r, row, 0);
  AUTOMAN_ASSIGN_OR_RETURN(c.kind, ParseName(ParseCredentialKind(View(r, row, 1)), View(r, row, 1),
                                             "kind", fmt::format("credential {}", c.id)));
  c.secret_hash = Str(r, row, 2);
  c.owner = Str(r, row, 3);
  c.name = Str(r, row, 4);
  c.role = Str(r, row, 5);
  c.created_at = Time(r, row, 6);
  c.expires_at = OptTime(r, row, 7);
  c.last_used_at = OptTime(r, row, 8);
  c.revoked_at = OptTime(r, row, 9);
  return c;
}

// Bytes travel as hex text both ways (decode($n, 'hex') in, encode(col, 'hex') out): the
// parameters are text format, which cannot carry a NUL, and the hex form does not depend
// on the server's bytea_output setting.
std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char ch : bytes) {
    out.push_back(kDigits[ch >> 4]);
    out.push_back(kDigits[ch & 0xf]);
  }
  return out;
}

Result<std::string> HexDecode(std::string_view hex, std::string_view owner) {
  auto digit = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    const int hi = digit(hex[i]);
    const int lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) break;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  if (out.size() * 2 != hex.size()) {
    return Error(ErrorCode::kDataLoss, "{}: malformed hex from the server", owner);
  }
  return out;
}

// `sealed` is selected as encode(sealed, 'hex').
constexpr std::string_view kSecretColumns =
    "name, encode(sealed, 'hex'), description, created_at, updated_at, updated_by";

Result<SecretRecord> ReadSecret(const PGresult* r, int row) {
  SecretRecord s;
  s.name = Str(r, row, 0);
  AUTOMAN_ASSIGN_OR_RETURN(s.sealed, HexDecode(View(r, row, 1), fmt::format("secret {}", s.name)));
  s.description = Str(r, row, 2);
  s.created_at = Time(r, row, 3);
  s.updated_at = Time(r, row, 4);
  s.updated_by = Str(r, row, 5);
  return s;
}

constexpr std::string_view kAuditColumns =
    "seq, at, actor, action, target, outcome, remote, details_json, hash";

AuditRecord ReadAudit(const PGresult* r, int row) {
  AuditRecord e;
  e.seq = Int64(r, row, 0);
  e.at = Time(r, row, 1);
  e.actor = Str(r, row, 2);
  e.action = Str(r, row, 3);
  e.target = Str(r, row, 4);
  e.outcome = Str(r, row, 5);
  e.remote = Str(r, row, 6);
  e.details_json = Str(r, row, 7);
  e.hash = Str(r, row, 8);
  return e;
}

// The end of the byte range of the strings that start with `prefix` (which ends in '.'):
// "run." gives "run/", so "run.create" is inside and "runbook.x" and "run" are not
// (audit.action is COLLATE "C", so the comparison is bytewise).
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  ++end.back();
  return end;
}

Result<std::vector<Run>> ReadRuns(const PGresult* res) {
  std::vector<Run> out;
  const int n = store_detail::LibPq().PQntuples(res);
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    AUTOMAN_ASSIGN_OR_RETURN(Run run, ReadRun(res, i));
    out.push_back(std::move(run));
  }
  return out;
}

// Column 0 of every row.
std::vector<std::string> ReadIds(const PGresult* res) {
  std::vector<std::string> out;
  const int n = store_detail::LibPq().PQntuples(res);
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back(Str(res, i, 0));
  return out;
}

std::vector<RunStatus> AllRunStatuses() {
  std::vector<RunStatus> out;
  for (int i = 0; i <= static_cast<int>(RunStatus::kDead); ++i) {
    out.push_back(static_cast<RunStatus>(i));
  }
  return out;
}

// "('SUCCESS', 'FAILED', ...)": the terminal statuses as an SQL list (constant, so it
// can be part of a cached statement's text).
const std::string& TerminalStatusList() {
  static const std::string kList = [] {
    std::string out;
    for (RunStatus st : AllRunStatuses()) {
      if (!IsTerminal(st)) continue;
      out += out.empty() ? "(" : ", ";
      out += fmt::format("'{}'", ToString(st));
    }
    return out + ")";
  }();
  return kList;
}

// The advisory lock id of LockKey(key): FNV-1a 64 of "automan:lock-key:" + key, as a
// signed 64-bit integer. Computed here rather than with a server hash function so that the
// id is documented and the same on every server version; the prefix keeps the ids apart
// from other users of advisory locks (kPostgresMigrationLockKey is a fixed id).
int64_t LockKeyId(std::string_view key) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char ch : bytes) {
      h ^= ch;
      h *= 1099511628211ULL;
    }
  };
  mix("automan:lock-key:");
  mix(key);
  return static_cast<int64_t>(h);
}

// The tokens in a key's bucket at instant `now_us` (SQL, bigint microseconds): the stored
// `tokens` plus the refill since `refilled_at`, at most `cap`; a NULL bucket is full.
// `slots` is the key_slots row, `cap` and `per_ms` the run's rate for the key.
std::string TokensAt(std::string_view slots, std::string_view cap, std::string_view per_ms,
                     std::string_view now_us) {
  return fmt::format(
      "least({1}::float8, coalesce({0}.tokens + greatest(0, {3} - {0}.refilled_at)::float8 * "
      "{1} / (greatest({2}, 1) * 1000.0), {1}::float8))",
      slots, cap, per_ms, now_us);
}

// Tolerance for the token comparison: a bucket refilled to exactly one token by the
// floating-point formula above may land a hair below 1.
constexpr std::string_view kOneToken = "0.999999999";

// ---------------------------------------------------------------------------------------
// The transaction

class PostgresTx final : public StoreTx {
 public:
  PostgresTx(Connection& c, Store::TxMode mode) : c_(c), mode_(mode) {}

  Status PutRunbookVersion(const RunbookVersion& v) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PutRunbookVersion"));
    AUTOMAN_RETURN_IF_ERROR(ValidateRunbookVersion(v));
    Params p;
    p.Text(v.version);
    p.Text(v.runbook_id);
    p.Text(v.yaml);
    p.Text(v.source);
    p.Time(v.created_at);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r,
        c_.Exec("INSERT INTO runbook_versions (version, runbook_id, yaml, source, created_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (version) DO NOTHING",
                p, fmt::format("storing runbook version {}", v.version)));
    if (Affected(r.get()) == 1) return Status::Ok();
    // Already stored: content addressing makes that a no-op unless the text differs.
    AUTOMAN_ASSIGN_OR_RETURN(RunbookVersion existing, GetRunbookVersion(v.version));
    if (existing.yaml != v.yaml) {
      return Error(ErrorCode::kAlreadyExists,
                   "runbook version {} is already stored with different content", v.version);
    }
    return Status::Ok();
  }

  Result<RunbookVersion> GetRunbookVersion(std::string_view version) override {
    Params p;
    p.Text(version);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec("SELECT version, runbook_id, yaml, source, created_at "
                                     "FROM runbook_versions WHERE version = $1",
                                     p, fmt::format("reading runbook version {}", version)));
    if (store_detail::LibPq().PQntuples(r.get()) == 0) {
      return Error(ErrorCode::kNotFound, "runbook version {} does not exist", version);
    }
    RunbookVersion v;
    v.version = Str(r.get(), 0, 0);
    v.runbook_id = Str(r.get(), 0, 1);
    v.yaml = Str(r.get(), 0, 2);
    v.source = Str(r.get(), 0, 3);
    v.created_at = Time(r.get(), 0, 4);
    return v;
  }

  // A run without keys is one INSERT; with keys, one statement inserts the run, its
  // run_keys rows and any missing key_slots rows (only if the run was new). Creating the
  // slot rows at enqueue means claims find them in place and can lock them up front (see
  // ListClaimable).
  Status InsertRun(const Run& run) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("InsertRun"));
    AUTOMAN_RETURN_IF_ERROR(ValidateRun(run));
    AUTOMAN_RETURN_IF_ERROR(ValidateConcurrency(run));
    static const std::string kValues =
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, "
        "$20, $21, $22, $23";
    static const std::string kSql = fmt::format(
        "INSERT INTO runs ({}, cancel_requested) VALUES ({}) ON CONFLICT (id) DO NOTHING",
        kRunColumns, kValues);
    static const std::string kWithKeysSql = fmt::format(
        "WITH r AS (INSERT INTO runs ({}, cancel_requested, has_keys) VALUES ({}, true) "
        "ON CONFLICT (id) DO NOTHING RETURNING id), "
        "new_keys AS (INSERT INTO run_keys (run_id, key, lim, rate_count, rate_per_ms) "
        "SELECT r.id, k.key, k.lim, k.rate_count, k.rate_per_ms FROM r CROSS JOIN "
        "unnest($24::text[], $25::bigint[], $26::bigint[], $27::bigint[]) "
        "AS k (key, lim, rate_count, rate_per_ms)), "
        "new_slots AS (INSERT INTO key_slots (key, running) SELECT k.key, 0 FROM r CROSS JOIN "
        "unnest($24::text[]) AS k (key) ORDER BY k.key ON CONFLICT (key) DO NOTHING) "
        "SELECT count(*) FROM r",
        kRunColumns, kValues);
    Params p;
    BindRun(p, run);
    p.Bool(run.cancel_requested);
    const bool keys = !run.concurrency.empty();
    if (keys) {
      std::vector<std::string> names;
      std::vector<int64_t> lims, counts, pers;
      for (const ConcurrencyLimit& c : run.concurrency) {
        names.push_back(c.key);
        lims.push_back(c.limit);
        counts.push_back(c.rate_count);
        pers.push_back(c.rate_per.count());
      }
      p.TextArray(names);
      p.IntArray(lims);
      p.IntArray(counts);
      p.IntArray(pers);
    }
    auto r = c_.Exec(keys ? kWithKeysSql : kSql, p, fmt::format("inserting run {}", run.id));
    if (!r.ok()) {
      if (r.status().code() == ErrorCode::kNotFound) return VersionMissing(run);
      return r.status();
    }
    if ((keys ? Int64(r->get(), 0, 0) : Affected(r->get())) == 1) return Status::Ok();
    return Error(ErrorCode::kAlreadyExists, "run {} already exists", run.id);
  }

  Result<Run> GetRun(std::string_view id) override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM runs WHERE id = $1", RunSelectColumns());
    Params p;
    p.Text(id);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(kSql, p, fmt::format("reading run {}", id)));
    if (store_detail::LibPq().PQntuples(r.get()) == 0)
      return Error(ErrorCode::kNotFound, "run {} does not exist", id);
    return ReadRun(r.get(), 0);
  }

  Status UpdateRun(const Run& run) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpdateRun"));
    AUTOMAN_RETURN_IF_ERROR(ValidateRun(run));
    static const std::string kSql = std::string(kUpdateRunSet) + " WHERE id = $1 AND fence = $22";
    Params p;
    BindRun(p, run);
    return FencedUpdate(kSql, p, run, run.fence, "update");
  }

  Status UpdateRunAdvancingFence(const Run& run, int64_t expected_fence) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpdateRunAdvancingFence"));
    AUTOMAN_RETURN_IF_ERROR(ValidateRun(run));
    if (run.fence <= expected_fence) {
      return Error(ErrorCode::kInvalidArgument,
                   "run {}: the new fencing token {} must be greater than the current {}", run.id,
                   run.fence, expected_fence);
    }
    static const std::string kSql =
        std::string(kUpdateRunSet) + ", fence = $22 WHERE id = $1 AND fence = $23";
    Params p;
    BindRun(p, run);
    p.Int(expected_fence);
    return FencedUpdate(kSql, p, run, expected_fence, "claim");
  }

  Result<std::vector<Run>> ListRuns(const RunFilter& f) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateRunFilter(f));
    std::string sql = fmt::format("SELECT {} FROM runs", RunSelectColumns());
    Params p;
    auto where = [&](std::string_view column, std::string_view op, std::string_view value) {
      p.Text(value);
      sql += p.size() == 1 ? " WHERE " : " AND ";
      sql += fmt::format("{} {} ${}", column, op, p.size());
    };
    if (f.runbook_id) where("runbook_id", "=", *f.runbook_id);
    if (f.status) where("status", "=", ToString(*f.status));
    if (f.trigger) where("\"trigger\"", "=", ToString(*f.trigger));
    if (f.before_id) where("id", "<", *f.before_id);
    p.Int(f.limit);
    sql += fmt::format(" ORDER BY id DESC LIMIT ${}", p.size());
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(sql, p, "listing runs"));
    return ReadRuns(r.get());
  }

  Status CheckFence(std::string_view run_id, int64_t fence) override {
    AUTOMAN_ASSIGN_OR_RETURN(int64_t current, CurrentFence(run_id, /*lock=*/true));
    if (current != fence) return FenceMismatch(run_id, fence, "write");
    return Status::Ok();
  }

  Status UpsertAttempt(const Attempt& a) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpsertAttempt"));
    AUTOMAN_RETURN_IF_ERROR(ValidateAttempt(a));
    Params p;
    p.Text(a.run_id);
    p.Int(a.number);
    p.Text(ToString(a.status));
    p.Text(a.worker);
    p.Time(a.started_at);
    p.OptTime(a.finished_at);
    p.Text(a.error);
    auto r = c_.Exec(
        "INSERT INTO attempts (run_id, number, status, worker, started_at, finished_at, error) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (run_id, number) DO UPDATE SET status = EXCLUDED.status, "
        "worker = EXCLUDED.worker, started_at = EXCLUDED.started_at, "
        "finished_at = EXCLUDED.finished_at, error = EXCLUDED.error",
        p, fmt::format("storing attempt {} of run {}", a.number, a.run_id));
    if (r.status().code() == ErrorCode::kNotFound) return RunMissing(a.run_id);
    return r.status();
  }

  Result<std::vector<Attempt>> ListAttempts(std::string_view run_id) override {
    Params p;
    p.Text(run_id);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec("SELECT number, status, worker, started_at, finished_at, "
                                     "error FROM attempts WHERE run_id = $1 ORDER BY number",
                                     p, fmt::format("listing attempts of run {}", run_id)));
    std::vector<Attempt> out;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      Attempt a;
      a.run_id = std::string(run_id);
      a.number = Int32(r.get(), i, 0);
      AUTOMAN_ASSIGN_OR_RETURN(
          a.status,
          ParseName(ParseRunStatus(View(r.get(), i, 1)), View(r.get(), i, 1), "attempt status",
                    fmt::format("run {} attempt {}", run_id, a.number)));
      a.worker = Str(r.get(), i, 2);
      a.started_at = Time(r.get(), i, 3);
      a.finished_at = OptTime(r.get(), i, 4);
      a.error = Str(r.get(), i, 5);
      out.push_back(std::move(a));
    }
    return out;
  }

  Status UpsertStepRun(const StepRun& s) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpsertStepRun"));
    AUTOMAN_RETURN_IF_ERROR(ValidateStepRun(s));
    Params p;
    p.Text(s.run_id);
    p.Int(s.attempt);
    p.Text(s.step_id);
    p.Int(s.index);
    p.Text(ToString(s.status));
    p.OptInt(s.exit_code);
    p.OptInt(s.signal);
    p.OptTime(s.started_at);
    p.OptTime(s.finished_at);
    p.Text(s.error);
    p.Text(EncodeStringMap(s.outputs));
    p.Text(s.sandbox);
    auto r = c_.Exec(
        "INSERT INTO step_runs (run_id, attempt, step_id, idx, status, exit_code, signal, "
        "started_at, finished_at, error, outputs_json, sandbox) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT (run_id, attempt, step_id) DO UPDATE SET idx = EXCLUDED.idx, "
        "status = EXCLUDED.status, exit_code = EXCLUDED.exit_code, signal = EXCLUDED.signal, "
        "started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, "
        "error = EXCLUDED.error, outputs_json = EXCLUDED.outputs_json, "
        "sandbox = EXCLUDED.sandbox",
        p, fmt::format("storing step {} of run {} attempt {}", s.step_id, s.run_id, s.attempt));
    if (r.status().code() == ErrorCode::kNotFound) return RunMissing(s.run_id);
    return r.status();
  }

  Result<std::vector<StepRun>> ListStepRuns(std::string_view run_id) override {
    Params p;
    p.Text(run_id);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c_.Exec("SELECT attempt, step_id, idx, status, exit_code, signal, started_at, "
                            "finished_at, error, outputs_json, sandbox FROM step_runs "
                            "WHERE run_id = $1 "
                            "ORDER BY attempt, idx, step_id",
                            p, fmt::format("listing step runs of run {}", run_id)));
    std::vector<StepRun> out;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      const PGresult* res = r.get();
      StepRun s;
      s.run_id = std::string(run_id);
      s.attempt = Int32(res, i, 0);
      s.step_id = Str(res, i, 1);
      s.index = Int32(res, i, 2);
      const std::string owner =
          fmt::format("run {} attempt {} step {}", run_id, s.attempt, s.step_id);
      AUTOMAN_ASSIGN_OR_RETURN(s.status, ParseName(ParseStepStatus(View(res, i, 3)),
                                                   View(res, i, 3), "step status", owner));
      s.exit_code = OptInt32(res, i, 4);
      s.signal = OptInt32(res, i, 5);
      s.started_at = OptTime(res, i, 6);
      s.finished_at = OptTime(res, i, 7);
      s.error = Str(res, i, 8);
      auto outputs = DecodeStringMap(View(res, i, 9));
      if (!outputs.ok()) return outputs.status().WithContext(owner);
      s.outputs = std::move(outputs).value();
      s.sandbox = Str(res, i, 10);
      out.push_back(std::move(s));
    }
    return out;
  }

  Status AppendLogLines(std::span<const LogLine> lines) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("AppendLogLines"));
    if (lines.empty()) return Status::Ok();
    AUTOMAN_RETURN_IF_ERROR(ValidateLogLines(lines));
    // All or nothing within the caller's transaction, which may go on after an error.
    AUTOMAN_RETURN_IF_ERROR(c_.Exec("SAVEPOINT append_log_lines").status());
    Status s = InsertLogLines(lines);
    if (!s.ok()) {
      (void)c_.Exec("ROLLBACK TO SAVEPOINT append_log_lines; RELEASE SAVEPOINT append_log_lines");
      return s;
    }
    return c_.Exec("RELEASE SAVEPOINT append_log_lines").status();
  }

  Result<std::vector<LogLine>> ReadLogLines(const LogQuery& q) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateLogQuery(q));
    Params p;
    p.Text(q.run_id);
    p.Int(q.after_seq);
    std::string sql =
        "SELECT attempt, seq, step_id, stream, ts, text, partial FROM log_lines "
        "WHERE run_id = $1 AND seq > $2";
    if (q.attempt) {
      p.Int(*q.attempt);
      sql += fmt::format(" AND attempt = ${}", p.size());
    }
    if (q.step_id) {
      p.Text(*q.step_id);
      sql += fmt::format(" AND step_id = ${}", p.size());
    }
    if (q.stream) {
      p.Text(ToString(*q.stream));
      sql += fmt::format(" AND stream = ${}", p.size());
    }
    p.Int(q.limit);
    sql += fmt::format(" ORDER BY attempt, seq LIMIT ${}", p.size());
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(sql, p, fmt::format("reading log lines of run {}", q.run_id)));
    std::vector<LogLine> out;
    const int n = store_detail::LibPq().PQntuples(r.get());
    out.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const PGresult* res = r.get();
      LogLine l;
      l.run_id = q.run_id;
      l.attempt = Int32(res, i, 0);
      l.seq = Int64(res, i, 1);
      l.step_id = Str(res, i, 2);
      AUTOMAN_ASSIGN_OR_RETURN(
          l.stream,
          ParseName(ParseLogStream(View(res, i, 3)), View(res, i, 3), "log stream",
                    fmt::format("run {} attempt {} line {}", q.run_id, l.attempt, l.seq)));
      l.ts = Time(res, i, 4);
      l.text = Str(res, i, 5);
      l.partial = View(res, i, 6) == "t";
      out.push_back(std::move(l));
    }
    return out;
  }

  // ---- Queue primitives (store.h). Rows the claim and rescue paths return are locked
  // FOR UPDATE SKIP LOCKED in write transactions, so concurrent claimers get disjoint runs
  // without waiting for each other; in a kRead transaction they are plain reads.

  // pg_advisory_xact_lock on LockKeyId(key) (FNV-1a 64 of "automan:lock-key:" + key):
  // held until the transaction ends; waiting longer than the busy timeout is kUnavailable.
  // Allowed in a read transaction too (it writes nothing).
  Status LockKey(std::string_view key) override {
    Params p;
    p.Int(LockKeyId(key));
    return c_
        .Exec("SELECT pg_advisory_xact_lock($1::bigint)", p, fmt::format("locking key {}", key))
        .status();
  }

  Result<std::optional<Run>> FindRunByIdempotencyKey(std::string_view key,
                                                     Timestamp since) override {
    static const std::string kSql = fmt::format(
        "SELECT {} FROM runs WHERE idempotency_key = $1 AND created_at >= $2 "
        "ORDER BY created_at DESC, id DESC LIMIT 1",
        RunSelectColumns());
    Params p;
    p.Text(key);
    p.Time(since);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(kSql, p, fmt::format("looking up idempotency key {}", key)));
    if (store_detail::LibPq().PQntuples(r.get()) == 0) return std::optional<Run>();
    AUTOMAN_ASSIGN_OR_RETURN(Run run, ReadRun(r.get(), 0));
    return std::optional<Run>(std::move(run));
  }

  // One statement: the claimable index (priority DESC, seq) WHERE status = 'PENDING' gives
  // the order, and a run with keys is dropped when one of its keys is full or out of
  // tokens (NOT EXISTS over run_keys joined with key_slots), so held-back runs never use
  // up the LIMIT. Locked rows are skipped before the LIMIT counts them. The OFFSET 0 keeps
  // the NOT EXISTS a per-row probe of run_keys' primary key, evaluated only for the
  // candidate rows with keys: without it the planner may turn it into a hashed subplan
  // that reads all of run_keys (finished runs' keys included) on every claim.
  Result<std::vector<Run>> ListClaimable(Timestamp now, int limit) override {
    AUTOMAN_RETURN_IF_ERROR(CheckLimit("claimable run", limit, 1000));
    static const std::string kWhere = fmt::format(
        "SELECT {} FROM runs WHERE status = 'PENDING' AND (not_before IS NULL OR not_before <= "
        "$1::bigint) AND NOT cancel_requested AND (NOT has_keys OR NOT EXISTS (SELECT 1 FROM "
        "run_keys k JOIN key_slots s ON s.key = k.key WHERE k.run_id = runs.id AND "
        "(s.running >= k.lim OR (k.rate_count > 0 AND {} < {})) OFFSET 0)) "
        "ORDER BY priority DESC, seq LIMIT $2",
        RunSelectColumns(), TokensAt("s", "k.rate_count", "k.rate_per_ms", "$1::bigint"),
        kOneToken);
    static const std::string kLocking = kWhere + " FOR UPDATE OF runs SKIP LOCKED";
    Params p;
    p.Time(now);
    p.Int(limit);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(Locking() ? kLocking : kWhere, p, "listing claimable runs"));
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<Run> runs, ReadRuns(r.get()));
    if (Locking()) AUTOMAN_RETURN_IF_ERROR(LockSlotRows(runs));
    return runs;
  }

  // Locks the key_slots rows of every key of `runs`, in key order, in one statement (none
  // when no run has keys). A claim then takes slots for its runs one run at a time
  // (AcquireSlots), and the keys of a batch of runs are not in key order across runs:
  // without this, two claimers whose batches share keys could each hold a key the other
  // one waits for (a deadlock, which PostgreSQL breaks only after deadlock_timeout, 1 s by
  // default, by aborting one claim). With it, a claimer holds all its keys before taking
  // any slot, and claimers sharing keys queue up instead.
  Status LockSlotRows(const std::vector<Run>& runs) {
    std::set<std::string> keys;
    for (const Run& r : runs) {
      for (const ConcurrencyLimit& c : r.concurrency) keys.insert(c.key);
    }
    if (keys.empty()) return Status::Ok();
    Params p;
    p.TextArray(std::vector<std::string>(keys.begin(), keys.end()));
    return c_
        .Exec("SELECT 1 FROM key_slots WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE", p,
              "locking the concurrency keys of claimable runs")
        .status();
  }

  // Per key, in key order, one INSERT ... ON CONFLICT DO UPDATE ... WHERE: it creates the
  // key's row holding this slot, or locks the existing row and takes a slot (and a token)
  // only if the WHERE holds. A transaction that waited for the row lock evaluates the
  // WHERE on the newest row version (READ COMMITTED), so concurrent claimers never
  // overbook a key. Rows are taken in key order; in a claim, ListClaimable has already
  // locked them all (see LockSlotRows). If a key is unavailable, the slots (and tokens)
  // taken for the earlier keys are given back and the answer is false; the rows stay
  // locked until the transaction ends.
  Result<bool> AcquireSlots(const Run& run, Timestamp now) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("AcquireSlots"));
    if (run.concurrency.empty()) return true;
    static const std::string kSql = fmt::format(
        "INSERT INTO key_slots AS s (key, running, tokens, refilled_at) VALUES ($1, 1, "
        "CASE WHEN $3::bigint > 0 THEN $3::bigint - 1 END, "
        "CASE WHEN $3::bigint > 0 THEN $5::bigint END) "
        "ON CONFLICT (key) DO UPDATE SET running = s.running + 1, "
        "tokens = CASE WHEN $3::bigint > 0 THEN {0} - 1 ELSE s.tokens END, "
        "refilled_at = CASE WHEN $3::bigint > 0 THEN greatest(s.refilled_at, $5::bigint) "
        "ELSE s.refilled_at END "
        "WHERE s.running < $2::bigint AND ($3::bigint = 0 OR {0} >= {1}) RETURNING 1",
        TokensAt("s", "$3::bigint", "$4::bigint", "$5::bigint"), kOneToken);
    static const std::string kUndoSql =
        "UPDATE key_slots s SET running = greatest(s.running - 1, 0), "
        "tokens = CASE WHEN u.rated AND s.tokens IS NOT NULL THEN s.tokens + 1 ELSE s.tokens "
        "END FROM unnest($1::text[], $2::bool[]) AS u (key, rated) WHERE s.key = u.key";
    std::vector<const ConcurrencyLimit*> keys;
    for (const ConcurrencyLimit& c : run.concurrency) keys.push_back(&c);
    std::sort(keys.begin(), keys.end(),
              [](const ConcurrencyLimit* a, const ConcurrencyLimit* b) { return a->key < b->key; });
    std::vector<std::string> taken;
    std::vector<bool> rated;
    for (const ConcurrencyLimit* c : keys) {
      Params p;
      p.Text(c->key);
      p.Int(c->limit);
      p.Int(std::max(0, c->rate_count));
      p.Int(c->rate_per.count());
      p.Time(now);
      AUTOMAN_ASSIGN_OR_RETURN(
          PgResult r,
          c_.Exec(kSql, p, fmt::format("taking a slot of key {} for run {}", c->key, run.id)));
      if (store_detail::LibPq().PQntuples(r.get()) == 1) {
        taken.push_back(c->key);
        rated.push_back(c->rate_count > 0);
        continue;
      }
      if (!taken.empty()) {
        Params u;
        u.TextArray(taken);
        u.BoolArray(rated);
        AUTOMAN_RETURN_IF_ERROR(
            c_.Exec(kUndoSql, u, fmt::format("giving back the slots of run {}", run.id)).status());
      }
      return false;
    }
    return true;
  }

  Status ReleaseSlots(const Run& run) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("ReleaseSlots"));
    if (run.concurrency.empty()) return Status::Ok();
    // Lock order, as on every path: the run's row, then its key rows in key order. The
    // run's row comes first although nothing here changes it: a claimer may hold it (in
    // READ COMMITTED, FOR UPDATE SKIP LOCKED locks the newest version of a row updated
    // after the claim query's snapshot even when the re-check then drops the row) while
    // it waits for key rows; a finisher holding those keys and then updating the run
    // (Queue::Finish releases first) would deadlock with it. The run lock comes from the
    // one-time filter (an InitPlan, evaluated before key_slots is read).
    static const std::string kSql =
        "WITH run AS (SELECT 1 FROM runs WHERE id = $2 FOR NO KEY UPDATE) "
        "UPDATE key_slots s SET running = greatest(s.running - 1, 0) FROM (SELECT key FROM "
        "key_slots WHERE key = ANY($1::text[]) AND (SELECT count(*) FROM run) >= 0 "
        "ORDER BY key FOR UPDATE) AS l WHERE s.key = l.key";
    std::vector<std::string> keys;
    for (const ConcurrencyLimit& c : run.concurrency) keys.push_back(c.key);
    Params p;
    p.TextArray(keys);
    p.Text(run.id);
    return c_.Exec(kSql, p, fmt::format("releasing the slots of run {}", run.id)).status();
  }

  // The table lock waits for the transactions that are changing slot counts (claims and
  // releases) and keeps new ones out until this transaction ends, so the count computed
  // by the next statement (a new snapshot: READ COMMITTED) is exact when it commits.
  Status RecountSlots() override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("RecountSlots"));
    AUTOMAN_RETURN_IF_ERROR(
        c_.Exec("LOCK TABLE key_slots IN EXCLUSIVE MODE", "recounting key slots").status());
    return c_
        .Exec(
            "WITH held AS (SELECT k.key, count(*) AS n FROM run_keys k JOIN runs r ON r.id = "
            "k.run_id WHERE r.status IN ('RUNNING', 'WAITING') GROUP BY k.key), "
            "idle AS (UPDATE key_slots s SET running = 0 WHERE s.running <> 0 AND NOT EXISTS "
            "(SELECT 1 FROM held WHERE held.key = s.key)) "
            "INSERT INTO key_slots (key, running) SELECT key, n FROM held "
            "ON CONFLICT (key) DO UPDATE SET running = EXCLUDED.running",
            "recounting key slots")
        .status();
  }

  Result<std::vector<Run>> ListExpiredLeases(Timestamp now, int limit) override {
    AUTOMAN_RETURN_IF_ERROR(CheckLimit("expired lease", limit, 1000));
    static const std::string kWhere = fmt::format(
        "SELECT {} FROM runs WHERE status IN ('RUNNING', 'WAITING') AND lease_expires_at < $1 "
        "ORDER BY lease_expires_at, id LIMIT $2",
        RunSelectColumns());
    static const std::string kLocking = kWhere + " FOR UPDATE OF runs SKIP LOCKED";
    Params p;
    p.Time(now);
    p.Int(limit);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(Locking() ? kLocking : kWhere, p, "listing expired leases"));
    return ReadRuns(r.get());
  }

  Result<std::optional<Timestamp>> NextNotBefore(Timestamp now) override {
    Params p;
    p.Time(now);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c_.Exec("SELECT min(not_before) FROM runs WHERE status = 'PENDING' AND "
                            "not_before > $1",
                            p, "finding the next delayed run"));
    return OptTime(r.get(), 0, 0);
  }

  Result<bool> RenewLease(std::string_view run_id, int64_t fence, Timestamp expires_at) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("RenewLease"));
    Params p;
    p.Text(run_id);
    p.Int(fence);
    p.Time(expires_at);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c_.Exec("UPDATE runs SET lease_expires_at = $3 WHERE id = $1 AND fence = $2 "
                            "AND status IN ('RUNNING', 'WAITING') RETURNING cancel_requested",
                            p, fmt::format("renewing the lease of run {}", run_id)));
    if (store_detail::LibPq().PQntuples(r.get()) == 1) return View(r.get(), 0, 0) == "t";
    return FenceMismatch(run_id, fence, "lease renewal");
  }

  Status RequestCancel(std::string_view run_id) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("RequestCancel"));
    Params p;
    p.Text(run_id);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec("UPDATE runs SET cancel_requested = true WHERE id = $1", p,
                                     fmt::format("requesting cancellation of run {}", run_id)));
    if (Affected(r.get()) == 0) return RunMissing(run_id);
    return Status::Ok();
  }

  Result<std::vector<std::string>> ListCancelRequested(std::string_view lease_owner) override {
    Params p;
    p.Text(lease_owner);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c_.Exec("SELECT id FROM runs WHERE cancel_requested AND lease_owner = $1 AND "
                            "status IN ('RUNNING', 'WAITING') ORDER BY id",
                            p, fmt::format("listing cancellations for {}", lease_owner)));
    return ReadIds(r.get());
  }

  Result<std::map<RunStatus, int64_t>> CountRunsByStatus() override {
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec("SELECT status, count(*) FROM runs GROUP BY status", Params(),
                                     "counting runs by status"));
    std::map<RunStatus, int64_t> out;
    for (RunStatus st : AllRunStatuses()) out[st] = 0;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      AUTOMAN_ASSIGN_OR_RETURN(RunStatus st, ParseName(ParseRunStatus(View(r.get(), i, 0)),
                                                       View(r.get(), i, 0), "status", "runs"));
      out[st] = Int64(r.get(), i, 1);
    }
    return out;
  }

  // Age alone walks terminal runs by finished_at; a count per runbook numbers each
  // runbook's terminal runs newest first (a window over them). Terminal runs without
  // finished_at are never pruned.
  Result<std::vector<std::string>> ListPrunable(std::optional<Timestamp> finished_before,
                                                std::optional<int> keep_per_runbook,
                                                int limit) override {
    AUTOMAN_RETURN_IF_ERROR(CheckLimit("prunable run", limit, 10000));
    if (keep_per_runbook && *keep_per_runbook < 0) {
      return Error(ErrorCode::kInvalidArgument, "runs to keep per runbook {} is negative",
                   *keep_per_runbook);
    }
    if (!finished_before && !keep_per_runbook) return std::vector<std::string>();
    static const std::string kByAge = fmt::format(
        "SELECT id FROM runs WHERE status IN {} AND finished_at < $1 "
        "ORDER BY finished_at, id LIMIT $2",
        TerminalStatusList());
    static const std::string kByCount = fmt::format(
        "SELECT id FROM (SELECT id, finished_at, row_number() OVER (PARTITION BY runbook_id "
        "ORDER BY finished_at DESC, id DESC) AS newer FROM runs WHERE status IN {} AND "
        "finished_at IS NOT NULL) AS t WHERE newer > $2::bigint OR finished_at < $1::bigint "
        "ORDER BY finished_at, id LIMIT $3",
        TerminalStatusList());
    Params p;
    p.OptTime(finished_before);
    if (keep_per_runbook) p.Int(*keep_per_runbook);
    p.Int(limit);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c_.Exec(keep_per_runbook ? kByCount : kByAge, p, "listing prunable runs"));
    return ReadIds(r.get());
  }

  // The runs are locked (in id order) and checked first, so a refusal sends no DELETE and
  // leaves the transaction usable; then one statement deletes the children and the runs
  // (the foreign keys are checked at its end, when the children are gone).
  Status DeleteRuns(std::span<const std::string> ids) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("DeleteRuns"));
    if (ids.empty()) return Status::Ok();
    Params p;
    p.TextArray(std::vector<std::string>(ids.begin(), ids.end()));
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult locked,
        c_.Exec("SELECT id, status FROM runs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", p,
                "locking runs to delete"));
    for (int i = 0, n = store_detail::LibPq().PQntuples(locked.get()); i < n; ++i) {
      const std::optional<RunStatus> st = ParseRunStatus(View(locked.get(), i, 1));
      if (!st || !IsTerminal(*st)) {
        return Error(ErrorCode::kFailedPrecondition,
                     "run {} is {}, not terminal: only finished runs are deleted (nothing was "
                     "deleted)",
                     View(locked.get(), i, 0), View(locked.get(), i, 1));
      }
    }
    return c_
        .Exec(
            "WITH l AS (DELETE FROM log_lines WHERE run_id = ANY($1::text[])), "
            "s AS (DELETE FROM step_runs WHERE run_id = ANY($1::text[])), "
            "a AS (DELETE FROM attempts WHERE run_id = ANY($1::text[])), "
            "k AS (DELETE FROM run_keys WHERE run_id = ANY($1::text[])) "
            "DELETE FROM runs WHERE id = ANY($1::text[])",
            p, fmt::format("deleting {} runs", ids.size()))
        .status();
  }

  // ---- Schedules and the fire ledger. PutSchedule and DeleteSchedule lock the
  // schedule_revision row before the schedule's row (the CTE feeds the INSERT, and the
  // DELETE's one-time filter runs the CTE before its scan), so the two never deadlock
  // with each other.

  Result<ScheduleRecord> PutSchedule(const ScheduleRecord& s) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PutSchedule"));
    AUTOMAN_RETURN_IF_ERROR(ValidateSchedule(s));
    static const std::string kSql =
        "WITH rev AS (UPDATE schedule_revision SET revision = revision + 1 WHERE id = 1 "
        "RETURNING 1) "
        "INSERT INTO schedules AS s (id, runbook_id, source, spec_json, paused, generation, "
        "cursor_at, created_at, updated_at) SELECT $1::text, $2::text, $3::text, $4::text, "
        "$5::boolean, 1, $6::bigint, $7::bigint, $8::bigint FROM rev "
        "ON CONFLICT (id) DO UPDATE SET runbook_id = EXCLUDED.runbook_id, "
        "source = EXCLUDED.source, spec_json = EXCLUDED.spec_json, paused = EXCLUDED.paused, "
        "generation = s.generation + 1, cursor_at = EXCLUDED.cursor_at, "
        "updated_at = EXCLUDED.updated_at RETURNING generation, created_at";
    Params p;
    p.Text(s.id);
    p.Text(s.runbook_id);
    p.Text(s.source);
    p.Text(s.spec_json);
    p.Bool(s.paused);
    p.Time(s.cursor);
    p.Time(s.created_at);
    p.Time(s.updated_at);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(kSql, p, fmt::format("storing schedule {}", s.id)));
    if (store_detail::LibPq().PQntuples(r.get()) != 1) {
      return Error(ErrorCode::kDataLoss, "the schedules revision row is missing");
    }
    ScheduleRecord out = s;
    out.generation = Int64(r.get(), 0, 0);
    out.created_at = Time(r.get(), 0, 1);
    return out;
  }

  Result<ScheduleRecord> GetSchedule(std::string_view id) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(id));
    static const std::string kSql =
        fmt::format("SELECT {} FROM schedules WHERE id = $1", kScheduleColumns);
    Params p;
    p.Text(id);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(kSql, p, fmt::format("reading schedule {}", id)));
    if (store_detail::LibPq().PQntuples(r.get()) == 0) return ScheduleMissing(id);
    return ReadSchedule(r.get(), 0);
  }

  Result<std::vector<ScheduleRecord>> ListSchedules() override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM schedules ORDER BY id", kScheduleColumns);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(kSql, Params(), "listing schedules"));
    std::vector<ScheduleRecord> out;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      out.push_back(ReadSchedule(r.get(), i));
    }
    return out;
  }

  // The revision moves only when the schedule is there (a refused delete writes nothing,
  // unless another transaction deleted it meanwhile).
  Status DeleteSchedule(std::string_view id) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("DeleteSchedule"));
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(id));
    Params p;
    p.Text(id);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r,
        c_.Exec("WITH rev AS (UPDATE schedule_revision SET revision = revision + 1 WHERE id = 1 "
                "AND EXISTS (SELECT 1 FROM schedules WHERE id = $1) RETURNING 1) "
                "DELETE FROM schedules WHERE id = $1 AND (SELECT count(*) FROM rev) > 0",
                p, fmt::format("deleting schedule {}", id)));
    if (Affected(r.get()) == 0) return ScheduleMissing(id);
    return Status::Ok();
  }

  Result<int64_t> SchedulesRevision() override {
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c_.Exec("SELECT revision FROM schedule_revision WHERE id = 1", Params(),
                            "reading the schedules revision"));
    if (store_detail::LibPq().PQntuples(r.get()) != 1) {
      return Error(ErrorCode::kDataLoss, "the schedules revision row is missing");
    }
    return Int64(r.get(), 0, 0);
  }

  // One conditional UPDATE (re-checked on the newest row version after waiting for a
  // concurrent writer of the schedule); only a refusal reads the row again to say why.
  Status AdvanceScheduleCursor(std::string_view id, int64_t generation, Timestamp cursor) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("AdvanceScheduleCursor"));
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(id));
    Params p;
    p.Text(id);
    p.Int(generation);
    p.Time(cursor);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c_.Exec("UPDATE schedules SET cursor_at = $3 WHERE id = $1 AND generation = $2",
                            p, fmt::format("moving the cursor of schedule {}", id)));
    if (Affected(r.get()) == 1) return Status::Ok();
    AUTOMAN_ASSIGN_OR_RETURN(ScheduleRecord current, GetSchedule(id));
    return Error(ErrorCode::kAborted,
                 "schedule {}: cursor not moved, generation {} is stale (the schedule is at "
                 "generation {}: its definition changed)",
                 id, generation, current.generation);
  }

  // One statement: the schedule's row is locked FOR KEY SHARE (a concurrent DeleteSchedule
  // waits for this transaction, and one that committed first makes the row vanish here),
  // the row is inserted from it ON CONFLICT DO NOTHING (a duplicate does not abort the
  // transaction), and both counts come back.
  Status InsertFire(const FireRecord& f) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("InsertFire"));
    AUTOMAN_RETURN_IF_ERROR(ValidateFire(f));
    Params p;
    p.Text(f.schedule_id);
    p.Time(f.nominal);
    p.Time(f.due);
    p.Text(ToString(f.status));
    p.Text(f.reason);
    p.Text(f.run_id);
    p.Int(f.delay.count());
    p.Text(f.wall);
    p.Int(f.generation);
    p.Time(f.recorded_at);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r,
        c_.Exec("WITH s AS (SELECT 1 FROM schedules WHERE id = $1 FOR KEY SHARE), "
                "ins AS (INSERT INTO fire_ledger (schedule_id, nominal_at, due_at, status, "
                "reason, run_id, delay_us, wall, generation, recorded_at) SELECT $1::text, "
                "$2::bigint, $3::bigint, $4::text, $5::text, $6::text, $7::bigint, $8::text, "
                "$9::bigint, $10::bigint FROM s "
                "ON CONFLICT (schedule_id, nominal_at) DO NOTHING RETURNING 1) "
                "SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM ins)",
                p, fmt::format("recording a fire of schedule {}", f.schedule_id)));
    if (Int64(r.get(), 0, 0) == 0) return ScheduleMissing(f.schedule_id);
    if (Int64(r.get(), 0, 1) == 1) return Status::Ok();
    return Error(ErrorCode::kAlreadyExists,
                 "schedule {}: the occurrence at {} is already in the fire ledger", f.schedule_id,
                 FormatRfc3339(f.nominal));
  }

  Result<std::vector<FireRecord>> WithdrawFires(std::string_view schedule_id,
                                                Timestamp due_after) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("WithdrawFires"));
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(schedule_id));
    static const std::string kSql =
        fmt::format("DELETE FROM fire_ledger WHERE schedule_id = $1 AND due_at > $2 RETURNING {}",
                    kFireColumns);
    Params p;
    p.Text(schedule_id);
    p.Time(due_after);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r,
        c_.Exec(kSql, p, fmt::format("withdrawing early fires of schedule {}", schedule_id)));
    std::vector<FireRecord> out;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      AUTOMAN_ASSIGN_OR_RETURN(FireRecord f, ReadFire(r.get(), i));
      out.push_back(std::move(f));
    }
    return out;
  }

  Result<std::vector<FireRecord>> ListFires(std::string_view schedule_id,
                                            std::optional<Timestamp> before, int limit) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(schedule_id));
    AUTOMAN_RETURN_IF_ERROR(ValidateFireListLimit(limit));
    static const std::string kAll = fmt::format(
        "SELECT {} FROM fire_ledger WHERE schedule_id = $1 ORDER BY nominal_at DESC LIMIT $2",
        kFireColumns);
    static const std::string kBefore = fmt::format(
        "SELECT {} FROM fire_ledger WHERE schedule_id = $1 AND nominal_at < $3 "
        "ORDER BY nominal_at DESC LIMIT $2",
        kFireColumns);
    Params p;
    p.Text(schedule_id);
    p.Int(limit);
    if (before) p.Time(*before);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c_.Exec(before ? kBefore : kAll, p,
                            fmt::format("listing the fire ledger of schedule {}", schedule_id)));
    std::vector<FireRecord> out;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      AUTOMAN_ASSIGN_OR_RETURN(FireRecord f, ReadFire(r.get(), i));
      out.push_back(std::move(f));
    }
    return out;
  }

  Result<std::vector<Run>> ListActiveRuns(Trigger trigger, std::string_view triggered_by,
                                          int limit) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateActiveRunListLimit(limit));
    static const std::string kSql = fmt::format(
        "SELECT {} FROM runs WHERE \"trigger\" = $1 AND triggered_by = $2 "
        "AND status IN ('PENDING', 'RUNNING', 'WAITING') ORDER BY created_at, id LIMIT $3",
        RunSelectColumns());
    Params p;
    p.Text(ToString(trigger));
    p.Text(triggered_by);
    p.Int(limit);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(kSql, p,
                                                 fmt::format("listing the active runs of {} {}",
                                                             ToString(trigger), triggered_by)));
    return ReadRuns(r.get());
  }

  // ---- Users, credentials, secrets, audit trail. Refusals the contract names (a taken
  // key, a missing owner) come from ON CONFLICT DO NOTHING and counts, never from a failed
  // statement, so they leave the transaction usable, as in SQLite.

  Status PutUser(const UserRecord& u) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PutUser"));
    AUTOMAN_RETURN_IF_ERROR(ValidateUser(u));
    static const std::string kSql = fmt::format(
        "INSERT INTO users ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, "
        "role = EXCLUDED.role, disabled = EXCLUDED.disabled, "
        "must_change_password = EXCLUDED.must_change_password, "
        "failed_logins = EXCLUDED.failed_logins, locked_until = EXCLUDED.locked_until, "
        "updated_at = EXCLUDED.updated_at",
        kUserColumns);
    Params p;
    p.Text(u.username);
    p.Text(u.password_hash);
    p.Text(u.role);
    p.Bool(u.disabled);
    p.Bool(u.must_change_password);
    p.Int(u.failed_logins);
    p.OptTime(u.locked_until);
    p.Time(u.created_at);
    p.Time(u.updated_at);
    return c_.Exec(kSql, p, fmt::format("storing user {}", u.username)).status();
  }

  Result<UserRecord> GetUser(std::string_view username) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateUsername(username));
    static const std::string kSql =
        fmt::format("SELECT {} FROM users WHERE username = $1", kUserColumns);
    Params p;
    p.Text(username);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(kSql, p, fmt::format("reading user {}", username)));
    if (store_detail::LibPq().PQntuples(r.get()) == 0) {
      return Error(ErrorCode::kNotFound, "user {} does not exist", username);
    }
    return ReadUser(r.get(), 0);
  }

  Result<std::vector<UserRecord>> ListUsers() override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM users ORDER BY username", kUserColumns);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(kSql, Params(), "listing users"));
    std::vector<UserRecord> out;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      out.push_back(ReadUser(r.get(), i));
    }
    return out;
  }

  // One statement: the owner's row FOR KEY SHARE (a concurrent delete of the user waits),
  // the credential inserted from it ON CONFLICT DO NOTHING (either unique key), both
  // counts returned.
  Status InsertCredential(const CredentialRecord& cr) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("InsertCredential"));
    AUTOMAN_RETURN_IF_ERROR(ValidateCredential(cr));
    static const std::string kSql = fmt::format(
        "WITH u AS (SELECT 1 FROM users WHERE username = $4 FOR KEY SHARE), "
        "ins AS (INSERT INTO credentials ({}) SELECT $1::text, $2::text, $3::text, $4::text, "
        "$5::text, $6::text, $7::bigint, $8::bigint, $9::bigint, $10::bigint FROM u "
        "ON CONFLICT DO NOTHING RETURNING 1) "
        "SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ins)",
        kCredentialColumns);
    Params p;
    p.Text(cr.id);
    p.Text(ToString(cr.kind));
    p.Text(cr.secret_hash);
    p.Text(cr.owner);
    p.Text(cr.name);
    p.Text(cr.role);
    p.Time(cr.created_at);
    p.OptTime(cr.expires_at);
    p.OptTime(cr.last_used_at);
    p.OptTime(cr.revoked_at);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(kSql, p, fmt::format("inserting credential {}", cr.id)));
    if (Int64(r.get(), 0, 0) == 0) {
      return Error(ErrorCode::kNotFound, "credential {}: owner {} is not a user", cr.id, cr.owner);
    }
    if (Int64(r.get(), 0, 1) == 1) return Status::Ok();
    // Which key was taken (never naming the hash: it stands for a secret).
    Result<CredentialRecord> same_id = GetCredential(cr.id);
    if (!same_id.ok() && same_id.status().code() != ErrorCode::kNotFound) return same_id.status();
    if (same_id.ok()) {
      return Error(ErrorCode::kAlreadyExists, "credential {} already exists", cr.id);
    }
    return Error(ErrorCode::kAlreadyExists,
                 "credential {}: another credential has the same secret hash", cr.id);
  }

  Result<CredentialRecord> FindCredentialByHash(std::string_view secret_hash) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateCredentialHash(secret_hash));
    static const std::string kSql =
        fmt::format("SELECT {} FROM credentials WHERE secret_hash = $1", kCredentialColumns);
    return ReadOneCredential(kSql, secret_hash, "");
  }

  Result<CredentialRecord> GetCredential(std::string_view id) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateCredentialId(id));
    static const std::string kSql =
        fmt::format("SELECT {} FROM credentials WHERE id = $1", kCredentialColumns);
    return ReadOneCredential(kSql, id, id);
  }

  Result<std::vector<CredentialRecord>> ListCredentials(CredentialKind kind,
                                                        std::string_view owner) override {
    static const std::string kAll = fmt::format(
        "SELECT {} FROM credentials WHERE kind = $1 ORDER BY created_at, id", kCredentialColumns);
    static const std::string kOfOwner = fmt::format(
        "SELECT {} FROM credentials WHERE kind = $1 AND owner = $2 ORDER BY created_at, id",
        kCredentialColumns);
    Params p;
    p.Text(ToString(kind));
    if (!owner.empty()) p.Text(owner);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(owner.empty() ? kAll : kOfOwner, p,
                                     fmt::format("listing {} credentials", ToString(kind))));
    std::vector<CredentialRecord> out;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      AUTOMAN_ASSIGN_OR_RETURN(CredentialRecord c, ReadCredential(r.get(), i));
      out.push_back(std::move(c));
    }
    return out;
  }

  Status UpdateCredential(const CredentialRecord& cr) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("UpdateCredential"));
    AUTOMAN_RETURN_IF_ERROR(ValidateCredentialId(cr.id));
    Params p;
    p.Text(cr.id);
    p.Text(cr.name);
    p.Text(cr.role);
    p.OptTime(cr.expires_at);
    p.OptTime(cr.last_used_at);
    p.OptTime(cr.revoked_at);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r,
        c_.Exec("UPDATE credentials SET name = $2, role = $3, expires_at = $4, "
                "last_used_at = $5, revoked_at = COALESCE(revoked_at, $6) WHERE id = $1",
                p, fmt::format("updating credential {}", cr.id)));
    if (Affected(r.get()) == 0) {
      return Error(ErrorCode::kNotFound, "credential {} does not exist", cr.id);
    }
    return Status::Ok();
  }

  Result<int64_t> PurgeCredentials(Timestamp before) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PurgeCredentials"));
    Params p;
    p.Time(before);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c_.Exec("DELETE FROM credentials WHERE expires_at < $1 OR revoked_at < $1", p,
                            "purging credentials"));
    return Affected(r.get());
  }

  Status PutSecret(const SecretRecord& s) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("PutSecret"));
    AUTOMAN_RETURN_IF_ERROR(ValidateSecret(s));
    Params p;
    p.Text(s.name);
    p.Text(HexEncode(s.sealed));
    p.Text(s.description);
    p.Time(s.created_at);
    p.Time(s.updated_at);
    p.Text(s.updated_by);
    return c_
        .Exec(
            "INSERT INTO secrets (name, sealed, description, created_at, updated_at, "
            "updated_by) VALUES ($1, decode($2, 'hex'), $3, $4, $5, $6) "
            "ON CONFLICT (name) DO UPDATE SET sealed = EXCLUDED.sealed, "
            "description = EXCLUDED.description, updated_at = EXCLUDED.updated_at, "
            "updated_by = EXCLUDED.updated_by",
            p, fmt::format("storing secret {}", s.name))
        .status();
  }

  Result<SecretRecord> GetSecret(std::string_view name) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateSecretName(name));
    static const std::string kSql =
        fmt::format("SELECT {} FROM secrets WHERE name = $1", kSecretColumns);
    Params p;
    p.Text(name);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(kSql, p, fmt::format("reading secret {}", name)));
    if (store_detail::LibPq().PQntuples(r.get()) == 0) return SecretMissing(name);
    return ReadSecret(r.get(), 0);
  }

  Result<std::vector<SecretRecord>> ListSecrets() override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM secrets ORDER BY name", kSecretColumns);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(kSql, Params(), "listing secrets"));
    std::vector<SecretRecord> out;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      AUTOMAN_ASSIGN_OR_RETURN(SecretRecord s, ReadSecret(r.get(), i));
      out.push_back(std::move(s));
    }
    return out;
  }

  Status DeleteSecret(std::string_view name) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("DeleteSecret"));
    AUTOMAN_RETURN_IF_ERROR(ValidateSecretName(name));
    Params p;
    p.Text(name);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec("DELETE FROM secrets WHERE name = $1", p,
                                                 fmt::format("deleting secret {}", name)));
    if (Affected(r.get()) == 0) return SecretMissing(name);
    return Status::Ok();
  }

  Result<std::optional<AuditRecord>> LastAudit() override {
    static const std::string kSql =
        fmt::format("SELECT {} FROM audit ORDER BY seq DESC LIMIT 1", kAuditColumns);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(kSql, Params(), "reading the last audit entry"));
    if (store_detail::LibPq().PQntuples(r.get()) == 0) return std::optional<AuditRecord>();
    return std::optional<AuditRecord>(ReadAudit(r.get(), 0));
  }

  Status AppendAudit(const AuditRecord& e) override {
    AUTOMAN_RETURN_IF_ERROR(RequireWrite("AppendAudit"));
    AUTOMAN_RETURN_IF_ERROR(ValidateAudit(e));
    static const std::string kSql = fmt::format(
        "INSERT INTO audit ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (seq) DO NOTHING",
        kAuditColumns);
    Params p;
    p.Int(e.seq);
    p.Time(e.at);
    p.Text(e.actor);
    p.Text(e.action);
    p.Text(e.target);
    p.Text(e.outcome);
    p.Text(e.remote);
    p.Text(e.details_json);
    p.Text(e.hash);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(kSql, p, fmt::format("appending audit entry {}", e.seq)));
    if (Affected(r.get()) == 0) {
      return Error(ErrorCode::kAlreadyExists, "audit entry {} already exists", e.seq);
    }
    return Status::Ok();
  }

  // The statement text depends on which filters are set (a few dozen variants). An action
  // prefix "p." is the byte range ["p.", "p/") on the COLLATE "C" column, so the index on
  // (action, seq) serves it and no LIKE wildcard needs escaping.
  Result<std::vector<AuditRecord>> ListAudit(const AuditFilter& f) override {
    AUTOMAN_RETURN_IF_ERROR(ValidateAuditFilter(f));
    std::string sql = fmt::format("SELECT {} FROM audit WHERE seq > $1", kAuditColumns);
    Params p;
    p.Int(f.after_seq);
    auto cond = [&](std::string_view text) { sql += fmt::format(" AND {} ${}", text, p.size()); };
    if (f.actor) {
      p.Text(*f.actor);
      cond("actor =");
    }
    if (f.action && f.action->ends_with('.')) {
      p.Text(*f.action);
      cond("action >=");
      p.Text(PrefixEnd(*f.action));
      cond("action <");
    } else if (f.action) {
      p.Text(*f.action);
      cond("action =");
    }
    if (f.since) {
      p.Time(*f.since);
      cond("at >=");
    }
    if (f.until) {
      p.Time(*f.until);
      cond("at <");
    }
    p.Int(f.limit);
    sql += fmt::format(" ORDER BY seq LIMIT ${}", p.size());
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(sql, p, "listing audit entries"));
    std::vector<AuditRecord> out;
    for (int i = 0, n = store_detail::LibPq().PQntuples(r.get()); i < n; ++i) {
      out.push_back(ReadAudit(r.get(), i));
    }
    return out;
  }

 private:
  // One credential by a key; `id` names it in the kNotFound message ("" for a hash, which
  // stands for a secret and is never named).
  Result<CredentialRecord> ReadOneCredential(const std::string& sql, std::string_view key,
                                             std::string_view id) {
    Params p;
    p.Text(key);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c_.Exec(sql, p, "reading a credential"));
    if (store_detail::LibPq().PQntuples(r.get()) == 0) {
      if (id.empty()) return Error(ErrorCode::kNotFound, "no credential has this secret hash");
      return Error(ErrorCode::kNotFound, "credential {} does not exist", id);
    }
    return ReadCredential(r.get(), 0);
  }

  Status SecretMissing(std::string_view name) const {
    return Error(ErrorCode::kNotFound, "secret {} does not exist", name);
  }

  Status ScheduleMissing(std::string_view id) const {
    return Error(ErrorCode::kNotFound, "schedule {} does not exist", id);
  }

  Status RequireWrite(std::string_view op) const {
    if (mode_ != Store::TxMode::kRead) return Status::Ok();
    return Error(ErrorCode::kFailedPrecondition,
                 "{} called in a read transaction; use Store::TxMode::kWrite", op);
  }

  // Every run column but the key and the fence, as $2..$21 of BindRun; never
  // cancel_requested, has_keys or seq (see store.h: RequestCancel sets the flag, enqueue
  // fixes the keys).
  static constexpr std::string_view kUpdateRunSet =
      "UPDATE runs SET runbook_id = $2, runbook_version = $3, status = $4, \"trigger\" = $5, "
      "triggered_by = $6, params_json = $7, priority = $8, attempt = $9, max_attempts = $10, "
      "created_at = $11, not_before = $12, started_at = $13, finished_at = $14, "
      "deadline_at = $15, outputs_json = $16, retry_of = $17, idempotency_key = $18, "
      "error = $19, lease_owner = $20, lease_expires_at = $21";

  // Runs an UPDATE of one run conditioned on its fence being `fence` (PostgreSQL re-checks
  // the condition on the newest row version after waiting for a concurrent writer).
  Status FencedUpdate(const std::string& sql, const Params& p, const Run& run, int64_t fence,
                      std::string_view op) {
    auto r = c_.Exec(sql, p, fmt::format("updating run {}", run.id));
    if (!r.ok()) {
      if (r.status().code() == ErrorCode::kNotFound) return VersionMissing(run);
      return r.status();
    }
    if (Affected(r->get()) == 1) return Status::Ok();
    return FenceMismatch(run.id, fence, op);
  }

  // Whether reads of the claim and rescue paths lock their rows (FOR UPDATE is refused in
  // a read-only transaction).
  bool Locking() const { return mode_ != Store::TxMode::kRead; }

  static Status CheckLimit(std::string_view what, int limit, int max) {
    if (limit >= 1 && limit <= max) return Status::Ok();
    return Error(ErrorCode::kInvalidArgument, "{} limit {} is out of range 1..{}", what, limit,
                 max);
  }

  Status RunMissing(std::string_view run_id) const {
    return Error(ErrorCode::kNotFound, "run {} does not exist", run_id);
  }

  Status VersionMissing(const Run& run) const {
    return Error(ErrorCode::kNotFound,
                 "run {}: runbook version {} is not stored (PutRunbookVersion first)", run.id,
                 run.runbook_version);
  }

  // In a write transaction the row is locked FOR SHARE: a claim (which changes the fence)
  // waits for this transaction, so the fence read stays current until commit.
  Result<int64_t> CurrentFence(std::string_view run_id, bool lock) {
    Params p;
    p.Text(run_id);
    const bool share = lock && mode_ != Store::TxMode::kRead;
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             c_.Exec(share ? "SELECT fence FROM runs WHERE id = $1 FOR SHARE"
                                           : "SELECT fence FROM runs WHERE id = $1",
                                     p, fmt::format("reading the fence of run {}", run_id)));
    if (store_detail::LibPq().PQntuples(r.get()) == 0) return RunMissing(run_id);
    return Int64(r.get(), 0, 0);
  }

  // kNotFound when the run is missing, else kAborted naming both fences.
  Status FenceMismatch(std::string_view run_id, int64_t fence, std::string_view op) {
    AUTOMAN_ASSIGN_OR_RETURN(int64_t current, CurrentFence(run_id, /*lock=*/false));
    return Error(ErrorCode::kAborted,
                 "run {}: {} refused, fencing token {} is stale (the run's fence is {}; "
                 "another worker claimed it)",
                 run_id, op, fence, current);
  }

  // One COPY ... FROM STDIN for the whole batch: a single round trip, no per-row
  // statement and no parameter limit (one multi-row INSERT per 4000 lines measured
  // 34k lines/s against 61k for COPY under ASan+UBSan, see src/store/README.md).
  Status InsertLogLines(std::span<const LogLine> lines) {
    const std::string& run_id = lines[0].run_id;
    const std::string what = fmt::format("appending log lines of run {}", run_id);
    std::string buf;
    buf.reserve(lines.size() * 96);
    auto field = [&buf](std::string_view v) {
      for (char ch : v) {
        switch (ch) {
          case '\\':
            buf += "\\\\";
            break;
          case '\n':
            buf += "\\n";
            break;
          case '\r':
            buf += "\\r";
            break;
          case '\t':
            buf += "\\t";
            break;
          default:
            buf += ch;
        }
      }
    };
    for (const LogLine& l : lines) {
      if (l.run_id.find('\0') != std::string::npos || l.step_id.find('\0') != std::string::npos ||
          l.text.find('\0') != std::string::npos) {
        return Error(ErrorCode::kInvalidArgument,
                     "log line (run {}, attempt {}, seq {}): text contains a NUL character",
                     l.run_id, l.attempt, l.seq);
      }
      field(l.run_id);
      fmt::format_to(std::back_inserter(buf), "\t{}\t{}\t", l.attempt, l.seq);
      field(l.step_id);
      buf += '\t';
      buf += ToString(l.stream);
      fmt::format_to(std::back_inserter(buf), "\t{}\t", ToMicros(l.ts));
      field(l.text);
      buf += l.partial ? "\tt\n" : "\tf\n";
    }
    PGconn* conn = c_.raw();
    {
      PgResult r(store_detail::LibPq().PQexec(
          conn,
          "COPY log_lines (run_id, attempt, seq, step_id, stream, ts, text, "
          "partial) FROM STDIN"));
      if (!r || store_detail::LibPq().PQresultStatus(r.get()) != PGRES_COPY_IN)
        return c_.StatusOf(r.get(), what);
    }
    constexpr size_t kChunk = 1 << 20;
    bool sent = true;
    for (size_t off = 0; off < buf.size() && sent; off += kChunk) {
      const size_t n = std::min(kChunk, buf.size() - off);
      sent = store_detail::LibPq().PQputCopyData(conn, buf.data() + off, static_cast<int>(n)) == 1;
    }
    if (store_detail::LibPq().PQputCopyEnd(conn,
                                           sent ? nullptr : "client failed to send the data") != 1)
      sent = false;
    // The COPY's result, then null. Read them all so the connection is ready again.
    PgResult result;
    while (PGresult* next = store_detail::LibPq().PQgetResult(conn)) {
      if (!result) {
        result.reset(next);
      } else {
        store_detail::LibPq().PQclear(next);
      }
    }
    if (result && store_detail::LibPq().PQresultStatus(result.get()) == PGRES_COMMAND_OK && sent)
      return Status::Ok();
    const PGresult* r = result.get();
    std::string_view state = Field(r, PG_DIAG_SQLSTATE);
    if (state == "23505") {
      // "run_id, attempt, seq": the run id may contain ", ", so split from the right.
      std::string key = KeyValues(r);
      const size_t seq_at = key.rfind(", ");
      const size_t attempt_at = seq_at == std::string::npos || seq_at == 0
                                    ? std::string::npos
                                    : key.rfind(", ", seq_at - 1);
      if (attempt_at != std::string::npos) {
        return Error(ErrorCode::kAlreadyExists,
                     "log line (run {}, attempt {}, seq {}) already exists",
                     key.substr(0, attempt_at), key.substr(attempt_at + 2, seq_at - attempt_at - 2),
                     key.substr(seq_at + 2));
      }
      return Error(ErrorCode::kAlreadyExists, "a log line of run {} already exists ({})", run_id,
                   Field(r, PG_DIAG_MESSAGE_DETAIL));
    }
    if (state == "23503") {
      std::string key = KeyValues(r);
      return RunMissing(key.empty() ? run_id : key);
    }
    return c_.StatusOf(r, what);
  }

  Connection& c_;
  Store::TxMode mode_;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// The store

namespace {

// How to open a connection: what a Store and its queue listeners share (each listener
// keeps its own copy, so it may outlive the Store).
struct ConnectSpec {
  std::string url;       // as given (with the password): only for connecting
  std::string describe;  // redacted
  std::vector<std::string> secrets;
  StoreOptions options;
};

// `secrets` must outlive the connection (its messages are scrubbed with them).
Result<std::unique_ptr<Connection>> OpenConnection(const ConnectSpec& spec,
                                                   const std::vector<std::string>* secrets) {
  const int64_t busy_ms = spec.options.busy_timeout.count();
  const std::string connect_timeout = std::to_string(std::max<int64_t>(2, (busy_ms + 999) / 1000));
  // Keywords before "dbname" are defaults the URL may override.
  const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
  const char* values[] = {connect_timeout.c_str(), "automan", spec.url.c_str(), nullptr};
  PGconn* raw = store_detail::LibPq().PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (raw == nullptr) return Error(ErrorCode::kResourceExhausted, "libpq: out of memory");
  auto c = std::make_unique<Connection>(raw, secrets);
  if (store_detail::LibPq().PQstatus(raw) != CONNECTION_OK) {
    return Error(ErrorCode::kUnavailable, "cannot connect to {}: {}", spec.describe,
                 Scrub(TrimMessage(store_detail::LibPq().PQerrorMessage(raw)), *secrets));
  }
  store_detail::LibPq().PQsetNoticeProcessor(raw, IgnoreNotice, nullptr);
  const std::string settings = fmt::format(
      "SET lock_timeout = {}; SET synchronous_commit = {}; SET client_min_messages = warning",
      std::max<int64_t>(1, busy_ms), spec.options.durability == Durability::kFull ? "on" : "off");
  AUTOMAN_RETURN_IF_ERROR(c->Exec(settings, "configuring the connection").status());
  return c;
}

// ---------------------------------------------------------------------------------------
// Queue wake-ups: LISTEN/NOTIFY

// One channel for every automan database on a server; the payload is the schema the
// notifying store's tables live in (current_schema()), and a listener ignores other
// schemas' notifications, so stores in different schemas of one database (the tests do
// that) do not wake each other.
constexpr std::string_view kQueueChannel = "automan_queue";

// A dedicated connection that LISTENs (a pooled connection could not: notifications
// arrive only between transactions, and the pool hands connections to anyone). Wait
// polls the connection's socket together with an eventfd that Wake() signals. A broken
// connection is replaced inside Wait, which then returns true because notifications may
// have been missed: the caller re-polls the queue. Reconnection attempts back off from
// 100 ms to 5 s; each may block Wait for up to the connect timeout (the busy timeout, at
// least 2 s).
//
// Thread safety: Wake() may be called from any thread, at any time; Wait() from one
// thread at a time.
class PostgresQueueListener final : public QueueListener {
 public:
  static Result<std::unique_ptr<QueueListener>> Open(ConnectSpec spec) {
    std::unique_ptr<PostgresQueueListener> l(new PostgresQueueListener(std::move(spec)));
    if (l->wake_fd_ < 0) {
      return Error(ErrorCode::kResourceExhausted, "queue listener for {}: eventfd: {}",
                   l->spec_.describe, std::strerror(errno));
    }
    AUTOMAN_RETURN_IF_ERROR(l->Connect());
    return std::unique_ptr<QueueListener>(std::move(l));
  }

  ~PostgresQueueListener() override {
    conn_.reset();
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  bool Wait(milliseconds timeout) override {
    const auto deadline = steady_clock::now() + std::max(timeout, milliseconds(0));
    while (true) {
      bool fired = DrainWake();
      if (conn_ != nullptr) {
        bool broken = false;
        fired = TakeNotifications(&broken) || fired;
        if (broken) {
          conn_.reset();
          backoff_ = milliseconds(0);
          next_attempt_ = steady_clock::now();
          fired = true;  // notifications may have been lost: re-poll
        }
      } else if (steady_clock::now() >= next_attempt_) {
        if (Connect().ok()) {
          backoff_ = milliseconds(0);
          fired = true;
        } else {
          backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
          next_attempt_ = steady_clock::now() + backoff_;
        }
      }
      if (fired) return true;
      const auto now = steady_clock::now();
      if (now >= deadline) return false;
      const auto until = conn_ != nullptr ? deadline : std::min(deadline, next_attempt_);
      pollfd fds[2] = {
          {wake_fd_, POLLIN, 0},
          {conn_ != nullptr ? store_detail::LibPq().PQsocket(conn_->raw()) : -1, POLLIN, 0}};
      const auto wait =
          std::chrono::ceil<milliseconds>(std::max(until - now, steady_clock::duration(0)));
      (void)poll(fds, 2, static_cast<int>(std::min<int64_t>(wait.count(), INT32_MAX)));
    }
  }

  void Wake() override {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }

 private:
  static constexpr milliseconds kMinBackoff{100};
  static constexpr milliseconds kMaxBackoff{5000};

  explicit PostgresQueueListener(ConnectSpec spec)
      : spec_(std::move(spec)), wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

  Status Connect() {
    conn_.reset();
    AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> c, OpenConnection(spec_, &spec_.secrets));
    const std::string what = fmt::format("listening for queue notifications on {}", spec_.describe);
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c->Exec("SELECT coalesce(current_schema(), '')", what));
    schema_ = Str(r.get(), 0, 0);
    AUTOMAN_RETURN_IF_ERROR(c->Exec(fmt::format("LISTEN {}", kQueueChannel), what).status());
    conn_ = std::move(c);
    return Status::Ok();
  }

  // True when Wake() was called since the last drain.
  bool DrainWake() {
    uint64_t n = 0;
    return read(wake_fd_, &n, sizeof n) == static_cast<ssize_t>(sizeof n) && n > 0;
  }

  // Reads what the server sent and takes every notification (coalesced): true if one was
  // for this schema. Sets *broken when the connection is gone.
  bool TakeNotifications(bool* broken) {
    const store_detail::LibPqApi& pq = store_detail::LibPq();
    PGconn* raw = conn_->raw();
    if (pq.PQconsumeInput(raw) == 0 || pq.PQstatus(raw) != CONNECTION_OK) {
      *broken = true;
      return false;
    }
    bool ours = false;
    while (PGnotify* n = pq.PQnotifies(raw)) {
      if (n->extra != nullptr && schema_ == n->extra) ours = true;
      pq.PQfreemem(n);
    }
    return ours;
  }

  ConnectSpec spec_;
  int wake_fd_;
  std::unique_ptr<Connection> conn_;  // null while disconnected
  std::string schema_;                // the payload of this store's notifications
  milliseconds backoff_{0};
  steady_clock::time_point next_attempt_{};
};

// ---------------------------------------------------------------------------------------
// Leadership (Store::TryLead): a session advisory lock on a dedicated connection

// The advisory lock id of TryLead(name): FNV-1a 64 of "automan:lead:<schema>/<name>", so
// stores in different schemas of one database (the tests use that) lead independently.
// The prefix keeps the ids apart from LockKeyId's.
int64_t LeadLockId(std::string_view schema, std::string_view name) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char ch : bytes) {
      h ^= ch;
      h *= 1099511628211ULL;
    }
  };
  mix("automan:lead:");
  mix(schema);
  mix("/");
  mix(name);
  return static_cast<int64_t>(h);
}

// Holds the connection whose session holds the lock; closing it releases the lock, and so
// does the server when this process dies (its backend sees the socket close). Held()
// checks the connection with `SELECT 1` at most once per kLeadCheckInterval, and once a
// check failed it stays false (the session, and with it the lock, is gone).
//
// Thread-safe (a mutex around the connection).
class PostgresLeadership final : public Leadership {
 public:
  static constexpr milliseconds kLeadCheckInterval{1000};

  static Result<std::unique_ptr<Leadership>> TryLead(ConnectSpec spec, std::string_view name) {
    std::unique_ptr<PostgresLeadership> l(new PostgresLeadership(std::move(spec)));
    const std::string what =
        fmt::format("taking the leadership \"{}\" on {}", name, l->spec_.describe);
    AUTOMAN_ASSIGN_OR_RETURN(l->conn_, OpenConnection(l->spec_, &l->spec_.secrets));
    AUTOMAN_ASSIGN_OR_RETURN(PgResult r,
                             l->conn_->Exec("SELECT coalesce(current_schema(), '')", what));
    const int64_t key = LeadLockId(View(r.get(), 0, 0), name);
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult locked,
        l->conn_->Exec(fmt::format("SELECT pg_try_advisory_lock({}::bigint)", key), what));
    if (View(locked.get(), 0, 0) != "t") return std::unique_ptr<Leadership>();
    l->checked_ = steady_clock::now();
    return std::unique_ptr<Leadership>(std::move(l));
  }

  bool Held() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (conn_ == nullptr) return false;
    const auto now = steady_clock::now();
    if (now - checked_ < kLeadCheckInterval) return true;
    checked_ = now;
    if (conn_->Exec("SELECT 1", "checking the leadership connection").ok() && !conn_->Broken()) {
      return true;
    }
    conn_.reset();  // lost for good
    return false;
  }

 private:
  explicit PostgresLeadership(ConnectSpec spec) : spec_(std::move(spec)) {}

  ConnectSpec spec_;  // its secrets scrub the connection's messages
  std::mutex mu_;
  std::unique_ptr<Connection> conn_;  // null once lost; guarded by mu_
  steady_clock::time_point checked_;  // guarded by mu_
};

}  // namespace

struct PostgresStore::Impl {
  std::string url;       // as given (with the password): only for connecting
  std::string describe;  // redacted
  std::vector<std::string> secrets;
  StoreOptions options;
  int schema_version = 0;

  // Set up by Open once the URL is known to work.
  std::optional<store_detail::ConnectionPool<Connection>> pool;

  ConnectSpec Spec() const { return ConnectSpec{url, describe, secrets, options}; }

  Result<std::unique_ptr<Connection>> Connect() { return OpenConnection(Spec(), &secrets); }

  Result<std::unique_ptr<Connection>> Acquire(steady_clock::time_point deadline) {
    return pool->Acquire(deadline);
  }

  void Release(std::unique_ptr<Connection> c) {
    c->Rollback();
    const bool keep = !c->Broken() && c->TxStatus() == PQTRANS_IDLE;
    pool->Release(std::move(c), keep);
  }
};

namespace {

template <typename Impl>
using Lease = store_detail::PooledConnection<Impl, Connection>;

// Creates schema_migrations and applies the missing migrations, in one transaction under
// the advisory lock (concurrent openers wait for each other and re-read the version).
Status PrepareSchema(Connection& c, const std::string& describe, int* schema_version) {
  const int latest = LatestPostgresSchemaVersion();
  const std::string ctx = fmt::format("preparing the schema of {}", describe);
  AUTOMAN_RETURN_IF_ERROR(c.Exec("BEGIN", ctx).status());
  Status s = [&]() -> Status {
    AUTOMAN_RETURN_IF_ERROR(
        c.Exec(fmt::format("SELECT pg_advisory_xact_lock({})", kPostgresMigrationLockKey), ctx)
            .status());
    AUTOMAN_RETURN_IF_ERROR(
        c.Exec("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, "
               "name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
               ctx)
            .status());
    AUTOMAN_ASSIGN_OR_RETURN(
        PgResult r, c.Exec("SELECT coalesce(max(version), 0) FROM schema_migrations", ctx));
    const int64_t version = Int64(r.get(), 0, 0);
    if (version > latest) {
      return Error(ErrorCode::kFailedPrecondition,
                   "database schema version {} is newer than this automan (knows up to {}); "
                   "upgrade automan ({})",
                   version, latest, describe);
    }
    for (const PostgresMigration& m : PostgresMigrations()) {
      if (m.version <= version) continue;
      AUTOMAN_RETURN_IF_ERROR(
          c.Exec(std::string(m.sql),
                 fmt::format("applying migration {} ({}) to {}", m.version, m.name, describe))
              .status());
      Params p;
      p.Int(m.version);
      p.Text(m.name);
      AUTOMAN_RETURN_IF_ERROR(
          c.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, "
                 "(extract(epoch from clock_timestamp()) * 1000000)::bigint)",
                 p, "recording the schema version")
              .status());
    }
    *schema_version = latest;
    return Status::Ok();
  }();
  if (!s.ok()) {
    c.Rollback();
    return s;
  }
  auto commit = c.Exec("COMMIT", ctx);
  if (!commit.ok()) {
    c.Rollback();
    return commit.status();
  }
  return Status::Ok();
}

}  // namespace

PostgresStore::PostgresStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PostgresStore::~PostgresStore() = default;

Result<std::unique_ptr<PostgresStore>> PostgresStore::Open(const StoreOptions& options) {
  AUTOMAN_RETURN_IF_ERROR(store_detail::LoadLibPq().status());
  if (options.busy_timeout.count() < 0) {
    return Error(ErrorCode::kInvalidArgument, "busy timeout {} ms is negative",
                 options.busy_timeout.count());
  }
  auto impl = std::make_unique<Impl>();
  impl->url = options.url;
  impl->options = options;
  impl->describe = RedactStoreUrl(options.url);
  impl->secrets = PasswordsIn(options.url);

  char* err = nullptr;
  PQconninfoOption* info = store_detail::LibPq().PQconninfoParse(options.url.c_str(), &err);
  if (info == nullptr) {
    std::string why = err != nullptr ? TrimMessage(err) : "out of memory";
    store_detail::LibPq().PQfreemem(err);
    return Error(ErrorCode::kInvalidArgument, "invalid PostgreSQL URL \"{}\": {}", impl->describe,
                 Scrub(std::move(why), impl->secrets));
  }
  for (PQconninfoOption* o = info; o->keyword != nullptr; ++o) {
    if (std::strcmp(o->keyword, "password") == 0 && o->val != nullptr && *o->val != '\0') {
      impl->secrets.emplace_back(o->val);
    }
  }
  store_detail::LibPq().PQconninfoFree(info);
  std::sort(impl->secrets.begin(), impl->secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });

  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, impl->Connect());
  AUTOMAN_RETURN_IF_ERROR(PrepareSchema(*conn, impl->describe, &impl->schema_version));
  Impl* raw = impl.get();  // the pool lives in *raw, so the opener may point at it
  impl->pool.emplace(
      kMaxConnections, [raw] { return raw->Connect(); }, impl->describe, options.busy_timeout);
  impl->pool->Adopt(std::move(conn));
  return std::unique_ptr<PostgresStore>(new PostgresStore(std::move(impl)));
}

Status PostgresStore::Transact(TxMode mode, const std::function<Status(StoreTx&)>& fn) {
  const auto deadline = steady_clock::now() + impl_->options.busy_timeout;
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> borrowed, impl_->Acquire(deadline));
  Lease<Impl> c(*impl_, std::move(borrowed));

  const char* begin = "BEGIN";
  if (mode == TxMode::kRead) {
    begin = "BEGIN READ ONLY";
  } else if (mode == TxMode::kWriteProgress && impl_->options.durability == Durability::kFull) {
    begin = "BEGIN; SET LOCAL synchronous_commit = off";
  }
  AUTOMAN_RETURN_IF_ERROR(c->Exec(begin, "starting a transaction").status());

  PostgresTx tx(*c, mode);
  Status result = fn(tx);
  if (!result.ok()) {
    c->Rollback();
    return result;
  }
  if (c->TxStatus() == PQTRANS_INERROR) {
    c->Rollback();
    return Error(ErrorCode::kAborted,
                 "the database aborted the transaction after an earlier error; nothing was "
                 "committed");
  }
  auto commit = c->Exec("COMMIT", "committing");
  if (!commit.ok()) {
    c->Rollback();
    if (c->Broken()) {
      return Error(ErrorCode::kUnavailable,
                   "{} (the connection broke during COMMIT: the transaction may or may not "
                   "have committed)",
                   commit.status().message());
    }
    return commit.status();
  }
  return Status::Ok();
}

std::string PostgresStore::Describe() const { return impl_->describe; }

int PostgresStore::SchemaVersion() const { return impl_->schema_version; }

Result<std::string> PostgresStore::Setting(std::string_view name) {
  if (name.empty() || !std::all_of(name.begin(), name.end(),
                                   [](char ch) { return (ch >= 'a' && ch <= 'z') || ch == '_'; })) {
    return Error(ErrorCode::kInvalidArgument, "\"{}\" is not a setting name", name);
  }
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> borrowed,
                           impl_->Acquire(steady_clock::now() + impl_->options.busy_timeout));
  Lease<Impl> c(*impl_, std::move(borrowed));
  AUTOMAN_ASSIGN_OR_RETURN(PgResult r, c->Exec(fmt::format("SHOW {}", name)));
  if (store_detail::LibPq().PQntuples(r.get()) == 0) return std::string();
  return Str(r.get(), 0, 0);
}

// Outside any transaction, on a pooled connection: one round trip. NOTIFY gives its
// transaction an id and a commit record, so the notifying transaction commits with
// synchronous_commit off (a wake-up lost to a server crash costs one polling interval).
Status PostgresStore::NotifyQueue() {
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> borrowed,
                           impl_->Acquire(steady_clock::now() + impl_->options.busy_timeout));
  Lease<Impl> c(*impl_, std::move(borrowed));
  static const std::string kSql = fmt::format(
      "BEGIN; SET LOCAL synchronous_commit = off; "
      "SELECT pg_notify('{}', coalesce(current_schema(), '')); COMMIT",
      kQueueChannel);
  return c->Exec(kSql, "notifying queue listeners").status();
}

Result<std::unique_ptr<QueueListener>> PostgresStore::ListenQueue() {
  return PostgresQueueListener::Open(impl_->Spec());
}

Result<std::unique_ptr<Leadership>> PostgresStore::TryLead(std::string_view name) {
  AUTOMAN_RETURN_IF_ERROR(ValidateLeadershipName(name));
  return PostgresLeadership::TryLead(impl_->Spec(), name);
}

}  // namespace automan
