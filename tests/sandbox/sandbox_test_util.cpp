#include "sandbox/sandbox_test_util.h"

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/ids.h"
#include "sandbox/process_tree.h"

namespace automan::testing {

void RecordingSink::OnLine(LogStream stream, std::string_view text, bool partial) {
  lines.push_back({stream, std::string(text), partial});
  if (on_line) on_line(stream, text);
}

std::vector<std::string> RecordingSink::Texts(LogStream stream) const {
  std::vector<std::string> out;
  for (const auto& l : lines) {
    if (l.stream == stream) out.push_back(l.text);
  }
  return out;
}

void CountingSink::OnLine(LogStream stream, std::string_view text, bool partial) {
  int i = stream == LogStream::kStdout ? 0 : 1;
  bytes[i] += text.size();
  if (partial) {
    ++pieces[i];
    if (text.size() != kMaxLineBytes) ++bad_partial_sizes;
  } else {
    ++lines[i];
  }
  if (i == 0) {
    for (char c : text) foreign_bytes += c != 'x';
  } else {
    stderr_lines.emplace_back(text);
  }
}

std::string RandomToken() {
  unsigned char b[8];
  SecureRandomBytes(b, sizeof b);
  std::string out;
  for (unsigned char c : b) out += fmt::format("{:02x}", c);
  return out;
}

StepCommand Shell(const std::string& script, const std::string& marker,
                  std::vector<std::string> extra_env) {
  StepCommand cmd;
  cmd.argv = {"sh", "-c", script};
  cmd.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  if (!marker.empty()) cmd.env.push_back("AUTOMAN_TEST_MARKER=" + marker);
  for (auto& e : extra_env) cmd.env.push_back(std::move(e));
  return cmd;
}

namespace {

std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* d = readdir(dir)) {
    char* end = nullptr;
    long v = strtol(d->d_name, &end, 10);
    if (end != d->d_name && *end == '\0' && v > 0) out.push_back(static_cast<pid_t>(v));
  }
  closedir(dir);
  return out;
}

bool IsZombie(pid_t pid) {
  std::string stat = ReadProcFile(pid, "stat");
  size_t r = stat.rfind(')');
  return r == std::string::npos || r + 2 >= stat.size() || stat[r + 2] == 'Z' || stat[r + 2] == 'X';
}

std::vector<pid_t> Matching(const char* file, const std::string& needle) {
  std::vector<pid_t> out;
  for (pid_t pid : AllPids()) {
    if (pid == getpid()) continue;
    if (ReadProcFile(pid, file).find(needle) != std::string::npos && !IsZombie(pid)) {
      out.push_back(pid);
    }
  }
  return out;
}

}  // namespace

std::vector<pid_t> ProcessesWithMarker(const std::string& marker) {
  return Matching("environ", "AUTOMAN_TEST_MARKER=" + marker + std::string(1, '\0'));
}

std::vector<pid_t> ProcessesWithCmdline(const std::string& needle) {
  return Matching("cmdline", needle);
}

std::vector<pid_t> WaitForNoMarker(const std::string& marker, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    std::vector<pid_t> left = ProcessesWithMarker(marker);
    if (left.empty() || std::chrono::steady_clock::now() > deadline) return left;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<pid_t> DescendantsOf(pid_t root) {
  std::vector<pid_t> out;
  for (const auto& e : sandbox_detail::Descendants(root, sandbox_detail::ListProcesses())) {
    out.push_back(e.pid);
  }
  return out;
}

int CountOpenFds() {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* d = readdir(dir)) {
    if (d->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;
}

bool NoChildren() {
  int status = 0;
  return waitpid(-1, &status, WNOHANG | __WALL) < 0 && errno == ECHILD;
}

}  // namespace automan::testing
