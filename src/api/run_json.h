// Wire (JSON) form of runs, step runs and log lines, shared by `automan exec --json` and,
// later, the REST API. Domain types are converted here, at the edge, never serialised
// directly. Keys are snake_case; timestamps RFC 3339 UTC with milliseconds; secret params
// are never rendered (they appear as `"name": "***"` only when set). Ints, numbers and
// bools are rendered as JSON numbers and booleans.
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
