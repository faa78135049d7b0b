// Fuzz target for the REST API's request-body readers (src/api/wire.h) and the run-create
// path they feed: api::ParseBodyObject, CheckFields, the typed getters and ParamText, then
// POST /api/v1/runs and POST /api/v1/runs/batch through Router::Dispatch of the real route
// table with the input as the body. See README.md.
//
// The router runs in process over a `sqlite::memory:` store, with the built-in runbooks
// and one runbook with every parameter type (kParamsRunbook). There is no worker and no
// scheduler: a run created here is only a PENDING row, and the target cancels and deletes
// it at once, so nothing can execute and the store does not grow.
//
// ParseBodyObject: accepts only valid UTF-8 nested at most 32 levels with an object at the
// top; what it accepts serializes to text it parses back to the same object; failures are
// kInvalidArgument with a message. CheckFields: refuses exactly the objects with a field
// outside the list, naming the first. Getters: absent or null is nullopt; a value of the
// right kind is returned as is; any other is kInvalidArgument naming the field. Dispatch:
// a body ParseBodyObject or CheckFields refuses answers 400 with the same message; otherwise
// 201 (or 200 for an idempotency key seen before) with a PENDING run of the requested
// runbook, or 400/404 with the error shape; never 5xx; the body is valid JSON.
#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "api/http.h"
#include "api/router.h"
#include "api/wire.h"
#include "api_harness.h"
#include "common/clock.h"
#include "common/ids.h"

namespace {

namespace api = automan::api;
namespace json = boost::json;
using automan::ErrorCode;

constexpr std::string_view kParamsRunbook = R"(id: fuzz-params
name: Every parameter type
description: Enqueued by api_body_fuzz, never executed (no worker runs there).
params:
  service: {type: string, required: true, pattern: "[a-z][a-z0-9-]*"}
  replicas: {type: int, default: 2}
  ratio: {type: number, default: 0.5}
  verbose: {type: bool, default: false}
  env: {type: enum, values: [dev, staging, prod], default: dev}
  token: {type: secret}
  note: {type: string}
steps:
  - id: never
    argv: ["false"]
)";

// The fields POST /api/v1/runs accepts (ParseRunRequest in src/api/run_routes.cpp).
constexpr std::string_view kRunFields[] = {"runbook",         "params",     "priority",
                                           "idempotency_key", "not_before", "max_attempts",
                                           "deadline_at"};

// CheckFields with the same list (it takes an initializer_list).
automan::Status CheckRunFields(const json::object& o) {
  return api::CheckFields(o, {"runbook", "params", "priority", "idempotency_key", "not_before",
                              "max_attempts", "deadline_at"});
}

[[noreturn]] void Broken(const char* what, std::string_view input, std::string_view detail = "") {
  fprintf(stderr, "api_body_fuzz: invariant broken: %s (input %zu bytes)%s%.*s\n", what,
          input.size(), detail.empty() ? "" : ": ", static_cast<int>(detail.size()), detail.data());
  abort();
}

