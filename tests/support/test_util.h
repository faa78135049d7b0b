// Helpers shared by tests: temporary directories, file I/O, running commands.
#pragma once

#include <string>

namespace automan::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);

// Runs `/bin/sh -c command`, captures stdout (stderr goes to the test's stderr) and returns
// the exit status as from waitpid's WEXITSTATUS (or 128+signal).
struct CommandResult {
  int exit_code = -1;
  std::string out;
};
CommandResult RunCommand(const std::string& command);

// The source tree root and the build tree root of this build.
std::string SourceDir();
std::string BinaryDir();

}  // namespace automan::testing
