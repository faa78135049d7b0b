// /api/v1/auth (login, logout, me, password, stream tickets, API tokens), /api/v1/users
// and /api/v1/roles.
#include <fmt/format.h>

#include "api/access.h"
#include "api/routes.h"
#include "api/wire.h"
#include "auth/crypto.h"
#include "common/ids.h"

namespace automan::api {

namespace {

using auth::Subject;

json::object UserJson(const UserRecord& u) {
  return json::object{{"username", u.username},
                      {"role", u.role},
                      {"disabled", u.disabled},
                      {"must_change_password", u.must_change_password},
                      {"locked_until", TimeOrNull(u.locked_until)},
                      {"created_at", TimeOrNull(u.created_at)},
                      {"updated_at", TimeOrNull(u.updated_at)}};
}

json::object TokenJson(const CredentialRecord& c) {
  return json::object{{"id", c.id},
                      {"name", c.name},
                      {"owner", c.owner},
                      {"role", c.role.empty() ? json::value(nullptr) : json::value(c.role)},
                      {"created_at", TimeOrNull(c.created_at)},
                      {"expires_at", TimeOrNull(c.expires_at)},
                      {"last_used_at", TimeOrNull(c.last_used_at)},
                      {"revoked_at", TimeOrNull(c.revoked_at)}};
}

json::array Strings(const std::vector<std::string>& v) {
  json::array a;
  for (const std::string& s : v) a.emplace_back(s);
  return a;
}

std::string SessionCookie(const ApiContext& ctx, std::string_view value, int64_t max_age) {
  return fmt::format("{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}", kSessionCookie,
                     value, max_age, ctx.security.options.secure_cookies ? "; Secure" : "");
}

HttpResponse Login(ApiContext& ctx, HttpRequest& req) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (Status s = CheckFields(*body, {"username", "password", "token"}); !s.ok()) {
    return ErrorResponse(s);
  }
  auto username = GetString(*body, "username");
  auto password = GetString(*body, "password");
  auto token = GetBool(*body, "token");
  if (!username.ok()) return ErrorResponse(username.status());
  if (!password.ok()) return ErrorResponse(password.status());
  if (!token.ok()) return ErrorResponse(token.status());
  if (!*username || !*password) {
    return ErrorResponse(400, "invalid_argument",
                         "fields \"username\" and \"password\" are required");
  }
  if ((*password)->size() > auth::kMaxPasswordBytes) {
    return ErrorResponse(400, "invalid_argument",
                         fmt::format("a password is at most {} bytes", auth::kMaxPasswordBytes));
  }
  // Strict limits before any password is checked: per client address and per username.
  const Timestamp now = ctx.clock.Now();
  Duration wait = ctx.security.login_by_address.Take(req.client, now);
  if (wait == Duration::zero()) wait = ctx.security.login_by_user.Take(**username, now);
  if (wait > Duration::zero()) return RateLimited(ctx, req, "login:" + req.client, wait);

