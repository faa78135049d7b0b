// Helpers for the sandbox tests: sinks that record output, step commands, and /proc scans
// that find processes a step may have left behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/supervisor.h"
#include "support/proc_util.h"

namespace automan::testing {

struct RecordedLine {
  LogStream stream;
  std::string text;
  bool partial;
  bool operator==(const RecordedLine&) const = default;
};

// Keeps every line; optionally calls `on_line` after recording (e.g. to cancel on "ready").
class RecordingSink : public LineSink {
 public:
  void OnLine(LogStream stream, std::string_view text, bool partial) override;
  std::vector<std::string> Texts(LogStream stream) const;
  std::vector<RecordedLine> lines;
  std::function<void(LogStream, std::string_view)> on_line;
};

// Counts bytes and pieces without keeping them (for floods); checks the piece contract.
class CountingSink : public LineSink {
 public:
  void OnLine(LogStream stream, std::string_view text, bool partial) override;
  size_t bytes[2] = {0, 0};      // by stream (stdout, stderr)
  size_t pieces[2] = {0, 0};     // partial pieces
  size_t lines[2] = {0, 0};      // complete lines (or last pieces)
  size_t bad_partial_sizes = 0;  // partial pieces whose size is not kMaxLineBytes
  size_t foreign_bytes = 0;      // bytes other than 'x' on stdout
  std::vector<std::string> stderr_lines;
};

// A random hex string, distinct for every call.
std::string RandomToken();

// `sh -c script` with a minimal environment: PATH, AUTOMAN_TEST_MARKER=<marker> and
// `extra_env`.
StepCommand Shell(const std::string& script, const std::string& marker = "",
                  std::vector<std::string> extra_env = {});

// Pids of live (non-zombie) processes whose environment holds AUTOMAN_TEST_MARKER=<marker>.
std::vector<pid_t> ProcessesWithMarker(const std::string& marker);
// Pids of live processes whose command line contains `needle`.
std::vector<pid_t> ProcessesWithCmdline(const std::string& needle);
// Waits (polling) up to `limit` until no process has the marker; returns what remains.
std::vector<pid_t> WaitForNoMarker(const std::string& marker,
                                   std::chrono::milliseconds limit = std::chrono::seconds(10));

// Pids of the current descendants of `root` (via the /proc scan the shim uses).
std::vector<pid_t> DescendantsOf(pid_t root);

// Entries of /proc/self/fd (minus the one used to list them).
int CountOpenFds();

// True when this process has no child left (waitpid reports ECHILD).
bool NoChildren();

}  // namespace automan::testing
