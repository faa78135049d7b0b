// Shared by the end-to-end API tests (api_test, stream_test, hostile_test): a fixture that
// starts a real `automan server` over a temporary data directory and a `--runbooks`
// directory holding the test runbooks below, plus JSON helpers.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/http_client.h"
#include "support/proc_util.h"
#include "support/test_util.h"

namespace automan::testing {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The runbooks every test server offers from its --runbooks directory.
//   lines     N numbered lines "line 1".."line N" on stdout, at once (n: int, default 10)
//   gated     "tick 1".."tick N" 20 ms apart, then waits for the file `gate`, then
//             "after 1".."after M" (a run a test can hold in the middle)
//   sleeper   sleep `seconds` (default 300)
//   always-fails  exits 3; retries 2 with a 10 ms delay, so it ends DEAD after 3 attempts
//   form      every parameter type (a JSON Schema test), prints nothing interesting
//   twostep   two steps with an output passed between them
inline const char* kLinesYaml = R"(id: lines
name: Print lines
description: Prints N numbered lines, as fast as it can.
category: testing
tags: [test, output]
params:
  n:
    type: int
    default: 10
steps:
  - id: print
    shell: |
      awk -v n="$AUTOMAN_PARAM_N" 'BEGIN { for (i = 1; i <= n; i++) print "line " i }'
)";

inline const char* kGatedYaml = R"(id: gated
name: Gated ticks
description: Ticks, waits for a gate file, ticks again.
category: testing
tags: [test, stream]
params:
  n:
    type: int
    default: 20
  m:
    type: int
    default: 20
  gate:
    type: string
    required: true
steps:
  - id: tick
    shell: |
      i=1
      while [ "$i" -le "$AUTOMAN_PARAM_N" ]; do echo "tick $i"; i=$((i + 1)); sleep 0.02; done
      while [ ! -e "$AUTOMAN_PARAM_GATE" ]; do sleep 0.02; done
      i=1
      while [ "$i" -le "$AUTOMAN_PARAM_M" ]; do echo "after $i"; i=$((i + 1)); done
)";

inline const char* kSleeperYaml = R"(id: sleeper
name: Sleeper
description: Sleeps for a long time (cancel me).
category: testing
tags: [test, slow]
params:
  seconds:
    type: int
    default: 300
steps:
  - id: wait
    shell: |
      echo "sleeping $AUTOMAN_PARAM_SECONDS s"
      sleep "$AUTOMAN_PARAM_SECONDS"
)";

inline const char* kAlwaysFailsYaml = R"(id: always-fails
name: Always fails
description: Fails every attempt, so it ends in the dead-letter queue.
category: chaos
tags: [test, failure]
retries:
  count: 2
  delay: 10ms
steps:
  - id: fail
    shell: |
      echo "attempt $AUTOMAN_ATTEMPT fails"
      exit 3
)";

inline const char* kFormYaml = R"(id: form
name: Every parameter type
description: A form with every parameter type.
category: forms
tags: [test]
params:
  service:
    type: string
    required: true
    pattern: "[a-z][a-z0-9-]*"
    description: The service to act on.
  replicas:
    type: int
    default: 2
  ratio:
    type: number
    default: 0.5
  verbose:
    type: bool
    default: false
  env:
    type: enum
    values: [dev, staging, prod]
    default: dev
  token:
    type: secret
    description: An API token.
steps:
  - id: show
    shell: |
      echo "service=$AUTOMAN_PARAM_SERVICE replicas=$AUTOMAN_PARAM_REPLICAS"
)";

inline const char* kTwoStepYaml = R"(id: twostep
name: Two steps
description: Two steps and an output.
category: testing
tags: [test]
steps:
  - id: first
    shell: |
      echo "first"
      echo "word=hello" >> "$AUTOMAN_OUTPUT"
    outputs: [word]
  - id: second
    shell: |
      echo "second got $AUTOMAN_OUT_FIRST_WORD"
)";

// A runbook whose output is not UTF-8 (a step printing binary), then one more line.
inline const char* kBinaryYaml = R"(id: binary
name: Binary output
description: Prints bytes that are not UTF-8.
category: odd
tags: [test]
steps:
  - id: dump
    shell: |
      printf 'bad \377\376 bytes\n'
      printf 'half \342\202 euro\n'
      echo "still here"
)";

// RFC 3629 UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
inline bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Parses a response body as JSON (a test failure and null when it is not JSON).
inline json::value Json(const HttpResult& r) {
  json::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) {
    ADD_FAILURE() << "not JSON: " << r.Describe();
    return nullptr;
  }
  return v;
}

inline json::object JsonObject(const HttpResult& r) {
  json::value v = Json(r);
  if (!v.is_object()) {
    ADD_FAILURE() << "not a JSON object: " << r.Describe();
    return {};
  }
  return v.as_object();
}

