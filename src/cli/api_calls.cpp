#include "cli/api_calls.h"

#include <fmt/format.h>

#include <algorithm>

#include "cli/cli_support.h"

namespace automan::cli {

std::atomic<bool> g_interrupted{false};

namespace {
extern "C" void OnFollowInterrupt(int) { g_interrupted.store(true); }
}  // namespace

StopFollowingOnCtrlC::StopFollowingOnCtrlC() {
  struct sigaction sa {};
  sa.sa_handler = OnFollowInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_);
}

StopFollowingOnCtrlC::~StopFollowingOnCtrlC() { sigaction(SIGINT, &old_, nullptr); }

int Fail(const Status& s) {
  fmt::print(stderr, "error: {}\n", s.message());
  if (s.code() == ErrorCode::kCancelled && g_interrupted.load()) return kExitInterrupted;
  return ExitFor(s);
}

Result<std::unique_ptr<client::ApiClient>> Connect(const ServerFlags& flags) {
  std::vector<std::string> warnings;
  auto options = client::ResolveClientOptions(flags.url, flags.ca_file, flags.insecure, warnings);
  for (const std::string& w : warnings) fmt::print(stderr, "warning: {}\n", w);
  if (!options.ok()) return options.status();
  options->interrupt = &g_interrupted;
  return client::ApiClient::Create(*options);
}

Result<json::value> Call(client::ApiClient& c, std::string_view method, const std::string& target,
                         const json::value* body) {
  const std::string text = body ? json::serialize(*body) : "";
  AUTOMAN_ASSIGN_OR_RETURN(client::HttpReply reply, c.Request(method, target, text));
  if (reply.body.empty()) return json::value(nullptr);
  json::error_code ec;
  json::value v = json::parse(reply.body, ec);
  if (ec) {
    return Error(ErrorCode::kInternal, "the server answered {} {} with malformed JSON: {}", method,
                 target, ec.message());
  }
  return v;
}

const json::object& Obj(const json::value& v) {
  static const json::object kEmpty;
  return v.is_object() ? v.as_object() : kEmpty;
}
// The object in field `key` of `o`, or an empty one.
const json::object& Sub(const json::object& o, std::string_view key) {
  static const json::object kEmpty;
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? v->as_object() : kEmpty;
}
const json::array& Arr(const json::value* v) {
  static const json::array kEmpty;
  return v != nullptr && v->is_array() ? v->as_array() : kEmpty;
}
// A field as text: strings as they are, numbers and bools written out, null/absent "".
std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return "";
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}
int64_t Int(const json::object& o, std::string_view key, int64_t def) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return def;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  if (v->is_double()) return static_cast<int64_t>(v->as_double());
  return def;
}
bool Bool(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_bool() && v->as_bool();
}

// Columns padded to their widest cell.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size());
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    fmt::print("{}\n", line);
  }
}

}  // namespace automan::cli
