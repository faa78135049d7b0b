// ApiClient against a scripted server: keep-alive, a connection the server closed while
// idle, deadlines, API errors, the SSE stream's resumption with Last-Event-ID and `retry:`,
// interruption; and the CLI settings (config file, token, server URL).
#include "client/api_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include "client/fake_http_server.h"
#include "support/proc_util.h"
#include "support/test_util.h"

namespace automan::client {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::ElementsAre;
using testing::FakeHttpServer;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WaitFor;
using testing::WriteFile;

std::unique_ptr<ApiClient> MakeClient(ClientOptions o) {
  auto c = ApiClient::Create(std::move(o));
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(*c) : nullptr;
}

ClientOptions For(const FakeHttpServer& s) {
  ClientOptions o;
  o.server = s.url();
  return o;
}

const std::string kOk = R"({"items":[],"next_cursor":null})";

TEST(ApiClientTest, KeepAliveSendsEveryRequestOnOneConnection) {
  FakeHttpServer server([](const FakeHttpServer::Request&, int fd) {
    return FakeHttpServer::SendAll(fd, FakeHttpServer::Response(200, kOk));
  });
  auto c = MakeClient(For(server));
  for (int i = 0; i < 3; ++i) {
    auto r = c->Request("GET", "/api/v1/runs?limit=" + std::to_string(i + 1));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, kOk);
  }
  EXPECT_EQ(server.connections(), 1);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[2].target, "/api/v1/runs?limit=3");
  EXPECT_EQ(reqs[0].Header("authorization"), "");  // no token configured
}