// o[key] as a string ("" when absent or not a string).
inline std::string S(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}
inline int64_t I(const json::object& o, std::string_view key, int64_t otherwise = -1) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return otherwise;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  return otherwise;
}
// By value: callers pass temporaries (A(JsonObject(r), "items")), and a reference into one
// would dangle in a range-for.
inline json::array A(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_array() ? v->as_array() : json::array{};
}
inline json::object O(const json::value& v) {
  return v.is_object() ? v.as_object() : json::object{};
}

// The error object of an error response: {"code","message","details"}.
inline json::object ErrorOf(const HttpResult& r) {
  json::object o = JsonObject(r);
  const json::value* e = o.if_contains("error");
  if (e == nullptr || !e->is_object()) {
    ADD_FAILURE() << "no error object: " << r.Describe();
    return {};
  }
  return e->as_object();
}

inline bool IsTerminalStatus(const std::string& s) {
  return s == "SUCCESS" || s == "FAILED" || s == "TIMEOUT" || s == "CANCELLED" ||
         s == "ROLLED_BACK" || s == "DEAD";
}

inline std::string Rfc3339Ms(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

class ApiFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(RunbookDir());
    WriteFile(RunbookDir() + "/lines.yaml", kLinesYaml);
    // The gate file lives in GateDir(), the one host path the gated runbook's sandbox lets
    // its step see besides its work directory.
    std::filesystem::create_directories(GateDir());
    WriteFile(RunbookDir() + "/gated.yaml",
              std::string(kGatedYaml) + "sandbox: {writable: [" + GateDir() + "]}\n");
    WriteFile(RunbookDir() + "/sleeper.yaml", kSleeperYaml);
    WriteFile(RunbookDir() + "/always-fails.yaml", kAlwaysFailsYaml);
    WriteFile(RunbookDir() + "/form.yaml", kFormYaml);
    WriteFile(RunbookDir() + "/twostep.yaml", kTwoStepYaml);
  }
  std::string GateDir() const { return dir_.File("gates"); }
  std::string Gate() const { return dir_.File("gates/gate"); }

  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
  }

  std::string Data() const { return dir_.File("data"); }
  std::string RunbookDir() const { return dir_.File("runbooks"); }

  // Starts a server with the runbook directory and `extra` flags; a fatal failure when
  // it does not come up.
  void StartServer(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--runbooks", RunbookDir(),   "--log-level",
                                     "warn",       "--access-log", "off"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = std::make_unique<ServerProcess>(
        Data(), args, dir_.File("server-" + std::to_string(++starts_) + ".log"));
    // Set even when the start failed (port 0: every request fails), so a test that goes
    // on after this fatal failure fails request by request instead of crashing.
    client_ = std::make_unique<HttpTestClient>(server_->port());
    ASSERT_TRUE(server_->started()) << "the server did not start; log:\n" << server_->Log();
  }
  void StopServer() {
    client_ = std::make_unique<HttpTestClient>(0);
    if (server_) server_->Stop();
    server_.reset();
  }
  uint16_t port() const { return server_ ? server_->port() : 0; }
  HttpTestClient& http() { return *client_; }

  // POST /api/v1/runs; a test failure unless 201. Returns the run.
  json::object CreateRun(const std::string& runbook, json::object params = {},
                         json::object extra = {}) {
    json::object body = std::move(extra);
    body["runbook"] = runbook;
    if (!params.empty()) body["params"] = std::move(params);
    HttpResult r = http().Post("/api/v1/runs", json::serialize(body));
    EXPECT_EQ(r.status, 201) << r.Describe();
    return JsonObject(r);
  }
  json::object GetRun(const std::string& id) {
    HttpResult r = http().Get("/api/v1/runs/" + id);
    EXPECT_EQ(r.status, 200) << r.Describe();
    return JsonObject(r);
  }
  // Polls GET /api/v1/runs/ID until its status is `status` (or terminal when empty).
  // Returns the last run seen; a test failure when it did not get there in `timeout`.
  json::object WaitRun(const std::string& id, const std::string& status = "",
                       milliseconds timeout = seconds(90)) {
    json::object last;
    bool ok = WaitFor(
        [&] {
          HttpResult r = http().Get("/api/v1/runs/" + id);
          if (r.status != 200) return false;
          last = JsonObject(r);
          const std::string st = S(last, "status");
          return status.empty() ? IsTerminalStatus(st) : st == status;
        },
        timeout, milliseconds(50));
    EXPECT_TRUE(ok) << "run " << id << " did not reach " << (status.empty() ? "an end" : status)
                    << "; last seen: " << json::serialize(last);
    return last;
  }
  // Runs in the store, from GET /api/v1/queue/stats.
  int64_t RunCount() {
    HttpResult r = http().Get("/api/v1/queue/stats");
    EXPECT_EQ(r.status, 200) << r.Describe();
    return I(JsonObject(r), "total");
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpTestClient> client_;
  int starts_ = 0;
};

}  // namespace automan::testing
