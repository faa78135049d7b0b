// Contract tests of the REST API v1, in process (no HTTP): the real route table from
// api::BuildRouter over a SQLite store in a temporary directory, called through
// Router::Dispatch. They check what every route must honour (a permission, a unique
// method + pattern, the /api/v1 prefix), that the OpenAPI document describes exactly the
// table and that the JSON the handlers answer has the shapes it documents, the router's
// 404/405 answers, and a few handlers whose edges are easy to get wrong (id-based time
// bounds, request bodies, hostile bytes, the params JSON Schema, /metrics as Prometheus
// reads it). Two tests are DISABLED because they fail on bugs in src/api (see each).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api/router.h"
#include "api/wire.h"
#include "api_harness.h"
#include "common/clock.h"
#include "common/ids.h"
#include "metrics/metrics.h"
#include "support/test_util.h"

namespace automan {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::InProcessApi;
using testing::TempDir;

const std::set<std::string> kPublicRoutes = {"GET /healthz", "GET /readyz", "GET /api/v1/version",
                                             "GET /api/v1/openapi.json", "POST /api/v1/auth/login"};

std::string Key(const std::string& method, const std::string& pattern) {
  return method + " " + pattern;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 1;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

bool IsParam(const std::string& seg) {
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

// An independent reading of the router's matching rule: same segment count, literals
// equal, a parameter matches any non-empty segment.
bool PatternMatches(const std::string& pattern, const std::string& path) {
  std::vector<std::string> p = Segments(pattern), s = Segments(path);
  if (p.size() != s.size()) return false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (IsParam(p[i]) ? s[i].empty() : p[i] != s[i]) return false;
  }
  return true;
}

// The pattern with every {param} replaced by a value no literal segment uses.
std::string Concrete(const std::string& pattern) {
  std::string out;
  for (const std::string& seg : Segments(pattern)) out += "/" + (IsParam(seg) ? "p0x" : seg);
  return out;
}

// The pattern with parameter names erased: two routes equal in this form are ambiguous.
std::string Shape(const std::string& pattern) {
  std::string out;
  for (const std::string& seg : Segments(pattern)) out += "/" + (IsParam(seg) ? "{}" : seg);
  return out;
}

json::value Body(const api::HttpResponse& r) {
  json::error_code ec;
  json::value v = json::parse(r.body, ec);
  EXPECT_FALSE(ec) << "not JSON: " << r.body;
  return v;
}

// The error shape: {"error": {"code", "message", "details"}}; returns the code.
std::string ErrorCodeOf(const api::HttpResponse& r) {
  json::value v = Body(r);
  if (!v.is_object() || !v.as_object().contains("error")) {
    ADD_FAILURE() << "no error object: " << r.body;
    return "";
  }
  const json::value& e = v.at("error");
  EXPECT_TRUE(e.is_object());
  EXPECT_TRUE(e.as_object().contains("code") && e.at("code").is_string()) << r.body;
  EXPECT_TRUE(e.as_object().contains("message") && e.at("message").is_string()) << r.body;
  EXPECT_FALSE(e.at("message").as_string().empty()) << r.body;
  EXPECT_TRUE(e.as_object().contains("details")) << r.body;
  EXPECT_EQ(e.as_object().size(), 3u) << r.body;
  return std::string(e.at("code").as_string());
}

std::string Message(const api::HttpResponse& r) {
  json::value v = Body(r);
  return std::string(v.at("error").at("message").as_string());
}

const std::string* HeaderOf(const api::HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (Lower(k) == Lower(name)) return &v;
  }
  return nullptr;
}

std::set<std::string> SplitAllow(const std::string& allow) {
  std::set<std::string> out;
  size_t i = 0;
  while (i <= allow.size()) {
    size_t j = allow.find(',', i);
    if (j == std::string::npos) j = allow.size();
    std::string m = allow.substr(i, j - i);
    while (!m.empty() && m.front() == ' ') m.erase(m.begin());
    while (!m.empty() && m.back() == ' ') m.pop_back();
    if (!m.empty()) out.insert(m);
    i = j + 1;
  }
  return out;
}

class ApiTest : public ::testing::Test {
 protected:
  std::unique_ptr<InProcessApi> Make(InProcessApi::Options o = {}) {
    o.data_dir = dir_.path();
    auto api = InProcessApi::Create(o);
    EXPECT_TRUE(api.ok()) << api.status().message();
    return api.ok() ? std::move(*api) : nullptr;
  }
  TempDir dir_;
};

// ---------------------------------------------------------------- the route table

class RouteTableTest : public ApiTest, public ::testing::WithParamInterface<bool> {};

TEST_P(RouteTableTest, EveryRouteDeclaresAPermissionAndOnlyTheSystemRoutesArePublic) {
  const bool metrics_public = GetParam();
  InProcessApi::Options o;
  o.metrics_public = metrics_public;
  auto api = Make(o);
  ASSERT_NE(api, nullptr);
  const std::regex dotted("[a-z][a-z_]*\\.[a-z][a-z_]*");
  std::set<std::string> expected_public = kPublicRoutes;
  if (metrics_public) expected_public.insert("GET /metrics");
  std::set<std::string> got_public;
  bool has_metrics = false;
  for (const api::Route& r : api->router().routes()) {
    const std::string key = Key(r.method, r.pattern);
    if (r.permission == api::kPublic) {
      got_public.insert(key);
    } else if (r.permission == api::kAuthenticated) {
      EXPECT_EQ(r.pattern.rfind("/api/v1/auth/", 0) == 0 || r.pattern == "/api/v1/roles", true)
          << key << ": only a subject's own things are open to any logged-in subject";
    } else {
      EXPECT_TRUE(std::regex_match(r.permission, dotted))
          << key << " declares permission \"" << r.permission << "\"; want kPublic or area.action";
    }
    if (key == "GET /metrics") {
      has_metrics = true;
      EXPECT_EQ(r.permission, metrics_public ? std::string(api::kPublic) : "metrics.read");
    }
  }
  EXPECT_TRUE(has_metrics);
  EXPECT_EQ(got_public, expected_public);
}

TEST_P(RouteTableTest, RoutesAreUniqueWellFormedAndReachable) {
  InProcessApi::Options o;
  o.metrics_public = GetParam();
  auto api = Make(o);
  ASSERT_NE(api, nullptr);
  const auto& routes = api->router().routes();
  ASSERT_GE(routes.size(), 30u);
  const std::set<std::string> methods = {"GET", "POST", "PUT", "DELETE", "PATCH"};
  const std::set<std::string> outside = {"/healthz", "/readyz", "/metrics"};
  const std::regex literal("[a-z0-9][a-z0-9._-]*");
  const std::regex param("\\{[a-z_][a-z0-9_]*\\}");
  std::map<std::string, int> seen, shapes;
  for (const api::Route& r : routes) {
    const std::string key = Key(r.method, r.pattern);
    EXPECT_EQ(++seen[key], 1) << "two routes for " << key;
    EXPECT_EQ(++shapes[Key(r.method, Shape(r.pattern))], 1)
        << key << " is ambiguous with another route (same shape, other parameter names)";
    EXPECT_TRUE(methods.count(r.method)) << key;
    if (!outside.count(r.pattern)) {
      EXPECT_EQ(r.pattern.rfind("/api/v1/", 0), 0u) << key << " is outside /api/v1/";
    }
    EXPECT_FALSE(r.summary.empty()) << key;
    EXPECT_FALSE(r.tag.empty()) << key;
    EXPECT_TRUE(static_cast<bool>(r.handler)) << key;
    std::set<std::string> names;
    for (const std::string& seg : Segments(r.pattern)) {
      if (IsParam(seg)) {
        EXPECT_TRUE(std::regex_match(seg, param)) << key << ": segment " << seg;
        EXPECT_TRUE(names.insert(seg).second) << key << ": parameter " << seg << " twice";
      } else {
        EXPECT_TRUE(std::regex_match(seg, literal)) << key << ": segment \"" << seg << "\"";
      }
    }
    // The route is reachable: its own path (parameters filled in) is matched to it, not
    // shadowed by another.
    api::HttpRequest req;
    req.method = r.method;
    req.path = Concrete(r.pattern);
    const api::Route* m = api->router().Match(req);
    ASSERT_NE(m, nullptr) << key;
    EXPECT_EQ(Key(m->method, m->pattern), key);
  }
}

INSTANTIATE_TEST_SUITE_P(MetricsPublic, RouteTableTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "public" : "private"; });

