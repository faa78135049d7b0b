#include "api/access.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "api/wire.h"
#include "auth/crypto.h"

namespace automan::api {

namespace {

bool IsSafeMethod(std::string_view m) { return m == "GET" || m == "HEAD" || m == "OPTIONS"; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// The client: the peer, or — when the peer is a trusted proxy — the right-most address of
// X-Forwarded-For that is not itself a trusted proxy.
std::string ClientAddress(const SecurityOptions& opt, const HttpRequest& req) {
  auto trusted = [&](std::string_view a) {
    return std::find(opt.trusted_proxies.begin(), opt.trusted_proxies.end(), a) !=
           opt.trusted_proxies.end();
  };
  if (!trusted(req.remote)) return req.remote;
  const std::string* xff = req.Header("x-forwarded-for");
  if (xff == nullptr) return req.remote;
  std::string_view rest(*xff);
  while (!rest.empty()) {
    size_t comma = rest.rfind(',');
    std::string_view part = Trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    if (part.empty() || part.size() > 64) break;
    if (!trusted(part)) return std::string(part);
  }
  return req.remote;
}

HttpResponse Unauthorized(std::string_view message) {
  HttpResponse r = ErrorResponse(401, "unauthenticated", message);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"automan\"");
  return r;
}

HttpResponse Forbidden(std::string_view code, std::string_view message) {
  return ErrorResponse(403, code, message);
}

// The Origin a browser sends for this server: its scheme and the Host header.
bool OriginAllowed(const ApiContext& ctx, const HttpRequest& req, std::string_view origin) {
  const SecurityOptions& opt = ctx.security.options;
  if (std::find(opt.allowed_origins.begin(), opt.allowed_origins.end(), origin) !=
      opt.allowed_origins.end()) {
    return true;
  }
  const std::string* host = req.Header("host");
  if (host == nullptr) return false;
  const std::string own = (opt.secure_cookies ? "https://" : "http://") + *host;
  return IEquals(origin, own);
}

// Rate-limit hits are audited once per subject and minute, not once per request.
class RateLimitAudit {
 public:
  // True when this hit is the first of its subject's minute (and should be audited);
  // `earlier` is then how many hits the previous audited minute had after its first.
  bool FirstOfMinute(const std::string& subject, Timestamp now, int64_t* earlier) {
    const int64_t minute =
        std::chrono::duration_cast<std::chrono::minutes>(now.time_since_epoch()).count();
    std::lock_guard lock(mu_);
    if (hits_.size() > 10000) hits_.clear();
    auto& [m, n] = hits_[subject];
    if (m == minute) {
      ++n;
      return false;
    }
    *earlier = n;
    m = minute;
    n = 0;
    return true;
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::pair<int64_t, int64_t>> hits_;
};

}  // namespace

HttpResponse RateLimited(ApiContext& ctx, const HttpRequest& req, const std::string& subject,
                         Duration wait) {
  static RateLimitAudit audit_minutes;
  int64_t earlier = 0;
  if (audit_minutes.FirstOfMinute(subject, ctx.clock.Now(), &earlier)) {
    (void)ctx.store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) {
      return AuditIn(ctx, tx, req, "ratelimit.hit", "route/" + req.method + " " + req.path,
                     "denied",
                     json::serialize(json::object{{"later_hits_of_previous_minute", earlier}}));
    });
  }
  const int64_t secs =
      std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(wait).count() + 1);
  HttpResponse r =
      ErrorResponse(429, "rate_limited", fmt::format("too many requests; retry in {} s", secs));
  r.headers.emplace_back("Retry-After", std::to_string(secs));
  return r;
}

static_assert(kPublic == auth::kPublicRoute && kAuthenticated == auth::kAuthenticatedRoute);

