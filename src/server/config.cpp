// The server's settings table and its three readers (file, environment, flags). The only
// file of src/server that includes yaml-cpp.
//
// The file is read through yaml-cpp's event API, as runbook/parse.cpp does, so hostile
// input is refused before it costs anything: nesting is cut off at kMaxDepth before the
// parser recurses further, aliases are never resolved, and duplicate keys (which
// YAML::Node silently merges) are seen and reported.
#include "server/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <iterator>
#include <optional>
#include <sstream>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/duration.h"

namespace automan {

namespace {

constexpr size_t kMaxFileBytes = size_t{1} << 20;
constexpr int kMaxDepth = 16;
// Past this many problems the rest are noise.
constexpr size_t kMaxProblems = 20;
constexpr std::string_view kEnvPrefix = "AUTOMAN_";

// ---- The table ---------------------------------------------------------------------------

using Field = std::variant<bool ServerConfig::*, int ServerConfig::*, int64_t ServerConfig::*,
                           std::string ServerConfig::*>;
// A further check of a string value: "" when fine, else what is wrong (without the key).
using Check = std::string (*)(std::string_view value);

struct Row {
  std::string_view name;
  ConfigType type;
  Field field;
  std::string_view help;
  int64_t min = 0;  // kInt: inclusive range; kDuration: the least milliseconds
  int64_t max = 0;
  std::string_view choices;  // kString: "a|b|c", or empty for any text
  Check check = nullptr;
};

std::string CheckListen(std::string_view v);

Row Str(std::string_view name, std::string ServerConfig::*f, std::string_view help,
        Check check = nullptr) {
  return {.name = name, .type = ConfigType::kString, .field = f, .help = help, .check = check};
}
Row Choice(std::string_view name, std::string ServerConfig::*f, std::string_view choices,
           std::string_view help) {
  return {.name = name, .type = ConfigType::kString, .field = f, .help = help, .choices = choices};
}
Row Bool(std::string_view name, bool ServerConfig::*f, std::string_view help) {
  return {.name = name, .type = ConfigType::kBool, .field = f, .help = help};
}
template <typename Int>
Row Integer(std::string_view name, Int ServerConfig::*f, int64_t min, int64_t max,
            std::string_view help) {
  return {.name = name, .type = ConfigType::kInt, .field = f, .help = help, .min = min, .max = max};
}
Row Dur(std::string_view name, std::string ServerConfig::*f, int64_t min_ms,
        std::string_view help) {
  return {.name = name, .type = ConfigType::kDuration, .field = f, .help = help, .min = min_ms};
}

// One row per key; the order is the order of help, docs and the start-up banner.
const std::vector<Row>& Rows() {
  using C = ServerConfig;
  static const std::vector<Row> kRows = {
      Str("listen", &C::listen,
          "ADDR:PORT to serve on ([::1]:8080 for IPv6; port 0: any free port)", CheckListen),
      Str("data", &C::data, "data directory (the SQLite store, lock files)"),
      Str("db", &C::db, "store URL; empty: sqlite:DATA/automan.db"),
      Str("runbooks", &C::runbooks, "directory of runbook YAML files, hot-reloaded; empty: none"),
      Str("tls_cert", &C::tls_cert, "PEM certificate chain for HTTPS (with tls_key)"),
      Str("tls_key", &C::tls_key, "PEM private key for HTTPS (with tls_cert)"),
      Bool("metrics_public", &C::metrics_public, "serve /metrics without authentication"),
      Integer("workers", &C::workers, 0, 256, "executor threads of the in-process worker pool"),
      Bool("scheduler", &C::scheduler, "run the schedule loop"),
      Bool("sandbox", &C::sandbox,
           "run steps in the sandbox (false: steps run unconfined; for hosts without root)"),
      Dur("lease", &C::lease, 1000, "lease of a claimed run, renewed by heartbeats"),
      Dur("grace", &C::grace, 0, "shutdown grace for running steps"),
      Integer("max_body_bytes", &C::max_body_bytes, 1 << 10, 1 << 30, "request body limit"),
      Dur("request_timeout", &C::request_timeout, 1000, "time to read a whole request"),
      Integer("max_streams", &C::max_streams, 1, 1'000'000, "open SSE/WebSocket streams, in all"),
      Integer("max_streams_per_subject", &C::max_streams_per_subject, 1, 1'000'000,
              "open SSE/WebSocket streams per user or token"),
      Choice("log_level", &C::log_level, "debug|info|warn|error", "least severity logged"),
      Choice("access_log", &C::access_log, "on|off", "JSON access log lines on stderr"),
      Str("key_file", &C::key_file,
          "master key file (created 0600 on first start); empty: DATA/master.key"),
      Str("roles_file", &C::roles_file,
          "YAML file of custom roles (docs/security.md#custom-roles); empty: built-ins only"),
      Str("trusted_proxies", &C::trusted_proxies,
          "comma-separated addresses of reverse proxies whose X-Forwarded-For is believed"),
      Str("allowed_origins", &C::allowed_origins,
          "comma-separated extra Origins accepted from browser sessions (https://host)"),
      Integer("api_rate_limit", &C::api_rate_limit, 0, 1'000'000,
              "API requests per second per user or token, burst 10x (0: no limit)"),
      Dur("session_idle", &C::session_idle, 60'000,
          "a browser session ends after this long unused"),
      Dur("session_lifetime", &C::session_lifetime, 60'000,
          "a browser session ends this long after login"),
  };
  return kRows;
}

// The AUTOMAN_* variables the CLI reads: present in a server's environment for good reasons.
constexpr std::string_view kCliEnv[] = {"AUTOMAN_SERVER", "AUTOMAN_TOKEN",
                                        "AUTOMAN_ADMIN_PASSWORD"};

bool IsSecret(std::string_view name) {
  return name.find("password") != std::string_view::npos ||
         name.find("token") != std::string_view::npos || name == "key" || name.ends_with("_key");
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}
std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
std::string Dashed(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}
std::string Snake(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

const Row* FindRow(std::string_view name) {
  for (const Row& r : Rows()) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

// ---- Text helpers -----------------------------------------------------------------------

// `s` fit for a terminal line: control characters as \xNN, cut at 120 bytes (on a UTF-8
// character boundary).
std::string Printable(std::string_view s) {
  constexpr size_t kMax = 120;
  bool cut = false;
  if (s.size() > kMax) {
    size_t n = kMax;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    s = s.substr(0, n);
    cut = true;
  }
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(ch);
    }
  }
  if (cut) out += "...";
  return out;
}

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
int EditDistance(std::string_view a, std::string_view b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

// The closest of `candidates` to `word`, if close enough to be a likely typo.
std::optional<std::string> Closest(std::string_view word,
                                   const std::vector<std::string_view>& candidates) {
  if (word.size() > 64) return std::nullopt;  // nobody mistypes that much
  const std::string w = Snake(Lower(word));
  std::optional<std::string> best;
  int best_d = 0;
  for (std::string_view c : candidates) {
    int d = EditDistance(w, c);
    // "warning" for "warn", "max_stream" for "max_streams": a prefix counts as close.
    const bool prefix = std::min(w.size(), c.size()) >= 3 && (w.starts_with(c) || c.starts_with(w));
    if (prefix) d = std::min(d, 1);
    int allowed = std::max<int>(2, static_cast<int>(c.size()) / 4);
    if (d <= allowed && (!best || d < best_d)) {
      best = std::string(c);
      best_d = d;
    }
  }
  return best;
}

std::vector<std::string_view> KeyNames() {
  std::vector<std::string_view> out;
  for (const Row& r : Rows()) out.push_back(r.name);
  return out;
}

// " (did you mean "listen"?)", or a hint for "no_scheduler", or "".
std::string SuggestKey(std::string_view key) {
  std::string k = Snake(Lower(key));
  if (k.starts_with("no_")) {
    const Row* r = FindRow(k.substr(3));
    if (r != nullptr && r->type == ConfigType::kBool) {
      return fmt::format("; write `{}: false`", r->name);
    }
  }
  if (auto s = Closest(key, KeyNames())) return fmt::format("; did you mean \"{}\"?", *s);
  return "";
}

bool IsValidUtf8(std::string_view s, size_t* bad_offset) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      *bad_offset = i;
      return false;
    }
    if (i + len > s.size()) {
      *bad_offset = i;
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        *bad_offset = i;
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    const bool overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

// ---- Values -----------------------------------------------------------------------------

std::optional<bool> ParseBool(std::string_view text) {
  const std::string t = Lower(text);
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  return std::nullopt;
}

std::string TypeName(const Row& row) {
  switch (row.type) {
    case ConfigType::kBool:
      return "a boolean (true/false, yes/no, on/off, 1/0)";
    case ConfigType::kInt:
      return fmt::format("an integer from {} to {}", row.min, row.max);
    case ConfigType::kDuration:
      return "a duration (e.g. 500ms, 30s, 5m, 1h30m)";
    case ConfigType::kString:
      break;
  }
  if (!row.choices.empty()) {
    std::string list(row.choices);
    std::replace(list.begin(), list.end(), '|', ',');
    size_t pos = 0;
    while ((pos = list.find(',', pos)) != std::string::npos) list.insert(++pos, " ");
    return "one of " + list;
  }
  return "a string";
}

// The value as shown in the banner and compared against the default.
std::string ValueText(const Row& row, const ServerConfig& cfg) {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& v = cfg.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return v;
        } else {
          return std::to_string(v);
        }
      },
      row.field);
}

