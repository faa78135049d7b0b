// What authentication costs, in process (no HTTP, no other threads):
//
//   auth_bench [--rounds=7] [--requests=20000] [--logins=3] [--sections=login,request]
//              [--dir=$TMPDIR]
//
// login    argon2id HashPassword and VerifyPassword (auth/crypto.h) at the default cost
//          (PasswordCost{}: t=2, 64 MiB, what `automan server` uses) and at
//          kOwaspMinimumCost (t=2, 19 MiB), and a whole AuthService::Login of admin asking
//          for a token (a store read, one verification, a durable write transaction with the
//          session, the token and two audit entries): ms per call, median over rounds of
//          `logins` calls each; plus the peak RSS one verification adds.
// request  GET /api/v1/runs/{id} of a finished one-step run, dispatched as the transport
//          does it (a request from the target and the headers wrk sends, SplitTarget,
//          Router::Resolve, Router::Dispatch) through the router BuildRouter makes for
//          `automan server` (SQLite durable store, SystemClock, the built-in roles), with
//          `Authorization: Bearer TOKEN`, as admin and as a viewer:
//            guard    the router as built: api::Authorize before the handler; the token's
//                     subject comes from AuthService's cache (re-read from the store every
//                     cache_ttl = 2 s); the per-subject rate limiter is on, at a limit these
//                     requests never reach (the server's default path; its default 500/s
//                     would throttle them)
//            no-rl    (admin) another router of the same kind whose limiter is off
//                     (`--api-rate-limit 0`, what bench/api.sh's servers run)
//            none     the first router with its guard removed (`router.SetGuard({})`), then
//                     put back as BuildRouter sets it, so both are the same object; the
//                     request then carries the subject the guard would have set (the
//                     handler reads it)
//          and AuthService::Authenticate of the token alone (a cache hit), SHA-256 of the
//          token alone, RateLimiter::Take alone (10x as many calls). The variants alternate
//          within each round in blocks of 500 calls, in a rotating order, `requests` calls
//          each; per round the overhead of the guard = guard / none - 1 and guard - none;
//          medians over rounds. Times are this
//          thread's CPU time (what other processes on a shared machine disturb least) and
//          wall-clock time.
//
// Prints a text line and a JSON line (starting with `{`) per figure.
#include <fmt/format.h>
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/access.h"
#include "api/api.h"
#include "api/catalog.h"
#include "api/hub.h"
#include "api/router.h"
#include "audit/audit_log.h"
#include "auth/auth_service.h"
#include "auth/crypto.h"
#include "auth/keys.h"
#include "auth/rate_limiter.h"
#include "auth/rbac.h"
#include "auth/tickets.h"
#include "bench_util.h"
#include "common/clock.h"
#include "queue/queue.h"
#include "secrets/secret_store.h"
#include "store/store.h"

using namespace automan;
using automan::bench::Median;

