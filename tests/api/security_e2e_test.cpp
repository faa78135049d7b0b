// Security end to end, against a real `automan server`: secrets reach steps as
// environment variables and never come back (not from the API, not in any encoding in the
// logs, also when a step prints them split across writes); the master key file; the CLI's
// secrets command reads values from standard input only; stream tickets over real SSE;
// a revoked token ends its open stream.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "api_fixture.h"

namespace automan::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSecret = R"(s3cr3t-P@ss/w+rd "q" \ end)";

// Prints the secret raw, base64, percent-encoded, JSON-escaped, and in two writes.
inline const char* kLeakyYaml = R"YAML(id: leaky
name: Prints its secret in many forms
description: A step that tries hard to leak a secret.
category: testing
secrets: [db_password]
steps:
  - id: leak
    shell: |
      S="$AUTOMAN_SECRET_DB_PASSWORD"
      [ "$S" = 's3cr3t-P@ss/w+rd "q" \ end' ] && echo "env has the secret"
      echo "raw: $S"
      echo "stderr: $S" >&2
      printf 'b64: %s\n' "$(printf %s "$S" | base64 -w0)"
      printf 'url: %s\n' "$(printf %s "$S" | od -An -tx1 | tr -d ' \n' | sed 's/../%&/g')"
      printf 'json: {"pw":"%s"}\n' "$(printf %s "$S" | sed 's/\\/\\\\/g; s/"/\\"/g')"
      printf 'split: %s' "${S%????????????}"; sleep 0.3; printf '%s\n' "${S#??????????????}"
      echo "done"
)YAML";

class SecurityE2eTest : public ApiFixture {};