TEST(ApiClientTest, SendsAgainWhenTheServerClosedTheIdleConnection) {
  // Answers as if keeping the connection, then closes it (an idle timeout).
  FakeHttpServer server([](const FakeHttpServer::Request&, int fd) {
    FakeHttpServer::SendAll(fd, FakeHttpServer::Response(200, kOk));
    return false;
  });
  auto c = MakeClient(For(server));
  ASSERT_TRUE(c->Request("GET", "/a").ok());
  ASSERT_TRUE(WaitFor([&] { return server.connections() == 1; }, seconds(5)));
  auto r = c->Request("POST", "/b", R"({"x":1})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(server.connections(), 2);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);  // the POST reached the server once
  EXPECT_EQ(reqs[1].method, "POST");
  EXPECT_EQ(reqs[1].body, R"({"x":1})");
  EXPECT_EQ(reqs[1].Header("content-type"), "application/json");
}

TEST(ApiClientTest, BearerTokenOnEveryRequest) {
  FakeHttpServer server([](const FakeHttpServer::Request&, int fd) {
    return FakeHttpServer::SendAll(fd, FakeHttpServer::Response(200, kOk));
  });
  ClientOptions o = For(server);
  o.token = "s3cret";
  auto c = MakeClient(o);
  ASSERT_TRUE(c->Request("GET", "/x").ok());
  ASSERT_TRUE(c->Request("GET", "/y").ok());
  for (const auto& r : server.requests()) EXPECT_EQ(r.Header("authorization"), "Bearer s3cret");
}

TEST(ApiClientTest, ApiErrorsCarryTheServersCodeAndMessage) {
  FakeHttpServer server([](const FakeHttpServer::Request& r, int fd) {
    if (r.target == "/bad") {
      return FakeHttpServer::SendAll(
          fd,
          FakeHttpServer::Response(
              400, R"({"error":{"code":"invalid_argument","message":"count must be an integer",)"
                   R"("details":null}})"));
    }
    if (r.target == "/gone") {
      return FakeHttpServer::SendAll(
          fd, FakeHttpServer::Response(
                  404, R"({"error":{"code":"not_found","message":"run \"x\" does not exist"}})"));
    }
    return FakeHttpServer::SendAll(fd,
                                   FakeHttpServer::Response(502, "upstream down\n", "text/plain"));
  });
  auto c = MakeClient(For(server));
  auto bad = c->Request("POST", "/bad", "{}");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "count must be an integer");
  auto gone = c->Request("GET", "/gone");
  EXPECT_EQ(gone.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(gone.status().message(), "run \"x\" does not exist");
  auto proxy = c->Request("GET", "/other");
  EXPECT_EQ(proxy.status().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(proxy.status().message(), HasSubstr("HTTP 502"));
  EXPECT_THAT(proxy.status().message(), HasSubstr("upstream down"));
}

TEST(ApiClientTest, ARequestWithoutAnswerMissesItsDeadline) {
  FakeHttpServer server([](const FakeHttpServer::Request&, int) { return true; });  // silence
  ClientOptions o = For(server);
  o.request_timeout = milliseconds(300);
  auto c = MakeClient(o);
  auto r = c->Request("GET", "/slow");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_THAT(r.status().message(), HasSubstr("did not answer GET /slow"));
}

TEST(ApiClientTest, RefusedConnectionSaysHowToPointAtTheServer) {
  int port = 0;
  {
    FakeHttpServer probe([](const FakeHttpServer::Request&, int) { return false; });
    port = probe.port();
  }  // closed again: nothing listens there now
  ClientOptions o;
  o.server = "http://127.0.0.1:" + std::to_string(port);
  auto c = MakeClient(o);
  auto r = c->Request("GET", "/api/v1/runs");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(r.status().message(),
              HasSubstr("cannot reach the server at " + o.server +
                        " (is automan server running? set --server or AUTOMAN_SERVER)"));
}

TEST(ApiClientTest, MalformedServerUrlsAreRefused) {
  for (const char* url : {"ftp://x", "127.0.0.1:8080", "http://", "http://h:99999",
                          "http://user:pw@h:80", "http://h:80/?q=1"}) {
    ClientOptions o;
    o.server = url;
    auto c = ApiClient::Create(o);
    ASSERT_FALSE(c.ok()) << url;
    EXPECT_EQ(c.status().code(), ErrorCode::kInvalidArgument) << url;
  }
  ClientOptions o;
  o.server = "https://127.0.0.1:8443";
  o.ca_file = "/nonexistent/ca.pem";
  auto c = ApiClient::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/ca.pem"));
}

TEST(ApiClientTest, APathPrefixGoesBeforeEveryTarget) {
  FakeHttpServer server([](const FakeHttpServer::Request&, int fd) {
    return FakeHttpServer::SendAll(fd, FakeHttpServer::Response(200, kOk));
  });
  ClientOptions o;
  o.server = server.url() + "/automan/";
  auto c = MakeClient(o);
  ASSERT_TRUE(c->Request("GET", "/api/v1/runs").ok());
  EXPECT_EQ(server.requests().at(0).target, "/automan/api/v1/runs");
}

// The SSE script: the first connection sends a retry hint and one event, then drops; the
// second must resume after that event and gets the rest.
TEST(ApiClientTest, StreamResumesWithLastEventIdAfterTheRetryHint) {
  FakeHttpServer server([](const FakeHttpServer::Request& r, int fd) {
    const std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    if (r.connection == 1) {
      FakeHttpServer::SendAll(fd, head +
                                      "retry: 20\n\n: heartbeat\n\nid: 1.1\nevent: log\n"
                                      "data: {\"text\":\"one\"}\n\n");
    } else {
      FakeHttpServer::SendAll(fd, head +
                                      "id: 1.2\r\nevent: log\r\ndata: {\"text\":\r\n"
                                      "data: \"two\"}\r\n\r\nevent: end\ndata: {}\n\n"
                                      "event: log\ndata: after-end\n\n");
    }
    return false;
  });
  ClientOptions o = For(server);
  o.stream_retry = std::chrono::minutes(10);  // only the server's hint makes this finish
  std::atomic<bool> interrupt{false};
  o.interrupt = &interrupt;
  auto c = MakeClient(o);
  std::vector<SseEvent> events;
  auto done = std::async(std::launch::async, [&] {
    return c->Stream("/api/v1/runs/r/stream", "", [&](const SseEvent& e) {
      events.push_back(e);
      return true;
    });
  });
  const bool finished = done.wait_for(seconds(30)) == std::future_status::ready;
  interrupt = true;  // unblocks a client that waits the 10-minute default instead of the hint
  Status s = done.get();
  ASSERT_TRUE(finished) << "the client did not honour retry: 20";
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].id, "1.1");
  EXPECT_EQ(events[0].data, R"({"text":"one"})");
  EXPECT_EQ(events[1].id, "1.2");
  EXPECT_EQ(events[1].event, "log");
  EXPECT_EQ(events[1].data, "{\"text\":\n\"two\"}");
  EXPECT_EQ(events[2].event, "end");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].Header("last-event-id"), "");
  EXPECT_EQ(reqs[0].Header("accept"), "text/event-stream");
  EXPECT_EQ(reqs[1].Header("last-event-id"), "1.1");
}

