#include "support/proc_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "support/test_util.h"

extern char** environ;

namespace automan::testing {

std::string ReadProcFile(pid_t pid, std::string_view name) {
  // POSIX read, not ifstream: a process that exits mid-read makes read() fail with ESRCH,
  // which libstdc++'s filebuf turns into an exception.
  const std::string path = "/proc/" + std::to_string(pid) + "/" + std::string(name);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

namespace {

std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long v = strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && v > 0) out.push_back(static_cast<pid_t>(v));
  }
  closedir(d);
  return out;
}

bool IsLive(pid_t pid) {
  const std::string stat = ReadProcFile(pid, "stat");
  size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

// True when the NUL-separated list `text` holds `item`.
bool HasNulItem(std::string_view text, std::string_view item) {
  while (!text.empty()) {
    size_t end = text.find('\0');
    if (text.substr(0, end) == item) return true;
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return false;
}

std::vector<int> LivePidsWhose(std::string_view file, std::string_view item) {
  std::vector<int> out;
  for (pid_t pid : AllPids()) {
    if (HasNulItem(ReadProcFile(pid, file), item) && IsLive(pid)) out.push_back(pid);
  }
  return out;
}

}  // namespace

std::vector<int> PidsWithEnv(const std::string& entry) { return LivePidsWhose("environ", entry); }

std::vector<int> PidsWithArg(const std::string& arg) { return LivePidsWhose("cmdline", arg); }

int OpenFdCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the DIR's own fd
}

ChildProcess::ChildProcess(const std::vector<std::string>& args, std::string log,
                           const std::string& cwd)
    : log_(std::move(log)) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view v(*e);
    if (v.starts_with("AUTOMAN_DB=") || v.starts_with("AUTOMAN_DATA=")) continue;
    env.emplace_back(v);
  }
  std::vector<char*> envp;
  for (auto& v : env) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_s = args;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fd, 1);
  posix_spawn_file_actions_adddup2(&fa, fd, 2);
  posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  if (posix_spawn(&pid_, argv[0], &fa, &attr, argv.data(), envp.data()) != 0) pid_ = -1;
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  close(fd);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void ChildProcess::Signal(int sig) const { kill(pid_, sig); }
void ChildProcess::SignalGroup(int sig) const { kill(-pid_, sig); }
std::string ChildProcess::Log() const { return ReadFile(log_); }

std::optional<int> ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  WaitFor(
      [&] {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return true;
      },
      timeout, std::chrono::milliseconds(10));
  return exit_code_;
}

}  // namespace automan::testing