TEST_F(SecurityE2eTest, SecretsReachStepsAndNeverComeBack) {
  WriteFile(RunbookDir() + "/leaky.yaml", kLeakyYaml);
  StartServer();
  // The master key file: created 0600 beside the store.
  struct stat st {};
  ASSERT_EQ(::stat((Data() + "/master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  json::object put{{"value", kSecret}, {"description", "the database password"}};
  HttpResult r = http().Put("/api/v1/secrets/db_password", json::serialize(put));
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_THAT(r.body, Not(HasSubstr("s3cr3t")));
  r = http().Get("/api/v1/secrets");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("db_password"));
  EXPECT_THAT(r.body, Not(HasSubstr("s3cr3t")));
  // Too short to redact, or a bad name: refused.
  EXPECT_EQ(http().Put("/api/v1/secrets/short", R"({"value":"abc"})").status, 400);
  EXPECT_EQ(http().Put("/api/v1/secrets/bad-name", R"({"value":"abcdef"})").status, 400);

  json::object run = CreateRun("leaky");
  const std::string id = S(run, "id");
  json::object done = WaitRun(id);
  ASSERT_EQ(S(done, "status"), "SUCCESS") << json::serialize(done);
  r = http().Get("/api/v1/runs/" + id + "/logs?limit=1000");
  ASSERT_EQ(r.status, 200);
  const std::string logs = r.body;
  EXPECT_THAT(logs, HasSubstr("env has the secret"));
  EXPECT_THAT(logs, HasSubstr("done"));
  // No form of the secret, nor a long piece of it, survives.
  for (const char* piece : {"s3cr3t", "P@ss", "w+rd", "czNjcjN0", "%73%33%63", "s3cr3t-P@ss"}) {
    EXPECT_THAT(logs, Not(HasSubstr(piece))) << logs;
  }
  EXPECT_THAT(logs, HasSubstr("***"));
  // Nor the server's own log.
  EXPECT_THAT(server_->Log(), Not(HasSubstr("s3cr3t")));

  // Deleted: a run that needs it fails and says why.
  EXPECT_EQ(http().Delete("/api/v1/secrets/db_password").status, 204);
  EXPECT_EQ(http().Delete("/api/v1/secrets/db_password").status, 404);
  json::object again = WaitRun(S(CreateRun("leaky"), "id"));
  EXPECT_EQ(S(again, "status"), "FAILED");
  EXPECT_THAT(S(again, "error"), HasSubstr("db_password"));
}

TEST_F(SecurityE2eTest, TheCliReadsSecretValuesFromStandardInputOnly) {
  WriteFile(RunbookDir() + "/leaky.yaml", kLeakyYaml);
  StartServer();
  const std::string url = "http://127.0.0.1:" + std::to_string(port());
  WriteFile(dir_.File("value"), std::string(kSecret) + "\n");
  const std::string env =
      "env -u AUTOMAN_SERVER HOME=" + dir_.path() + " AUTOMAN_TOKEN=" + server_->token() + " ";
  CommandResult set = RunCommand(env + AutomanBinary() + " secrets set db_password --server " +
                                 url + " --description pw < " + dir_.File("value") + " 2>&1");
  ASSERT_EQ(set.exit_code, 0) << set.out;
  EXPECT_THAT(set.out, HasSubstr("AUTOMAN_SECRET_DB_PASSWORD"));
  EXPECT_THAT(set.out, Not(HasSubstr("s3cr3t")));
  CommandResult list =
      RunCommand(env + AutomanBinary() + " secrets list --server " + url + " 2>&1");
  ASSERT_EQ(list.exit_code, 0) << list.out;
  EXPECT_THAT(list.out, HasSubstr("db_password"));
  EXPECT_THAT(list.out, Not(HasSubstr("s3cr3t")));
  json::object done = WaitRun(S(CreateRun("leaky"), "id"));
  EXPECT_EQ(S(done, "status"), "SUCCESS");
}

// A runbook with a secret parameter that its step checks (by its SHA-256: the value itself
// must appear nowhere in the store) and tries to print.
inline const char* kSecretParamYaml = R"YAML(id: deploy-key
name: Uses a secret parameter
description: Checks and prints its secret parameter.
category: testing
params:
  api_key: {type: secret, required: true}
steps:
  - id: use
    shell: |
      H=$(printf %s "$AUTOMAN_PARAM_API_KEY" | sha256sum | cut -c1-16)
      [ "$H" = afdab1cb642f1b02 ] && echo "param has the value"
      echo "leak: $AUTOMAN_PARAM_API_KEY"
)YAML";

// Bytes of the store's files (the database, its WAL) as one string.
std::string StoreBytes(const std::string& data) {
  std::string all;
  for (const char* f : {"/automan.db", "/automan.db-wal"}) {
    if (std::filesystem::exists(data + f)) all += ReadFile(data + f);
  }
  return all;
}

// A queued run's secret parameter reaches its step, sealed in the store meanwhile: never in
// clear in the database file, never in an answer, never in the logs.
TEST_F(SecurityE2eTest, QueuedSecretParamsReachTheStepAndAreNeverStoredInClear) {
  WriteFile(RunbookDir() + "/deploy-key.yaml", kSecretParamYaml);
  StartServer();
  json::object run = CreateRun("deploy-key", json::object{{"api_key", "k3y-V4lue-9f8e7d"}});
  EXPECT_THAT(json::serialize(run), Not(HasSubstr("k3y-V4lue")));
  json::object done = WaitRun(S(run, "id"));
  ASSERT_EQ(S(done, "status"), "SUCCESS") << json::serialize(done);
  HttpResult r = http().Get("/api/v1/runs/" + S(run, "id"));
  EXPECT_THAT(r.body, HasSubstr("***"));
  EXPECT_THAT(r.body, Not(HasSubstr("k3y-V4lue")));
  r = http().Get("/api/v1/runs/" + S(run, "id") + "/logs?limit=1000");
  EXPECT_THAT(r.body, HasSubstr("param has the value"));
  EXPECT_THAT(r.body, Not(HasSubstr("k3y-V4lue")));

  // The CLI: --secret-param reads standard input; --param refuses a secret.
  const std::string url = "http://127.0.0.1:" + std::to_string(port());
  const std::string cli = "env -u AUTOMAN_SERVER HOME=" + dir_.path() +
                          " AUTOMAN_TOKEN=" + server_->token() + " " + AutomanBinary() +
                          " run deploy-key --server " + url;
  CommandResult refused = RunCommand(cli + " -p api_key=k3y-V4lue-9f8e7d 2>&1");
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_THAT(refused.out, HasSubstr("--secret-param api_key"));
  WriteFile(dir_.File("key"), "k3y-V4lue-9f8e7d\n");
  CommandResult ran =
      RunCommand(cli + " --follow --secret-param api_key < " + dir_.File("key") + " 2>&1");
  EXPECT_EQ(ran.exit_code, 0) << ran.out;
  EXPECT_THAT(ran.out, HasSubstr("param has the value"));
  EXPECT_THAT(ran.out, Not(HasSubstr("k3y-V4lue")));

  // A run that waits (not due for years) holds the value sealed only.
  json::object later = CreateRun("deploy-key", json::object{{"api_key", "k3y-V4lue-9f8e7d"}},
                                 json::object{{"not_before", "2099-01-01T00:00:00Z"}});
  EXPECT_EQ(S(later, "status"), "PENDING") << json::serialize(later);
  StopServer();
  const std::string bytes = StoreBytes(Data());
  ASSERT_FALSE(bytes.empty());
  const size_t at = bytes.find("k3y-V4lue");
  EXPECT_EQ(at, std::string::npos)
      << "the value is in the store in clear: "
      << (at == std::string::npos ? "" : bytes.substr(at < 200 ? 0 : at - 200, 300));
}

// Custom roles from the roles file: listed, assignable, and enforced like built-in ones
// (categories included); a bad file stops the server with where and why.
TEST_F(SecurityE2eTest, CustomRolesFromTheRolesFileAreEnforced) {
  WriteFile(dir_.File("bad-roles.yaml"), "roles:\n  x: {permissions: [runs.fly]}\n");
  ServerProcess bad(Data(), {"--roles-file", dir_.File("bad-roles.yaml")}, dir_.File("bad.log"),
                    seconds(20));
  EXPECT_FALSE(bad.started());
  EXPECT_THAT(bad.Log(), HasSubstr("bad-roles.yaml:2:3"));
  EXPECT_THAT(bad.Log(), HasSubstr("runs.fly"));

  WriteFile(dir_.File("roles.yaml"), R"(roles:
  diag:
    description: Runs diagnostics only
    permissions: [runbooks.read, runs.read, runs.execute]
    categories: [testing]
)");
  StartServer({"--roles-file", dir_.File("roles.yaml")});
  HttpResult roles = http().Get("/api/v1/roles");
  ASSERT_EQ(roles.status, 200);
  EXPECT_THAT(roles.body, HasSubstr("Runs diagnostics only"));
  ASSERT_EQ(
      http()
          .Post(
              "/api/v1/users",
              R"({"username":"dora","password":"dora-password","role":"diag","must_change_password":false})")
          .status,
      201);
  HttpResult login = http().Post("/api/v1/auth/login",
                                 R"({"username":"dora","password":"dora-password","token":true})",
                                 {{"Authorization", ""}});
  ASSERT_EQ(login.status, 200) << login.Describe();
  const Headers as_dora = {{"Authorization", "Bearer " + S(JsonObject(login), "token")}};
  // runs.execute within its category (the fixture's runbooks are `testing`)...
  HttpResult mine = http().Post("/api/v1/runs", R"({"runbook":"lines","params":{"n":1}})", as_dora);
  EXPECT_EQ(mine.status, 201) << mine.Describe();
  // ...but not outside it, nor anything its permissions do not name.
  HttpResult other =
      http().Post("/api/v1/runs", R"({"runbook":"form","params":{"service":"web"}})", as_dora);
  EXPECT_EQ(other.status, 403) << other.Describe();
  EXPECT_THAT(other.body, HasSubstr("testing"));
  EXPECT_EQ(http().Get("/api/v1/audit", as_dora).status, 403);
  EXPECT_EQ(http().Get("/api/v1/users", as_dora).status, 403);
}

TEST_F(SecurityE2eTest, StreamTicketsOpenAStreamOnceAndRevocationEndsIt) {
  StartServer();
  const std::string gate = Gate();
  json::object run = CreateRun("gated", json::object{{"gate", gate}});
  const std::string id = S(run, "id");
  // A ticket for this run opens its stream without any header, once.
  HttpResult t = http().Post("/api/v1/auth/tickets", R"({"scope":"run:)" + id + "\"}");
  ASSERT_EQ(t.status, 201) << t.Describe();
  const std::string ticket = S(JsonObject(t), "ticket");
  {
    SseReader ok(port(), "/api/v1/runs/" + id + "/stream?ticket=" + ticket, "",
                 {{"Authorization", ""}});
    EXPECT_EQ(ok.head().status, 200) << ok.head().Describe();
  }
  SseReader replay(port(), "/api/v1/runs/" + id + "/stream?ticket=" + ticket, "",
                   {{"Authorization", ""}});
  EXPECT_EQ(replay.head().status, 401);
  SseReader none(port(), "/api/v1/runs/" + id + "/stream", "", {{"Authorization", ""}});
  EXPECT_EQ(none.head().status, 401);

  // A token's open stream ends within seconds of the token's revocation.
  HttpResult made = http().Post("/api/v1/auth/tokens", R"({"name":"watcher","role":"viewer"})");
  ASSERT_EQ(made.status, 201) << made.Describe();
  const std::string token = S(JsonObject(made), "token");
  const std::string token_id = S(JsonObject(made), "id");
  SseReader watch(port(), "/api/v1/stream", "", {{"Authorization", "Bearer " + token}});
  ASSERT_EQ(watch.head().status, 200) << watch.head().Describe();
  ASSERT_EQ(http().Delete("/api/v1/auth/tokens/" + token_id).status, 204);
  bool ended = false;
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (!ended && std::chrono::steady_clock::now() < deadline) {
    auto ev = watch.Next(seconds(1));
    if (watch.ended() || (ev && ev->event == "end")) ended = true;
  }
  EXPECT_TRUE(ended) << "the stream of a revoked token is still open";
  WriteFile(gate, "");
  WaitRun(id);
}