struct Fixture {
  std::string dir;
  std::unique_ptr<automan::testing::InProcessApi> api;
  Fixture() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "api_body_fuzz.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) abort();
    dir = tmpl;
    std::filesystem::create_directories(dir + "/runbooks");
    std::ofstream(dir + "/runbooks/fuzz-params.yaml") << kParamsRunbook;
    automan::testing::InProcessApi::Options o;
    o.data_dir = dir;
    o.store_url = "sqlite::memory:";
    o.runbooks_dir = dir + "/runbooks";
    auto made = automan::testing::InProcessApi::Create(o);
    if (!made.ok()) {
      fprintf(stderr, "api_body_fuzz: %s\n", made.status().message().c_str());
      abort();
    }
    api = std::move(*made);
  }
  ~Fixture() {
    api.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Fixture& F() {
  static Fixture f;
  return f;
}

// RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<size_t>(n) >= s.size()) return false;
    for (int k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

// Levels of arrays and objects, the outermost counting 1.
int Depth(const json::value& v) {
  int d = 0;
  if (const json::object* o = v.if_object()) {
    for (const auto& kv : *o) d = std::max(d, Depth(kv.value()));
    return d + 1;
  }
  if (const json::array* a = v.if_array()) {
    for (const auto& x : *a) d = std::max(d, Depth(x));
    return d + 1;
  }
  return 0;
}

bool HasNonFinite(const json::value& v) {
  if (v.is_double()) return !std::isfinite(v.as_double());
  if (const json::object* o = v.if_object()) {
    for (const auto& kv : *o) {
      if (HasNonFinite(kv.value())) return true;
    }
  }
  if (const json::array* a = v.if_array()) {
    for (const auto& x : *a) {
      if (HasNonFinite(x)) return true;
    }
  }
  return false;
}

// Equal, except that doubles may differ in their last bits.
bool Near(const json::value& a, const json::value& b) {
  if (a.is_double() && b.is_double()) {
    const double x = a.as_double(), y = b.as_double();
    return x == y || std::fabs(x - y) <= 1e-12 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind()) return false;
  if (const json::object* o = a.if_object()) {
    const json::object& p = b.as_object();
    if (o->size() != p.size()) return false;
    for (const auto& kv : *o) {
      const json::value* w = p.if_contains(kv.key());
      if (w == nullptr || !Near(kv.value(), *w)) return false;
    }
    return true;
  }
  if (const json::array* x = a.if_array()) {
    const json::array& y = b.as_array();
    if (x->size() != y.size()) return false;
    for (size_t i = 0; i < x->size(); ++i) {
      if (!Near((*x)[i], y[i])) return false;
    }
    return true;
  }
  return a == b;
}

bool Allowed(std::string_view key) {
  for (std::string_view f : kRunFields) {
    if (f == key) return true;
  }
  return false;
}

void ExpectFieldError(const automan::Status& s, std::string_view key, std::string_view input) {
  if (s.code() != ErrorCode::kInvalidArgument) Broken("a getter failed with another code", input);
  std::string quoted = "\"";
  quoted.append(key).push_back('"');
  if (s.message().find(quoted) == std::string::npos) {
    Broken("a getter's error does not name the field", input, s.message());
  }
}

void CheckGetters(const json::object& o, std::string_view key, std::string_view input) {
  const json::value* v = o.if_contains(key);
  const bool absent = v == nullptr || v->is_null();

  auto s = api::GetString(o, key);
  if (absent || v->is_string()) {
    if (!s.ok()) Broken("GetString refused a string", input);
    if (absent != !s->has_value()) Broken("GetString: presence", input);
    if (!absent && **s != std::string_view(v->as_string())) Broken("GetString: value", input);
  } else {
    if (s.ok()) Broken("GetString accepted a non-string", input);
    ExpectFieldError(s.status(), key, input);
  }

  auto i = api::GetInt(o, key);
  const bool is_int = !absent && (v->is_int64() || (v->is_uint64() && v->as_uint64() <= INT64_MAX));
  if (absent || is_int) {
    if (!i.ok()) Broken("GetInt refused an integer", input);
    if (absent != !i->has_value()) Broken("GetInt: presence", input);
    if (is_int && **i != (v->is_int64() ? v->as_int64() : static_cast<int64_t>(v->as_uint64()))) {
      Broken("GetInt: value", input);
    }
  } else {
    if (i.ok()) Broken("GetInt accepted a non-integer", input);
    ExpectFieldError(i.status(), key, input);
  }

  auto b = api::GetBool(o, key);
  if (absent || v->is_bool()) {
    if (!b.ok() || absent != !b->has_value()) Broken("GetBool refused a boolean", input);
    if (!absent && **b != v->as_bool()) Broken("GetBool: value", input);
  } else {
    if (b.ok()) Broken("GetBool accepted a non-boolean", input);
    ExpectFieldError(b.status(), key, input);
  }

  auto t = api::GetTime(o, key);
  std::optional<automan::Timestamp> want;
  if (!absent && v->is_string()) want = automan::ParseRfc3339(std::string_view(v->as_string()));
  if (absent || want) {
    if (!t.ok()) Broken("GetTime refused a timestamp", input);
    if (absent != !t->has_value()) Broken("GetTime: presence", input);
    if (want && **t != *want) Broken("GetTime: value", input);
  } else {
    if (t.ok()) Broken("GetTime accepted a non-timestamp", input);
    ExpectFieldError(t.status(), key, input);
  }

  if (v != nullptr) {
    auto p = api::ParamText(key, *v);
    const bool scalar = v->is_string() || v->is_bool() || v->is_number();
    if (p.ok() != scalar) Broken("ParamText: which values are parameters", input);
    if (p.ok() && v->is_string() && *p != std::string_view(v->as_string())) {
      Broken("ParamText: string value", input);
    }
    if (p.ok() && v->is_int64() && *p != std::to_string(v->as_int64())) {
      Broken("ParamText: integer value", input);
    }
    if (p.ok() && v->is_bool() && *p != (v->as_bool() ? "true" : "false")) {
      Broken("ParamText: boolean value", input);
    }
  }
}

json::value ParseResponse(const api::HttpResponse& r, std::string_view input) {
  json::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) Broken("a response body is not valid JSON", input, r.body);
  return v;
}

std::string ErrorMessage(const json::value& v, std::string_view input) {
  const json::object* o = v.if_object();
  const json::value* e = o != nullptr ? o->if_contains("error") : nullptr;
  const json::object* eo = e != nullptr ? e->if_object() : nullptr;
  if (eo == nullptr || !eo->contains("code") || !eo->contains("message") ||
      !eo->at("message").is_string() || !eo->contains("details")) {
    Broken("an error body is not the error shape", input);
  }
  return std::string(eo->at("message").as_string());
}

api::HttpResponse Post(const std::string& target, std::string body) {
  api::HttpRequest req;
  req.method = "POST";
  req.target = target;
  req.path = target;
  req.body = std::move(body);
  req.headers["authorization"] = "Bearer " + F().api->admin_token();
  return F().api->router().Dispatch(req);
}

// Cancels and deletes a run this target created, so the store stays small.
void Discard(const std::string& id, std::string_view input) {
  if (!automan::IsValidId(id)) Broken("a created run has a malformed id", input, id);
  api::HttpRequest c;
  c.method = "POST";
  c.path = "/api/v1/runs/" + id + "/cancel";
  c.headers["authorization"] = "Bearer " + F().api->admin_token();
  api::HttpResponse cr = F().api->router().Dispatch(c);
  if (cr.status != 200) Broken("cancelling a created run failed", input, cr.body);
  if (ParseResponse(cr, input).at("status") != "CANCELLED") {
    Broken("a cancelled PENDING run is not CANCELLED", input, cr.body);
  }
  api::HttpRequest d;
  d.method = "DELETE";
  d.path = "/api/v1/runs/" + id;
  d.headers["authorization"] = "Bearer " + F().api->admin_token();
  api::HttpResponse dr = F().api->router().Dispatch(d);
  if (dr.status != 204) Broken("deleting a cancelled run failed", input, dr.body);
}

void CheckCreated(const json::value& run, const json::object& request, std::string_view input) {
  const json::object* o = run.if_object();
  if (o == nullptr || !o->contains("id") || !o->at("id").is_string()) {
    Broken("a created run has no id", input);
  }
  if (o->at("status") != "PENDING") Broken("a created run is not PENDING", input);
  if (o->at("trigger") != "api") Broken("a created run's trigger is not api", input);
  if (o->at("runbook") != request.at("runbook")) Broken("a run of another runbook", input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  auto parsed = api::ParseBodyObject(in);
  if (!parsed.ok()) {
    if (parsed.status().code() != ErrorCode::kInvalidArgument) Broken("parse: wrong code", in);
    if (parsed.status().message().empty()) Broken("parse: no message", in);
  } else {
    const json::object& o = *parsed;
    if (!ValidUtf8(in)) Broken("invalid UTF-8 was accepted", in);
    if (Depth(o) > 32) Broken("nesting deeper than 32 was accepted", in);
    // Numbers beyond double's range parse to +-infinity, which Boost.JSON 1.81 serializes
    // as the non-JSON "Infinity"; the identity holds for everything else, up to the last
    // bits of doubles (1.81 parses long integer literals as doubles imprecisely).
    if (!HasNonFinite(o)) {
      auto again = api::ParseBodyObject(json::serialize(o));
      if (!again.ok() || !Near(*again, o)) Broken("serialize + parse is not the identity", in);
    }

    // CheckFields: refuses exactly the objects with an unknown field, naming the first.
    automan::Status fields = CheckRunFields(o);
    const json::key_value_pair* unknown = nullptr;
    for (const auto& kv : o) {
      if (!Allowed(kv.key())) {
        unknown = &kv;
        break;
      }
    }
    if (fields.ok() != (unknown == nullptr)) Broken("CheckFields: which objects pass", in);
    if (unknown != nullptr) {
      if (fields.code() != ErrorCode::kInvalidArgument) Broken("CheckFields: wrong code", in);
      const std::string want = "unknown field \"" + std::string(unknown->key()) + "\" in body";
      if (fields.message().rfind(want, 0) != 0) Broken("CheckFields: names another field", in);
    }
    for (std::string_view key : kRunFields) CheckGetters(o, key, in);
    size_t n = 0;
    for (const auto& kv : o) {
      if (++n > 64) break;
      CheckGetters(o, kv.key(), in);
    }
    if (const json::value* p = o.if_contains("params"); p != nullptr && p->is_object()) {
      n = 0;
      for (const auto& kv : p->as_object()) {
        if (++n > 64) break;
        CheckGetters(p->as_object(), kv.key(), in);
      }
    }
  }

  // POST /api/v1/runs with the input as the body.
  api::HttpResponse r = Post("/api/v1/runs", std::string(in));
  json::value body = ParseResponse(r, in);
  if (r.route != "POST /api/v1/runs") Broken("POST /api/v1/runs reached another route", in);
  if (!parsed.ok() || !CheckRunFields(*parsed).ok()) {
    if (r.status != 400) Broken("a refused body did not answer 400", in, r.body);
    const std::string want =
        !parsed.ok() ? parsed.status().message() : CheckRunFields(*parsed).message();
    if (ErrorMessage(body, in) != want) Broken("400 with another message", in, r.body);
  } else if (r.status == 201 || r.status == 200) {
    CheckCreated(body, *parsed, in);
    Discard(std::string(body.at("id").as_string()), in);
  } else if (r.status == 400 || r.status == 404) {
    ErrorMessage(body, in);
  } else {
    Broken("POST /api/v1/runs answered an unexpected status", in, r.body);
  }

  // The same request as the only run of a batch.
  if (parsed.ok()) {
    json::object batch;
    batch["runs"] = json::array{json::value(*parsed)};
    api::HttpResponse b = Post("/api/v1/runs/batch", json::serialize(batch));
    json::value bb = ParseResponse(b, in);
    if (b.status == 201) {
      if (r.status != 201 && r.status != 200)
        Broken("the batch accepted what one create refused", in, b.body);
      const json::array& items = bb.at("items").as_array();
      if (items.size() != 1) Broken("a batch of one created another count", in, b.body);
      Discard(std::string(items[0].at("id").as_string()), in);
    } else if (b.status == 400 || b.status == 404) {
      ErrorMessage(bb, in);
      if ((r.status == 201 || r.status == 200) &&
          !parsed->contains("idempotency_key")) {  // a key may have been taken meanwhile
        Broken("the batch refused what one create accepted", in, b.body);
      }
    } else {
      Broken("POST /api/v1/runs/batch answered an unexpected status", in, b.body);
    }
  }
  return 0;
}
