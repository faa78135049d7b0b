// The REST API v1 end to end: a real `automan server` process per test, driven over HTTP
// with tests/support/http_client.h. Covers the system routes, runbooks (catalog, API-managed,
// hot reload, validate, dry-run), runs (create, idempotency, batches, lists and cursors,
// details, logs, cancel, retry, delete, secrets), schedules and cron previews, the queue
// and dead-letter queue, analytics, metrics and graceful shutdown.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <set>
#include <thread>

#include "api/api_fixture.h"

namespace automan::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class ApiE2eTest : public ApiFixture {};

std::vector<std::string> Ids(const json::array& items, std::string_view key = "id") {
  std::vector<std::string> out;
  for (const auto& v : items) out.push_back(S(O(v), key));
  return out;
}

// ------------------------------------------------------------------ system routes

TEST_F(ApiE2eTest, SystemRoutesAnswer) {
  StartServer({"--workers", "0"});
  HttpResult r = http().Get("/healthz");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(S(JsonObject(r), "status"), "ok");
  EXPECT_THAT(*r.Header("content-type"), HasSubstr("application/json"));

  r = http().Get("/readyz");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(S(JsonObject(r), "status"), "ready");

  r = http().Get("/api/v1/version");
  ASSERT_EQ(r.status, 200) << r.Describe();
  json::object v = JsonObject(r);
  EXPECT_FALSE(S(v, "version").empty());
  EXPECT_EQ(S(v, "api"), "v1");
  EXPECT_GT(I(v, "store_schema"), 0);

  r = http().Get("/api/v1/openapi.json");
  ASSERT_EQ(r.status, 200) << r.Describe();
  json::object doc = JsonObject(r);
  EXPECT_EQ(S(doc, "openapi").substr(0, 3), "3.1");
  const json::object paths = O(doc["paths"]);
  for (const char* p : {"/api/v1/runs", "/api/v1/runs/{id}", "/api/v1/runbooks",
                        "/api/v1/schedules", "/api/v1/dlq", "/healthz"}) {
    EXPECT_TRUE(paths.contains(p)) << p;
  }
}

TEST_F(ApiE2eTest, UnknownPathsAnswer404JsonAndWrongMethods405WithAllow) {
  StartServer({"--workers", "0"});
  for (const char* path : {"/api/v1/nope", "/api/v2/runs", "/api/v1/runs/x/y/z", "/nope"}) {
    HttpResult r = http().Get(path);
    EXPECT_EQ(r.status, 404) << path << ": " << r.Describe();
    json::object e = ErrorOf(r);
    EXPECT_EQ(S(e, "code"), "not_found") << path;
    EXPECT_THAT(S(e, "message"), HasSubstr(path));
    EXPECT_THAT(*r.Header("content-type"), HasSubstr("application/json"));
  }
  HttpResult r = http().Request("PATCH", "/api/v1/runs", "{}");
  ASSERT_EQ(r.status, 405) << r.Describe();
  ASSERT_NE(r.Header("allow"), nullptr);
  EXPECT_THAT(*r.Header("allow"), HasSubstr("GET"));
  EXPECT_THAT(*r.Header("allow"), HasSubstr("POST"));
  EXPECT_EQ(S(ErrorOf(r), "code"), "method_not_allowed");

  r = http().Delete("/healthz");
  ASSERT_EQ(r.status, 405) << r.Describe();
  EXPECT_EQ(*r.Header("allow"), "GET");

  r = http().Post("/api/v1/runbooks/host-info", "{}");
  ASSERT_EQ(r.status, 405) << r.Describe();
  EXPECT_THAT(*r.Header("allow"), HasSubstr("PUT"));
  EXPECT_THAT(*r.Header("allow"), HasSubstr("DELETE"));
}

// ------------------------------------------------------------------ runbooks

TEST_F(ApiE2eTest, RunbooksListAndFilter) {
  StartServer({"--workers", "0"});
  HttpResult r = http().Get("/api/v1/runbooks");
  ASSERT_EQ(r.status, 200) << r.Describe();
  json::object list = JsonObject(r);
  EXPECT_THAT(Ids(A(list, "items")), UnorderedElementsAre("host-info", "lines", "gated", "sleeper",
                                                          "always-fails", "form", "twostep"));
  EXPECT_TRUE(list["next_cursor"].is_null());
  for (const auto& v : A(list, "items")) {
    json::object rb = O(v);
    if (S(rb, "id") == "host-info") {
      EXPECT_EQ(S(rb, "origin"), "builtin");
      EXPECT_EQ(S(rb, "category"), "diagnostics");
    } else {
      EXPECT_EQ(S(rb, "origin"), "directory") << S(rb, "id");
      EXPECT_EQ(S(rb, "source"), RunbookDir() + "/" + S(rb, "id") + ".yaml");
    }
    EXPECT_THAT(S(rb, "version"), ::testing::StartsWith("sha256:"));
  }

  auto ids = [&](const std::string& query) {
    HttpResult r = http().Get("/api/v1/runbooks?" + query);
    EXPECT_EQ(r.status, 200) << query << ": " << r.Describe();
    return Ids(A(JsonObject(r), "items"));
  };
  EXPECT_THAT(ids("category=testing"),
              UnorderedElementsAre("lines", "gated", "sleeper", "twostep"));
  EXPECT_THAT(ids("category=chaos"), UnorderedElementsAre("always-fails"));
  EXPECT_THAT(ids("tag=failure"), UnorderedElementsAre("always-fails"));
  EXPECT_THAT(ids("tag=read-only"), UnorderedElementsAre("host-info"));
  EXPECT_THAT(ids("tag=test&category=testing&q=gate"), UnorderedElementsAre("gated"));
  // q looks in the id, name and description, case-insensitively.
  EXPECT_THAT(ids("q=SLEEPS"), UnorderedElementsAre("sleeper"));
  EXPECT_THAT(ids("q=host"), UnorderedElementsAre("host-info"));
  EXPECT_THAT(ids("q=every+parameter"), UnorderedElementsAre("form"));
  EXPECT_TRUE(ids("q=no-such-text").empty());
  EXPECT_TRUE(ids("category=nope").empty());

  // Pages of 2 walk the whole catalog once, in id order.
  std::vector<std::string> walked;
  std::string cursor;
  for (int page = 0; page < 20; ++page) {
    HttpResult p =
        http().Get("/api/v1/runbooks?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(p.status, 200) << p.Describe();
    json::object o = JsonObject(p);
    for (const auto& id : Ids(A(o, "items"))) walked.push_back(id);
    if (o["next_cursor"].is_null()) break;
    cursor = S(o, "next_cursor");
  }
  EXPECT_EQ(walked, (std::vector<std::string>{"always-fails", "form", "gated", "host-info", "lines",
                                              "sleeper", "twostep"}));
  EXPECT_EQ(http().Get("/api/v1/runbooks?limit=0").status, 400);
}

TEST_F(ApiE2eTest, RunbookDetailHasAJsonSchemaOfItsParams) {
  StartServer({"--workers", "0"});
  HttpResult r = http().Get("/api/v1/runbooks/form");
  ASSERT_EQ(r.status, 200) << r.Describe();
  json::object rb = JsonObject(r);
  EXPECT_EQ(S(rb, "id"), "form");
  EXPECT_EQ(I(rb, "steps_count"), 1);
  EXPECT_EQ(S(O(A(rb, "steps").at(0)), "id"), "show");
  EXPECT_THAT(S(rb, "yaml"), HasSubstr("id: form"));

  json::object schema = O(rb["params_schema"]);
  EXPECT_EQ(S(schema, "$schema"), "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(S(schema, "type"), "object");
  ASSERT_TRUE(schema["additionalProperties"].is_bool());
  EXPECT_FALSE(schema["additionalProperties"].as_bool());
  EXPECT_EQ(A(schema, "required"), json::array{"service"});
  json::object props = O(schema["properties"]);
  EXPECT_EQ(props.size(), 6u);

  json::object service = O(props["service"]);
  EXPECT_EQ(S(service, "type"), "string");
  EXPECT_EQ(S(service, "pattern"), "^(?:[a-z][a-z0-9-]*)$");
  EXPECT_EQ(S(service, "description"), "The service to act on.");
  EXPECT_FALSE(service.contains("default"));

  json::object replicas = O(props["replicas"]);
  EXPECT_EQ(S(replicas, "type"), "integer");
  EXPECT_EQ(replicas["default"], json::value(2));
  json::object ratio = O(props["ratio"]);
  EXPECT_EQ(S(ratio, "type"), "number");
  EXPECT_EQ(ratio["default"], json::value(0.5));
  json::object verbose = O(props["verbose"]);
  EXPECT_EQ(S(verbose, "type"), "boolean");
  EXPECT_EQ(verbose["default"], json::value(false));
  json::object env = O(props["env"]);
  EXPECT_EQ(S(env, "type"), "string");
  EXPECT_EQ(A(env, "enum"), (json::array{"dev", "staging", "prod"}));
  EXPECT_EQ(S(env, "default"), "dev");

  json::object token = O(props["token"]);
  EXPECT_EQ(S(token, "type"), "string");
  EXPECT_EQ(S(token, "format"), "password");
  EXPECT_EQ(token["writeOnly"], json::value(true));
  EXPECT_FALSE(token.contains("default"));

  r = http().Get("/api/v1/runbooks/no-such-runbook");
  EXPECT_EQ(r.status, 404) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("no-such-runbook"));
}

const char* kApiOneYaml = R"(id: api-one
name: API one
description: Made through the API.
category: api-made
tags: [api]
steps:
  - id: hi
    shell: echo "hi from api-one"
)";

