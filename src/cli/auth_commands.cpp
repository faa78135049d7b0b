// The account commands: `automan login`, `logout`, `users`, `tokens`. Like the other client
// commands they talk only to the server's HTTP API. Passwords are read with ReadSecret (a
// no-echo prompt, or standard input), never from the command line.
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

#include "cli/api_calls.h"
#include "cli/cli_support.h"
#include "cli/commands.h"
#include "common/duration.h"

namespace automan::cli {

namespace {

using client::ApiClient;
using client::UrlEscape;

Result<std::string> NewPassword(const std::string& whose) {
  AUTOMAN_ASSIGN_OR_RETURN(std::string first, ReadSecret("New password for " + whose + ": "));
  if (::isatty(STDIN_FILENO) != 0) {
    AUTOMAN_ASSIGN_OR_RETURN(std::string again, ReadSecret("Repeat it: "));
    if (again != first) return Status(ErrorCode::kInvalidArgument, "the passwords differ");
  }
  return first;
}

std::string When(const json::object& o, std::string_view key) {
  const std::string v = Str(o, key);
  return v.empty() ? "-" : v.substr(0, 16);
}

}  // namespace

int RunLogin(const LoginOptions& o) {
  std::vector<std::string> warnings;
  auto options =
      client::ResolveClientOptions(o.server.url, o.server.ca_file, o.server.insecure, warnings);
  for (const std::string& w : warnings) fmt::print(stderr, "warning: {}\n", w);
  if (!options.ok()) return Fail(options.status());
  options->token.clear();  // logging in: no old token goes out
  auto c = ApiClient::Create(*options);
  if (!c.ok()) return Fail(c.status());

  std::string username = o.username;
  if (username.empty()) {
    fmt::print(stderr, "Username: ");
    if (!std::getline(std::cin, username))
      return Fail(Status(ErrorCode::kInvalidArgument, "no username"));
  }
  auto password = ReadSecret(o.password_stdin ? "Password (stdin): " : "Password: ");
  if (!password.ok()) return Fail(password.status());
  json::value body = json::object{{"username", username}, {"password", *password}, {"token", true}};
  auto reply = Call(**c, "POST", "/api/v1/auth/login", &body);
  if (!reply.ok()) return Fail(reply.status());
  const json::object& login = Obj(*reply);
  std::string token = Str(login, "token");
  if (token.empty()) return Fail(Status(ErrorCode::kInternal, "the server sent no token"));

  if (Bool(login, "must_change_password")) {
    fmt::print(stderr, "This password must be changed now.\n");
    options->token = token;
    auto authed = ApiClient::Create(*options);
    if (!authed.ok()) return Fail(authed.status());
    auto next = NewPassword(username);
    if (!next.ok()) return Fail(next.status());
    json::value change = json::object{{"current", *password}, {"new", *next}};
    auto changed = Call(**authed, "POST", "/api/v1/auth/password", &change);
    if (!changed.ok()) return Fail(changed.status());
  }
  const std::string path = client::CliConfigPath();
  if (Status s = client::WriteCliConfig(path, {options->server, token}); !s.ok()) return Fail(s);
  fmt::print(stderr, "logged in to {} as {} (role {}); token saved in {}\n", options->server,
             Str(login, "user"), Str(login, "role"), path);
  return kExitSuccess;
}

int RunLogout(const LogoutOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  auto reply = Call(**c, "POST", "/api/v1/auth/logout");
  if (!reply.ok() && reply.status().code() != ErrorCode::kUnauthenticated) {
    return Fail(reply.status());
  }
  const std::string path = client::CliConfigPath();
  auto config = client::ReadCliConfig(path);
  if (config.ok() && !config->token.empty()) {
    config->token.clear();
    if (Status s = client::WriteCliConfig(path, *config); !s.ok()) return Fail(s);
  }
  fmt::print(stderr, "logged out of {}\n", (*c)->server());
  return kExitSuccess;
}

int RunUsers(const UsersOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  if (o.action == "list") {
    auto reply = Call(**c, "GET", "/api/v1/users");
    if (!reply.ok()) return Fail(reply.status());
    std::vector<std::vector<std::string>> rows = {{"USER", "ROLE", "STATE", "CREATED"}};
    for (const json::value& u : Arr(Obj(*reply).if_contains("items"))) {
      const json::object& x = Obj(u);
      if (o.json) {
        fmt::print("{}\n", json::serialize(x));
        continue;
      }
      std::string state = Bool(x, "disabled") ? "disabled"
                          : !Str(x, "locked_until").empty()
                              ? "locked until " + When(x, "locked_until")
                          : Bool(x, "must_change_password") ? "must change password"
                                                            : "active";
      rows.push_back({Str(x, "username"), Str(x, "role"), state, When(x, "created_at")});
    }
    if (!o.json) PrintTable(rows);
    return kExitSuccess;
  }
  if (o.username.empty()) {
    return Fail(
        Status(ErrorCode::kInvalidArgument, "name the user: automan users " + o.action + " NAME"));
  }
  const std::string path = "/api/v1/users/" + UrlEscape(o.username);
  Result<json::value> reply = json::value(nullptr);
  if (o.action == "add") {
    if (o.role.empty())
      return Fail(Status(ErrorCode::kInvalidArgument, "give the role: --role ROLE"));
    auto pw = NewPassword(o.username);
    if (!pw.ok()) return Fail(pw.status());
    json::value body = json::object{{"username", o.username},
                                    {"password", *pw},
                                    {"role", o.role},
                                    {"must_change_password", true}};
    reply = Call(**c, "POST", "/api/v1/users", &body);
  } else if (o.action == "set-role") {
    if (o.role.empty())
      return Fail(Status(ErrorCode::kInvalidArgument, "give the role: set-role NAME ROLE"));
    json::value body = json::object{{"role", o.role}};
    reply = Call(**c, "PATCH", path, &body);
  } else if (o.action == "disable" || o.action == "enable") {
    json::value body = json::object{{"disabled", o.action == "disable"}};
    reply = Call(**c, "PATCH", path, &body);
  } else {  // reset-password
    auto pw = NewPassword(o.username);
    if (!pw.ok()) return Fail(pw.status());
    json::value body = json::object{{"password", *pw}};
    reply = Call(**c, "PATCH", path, &body);
  }
  if (!reply.ok()) return Fail(reply.status());
  const json::object& u = Obj(*reply);
  if (o.json) {
    fmt::print("{}\n", json::serialize(u));
  } else {
    fmt::print("{}: role {}{}{}\n", Str(u, "username"), Str(u, "role"),
               Bool(u, "disabled") ? ", disabled" : "",
               Bool(u, "must_change_password") ? ", must change the password at next login" : "");
  }
  return kExitSuccess;
}

int RunTokens(const TokensOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  if (o.action == "list") {
    auto reply = Call(**c, "GET", std::string("/api/v1/auth/tokens") + (o.all ? "?all=true" : ""));
    if (!reply.ok()) return Fail(reply.status());
    std::vector<std::vector<std::string>> rows = {
        {"ID", "NAME", "OWNER", "ROLE", "EXPIRES", "LAST USED", "STATE"}};
    for (const json::value& t : Arr(Obj(*reply).if_contains("items"))) {
      const json::object& x = Obj(t);
      if (o.json) {
        fmt::print("{}\n", json::serialize(x));
        continue;
      }
      rows.push_back({Str(x, "id"), Str(x, "name"), Str(x, "owner"),
                      Str(x, "role").empty() ? "(owner's)" : Str(x, "role"), When(x, "expires_at"),
                      When(x, "last_used_at"),
                      Str(x, "revoked_at").empty() ? "active" : "revoked"});
    }
    if (!o.json) PrintTable(rows);
    return kExitSuccess;
  }
  if (o.arg.empty()) {
    return Fail(Status(ErrorCode::kInvalidArgument,
                       o.action == "create" ? "name the token: automan tokens create NAME"
                                            : "give the token id: automan tokens revoke ID"));
  }
  if (o.action == "revoke") {
    auto reply = Call(**c, "DELETE", "/api/v1/auth/tokens/" + UrlEscape(o.arg));
    if (!reply.ok()) return Fail(reply.status());
    fmt::print(stderr, "revoked token {}\n", o.arg);
    return kExitSuccess;
  }
  json::object body{{"name", o.arg}};
  if (!o.role.empty()) body["role"] = o.role;
  if (!o.expires.empty()) {
    auto d = ParseDuration(o.expires);
    if (!d.ok())
      return Fail(Status(ErrorCode::kInvalidArgument, "--expires: a duration such as 30d"));
    body["expires_in"] = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  }
  json::value b = body;
  auto reply = Call(**c, "POST", "/api/v1/auth/tokens", &b);
  if (!reply.ok()) return Fail(reply.status());
  const json::object& t = Obj(*reply);
  if (o.json) {
    fmt::print("{}\n", json::serialize(t));
  } else {
    // The token on stdout alone, so `TOKEN=$(automan tokens create ci)` works.
    fmt::print(stderr, "token {} \"{}\" (expires {}); it is shown only now:\n", Str(t, "id"),
               Str(t, "name"), When(t, "expires_at"));
    fmt::print("{}\n", Str(t, "token"));
  }
  return kExitSuccess;
}

}  // namespace automan::cli
