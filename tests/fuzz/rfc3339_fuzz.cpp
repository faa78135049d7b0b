// Fuzz target for the RFC 3339 parser: any bytes in, an instant or nullopt out, never a crash
// or a sanitizer report. On success FormatRfc3339 (UTC, milliseconds) must read back as the
// instant floored to the millisecond. See README.md.
//
// The parser takes 4-digit years and offsets up to +-23:59, so an offset could carry an
// instant just outside years 0000..9999 ("0000-01-01T00:00:00+00:01" is in year -1), which
// FormatRfc3339 cannot spell; the parser must reject those (the fuzzer found them once).
#include <date/date.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace {

[[noreturn]] void Broken(const char* what, std::string_view input) {
  fprintf(stderr, "rfc3339_fuzz: invariant broken: %s (input %zu bytes)\n", what, input.size());
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace std::chrono;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::optional<automan::Timestamp> t = automan::ParseRfc3339(text);
  if (!t) return 0;
  const date::year year = date::year_month_day(floor<date::days>(*t)).year();
  if (year < date::year(0) || year > date::year(9999)) {
    Broken("an instant outside years 0000..9999 (UTC) was accepted", text);
  }

  const automan::Timestamp truncated = floor<milliseconds>(*t);
  const std::string s = automan::FormatRfc3339(*t);
  const std::optional<automan::Timestamp> back = automan::ParseRfc3339(s);
  // "YYYY-MM-DDTHH:MM:SS.mmmZ"
  if (s.size() != 24 || s[10] != 'T' || s[19] != '.' || s[23] != 'Z') {
    Broken("FormatRfc3339 output is not YYYY-MM-DDTHH:MM:SS.mmmZ", text);
  }
  if (!back) Broken("FormatRfc3339 output does not parse", text);
  if (*back != truncated) Broken("ParseRfc3339(FormatRfc3339(t)) != floor<ms>(t)", text);
  return 0;
}