// ---------------------------------------------------------------- the OpenAPI document

class OpenApiTest : public ApiTest, public ::testing::WithParamInterface<bool> {};

void CollectRefs(const json::value& v, std::vector<std::string>& out) {
  if (v.is_object()) {
    for (const auto& kv : v.as_object()) {
      if (kv.key() == "$ref" && kv.value().is_string()) {
        out.emplace_back(kv.value().as_string());
      } else {
        CollectRefs(kv.value(), out);
      }
    }
  } else if (v.is_array()) {
    for (const auto& x : v.as_array()) CollectRefs(x, out);
  }
}

TEST_P(OpenApiTest, DocumentListsExactlyTheRoutesWithTheirPermissions) {
  InProcessApi::Options o;
  o.metrics_public = GetParam();
  o.version = "1.2.3-contract";
  auto api = Make(o);
  ASSERT_NE(api, nullptr);
  api::HttpResponse resp = api->Call("GET", "/api/v1/openapi.json");
  ASSERT_EQ(resp.status, 200) << resp.body;
  EXPECT_EQ(resp.content_type, "application/json");
  EXPECT_EQ(resp.route, "GET /api/v1/openapi.json");
  json::value doc = Body(resp);
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.at("openapi"), "3.1.0");
  EXPECT_EQ(doc.at("info").at("version"), "1.2.3-contract");

  std::map<std::string, const api::Route*> routes;
  for (const api::Route& r : api->router().routes()) routes[Key(r.method, r.pattern)] = &r;

  const std::set<std::string> http_methods = {"get",     "put",  "post",  "delete",
                                              "options", "head", "patch", "trace"};
  std::set<std::string> documented;
  std::set<std::string> operation_ids;
  for (const auto& path_kv : doc.at("paths").as_object()) {
    const std::string path(path_kv.key());
    for (const auto& op_kv : path_kv.value().as_object()) {
      const std::string method(op_kv.key());
      if (!http_methods.count(method)) continue;  // "parameters", "summary", ...
      std::string upper;
      for (char c : method) upper.push_back(static_cast<char>(std::toupper(c)));
      const std::string key = Key(upper, path);
      documented.insert(key);
      auto it = routes.find(key);
      if (it == routes.end()) {
        ADD_FAILURE() << "the document has " << key << ", which no route serves";
        continue;
      }
      const api::Route& r = *it->second;
      const json::object& op = op_kv.value().as_object();
      ASSERT_TRUE(op.contains("operationId") && op.at("operationId").is_string()) << key;
      const std::string id(op.at("operationId").as_string());
      EXPECT_FALSE(id.empty()) << key;
      EXPECT_TRUE(operation_ids.insert(id).second) << "operationId " << id << " twice";
      ASSERT_TRUE(op.contains("summary") && op.at("summary").is_string()) << key;
      EXPECT_EQ(op.at("summary").as_string(), r.summary) << key;
      ASSERT_TRUE(op.contains("x-permission")) << key;
      EXPECT_EQ(op.at("x-permission").as_string(), r.permission) << key;
      if (r.permission == api::kPublic) {
        ASSERT_TRUE(op.contains("security")) << key << " is public but inherits the bearer";
        EXPECT_EQ(op.at("security"), json::array{}) << key;
      } else if (op.contains("security")) {
        EXPECT_NE(op.at("security"), json::array{}) << key << " is not public";
      }
      // Every {param} of the path is declared as a required path parameter, and nothing
      // else is declared "in: path".
      std::set<std::string> want_params, got_params;
      for (const std::string& seg : Segments(path)) {
        if (IsParam(seg)) want_params.insert(seg.substr(1, seg.size() - 2));
      }
      if (op.contains("parameters")) {
        for (const auto& p : op.at("parameters").as_array()) {
          if (p.at("in") != "path") continue;
          got_params.insert(std::string(p.at("name").as_string()));
          EXPECT_EQ(p.at("required"), true) << key;
        }
      }
      EXPECT_EQ(got_params, want_params) << key;
      // The success status is documented.
      ASSERT_TRUE(op.contains("responses")) << key;
      EXPECT_TRUE(op.at("responses").as_object().contains(std::to_string(r.success_status)))
          << key << " does not document its " << r.success_status;
    }
  }
  std::set<std::string> served;
  for (const auto& [k, r] : routes) served.insert(k);
  EXPECT_EQ(documented, served);

  // Every $ref resolves inside the document.
  std::vector<std::string> refs;
  CollectRefs(doc, refs);
  EXPECT_FALSE(refs.empty());
  for (const std::string& ref : refs) {
    ASSERT_EQ(ref.rfind("#/components/", 0), 0u) << ref;
    const std::string rest = ref.substr(std::string("#/components/").size());
    const size_t slash = rest.find('/');
    ASSERT_NE(slash, std::string::npos) << ref;
    const json::object& comps = doc.at("components").as_object();
    const std::string kind = rest.substr(0, slash), name = rest.substr(slash + 1);
    ASSERT_TRUE(comps.contains(kind)) << ref;
    EXPECT_TRUE(comps.at(kind).as_object().contains(name)) << ref << " does not resolve";
  }
}

INSTANTIATE_TEST_SUITE_P(MetricsPublic, OpenApiTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "public" : "private"; });

// ---------------------------------------------------------------- responses vs. document

// A small JSON Schema checker for the subset openapi.cpp uses: $ref to
// #/components/schemas, allOf, type (one or a list), properties, required, items, enum,
// additionalProperties (schema), maxItems, format date-time. Appends one line per
// violation, with the JSON pointer of the offending value.
class SchemaChecker {
 public:
  explicit SchemaChecker(const json::object& doc) : doc_(doc) {}

  void Check(const json::value& schema, const json::value& v, const std::string& at,
             std::vector<std::string>& out) const {
    const json::object& s = schema.as_object();
    if (const json::value* ref = s.if_contains("$ref")) {
      const std::string r(ref->as_string());
      const std::string prefix = "#/components/schemas/";
      if (r.rfind(prefix, 0) != 0) {
        out.push_back(at + ": unsupported $ref " + r);
        return;
      }
      const json::value* target =
          doc_.at("components").at("schemas").as_object().if_contains(r.substr(prefix.size()));
      if (target == nullptr) {
        out.push_back(at + ": unresolved $ref " + r);
        return;
      }
      Check(*target, v, at, out);
    }
    if (const json::value* all = s.if_contains("allOf")) {
      for (const auto& sub : all->as_array()) Check(sub, v, at, out);
    }
    if (const json::value* type = s.if_contains("type")) {
      bool ok = false;
      if (type->is_string()) {
        ok = HasType(v, type->as_string());
      } else {
        for (const auto& t : type->as_array()) ok = ok || HasType(v, t.as_string());
      }
      if (!ok) {
        out.push_back(at + ": " + json::serialize(v).substr(0, 80) + " is not of type " +
                      json::serialize(*type));
        return;
      }
    }
    if (const json::value* e = s.if_contains("enum")) {
      bool ok = false;
      for (const auto& x : e->as_array()) ok = ok || x == v;
      if (!ok) out.push_back(at + ": " + json::serialize(v) + " is not in " + json::serialize(*e));
    }
    if (const json::value* f = s.if_contains("format");
        f != nullptr && *f == "date-time" && v.is_string() &&
        !ParseRfc3339(std::string_view(v.as_string()))) {
      out.push_back(at + ": \"" + std::string(v.as_string()) + "\" is not a date-time");
    }
    if (const json::object* o = v.if_object()) {
      if (const json::value* req = s.if_contains("required")) {
        for (const auto& k : req->as_array()) {
          if (!o->contains(k.as_string())) {
            out.push_back(at + ": required property \"" + std::string(k.as_string()) +
                          "\" is missing");
          }
        }
      }
      const json::object* props =
          s.contains("properties") ? &s.at("properties").as_object() : nullptr;
      for (const auto& kv : *o) {
        const std::string where = at + "/" + std::string(kv.key());
        if (props != nullptr && props->contains(kv.key())) {
          Check(props->at(kv.key()), kv.value(), where, out);
        } else if (const json::value* ap = s.if_contains("additionalProperties");
                   ap != nullptr && ap->is_object()) {
          Check(*ap, kv.value(), where, out);
        } else if (const json::value* ap2 = s.if_contains("additionalProperties");
                   ap2 != nullptr && *ap2 == false) {
          out.push_back(where + ": property not allowed");
        }
      }
    }
    if (const json::array* a = v.if_array()) {
      if (const json::value* m = s.if_contains("maxItems");
          m != nullptr && a->size() > static_cast<size_t>(m->to_number<int64_t>())) {
        out.push_back(at + ": more than maxItems");
      }
      if (const json::value* items = s.if_contains("items")) {
        for (size_t i = 0; i < a->size(); ++i) {
          Check(*items, (*a)[i], at + "/" + std::to_string(i), out);
        }
      }
    }
  }

