// Hostile input against a real `automan server`: every malformed, oversized, slow or
// garbage request gets a specific 4xx (or its connection is cut off), never a crash, a hang
// or a half-created run. After each case the test checks that no run exists and that the
// server still answers /healthz. Each response status is printed to the test log.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <map>

#include "api/api_fixture.h"

namespace automan::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

class HostileE2eTest : public ApiFixture {
 protected:
  // The common server: no workers (nothing must run anyway), a 64 KiB body limit, 1 s to
  // send a request.
  void StartHostile(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--workers",         "0", "--max-body-bytes", "65536",
                                     "--request-timeout", "1s"};
    args.insert(args.end(), extra.begin(), extra.end());
    StartServer(args);
  }
  // A request on a fresh connection.
  HttpResult Send(const std::string& name, const std::string& method, const std::string& target,
                  const std::string& body, const Headers& headers = {}) {
    HttpTestClient c(port());
    HttpResult r = c.Request(method, target, body, headers);
    Print(name, r);
    return r;
  }
  // Raw bytes on a fresh connection, and whatever answer comes.
  HttpResult SendRaw(const std::string& name, const std::string& bytes,
                     milliseconds timeout = seconds(10)) {
    HttpTestClient c(port());
    HttpResult r;
    if (!c.SendRaw(bytes)) {
      r.error = "the server closed the connection while we sent";
      r.closed = true;
    } else {
      r = c.ReadResponse(timeout);
    }
    Print(name, r);
    return r;
  }
  static void Print(const std::string& name, const HttpResult& r) {
    std::printf("[hostile] %-40s -> %s\n", name.c_str(),
                r.status != 0 ? std::to_string(r.status).c_str() : ("cut off: " + r.error).c_str());
    std::fflush(stdout);
  }
  // No run was created, and the server is alive and answering.
  void ExpectUnharmed() {
    ASSERT_TRUE(server_->Alive()) << "the server died; log:\n" << server_->Log();
    HttpTestClient c(port());
    HttpResult r = c.Get("/healthz");
    EXPECT_EQ(r.status, 200) << r.Describe();
    r = c.Get("/api/v1/queue/stats");
    ASSERT_EQ(r.status, 200) << r.Describe();
    EXPECT_EQ(I(JsonObject(r), "total"), 0) << "a run was created: " << r.body;
  }
  void ExpectError(const HttpResult& r, int status, const std::string& code,
                   const std::string& message_part = "") {
    EXPECT_EQ(r.status, status) << r.Describe();
    if (r.status != status) return;
    json::object e = ErrorOf(r);
    EXPECT_EQ(S(e, "code"), code) << r.Describe();
    if (!message_part.empty()) {
      EXPECT_THAT(S(e, "message"), HasSubstr(message_part));
    }
  }
};

// The test clients' default headers (the admin's bearer token) as raw header lines.
std::string DefaultHeaderLines() {
  std::string out;
  for (const auto& [k, v] : DefaultTestHeaders()) out += k + ": " + v + "\r\n";
  return out;
}

std::string Get(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + DefaultHeaderLines() + extra_headers +
         "\r\n";
}

