// JSON text forms of the structured columns every Store backend keeps: run parameters,
// run outputs and step outputs. One encoding for all backends, so a database can be
// copied between them and the API can read the columns without knowing the backend.
//
//   params:       {"name": {"type": "string", "text": "value"}, ...}
//   run outputs:  {"step_id": {"key": "value", ...}, ...}
//   step outputs: {"key": "value", ...}
//
// Secret parameters are redacted on encoding: the entry keeps its name and type but its
// text is always "" (secrets are never written to a store). Strings are byte strings: text
// that is not valid UTF-8 (a step's raw output) round-trips unchanged.
//
// Thread-safe (pure functions). Decoding errors are kDataLoss: the column was written by
// the encoder, so text it cannot read means the stored data is damaged.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/status.h"
#include "core/run.h"

namespace automan {

std::string EncodeRunParams(const RunParams& params);
Result<RunParams> DecodeRunParams(std::string_view json);

std::string EncodeRunOutputs(const RunOutputs& outputs);
Result<RunOutputs> DecodeRunOutputs(std::string_view json);

std::string EncodeStringMap(const std::map<std::string, std::string>& values);
Result<std::map<std::string, std::string>> DecodeStringMap(std::string_view json);

}  // namespace automan
