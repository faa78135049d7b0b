// Process inspection for tests: find live processes by an environment marker.
#pragma once

#include <string>
#include <vector>

namespace automan::testing {

// Pids of live (not zombie) processes whose environment contains exactly `entry`
// ("KEY=VALUE"). Only processes whose /proc/PID/environ is readable are considered.
std::vector<int> PidsWithEnv(const std::string& entry);

// Number of open file descriptors of this process.
int OpenFdCount();

}  // namespace automan::testing
