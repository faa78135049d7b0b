// `automan server`: the composition root of the long-running process — the store, the
// queue's worker pool, the schedule loop, the runbook catalog (hot-reloaded), the event
// hub, metrics, the REST API and its HTTP transport. docs/configuration.md lists the
// settings; docs/api.md the routes.
//
// Shutdown (SIGTERM, SIGINT): /readyz answers 503 at once; the listener closes and the
// streams end; the worker stops claiming and gives running steps `grace` to finish (then
// kills them and leaves their leases to expire, so another server or worker rescues the
// runs); the schedule loop stops; the log writers flush; the process exits 0.
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "api/api.h"
#include "api/catalog.h"
#include "api/hub.h"
#include "audit/audit_log.h"
#include "auth/auth_service.h"
#include "auth/keys.h"
#include "auth/roles_file.h"
#include "auth/tickets.h"
#include "cli/cli_support.h"
#include "cli/commands.h"
#include "cli/version.h"
#include "common/clock.h"
#include "common/duration.h"
#include "engine/engine.h"
#include "metrics/metrics.h"
#include "metrics/process_metrics.h"
#include "scheduler/scheduler.h"
#include "scheduler/sync.h"
#include "secrets/param_sealer.h"
#include "secrets/secret_store.h"
#include "server/config.h"
#include "server/http_server.h"
#include "worker/worker.h"

extern char** environ;

namespace automan::cli {

namespace {

using std::chrono::milliseconds;

std::string JsonEscape(std::string_view s) {
  std::string o;
  o.reserve(s.size() + 2);
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\r':
        o += "\\r";
        break;
      case '\t':
        o += "\\t";
        break;
      default:
        if (c < 0x20) {
          o += fmt::format("\\u{:04x}", c);
        } else {
          o.push_back(static_cast<char>(c));
        }
    }
  }
  return o;
}

// Structured logs: one JSON object per line on stderr.
class Logger {
 public:
  explicit Logger(int min_level) : min_(min_level) {}
  static int Level(std::string_view name) {
    return name == "debug" ? 0 : name == "info" ? 1 : name == "warn" ? 2 : 3;
  }
  void Log(int level, std::string_view msg, std::string_view extra_json = "") {
    if (level < min_) return;
    static const char* kNames[] = {"debug", "info", "warn", "error"};
    std::string line =
        fmt::format(R"({{"ts":"{}","level":"{}","msg":"{}")", FormatRfc3339(SystemClock().Now()),
                    kNames[level], JsonEscape(msg));
    if (!extra_json.empty()) line += "," + std::string(extra_json);
    line += "}\n";
    std::lock_guard lock(mu_);
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void Raw(const std::string& line) {
    std::lock_guard lock(mu_);
    std::fwrite(line.data(), 1, line.size(), stderr);
  }

 private:
  int min_;
  std::mutex mu_;
};

// The server's metric families, registered once.
struct ServerMetrics {
  explicit ServerMetrics(metrics::Registry& r)
      : http_requests(r.AddCounter("automan_http_requests_total", "HTTP requests answered.",
                                   {"method", "route", "code"})),
        http_duration(r.AddHistogram(
            "automan_http_request_duration_seconds",
            "Time to answer an HTTP request (streams excluded).", {"route"},
            {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
        attempts_started(r.AddCounter("automan_run_attempts_started_total",
                                      "Run attempts started (claimed by a worker of this server).",
                                      {"runbook"})),
        runs_finished(r.AddCounter("automan_runs_finished_total",
                                   "Runs that reached a terminal status.", {"runbook", "status"})),
        run_duration(r.AddHistogram("automan_run_duration_seconds",
                                    "Duration of finished runs, first start to finish.",
                                    {"runbook"}, metrics::DefaultDurationBuckets())),
        step_duration(r.AddHistogram("automan_step_duration_seconds", "Duration of finished steps.",
                                     {"status"}, metrics::DefaultDurationBuckets())),
        lateness(r.AddHistogram("automan_scheduler_lateness_seconds",
                                "How late scheduled runs became claimable (commit - due).", {},
                                {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300})),
        queue_runs(r.AddGauge("automan_queue_runs", "Runs in the store per status.", {"status"})),
        streams_open(r.AddGauge("automan_streams_open", "Open SSE and WebSocket streams.")),
        connections(r.AddGauge("automan_http_connections", "Open HTTP connections.")) {}

  metrics::Family<metrics::Counter>& http_requests;
  metrics::Family<metrics::Histogram>& http_duration;
  metrics::Family<metrics::Counter>& attempts_started;
  metrics::Family<metrics::Counter>& runs_finished;
  metrics::Family<metrics::Histogram>& run_duration;
  metrics::Family<metrics::Histogram>& step_duration;
  metrics::Family<metrics::Histogram>& lateness;
  metrics::Family<metrics::Gauge>& queue_runs;
  metrics::Family<metrics::Gauge>& streams_open;
  metrics::Family<metrics::Gauge>& connections;
};

// Feeds the hub and the step metrics from the engine (shared by every executor thread).
class HubObserver final : public RunObserver {
 public:
  HubObserver(api::EventHub& hub, ServerMetrics& m) : hub_(hub), m_(m) {}
  void OnStepStarted(const Step&, const StepRun& rec) override { hub_.PublishStep(rec.run_id); }
  void OnStepFinished(const Step&, const StepRun& rec) override {
    hub_.PublishStep(rec.run_id);
    if (rec.started_at && rec.finished_at) {
      m_.step_duration.With({std::string(ToString(rec.status))})
          .Observe(std::chrono::duration<double>(*rec.finished_at - *rec.started_at).count());
    }
  }
  void OnLog(const LogLine& line) override { hub_.PublishLog(line); }

 private:
  api::EventHub& hub_;
  ServerMetrics& m_;
};

// "127.0.0.1:8080", "[::1]:8080" -> address, port (validated by the config loader).
std::pair<std::string, uint16_t> SplitListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return {host, static_cast<uint16_t>(std::stoi(listen.substr(colon + 1)))};
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
    i = j + 1;
  }
  return out;
}

// True when the store has no users yet (a new store: its master key may be created).
Result<bool> StoreHasNoUsers(Store& store) {
  bool empty = false;
  AUTOMAN_RETURN_IF_ERROR(store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<UserRecord> users, tx.ListUsers());
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<AuditRecord> last, tx.LastAudit());
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<SecretRecord> secrets, tx.ListSecrets());
    empty = users.empty() && !last && secrets.empty();
    return Status::Ok();
  }));
  return empty;
}

}  // namespace

