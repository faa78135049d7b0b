// Start-up: wall time from posix_spawn to exit of `automan version` (stdout to /dev/null),
// median over many runs, next to /bin/true as the floor of process creation.
//
//   build/release/bench/startup PATH-TO-AUTOMAN [runs]
#include <cstdio>
#include <cstdlib>

#include "bench_util.h"

using namespace automan::bench;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: startup PATH-TO-AUTOMAN [runs]\n");
    return 2;
  }
  const std::string automan = argv[1];
  const int runs = argc > 2 ? std::atoi(argv[2]) : 200;
  std::vector<double> a, t;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    if (SpawnWait({automan, "version"}) != 0) return 1;
    auto t1 = std::chrono::steady_clock::now();
    SpawnWait({"/bin/true"});
    auto t2 = std::chrono::steady_clock::now();
    a.push_back(Seconds(t0, t1) * 1000);
    t.push_back(Seconds(t1, t2) * 1000);
  }
  std::sort(a.begin(), a.end());
  std::printf(
      "startup: automan version %.2f ms median, p90 %.2f ms (goal <= 20 ms); "
      "/bin/true %.2f ms median (%d runs)\n",
      Median(a), a[a.size() * 9 / 10], Median(t), runs);
  return 0;
}
