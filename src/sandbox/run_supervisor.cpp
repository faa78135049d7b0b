// The engine side of the supervisor: CancelSignal and RunSupervisor::Start / RunStep.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "sandbox/line_splitter.h"
#include "sandbox/posix_util.h"
#include "sandbox/supervisor.h"
#include "sandbox/wire.h"

extern char** environ;

namespace automan {
namespace {

using sandbox_detail::ControlFrame;
using sandbox_detail::StatusFrame;

// Bytes read from one output stream per wake-up before the other fds get a turn, so a
// flooding stream cannot starve the other one or the status channel.
constexpr size_t kReadChunk = size_t{64} * 1024;
constexpr size_t kReadBudgetPerWake = 4 * kReadChunk;

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

class RunSupervisorImpl final : public RunSupervisor {
 public:
  RunSupervisorImpl(pid_t pid, int ctl, int out, int err)
      : pid_(pid), ctl_(ctl), out_(out), err_(err), buf_(kReadChunk) {}
  ~RunSupervisorImpl() override;

  Result<StepExit> RunStep(const StepCommand& cmd, LineSink& sink,
                           const CancelSignal& cancel) override;
  int pid() const override { return pid_; }
  bool IsHealthy() override;

 private:
  enum class ReadResult { kMore, kDrained, kEof };
  // Reads up to `budget` bytes from one stream into its splitter.
  Result<ReadResult> ReadStream(int fd, LineSplitter& splitter, LineSink& sink, size_t budget);
  Status SendAll(std::string_view bytes);
  // Reads whatever the shim sent and parses complete frames; sets *exit when the step's
  // terminal frame arrived.
  Status ReadStatus(std::optional<StepExit>* exit);
  Status HandleFrame(const sandbox_detail::FrameHeader& h, std::string_view payload,
                     std::optional<StepExit>* exit);
  // The shim failed: kill what we can, reap it, and remember that it is gone.
  Status Fail(ErrorCode code, std::string reason);
  void ReapShim(bool kill_first);

