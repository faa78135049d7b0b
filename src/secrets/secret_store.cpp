#include "secrets/secret_store.h"

#include <fmt/format.h>

#include <cctype>

#include "secrets/redactor.h"

namespace automan::secrets {

namespace {

Status NameError(std::string_view name) {
  return Status(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\" is not a secret name: use 1..64 letters, digits and '_', "
                            "starting with a letter",
                            name.substr(0, 80)));
}

Status AuditChange(const auth::AuditHook& audit, StoreTx& tx, const auth::Actor& actor,
                   std::string action, std::string_view name) {
  if (!audit) return Status::Ok();
  AuditRecord e;
  e.actor = actor.username.empty() ? "anonymous" : actor.username;
  e.remote = actor.remote;
  e.action = std::move(action);
  e.target = "secret/" + std::string(name);
  e.outcome = "ok";
  e.details_json = "{}";
  return audit(tx, e);
}

}  // namespace

SecretStore::SecretStore(Store& store, const auth::Key& key, const Clock& clock,
                         auth::AuditHook audit)
    : store_(store), key_(key), clock_(clock), audit_(std::move(audit)) {}

Result<SecretRecord> SecretStore::Put(std::string_view name, std::string_view value,
                                      std::string_view description, const auth::Actor& actor) {
  if (!IsValidSecretName(name)) return NameError(name);
  if (value.size() < Redactor::kMinSecretBytes || value.size() > kMaxSecretBytes) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("a secret's value must be {}..{} bytes (shorter values cannot be "
                              "redacted from logs)",
                              Redactor::kMinSecretBytes, kMaxSecretBytes));
  }
  if (value.find('\0') != std::string_view::npos) {
    return Status(ErrorCode::kInvalidArgument,
                  "a secret's value must not contain NUL (it becomes an environment variable)");
  }
  if (description.size() > 1000) {
    return Status(ErrorCode::kInvalidArgument, "a secret's description is at most 1000 bytes");
  }
  SecretRecord r;
  r.name = std::string(name);
  r.sealed = auth::Seal(key_, value);
  r.description = std::string(description);
  r.created_at = r.updated_at = clock_.Now();
  r.updated_by = actor.username;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    Result<SecretRecord> old = tx.GetSecret(name);
    if (!old.ok() && old.status().code() != ErrorCode::kNotFound) return old.status();
    if (old.ok()) r.created_at = old->created_at;  // as the store keeps it
    AUTOMAN_RETURN_IF_ERROR(tx.PutSecret(r));
    return AuditChange(audit_, tx, actor, old.ok() ? "secret.update" : "secret.create", name);
  }));
  r.sealed.clear();
  return r;
}

Status SecretStore::Delete(std::string_view name, const auth::Actor& actor) {
  if (!IsValidSecretName(name)) {
    return Status(ErrorCode::kNotFound,
                  fmt::format("secret \"{}\" does not exist", name.substr(0, 80)));
  }
  return store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    Status s = tx.DeleteSecret(name);
    if (s.code() == ErrorCode::kNotFound) {
      return Status(ErrorCode::kNotFound, fmt::format("secret \"{}\" does not exist", name));
    }
    AUTOMAN_RETURN_IF_ERROR(s);
    return AuditChange(audit_, tx, actor, "secret.delete", name);
  });
}

Result<std::vector<SecretRecord>> SecretStore::List() {
  std::vector<SecretRecord> out;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListSecrets());
    return Status::Ok();
  }));
  for (SecretRecord& r : out) r.sealed.clear();
  return out;
}

Result<std::map<std::string, std::string>> SecretStore::Resolve(
    const std::vector<std::string>& names) {
  std::map<std::string, std::string> out;
  if (names.empty()) return out;
  std::vector<SecretRecord> rows;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    for (const std::string& n : names) {
      Result<SecretRecord> r = tx.GetSecret(n);
      if (!r.ok()) {
        return r.status().code() == ErrorCode::kNotFound
                   ? Status(
                         ErrorCode::kNotFound,
                         fmt::format("secret \"{}\" does not exist (automan secrets set {})", n, n))
                   : r.status();
      }
      rows.push_back(std::move(*r));
    }
    return Status::Ok();
  }));
  for (const SecretRecord& r : rows) {
    Result<std::string> v = auth::Open(key_, r.sealed);
    if (!v.ok()) {
      return Status(ErrorCode::kDataLoss,
                    fmt::format("secret \"{}\" does not open with this server's key file: {}",
                                r.name, v.status().message()));
    }
    out[r.name] = std::move(*v);
  }
  return out;
}

}  // namespace automan::secrets
