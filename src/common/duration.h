// Durations as written in runbooks and on the command line: "500ms", "30s", "5m", "2h",
// and sums of them ("1h30m"). Whole numbers only; at most 365 days.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace automan {

// Error messages say what to write instead, e.g. `unknown unit "sec" in "30sec"; use ms, s, m
// or h (e.g. 30s)`.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
// The shortest exact spelling: 1500ms -> "1500ms", 90000ms -> "90s", 5400000ms -> "90m".
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace automan
