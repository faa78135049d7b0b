// The queue suites (queue_conformance.h) on PostgreSQL: one fresh schema per store, on the
// test cluster of the ctest fixture `postgres` (tests/store/postgres_test_support.h). Every
// test is skipped, saying why, when there is no cluster.
#include "queue_conformance.h"
#include "store/postgres_test_support.h"

namespace automan::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Postgres, QueueConformanceTest,
                         ::testing::Values(StoreBackend{"schema", OpenFreshPostgres}),
                         StoreBackendName);

// Fewer sequences than in memory: each one is a fresh schema and every step a round trip.
INSTANTIATE_TEST_SUITE_P(Postgres, QueueModelTest,
                         ::testing::Values(ModelBackend{{"schema", OpenFreshPostgres}, 15, 60}),
                         ModelBackendName);

INSTANTIATE_TEST_SUITE_P(Postgres, EnqueueRaceTest,
                         ::testing::Values(RaceBackend{
                             "schema", [](const std::string&) { return PgFreshUrl(); }}),
                         RaceBackendName);

}  // namespace
}  // namespace automan::testing