  pid_t pid_;
  int ctl_;
  int out_;
  int err_;
  bool reaped_ = false;
  bool hello_seen_ = false;
  bool in_step_ = false;     // a step was sent and its terminal frame not yet read
  std::string broken_;       // why the supervisor is unusable; empty while healthy
  pid_t step_pgid_ = -1;     // the running step's process group, once started
  std::string protections_;  // from kStarted: what the sandbox enforced
  std::vector<char> buf_;
  std::string status_buf_;  // bytes from the shim not yet parsed into frames
};

RunSupervisorImpl::~RunSupervisorImpl() {
  // EOF on the control socket tells the shim to kill whatever runs (nothing, between
  // steps) and exit; then it is reaped so the engine keeps no zombie.
  CloseFd(ctl_);
  if (!reaped_) ReapShim(/*kill_first=*/false);
  CloseFd(out_);
  CloseFd(err_);
}

void RunSupervisorImpl::ReapShim(bool kill_first) {
  if (reaped_) return;
  if (kill_first) kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  if (broken_.empty()) return;
  broken_ += " (" + DescribeWaitStatus(status) + ")";
}

Status RunSupervisorImpl::Fail(ErrorCode code, std::string reason) {
  broken_ = fmt::format("supervisor (pid {}) {}", pid_, reason);
  if (step_pgid_ > 0) kill(-step_pgid_, SIGKILL);  // best-effort: setsid'd daemons escape
  step_pgid_ = -1;
  CloseFd(ctl_);
  ReapShim(/*kill_first=*/true);
  return Status(code, broken_);
}

Status RunSupervisorImpl::SendAll(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t w = send(ctl_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Fail(ErrorCode::kUnavailable, "is gone: " + ErrnoText(errno));
    bytes.remove_prefix(static_cast<size_t>(w));
  }
  return Status::Ok();
}

Result<RunSupervisorImpl::ReadResult> RunSupervisorImpl::ReadStream(int fd, LineSplitter& splitter,
                                                                    LineSink& sink, size_t budget) {
  while (budget > 0) {
    ssize_t n = read(fd, buf_.data(), std::min(buf_.size(), budget));
    if (n > 0) {
      splitter.Feed(std::string_view(buf_.data(), static_cast<size_t>(n)), sink);
      budget -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return ReadResult::kEof;  // every write end closed: the shim is gone
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return ReadResult::kDrained;
    return Error(ErrorCode::kInternal, "reading step output: {}", ErrnoText(errno));
  }
  return ReadResult::kMore;
}

Status RunSupervisorImpl::HandleFrame(const sandbox_detail::FrameHeader& h,
                                      std::string_view payload, std::optional<StepExit>* exit) {
  auto type = static_cast<StatusFrame>(h.type);
  if (!hello_seen_) {
    if (type != StatusFrame::kHello) {
      return Fail(ErrorCode::kInternal, "did not greet with the supervisor protocol");
    }
    Result<int32_t> version = sandbox_detail::DecodeInt32(payload);
    if (!version.ok() || *version != static_cast<int32_t>(sandbox_detail::kProtocolVersion)) {
      return Fail(ErrorCode::kInternal, fmt::format("speaks another protocol version (expected {})",
                                                    sandbox_detail::kProtocolVersion));
    }
    hello_seen_ = true;
    return Status::Ok();
  }

  StepExit e;
  switch (type) {
    case StatusFrame::kStarted: {
      // The pid, then what the sandbox enforced (empty when the step is not sandboxed).
      if (payload.size() < 4) return Fail(ErrorCode::kInternal, "sent a malformed status frame");
      int32_t pid = 0;
      std::memcpy(&pid, payload.data(), 4);
      step_pgid_ = pid;
      protections_ = std::string(payload.substr(4));
      return Status::Ok();
    }
    case StatusFrame::kExited:
    case StatusFrame::kSignaled:
      // The code or signal, then why, when a sandbox limit explains it.
      if (payload.size() < 4) return Fail(ErrorCode::kInternal, "sent a malformed status frame");
      e.kind = type == StatusFrame::kExited ? StepExit::Kind::kExited : StepExit::Kind::kSignaled;
      std::memcpy(type == StatusFrame::kExited ? &e.exit_code : &e.signal, payload.data(), 4);
      e.error = std::string(payload.substr(4));
      break;
    case StatusFrame::kTimedOut:
      e.kind = StepExit::Kind::kTimedOut;
      break;
    case StatusFrame::kCancelled:
      e.kind = StepExit::Kind::kCancelled;
      break;
    case StatusFrame::kSpawnFailed:
      e.kind = StepExit::Kind::kSpawnFailed;
      e.error = std::string(payload);
      break;
    default:
      return Fail(ErrorCode::kInternal, fmt::format("sent an unknown status frame {}", h.type));
  }
  step_pgid_ = -1;
  in_step_ = false;
  e.protections = std::move(protections_);
  protections_.clear();
  *exit = std::move(e);
  return Status::Ok();
}

Status RunSupervisorImpl::ReadStatus(std::optional<StepExit>* exit) {
  char buf[4096];
  std::string gone;  // set on EOF or a socket error: the shim exited
  for (;;) {
    ssize_t n = recv(ctl_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      status_buf_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    gone = n == 0 ? "exited unexpectedly" : "is unreachable: " + ErrnoText(errno);
    break;
  }
  // Frames that arrived before the EOF still count: kStarted names the process group to
  // kill, and a terminal frame means the step did complete.
  size_t pos = 0;
  while (!*exit && status_buf_.size() - pos >= sandbox_detail::kFrameHeaderBytes) {
    auto h = sandbox_detail::DecodeFrameHeader(status_buf_.data() + pos);
    if (h.length > sandbox_detail::kMaxStatusPayload) {
      return Fail(ErrorCode::kInternal,
                  fmt::format("sent an oversized frame ({} bytes)", h.length));
    }
    if (status_buf_.size() - pos - sandbox_detail::kFrameHeaderBytes < h.length) break;
    std::string_view payload(status_buf_.data() + pos + sandbox_detail::kFrameHeaderBytes,
                             h.length);
    AUTOMAN_RETURN_IF_ERROR(HandleFrame(h, payload, exit));
    pos += sandbox_detail::kFrameHeaderBytes + h.length;
  }
  status_buf_.erase(0, pos);
  if (gone.empty()) return Status::Ok();
  if (*exit) {
    // The step's result is complete; only later calls are affected.
    broken_ = fmt::format("supervisor (pid {}) {}", pid_, gone);
    CloseFd(ctl_);
    ReapShim(/*kill_first=*/true);
    return Status::Ok();
  }
  return Fail(ErrorCode::kUnavailable, gone);
}

bool RunSupervisorImpl::IsHealthy() {
  if (!broken_.empty() || in_step_) return false;
  pollfd p{ctl_, POLLIN, 0};
  int n = poll(&p, 1, 0);
  if (n == 0) return true;
  if (n < 0) return false;
  // An idle shim sends nothing after its greeting: anything else readable is its EOF.
  std::optional<StepExit> unexpected;
  if (!ReadStatus(&unexpected).ok()) return false;
  if (unexpected) {
    (void)Fail(ErrorCode::kInternal, "reported a step result while idle");
    return false;
  }
  return true;
}

Result<StepExit> RunSupervisorImpl::RunStep(const StepCommand& cmd, LineSink& sink,
                                            const CancelSignal& cancel) {
  if (!broken_.empty()) return Status(ErrorCode::kUnavailable, broken_);
  if (in_step_) {
    // A previous RunStep was left midway (its sink threw): the shim is still busy with
    // that step and the stream position is unknown. Let the shim terminate the tree as
    // if the engine were gone, and give up on this supervisor.
    broken_ = fmt::format("supervisor (pid {}) was abandoned in the middle of a step", pid_);
    CloseFd(ctl_);
    ReapShim(/*kill_first=*/false);
    return Status(ErrorCode::kUnavailable, broken_);
  }
  AUTOMAN_RETURN_IF_ERROR(sandbox_detail::ValidateStepCommand(cmd));
  if (cancel.fd() < 0) {
    return Error(ErrorCode::kResourceExhausted, "the cancel signal has no eventfd");
  }
  if (cancel.cancelled()) return StepExit{.kind = StepExit::Kind::kCancelled};
  AUTOMAN_RETURN_IF_ERROR(SendAll(sandbox_detail::EncodeFrame(
      static_cast<uint32_t>(ControlFrame::kRunStep), sandbox_detail::EncodeStepCommand(cmd))));
  in_step_ = true;

  LineSplitter out(LogStream::kStdout);
  LineSplitter err(LogStream::kStderr);
  bool out_open = true;
  bool err_open = true;
  bool cancel_sent = false;
  std::optional<StepExit> exit;
  // Delivers what is already buffered before returning, whatever the outcome.
  auto drain = [&]() -> Status {
    for (auto [fd, splitter, open] :
         {std::tuple{out_, &out, &out_open}, std::tuple{err_, &err, &err_open}}) {
      while (*open) {
        Result<ReadResult> r = ReadStream(fd, *splitter, sink, SIZE_MAX);
        if (!r.ok()) return r.status();
        if (*r == ReadResult::kEof) *open = false;
        if (*r != ReadResult::kMore) break;
      }
      splitter->Flush(sink);
    }
    return Status::Ok();
  };

  while (!exit) {
    std::array<pollfd, 4> fds{{{ctl_, POLLIN, 0},
                               {out_open ? out_ : -1, POLLIN, 0},
                               {err_open ? err_ : -1, POLLIN, 0},
                               {cancel_sent ? -1 : cancel.fd(), POLLIN, 0}}};
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      Status s = Fail(ErrorCode::kInternal, "could not be waited for: " + ErrnoText(errno));
      (void)drain();
      return s;
    }
    // Output before status: bytes already read belong to this step either way, and the
    // drain after the terminal frame picks up the rest.
    for (auto [i, fd, splitter, open] :
         {std::tuple{1, out_, &out, &out_open}, std::tuple{2, err_, &err, &err_open}}) {
      if (fds[i].revents == 0) continue;
      Result<ReadResult> r = ReadStream(fd, *splitter, sink, kReadBudgetPerWake);
      if (!r.ok()) {
        Status s = Fail(ErrorCode::kInternal, r.status().message());
        (void)drain();
        return s;
      }
      if (*r == ReadResult::kEof) *open = false;
    }
    if (fds[3].revents != 0) {
      // Only the shim can stop the tree; if it is gone the send fails and the status
      // channel reports it below.
      Status s =
          SendAll(sandbox_detail::EncodeFrame(static_cast<uint32_t>(ControlFrame::kCancel), {}));
      if (!s.ok()) {
        (void)drain();
        return s;
      }
      cancel_sent = true;
    }
    if (fds[0].revents != 0) {
      Status s = ReadStatus(&exit);
      if (!s.ok()) {
        (void)drain();
        return s;
      }
    }
  }
  // The shim reports only once every process of the step is gone, so everything the step
  // wrote is already in the pipes: read until they are empty.
  AUTOMAN_RETURN_IF_ERROR(drain());
  return *std::move(exit);
}

}  // namespace

CancelSignal::CancelSignal() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

CancelSignal::~CancelSignal() {
  if (fd_ >= 0) close(fd_);
}

void CancelSignal::Cancel() {
  if (fd_ < 0) return;
  int saved = errno;  // async-signal-safe: a handler must not clobber errno
  uint64_t one = 1;
  ssize_t ignored = write(fd_, &one, sizeof one);
  (void)ignored;
  errno = saved;
}

bool CancelSignal::cancelled() const {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

Result<std::unique_ptr<RunSupervisor>> RunSupervisor::Start(const SupervisorOptions& options) {
  if (options.exe.empty()) {
    return Error(ErrorCode::kUnavailable, "no supervisor executable configured");
  }
  // Everything close-on-exec: other threads may be spawning children right now.
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  int ctl[2] = {-1, -1};
  auto close_all = [&] {
    for (int* fd : {&out[0], &out[1], &err[0], &err[1], &ctl[0], &ctl[1]}) CloseFd(*fd);
  };
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0) {
    int e = errno;
    close_all();
    return Error(ErrorCode::kUnavailable, "cannot create supervisor channels: {}", ErrnoText(e));
  }
  // Only our read ends are non-blocking: the write ends' file status is shared with the
  // steps, which expect blocking writes.
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);

