// Small helpers for the benchmarks: timing, medians, spawning.
#pragma once

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace automan::bench {

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

inline double Seconds(std::chrono::steady_clock::time_point a,
                      std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The q-quantile (0 < q <= 1) by the nearest-rank method; 0 for no samples.
inline double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// User + system CPU seconds of this process so far.
inline double SelfCpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

// A "Name:   123 kB" field of a /proc file such as /proc/self/status, in kB; 0 if absent.
inline long long ProcKb(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + ":", 0) == 0) return std::atoll(line.c_str() + name.size() + 1);
  }
  return 0;
}

// fdatasync latency of a 4 KiB write in `dir` (p50, p99 in ms): what every durable commit
// waits for at least. On shared or throttled disks it moves between runs, by 10x and more,
// so the benchmarks print it next to their durable figures.
inline std::pair<double, double> FsyncProbe(const std::string& dir, int samples = 200) {
  const std::string path = dir + "/fsync-probe";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return {-1, -1};
  std::vector<double> ms;
  char block[4096];
  std::memset(block, 'x', sizeof block);
  for (int i = 0; i < samples; ++i) {
    if (::pwrite(fd, block, sizeof block, (i % 16) * 4096) != sizeof block) break;
    auto t0 = std::chrono::steady_clock::now();
    if (::fdatasync(fd) != 0) break;
    ms.push_back(Seconds(t0, std::chrono::steady_clock::now()) * 1e3);
  }
  ::close(fd);
  ::unlink(path.c_str());
  return {Percentile(ms, 0.5), Percentile(ms, 0.99)};
}

// posix_spawn + waitpid; stdout/stderr to /dev/null when `quiet`. Returns the exit status.
inline int SpawnWait(const std::vector<std::string>& args, bool quiet = true) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (quiet) {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// "a,b,,c" -> {"a", "b", "c"}: list-valued flags.
inline std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// The first line of a file ("" if unreadable): /proc/loadavg, /proc/sys/kernel/osrelease.
inline std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// "2 cores (AMD EPYC ...), 23.5 GiB, kernel 6.1.0": printed at the top of every run.
inline std::string MachineLine() {
  std::string model;
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return fmt::format("{} cores ({}), {:.1f} GiB, kernel {}", std::thread::hardware_concurrency(),
                     model, ProcKb("/proc/meminfo", "MemTotal") / 1048576.0,
                     ReadLine("/proc/sys/kernel/osrelease"));
}

}  // namespace automan::bench