TEST(ApiClientTest, StreamStopsWhenTheCallbackReturnsFalse) {
  std::atomic<bool> release{false};
  FakeHttpServer server([&](const FakeHttpServer::Request&, int fd) {
    FakeHttpServer::SendAll(fd,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                            "id: 2.5\ndata: a\n\nid: 2.6\ndata: b\n\n");
    WaitFor([&] { return release.load(); }, seconds(30));
    return false;
  });
  auto c = MakeClient(For(server));
  std::vector<std::string> got;
  Status s = c->Stream("/s", "2.4", [&](const SseEvent& e) {
    got.push_back(e.data);
    return false;
  });
  release = true;
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(got, std::vector<std::string>{"a"});
  EXPECT_EQ(server.requests().at(0).Header("last-event-id"), "2.4");
}

TEST(ApiClientTest, StreamEndsAtOnceOnAnErrorAnswer) {
  FakeHttpServer server([](const FakeHttpServer::Request&, int fd) {
    FakeHttpServer::SendAll(
        fd, FakeHttpServer::Response(
                404, R"({"error":{"code":"not_found","message":"run \"r\" does not exist"}})"));
    return false;
  });
  auto c = MakeClient(For(server));
  Status s = c->Stream("/api/v1/runs/r/stream", "", [](const SseEvent&) { return true; });
  EXPECT_EQ(s.code(), ErrorCode::kNotFound);
  EXPECT_EQ(s.message(), "run \"r\" does not exist");
  EXPECT_EQ(server.connections(), 1);
}

TEST(ApiClientTest, InterruptStopsAWaitingStream) {
  std::atomic<bool> interrupt{false};
  FakeHttpServer server([](const FakeHttpServer::Request&, int fd) {
    FakeHttpServer::SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
    return true;  // then silence: the client waits for events
  });
  ClientOptions o = For(server);
  o.interrupt = &interrupt;
  auto c = MakeClient(o);
  std::thread stopper([&] {
    WaitFor([&] { return server.connections() == 1; }, seconds(10));
    interrupt = true;
  });
  Status s = c->Stream("/s", "", [](const SseEvent&) { return true; });
  stopper.join();
  EXPECT_EQ(s.code(), ErrorCode::kCancelled);
}

TEST(ApiClientTest, UrlEscapeKeepsUnreservedCharactersOnly) {
  EXPECT_EQ(UrlEscape("abc-._~XYZ09"), "abc-._~XYZ09");
  EXPECT_EQ(UrlEscape("a b/c?d&e=f%"), "a%20b%2Fc%3Fd%26e%3Df%25");
}

TEST(ApiClientTest, ErrorCodeForPrefersTheWireCode) {
  EXPECT_EQ(ErrorCodeFor(409, "already_exists"), ErrorCode::kAlreadyExists);
  EXPECT_EQ(ErrorCodeFor(409, ""), ErrorCode::kAborted);
  EXPECT_EQ(ErrorCodeFor(401, ""), ErrorCode::kUnauthenticated);
  EXPECT_EQ(ErrorCodeFor(403, ""), ErrorCode::kPermissionDenied);
  EXPECT_EQ(ErrorCodeFor(400, ""), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorCodeFor(500, ""), ErrorCode::kInternal);
}

