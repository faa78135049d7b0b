#include "sandbox/process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_set>

namespace automan::sandbox_detail {
namespace {

bool ParsePid(const char* s, pid_t* out) {
  if (*s == '\0') return false;
  long v = 0;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return false;
    v = v * 10 + (*s - '0');
    if (v > 0x7fffffff) return false;
  }
  *out = static_cast<pid_t>(v);
  return true;
}

// Parses a decimal number at *p, advancing past it and one following space.
bool TakeNumber(const char** p, const char* end, long* out) {
  const char* s = *p;
  bool neg = false;
  if (s < end && *s == '-') {
    neg = true;
    ++s;
  }
  if (s >= end || *s < '0' || *s > '9') return false;
  long v = 0;
  while (s < end && *s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  if (s < end && *s == ' ') ++s;
  *out = neg ? -v : v;
  *p = s;
  return true;
}

// Raw system calls: glibc 2.36's <sys/pidfd.h> lacks C linkage for C++ callers.
int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

}  // namespace

bool ReadProcessEntry(pid_t pid, ProcessEntry* out) {
  char path[32];
  (void)snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  // "pid (comm) state ppid pgrp ...": comm is at most 16 bytes but may contain spaces and
  // parentheses, so the fields start after the last ')'. 512 bytes always reach pgrp.
  char buf[512];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return false;
  const char* end = buf + n;
  const char* rparen = nullptr;
  for (const char* q = buf; q < end; ++q) {
    if (*q == ')') rparen = q;
  }
  if (rparen == nullptr || end - rparen < 4) return false;
  const char* p = rparen + 2;  // skip ") "
  if (p >= end) return false;
  ++p;  // state character
  if (p < end && *p == ' ') ++p;
  long ppid = 0;
  long pgrp = 0;
  if (!TakeNumber(&p, end, &ppid) || !TakeNumber(&p, end, &pgrp)) return false;
  out->pid = pid;
  out->ppid = static_cast<pid_t>(ppid);
  out->pgrp = static_cast<pid_t>(pgrp);
  return true;
}

std::vector<ProcessEntry> ListProcesses() {
  std::vector<ProcessEntry> out;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* d = readdir(dir)) {  // NOLINT(concurrency-mt-unsafe): a private DIR*
    pid_t pid = 0;
    if (!ParsePid(d->d_name, &pid)) continue;
    ProcessEntry e;
    if (ReadProcessEntry(pid, &e)) out.push_back(e);
  }
  closedir(dir);
  return out;
}

std::vector<ProcessEntry> Descendants(pid_t root, const std::vector<ProcessEntry>& all) {
  std::unordered_set<pid_t> in_tree{root};
  std::vector<ProcessEntry> out;
  // Parents usually have smaller pids, but not after wrap-around: iterate to a fixpoint.
  std::vector<bool> taken(all.size(), false);
  for (bool grew = true; grew;) {
    grew = false;
    for (size_t i = 0; i < all.size(); ++i) {
      if (taken[i] || all[i].pid == root || !in_tree.count(all[i].ppid)) continue;
      taken[i] = true;
      in_tree.insert(all[i].pid);
      out.push_back(all[i]);
      grew = true;
    }
  }
  return out;
}

size_t SignalDescendants(pid_t root, pid_t pgid, bool group_known_alive,
                         std::initializer_list<int> signals) {
  auto signal_group = [&] {
    for (int sig : signals) kill(-pgid, sig);
  };
  // The whole group at once first when it surely exists: that also reaches members
  // forked while we scan.
  bool group_signalled = pgid > 0 && group_known_alive;
  if (group_signalled) signal_group();
  std::vector<ProcessEntry> tree = Descendants(root, ListProcesses());
  if (pgid > 0 && !group_signalled) {
    for (const auto& e : tree) group_signalled = group_signalled || e.pgrp == pgid;
    if (group_signalled) signal_group();
  }
  std::unordered_set<pid_t> members{root};
  for (const auto& e : tree) members.insert(e.pid);
  for (const auto& e : tree) {
    int pidfd = PidfdOpen(e.pid);
    if (pidfd < 0) continue;  // already gone
    // With the pidfd held the pid cannot be recycled: check it is still the process found.
    // Members of the signalled group are skipped: one SIGTERM each, so a trap runs once.
    ProcessEntry now;
    if (ReadProcessEntry(e.pid, &now) && members.count(now.ppid) &&
        !(group_signalled && now.pgrp == pgid)) {
      for (int sig : signals) PidfdSendSignal(pidfd, sig);
    }
    close(pidfd);
  }
  return tree.size();
}

}  // namespace automan::sandbox_detail