std::optional<HttpResponse> Authorize(ApiContext& ctx, HttpRequest& req, const Route& route) {
  req.client = ClientAddress(ctx.security.options, req);
  // Credentials in a URL end up in proxy logs, browser history and Referer headers.
  const std::string* ticket = nullptr;
  if (!req.query.empty()) {
    for (const char* key : {"access_token", "token", "api_key", "bearer", "session"}) {
      if (req.Query(key) != nullptr) {
        return Unauthorized(
            "credentials are not accepted in the query string; send Authorization: Bearer");
      }
    }
    ticket = req.Query("ticket");
  }
  if (ticket != nullptr && !route.stream) {
    return Unauthorized("only stream routes accept ?ticket=");
  }
  if (route.permission == auth::kPublicRoute) return std::nullopt;

  auth::AuthService& auth = ctx.security.auth;
  std::string_view secret;  // into the request's headers
  std::string cookie_value;
  bool cookie = false;
  if (const std::string* h = req.Header("authorization")) {
    std::string_view v = Trim(*h);
    if (v.size() < 7 || !IEquals(v.substr(0, 7), "Bearer ")) {
      return Unauthorized("Authorization must be \"Bearer TOKEN\"");
    }
    secret = Trim(v.substr(7));
  } else if (const std::string* c = req.Header("cookie")) {
    cookie_value = auth::CookieValue(*c, kSessionCookie);
    secret = cookie_value;
    cookie = !secret.empty();
  }
  if (secret.empty() && ticket == nullptr) {
    return Unauthorized("log in, or send Authorization: Bearer TOKEN");
  }
  // The common case (a bearer token or a cookie) builds no error Status on the way.
  Result<std::shared_ptr<const auth::Subject>> subject = [&] {
    if (!secret.empty()) return auth.Authenticate(secret);
    const std::string& id = req.path_params["id"];
    Result<auth::Ticket> t = ctx.security.tickets.Redeem(*ticket, id.empty() ? "all" : "run:" + id);
    if (!t.ok()) return Result<std::shared_ptr<const auth::Subject>>(t.status());
    return auth.AuthenticateCredential(t->credential_id);
  }();
  if (!subject.ok()) {
    if (subject.status().code() != ErrorCode::kUnauthenticated) {
      return ErrorResponse(subject.status());
    }
    return Unauthorized(subject.status().message());
  }
  const auth::Subject& s = **subject;

  if (cookie) {
    // A browser session: refuse requests another site makes the browser send.
    if (const std::string* origin = req.Header("origin");
        origin != nullptr && !OriginAllowed(ctx, req, *origin)) {
      return Forbidden("bad_origin", fmt::format("cross-origin request from {} refused", *origin));
    }
    if (!IsSafeMethod(req.method)) {
      const std::string* csrf = req.Header("x-csrf-token");
      if (csrf == nullptr || !auth::ConstantTimeEquals(*csrf, s.csrf_token)) {
        return Forbidden("csrf", "missing or wrong X-CSRF-Token (the csrf_token of your login)");
      }
    }
  }
  if (Duration wait = ctx.security.api_limiter.Take(s.username, ctx.clock.Now());
      wait > Duration::zero()) {
    return RateLimited(ctx, req, s.username, wait);
  }
  if (s.must_change_password && route.permission != auth::kAuthenticatedRoute) {
    return Forbidden("password_change_required",
                     "change your password first: POST /api/v1/auth/password");
  }
  if (route.permission != auth::kAuthenticatedRoute) {
    std::optional<auth::Permission> p = auth::ParsePermission(route.permission);
    if (!p || !s.Can(*p)) {
      return Forbidden("permission_denied",
                       fmt::format("this needs the permission {}, which role \"{}\" does not have",
                                   route.permission, s.role));
    }
  }
  req.subject = std::move(*subject);
  return std::nullopt;
}

bool CanSee(const auth::Subject& s, const Runbook& rb) {
  if (rb.allowed_roles.empty() || s.Can(auth::Permission::kUsersManage)) return true;
  return std::find(rb.allowed_roles.begin(), rb.allowed_roles.end(), s.role) !=
         rb.allowed_roles.end();
}

bool CanSeeRunsOf(ApiContext& ctx, const auth::Subject& s, std::string_view runbook_id) {
  if (s.Can(auth::Permission::kUsersManage)) return true;
  std::optional<CatalogEntry> e = ctx.catalog.Find(runbook_id);
  return e && CanSee(s, *e->runbook);
}

Status CheckCanExecute(const auth::Subject& s, const Runbook& rb) {
  if (!CanSee(s, rb)) {
    return Status(ErrorCode::kNotFound, fmt::format("runbook \"{}\" does not exist", rb.id));
  }
  if (!s.Can(auth::Permission::kRunsExecute)) {
    return Status(ErrorCode::kPermissionDenied,
                  fmt::format("role \"{}\" may not execute runbooks", s.role));
  }
  if (rb.dangerous && !s.Can(auth::Permission::kRunsExecuteDangerous)) {
    return Status(
        ErrorCode::kPermissionDenied,
        fmt::format("runbook \"{}\" is dangerous: it needs runs.execute_dangerous", rb.id));
  }
  if (!rb.requires_permission.empty()) {
    std::optional<auth::Permission> p = auth::ParsePermission(rb.requires_permission);
    if (!p || !s.Can(*p)) {
      return Status(
          ErrorCode::kPermissionDenied,
          fmt::format("runbook \"{}\" requires the permission {}", rb.id, rb.requires_permission));
    }
  }
  if (!s.categories.empty() &&
      std::find(s.categories.begin(), s.categories.end(), rb.category) == s.categories.end()) {
    return Status(ErrorCode::kPermissionDenied,
                  fmt::format("role \"{}\" may execute only runbooks of the categories {}", s.role,
                              fmt::join(s.categories, ", ")));
  }
  return Status::Ok();
}

auth::Actor ActorOf(const HttpRequest& req) {
  return auth::Actor{req.subject ? req.subject->username : std::string("anonymous"),
                     req.client.empty() ? req.remote : req.client};
}

Status AuditIn(ApiContext& ctx, StoreTx& tx, const HttpRequest& req, std::string action,
               std::string target, std::string outcome, std::string details_json) {
  if (!ctx.security.audit) return Status::Ok();
  const auth::Actor a = ActorOf(req);
  AuditRecord e;
  e.actor = a.username;
  e.remote = a.remote;
  e.action = std::move(action);
  e.target = std::move(target);
  e.outcome = std::move(outcome);
  e.details_json = std::move(details_json);
  return ctx.security.audit(tx, e);
}

}  // namespace automan::api
