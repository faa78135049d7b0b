#include "common/size.h"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace automan {

namespace {

constexpr uint64_t kMaxBytes = uint64_t{1} << 50;  // 1 PiB

constexpr std::array<std::pair<std::string_view, int>, 9> kUnits = {{
    {"", 0},
    {"K", 10},
    {"KiB", 10},
    {"M", 20},
    {"MiB", 20},
    {"G", 30},
    {"GiB", 30},
    {"T", 40},
    {"TiB", 40},
}};

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) {
    return Error(ErrorCode::kInvalidArgument,
                 "\"{}\" is not a size; write a whole number with a unit, e.g. 64MiB or 1GiB",
                 text);
  }
  if (digits > 16) {
    return Error(ErrorCode::kInvalidArgument, "size \"{}\" is too large; at most 1024TiB", text);
  }
  uint64_t n = 0;
  for (size_t i = 0; i < digits; ++i) n = n * 10 + static_cast<uint64_t>(text[i] - '0');
  std::string_view unit = text.substr(digits);
  for (const auto& [name, shift] : kUnits) {
    if (unit != name) continue;
    if (n > (kMaxBytes >> shift)) {
      return Error(ErrorCode::kInvalidArgument, "size \"{}\" is too large; at most 1024TiB", text);
    }
    return n << shift;
  }
  return Error(ErrorCode::kInvalidArgument,
               "unknown unit \"{}\" in \"{}\"; use KiB, MiB, GiB or TiB (e.g. 64MiB), or none "
               "for bytes",
               unit, text);
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr std::array<std::pair<std::string_view, int>, 4> kNames = {
      {{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}}};
  for (const auto& [name, shift] : kNames) {
    uint64_t unit = uint64_t{1} << shift;
    if (bytes >= unit && bytes % unit == 0) return fmt::format("{} {}", bytes >> shift, name);
  }
  return fmt::format("{} bytes", bytes);
}

}  // namespace automan