int RunServer(const ServerOptions& o) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  auto loaded = LoadServerConfig(o.config_file, o.flags, env);
  if (!loaded.ok()) {
    fmt::print(stderr, "error: {}\n", loaded.status().message());
    return kExitInvalidInput;
  }
  const ServerConfig& c = loaded->config;
  (void)std::setvbuf(stderr, nullptr, _IOLBF, 0);
  Logger log(Logger::Level(c.log_level));
  if (std::string banner = DescribeConfigSources(*loaded); !banner.empty()) {
    fmt::print(stderr, "{}", banner);
  }
  const milliseconds lease = *ParseDuration(c.lease);
  const milliseconds grace = *ParseDuration(c.grace);
  const milliseconds request_timeout = *ParseDuration(c.request_timeout);

  StoreFlags sf;
  sf.data_dir = c.data;
  sf.db_url = c.db;
  auto store = OpenStore(sf);
  if (!store.ok()) {
    fmt::print(stderr, "error: {}\n", store.status().message());
    return kExitFailed;
  }
  // Security: the master key, users, sessions and tokens, stream tickets (docs/security.md).
  const std::string key_file = c.key_file.empty() ? c.data + "/master.key" : c.key_file;
  auto fresh_store = StoreHasNoUsers(**store);
  if (!fresh_store.ok()) {
    fmt::print(stderr, "error: {}\n", fresh_store.status().message());
    return kExitFailed;
  }
  bool key_created = false;
  auto keys = auth::LoadOrCreateKeys(key_file, *fresh_store, &key_created);
  if (!keys.ok()) {
    fmt::print(stderr, "error: {}\n", keys.status().message());
    return kExitFailed;
  }
  if (key_created)
    log.Log(1, "created the master key file " + key_file + " (back it up with the store)");
  // The audit trail: hash-chained entries in the store, anchored by DATA/audit.head.
  audit::AuditLog audit_log(**store, keys->audit, SystemClock(), {c.data + "/audit.head"});
  secrets::SecretStore secret_store(**store, keys->secrets, SystemClock(),
                                    api::Security::HookOf(audit_log));

  auto catalog =
      api::RunbookCatalog::Open({api::BuiltinRunbooks(), c.runbooks, c.data + "/api-runbooks"});
  if (!catalog.ok()) {
    fmt::print(stderr, "error: loading runbooks:\n{}\n", catalog.status().message());
    return kExitInvalidInput;
  }

  metrics::Registry registry;
  metrics::RegisterProcessMetrics(registry);
  ServerMetrics m(registry);
  api::EventHub hub;

  secrets::KeySealer param_sealer(keys->params);
  QueueOptions qo;
  qo.lease = lease;
  qo.sealer = &param_sealer;
  EngineOptions eo = EngineOptionsFor(c.data, {c.key_file, o.config_file, c.tls_key});
  eo.sandbox.enabled = c.sandbox;
  eo.idle_supervisors = static_cast<size_t>(std::clamp(c.workers, 1, 16));
  eo.resolve_secrets = [&secret_store](const std::vector<std::string>& names) {
    return secret_store.Resolve(names);
  };
  Engine engine(**store, SystemClock(), eo, qo);
  engine.queue().SetObserver([&hub, &m](const Run& run) {
    hub.PublishRun(run);
    if (run.status == RunStatus::kRunning && run.lease_expires_at) {
      m.attempts_started.With({run.runbook_id}).Inc();
    }
    if (IsTerminal(run.status)) {
      m.runs_finished.With({run.runbook_id, std::string(ToString(run.status))}).Inc();
      if (run.started_at && run.finished_at) {
        m.run_duration.With({run.runbook_id})
            .Observe(std::chrono::duration<double>(*run.finished_at - *run.started_at).count());
      }
    }
  });
  HubObserver observer(hub, m);
  EngineExecutor executor(engine, &observer);

  auth::RoleSet roles;
  if (!c.roles_file.empty()) {
    if (Status loaded = auth::LoadRolesFile(c.roles_file, roles); !loaded.ok()) {
      fmt::print(stderr, "error: roles_file: {}\n", loaded.message());
      return kExitInvalidInput;
    }
  }
  auth::AuthOptions ao;
  ao.session_idle = *ParseDuration(c.session_idle);
  ao.session_absolute = *ParseDuration(c.session_lifetime);
  auth::AuthService auth_service(**store, SystemClock(), roles, *keys, ao,
                                 api::Security::HookOf(audit_log));
  {
    const char* env_pw = std::getenv("AUTOMAN_ADMIN_PASSWORD");
    std::optional<std::string> admin_pw;
    if (env_pw != nullptr && *env_pw != '\0') admin_pw = env_pw;
    auto boot = auth_service.Bootstrap(admin_pw);
    if (!boot.ok()) {
      fmt::print(stderr, "error: creating the first user: {}\n", boot.status().message());
      return boot.status().code() == ErrorCode::kInvalidArgument ? kExitInvalidInput : kExitFailed;
    }
    if (*boot && !(*boot)->empty()) {
      // Printed once, on the terminal only (not through the JSON log).
      fmt::print(stderr,
                 "\n  Created user \"admin\" with the one-time password: {}\n"
                 "  Log in (automan login, or the web UI) and choose a new password; this one "
                 "will not be shown again.\n\n",
                 **boot);
    } else if (*boot) {
      log.Log(1, "created user admin with the password from AUTOMAN_ADMIN_PASSWORD");
    }
  }
  auth::TicketIssuer tickets(keys->tickets, SystemClock());
  api::SecurityOptions so_sec;
  so_sec.secure_cookies = !c.tls_cert.empty();
  so_sec.trusted_proxies = SplitList(c.trusted_proxies);
  so_sec.allowed_origins = SplitList(c.allowed_origins);
  so_sec.api_limit = {static_cast<double>(c.api_rate_limit), 10.0 * c.api_rate_limit};
  api::Security security(auth_service, tickets, audit_log, secret_store, so_sec);

  api::ApiContext ctx{**store, engine.queue(), **catalog, hub, SystemClock(), security};
  ctx.metrics = &registry;
  ctx.options.version = AUTOMAN_VERSION;
  ctx.options.commit = AUTOMAN_GIT_COMMIT;
  ctx.options.max_streams = c.max_streams;
  ctx.options.max_streams_per_subject = c.max_streams_per_subject;
  ctx.options.metrics_public = c.metrics_public;
  std::atomic<bool> accepting{false};
  ctx.accepting = [&accepting] { return accepting.load(); };
  api::Router router = api::BuildRouter(ctx);

  Store& st = **store;
  registry.AddCollector([&st, &m, &hub] {
    std::map<RunStatus, int64_t> counts;
    Status s = st.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(counts, tx.CountRunsByStatus());
      return Status::Ok();
    });
    if (s.ok()) {
      for (const auto& [status, n] : counts) {
        m.queue_runs.With({std::string(ToString(status))}).Set(static_cast<double>(n));
      }
    }
    m.streams_open.With({}).Set(static_cast<double>(hub.open_streams()));
  });

  HttpServerOptions ho;
  std::tie(ho.address, ho.port) = SplitListen(c.listen);
  ho.tls_cert_file = c.tls_cert;
  ho.tls_key_file = c.tls_key;
  ho.max_body_bytes = static_cast<size_t>(c.max_body_bytes);
  ho.request_timeout = request_timeout;
  // One I/O thread per core; quick handlers (HandlerCost::kQuick) and streams' polls run
  // on them when the store's reads are local (the SQLite file, whose readers never wait
  // for its writer). PostgreSQL's reads wait on the network: there every handler uses the
  // pool.
  ho.io_threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1U, 8U));
  ho.handler_threads = 16;
  if (st.ReadsAreLocal()) {
    ho.cost = [&router](api::HttpRequest& req) { return router.Resolve(req); };
    ho.quick_stream_polls = true;
  }
  const bool access_log = c.access_log == "on";
  ho.on_request = [&m, &log, access_log](const AccessRecord& r) {
    const std::string code = std::to_string(r.status);
    // Methods are client input: anything but the standard ones is "other", so clients
    // cannot add series.
    static const std::set<std::string> kMethods{"GET",    "HEAD",    "POST", "PUT",
                                                "DELETE", "OPTIONS", "PATCH"};
    const std::string method = r.method.empty()           ? "-"  // not parsed
                               : kMethods.count(r.method) ? r.method
                                                          : "other";
    m.http_requests.With({method, r.route, code}).Inc();
    if (!r.stream) m.http_duration.With({r.route}).Observe(r.seconds);
    if (access_log) {
      log.Raw(fmt::format(
          R"({{"ts":"{}","level":"info","msg":"http","remote":"{}","method":"{}","path":"{}","route":"{}","status":{},"bytes":{},"ms":{:.3f}{}}})"
          "\n",
          FormatRfc3339(SystemClock().Now()), JsonEscape(r.remote), JsonEscape(r.method),
          JsonEscape(r.path), JsonEscape(r.route), r.status, r.bytes, r.seconds * 1000,
          r.stream ? R"(,"stream":true)" : ""));
    }
  };
  auto http =
      HttpServer::Start(ho, [&router](api::HttpRequest& req) { return router.Dispatch(req); });
  if (!http.ok()) {
    fmt::print(stderr, "error: {}\n", http.status().message());
    return http.status().code() == ErrorCode::kInvalidArgument ? kExitInvalidInput : kExitFailed;
  }
  registry.AddCollector(
      [&m, h = http->get()] { m.connections.With({}).Set(static_cast<double>(h->connections())); });

  // The worker pool and the schedule loop, as in `automan worker`.
  CancelSignal stop;
  CancelOnSignals on_signals(stop);
  std::unique_ptr<Worker> worker;
  std::thread worker_thread;
  CancelSignal worker_stop;
  if (c.workers > 0) {
    WorkerOptions wo;
    wo.owner = fmt::format("server:{}:{}", HostName(), getpid());
    wo.concurrency = c.workers;
    wo.grace = grace;
    wo.rescue_interval = std::max(milliseconds(100), std::min(lease / 2, milliseconds(5000)));
    worker = std::make_unique<Worker>(engine.queue(), executor, wo);
    worker_thread = std::thread([&] {
      Status s = worker->Run(worker_stop);
      if (!s.ok()) log.Log(3, "worker stopped: " + s.message());
    });
  }
  std::unique_ptr<Scheduler> scheduler;
  if (c.scheduler) {
    SchedulerOptions so;
    so.log = [&log](const std::string& line) { log.Log(1, line); };
    so.lookahead = std::chrono::seconds(2);
    so.on_decided = [&m](const FireRecord& f, Timestamp committed) {
      if (f.status == FireStatus::kFired || f.status == FireStatus::kLate) {
        const Timestamp ready = std::max(committed, f.due);
        m.lateness.With({}).Observe(std::chrono::duration<double>(ready - f.due).count());
      }
    };
    scheduler = std::make_unique<Scheduler>(st, engine.queue(), SystemClock(), so);
  }
  std::unique_ptr<ScheduleDirWatcher> watcher;
  if (!c.runbooks.empty()) {
    watcher = std::make_unique<ScheduleDirWatcher>(
        st, SystemClock(), c.runbooks, milliseconds(2000),
        [&log, &scheduler](const Result<SyncReport>& r) {
          if (!r.ok()) {
            log.Log(2, "schedules: " + r.status().message());
            return;
          }
          for (const std::string& e : r->errors) log.Log(2, "schedules: " + e);
          if (!r->added.empty() || !r->updated.empty() || !r->removed.empty()) {
            log.Log(1, fmt::format("schedules: {} added, {} updated, {} removed", r->added.size(),
                                   r->updated.size(), r->removed.size()));
            if (scheduler) scheduler->Wake();
          }
        });
  }
  if (scheduler) scheduler->Start();

  accepting = true;
  const std::string url =
      fmt::format("{}://{}:{}", (*http)->tls() ? "https" : "http",
                  ho.address.find(':') != std::string::npos ? "[" + ho.address + "]" : ho.address,
                  (*http)->port());
  log.Log(1, fmt::format("automan server {} listening on {}", AUTOMAN_VERSION, url),
          fmt::format(R"("url":"{}","store":"{}","runbooks":{},"workers":{},"scheduler":{})",
                      JsonEscape(url), JsonEscape(RedactStoreUrl(st.Describe())),
                      (*catalog)->Snapshot()->size(), c.workers, c.scheduler ? "true" : "false"));
  if (!c.sandbox) {
    log.Log(2,
            "sandbox is disabled (sandbox: false): steps run unconfined, with the server's "
            "privileges, and can read its data directory and keys");
  }
  // Tests and scripts read the port from this line when listening on port 0.
  fmt::print("listening on {}\n", url);
  std::fflush(stdout);

  // The catalog's hot reload: re-read the runbooks directory when it changes.
  auto wait_for_stop = [&stop](int ms) {
    pollfd p{stop.fd(), POLLIN, 0};
    return ::poll(&p, 1, ms) > 0 || stop.cancelled();
  };
  int ticks = 0;
  while (!wait_for_stop(1000)) {
    if (++ticks % 10 == 0) auth_service.Maintain();  // last-used times, dead credentials
    // Anchor the audit entries committed since the last tick (truncation evidence).
    if (Status s = audit_log.Checkpoint(); !s.ok() && ticks % 60 == 1) {
      log.Log(3, "audit: " + s.message());
    }
    auto changed = (*catalog)->ReloadIfChanged();
    if (!changed.ok()) {
      log.Log(
          2, "runbooks: reload refused, the previous catalog stays: " + changed.status().message());
    } else if (*changed) {
      log.Log(1, fmt::format("runbooks: reloaded, {} runbooks", (*catalog)->Snapshot()->size()));
    }
  }

  log.Log(1, "shutting down: no new requests; running steps get " + FormatDuration(grace));
  accepting = false;
  (*http)->Stop();
  worker_stop.Cancel();
  if (worker_thread.joinable()) worker_thread.join();
  if (scheduler) scheduler->Stop();
  watcher.reset();
  if (Status s = audit_log.Checkpoint(); !s.ok()) log.Log(3, "audit: " + s.message());
  if (worker) {
    const WorkerStats& ws = worker->stats();
    log.Log(1, fmt::format("stopped: {} runs claimed, {} finished, {} left to expire",
                           ws.claimed.load(), ws.finished.load(), ws.abandoned.load()));
  }
  return kExitSuccess;
}

}  // namespace automan::cli
