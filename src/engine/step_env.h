// The environment a step runs with, and the outputs it hands to later steps.
//
// The environment is built from scratch: an allowlist of the engine's own variables
// (PATH — with a safe default when unset —, HOME, USER, LOGNAME, LANG, LC_*, TZ, TMPDIR),
// then AUTOMAN_* context, AUTOMAN_PARAM_<NAME> for each bound parameter,
// AUTOMAN_SECRET_<NAME> for each secret the runbook lists,
// AUTOMAN_OUT_<STEP>_<KEY> for the outputs of earlier steps, then the step's own `env`
// (whose names may not start with AUTOMAN_; the parser enforces that).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "core/run.h"
#include "runbook/runbook.h"

namespace automan {

// Outputs of the steps run so far, as environment entries.
class OutputsEnv {
 public:
  void Add(const std::string& step_id, const std::map<std::string, std::string>& outputs);
  const std::map<std::string, std::string>& vars() const { return vars_; }

 private:
  std::map<std::string, std::string> vars_;  // AUTOMAN_OUT_<STEP>_<KEY> -> value
};

struct StepEnvContext {
  const Runbook& runbook;
  const Run& run;
  const RunParams& params;
  const Step& step;
  const std::string& work_dir;
  const std::string& output_file;
  // The runbook's `secrets:` values by name, as AUTOMAN_SECRET_<NAME>; may be null.
  const std::map<std::string, std::string>* secrets = nullptr;
};

// `parent_env` is the engine's environment (environ), read for the allowlist only.
std::vector<std::string> BuildStepEnv(const StepEnvContext& ctx, const OutputsEnv& outputs,
                                      char** parent_env);

// Parses the text of a step's $AUTOMAN_OUTPUT file: lines separated by '\n', one '\r' at
// the end of a line dropped (CRLF); each line `key=value`, key [A-Za-z_][A-Za-z0-9_]* of at
// most 128 characters (kept exactly as written), value everything after the first '=' up to
// the end of the line (may be empty, may contain '='); blank lines ignored; a later line with
// the same key wins. A line without '=' or with an invalid key fails with kInvalidArgument
// and a message naming the line (1-based). Pure: no I/O; any bytes are valid input.
Result<std::map<std::string, std::string>> ParseStepOutputs(std::string_view text);

// Reads the $AUTOMAN_OUTPUT file at `path` and parses it with ParseStepOutputs. A missing
// file means no outputs; a path that is not a regular file fails with kInvalidArgument, a
// file larger than `max_bytes` with kResourceExhausted (before anything is read).
Result<std::map<std::string, std::string>> ReadStepOutputs(const std::string& path,
                                                           uint64_t max_bytes);

}  // namespace automan
