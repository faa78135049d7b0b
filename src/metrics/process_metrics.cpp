#include "metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace automan::metrics {
namespace {

std::string ReadProcFile(const char* path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// /proc/stat's "btime": the boot time, Unix seconds; 0 if unreadable. Constant while up.
double BootTime() {
  std::istringstream in(ReadProcFile("/proc/stat"));
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("btime ")) return std::strtod(line.c_str() + 6, nullptr);
  }
  return 0;
}

// Entries of /proc/self/fd, not counting the descriptor this listing itself holds.
int CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  const std::string own = std::to_string(dirfd(dir));
  int n = 0;
  // readdir is safe on a DIR* no other thread uses; Render() serializes collectors anyway.
  while (const dirent* e = readdir(dir)) {  // NOLINT(concurrency-mt-unsafe)
    if (e->d_name[0] != '.' && own != e->d_name) ++n;
  }
  closedir(dir);
  return n;
}

struct ProcessSeries {
  Counter& cpu;
  Gauge& rss;
  Gauge& vsize;
  Gauge& open_fds;
  Gauge& max_fds;
  Gauge& start_time;
  Gauge& threads;
};

void Collect(const ProcessSeries& m, double boot_time) {
  static const double kTicks = static_cast<double>(sysconf(_SC_CLK_TCK));
  static const double kPageSize = static_cast<double>(sysconf(_SC_PAGESIZE));
  // proc(5): "pid (comm) state ..."; comm may hold spaces and parentheses, so fields are
  // counted after the last ')'. Field 3 (state) is the first one there.
  std::string stat = ReadProcFile("/proc/self/stat");
  size_t paren = stat.rfind(')');
  if (paren != std::string::npos) {
    std::istringstream in(stat.substr(paren + 1));
    std::string f[22];  // fields 3..24
    for (std::string& s : f) in >> s;
    if (in) {
      auto field = [&](int n) { return std::strtod(f[n - 3].c_str(), nullptr); };
      m.cpu.SetFromReading((field(14) + field(15)) / kTicks);  // utime + stime
      m.threads.Set(field(20));
      if (boot_time > 0) m.start_time.Set(boot_time + field(22) / kTicks);
      m.vsize.Set(field(23));            // bytes
      m.rss.Set(field(24) * kPageSize);  // pages
    }
  }
  if (int fds = CountOpenFds(); fds >= 0) m.open_fds.Set(fds);
  if (rlimit rl; getrlimit(RLIMIT_NOFILE, &rl) == 0)
    m.max_fds.Set(static_cast<double>(rl.rlim_cur));
}

}  // namespace

void RegisterProcessMetrics(Registry& r) {
  ProcessSeries m{
      r.AddCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
          .With({}),
      r.AddGauge("process_resident_memory_bytes", "Resident memory size in bytes.").With({}),
      r.AddGauge("process_virtual_memory_bytes", "Virtual memory size in bytes.").With({}),
      r.AddGauge("process_open_fds", "Number of open file descriptors.").With({}),
      r.AddGauge("process_max_fds", "Maximum number of open file descriptors.").With({}),
      r.AddGauge("process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.")
          .With({}),
      r.AddGauge("process_threads", "Number of OS threads in the process.").With({}),
  };
  r.AddCollector([m, boot_time = BootTime()] { Collect(m, boot_time); });
}

}  // namespace automan::metrics
