// Live streams of `automan server`, end to end: a run's log lines and status over
// Server-Sent Events and WebSocket (live, resumable with Last-Event-ID without gap or
// duplicate), the activity stream, stream caps, and a slow client that must not hold
// up anyone else.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/api_fixture.h"

namespace automan::testing {
namespace {

using ::testing::HasSubstr;

class StreamE2eTest : public ApiFixture {};

// A log event's "ATTEMPT.SEQ" id and text.
struct LogEv {
  std::string id;
  int64_t seq = 0;
  std::string text;
};

LogEv ParseLog(const std::string& id, const std::string& data) {
  json::error_code ec;
  json::value v = json::parse(data, ec);
  EXPECT_FALSE(ec) << data;
  json::object o = O(v);
  return {id, I(o, "seq"), S(o, "text")};
}

// Reads a run stream until `stop` says so or it ends. Appends log events to `logs`;
// returns the other events' names in order.
template <class Stop>
std::vector<std::string> ReadRunStream(SseReader& sse, std::vector<LogEv>& logs, Stop stop,
                                       milliseconds timeout = seconds(90)) {
  std::vector<std::string> others;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto ev = sse.Next(milliseconds(500));
    if (!ev) {
      if (sse.ended()) break;
      continue;
    }
    if (ev->event == "log") {
      logs.push_back(ParseLog(ev->id, ev->data));
    } else {
      others.push_back(ev->event + " " + ev->data);
    }
    if (stop(*ev, logs)) break;
  }
  return others;
}

// The union of two reads must be lines 1..N of the run, each once, in order.
void ExpectExactlyOnceInOrder(const std::vector<LogEv>& logs,
                              const std::vector<std::string>& texts) {
  ASSERT_EQ(logs.size(), texts.size());
  for (size_t i = 0; i < logs.size(); ++i) {
    EXPECT_EQ(logs[i].seq, static_cast<int64_t>(i) + 1) << "at " << i;
    EXPECT_EQ(logs[i].id, "1." + std::to_string(i + 1)) << "at " << i;
    EXPECT_EQ(logs[i].text, texts[i]) << "at " << i;
  }
}

std::vector<std::string> GatedTexts(int n, int m) {
  std::vector<std::string> t;
  for (int i = 1; i <= n; ++i) t.push_back("tick " + std::to_string(i));
  for (int i = 1; i <= m; ++i) t.push_back("after " + std::to_string(i));
  return t;
}

TEST_F(StreamE2eTest, SseDeliversLogLinesLiveAndEndsWithEnd) {
  StartServer();
  const std::string gate = Gate();
  const std::string id = S(CreateRun("gated", {{"n", 5}, {"m", 5}, {"gate", gate}}), "id");
  SseReader sse(port(), "/api/v1/runs/" + id + "/stream");
  ASSERT_TRUE(sse.ok()) << sse.head().Describe();
  EXPECT_THAT(*sse.head().Header("content-type"), HasSubstr("text/event-stream"));

  std::vector<LogEv> logs;
  std::vector<std::string> others =
      ReadRunStream(sse, logs, [](const SseEvent& e, auto&) { return e.event == "log"; });
  ASSERT_EQ(logs.size(), 1u) << "no live log line arrived";
  EXPECT_EQ(logs[0].text, "tick 1");
  EXPECT_GT(sse.retry_ms(), 0) << "the stream tells clients when to come back";
  // The run waits for the gate, so the line arrived while it was running.
  EXPECT_EQ(S(GetRun(id), "status"), "RUNNING");
  ASSERT_FALSE(others.empty());
  EXPECT_THAT(others[0], ::testing::StartsWith("run ")) << "a stream starts with the run";

  WriteFile(gate, "");
  std::vector<std::string> rest =
      ReadRunStream(sse, logs, [](const SseEvent& e, auto&) { return e.event == "end"; });
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back(), R"(end {"status":"SUCCESS"})");
  // The last run event shows the end state.
  std::string last_run;
  for (const auto& e : rest) {
    if (e.rfind("run ", 0) == 0) last_run = e.substr(4);
  }
  EXPECT_EQ(S(O(json::parse(last_run)), "status"), "SUCCESS") << last_run;
  ExpectExactlyOnceInOrder(logs, GatedTexts(5, 5));
  EXPECT_FALSE(sse.Next(seconds(10)).has_value());
  EXPECT_TRUE(sse.ended()) << "the server closes the stream after end";
}