std::string Shown(const Row& row, std::string_view value) {
  if (IsSecret(row.name)) return "(set)";
  return Printable(value);
}

// Parses `text` for `row` into `cfg`. Returns "" or what is wrong, starting with the key.
std::string Apply(const Row& row, std::string_view text, ServerConfig& cfg) {
  const bool secret = IsSecret(row.name);
  auto got = [&] {
    return secret ? std::string("a value not shown") : "\"" + Printable(text) + "\"";
  };
  auto wrong = [&](std::string detail = "") {
    return fmt::format("{}: expected {}, got {}{}", row.name, TypeName(row), got(), detail);
  };
  if (text.find('\0') != std::string_view::npos) {
    return fmt::format("{}: the value contains a NUL byte", row.name);
  }
  switch (row.type) {
    case ConfigType::kBool: {
      auto b = ParseBool(text);
      if (!b) return wrong();
      cfg.*std::get<bool ServerConfig::*>(row.field) = *b;
      return "";
    }
    case ConfigType::kInt: {
      int64_t n = 0;
      std::string_view t = text;
      if (t.starts_with('+')) t.remove_prefix(1);
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
      if (t.empty() || ec != std::errc() || end != t.data() + t.size() || n < row.min ||
          n > row.max) {
        return wrong();
      }
      if (auto* f = std::get_if<int ServerConfig::*>(&row.field)) {
        cfg.** f = static_cast<int>(n);
      } else {
        cfg.*std::get<int64_t ServerConfig::*>(row.field) = n;
      }
      return "";
    }
    case ConfigType::kDuration: {
      auto d = ParseDuration(text);
      if (!d.ok()) return fmt::format("{}: {}", row.name, d.status().message());
      if (d->count() < row.min) {
        return fmt::format("{}: must be at least {}, got {}", row.name,
                           FormatDuration(std::chrono::milliseconds(row.min)), got());
      }
      cfg.*std::get<std::string ServerConfig::*>(row.field) = std::string(text);
      return "";
    }
    case ConfigType::kString: {
      if (!row.choices.empty()) {
        std::vector<std::string_view> choices;
        std::string_view rest = row.choices;
        while (!rest.empty()) {
          size_t bar = std::min(rest.find('|'), rest.size());
          choices.push_back(rest.substr(0, bar));
          rest.remove_prefix(std::min(bar + 1, rest.size()));
        }
        if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
          auto s = Closest(text, choices);
          return wrong(s ? fmt::format(" (did you mean \"{}\"?)", *s) : "");
        }
      }
      if (row.check != nullptr) {
        std::string problem = row.check(text);
        if (!problem.empty()) return fmt::format("{}: {}, got {}", row.name, problem, got());
      }
      cfg.*std::get<std::string ServerConfig::*>(row.field) = std::string(text);
      return "";
    }
  }
  return "";
}