TEST_F(ApiE2eTest, ApiManagedRunbooksCreateReplaceDelete) {
  StartServer({"--workers", "0"});
  // Raw YAML with a YAML content type.
  HttpResult r =
      http().Post("/api/v1/runbooks", kApiOneYaml, {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(r.status, 201) << r.Describe();
  json::object one = JsonObject(r);
  EXPECT_EQ(S(one, "id"), "api-one");
  EXPECT_EQ(S(one, "origin"), "api");
  EXPECT_EQ(S(one, "name"), "API one");
  const std::string v1 = S(one, "version");
  EXPECT_TRUE(std::filesystem::exists(Data() + "/api-runbooks/api-one.yaml"));

  // The JSON form {"yaml": ...}.
  std::string two = kApiOneYaml;
  two.replace(two.find("api-one"), 7, "api-two");
  r = http().Post("/api/v1/runbooks", json::serialize(json::object{{"yaml", two}}));
  ASSERT_EQ(r.status, 201) << r.Describe();
  EXPECT_EQ(S(JsonObject(r), "id"), "api-two");
  r = http().Get("/api/v1/runbooks?category=api-made");
  EXPECT_THAT(Ids(A(JsonObject(r), "items")), UnorderedElementsAre("api-one", "api-two"));

  // Duplicates answer 409 naming where the id is defined.
  r = http().Post("/api/v1/runbooks", kApiOneYaml, {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(r.status, 409) << r.Describe();
  json::object e = ErrorOf(r);
  EXPECT_EQ(S(e, "code"), "already_exists");
  EXPECT_THAT(S(e, "message"), HasSubstr("api-one"));
  EXPECT_THAT(S(e, "message"), HasSubstr("api"));
  std::string dup_of_dir = kApiOneYaml;
  dup_of_dir.replace(dup_of_dir.find("api-one"), 7, "lines");
  r = http().Post("/api/v1/runbooks", dup_of_dir, {{"Content-Type", "text/yaml"}});
  ASSERT_EQ(r.status, 409) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr(RunbookDir() + "/lines.yaml"));
  std::string dup_of_builtin = kApiOneYaml;
  dup_of_builtin.replace(dup_of_builtin.find("api-one"), 7, "host-info");
  r = http().Post("/api/v1/runbooks", dup_of_builtin, {{"Content-Type", "text/yaml"}});
  ASSERT_EQ(r.status, 409) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("built-in"));

  // Invalid YAML: 400 with the diagnostics.
  r = http().Post("/api/v1/runbooks", "id: broken\nname: x\nstpes: []\n",
                  {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(r.status, 400) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("stpes"));
  r = http().Post("/api/v1/runbooks", "", {{"Content-Type", "application/yaml"}});
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/runbooks", R"({"yaml": 5})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/runbooks", R"({"yml": "id: x"})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("yml"));

  // Replace.
  std::string changed = kApiOneYaml;
  changed.replace(changed.find("API one"), 7, "API one, v2");
  r = http().Put("/api/v1/runbooks/api-one", changed, {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(S(JsonObject(r), "name"), "API one, v2");
  EXPECT_NE(S(JsonObject(r), "version"), v1);
  EXPECT_EQ(S(JsonObject(http().Get("/api/v1/runbooks/api-one")), "name"), "API one, v2");
  r = http().Put("/api/v1/runbooks/api-two", changed, {{"Content-Type", "application/yaml"}});
  EXPECT_EQ(r.status, 400) << "the YAML's id is not the URL's: " << r.Describe();
  r = http().Put("/api/v1/runbooks/lines", dup_of_dir, {{"Content-Type", "application/yaml"}});
  EXPECT_EQ(r.status, 409) << "directory runbooks are changed in their file: " << r.Describe();
  std::string ghost = kApiOneYaml;
  ghost.replace(ghost.find("api-one"), 7, "ghost");
  r = http().Put("/api/v1/runbooks/ghost", ghost, {{"Content-Type", "application/yaml"}});
  EXPECT_EQ(r.status, 404) << r.Describe();

  // Delete.
  r = http().Delete("/api/v1/runbooks/api-two");
  EXPECT_EQ(r.status, 204) << r.Describe();
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(http().Get("/api/v1/runbooks/api-two").status, 404);
  EXPECT_FALSE(std::filesystem::exists(Data() + "/api-runbooks/api-two.yaml"));
  EXPECT_EQ(http().Delete("/api/v1/runbooks/api-two").status, 404);
  r = http().Delete("/api/v1/runbooks/host-info");
  ASSERT_EQ(r.status, 409) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("built-in"));
  EXPECT_EQ(http().Get("/api/v1/runbooks/host-info").status, 200);
  r = http().Delete("/api/v1/runbooks/lines");
  EXPECT_EQ(r.status, 409) << r.Describe();
  EXPECT_TRUE(std::filesystem::exists(RunbookDir() + "/lines.yaml"));

  // API-managed runbooks survive a restart.
  StopServer();
  StartServer({"--workers", "0"});
  r = http().Get("/api/v1/runbooks/api-one");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(S(JsonObject(r), "name"), "API one, v2");
  EXPECT_EQ(S(JsonObject(r), "origin"), "api");
  EXPECT_EQ(http().Get("/api/v1/runbooks/api-two").status, 404);
}

TEST_F(ApiE2eTest, ValidateAnswersDiagnosticsWithLineAndColumn) {
  StartServer({"--workers", "0"});
  HttpResult r = http().Post("/api/v1/runbooks/validate",
                             "id: broken\nname: Broken\nstpes:\n  - id: a\n    shell: echo\n",
                             {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  json::object v = JsonObject(r);
  EXPECT_EQ(v["valid"], json::value(false));
  ASSERT_FALSE(A(v, "diagnostics").empty()) << r.Describe();
  bool found = false;
  for (const auto& d : A(v, "diagnostics")) {
    json::object x = O(d);
    if (S(x, "message").find("stpes") == std::string::npos) continue;
    found = true;
    EXPECT_EQ(I(x, "line"), 3);
    EXPECT_EQ(I(x, "column"), 1);
    EXPECT_THAT(S(x, "message"), HasSubstr("steps"));  // did you mean
  }
  EXPECT_TRUE(found) << r.Describe();

  // A type error deeper down, through the JSON form.
  r = http().Post(
      "/api/v1/runbooks/validate",
      json::serialize(json::object{{"yaml",
                                    "id: ok\nname: Ok\nsteps:\n  - id: a\n    shell: echo\n"
                                    "    timeout: 30\n"}}));
  ASSERT_EQ(r.status, 200) << r.Describe();
  v = JsonObject(r);
  EXPECT_EQ(v["valid"], json::value(false));
  ASSERT_EQ(A(v, "diagnostics").size(), 1u) << r.Describe();
  json::object d = O(A(v, "diagnostics")[0]);
  EXPECT_EQ(I(d, "line"), 6);
  EXPECT_EQ(I(d, "column"), 14);
  EXPECT_THAT(S(d, "message"), HasSubstr("unit"));

  r = http().Post("/api/v1/runbooks/validate", kLinesYaml, {{"Content-Type", "text/plain"}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  v = JsonObject(r);
  EXPECT_EQ(v["valid"], json::value(true));
  EXPECT_EQ(S(v, "id"), "lines");
  EXPECT_THAT(S(v, "version"), ::testing::StartsWith("sha256:"));
  EXPECT_TRUE(A(v, "diagnostics").empty());
  // Validating creates nothing.
  EXPECT_EQ(http().Get("/api/v1/runbooks/broken").status, 404);
  EXPECT_EQ(http().Get("/api/v1/runbooks/ok").status, 404);
}

TEST_F(ApiE2eTest, DryRunShowsThePlanAndRecordsNothing) {
  StartServer();
  HttpResult r = http().Post("/api/v1/runbooks/form/dry-run",
                             R"({"params":{"service":"web","replicas":3,"token":"s3cr3t-value"}})");
  ASSERT_EQ(r.status, 200) << r.Describe();
  json::object plan = JsonObject(r);
  EXPECT_EQ(plan["dry_run"], json::value(true));
  EXPECT_EQ(S(plan, "runbook"), "form");
  json::object params = O(plan["params"]);
  EXPECT_EQ(S(params, "service"), "web");
  EXPECT_EQ(S(params, "replicas"), "3");
  EXPECT_EQ(S(params, "env"), "dev");
  EXPECT_EQ(S(params, "token"), "(secret: token)");
  ASSERT_EQ(A(plan, "steps").size(), 1u);
  json::object env = O(O(A(plan, "steps")[0])["env"]);
  EXPECT_EQ(S(env, "AUTOMAN_PARAM_SERVICE"), "web");
  EXPECT_EQ(S(env, "AUTOMAN_PARAM_REPLICAS"), "3");
  EXPECT_EQ(r.body.find("s3cr3t-value"), std::string::npos) << "the secret leaked: " << r.body;

  r = http().Post("/api/v1/runbooks/form/dry-run", R"({"params":{"replicas":3}})");
  EXPECT_EQ(r.status, 400) << "service is required: " << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("service"));
  r = http().Post("/api/v1/runbooks/form/dry-run", R"({"params":{"service":"Web!"}})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/runbooks/no-such/dry-run", "");
  EXPECT_EQ(r.status, 404) << r.Describe();
  r = http().Post("/api/v1/runbooks/lines/dry-run", "");
  EXPECT_EQ(r.status, 200) << "no body: the defaults: " << r.Describe();

  // Nothing was run or recorded.
  r = http().Get("/api/v1/runs");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_TRUE(A(JsonObject(r), "items").empty()) << r.Describe();
  EXPECT_EQ(RunCount(), 0);
}

TEST_F(ApiE2eTest, HotReloadPicksUpRunbookFilesWhileRunning) {
  StartServer({"--workers", "0"});
  ASSERT_EQ(http().Get("/api/v1/runbooks/hot").status, 404);
  std::string hot = kLinesYaml;
  hot.replace(hot.find("id: lines"), 9, "id: hot");
  hot.replace(hot.find("Print lines"), 11, "Hot one");
  WriteFile(RunbookDir() + "/hot.yaml", hot);
  EXPECT_TRUE(
      WaitFor([&] { return http().Get("/api/v1/runbooks/hot").status == 200; }, seconds(30)))
      << server_->Log();
  // It can be run at once.
  json::object run = CreateRun("hot", {{"n", 2}});
  EXPECT_EQ(S(run, "runbook"), "hot");

  // A change is picked up.
  std::string hot2 = hot;
  hot2.replace(hot2.find("Hot one"), 7, "Hot two");
  WriteFile(RunbookDir() + "/hot.yaml", hot2);
  EXPECT_TRUE(WaitFor(
      [&] { return S(JsonObject(http().Get("/api/v1/runbooks/hot")), "name") == "Hot two"; },
      seconds(30)));
  // So is a removal.
  std::filesystem::remove(RunbookDir() + "/hot.yaml");
  EXPECT_TRUE(
      WaitFor([&] { return http().Get("/api/v1/runbooks/hot").status == 404; }, seconds(30)));
}

TEST_F(ApiE2eTest, HotReloadWithAConflictKeepsThePreviousCatalog) {
  StartServer({"--workers", "0"});
  HttpResult r =
      http().Post("/api/v1/runbooks", kApiOneYaml, {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(r.status, 201) << r.Describe();
  // One reload brings a new valid file and a file that clashes with api-one: refused whole.
  // The clash is written first: whenever a reload runs, it sees it (and fresh.yaml or not).
  std::string clash = kApiOneYaml;
  clash.replace(clash.find("API one"), 7, "Impostor");
  WriteFile(RunbookDir() + "/api-one.yaml", clash);
  std::string fresh = kLinesYaml;
  fresh.replace(fresh.find("id: lines"), 9, "id: fresh");
  WriteFile(RunbookDir() + "/fresh.yaml", fresh);
  ASSERT_TRUE(WaitFor([&] { return server_->Log().find("reload refused") != std::string::npos; },
                      seconds(30)))
      << server_->Log();
  const std::string log = server_->Log();
  EXPECT_THAT(log, HasSubstr(RunbookDir() + "/api-one.yaml"));
  EXPECT_EQ(http().Get("/api/v1/runbooks/fresh").status, 404) << "the previous catalog stays";
  json::object one = JsonObject(http().Get("/api/v1/runbooks/api-one"));
  EXPECT_EQ(S(one, "name"), "API one");
  EXPECT_EQ(S(one, "origin"), "api");
  EXPECT_EQ(http().Get("/api/v1/runbooks/lines").status, 200);

  // Fixing the directory lets the next reload through.
  std::filesystem::remove(RunbookDir() + "/api-one.yaml");
  EXPECT_TRUE(
      WaitFor([&] { return http().Get("/api/v1/runbooks/fresh").status == 200; }, seconds(30)));
  EXPECT_EQ(S(JsonObject(http().Get("/api/v1/runbooks/api-one")), "origin"), "api");
}

// DISABLED: fails today: the directory's runbooks never appear. api/catalog.cpp
// ReloadIfChanged stores the new fingerprint before loading ("report a broken state
// once"), so after a refused reload nothing retries until a file in the directory changes
// again, even when the clash is removed on the API side. Fix: remember that the last reload
// was refused and retry it after PutApiRunbook/DeleteApiRunbook (e.g. clear
// dir_fingerprint_ there), logging only when the outcome changes.
TEST_F(ApiE2eTest, ResolvingAReloadConflictThroughTheApiLoadsTheDirectory) {
  StartServer({"--workers", "0"});
  ASSERT_EQ(
      http().Post("/api/v1/runbooks", kApiOneYaml, {{"Content-Type", "application/yaml"}}).status,
      201);
  std::string clash = kApiOneYaml;
  clash.replace(clash.find("API one"), 7, "From the directory");
  WriteFile(RunbookDir() + "/api-one.yaml", clash);
  ASSERT_TRUE(WaitFor([&] { return server_->Log().find("reload refused") != std::string::npos; },
                      seconds(30)));
  // The operator resolves the clash on the API side: the directory is valid as it is and
  // must be loaded, although none of its files changed since the refused reload.
  ASSERT_EQ(http().Delete("/api/v1/runbooks/api-one").status, 204);
  json::object one;
  EXPECT_TRUE(WaitFor(
      [&] {
        one = JsonObject(http().Get("/api/v1/runbooks/api-one"));
        return S(one, "origin") == "directory";
      },
      seconds(15)))
      << "the directory's api-one never appeared: " << json::serialize(one);
  EXPECT_EQ(S(one, "name"), "From the directory");
}

TEST_F(ApiE2eTest, FileSchedulesAreShownAndOnlyPausedThroughTheApi) {
  StartServer({"--workers", "0"});
  std::string yaml = kLinesYaml;
  yaml.replace(yaml.find("id: lines"), 9, "id: filed");
  yaml += "schedules:\n  - id: nightly\n    cron: \"30 2 * * *\"\n    tz: Europe/Berlin\n";
  WriteFile(RunbookDir() + "/filed.yaml", yaml);
  HttpResult r;
  ASSERT_TRUE(WaitFor(
      [&] {
        r = http().Get("/api/v1/schedules/filed/nightly");
        return r.status == 200;
      },
      seconds(30)))
      << r.Describe() << "\n"
      << server_->Log();
  json::object s = JsonObject(r);
  EXPECT_NE(S(s, "source"), "api");
  EXPECT_FALSE(S(s, "next_fire_at").empty());
  r = http().Put("/api/v1/schedules/filed/nightly", R"({"cron":"0 4 * * *"})");
  EXPECT_EQ(r.status, 409) << "changed in its file: " << r.Describe();
  r = http().Delete("/api/v1/schedules/filed/nightly");
  EXPECT_EQ(r.status, 409) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("pause"));
  r = http().Post("/api/v1/schedules/filed/nightly/pause");
  EXPECT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(S(JsonObject(r), "state"), "paused");
  r = http().Post("/api/v1/schedules", R"({"runbook":"filed","id":"nightly","cron":"0 4 * * *"})");
  EXPECT_EQ(r.status, 409) << r.Describe();
}

TEST_F(ApiE2eTest, ADirectoryRunbookClashingWithAnApiOneRefusesToStart) {
  StartServer({"--workers", "0"});
  HttpResult r =
      http().Post("/api/v1/runbooks", kApiOneYaml, {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(r.status, 201) << r.Describe();
  StopServer();
  WriteFile(RunbookDir() + "/clash.yaml", kApiOneYaml);
  ServerProcess second(Data(), {"--runbooks", RunbookDir()}, dir_.File("clash.log"));
  EXPECT_FALSE(second.started());
  EXPECT_EQ(second.ExitCode(seconds(30)), 2) << second.Log();
  const std::string log = second.Log();
  EXPECT_THAT(log, HasSubstr("api-one"));
  EXPECT_THAT(log, HasSubstr(RunbookDir() + "/clash.yaml"));
  EXPECT_THAT(log, HasSubstr("(api)"));
  EXPECT_THAT(log, HasSubstr("defined twice"));
}

// ------------------------------------------------------------------ runs

TEST_F(ApiE2eTest, CreateRunIdempotencyAndBadRequests) {
  StartServer({"--workers", "0"});
  json::object run = CreateRun("lines", {{"n", 3}}, {{"idempotency_key", "k-1"}, {"priority", 7}});
  const std::string id = S(run, "id");
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(S(run, "runbook"), "lines");
  EXPECT_EQ(S(run, "status"), "PENDING");
  EXPECT_EQ(S(run, "trigger"), "api");
  EXPECT_EQ(I(run, "priority"), 7);
  EXPECT_EQ(O(run["params"])["n"], json::value(3));
  EXPECT_EQ(S(run, "idempotency_key"), "k-1");

  HttpResult r = http().Post("/api/v1/runs", R"({"runbook":"lines","params":{"n":3},
                                               "idempotency_key":"k-1"})");
  ASSERT_EQ(r.status, 200) << "the same key answers the first run: " << r.Describe();
  EXPECT_EQ(S(JsonObject(r), "id"), id);
  EXPECT_EQ(RunCount(), 1);

  r = http().Post("/api/v1/runs", R"({"runbook":"lines","params":{"n":"many"}})");
  ASSERT_EQ(r.status, 400) << r.Describe();
  EXPECT_EQ(S(ErrorOf(r), "code"), "invalid_argument");
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("\"n\""));
  r = http().Post("/api/v1/runs", R"({"runbook":"lines","params":{"count":1}})");
  ASSERT_EQ(r.status, 400) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("count"));
  r = http().Post("/api/v1/runs", R"({"runbook":"form","params":{}})");
  ASSERT_EQ(r.status, 400) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("service"));
  r = http().Post("/api/v1/runs", R"({"runbook":"no-such-runbook"})");
  ASSERT_EQ(r.status, 404) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("no-such-runbook"));
  r = http().Post("/api/v1/runs", R"({"params":{}})");
  ASSERT_EQ(r.status, 400) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("runbook"));
  r = http().Post("/api/v1/runs", R"({"runbook":"lines","priority":5000})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/runs", R"({"runbook":"lines","not_before":"tomorrow"})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("not_before"));
  r = http().Post("/api/v1/runs", R"({"runbook":"lines","max_attempts":0})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  EXPECT_EQ(RunCount(), 1) << "no failed request created a run";

  EXPECT_EQ(http().Get("/api/v1/runs/not-a-run-id").status, 404);
  EXPECT_EQ(http().Get("/api/v1/runs/01a23acc-a6d9-7000-a725-2c76cf27bd5c").status, 404);
}

TEST_F(ApiE2eTest, ConcurrentCreatesWithOneIdempotencyKeyMakeOneRun) {
  StartServer({"--workers", "0"});
  constexpr int kThreads = 8, kEach = 10;
  std::vector<std::vector<std::pair<int, std::string>>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HttpTestClient c(port());
      for (int i = 0; i < kEach; ++i) {
        HttpResult r = c.Post("/api/v1/runs", R"({"runbook":"lines","idempotency_key":"once"})");
        json::error_code ec;
        json::value v = json::parse(r.body, ec);
        got[t].emplace_back(r.status, ec || !v.is_object() ? "" : S(v.as_object(), "id"));
      }
    });
  }
  for (auto& th : threads) th.join();
  int created = 0;
  std::set<std::string> ids;
  for (const auto& per : got) {
    for (const auto& [status, id] : per) {
      EXPECT_TRUE(status == 200 || status == 201) << status;
      if (status == 201) ++created;
      ids.insert(id);
    }
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(RunCount(), 1);
}

TEST_F(ApiE2eTest, ABatchOfAThousandRunsIsOneRequest) {
  StartServer({"--workers", "0"});
  json::array runs;
  for (int i = 0; i < 1000; ++i) {
    runs.push_back(json::object{{"runbook", "lines"}, {"params", json::object{{"n", i}}}});
  }
  HttpResult r = http().Post("/api/v1/runs/batch", json::serialize(json::object{{"runs", runs}}));
  ASSERT_EQ(r.status, 201) << r.Describe();
  const json::array& items = A(JsonObject(r), "items");
  ASSERT_EQ(items.size(), 1000u);
  std::set<std::string> ids;
  for (const auto& v : items) {
    json::object o = O(v);
    ids.insert(S(o, "id"));
    EXPECT_EQ(o["created"], json::value(true));
    EXPECT_EQ(S(o, "status"), "PENDING");
  }
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(RunCount(), 1000);
  // The params went with each run, in order.
  EXPECT_EQ(O(GetRun(S(O(items[999]), "id"))["params"])["n"], json::value(999));
}

TEST_F(ApiE2eTest, ABatchWithOneBadEntryCreatesNothing) {
  StartServer({"--workers", "0"});
  CreateRun("lines");
  const int64_t before = RunCount();
  json::array runs;
  for (int i = 0; i < 50; ++i) runs.push_back(json::object{{"runbook", "lines"}});
  runs[37] = json::object{{"runbook", "lines"}, {"params", json::object{{"n", "x"}}}};
  HttpResult r = http().Post("/api/v1/runs/batch", json::serialize(json::object{{"runs", runs}}));
  ASSERT_EQ(r.status, 400) << r.Describe();
  json::object e = ErrorOf(r);
  EXPECT_THAT(S(e, "message"), HasSubstr("runs[37]"));
  EXPECT_EQ(O(e["details"])["index"], json::value(37));
  runs[37] = json::object{{"runbook", "no-such"}};
  r = http().Post("/api/v1/runs/batch", json::serialize(json::object{{"runs", runs}}));
  EXPECT_EQ(r.status, 404) << r.Describe();
  runs[37] = json::value(5);
  r = http().Post("/api/v1/runs/batch", json::serialize(json::object{{"runs", runs}}));
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/runs/batch", R"({"runs":[]})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/runs/batch", R"({"runs":{}})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  EXPECT_EQ(RunCount(), before);
}

TEST_F(ApiE2eTest, ListRunsFiltersAndWalksPagesNewestFirst) {
  StartServer({"--workers", "0"});
  json::array a, b;
  for (int i = 0; i < 30; ++i) a.push_back(json::object{{"runbook", "lines"}});
  for (int i = 0; i < 20; ++i) b.push_back(json::object{{"runbook", "sleeper"}});
  ASSERT_EQ(http().Post("/api/v1/runs/batch", json::serialize(json::object{{"runs", a}})).status,
            201);
  ASSERT_EQ(http().Post("/api/v1/runs/batch", json::serialize(json::object{{"runs", b}})).status,
            201);
  const std::string cancelled = S(CreateRun("lines"), "id");
  ASSERT_EQ(http().Post("/api/v1/runs/" + cancelled + "/cancel").status, 200);

  auto walk = [&](const std::string& query, int limit) {
    std::vector<std::string> ids;
    std::string cursor;
    for (int page = 0; page < 200; ++page) {
      std::string target = "/api/v1/runs?limit=" + std::to_string(limit) + query;
      if (!cursor.empty()) target += "&cursor=" + cursor;
      HttpResult r = http().Get(target);
      EXPECT_EQ(r.status, 200) << target << ": " << r.Describe();
      json::object o = JsonObject(r);
      EXPECT_LE(A(o, "items").size(), static_cast<size_t>(limit));
      for (const auto& id : Ids(A(o, "items"))) ids.push_back(id);
      if (o["next_cursor"].is_null() || r.status != 200) break;
      cursor = S(o, "next_cursor");
    }
    return ids;
  };
  std::vector<std::string> all = walk("", 7);
  ASSERT_EQ(all.size(), 51u);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 51u) << "a duplicate";
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), std::greater<>())) << "newest first";
  EXPECT_EQ(all.front(), cancelled);
  EXPECT_EQ(walk("", 51), all);
  EXPECT_EQ(walk("", 1000), all);

  EXPECT_EQ(walk("&runbook=lines", 4).size(), 31u);
  EXPECT_EQ(walk("&runbook=sleeper", 4).size(), 20u);
  EXPECT_EQ(walk("&status=PENDING", 10).size(), 50u);
  EXPECT_EQ(walk("&status=cancelled", 10), std::vector<std::string>{cancelled});
  EXPECT_TRUE(walk("&status=SUCCESS", 10).empty());
  EXPECT_EQ(walk("&runbook=sleeper&status=PENDING&trigger=api", 3).size(), 20u);
  EXPECT_TRUE(walk("&trigger=schedule", 10).empty());
  EXPECT_TRUE(walk("&runbook=nope", 10).empty());

  for (const char* bad : {"?status=BOGUS", "?trigger=bogus", "?limit=0", "?limit=1001", "?limit=x",
                          "?cursor=garbage", "?since=yesterday", "?until=2026-13-01"}) {
    HttpResult r = http().Get(std::string("/api/v1/runs") + bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.Describe();
    EXPECT_EQ(S(ErrorOf(r), "code"), "invalid_argument") << bad;
  }
}