TEST_F(StreamE2eTest, SseResumesWithLastEventIdWithoutGapOrDuplicate) {
  StartServer();
  const std::string gate = Gate();
  const int n = 40, m = 3000;
  const std::string id = S(CreateRun("gated", {{"n", n}, {"m", m}, {"gate", gate}}), "id");
  std::vector<LogEv> logs;
  {
    SseReader first(port(), "/api/v1/runs/" + id + "/stream");
    ASSERT_TRUE(first.ok()) << first.head().Describe();
    ReadRunStream(first, logs, [](const SseEvent&, auto& l) { return l.size() >= 10; });
    ASSERT_EQ(logs.size(), 10u);
  }  // disconnects midway
  // Open the gate and come back while the run floods its "after" lines: the resumed
  // stream reads the store first, then the live ring.
  WriteFile(gate, "");
  SseReader second(port(), "/api/v1/runs/" + id + "/stream", logs.back().id);
  ASSERT_TRUE(second.ok()) << second.head().Describe();
  std::vector<std::string> others =
      ReadRunStream(second, logs, [](const SseEvent& e, auto&) { return e.event == "end"; });
  ASSERT_FALSE(others.empty());
  EXPECT_EQ(others.back(), R"(end {"status":"SUCCESS"})");
  ExpectExactlyOnceInOrder(logs, GatedTexts(n, m));

  // Resuming a finished run from the middle reads the rest from the store.
  std::vector<LogEv> tail;
  SseReader third(port(), "/api/v1/runs/" + id + "/stream", "1." + std::to_string(n + m - 5));
  ASSERT_TRUE(third.ok());
  ReadRunStream(third, tail, [](const SseEvent& e, auto&) { return e.event == "end"; });
  ASSERT_EQ(tail.size(), 5u);
  EXPECT_EQ(tail.front().seq, n + m - 4);
  EXPECT_EQ(tail.back().text, "after " + std::to_string(m));

  // A resume id that is not one of this stream's answers 400.
  SseReader bad(port(), "/api/v1/runs/" + id + "/stream", "yesterday");
  EXPECT_EQ(bad.head().status, 400) << bad.head().Describe();
  SseReader missing(port(), "/api/v1/runs/01a23acc-a6d9-7000-a725-2c76cf27bd5c/stream");
  EXPECT_EQ(missing.head().status, 404) << missing.head().Describe();
}

// A WebSocket message: {"id": "1.7" | null, "event": "log", "data": {...}}.
struct WsEv {
  std::string id, event;
  json::value data;
};
WsEv ParseWs(const std::string& msg) {
  json::error_code ec;
  json::value v = json::parse(msg, ec);
  EXPECT_FALSE(ec) << msg;
  json::object o = O(v);
  WsEv e;
  e.id = S(o, "id");
  e.event = S(o, "event");
  e.data = o.contains("data") ? o["data"] : json::value(nullptr);
  return e;
}

