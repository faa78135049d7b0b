// `automan server --db postgresql://…`: the API, the worker pool and the streams on the
// PostgreSQL backend (the cluster of the ctest fixture `postgres`; skipped when there is
// none). The SQLite-backed suites in this directory cover the routes in depth; this one
// checks that the road a run takes works the same on the other store.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>

#include "store/postgres_test_support.h"
#include "support/http_client.h"
#include "support/proc_util.h"
#include "support/test_util.h"

namespace automan {
namespace {

namespace json = boost::json;
using std::chrono::seconds;
using testing::HttpTestClient;
using testing::ServerProcess;
using testing::SseReader;

TEST(ApiPostgresTest, RunsFlowThroughTheServerOnPostgres) {
  if (testing::PgBaseUrl().empty()) GTEST_SKIP() << "no PostgreSQL test cluster";
  auto url = testing::PgFreshUrl();
  ASSERT_TRUE(url.ok()) << url.status().message();
  testing::TempDir tmp;
  std::filesystem::create_directories(tmp.File("runbooks"));
  testing::WriteFile(tmp.File("runbooks/pg-lines.yaml"),
                     "id: pg-lines\nparams:\n  n:\n    type: int\n    default: 50\nsteps:\n"
                     "  - id: count\n    shell: 'i=1; while [ $i -le $AUTOMAN_PARAM_N ]; do echo "
                     "line $i; i=$((i+1)); done'\n");
  ServerProcess server(tmp.File("data"),
                       {"--db", *url, "--runbooks", tmp.File("runbooks"), "--access-log", "off"},
                       tmp.File("server.log"));
  ASSERT_TRUE(server.started()) << server.Log();
  HttpTestClient http(server.port());

  auto created = http.Post("/api/v1/runs", R"({"runbook":"pg-lines","params":{"n":120}})");
  ASSERT_EQ(created.status, 201) << created.Describe();
  const std::string id(json::parse(created.body).as_object().at("id").as_string());

  // The stream delivers every line once and ends with the final status.
  SseReader sse(server.port(), "/api/v1/runs/" + id + "/stream");
  ASSERT_TRUE(sse.ok()) << sse.head().Describe();
  int lines = 0;
  std::string end;
  for (int i = 0; i < 1000 && end.empty(); ++i) {
    auto ev = sse.Next(seconds(30));
    ASSERT_TRUE(ev.has_value()) << "stream stopped after " << lines << " lines";
    if (ev->event == "log") {
      ++lines;
      EXPECT_EQ(ev->id, "1." + std::to_string(lines));
    }
    if (ev->event == "end") end = ev->data;
  }
  EXPECT_EQ(lines, 120);
  EXPECT_EQ(end, R"({"status":"SUCCESS"})");

  auto run = http.Get("/api/v1/runs/" + id);
  ASSERT_EQ(run.status, 200);
  EXPECT_EQ(json::parse(run.body).as_object().at("status").as_string(), "SUCCESS");
  auto logs = http.Get("/api/v1/runs/" + id + "/logs?limit=100");
  ASSERT_EQ(logs.status, 200);
  auto page = json::parse(logs.body).as_object();
  EXPECT_EQ(page.at("items").as_array().size(), 100u);
  EXPECT_EQ(page.at("next_cursor").as_string(), "1.100");

  // Idempotency and the batch endpoint on PostgreSQL.
  auto a = http.Post("/api/v1/runs", R"({"runbook":"pg-lines","idempotency_key":"k1"})");
  auto b = http.Post("/api/v1/runs", R"({"runbook":"pg-lines","idempotency_key":"k1"})");
  ASSERT_EQ(a.status, 201) << a.Describe();
  ASSERT_EQ(b.status, 200) << b.Describe();
  EXPECT_EQ(json::parse(a.body).as_object().at("id"), json::parse(b.body).as_object().at("id"));
  std::string batch = R"({"runs":[)";
  for (int i = 0; i < 200; ++i)
    batch += std::string(i ? "," : "") + R"({"runbook":"pg-lines","params":{"n":1}})";
  batch += "]}";
  auto made = http.Post("/api/v1/runs/batch", batch);
  ASSERT_EQ(made.status, 201) << made.Describe();
  EXPECT_EQ(json::parse(made.body).as_object().at("items").as_array().size(), 200u);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        auto s = http.Get("/api/v1/queue/stats");
        if (s.status != 200) return false;
        auto counts = json::parse(s.body).as_object().at("counts").as_object();
        return counts.at("SUCCESS").as_int64() == 202;
      },
      std::chrono::seconds(120)))
      << http.Get("/api/v1/queue/stats").body;
  EXPECT_EQ(http.Get("/readyz").status, 200);
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace automan