std::string Post(const std::string& target, const std::string& body) {
  return "POST " + target + " HTTP/1.1\r\nHost: x\r\n" + DefaultHeaderLines() +
         "Content-Type: application/json\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST_F(HostileE2eTest, MalformedJsonBodies) {
  StartHostile();
  for (const char* body :
       {"{", R"({"runbook":"lines",})", R"({"runbook":'lines'})", R"({"runbook":"lines"} trailing)",
        "{\"runbook\":\"lines\"\x01}", R"({"runbook":"lines","params":{"n":1,}})", "nul\0l",
        R"({"runbook":"lines" "params":{}})"}) {
    HttpResult r = Send(std::string("malformed JSON: ") + body, "POST", "/api/v1/runs", body);
    ExpectError(r, 400, "invalid_argument", "JSON");
  }
  HttpResult r = Send("empty body", "POST", "/api/v1/runs", "");
  ExpectError(r, 400, "invalid_argument", "empty");
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, JsonThatIsNotAnObject) {
  StartHostile();
  for (const char* body :
       {"[1,2,3]", R"("lines")", "42", "null", "true", R"([{"runbook":"lines"}])"}) {
    HttpResult r = Send(std::string("not an object: ") + body, "POST", "/api/v1/runs", body);
    ExpectError(r, 400, "invalid_argument", "JSON object");
    r = Send(std::string("batch, not an object: ") + body, "POST", "/api/v1/runs/batch", body);
    ExpectError(r, 400, "invalid_argument", "JSON object");
    r = Send(std::string("schedule, not an object: ") + body, "POST", "/api/v1/schedules", body);
    ExpectError(r, 400, "invalid_argument", "JSON object");
  }
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, WrongTypesNameTheField) {
  StartHostile();
  struct Case {
    const char* body;
    const char* field;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"runbook":"lines","priority":"high"})", "priority"},
           {R"({"runbook":"lines","priority":1.5})", "priority"},
           {R"({"runbook":"lines","priority":99999999999999999999})", "priority"},
           {R"({"runbook":5})", "runbook"},
           {R"({"runbook":["lines"]})", "runbook"},
           {R"({"runbook":"lines","params":"n=1"})", "params"},
           {R"({"runbook":"lines","params":{"n":{"deep":1}}})", "n"},
           {R"({"runbook":"lines","params":{"n":[1]}})", "n"},
           {R"({"runbook":"lines","params":{"n":1.5}})", "n"},
           {R"({"runbook":"lines","idempotency_key":7})", "idempotency_key"},
           {R"({"runbook":"lines","not_before":12345})", "not_before"},
           {R"({"runbook":"lines","max_attempts":"3"})", "max_attempts"},
           {R"({"runbook":"lines","max_attempts":-1})", "max_attempts"},
       }) {
    HttpResult r = Send(std::string("wrong type: ") + c.body, "POST", "/api/v1/runs", c.body);
    ExpectError(r, 400, "invalid_argument", c.field);
  }
  HttpResult r = Send("schedule paused as a string", "POST", "/api/v1/schedules",
                      R"({"runbook":"lines","id":"x","cron":"0 * * * *","paused":"yes"})");
  ExpectError(r, 400, "invalid_argument", "paused");
  EXPECT_EQ(http().Get("/api/v1/schedules/lines/x").status, 404) << "half-created schedule";
  r = Send("dry-run params as a list", "POST", "/api/v1/runbooks/lines/dry-run",
           R"({"params":[1]})");
  ExpectError(r, 400, "invalid_argument", "params");
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, UnknownFieldsAreRefusedByName) {
  StartHostile();
  HttpResult r =
      Send("unknown field", "POST", "/api/v1/runs", R"({"runbook":"lines","prority":3})");
  ExpectError(r, 400, "invalid_argument", "\"prority\"");
  r = Send("unknown field in a batch entry", "POST", "/api/v1/runs/batch",
           R"({"runs":[{"runbook":"lines"},{"runbook":"lines","colour":"red"}]})");
  ExpectError(r, 400, "invalid_argument", "colour");
  r = Send("unknown top-level batch field", "POST", "/api/v1/runs/batch",
           R"({"runs":[{"runbook":"lines"}],"atomic":true})");
  ExpectError(r, 400, "invalid_argument", "atomic");
  r = Send("unknown schedule field", "POST", "/api/v1/schedules",
           R"({"runbook":"lines","id":"x","cron":"0 * * * *","timezone":"UTC"})");
  ExpectError(r, 400, "invalid_argument", "timezone");
  r = Send("unknown dst field", "POST", "/api/v1/schedules",
           R"({"runbook":"lines","id":"x","cron":"0 * * * *","dst":{"gaps":"skip"}})");
  ExpectError(r, 400, "invalid_argument", "gaps");
  r = Send("unknown dry-run field", "POST", "/api/v1/runbooks/lines/dry-run",
           R"({"params":{},"verbose":true})");
  ExpectError(r, 400, "invalid_argument", "verbose");
  r = Send("unknown param", "POST", "/api/v1/runs", R"({"runbook":"lines","params":{"m":1}})");
  ExpectError(r, 400, "invalid_argument", "\"m\"");
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, BodiesOverTheLimitAreRefused) {
  StartServer({"--workers", "0", "--max-body-bytes", "4096", "--request-timeout", "1s"});
  // Chunked bodies are counted as they arrive.
  std::string chunked =
      "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 10; ++i) chunked += "400\r\n" + std::string(1024, ' ') + "\r\n";
  chunked += "0\r\n\r\n";
  HttpResult r = SendRaw("chunked body of 10 KiB", chunked);
  ExpectError(r, 413, "payload_too_large");
  EXPECT_TRUE(r.closed) << "the connection is closed after a 413";
  // A declared length over the limit is refused before the body is read (413 expected:
  // see ADeclaredLengthOverTheLimitAnswers413).
  std::string big = R"({"runbook":"lines","idempotency_key":")" + std::string(5000, 'k') + "\"}";
  r = SendRaw("body of 5 KB over a 4 KiB limit", Post("/api/v1/runs", big));
  EXPECT_THAT(r.status, AnyOf(400, 413)) << r.Describe();
  EXPECT_TRUE(r.closed);
  // Just under the limit is fine.
  std::string fits = R"({"runbook":"lines","params":{"n":1}})" + std::string(3000, ' ');
  r = SendRaw("body of 3 KB", Post("/api/v1/runs", fits));
  EXPECT_EQ(r.status, 201) << r.Describe();
  ASSERT_TRUE(server_->Alive());
  EXPECT_EQ(RunCount(), 1);
  EXPECT_EQ(http().Get("/healthz").status, 200);
}