  auto result =
      ctx.security.auth.Login(**username, **password, token->value_or(false), ActorOf(req));
  if (!result.ok()) {
    if (result.status().code() == ErrorCode::kUnauthenticated) {
      return ErrorResponse(401, "unauthenticated", result.status().message());
    }
    return ErrorResponse(result.status());
  }
  const Subject& s = *result->subject;
  json::object o{{"user", s.username},
                 {"role", s.role},
                 {"permissions", Strings(s.permissions.Names())},
                 {"must_change_password", s.must_change_password},
                 {"csrf_token", s.csrf_token},
                 {"expires_at", TimeOrNull(result->session_expires)}};
  if (result->token) o["token"] = *result->token;
  HttpResponse resp = JsonResponse(200, o);
  const auto max_age =
      std::chrono::duration_cast<std::chrono::seconds>(ctx.security.auth.options().session_absolute)
          .count();
  resp.headers.emplace_back("Set-Cookie", SessionCookie(ctx, result->session_secret, max_age));
  return resp;
}

HttpResponse Logout(ApiContext& ctx, HttpRequest& req) {
  if (Status s = ctx.security.auth.Logout(*req.subject, ActorOf(req)); !s.ok()) {
    return ErrorResponse(s);
  }
  HttpResponse resp = NoContent();
  resp.headers.emplace_back("Set-Cookie", SessionCookie(ctx, "", 0));
  return resp;
}

HttpResponse Me(ApiContext&, HttpRequest& req) {
  const Subject& s = *req.subject;
  json::object o{{"user", s.username},
                 {"role", s.role},
                 {"permissions", Strings(s.permissions.Names())},
                 {"categories", Strings(s.categories)},
                 {"must_change_password", s.must_change_password},
                 {"credential", s.kind == CredentialKind::kSession ? "session" : "token"}};
  if (s.kind == CredentialKind::kSession) o["csrf_token"] = s.csrf_token;
  return JsonResponse(200, o);
}

HttpResponse ChangePassword(ApiContext& ctx, HttpRequest& req) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (Status s = CheckFields(*body, {"current", "new"}); !s.ok()) return ErrorResponse(s);
  auto current = GetString(*body, "current");
  auto next = GetString(*body, "new");
  if (!current.ok()) return ErrorResponse(current.status());
  if (!next.ok()) return ErrorResponse(next.status());
  if (!*current || !*next) {
    return ErrorResponse(400, "invalid_argument", "fields \"current\" and \"new\" are required");
  }
  if ((*current)->size() > auth::kMaxPasswordBytes) {
    return ErrorResponse(400, "invalid_argument", "the current password is wrong");
  }
  Status s = ctx.security.auth.ChangePassword(*req.subject, **current, **next, ActorOf(req));
  return s.ok() ? NoContent() : ErrorResponse(s);
}

HttpResponse IssueTicket(ApiContext& ctx, HttpRequest& req) {
  auto body = ParseBodyObject(req.body.empty() ? std::string_view("{}") : req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (Status s = CheckFields(*body, {"scope"}); !s.ok()) return ErrorResponse(s);
  auto scope = GetString(*body, "scope");
  if (!scope.ok()) return ErrorResponse(scope.status());
  std::string sc = scope->value_or("all");
  if (sc != "all") {
    const std::string run_id = sc.rfind("run:", 0) == 0 ? sc.substr(4) : std::string();
    if (!IsValidId(run_id)) {
      return ErrorResponse(400, "invalid_argument",
                           "field \"scope\" must be \"all\" or \"run:RUN_ID\"");
    }
  }
  const Subject& s = *req.subject;
  const std::string ticket = ctx.security.tickets.Issue(s.username, s.credential_id, sc);
  return JsonResponse(
      201,
      json::object{
          {"ticket", ticket},
          {"scope", sc},
          {"expires_in",
           static_cast<int64_t>(
               std::chrono::duration_cast<std::chrono::seconds>(auth::kMaxTicketTtl).count())}});
}

HttpResponse ListTokens(ApiContext& ctx, HttpRequest& req) {
  const Subject& s = *req.subject;
  const std::string* all = req.Query("all");
  const bool everyone = all != nullptr && *all == "true";
  if (everyone && !s.Can(auth::Permission::kUsersManage)) {
    return ErrorResponse(403, "permission_denied",
                         "listing every user's tokens needs users.manage");
  }
  auto tokens = ctx.security.auth.ListTokens(everyone ? std::string_view() : s.username);
  if (!tokens.ok()) return ErrorResponse(tokens.status());
  json::array items;
  for (const CredentialRecord& c : *tokens) items.push_back(TokenJson(c));
  return JsonResponse(200, ListJson(std::move(items), std::nullopt));
}

HttpResponse CreateToken(ApiContext& ctx, HttpRequest& req) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (Status s = CheckFields(*body, {"name", "role", "expires_in"}); !s.ok()) {
    return ErrorResponse(s);
  }
  auto name = GetString(*body, "name");
  auto role = GetString(*body, "role");
  auto expires = GetInt(*body, "expires_in");
  if (!name.ok()) return ErrorResponse(name.status());
  if (!role.ok()) return ErrorResponse(role.status());
  if (!expires.ok()) return ErrorResponse(expires.status());
  if (!*name) return ErrorResponse(400, "invalid_argument", "field \"name\" is required");
  std::optional<Duration> ttl;
  if (*expires) {
    if (**expires < 1 || **expires > 366LL * 24 * 3600) {
      return ErrorResponse(400, "invalid_argument",
                           "field \"expires_in\" must be 1..31622400 seconds");
    }
    ttl = std::chrono::seconds(**expires);
  }
  auto t =
      ctx.security.auth.IssueToken(*req.subject, **name, role->value_or(""), ttl, ActorOf(req));
  if (!t.ok()) return ErrorResponse(t.status());
  json::object o = TokenJson(t->record);
  o["token"] = t->secret;
  return JsonResponse(201, o);
}

