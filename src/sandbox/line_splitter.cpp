#include "sandbox/line_splitter.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace automan {

LineSplitter::LineSplitter(LogStream stream, size_t max_line)
    : stream_(stream), max_line_(max_line) {
  assert(max_line_ > 0);
  pending_.reserve(std::min<size_t>(max_line_, 4096));
}

void LineSplitter::Feed(std::string_view data, LineSink& sink) {
  const char* p = data.data();
  size_t n = data.size();
  while (n > 0) {
    if (pending_.size() == max_line_) {
      // A full piece is held; the next byte decides whether it was the whole line.
      if (*p == '\n') {
        sink.OnLine(stream_, pending_, false);
        pending_.clear();
        ++p;
        --n;
        continue;
      }
      sink.OnLine(stream_, pending_, true);
      pending_.clear();
    }
    size_t room = max_line_ - pending_.size();
    size_t scan = std::min(n, room);
    const void* nl = std::memchr(p, '\n', scan);
    if (nl == nullptr) {
      pending_.append(p, scan);
      p += scan;
      n -= scan;
      continue;
    }
    size_t len = static_cast<const char*>(nl) - p;
    if (pending_.empty()) {
      sink.OnLine(stream_, std::string_view(p, len), false);  // no copy for whole lines
    } else {
      pending_.append(p, len);
      sink.OnLine(stream_, pending_, false);
      pending_.clear();
    }
    p += len + 1;
    n -= len + 1;
  }
}

void LineSplitter::Flush(LineSink& sink) {
  if (pending_.empty()) return;
  sink.OnLine(stream_, pending_, false);
  pending_.clear();
}

}  // namespace automan
