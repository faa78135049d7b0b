// Process inspection for tests: find live processes by an environment marker.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace automan::testing {

// Pids of live (not zombie) processes whose environment contains exactly `entry`
// ("KEY=VALUE"). Only processes whose /proc/PID/environ is readable are considered.
std::vector<int> PidsWithEnv(const std::string& entry);

// Pids of live (not zombie) processes with an argument equal to `arg`.
std::vector<int> PidsWithArg(const std::string& arg);

// The whole of /proc/PID/NAME, or "" when it cannot be read (the process is gone, or
// exits while it is read).
std::string ReadProcFile(pid_t pid, std::string_view name);

// Number of open file descriptors of this process.
int OpenFdCount();

// Polls `cond` every `every` until it holds (true) or `timeout` passed (false).
template <typename F>
bool WaitFor(F&& cond, std::chrono::milliseconds timeout,
             std::chrono::milliseconds every = std::chrono::milliseconds(50)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

// A child process (argv[0] a path) with stdout and stderr appended to the file `log`, in
// its own process group, started in `cwd`, without AUTOMAN_DB / AUTOMAN_DATA in its
// environment (tests pass the store on the command line). The destructor kill -9s it
// (only it: a worker's shims then clean up their own trees).
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& args, std::string log, const std::string& cwd);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool ok() const { return pid_ > 0; }
  void Signal(int sig) const;
  // Signals the whole process group (a shell loop and the command it is running).
  void SignalGroup(int sig) const;
  std::string Log() const;

  // The exit code (128 + signal when killed), or nullopt if it is still running after
  // `timeout`.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);

 private:
  std::string log_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace automan::testing
