// The queue suites (queue_conformance.h) on SQLite: a fresh file per test in a temp dir,
// and a private in-memory store.
#include <atomic>

#include "queue_conformance.h"
#include "support/test_util.h"

namespace automan::testing {
namespace {

// Every store the suites open lives here; removed at exit.
const TempDir& SuiteDir() {
  static TempDir dir;
  return dir;
}

Result<std::unique_ptr<Store>> OpenFreshFile() {
  static std::atomic<int> n{0};
  return Store::Open({.url = "sqlite:" + SuiteDir().File("queue-" + std::to_string(n++) + ".db")});
}

Result<std::unique_ptr<Store>> OpenMemory() { return Store::Open({.url = "sqlite::memory:"}); }

INSTANTIATE_TEST_SUITE_P(Sqlite, QueueConformanceTest,
                         ::testing::Values(StoreBackend{"file", OpenFreshFile},
                                           StoreBackend{"memory", OpenMemory}),
                         StoreBackendName);

// 200 sequences in memory; a few on a file, whose commits take the durable path.
INSTANTIATE_TEST_SUITE_P(Sqlite, QueueModelTest,
                         ::testing::Values(ModelBackend{{"memory", OpenMemory}, 200, 60},
                                           ModelBackend{{"file", OpenFreshFile}, 10, 60}),
                         ModelBackendName);

INSTANTIATE_TEST_SUITE_P(Sqlite, EnqueueRaceTest,
                         ::testing::Values(RaceBackend{
                             "file",
                             [](const std::string& dir) -> Result<std::string> {
                               return "sqlite:" + dir + "/automan.db";
                             }}),
                         RaceBackendName);

}  // namespace
}  // namespace automan::testing