// DISABLED: fails today (answers 400 "malformed request"). Beast reports a Content-Length
// above body_limit while reading the header (http::error::body_limit from
// async_read_header), and server/http_server.cpp maps every header error but header_limit
// to 400. Fix: map http::error::body_limit from the header read to 413 too.
TEST_F(HostileE2eTest, ADeclaredLengthOverTheLimitAnswers413) {
  StartServer({"--workers", "0", "--max-body-bytes", "4096", "--request-timeout", "1s"});
  std::string big = R"({"runbook":"lines","idempotency_key":")" + std::string(5000, 'k') + "\"}";
  HttpResult r = SendRaw("body of 5 KB over a 4 KiB limit", Post("/api/v1/runs", big));
  ExpectError(r, 413, "payload_too_large");
  // The declared length alone is enough: nothing of a 1 GB body needs to arrive.
  r = SendRaw("Content-Length: 1 GB, no body",
              "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
  ExpectError(r, 413, "payload_too_large");
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, DeepNestingAnswers400) {
  StartHostile();
  const int depth = 10000;
  std::string arrays = std::string(depth, '[') + std::string(depth, ']');
  HttpResult r = Send("10,000 nested arrays", "POST", "/api/v1/runs", arrays);
  ExpectError(r, 400, "invalid_argument", "deep");
  std::string in_params = R"({"runbook":"lines","params":{"n":)" + arrays + "}}";
  r = Send("10,000 nested arrays in params", "POST", "/api/v1/runs", in_params);
  ExpectError(r, 400, "invalid_argument", "deep");
  std::string objects;
  for (int i = 0; i < 5000; ++i) objects += R"({"a":)";
  objects += "1" + std::string(5000, '}');
  r = Send("5,000 nested objects", "POST", "/api/v1/runs/batch", objects);
  ExpectError(r, 400, "invalid_argument", "deep");
  // Unclosed: deep and incomplete.
  r = Send("10,000 unclosed arrays", "POST", "/api/v1/schedules", std::string(depth, '['));
  ExpectError(r, 400, "invalid_argument");
  // 32 levels are still fine for the parser (and refused for what they say).
  std::string ok =
      R"({"runbook":"lines","params":{"n":)" + std::string(29, '[') + std::string(29, ']') + "}}";
  r = Send("29 nested arrays in params", "POST", "/api/v1/runs", ok);
  ExpectError(r, 400, "invalid_argument", "\"n\"");
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, InvalidUtf8InsideJsonStringsAnswers400) {
  StartHostile();
  struct Case {
    const char* name;
    std::string bytes;
  };
  for (const Case& c : std::vector<Case>{
           {"lone continuation byte", "\x80"},
           {"0xFF", "\xff\xfe"},
           {"overlong slash", "\xc0\xaf"},
           {"UTF-8 encoded surrogate", "\xed\xa0\x80"},
           {"truncated 3-byte sequence", "\xe2\x82"},
           {"code point over U+10FFFF", "\xf4\x90\x80\x80"},
       }) {
    std::string body = R"({"runbook":"lines","idempotency_key":"a)" + c.bytes + "b\"}";
    HttpResult r = Send(std::string("invalid UTF-8: ") + c.name, "POST", "/api/v1/runs", body);
    ExpectError(r, 400, "invalid_argument", "malformed JSON");
  }
  HttpResult r = Send("lone surrogate escape", "POST", "/api/v1/runs",
                      R"({"runbook":"lines","idempotency_key":"\ud800"})");
  ExpectError(r, 400, "invalid_argument");
  r = Send("invalid UTF-8 in a key", "POST", "/api/v1/runs",
           "{\"run\xff"
           "book\":\"lines\"}");
  ExpectError(r, 400, "invalid_argument");
  ExpectUnharmed();
}