  // Properties the server sends that the schema does not declare (where the schema lists
  // properties and says nothing of additionalProperties), through $ref and allOf.
  void Undocumented(const json::value& schema, const json::value& v, const std::string& at,
                    std::set<std::string>& out) const {
    std::map<std::string, const json::value*> props;
    const json::value* items = nullptr;
    bool open = false;
    Collect(schema, props, items, open);
    if (const json::object* o = v.if_object()) {
      for (const auto& kv : *o) {
        const std::string key(kv.key());
        auto it = props.find(key);
        if (it != props.end()) {
          Undocumented(*it->second, kv.value(), at + "/" + key, out);
        } else if (!open && !props.empty()) {
          out.insert(at + "/" + key);
        }
      }
    } else if (const json::array* a = v.if_array(); a != nullptr && items != nullptr) {
      for (const auto& x : *a) Undocumented(*items, x, at + "/*", out);
    }
  }

 private:
  void Collect(const json::value& schema, std::map<std::string, const json::value*>& props,
               const json::value*& items, bool& open) const {
    const json::object& s = schema.as_object();
    if (const json::value* ref = s.if_contains("$ref")) {
      const std::string r(ref->as_string());
      const json::value* target =
          doc_.at("components")
              .at("schemas")
              .as_object()
              .if_contains(r.substr(std::string("#/components/schemas/").size()));
      if (target != nullptr) Collect(*target, props, items, open);
    }
    if (const json::value* all = s.if_contains("allOf")) {
      for (const auto& sub : all->as_array()) Collect(sub, props, items, open);
    }
    if (const json::value* p = s.if_contains("properties")) {
      for (const auto& kv : p->as_object()) props.emplace(std::string(kv.key()), &kv.value());
    }
    if (const json::value* ap = s.if_contains("additionalProperties")) {
      open = open || !(ap->is_bool() && !ap->as_bool());
      if (ap->is_object() && items == nullptr) {
        // A map: its values are checked like items.
      }
    }
    if (s.contains("type") && s.at("type") == "object" && !s.contains("properties") &&
        !s.contains("additionalProperties") && !s.contains("allOf") && !s.contains("$ref")) {
      open = true;  // a free-form object
    }
    if (const json::value* it = s.if_contains("items")) items = it;
  }

  static bool HasType(const json::value& v, std::string_view t) {
    if (t == "null") return v.is_null();
    if (t == "boolean") return v.is_bool();
    if (t == "string") return v.is_string();
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "number") return v.is_number();
    if (t == "integer") {
      return v.is_int64() || v.is_uint64() ||
             (v.is_double() &&
              v.as_double() == static_cast<double>(static_cast<int64_t>(v.as_double())));
    }
    return false;
  }
  const json::object& doc_;
};

TEST_F(ApiTest, SchemaCheckerFindsViolations) {
  auto api = Make();
  ASSERT_NE(api, nullptr);
  json::object doc = Body(api->Call("GET", "/api/v1/openapi.json")).as_object();
  SchemaChecker checker(doc);
  auto problems = [&](const std::string& schema, const std::string& value) {
    std::vector<std::string> out;
    checker.Check(json::object{{"$ref", "#/components/schemas/" + schema}}, json::parse(value), "",
                  out);
    return out;
  };
  EXPECT_THAT(problems("Health", R"({"status":"ok"})"), ::testing::IsEmpty());
  EXPECT_THAT(problems("Health", R"({"status":1})"),
              ElementsAre(HasSubstr("/status: 1 is not of type \"string\"")));
  EXPECT_THAT(problems("Run", R"({"id":"x","runbook":"r","created_at":"2030-01-01T00:00:00Z"})"),
              ElementsAre(HasSubstr("required property \"status\" is missing")));
  EXPECT_THAT(
      problems("Run", R"({"id":"x","runbook":"r","status":"DONE","created_at":"later"})"),
      ::testing::UnorderedElementsAre(HasSubstr("/status: \"DONE\" is not in"),
                                      HasSubstr("/created_at: \"later\" is not a date-time")));
  EXPECT_THAT(problems("RunList", R"({"items":[{"id":5}],"next_cursor":null})"),
              ::testing::Contains(HasSubstr("/items/0/id: 5 is not of type")));
  EXPECT_THAT(problems("QueueStats", R"({"counts":{"PENDING":"1"},"total":1})"),
              ElementsAre(HasSubstr("/counts/PENDING")));
  EXPECT_THAT(problems("RunDetail", R"({"id":"x","runbook":"r","status":"PENDING",
      "created_at":"2030-01-01T00:00:00Z","progress":{"steps_done":1.5}})"),
              ElementsAre(HasSubstr("/progress/steps_done")));
}

// Calls routes with valid and invalid requests and checks every JSON answer against the
// schema the OpenAPI document gives for that route and status: the success schema for the
// route's success status, the Error schema for 4xx/5xx.
class ResponsesMatchDocumentTest : public ApiTest {
 protected:
  void SetUp() override {
    api_ = Make();
    ASSERT_NE(api_, nullptr);
    api::HttpResponse r = api_->Call("GET", "/api/v1/openapi.json");
    doc_ = Body(r).as_object();
  }

  // Returns the parsed body; records a failure when it does not match the document.
  json::value Call(const std::string& method, const std::string& target,
                   const std::string& body = "", int want_status = 0,
                   const std::map<std::string, std::string>& headers = {}) {
    api::HttpResponse r = api_->Call(method, target, body, headers);
    if (want_status != 0) {
      EXPECT_EQ(r.status, want_status) << method << " " << target << ": " << r.body;
    }
    ++checked_[r.route];
    if (r.status == 204) {
      EXPECT_TRUE(r.body.empty()) << method << " " << target;
      return nullptr;
    }
    json::value v = Body(r);
    const size_t space = r.route.find(' ');
    if (space == std::string::npos) {
      ADD_FAILURE() << method << " " << target << " reached no route";
      return v;
    }
    std::string m = Lower(r.route.substr(0, space));
    const std::string pattern = r.route.substr(space + 1);
    const json::value* op = nullptr;
    if (const json::value* item = doc_.at("paths").as_object().if_contains(pattern)) {
      op = item->as_object().if_contains(m);
    }
    if (op == nullptr) {
      ADD_FAILURE() << r.route << " is not in the document";
      return v;
    }
    const json::object& responses = op->at("responses").as_object();
    const std::string code = std::to_string(r.status);
    const json::value* resp = responses.if_contains(code);
    if (resp == nullptr) resp = responses.if_contains(code.substr(0, 1) + "XX");
    if (resp == nullptr) {
      ADD_FAILURE() << r.route << " answered " << r.status
                    << ", which it does not document: " << r.body;
      return v;
    }
    if (const json::value* ref = resp->as_object().if_contains("$ref")) {
      const std::string name =
          std::string(ref->as_string()).substr(std::string("#/components/responses/").size());
      resp = &doc_.at("components").at("responses").at(name);
    }
    const json::value* content = resp->as_object().if_contains("content");
    if (content == nullptr) {
      ADD_FAILURE() << r.route << " " << r.status << " documents no body but sent " << r.body;
      return v;
    }
    const json::value* media = content->as_object().if_contains("application/json");
    if (media == nullptr) {
      ADD_FAILURE() << r.route << " " << r.status << " does not document application/json";
      return v;
    }
    std::vector<std::string> problems;
    SchemaChecker(doc_).Check(media->at("schema"), v, "", problems);
    std::set<std::string> extra;
    SchemaChecker(doc_).Undocumented(media->at("schema"), v, "", extra);
    for (const std::string& e : extra) undocumented_.insert(r.route + " " + code + " " + e);
    EXPECT_THAT(problems, ::testing::IsEmpty())
        << method << " " << target << " -> " << r.status << " (" << r.route << "): " << r.body;
    return v;
  }

