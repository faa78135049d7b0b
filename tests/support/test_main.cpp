// Shared main for every test binary. A test process re-executed as
// `<test-binary> __supervise` acts as the per-run supervisor shim, exactly as the automan
// binary does, so sandbox and engine tests exercise the real shim code.
#include <gtest/gtest.h>

#include <cstring>

#ifdef AUTOMAN_TEST_HAS_SUPERVISOR
#include "sandbox/supervisor.h"
#endif

int main(int argc, char** argv) {
#ifdef AUTOMAN_TEST_HAS_SUPERVISOR
  if (argc > 1 && automan::kSupervisorCommand == argv[1]) {
    return automan::SupervisorMain(argc, argv);
  }
#endif
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