TEST_F(StreamE2eTest, WebSocketStreamsAndResumesWithLastEventIdQuery) {
  StartServer();
  const std::string gate = Gate();
  const int n = 30, m = 500;
  const std::string id = S(CreateRun("gated", {{"n", n}, {"m", m}, {"gate", gate}}), "id");
  std::vector<LogEv> logs;
  {
    WsClient ws(port(), "/api/v1/runs/" + id + "/stream");
    ASSERT_TRUE(ws.ok()) << ws.head().Describe();
    bool saw_run = false;
    while (logs.size() < 10) {
      auto msg = ws.Next(seconds(60));
      ASSERT_TRUE(msg.has_value()) << "closed=" << ws.closed();
      WsEv e = ParseWs(*msg);
      if (e.event == "run") saw_run = true;
      if (e.event == "log") {
        logs.push_back({e.id, I(O(e.data), "seq"), S(O(e.data), "text")});
      }
    }
    EXPECT_TRUE(saw_run);
    EXPECT_EQ(S(GetRun(id), "status"), "RUNNING") << "the lines arrived live";
    ws.Close();  // a masked close frame, midway
  }
  WriteFile(gate, "");
  WsClient ws(port(), "/api/v1/runs/" + id + "/stream?last_event_id=" + logs.back().id);
  ASSERT_TRUE(ws.ok()) << ws.head().Describe();
  std::string end;
  const auto deadline = std::chrono::steady_clock::now() + seconds(90);
  while (std::chrono::steady_clock::now() < deadline) {
    auto msg = ws.Next(seconds(1));
    if (!msg) {
      if (ws.closed()) break;
      continue;
    }
    WsEv e = ParseWs(*msg);
    if (e.event == "log") logs.push_back({e.id, I(O(e.data), "seq"), S(O(e.data), "text")});
    if (e.event == "end") end = json::serialize(e.data);
  }
  EXPECT_EQ(end, R"({"status":"SUCCESS"})");
  EXPECT_TRUE(ws.closed());
  EXPECT_EQ(ws.close_code(), 1000) << "a normal close after end";
  ExpectExactlyOnceInOrder(logs, GatedTexts(n, m));
}

TEST_F(StreamE2eTest, ActivityStreamFollowsARunAndResumes) {
  StartServer();
  SseReader sse(port(), "/api/v1/stream");
  ASSERT_TRUE(sse.ok()) << sse.head().Describe();
  const std::string id = S(CreateRun("lines", {{"n", 1}}), "id");
  // run id -> statuses in order, with their event ids.
  std::vector<std::pair<std::string, std::string>> seen;  // (event id, status)
  const auto deadline = std::chrono::steady_clock::now() + seconds(90);
  while (std::chrono::steady_clock::now() < deadline &&
         (seen.empty() || seen.back().second != "SUCCESS")) {
    auto ev = sse.Next(milliseconds(500));
    if (!ev) {
      ASSERT_FALSE(sse.ended());
      continue;
    }
    ASSERT_EQ(ev->event, "run") << ev->data;
    json::object o = O(json::parse(ev->data));
    EXPECT_EQ(S(o, "type"), "run");
    json::object run = O(o["run"]);
    if (S(run, "id") != id) continue;
    if (seen.empty() || seen.back().second != S(run, "status")) {
      seen.emplace_back(ev->id, S(run, "status"));
    }
  }
  std::vector<std::string> statuses;
  for (const auto& [eid, st] : seen) statuses.push_back(st);
  EXPECT_EQ(statuses, (std::vector<std::string>{"PENDING", "RUNNING", "SUCCESS"}));
  ASSERT_EQ(seen.size(), 3u);
  // Ids are EPOCH-SEQ, increasing.
  const std::string epoch = seen[0].first.substr(0, seen[0].first.find('-'));
  EXPECT_EQ(epoch.size(), 12u) << seen[0].first;
  auto seq = [](const std::string& eid) { return std::stoull(eid.substr(eid.find('-') + 1)); };
  EXPECT_LT(seq(seen[0].first), seq(seen[1].first));
  EXPECT_LT(seq(seen[1].first), seq(seen[2].first));
  sse.Close();

  // Resuming after PENDING replays what came after it.
  SseReader again(port(), "/api/v1/stream", seen[0].first);
  ASSERT_TRUE(again.ok());
  std::vector<std::string> replayed;
  while (replayed.empty() || replayed.back() != "SUCCESS") {
    auto ev = again.Next(seconds(30));
    ASSERT_TRUE(ev.has_value()) << "replay stopped after " << replayed.size();
    ASSERT_EQ(ev->event, "run") << ev->data;
    json::object run = O(O(json::parse(ev->data))["run"]);
    if (S(run, "id") == id) replayed.push_back(S(run, "status"));
  }
  EXPECT_EQ(replayed.front(), "RUNNING");
  EXPECT_EQ(replayed.back(), "SUCCESS");

  // An id of another epoch (a restarted server) gets a reset.
  SseReader other(port(), "/api/v1/stream", "0123456789ab-1");
  ASSERT_TRUE(other.ok());
  auto ev = other.Next(seconds(30));
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->event, "reset");
  EXPECT_THAT(ev->data, HasSubstr("reload"));
  SseReader future(port(), "/api/v1/stream", epoch + "-999999999");
  ASSERT_TRUE(future.ok());
  ev = future.Next(seconds(30));
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->event, "reset") << "an id from the future cannot be resumed either";
}

