// The per-run supervisor: a small shim process that owns a run's process tree.
//
// The engine never forks. For each run it starts one supervisor with posix_spawn: the
// automan binary re-executed as `automan __supervise` (SupervisorMain below). The shim
//   - makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so every process a step
//     starts, double-forked daemons included, stays its descendant;
//   - spawns each step (posix_spawn, its own process group, the given clean environment)
//     with stdout/stderr on the pipes the engine reads;
//   - enforces the step's timeout itself (SIGTERM to the whole tree, SIGKILL after the
//     grace period), so a stalled engine cannot leave a step running forever;
//   - when the step's main process exits, terminates whatever it left behind the same way,
//     and reports only once no descendant remains: nothing a step starts outlives it;
//   - treats EOF on its control pipe (the engine exited or was killed) as cancellation:
//     it kills the tree and exits.
//   - starts a step that carries a SandboxSpec in a jail of its own making (namespaces, a
//     read-only view with hidden paths, rlimits, capabilities, a cgroup; jail.h).
// A later issue adds re-attachment after a daemon restart.
//
// The step specification (argv, environment with parameter values and secrets) travels
// over the control pipe, never on the shim's command line, so it is not visible in
// /proc/PID/cmdline.
//
// Threading: a RunSupervisor is used by one thread at a time. CancelSignal::Cancel() may be
// called from any thread or from a signal handler. Start() and RunStep() may run on many
// threads at once (one RunSupervisor each): every descriptor is created close-on-exec, so
// no shim or step inherits another run's pipes.
//
// A shim serves any number of steps one after another; SupervisorPool (supervisor_pool.h)
// reuses shims across runs, because starting one costs several raw spawns.
//
// Linux only (prctl, signalfd, pidfd, /proc). See src/sandbox/README.md for the protocol.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "core/run.h"

