// SupervisorMain: the shim process that owns one run's process tree. See supervisor.h for
// the contract and wire.h for the protocol. Single-threaded: one event loop over the
// control socket and a signalfd (SIGCHLD and the terminating signals), with exact ppoll
// timeouts for the step's deadline and the kill grace.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/size.h"
#include "sandbox/cgroup.h"
#include "sandbox/jail.h"
#include "sandbox/posix_util.h"
#include "sandbox/process_tree.h"
#include "sandbox/supervisor.h"
#include "sandbox/wire.h"

namespace automan {
namespace {

using sandbox_detail::ControlFrame;
using sandbox_detail::StatusFrame;
using SteadyTime = std::chrono::steady_clock::time_point;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// While killing, the tree is re-scanned this often until every descendant is reaped (a
// process may fork between a scan and its SIGKILL).
constexpr milliseconds kKillRescanInterval{20};

class Shim {
 public:
  int Run();

 private:
  enum class Phase { kRunning, kTerminating, kKilling };
  struct Step {
    pid_t main = -1;  // also the process group id
    bool main_reaped = false;
    int main_status = 0;
    std::optional<StepExit::Kind> stop;  // kTimedOut or kCancelled, once decided
    Phase phase = Phase::kRunning;
    std::optional<SteadyTime> deadline;
    milliseconds grace{0};
    SteadyTime grace_deadline{};
    SteadyTime next_rescan{};
    bool no_children = false;  // the last waitpid said ECHILD
    // Sandboxed steps: `main` is the jail's init, which reports the step's own wait status
    // on this pipe (jail.h).
    int report_fd = -1;
    uint64_t oom_kills_before = 0;
    uint64_t memory_limit = 0;
  };

  bool Init();
  // Reads one whole frame; false on EOF or a broken socket.
  bool ReadFrame(sandbox_detail::FrameHeader* header, std::string* payload);
  bool ReadExact(char* p, size_t n);
  void Send(StatusFrame type, std::string_view payload = {});
  void SendSpawnFailed(std::string error);
  // Drains the signalfd; sets *chld for SIGCHLD and engine_gone_ for terminating signals.
  void ReadSignals(bool* chld);
  // Handles a readable control socket while a step runs.
  void ReadControlDuringStep(Step& s);
  void HandleStep(std::string_view payload);
  std::optional<pid_t> Spawn(const StepCommand& cmd);
  void Supervise(Step& s);
  void Reap(Step& s);
  void RequestStop(Step& s, StepExit::Kind kind);
  void BeginTerminate(Step& s);
  void BeginKill(Step& s);
  void Report(const Step& s);

  int ctl_ = sandbox_detail::kShimControlFd;
  int sigfd_ = -1;
  int devnull_ = -1;
  bool engine_gone_ = false;  // EOF on control, a terminating signal or a protocol error
  int exit_code_ = 0;
  sandbox_detail::StepCgroup cgroup_;  // for sandboxed steps, created on first use
};

bool Shim::Init() {
  // The engine hands over exactly these descriptors; refuse to run without them (someone
  // typed `automan __supervise` by hand).
  struct stat st;
  if (fstat(ctl_, &st) != 0 || !S_ISSOCK(st.st_mode) ||
      fstat(sandbox_detail::kShimStdoutFd, &st) != 0 || !S_ISFIFO(st.st_mode) ||
      fstat(sandbox_detail::kShimStderrFd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    (void)fprintf(stderr,
                  "__supervise is internal: it is started by the automan engine with its "
                  "control socket on fd 3 and output pipes on fds 4 and 5\n");
    return false;
  }
  for (int fd : {ctl_, sandbox_detail::kShimStdoutFd, sandbox_detail::kShimStderrFd}) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);  // steps get the pipes through dup2 only
  }
  // Keep 0..2 occupied so no descriptor opened below lands there by accident.
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) < 0) {
      int null_fd = open("/dev/null", O_RDWR);  // lowest free number: this one
      if (null_fd != fd && null_fd >= 0) close(null_fd);
    }
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    (void)fprintf(stderr, "automan supervisor: PR_SET_CHILD_SUBREAPER: %s\n",
                  ErrnoText(errno).c_str());
    return false;
  }
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&mask, sig);
  (void)pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  // Steps get default dispositions back (POSIX_SPAWN_SETSIGDEF).
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  (void)sigaction(SIGPIPE, &ignore, nullptr);
  sigfd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  devnull_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (sigfd_ < 0 || devnull_ < 0) {
    (void)fprintf(stderr, "automan supervisor: setup failed: %s\n", ErrnoText(errno).c_str());
    return false;
  }
  return true;
}