  std::unique_ptr<InProcessApi> api_;
  json::object doc_;
  std::map<std::string, int> checked_;
  std::set<std::string> undocumented_;
};

TEST_F(ResponsesMatchDocumentTest, EveryJsonAnswerHasTheDocumentedShape) {
  const std::string rb = R"(id: contract-rb
name: Contract runbook
description: Created through the API by the contract test; never executed.
category: tests
tags: [contract]
params:
  who: {type: string, default: world}
  n: {type: int, required: true}
schedules:
  - id: nightly
    cron: "0 3 * * *"
    tz: Europe/Berlin
    params: {n: 1}
steps:
  - id: hello
    shell: echo "hello $AUTOMAN_PARAM_WHO"
    outputs: [greeting]
  - id: argv
    argv: ["true"]
    timeout: 5s
rollback:
  - id: undo
    shell: "true"
)";
  // System.
  Call("GET", "/healthz", "", 200);
  Call("GET", "/readyz", "", 200);
  Call("GET", "/api/v1/version", "", 200);
  // Runbooks.
  Call("GET", "/api/v1/runbooks", "", 200);
  Call("GET", "/api/v1/runbooks?limit=1", "", 200);
  Call("GET", "/api/v1/runbooks/host-info", "", 200);
  Call("GET", "/api/v1/runbooks/nope", "", 404);
  Call("POST", "/api/v1/runbooks/validate", rb, 200, {{"Content-Type", "application/yaml"}});
  Call("POST", "/api/v1/runbooks/validate", "id: [", 200, {{"Content-Type", "application/yaml"}});
  Call("POST", "/api/v1/runbooks", rb, 201, {{"Content-Type", "application/yaml"}});
  Call("POST", "/api/v1/runbooks", rb, 409, {{"Content-Type", "application/yaml"}});
  json::object as_json{{"yaml", rb}};
  Call("PUT", "/api/v1/runbooks/contract-rb", json::serialize(as_json), 200,
       {{"Content-Type", "application/json"}});
  Call("GET", "/api/v1/runbooks/contract-rb", "", 200);
  Call("POST", "/api/v1/runbooks/contract-rb/dry-run", R"({"params":{"n":2}})", 200);
  Call("POST", "/api/v1/runbooks/contract-rb/dry-run", "", 400);
  Call("PUT", "/api/v1/runbooks/host-info", rb, 0, {{"Content-Type", "application/yaml"}});
  // Runs.
  json::value run =
      Call("POST", "/api/v1/runs", R"({"runbook":"contract-rb","params":{"n":3}})", 201);
  const std::string id(run.at("id").as_string());
  Call("POST", "/api/v1/runs",
       R"({"runbook":"contract-rb","params":{"n":3},"idempotency_key":"a"})", 201);
  Call("POST", "/api/v1/runs",
       R"({"runbook":"contract-rb","params":{"n":3},"idempotency_key":"a"})", 200);
  Call("POST", "/api/v1/runs", R"({"runbook":"contract-rb"})", 400);
  Call("POST", "/api/v1/runs/batch",
       R"({"runs":[{"runbook":"host-info"},{"runbook":"contract-rb","params":{"n":1}}]})", 201);
  Call("POST", "/api/v1/runs/batch", R"({"runs":[{"runbook":"host-info"},{"runbook":"x"}]})", 404);
  Call("GET", "/api/v1/runs", "", 200);
  Call("GET", "/api/v1/runs?limit=1&status=pending&runbook=contract-rb&trigger=api", "", 200);
  Call("GET", "/api/v1/runs/" + id, "", 200);
  Call("GET", "/api/v1/runs/" + id + "/logs", "", 200);
  Call("GET", "/api/v1/runs/" + id + "/logs?limit=0", "", 400);
  Call("POST", "/api/v1/runs/" + id + "/retry", "", 0);
  Call("POST", "/api/v1/runs/" + id + "/cancel", "", 200);
  Call("POST", "/api/v1/runs/" + id + "/retry", "", 201);
  Call("DELETE", "/api/v1/runs/" + id, "", 204);
  Call("DELETE", "/api/v1/runs/" + id, "", 404);
  // Queue and analytics.
  Call("GET", "/api/v1/queue/stats", "", 200);
  Call("GET", "/api/v1/dlq", "", 200);
  Call("POST", "/api/v1/dlq/" + id + "/replay", "", 404);
  Call("DELETE", "/api/v1/dlq", "", 200);
  Call("GET", "/api/v1/analytics/runbooks", "", 200);
  Call("GET", "/api/v1/analytics/runbooks?since=x", "", 400);
  // Schedules.
  Call("GET", "/api/v1/cron/preview?expr=0+3+*+*+*&tz=Europe/Berlin&count=3", "", 200);
  Call("GET", "/api/v1/cron/preview?expr=nonsense", "", 400);
  Call("POST", "/api/v1/schedules",
       R"({"runbook":"contract-rb","id":"hourly","cron":"0 * * * *","params":{"n":5}})", 201);
  Call("POST", "/api/v1/schedules", R"({"runbook":"contract-rb","id":"Bad Id","cron":"x"})", 400);
  Call("GET", "/api/v1/schedules", "", 200);
  Call("GET", "/api/v1/schedules?runbook=contract-rb", "", 200);
  Call("GET", "/api/v1/schedules/contract-rb/hourly", "", 200);
  Call("PUT", "/api/v1/schedules/contract-rb/hourly", R"({"every":"90m","params":{"n":6}})", 200);
  Call("POST", "/api/v1/schedules/contract-rb/hourly/pause", "", 200);
  Call("POST", "/api/v1/schedules/contract-rb/hourly/resume", "", 200);
  Call("GET", "/api/v1/schedules/contract-rb/hourly/next?count=3", "", 200);
  Call("GET", "/api/v1/schedules/contract-rb/hourly/ledger", "", 200);
  Call("GET", "/api/v1/schedules/contract-rb/nope", "", 404);
  Call("DELETE", "/api/v1/schedules/contract-rb/hourly", "", 204);
  Call("DELETE", "/api/v1/runbooks/contract-rb", "", 204);
  // Security: login, tokens, users, roles, tickets, audit.
  const std::string login_body =
      std::string(R"({"username":"admin","password":")") + InProcessApi::kAdminPassword + "\"}";
  Call("POST", "/api/v1/auth/login", login_body, 200);
  Call("POST", "/api/v1/auth/login", R"({"username":"admin","password":"wrong-password"})", 401);
  Call("GET", "/api/v1/auth/me", "", 200);
  json::value tok = Call("POST", "/api/v1/auth/tokens", R"({"name":"ci","role":"viewer"})", 201);
  Call("GET", "/api/v1/auth/tokens", "", 200);
  Call("GET", "/api/v1/auth/tokens?all=true", "", 200);
  Call("DELETE", "/api/v1/auth/tokens/" + std::string(tok.at("id").as_string()), "", 204);
  Call("POST", "/api/v1/auth/tickets", R"({"scope":"all"})", 201);
  Call("POST", "/api/v1/auth/tickets", R"({"scope":"run:nope"})", 400);
  Call("POST", "/api/v1/users",
       R"({"username":"carol","password":"carol-password","role":"viewer"})", 201);
  Call("POST", "/api/v1/users",
       R"({"username":"carol","password":"carol-password","role":"viewer"})", 409);
  Call("GET", "/api/v1/users", "", 200);
  Call("GET", "/api/v1/users/carol", "", 200);
  Call("PATCH", "/api/v1/users/carol", R"({"role":"operator","disabled":true})", 200);
  Call("GET", "/api/v1/roles", "", 200);
  Call("GET", "/api/v1/audit", "", 200);
  Call("GET", "/api/v1/audit?action=user.&limit=2", "", 200);
  Call("GET", "/api/v1/audit/verify", "", 200);
  Call("POST", "/api/v1/auth/password", R"({"current":"wrong-password","new":"x-password"})", 400);
  Call("PUT", "/api/v1/secrets/db_password", R"({"value":"hunter22","description":"db"})", 200);
  Call("PUT", "/api/v1/secrets/db_password", R"({"value":"x"})", 400);
  Call("GET", "/api/v1/secrets", "", 200);
  Call("DELETE", "/api/v1/secrets/db_password", "", 204);
  Call("DELETE", "/api/v1/secrets/db_password", "", 404);
  Call("POST", "/api/v1/auth/logout", "", 204);

  // Every non-stream route but /metrics and the document itself was exercised.
  std::set<std::string> missing;
  for (const api::Route& r : api_->router().routes()) {
    const std::string key = Key(r.method, r.pattern);
    if (r.stream || r.pattern == "/metrics" || r.pattern == "/api/v1/openapi.json") continue;
    if (!checked_.count(key)) missing.insert(key);
  }
  EXPECT_THAT(missing, ::testing::IsEmpty());
  // Properties sent but not in the document (RunbookDetail, DryRunPlan and FirePreview in
  // src/api/openapi.cpp lack them). A ratchet: a new gap fails, and so does a fixed one,
  // until its line is removed here.
  const std::set<std::string> known_gaps = {};
  EXPECT_EQ(undocumented_, known_gaps);
}

