#include "store/backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string_view>

#include "store/sqlite/migrations.h"
#include "store/store.h"

namespace automan {

namespace {

using std::chrono::steady_clock;

// Pages copied per sqlite3_backup_step: 4 MiB with the default page size. Each step is a
// short call, so a BUSY source (a rollback-journal writer holding its lock) is retried
// between steps instead of waited on inside SQLite.
constexpr int kPagesPerStep = 1024;
// How long the source may stay locked without progress before giving up.
constexpr auto kMaxLocked = std::chrono::seconds(30);
constexpr int kBusySleepMs = 50;

// "'a'\''b'": one shell word.
std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

std::string SqliteMessage(sqlite3* db, int rc) {
  std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return fmt::format("{} (SQLite code {})", msg, rc);
}

// A SQLite error as a Status: a file that is no database is kDataLoss, a lock kUnavailable.
Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  ErrorCode code = ErrorCode::kInternal;
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      code = ErrorCode::kDataLoss;
      break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = ErrorCode::kUnavailable;
      break;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      code = ErrorCode::kFailedPrecondition;
      break;
    default:
      break;
  }
  return Status(code, fmt::format("{}: {}", what, SqliteMessage(db, rc)));
}

class Connection {
 public:
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { Close(); }

  Status Open(const std::string& path, int flags, std::string_view what) {
    int rc = sqlite3_open_v2(path.c_str(), &db_,
                             flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, what);
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    return Status::Ok();
  }
  // SQLITE_OK, or why the handle could not be closed (unfinalized statements: a bug).
  int Close() {
    int rc = SQLITE_OK;
    if (db_ != nullptr) rc = sqlite3_close(db_);
    if (rc == SQLITE_OK) db_ = nullptr;
    return rc;
  }
  sqlite3* get() const { return db_; }

  Status Exec(const char* sql, std::string_view what) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, what);
    return Status::Ok();
  }

  // The text of the first column of every row (at most `max_rows`).
  Result<std::vector<std::string>> Rows(const char* sql, size_t max_rows, std::string_view what) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, what);
    std::vector<std::string> out;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (out.size() < max_rows) {
        const unsigned char* text = sqlite3_column_text(stmt, 0);
        out.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "");
      }
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) return SqliteError(db_, rc, what);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Removes the temporary copy and whatever SQLite put beside it, unless disarmed.
class TempCleanup {
 public:
  explicit TempCleanup(std::string tmp) : tmp_(std::move(tmp)) {}
  ~TempCleanup() {
    if (tmp_.empty()) return;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) unlink((tmp_ + suffix).c_str());
  }
  void Disarm() { tmp_.clear(); }

 private:
  std::string tmp_;
};

Status FsyncPath(const std::string& path, int flags, std::string_view what) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Error(ErrorCode::kInternal, "{} {}: {}", what, path, ErrnoText(errno));
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  if (rc != 0) return Error(ErrorCode::kInternal, "{} {}: fsync: {}", what, path, ErrnoText(e));
  return Status::Ok();
}

// rename(tmp, dest) that fails with kAlreadyExists instead of replacing dest.
Status RenameNoReplace(const std::string& tmp, const std::string& dest) {
  if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::Ok();
  }
  int e = errno;
  if (e == EEXIST) {
    return Error(ErrorCode::kAlreadyExists, "{} appeared during the backup; not replaced", dest);
  }
  if (e != EINVAL && e != ENOSYS) {
    return Error(ErrorCode::kInternal, "renaming {} to {}: {}", tmp, dest, ErrnoText(e));
  }
  // A file system without RENAME_NOREPLACE: link() never replaces either.
  if (link(tmp.c_str(), dest.c_str()) == 0) {
    unlink(tmp.c_str());
    return Status::Ok();
  }
  e = errno;
  if (e == EEXIST) {
    return Error(ErrorCode::kAlreadyExists, "{} appeared during the backup; not replaced", dest);
  }
  return Error(ErrorCode::kInternal, "renaming {} to {}: {}", tmp, dest, ErrnoText(e));
}