TEST_F(ApiE2eTest, ListRunsSinceAndUntil) {
  StartServer({"--workers", "0"});
  json::array batch;
  for (int i = 0; i < 10; ++i) batch.push_back(json::object{{"runbook", "lines"}});
  const std::string body = json::serialize(json::object{{"runs", batch}});
  const auto t0 = std::chrono::system_clock::now();
  ASSERT_EQ(http().Post("/api/v1/runs/batch", body).status, 201);
  // The boundary: a millisecond after the first batch, and before the second one.
  const auto mid = std::chrono::system_clock::now() + milliseconds(2);
  WaitFor([&] { return std::chrono::system_clock::now() > mid + milliseconds(2); }, seconds(5),
          milliseconds(1));
  ASSERT_EQ(http().Post("/api/v1/runs/batch", body).status, 201);
  const auto t1 = std::chrono::system_clock::now() + seconds(1);

  auto count = [&](const std::string& query) {
    HttpResult r = http().Get("/api/v1/runs?limit=1000&" + query);
    EXPECT_EQ(r.status, 200) << query << ": " << r.Describe();
    json::object o = JsonObject(r);
    EXPECT_TRUE(o["next_cursor"].is_null()) << query;
    return A(o, "items").size();
  };
  EXPECT_EQ(count("since=" + Rfc3339Ms(mid)), 10u);
  EXPECT_EQ(count("until=" + Rfc3339Ms(mid)), 10u);
  EXPECT_EQ(count("since=" + Rfc3339Ms(t0 - seconds(1)) + "&until=" + Rfc3339Ms(t1)), 20u);
  EXPECT_EQ(count("since=" + Rfc3339Ms(t1)), 0u);
  EXPECT_EQ(count("until=" + Rfc3339Ms(t0 - seconds(1))), 0u);
  // Pages within a range stop at its floor.
  HttpResult r = http().Get("/api/v1/runs?limit=10&since=" + Rfc3339Ms(mid));
  json::object o = JsonObject(r);
  EXPECT_EQ(A(o, "items").size(), 10u);
  if (!o["next_cursor"].is_null()) {
    HttpResult next = http().Get("/api/v1/runs?limit=10&since=" + Rfc3339Ms(mid) +
                                 "&cursor=" + S(o, "next_cursor"));
    EXPECT_TRUE(A(JsonObject(next), "items").empty()) << next.Describe();
  }
}