// ---------------------------------------------------------------- 404 and 405

TEST_F(ApiTest, UnknownPathAnswers404WithTheErrorShape) {
  auto api = Make();
  ASSERT_NE(api, nullptr);
  for (const std::string target :
       {"/api/v1/nope", "/api/v1/runs/x/y/z/w", "/api/v2/runs", "/api", "/api/v1/", "/api/v1/runs/",
        "/nothing-here", "/api/v1/nope?x=1", "/API/V1/VERSION"}) {
    for (const std::string method : {"GET", "POST"}) {
      api::HttpResponse r = api->Call(method, target);
      EXPECT_EQ(r.status, 404) << method << " " << target << ": " << r.body;
      EXPECT_EQ(ErrorCodeOf(r), "not_found") << target;
      EXPECT_EQ(r.route, "unmatched");
      EXPECT_EQ(r.content_type, "application/json");
      EXPECT_EQ(HeaderOf(r, "Allow"), nullptr);
    }
  }
}

TEST_F(ApiTest, KnownPathWithAnotherMethodAnswers405WithAllow) {
  auto api = Make();
  ASSERT_NE(api, nullptr);
  const auto& routes = api->router().routes();
  const std::vector<std::string> all = {"GET", "POST", "PUT", "DELETE", "PATCH"};
  int checked = 0;
  for (const api::Route& route : routes) {
    const std::string path = Concrete(route.pattern);
    // The methods of every route whose pattern matches this path (a literal route and a
    // parameter route may both match, e.g. /api/v1/runs/batch and /api/v1/runs/{id}).
    std::set<std::string> allowed;
    for (const api::Route& r : routes) {
      if (PatternMatches(r.pattern, path)) allowed.insert(r.method);
    }
    for (const std::string& m : all) {
      if (allowed.count(m)) continue;
      api::HttpResponse r = api->Call(m, path);
      EXPECT_EQ(r.status, 405) << m << " " << path << ": " << r.body;
      EXPECT_EQ(ErrorCodeOf(r), "method_not_allowed") << m << " " << path;
      EXPECT_EQ(r.route, "unmatched");
      const std::string* allow = HeaderOf(r, "Allow");
      ASSERT_NE(allow, nullptr) << m << " " << path;
      EXPECT_EQ(SplitAllow(*allow), allowed) << m << " " << path << ": Allow: " << *allow;
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
  // One spelled out.
  api::HttpResponse r = api->Call("DELETE", "/api/v1/version");
  EXPECT_EQ(r.status, 405);
  ASSERT_NE(HeaderOf(r, "Allow"), nullptr);
  EXPECT_EQ(*HeaderOf(r, "Allow"), "GET");
  EXPECT_THAT(Message(r), HasSubstr("DELETE is not allowed on /api/v1/version"));
}

// ---------------------------------------------------------------- hostile bytes

bool JsonParses(const std::string& text) {
  json::error_code ec;
  json::parse(text, ec);
  return !ec;
}

TEST_F(ApiTest, NumbersBeyondDoubleAreRefusedOrKeptFinite) {
  auto api = Make();
  ASSERT_NE(api, nullptr);
  // 1e400 is valid JSON syntax but no double; the server must not store or echo it as the
  // non-JSON "Infinity".
  for (const std::string body : {R"({"runbook":"host-info","params":{"top":1e400}})",
                                 R"({"runbook":"host-info","priority":-1e400})",
                                 R"({"runbook":"host-info","max_attempts":1e400})"}) {
    api::HttpResponse r = api->Call("POST", "/api/v1/runs", body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
    EXPECT_TRUE(JsonParses(r.body)) << body << ": " << r.body;
  }
  api::HttpResponse list = api->Call("GET", "/api/v1/runs");
  EXPECT_TRUE(JsonParses(list.body)) << list.body;
}

// DISABLED: fails today. Error messages echo the method, the percent-decoded path, path
// parameters and query values byte for byte, and Boost.JSON serializes a string holding
// invalid UTF-8 as is, so the answer is not JSON (RFC 8259 requires UTF-8). Fix in
// src/api/wire.cpp ErrorResponse (replace invalid sequences by U+FFFD) — see the report.
TEST_F(ApiTest, ErrorAnswersAreJsonEvenForInvalidUtf8Requests) {
  auto api = Make();
  ASSERT_NE(api, nullptr);
  struct Case {
    std::string method, target;
  };
  for (const Case& c : std::vector<Case>{
           {"GET", "/api/v1/nope/%FF"},               // 404 echoes the path
           {"PATCH", "/api/v1/runs/%C0%AF"},          // 405 echoes the path
           {"GET", "/api/v1/runs/%FF%FE"},            // "run ... does not exist"
           {"GET", "/api/v1/runbooks/%ED%A0%80"},     // "runbook ... does not exist"
           {"GET", "/api/v1/runs?status=%FF"},        // "unknown status ..."
           {"GET", "/api/v1/runs?trigger=%80"},       // "unknown trigger ..."
           {"GET", "/api/v1/schedules/%FF/x"},        // schedule lookups
           {"GET", "/api/v1/cron/preview?expr=%FF"},  // cron diagnostics
           {"GET", "/api/v1/cron/preview?expr=*+*+*+*+*&tz=%FF"},
       }) {
    api::HttpResponse r = api->Call(c.method, c.target);
    EXPECT_GE(r.status, 400) << c.target;
    EXPECT_TRUE(JsonParses(r.body)) << c.method << " " << c.target << ": " << r.body;
  }
}

TEST_F(ApiTest, RunbookYamlWithInvalidUtf8IsRefusedOrAnsweredAsJson) {
  auto api = Make();
  ASSERT_NE(api, nullptr);
  const std::string yaml =
      "id: bytes\nname: Bytes \xff\xfe\ndescription: x\nsteps:\n  - id: a\n    shell: echo "
      "\xc0\xaf\n";
  for (const std::string target : {"/api/v1/runbooks/validate", "/api/v1/runbooks"}) {
    api::HttpResponse r = api->Call("POST", target, yaml, {{"Content-Type", "application/yaml"}});
    EXPECT_TRUE(JsonParses(r.body)) << target << " " << r.status << ": " << r.body;
  }
  api::HttpResponse list = api->Call("GET", "/api/v1/runbooks");
  EXPECT_TRUE(JsonParses(list.body)) << list.body;
}

// ---------------------------------------------------------------- ids as time bounds

TEST(IdLowerBoundTest, OrdersRealIdsByTheirMillisecond) {
  // Any millisecond would do; it must only be later than those of earlier tests (NewId).
  const Timestamp t0 = testing::FreshEpoch() + std::chrono::hours(5) + milliseconds(123);
  SimulatedClock clock(t0 - milliseconds(1));
  std::vector<std::string> before;
  for (int i = 0; i < 50; ++i) before.push_back(NewId(clock));
  clock.Advance(std::chrono::microseconds(999));  // t0 - 1us: still the millisecond before
  for (int i = 0; i < 50; ++i) before.push_back(NewId(clock));
  clock.Set(t0);
  std::vector<std::string> at;
  for (int i = 0; i < 200; ++i) at.push_back(NewId(clock));
  clock.Set(t0 + std::chrono::microseconds(999));
  for (int i = 0; i < 50; ++i) at.push_back(NewId(clock));
  clock.Set(t0 + milliseconds(1));
  std::vector<std::string> after;
  for (int i = 0; i < 50; ++i) after.push_back(NewId(clock));

  // The bound of t0, and of any instant inside t0's millisecond, sits between the ids of
  // the millisecond before and those of t0 onwards.
  for (Timestamp t : {t0, t0 + std::chrono::microseconds(1), t0 + std::chrono::microseconds(999)}) {
    const std::string bound = api::IdLowerBound(t);
    EXPECT_TRUE(IsValidId(bound)) << bound;  // usable as a list cursor
    for (const std::string& id : before) EXPECT_LT(id, bound);
    for (const std::string& id : at) EXPECT_GE(id, bound);
    for (const std::string& id : after) EXPECT_GT(id, bound);
  }
  const std::string next = api::IdLowerBound(t0 + milliseconds(1));
  for (const std::string& id : at) EXPECT_LT(id, next);
  for (const std::string& id : after) EXPECT_GE(id, next);
  // Monotonic in time.
  EXPECT_LT(api::IdLowerBound(t0 - milliseconds(1)), api::IdLowerBound(t0));
  EXPECT_LT(api::IdLowerBound(*ParseRfc3339("1970-01-01T00:00:00.001Z")),
            api::IdLowerBound(*ParseRfc3339("9999-12-31T23:59:59.999Z")));
  // Before the epoch clamps to the smallest id.
  EXPECT_EQ(api::IdLowerBound(Timestamp(std::chrono::seconds(-5))),
            "00000000-0000-7000-0000-000000000000");
}

// ---------------------------------------------------------------- runs list bounds

class RunsListTest : public ApiTest {
 protected:
  void SetUp() override {
    api_ = Make();
    ASSERT_NE(api_, nullptr);
  }
  // Creates a host-info run at the clock's current instant; returns its id.
  std::string CreateRun() {
    api::HttpResponse r = api_->Call("POST", "/api/v1/runs", R"({"runbook":"host-info"})");
    EXPECT_EQ(r.status, 201) << r.body;
    return std::string(Body(r).at("id").as_string());
  }
  // Every id of GET target, following next_cursor to the end.
  std::vector<std::string> ListAll(const std::string& target, int* pages = nullptr) {
    std::vector<std::string> ids;
    std::string cursor;
    for (int page = 1; page < 100; ++page) {
      std::string t = target + (target.find('?') == std::string::npos ? "?" : "&") +
                      (cursor.empty() ? "" : "cursor=" + cursor);
      api::HttpResponse r = api_->Call("GET", t);
      EXPECT_EQ(r.status, 200) << t << ": " << r.body;
      if (r.status != 200) break;
      json::value v = Body(r);
      for (const auto& item : v.at("items").as_array()) {
        ids.emplace_back(item.at("id").as_string());
      }
      if (pages != nullptr) *pages = page;
      if (v.at("next_cursor").is_null()) break;
      cursor = std::string(v.at("next_cursor").as_string());
    }
    return ids;
  }
  std::unique_ptr<InProcessApi> api_;
};

TEST_F(RunsListTest, SinceIsInclusiveAndUntilExclusiveAtTheMillisecond) {
  // Three runs in each of four consecutive milliseconds T, T+1ms, T+2ms, T+3ms.
  const Timestamp t = api_->clock().Now();
  std::vector<std::vector<std::string>> by_ms(4);
  for (int ms = 0; ms < 4; ++ms) {
    api_->clock().Set(t + milliseconds(ms));
    for (int i = 0; i < 3; ++i) by_ms[ms].push_back(CreateRun());
  }
  auto at = [&](int ms) { return FormatRfc3339(t + milliseconds(ms)); };
  auto newest_first = [&](int from_ms, int to_ms) {  // [from, to)
    std::vector<std::string> out;
    for (int ms = to_ms - 1; ms >= from_ms; --ms) {
      for (auto it = by_ms[ms].rbegin(); it != by_ms[ms].rend(); ++it) out.push_back(*it);
    }
    return out;
  };
  EXPECT_EQ(ListAll("/api/v1/runs"), newest_first(0, 4));
  EXPECT_EQ(ListAll("/api/v1/runs?since=" + at(1)), newest_first(1, 4));
  EXPECT_EQ(ListAll("/api/v1/runs?until=" + at(2)), newest_first(0, 2));
  EXPECT_EQ(ListAll("/api/v1/runs?since=" + at(1) + "&until=" + at(3)), newest_first(1, 3));
  EXPECT_EQ(ListAll("/api/v1/runs?since=" + at(2) + "&until=" + at(2)), newest_first(2, 2));
  EXPECT_EQ(ListAll("/api/v1/runs?since=" + at(3) + "&until=" + at(1)), newest_first(3, 1));
  EXPECT_EQ(ListAll("/api/v1/runs?since=" + at(4)), newest_first(4, 4));
  EXPECT_EQ(ListAll("/api/v1/runs?until=" + at(0)), newest_first(0, 0));
  // An offset names the same instant.
  EXPECT_EQ(ListAll("/api/v1/runs?since=" +
                    FormatRfc3339(t + milliseconds(1) + std::chrono::hours(2)).substr(0, 23) +
                    "%2B02:00"),
            newest_first(1, 4));

  // Pages of 2 with bounds: every run once, in order. A full last page still carries a
  // next_cursor (the store is not asked for one more row), so a fourth, empty page may follow.
  int pages = 0;
  EXPECT_EQ(ListAll("/api/v1/runs?limit=2&since=" + at(1) + "&until=" + at(3), &pages),
            newest_first(1, 3));
  EXPECT_THAT(pages, ::testing::AnyOf(3, 4));
  // A page that ends before the floor has no next cursor.
  EXPECT_EQ(ListAll("/api/v1/runs?limit=4&since=" + at(1) + "&until=" + at(3), &pages),
            newest_first(1, 3));
  EXPECT_EQ(pages, 2);
  // A page that ends exactly at `since` has no next cursor only once the floor is seen:
  // limit 3 with since=T+3ms returns the three runs of T+3ms; whether a next page is
  // offered, following it must return nothing more.
  EXPECT_EQ(ListAll("/api/v1/runs?limit=3&since=" + at(3)), newest_first(3, 4));
  EXPECT_EQ(ListAll("/api/v1/runs?limit=1"), newest_first(0, 4));
}

// DISABLED: fails today. ListRuns (src/api/run_routes.cpp) turns `since` and `until` into
// id bounds with IdLowerBound, which floors to the millisecond, and never compares
// created_at; so since=T+0.5ms still lists a run created at T, and until=T+0.5ms hides it.
// Enable once ListRuns also filters on created_at (or refuses sub-millisecond bounds).
TEST_F(RunsListTest, SubMillisecondBoundsKeepTheirDocumentedMeaning) {
  // "since: created at or after", "until: created before" hold for any instant, not only
  // whole milliseconds: a run created at T is before since=T+0.5ms and before until=T+0.5ms.
  const Timestamp t = api_->clock().Now();
  const std::string run = CreateRun();
  const std::string half = FormatRfc3339(t).substr(0, 23) + "5Z";  // T + 0.5 ms
  ASSERT_EQ(*ParseRfc3339(half), t + std::chrono::microseconds(500));
  EXPECT_THAT(ListAll("/api/v1/runs?since=" + half), ::testing::IsEmpty());
  EXPECT_THAT(ListAll("/api/v1/runs?until=" + half), ElementsAre(run));
}

TEST_F(RunsListTest, MalformedBoundsAndFiltersAreRefusedByName) {
  struct Case {
    std::string query;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {"since=yesterday", "\"since\""},
           {"until=2027-13-01T00:00:00Z", "\"until\""},
           {"limit=0", "\"limit\""},
           {"limit=1001", "\"limit\""},
           {"limit=5x", "\"limit\""},
           {"status=sleeping", "unknown status \"sleeping\""},
           {"trigger=cosmic", "unknown trigger \"cosmic\""},
           {"cursor=not-an-id", "malformed cursor"},
       }) {
    api::HttpResponse r = api_->Call("GET", "/api/v1/runs?" + c.query);
    EXPECT_EQ(r.status, 400) << c.query << ": " << r.body;
    EXPECT_EQ(ErrorCodeOf(r), "invalid_argument") << c.query;
    EXPECT_THAT(Message(r), HasSubstr(c.says)) << c.query;
  }
  // Status is case-insensitive.
  CreateRun();
  EXPECT_EQ(ListAll("/api/v1/runs?status=pending").size(), 1u);
  EXPECT_EQ(ListAll("/api/v1/runs?status=SUCCESS").size(), 0u);
}

// ---------------------------------------------------------------- run create

TEST_F(RunsListTest, CreateRunValidatesTheBodyAndHonoursIdempotency) {
  struct Case {
    std::string body;
    int status;
    std::string code;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {"", 400, "invalid_argument", "body is empty"},
           {"[]", 400, "invalid_argument", "must be a JSON object"},
           {"{", 400, "invalid_argument", "malformed JSON body"},
           {R"({"runbook":"host-info","bogus":1})", 400, "invalid_argument",
            "unknown field \"bogus\""},
           {R"({})", 400, "invalid_argument", "\"runbook\" is required"},
           {R"({"runbook":7})", 400, "invalid_argument", "\"runbook\" must be a string"},
           {R"({"runbook":"nope"})", 404, "not_found", "runbook \"nope\" does not exist"},
           {R"({"runbook":"host-info","params":[1]})", 400, "invalid_argument",
            "\"params\" must be an object"},
           {R"({"runbook":"host-info","params":{"top":"many"}})", 400, "invalid_argument", "top"},
           {R"({"runbook":"host-info","params":{"top":{"x":1}}})", 400, "invalid_argument",
            "param \"top\" must be a string, number or boolean"},
           {R"({"runbook":"host-info","params":{"unknown":1}})", 400, "invalid_argument",
            "unknown"},
           {R"({"runbook":"host-info","priority":1001})", 400, "invalid_argument",
            "\"priority\" must be in -1000..1000"},
           {R"({"runbook":"host-info","priority":1.5})", 400, "invalid_argument",
            "\"priority\" must be an integer"},
           {R"({"runbook":"host-info","priority":18446744073709551615})", 400, "invalid_argument",
            "\"priority\" must be an integer"},
           {R"({"runbook":"host-info","max_attempts":0})", 400, "invalid_argument",
            "\"max_attempts\" must be in 1..1000"},
           {R"({"runbook":"host-info","not_before":"soon"})", 400, "invalid_argument",
            "\"not_before\""},
           {R"({"runbook":"host-info","deadline_at":5})", 400, "invalid_argument",
            "\"deadline_at\" must be an RFC 3339 timestamp string"},
           {R"({"runbook":"host-info","idempotency_key":""})", 400, "invalid_argument",
            "idempotency key"},
           {"{\"runbook\":\"host-info\",\"idempotency_key\":\"\xff\"}", 400, "invalid_argument",
            "malformed JSON body"},
           {std::string(40, '[') + std::string(40, ']'), 400, "invalid_argument",
            "nested deeper than 32 levels"},
       }) {
    api::HttpResponse r = api_->Call("POST", "/api/v1/runs", c.body);
    EXPECT_EQ(r.status, c.status) << c.body << ": " << r.body;
    EXPECT_EQ(ErrorCodeOf(r), c.code) << c.body;
    EXPECT_THAT(Message(r), HasSubstr(c.says)) << c.body;
  }
  EXPECT_THAT(ListAll("/api/v1/runs"), ::testing::IsEmpty()) << "a refused request created a run";

  const std::string body =
      R"({"runbook":"host-info","params":{"top":3},"priority":-7,"idempotency_key":"k-1",)"
      R"("not_before":"2030-01-01T00:00:00+01:00","max_attempts":4})";
  api::HttpResponse first = api_->Call("POST", "/api/v1/runs", body);
  ASSERT_EQ(first.status, 201) << first.body;
  json::value run = Body(first);
  EXPECT_EQ(run.at("status"), "PENDING");
  EXPECT_EQ(run.at("trigger"), "api");
  EXPECT_EQ(run.at("priority"), -7);
  EXPECT_EQ(run.at("max_attempts"), 4);
  EXPECT_EQ(run.at("params").at("top"), 3);  // typed, not "3"
  EXPECT_EQ(run.at("not_before"), "2029-12-31T23:00:00.000Z");
  EXPECT_EQ(run.at("created_at").as_string(), FormatRfc3339(api_->clock().Now()));
  api::HttpResponse again = api_->Call("POST", "/api/v1/runs", body);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Body(again).at("id"), run.at("id"));
  EXPECT_EQ(ListAll("/api/v1/runs").size(), 1u);

  // The run as GET shows it, and deletion only once it is finished.
  const std::string id(run.at("id").as_string());
  api::HttpResponse got = api_->Call("GET", "/api/v1/runs/" + id);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Body(got).at("progress").at("steps_total"), 3);
  EXPECT_EQ(Body(got).at("duration_ms"), nullptr);
  api::HttpResponse del = api_->Call("DELETE", "/api/v1/runs/" + id);
  EXPECT_EQ(del.status, 409) << del.body;
  EXPECT_EQ(ErrorCodeOf(del), "failed_precondition");
  EXPECT_EQ(api_->Call("POST", "/api/v1/runs/" + id + "/cancel").status, 200);
  EXPECT_EQ(Body(api_->Call("GET", "/api/v1/runs/" + id)).at("status"), "CANCELLED");
  api::HttpResponse gone = api_->Call("DELETE", "/api/v1/runs/" + id);
  EXPECT_EQ(gone.status, 204) << gone.body;
  EXPECT_TRUE(gone.body.empty());
  api::HttpResponse missing = api_->Call("GET", "/api/v1/runs/" + id);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ErrorCodeOf(missing), "not_found");
  api::HttpResponse junk = api_->Call("GET", "/api/v1/runs/..%2F..%2Fetc");
  EXPECT_EQ(junk.status, 404);
  EXPECT_EQ(ErrorCodeOf(junk), "not_found");
}