Status CopySqlite(const std::string& src_path, const std::string& dest) {
  struct stat st {};
  if (stat(src_path.c_str(), &st) != 0) {
    int e = errno;
    return Error(e == ENOENT ? ErrorCode::kNotFound : ErrorCode::kFailedPrecondition,
                 "no store at {}: {}", src_path, ErrnoText(e));
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kInvalidArgument, "{} is not a database file", src_path);
  }
  if (lstat(dest.c_str(), &st) == 0) {
    return Error(ErrorCode::kAlreadyExists,
                 "{} already exists; backups never overwrite a file, choose a new name", dest);
  }

  // The source: read-only, and one read transaction for the whole copy, so every step
  // copies pages of the same snapshot (without it, a commit by any other connection
  // between two steps restarts the backup from page 1, and a busy server could starve it).
  // In WAL mode a reader blocks no writer.
  Connection src;
  AUTOMAN_RETURN_IF_ERROR(
      src.Open(src_path, SQLITE_OPEN_READONLY, fmt::format("opening {}", src_path)));
  const std::string reading = fmt::format("reading {}", src_path);
  AUTOMAN_RETURN_IF_ERROR(src.Exec("BEGIN", reading));
  AUTOMAN_ASSIGN_OR_RETURN(auto app, src.Rows("PRAGMA application_id", 1, reading));
  // Starts the read transaction (BEGIN alone is deferred) and proves the file is a database.
  AUTOMAN_RETURN_IF_ERROR(src.Rows("SELECT count(*) FROM sqlite_schema", 1, reading).status());
  const long long app_id = app.empty() ? 0 : std::atoll(app[0].c_str());
  if (app_id != 0 && app_id != kSqliteApplicationId) {
    return Error(ErrorCode::kFailedPrecondition,
                 "{} belongs to another application (SQLite application_id {:#x}), not to "
                 "automan; not backed up",
                 src_path, app_id);
  }

  // The copy: claimed with O_EXCL, so two backups never write the same temporary file and
  // a symlink planted under its name is refused.
  const std::string tmp = dest + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    if (e == EEXIST) {
      return Error(ErrorCode::kAlreadyExists,
                   "{} exists: another backup is writing it, or an interrupted one left it "
                   "behind (remove it then)",
                   tmp);
    }
    return Error(e == ENOENT ? ErrorCode::kNotFound : ErrorCode::kFailedPrecondition,
                 "creating {}: {}", tmp, ErrnoText(e));
  }
  close(fd);
  TempCleanup cleanup(tmp);

  Connection dst;
  const std::string writing = fmt::format("writing {}", tmp);
  AUTOMAN_RETURN_IF_ERROR(dst.Open(tmp, SQLITE_OPEN_READWRITE, writing));
  sqlite3_backup* backup = sqlite3_backup_init(dst.get(), "main", src.get(), "main");
  if (backup == nullptr) {
    return SqliteError(dst.get(), sqlite3_errcode(dst.get()), "starting the backup");
  }
  auto locked_since = steady_clock::now();
  int rc = SQLITE_OK;
  for (;;) {
    rc = sqlite3_backup_step(backup, kPagesPerStep);
    if (rc == SQLITE_DONE) break;
    if (rc == SQLITE_OK) {
      locked_since = steady_clock::now();
      continue;
    }
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
      if (steady_clock::now() - locked_since < kMaxLocked) {
        sqlite3_sleep(kBusySleepMs);
        continue;
      }
    }
    break;
  }
  const int finish_rc = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
      return Error(ErrorCode::kUnavailable, "{} stayed locked for {} s; try again later", src_path,
                   kMaxLocked.count());
    }
    return SqliteError(dst.get(), rc, fmt::format("copying {}", src_path));
  }
  if (finish_rc != SQLITE_OK) {
    return SqliteError(dst.get(), finish_rc, fmt::format("copying {}", src_path));
  }
  // Release the snapshot at once: it holds back the source's checkpoints.
  (void)src.Exec("COMMIT", reading);
  src.Close();

  // quick_check lists what it finds, or fails outright (SQLITE_CORRUPT) on a page it
  // cannot read at all; both mean the copy, and so the store, is damaged.
  auto check = dst.Rows("PRAGMA quick_check", 5, "PRAGMA quick_check");
  if (!check.ok() && check.status().code() != ErrorCode::kDataLoss) return check.status();
  if (!check.ok() || check->size() != 1 || (*check)[0] != "ok") {
    std::string detail = check.ok() ? "" : check.status().message();
    if (check.ok()) {
      for (const std::string& line : *check) detail += (detail.empty() ? "" : "; ") + line;
    }
    return Error(ErrorCode::kDataLoss,
                 "the copy of {} fails PRAGMA quick_check ({}); the store itself may be damaged: "
                 "check it with `sqlite3 {} 'PRAGMA integrity_check'`",
                 src_path, detail, ShellQuote(src_path));
  }
  if (int close_rc = dst.Close(); close_rc != SQLITE_OK) {
    return SqliteError(dst.get(), close_rc, writing);
  }
  // Closing the last connection folds any -wal into the file and removes it; a non-empty one
  // left behind would mean the file alone is not the whole copy.
  if (stat((tmp + "-wal").c_str(), &st) == 0 && st.st_size > 0) {
    return Error(ErrorCode::kInternal, "{}-wal was left behind with {} bytes; not renamed", tmp,
                 static_cast<long long>(st.st_size));
  }
  unlink((tmp + "-wal").c_str());
  unlink((tmp + "-shm").c_str());

  AUTOMAN_RETURN_IF_ERROR(FsyncPath(tmp, O_RDONLY, "syncing"));
  AUTOMAN_RETURN_IF_ERROR(RenameNoReplace(tmp, dest));
  cleanup.Disarm();
  std::string dir = std::filesystem::path(dest).parent_path().string();
  if (dir.empty()) dir = ".";
  return FsyncPath(dir, O_RDONLY | O_DIRECTORY, "syncing directory");
}

}  // namespace

Status BackupStore(const std::string& store_url, const std::string& dest_path) {
  constexpr std::string_view kSqlite = "sqlite:";
  const std::string_view url = store_url;
  if (dest_path.empty()) {
    return Error(ErrorCode::kInvalidArgument, "no destination file given for the backup");
  }
  if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
    return Error(ErrorCode::kFailedPrecondition,
                 "automan backup copies SQLite stores only; back up this PostgreSQL store with "
                 "pg_dump: pg_dump --format=custom --file={} --dbname={} (user name and "
                 "password as in the store URL, removed here: add --username, and the password "
                 "through PGPASSWORD or ~/.pgpass); restore with pg_restore "
                 "(docs/operations.md)",
                 ShellQuote(dest_path), ShellQuote(RedactStoreUrl(url)));
  }
  if (!url.starts_with(kSqlite)) {
    return Error(ErrorCode::kInvalidArgument,
                 "unsupported database URL \"{}\"; use sqlite:PATH or "
                 "postgresql://USER@HOST:PORT/DBNAME",
                 RedactStoreUrl(url));
  }
  const std::string path(url.substr(kSqlite.size()));
  if (path == ":memory:") {
    return Error(ErrorCode::kInvalidArgument,
                 "sqlite::memory: is private to the process that opened it; there is nothing "
                 "to back up");
  }
  if (path.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "database URL \"sqlite:\" names no file; use sqlite:PATH");
  }
  return CopySqlite(path, dest_path).WithContext("backup");
}

}  // namespace automan