TEST_F(ApiE2eTest, ARunShowsStepsProgressAndTimings) {
  StartServer();
  const std::string id = S(CreateRun("twostep"), "id");
  json::object run = WaitRun(id, "SUCCESS");
  EXPECT_EQ(I(run, "attempt"), 1);
  EXPECT_FALSE(S(run, "started_at").empty());
  EXPECT_FALSE(S(run, "finished_at").empty());
  EXPECT_LE(S(run, "created_at"), S(run, "started_at"));
  EXPECT_LE(S(run, "started_at"), S(run, "finished_at"));
  EXPECT_GE(I(run, "duration_ms"), 0);
  EXPECT_TRUE(run["current_step"].is_null());
  json::object progress = O(run["progress"]);
  EXPECT_EQ(I(progress, "steps_done"), 2);
  EXPECT_EQ(I(progress, "steps_total"), 2);
  const json::array& steps = A(run, "steps");
  ASSERT_EQ(steps.size(), 2u) << json::serialize(run);
  EXPECT_EQ(S(O(steps[0]), "id"), "first");
  EXPECT_EQ(S(O(steps[1]), "id"), "second");
  for (const auto& v : steps) {
    json::object s = O(v);
    EXPECT_EQ(S(s, "status"), "SUCCESS");
    EXPECT_EQ(I(s, "exit_code"), 0);
    EXPECT_GE(I(s, "duration_ms"), 0);
    EXPECT_LE(S(s, "started_at"), S(s, "finished_at"));
  }
  EXPECT_EQ(S(O(O(run["outputs"])["first"]), "word"), "hello");

  HttpResult r = http().Get("/api/v1/runs/" + id + "/logs");
  ASSERT_EQ(r.status, 200) << r.Describe();
  std::vector<std::string> texts;
  for (const auto& v : A(JsonObject(r), "items")) {
    if (S(O(v), "stream") == "stdout") texts.push_back(S(O(v), "text"));
  }
  EXPECT_EQ(texts, (std::vector<std::string>{"first", "second got hello"}));
}

