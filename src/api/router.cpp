#include "api/router.h"

#include <exception>

#include "api/wire.h"

namespace automan::api {

namespace {
std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 1;  // paths start with '/'
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}
// The request's path segments: decoded one by one by the transport, or split from `path`.
std::vector<std::string_view> SegmentsOf(const HttpRequest& req) {
  if (req.segments.empty()) {
    if (req.path.empty() || req.path.front() != '/') return {};
    return SplitPath(req.path);
  }
  return std::vector<std::string_view>(req.segments.begin(), req.segments.end());
}

}  // namespace

void Router::Add(Route route) {
  Compiled c;
  for (std::string_view seg : SplitPath(route.pattern)) {
    c.segments.emplace_back(seg);
    if (seg.empty() || seg.front() != '{') ++c.literals;
  }
  routes_.push_back(std::move(route));
  compiled_.push_back(std::move(c));
}

bool Router::MatchSegments(const Compiled& c, const std::vector<std::string_view>& segs,
                           std::map<std::string, std::string>* params) {
  if (segs.empty() || segs.size() != c.segments.size()) return false;
  for (size_t i = 0; i < segs.size(); ++i) {
    const std::string& want = c.segments[i];
    if (!want.empty() && want.front() == '{') {
      if (segs[i].empty()) return false;
      if (params != nullptr) (*params)[want.substr(1, want.size() - 2)] = std::string(segs[i]);
    } else if (want != segs[i]) {
      return false;
    }
  }
  return true;
}

const Route* Router::Match(const HttpRequest& req, bool* path_matched) const {
  if (path_matched != nullptr) *path_matched = false;
  const Route* best = nullptr;
  int best_literals = -1;
  const std::vector<std::string_view> segs = SegmentsOf(req);
  for (size_t i = 0; i < routes_.size(); ++i) {
    if (!MatchSegments(compiled_[i], segs, nullptr)) continue;
    if (path_matched != nullptr) *path_matched = true;
    if (routes_[i].method == req.method && compiled_[i].literals > best_literals) {
      best = &routes_[i];
      best_literals = compiled_[i].literals;
    }
  }
  return best;
}

HandlerCost Router::Resolve(HttpRequest& req) const {
  req.route = -1;
  const Route* r = Match(req);
  if (r == nullptr) return HandlerCost::kQuick;
  const size_t i = static_cast<size_t>(r - routes_.data());
  req.path_params.clear();
  MatchSegments(compiled_[i], SegmentsOf(req), &req.path_params);
  req.route = static_cast<int>(i);
  return r->cost;
}

void AddSecurityHeaders(HttpResponse& resp) {
  resp.headers.emplace_back("X-Content-Type-Options", "nosniff");
  resp.headers.emplace_back("X-Frame-Options", "DENY");
  resp.headers.emplace_back("Referrer-Policy", "no-referrer");
  resp.headers.emplace_back("Content-Security-Policy",
                            "default-src 'none'; frame-ancestors 'none'");
  resp.headers.emplace_back("Cache-Control", "no-store");
}

HttpResponse Router::Dispatch(HttpRequest& req) const {
  HttpResponse resp = DispatchUnsecured(req);
  AddSecurityHeaders(resp);
  return resp;
}

HttpResponse Router::DispatchUnsecured(HttpRequest& req) const {
  if (req.route < 0) Resolve(req);
  const Route* r = req.route >= 0 && static_cast<size_t>(req.route) < routes_.size()
                       ? &routes_[static_cast<size_t>(req.route)]
                       : nullptr;
  req.route = -1;  // used: a request dispatched again is matched again
  bool path_matched = false;
  if (r == nullptr) Match(req, &path_matched);
  if (r == nullptr && path_matched) {
    std::string allow;
    const std::vector<std::string_view> segs = SegmentsOf(req);
    for (size_t i = 0; i < routes_.size(); ++i) {
      if (!MatchSegments(compiled_[i], segs, nullptr)) continue;
      if (allow.find(routes_[i].method) == std::string::npos) {
        allow += (allow.empty() ? "" : ", ") + routes_[i].method;
      }
    }
    HttpResponse resp =
        ErrorResponse(405, "method_not_allowed",
                      req.method + " is not allowed on " + req.path + "; use " + allow);
    resp.headers.emplace_back("Allow", allow);
    resp.route = "unmatched";
    return resp;
  }
  if (r == nullptr) {
    HttpResponse resp = ErrorResponse(404, "not_found", "no route " + req.method + " " + req.path);
    resp.route = "unmatched";
    return resp;
  }
  HttpResponse resp;
  try {
    if (guard_) {
      if (std::optional<HttpResponse> denied = guard_(req, *r)) {
        denied->route = r->method + " " + r->pattern;
        return std::move(*denied);
      }
    }
    resp = r->handler(req);
  } catch (const std::exception&) {
    resp = ErrorResponse(500, "internal", "the server failed to handle this request");
  }
  resp.route = r->method + " " + r->pattern;
  return resp;
}

}  // namespace automan::api