TEST_F(StreamE2eTest, ARunStreamFollowsEveryAttempt) {
  StartServer();
  const std::string id = S(CreateRun("always-fails"), "id");
  SseReader sse(port(), "/api/v1/runs/" + id + "/stream");
  ASSERT_TRUE(sse.ok()) << sse.head().Describe();
  std::vector<LogEv> logs;
  std::vector<std::string> others =
      ReadRunStream(sse, logs, [](const SseEvent& e, auto&) { return e.event == "end"; });
  ASSERT_FALSE(others.empty());
  EXPECT_EQ(others.back(), R"(end {"status":"DEAD"})");
  std::vector<std::string> got;
  for (const auto& l : logs) got.push_back(l.id + " " + l.text);
  EXPECT_EQ(got, (std::vector<std::string>{"1.1 attempt 1 fails", "2.1 attempt 2 fails",
                                           "3.1 attempt 3 fails"}));
  // Resuming inside the second attempt gives the rest.
  SseReader again(port(), "/api/v1/runs/" + id + "/stream", "2.1");
  std::vector<LogEv> rest;
  ReadRunStream(again, rest, [](const SseEvent& e, auto&) { return e.event == "end"; });
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, "3.1");
}

TEST_F(StreamE2eTest, ActivityResumeFromDroppedEventsGetsAReset) {
  StartServer({"--workers", "0"});
  std::string first;
  {
    SseReader sse(port(), "/api/v1/stream");
    ASSERT_TRUE(sse.ok());
    CreateRun("lines");
    auto ev = sse.Next(seconds(30));
    ASSERT_TRUE(ev.has_value());
    first = ev->id;
  }
  // The ring holds the last 10,000 changes: push more than that after `first`.
  json::array batch;
  for (int i = 0; i < 5001; ++i) batch.push_back(json::object{{"runbook", "lines"}});
  const std::string body = json::serialize(json::object{{"runs", batch}});
  for (int i = 0; i < 2; ++i) ASSERT_EQ(http().Post("/api/v1/runs/batch", body).status, 201);
  SseReader again(port(), "/api/v1/stream", first);
  ASSERT_TRUE(again.ok());
  auto ev = again.Next(seconds(30));
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->event, "reset") << ev->data;
  EXPECT_THAT(ev->data, HasSubstr("dropped"));
  // Then it follows live again.
  const std::string id = S(CreateRun("lines"), "id");
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    auto next = again.Next(seconds(30));
    ASSERT_TRUE(next.has_value());
    seen = next->event == "run" && next->data.find(id) != std::string::npos;
  }
  EXPECT_TRUE(seen);
}

TEST_F(StreamE2eTest, ShutdownEndsOpenStreamsAndExitsZero) {
  StartServer({"--workers", "0"});
  const std::string id = S(CreateRun("lines"), "id");
  SseReader activity(port(), "/api/v1/stream");
  SseReader run(port(), "/api/v1/runs/" + id + "/stream");
  WsClient ws(port(), "/api/v1/stream");
  ASSERT_TRUE(activity.ok());
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(ws.ok()) << ws.head().Describe();
  ASSERT_TRUE(run.Next(seconds(30)).has_value()) << "the run's first state";
  EXPECT_EQ(server_->Stop(seconds(60)), 0);
  auto drained = [](SseReader& s) {
    for (int i = 0; i < 100 && !s.ended(); ++i) s.Next(seconds(1));
    return s.ended();
  };
  EXPECT_TRUE(drained(activity));
  EXPECT_TRUE(drained(run));
  for (int i = 0; i < 100 && !ws.closed(); ++i) ws.Next(seconds(1));
  EXPECT_TRUE(ws.closed());
}