bool IsHostnameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

std::string CheckPort(std::string_view port) {
  int n = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (port.empty() || port.size() > 5 || ec != std::errc() || end != port.data() + port.size() ||
      n < 0 || n > 65535) {
    return "expected ADDR:PORT with a port from 0 to 65535 (0: any free port)";
  }
  return "";
}

std::string CheckListen(std::string_view v) {
  constexpr std::string_view kForm = "expected ADDR:PORT (e.g. 127.0.0.1:8080, [::1]:8080)";
  if (v.empty()) return std::string(kForm);
  if (v.front() == '[') {
    const size_t close = v.find(']');
    if (close == std::string_view::npos) return std::string(kForm) + "; the \"]\" is missing";
    std::string host(v.substr(1, close - 1));
    if (size_t pct = host.find('%'); pct != std::string::npos) {  // fe80::1%eth0
      if (pct + 1 == host.size()) return "the IPv6 zone after \"%\" is empty";
      host.resize(pct);
    }
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
      return "the address in brackets is not an IPv6 address";
    }
    std::string_view rest = v.substr(close + 1);
    if (!rest.starts_with(':')) return std::string(kForm) + "; the \":PORT\" is missing";
    return CheckPort(rest.substr(1));
  }
  const size_t colon = v.rfind(':');
  if (colon == std::string_view::npos) {
    return std::string(kForm) + "; the \":PORT\" is missing";
  }
  if (v.find(':') != colon) return "write IPv6 addresses in brackets, e.g. [::1]:8080";
  std::string host(v.substr(0, colon));
  if (host.empty()) {
    return "the address before \":PORT\" is missing; write 0.0.0.0:PORT for every interface "
           "or 127.0.0.1:PORT for this host only";
  }
  const bool numeric = std::all_of(host.begin(), host.end(),
                                   [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
  if (numeric) {
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) != 1) return "the address is not an IPv4 address";
  } else if (host.size() > 253 || !std::all_of(host.begin(), host.end(), IsHostnameChar) ||
             host.front() == '-' || host.front() == '.') {
    return "the address is neither an IP address nor a host name";
  }
  return CheckPort(v.substr(colon + 1));
}

