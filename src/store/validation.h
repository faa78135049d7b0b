// Checks every Store backend applies to rows before writing them, so that all backends
// reject the same malformed input with the same error (kInvalidArgument) instead of
// storing it or failing with a backend-specific message.
//
// Only key and counter fields are checked (empty ids, attempt numbers below 1, sequence
// numbers below 1); the content of free-text fields is the caller's business.
// Thread-safe (pure functions).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "common/status.h"
#include "core/run.h"
#include "store/store.h"

namespace automan {

Status ValidateRunbookVersion(const RunbookVersion& v);
Status ValidateRun(const Run& run);
Status ValidateAttempt(const Attempt& a);
Status ValidateStepRun(const StepRun& s);
Status ValidateLogLines(std::span<const LogLine> lines);

// Limits of RunFilter::limit and LogQuery::limit (see store.h).
inline constexpr int kMaxRunListLimit = 1000;
inline constexpr int kMaxLogReadLimit = 100000;
Status ValidateRunFilter(const RunFilter& f);
Status ValidateLogQuery(const LogQuery& q);

// Schedules and the fire ledger (store.h): a schedule id is 1..kMaxScheduleIdBytes bytes;
// a schedule needs a runbook id and a spec; a ledger row needs a valid schedule id.
inline constexpr size_t kMaxScheduleIdBytes = 200;
inline constexpr int kMaxFireListLimit = 10000;
inline constexpr int kMaxActiveRunListLimit = 1000;
Status ValidateScheduleId(std::string_view id);
Status ValidateSchedule(const ScheduleRecord& s);
Status ValidateFire(const FireRecord& f);
Status ValidateFireListLimit(int limit);
Status ValidateActiveRunListLimit(int limit);

// Security rows (store.h): users need a username and a password hash; credentials an id,
// a secret hash and an owner; secrets a name; audit entries a seq of at least 1. Lookups
// by an empty key are refused the same way. AuditFilter: limit 1..kMaxAuditListLimit,
// after_seq not negative.
inline constexpr int kMaxAuditListLimit = 100000;
Status ValidateUsername(std::string_view username);
Status ValidateUser(const UserRecord& u);
Status ValidateCredentialId(std::string_view id);
Status ValidateCredentialHash(std::string_view secret_hash);
Status ValidateCredential(const CredentialRecord& c);
Status ValidateSecretName(std::string_view name);
Status ValidateSecret(const SecretRecord& s);
Status ValidateAudit(const AuditRecord& e);
Status ValidateAuditFilter(const AuditFilter& f);

// Store::TryLead names: ^[a-z][a-z0-9_-]{0,63}$ (they become part of a file name).
Status ValidateLeadershipName(std::string_view name);

}  // namespace automan
