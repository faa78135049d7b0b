#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "common/size.h"
#include "common/status.h"

namespace automan::sandbox_detail {
namespace {

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";
constexpr const char* kPrefix = "automan-sbx-";

// Small files of /proc and cgroupfs, read and written whole with POSIX calls.
bool ReadSmallFile(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > (1 << 20)) break;
  }
  close(fd);
  return true;
}

// 0 or an errno.
int WriteSmallFile(const std::string& path, std::string_view text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, text.data(), text.size());
  int err = n == static_cast<ssize_t>(text.size()) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return err;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// The path of this process's cgroup for a v1 controller ("memory") or, with an empty
// name, the v2 one, from /proc/self/cgroup ("id:controllers:path" lines).
std::optional<std::string> OwnCgroup(std::string_view controller) {
  std::string text;
  if (!ReadSmallFile("/proc/self/cgroup", &text)) return std::nullopt;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view names = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view path = line.substr(c2 + 1);
    if (controller.empty()) {
      if (names.empty()) return std::string(path);
      continue;
    }
    size_t s = 0;
    while (s <= names.size()) {
      size_t comma = names.find(',', s);
      if (comma == std::string_view::npos) comma = names.size();
      if (names.substr(s, comma - s) == controller) return std::string(path);
      s = comma + 1;
    }
  }
  return std::nullopt;
}

std::string Join(const std::string& base, const std::string& path) {
  return path == "/" ? base : base + path;
}

// Removes cgroups of shims that are gone ("automan-sbx-<pid>" with no such process).
void SweepStale(const std::string& parent) {
  DIR* d = opendir(parent.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name.rfind(kPrefix, 0) != 0) continue;
    std::string pid(name.substr(std::strlen(kPrefix)));
    if (pid.empty() || Exists("/proc/" + pid)) continue;
    (void)rmdir((parent + "/" + std::string(name)).c_str());
  }
  closedir(d);
}

// Creates `dir` (a cgroup) if needed; 0 or an errno.
int MakeCgroup(const std::string& dir) {
  SweepStale(dir.substr(0, dir.rfind('/')));
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errno;
  return 0;
}

uint64_t CounterIn(const std::string& file, std::string_view key) {
  std::string text;
  if (!ReadSmallFile(file, &text)) return 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return std::strtoull(std::string(line.substr(key.size() + 1)).c_str(), nullptr, 10);
    }
  }
  return 0;
}

}  // namespace

StepCgroup::~StepCgroup() {
  if (version_ == 0) return;
  (void)rmdir(memory_dir_.c_str());
  if (pids_dir_ != memory_dir_) (void)rmdir(pids_dir_.c_str());
}

void StepCgroup::Detect() {
  detected_ = true;
  const std::string name = fmt::format("{}{}", kPrefix, getpid());
  std::string v2_base = kCgroupRoot;
  if (Exists(v2_base + "/cgroup.controllers")) {
    // The unified hierarchy alone (v2).
    auto own = OwnCgroup("");
    if (!own) {
      why_not_ = "no cgroup v2 entry in /proc/self/cgroup";
      return;
    }
    std::string parent = Join(v2_base, *own);
    int err = WriteSmallFile(parent + "/cgroup.subtree_control", "+memory +pids");
    if (err != 0) {
      why_not_ = fmt::format(
          "cgroup v2: cannot enable the memory and pids controllers below {} ({}); delegate "
          "them to the server (systemd: Delegate=yes)",
          parent, ErrnoText(err));
      return;
    }
    memory_dir_ = parent + "/" + name;
    if (int e = MakeCgroup(memory_dir_); e != 0) {
      why_not_ = fmt::format("cgroup v2: cannot create {}: {}", memory_dir_, ErrnoText(e));
      return;
    }
    pids_dir_ = memory_dir_;
    version_ = 2;
    return;
  }
  // cgroup v1: a hierarchy per controller.
  auto mem = OwnCgroup("memory");
  auto pids = OwnCgroup("pids");
  std::string mem_base = v2_base + "/memory";
  std::string pids_base = v2_base + "/pids";
  if (!mem || !pids || !Exists(mem_base + "/cgroup.procs") ||
      !Exists(pids_base + "/cgroup.procs")) {
    why_not_ = "no cgroup v1 memory and pids hierarchies and no cgroup v2 under /sys/fs/cgroup";
    return;
  }
  memory_dir_ = Join(mem_base, *mem) + "/" + name;
  pids_dir_ = Join(pids_base, *pids) + "/" + name;
  for (const std::string* dir : {&memory_dir_, &pids_dir_}) {
    if (int e = MakeCgroup(*dir); e != 0) {
      why_not_ = fmt::format("cgroup v1: cannot create {}: {}", *dir, ErrnoText(e));
      (void)rmdir(memory_dir_.c_str());
      return;
    }
  }
  version_ = 1;
}

std::vector<std::string> StepCgroup::Prepare(uint64_t memory_bytes, uint32_t max_processes,
                                             std::string* what) {
  if (!detected_) Detect();
  if (version_ == 0) {
    *what = "no cgroup (" + why_not_ + ")";
    return {};
  }
  auto fail = [&](const std::string& file, int err) {
    *what = fmt::format("no cgroup (cannot write {}: {})", file, ErrnoText(err));
    return std::vector<std::string>{};
  };
  if (memory_bytes != memory_set_) {
    std::string value =
        memory_bytes == 0 ? (version_ == 1 ? "-1" : "max") : std::to_string(memory_bytes);
    if (version_ == 1) {
      // With swap accounting, memory+swap is capped too (it must stay >= the memory limit,
      // so it is raised first and lowered after).
      std::string memsw = memory_dir_ + "/memory.memsw.limit_in_bytes";
      bool has_memsw = Exists(memsw);
      if (has_memsw) (void)WriteSmallFile(memsw, "-1");
      std::string file = memory_dir_ + "/memory.limit_in_bytes";
      if (int e = WriteSmallFile(file, value); e != 0) return fail(file, e);
      if (has_memsw) (void)WriteSmallFile(memsw, value);
    } else {
      std::string file = memory_dir_ + "/memory.max";
      if (int e = WriteSmallFile(file, value); e != 0) return fail(file, e);
      std::string swap = memory_dir_ + "/memory.swap.max";
      if (Exists(swap)) (void)WriteSmallFile(swap, memory_bytes == 0 ? "max" : "0");
    }
    memory_set_ = memory_bytes;
  }
  if (max_processes != pids_set_) {
    std::string file = pids_dir_ + "/pids.max";
    std::string value = max_processes == 0 ? "max" : std::to_string(max_processes);
    if (int e = WriteSmallFile(file, value); e != 0) return fail(file, e);
    pids_set_ = max_processes;
  }
  *what = fmt::format("cgroup v{}: memory {}, processes {}", version_,
                      memory_bytes == 0 ? "unlimited" : FormatBytes(memory_bytes),
                      max_processes == 0 ? "unlimited" : std::to_string(max_processes));
  std::vector<std::string> procs = {memory_dir_ + "/cgroup.procs"};
  if (pids_dir_ != memory_dir_) procs.push_back(pids_dir_ + "/cgroup.procs");
  return procs;
}

uint64_t StepCgroup::OomKills() const {
  if (version_ == 1) return CounterIn(memory_dir_ + "/memory.oom_control", "oom_kill");
  if (version_ == 2) return CounterIn(memory_dir_ + "/memory.events", "oom_kill");
  return 0;
}

}  // namespace automan::sandbox_detail