// ---- Where values come from -------------------------------------------------------------

struct Origin {
  std::string from;   // for ConfigSource::from: "file /p", "env AUTOMAN_X", "flag --x"
  std::string where;  // for messages: "/p:3:10", "env AUTOMAN_X", "flag --x"
};

class Problems {
 public:
  void Add(std::string p) {
    if (list_.size() < kMaxProblems) {
      list_.push_back(std::move(p));
    } else {
      ++dropped_;
    }
  }
  bool empty() const { return list_.empty(); }
  Status ToStatus(ErrorCode code = ErrorCode::kInvalidArgument) const {
    std::string msg;
    for (const std::string& p : list_) {
      if (!msg.empty()) msg += "\n";
      msg += p;
    }
    if (dropped_ > 0) msg += fmt::format("\n... and {} more problems", dropped_);
    return Status(code, msg);
  }

 private:
  std::vector<std::string> list_;
  size_t dropped_ = 0;
};

// ---- The YAML file ----------------------------------------------------------------------

struct Pos {
  int line = 0;  // 1-based; 0: unknown
  int column = 0;
};

Pos PosOf(const YAML::Mark& m) {
  if (m.is_null() || m.line < 0 || m.column < 0) return {};
  return {m.line + 1, m.column + 1};
}

// One `key: value` of the top-level map.
struct FileEntry {
  std::string key;
  Pos key_pos;
  enum class Kind { kScalar, kNull, kSeq, kMap, kAlias } kind = Kind::kNull;
  std::string value;
  Pos value_pos;
  bool key_ok = true;  // false: the key was not a plain scalar (already reported)
};

