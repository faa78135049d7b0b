// The environment a step runs with, and the outputs it hands to later steps.
//
// The environment is built from scratch: an allowlist of the engine's own variables
// (PATH — with a safe default when unset —, HOME, USER, LOGNAME, LANG, LC_*, TZ, TMPDIR),
// then AUTOMAN_* context, AUTOMAN_PARAM_<NAME> for each bound parameter,
// AUTOMAN_OUT_<STEP>_<KEY> for the outputs of earlier steps, then the step's own `env`
// (whose names may not start with AUTOMAN_; the parser enforces that).
#pragma once

#include <map>
#include <string>
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
};

// `parent_env` is the engine's environment (environ), read for the allowlist only.
std::vector<std::string> BuildStepEnv(const StepEnvContext& ctx, const OutputsEnv& outputs,
                                      char** parent_env);

// Parses a step's $AUTOMAN_OUTPUT file: one `key=value` per line, key
// [A-Za-z_][A-Za-z0-9_]* (kept exactly as written), value up to the end
// of the line; blank lines ignored; a later line with the same key wins. A file larger
// than `max_bytes`, or a line without '=' or with an invalid key, fails with a message
// naming the line.
Result<std::map<std::string, std::string>> ReadStepOutputs(const std::string& path,
                                                           uint64_t max_bytes);

}  // namespace automan
