// The queue's conformance suite: the executable form of the contract in src/queue/queue.h,
// run end to end through Queue on every store backend with a SimulatedClock, so leases,
// delays, backoff, idempotency windows and rate tokens are driven exactly, never slept.
//
// A backend's test binary adds queue_conformance.cpp, queue_model_test.cpp (the property
// test against a reference model) and enqueue_race_test.cpp (real `automan enqueue`
// processes racing), and instantiates the suites with factories that open a fresh, empty
// store on every call (tests/store/store_conformance.h):
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, QueueConformanceTest,
//                            ::testing::Values(StoreBackend{"memory", OpenMemory}),
//                            StoreBackendName);
//   INSTANTIATE_TEST_SUITE_P(Sqlite, QueueModelTest,
//                            ::testing::Values(ModelBackend{{"memory", OpenMemory}, 200}),
//                            ModelBackendName);
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "queue/queue.h"
#include "runbook/runbook.h"
#include "store/store_conformance.h"

namespace automan::testing {

// 2026-03-29T01:02:03.456789Z, the instant every simulated clock starts at.
inline Timestamp QueueEpoch() { return FromMicros(1774746123456789); }

// Parses a runbook from YAML; a test failure (and an empty runbook) when it is invalid.
inline Runbook ParseOrFail(const std::string& yaml) {
  ParseResult r = ParseRunbook(yaml, "test.yaml");
  std::string diags;
  for (const auto& d : r.diagnostics) diags += d.ToString() + "\n";
  EXPECT_TRUE(r.ok()) << diags;
  return r.ok() ? *r.runbook : Runbook{};
}

class QueueConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  using Run = ::automan::Run;

  void SetUp() override;

  // The default options every test starts with (lease 30 s).
  static QueueOptions DefaultOptions();
  // Replaces the queue (same store and clock) with one using `options`.
  void Reopen(QueueOptions options);

  // An enqueue request for `rb` with defaults.
  static EnqueueRequest Req(const Runbook& rb, int priority = 0);
  // Enqueues; a test failure (and an empty run) on error.
  Run Enq(const EnqueueRequest& r);
  Run Enq(const Runbook& rb, int priority = 0) { return Enq(Req(rb, priority)); }
  // Claims up to `max` for `owner`; a test failure on error.
  std::vector<Run> Claim(const std::string& owner, int max = 1000);
  std::vector<std::string> ClaimIds(const std::string& owner, int max = 1000);
  // Claims exactly the run `id` (the only claimable one) for `owner`.
  Run ClaimOne(const std::string& id, const std::string& owner = "w1");

  Result<Run> Get(const std::string& id);
  Run MustGet(const std::string& id);
  std::vector<Attempt> Attempts(const std::string& id);
  std::vector<Run> AllRuns();  // newest first
  std::map<RunStatus, int64_t> Counts();

  // Renews one lease.
  Result<HeartbeatResult> Beat(const Run& run);

  std::unique_ptr<Store> store_;
  SimulatedClock clock_{QueueEpoch()};
  std::unique_ptr<Queue> queue_;

  // Runbooks shared by the tests.
  Runbook plain_;     // one step, no retries, no keys
  Runbook other_;     // another runbook id
  Runbook retrying_;  // retries: 2 fixed 10 s, no_retry_exit_codes [75]
};

// The property test (queue_model_test.cpp): `sequences` random sequences per backend.
struct ModelBackend {
  StoreBackend backend;
  int sequences = 200;
  int ops = 60;
};

inline void PrintTo(const ModelBackend& b, std::ostream* os) { *os << b.backend.name; }

inline std::string ModelBackendName(const ::testing::TestParamInfo<ModelBackend>& info) {
  return info.param.backend.name;
}

class QueueModelTest : public ::testing::TestWithParam<ModelBackend> {
 protected:
  using Run = ::automan::Run;
};

// The idempotency race across processes (enqueue_race_test.cpp): real `automan enqueue`
// processes against one store. `url` makes a fresh store URL (`dir` is a fresh temp dir).
struct RaceBackend {
  std::string name;
  std::function<Result<std::string>(const std::string& dir)> url;
};

inline void PrintTo(const RaceBackend& b, std::ostream* os) { *os << b.name; }

inline std::string RaceBackendName(const ::testing::TestParamInfo<RaceBackend>& info) {
  return info.param.name;
}

class EnqueueRaceTest : public ::testing::TestWithParam<RaceBackend> {
 protected:
  using Run = ::automan::Run;
};

}  // namespace automan::testing
