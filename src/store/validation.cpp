#include "store/validation.h"

namespace automan {

Status ValidateRunbookVersion(const RunbookVersion& v) {
  if (v.version.empty()) return Error(ErrorCode::kInvalidArgument, "runbook version is empty");
  if (v.runbook_id.empty()) {
    return Error(ErrorCode::kInvalidArgument, "runbook version {} has no runbook id", v.version);
  }
  return Status::Ok();
}

Status ValidateRun(const Run& run) {
  if (run.id.empty()) return Error(ErrorCode::kInvalidArgument, "run id is empty");
  if (run.runbook_id.empty()) {
    return Error(ErrorCode::kInvalidArgument, "run {} has no runbook id", run.id);
  }
  if (run.runbook_version.empty()) {
    return Error(ErrorCode::kInvalidArgument, "run {} has no runbook version", run.id);
  }
  if (run.attempt < 0) {
    return Error(ErrorCode::kInvalidArgument, "run {}: attempt {} is negative", run.id,
                 run.attempt);
  }
  if (run.max_attempts < 1) {
    return Error(ErrorCode::kInvalidArgument, "run {}: max_attempts {} is below 1", run.id,
                 run.max_attempts);
  }
  return Status::Ok();
}

Status ValidateAttempt(const Attempt& a) {
  if (a.run_id.empty()) return Error(ErrorCode::kInvalidArgument, "attempt has no run id");
  if (a.number < 1) {
    return Error(ErrorCode::kInvalidArgument, "run {}: attempt number {} is below 1", a.run_id,
                 a.number);
  }
  return Status::Ok();
}

Status ValidateStepRun(const StepRun& s) {
  if (s.run_id.empty()) return Error(ErrorCode::kInvalidArgument, "step run has no run id");
  if (s.step_id.empty()) {
    return Error(ErrorCode::kInvalidArgument, "step run of run {} has no step id", s.run_id);
  }
  if (s.attempt < 1) {
    return Error(ErrorCode::kInvalidArgument, "step run {}/{}: attempt {} is below 1", s.run_id,
                 s.step_id, s.attempt);
  }
  return Status::Ok();
}

Status ValidateLogLines(std::span<const LogLine> lines) {
  for (const LogLine& l : lines) {
    if (l.run_id.empty()) return Error(ErrorCode::kInvalidArgument, "log line has no run id");
    if (l.attempt < 1 || l.seq < 1) {
      return Error(ErrorCode::kInvalidArgument,
                   "log line of run {}: attempt {} and seq {} must both be at least 1", l.run_id,
                   l.attempt, l.seq);
    }
  }
  return Status::Ok();
}

Status ValidateRunFilter(const RunFilter& f) {
  if (f.limit < 1 || f.limit > kMaxRunListLimit) {
    return Error(ErrorCode::kInvalidArgument, "run list limit {} is out of range 1..{}", f.limit,
                 kMaxRunListLimit);
  }
  return Status::Ok();
}

Status ValidateLogQuery(const LogQuery& q) {
  if (q.run_id.empty()) return Error(ErrorCode::kInvalidArgument, "log query has no run id");
  if (q.limit < 1 || q.limit > kMaxLogReadLimit) {
    return Error(ErrorCode::kInvalidArgument, "log read limit {} is out of range 1..{}", q.limit,
                 kMaxLogReadLimit);
  }
  if (q.after_seq < 0) {
    return Error(ErrorCode::kInvalidArgument, "log query after_seq {} is negative", q.after_seq);
  }
  return Status::Ok();
}

}  // namespace automan
