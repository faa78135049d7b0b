// Authorization, in process: every route of the table called as every built-in role,
// anonymously, and with expired, revoked and malformed credentials (the authorization
// matrix); objects a role may not see answer 404 like missing ones; browser protections
// (CSRF token, Origin) for cookie sessions; stream tickets; credentials in query strings.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "api/router.h"
#include "api_harness.h"
#include "auth/rbac.h"
#include "support/test_util.h"

namespace automan {
namespace {

namespace json = boost::json;
using testing::InProcessApi;
using testing::TempDir;
using testing::WriteFile;

std::string Concrete(const std::string& pattern) {
  std::string out;
  size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] == '{') {
      out += "p0x";
      i = pattern.find('}', i) + 1;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

std::string ErrorCodeOf(const api::HttpResponse& r) {
  json::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "";
  return std::string(v.at("error").at("code").as_string());
}

const std::string* HeaderOf(const api::HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::string Bearer(const std::string& token) { return "Bearer " + token; }

class AuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.File("runbooks"));
    WriteFile(dir_.File("runbooks/ops-only.yaml"), R"(id: ops-only
name: Operators only
description: Visible to operators (and admins) only.
category: remediation
allowed_roles: [operator]
steps:
  - id: a
    shell: echo hi
)");
    WriteFile(dir_.File("runbooks/wipe.yaml"), R"(id: wipe
name: Dangerous
description: Needs runs.execute_dangerous.
category: remediation
dangerous: true
steps:
  - id: a
    shell: echo wipe
)");
    WriteFile(dir_.File("runbooks/diag.yaml"), R"(id: diag
name: Diagnostics
description: Anyone who executes may run it.
category: diagnostics
steps:
  - id: a
    shell: echo diag
)");
    WriteFile(dir_.File("runbooks/deploy.yaml"), R"(id: deploy
name: Deploy
description: A category responders may not execute.
category: deploy
steps:
  - id: a
    shell: echo deploy
)");
    InProcessApi::Options o;
    o.data_dir = dir_.File("data");
    o.runbooks_dir = dir_.File("runbooks");
    auto api = InProcessApi::Create(o);
    ASSERT_TRUE(api.ok()) << api.status().message();
    api_ = std::move(*api);
    for (const std::string role : {"operator", "responder", "viewer"}) {
      auto t = api_->TokenFor("u-" + role, role);
      ASSERT_TRUE(t.ok()) << t.status().message();
      tokens_[role] = *t;
    }
    tokens_["admin"] = api_->admin_token();
  }

  api::HttpResponse As(const std::string& role, const std::string& method,
                       const std::string& target, const std::string& body = "") {
    return api_->Call(method, target, body, {{"Authorization", Bearer(tokens_.at(role))}});
  }

  // A fresh token of `role`'s user (so a route that ends the caller's credential, such as
  // logout, does not disturb the next call).
  std::string FreshToken(const std::string& role) {
    auto subject = api_->auth().Authenticate(tokens_.at(role));
    EXPECT_TRUE(subject.ok()) << subject.status().message();
    auto t = api_->auth().IssueToken(**subject, "matrix", "", std::nullopt, auth::Actor{});
    EXPECT_TRUE(t.ok()) << t.status().message();
    return t.ok() ? t->secret : "";
  }

  TempDir dir_;
  std::unique_ptr<InProcessApi> api_;
  std::map<std::string, std::string> tokens_;
};

