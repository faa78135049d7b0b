#include "common/duration.h"

#include <cstdint>

namespace automan {

namespace {
constexpr int64_t kMaxMs = int64_t{365} * 24 * 3600 * 1000;
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const std::string shown(text.substr(0, 40));
  if (text.empty()) {
    return Error(ErrorCode::kInvalidArgument, "empty duration; write e.g. 500ms, 30s, 5m or 2h");
  }
  if (text.size() > 32) {
    return Error(ErrorCode::kInvalidArgument,
                 "duration \"{}...\" is too long; write e.g. 500ms, 30s, 5m or 2h", shown);
  }
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] < '0' || text[i] > '9') {
      return Error(ErrorCode::kInvalidArgument,
                   "invalid duration \"{}\": expected a number at position {}; write e.g. "
                   "500ms, 30s, 5m or 2h",
                   shown, i + 1);
    }
    int64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > kMaxMs) {
        return Error(ErrorCode::kInvalidArgument, "duration \"{}\" is longer than 365 days", shown);
      }
      ++i;
    }
    size_t unit_start = i;
    while (i < text.size() && (text[i] < '0' || text[i] > '9')) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    int64_t scale = 0;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60'000;
    } else if (unit == "h") {
      scale = 3'600'000;
    } else if (unit == "d") {
      scale = 86'400'000;
    } else if (unit.empty()) {
      return Error(ErrorCode::kInvalidArgument,
                   "duration \"{}\" has no unit; write e.g. {}s or {}ms", shown, n, n);
    } else {
      return Error(ErrorCode::kInvalidArgument,
                   "unknown unit \"{}\" in duration \"{}\"; use ms, s, m, h or d (e.g. 30s)",
                   std::string(unit.substr(0, 10)), shown);
    }
    total += n * scale;
    if (total > kMaxMs) {
      return Error(ErrorCode::kInvalidArgument, "duration \"{}\" is longer than 365 days", shown);
    }
  }
  return std::chrono::milliseconds(total);
}

std::string FormatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

}  // namespace automan
