// YNode tree -> Runbook: every structural and semantic rule of runbook format v1.
//
// Conventions for messages: they start with the key path ("steps[1].retries.delay: ..."),
// say what was found, and say what to write instead. Every problem is recorded; nothing
// stops at the first one. A node marked `bad` was already reported by the tree builder and
// is skipped silently.
#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/duration.h"
#include "common/size.h"
#include "runbook/quote.h"
#include "runbook/runbook.h"
#include "runbook/yaml_tree.h"

namespace automan::runbook_detail {

namespace {

using runbook_detail::QuoteForMessage;

using Kind = YNode::Kind;

std::string Join(const std::vector<std::string_view>& items, std::string_view sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// ^[a-z][a-z0-9<extra>]*$
bool MatchesName(std::string_view s, std::string_view extra) {
  if (s.empty() || !IsLower(s[0])) return false;
  for (char c : s) {
    if (!IsLower(c) && !IsDigit(c) && extra.find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool IsPlainBool(const YNode& n, bool* value) {
  static const char* kTrue[] = {"true", "True", "TRUE"};
  static const char* kFalse[] = {"false", "False", "FALSE"};
  for (const char* t : kTrue) {
    if (n.value == t) {
      if (value) *value = true;
      return true;
    }
  }
  for (const char* f : kFalse) {
    if (n.value == f) {
      if (value) *value = false;
      return true;
    }
  }
  return false;
}

bool LooksLikeInt(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i >= s.size()) return false;
  for (; i < s.size(); ++i) {
    if (!IsDigit(s[i])) return false;
  }
  return true;
}

bool LooksLikeYaml11Bool(std::string_view s) {
  static const char* kWords[] = {"yes", "no",  "on",  "off", "y",  "n",   "Yes", "No",
                                 "On",  "Off", "YES", "NO",  "ON", "OFF", "Y",   "N"};
  for (const char* w : kWords) {
    if (s == w) return true;
  }
  return false;
}

// The exact shape of an RFC 3339 instant: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM).
// Checked before ParseRfc3339 because the date library reads uninitialised fields on some
// malformed inputs (e.g. "2030-01-31T09:o"), which UBSan reports; only well-formed text
// reaches it. Ranges (month 13, hour 25) are left to ParseRfc3339.
bool HasRfc3339Shape(std::string_view s) {
  size_t i = 0;
  auto digits = [&](size_t n) {
    for (size_t k = 0; k < n; ++k, ++i) {
      if (i >= s.size() || !IsDigit(s[i])) return false;
    }
    return true;
  };
  auto lit = [&](char c) { return i < s.size() && s[i++] == c; };
  if (!(digits(4) && lit('-') && digits(2) && lit('-') && digits(2) && lit('T') && digits(2) &&
        lit(':') && digits(2) && lit(':') && digits(2))) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start || i - start > 9) return false;
  }
  if (i < s.size() && s[i] == 'Z') return i + 1 == s.size();
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    ++i;
    return digits(2) && lit(':') && digits(2) && i == s.size();
  }
  return false;
}

// Path helpers: "steps[0].retries".
std::string Sub(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return std::string(path) + "." + std::string(key);
}
std::string Index(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

class Validator {
 public:
  explicit Validator(std::vector<Diagnostic>& diags) : diags_(diags) {}

  Runbook Build(const YNode& root);

 private:
  // A step's output key and where it was written, for the env-name collision check.
  struct OutputRef {
    std::string step;
    std::string key;
    SourceLocation loc;
  };

  void Error(SourceLocation loc, std::string message) {
    diags_.push_back(Diagnostic{"", loc, std::move(message)});
  }

  // Reports `path: expected <what>, got <description>` unless the node was already reported.
  void Expected(const YNode& n, std::string_view path, std::string_view what,
                std::string_view hint = "") {
    if (n.bad) return;
    std::string msg =
        std::string(path) + ": expected " + std::string(what) + ", got " + Describe(n);
    if (n.IsScalar()) msg += " " + QuoteForMessage(n.value);
    if (!hint.empty()) msg += "; " + std::string(hint);
    Error(n.loc, std::move(msg));
  }

  // Checks that `n` is a map and reports unknown keys (with a suggestion), non-scalar keys
  // and duplicate keys. Returns false when `n` is not a map.
  bool CheckMap(const YNode& n, std::string_view path, std::string_view what,
                const std::vector<std::string_view>& known) {
    if (!n.IsMap()) {
      Expected(n, path, what);
      return false;
    }
    std::map<std::string, SourceLocation> seen;
    for (const auto& [k, v] : n.entries) {
      if (!k.IsScalar()) {
        if (!k.bad) {
          Error(k.loc, std::string(path.empty() ? "top level" : path) +
                           ": keys must be plain names, got " + Describe(k));
        }
        continue;
      }
      auto [it, inserted] = seen.emplace(k.value, k.loc);
      if (!inserted) {
        Error(k.loc, "duplicate key " + QuoteForMessage(k.value) +
                         (path.empty() ? "" : " in " + std::string(path)) + " (first at line " +
                         std::to_string(it->second.line) +
                         "); YAML keeps only one of them, so remove or rename one");
        continue;
      }
      if (known.empty()) continue;  // free-form map (params, env, ...)
      if (std::find(known.begin(), known.end(), k.value) != known.end()) continue;
      std::string_view best;
      int best_d = 1 << 30;
      for (std::string_view cand : known) {
        int d = EditDistance(k.value, cand);
        if (d < best_d) {
          best_d = d;
          best = cand;
        }
      }
      std::string msg = "unknown key " + QuoteForMessage(k.value);
      if (!path.empty()) msg += " in " + std::string(path);
      // A prefix of at least 3 characters ("net" for "network") also counts as close.
      if (best_d > 2 && k.value.size() >= 3) {
        for (std::string_view cand : known) {
          if (cand.size() > k.value.size() && cand.substr(0, k.value.size()) == k.value) {
            best = cand;
            best_d = 0;
            break;
          }
        }
      }
      if (best_d <= 2 && best_d < static_cast<int>(std::max(k.value.size(), best.size()))) {
        msg += "; did you mean " + QuoteForMessage(best) + "?";
      } else {
        msg += "; known keys are: " + Join(known);
      }
      Error(k.loc, std::move(msg));
    }
    return true;
  }

  // First value for `key` in a map node (duplicates are reported by CheckMap).
  static const YNode* Get(const YNode& map, std::string_view key) {
    if (!map.IsMap()) return nullptr;
    for (const auto& [k, v] : map.entries) {
      if (k.IsScalar() && k.value == key) return &v;
    }
    return nullptr;
  }
  static const YNode* GetKey(const YNode& map, std::string_view key) {
    if (!map.IsMap()) return nullptr;
    for (const auto& [k, v] : map.entries) {
      if (k.IsScalar() && k.value == key) return &k;
    }
    return nullptr;
  }

  std::optional<std::string> String(const YNode& n, std::string_view path,
                                    std::string_view what = "a string") {
    if (!n.IsScalar() || n.bad) {
      Expected(n, path, what);
      return std::nullopt;
    }
    return n.value;
  }

  std::optional<std::string> NonEmptyString(const YNode& n, std::string_view path,
                                            std::string_view what = "a non-empty string") {
    auto s = String(n, path, what);
    if (s && s->empty()) {
      Error(n.loc, std::string(path) + ": must not be empty; write " + std::string(what) +
                       " or remove the key");
      return std::nullopt;
    }
    return s;
  }

  std::optional<bool> Bool(const YNode& n, std::string_view path) {
    bool v = false;
    if (n.IsScalar() && !n.bad && n.plain && IsPlainBool(n, &v)) return v;
    if (n.IsScalar() && !n.bad && !n.plain) {
      bool unused;
      if (IsPlainBool(n, &unused) || LooksLikeYaml11Bool(n.value)) {
        Expected(n, path, "true or false", "remove the quotes");
        return std::nullopt;
      }
    }
    if (n.IsScalar() && !n.bad && n.plain && LooksLikeYaml11Bool(n.value)) {
      Expected(n, path, "true or false",
               "write true or false (YAML 1.1 spellings are not accepted)");
      return std::nullopt;
    }
    Expected(n, path, "true or false");
    return std::nullopt;
  }

  std::optional<int64_t> Int(const YNode& n, std::string_view path, int64_t lo, int64_t hi) {
    std::string range = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
    if (hi == INT32_MAX) range = "an integer of at least " + std::to_string(lo);
    if (!n.IsScalar() || n.bad || !LooksLikeInt(n.value)) {
      Expected(n, path, range);
      return std::nullopt;
    }
    if (!n.plain) {
      Expected(n, path, range, "remove the quotes");
      return std::nullopt;
    }
    std::string_view s = n.value;
    bool neg = s[0] == '-';
    if (s[0] == '-' || s[0] == '+') s.remove_prefix(1);
    int64_t v = 0;
    bool overflow = false;
    for (char c : s) {
      if (v > (INT64_MAX - 9) / 10) {
        overflow = true;
        break;
      }
      v = v * 10 + (c - '0');
    }
    if (neg) v = -v;
    if (overflow || v < lo || v > hi) {
      Error(n.loc, std::string(path) + ": " + n.value + " is out of range; write " + range);
      return std::nullopt;
    }
    return v;
  }

  std::optional<Millis> DurationValue(const YNode& n, std::string_view path, bool positive) {
    if (!n.IsScalar() || n.bad) {
      Expected(n, path, "a duration such as 500ms, 30s, 5m or 2h");
      return std::nullopt;
    }
    if (n.plain && LooksLikeInt(n.value)) {
      Error(n.loc, std::string(path) + ": " + n.value + " has no unit; add one, e.g. " + n.value +
                       "s or " + n.value + "ms");
      return std::nullopt;
    }
    auto d = ParseDuration(n.value);
    if (!d.ok()) {
      Error(n.loc, std::string(path) + ": " + d.status().message());
      return std::nullopt;
    }
    if (positive && d->count() <= 0) {
      Error(n.loc, std::string(path) + ": must be longer than 0, e.g. 30s");
      return std::nullopt;
    }
    return *d;
  }

  std::optional<std::string> OneOf(const YNode& n, std::string_view path,
                                   const std::vector<std::string_view>& allowed) {
    std::string what = "one of " + Join(allowed, ", ");
    if (!n.IsScalar() || n.bad) {
      Expected(n, path, what);
      return std::nullopt;
    }
    if (std::find(allowed.begin(), allowed.end(), n.value) == allowed.end()) {
      Error(n.loc,
            std::string(path) + ": " + QuoteForMessage(n.value) + " is not valid; write " + what);
      return std::nullopt;
    }
    return n.value;
  }

  // A list of scalars. `check` validates one element (and reports); returns the kept ones.
  template <typename Check>
  std::vector<std::string> StringList(const YNode& n, std::string_view path, std::string_view what,
                                      Check check) {
    std::vector<std::string> out;
    if (!n.IsSeq()) {
      Expected(n, path, what);
      return out;
    }
    for (size_t i = 0; i < n.items.size(); ++i) {
      const YNode& item = n.items[i];
      auto s = String(item, Index(path, i));
      if (s && check(item, *s, Index(path, i))) out.push_back(*s);
    }
    return out;
  }

  void MissingKey(const YNode& map, std::string_view path, std::string_view key,
                  std::string_view example) {
    Error(map.loc, (path.empty() ? std::string() : std::string(path) + ": ") +
                       "missing required key " + QuoteForMessage(key) + "; add e.g. " +
                       std::string(example));
  }

  std::optional<RetryPolicy> Retries(const YNode& n, std::string_view path);
  void Params(const YNode& n, Runbook& rb);
  std::optional<Step> ParseStep(const YNode& n, const std::string& path);
  void Steps(const YNode& n, std::string_view key, std::vector<Step>& out, bool required);
  void Concurrency(const YNode& n, Runbook& rb);
  void Schedules(const YNode& n, Runbook& rb);
  void Sandbox(const YNode& n, Runbook& rb);
  void CheckOutputCollisions();

  std::vector<Diagnostic>& diags_;
  std::vector<OutputRef> outputs_;
  std::map<std::string, SourceLocation> step_ids_;
};

Runbook Validator::Build(const YNode& root) {
  Runbook rb;
  static const std::vector<std::string_view> kTop = {
      "id",        "name",     "description",   "category",    "tags",
      "params",    "timeout",  "retries",       "steps",       "rollback",
      "dangerous", "requires", "allowed_roles", "concurrency", "schedules",
      "sandbox",   "secrets",  "cooldown"};
  if (!root.IsMap()) {
    Expected(root, "top level", "a map of runbook keys (id, steps, ...)");
    return rb;
  }
  CheckMap(root, "", "a map", kTop);

  if (const YNode* n = Get(root, "id")) {
    if (auto s = String(*n, "id")) {
      if (!MatchesName(*s, "-")) {
        Error(n->loc, "id: " + QuoteForMessage(*s) +
                          " is not a valid runbook id; use lower-case letters, digits and '-', "
                          "starting with a letter (e.g. restart-web)");
      } else {
        rb.id = *s;
      }
    }
  } else {
    MissingKey(root, "", "id", "id: restart-web");
  }
  if (const YNode* n = Get(root, "name")) {
    if (auto s = String(*n, "name")) rb.name = *s;
  }
  if (const YNode* n = Get(root, "description")) {
    if (auto s = String(*n, "description")) rb.description = *s;
  }
  if (const YNode* n = Get(root, "category")) {
    if (auto s = String(*n, "category")) rb.category = *s;
  }
  if (const YNode* n = Get(root, "tags")) {
    rb.tags = StringList(*n, "tags", "a list of strings (e.g. [web, restart])",
                         [&](const YNode& item, const std::string& s, const std::string& p) {
                           if (s.empty()) {
                             Error(item.loc, p + ": tags must not be empty strings");
                             return false;
                           }
                           return true;
                         });
  }
  if (const YNode* n = Get(root, "params")) Params(*n, rb);
  if (const YNode* n = Get(root, "timeout")) rb.timeout = DurationValue(*n, "timeout", true);
  if (const YNode* n = Get(root, "cooldown")) {
    rb.cooldown = DurationValue(*n, "cooldown", true);
    if (rb.cooldown && *rb.cooldown < Millis(1000)) {
      Error(n->loc, "cooldown: " + FormatDuration(*rb.cooldown) +
                        " is shorter than the 1s minimum (drop the key for no cooldown)");
      rb.cooldown.reset();
    }
  }
  if (const YNode* n = Get(root, "retries")) rb.retries = Retries(*n, "retries");
  if (const YNode* n = Get(root, "steps")) {
    Steps(*n, "steps", rb.steps, true);
  } else {
    MissingKey(root, "", "steps", "steps: [{id: hello, shell: echo hello}]");
  }
  if (const YNode* n = Get(root, "rollback")) Steps(*n, "rollback", rb.rollback, false);
  if (const YNode* n = Get(root, "dangerous")) {
    if (auto b = Bool(*n, "dangerous")) rb.dangerous = *b;
  }
  if (const YNode* n = Get(root, "requires")) {
    if (auto s = String(*n, "requires")) {
      size_t dot = s->find('.');
      auto part_ok = [](std::string_view p) {
        return !p.empty() &&
               std::all_of(p.begin(), p.end(), [](char c) { return IsLower(c) || c == '_'; });
      };
      if (dot == std::string::npos || !part_ok(std::string_view(*s).substr(0, dot)) ||
          !part_ok(std::string_view(*s).substr(dot + 1))) {
        Error(n->loc, "requires: " + QuoteForMessage(*s) +
                          " is not a permission; write area.action in lower case, e.g. "
                          "runs.execute");
      } else {
        rb.requires_permission = *s;
      }
    }
  }
  if (const YNode* n = Get(root, "allowed_roles")) {
    std::set<std::string> seen;
    rb.allowed_roles = StringList(
        *n, "allowed_roles", "a list of role names (e.g. [operator, admin])",
        [&](const YNode& item, const std::string& s, const std::string& p) {
          if (!MatchesName(s, "_-")) {
            Error(item.loc, p + ": " + QuoteForMessage(s) +
                                " is not a role name; use lower-case letters, digits, '_' and "
                                "'-', starting with a letter");
            return false;
          }
          if (!seen.insert(s).second) {
            Error(item.loc, p + ": role " + QuoteForMessage(s) + " is listed twice; remove one");
            return false;
          }
          return true;
        });
  }
  if (const YNode* n = Get(root, "secrets")) {
    std::set<std::string> seen;
    rb.secrets = StringList(
        *n, "secrets", "a list of secret names from the secret store (e.g. [db_password])",
        [&](const YNode& item, const std::string& s, const std::string& p) {
          if (!IsValidSecretName(s)) {
            Error(item.loc, p + ": " + QuoteForMessage(s) +
                                " is not a secret name; use letters, digits and '_', starting "
                                "with a letter (at most 64)");
            return false;
          }
          if (!seen.insert(s).second) {
            Error(item.loc, p + ": secret " + QuoteForMessage(s) + " is listed twice; remove one");
            return false;
          }
          return true;
        });
  }
  if (const YNode* n = Get(root, "concurrency")) Concurrency(*n, rb);
  if (const YNode* n = Get(root, "schedules")) Schedules(*n, rb);
  if (const YNode* n = Get(root, "sandbox")) Sandbox(*n, rb);
  CheckOutputCollisions();
  return rb;
}

std::optional<RetryPolicy> Validator::Retries(const YNode& n, std::string_view path) {
  static const std::vector<std::string_view> kKeys = {"count", "backoff", "delay", "max_delay",
                                                      "no_retry_exit_codes"};
  RetryPolicy p;
  if (n.IsScalar() && !n.bad && n.plain && LooksLikeInt(n.value)) {
    auto c = Int(n, path, 0, 100);
    if (!c) return std::nullopt;
    p.count = static_cast<int>(*c);
    return p;
  }
  if (!n.IsMap()) {
    Expected(
        n, path,
        "a retry count (e.g. 3) or a map {count, backoff, delay, max_delay, no_retry_exit_codes}");
    return std::nullopt;
  }
  size_t before = diags_.size();
  CheckMap(n, path, "a map", kKeys);
  if (const YNode* v = Get(n, "count")) {
    if (auto c = Int(*v, Sub(path, "count"), 0, 100)) p.count = static_cast<int>(*c);
  }
  if (const YNode* v = Get(n, "backoff")) {
    if (auto s = OneOf(*v, Sub(path, "backoff"), {"fixed", "exponential"})) {
      p.backoff = *s == "fixed" ? RetryPolicy::Backoff::kFixed : RetryPolicy::Backoff::kExponential;
    }
  }
  bool explicit_max = false;
  if (const YNode* v = Get(n, "delay")) {
    if (auto d = DurationValue(*v, Sub(path, "delay"), false)) p.delay = *d;
  }
  if (const YNode* v = Get(n, "max_delay")) {
    if (auto d = DurationValue(*v, Sub(path, "max_delay"), false)) {
      p.max_delay = *d;
      explicit_max = true;
      if (p.max_delay < p.delay) {
        Error(v->loc, Sub(path, "max_delay") + ": " + FormatDuration(p.max_delay) +
                          " is shorter than delay " + FormatDuration(p.delay) +
                          "; make max_delay at least the delay");
      }
    }
  }
  // The default cap (5m) never undercuts an explicit longer delay.
  if (!explicit_max && p.max_delay < p.delay) p.max_delay = p.delay;
  if (const YNode* v = Get(n, "no_retry_exit_codes")) {
    std::string cpath = Sub(path, "no_retry_exit_codes");
    if (!v->IsSeq()) {
      Expected(*v, cpath, "a list of exit codes (e.g. [2, 64])");
    } else {
      for (size_t i = 0; i < v->items.size(); ++i) {
        if (auto c = Int(v->items[i], Index(cpath, i), 0, 255)) {
          p.no_retry_exit_codes.push_back(static_cast<int>(*c));
        }
      }
    }
  }
  if (diags_.size() != before) return std::nullopt;
  return p;
}

void Validator::Params(const YNode& n, Runbook& rb) {
  static const std::vector<std::string_view> kKeys = {"type",    "required", "default",
                                                      "pattern", "values",   "description"};
  if (!CheckMap(n, "params", "a map from parameter name to {type, required, default, ...}", {})) {
    return;
  }
  std::set<std::string> seen;
  for (const auto& [k, v] : n.entries) {
    if (!k.IsScalar() || !seen.insert(k.value).second) continue;  // reported by CheckMap
    const std::string path = "params." + k.value;
    ParamSpec spec;
    spec.name = k.value;
    spec.loc = k.loc;
    bool ok = true;
    if (!MatchesName(k.value, "_")) {
      Error(k.loc, "params: " + QuoteForMessage(k.value) +
                       " is not a valid parameter name; use lower-case letters, digits and "
                       "'_', starting with a letter (e.g. service_name)");
      continue;
    }
    if (!CheckMap(v, path, "a map {type, required, default, pattern, values, description}",
                  kKeys)) {
      continue;
    }
    if (const YNode* t = Get(v, "type")) {
      auto s = OneOf(*t, Sub(path, "type"), {"string", "int", "number", "bool", "enum", "secret"});
      if (!s) {
        ok = false;
      } else if (*s == "int") {
        spec.type = ParamType::kInt;
      } else if (*s == "number") {
        spec.type = ParamType::kNumber;
      } else if (*s == "bool") {
        spec.type = ParamType::kBool;
      } else if (*s == "enum") {
        spec.type = ParamType::kEnum;
      } else if (*s == "secret") {
        spec.type = ParamType::kSecret;
      }
    }
    if (const YNode* r = Get(v, "required")) {
      if (auto b = Bool(*r, Sub(path, "required")))
        spec.required = *b;
      else
        ok = false;
    }
    if (const YNode* d = Get(v, "description")) {
      if (auto s = String(*d, Sub(path, "description")))
        spec.description = *s;
      else
        ok = false;
    }
    if (const YNode* p = Get(v, "pattern")) {
      if (auto s = NonEmptyString(*p, Sub(path, "pattern"), "a regular expression")) {
        if (spec.type != ParamType::kString && spec.type != ParamType::kSecret) {
          Error(p->loc, Sub(path, "pattern") +
                            ": patterns apply to string and secret "
                            "parameters only; remove it (this parameter is " +
                            std::string(ToString(spec.type)) + ")");
          ok = false;
        } else {
          RE2::Options opts;
          opts.set_log_errors(false);
          RE2 re(*s, opts);
          if (!re.ok()) {
            Error(p->loc, Sub(path, "pattern") + ": " + QuoteForMessage(*s) +
                              " is not a valid RE2 regular expression (" + re.error() +
                              "); fix the expression");
            ok = false;
          } else {
            spec.pattern = *s;
          }
        }
      } else {
        ok = false;
      }
    }
    const YNode* values = Get(v, "values");
    if (values) {
      std::string vpath = Sub(path, "values");
      if (spec.type != ParamType::kEnum) {
        Error(values->loc, vpath +
                               ": values apply to enum parameters only; write type: enum "
                               "or remove values");
        ok = false;
      } else if (!values->IsSeq()) {
        Expected(*values, vpath, "a list of allowed values (e.g. [dev, staging, prod])");
        ok = false;
      } else if (values->items.empty()) {
        Error(values->loc, vpath + ": the list is empty; list at least one allowed value");
        ok = false;
      } else {
        std::set<std::string> members;
        for (size_t i = 0; i < values->items.size(); ++i) {
          const YNode& item = values->items[i];
          auto s = String(item, Index(vpath, i), "a value (a string)");
          if (!s) {
            ok = false;
            continue;
          }
          if (s->empty()) {
            Error(item.loc, Index(vpath, i) + ": enum values must not be empty");
            ok = false;
          } else if (!members.insert(*s).second) {
            Error(item.loc,
                  Index(vpath, i) + ": " + QuoteForMessage(*s) + " is listed twice; remove one");
            ok = false;
          } else {
            spec.values.push_back(*s);
          }
        }
      }
    } else if (spec.type == ParamType::kEnum && ok) {
      Error(v.loc, path +
                       ": an enum parameter needs `values:`, the list of allowed values "
                       "(e.g. values: [dev, staging, prod])");
      ok = false;
    }
    if (const YNode* d = Get(v, "default")) {
      const YNode* dkey = GetKey(v, "default");
      if (spec.type == ParamType::kSecret) {
        Error(dkey->loc, Sub(path, "default") +
                             ": secret parameters cannot have a default; "
                             "remove it and pass the value at run time (-p " +
                             k.value + "=...)");
      } else if (spec.required) {
        Error(dkey->loc, path +
                             ": required params cannot have a default; drop one "
                             "(remove `required: true` or the default)");
      } else if (auto s = String(*d, Sub(path, "default"), "a value")) {
        if (ok) {
          auto canon = CanonicalParamValue(spec, *s);
          if (!canon.ok()) {
            Error(d->loc, Sub(path, "default") + ": bad default: " + canon.status().message());
          } else {
            spec.default_value = *canon;
          }
        }
      }
    }
    rb.params.push_back(std::move(spec));
  }
}

std::optional<Step> Validator::ParseStep(const YNode& n, const std::string& path) {
  static const std::vector<std::string_view> kKeys = {
      "id",     "name", "shell", "argv", "env", "cwd", "timeout", "retries", "continue_on_error",
      "outputs"};
  if (!CheckMap(n, path, "a step: a map with id and shell or argv", kKeys)) return std::nullopt;
  Step step;
  step.loc = n.loc;
  std::string where = path;
  if (const YNode* v = Get(n, "id")) {
    if (auto s = String(*v, Sub(path, "id"))) {
      if (!MatchesName(*s, "_")) {
        Error(v->loc, Sub(path, "id") + ": " + QuoteForMessage(*s) +
                          " is not a valid step id; use lower-case letters, digits and '_', "
                          "starting with a letter (e.g. check_health)");
      } else {
        step.id = *s;
        auto [it, inserted] = step_ids_.emplace(*s, v->loc);
        if (!inserted) {
          Error(v->loc, Sub(path, "id") + ": duplicate step id " + QuoteForMessage(*s) +
                            " (first at line " + std::to_string(it->second.line) +
                            "); step ids must be unique across steps and rollback");
        }
      }
    }
  } else {
    MissingKey(n, path, "id", "id: check_health");
  }
  if (const YNode* v = Get(n, "name")) {
    if (auto s = String(*v, Sub(path, "name"))) step.name = *s;
  }
  const YNode* shell = Get(n, "shell");
  const YNode* argv = Get(n, "argv");
  if (shell && argv) {
    Error(GetKey(n, "argv")->loc, path + ": give either shell or argv, not both");
  } else if (!shell && !argv) {
    Error(n.loc, path +
                     ": a step needs a command: shell (a script run by /bin/sh -e -c) or "
                     "argv (a list such as [systemctl, restart, web])");
  }
  if (shell) {
    if (auto s = NonEmptyString(*shell, Sub(path, "shell"), "a shell script (a string)")) {
      step.shell = *s;
    }
  }
  if (argv) {
    std::string apath = Sub(path, "argv");
    if (!argv->IsSeq()) {
      Expected(*argv, apath, "a list of strings (e.g. [ls, -l, /tmp])",
               argv->IsScalar() ? "use shell: for a command line, or split it into a list" : "");
    } else if (argv->items.empty()) {
      Error(argv->loc, apath + ": the list is empty; give the program and its arguments");
    } else {
      for (size_t i = 0; i < argv->items.size(); ++i) {
        if (auto s = String(argv->items[i], Index(apath, i))) step.argv.push_back(*s);
      }
      if (!step.argv.empty() && step.argv[0].empty()) {
        Error(argv->items[0].loc, Index(apath, 0) + ": the program name must not be empty");
      }
    }
  }
  if (const YNode* v = Get(n, "env")) {
    std::string epath = Sub(path, "env");
    if (CheckMap(*v, epath, "a map of environment variables (NAME: value)", {})) {
      std::set<std::string> seen;
      for (const auto& [k, val] : v->entries) {
        if (!k.IsScalar() || !seen.insert(k.value).second) continue;
        bool ok_name = !k.value.empty() &&
                       (k.value[0] == '_' || (k.value[0] >= 'A' && k.value[0] <= 'Z') ||
                        IsLower(k.value[0])) &&
                       std::all_of(k.value.begin(), k.value.end(), [](char c) {
                         return c == '_' || IsDigit(c) || IsLower(c) || (c >= 'A' && c <= 'Z');
                       });
        if (!ok_name) {
          Error(k.loc, epath + ": " + QuoteForMessage(k.value) +
                           " is not a valid environment variable name; use letters, digits "
                           "and '_', not starting with a digit");
          continue;
        }
        if (k.value.rfind("AUTOMAN_", 0) == 0) {
          Error(k.loc, epath + ": " + QuoteForMessage(k.value) +
                           " is reserved (AUTOMAN_* variables are set by Automan); choose "
                           "another name");
          continue;
        }
        if (val.IsNull() && !val.bad) {
          Error(val.loc, Sub(epath, k.value) +
                             ": has no value; write a value (\"\" for an "
                             "empty string) or remove the variable");
          continue;
        }
        if (auto s = String(val, Sub(epath, k.value), "a value (a string, number or boolean)")) {
          step.env.emplace_back(k.value, *s);
        }
      }
    }
  }
  if (const YNode* v = Get(n, "cwd")) {
    if (auto s = NonEmptyString(*v, Sub(path, "cwd"), "a directory")) step.cwd = *s;
  }
  if (const YNode* v = Get(n, "timeout"))
    step.timeout = DurationValue(*v, Sub(path, "timeout"), true);
  if (const YNode* v = Get(n, "retries")) step.retries = Retries(*v, Sub(path, "retries"));
  if (const YNode* v = Get(n, "continue_on_error")) {
    if (auto b = Bool(*v, Sub(path, "continue_on_error"))) step.continue_on_error = *b;
  }
  if (const YNode* v = Get(n, "outputs")) {
    std::set<std::string> seen;
    step.outputs = StringList(
        *v, Sub(path, "outputs"), "a list of output keys (e.g. [version, url])",
        [&](const YNode& item, const std::string& s, const std::string& p) {
          if (!MatchesName(s, "_")) {
            Error(item.loc, p + ": " + QuoteForMessage(s) +
                                " is not a valid output key; use lower-case letters, digits "
                                "and '_', starting with a letter");
            return false;
          }
          if (!seen.insert(s).second) {
            Error(item.loc, p + ": output " + QuoteForMessage(s) + " is listed twice; remove one");
            return false;
          }
          if (!step.id.empty()) outputs_.push_back({step.id, s, item.loc});
          return true;
        });
  }
  return step;
}

void Validator::Steps(const YNode& n, std::string_view key, std::vector<Step>& out, bool required) {
  std::string what = key == "steps" ? "a list of steps" : "a list of rollback steps";
  if (!n.IsSeq()) {
    Expected(n, key, what, n.IsMap() ? "start each step with '- '" : "");
    return;
  }
  if (n.items.empty()) {
    if (required) {
      Error(n.loc, std::string(key) + ": the list is empty; add at least one step");
    } else {
      Error(n.loc, std::string(key) + ": the list is empty; add a step or remove the key");
    }
    return;
  }
  for (size_t i = 0; i < n.items.size(); ++i) {
    if (auto s = ParseStep(n.items[i], Index(key, i))) out.push_back(std::move(*s));
  }
}

void Validator::CheckOutputCollisions() {
  std::map<std::string, const OutputRef*> names;
  for (const OutputRef& o : outputs_) {
    std::string env = "AUTOMAN_OUT_" + EnvName(o.step) + "_" + EnvName(o.key);
    auto [it, inserted] = names.emplace(env, &o);
    if (!inserted) {
      const OutputRef& first = *it->second;
      Error(o.loc, "output " + QuoteForMessage(o.key) + " of step " + QuoteForMessage(o.step) +
                       " and output " + QuoteForMessage(first.key) + " of step " +
                       QuoteForMessage(first.step) + " (line " + std::to_string(first.loc.line) +
                       ") would both be passed as " + env + "; rename the step or the output");
    }
  }
}

void Validator::Concurrency(const YNode& n, Runbook& rb) {
  static const std::vector<std::string_view> kKeys = {"key", "limit", "rate"};
  auto one = [&](const YNode& m, const std::string& path) {
    if (!CheckMap(m, path, "a map {key, limit, rate}", kKeys)) return;
    ConcurrencyLimit c;
    bool ok = true;
    if (const YNode* k = Get(m, "key")) {
      if (auto s = NonEmptyString(*k, Sub(path, "key"), "a lock key (e.g. deploy-web)"))
        c.key = *s;
      else
        ok = false;
    } else {
      MissingKey(m, path, "key", "key: deploy-web");
      ok = false;
    }
    if (c.key.size() > 200) {
      Error(m.loc, Sub(path, "key") + ": longer than 200 characters");
      ok = false;
    }
    const YNode* r = Get(m, "rate");
    if (r != nullptr) {
      // "COUNT/DURATION": at most COUNT starts per DURATION (a token bucket).
      std::string_view text = r->IsScalar() && !r->bad ? std::string_view(r->value) : "";
      size_t slash = text.find('/');
      std::optional<int64_t> count;
      if (slash != std::string_view::npos && slash > 0 && slash <= 6 &&
          LooksLikeInt(std::string(text.substr(0, slash)))) {
        count = std::stoll(std::string(text.substr(0, slash)));
      }
      auto per = slash == std::string_view::npos ? Result<Millis>(Millis(0))
                                                 : ParseDuration(text.substr(slash + 1));
      if (!count || *count < 1 || *count > 1'000'000 || !per.ok() || per->count() <= 0) {
        Error(r->loc, Sub(path, "rate") +
                          ": write COUNT/DURATION, e.g. 10/1m (at most 10 "
                          "starts a minute) or 1/5s");
        ok = false;
      } else {
        c.rate_count = static_cast<int>(*count);
        c.rate_per = *per;
        c.limit = INT32_MAX;  // a rate alone limits starts, not how many run at once
      }
    }
    if (const YNode* l = Get(m, "limit")) {
      if (auto v = Int(*l, Sub(path, "limit"), 1, INT32_MAX))
        c.limit = static_cast<int>(*v);
      else
        ok = false;
    }
    if (ok) rb.concurrency.push_back(std::move(c));
  };
  if (n.IsMap()) {
    one(n, "concurrency");
  } else if (n.IsSeq()) {
    for (size_t i = 0; i < n.items.size(); ++i) one(n.items[i], Index("concurrency", i));
  } else {
    Expected(n, "concurrency", "a map {key, limit, rate} or a list of them");
  }
}

void Validator::Schedules(const YNode& n, Runbook& rb) {
  static const std::vector<std::string_view> kKeys = {
      "id",  "cron",    "every",        "at",      "tz",     "lead",  "params",
      "dst", "misfire", "max_lateness", "overlap", "jitter", "active"};
  if (!n.IsSeq()) {
    Expected(n, "schedules", "a list of schedules",
             n.IsMap() ? "start each schedule with '- '" : "");
    return;
  }
  std::map<std::string, SourceLocation> ids;
  for (size_t i = 0; i < n.items.size(); ++i) {
    const YNode& m = n.items[i];
    const std::string path = Index("schedules", i);
    if (!CheckMap(m, path, "a schedule: a map with id and cron, every or at", kKeys)) continue;
    ScheduleSpec s;
    s.loc = m.loc;
    if (const YNode* v = Get(m, "id")) {
      if (auto id = String(*v, Sub(path, "id"))) {
        if (!MatchesName(*id, "_-")) {
          Error(v->loc, Sub(path, "id") + ": " + QuoteForMessage(*id) +
                            " is not a valid schedule id; use lower-case letters, digits, '_' "
                            "and '-', starting with a letter (e.g. nightly)");
        } else if (auto [it, inserted] = ids.emplace(*id, v->loc); !inserted) {
          Error(v->loc, Sub(path, "id") + ": duplicate schedule id " + QuoteForMessage(*id) +
                            " (first at line " + std::to_string(it->second.line) +
                            "); give each schedule its own id");
        } else {
          s.id = *id;
        }
      }
    } else {
      MissingKey(m, path, "id", "id: nightly");
    }
    const YNode* cron = Get(m, "cron");
    const YNode* every = Get(m, "every");
    const YNode* at = Get(m, "at");
    int kinds = (cron ? 1 : 0) + (every ? 1 : 0) + (at ? 1 : 0);
    if (kinds == 0) {
      Error(m.loc, path +
                       ": a schedule needs exactly one of cron (e.g. \"0 3 * * *\"), "
                       "every (e.g. 15m) or at (e.g. 2026-01-31T09:00:00Z)");
    } else if (kinds > 1) {
      Error(m.loc, path + ": give exactly one of cron, every or at, not several");
    }
    if (cron) {
      if (auto c =
              NonEmptyString(*cron, Sub(path, "cron"), "a cron expression (e.g. \"0 3 * * *\")")) {
        if (c->size() > 256) {
          Error(cron->loc, Sub(path, "cron") + ": the expression is longer than 256 characters");
        } else {
          s.cron = *c;
        }
      }
    }
    if (every) {
      if (auto d = DurationValue(*every, Sub(path, "every"), true)) {
        if (*d < Millis(1000)) {
          Error(every->loc, Sub(path, "every") + ": " + FormatDuration(*d) +
                                " is too short; schedules fire at most once a second (1s)");
        } else {
          s.every = *d;
        }
      }
    }
    if (at) {
      if (auto t = NonEmptyString(*at, Sub(path, "at"),
                                  "an RFC 3339 instant (e.g. 2026-01-31T09:00:00Z)")) {
        if (!HasRfc3339Shape(*t) || !ParseRfc3339(*t)) {
          Error(at->loc, Sub(path, "at") + ": " + QuoteForMessage(*t) +
                             " is not an RFC 3339 instant; write e.g. 2026-01-31T09:00:00Z or "
                             "2026-01-31T10:00:00+01:00");
        } else {
          s.at = *t;
        }
      }
    }
    if (const YNode* v = Get(m, "tz")) {
      if (auto tz = NonEmptyString(*v, Sub(path, "tz"), "a time zone name (e.g. Europe/Paris)")) {
        bool chars_ok = std::all_of(tz->begin(), tz->end(), [](char c) {
          return IsLower(c) || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '_' || c == '+' ||
                 c == '/' || c == '-';
        });
        if (tz->size() > 64 || !chars_ok || tz->find("..") != std::string::npos ||
            (*tz)[0] == '/') {
          Error(v->loc, Sub(path, "tz") + ": " + QuoteForMessage(*tz) +
                            " is not a time zone name; write an IANA name such as "
                            "Europe/Paris, America/New_York or UTC");
        } else {
          s.tz = *tz;
        }
      }
    }
    if (const YNode* v = Get(m, "lead")) s.lead = DurationValue(*v, Sub(path, "lead"), false);
    if (const YNode* v = Get(m, "max_lateness")) {
      s.max_lateness = DurationValue(*v, Sub(path, "max_lateness"), false);
    }
    if (const YNode* v = Get(m, "jitter")) s.jitter = DurationValue(*v, Sub(path, "jitter"), false);
    if (const YNode* v = Get(m, "misfire")) {
      if (auto x = OneOf(*v, Sub(path, "misfire"), {"skip", "run_once", "run_all"})) s.misfire = *x;
    }
    if (const YNode* v = Get(m, "overlap")) {
      if (auto x =
              OneOf(*v, Sub(path, "overlap"), {"allow", "skip", "queue_one", "cancel_previous"})) {
        s.overlap = *x;
      }
    }
    if (const YNode* v = Get(m, "active")) {
      if (auto b = Bool(*v, Sub(path, "active"))) s.active = *b;
    }
    if (const YNode* v = Get(m, "dst")) {
      std::string dpath = Sub(path, "dst");
      if (CheckMap(*v, dpath, "a map {gap: shift|skip, repeat: first|both}", {"gap", "repeat"})) {
        if (const YNode* g = Get(*v, "gap")) {
          if (auto x = OneOf(*g, Sub(dpath, "gap"), {"shift", "skip"})) s.dst_gap = *x;
        }
        if (const YNode* r = Get(*v, "repeat")) {
          if (auto x = OneOf(*r, Sub(dpath, "repeat"), {"first", "both"})) s.dst_repeat = *x;
        }
      }
    }
    if (const YNode* v = Get(m, "params")) {
      std::string ppath = Sub(path, "params");
      if (CheckMap(*v, ppath, "a map from parameter name to value", {})) {
        std::set<std::string> seen;
        for (const auto& [k, val] : v->entries) {
          if (!k.IsScalar() || !seen.insert(k.value).second) continue;
          const ParamSpec* spec = rb.FindParam(k.value);
          if (!spec) {
            std::vector<std::string_view> names;
            for (const ParamSpec& p : rb.params) names.push_back(p.name);
            Error(k.loc, ppath + ": " + QuoteForMessage(k.value) +
                             " is not a parameter of this runbook" +
                             (names.empty() ? "; it declares no params"
                                            : "; declared params: " + Join(names)));
            continue;
          }
          if (spec->type == ParamType::kSecret) {
            Error(k.loc, Sub(ppath, k.value) +
                             ": secret parameters cannot be set in a runbook "
                             "file; pass them at run time");
            continue;
          }
          if (val.IsNull() && !val.bad) {
            Error(val.loc, Sub(ppath, k.value) + ": has no value; write a value or remove it");
            continue;
          }
          auto text = String(val, Sub(ppath, k.value), "a value (a string, number or boolean)");
          if (!text) continue;
          auto canon = CanonicalParamValue(*spec, *text);
          if (!canon.ok()) {
            Error(val.loc, Sub(ppath, k.value) + ": " + canon.status().message());
            continue;
          }
          s.params[k.value] = *canon;
        }
      }
    }
    // A schedule that can never bind its parameters would fail at every fire time.
    for (const ParamSpec& p : rb.params) {
      if (p.required && p.type != ParamType::kSecret && !s.params.count(p.name) &&
          !(Get(m, "params") && Get(*Get(m, "params"), p.name))) {
        Error(m.loc, path + ": the runbook requires parameter " + QuoteForMessage(p.name) +
                         " and this schedule does not set it; add params: {" + p.name + ": ...}");
      }
    }
    rb.schedules.push_back(std::move(s));
  }
}

void Validator::Sandbox(const YNode& n, Runbook& rb) {
  static const std::vector<std::string_view> kKeys = {"pid",        "writable",  "network",
                                                      "run_as",     "memory",    "processes",
                                                      "open_files", "file_size", "cpu_time"};
  if (n.IsScalar() && !n.bad) {
    if (n.value == "off") {
      rb.sandbox.enabled = false;
      return;
    }
    Error(n.loc, "sandbox: " + QuoteForMessage(n.value) +
                     " is not valid; write `sandbox: off` or a map {pid, writable, network, "
                     "run_as}");
    return;
  }
  if (!CheckMap(n, "sandbox", "off or a map {pid, writable, network, run_as, ...}", kKeys)) {
    return;
  }
  auto size = [&](const char* key, uint64_t min) -> std::optional<uint64_t> {
    const YNode* v = Get(n, key);
    if (v == nullptr) return std::nullopt;
    const std::string path = std::string("sandbox.") + key;
    if (!v->IsScalar() || v->bad) {
      Expected(*v, path, "a size such as 512MiB or 2GiB");
      return std::nullopt;
    }
    auto bytes = ParseByteSize(v->value);
    if (!bytes.ok()) {
      Error(v->loc, path + ": " + bytes.status().message());
      return std::nullopt;
    }
    if (*bytes < min) {
      Error(v->loc, path + ": " + v->value + " is below the minimum of " + FormatBytes(min));
      return std::nullopt;
    }
    return *bytes;
  };
  rb.sandbox.memory = size("memory", uint64_t{4} << 20);
  rb.sandbox.file_size = size("file_size", 4096);
  if (const YNode* v = Get(n, "processes")) {
    if (auto i = Int(*v, "sandbox.processes", 2, 1'000'000)) {
      rb.sandbox.processes = static_cast<uint32_t>(*i);
    }
  }
  if (const YNode* v = Get(n, "open_files")) {
    if (auto i = Int(*v, "sandbox.open_files", 16, 1 << 20)) {
      rb.sandbox.open_files = static_cast<uint64_t>(*i);
    }
  }
  if (const YNode* v = Get(n, "cpu_time")) {
    rb.sandbox.cpu_time = DurationValue(*v, "sandbox.cpu_time", true);
    if (rb.sandbox.cpu_time && *rb.sandbox.cpu_time < Millis(1000)) {
      Error(v->loc, "sandbox.cpu_time: " + FormatDuration(*rb.sandbox.cpu_time) +
                        " is shorter than the 1s minimum");
      rb.sandbox.cpu_time.reset();
    }
  }
  if (const YNode* v = Get(n, "pid")) {
    if (auto s = OneOf(*v, "sandbox.pid", {"host", "private"})) rb.sandbox.pid = *s;
  }
  if (const YNode* v = Get(n, "network")) {
    if (auto s = OneOf(*v, "sandbox.network", {"none", "host"})) rb.sandbox.network = *s;
  }
  if (const YNode* v = Get(n, "writable")) {
    rb.sandbox.writable = StringList(
        *v, "sandbox.writable", "a list of absolute paths (e.g. [/var/tmp/app])",
        [&](const YNode& item, const std::string& s, const std::string& p) {
          bool dotdot = false;
          size_t start = 0;
          while (start <= s.size()) {
            size_t end = s.find('/', start);
            if (end == std::string::npos) end = s.size();
            if (s.compare(start, end - start, "..") == 0) dotdot = true;
            start = end + 1;
          }
          if (s.empty() || s[0] != '/' || dotdot) {
            Error(item.loc, p + ": " + QuoteForMessage(s) +
                                " is not an absolute path without '..'; write e.g. /var/tmp/app");
            return false;
          }
          return true;
        });
  }
  if (const YNode* v = Get(n, "run_as")) {
    if (auto s = String(*v, "sandbox.run_as", "a user name")) {
      bool ok = !s->empty() && s->size() <= 32 && (IsLower((*s)[0]) || (*s)[0] == '_') &&
                std::all_of(s->begin(), s->end(), [](char c) {
                  return IsLower(c) || IsDigit(c) || c == '_' || c == '-';
                });
      if (!ok) {
        Error(v->loc, "sandbox.run_as: " + QuoteForMessage(*s) +
                          " is not a user name; use lower-case letters, digits, '_' and '-' "
                          "(at most 32, starting with a letter or '_'), e.g. nobody");
      } else {
        rb.sandbox.run_as = *s;
      }
    }
  }
}

}  // namespace

std::string Describe(const YNode& n) {
  switch (n.kind) {
    case Kind::kNull:
      return "nothing";
    case Kind::kSeq:
      return "a list";
    case Kind::kMap:
      return "a map";
    case Kind::kScalar:
      if (n.plain) {
        if (IsPlainBool(n, nullptr)) return "a boolean";
        if (LooksLikeInt(n.value)) return "a number";
      }
      return "a string";
  }
  return "a value";
}

int EditDistance(std::string_view a, std::string_view b) {
  if (a.size() > 64 || b.size() > 64) return 1 << 20;  // keys are short; don't pay for junk
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
      if (bad_offset) *bad_offset = i;
      return false;
    }
    if (i + len > s.size()) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        if (bad_offset) *bad_offset = i;
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    bool overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

Runbook BuildRunbook(const YNode& root, std::vector<Diagnostic>& diags) {
  Validator v(diags);
  return v.Build(root);
}

}  // namespace automan::runbook_detail
