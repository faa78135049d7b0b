// Fuzz target for the request-target parser and the route matcher of the REST API:
// api::SplitTarget (src/api/http.h) and Router::Match on the real route table
// (api::BuildRouter), plus Router::Dispatch for requests that match no route (404/405, no
// handler runs). See README.md.
//
// Input: "METHOD\nTARGET" (without a '\n' the whole input is the target, method GET).
//
// SplitTarget: accepts exactly the targets in which every '%' starts a two-hex-digit escape;
// what it accepts re-encodes (every byte escaped) to a target that splits to the same path
// and query. Match: the route it returns has the request's method and matches the path
// segment by segment, and no route of that method matching the path has more literal
// segments; `path_matched` says whether any route (any method) matches. Dispatch of an
// unmatched request: 405 with `Allow` = the methods of the routes matching the path, or
// 404 when none does; the body is the error shape, valid JSON.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/http.h"
#include "api/router.h"
#include "api_harness.h"

namespace {

namespace api = automan::api;
namespace json = boost::json;

[[noreturn]] void Broken(const char* what, std::string_view method, std::string_view target) {
  fprintf(stderr, "api_target_fuzz: invariant broken: %s (method %zu bytes, target %zu bytes)\n",
          what, method.size(), target.size());
  abort();
}

// The router over an in-memory store, built once. No handler of a matched route is ever
// called here, so nothing is written.
struct Fixture {
  std::string dir;
  std::unique_ptr<automan::testing::InProcessApi> api;
  Fixture() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "api_target_fuzz.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) abort();
    dir = tmpl;
    automan::testing::InProcessApi::Options o;
    o.data_dir = dir;
    o.store_url = "sqlite::memory:";
    auto made = automan::testing::InProcessApi::Create(o);
    if (!made.ok()) {
      fprintf(stderr, "api_target_fuzz: %s\n", made.status().message().c_str());
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

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool EscapesWellFormed(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) return false;
    i += 2;
  }
  return true;
}

std::string Encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 1;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// -1: no match; otherwise the number of literal segments of the pattern.
int Literals(const std::string& pattern, std::string_view path) {
  if (path.empty() || path.front() != '/') return -1;
  std::vector<std::string_view> p = Segments(pattern), s = Segments(path);
  if (p.size() != s.size()) return -1;
  int literals = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    bool param = p[i].size() > 2 && p[i].front() == '{';
    if (param) {
      if (s[i].empty()) return -1;
    } else {
      if (p[i] != s[i]) return -1;
      ++literals;
    }
  }
  return literals;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view method = "GET", target = in;
  if (size_t nl = in.find('\n'); nl != std::string_view::npos) {
    method = in.substr(0, nl);
    target = in.substr(nl + 1);
  }

  api::HttpRequest req;
  req.method = std::string(method);
  req.target = std::string(target);
  const bool ok = api::SplitTarget(target, req.path, req.query);
  if (ok != EscapesWellFormed(target))
    Broken("accepted a malformed escape or refused a good one", method, target);
  if (!ok) return 0;

  // Re-encoded, it splits to the same path and query.
  std::string again = Encode(req.path);
  if (!req.query.empty()) {
    again += '?';
    bool first = true;
    for (const auto& [k, v] : req.query) {
      if (!first) again += '&';
      first = false;
      again += Encode(k) + "=" + Encode(v);
    }
  }
  std::string path2;
  std::multimap<std::string, std::string> query2;
  if (!api::SplitTarget(again, path2, query2))
    Broken("the re-encoded target is refused", method, target);
  if (path2 != req.path || query2 != req.query)
    Broken("the re-encoded target differs", method, target);

  const api::Router& router = F().api->router();
  bool path_matched = false;
  const api::Route* r = router.Match(req, &path_matched);
  bool any = false;
  int best = -1;
  std::set<std::string> allowed;
  for (const api::Route& x : router.routes()) {
    int lit = Literals(x.pattern, req.path);
    if (lit < 0) continue;
    any = true;
    allowed.insert(x.method);
    if (x.method == req.method && lit > best) best = lit;
  }
  if (path_matched != any) Broken("path_matched disagrees with the patterns", method, target);
  if ((r != nullptr) != (best >= 0)) Broken("a route was missed or invented", method, target);
  if (r != nullptr) {
    if (r->method != req.method) Broken("matched another method", method, target);
    if (Literals(r->pattern, req.path) != best) Broken("a less specific route won", method, target);
    return 0;
  }

  api::HttpResponse resp = router.Dispatch(req);
  if (resp.route != "unmatched") Broken("an unmatched request names a route", method, target);
  if (resp.status != (any ? 405 : 404))
    Broken("wrong status for an unmatched request", method, target);
  const std::string* allow = nullptr;
  for (const auto& [k, v] : resp.headers) {
    if (k == "Allow") allow = &v;
  }
  if (any) {
    if (allow == nullptr) Broken("405 without Allow", method, target);
    std::set<std::string> got;
    size_t i = 0;
    while (i <= allow->size()) {
      size_t j = allow->find(", ", i);
      if (j == std::string::npos) j = allow->size();
      got.insert(allow->substr(i, j - i));
      i = j + 2;
    }
    if (got != allowed) Broken("Allow lists other methods", method, target);
  } else if (allow != nullptr) {
    Broken("404 with Allow", method, target);
  }
  json::error_code ec;
  json::value body = json::parse(resp.body, ec);
  if (ec) Broken("the error body is not valid JSON", method, target);
  const json::object* o = body.if_object();
  const json::value* e = o != nullptr ? o->if_contains("error") : nullptr;
  if (e == nullptr || !e->is_object() || !e->as_object().contains("code") ||
      !e->as_object().contains("message")) {
    Broken("the error body is not the error shape", method, target);
  }
  return 0;
}
