#include "common/ids.h"
#include "store_conformance.h"

namespace automan::testing {

Timestamp At(int64_t seconds) {
  // 2026-03-29T01:02:03.456789Z: microseconds set, so truncation to millis would show.
  return FromMicros(1774746123456789 + seconds * 1000000);
}

RunbookVersion SampleVersion(const std::string& runbook_id, const std::string& yaml) {
  RunbookVersion v;
  v.version = "sha256:" + std::to_string(std::hash<std::string>{}(runbook_id + "\n" + yaml));
  v.runbook_id = runbook_id;
  v.yaml = yaml;
  v.source = "runbooks/" + runbook_id + ".yaml";
  v.created_at = At(0);
  return v;
}

Run SampleRun(const RunbookVersion& v) {
  Run r;
  r.id = NewId(SystemClock());
  r.runbook_id = v.runbook_id;
  r.runbook_version = v.version;
  r.created_at = At(1);
  return r;
}

LogLine SampleLine(const std::string& run_id, int attempt, int64_t seq, const std::string& step_id,
                   LogStream stream) {
  LogLine l;
  l.run_id = run_id;
  l.attempt = attempt;
  l.step_id = step_id;
  l.stream = stream;
  l.seq = seq;
  l.ts = At(seq);
  l.text = "line " + std::to_string(attempt) + "/" + std::to_string(seq);
  return l;
}

}  // namespace automan::testing