namespace automan {

// Wakes a blocked RunStep from another thread or a signal handler. Backed by an eventfd.
class CancelSignal {
 public:
  CancelSignal();
  ~CancelSignal();
  CancelSignal(const CancelSignal&) = delete;
  CancelSignal& operator=(const CancelSignal&) = delete;
  void Cancel();  // async-signal-safe; idempotent
  bool cancelled() const;
  // Readable once Cancel() was called, and stays readable. -1 if the eventfd could not be
  // created (descriptor exhaustion); RunStep then fails with kResourceExhausted.
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// How a sandboxed step is confined (src/sandbox/README.md, "The sandbox"). The shim builds
// it for each step: new mount, IPC and UTS namespaces (PID and network ones as asked), the
// host's file system read-only with `hidden` paths absent and `writable` paths bound
// read-write at the same place, a private /tmp and a minimal /dev, no_new_privs, reduced
// capabilities (or `run_as`), rlimits, and a cgroup with the memory and process limits
// where the host lets the supervisor create one. 0 means "no limit" for every limit.
struct SandboxSpec {
  bool private_pids = true;  // a new PID namespace: the step sees only its own processes
  bool no_network = false;   // a new network namespace with only loopback
  // Absolute host paths, bound read-write at the same path. Each must exist. The first is
  // the run's work directory, the only one that may lie inside a hidden path.
  std::vector<std::string> writable;
  // Absolute host paths that do not exist inside (ENOENT), e.g. the server's data
  // directory; a writable path inside one still appears, alone in a skeleton of its parents.
  std::vector<std::string> hidden;
  std::string run_as;         // a user name; empty: the supervisor's user with reduced capabilities
  uint64_t memory_bytes = 0;  // cgroup memory limit
  uint32_t max_processes = 0;    // cgroup pids.max (and RLIMIT_NPROC for run_as)
  uint64_t cpu_seconds = 0;      // RLIMIT_CPU
  uint64_t open_files = 0;       // RLIMIT_NOFILE
  uint64_t file_size_bytes = 0;  // RLIMIT_FSIZE
  bool operator==(const SandboxSpec&) const = default;
};

struct StepCommand {
  std::vector<std::string> argv;  // argv[0] without a '/' is looked up in the env's PATH
  std::vector<std::string> env;   // the complete environment, "KEY=VALUE"
  std::string cwd;                // empty: inherit the supervisor's ("/" when sandboxed)
  std::optional<std::chrono::milliseconds> timeout;
  std::chrono::milliseconds kill_grace{5000};  // SIGTERM -> SIGKILL
  std::optional<SandboxSpec> sandbox;          // unset: the step runs on the host as is
};

struct StepExit {
  enum class Kind {
    kExited,       // the main process exited; exit_code is set
    kSignaled,     // the main process was killed by `signal` (not by us)
    kTimedOut,     // the timeout fired; the tree was terminated
    kCancelled,    // CancelSignal fired; the tree was terminated
    kSpawnFailed,  // the command could not be started; `error` says why
  };
  Kind kind = Kind::kExited;
  int exit_code = 0;
  int signal = 0;
  // kSpawnFailed: why. kExited, kSignaled: set when a sandbox limit explains the end ("the
  // sandbox's memory limit of 64 MiB was reached ...").
  std::string error;
  // What the sandbox enforced for this step, in words (empty: not sandboxed or not started).
  std::string protections;
  bool operator==(const StepExit&) const = default;
};

// Receives a step's output as lines (without the newline). A line longer than
// kMaxLineBytes arrives as several pieces, all but the last with partial = true.
// Called on the thread that called RunStep.
class LineSink {
 public:
  virtual ~LineSink() = default;
  virtual void OnLine(LogStream stream, std::string_view text, bool partial) = 0;
};

inline constexpr size_t kMaxLineBytes = size_t{16} * 1024;

// Bounds on a StepCommand, checked by RunStep before anything is sent and again by the shim
// on receipt: the encoded specification (argv + env + cwd) is at most kMaxStepSpecBytes,
// has at most kMaxStepStrings argv and env entries together, and each duration is within
// [0, kMaxStepDuration]. (The kernel has its own, tighter limits on exec arguments; going
// past those is reported as kSpawnFailed with "Argument list too long".)
inline constexpr size_t kMaxStepSpecBytes = size_t{4} * 1024 * 1024;
inline constexpr size_t kMaxStepStrings = size_t{64} * 1024;
inline constexpr std::chrono::milliseconds kMaxStepDuration = std::chrono::hours(24 * 366);

struct SupervisorOptions {
  // The binary to re-execute as the shim; it must dispatch `__supervise` to
  // SupervisorMain. Default: this process's own executable (/proc/self/exe).
  std::string exe = "/proc/self/exe";
};

class RunSupervisor {
 public:
  // Spawns the shim. Fails with kUnavailable if it cannot be started.
  static Result<std::unique_ptr<RunSupervisor>> Start(const SupervisorOptions& options = {});
  virtual ~RunSupervisor() = default;

  // Runs one step to completion: streams its output to `sink` without blocking on any one
  // stream (a flood without newlines or a silent stream cannot stall the other), and
  // returns once the step's whole process tree is gone and its output is drained.
  // If `cancel` fires, the tree is terminated (SIGTERM, grace, SIGKILL) and kCancelled is
  // returned; if it has already fired when RunStep is called, nothing is started.
  // A non-OK Status means the supervisor itself failed (it died: kUnavailable; the protocol
  // broke: kInternal); the step's process group is killed in that case too, best-effort,
  // and every later call fails with kUnavailable.
  // A malformed command (empty argv or argv[0], a NUL byte in any string, an env entry
  // without "KEY=", a negative or too long duration, beyond the kMaxStep* bounds) fails
  // with kInvalidArgument before anything is sent; the supervisor stays usable.
  virtual Result<StepExit> RunStep(const StepCommand& cmd, LineSink& sink,
                                   const CancelSignal& cancel) = 0;

  // The shim's pid (for diagnostics and tests).
  virtual int pid() const = 0;

  // True if the supervisor can serve another step: its shim is alive and idle (no step
  // was left half-run, e.g. by a sink that threw). Never blocks. Used by SupervisorPool to
  // decide whether a supervisor may be reused; the default suits fakes.
  virtual bool IsHealthy() { return true; }
};

// Entry point of `automan __supervise` (argv[1] == "__supervise"). Returns the exit code.
int SupervisorMain(int argc, char** argv);
inline constexpr std::string_view kSupervisorCommand = "__supervise";

}  // namespace automan