namespace {

constexpr const char* kPassword = "auth-bench-admin-password";

struct Args {
  int rounds = 7;
  int requests = 20000;
  int logins = 3;
  std::vector<std::string> sections = {"login", "request"};
  std::string dir;
};

// This thread's CPU time and the monotonic clock, in ns.
struct Stamp {
  int64_t cpu, wall;
  static Stamp Now() {
    timespec c{}, w{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
    clock_gettime(CLOCK_MONOTONIC, &w);
    return {c.tv_sec * 1000000000LL + c.tv_nsec, w.tv_sec * 1000000000LL + w.tv_nsec};
  }
};

// Per-call cost of `n` calls of `fn` (ns of CPU, ns of wall clock).
std::pair<double, double> PerCall(int n, const std::function<void()>& fn) {
  const Stamp a = Stamp::Now();
  for (int i = 0; i < n; ++i) fn();
  const Stamp b = Stamp::Now();
  return {static_cast<double>(b.cpu - a.cpu) / n, static_cast<double>(b.wall - a.wall) / n};
}

void Fail(const std::string& what) {
  std::fprintf(stderr, "auth_bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) Fail(fmt::format("{}: {}", what, r.status().message()));
  return std::move(*r);
}

void Must(const Status& s, const char* what) {
  if (!s.ok()) Fail(fmt::format("{}: {}", what, s.message()));
}

void PrintFigure(const std::string& name, const std::string& unit, const std::vector<double>& v,
                 const std::string& note = "") {
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  std::printf("  %-66s %12.3f %s  (%.3f–%.3f)%s%s\n", name.c_str(), Median(v), unit.c_str(), *lo,
              *hi, note.empty() ? "" : "; ", note.c_str());
  std::printf("%s\n", fmt::format(R"({{"kind":"auth","figure":"{}","unit":"{}","median":{:.4f},)"
                                  R"("min":{:.4f},"max":{:.4f},"rounds":{}}})",
                                  name, unit, Median(v), *lo, *hi, v.size())
                          .c_str());
}

// Peak RSS (KiB) that `fn` adds to the process: VmHWM reset (/proc/self/clear_refs), then read.
long long PeakKbOf(const std::function<void()>& fn) {
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  const long long before = bench::ProcKb("/proc/self/status", "VmHWM");
  fn();
  return bench::ProcKb("/proc/self/status", "VmHWM") - before;
}

// The server's security wiring (src/cli/server_command.cpp) over one store, with a router.
struct Server {
  std::unique_ptr<api::Security> security;
  std::unique_ptr<api::ApiContext> ctx;
  std::unique_ptr<api::Router> router;
};

void LoginSection(const Args& a, auth::AuthService& auth) {
  std::printf("== login: argon2id and AuthService::Login, ms per call (%d rounds of %d calls)\n",
              a.rounds, a.logins);
  const auth::PasswordCost def{};
  const std::string phc_def = Must(auth::HashPassword(kPassword, def), "hash");
  const std::string phc_owasp =
      Must(auth::HashPassword(kPassword, auth::kOwaspMinimumCost), "hash");
  std::vector<double> hash_def, verify_def, hash_owasp, verify_owasp, login_token, login_session;
  auto ms = [&](const std::function<void()>& fn) { return PerCall(a.logins, fn).second / 1e6; };
  for (int round = 0; round < a.rounds; ++round) {
    hash_def.push_back(ms([&] { (void)auth::HashPassword(kPassword, def); }));
    verify_def.push_back(ms([&] {
      if (!auth::VerifyPassword(phc_def, kPassword)) Fail("verify failed");
    }));
    hash_owasp.push_back(ms([&] { (void)auth::HashPassword(kPassword, auth::kOwaspMinimumCost); }));
    verify_owasp.push_back(ms([&] {
      if (!auth::VerifyPassword(phc_owasp, kPassword)) Fail("verify failed");
    }));
    login_token.push_back(ms([&] {
      Must(auth.Login("admin", kPassword, true, auth::Actor{"", "bench"}), "login");
    }));
    login_session.push_back(ms([&] {
      Must(auth.Login("admin", kPassword, false, auth::Actor{"", "bench"}), "login");
    }));
  }
  const long long peak_def = PeakKbOf([&] { (void)auth::VerifyPassword(phc_def, kPassword); });
  const long long peak_owasp = PeakKbOf([&] { (void)auth::VerifyPassword(phc_owasp, kPassword); });
  const std::string cost_def = fmt::format("t={}, {} MiB", def.ops, def.mem_bytes >> 20);
  const std::string cost_owasp = fmt::format("t={}, {} MiB", auth::kOwaspMinimumCost.ops,
                                             auth::kOwaspMinimumCost.mem_bytes >> 20);
  PrintFigure("HashPassword, default cost (" + cost_def + ")", "ms", hash_def);
  PrintFigure("VerifyPassword, default cost (" + cost_def + ")", "ms", verify_def,
              fmt::format("peak RSS +{:.1f} MiB", peak_def / 1024.0));
  PrintFigure("HashPassword, OWASP minimum (" + cost_owasp + ")", "ms", hash_owasp);
  PrintFigure("VerifyPassword, OWASP minimum (" + cost_owasp + ")", "ms", verify_owasp,
              fmt::format("peak RSS +{:.1f} MiB", peak_owasp / 1024.0));
  PrintFigure("AuthService::Login with a token, default cost", "ms", login_token);
  PrintFigure("AuthService::Login, session only, default cost", "ms", login_session);
}

// Two subjects: admin (every permission; the handlers' per-object checks stop at once) and a
// viewer (runs.read; GET run also looks its runbook up in the catalog: CanSeeRunsOf).
struct Caller {
  std::string token;
  std::shared_ptr<const auth::Subject> subject;  // what the guard would set
};

void RequestSection(const Args& a, Server& rl_on, Server& rl_off, auth::AuthService& auth,
                    const Caller& admin, const Caller& viewer, const std::string& run_id) {
  const std::string target = "/api/v1/runs/" + run_id;
  // As the transport builds it (src/server/http_server.cpp) from wrk's request. Without the
  // guard nobody sets req.subject, which the handler needs: it is set here instead (the
  // copy of a shared_ptr, which the unguarded side pays and the guarded one does not).
  auto request = [&](const Caller& c, bool preset_subject) {
    api::HttpRequest req;
    req.method = "GET";
    req.target = target;
    req.remote = "127.0.0.1";
    req.headers["host"] = "127.0.0.1:8080";
    req.headers["authorization"] = "Bearer " + c.token;
    if (!api::SplitTarget(req.target, req.path, req.segments, req.query)) Fail("bad target");
    if (preset_subject) req.subject = c.subject;
    return req;
  };
  size_t sink = 0;
  auto get = [&](api::Router& target_router, const Caller& c, bool preset_subject) {
    return [&, r = &target_router, c = &c, preset_subject] {
      api::HttpRequest req = request(*c, preset_subject);
      r->Resolve(req);
      api::HttpResponse resp = r->Dispatch(req);
      sink += resp.body.size() + static_cast<size_t>(resp.status);
    };
  };
  api::Router& router = *rl_on.router;
  api::ApiContext& ctx = *rl_on.ctx;
  const api::RouteGuard guard = [&ctx](api::HttpRequest& req, const api::Route& route) {
    return api::Authorize(ctx, req, route);  // what BuildRouter sets (src/api/api.cpp)
  };
  auto check = [&](api::Router& r, const Caller& c, bool preset, const char* what) {
    api::HttpRequest req = request(c, preset);
    api::HttpResponse resp = r.Dispatch(req);
    if (resp.status != 200) {
      Fail(fmt::format("GET {} {} answered {}: {}", target, what, resp.status, resp.body));
    }
  };
  check(router, admin, false, "(admin, guard)");
  check(router, viewer, false, "(viewer, guard)");
  check(*rl_off.router, admin, false, "(admin, guard, no limiter)");
  router.SetGuard({});
  check(router, admin, true, "(admin, no guard)");
  check(router, viewer, true, "(viewer, no guard)");
  router.SetGuard(guard);

  struct Variant {
    std::string name;
    std::function<void()> fn;
    bool unguarded = false;
    int repeat = 1;  // x requests
    std::vector<double> cpu, wall;
  };
  auth::RateLimiter limiter(auth::RateLimiter::Limit{1e9, 1e10});
  std::vector<Variant> vs;
  vs.push_back({"guard", get(router, admin, false)});
  vs.push_back({"none", get(router, admin, true), true});
  vs.push_back({"no-rl", get(*rl_off.router, admin, false)});
  vs.push_back({"guard-viewer", get(router, viewer, false)});
  vs.push_back({"none-viewer", get(router, viewer, true), true});
  // The guard alone, on a request already parsed and routed (what the transport hands the
  // router): the per-request cost of authentication and authorization, without the noise
  // of the handler it is compared with.
  api::HttpRequest guarded = request(admin, false);
  router.Resolve(guarded);
  const api::Route& get_route = router.routes().at(static_cast<size_t>(guarded.route));
  vs.push_back({"authorize",
                [&] {
                  guarded.subject.reset();
                  sink += api::Authorize(ctx, guarded, get_route).has_value() ? 1 : 0;
                },
                false, 10});
  vs.push_back(
      {"authenticate", [&] { sink += auth.Authenticate(admin.token).ok() ? 1 : 0; }, false, 10});
  vs.push_back({"sha256", [&] { sink += auth::Sha256Hex(admin.token).size(); }, false, 10});
  vs.push_back(
      {"limiter",
       [&] { sink += static_cast<size_t>(limiter.Take("admin", SystemClock().Now()).count()); },
       false, 10});
  std::map<std::string, std::vector<double>> overhead;  // % of the unguarded cost, per round
  std::map<std::string, std::vector<double>> extra_ns;  // guard - none, CPU ns, per round
  std::printf(
      "== request: GET /api/v1/runs/{id} in process, %d rounds of %d requests per variant "
      "(+1 warm-up round)\n",
      a.rounds, a.requests);
  // Within a round the variants alternate in blocks of `block` requests (rotating which
  // goes first), so that drifts of the machine (other sessions, frequency, the store's
  // state) fall on all of them alike; a round's figure per variant is the mean over its
  // blocks.
  const int block = std::min(a.requests, 500);
  const int blocks = std::max(1, a.requests / block);
  for (int round = -1; round < a.rounds; ++round) {
    std::map<std::string, std::pair<double, double>> got;
    for (int b = 0; b < blocks; ++b) {
      for (size_t k = 0; k < vs.size(); ++k) {
        Variant& v = vs[(k + static_cast<size_t>(b)) % vs.size()];
        if (v.unguarded) router.SetGuard({});
        auto [cpu, wall] = PerCall(block * v.repeat, v.fn);
        if (v.unguarded) router.SetGuard(guard);
        got[v.name].first += cpu / blocks;
        got[v.name].second += wall / blocks;
      }
    }
    for (Variant& v : vs) {
      if (round >= 0) {
        v.cpu.push_back(got[v.name].first);
        v.wall.push_back(got[v.name].second);
      }
    }
    if (round < 0) continue;
    auto pct = [&](const char* with, const char* without, bool cpu) {
      const double w = cpu ? got[with].first : got[with].second;
      const double wo = cpu ? got[without].first : got[without].second;
      return 100 * (w / wo - 1);
    };
    overhead["admin-cpu"].push_back(pct("guard", "none", true));
    overhead["admin-wall"].push_back(pct("guard", "none", false));
    overhead["norl-cpu"].push_back(pct("no-rl", "none", true));
    overhead["viewer-cpu"].push_back(pct("guard-viewer", "none-viewer", true));
    overhead["viewer-wall"].push_back(pct("guard-viewer", "none-viewer", false));
    overhead["authorize-cpu"].push_back(100 * got["authorize"].first / got["none"].first);
    extra_ns["admin"].push_back(got["guard"].first - got["none"].first);
    extra_ns["norl"].push_back(got["no-rl"].first - got["none"].first);
    extra_ns["viewer"].push_back(got["guard-viewer"].first - got["none-viewer"].first);
  }
  auto find = [&](const std::string& name) -> Variant& {
    for (Variant& v : vs) {
      if (v.name == name) return v;
    }
    Fail("no variant " + name);
    return vs.front();
  };
  const std::pair<const char*, const char*> labels[] = {
      {"none", "GET run as admin, no guard (router.SetGuard({}))"},
      {"guard", "GET run as admin, guard (bearer, cached; limiter on)"},
      {"no-rl", "GET run as admin, guard, limiter off (--api-rate-limit 0)"},
      {"none-viewer", "GET run as a viewer, no guard"},
      {"guard-viewer", "GET run as a viewer, guard (limiter on)"},
      {"authorize", "api::Authorize alone (the guard: bearer, cached; limiter on)"},
      {"authenticate", "  of it: AuthService::Authenticate (cache hit)"},
      {"sha256", "  of it: Sha256Hex of the token"},
      {"limiter", "RateLimiter::Take alone (one key)"},
  };
  for (const auto& [name, label] : labels) {
    Variant& v = find(name);
    PrintFigure(std::string(label) + ", CPU", "ns", v.cpu);
    PrintFigure(std::string(label) + ", wall", "ns", v.wall);
  }
  auto throughput = [&](const char* key) {
    return fmt::format("throughput with the guard {:.1f}% of without",
                       100 / (1 + Median(overhead[key]) / 100));
  };
  PrintFigure("guard - none as admin, CPU (paired per round)", "ns", extra_ns["admin"]);
  PrintFigure("guard - none as admin, limiter off, CPU", "ns", extra_ns["norl"]);
  PrintFigure("guard - none as a viewer, CPU", "ns", extra_ns["viewer"]);
  PrintFigure("guard overhead as admin, % of unguarded CPU (paired per round)", "%",
              overhead["admin-cpu"], throughput("admin-cpu"));
  PrintFigure("the guard alone as % of the unguarded GET, CPU (per round)", "%",
              overhead["authorize-cpu"], throughput("authorize-cpu"));
  PrintFigure("guard overhead as admin, % of unguarded wall time", "%", overhead["admin-wall"]);
  PrintFigure("guard overhead as admin, limiter off, % of unguarded CPU", "%", overhead["norl-cpu"],
              throughput("norl-cpu"));
  PrintFigure("guard overhead as a viewer, % of unguarded CPU", "%", overhead["viewer-cpu"],
              throughput("viewer-cpu"));
  PrintFigure("guard overhead as a viewer, % of unguarded wall time", "%", overhead["viewer-wall"]);
  if (sink == 42) std::printf("\n");  // keeps the calls
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i], v;
    auto flag = [&](const char* name) {
      const std::string p = std::string("--") + name + "=";
      if (s.rfind(p, 0) != 0) return false;
      v = s.substr(p.size());
      return true;
    };
    if (flag("rounds")) {
      a.rounds = std::max(1, std::atoi(v.c_str()));
    } else if (flag("requests")) {
      a.requests = std::max(1, std::atoi(v.c_str()));
    } else if (flag("logins")) {
      a.logins = std::max(1, std::atoi(v.c_str()));
    } else if (flag("sections")) {
      a.sections = bench::SplitCommas(v);
    } else if (flag("dir")) {
      a.dir = v;
    } else {
      std::fprintf(stderr,
                   "usage: auth_bench [--rounds=7] [--requests=20000] [--logins=3] "
                   "[--sections=login,request] [--dir=DIR]\n");
      return 2;
    }
  }
  auto want = [&](const char* s) {
    return std::find(a.sections.begin(), a.sections.end(), s) != a.sections.end();
  };
  if (a.dir.empty()) a.dir = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
  std::string tmpl = a.dir + "/automan-auth-bench.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) Fail("cannot create a directory in " + a.dir);
  const std::string dir = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};