TEST_F(ApiE2eTest, LogPagesWalkThousandsOfLinesWithoutGapOrDuplicate) {
  StartServer();
  const std::string id = S(CreateRun("lines", {{"n", 2500}}), "id");
  WaitRun(id, "SUCCESS");
  std::vector<int64_t> seqs;
  std::vector<std::string> texts;
  std::string cursor;
  int pages = 0;
  for (; pages < 100; ++pages) {
    std::string target = "/api/v1/runs/" + id + "/logs?limit=333";
    if (!cursor.empty()) target += "&cursor=" + cursor;
    HttpResult r = http().Get(target);
    ASSERT_EQ(r.status, 200) << r.Describe();
    json::object o = JsonObject(r);
    EXPECT_LE(A(o, "items").size(), 333u);
    for (const auto& v : A(o, "items")) {
      json::object l = O(v);
      EXPECT_EQ(I(l, "attempt"), 1);
      seqs.push_back(I(l, "seq"));
      if (S(l, "stream") == "stdout") texts.push_back(S(l, "text"));
    }
    if (o["next_cursor"].is_null()) break;
    cursor = S(o, "next_cursor");
  }
  EXPECT_GE(pages, 7);
  ASSERT_FALSE(seqs.empty());
  for (size_t i = 0; i < seqs.size(); ++i) {
    ASSERT_EQ(seqs[i], static_cast<int64_t>(i) + seqs.front()) << "gap or duplicate at " << i;
  }
  ASSERT_EQ(texts.size(), 2500u);
  for (size_t i = 0; i < texts.size(); ++i) {
    ASSERT_EQ(texts[i], "line " + std::to_string(i + 1));
  }

  auto count = [&](const std::string& query) {
    HttpResult r = http().Get("/api/v1/runs/" + id + "/logs?limit=10000&" + query);
    EXPECT_EQ(r.status, 200) << query << ": " << r.Describe();
    return A(JsonObject(r), "items").size();
  };
  EXPECT_EQ(count("stream=stdout"), 2500u);
  EXPECT_EQ(count("stream=stderr"), 0u);
  EXPECT_EQ(count("step=print&stream=stdout"), 2500u);
  EXPECT_EQ(count("step=nope"), 0u);
  EXPECT_EQ(count("cursor=1.2490&stream=stdout"), 10u);
  for (const char* bad : {"cursor=x", "cursor=1.", "cursor=0.5", "cursor=1.-3", "stream=bogus",
                          "limit=0", "limit=10001", "attempt=0"}) {
    HttpResult r = http().Get("/api/v1/runs/" + id + "/logs?" + bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.Describe();
  }
  EXPECT_EQ(http().Get("/api/v1/runs/01a23acc-a6d9-7000-a725-2c76cf27bd5c/logs").status, 404);
}

// DISABLED: fails today: the response holds the step's raw bytes, so it is not UTF-8 and
// strict JSON parsers (Boost.JSON, Python's json on bytes) refuse it. Output is stored as
// produced and api/wire.cpp LogLineJson copies it into the JSON string as is. Fix: pass the
// text through the ToValidUtf8 that ErrorResponse already uses (U+FFFD) in LogLineJson.
TEST_F(ApiE2eTest, LogLinesThatAreNotUtf8AreServedAsValidJson) {
  WriteFile(RunbookDir() + "/binary.yaml", kBinaryYaml);
  StartServer();
  const std::string id = S(CreateRun("binary"), "id");
  WaitRun(id, "SUCCESS");
  HttpResult r = http().Get("/api/v1/runs/" + id + "/logs");
  ASSERT_EQ(r.status, 200) << r.Describe();
  // RFC 8259: JSON text exchanged between systems MUST be UTF-8. (Invalid bytes are
  // expected to arrive replaced, e.g. by U+FFFD.)
  EXPECT_TRUE(IsValidUtf8(r.body)) << "the logs response is not UTF-8: " << r.body;
  std::vector<std::string> texts;
  for (const auto& v : A(JsonObject(r), "items")) texts.push_back(S(O(v), "text"));
  ASSERT_EQ(texts.size(), 3u);
  EXPECT_THAT(texts[0], ::testing::StartsWith("bad "));
  EXPECT_THAT(texts[0], ::testing::EndsWith(" bytes"));
  EXPECT_EQ(texts[2], "still here");
}

TEST_F(ApiE2eTest, CancelRetryAndDeleteARun) {
  StartServer();
  const std::string id = S(CreateRun("sleeper"), "id");
  WaitRun(id, "RUNNING");
  HttpResult r = http().Delete("/api/v1/runs/" + id);
  ASSERT_EQ(r.status, 409) << "a running run cannot be deleted: " << r.Describe();
  EXPECT_THAT(S(ErrorOf(r), "message"), HasSubstr("cancel"));

  r = http().Post("/api/v1/runs/" + id + "/cancel");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(JsonObject(r)["cancel_requested"], json::value(true));
  json::object run = WaitRun(id, "", seconds(60));
  EXPECT_EQ(S(run, "status"), "CANCELLED") << json::serialize(run);
  EXPECT_FALSE(S(run, "finished_at").empty());

  r = http().Post("/api/v1/runs/" + id + "/retry");
  ASSERT_EQ(r.status, 201) << r.Describe();
  json::object retry = JsonObject(r);
  const std::string retry_id = S(retry, "id");
  EXPECT_NE(retry_id, id);
  EXPECT_EQ(S(retry, "retry_of"), id);
  EXPECT_EQ(S(retry, "runbook"), "sleeper");
  WaitRun(retry_id, "RUNNING");
  ASSERT_EQ(http().Post("/api/v1/runs/" + retry_id + "/cancel").status, 200);
  WaitRun(retry_id, "CANCELLED");

  r = http().Delete("/api/v1/runs/" + id);
  EXPECT_EQ(r.status, 204) << r.Describe();
  EXPECT_EQ(http().Get("/api/v1/runs/" + id).status, 404);
  EXPECT_EQ(http().Get("/api/v1/runs/" + id + "/logs").status, 404);
  EXPECT_EQ(http().Delete("/api/v1/runs/" + id).status, 404);
  EXPECT_EQ(http().Post("/api/v1/runs/" + id + "/cancel").status, 404);
  EXPECT_EQ(http().Post("/api/v1/runs/" + id + "/retry").status, 404);
  EXPECT_EQ(http().Get("/api/v1/runs/" + retry_id).status, 200) << "the retry stays";
}

TEST_F(ApiE2eTest, SecretParamsAreNeverReturned) {
  StartServer({"--workers", "0"});
  // A secret never shows: absent, or "***" (docs/api.md); a queued run holds it sealed
  // (security_e2e_test: QueuedSecretParamsReachTheStep...).
  auto hidden = [](const json::object& run) {
    json::object params = O(run.contains("params") ? run.at("params") : json::value());
    return !params.contains("token") || params["token"] == json::value("***");
  };
  HttpResult r = http().Post(
      "/api/v1/runs", R"({"runbook":"form","params":{"service":"web","token":"hunter2-xyz"}})");
  ASSERT_EQ(r.status, 201) << r.Describe();
  EXPECT_EQ(r.body.find("hunter2-xyz"), std::string::npos) << r.body;
  EXPECT_TRUE(hidden(JsonObject(r))) << r.body;
  json::object run = CreateRun("form", {{"service", "web"}});
  const std::string id = S(run, "id");
  EXPECT_TRUE(hidden(run)) << json::serialize(run);
  EXPECT_EQ(S(O(run["params"]), "service"), "web");
  EXPECT_TRUE(hidden(GetRun(id)));
  r = http().Get("/api/v1/runs?runbook=form");
  ASSERT_EQ(r.status, 200);
  for (const auto& v : A(JsonObject(r), "items")) EXPECT_TRUE(hidden(O(v))) << json::serialize(v);
}

// ------------------------------------------------------------------ schedules

TEST_F(ApiE2eTest, SchedulesCreateGetPreviewPauseResumeReplaceDelete) {
  StartServer({"--workers", "0"});
  HttpResult r = http().Post("/api/v1/schedules", R"({"runbook":"lines","id":"nightly",
      "cron":"30 2 * * *","tz":"Europe/Berlin","params":{"n":3},"overlap":"skip"})");
  ASSERT_EQ(r.status, 201) << r.Describe();
  json::object s = JsonObject(r);
  EXPECT_EQ(S(s, "id"), "lines/nightly");
  EXPECT_EQ(S(s, "runbook"), "lines");
  EXPECT_EQ(S(s, "schedule"), "nightly");
  EXPECT_EQ(S(s, "source"), "api");
  EXPECT_EQ(S(s, "state"), "active");
  EXPECT_EQ(s["paused"], json::value(false));
  const std::string next = S(s, "next_fire_at");
  ASSERT_FALSE(next.empty()) << r.Describe();
  EXPECT_GT(next, Rfc3339Ms(std::chrono::system_clock::now()));
  EXPECT_EQ(S(O(s["definition"]), "cron"), "30 2 * * *") << r.Describe();

  r = http().Get("/api/v1/schedules/lines/nightly");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(S(JsonObject(r), "next_fire_at"), next);
  r = http().Get("/api/v1/schedules?runbook=lines");
  EXPECT_EQ(Ids(A(JsonObject(r), "items")), std::vector<std::string>{"lines/nightly"});
  r = http().Get("/api/v1/schedules?runbook=sleeper");
  EXPECT_TRUE(A(JsonObject(r), "items").empty());

  r = http().Get("/api/v1/schedules/lines/nightly/next");
  ASSERT_EQ(r.status, 200) << r.Describe();
  json::object preview = JsonObject(r);
  EXPECT_EQ(S(preview, "tz"), "Europe/Berlin");
  const json::array& items = A(preview, "items");
  ASSERT_EQ(items.size(), 10u);
  EXPECT_EQ(S(O(items[0]), "nominal_at"), next);
  for (const auto& v : items) {
    const std::string local = S(O(v), "local");
    // 02:30 local, or 03:00 on the night the clocks spring forward.
    EXPECT_TRUE(local.find("T02:30:00+0") != std::string::npos ||
                local.find("T03:00:00+02:00") != std::string::npos)
        << local;
  }
  EXPECT_EQ(
      A(JsonObject(http().Get("/api/v1/schedules/lines/nightly/next?count=3")), "items").size(),
      3u);
  EXPECT_EQ(http().Get("/api/v1/schedules/lines/nightly/next?count=0").status, 400);

  r = http().Post("/api/v1/schedules/lines/nightly/pause");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(JsonObject(r)["paused"], json::value(true));
  EXPECT_EQ(S(JsonObject(r), "state"), "paused");
  EXPECT_TRUE(JsonObject(r)["next_fire_at"].is_null());
  r = http().Post("/api/v1/schedules/lines/nightly/resume");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(JsonObject(r)["paused"], json::value(false));
  EXPECT_EQ(S(JsonObject(r), "next_fire_at"), next);

  r = http().Get("/api/v1/schedules/lines/nightly/ledger");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_TRUE(A(JsonObject(r), "items").empty());

  r = http().Put("/api/v1/schedules/lines/nightly",
                 R"({"cron":"0 4 * * MON","tz":"Europe/Berlin","params":{"n":5}})");
  ASSERT_EQ(r.status, 200) << r.Describe();
  s = JsonObject(r);
  EXPECT_EQ(S(O(s["definition"]), "cron"), "0 4 * * MON");
  EXPECT_NE(S(s, "next_fire_at"), next);
  EXPECT_THAT(
      S(O(A(JsonObject(http().Get("/api/v1/schedules/lines/nightly/next?count=1")), "items")[0]),
        "local"),
      HasSubstr("T04:00:00+0"));

  // Bad requests.
  r = http().Post("/api/v1/schedules", R"({"runbook":"lines","id":"nightly","cron":"0 4 * * *"})");
  EXPECT_EQ(r.status, 409) << "exists: " << r.Describe();
  r = http().Post("/api/v1/schedules", R"({"runbook":"lines","id":"x","cron":"61 * * * *"})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/schedules",
                  R"({"runbook":"lines","id":"x","cron":"0 * * * *","tz":"Mars/Olympus"})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/schedules",
                  R"({"runbook":"lines","id":"x","cron":"0 * * * *","every":"1h"})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/schedules", R"({"runbook":"nope","id":"x","cron":"0 * * * *"})");
  EXPECT_EQ(r.status, 404) << r.Describe();
  r = http().Post("/api/v1/schedules",
                  R"({"runbook":"form","id":"x","cron":"0 * * * *",
                      "params":{"service":"web","token":"t0k3n"}})");
  EXPECT_EQ(r.status, 400) << "secrets cannot be stored in a schedule: " << r.Describe();
  EXPECT_EQ(r.body.find("t0k3n"), std::string::npos);
  r = http().Post("/api/v1/schedules",
                  R"({"runbook":"lines","id":"x","cron":"0 * * * *","params":{"n":"many"}})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = http().Post("/api/v1/schedules", R"({"runbook":"lines","id":"Bad Id","cron":"0 * * * *"})");
  EXPECT_EQ(r.status, 400) << r.Describe();
  EXPECT_EQ(http().Get("/api/v1/schedules/lines/x").status, 404);

  r = http().Delete("/api/v1/schedules/lines/nightly");
  EXPECT_EQ(r.status, 204) << r.Describe();
  EXPECT_EQ(http().Get("/api/v1/schedules/lines/nightly").status, 404);
  EXPECT_EQ(http().Delete("/api/v1/schedules/lines/nightly").status, 404);
  EXPECT_EQ(http().Post("/api/v1/schedules/lines/nightly/pause").status, 404);
  EXPECT_TRUE(A(JsonObject(http().Get("/api/v1/schedules")), "items").empty());
  EXPECT_EQ(RunCount(), 0);
}

