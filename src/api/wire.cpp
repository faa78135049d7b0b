#include "api/wire.h"

#include <fmt/format.h>

#include <cstdlib>

namespace automan::api {

int ErrorStatus(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return 200;
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
      return 409;
    case ErrorCode::kFailedPrecondition:
      return 409;
    case ErrorCode::kAborted:
      return 409;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kDeadlineExceeded:
      return 504;
    case ErrorCode::kCancelled:
      return 499;
    case ErrorCode::kResourceExhausted:
      return 429;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kUnauthenticated:
      return 401;
    case ErrorCode::kDataLoss:
      return 500;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

std::string_view ErrorWireCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kFailedPrecondition:
      return "failed_precondition";
    case ErrorCode::kAborted:
      return "conflict";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kResourceExhausted:
      return "resource_exhausted";
    case ErrorCode::kPermissionDenied:
      return "permission_denied";
    case ErrorCode::kUnauthenticated:
      return "unauthenticated";
    case ErrorCode::kDataLoss:
      return "data_loss";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

HttpResponse JsonResponse(int status, const json::value& body) {
  HttpResponse r;
  r.status = status;
  r.body = json::serialize(body);
  return r;
}

std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80                   ? 1
                     : (c >= 0xC2 && c <= 0xDF) ? 2
                     : (c >= 0xE0 && c <= 0xEF) ? 3
                     : (c >= 0xF0 && c <= 0xF4) ? 4
                                                : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (ok && n > 2) {
      const auto d = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xE0 && d < 0xA0) && !(c == 0xED && d > 0x9F) && !(c == 0xF0 && d < 0x90) &&
           !(c == 0xF4 && d > 0x8F);
    }
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message,
                           json::value details) {
  json::object e;
  e["code"] = code;
  e["message"] = ToValidUtf8(message);
  e["details"] = std::move(details);
  json::object o;
  o["error"] = std::move(e);
  return JsonResponse(status, o);
}

HttpResponse ErrorResponse(const Status& s, json::value details) {
  return ErrorResponse(ErrorStatus(s.code()), ErrorWireCode(s.code()), s.message(),
                       std::move(details));
}

HttpResponse NoContent() {
  HttpResponse r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

Result<json::object> ParseBodyObject(std::string_view body) {
  if (body.empty())
    return Status(ErrorCode::kInvalidArgument, "the request body is empty; send a JSON object");
  json::parse_options opt;
  opt.max_depth = 32;
  json::stream_parser p({}, opt);
  json::error_code ec;
  const size_t used = p.write(body.data(), body.size(), ec);
  if (!ec) p.finish(ec);
  if (ec) {
    std::string what = fmt::format("{} at byte {}", ec.message(), used);
    if (ec == json::error::too_deep) what = "nested deeper than 32 levels";
    if (used < body.size() && (static_cast<unsigned char>(body[used]) & 0x80) != 0 &&
        ToValidUtf8(body.substr(used, 4)).rfind("\xEF\xBF\xBD", 0) == 0) {
      what = fmt::format("invalid UTF-8 at byte {}", used);
    }
    return Status(ErrorCode::kInvalidArgument, fmt::format("malformed JSON body: {}", what));
  }
  json::value v = p.release();
  if (!v.is_object()) {
    return Status(ErrorCode::kInvalidArgument, "the request body must be a JSON object");
  }
  return std::move(v.as_object());
}

Status CheckFields(const json::object& o, std::initializer_list<std::string_view> allowed,
                   std::string_view where) {
  for (const auto& kv : o) {
    bool ok = false;
    for (std::string_view a : allowed) ok = ok || kv.key() == a;
    if (!ok) {
      std::string list;
      for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return Status(ErrorCode::kInvalidArgument,
                    fmt::format("unknown field \"{}\" in {}; allowed: {}",
                                std::string_view(kv.key()), where, list));
    }
  }
  return Status::Ok();
}

namespace {
Status WrongType(std::string_view key, std::string_view want) {
  return Status(ErrorCode::kInvalidArgument, fmt::format("field \"{}\" must be {}", key, want));
}
}  // namespace

Result<std::optional<std::string>> GetString(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return WrongType(key, "a string");
  return std::optional<std::string>(std::string(v->as_string()));
}

Result<std::optional<int64_t>> GetInt(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::optional<int64_t>();
  if (v->is_int64()) return std::optional<int64_t>(v->as_int64());
  if (v->is_uint64() && v->as_uint64() <= INT64_MAX) {
    return std::optional<int64_t>(static_cast<int64_t>(v->as_uint64()));
  }
  return WrongType(key, "an integer");
}

Result<std::optional<bool>> GetBool(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::optional<bool>();
  if (!v->is_bool()) return WrongType(key, "true or false");
  return std::optional<bool>(v->as_bool());
}

Result<std::optional<Timestamp>> GetTime(const json::object& o, std::string_view key) {
  auto s = GetString(o, key);
  if (!s.ok()) return WrongType(key, "an RFC 3339 timestamp string");
  if (!*s) return std::optional<Timestamp>();
  auto t = ParseRfc3339(**s);
  if (!t) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("field \"{}\": \"{}\" is not an RFC 3339 timestamp "
                              "(e.g. 2026-12-03T10:00:00Z)",
                              key, **s));
  }
  return std::optional<Timestamp>(*t);
}

Result<std::string> ParamText(std::string_view name, const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_bool()) return std::string(v.as_bool() ? "true" : "false");
  if (v.is_int64()) return std::to_string(v.as_int64());
  if (v.is_uint64()) return std::to_string(v.as_uint64());
  if (v.is_double()) return json::serialize(v);
  return Status(ErrorCode::kInvalidArgument,
                fmt::format("param \"{}\" must be a string, number or boolean", name));
}