TEST_F(RunsListTest, LogCursorIsValidated) {
  const std::string id = CreateRun();
  for (const std::string cursor : {"x", "1", "0.5", "1.-1", "1.5x", "99999999999.1", ".", "1."}) {
    api::HttpResponse r = api_->Call("GET", "/api/v1/runs/" + id + "/logs?cursor=" + cursor);
    EXPECT_EQ(r.status, 400) << cursor << ": " << r.body;
    EXPECT_THAT(Message(r), HasSubstr("malformed cursor")) << cursor;
  }
  api::HttpResponse r = api_->Call("GET", "/api/v1/runs/" + id + "/logs");
  ASSERT_EQ(r.status, 200) << r.body;
  json::value v = Body(r);
  EXPECT_EQ(v.at("items"), json::array{});
  EXPECT_EQ(v.at("next_cursor"), "1.0");  // not terminal: more lines may come
}

// ---------------------------------------------------------------- system routes

TEST_F(ApiTest, SystemRoutesAnswer) {
  InProcessApi::Options o;
  o.version = "9.9.9";
  auto api = Make(o);
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(Body(api->Call("GET", "/healthz")), json::parse(R"({"status":"ok"})"));
  EXPECT_EQ(Body(api->Call("GET", "/readyz")), json::parse(R"({"status":"ready"})"));
  json::value v = Body(api->Call("GET", "/api/v1/version"));
  EXPECT_EQ(v.at("version"), "9.9.9");
  EXPECT_EQ(v.at("api"), "v1");
  EXPECT_EQ(v.at("store_schema"), api->store().SchemaVersion());
  api->ctx().accepting = [] { return false; };
  api::HttpResponse r = api->Call("GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorCodeOf(r), "unavailable");
  // No registry: /metrics still answers, empty.
  api::HttpResponse m = api->Call("GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.content_type, metrics::kContentType);
  EXPECT_EQ(m.body, "");
}

// ---------------------------------------------------------------- cooldown

TEST_F(ApiTest, CooldownRefusesWith429RetryAfterAndAnAuditEntry) {
  const std::string runbooks = dir_.File("runbooks");
  std::filesystem::create_directories(runbooks);
  testing::WriteFile(runbooks + "/cooled.yaml",
                     "id: cooled\ncooldown: 10m\nsteps:\n  - id: s\n    shell: \"true\"\n");
  InProcessApi::Options o;
  o.runbooks_dir = runbooks;
  auto api = Make(o);
  ASSERT_NE(api, nullptr);
  api::HttpResponse r = api->Call("GET", "/api/v1/runbooks/cooled");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r).at("cooldown_ms"), 600000);
  ASSERT_EQ(api->Call("POST", "/api/v1/runs", R"({"runbook":"cooled"})").status, 201);
  api->clock().Advance(std::chrono::minutes(4));
  r = api->Call("POST", "/api/v1/runs", R"({"runbook":"cooled"})");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(ErrorCodeOf(r), "cooldown");
  EXPECT_THAT(Message(r), HasSubstr("may run again at"));
  ASSERT_NE(HeaderOf(r, "Retry-After"), nullptr);
  EXPECT_EQ(*HeaderOf(r, "Retry-After"), "361");  // 6 min, rounded up
  api::HttpResponse audit = api->Call("GET", "/api/v1/audit?action=run.create");
  ASSERT_EQ(audit.status, 200) << audit.body;
  EXPECT_THAT(audit.body, HasSubstr("denied"));
  EXPECT_THAT(audit.body, HasSubstr("cooldown"));
  api->clock().Advance(std::chrono::minutes(6));
  EXPECT_EQ(api->Call("POST", "/api/v1/runs", R"({"runbook":"cooled"})").status, 201);
}

