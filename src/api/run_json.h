// The wire (JSON) text of runs and log lines for callers that print them without including
// Boost.JSON (`automan exec --json`, `enqueue --json`, `dlq`). The one converter is
// api/wire.h (RunJson, LogLineJson), which the REST API uses too: keys snake_case,
// timestamps RFC 3339 UTC with milliseconds, secret params as "***", ints, numbers and
// bools as JSON numbers and booleans.
#pragma once

#include <string>
#include <vector>

#include "core/run.h"

namespace automan {

// A run object: {"id", "runbook", "runbook_version", "status", "params", "trigger",
// "triggered_by", "attempt", "max_attempts", "created_at", "started_at", "finished_at",
// "deadline_at", "outputs", "retry_of", "error", "steps": [...]}. `steps` holds the step
// runs of the last attempt.
std::string RunToJson(const Run& run, const std::vector<StepRun>& steps);

// One log line as a JSON object (one line of NDJSON, without the newline).
std::string LogLineToJson(const LogLine& line);

}  // namespace automan