TEST_F(StreamE2eTest, APendingRunsStreamEndsWhenItIsCancelled) {
  StartServer({"--workers", "0"});
  const std::string id = S(CreateRun("lines"), "id");
  SseReader sse(port(), "/api/v1/runs/" + id + "/stream");
  ASSERT_TRUE(sse.ok());
  auto first = sse.Next(seconds(30));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->event, "run");
  EXPECT_EQ(S(O(json::parse(first->data)), "status"), "PENDING");
  ASSERT_EQ(http().Post("/api/v1/runs/" + id + "/cancel").status, 200);
  std::vector<LogEv> logs;
  std::vector<std::string> others =
      ReadRunStream(sse, logs, [](const SseEvent& e, auto&) { return e.event == "end"; });
  ASSERT_FALSE(others.empty());
  EXPECT_EQ(others.back(), R"(end {"status":"CANCELLED"})");
  EXPECT_TRUE(logs.empty());
}

// DISABLED: fails today, for the reason of
// ApiE2eTest.LogLinesThatAreNotUtf8AreServedAsValidJson: log text goes out as produced.
// Over WebSocket it is worse: a browser fails the whole connection on a text frame that is not
// UTF-8, and resuming sends the same line again. Fix: the same (ToValidUtf8 on the text in
// api/wire.cpp LogLineJson).
TEST_F(StreamE2eTest, OutputThatIsNotUtf8DoesNotBreakStreams) {
  WriteFile(RunbookDir() + "/binary.yaml", kBinaryYaml);
  StartServer();
  const std::string id = S(CreateRun("binary"), "id");
  WaitRun(id, "SUCCESS");
  // SSE: the event data is JSON, so UTF-8.
  SseReader sse(port(), "/api/v1/runs/" + id + "/stream");
  ASSERT_TRUE(sse.ok());
  std::vector<LogEv> logs;
  std::vector<std::string> others =
      ReadRunStream(sse, logs, [](const SseEvent& e, auto&) { return e.event == "end"; });
  ASSERT_EQ(logs.size(), 3u);
  for (const auto& l : logs) EXPECT_TRUE(IsValidUtf8(l.text)) << l.id << ": " << l.text;
  // WebSocket: a text message that is not UTF-8 makes browsers fail the connection
  // (RFC 6455 8.1), and the resumed stream would send it again.
  WsClient ws(port(), "/api/v1/runs/" + id + "/stream");
  ASSERT_TRUE(ws.ok());
  int messages = 0;
  while (auto msg = ws.Next(seconds(30))) {
    ++messages;
    EXPECT_TRUE(IsValidUtf8(*msg)) << "text message " << messages << " is not UTF-8: " << *msg;
  }
  EXPECT_GE(messages, 5);  // run, 3 logs, end
}

TEST_F(StreamE2eTest, StreamsPerClientAreCappedWith429AndRetryAfter) {
  StartServer({"--max-streams-per-subject", "2"});
  const std::string id = S(CreateRun("sleeper"), "id");
  auto one = std::make_unique<SseReader>(port(), "/api/v1/stream");
  auto two = std::make_unique<SseReader>(port(), "/api/v1/runs/" + id + "/stream");
  ASSERT_TRUE(one->ok()) << one->head().Describe();
  ASSERT_TRUE(two->ok()) << two->head().Describe();
  for (const char* target : {"/api/v1/stream", "/api/v1/runs/ID/stream"}) {
    std::string t = target;
    if (auto at = t.find("ID"); at != std::string::npos) t.replace(at, 2, id);
    SseReader third(port(), t);
    ASSERT_EQ(third.head().status, 429) << t << ": " << third.head().Describe();
    ASSERT_NE(third.head().Header("retry-after"), nullptr);
    EXPECT_GT(std::atoi(third.head().Header("retry-after")->c_str()), 0);
    EXPECT_EQ(S(ErrorOf(third.head()), "code"), "resource_exhausted");
  }
  WsClient ws(port(), "/api/v1/stream");
  EXPECT_EQ(ws.head().status, 429) << ws.head().Describe();
  // Plain requests are not streams: still served.
  EXPECT_EQ(http().Get("/healthz").status, 200);

  // A stream that ends frees its slot: cancel the run, its stream ends.
  ASSERT_EQ(http().Post("/api/v1/runs/" + id + "/cancel").status, 200);
  std::vector<LogEv> logs;
  std::vector<std::string> others =
      ReadRunStream(*two, logs, [](const SseEvent& e, auto&) { return e.event == "end"; });
  ASSERT_FALSE(others.empty());
  EXPECT_EQ(others.back(), R"(end {"status":"CANCELLED"})");
  EXPECT_TRUE(WaitFor([&] { return SseReader(port(), "/api/v1/stream").ok(); }, seconds(30)));
}