  auto [fsync_p50, fsync_p99] = bench::FsyncProbe(dir);
  std::printf("auth_bench: %s; load average %s; fdatasync (4 KiB) p50 %.3f ms, p99 %.3f ms\n",
              bench::MachineLine().c_str(), bench::ReadLine("/proc/loadavg").c_str(), fsync_p50,
              fsync_p99);
  std::printf("%s\n", fmt::format(R"({{"kind":"conditions","machine":"{}","loadavg":"{}",)"
                                  R"("fsync_p50_ms":{:.3f},"fsync_p99_ms":{:.3f}}})",
                                  bench::MachineLine(), bench::ReadLine("/proc/loadavg"), fsync_p50,
                                  fsync_p99)
                          .c_str());

  // As `automan server` wires it (src/cli/server_command.cpp), minus transport and workers.
  const std::string data = dir + "/data";
  std::filesystem::create_directories(data + "/runbooks");
  std::ofstream(data + "/runbooks/bench-noop.yaml") << "id: bench-noop\n"
                                                       "name: One true step\n"
                                                       "steps:\n"
                                                       "  - id: noop\n"
                                                       "    argv: [\"true\"]\n";
  StoreOptions so;
  so.url = "sqlite:" + data + "/automan.db";  // durable, as the server's
  std::unique_ptr<Store> store = Must(Store::Open(so), "opening the store");
  std::unique_ptr<api::RunbookCatalog> catalog =
      Must(api::RunbookCatalog::Open(
               {api::BuiltinRunbooks(), data + "/runbooks", data + "/api-runbooks"}),
           "loading runbooks");
  api::EventHub hub;
  Queue queue(*store, SystemClock());
  queue.SetObserver([&hub](const Run& run) { hub.PublishRun(run); });
  const auth::Keys keys = Must(auth::LoadOrCreateKeys(data + "/master.key", true), "master key");
  auth::RoleSet roles;
  audit::AuditLog audit_log(*store, keys.audit, SystemClock(), {data + "/audit.head"});
  auth::AuthService auth_service(*store, SystemClock(), roles, keys, auth::AuthOptions{},
                                 api::Security::HookOf(audit_log));
  Must(auth_service.Bootstrap(std::string(kPassword)).status(), "creating admin");
  auth::TicketIssuer tickets(keys.tickets, SystemClock());
  secrets::SecretStore secret_store(*store, keys.secrets, SystemClock(),
                                    api::Security::HookOf(audit_log));
  auto make_server = [&](double per_second) {
    Server s;
    api::SecurityOptions opt;
    opt.api_limit = {per_second, per_second * 10};
    s.security =
        std::make_unique<api::Security>(auth_service, tickets, audit_log, secret_store, opt);
    s.ctx = std::make_unique<api::ApiContext>(
        api::ApiContext{*store, queue, *catalog, hub, SystemClock(), *s.security});
    s.router = std::make_unique<api::Router>(api::BuildRouter(*s.ctx));
    return s;
  };

