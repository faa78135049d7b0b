#include "api_harness.h"

#include <atomic>
#include <cctype>
#include <chrono>

#include "api/http.h"
#include "auth/crypto.h"
#include "auth/keys.h"
#include "metrics/process_metrics.h"

namespace automan::testing {

Timestamp FreshEpoch() {
  static std::atomic<int> days{0};
  const Timestamp base = *ParseRfc3339("2030-01-01T00:00:00Z");
  return base + std::chrono::hours(24) * days.fetch_add(1);
}

Result<std::unique_ptr<InProcessApi>> InProcessApi::Create(const Options& options) {
  std::unique_ptr<InProcessApi> api(new InProcessApi(options.start.value_or(FreshEpoch())));
  StoreOptions so;
  so.url =
      options.store_url.empty() ? "sqlite:" + options.data_dir + "/automan.db" : options.store_url;
  so.durability = Durability::kFast;  // tests: a power loss is not part of the contract
  AUTOMAN_ASSIGN_OR_RETURN(api->store_, Store::Open(so));
  api::RunbookCatalog::Options co;
  co.builtins = api::BuiltinRunbooks();
  co.directory = options.runbooks_dir;
  co.api_dir = options.data_dir + "/api-runbooks";
  AUTOMAN_ASSIGN_OR_RETURN(api->catalog_, api::RunbookCatalog::Open(std::move(co)));
  // Security as the server sets it up, with a random master key and the cheapest password
  // cost OWASP allows (tests hash many passwords).
  auth::Key master{};
  const std::string random = auth::RandomBytes(master.size());
  std::copy(random.begin(), random.end(), master.begin());
  const auth::Keys keys = auth::DeriveKeys(master);
  api->sealer_ = std::make_unique<secrets::KeySealer>(keys.params);
  QueueOptions qo;
  qo.sealer = api->sealer_.get();
  api->queue_ = std::make_unique<Queue>(*api->store_, api->clock_, qo);
  api->queue_->SetObserver([hub = &api->hub_](const Run& run) { hub->PublishRun(run); });
  auth::AuthOptions ao;
  ao.password_cost = auth::kOwaspMinimumCost;
  api->audit_ =
      std::make_unique<audit::AuditLog>(*api->store_, keys.audit, api->clock_,
                                        audit::AuditLogOptions{options.data_dir + "/audit.head"});
  api->auth_ = std::make_unique<auth::AuthService>(*api->store_, api->clock_, api->roles_, keys, ao,
                                                   api::Security::HookOf(*api->audit_));
  api->tickets_ = std::make_unique<auth::TicketIssuer>(keys.tickets, api->clock_);
  api->secrets_ = std::make_unique<secrets::SecretStore>(*api->store_, keys.secrets, api->clock_,
                                                         api::Security::HookOf(*api->audit_));
  api->security_ = std::make_unique<api::Security>(*api->auth_, *api->tickets_, *api->audit_,
                                                   *api->secrets_, api::SecurityOptions{});
  AUTOMAN_RETURN_IF_ERROR(api->auth_->Bootstrap(std::string(kAdminPassword)).status());
  AUTOMAN_ASSIGN_OR_RETURN(auth::LoginResult login, api->auth_->Login("admin", kAdminPassword, true,
                                                                      auth::Actor{"", "test"}));
  api->admin_token_ = *login.token;
  api->ctx_ = std::make_unique<api::ApiContext>(api::ApiContext{
      *api->store_, *api->queue_, *api->catalog_, api->hub_, api->clock_, *api->security_});
  api->ctx_->options.version = options.version;
  api->ctx_->options.commit = "0000000";
  api->ctx_->options.metrics_public = options.metrics_public;
  if (options.with_metrics) {
    // The families `automan server` registers (src/cli/server_command.cpp), so /metrics
    // renders the same shapes: counters, gauges, histograms, labels with odd values.
    api->registry_ = std::make_unique<metrics::Registry>();
    metrics::RegisterProcessMetrics(*api->registry_);
    api->http_requests_ = &api->registry_->AddCounter(
        "automan_http_requests_total", "HTTP requests answered.", {"method", "route", "code"});
    api->http_duration_ = &api->registry_->AddHistogram(
        "automan_http_request_duration_seconds",
        "Time to answer an HTTP request (streams excluded).", {"route"},
        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    api->registry_->AddHistogram("automan_run_duration_seconds",
                                 "Duration of finished runs, first start to finish.", {"runbook"},
                                 metrics::DefaultDurationBuckets());
    api->registry_->AddGauge("automan_queue_runs", "Runs in the store per status.", {"status"});
    api->registry_->AddGauge("automan_streams_open", "Open SSE and WebSocket streams.");
    api->ctx_->metrics = api->registry_.get();
  }
  api->router_ = std::make_unique<api::Router>(api::BuildRouter(*api->ctx_));
  return api;
}

api::HttpResponse InProcessApi::CallAnonymous(const std::string& method, const std::string& target,
                                              const std::string& body) {
  return Call(method, target, body, {{"authorization", ""}});
}

Result<std::string> InProcessApi::TokenFor(const std::string& username, const std::string& role) {
  const std::string password = "password-of-" + username;
  auto created = auth_->CreateUser(username, password, role, false, auth::Actor{"test", ""});
  if (!created.ok() && created.status().code() != ErrorCode::kAlreadyExists) {
    return created.status();
  }
  AUTOMAN_ASSIGN_OR_RETURN(auth::LoginResult login,
                           auth_->Login(username, password, true, auth::Actor{"", "test"}));
  return *login.token;
}

api::HttpResponse InProcessApi::Call(const std::string& method, const std::string& target,
                                     const std::string& body,
                                     const std::map<std::string, std::string>& headers) {
  api::HttpRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  req.remote = "127.0.0.1";
  for (const auto& [k, v] : headers) {
    std::string lower;
    for (char c : k)
      lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    req.headers[lower] = v;
  }
  if (req.headers.count("authorization") == 0 && req.headers.count("cookie") == 0) {
    req.headers["authorization"] = "Bearer " + admin_token_;
  } else if (auto it = req.headers.find("authorization");
             it != req.headers.end() && it->second.empty()) {
    req.headers.erase(it);  // CallAnonymous
  }
  // As the transport (src/server/http_server.cpp) does before dispatching.
  if (target.empty() || target.front() != '/' || !api::SplitTarget(target, req.path, req.query)) {
    api::HttpResponse bad;
    bad.status = 400;
    bad.body =
        R"({"error":{"code":"bad_request","message":"the request target must be a path with )"
        R"(valid percent-escapes","details":null}})";
    bad.route = "bad_request";
    return bad;
  }
  api::HttpResponse resp = router_->Dispatch(req);
  if (http_requests_ != nullptr) {
    // As the server's access hook does; the duration is fixed (no wall clock in tests).
    http_requests_->With({method.empty() ? "-" : method, resp.route, std::to_string(resp.status)})
        .Inc();
    if (!resp.stream) http_duration_->With({resp.route}).Observe(0.002);
  }
  return resp;
}

}  // namespace automan::testing
