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

Status ValidateScheduleId(std::string_view id) {
  if (id.empty()) return Error(ErrorCode::kInvalidArgument, "schedule id is empty");
  if (id.size() > kMaxScheduleIdBytes) {
    return Error(ErrorCode::kInvalidArgument, "schedule id \"{}...\" is {} bytes long (at most {})",
                 id.substr(0, 40), id.size(), kMaxScheduleIdBytes);
  }
  return Status::Ok();
}

Status ValidateSchedule(const ScheduleRecord& s) {
  AUTOMAN_RETURN_IF_ERROR(ValidateScheduleId(s.id));
  if (s.runbook_id.empty()) {
    return Error(ErrorCode::kInvalidArgument, "schedule {} has no runbook id", s.id);
  }
  if (s.spec_json.empty()) {
    return Error(ErrorCode::kInvalidArgument, "schedule {} has no definition (spec_json)", s.id);
  }
  return Status::Ok();
}

Status ValidateFire(const FireRecord& f) {
  return ValidateScheduleId(f.schedule_id).WithContext("fire ledger row");
}

Status ValidateFireListLimit(int limit) {
  if (limit < 1 || limit > kMaxFireListLimit) {
    return Error(ErrorCode::kInvalidArgument, "fire ledger list limit {} is out of range 1..{}",
                 limit, kMaxFireListLimit);
  }
  return Status::Ok();
}

Status ValidateActiveRunListLimit(int limit) {
  if (limit < 1 || limit > kMaxActiveRunListLimit) {
    return Error(ErrorCode::kInvalidArgument, "active run list limit {} is out of range 1..{}",
                 limit, kMaxActiveRunListLimit);
  }
  return Status::Ok();
}

Status ValidateUsername(std::string_view username) {
  if (username.empty()) return Error(ErrorCode::kInvalidArgument, "username is empty");
  return Status::Ok();
}

Status ValidateUser(const UserRecord& u) {
  AUTOMAN_RETURN_IF_ERROR(ValidateUsername(u.username));
  if (u.password_hash.empty()) {
    return Error(ErrorCode::kInvalidArgument, "user {} has no password hash", u.username);
  }
  return Status::Ok();
}

Status ValidateCredentialId(std::string_view id) {
  if (id.empty()) return Error(ErrorCode::kInvalidArgument, "credential id is empty");
  return Status::Ok();
}

Status ValidateCredentialHash(std::string_view secret_hash) {
  if (secret_hash.empty()) {
    return Error(ErrorCode::kInvalidArgument, "credential secret hash is empty");
  }
  return Status::Ok();
}

Status ValidateCredential(const CredentialRecord& c) {
  AUTOMAN_RETURN_IF_ERROR(ValidateCredentialId(c.id));
  if (c.secret_hash.empty()) {
    return Error(ErrorCode::kInvalidArgument, "credential {} has no secret hash", c.id);
  }
  if (c.owner.empty()) {
    return Error(ErrorCode::kInvalidArgument, "credential {} has no owner", c.id);
  }
  return Status::Ok();
}

Status ValidateSecretName(std::string_view name) {
  if (name.empty()) return Error(ErrorCode::kInvalidArgument, "secret name is empty");
  return Status::Ok();
}

Status ValidateSecret(const SecretRecord& s) { return ValidateSecretName(s.name); }

Status ValidateAudit(const AuditRecord& e) {
  if (e.seq < 1) {
    return Error(ErrorCode::kInvalidArgument, "audit entry seq {} is below 1", e.seq);
  }
  return Status::Ok();
}

Status ValidateAuditFilter(const AuditFilter& f) {
  if (f.limit < 1 || f.limit > kMaxAuditListLimit) {
    return Error(ErrorCode::kInvalidArgument, "audit list limit {} is out of range 1..{}", f.limit,
                 kMaxAuditListLimit);
  }
  if (f.after_seq < 0) {
    return Error(ErrorCode::kInvalidArgument, "audit filter after_seq {} is negative", f.after_seq);
  }
  return Status::Ok();
}

Status ValidateLeadershipName(std::string_view name) {
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  bool ok = !name.empty() && name.size() <= 64 && lower(name[0]);
  for (char c : name) {
    ok = ok && (lower(c) || (c >= '0' && c <= '9') || c == '_' || c == '-');
  }
  if (!ok) {
    return Error(ErrorCode::kInvalidArgument,
                 "leadership name \"{}\" is not 1..64 of [a-z0-9_-] starting with a letter",
                 name.substr(0, 80));
  }
  return Status::Ok();
}

}  // namespace automan
