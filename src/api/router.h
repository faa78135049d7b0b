// The route table: every HTTP route of the server in one list, each with the permission
// it requires, so authorization (the security issue) and the OpenAPI document
// (openapi.cpp) are derived from the same rows the dispatcher uses and cannot drift.
//
// Patterns are paths with `{name}` segments ("/api/v1/runs/{id}"); a literal segment wins
// over a parameter ("/api/v1/runs/batch" before "/api/v1/runs/{id}"). A path that matches
// no route answers 404 JSON; a path that matches with another method answers 405 with
// `Allow`. Handlers run on the transport's worker threads; a handler that throws answers
// 500 without the exception's text.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http.h"

namespace automan::api {

// Routes anyone may call.
inline constexpr std::string_view kPublic = "public";
// Routes any logged-in subject may call (its own session, tokens, password).
inline constexpr std::string_view kAuthenticated = "authenticated";

struct QueryDoc {
  std::string name;
  std::string type;  // "string" "integer" "boolean" (OpenAPI schema type)
  std::string description;
  bool required = false;
};

struct Route {
  std::string method;
  std::string pattern;
  std::string permission;  // kPublic or a permission such as "runs.read"
  std::string summary;
  std::string tag;
  std::vector<QueryDoc> query;
  std::string request_schema;   // a component schema name, "yaml" (a runbook), or empty
  std::string response_schema;  // a component schema name, or empty (no body)
  int success_status = 200;
  bool stream = false;  // Server-Sent Events / WebSocket
  HttpHandler handler;
  // kQuick only for handlers that answer from memory or with one indexed read of a local
  // store: the transport then calls them on its I/O thread.
  HandlerCost cost = HandlerCost::kMayWait;
};

struct Route;
// Runs before every matched route's handler: nullopt lets it run, a response answers
// instead (401, 403, 429). Set by BuildRouter to api::Authorize (access.h).
using RouteGuard = std::function<std::optional<HttpResponse>(HttpRequest&, const Route&)>;

// The headers every response of the API carries (nosniff, no framing, no caching, a CSP
// that allows nothing: API responses are data, never documents).
void AddSecurityHeaders(HttpResponse& resp);

class Router {
 public:
  void Add(Route route);
  void SetGuard(RouteGuard guard) { guard_ = std::move(guard); }
  const std::vector<Route>& routes() const { return routes_; }
  // Matches, fills req.path_params, calls the handler; sets response.route.
  HttpResponse Dispatch(HttpRequest& req) const;
  // Matches the request once, for the Dispatch that follows (which then skips matching),
  // and says where its handler should run: kQuick when none matches (a 404 or 405).
  HandlerCost Resolve(HttpRequest& req) const;
  // The route a request would reach (nullptr: none).
  const Route* Match(const HttpRequest& req, bool* path_matched = nullptr) const;

 private:
  struct Compiled {
    std::vector<std::string> segments;  // "{x}" for parameters
    int literals = 0;
  };
  HttpResponse DispatchUnsecured(HttpRequest& req) const;
  static bool MatchSegments(const Compiled& c, const std::vector<std::string_view>& segs,
                            std::map<std::string, std::string>* params);
  std::vector<Route> routes_;
  std::vector<Compiled> compiled_;
  RouteGuard guard_;
};

}  // namespace automan::api