// Every route as every role: 403 exactly when the role lacks the route's permission,
// never 401/403 otherwise; 401 without credentials or with dead ones, except on the
// public routes.
TEST_F(AuthzTest, MatrixOfEveryRouteAndEveryRole) {
  auth::RoleSet roles;
  // Dead credentials: expired, revoked, of a disabled user, and junk.
  auto admin = api_->auth().Authenticate(api_->admin_token());
  ASSERT_TRUE(admin.ok());
  auto expiring = api_->auth().IssueToken(**admin, "short", "", std::chrono::seconds(1), {});
  ASSERT_TRUE(expiring.ok());
  auto revoked = api_->auth().IssueToken(**admin, "revoked", "", std::nullopt, {});
  ASSERT_TRUE(revoked.ok());
  ASSERT_TRUE(api_->auth().RevokeToken(**admin, revoked->record.id, {}).ok());
  auto disabled_token = api_->TokenFor("u-gone", "operator");
  ASSERT_TRUE(disabled_token.ok());
  ASSERT_TRUE(api_->auth().UpdateUser("u-gone", std::nullopt, true, std::nullopt, {}).ok());
  api_->clock().Advance(std::chrono::seconds(5));
  const std::vector<std::pair<std::string, std::string>> dead = {
      {"expired", Bearer(expiring->secret)},
      {"revoked", Bearer(revoked->secret)},
      {"disabled user", Bearer(*disabled_token)},
      {"junk", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."},
      {"wrong scheme", "Basic YWRtaW46YWRtaW4="},
      {"empty bearer", "Bearer "},
      {"huge", Bearer(std::string(100000, 'a'))},
      {"nul", Bearer(std::string("amt_abc\0def", 11))},
  };

  int checked = 0;
  for (const api::Route& r : api_->router().routes()) {
    const std::string key = r.method + " " + r.pattern;
    const std::string target = Concrete(r.pattern);
    const std::string body = r.method == "GET" || r.method == "DELETE" ? "" : "{}";
    const bool is_public = r.permission == api::kPublic;
    const bool any_subject = r.permission == api::kAuthenticated;
    std::optional<auth::Permission> perm = auth::ParsePermission(r.permission);
    ASSERT_TRUE(is_public || any_subject || perm) << key << ": unknown permission " << r.permission;

    for (const std::string role : {"admin", "operator", "responder", "viewer"}) {
      const bool allowed = is_public || any_subject || roles.Find(role)->permissions.Has(*perm);
      api::HttpResponse resp =
          api_->Call(r.method, target, body, {{"Authorization", Bearer(FreshToken(role))}});
      if (allowed) {
        EXPECT_NE(resp.status, 401) << key << " as " << role << ": " << resp.body;
        EXPECT_TRUE(resp.status != 403 || ErrorCodeOf(resp) != "permission_denied")
            << key << " as " << role << ": " << resp.body;
      } else {
        EXPECT_EQ(resp.status, 403) << key << " as " << role << ": " << resp.body;
        EXPECT_EQ(ErrorCodeOf(resp), "permission_denied") << key << " as " << role;
      }
      ++checked;
    }
    api::HttpResponse anon = api_->CallAnonymous(r.method, target, body);
    if (is_public) {
      EXPECT_NE(anon.status, 401) << key << " anonymously: " << anon.body;
      EXPECT_NE(anon.status, 403) << key << " anonymously: " << anon.body;
    } else {
      EXPECT_EQ(anon.status, 401) << key << " anonymously: " << anon.body;
      EXPECT_EQ(ErrorCodeOf(anon), "unauthenticated") << key;
      ASSERT_NE(HeaderOf(anon, "WWW-Authenticate"), nullptr) << key;
      for (const auto& [what, header] : dead) {
        api::HttpResponse d = api_->Call(r.method, target, body, {{"Authorization", header}});
        EXPECT_EQ(d.status, 401) << key << " with a " << what << " credential: " << d.body;
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 5 * 50);
}

TEST_F(AuthzTest, PublicRoutesAreExactlyTheDocumentedOnes) {
  std::set<std::string> got;
  for (const api::Route& r : api_->router().routes()) {
    if (r.permission == api::kPublic) got.insert(r.method + " " + r.pattern);
  }
  EXPECT_EQ(got, (std::set<std::string>{"GET /healthz", "GET /readyz", "GET /api/v1/version",
                                        "GET /api/v1/openapi.json", "POST /api/v1/auth/login"}));
}

TEST_F(AuthzTest, RunbooksAndRunsARoleMayNotSeeAnswer404LikeMissingOnes) {
  // The operator starts a run of ops-only; the viewer cannot see the runbook or the run.
  api::HttpResponse created = As("operator", "POST", "/api/v1/runs", R"({"runbook":"ops-only"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id(json::parse(created.body).at("id").as_string());
  for (const std::string& target : std::vector<std::string>{
           "/api/v1/runs/" + id, "/api/v1/runs/" + id + "/logs", "/api/v1/runbooks/ops-only"}) {
    api::HttpResponse hidden = As("viewer", "GET", target);
    EXPECT_EQ(hidden.status, 404) << target << ": " << hidden.body;
    EXPECT_EQ(As("operator", "GET", target).status, 200) << target;
    EXPECT_EQ(As("admin", "GET", target).status, 200) << target;
  }
  // Exactly like a run that does not exist: same status, same message shape.
  const std::string missing = "01890000-0000-7000-8000-000000000000";
  api::HttpResponse a = As("viewer", "GET", "/api/v1/runs/" + id);
  api::HttpResponse b = As("viewer", "GET", "/api/v1/runs/" + missing);
  EXPECT_EQ(a.status, b.status);
  std::string ma = json::parse(a.body).at("error").at("message").as_string().c_str();
  std::string mb = json::parse(b.body).at("error").at("message").as_string().c_str();
  EXPECT_EQ(ma.replace(ma.find(id), id.size(), "X"),
            mb.replace(mb.find(missing), missing.size(), "X"));
  // Lists leave them out.
  EXPECT_EQ(As("viewer", "GET", "/api/v1/runs").body.find(id), std::string::npos);
  EXPECT_NE(As("operator", "GET", "/api/v1/runs").body.find(id), std::string::npos);
  EXPECT_EQ(As("viewer", "GET", "/api/v1/runbooks").body.find("ops-only"), std::string::npos);
  // Cancel by a responder (who has no runs.cancel) is 403; by the viewer 403 too.
  EXPECT_EQ(As("responder", "POST", "/api/v1/runs/" + id + "/cancel").status, 403);
}

TEST_F(AuthzTest, RunbookKeysDangerousRequiresAndCategoriesAreEnforced) {
  // dangerous: operator lacks runs.execute_dangerous, admin has it.
  api::HttpResponse op = As("operator", "POST", "/api/v1/runs", R"({"runbook":"wipe"})");
  EXPECT_EQ(op.status, 403) << op.body;
  EXPECT_NE(op.body.find("execute_dangerous"), std::string::npos) << op.body;
  EXPECT_EQ(As("admin", "POST", "/api/v1/runs", R"({"runbook":"wipe"})").status, 201);
  // A responder executes diagnostics, not deploy.
  EXPECT_EQ(As("responder", "POST", "/api/v1/runs", R"({"runbook":"diag"})").status, 201);
  api::HttpResponse dep = As("responder", "POST", "/api/v1/runs", R"({"runbook":"deploy"})");
  EXPECT_EQ(dep.status, 403) << dep.body;
  // allowed_roles: the responder does not even see ops-only.
  EXPECT_EQ(As("responder", "POST", "/api/v1/runs", R"({"runbook":"ops-only"})").status, 404);
  // The same rules hold in a batch, and the run records who started it.
  api::HttpResponse batch = As("operator", "POST", "/api/v1/runs/batch",
                               R"({"runs":[{"runbook":"diag"},{"runbook":"wipe"}]})");
  EXPECT_EQ(batch.status, 403) << batch.body;
  api::HttpResponse mine = As("operator", "POST", "/api/v1/runs", R"({"runbook":"diag"})");
  ASSERT_EQ(mine.status, 201);
  EXPECT_EQ(json::parse(mine.body).at("triggered_by").as_string(), "u-operator");
}

TEST_F(AuthzTest, CookieSessionsNeedTheCsrfTokenAndTheirOwnOrigin) {
  api::HttpResponse login = api_->CallAnonymous(
      "POST", "/api/v1/auth/login",
      std::string(R"({"username":"admin","password":")") + InProcessApi::kAdminPassword + "\"}");
  ASSERT_EQ(login.status, 200) << login.body;
  const std::string* set_cookie = HeaderOf(login, "Set-Cookie");
  ASSERT_NE(set_cookie, nullptr);
  EXPECT_NE(set_cookie->find("HttpOnly"), std::string::npos);
  EXPECT_NE(set_cookie->find("SameSite=Strict"), std::string::npos);
  const std::string cookie = set_cookie->substr(0, set_cookie->find(';'));
  const std::string csrf(json::parse(login.body).at("csrf_token").as_string());
  ASSERT_FALSE(csrf.empty());
  const std::string body = R"({"runbook":"diag"})";
  // Reads need no CSRF token.
  EXPECT_EQ(api_->Call("GET", "/api/v1/runs", "", {{"Cookie", cookie}}).status, 200);
  // A state change without it, with a wrong one, or from another origin is refused.
  api::HttpResponse no_csrf = api_->Call("POST", "/api/v1/runs", body, {{"Cookie", cookie}});
  EXPECT_EQ(no_csrf.status, 403);
  EXPECT_EQ(ErrorCodeOf(no_csrf), "csrf");
  EXPECT_EQ(
      api_->Call("POST", "/api/v1/runs", body, {{"Cookie", cookie}, {"X-CSRF-Token", csrf + "x"}})
          .status,
      403);
  api::HttpResponse cross = api_->Call("POST", "/api/v1/runs", body,
                                       {{"Cookie", cookie},
                                        {"X-CSRF-Token", csrf},
                                        {"Origin", "https://evil.example"},
                                        {"Host", "127.0.0.1:8080"}});
  EXPECT_EQ(cross.status, 403);
  EXPECT_EQ(ErrorCodeOf(cross), "bad_origin");
  // Same origin with the token: accepted.
  EXPECT_EQ(api_->Call("POST", "/api/v1/runs", body,
                       {{"Cookie", cookie},
                        {"X-CSRF-Token", csrf},
                        {"Origin", "http://127.0.0.1:8080"},
                        {"Host", "127.0.0.1:8080"}})
                .status,
            201);
  // A bearer client sends no Origin and no CSRF token and is not affected.
  EXPECT_EQ(As("admin", "POST", "/api/v1/runs", body).status, 201);
  // Logout ends the session.
  EXPECT_EQ(
      api_->Call("POST", "/api/v1/auth/logout", "", {{"Cookie", cookie}, {"X-CSRF-Token", csrf}})
          .status,
      204);
  EXPECT_EQ(api_->Call("GET", "/api/v1/runs", "", {{"Cookie", cookie}}).status, 401);
}

TEST_F(AuthzTest, CredentialsInTheQueryStringAreRefused) {
  for (const std::string q : {"access_token", "token", "api_key"}) {
    api::HttpResponse r =
        api_->CallAnonymous("GET", "/api/v1/runs?" + q + "=" + api_->admin_token());
    EXPECT_EQ(r.status, 401) << q;
    // Also when a valid header is sent with it.
    EXPECT_EQ(api_->Call("GET", "/api/v1/runs?" + q + "=x").status, 401) << q;
  }
  // A ticket only opens streams.
  auto subject = api_->auth().Authenticate(api_->admin_token());
  ASSERT_TRUE(subject.ok());
  const std::string ticket = api_->tickets().Issue("admin", (*subject)->credential_id, "all");
  EXPECT_EQ(api_->CallAnonymous("GET", "/api/v1/runs?ticket=" + ticket).status, 401);
}

TEST_F(AuthzTest, StreamTicketsAreSingleUseAndBoundToTheirRun) {
  api::HttpResponse a = As("admin", "POST", "/api/v1/runs", R"({"runbook":"diag"})");
  api::HttpResponse b = As("admin", "POST", "/api/v1/runs", R"({"runbook":"diag"})");
  ASSERT_EQ(a.status, 201);
  ASSERT_EQ(b.status, 201);
  const std::string id_a(json::parse(a.body).at("id").as_string());
  const std::string id_b(json::parse(b.body).at("id").as_string());
  api::HttpResponse t =
      As("viewer", "POST", "/api/v1/auth/tickets", R"({"scope":"run:)" + id_a + "\"}");
  ASSERT_EQ(t.status, 201) << t.body;
  const std::string ticket(json::parse(t.body).at("ticket").as_string());
  // Another run's stream: refused (and the ticket is not used up by it).
  EXPECT_EQ(api_->CallAnonymous("GET", "/api/v1/runs/" + id_b + "/stream?ticket=" + ticket).status,
            401);
  api::HttpResponse ok =
      api_->CallAnonymous("GET", "/api/v1/runs/" + id_a + "/stream?ticket=" + ticket);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(ok.stream, nullptr);
  // Replayed: refused.
  api::HttpResponse again =
      api_->CallAnonymous("GET", "/api/v1/runs/" + id_a + "/stream?ticket=" + ticket);
  EXPECT_EQ(again.status, 401) << again.body;
  // A forged one: refused.
  EXPECT_EQ(api_->CallAnonymous("GET", "/api/v1/stream?ticket=amk1.Zm9v.YmFy").status, 401);
  // Expired (tickets live at most 60 s).
  api::HttpResponse t2 = As("viewer", "POST", "/api/v1/auth/tickets", R"({"scope":"all"})");
  ASSERT_EQ(t2.status, 201);
  api_->clock().Advance(std::chrono::seconds(61));
  EXPECT_EQ(
      api_->CallAnonymous("GET", "/api/v1/stream?ticket=" +
                                     std::string(json::parse(t2.body).at("ticket").as_string()))
          .status,
      401);
}

TEST_F(AuthzTest, TokensOfOtherUsersAreInvisibleAndAPasswordChangeIsForcedFirst) {
  api::HttpResponse mine = As("viewer", "POST", "/api/v1/auth/tokens", R"({"name":"ci"})");
  ASSERT_EQ(mine.status, 201) << mine.body;
  const std::string id(json::parse(mine.body).at("id").as_string());
  // The operator cannot revoke (or see) the viewer's token: 404 like a missing one.
  EXPECT_EQ(As("operator", "DELETE", "/api/v1/auth/tokens/" + id).status, 404);
  EXPECT_EQ(As("operator", "GET", "/api/v1/auth/tokens").body.find(id), std::string::npos);
  EXPECT_EQ(As("operator", "GET", "/api/v1/auth/tokens?all=true").status, 403);
  EXPECT_NE(As("admin", "GET", "/api/v1/auth/tokens?all=true").body.find(id), std::string::npos);
  // Tokens are never shown again after creation, nor their hashes.
  EXPECT_EQ(As("viewer", "GET", "/api/v1/auth/tokens").body.find("amt_"), std::string::npos);
  // A viewer cannot grant itself a wider role.
  EXPECT_EQ(As("viewer", "POST", "/api/v1/auth/tokens", R"({"name":"x","role":"admin"})").status,
            403);
  // A user created with must_change_password may only change it.
  ASSERT_EQ(As("admin", "POST", "/api/v1/users",
               R"({"username":"newbie","password":"first-password","role":"viewer"})")
                .status,
            201);
  api::HttpResponse login =
      api_->CallAnonymous("POST", "/api/v1/auth/login",
                          R"({"username":"newbie","password":"first-password","token":true})");
  ASSERT_EQ(login.status, 200) << login.body;
  EXPECT_TRUE(json::parse(login.body).at("must_change_password").as_bool());
  const std::string tok(json::parse(login.body).at("token").as_string());
  api::HttpResponse blocked =
      api_->Call("GET", "/api/v1/runs", "", {{"Authorization", Bearer(tok)}});
  EXPECT_EQ(blocked.status, 403);
  EXPECT_EQ(ErrorCodeOf(blocked), "password_change_required");
  EXPECT_EQ(api_->Call("POST", "/api/v1/auth/password",
                       R"({"current":"first-password","new":"second-password"})",
                       {{"Authorization", Bearer(tok)}})
                .status,
            204);
  EXPECT_EQ(api_->Call("GET", "/api/v1/runs", "", {{"Authorization", Bearer(tok)}}).status, 200);
}

TEST_F(AuthzTest, LoginFailuresSayNothingAndAreRateLimited) {
  api::HttpResponse unknown = api_->CallAnonymous(
      "POST", "/api/v1/auth/login", R"({"username":"nobody","password":"whatever-password"})");
  api::HttpResponse wrong = api_->CallAnonymous(
      "POST", "/api/v1/auth/login", R"({"username":"admin","password":"whatever-password"})");
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.body, wrong.body);
  // Oversized and hostile bodies: a clear 400, no crash.
  EXPECT_EQ(
      api_->CallAnonymous("POST", "/api/v1/auth/login",
                          R"({"username":"admin","password":")" + std::string(5000, 'x') + "\"}")
          .status,
      400);
  EXPECT_EQ(api_->CallAnonymous("POST", "/api/v1/auth/login", "not json").status, 400);
  EXPECT_EQ(api_->CallAnonymous("POST", "/api/v1/auth/login", R"({"username":"admin"})").status,
            400);
  // Per address: a burst of 10, then 429 with Retry-After.
  int limited = 0;
  for (int i = 0; i < 20; ++i) {
    api::HttpResponse r = api_->CallAnonymous(
        "POST", "/api/v1/auth/login",
        R"({"username":"u)" + std::to_string(i) + R"(","password":"x-password"})");
    if (r.status == 429) {
      ++limited;
      EXPECT_NE(HeaderOf(r, "Retry-After"), nullptr);
    }
  }
  EXPECT_GT(limited, 0);
}

TEST_F(AuthzTest, PrivilegedActionsAreAuditedInAVerifiableChain) {
  api::HttpResponse run = As("operator", "POST", "/api/v1/runs", R"({"runbook":"diag"})");
  ASSERT_EQ(run.status, 201);
  const std::string id(json::parse(run.body).at("id").as_string());
  ASSERT_EQ(As("operator", "POST", "/api/v1/runs/" + id + "/cancel").status, 200);
  ASSERT_EQ(api_->CallAnonymous("POST", "/api/v1/auth/login",
                                R"({"username":"admin","password":"not-the-password"})")
                .status,
            401);
  ASSERT_EQ(As("admin", "POST", "/api/v1/users",
               R"({"username":"dave","password":"dave-password","role":"viewer"})")
                .status,
            201);
  ASSERT_EQ(As("admin", "PATCH", "/api/v1/users/dave", R"({"role":"operator"})").status, 200);
  // A denied action leaves nothing behind, not even its audit entry.
  ASSERT_EQ(As("viewer", "POST", "/api/v1/runs", R"({"runbook":"diag"})").status, 403);

  api::HttpResponse list = As("admin", "GET", "/api/v1/audit?limit=1000");
  ASSERT_EQ(list.status, 200) << list.body;
  std::map<std::string, std::vector<json::object>> by_action;
  int64_t last_seq = 0;
  const json::value listed = json::parse(list.body);
  for (const json::value& v : listed.at("items").as_array()) {
    const json::object& e = v.as_object();
    EXPECT_EQ(e.at("seq").as_int64(), last_seq + 1) << "gap in the chain";
    last_seq = e.at("seq").as_int64();
    by_action[std::string(e.at("action").as_string())].push_back(e);
  }
  ASSERT_EQ(by_action["run.create"].size(), 1u);
  EXPECT_EQ(by_action["run.create"][0].at("actor").as_string(), "u-operator");
  EXPECT_EQ(by_action["run.create"][0].at("target").as_string(), "run/" + id);
  ASSERT_EQ(by_action["run.cancel"].size(), 1u);
  bool failed_login = false;
  for (const json::object& e : by_action["auth.login"]) {
    if (e.at("outcome").as_string() == "failed") failed_login = true;
  }
  EXPECT_TRUE(failed_login);
  EXPECT_EQ(by_action["user.create"].size(), 4u);  // three fixture users and dave
  ASSERT_EQ(by_action["user.update"].size(), 1u);
  EXPECT_NE(json::serialize(by_action["user.update"][0].at("details")).find("operator"),
            std::string::npos);
  // No secret ever reaches the trail.
  EXPECT_EQ(list.body.find("dave-password"), std::string::npos);
  EXPECT_EQ(list.body.find("not-the-password"), std::string::npos);
  // The chain verifies; viewers may not read it.
  ASSERT_TRUE(api_->audit().Checkpoint().ok());
  api::HttpResponse verify = As("admin", "GET", "/api/v1/audit/verify");
  ASSERT_EQ(verify.status, 200);
  EXPECT_TRUE(json::parse(verify.body).at("ok").as_bool()) << verify.body;
  EXPECT_EQ(As("viewer", "GET", "/api/v1/audit").status, 403);
  // CSV export quotes and neutralises formula cells.
  api::HttpResponse csv = As("admin", "GET", "/api/v1/audit?format=csv");
  ASSERT_EQ(csv.status, 200);
  EXPECT_NE(csv.body.find("run.create"), std::string::npos);
}

// Opting a runbook out of the sandbox is explicit and on record: the runbook's creation
// and every run of it say "sandbox": "off" in the audit trail.
TEST_F(AuthzTest, SandboxOffIsAuditedWithTheRunbookAndItsRuns) {
  api::HttpResponse made = api_->Call(
      "POST", "/api/v1/runbooks",
      "id: unconfined\nsandbox: off\nsteps:\n  - id: s\n    shell: \"true\"\n",
      {{"Authorization", Bearer(tokens_.at("admin"))}, {"Content-Type", "application/yaml"}});
  ASSERT_EQ(made.status, 201) << made.body;
  api::HttpResponse run = As("admin", "POST", "/api/v1/runs", R"({"runbook":"unconfined"})");
  ASSERT_EQ(run.status, 201) << run.body;
  api::HttpResponse confined = As("admin", "POST", "/api/v1/runs", R"({"runbook":"diag"})");
  ASSERT_EQ(confined.status, 201) << confined.body;
  api::HttpResponse list = As("admin", "GET", "/api/v1/audit?limit=1000");
  ASSERT_EQ(list.status, 200) << list.body;
  std::map<std::string, std::string> details_of;  // target -> details
  const json::value entries = json::parse(list.body);
  for (const json::value& v : entries.at("items").as_array()) {
    details_of[std::string(v.at("target").as_string())] = json::serialize(v.at("details"));
  }
  const std::string run_id(json::parse(run.body).at("id").as_string());
  const std::string confined_id(json::parse(confined.body).at("id").as_string());
  EXPECT_NE(details_of["runbook/unconfined"].find(R"("sandbox":"off")"), std::string::npos)
      << details_of["runbook/unconfined"];
  EXPECT_NE(details_of["run/" + run_id].find(R"("sandbox":"off")"), std::string::npos)
      << details_of["run/" + run_id];
  EXPECT_EQ(details_of["run/" + confined_id].find("sandbox"), std::string::npos)
      << details_of["run/" + confined_id];
}

TEST_F(AuthzTest, EveryResponseCarriesTheSecurityHeaders) {
  for (const std::string target : {"/healthz", "/api/v1/runs", "/nope"}) {
    api::HttpResponse r = api_->Call("GET", target);
    ASSERT_NE(HeaderOf(r, "X-Content-Type-Options"), nullptr) << target;
    EXPECT_EQ(*HeaderOf(r, "X-Content-Type-Options"), "nosniff");
    EXPECT_NE(HeaderOf(r, "Content-Security-Policy"), nullptr) << target;
    EXPECT_NE(HeaderOf(r, "X-Frame-Options"), nullptr) << target;
  }
}

}  // namespace
}  // namespace automan
