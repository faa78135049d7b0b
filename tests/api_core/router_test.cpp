// Router and request-target parsing: literal segments win over parameters, 404 and 405
// answers, handler exceptions become 500 without their text, percent-decoding.
#include "api/router.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace automan::api {
namespace {

Route R(std::string method, std::string pattern, std::string tag) {
  Route r;
  r.method = std::move(method);
  r.pattern = std::move(pattern);
  r.permission = "runs.read";
  r.handler = [tag](HttpRequest& req) {
    HttpResponse resp;
    resp.body = tag;
    for (const auto& [k, v] : req.path_params) resp.body += " " + k + "=" + v;
    return resp;
  };
  return r;
}

HttpRequest Req(std::string method, std::string path) {
  HttpRequest q;
  q.method = std::move(method);
  q.path = std::move(path);
  return q;
}

TEST(RouterTest, MatchesLiteralsBeforeParameters) {
  Router router;
  router.Add(R("GET", "/api/v1/runs/{id}", "get"));
  router.Add(R("POST", "/api/v1/runs/batch", "batch"));
  router.Add(R("GET", "/api/v1/runs/batch", "literal"));
  router.Add(R("GET", "/api/v1/schedules/{runbook}/{schedule}", "sched"));
  auto q = Req("GET", "/api/v1/runs/batch");
  EXPECT_EQ(router.Dispatch(q).body, "literal");
  q = Req("GET", "/api/v1/runs/abc");
  HttpResponse r = router.Dispatch(q);
  EXPECT_EQ(r.body, "get id=abc");
  EXPECT_EQ(r.route, "GET /api/v1/runs/{id}");
  q = Req("GET", "/api/v1/schedules/rb/nightly");
  EXPECT_EQ(router.Dispatch(q).body, "sched runbook=rb schedule=nightly");
}

TEST(RouterTest, ResolveMatchesOnceForTheDispatchThatFollows) {
  Router router;
  Route quick = R("GET", "/api/v1/runs/{id}", "get");
  quick.cost = HandlerCost::kQuick;
  router.Add(quick);
  router.Add(R("DELETE", "/api/v1/runs/{id}", "del"));
  auto q = Req("GET", "/api/v1/runs/abc");
  EXPECT_EQ(router.Resolve(q), HandlerCost::kQuick);
  EXPECT_EQ(q.path_params["id"], "abc");
  EXPECT_EQ(router.Dispatch(q).body, "get id=abc");
  q = Req("DELETE", "/api/v1/runs/abc");
  EXPECT_EQ(router.Resolve(q), HandlerCost::kMayWait);
  // The remembered route is used once: a request changed and dispatched again is matched
  // again.
  EXPECT_EQ(router.Dispatch(q).body, "del id=abc");
  q.method = "GET";
  EXPECT_EQ(router.Dispatch(q).body, "get id=abc");
  q = Req("GET", "/api/v1/nope");
  EXPECT_EQ(router.Resolve(q), HandlerCost::kQuick) << "a 404 is answered at once";
  EXPECT_EQ(router.Dispatch(q).status, 404);
  q = Req("PATCH", "/api/v1/runs/abc");
  EXPECT_EQ(router.Resolve(q), HandlerCost::kQuick);
  EXPECT_EQ(router.Dispatch(q).status, 405);
}

TEST(RouterTest, UnknownPathsAnswer404AndOtherMethods405WithAllow) {
  Router router;
  router.Add(R("GET", "/api/v1/runs/{id}", "get"));
  router.Add(R("DELETE", "/api/v1/runs/{id}", "del"));
  for (const char* path : {"/api/v1/nope", "/api/v1/runs/", "/api/v1/runs/a/b", "/", "nope"}) {
    auto q = Req("GET", path);
    HttpResponse r = router.Dispatch(q);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_NE(r.body.find("\"code\":\"not_found\""), std::string::npos) << r.body;
  }
  auto q = Req("PATCH", "/api/v1/runs/x");
  HttpResponse r = router.Dispatch(q);
  EXPECT_EQ(r.status, 405);
  std::string allow;
  for (const auto& [k, v] : r.headers) {
    if (k == "Allow") allow = v;
  }
  EXPECT_EQ(allow, "GET, DELETE");
}

TEST(RouterTest, AThrowingHandlerAnswers500WithoutItsMessage) {
  Router router;
  Route r = R("GET", "/boom", "");
  r.handler = [](HttpRequest&) -> HttpResponse { throw std::runtime_error("secret detail"); };
  router.Add(r);
  auto q = Req("GET", "/boom");
  HttpResponse resp = router.Dispatch(q);
  EXPECT_EQ(resp.status, 500);
  EXPECT_EQ(resp.body.find("secret detail"), std::string::npos);
}

TEST(SplitTargetTest, DecodesPathAndQuery) {
  std::string path;
  std::multimap<std::string, std::string> query;
  ASSERT_TRUE(SplitTarget("/api/v1/runs%2Fx?status=RUNNING&q=a+b%26c&flag&&x=1&x=2", path, query));
  EXPECT_EQ(path, "/api/v1/runs/x");
  HttpRequest r;
  r.query = query;
  ASSERT_NE(r.Query("q"), nullptr);
  EXPECT_EQ(*r.Query("q"), "a b&c");
  EXPECT_EQ(*r.Query("flag"), "");
  EXPECT_EQ(*r.Query("x"), "2") << "the last value wins";
  EXPECT_EQ(r.Query("missing"), nullptr);
  EXPECT_FALSE(SplitTarget("/a%zz", path, query));
  EXPECT_FALSE(SplitTarget("/a%2", path, query));
  EXPECT_FALSE(SplitTarget("/a?b=%", path, query));
  ASSERT_TRUE(SplitTarget("/a+b", path, query));
  EXPECT_EQ(path, "/a+b") << "'+' is a space only in queries";
}

}  // namespace
}  // namespace automan::api