TEST_F(ApiE2eTest, AScheduleFiresAndItsLedgerRecordsTheRuns) {
  StartServer();
  HttpResult r = http().Post("/api/v1/schedules",
                             R"({"runbook":"lines","id":"often","every":"1s","params":{"n":1}})");
  ASSERT_EQ(r.status, 201) << r.Describe();
  json::array fires;
  ASSERT_TRUE(WaitFor(
      [&] {
        HttpResult l = http().Get("/api/v1/schedules/lines/often/ledger");
        if (l.status != 200) return false;
        fires = A(JsonObject(l), "items");
        return fires.size() >= 2;
      },
      seconds(60)))
      << server_->Log();
  json::object newest = O(fires[0]);
  EXPECT_TRUE(S(newest, "status") == "fired" || S(newest, "status") == "late")
      << json::serialize(newest);
  EXPECT_GT(S(newest, "nominal_at"), S(O(fires[1]), "nominal_at")) << "newest first";
  const std::string run_id = S(newest, "run_id");
  ASSERT_FALSE(run_id.empty()) << json::serialize(newest);
  json::object run = WaitRun(run_id, "SUCCESS");
  EXPECT_EQ(S(run, "trigger"), "schedule");
  EXPECT_EQ(O(run["params"])["n"], json::value(1));
  r = http().Get("/api/v1/runs?trigger=schedule&runbook=lines");
  EXPECT_FALSE(A(JsonObject(r), "items").empty());
  // Ledger pages.
  r = http().Get("/api/v1/schedules/lines/often/ledger?limit=1");
  json::object page = JsonObject(r);
  ASSERT_EQ(A(page, "items").size(), 1u);
  ASSERT_FALSE(page["next_cursor"].is_null());
  r = http().Get("/api/v1/schedules/lines/often/ledger?limit=1&cursor=" + S(page, "next_cursor"));
  ASSERT_EQ(r.status, 200) << r.Describe();
  ASSERT_EQ(A(JsonObject(r), "items").size(), 1u);
  EXPECT_LT(S(O(A(JsonObject(r), "items")[0]), "nominal_at"),
            S(O(A(page, "items")[0]), "nominal_at"));
  EXPECT_EQ(http().Get("/api/v1/schedules/lines/often/ledger?cursor=x").status, 400);
  ASSERT_EQ(http().Delete("/api/v1/schedules/lines/often").status, 204);
}

