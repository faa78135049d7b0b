// The real API router, in process: a SQLite store, a Queue, the runbook catalog and an
// EventHub wired into api::BuildRouter exactly as `automan server` wires them, minus the
// transport, the worker pool and the scheduler. Nothing enqueued through it ever executes:
// there is no worker, so runs stay PENDING. Requests go through Router::Dispatch.
//
// Used by routes_test.cpp (the contract tests), openapi_dump.cpp (the document the
// openapi_lint test feeds to Redocly) and the fuzz targets tests/fuzz/api_target_fuzz.cpp and
// api_body_fuzz.cpp. Call() is not thread-safe; one InProcessApi per test.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "api/api.h"
#include "api/catalog.h"
#include "api/hub.h"
#include "api/router.h"
#include "audit/audit_log.h"
#include "auth/auth_service.h"
#include "auth/tickets.h"
#include "common/clock.h"
#include "common/status.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "secrets/param_sealer.h"
#include "secrets/secret_store.h"
#include "store/store.h"

namespace automan::testing {

// A whole UTC day no earlier call returned in this process: 2030-01-01, then the next day,
// and so on. NewId (common/ids.h) never lets ids go back in time within a process (a clock
// that steps back gets ids of the latest millisecond seen), so a test that relates ids to
// simulated instants must use instants later than any a previous test used.
Timestamp FreshEpoch();

class InProcessApi {
 public:
  struct Options {
    // Store URL; "" means sqlite:DATA/automan.db.
    std::string store_url;
    // Where API-managed runbooks live (DATA/api-runbooks) and the default store goes.
    std::string data_dir;
    std::string runbooks_dir;  // --runbooks; "" for none
    bool metrics_public = false;
    bool with_metrics = false;  // set ctx.metrics to a registry like the server's
    std::string version = "0.0.0-test";
    // The simulated clock's start; unset: FreshEpoch().
    std::optional<Timestamp> start;
  };

  // kInvalidArgument / kUnavailable from the store or the catalog, as opened.
  static Result<std::unique_ptr<InProcessApi>> Create(const Options& options);

  InProcessApi(const InProcessApi&) = delete;
  InProcessApi& operator=(const InProcessApi&) = delete;

  // Splits `target` as the transport does (400 bad_request when it is not a path with valid
  // escapes), lower-cases header names, dispatches, and counts the request in the metrics.
  // As the bootstrap admin (Authorization: Bearer admin_token()) unless `headers` holds an
  // Authorization or Cookie header; CallAnonymous sends no credentials.
  api::HttpResponse Call(const std::string& method, const std::string& target,
                         const std::string& body = "",
                         const std::map<std::string, std::string>& headers = {});

  api::HttpResponse CallAnonymous(const std::string& method, const std::string& target,
                                  const std::string& body = "");
  // A user `username` with `role` (created on first use) and a bearer token of theirs.
  Result<std::string> TokenFor(const std::string& username, const std::string& role);

  static constexpr const char* kAdminPassword = "admin-password-for-tests";
  const std::string& admin_token() const { return admin_token_; }
  auth::AuthService& auth() { return *auth_; }
  audit::AuditLog& audit() { return *audit_; }
  auth::TicketIssuer& tickets() { return *tickets_; }
  api::Router& router() { return *router_; }
  api::ApiContext& ctx() { return *ctx_; }
  SimulatedClock& clock() { return clock_; }
  Store& store() { return *store_; }
  Queue& queue() { return *queue_; }
  metrics::Registry* registry() { return registry_.get(); }

 private:
  explicit InProcessApi(Timestamp start) : clock_(start) {}

  SimulatedClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<secrets::KeySealer> sealer_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<api::RunbookCatalog> catalog_;
  api::EventHub hub_;
  std::unique_ptr<metrics::Registry> registry_;
  metrics::Family<metrics::Counter>* http_requests_ = nullptr;
  metrics::Family<metrics::Histogram>* http_duration_ = nullptr;
  auth::RoleSet roles_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<secrets::SecretStore> secrets_;
  std::unique_ptr<auth::AuthService> auth_;
  std::unique_ptr<auth::TicketIssuer> tickets_;
  std::unique_ptr<api::Security> security_;
  std::string admin_token_;
  std::unique_ptr<api::ApiContext> ctx_;
  std::unique_ptr<api::Router> router_;
};

}  // namespace automan::testing