HttpResponse RevokeToken(ApiContext& ctx, HttpRequest& req) {
  Status s = ctx.security.auth.RevokeToken(*req.subject, req.path_params["id"], ActorOf(req));
  return s.ok() ? NoContent() : ErrorResponse(s);
}

HttpResponse ListUsers(ApiContext& ctx, HttpRequest&) {
  auto users = ctx.security.auth.ListUsers();
  if (!users.ok()) return ErrorResponse(users.status());
  json::array items;
  for (const UserRecord& u : *users) items.push_back(UserJson(u));
  return JsonResponse(200, ListJson(std::move(items), std::nullopt));
}

HttpResponse CreateUser(ApiContext& ctx, HttpRequest& req) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (Status s = CheckFields(*body, {"username", "password", "role", "must_change_password"});
      !s.ok()) {
    return ErrorResponse(s);
  }
  auto username = GetString(*body, "username");
  auto password = GetString(*body, "password");
  auto role = GetString(*body, "role");
  auto must = GetBool(*body, "must_change_password");
  if (!username.ok()) return ErrorResponse(username.status());
  if (!password.ok()) return ErrorResponse(password.status());
  if (!role.ok()) return ErrorResponse(role.status());
  if (!must.ok()) return ErrorResponse(must.status());
  if (!*username || !*password || !*role) {
    return ErrorResponse(400, "invalid_argument",
                         "fields \"username\", \"password\" and \"role\" are required");
  }
  auto u = ctx.security.auth.CreateUser(**username, **password, **role, must->value_or(true),
                                        ActorOf(req));
  if (!u.ok()) return ErrorResponse(u.status());
  return JsonResponse(201, UserJson(*u));
}

HttpResponse GetUser(ApiContext& ctx, HttpRequest& req) {
  const std::string& name = req.path_params["name"];
  auto u = auth::IsValidName(name) ? ctx.security.auth.GetUser(name)
                                   : Result<UserRecord>(Status(ErrorCode::kNotFound, ""));
  if (!u.ok()) {
    if (u.status().code() == ErrorCode::kNotFound) {
      return ErrorResponse(404, "not_found",
                           fmt::format("user \"{}\" does not exist", ToValidUtf8(name)));
    }
    return ErrorResponse(u.status());
  }
  return JsonResponse(200, UserJson(*u));
}

HttpResponse UpdateUser(ApiContext& ctx, HttpRequest& req) {
  const std::string& name = req.path_params["name"];
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (Status s = CheckFields(*body, {"role", "disabled", "password"}); !s.ok()) {
    return ErrorResponse(s);
  }
  auto role = GetString(*body, "role");
  auto disabled = GetBool(*body, "disabled");
  auto password = GetString(*body, "password");
  if (!role.ok()) return ErrorResponse(role.status());
  if (!disabled.ok()) return ErrorResponse(disabled.status());
  if (!password.ok()) return ErrorResponse(password.status());
  if (!auth::IsValidName(name)) {
    return ErrorResponse(404, "not_found",
                         fmt::format("user \"{}\" does not exist", ToValidUtf8(name)));
  }
  auto u = ctx.security.auth.UpdateUser(name, *role, *disabled, *password, ActorOf(req));
  if (!u.ok()) {
    if (u.status().code() == ErrorCode::kNotFound) {
      return ErrorResponse(404, "not_found", fmt::format("user \"{}\" does not exist", name));
    }
    return ErrorResponse(u.status());
  }
  return JsonResponse(200, UserJson(*u));
}

