#include "store/store.h"

#include <algorithm>
#include <cctype>

#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"

namespace automan {

namespace {
constexpr std::string_view kSqlitePrefix = "sqlite:";

// Replaces the value of every "password=VALUE" (any case; a libpq keyword/value string)
// with "***".
std::string RedactPasswordKeywords(std::string s) {
  constexpr std::string_view kKey = "password=";
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t pos = 0;
  while ((pos = lower.find(kKey, pos)) != std::string::npos) {
    const size_t value = pos + kKey.size();
    const size_t end = std::min(lower.find_first_of(" \t&", value), lower.size());
    s.replace(value, end - value, "***");
    lower.replace(value, end - value, "***");
    pos = value + 3;
  }
  return s;
}

std::string StripUserinfo(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const size_t authority = scheme_end + 3;
  const size_t authority_end = std::min(url.find('/', authority), url.size());
  const size_t at = url.substr(0, authority_end).rfind('@');
  if (at == std::string_view::npos || at < authority) return std::string(url);
  return std::string(url.substr(0, authority)) + std::string(url.substr(at + 1));
}

}  // namespace

std::string RedactStoreUrl(std::string_view url) {
  // The query (which may carry "password=...") and the fragment go entirely.
  url = url.substr(0, url.find_first_of("?#"));
  return RedactPasswordKeywords(StripUserinfo(url));
}

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::string_view url = options.url;
  if (url.starts_with(kSqlitePrefix)) {
    std::string_view path = url.substr(kSqlitePrefix.size());
    if (path.empty()) {
      return Error(ErrorCode::kInvalidArgument,
                   "database URL \"sqlite:\" names no file; use sqlite:PATH");
    }
    auto store = SqliteStore::Open(path, options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(std::move(store).value());
  }
  if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
    auto store = PostgresStore::Open(options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(std::move(store).value());
  }
  return Error(ErrorCode::kInvalidArgument,
               "unsupported database URL \"{}\"; use sqlite:PATH or "
               "postgresql://USER@HOST:PORT/DBNAME",
               RedactStoreUrl(url));
}

std::string_view ToString(FireStatus s) {
  switch (s) {
    case FireStatus::kFired:
      return "fired";
    case FireStatus::kLate:
      return "late";
    case FireStatus::kSkipped:
      return "skipped";
    case FireStatus::kMissed:
      return "missed";
  }
  return "unknown";
}

std::optional<FireStatus> ParseFireStatus(std::string_view name) {
  for (FireStatus s :
       {FireStatus::kFired, FireStatus::kLate, FireStatus::kSkipped, FireStatus::kMissed}) {
    if (ToString(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view ToString(CredentialKind k) {
  switch (k) {
    case CredentialKind::kSession:
      return "session";
    case CredentialKind::kToken:
      return "token";
  }
  return "unknown";
}

std::optional<CredentialKind> ParseCredentialKind(std::string_view name) {
  for (CredentialKind k : {CredentialKind::kSession, CredentialKind::kToken}) {
    if (ToString(k) == name) return k;
  }
  return std::nullopt;
}

std::string DefaultStoreUrl(const std::string& data_dir) {
  return std::string(kSqlitePrefix) + data_dir + "/automan.db";
}

}  // namespace automan