// Thrown from the event handler to stop the parser; the problem is already recorded.
struct StopParsing {};

// Collects the top-level entries; reports structure problems as "LINE:COL: message" pairs.
class EntryCollector final : public YAML::EventHandler {
 public:
  struct Issue {
    Pos pos;
    std::string message;
  };

  const std::vector<FileEntry>& entries() const { return entries_; }
  const std::vector<Issue>& issues() const { return issues_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_++ > 0) {
      Issue_(PosOf(mark), "a config file holds one YAML document; remove the second \"---\"");
      throw StopParsing{};
    }
  }
  void OnDocumentEnd() override {}

  void OnAnchor(const YAML::Mark& mark, const std::string&) override {
    Issue_(PosOf(mark), "YAML anchors (&name) are not allowed in the config file");
  }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override {
    Leaf(mark, FileEntry::Kind::kNull, "");
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    Issue_(PosOf(mark), "YAML aliases (*name) are not allowed in the config file");
    Leaf(mark, FileEntry::Kind::kAlias, "");
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t,
                const std::string& value) override {
    CheckTag(mark, tag);
    Leaf(mark, FileEntry::Kind::kScalar, value);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Open(mark, tag, FileEntry::Kind::kSeq);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Open(mark, tag, FileEntry::Kind::kMap);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void Issue_(Pos pos, std::string message) {
    issues_.push_back({pos, std::move(message)});
    if (issues_.size() >= kMaxProblems) throw StopParsing{};
  }

  void CheckTag(const YAML::Mark& mark, const std::string& tag) {
    if (tag.empty() || tag == "?" || tag == "!") return;
    std::string shown = tag;
    const std::string kCore = "tag:yaml.org,2002:";
    if (shown.starts_with(kCore)) shown = "!!" + shown.substr(kCore.size());
    Issue_(PosOf(mark), "YAML tags (" + Printable(shown.substr(0, 40)) +
                            ") are not allowed in the config file; write the plain value");
  }

  void Open(const YAML::Mark& mark, const std::string& tag, FileEntry::Kind kind) {
    if (depth_ >= kMaxDepth) {
      Issue_(PosOf(mark), fmt::format("YAML nesting is deeper than {} levels; the config file "
                                      "is a flat map of key: value",
                                      kMaxDepth));
      throw StopParsing{};
    }
    CheckTag(mark, tag);
    if (depth_ == 0) {
      if (kind != FileEntry::Kind::kMap) {
        Issue_(PosOf(mark), "the config file must be a map of `key: value` settings, not a list");
        throw StopParsing{};
      }
    } else if (depth_ == 1) {
      Leaf(mark, kind, "");  // a collection as a key or a value of the top-level map
    }
    ++depth_;
  }

  // A node at depth 0 (the root) or 1 (a key or value of the root map); deeper ones are
  // inside a value already reported as a list or map, and ignored.
  void Leaf(const YAML::Mark& mark, FileEntry::Kind kind, const std::string& value) {
    if (depth_ == 0) {
      if (kind == FileEntry::Kind::kScalar) {
        Issue_(PosOf(mark),
               "the config file must be a map of `key: value` settings, not a "
               "single value");
        throw StopParsing{};
      }
      return;  // an empty document: no settings
    }
    if (depth_ != 1) return;
    if (!have_key_) {
      FileEntry e;
      e.key_pos = PosOf(mark);
      if (kind == FileEntry::Kind::kScalar) {
        e.key = value;
      } else {
        e.key_ok = false;
        if (kind != FileEntry::Kind::kAlias) {
          Issue_(e.key_pos, "keys must be setting names such as `listen`");
        }
      }
      pending_ = std::move(e);
      have_key_ = true;
      return;
    }
    pending_.kind = kind;
    pending_.value = value;
    // An empty value (`workers:`) is reported by yaml-cpp at the next token, often on the
    // next line; the key's position is where the user must look.
    pending_.value_pos = kind == FileEntry::Kind::kNull ? pending_.key_pos : PosOf(mark);
    entries_.push_back(std::move(pending_));
    pending_ = {};
    have_key_ = false;
  }

  std::vector<FileEntry> entries_;
  std::vector<Issue> issues_;
  FileEntry pending_;
  bool have_key_ = false;
  int depth_ = 0;
  int documents_ = 0;
};