  if (want("login")) LoginSection(a, auth_service);

  if (want("request")) {
    Server rl_on = make_server(1e9);  // on, never reached
    Server rl_off = make_server(0);
    auto caller = [&](const std::string& user, const std::string& password) {
      Caller c;
      c.token =
          *Must(auth_service.Login(user, password, true, auth::Actor{"", "bench"}), "login").token;
      c.subject = Must(auth_service.Authenticate(c.token), "authenticate");
      return c;
    };
    const Caller admin = caller("admin", kPassword);
    Must(auth_service.CreateUser("bench-viewer", kPassword, "viewer", false, auth::Actor{"", ""})
             .status(),
         "creating a viewer");
    const Caller viewer = caller("bench-viewer", kPassword);
    const std::string& token = admin.token;
    // A finished run with one step, as bench/api.sh's GET reads it.
    api::HttpRequest post;
    post.method = "POST";
    post.target = post.path = "/api/v1/runs";
    post.remote = "127.0.0.1";
    post.headers["authorization"] = "Bearer " + token;
    post.headers["content-type"] = "application/json";
    post.body = R"({"runbook":"bench-noop","params":{}})";
    api::HttpResponse created = rl_on.router->Dispatch(post);
    if (created.status != 201) Fail("POST /api/v1/runs answered " + created.body);
    const size_t at = created.body.find(R"("id":")");
    if (at == std::string::npos) Fail("no id in " + created.body);
    const std::string id = created.body.substr(at + 6, created.body.find('"', at + 6) - at - 6);
    Must(store->Transact(Store::TxMode::kWrite,
                         [&](StoreTx& tx) -> Status {
                           AUTOMAN_ASSIGN_OR_RETURN(Run r, tx.GetRun(id));
                           r.status = RunStatus::kSuccess;
                           r.attempt = 1;
                           r.started_at = r.created_at + std::chrono::milliseconds(1);
                           r.finished_at = r.created_at + std::chrono::milliseconds(6);
                           AUTOMAN_RETURN_IF_ERROR(tx.UpdateRun(r));
                           AUTOMAN_RETURN_IF_ERROR(
                               tx.UpsertAttempt(Attempt{id, 1, RunStatus::kSuccess, "auth-bench",
                                                        *r.started_at, r.finished_at, ""}));
                           StepRun step;
                           step.run_id = id;
                           step.step_id = "noop";
                           step.status = StepStatus::kSuccess;
                           step.exit_code = 0;
                           step.started_at = *r.started_at + std::chrono::milliseconds(1);
                           step.finished_at = *r.finished_at - std::chrono::milliseconds(1);
                           return tx.UpsertStepRun(step);
                         }),
         "finishing the run");
    RequestSection(a, rl_on, rl_off, auth_service, admin, viewer, id);
  }
  std::printf("auth_bench: load average at the end %s\n", bench::ReadLine("/proc/loadavg").c_str());
  return 0;
}