TEST_F(ApiE2eTest, CronPreviewShowsTheDstNights) {
  StartServer({"--workers", "0"});
  // Spring forward in Berlin, 2027-03-28: 02:30 does not exist and shifts to 03:00.
  HttpResult r = http().Get(
      "/api/v1/cron/preview?expr=30+2+*+*+*&tz=Europe/Berlin&from=2027-03-27T00:00:00Z&count=4");
  ASSERT_EQ(r.status, 200) << r.Describe();
  json::object o = JsonObject(r);
  EXPECT_EQ(S(o, "expr"), "30 2 * * *");
  EXPECT_EQ(S(o, "tz"), "Europe/Berlin");
  EXPECT_THAT(S(o, "explain"), HasSubstr("02:30"));
  std::vector<std::string> local, wall;
  for (const auto& v : A(o, "items")) {
    local.push_back(S(O(v), "local"));
    wall.push_back(S(O(v), "wall"));
    EXPECT_EQ(O(v)["fires"], json::value(true));
  }
  EXPECT_EQ(local,
            (std::vector<std::string>{"2027-03-27T02:30:00+01:00", "2027-03-28T03:00:00+02:00",
                                      "2027-03-29T02:30:00+02:00", "2027-03-30T02:30:00+02:00"}));
  EXPECT_EQ(wall[1], "2027-03-28T02:30:00") << "it stands for the skipped 02:30";

  // Fall back, 2027-10-31: 02:30 happens twice; the repeat is listed, skipped.
  r = http().Get(
      "/api/v1/cron/preview?expr=30%202%20*%20*%20*&tz=Europe/Berlin"
      "&from=2027-10-30T12:00:00Z&count=3");
  ASSERT_EQ(r.status, 200) << r.Describe();
  std::vector<std::string> seen;
  for (const auto& v : A(JsonObject(r), "items")) {
    json::object x = O(v);
    const std::string what = x["fires"] == json::value(true) ? "fires" : S(x, "skipped");
    seen.push_back(S(x, "local") + " " + what);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"2027-10-31T02:30:00+02:00 fires",
                                            "2027-10-31T02:30:00+01:00 dst_repeat",
                                            "2027-11-01T02:30:00+01:00 fires"}));

  r = http().Get("/api/v1/cron/preview?expr=*/15+*+*+*+*");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(A(JsonObject(r), "items").size(), 10u);
  EXPECT_EQ(S(JsonObject(r), "tz"), "UTC");

  for (const char* bad :
       {"", "?expr=61+*+*+*+*", "?expr=*+*+*+*+*&tz=Mars/Olympus", "?expr=*+*+*+*+*&from=soon",
        "?expr=*+*+*+*+*&count=101", "?expr=0+0+30+2+*"}) {
    r = http().Get(std::string("/api/v1/cron/preview") + bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.Describe();
  }
}

// ------------------------------------------------------------------ queue, DLQ, analytics

