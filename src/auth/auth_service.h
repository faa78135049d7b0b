// Users, login sessions and API tokens: who is calling, and what they may do.
//
// - Passwords: argon2id PHC strings (crypto.h), 8..1024 bytes, never truncated. Login
//   failures answer one message whatever the reason (no such user, wrong password,
//   disabled, locked) and take the same time (an unknown user's attempt is verified
//   against a dummy hash). After `lockout_after` consecutive failures a user is locked for
//   lockout_base, doubling per further failure up to lockout_max.
// - Sessions (cookies) and tokens (bearer) are random 256-bit secrets of which only the
//   SHA-256 is stored (store.h CredentialRecord). Sessions expire after `session_idle`
//   without use and `session_absolute` after login; tokens at their expiry.
// - A token may carry a narrower role than its owner's; its permissions are always the
//   intersection with the owner's current role, so demoting a user demotes their tokens.
// - Authentication results are cached for `cache_ttl`; changes made through this
//   service (revoke, disable, role change, password change) drop the cache at once, and
//   changes made by another process take effect within cache_ttl.
// - Every privileged action is audited through `audit` in the same transaction as the
//   action itself.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/crypto.h"
#include "auth/keys.h"
#include "auth/rbac.h"
#include "common/clock.h"
#include "store/store.h"

namespace automan::auth {

struct AuthOptions {
  Duration session_idle = std::chrono::minutes(30);
  Duration session_absolute = std::chrono::hours(12);
  Duration token_default_ttl = std::chrono::hours(24 * 90);
  Duration token_max_ttl = std::chrono::hours(24 * 366);
  PasswordCost password_cost;
  int lockout_after = 5;
  Duration lockout_base = std::chrono::minutes(1);
  Duration lockout_max = std::chrono::minutes(15);
  Duration cache_ttl = std::chrono::seconds(2);
  // last_used_at is written at most this often per credential.
  Duration last_used_resolution = std::chrono::seconds(60);
  // Password hashes computed at once (each takes password_cost's memory, 64 MiB by
  // default); more logins wait their turn. 0: the number of CPU cores.
  int max_concurrent_hashes = 0;
};

inline constexpr size_t kMinPasswordBytes = 8;
inline constexpr size_t kMaxPasswordBytes = 1024;

// Who is calling.
struct Subject {
  std::string username;
  std::string role;  // the effective role's name
  PermissionSet permissions;
  std::vector<std::string> categories;  // runs.execute limited to these; empty: all
  CredentialKind kind = CredentialKind::kToken;
  std::string credential_id;
  std::string secret_hash;  // of the credential; never shown
  std::string csrf_token;   // sessions only
  bool must_change_password = false;
  bool Can(Permission p) const { return permissions.Has(p); }
};

// Who did something, for the audit trail.
struct Actor {
  std::string username;  // "anonymous" when unknown, "system" for the server itself
  std::string remote;
};

// The audit hook: appends `entry` (actor, action, target, outcome, remote, details_json
// set; seq, at and hash left to the audit log) in the caller's transaction.
using AuditHook = std::function<Status(StoreTx&, const AuditRecord& entry)>;

struct LoginResult {
  std::shared_ptr<const Subject> subject;
  std::string session_secret;  // the cookie's value
  Timestamp session_expires{};
  std::optional<std::string> token;  // when asked for
};

struct IssuedToken {
  CredentialRecord record;
  std::string secret;  // shown once
};

class AuthService {
 public:
  AuthService(Store& store, const Clock& clock, const RoleSet& roles, const Keys& keys,
              AuthOptions options, AuditHook audit);

  // On a store without users: creates `admin`. With `password` (AUTOMAN_ADMIN_PASSWORD)
  // that password, no change forced; otherwise a random one-time password, returned so the
  // caller prints it once, which must be changed at the first login. nullopt when users
  // exist already.
  Result<std::optional<std::string>> Bootstrap(const std::optional<std::string>& password);

  // kUnauthenticated "invalid username or password" for every failure.
  Result<LoginResult> Login(std::string_view username, std::string_view password, bool want_token,
                            const Actor& actor);
  Status Logout(const Subject& s, const Actor& actor);

