// A writer child process for the crash tests of the store backends: this test binary
// re-executed with a gtest filter that selects the backend's `...ChildTest.Writer`, which
// commits runs and reports each committed id, one per line, on the pipe it finds at
// kWriterChildFd. The parent reads the ids, SIGKILLs the child mid-stream and checks that
// every reported run survived.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace automan::testing {

inline constexpr int kWriterChildFd = 100;  // where a child finds the write end of its pipe

class WriterChild {
 public:
  // Starts `<this binary> --gtest_filter=<test>` with this process's environment plus
  // `extra_env` ("KEY=VALUE"). Adds a test failure and returns an inert child on error.
  static WriterChild Spawn(const std::string& test, const std::vector<std::string>& extra_env);

  WriterChild() = default;
  WriterChild(WriterChild&& o) noexcept;
  WriterChild& operator=(WriterChild&&) = delete;
  ~WriterChild();  // kills and reaps the child if it still runs

  // The next reported id; false at end of stream (the child exited or died). Fails the
  // test instead of hanging when the child reports nothing for a minute.
  bool Next(std::string* line);
  void Kill();
  // waitpid status.
  int Wait();

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
};

}  // namespace automan::testing
