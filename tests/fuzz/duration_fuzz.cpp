// Fuzz target for the duration parser ("500ms", "1h30m"): any bytes in, a duration or an
// error out, never a crash or a sanitizer report. On success the value is within the
// documented bounds and FormatDuration spells it so that ParseDuration reads it back exactly.
// See README.md.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/duration.h"

namespace {

[[noreturn]] void Broken(const char* what, std::string_view input) {
  fprintf(stderr, "duration_fuzz: invariant broken: %s (input %zu bytes)\n", what, input.size());
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using std::chrono::milliseconds;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = automan::ParseDuration(text);
  if (!r.ok()) {
    if (r.status().code() != automan::ErrorCode::kInvalidArgument) Broken("wrong error code", text);
    if (r.status().message().empty()) Broken("an error without a message", text);
    return 0;
  }
  const milliseconds d = *r;
  if (d < milliseconds(0) || d > std::chrono::hours(24 * 365)) Broken("out of [0, 365d]", text);
  // Round trip: the canonical spelling parses back to the same value and is a fixed point.
  const std::string s = automan::FormatDuration(d);
  auto back = automan::ParseDuration(s);
  if (!back.ok()) Broken("FormatDuration output does not parse", text);
  if (*back != d) Broken("ParseDuration(FormatDuration(d)) != d", text);
  if (automan::FormatDuration(*back) != s) Broken("FormatDuration is not canonical", text);
  return 0;
}