  // Move the shim's ends onto fds 3, 4, 5 in the child. A source may itself be one of
  // 3..5, so go through temporaries that are neither a source nor a target, then close
  // everything from 6 up (descriptors another thread opened without O_CLOEXEC included).
  const std::array<int, 3> sources{ctl[1], out[1], err[1]};
  const std::array<int, 3> targets{sandbox_detail::kShimControlFd, sandbox_detail::kShimStdoutFd,
                                   sandbox_detail::kShimStderrFd};
  std::array<int, 3> temps{};
  for (int candidate = sandbox_detail::kShimFirstFreeFd, i = 0; i < 3; ++candidate) {
    if (std::find(sources.begin(), sources.end(), candidate) == sources.end()) {
      temps[i++] = candidate;
    }
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (size_t i = 0; i < 3; ++i) posix_spawn_file_actions_adddup2(&fa, sources[i], temps[i]);
  // stdin is /dev/null. A source below 3 means the engine runs without that standard
  // descriptor (pipe2 returns the lowest free number): give the shim /dev/null there too.
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  for (int fd : sources) {
    if (fd == 1 || fd == 2) posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_WRONLY, 0);
  }
  for (size_t i = 0; i < 3; ++i) posix_spawn_file_actions_adddup2(&fa, temps[i], targets[i]);
  posix_spawn_file_actions_addclosefrom_np(&fa, sandbox_detail::kShimFirstFreeFd);
  posix_spawnattr_t attr;
  // Its own process group: a terminal's Ctrl-C reaches the engine, which decides; the
  // shim only stops steps when told to or when the engine is gone.
  sandbox_detail::InitCleanSpawnAttr(&attr);
  std::string arg0 = options.exe;
  std::string arg1(kSupervisorCommand);
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, options.exe.c_str(), &fa, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  CloseFd(ctl[1]);
  CloseFd(out[1]);
  CloseFd(err[1]);
  if (rc != 0) {
    close_all();
    return Error(ErrorCode::kUnavailable, "cannot start supervisor '{}': {}", options.exe,
                 ErrnoText(rc));
  }
  return std::unique_ptr<RunSupervisor>(
      std::make_unique<RunSupervisorImpl>(pid, ctl[0], out[0], err[0]));
}

}  // namespace automan
