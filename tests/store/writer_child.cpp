#include "writer_child.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

extern char** environ;

namespace automan::testing {

WriterChild WriterChild::Spawn(const std::string& test, const std::vector<std::string>& extra_env) {
  WriterChild c;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 failed";
    return c;
  }
  char exe[PATH_MAX] = {};
  if (readlink("/proc/self/exe", exe, sizeof exe - 1) <= 0) {
    ADD_FAILURE() << "readlink /proc/self/exe failed";
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string filter = "--gtest_filter=" + test;
  char* argv[] = {exe, filter.data(), nullptr};

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], kWriterChildFd);  // dup2 clears O_CLOEXEC
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawn(&c.pid_, exe, &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn failed: " << rc;
    close(fds[0]);
    c.pid_ = -1;
    return c;
  }
  c.fd_ = fds[0];
  return c;
}

WriterChild::WriterChild(WriterChild&& o) noexcept
    : pid_(o.pid_), fd_(o.fd_), buf_(std::move(o.buf_)) {
  o.pid_ = -1;
  o.fd_ = -1;
}

WriterChild::~WriterChild() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (fd_ >= 0) close(fd_);
}

bool WriterChild::Next(std::string* line) {
  while (true) {
    size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      *line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return true;
    }
    if (fd_ < 0) return false;
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 60000) != 1) {
      ADD_FAILURE() << "child " << pid_ << " reported nothing for 60 s";
      return false;
    }
    char chunk[4096];
    ssize_t n = read(fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd_);
      fd_ = -1;
      buf_.clear();  // a partial line was never fully reported
      return false;
    }
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

void WriterChild::Kill() {
  if (pid_ > 0) kill(pid_, SIGKILL);
}

int WriterChild::Wait() {
  int status = -1;
  if (pid_ > 0) waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

}  // namespace automan::testing