TEST_F(SecurityE2eTest, AuditVerifyFindsATamperedStoreFile) {
  if (RunCommand("command -v sqlite3 >/dev/null").exit_code != 0) {
    GTEST_SKIP() << "the sqlite3 shell is not installed";
  }
  StartServer();
  for (int i = 0; i < 3; ++i) CreateRun("lines", json::object{{"n", 1}});
  ASSERT_EQ(http()
                .Post("/api/v1/users",
                      R"({"username":"erin","password":"erin-password","role":"viewer"})")
                .status,
            201);
  HttpResult online = http().Get("/api/v1/audit/verify");
  ASSERT_EQ(online.status, 200);
  EXPECT_TRUE(JsonObject(online).at("ok").as_bool()) << online.body;
  StopServer();
  const std::string verify = AutomanBinary() + " audit verify --data " + Data() + " 2>&1";
  CommandResult clean = RunCommand(verify);
  EXPECT_EQ(clean.exit_code, 0) << clean.out;
  EXPECT_THAT(clean.out, HasSubstr("audit trail OK"));
  // Someone with the file but not the key rewrites who created erin.
  ASSERT_EQ(RunCommand("sqlite3 " + Data() +
                       "/automan.db \"DROP TRIGGER IF EXISTS audit_no_update; "
                       "DROP TRIGGER IF EXISTS audit_no_delete; "
                       "UPDATE audit SET actor = 'mallory' WHERE action = 'user.create';\"")
                .exit_code,
            0);
  CommandResult tampered = RunCommand(verify);
  EXPECT_EQ(tampered.exit_code, 1) << tampered.out;
  EXPECT_THAT(tampered.out, HasSubstr("BROKEN: modified"));
  // Without the key file the store is refused, not silently re-keyed.
  std::filesystem::rename(Data() + "/master.key", dir_.File("master.key.saved"));
  CommandResult nokey = RunCommand(verify);
  EXPECT_NE(nokey.exit_code, 0);
  EXPECT_THAT(nokey.out, HasSubstr("master key file"));
  std::unique_ptr<ServerProcess> refused =
      std::make_unique<ServerProcess>(Data(), std::vector<std::string>{"--runbooks", RunbookDir()},
                                      dir_.File("refused.log"), seconds(20));
  EXPECT_FALSE(refused->started());
  EXPECT_THAT(refused->Log(), HasSubstr("master key file"));
}