// ---------------------------------------------------------------- params JSON Schema

TEST_F(ApiTest, ParamsSchemaOfTheExampleRunbookTypesEveryParam) {
  // docs/examples/params.yaml, loaded through a catalog directory as --runbooks DIR would.
  const std::string runbooks = dir_.File("runbooks");
  std::filesystem::create_directories(runbooks);
  std::filesystem::copy_file(testing::SourceDir() + "/docs/examples/params.yaml",
                             runbooks + "/params.yaml");
  InProcessApi::Options o;
  o.runbooks_dir = runbooks;
  auto api = Make(o);
  ASSERT_NE(api, nullptr);
  api::HttpResponse r = api->Call("GET", "/api/v1/runbooks/params-demo");
  ASSERT_EQ(r.status, 200) << r.body;
  json::value rb = Body(r);
  EXPECT_EQ(rb.at("origin"), "directory");
  EXPECT_EQ(rb.at("params_count"), 7);
  const json::value& s = rb.at("params_schema");
  EXPECT_EQ(s.at("$schema"), "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(s.at("type"), "object");
  EXPECT_EQ(s.at("additionalProperties"), false);
  EXPECT_EQ(s.at("required"), json::parse(R"(["service"])"));
  const json::object& p = s.at("properties").as_object();
  EXPECT_EQ(p.size(), 7u);
  EXPECT_EQ(p.at("service"), json::parse(R"({"type":"string","pattern":"^(?:[a-z][a-z0-9-]*)$",
                                             "description":"The service to act on."})"));
  EXPECT_EQ(p.at("replicas"), json::parse(R"({"type":"integer","default":2})"));
  EXPECT_TRUE(p.at("replicas").at("default").is_int64()) << "an integer default, not 2.0";
  EXPECT_EQ(p.at("ratio"), json::parse(R"({"type":"number","default":0.5})"));
  EXPECT_EQ(p.at("verbose"), json::parse(R"({"type":"boolean","default":false})"));
  EXPECT_EQ(p.at("env"),
            json::parse(R"({"type":"string","enum":["dev","staging","prod"],"default":"dev"})"));
  EXPECT_EQ(p.at("token"), json::parse(R"({"type":"string","format":"password","writeOnly":true,
      "description":"An API token. Never stored; replaced by *** in logs."})"));
  EXPECT_EQ(p.at("note"), json::parse(R"({"type":"string",
      "description":"Optional and without a default, so absent unless given."})"));
  // The anchored pattern is an ECMA-262 regex (what JSON Schema validators use) that
  // accepts what the runbook accepts and nothing around it.
  std::regex re(std::string(p.at("service").at("pattern").as_string()), std::regex::ECMAScript);
  EXPECT_TRUE(std::regex_search("web-1", re));
  EXPECT_FALSE(std::regex_search("Web", re));
  EXPECT_FALSE(std::regex_search("web x", re));

  // The schema agrees with what creating a run accepts.
  api::HttpResponse ok = api->Call(
      "POST", "/api/v1/runs",
      R"({"runbook":"params-demo","params":{"service":"web","replicas":3,"ratio":0.25,"verbose":true,"env":"prod"}})");
  ASSERT_EQ(ok.status, 201) << ok.body;
  json::value params = Body(ok).at("params");
  EXPECT_EQ(
      params,
      json::parse(R"({"service":"web","replicas":3,"ratio":0.25,"verbose":true,"env":"prod"})"));
  for (const std::string bad : {R"({"service":"Web"})", R"({"service":"web","replicas":"three"})",
                                R"({"service":"web","env":"qa"})",
                                R"({"service":"web","verbose":"maybe"})", R"({"replicas":1})"}) {
    api::HttpResponse r2 =
        api->Call("POST", "/api/v1/runs", R"({"runbook":"params-demo","params":)" + bad + "}");
    EXPECT_EQ(r2.status, 400) << bad << ": " << r2.body;
    EXPECT_EQ(ErrorCodeOf(r2), "invalid_argument") << bad;
  }
  // A secret rides the queued run sealed, and never comes back.
  api::HttpResponse secret =
      api->Call("POST", "/api/v1/runs",
                R"({"runbook":"params-demo","params":{"service":"w","token":"s3cr3t-v"}})");
  EXPECT_EQ(secret.status, 201) << secret.body;
  EXPECT_EQ(json::parse(secret.body).at("params").at("token"), json::value("***"));
  EXPECT_EQ(secret.body.find("s3cr3t-v"), std::string::npos);
}

// ---------------------------------------------------------------- /metrics

TEST_F(ApiTest, MetricsAreAcceptedByPromtool) {
  const std::string promtool = testing::RunCommand("command -v promtool").out;
  if (promtool.empty()) GTEST_SKIP() << "promtool is not installed (apt-get install prometheus)";
  InProcessApi::Options o;
  o.with_metrics = true;
  auto api = Make(o);
  ASSERT_NE(api, nullptr);
  // Some traffic, so labelled series exist (routes with braces, 404s, 405s).
  api->Call("GET", "/healthz");
  api->Call("GET", "/api/v1/runs/0190a0b0-0000-7000-8000-000000000000");
  api->Call("GET", "/api/v1/nope");
  api->Call("PATCH", "/api/v1/version");
  api->Call("POST", "/api/v1/runs", R"({"runbook":"host-info"})");
  api::HttpResponse r = api->Call("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, metrics::kContentType);
  EXPECT_THAT(r.body, HasSubstr("automan_http_requests_total{method=\"GET\",route=\"GET "
                                "/api/v1/runs/{id}\",code=\"404\"} 1"));
  EXPECT_THAT(r.body, HasSubstr("automan_http_request_duration_seconds_bucket{"));
  EXPECT_THAT(r.body, HasSubstr("process_"));
  const std::string file = dir_.File("metrics.txt");
  testing::WriteFile(file, r.body);
  testing::CommandResult check = testing::RunCommand("promtool check metrics < " + file + " 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.out << "\n--- exposition:\n" << r.body;
  EXPECT_EQ(check.out, "") << "promtool lint findings:\n" << check.out;
}

}  // namespace
}  // namespace automan