std::string At(const std::string& path, Pos pos) {
  if (pos.line == 0) return path;
  return fmt::format("{}:{}:{}", path, pos.line, pos.column);
}

// Byte-level checks before yaml-cpp sees the text: UTF-8 only (yaml-cpp would silently
// decode UTF-16/32) and no control characters YAML does not allow.
std::string CheckText(std::string_view text, const std::string& path) {
  auto at = [&](size_t offset) {
    Pos p{1, 1};
    for (size_t i = 0; i < offset; ++i) {
      if (text[i] == '\n') {
        ++p.line;
        p.column = 1;
      } else {
        ++p.column;
      }
    }
    return At(path, p);
  };
  size_t bad = 0;
  if (!IsValidUtf8(text, &bad)) {
    return fmt::format(
        "{}: the file is not UTF-8 text (invalid byte at offset {}); save it as "
        "UTF-8",
        at(bad), bad);
  }
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      return fmt::format("{}: control character 0x{:02x} is not allowed in the config file", at(i),
                         c);
    }
  }
  return "";
}

// Reads at most kMaxFileBytes + 1 bytes, so /dev/zero and friends cannot exhaust memory.
Result<std::string> ReadConfigFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return Error(e == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument,
                 "config file {}: {}", path, ErrnoText(e));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
    close(fd);
    return Error(ErrorCode::kInvalidArgument, "config file {}: {}", path, ErrnoText(e));
  }
  std::string text;
  char buf[65536];
  while (text.size() <= kMaxFileBytes) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return Error(ErrorCode::kInvalidArgument, "config file {}: {}", path, ErrnoText(e));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (text.size() > kMaxFileBytes) {
    return Error(ErrorCode::kInvalidArgument,
                 "config file {}: larger than {} bytes (1 MiB); a server config is a few lines",
                 path, kMaxFileBytes);
  }
  return text;
}

