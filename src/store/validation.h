// Checks every Store backend applies to rows before writing them, so that all backends
// reject the same malformed input with the same error (kInvalidArgument) instead of
// storing it or failing with a backend-specific message.
//
// Only key and counter fields are checked (empty ids, attempt numbers below 1, sequence
// numbers below 1); the content of free-text fields is the caller's business.
// Thread-safe (pure functions).
#pragma once

#include <span>

#include "common/status.h"
#include "core/run.h"
#include "store/store.h"

namespace automan {

Status ValidateRunbookVersion(const RunbookVersion& v);
Status ValidateRun(const Run& run);
Status ValidateAttempt(const Attempt& a);
Status ValidateStepRun(const StepRun& s);
Status ValidateLogLines(std::span<const LogLine> lines);

// Limits of RunFilter::limit and LogQuery::limit (see store.h).
inline constexpr int kMaxRunListLimit = 1000;
inline constexpr int kMaxLogReadLimit = 100000;
Status ValidateRunFilter(const RunFilter& f);
Status ValidateLogQuery(const LogQuery& q);

}  // namespace automan