TEST_F(SecurityE2eTest, ForwardedForIsBelievedOnlyFromTrustedProxies) {
  StartServer({"--trusted-proxies", "127.0.0.1"});
  // Through the trusted proxy (the test client is 127.0.0.1): the forwarded client's
  // failed login is recorded with its address; an untrusted hop on the left is ignored.
  HttpResult r = http().Post("/api/v1/auth/login", R"({"username":"admin","password":"nope-nope"})",
                             {{"Authorization", ""}, {"X-Forwarded-For", "6.6.6.6, 203.0.113.9"}});
  EXPECT_EQ(r.status, 401);
  HttpResult audit = http().Get("/api/v1/audit?action=auth.login");
  ASSERT_EQ(audit.status, 200);
  EXPECT_THAT(audit.body, HasSubstr("203.0.113.9"));
  EXPECT_THAT(audit.body, Not(HasSubstr("6.6.6.6")));
}

TEST_F(SecurityE2eTest, ForwardedForFromAnyoneElseIsIgnored) {
  StartServer();
  HttpResult r = http().Post("/api/v1/auth/login", R"({"username":"admin","password":"nope-nope"})",
                             {{"Authorization", ""}, {"X-Forwarded-For", "203.0.113.9"}});
  EXPECT_EQ(r.status, 401);
  HttpResult audit = http().Get("/api/v1/audit?action=auth.login");
  ASSERT_EQ(audit.status, 200);
  EXPECT_THAT(audit.body, Not(HasSubstr("203.0.113.9")));
  EXPECT_THAT(audit.body, HasSubstr("127.0.0.1"));
}

}  // namespace
}  // namespace automan::testing