// DISABLED: fails today: the slot comes back only after 15-30 s. An SSE connection is
// never read after its request, so the server notices a client that left only when a
// write fails: the heartbeat after 15 s of silence is taken by the kernel, the next one
// (15 s later) fails. Until then the stream holds its slot (429 for that client) and a run
// stream keeps polling the store every second. Fix in server/http_server.cpp ServeSse:
// keep a read pending on the socket (as ServeWebSocket does) and on EOF or error set
// `closed` and cancel the timer.
TEST_F(StreamE2eTest, AClientThatLeavesFreesItsSlotBeforeAnyHeartbeat) {
  StartServer({"--max-streams-per-subject", "1", "--workers", "0"});
  {
    SseReader one(port(), "/api/v1/stream");
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(SseReader(port(), "/api/v1/stream").head().status, 429);
  }  // the client closes its connection
  // Well before the first heartbeat (15 s) would have revealed it.
  EXPECT_TRUE(WaitFor([&] { return SseReader(port(), "/api/v1/stream").ok(); }, seconds(10)));
}

TEST_F(StreamE2eTest, ASlowStreamClientDoesNotHoldUpAnother) {
  StartServer();
#if defined(__SANITIZE_THREAD__)
  const int lines = 50000;  // still megabytes more than the socket buffers hold
#else
  const int lines = 200000;
#endif
  const std::string id = S(CreateRun("lines", {{"n", lines}}), "id");
  // A client that asks for the stream and never reads, with a tiny receive window.
  TcpConnection slow;
  ASSERT_TRUE(slow.Connect(port(), "127.0.0.1", 2048));
  std::string auth;
  for (const auto& [k, v] : DefaultTestHeaders()) auth += k + ": " + v + "\r\n";
  ASSERT_TRUE(
      slow.Send("GET /api/v1/runs/" + id + "/stream HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n"));

  SseReader fast(port(), "/api/v1/runs/" + id + "/stream");
  ASSERT_TRUE(fast.ok()) << fast.head().Describe();
  std::vector<LogEv> logs;
  logs.reserve(lines);
  std::vector<std::string> others = ReadRunStream(
      fast, logs, [](const SseEvent& e, auto&) { return e.event == "end"; }, seconds(300));
  ASSERT_FALSE(others.empty());
  EXPECT_EQ(others.back(), R"(end {"status":"SUCCESS"})");
  ASSERT_EQ(logs.size(), static_cast<size_t>(lines));
  for (size_t i = 0; i < logs.size(); ++i) {
    ASSERT_EQ(logs[i].seq, static_cast<int64_t>(i) + 1) << "gap or duplicate at " << i;
  }
  EXPECT_EQ(logs.back().text, "line " + std::to_string(lines));

  // The slow one is cut off once a write to it times out: it never sees the end. (Read
  // it only after the server gave up on it: reading earlier would let the server write.)
  EXPECT_TRUE(WaitFor(
      [&] {
        return http().Get("/metrics").body.find("\nautoman_streams_open 0\n") != std::string::npos;
      },
      seconds(120), milliseconds(250)))
      << "the slow client's stream stayed open";
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while (!slow.eof() && std::chrono::steady_clock::now() < deadline) slow.ReadSome(got, seconds(5));
  EXPECT_TRUE(slow.eof()) << "the server never closed the slow client";
  EXPECT_EQ(got.find("event: end"), std::string::npos) << "the slow client got everything";
  EXPECT_THAT(got, ::testing::StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(http().Get("/healthz").status, 200);
}

}  // namespace
}  // namespace automan::testing