// Applies the file's settings to `cfg`, recording origins; problems go to `problems`.
void ApplyFile(const std::string& path, const std::string& text, ServerConfig& cfg,
               std::map<std::string_view, Origin>& origins, Problems& problems) {
  if (std::string p = CheckText(text, path); !p.empty()) {
    problems.Add(std::move(p));
    return;
  }
  EntryCollector collector;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    if (parser.HandleNextDocument(collector)) parser.HandleNextDocument(collector);
  } catch (const StopParsing&) {
  } catch (const YAML::Exception& e) {
    std::string msg = e.msg;
    if (!msg.empty()) msg[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(msg[0])));
    for (const auto& issue : collector.issues())
      problems.Add(At(path, issue.pos) + ": " + issue.message);
    problems.Add(fmt::format("{}: YAML syntax error: {}", At(path, PosOf(e.mark)), msg));
    return;
  }
  for (const auto& issue : collector.issues()) {
    problems.Add(At(path, issue.pos) + ": " + issue.message);
  }
  if (!problems.empty()) return;

  std::map<std::string, Pos> seen;
  for (const FileEntry& e : collector.entries()) {
    if (!e.key_ok) continue;
    const std::string where = At(path, e.key_pos);
    const Row* row = FindRow(e.key);
    if (row == nullptr) {
      problems.Add(
          fmt::format("{}: unknown key \"{}\"{}", where, Printable(e.key), SuggestKey(e.key)));
      continue;
    }
    auto [it, inserted] = seen.emplace(e.key, e.key_pos);
    if (!inserted) {
      problems.Add(fmt::format("{}: duplicate key \"{}\" (first at line {}); keep one", where,
                               e.key, it->second.line));
      continue;
    }
    const std::string value_where = At(path, e.value_pos);
    switch (e.kind) {
      case FileEntry::Kind::kNull:
        problems.Add(
            fmt::format("{}: {}: no value; write {} or remove the line to use the "
                        "default",
                        value_where, row->name, TypeName(*row)));
        continue;
      case FileEntry::Kind::kSeq:
      case FileEntry::Kind::kMap:
        problems.Add(fmt::format("{}: {}: expected {}, got a {}", value_where, row->name,
                                 TypeName(*row), e.kind == FileEntry::Kind::kSeq ? "list" : "map"));
        continue;
      case FileEntry::Kind::kAlias:
        continue;  // reported by the collector
      case FileEntry::Kind::kScalar:
        break;
    }
    if (std::string p = Apply(*row, e.value, cfg); !p.empty()) {
      problems.Add(fmt::format("{}: {}", value_where, p));
      continue;
    }
    origins[row->name] = Origin{"file " + path, At(path, e.value_pos)};
  }
}

void ApplyEnv(const std::vector<std::string>& env, ServerConfig& cfg,
              std::map<std::string_view, Origin>& origins, Problems& problems,
              std::vector<std::string>& warnings) {
  std::map<std::string, bool, std::less<>> seen;
  for (const std::string& kv : env) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    const std::string_view name = std::string_view(kv).substr(0, eq);
    const std::string_view value = std::string_view(kv).substr(eq + 1);
    if (!name.starts_with(kEnvPrefix)) continue;
    if (!seen.emplace(std::string(name), true).second) continue;  // the first wins, as getenv
    if (std::find(std::begin(kCliEnv), std::end(kCliEnv), name) != std::end(kCliEnv)) continue;
    const Row* row = nullptr;
    for (const Row& r : Rows()) {
      if (name.substr(kEnvPrefix.size()) == Upper(r.name)) row = &r;
    }
    if (row == nullptr) {
      std::string suggestion;
      if (auto s = Closest(name.substr(kEnvPrefix.size()), KeyNames())) {
        suggestion = fmt::format(" (did you mean {}{}?)", kEnvPrefix, Upper(*s));
      }
      warnings.push_back(
          fmt::format("ignoring {}: no such setting{}", Printable(name), suggestion));
      continue;
    }
    const std::string from = "env " + std::string(name);
    if (std::string p = Apply(*row, value, cfg); !p.empty()) {
      problems.Add(fmt::format("{}: {}", from, p));
      continue;
    }
    origins[row->name] = Origin{from, from};
  }
}

std::string FlagName(const Row& row, bool default_true_bool_set_false) {
  if (default_true_bool_set_false) return "--no-" + Dashed(row.name);
  return "--" + Dashed(row.name);
}