// DISABLED: fails today. The message is "malformed JSON body: syntax error", while
// api/wire.h promises one that says what is wrong (invalid UTF-8) and where. Fix in
// api/wire.cpp ParseBodyObject: keep the offset p.write() returns and, on error, say
// "invalid UTF-8 at byte N" when the bytes there are not UTF-8 ("syntax error at byte N"
// otherwise).
TEST_F(HostileE2eTest, InvalidUtf8IsNamedInTheMessage) {
  StartHostile();
  for (const std::string bad : {"\x80", "\xc0\xaf", "\xed\xa0\x80"}) {
    std::string body = R"({"runbook":"lines","idempotency_key":"a)" + bad + "b\"}";
    HttpResult r = Send("invalid UTF-8", "POST", "/api/v1/runs", body);
    ExpectError(r, 400, "invalid_argument", "UTF-8");
  }
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, UnknownRoutesAndMethods) {
  StartHostile();
  ExpectError(Send("unknown route", "GET", "/api/v1/nothing-here", ""), 404, "not_found");
  ExpectError(Send("unknown version", "POST", "/api/v9/runs", "{}"), 404, "not_found");
  ExpectError(Send("path traversal", "GET", "/api/v1/../../etc/passwd", ""), 404, "not_found");
  ExpectError(Send("encoded traversal in a runbook id", "GET",
                   "/api/v1/runbooks/..%2F..%2Fetc%2Fpasswd", ""),
              404, "not_found");
  ExpectError(Send("encoded traversal in a run id", "DELETE", "/api/v1/runs/..%2F..%2Fdata", ""),
              404, "not_found");
  ExpectError(Send("NUL in a path", "GET", "/api/v1/runbooks/lines%00.yaml", ""), 404, "not_found");
  ExpectError(Send("double slash", "GET", "/api/v1//runs", ""), 404, "not_found");
  HttpResult r = Send("PATCH a collection", "PATCH", "/api/v1/runs", "{}");
  ExpectError(r, 405, "method_not_allowed");
  EXPECT_NE(r.Header("allow"), nullptr);
  r = Send("invented method", "BREW", "/api/v1/runs", "");
  EXPECT_THAT(r.status, AnyOf(400, 405, 501)) << r.Describe();
  r = Send("TRACE", "TRACE", "/healthz", "");
  EXPECT_THAT(r.status, AnyOf(405, 501)) << r.Describe();
  r = Send("POST the version", "POST", "/api/v1/version", R"({"version":"9"})");
  ExpectError(r, 405, "method_not_allowed");
  r = Send("DELETE every run", "DELETE", "/api/v1/runs", "");
  ExpectError(r, 405, "method_not_allowed");
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, DuplicateContentLengthsWithDifferentValues) {
  StartHostile();
  HttpResult r = SendRaw("two different Content-Lengths",
                         "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n"
                         "Content-Length: 2\r\n\r\n{\"runbook\":\"lines\"}");
  ExpectError(r, 400, "bad_request");
  EXPECT_TRUE(r.closed) << "a request we cannot frame ends the connection";
  r = SendRaw("Content-Length list",
              "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\n"
              "Content-Length: 20, 2\r\n\r\n{\"runbook\":\"lines\"}");
  ExpectError(r, 400, "bad_request");
  r = SendRaw("Content-Length and chunked",
              "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n"
              "Transfer-Encoding: chunked\r\n\r\n14\r\n{\"runbook\":\"lines\"}\r\n0\r\n\r\n");
  ExpectError(r, 400, "bad_request");
  r = SendRaw("negative Content-Length",
              "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}");
  ExpectError(r, 400, "bad_request");
  r = SendRaw("Content-Length not a number",
              "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: twenty\r\n\r\n{}");
  ExpectError(r, 400, "bad_request");
  r = SendRaw("bad chunk size",
              "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\n"
              "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n");
  ExpectError(r, 400, "bad_request");
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, HeaderFloodAnswers431) {
  StartHostile();
  std::string headers;
  for (int i = 0; i < 1000; ++i) {
    headers += "X-Flood-" + std::to_string(i) + ": " + std::string(90, 'a') + "\r\n";
  }
  HttpResult r = SendRaw("1,000 headers, 100 KB", Get("/healthz", headers));
  if (r.status != 0) {
    ExpectError(r, 431, "headers_too_large");
  } else {
    EXPECT_TRUE(r.closed) << r.error;
  }
  r = SendRaw("one 100 KB header", Get("/healthz", "X-Big: " + std::string(100000, 'b') + "\r\n"));
  if (r.status != 0) ExpectError(r, 431, "headers_too_large");
  r = SendRaw("a 100 KB target", Get("/api/v1/runs?q=" + std::string(100000, 'q')));
  if (r.status != 0) {
    EXPECT_THAT(r.status, AnyOf(414, 431)) << r.Describe();
  }
  // Many small headers under the limit are fine.
  std::string some;
  for (int i = 0; i < 50; ++i) some += "X-Ok-" + std::to_string(i) + ": 1\r\n";
  r = SendRaw("50 small headers", Get("/healthz", some));
  EXPECT_EQ(r.status, 200) << r.Describe();
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, BadRequestTargets) {
  StartHostile();
  for (const char* target : {"/api/v1/runs/%zz", "/api/v1/runs/%4", "/api/v1/runs/%",
                             "/api/v1/runs?status=%G0", "/api/v1/runs?%=x"}) {
    HttpResult r = SendRaw(std::string("bad percent-escape ") + target, Get(target));
    ExpectError(r, 400, "bad_request", "percent");
  }
  // Absolute form (RFC 9112 3.2.2) is not supported by this server: a clear 400.
  HttpResult r = SendRaw("absolute-form target",
                         Get("http://127.0.0.1:" + std::to_string(port()) + "/healthz"));
  ExpectError(r, 400, "bad_request");
  r = SendRaw("asterisk-form target", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 400) << r.Describe();
  r = SendRaw("authority-form target", "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(r.status, AnyOf(400, 405)) << r.Describe();
  r = SendRaw("space in the target", "GET /api/v1/runs x HTTP/1.1\r\nHost: x\r\n\r\n");
  ExpectError(r, 400, "bad_request");
  r = SendRaw("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  if (r.status != 0) {
    EXPECT_EQ(r.status, 400) << r.Describe();
  }
  r = SendRaw("HTTP/3.0", "GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n");
  if (r.status != 0) {
    EXPECT_EQ(r.status, 400) << r.Describe();
  }
  r = SendRaw("control character in a header",
              "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n");
  if (r.status != 0) {
    EXPECT_EQ(r.status, 400) << r.Describe();
  }
  r = SendRaw("header without a colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n");
  ExpectError(r, 400, "bad_request");
  r = SendRaw("bare LF line ends", "GET /healthz HTTP/1.1\nHost: x\n\n", seconds(3));
  if (r.status != 0) {
    EXPECT_THAT(r.status, AnyOf(200, 400)) << r.Describe();
  }
  // Out-of-range numbers in queries.
  for (const char* target : {"/api/v1/runs?limit=99999999999999999999", "/api/v1/runs?limit=-1",
                             "/api/v1/runs/01a23acc-a6d9-7000-a725-2c76cf27bd5c/logs?cursor="
                             "1.99999999999999999999"}) {
    HttpResult q = SendRaw(std::string("out of range: ") + target, Get(target));
    EXPECT_THAT(q.status, AnyOf(400, 404)) << q.Describe();
  }
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, AnHttp10RequestAndAKeepAliveAfterAnErrorStillWork) {
  StartHostile();
  HttpResult r = SendRaw("HTTP/1.0", "GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.Describe();
  // A 4xx the handler answers keeps the connection usable.
  HttpTestClient c(port());
  r = c.Post("/api/v1/runs", "{");
  EXPECT_EQ(r.status, 400);
  r = c.Get("/healthz");
  EXPECT_EQ(r.status, 200) << r.Describe();
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, PipelinedRequestsAnswerInOrder) {
  StartHostile();
  // Three requests in one write are answered in order.
  TcpConnection conn;
  ASSERT_TRUE(conn.Connect(port()));
  ASSERT_TRUE(conn.Send(Get("/healthz") + Get("/api/v1/nope") + Get("/api/v1/runbooks/lines")));
  std::string buf;
  std::vector<int> statuses;
  for (int i = 0; i < 3; ++i) statuses.push_back(ReadHttpResponse(conn, buf, seconds(10)).status);
  EXPECT_EQ(statuses, (std::vector<int>{200, 404, 200}));
  ExpectUnharmed();
}

// DISABLED: fails today. HEAD has no route, so it answers 405 — with the JSON error as
// content, which RFC 9110 9.3.2 forbids: the client reads those bytes as the start of the
// next response on the connection (request/response desync). Fix in
// server/http_server.cpp: for HEAD, dispatch as GET (RFC 9110 9.1: general-purpose servers
// MUST support HEAD) and write only the header (http::response_serializer +
// async_write_header), keeping Content-Length.
TEST_F(HostileE2eTest, HeadAnswersCarryNoContent) {
  StartHostile();
  HttpTestClient c(port());
  HttpResult r = c.Request("HEAD", "/healthz");
  Print("HEAD /healthz", r);
  EXPECT_EQ(r.status, 200) << r.Describe();
  r = c.Get("/healthz");
  Print("GET after HEAD on one connection", r);
  EXPECT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.body, R"({"status":"ok"})");
  ExpectUnharmed();
}

// DISABLED: fails today: the run is cancelled. api/http.cpp SplitTarget percent-decodes the
// whole path before the router splits it into segments, so "%2F" becomes a separator.
// Fix: split the raw path on '/' first and decode each segment (router.cpp MatchSegments
// on decoded segments; a decoded '/' stays inside its parameter).
TEST_F(HostileE2eTest, AnEncodedSlashDoesNotReachAnotherRoute) {
  StartHostile();
  const std::string id = S(CreateRun("lines"), "id");
  // ".../ID%2Fcancel" names a run whose id contains a slash (none does): it must not be
  // routed as ".../ID/cancel", which would let a path-based rule in front of the server
  // see a different route than the one that runs.
  HttpResult r =
      Send("POST /api/v1/runs/ID%2Fcancel", "POST", "/api/v1/runs/" + id + "%2Fcancel", "");
  // "ID/cancel" is one segment: the run route, which takes no POST.
  EXPECT_THAT(r.status, AnyOf(400, 404, 405)) << r.Describe();
  json::object run = GetRun(id);
  EXPECT_EQ(run["cancel_requested"], json::value(false)) << json::serialize(run);
  EXPECT_EQ(S(run, "status"), "PENDING");
  r = Send("DELETE /api/v1/schedules/lines%2Fx/y", "DELETE", "/api/v1/schedules/lines%2Fx", "");
  EXPECT_THAT(r.status, AnyOf(400, 404, 405)) << r.Describe();
  ASSERT_TRUE(server_->Alive());
  EXPECT_EQ(http().Get("/healthz").status, 200);
}

TEST_F(HostileE2eTest, ASlowlorisClientIsCutOff) {
  StartHostile();
  // Headers one byte per 200 ms: 200 bytes would take 40 s; the server gives 1 s.
  std::string request =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(150, 's') + "\r\n\r\n";
  TcpConnection conn;
  ASSERT_TRUE(conn.Connect(port()));
  const auto t0 = std::chrono::steady_clock::now();
  size_t sent = 0;
  std::string got;
  while (sent < request.size()) {
    if (!conn.Send(request.substr(sent, 1))) break;
    ++sent;
    // Waiting for the server's answer (or close) is the 200 ms pause.
    if (conn.ReadSome(got, milliseconds(200)) == 0 && conn.eof()) break;
  }
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  std::printf("[hostile] %-40s -> cut off after %zu of %zu bytes, %lld ms%s\n", "slowloris", sent,
              request.size(),
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(elapsed).count()),
              got.empty() ? "" : (" (answered: " + got.substr(0, got.find('\r')) + ")").c_str());
  EXPECT_LT(sent, request.size()) << "the server waited for the whole slow request";
  EXPECT_TRUE(conn.eof() || got.find("408") != std::string::npos);
  EXPECT_LT(elapsed, seconds(20)) << "cut off within a few request timeouts";
  if (!got.empty()) {
    EXPECT_THAT(got, ::testing::StartsWith("HTTP/1.1 408"));
  }
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, ASlowBodyIsCutOff) {
  StartHostile();
  TcpConnection conn;
  ASSERT_TRUE(conn.Connect(port()));
  ASSERT_TRUE(conn.Send("POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"));
  std::string got;
  size_t sent = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (sent < 99) {
    if (!conn.Send(" ")) break;
    ++sent;
    if (conn.ReadSome(got, milliseconds(200)) == 0 && conn.eof()) break;
    if (!got.empty()) break;
  }
  if (!conn.eof() && got.empty()) conn.ReadSome(got, seconds(5));
  std::printf("[hostile] %-40s -> %s after %zu body bytes\n", "slow body",
              got.empty() ? "cut off" : got.substr(0, got.find('\r')).c_str(), sent);
  EXPECT_LT(sent, 99u) << "the server waited for the whole slow body";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(20));
  if (!got.empty()) {
    EXPECT_THAT(got, ::testing::StartsWith("HTTP/1.1 408"));
  }
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, AConnectionThatSendsNothingIsClosed) {
  StartHostile();
  TcpConnection conn;
  ASSERT_TRUE(conn.Connect(port()));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(conn.WaitClosed(seconds(20))) << "an idle connection was kept open";
  std::printf(
      "[hostile] %-40s -> closed after %lld ms\n", "silent connection",
      static_cast<long long>(
          std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count()));
  // An idle keep-alive connection after a request is closed too (later: the idle timeout).
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, TwoHundredGarbageConnectionsThenANormalRequest) {
  StartHostile();
  std::vector<std::unique_ptr<TcpConnection>> conns;
  for (int i = 0; i < 200; ++i) {
    auto c = std::make_unique<TcpConnection>();
    ASSERT_TRUE(c->Connect(port())) << "connection " << i;
    conns.push_back(std::move(c));
  }
  // All open at once, each with different garbage: binary noise, a TLS hello, a half
  // request line, random printable junk with line ends.
  uint32_t seed = 12345;
  auto rnd = [&seed] {
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
  };
  for (int i = 0; i < 200; ++i) {
    std::string g;
    switch (i % 4) {
      case 0:
        for (int k = 0; k < 512; ++k) g.push_back(static_cast<char>(rnd() & 0xFF));
        break;
      case 1:
        g = std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(64, 'x');
        break;
      case 2:
        g = "GET /api/v1/runs HTTP/1.1\r\nHost";  // and then nothing
        break;
      default:
        for (int k = 0; k < 300; ++k) g.push_back(static_cast<char>(' ' + rnd() % 95));
        g += "\r\n\r\n";
        break;
    }
    conns[i]->Send(g);
  }
  std::map<std::string, int> outcomes;
  for (auto& c : conns) {
    std::string got;
    while (!c->eof() && c->ReadSome(got, seconds(10)) > 0) {
    }
    std::string what =
        got.empty() ? (c->eof() ? "closed" : "no answer") : got.substr(0, got.find('\r'));
    ++outcomes[what];
    EXPECT_TRUE(c->eof()) << "a garbage connection stayed open: " << what;
    EXPECT_TRUE(got.empty() || got.rfind("HTTP/1.1 4", 0) == 0) << what;
  }
  for (const auto& [what, n] : outcomes) {
    std::printf("[hostile] %-40s -> %d x %s\n", "garbage connections", n, what.c_str());
  }
  EXPECT_GE(outcomes["HTTP/1.1 400 Bad Request"], 50) << "noise answers 400";
  conns.clear();
  HttpResult r = http().Get("/api/v1/runbooks/lines");
  EXPECT_EQ(r.status, 200) << r.Describe();
  r = http().Post("/api/v1/runs/batch", R"({"runs":[{"runbook":"lines"}]})");
  EXPECT_EQ(r.status, 201) << r.Describe();
  EXPECT_EQ(RunCount(), 1);
  ASSERT_TRUE(server_->Alive());
  // What the garbage left in the metrics is still valid exposition format.
  r = http().Get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(
      r.body,
      HasSubstr(R"(automan_http_requests_total{method="-",route="bad_request",code="400"})"));
  WriteFile(dir_.File("metrics.txt"), r.body);
  if (RunCommand("command -v promtool >/dev/null 2>&1").exit_code == 0) {
    CommandResult check =
        RunCommand("promtool check metrics < " + dir_.File("metrics.txt") + " 2>&1");
    EXPECT_EQ(check.exit_code, 0) << check.out;
  } else {
    std::printf("promtool is not installed: the metrics were not linted\n");
  }
}

