#include "api/run_json.h"

#include "api/wire.h"

namespace automan {

std::string RunToJson(const Run& run, const std::vector<StepRun>& steps) {
  return api::json::serialize(api::RunJson(run, &steps));
}

std::string LogLineToJson(const LogLine& line) {
  return api::json::serialize(api::LogLineJson(line));
}

}  // namespace automan
