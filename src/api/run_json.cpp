#include "api/run_json.h"

#include <boost/json.hpp>
#include <cstdlib>

#include "common/clock.h"

namespace automan {

namespace json = boost::json;

namespace {

json::value TimeOrNull(const std::optional<Timestamp>& t) {
  if (!t) return nullptr;
  return json::value(FormatRfc3339(*t));
}

json::value ParamToJson(const ParamValue& v) {
  if (v.secret()) return json::value("***");
  if (v.type == "int") return json::value(std::strtoll(v.text.c_str(), nullptr, 10));
  if (v.type == "number") return json::value(std::strtod(v.text.c_str(), nullptr));
  if (v.type == "bool") return json::value(v.text == "true");
  return json::value(v.text);
}

json::object StepToJson(const StepRun& s) {
  json::object o;
  o["id"] = s.step_id;
  o["attempt"] = s.attempt;
  o["status"] = std::string(ToString(s.status));
  o["exit_code"] = s.exit_code ? json::value(*s.exit_code) : json::value(nullptr);
  o["signal"] = s.signal ? json::value(*s.signal) : json::value(nullptr);
  o["started_at"] = TimeOrNull(s.started_at);
  o["finished_at"] = TimeOrNull(s.finished_at);
  o["error"] = s.error.empty() ? json::value(nullptr) : json::value(s.error);
  json::object outs;
  for (const auto& [k, v] : s.outputs) outs[k] = v;
  o["outputs"] = std::move(outs);
  return o;
}

}  // namespace

std::string RunToJson(const Run& run, const std::vector<StepRun>& steps) {
  json::object o;
  o["id"] = run.id;
  o["runbook"] = run.runbook_id;
  o["runbook_version"] = run.runbook_version;
  o["status"] = std::string(ToString(run.status));
  json::object params;
  for (const auto& [k, v] : run.params) params[k] = ParamToJson(v);
  o["params"] = std::move(params);
  o["trigger"] = std::string(ToString(run.trigger));
  o["triggered_by"] = run.triggered_by;
  o["attempt"] = run.attempt;
  o["max_attempts"] = run.max_attempts;
  o["created_at"] = FormatRfc3339(run.created_at);
  o["started_at"] = TimeOrNull(run.started_at);
  o["finished_at"] = TimeOrNull(run.finished_at);
  o["deadline_at"] = TimeOrNull(run.deadline_at);
  json::object outputs;
  for (const auto& [step, kv] : run.outputs) {
    json::object m;
    for (const auto& [k, v] : kv) m[k] = v;
    outputs[step] = std::move(m);
  }
  o["outputs"] = std::move(outputs);
  o["retry_of"] = run.retry_of ? json::value(*run.retry_of) : json::value(nullptr);
  o["error"] = run.error.empty() ? json::value(nullptr) : json::value(run.error);
  json::array arr;
  for (const auto& s : steps) {
    if (s.attempt == run.attempt) arr.push_back(StepToJson(s));
  }
  o["steps"] = std::move(arr);
  return json::serialize(o);
}

std::string LogLineToJson(const LogLine& line) {
  json::object o;
  o["run_id"] = line.run_id;
  o["attempt"] = line.attempt;
  o["step"] = line.step_id;
  o["stream"] = std::string(ToString(line.stream));
  o["seq"] = line.seq;
  o["ts"] = FormatRfc3339(line.ts);
  o["text"] = line.text;
  if (line.partial) o["partial"] = true;
  return json::serialize(o);
}

}  // namespace automan
