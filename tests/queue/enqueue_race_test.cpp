// The idempotency key across processes: several real `automan enqueue` processes with the
// same --idempotency-key, started at once against one store, make exactly one run, and
// every one of them prints its id (queue.h, Enqueue: "racing processes create one run").
#include <gmock/gmock.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "queue_conformance.h"
#include "support/test_util.h"

namespace automan::testing {
namespace {

const std::string kAutoman = AUTOMAN_BIN;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_P(EnqueueRaceTest, ConcurrentEnqueuesWithOneKeyMakeOneRun) {
  constexpr int kProcesses = 5;
  TempDir dir;
  auto url = GetParam().url(dir.path());
  ASSERT_OK(url);
  // The store exists before the race: creating it is not what this test is about.
  {
    auto store = Store::Open({.url = *url});
    ASSERT_OK(store);
  }
  WriteFile(dir.File("race.yaml"), "id: race\nsteps:\n  - id: s\n    shell: \"true\"\n");
  // Each process announces itself and waits for the start signal, so that all of them are
  // running before the first one enqueues.
  const std::string script = "cd '" + dir.path() + "' && for i in $(seq " +
                             std::to_string(kProcesses) +
                             "); do ( touch ready.$i; while [ ! -e go ]; do sleep 0.005; done; '" +
                             kAutoman + "' enqueue race.yaml --idempotency-key deploy-42 --db '" +
                             *url + "' >out.$i 2>err.$i; echo $? >rc.$i ) & done; wait";
  std::thread starter([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      int ready = 0;
      for (int i = 1; i <= kProcesses; ++i) {
        ready += std::filesystem::exists(dir.File("ready." + std::to_string(i)));
      }
      if (ready == kProcesses) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    WriteFile(dir.File("go"), "");
  });
  CommandResult r = RunCommand(script);
  starter.join();
  ASSERT_EQ(r.exit_code, 0);

  std::set<std::string> ids;
  int reused = 0;
  for (int i = 1; i <= kProcesses; ++i) {
    const std::string n = std::to_string(i);
    const std::string err = Slurp(dir.File("err." + n));
    EXPECT_EQ(Slurp(dir.File("rc." + n)), "0\n") << "process " << i << ": " << err;
    std::string out = Slurp(dir.File("out." + n));
    EXPECT_EQ(out.size(), 37u) << "process " << i << " printed: " << out << err;
    ids.insert(out);
    reused += err.find("was already used by run") != std::string::npos;
  }
  EXPECT_EQ(ids.size(), 1u) << "the processes printed different run ids";
  EXPECT_EQ(reused, kProcesses - 1);

  auto store = Store::Open({.url = *url});
  ASSERT_OK(store);
  std::vector<Run> runs;
  ASSERT_OK((*store)->Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(runs, tx.ListRuns({.limit = 100}));
    return Status::Ok();
  }));
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].id + "\n", *ids.begin());
  EXPECT_EQ(runs[0].idempotency_key, "deploy-42");
  EXPECT_EQ(runs[0].status, RunStatus::kPending);
}

}  // namespace
}  // namespace automan::testing
