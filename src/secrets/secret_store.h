// SecretStore: named secrets encrypted at rest (libsodium secretbox under the secrets key
// derived from the master key, auth/keys.h), for runbooks that list them under `secrets:`.
//
// - Values never leave this class except through Resolve, which the engine calls when a
//   run attempt starts (the values become AUTOMAN_SECRET_<NAME> environment variables and
//   are redacted from every log line and error of the attempt). List returns names and
//   metadata only; there is no API or CLI that reads a value back.
// - Names: 1..64 of letters, digits and '_', starting with a letter (they become part of
//   an environment variable name). Values: 4 bytes .. 64 KiB (shorter values cannot be
//   redacted without garbling ordinary output: secrets/redactor.h), no NUL.
// - Every change is audited through `audit` in the same transaction.
// Thread-safe.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_service.h"
#include "auth/crypto.h"
#include "common/clock.h"
#include "runbook/runbook.h"
#include "store/store.h"

namespace automan::secrets {

inline constexpr size_t kMaxSecretBytes = 64 * 1024;

using ::automan::IsValidSecretName;  // runbook/runbook.h

class SecretStore {
 public:
  SecretStore(Store& store, const auth::Key& key, const Clock& clock, auth::AuditHook audit);

  // Creates or replaces; returns the stored metadata (`sealed` emptied). kInvalidArgument
  // for a bad name or value.
  Result<SecretRecord> Put(std::string_view name, std::string_view value,
                           std::string_view description, const auth::Actor& actor);
  // kNotFound when there is none.
  Status Delete(std::string_view name, const auth::Actor& actor);
  // Every secret, by name, with `sealed` emptied (metadata only).
  Result<std::vector<SecretRecord>> List();
  // The values of `names`, opened. kNotFound naming the first missing secret; kDataLoss
  // when one does not open with this key (another key file, or an altered row).
  Result<std::map<std::string, std::string>> Resolve(const std::vector<std::string>& names);

 private:
  Store& store_;
  auth::Key key_;
  const Clock& clock_;
  auth::AuditHook audit_;
};

}  // namespace automan::secrets