// DISABLED: fails today: 200 series. cli/server_command.cpp's on_request labels
// automan_http_requests_total with the client's method as sent, so every invented method
// (any token up to the header limit) adds a series with its text: unbounded memory and
// /metrics size. Fix: label methods outside GET HEAD POST PUT DELETE PATCH OPTIONS as
// "other".
TEST_F(HostileE2eTest, InventedMethodsDoNotGrowTheMetrics) {
  StartHostile({"--metrics-public"});
  // Every request is counted by method: a client inventing methods must not be able to
  // add a time series (and its label text) per request.
  for (int i = 0; i < 200; ++i) {
    HttpTestClient c(port());
    std::string method = std::string(200, 'X') + std::to_string(i);
    c.Request(method, "/healthz");
  }
  HttpResult r = http().Get("/metrics");
  ASSERT_EQ(r.status, 200);
  size_t series = 0;
  for (size_t at = 0; (at = r.body.find("\nautoman_http_requests_total{", at)) != std::string::npos;
       ++at) {
    ++series;
  }
  std::printf("[hostile] %-40s -> %zu series, /metrics is %zu bytes\n", "200 invented methods",
              series, r.body.size());
  EXPECT_LT(series, 20u) << "one series per invented method";
  EXPECT_LT(r.body.size(), 40000u);
  ExpectUnharmed();
}

