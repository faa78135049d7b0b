// Splits one output stream into lines for a LineSink.
//
// Bytes arrive in arbitrary chunks; every '\n' ends a line (delivered without the '\n';
// a '\r' before it is kept). A line longer than the cap is delivered in pieces of exactly
// `max_line` bytes with partial = true, the last piece (1..max_line bytes) with partial =
// false; a piece is only cut once a further byte of the same line has arrived, so a line of
// exactly max_line bytes is one complete line. Flush() delivers the unterminated fragment,
// if any, as a complete line (end of a step's output). Memory use is bounded by max_line.
//
// Thread-compatible: one splitter per stream, used by one thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/run.h"
#include "sandbox/supervisor.h"

namespace automan {

class LineSplitter {
 public:
  explicit LineSplitter(LogStream stream, size_t max_line = kMaxLineBytes);

  void Feed(std::string_view data, LineSink& sink);
  void Flush(LineSink& sink);

  // Bytes of the current unterminated line held back (for tests).
  size_t pending() const { return pending_.size(); }

 private:
  LogStream stream_;
  size_t max_line_;
  std::string pending_;
};

}  // namespace automan