HttpResponse ListRoles(ApiContext& ctx, HttpRequest&) {
  json::array items;
  for (const auth::Role* r : ctx.security.auth.roles().All()) {
    items.push_back(json::object{{"name", r->name},
                                 {"description", r->description},
                                 {"permissions", Strings(r->permissions.Names())},
                                 {"categories", Strings(r->categories)},
                                 {"builtin", r->builtin}});
  }
  return JsonResponse(200, ListJson(std::move(items), std::nullopt));
}

}  // namespace

void AddAuthRoutes(Router& r, ApiContext& ctx) {
  auto bind = [&ctx](HttpResponse (*fn)(ApiContext&, HttpRequest&)) {
    return [&ctx, fn](HttpRequest& q) { return fn(ctx, q); };
  };
  r.Add({"POST",
         "/api/v1/auth/login",
         std::string(kPublic),
         "Log in: starts a session (cookie) and, with \"token\": true, issues a bearer token",
         "auth",
         {},
         "LoginRequest",
         "Login",
         200,
         false,
         bind(Login)});
  r.Add({"POST",
         "/api/v1/auth/logout",
         std::string(kAuthenticated),
         "End this session",
         "auth",
         {},
         "",
         "",
         204,
         false,
         bind(Logout)});
  r.Add({"GET",
         "/api/v1/auth/me",
         std::string(kAuthenticated),
         "Who is calling, with which permissions",
         "auth",
         {},
         "",
         "Me",
         200,
         false,
         bind(Me)});
  r.Add({"POST",
         "/api/v1/auth/password",
         std::string(kAuthenticated),
         "Change your password (ends your other sessions)",
         "auth",
         {},
         "PasswordChange",
         "",
         204,
         false,
         bind(ChangePassword)});
  r.Add({"POST",
         "/api/v1/auth/tickets",
         std::string(kAuthenticated),
         "A single-use stream ticket (≤ 60 s) for EventSource: ?ticket= on a stream route",
         "auth",
         {},
         "TicketRequest",
         "Ticket",
         201,
         false,
         bind(IssueTicket)});
  r.Add({"GET",
         "/api/v1/auth/tokens",
         std::string(kAuthenticated),
         "Your API tokens (every user's with ?all=true and users.manage)",
         "auth",
         {{"all", "boolean", "every user's tokens (needs users.manage)"}},
         "",
         "TokenList",
         200,
         false,
         bind(ListTokens)});
  r.Add({"POST",
         "/api/v1/auth/tokens",
         std::string(kAuthenticated),
         "Issue an API token (shown once) with your role or a narrower one",
         "auth",
         {},
         "TokenRequest",
         "IssuedToken",
         201,
         false,
         bind(CreateToken)});
  r.Add({"DELETE",
         "/api/v1/auth/tokens/{id}",
         std::string(kAuthenticated),
         "Revoke one of your tokens (any token with users.manage)",
         "auth",
         {},
         "",
         "",
         204,
         false,
         bind(RevokeToken)});
  r.Add({"GET",
         "/api/v1/users",
         "users.manage",
         "Users",
         "users",
         {},
         "",
         "UserList",
         200,
         false,
         bind(ListUsers)});
  r.Add({"POST",
         "/api/v1/users",
         "users.manage",
         "Create a user",
         "users",
         {},
         "UserCreate",
         "User",
         201,
         false,
         bind(CreateUser)});
  r.Add({"GET",
         "/api/v1/users/{name}",
         "users.manage",
         "One user",
         "users",
         {},
         "",
         "User",
         200,
         false,
         bind(GetUser)});
  r.Add({"PATCH",
         "/api/v1/users/{name}",
         "users.manage",
         "Change a user's role, disable or enable them, or reset their password",
         "users",
         {},
         "UserUpdate",
         "User",
         200,
         false,
         bind(UpdateUser)});
  r.Add({"GET",
         "/api/v1/roles",
         std::string(kAuthenticated),
         "Roles and their permissions",
         "users",
         {},
         "",
         "RoleList",
         200,
         false,
         bind(ListRoles)});
}

}  // namespace automan::api
