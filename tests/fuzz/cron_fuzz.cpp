// Fuzz target for the cron parser (CronExpr::Parse) and the searches behind a parsed
// expression. Any bytes in: a CronExpr or a kInvalidArgument with a message out, never a
// crash, a hang or a sanitizer report. On success, from a few fixed instants: Next() is at
// or after the start and within one 400-year cycle (and exists when that cycle ends before
// year 10000, since Parse rejects what never fires), the result Matches(), nothing matches
// between the start and it (checked step by step over a short stretch, and through
// NextBefore), the following fire is strictly later, the trimmed text parses back to the
// same schedule, and Explain() says something. See README.md.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "scheduler/cron.h"

namespace {

using automan::CronExpr;
using automan::LocalSeconds;
using date::local_days;
using std::chrono::seconds;

[[noreturn]] void Broken(const char* what, std::string_view input) {
  fprintf(stderr, "cron_fuzz: invariant broken: %s (input %zu bytes)\n", what, input.size());
  abort();
}

LocalSeconds At(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  return LocalSeconds(local_days(date::year(y) / m / d)) + std::chrono::hours(hh) +
         std::chrono::minutes(mm) + seconds(ss);
}

void CheckFrom(const CronExpr& e, const CronExpr& again, LocalSeconds from, std::string_view text) {
  constexpr date::days kCycle{146097};
  const auto next = e.Next(from);
  if (next != again.Next(from)) Broken("re-parsed text() fires differently", text);
  if (!next) {
    if (from + kCycle < At(10000, 1, 1)) Broken("no fire within 400 years", text);
    return;
  }
  if (*next < from) Broken("Next(x) < x", text);
  if (*next >= from + kCycle) Broken("Next(x) more than 400 years after x", text);
  if (*next >= At(10000, 1, 1)) Broken("Next() past year 9999", text);
  if (!e.Matches(*next)) Broken("Matches(Next(x)) is false", text);
  // Nothing matches before it: step by step over a short stretch (seconds for 6 fields,
  // minutes for 5), and NextBefore over the whole gap.
  const seconds step(e.has_seconds() ? 1 : 60);
  LocalSeconds t = e.has_seconds() ? from : date::ceil<std::chrono::minutes>(from);
  for (int i = 0; i < 240 && t < *next; ++i, t += step) {
    if (e.Matches(t)) Broken("a match between x and Next(x)", text);
  }
  if (e.NextBefore(from, *next)) Broken("NextBefore(x, Next(x)) found something", text);
  if (e.NextBefore(from, *next + seconds(1)) != next) Broken("NextBefore disagrees", text);
  const auto after = e.Next(*next + seconds(1));
  if (after) {
    if (*after <= *next) Broken("Next(Next(x) + 1s) <= Next(x)", text);
    if (!e.Matches(*after)) Broken("Matches(second fire) is false", text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = CronExpr::Parse(text);
  if (!r.ok()) {
    if (r.status().code() != automan::ErrorCode::kInvalidArgument) Broken("wrong error code", text);
    if (r.status().message().empty()) Broken("an error without a message", text);
    return 0;
  }
  const CronExpr& e = *r;
  if (size > CronExpr::kMaxLength) Broken("accepted an overlong input", text);
  if (e.text().empty() || e.text().size() > size) Broken("text() is not the trimmed input", text);
  auto again = CronExpr::Parse(e.text());
  if (!again.ok()) Broken("text() does not parse", text);
  if (again->has_seconds() != e.has_seconds() || again->names_hours() != e.names_hours()) {
    Broken("text() parses to a different expression", text);
  }
  if (e.Explain().empty()) Broken("empty Explain()", text);

  for (const LocalSeconds from :
       {At(1970, 1, 1), At(2024, 2, 28, 23, 59, 59), At(2026, 3, 29, 1, 59, 30), At(2097, 1, 1),
        At(2099, 12, 31, 23, 59, 59), At(9999, 12, 31, 23, 59, 59), At(0, 1, 1)}) {
    CheckFrom(e, *again, from, text);
  }
  return 0;
}
