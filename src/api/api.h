// The REST API v1: builds the route table (router.h) over the server's components.
//
// Every route is one row in BuildRouter (api.cpp and the *_routes.cpp files), with its
// permission, summary, query parameters and schemas; openapi.cpp renders the same rows as
// the OpenAPI 3.1 document. The request path: transport (server/http_server.cpp) →
// Router::Dispatch → a handler here → queue / store / catalog → wire JSON (wire.h).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "api/catalog.h"
#include "api/hub.h"
#include "api/router.h"
#include "audit/audit_log.h"
#include "auth/auth_service.h"
#include "auth/rate_limiter.h"
#include "auth/tickets.h"
#include "common/clock.h"
#include "queue/queue.h"
#include "secrets/secret_store.h"
#include "store/store.h"

namespace automan::metrics {
class Registry;
}

namespace automan::api {

struct ApiOptions {
  std::string version;  // of this binary
  std::string commit;
  int max_streams = 10000;
  int max_streams_per_subject = 100;
  bool metrics_public = false;
  // Runs re-check the store this often while streaming (changes made by other processes).
  std::chrono::milliseconds stream_poll{1000};
};

// Who may call what, beyond the route table's permissions (docs/security.md).
struct SecurityOptions {
  bool secure_cookies = false;  // the server speaks TLS: cookies get `Secure`
  // Peers whose X-Forwarded-For is believed (exact addresses); nobody else's is.
  std::vector<std::string> trusted_proxies;
  // Origins accepted on cookie-authenticated state changes besides the request's own
  // ("https://automan.example.com", when a proxy rewrites Host).
  std::vector<std::string> allowed_origins;
  // Per subject, on every authenticated route; per_second <= 0 turns it off.
  auth::RateLimiter::Limit api_limit{500, 5000};
  // Login attempts per client address and per username.
  auth::RateLimiter::Limit login_per_address{1, 10};
  auth::RateLimiter::Limit login_per_user{0.2, 5};
};

// The security services the routes use; owned by the server (or a test harness).
struct Security {
  Security(auth::AuthService& auth_service, auth::TicketIssuer& ticket_issuer,
           audit::AuditLog& audit_log, secrets::SecretStore& secret_store, SecurityOptions opts)
      : auth(auth_service),
        tickets(ticket_issuer),
        log(audit_log),
        secrets(secret_store),
        audit(HookOf(audit_log)),
        options(std::move(opts)),
        api_limiter(options.api_limit),
        login_by_address(options.login_per_address),
        login_by_user(options.login_per_user) {}

  // The hook that appends an audit entry to `log` in the caller's transaction.
  static auth::AuditHook HookOf(audit::AuditLog& log) {
    return [&log](StoreTx& tx, const AuditRecord& e) {
      return log.Append(
          tx, audit::AuditEvent{e.actor, e.action, e.target, e.outcome, e.remote, e.details_json});
    };
  }

  auth::AuthService& auth;
  auth::TicketIssuer& tickets;
  audit::AuditLog& log;
  secrets::SecretStore& secrets;
  // Appends an audit entry in the caller's transaction (auth/auth_service.h AuditHook).
  auth::AuditHook audit;
  const SecurityOptions options;
  auth::RateLimiter api_limiter;       // per subject
  auth::RateLimiter login_by_address;  // per client address
  auth::RateLimiter login_by_user;     // per username tried
};

struct ApiContext {
  Store& store;
  Queue& queue;
  RunbookCatalog& catalog;
  EventHub& hub;
  const Clock& clock;
  Security& security;
  metrics::Registry* metrics = nullptr;  // /metrics; may be null in tests
  ApiOptions options;
  // Readiness beyond "the store answers": false while starting or shutting down.
  std::function<bool()> accepting = [] { return true; };
};

Router BuildRouter(ApiContext& ctx);

// The OpenAPI 3.1 document of these routes (JSON text).
std::string OpenApiDocument(const Router& router, const std::string& version);

}  // namespace automan::api