bool Shim::ReadExact(char* p, size_t n) {
  while (n > 0) {
    ssize_t r = recv(ctl_, p, n, MSG_WAITALL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool Shim::ReadFrame(sandbox_detail::FrameHeader* header, std::string* payload) {
  char h[sandbox_detail::kFrameHeaderBytes];
  if (!ReadExact(h, sizeof h)) return false;
  *header = sandbox_detail::DecodeFrameHeader(h);
  if (header->length > sandbox_detail::kMaxControlPayload) {
    (void)fprintf(stderr, "automan supervisor: control frame of %u bytes exceeds the limit\n",
                  header->length);
    exit_code_ = 1;
    return false;
  }
  payload->resize(header->length);
  return ReadExact(payload->data(), payload->size());
}

void Shim::Send(StatusFrame type, std::string_view payload) {
  if (engine_gone_) return;
  std::string frame = sandbox_detail::EncodeFrame(static_cast<uint32_t>(type), payload);
  const char* p = frame.data();
  size_t n = frame.size();
  while (n > 0) {
    ssize_t w = send(ctl_, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      engine_gone_ = true;
      return;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void Shim::SendSpawnFailed(std::string error) {
  if (error.size() > sandbox_detail::kMaxStatusPayload) {
    error.resize(sandbox_detail::kMaxStatusPayload);
  }
  Send(StatusFrame::kSpawnFailed, error);
}

void Shim::ReadSignals(bool* chld) {
  signalfd_siginfo info[8];
  for (;;) {
    ssize_t n = read(sigfd_, info, sizeof info);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    for (size_t i = 0; i < static_cast<size_t>(n) / sizeof info[0]; ++i) {
      if (info[i].ssi_signo == SIGCHLD) {
        *chld = true;
      } else {
        engine_gone_ = true;  // told to stop: behave as if the engine went away
      }
    }
  }
}

int Shim::Run() {
  if (!Init()) return 2;
  Send(StatusFrame::kHello, sandbox_detail::EncodeInt32(sandbox_detail::kProtocolVersion));
  std::string payload;
  while (!engine_gone_) {
    pollfd fds[2] = {{ctl_, POLLIN, 0}, {sigfd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[1].revents != 0) {
      bool chld = false;
      ReadSignals(&chld);
      // Nothing runs between steps; reap anything that shows up regardless.
      while (chld && waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
      }
    }
    if (engine_gone_ || fds[0].revents == 0) continue;
    sandbox_detail::FrameHeader header;
    if (!ReadFrame(&header, &payload)) break;  // the engine is gone
    switch (static_cast<ControlFrame>(header.type)) {
      case ControlFrame::kRunStep:
        HandleStep(payload);
        break;
      case ControlFrame::kCancel:
        break;  // raced with the end of the step it was meant for
      default:
        (void)fprintf(stderr, "automan supervisor: unknown control frame type %u\n", header.type);
        return 1;
    }
  }
  return exit_code_;
}

void Shim::HandleStep(std::string_view payload) {
  Result<StepCommand> cmd = sandbox_detail::DecodeStepCommand(payload);
  if (!cmd.ok()) {
    SendSpawnFailed("invalid step specification: " + cmd.status().message());
    return;
  }
  Step s;
  if (cmd->sandbox) {
    s.oom_kills_before = cgroup_.OomKills();
    s.memory_limit = cmd->sandbox->memory_bytes;
    Result<sandbox_detail::JailedStep> jailed =
        sandbox_detail::StartJailed(*cmd, devnull_, cgroup_);
    if (!jailed.ok()) {
      SendSpawnFailed(jailed.status().message());
      return;
    }
    s.main = jailed->pid;
    s.report_fd = jailed->report_fd;
    Send(StatusFrame::kStarted, sandbox_detail::EncodeInt32(s.main) + jailed->protections);
  } else {
    std::optional<pid_t> pid = Spawn(*cmd);
    if (!pid) return;  // reported
    s.main = *pid;
    Send(StatusFrame::kStarted, sandbox_detail::EncodeInt32(s.main));
  }
  s.grace = cmd->kill_grace;
  if (cmd->timeout) s.deadline = steady_clock::now() + *cmd->timeout;
  Supervise(s);
  Report(s);
}

std::optional<pid_t> Shim::Spawn(const StepCommand& cmd) {
  // The working directory is opened here, so a bad one is reported as such rather than
  // as an ambiguous errno from posix_spawn; the child fchdir()s to it before exec.
  int cwd_fd = -1;
  if (!cmd.cwd.empty()) {
    cwd_fd = open(cmd.cwd.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd_fd < 0) {
      SendSpawnFailed("cannot use working directory '" + cmd.cwd + "': " + ErrnoText(errno));
      return std::nullopt;
    }
  }
  const int at = cwd_fd >= 0 ? cwd_fd : AT_FDCWD;

  std::string program;
  if (std::string error; !sandbox_detail::ResolveProgram(cmd, at, &program, &error)) {
    if (cwd_fd >= 0) close(cwd_fd);
    SendSpawnFailed(std::move(error));
    return std::nullopt;
  }

  std::vector<char*> argv;
  argv.reserve(cmd.argv.size() + 1);
  for (const auto& a : cmd.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(cmd.env.size() + 1);
  for (const auto& e : cmd.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, devnull_, 0);
  posix_spawn_file_actions_adddup2(&fa, sandbox_detail::kShimStdoutFd, 1);
  posix_spawn_file_actions_adddup2(&fa, sandbox_detail::kShimStderrFd, 2);
  if (cwd_fd >= 0) posix_spawn_file_actions_addfchdir_np(&fa, cwd_fd);
  posix_spawnattr_t attr;
  sandbox_detail::InitCleanSpawnAttr(&attr);
  pid_t pid = -1;
  int err = posix_spawn(&pid, program.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (cwd_fd >= 0) close(cwd_fd);
  if (err != 0) {
    std::string where = cmd.cwd.empty() ? "" : " in '" + cmd.cwd + "'";
    SendSpawnFailed("cannot execute '" + program + "'" + where + ": " + ErrnoText(err));
    return std::nullopt;
  }
  return pid;
}

void Shim::Reap(Step& s) {
  for (;;) {
    int status = 0;
    pid_t r = waitpid(-1, &status, WNOHANG | __WALL);
    if (r > 0) {
      if (r == s.main) {
        s.main_reaped = true;
        s.main_status = status;
      }
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    s.no_children = r < 0 && errno == ECHILD;
    return;
  }
}

void Shim::RequestStop(Step& s, StepExit::Kind kind) {
  // A second request (cancel during a timeout's grace, EOF after a cancel) changes nothing:
  // the tree is already being terminated with its grace period.
  if (s.phase != Phase::kRunning) return;
  if (!s.main_reaped) s.stop = kind;
  BeginTerminate(s);
}

void Shim::BeginTerminate(Step& s) {
  s.phase = Phase::kTerminating;
  // SIGCONT so that stopped processes get to act on the SIGTERM.
  sandbox_detail::SignalDescendants(getpid(), s.main, !s.main_reaped, {SIGTERM, SIGCONT});
  s.grace_deadline = steady_clock::now() + s.grace;
  if (s.grace.count() == 0) BeginKill(s);
}

void Shim::BeginKill(Step& s) {
  s.phase = Phase::kKilling;
  sandbox_detail::SignalDescendants(getpid(), s.main, !s.main_reaped, {SIGKILL});
  s.next_rescan = steady_clock::now() + kKillRescanInterval;
}

void Shim::ReadControlDuringStep(Step& s) {
  sandbox_detail::FrameHeader header;
  std::string payload;
  if (!ReadFrame(&header, &payload)) {
    engine_gone_ = true;
    return;
  }
  if (static_cast<ControlFrame>(header.type) == ControlFrame::kCancel) {
    RequestStop(s, StepExit::Kind::kCancelled);
    return;
  }
  // Only kCancel is valid while a step runs: the engine is confused; stop serving it.
  (void)fprintf(stderr, "automan supervisor: unexpected control frame %u during a step\n",
                header.type);
  exit_code_ = 1;
  engine_gone_ = true;
}

void Shim::Supervise(Step& s) {
  for (;;) {
    // The engine may be gone already (kStarted could not be sent) or go away below; the
    // request is idempotent, so check on every turn rather than for a change.
    if (engine_gone_) RequestStop(s, StepExit::Kind::kCancelled);
    // Deadlines first, so a step that finishes and times out in the same instant is
    // judged by what happened first in our reading.
    SteadyTime now = steady_clock::now();
    if (s.phase == Phase::kRunning && s.deadline && now >= *s.deadline) {
      RequestStop(s, StepExit::Kind::kTimedOut);
    }
    if (s.phase == Phase::kTerminating && now >= s.grace_deadline) BeginKill(s);
    if (s.phase == Phase::kKilling && now >= s.next_rescan) {
      Reap(s);
      if (s.main_reaped && s.no_children) return;
      sandbox_detail::SignalDescendants(getpid(), s.main, !s.main_reaped, {SIGKILL});
      s.next_rescan = now + kKillRescanInterval;
    }

    std::optional<SteadyTime> wake;
    if (s.phase == Phase::kRunning) wake = s.deadline;
    if (s.phase == Phase::kTerminating) wake = s.grace_deadline;
    if (s.phase == Phase::kKilling) wake = s.next_rescan;
    timespec ts{};
    if (wake) {
      auto left = std::max(*wake - steady_clock::now(), steady_clock::duration::zero());
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(left);
      ts.tv_sec = secs.count();
      ts.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(left - secs).count();
    }
    pollfd fds[2] = {{sigfd_, POLLIN, 0}, {engine_gone_ ? -1 : ctl_, POLLIN, 0}};
    if (ppoll(fds, 2, wake ? &ts : nullptr, nullptr) < 0 && errno != EINTR) {
      // Cannot wait for events: stop the step and fall back to killing with periodic
      // re-scans, pausing so that a persistent error does not spin.
      engine_gone_ = true;
      exit_code_ = 1;
      timespec pause{0, std::chrono::nanoseconds(kKillRescanInterval).count()};
      nanosleep(&pause, nullptr);
    }
    bool chld = false;
    if (fds[0].revents != 0) ReadSignals(&chld);
    if (fds[1].revents != 0 && !engine_gone_) ReadControlDuringStep(s);
    if (engine_gone_) RequestStop(s, StepExit::Kind::kCancelled);
    if (chld) {
      Reap(s);
      if (s.main_reaped && s.no_children) return;
      // The main process is gone but left something behind: terminate it the same way.
      if (s.main_reaped && s.phase == Phase::kRunning) BeginTerminate(s);
    }
  }
}

void Shim::Report(const Step& s) {
  int status = s.main_status;
  std::string why;
  if (s.report_fd >= 0) {
    // The jail's init reports the step's own status; without it (the init was killed) the
    // init's status stands.
    if (std::optional<int> step_status = sandbox_detail::ReadJailedStatus(s.report_fd)) {
      status = *step_status;
    }
    close(s.report_fd);
    if (s.memory_limit != 0 && cgroup_.OomKills() > s.oom_kills_before) {
      why = "the sandbox's memory limit of " + FormatBytes(s.memory_limit) +
            " was reached (killed by the kernel's OOM killer)";
    }
  }
  if (s.stop) {
    Send(*s.stop == StepExit::Kind::kTimedOut ? StatusFrame::kTimedOut : StatusFrame::kCancelled);
  } else if (WIFSIGNALED(status)) {
    Send(StatusFrame::kSignaled, sandbox_detail::EncodeInt32(WTERMSIG(status)) + why);
  } else {
    Send(StatusFrame::kExited, sandbox_detail::EncodeInt32(WEXITSTATUS(status)) + why);
  }
}

}  // namespace

int SupervisorMain(int argc, char** argv) {
  if (argc != 2 || kSupervisorCommand != argv[1]) {
    (void)fprintf(stderr, "usage: %s %s (internal)\n", argc > 0 ? argv[0] : "automan",
                  std::string(kSupervisorCommand).c_str());
    return 2;
  }
  Shim shim;
  return shim.Run();
}

}  // namespace automan