void ApplyFlags(const std::map<std::string, std::string>& flags, ServerConfig& cfg,
                std::map<std::string_view, Origin>& origins, Problems& problems) {
  static const ServerConfig kDefaults;
  for (const auto& [key, value] : flags) {
    const Row* row = FindRow(Snake(key));
    if (row == nullptr) {
      problems.Add(fmt::format("unknown flag --{}{}", Printable(Dashed(key)), SuggestKey(key)));
      continue;
    }
    std::string from = "flag " + FlagName(*row, false);
    if (std::string p = Apply(*row, value, cfg); !p.empty()) {
      problems.Add(fmt::format("{}: {}", from, p));
      continue;
    }
    if (row->type == ConfigType::kBool && ValueText(*row, kDefaults) == "true" &&
        ValueText(*row, cfg) == "false") {
      from = "flag " + FlagName(*row, true);
    }
    origins[row->name] = Origin{from, from};
  }
}

std::string WhereOf(const std::map<std::string_view, Origin>& origins, std::string_view key) {
  auto it = origins.find(key);
  return it == origins.end() ? "default" : it->second.where;
}

void CrossCheck(const ServerConfig& cfg, const std::map<std::string_view, Origin>& origins,
                Problems& problems) {
  if (cfg.tls_cert.empty() != cfg.tls_key.empty()) {
    const bool cert = !cfg.tls_cert.empty();
    problems.Add(fmt::format(
        "{} is set ({}) but {} is not; set both tls_cert and tls_key (HTTPS) or neither "
        "(plain HTTP)",
        cert ? "tls_cert" : "tls_key", WhereOf(origins, cert ? "tls_cert" : "tls_key"),
        cert ? "tls_key" : "tls_cert"));
  }
}

}  // namespace

Result<LoadedConfig> LoadServerConfig(const std::string& config_file,
                                      const std::map<std::string, std::string>& flags,
                                      const std::vector<std::string>& env) {
  LoadedConfig out;
  std::map<std::string_view, Origin> origins;
  Problems problems;
  try {
    if (!config_file.empty()) {
      AUTOMAN_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(config_file));
      ApplyFile(config_file, text, out.config, origins, problems);
    }
    ApplyEnv(env, out.config, origins, problems, out.warnings);
    ApplyFlags(flags, out.config, origins, problems);
    if (problems.empty()) CrossCheck(out.config, origins, problems);
  } catch (const std::exception& e) {  // bad_alloc, or anything yaml-cpp throws unexpectedly
    return Error(ErrorCode::kInternal, "reading the server configuration: {}", e.what());
  }
  if (!problems.empty()) return problems.ToStatus();

  static const ServerConfig kDefaults;
  for (const Row& row : Rows()) {
    const std::string value = ValueText(row, out.config);
    if (value == ValueText(row, kDefaults)) continue;
    auto it = origins.find(row.name);
    out.sources.push_back(ConfigSource{std::string(row.name), Shown(row, value),
                                       it == origins.end() ? "?" : it->second.from});
  }
  return out;
}

std::string DescribeConfigSources(const LoadedConfig& loaded) {
  std::string out;
  for (const ConfigSource& s : loaded.sources) {
    out += fmt::format("config: {} = {} (from {})\n", s.key, s.value, s.from);
  }
  for (const std::string& w : loaded.warnings) out += fmt::format("config: warning: {}\n", w);
  return out;
}

const std::vector<ServerConfigKey>& ServerConfigKeys() {
  static const std::vector<ServerConfigKey> kKeys = [] {
    const ServerConfig defaults;
    std::vector<ServerConfigKey> keys;
    for (const Row& r : Rows()) {
      const std::string def = ValueText(r, defaults);
      keys.push_back(ServerConfigKey{
          .name = r.name,
          .type = r.type,
          .help = r.help,
          .env = std::string(kEnvPrefix) + Upper(r.name),
          .flag = FlagName(r, r.type == ConfigType::kBool && def == "true"),
          .default_value = def,
          .choices = r.choices,
          .secret = IsSecret(r.name),
      });
    }
    return keys;
  }();
  return kKeys;
}

}  // namespace automan