Result<std::optional<int64_t>> QueryInt(const HttpRequest& r, std::string_view name, int64_t min,
                                        int64_t max) {
  const std::string* v = r.Query(name);
  if (v == nullptr) return std::optional<int64_t>();
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || n < min || n > max) {
    return Status(
        ErrorCode::kInvalidArgument,
        fmt::format("query parameter \"{}\" must be an integer in {}..{}", name, min, max));
  }
  return std::optional<int64_t>(n);
}

Result<std::optional<Timestamp>> QueryTime(const HttpRequest& r, std::string_view name) {
  const std::string* v = r.Query(name);
  if (v == nullptr) return std::optional<Timestamp>();
  auto t = ParseRfc3339(*v);
  if (!t) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("query parameter \"{}\" must be an RFC 3339 timestamp "
                              "(e.g. 2026-12-03T10:00:00Z)",
                              name));
  }
  return std::optional<Timestamp>(*t);
}

json::value TimeOrNull(const std::optional<Timestamp>& t) {
  if (!t) return nullptr;
  return json::value(FormatRfc3339(*t));
}

namespace {
json::value ParamJson(const ParamValue& v) {
  if (v.secret()) return json::value("***");
  if (v.type == "int") return json::value(std::strtoll(v.text.c_str(), nullptr, 10));
  if (v.type == "number") return json::value(std::strtod(v.text.c_str(), nullptr));
  if (v.type == "bool") return json::value(v.text == "true");
  return json::value(v.text);
}
}  // namespace

json::object StepRunJson(const StepRun& s) {
  json::object o;
  o["id"] = s.step_id;
  o["index"] = s.index;
  o["attempt"] = s.attempt;
  o["status"] = ToString(s.status);
  o["exit_code"] = s.exit_code ? json::value(*s.exit_code) : json::value(nullptr);
  o["signal"] = s.signal ? json::value(*s.signal) : json::value(nullptr);
  o["started_at"] = TimeOrNull(s.started_at);
  o["finished_at"] = TimeOrNull(s.finished_at);
  if (s.started_at && s.finished_at) {
    o["duration_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(*s.finished_at - *s.started_at)
            .count();
  } else {
    o["duration_ms"] = nullptr;
  }
  o["error"] = s.error.empty() ? json::value(nullptr) : json::value(ToValidUtf8(s.error));
  json::object outs;
  for (const auto& [k, v] : s.outputs) outs[k] = ToValidUtf8(v);
  o["outputs"] = std::move(outs);
  o["sandbox"] = s.sandbox.empty() ? json::value(nullptr) : json::value(ToValidUtf8(s.sandbox));
  return o;
}

json::object RunJson(const Run& run, const std::vector<StepRun>* steps) {
  json::object o;
  o["id"] = run.id;
  o["runbook"] = run.runbook_id;
  o["runbook_version"] = run.runbook_version;
  o["status"] = ToString(run.status);
  json::object params;
  for (const auto& [k, v] : run.params) params[k] = ParamJson(v);  // secrets: "***"
  o["params"] = std::move(params);
  o["trigger"] = ToString(run.trigger);
  o["triggered_by"] = run.triggered_by;
  o["priority"] = run.priority;
  o["attempt"] = run.attempt;
  o["max_attempts"] = run.max_attempts;
  o["created_at"] = FormatRfc3339(run.created_at);
  o["not_before"] = TimeOrNull(run.not_before);
  o["started_at"] = TimeOrNull(run.started_at);
  o["finished_at"] = TimeOrNull(run.finished_at);
  o["deadline_at"] = TimeOrNull(run.deadline_at);
  json::object outputs;
  for (const auto& [step, kv] : run.outputs) {
    json::object m;
    for (const auto& [k, v] : kv) m[k] = ToValidUtf8(v);
    outputs[step] = std::move(m);
  }
  o["outputs"] = std::move(outputs);
  o["retry_of"] = run.retry_of ? json::value(*run.retry_of) : json::value(nullptr);
  o["idempotency_key"] =
      run.idempotency_key ? json::value(*run.idempotency_key) : json::value(nullptr);
  o["cancel_requested"] = run.cancel_requested;
  o["error"] = run.error.empty() ? json::value(nullptr) : json::value(ToValidUtf8(run.error));
  if (steps != nullptr) {
    json::array arr;
    for (const auto& s : *steps) {
      if (s.attempt == run.attempt) arr.push_back(StepRunJson(s));
    }
    o["steps"] = std::move(arr);
  }
  return o;
}

json::object LogLineJson(const LogLine& line) {
  json::object o;
  o["run_id"] = line.run_id;
  o["attempt"] = line.attempt;
  o["seq"] = line.seq;
  o["ts"] = FormatRfc3339(line.ts);
  o["step"] = line.step_id;
  o["stream"] = ToString(line.stream);
  o["text"] = ToValidUtf8(line.text);  // steps may print anything
  if (line.partial) o["partial"] = true;
  return o;
}

json::object ListJson(json::array items, const std::optional<std::string>& next_cursor) {
  json::object o;
  o["items"] = std::move(items);
  o["next_cursor"] = next_cursor ? json::value(*next_cursor) : json::value(nullptr);
  return o;
}

std::string IdLowerBound(Timestamp t) {
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  if (ms < 0) ms = 0;
  uint64_t u = static_cast<uint64_t>(ms) & 0xFFFFFFFFFFFFull;
  return fmt::format("{:08x}-{:04x}-7000-0000-000000000000", u >> 16, u & 0xFFFF);
}

}  // namespace automan::api
