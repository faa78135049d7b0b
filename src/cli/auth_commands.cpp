// The account commands: `automan login`, `logout`, `users`, `tokens`. Like the other client
// commands they talk only to the server's HTTP API. Passwords are read with ReadSecret (a
// no-echo prompt, or standard input), never from the command line.
#include <fmt/format.h>

#include <cstdio>
#include <functional>
#include <iostream>
#include <vector>

#include "audit/verify.h"
#include "auth/keys.h"
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

// The "items" of a list reply: one JSON object per line with `json`, else a table of
// `header` and a row per item.
void PrintItems(const json::value& reply, bool json, std::vector<std::string> header,
                const std::function<std::vector<std::string>(const json::object&)>& row) {
  std::vector<std::vector<std::string>> rows = {std::move(header)};
  for (const json::value& v : Arr(Obj(reply).if_contains("items"))) {
    if (json) {
      fmt::print("{}\n", json::serialize(v));
    } else {
      rows.push_back(row(Obj(v)));
    }
  }
  if (!json) PrintTable(rows);
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
    PrintItems(*reply, o.json, {"USER", "ROLE", "STATE", "CREATED"}, [&](const json::object& x) {
      std::string state = Bool(x, "disabled") ? "disabled"
                          : !Str(x, "locked_until").empty()
                              ? "locked until " + When(x, "locked_until")
                          : Bool(x, "must_change_password") ? "must change password"
                                                            : "active";
      return std::vector<std::string>(
          {Str(x, "username"), Str(x, "role"), state, When(x, "created_at")});
    });
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
    PrintItems(
        *reply, o.json, {"ID", "NAME", "OWNER", "ROLE", "EXPIRES", "LAST USED", "STATE"},
        [&](const json::object& x) {
          return std::vector<std::string>({Str(x, "id"), Str(x, "name"), Str(x, "owner"),
                                           Str(x, "role").empty() ? "(owner's)" : Str(x, "role"),
                                           When(x, "expires_at"), When(x, "last_used_at"),
                                           Str(x, "revoked_at").empty() ? "active" : "revoked"});
        });
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

int RunSecrets(const SecretsOptions& o) {
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  if (o.action == "list") {
    auto reply = Call(**c, "GET", "/api/v1/secrets");
    if (!reply.ok()) return Fail(reply.status());
    PrintItems(
        *reply, o.json, {"NAME", "UPDATED", "BY", "DESCRIPTION"}, [&](const json::object& x) {
          return std::vector<std::string>(
              {Str(x, "name"), When(x, "updated_at"), Str(x, "updated_by"), Str(x, "description")});
        });
    return kExitSuccess;
  }
  if (o.name.empty()) {
    return Fail(Status(ErrorCode::kInvalidArgument,
                       "name the secret: automan secrets " + o.action + " NAME"));
  }
  const std::string path = "/api/v1/secrets/" + UrlEscape(o.name);
  if (o.action == "delete") {
    auto reply = Call(**c, "DELETE", path);
    if (!reply.ok()) return Fail(reply.status());
    fmt::print(stderr, "deleted secret {}\n", o.name);
    return kExitSuccess;
  }
  // The value never comes from the command line: a no-echo prompt, or standard input.
  auto value = ReadSecret("Value of secret " + o.name + ": ");
  if (!value.ok()) return Fail(value.status());
  json::object body{{"value", *value}};
  if (!o.description.empty()) body["description"] = o.description;
  json::value b = body;
  auto reply = Call(**c, "PUT", path, &b);
  if (!reply.ok()) return Fail(reply.status());
  fmt::print(stderr,
             "stored secret {} (runbooks get it as AUTOMAN_SECRET_{} when they list it "
             "under secrets:)\n",
             o.name, [&] {
               std::string up = o.name;
               for (char& ch : up)
                 ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
               return up;
             }());
  return kExitSuccess;
}

namespace {

std::string AuditQuery(const AuditOptions& o, int64_t after, int limit, const std::string& format) {
  std::string q = fmt::format("/api/v1/audit?limit={}&format={}", limit, format);
  if (after > 0) q += fmt::format("&cursor={}", after);
  if (!o.actor.empty()) q += "&actor=" + UrlEscape(o.actor);
  if (!o.action_filter.empty()) q += "&action=" + UrlEscape(o.action_filter);
  if (!o.since.empty()) q += "&since=" + UrlEscape(o.since);
  if (!o.until.empty()) q += "&until=" + UrlEscape(o.until);
  return q;
}

int PrintVerifyReport(const json::object& r, bool as_json) {
  if (as_json) {
    fmt::print("{}\n", json::serialize(r));
  } else if (Bool(r, "ok")) {
    fmt::print("audit trail OK: {} entries verified (last seq {}, anchored at {})\n",
               Int(r, "entries_checked"), Int(r, "last_seq"), Int(r, "anchor_seq"));
  } else {
    fmt::print("audit trail BROKEN: {} at seq {}: {}\n", Str(r, "kind"), Int(r, "first_bad_seq"),
               Str(r, "message"));
  }
  return Bool(r, "ok") ? kExitSuccess : kExitFailed;
}

// `automan audit verify --data DIR`: reads the store and the key file directly, so it
// works with the server stopped (and on a copy taken for an investigation).
int VerifyOffline(const AuditOptions& o) {
  auto store = OpenStore(o.store);
  if (!store.ok()) return Fail(store.status());
  const std::string key_file = o.key_file.empty() ? o.store.data_dir + "/master.key" : o.key_file;
  auto keys = auth::LoadOrCreateKeys(key_file, false);
  if (!keys.ok()) return Fail(keys.status());
  audit::VerifyOptions vo;
  vo.head_path = o.store.data_dir + "/audit.head";
  auto report = audit::VerifyAudit(**store, keys->audit, vo);
  if (!report.ok()) return Fail(report.status());
  json::object r{{"ok", report->ok},
                 {"entries_checked", report->entries_checked},
                 {"last_seq", report->last_seq},
                 {"anchor_seq", report->anchor_seq}};
  if (!report->ok) {
    r["kind"] = std::string(audit::ToString(report->kind));
    r["first_bad_seq"] = report->first_bad_seq;
    r["message"] = report->message;
  }
  return PrintVerifyReport(r, o.json);
}

}  // namespace

int RunAudit(const AuditOptions& o) {
  if (o.action == "verify" && o.server.url.empty()) return VerifyOffline(o);
  auto c = Connect(o.server);
  if (!c.ok()) return Fail(c.status());
  if (o.action == "verify") {
    auto reply = Call(**c, "GET", "/api/v1/audit/verify");
    if (!reply.ok()) return Fail(reply.status());
    return PrintVerifyReport(Obj(*reply), o.json);
  }
  if (o.action == "list") {
    auto reply = Call(**c, "GET", AuditQuery(o, 0, o.limit, "json"));
    if (!reply.ok()) return Fail(reply.status());
    PrintItems(*reply, o.json, {"SEQ", "AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "REMOTE"},
               [&](const json::object& x) {
                 return std::vector<std::string>(
                     {Str(x, "seq"), Str(x, "at").substr(0, 19), Str(x, "actor"), Str(x, "action"),
                      Str(x, "target"), Str(x, "outcome"), Str(x, "remote")});
               });
    return kExitSuccess;
  }
  // export: every matching entry, page by page, in the chosen format on stdout.
  int64_t after = 0;
  bool first = true;
  for (;;) {
    auto reply = (*c)->Request("GET", AuditQuery(o, after, 10000, o.format));
    if (!reply.ok()) return Fail(reply.status());
    std::string body = reply->body;
    if (o.format == "csv" && !first) body.erase(0, body.find('\n') + 1);  // one header
    fmt::print("{}", body);
    first = false;
    // The last seq of this page is the cursor of the next; a short page is the last.
    int64_t lines = 0, last = after;
    if (o.format == "jsonl") {
      size_t pos = 0;
      while ((pos = reply->body.find("\"seq\":", pos)) != std::string::npos) {
        pos += 6;
        last = std::strtoll(reply->body.c_str() + pos, nullptr, 10);
        ++lines;
      }
    } else {
      size_t pos = reply->body.find('\n');  // after the header
      while (pos != std::string::npos && pos + 1 < reply->body.size()) {
        last = std::strtoll(reply->body.c_str() + pos + 1, nullptr, 10);
        ++lines;
        pos = reply->body.find('\n', pos + 1);
      }
    }
    if (lines < 10000 || last <= after) break;
    after = last;
  }
  return kExitSuccess;
}

}  // namespace automan::cli