TEST_F(HostileE2eTest, HostileStreamRequests) {
  StartHostile();
  const std::string missing = "/api/v1/runs/01a23acc-a6d9-7000-a725-2c76cf27bd5c/stream";
  SseReader sse(port(), missing);
  Print("stream of a missing run", sse.head());
  EXPECT_EQ(sse.head().status, 404);
  SseReader bad(port(), "/api/v1/stream", std::string(5000, '9'));
  Print("activity resume id of 5,000 nines", bad.head());
  EXPECT_EQ(bad.head().status, 200) << "a resume id it cannot use: reset, not an error";
  auto ev = bad.Next(seconds(30));
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->event, "reset");
  const std::string run_id = S(CreateRun("lines", {{"n", 1}}), "id");
  for (const char* id : {"1.x", "0.1", "-1.5", "1.-5", "99999999999999999999.1", ".", "1"}) {
    SseReader r(port(), "/api/v1/runs/" + run_id + "/stream", id);
    Print(std::string("run stream resume id ") + id, r.head());
    EXPECT_EQ(r.head().status, 400) << id << ": " << r.head().Describe();
  }
  // A WebSocket upgrade with a bad key or version is refused, not crashed on.
  HttpResult r = SendRaw("WebSocket without a key",
                         "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         seconds(5));
  EXPECT_NE(r.status, 101) << r.Describe();
  r = SendRaw("WebSocket version 8",
              "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 8\r\n\r\n",
              seconds(5));
  EXPECT_NE(r.status, 101) << r.Describe();
  ASSERT_TRUE(server_->Alive()) << server_->Log();
  EXPECT_EQ(http().Get("/healthz").status, 200);
  EXPECT_EQ(RunCount(), 1);
}

}  // namespace
}  // namespace automan::testing