// --- Settings ----------------------------------------------------------------------------

class CliSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"HOME", "AUTOMAN_SERVER", "AUTOMAN_TOKEN", "AUTOMAN_CA_FILE"}) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(name);
    }
    setenv("HOME", home_.path().c_str(), 1);
    std::filesystem::create_directories(home_.File(".config/automan"));
  }
  void TearDown() override {
    for (const auto& [name, v] : saved_) {
      if (v) {
        setenv(name.c_str(), v->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }
  std::string WriteConfig(const std::string& text, mode_t mode = 0600) {
    const std::string path = home_.File(".config/automan/cli.yaml");
    WriteFile(path, text);
    chmod(path.c_str(), mode);
    return path;
  }
  Result<ClientOptions> Resolve(const std::string& server_flag = "") {
    warnings_.clear();
    return ResolveClientOptions(server_flag, "", false, warnings_);
  }
  TempDir home_;
  std::vector<std::string> warnings_;
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST_F(CliSettingsTest, DefaultsWithoutFlagsEnvironmentOrConfig) {
  EXPECT_EQ(CliConfigPath(), home_.File(".config/automan/cli.yaml"));
  auto o = Resolve();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->server, "http://127.0.0.1:8080");
  EXPECT_EQ(o->token, "");
  EXPECT_TRUE(warnings_.empty());
}

TEST_F(CliSettingsTest, FlagBeatsEnvironmentBeatsConfig) {
  WriteConfig("# written by automan login\nserver: \"http://config:1\"\ntoken: from-file\n");
  auto o = Resolve();
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->server, "http://config:1");
  EXPECT_EQ(o->token, "from-file");
  setenv("AUTOMAN_SERVER", "http://env:2", 1);
  EXPECT_EQ(Resolve()->server, "http://env:2");
  EXPECT_EQ(Resolve("http://flag:3")->server, "http://flag:3");
  setenv("AUTOMAN_TOKEN", "from-env", 1);
  EXPECT_EQ(Resolve()->token, "from-env");
}

TEST_F(CliSettingsTest, TheConfigTokenIsNeverSentToAnotherServer) {
  WriteConfig("server: http://config:1/\ntoken: from-file\n");
  EXPECT_EQ(Resolve("HTTP://CONFIG:1")->token, "from-file");
  EXPECT_EQ(Resolve("http://elsewhere:1")->token, "");
  WriteConfig("token: anywhere\n");  // no server named: the token goes with any server
  EXPECT_EQ(Resolve("http://elsewhere:1")->token, "anywhere");
}

TEST_F(CliSettingsTest, AConfigFileOpenToOthersIsNotRead) {
  const std::string path = WriteConfig("token: leaked\n", 0644);
  auto o = Resolve();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->token, "");
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_THAT(warnings_[0], HasSubstr("chmod 600 " + path));
  EXPECT_THAT(warnings_[0], HasSubstr("0644"));
  auto direct = ReadCliConfig(path);
  EXPECT_EQ(direct.status().code(), ErrorCode::kPermissionDenied);
}

TEST_F(CliSettingsTest, WrittenConfigIsPrivateAndReadsBack) {
  const std::string path = home_.File("new/dir/cli.yaml");
  ASSERT_TRUE(WriteCliConfig(path, {"http://127.0.0.1:9", "amt_secret"}).ok());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = ReadCliConfig(path);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->server, "http://127.0.0.1:9");
  EXPECT_EQ(back->token, "amt_secret");
  EXPECT_FALSE(WriteCliConfig(path, {"http://x\ntoken: evil", ""}).ok());
}

TEST_F(CliSettingsTest, AMalformedConfigLineIsAnError) {
  const std::string path = WriteConfig("server http://x\n");
  auto o = ReadCliConfig(path);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(o.status().message(), HasSubstr(path + ":1"));
  EXPECT_TRUE(ReadCliConfig(home_.File("missing.yaml")).ok());
}

}  // namespace
}  // namespace automan::client