  // The subject of a session cookie value or a bearer token; kUnauthenticated when it is
  // unknown, expired, revoked or its user disabled.
  Result<std::shared_ptr<const Subject>> Authenticate(std::string_view secret);
  // The subject of `s`'s credential now (open streams re-check): same checks, cached.
  Result<std::shared_ptr<const Subject>> Recheck(const Subject& s);
  // The subject of a credential by id (stream tickets); same checks.
  Result<std::shared_ptr<const Subject>> AuthenticateCredential(std::string_view credential_id);
  // The CSRF token of a session secret.
  std::string CsrfToken(std::string_view session_secret) const;

  // kInvalidArgument when `current` is wrong (after the same slow check as a login) or the
  // new password is unacceptable.
  Status ChangePassword(const Subject& s, std::string_view current, std::string_view next,
                        const Actor& actor);

  // --- users.manage
  Result<UserRecord> CreateUser(std::string_view username, std::string_view password,
                                std::string_view role, bool must_change, const Actor& actor);
  Result<std::vector<UserRecord>> ListUsers();
  Result<UserRecord> GetUser(std::string_view username);
  // Any of role / disabled / password; unset ones unchanged.
  Result<UserRecord> UpdateUser(std::string_view username, std::optional<std::string> role,
                                std::optional<bool> disabled, std::optional<std::string> password,
                                const Actor& actor);

  // --- tokens: `owner` issues for itself, with a role no wider than its own ("" = its own)
  Result<IssuedToken> IssueToken(const Subject& owner, std::string_view name, std::string_view role,
                                 std::optional<Duration> ttl, const Actor& actor);
  // Tokens of `owner` ("" = everyone's).
  Result<std::vector<CredentialRecord>> ListTokens(std::string_view owner);
  // kNotFound unless the token exists and `s` owns it or has users.manage.
  Status RevokeToken(const Subject& s, std::string_view id, const Actor& actor);

  // Writes pending last-used times and purges long-dead credentials. Call periodically.
  void Maintain();
  // The most password hashes that ran at once so far (at most max_concurrent_hashes).
  int HashesInFlightPeak();
  // Drops cached subjects (all, or of one user).
  void Invalidate(std::string_view username = {});

  const RoleSet& roles() const { return roles_; }
  const AuthOptions& options() const { return options_; }
  static Status CheckPassword(std::string_view password);

 private:
  struct Cached {
    std::shared_ptr<const Subject> subject;
    CredentialRecord record;
    std::chrono::steady_clock::time_point fetched;
    Timestamp last_used{};          // latest use seen here
    Timestamp last_used_written{};  // as stored
  };
  Result<std::shared_ptr<const Subject>> Load(const CredentialRecord& c, const UserRecord& u,
                                              Timestamp now) const;
  Result<std::shared_ptr<const Subject>> FromCache(const std::string& hash, Timestamp now);
  // `secret` (may be empty) fills a session's CSRF token.
  Result<std::shared_ptr<const Subject>> ByHash(const std::string& hash, std::string_view secret);
  bool Expired(const CredentialRecord& c, Timestamp last_used, Timestamp now) const;
  Status Audit(StoreTx& tx, const Actor& actor, std::string action, std::string target,
               std::string outcome, std::string details_json = "{}");
  // Password hashing and verification, at most max_concurrent_hashes at once.
  Result<std::string> Hash(std::string_view password);
  bool Verify(const std::string& phc, std::string_view password);
  const std::string& DummyHash();

  // Holds one of the hash slots while it lives.
  class HashSlot {
   public:
    explicit HashSlot(AuthService& a);
    ~HashSlot();
    HashSlot(const HashSlot&) = delete;
    HashSlot& operator=(const HashSlot&) = delete;

   private:
    AuthService& a_;
  };

  Store& store_;
  const Clock& clock_;
  const RoleSet& roles_;
  Keys keys_;
  AuthOptions options_;
  AuditHook audit_;

  std::mutex mu_;
  std::unordered_map<std::string, Cached> cache_;  // by secret hash
  std::once_flag dummy_once_;
  std::string dummy_hash_;

  std::mutex hash_mu_;
  std::condition_variable hash_cv_;
  int hashes_in_flight_ = 0;       // guarded by hash_mu_
  int hashes_in_flight_peak_ = 0;  // guarded by hash_mu_
};

// Parses a "Cookie" header and returns the value of `name` ("" when absent).
std::string CookieValue(std::string_view cookie_header, std::string_view name);

}  // namespace automan::auth