TEST_F(ApiE2eTest, DeadRunsReachTheDlqAndCanBeReplayedAndPurged) {
  StartServer();
  const std::string id = S(CreateRun("always-fails"), "id");
  json::object dead = WaitRun(id, "DEAD");
  EXPECT_EQ(I(dead, "attempt"), 3);
  EXPECT_EQ(I(dead, "max_attempts"), 3);
  EXPECT_FALSE(S(dead, "error").empty());

  HttpResult r = http().Get("/api/v1/dlq");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(Ids(A(JsonObject(r), "items")), std::vector<std::string>{id});
  r = http().Get("/api/v1/dlq?runbook=lines");
  EXPECT_TRUE(A(JsonObject(r), "items").empty());
  r = http().Get("/api/v1/queue/stats");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(I(O(JsonObject(r)["counts"]), "DEAD"), 1) << r.Describe();
  EXPECT_EQ(I(JsonObject(r), "total"), 1);

  // Every attempt's logs are kept.
  r = http().Get("/api/v1/runs/" + id + "/logs");
  std::vector<std::string> texts;
  for (const auto& v : A(JsonObject(r), "items")) {
    if (S(O(v), "stream") == "stdout") texts.push_back(S(O(v), "text"));
  }
  EXPECT_EQ(texts,
            (std::vector<std::string>{"attempt 1 fails", "attempt 2 fails", "attempt 3 fails"}));
  r = http().Get("/api/v1/runs/" + id + "/logs?attempt=2&stream=stdout");
  EXPECT_EQ(A(JsonObject(r), "items").size(), 1u);

  r = http().Post("/api/v1/dlq/" + id + "/replay");
  ASSERT_EQ(r.status, 201) << r.Describe();
  json::object replay = JsonObject(r);
  EXPECT_EQ(S(replay, "retry_of"), id);
  EXPECT_NE(S(replay, "id"), id);
  const std::string done = S(CreateRun("lines", {{"n", 1}}), "id");
  WaitRun(done, "SUCCESS");
  r = http().Post("/api/v1/dlq/" + done + "/replay");
  EXPECT_EQ(r.status, 409) << "not dead: " << r.Describe();
  EXPECT_EQ(http().Post("/api/v1/dlq/01a23acc-a6d9-7000-a725-2c76cf27bd5c/replay").status, 404);
  WaitRun(S(replay, "id"), "DEAD");

  r = http().Delete("/api/v1/dlq");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(I(JsonObject(r), "purged"), 2);
  r = http().Get("/api/v1/dlq");
  EXPECT_TRUE(A(JsonObject(r), "items").empty()) << r.Describe();
  EXPECT_EQ(http().Get("/api/v1/runs/" + id).status, 404);
  EXPECT_EQ(http().Get("/api/v1/runs/" + done).status, 200) << "only dead runs are purged";
}

TEST_F(ApiE2eTest, AnalyticsCountsAndPercentilesPerRunbook) {
  StartServer();
  const auto start = std::chrono::system_clock::now() - seconds(5);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(S(CreateRun("lines", {{"n", 1}}), "id"));
  ids.push_back(S(CreateRun("always-fails"), "id"));
  for (const auto& id : ids) WaitRun(id);
  const auto end = std::chrono::system_clock::now() + seconds(5);

  HttpResult r = http().Get("/api/v1/analytics/runbooks?since=" + Rfc3339Ms(start) +
                            "&until=" + Rfc3339Ms(end));
  ASSERT_EQ(r.status, 200) << r.Describe();
  json::object o = JsonObject(r);
  EXPECT_EQ(I(o, "runs_scanned"), 4);
  EXPECT_EQ(o["truncated"], json::value(false));
  const json::array& items = A(o, "items");
  ASSERT_EQ(items.size(), 2u) << r.Describe();
  json::object lines = O(items[0]);  // most used first
  EXPECT_EQ(S(lines, "runbook"), "lines");
  EXPECT_EQ(I(lines, "runs"), 3);
  EXPECT_EQ(I(lines, "finished"), 3);
  EXPECT_EQ(I(lines, "success"), 3);
  EXPECT_EQ(lines["success_rate"], json::value(1.0));
  EXPECT_EQ(I(O(lines["by_status"]), "SUCCESS"), 3);
  json::object d = O(lines["duration_ms"]);
  for (const char* p : {"p50", "p90", "p99", "max"}) {
    ASSERT_TRUE(d[p].is_number()) << p << ": " << r.Describe();
    EXPECT_GE(d[p].to_number<double>(), 0) << p;
  }
  EXPECT_LE(d["p50"].to_number<double>(), d["p90"].to_number<double>());
  EXPECT_LE(d["p90"].to_number<double>(), d["p99"].to_number<double>());
  EXPECT_LE(d["p99"].to_number<double>(), d["max"].to_number<double>());
  json::object fails = O(items[1]);
  EXPECT_EQ(S(fails, "runbook"), "always-fails");
  EXPECT_EQ(I(fails, "runs"), 1);
  EXPECT_EQ(I(fails, "success"), 0);
  EXPECT_EQ(fails["success_rate"], json::value(0.0));
  EXPECT_EQ(I(O(fails["by_status"]), "DEAD"), 1);

  r = http().Get("/api/v1/analytics/runbooks?runbook=always-fails&since=" + Rfc3339Ms(start));
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(A(JsonObject(r), "items").size(), 1u);
  // A range before the runs is empty.
  r = http().Get("/api/v1/analytics/runbooks?since=" + Rfc3339Ms(start - seconds(3600)) +
                 "&until=" + Rfc3339Ms(start));
  EXPECT_TRUE(A(JsonObject(r), "items").empty()) << r.Describe();
  r = http().Get("/api/v1/analytics/runbooks?since=" + Rfc3339Ms(end) +
                 "&until=" + Rfc3339Ms(start));
  EXPECT_EQ(r.status, 400) << r.Describe();
}

// ------------------------------------------------------------------ metrics

TEST_F(ApiE2eTest, MetricsExposeRequestsAndRunsAndPassPromtool) {
  StartServer({"--metrics-public"});
  const std::string id = S(CreateRun("lines", {{"n", 1}}), "id");
  WaitRun(id, "SUCCESS");
  HttpResult r;
  ASSERT_TRUE(WaitFor(
      [&] {
        r = http().Get("/metrics");
        return r.status == 200 &&
               r.body.find("automan_runs_finished_total{runbook=\"lines\",status=\"SUCCESS\"} 1") !=
                   std::string::npos;
      },
      seconds(30)))
      << r.Describe();
  EXPECT_THAT(*r.Header("content-type"), HasSubstr("text/plain"));
  EXPECT_THAT(r.body, HasSubstr("# TYPE automan_http_requests_total counter"));
  EXPECT_THAT(r.body, HasSubstr("automan_http_requests_total{method=\"POST\",route=\"POST "
                                "/api/v1/runs\",code=\"201\"} 1"));
  EXPECT_THAT(r.body, HasSubstr("# TYPE automan_runs_finished_total counter"));
  EXPECT_THAT(r.body, HasSubstr("automan_queue_runs{status=\"SUCCESS\"} 1"));

  const std::string file = dir_.File("metrics.txt");
  WriteFile(file, r.body);
  if (RunCommand("command -v promtool >/dev/null 2>&1").exit_code != 0) {
    GTEST_SKIP() << "promtool is not installed; the exposition format was not linted";
  }
  CommandResult check = RunCommand("promtool check metrics < " + file + " 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.out;
}

// ------------------------------------------------------------------ shutdown

TEST_F(ApiE2eTest, SigtermLetsARunningStepFinishThenExitsZero) {
  StartServer({"--grace", "30s"});
  const std::string gate = Gate();
  const std::string id = S(CreateRun("gated", {{"n", 2}, {"m", 3}, {"gate", gate}}), "id");
  WaitRun(id, "RUNNING");
  ASSERT_EQ(http().Get("/readyz").status, 200);
  server_->Terminate();
  // The listener closes at once: /readyz stops answering while the step still runs.
  EXPECT_TRUE(WaitFor(
      [&] {
        HttpTestClient fresh(port());
        return fresh.Get("/readyz").status != 200;
      },
      seconds(20)));
  EXPECT_TRUE(server_->Alive()) << "the running step has its grace";
  WriteFile(gate, "");
  const auto code = server_->Stop(seconds(60));
  ASSERT_EQ(code, 0);
  HttpTestClient fresh(port());
  EXPECT_EQ(fresh.Get("/readyz").status, 0) << "nothing listens any more";

  // The step finished within the grace and its run was recorded.
  StartServer({"--workers", "0"});
  json::object run = GetRun(id);
  EXPECT_EQ(S(run, "status"), "SUCCESS") << json::serialize(run);
}

TEST_F(ApiE2eTest, SigtermKillsWhatOutlivesTheGraceAndStillExitsZero) {
  StartServer({"--grace", "1s", "--lease", "2s"});
  const std::string id = S(CreateRun("sleeper"), "id");
  WaitRun(id, "RUNNING");
  const auto t0 = std::chrono::steady_clock::now();
  const auto code = server_->Stop(seconds(60));
  ASSERT_EQ(code, 0);
  // Far less than the 300 s the step wanted (a bound on correctness, not on speed).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(45));
}

}  // namespace
}  // namespace automan::testing
