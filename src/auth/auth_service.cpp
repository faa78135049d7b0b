#include "auth/auth_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <thread>

#include "common/ids.h"

namespace automan::auth {

namespace json = boost::json;

namespace {

constexpr std::string_view kLoginFailed = "invalid username or password";

Status Unauthenticated(std::string_view why) {
  return Status(ErrorCode::kUnauthenticated, std::string(why));
}

std::string Details(std::initializer_list<std::pair<std::string_view, json::value>> kv) {
  json::object o;
  for (const auto& [k, v] : kv) o[k] = v;
  return json::serialize(o);
}

}  // namespace

AuthService::AuthService(Store& store, const Clock& clock, const RoleSet& roles, const Keys& keys,
                         AuthOptions options, AuditHook audit)
    : store_(store),
      clock_(clock),
      roles_(roles),
      keys_(keys),
      options_(options),
      audit_(std::move(audit)) {}

Status AuthService::CheckPassword(std::string_view password) {
  if (password.size() < kMinPasswordBytes || password.size() > kMaxPasswordBytes) {
    return Status(ErrorCode::kInvalidArgument, fmt::format("a password must be {}..{} bytes long",
                                                           kMinPasswordBytes, kMaxPasswordBytes));
  }
  if (password.find('\0') != std::string_view::npos) {
    return Status(ErrorCode::kInvalidArgument, "a password must not contain NUL characters");
  }
  return Status::Ok();
}

AuthService::HashSlot::HashSlot(AuthService& a) : a_(a) {
  const int limit = a.options_.max_concurrent_hashes > 0
                        ? a.options_.max_concurrent_hashes
                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::unique_lock lock(a.hash_mu_);
  a.hash_cv_.wait(lock, [&] { return a.hashes_in_flight_ < limit; });
  a.hashes_in_flight_peak_ = std::max(a.hashes_in_flight_peak_, ++a.hashes_in_flight_);
}

AuthService::HashSlot::~HashSlot() {
  {
    std::lock_guard lock(a_.hash_mu_);
    --a_.hashes_in_flight_;
  }
  a_.hash_cv_.notify_one();
}

Result<std::string> AuthService::Hash(std::string_view password) {
  HashSlot slot(*this);
  return HashPassword(password, options_.password_cost);
}

bool AuthService::Verify(const std::string& phc, std::string_view password) {
  HashSlot slot(*this);
  return VerifyPassword(phc, password);
}

int AuthService::HashesInFlightPeak() {
  std::lock_guard lock(hash_mu_);
  return hashes_in_flight_peak_;
}

const std::string& AuthService::DummyHash() {
  std::call_once(dummy_once_, [this] {
    Result<std::string> h = Hash(RandomToken("dummy-"));
    dummy_hash_ = h.ok() ? *h : std::string();
  });
  return dummy_hash_;
}

Status AuthService::Audit(StoreTx& tx, const Actor& actor, std::string action, std::string target,
                          std::string outcome, std::string details_json) {
  if (!audit_) return Status::Ok();
  AuditRecord e;
  e.actor = actor.username.empty() ? "anonymous" : actor.username;
  e.remote = actor.remote;
  e.action = std::move(action);
  e.target = std::move(target);
  e.outcome = std::move(outcome);
  e.details_json = std::move(details_json);
  return audit_(tx, e);
}

Result<std::optional<std::string>> AuthService::Bootstrap(
    const std::optional<std::string>& password) {
  std::string pw;
  bool must_change = false;
  if (password) {
    AUTOMAN_RETURN_IF_ERROR(CheckPassword(*password));
    pw = *password;
  } else {
    pw = RandomToken("").substr(0, 24);
    must_change = true;
  }
  // Every server start calls this, and all but the first find users: look before hashing
  // (argon2id at the default cost: ~80 ms and 64 MiB, which every start used to pay). The
  // transaction below checks again.
  bool have_users = false;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<UserRecord> users, tx.ListUsers());
    have_users = !users.empty();
    return Status::Ok();
  }));
  if (have_users) return std::optional<std::string>();
  AUTOMAN_ASSIGN_OR_RETURN(std::string hash, Hash(pw));
  bool created = false;
  const Timestamp now = clock_.Now();
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("users"));
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<UserRecord> users, tx.ListUsers());
    if (!users.empty()) return Status::Ok();
    UserRecord u;
    u.username = "admin";
    u.password_hash = hash;
    u.role = "admin";
    u.must_change_password = must_change;
    u.created_at = u.updated_at = now;
    AUTOMAN_RETURN_IF_ERROR(tx.PutUser(u));
    created = true;
    return Audit(tx, Actor{"system", ""}, "user.bootstrap", "user/admin", "ok",
                 Details({{"password_from_env", json::value(!must_change)}}));
  }));
  if (!created) return std::optional<std::string>();
  return std::optional<std::string>(must_change ? pw : std::string());
}

Result<LoginResult> AuthService::Login(std::string_view username, std::string_view password,
                                       bool want_token, const Actor& actor) {
  const Timestamp now = clock_.Now();
  std::optional<UserRecord> user;
  if (IsValidName(username) && password.size() <= kMaxPasswordBytes) {
    Status st = store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      Result<UserRecord> u = tx.GetUser(username);
      if (u.ok()) user = std::move(*u);
      return u.ok() || u.status().code() == ErrorCode::kNotFound ? Status::Ok() : u.status();
    });
    AUTOMAN_RETURN_IF_ERROR(st);
  }
  // Always one argon2id verification, so a missing user costs what a wrong password does.
  const bool password_ok =
      user ? Verify(user->password_hash, password) : (Verify(DummyHash(), password), false);
  const bool locked = user && user->locked_until && *user->locked_until > now;
  const bool ok = user && password_ok && !locked && !user->disabled;
  const std::string target = fmt::format("user/{}", IsValidName(username) ? username : "?");

  if (!ok) {
    Actor who{actor.username.empty() ? std::string("anonymous") : actor.username, actor.remote};
    std::string reason = !user            ? "unknown user"
                         : user->disabled ? "disabled"
                         : locked         ? "locked"
                                          : "wrong password";
    AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      if (user && !locked && !user->disabled) {
        Result<UserRecord> fresh = tx.GetUser(user->username);
        if (fresh.ok()) {
          UserRecord u = std::move(*fresh);
          ++u.failed_logins;
          if (u.failed_logins >= options_.lockout_after) {
            const int extra = std::min(u.failed_logins - options_.lockout_after, 20);
            Duration lock = options_.lockout_base * (int64_t{1} << extra);
            if (lock > options_.lockout_max) lock = options_.lockout_max;
            u.locked_until = now + lock;
            reason += fmt::format("; locked for {} s",
                                  std::chrono::duration_cast<std::chrono::seconds>(lock).count());
          }
          u.updated_at = now;
          AUTOMAN_RETURN_IF_ERROR(tx.PutUser(u));
        }
      }
      return Audit(tx, who, "auth.login", target, "failed",
                   Details({{"reason", json::value(reason)}}));
    }));
    return Unauthenticated(kLoginFailed);
  }

  LoginResult result;
  result.session_secret = RandomToken("ams_");
  result.session_expires = now + options_.session_absolute;
  CredentialRecord session;
  session.id = NewId(clock_);
  session.kind = CredentialKind::kSession;
  session.secret_hash = Sha256Hex(result.session_secret);
  session.owner = user->username;
  session.created_at = now;
  session.last_used_at = now;
  session.expires_at = result.session_expires;
  std::optional<CredentialRecord> token;
  if (want_token) {
    result.token = RandomToken("amt_");
    token = CredentialRecord{};
    token->id = NewId(clock_);
    token->kind = CredentialKind::kToken;
    token->secret_hash = Sha256Hex(*result.token);
    token->owner = user->username;
    token->name = "login";
    token->created_at = now;
    token->expires_at = now + options_.token_default_ttl;
  }
  std::optional<std::string> rehash;
  if (PasswordNeedsRehash(user->password_hash, options_.password_cost)) {
    Result<std::string> h = Hash(password);
    if (h.ok()) rehash = *h;
  }
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(UserRecord u, tx.GetUser(user->username));
    if (u.failed_logins != 0 || u.locked_until || rehash) {
      u.failed_logins = 0;
      u.locked_until.reset();
      if (rehash) u.password_hash = *rehash;
      u.updated_at = now;
      AUTOMAN_RETURN_IF_ERROR(tx.PutUser(u));
    }
    AUTOMAN_RETURN_IF_ERROR(tx.InsertCredential(session));
    if (token) {
      AUTOMAN_RETURN_IF_ERROR(tx.InsertCredential(*token));
      AUTOMAN_RETURN_IF_ERROR(Audit(tx, Actor{user->username, actor.remote}, "token.issue",
                                    "token/" + token->id, "ok",
                                    Details({{"name", json::value(token->name)}})));
    }
    return Audit(tx, Actor{user->username, actor.remote}, "auth.login", target, "ok",
                 Details({{"session", json::value(session.id)}}));
  }));
  AUTOMAN_ASSIGN_OR_RETURN(result.subject, Load(session, *user, now));
  auto s = std::make_shared<Subject>(*result.subject);
  s->csrf_token = CsrfToken(result.session_secret);
  result.subject = s;
  return result;
}

Status AuthService::Logout(const Subject& s, const Actor& actor) {
  const Timestamp now = clock_.Now();
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    Result<CredentialRecord> c = tx.GetCredential(s.credential_id);
    if (!c.ok()) return c.status().code() == ErrorCode::kNotFound ? Status::Ok() : c.status();
    if (!c->revoked_at) {
      c->revoked_at = now;
      AUTOMAN_RETURN_IF_ERROR(tx.UpdateCredential(*c));
    }
    return Audit(tx, actor, "auth.logout", "user/" + s.username, "ok");
  }));
  std::lock_guard lock(mu_);
  cache_.erase(s.secret_hash);
  return Status::Ok();
}

std::string AuthService::CsrfToken(std::string_view session_secret) const {
  return Base64UrlEncode(HmacSha256(keys_.csrf, session_secret));
}

bool AuthService::Expired(const CredentialRecord& c, Timestamp last_used, Timestamp now) const {
  if (c.revoked_at) return true;
  if (c.expires_at && *c.expires_at <= now) return true;
  if (c.kind == CredentialKind::kSession) {
    Timestamp used = c.last_used_at ? std::max(*c.last_used_at, last_used) : last_used;
    if (used + options_.session_idle <= now) return true;
  }
  return false;
}

Result<std::shared_ptr<const Subject>> AuthService::Load(const CredentialRecord& c,
                                                         const UserRecord& u, Timestamp now) const {
  if (u.disabled) return Unauthenticated("this user is disabled");
  if (Expired(c, c.last_used_at.value_or(Timestamp{}), now)) {
    return Unauthenticated("the credential has expired or was revoked");
  }
  const Role* owner_role = roles_.Find(u.role);
  if (owner_role == nullptr) {
    return Unauthenticated(fmt::format("the role \"{}\" of this user is not defined", u.role));
  }
  auto s = std::make_shared<Subject>();
  s->username = u.username;
  s->role = owner_role->name;
  s->permissions = owner_role->permissions;
  s->categories = owner_role->categories;
  if (!c.role.empty() && c.role != u.role) {
    const Role* narrower = roles_.Find(c.role);
    if (narrower == nullptr) {
      return Unauthenticated(fmt::format("the role \"{}\" of this token is not defined", c.role));
    }
    s->role = narrower->name;
    s->permissions = narrower->permissions.Intersect(owner_role->permissions);
    if (narrower->categories.empty() || owner_role->categories.empty()) {
      s->categories = narrower->categories.empty() ? owner_role->categories : narrower->categories;
    } else {
      // Both limit runs.execute: only the categories both allow.
      s->categories.clear();
      for (const std::string& c : narrower->categories) {
        if (std::find(owner_role->categories.begin(), owner_role->categories.end(), c) !=
            owner_role->categories.end()) {
          s->categories.push_back(c);
        }
      }
      if (s->categories.empty()) {
        // No common category; an empty list would mean "every category", so the token
        // may execute nothing.
        PermissionSet no_execute;
        for (Permission p : AllPermissions()) {
          if (p != Permission::kRunsExecute && p != Permission::kRunsExecuteDangerous) {
            no_execute.Add(p);
          }
        }
        s->permissions = s->permissions.Intersect(no_execute);
      }
    }
  }
  s->kind = c.kind;
  s->credential_id = c.id;
  s->secret_hash = c.secret_hash;
  s->must_change_password = u.must_change_password;
  return std::shared_ptr<const Subject>(std::move(s));
}

Result<std::shared_ptr<const Subject>> AuthService::FromCache(const std::string& hash,
                                                              Timestamp now) {
  std::lock_guard lock(mu_);
  auto it = cache_.find(hash);
  if (it == cache_.end()) return Status(ErrorCode::kNotFound, "");
  Cached& c = it->second;
  if (clock_.SteadyNow() - c.fetched > options_.cache_ttl) {
    return Status(ErrorCode::kNotFound, "");
  }
  if (Expired(c.record, c.last_used, now)) {
    cache_.erase(it);
    return Unauthenticated("the credential has expired or was revoked");
  }
  c.last_used = now;
  return c.subject;
}

Result<std::shared_ptr<const Subject>> AuthService::Authenticate(std::string_view secret) {
  if (secret.empty() || secret.size() > 200) return Unauthenticated("no valid credentials");
  return ByHash(Sha256Hex(secret), secret);
}

Result<std::shared_ptr<const Subject>> AuthService::Recheck(const Subject& s) {
  return ByHash(s.secret_hash, {});
}

Result<std::shared_ptr<const Subject>> AuthService::ByHash(const std::string& hash,
                                                           std::string_view secret) {
  const Timestamp now = clock_.Now();
  Result<std::shared_ptr<const Subject>> cached = FromCache(hash, now);
  if (cached.ok() || cached.status().code() != ErrorCode::kNotFound) {
    if (cached.ok() && (*cached)->kind == CredentialKind::kSession &&
        (*cached)->csrf_token.empty() && !secret.empty()) {
      // Filled on first use with the secret (the cache is keyed by hash).
      auto s = std::make_shared<Subject>(**cached);
      s->csrf_token = CsrfToken(secret);
      std::lock_guard lock(mu_);
      if (auto it = cache_.find(hash); it != cache_.end()) it->second.subject = s;
      return std::shared_ptr<const Subject>(s);
    }
    return cached;
  }
  CredentialRecord cred;
  UserRecord user;
  Status st = store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(cred, tx.FindCredentialByHash(hash));
    AUTOMAN_ASSIGN_OR_RETURN(user, tx.GetUser(cred.owner));
    return Status::Ok();
  });
  if (!st.ok()) {
    return st.code() == ErrorCode::kNotFound ? Unauthenticated("no valid credentials") : st;
  }
  {
    // This process may have used the session more recently than the row says.
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(hash); it != cache_.end() && cred.kind == CredentialKind::kSession) {
      cred.last_used_at = std::max(cred.last_used_at.value_or(Timestamp{}), it->second.last_used);
    }
  }
  AUTOMAN_ASSIGN_OR_RETURN(std::shared_ptr<const Subject> subject, Load(cred, user, now));
  if (subject->kind == CredentialKind::kSession && !secret.empty()) {
    auto s = std::make_shared<Subject>(*subject);
    s->csrf_token = CsrfToken(secret);
    subject = s;
  }
  std::lock_guard lock(mu_);
  Cached& c = cache_[hash];
  const Timestamp written = cred.last_used_at.value_or(Timestamp{});
  c.last_used = std::max(c.last_used, now);
  c.last_used_written = std::max(c.last_used_written, written);
  c.record = std::move(cred);
  c.subject = subject;
  c.fetched = clock_.SteadyNow();
  return subject;
}

Result<std::shared_ptr<const Subject>> AuthService::AuthenticateCredential(
    std::string_view credential_id) {
  CredentialRecord cred;
  UserRecord user;
  Status st = store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(cred, tx.GetCredential(credential_id));
    AUTOMAN_ASSIGN_OR_RETURN(user, tx.GetUser(cred.owner));
    return Status::Ok();
  });
  if (!st.ok()) {
    return st.code() == ErrorCode::kNotFound ? Unauthenticated("no valid credentials") : st;
  }
  Timestamp last_used{};
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(cred.secret_hash); it != cache_.end())
      last_used = it->second.last_used;
  }
  const Timestamp now = clock_.Now();
  if (Expired(cred, last_used, now))
    return Unauthenticated("the credential has expired or was revoked");
  if (cred.kind == CredentialKind::kSession)
    cred.last_used_at = std::max(cred.last_used_at.value_or(Timestamp{}), last_used);
  return Load(cred, user, now);
}

Status AuthService::ChangePassword(const Subject& s, std::string_view current,
                                   std::string_view next, const Actor& actor) {
  AUTOMAN_RETURN_IF_ERROR(CheckPassword(next));
  if (current == next) {
    return Status(ErrorCode::kInvalidArgument, "the new password must differ from the current one");
  }
  AUTOMAN_ASSIGN_OR_RETURN(UserRecord u, GetUser(s.username));
  if (!Verify(u.password_hash, current)) {
    return Status(ErrorCode::kInvalidArgument, "the current password is wrong");
  }
  AUTOMAN_ASSIGN_OR_RETURN(std::string hash, Hash(next));
  const Timestamp now = clock_.Now();
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(UserRecord fresh, tx.GetUser(s.username));
    fresh.password_hash = hash;
    fresh.must_change_password = false;
    fresh.updated_at = now;
    AUTOMAN_RETURN_IF_ERROR(tx.PutUser(fresh));
    // Every other session of the user ends; tokens stay (they are for scripts).
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<CredentialRecord> sessions,
                             tx.ListCredentials(CredentialKind::kSession, s.username));
    for (CredentialRecord& c : sessions) {
      if (c.id == s.credential_id || c.revoked_at) continue;
      c.revoked_at = now;
      AUTOMAN_RETURN_IF_ERROR(tx.UpdateCredential(c));
    }
    return Audit(tx, actor, "user.password", "user/" + s.username, "ok");
  }));
  Invalidate(s.username);
  return Status::Ok();
}

Result<UserRecord> AuthService::CreateUser(std::string_view username, std::string_view password,
                                           std::string_view role, bool must_change,
                                           const Actor& actor) {
  if (!IsValidName(username)) {
    return Status(ErrorCode::kInvalidArgument,
                  "a username must be 1..64 of a-z 0-9 . _ -, starting with a letter or digit");
  }
  if (roles_.Find(role) == nullptr) {
    return Status(ErrorCode::kInvalidArgument, fmt::format("no role \"{}\"", role));
  }
  AUTOMAN_RETURN_IF_ERROR(CheckPassword(password));
  AUTOMAN_ASSIGN_OR_RETURN(std::string hash, Hash(password));
  UserRecord u;
  u.username = std::string(username);
  u.password_hash = std::move(hash);
  u.role = std::string(role);
  u.must_change_password = must_change;
  u.created_at = u.updated_at = clock_.Now();
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("users"));
    Result<UserRecord> existing = tx.GetUser(username);
    if (existing.ok()) {
      return Status(ErrorCode::kAlreadyExists, fmt::format("user \"{}\" exists already", username));
    }
    if (existing.status().code() != ErrorCode::kNotFound) return existing.status();
    AUTOMAN_RETURN_IF_ERROR(tx.PutUser(u));
    return Audit(tx, actor, "user.create", "user/" + u.username, "ok",
                 Details({{"role", json::value(u.role)}}));
  }));
  return u;
}

Result<std::vector<UserRecord>> AuthService::ListUsers() {
  std::vector<UserRecord> out;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListUsers());
    return Status::Ok();
  }));
  return out;
}

Result<UserRecord> AuthService::GetUser(std::string_view username) {
  UserRecord out;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.GetUser(username));
    return Status::Ok();
  }));
  return out;
}

Result<UserRecord> AuthService::UpdateUser(std::string_view username,
                                           std::optional<std::string> role,
                                           std::optional<bool> disabled,
                                           std::optional<std::string> password,
                                           const Actor& actor) {
  if (role && roles_.Find(*role) == nullptr) {
    return Status(ErrorCode::kInvalidArgument, fmt::format("no role \"{}\"", *role));
  }
  std::optional<std::string> hash;
  if (password) {
    AUTOMAN_RETURN_IF_ERROR(CheckPassword(*password));
    AUTOMAN_ASSIGN_OR_RETURN(hash, Hash(*password));
  }
  UserRecord out;
  const Timestamp now = clock_.Now();
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("users"));
    AUTOMAN_ASSIGN_OR_RETURN(UserRecord u, tx.GetUser(username));
    json::object details;
    // The last enabled admin cannot be demoted or disabled: nobody could manage users.
    const bool loses_admin =
        u.role == "admin" && !u.disabled && ((role && *role != "admin") || (disabled && *disabled));
    if (loses_admin) {
      AUTOMAN_ASSIGN_OR_RETURN(std::vector<UserRecord> all, tx.ListUsers());
      int admins = 0;
      for (const UserRecord& x : all) admins += x.role == "admin" && !x.disabled ? 1 : 0;
      if (admins <= 1) {
        return Status(
            ErrorCode::kFailedPrecondition,
            fmt::format("\"{}\" is the last enabled admin; make another admin first", u.username));
      }
    }
    if (role && *role != u.role) {
      details["role"] = json::array{json::value(u.role), json::value(*role)};
      u.role = *role;
    }
    if (disabled && *disabled != u.disabled) {
      details["disabled"] = *disabled;
      u.disabled = *disabled;
    }
    if (hash) {
      details["password"] = "reset";
      u.password_hash = *hash;
      u.must_change_password = true;
      u.failed_logins = 0;
      u.locked_until.reset();
    }
    u.updated_at = now;
    AUTOMAN_RETURN_IF_ERROR(tx.PutUser(u));
    if (hash || (disabled && *disabled)) {
      AUTOMAN_ASSIGN_OR_RETURN(std::vector<CredentialRecord> sessions,
                               tx.ListCredentials(CredentialKind::kSession, u.username));
      for (CredentialRecord& c : sessions) {
        if (c.revoked_at) continue;
        c.revoked_at = now;
        AUTOMAN_RETURN_IF_ERROR(tx.UpdateCredential(c));
      }
    }
    out = u;
    return Audit(tx, actor, "user.update", "user/" + u.username, "ok", json::serialize(details));
  }));
  Invalidate(username);
  return out;
}

Result<IssuedToken> AuthService::IssueToken(const Subject& owner, std::string_view name,
                                            std::string_view role, std::optional<Duration> ttl,
                                            const Actor& actor) {
  if (!IsValidName(name)) {
    return Status(ErrorCode::kInvalidArgument,
                  "a token name must be 1..64 of a-z 0-9 . _ -, starting with a letter or digit");
  }
  // The role the token gets: `owner`'s own unless a narrower one is asked for. (`owner` may
  // itself be a narrower token of its user: its role, not the user's, is the ceiling.)
  std::string granted = role.empty() ? owner.role : std::string(role);
  if (granted != owner.role) {
    const Role* r = roles_.Find(role);
    if (r == nullptr)
      return Status(ErrorCode::kInvalidArgument, fmt::format("no role \"{}\"", role));
    if (!r->permissions.Within(owner.permissions)) {
      return Status(ErrorCode::kPermissionDenied,
                    fmt::format("role \"{}\" has permissions you do not have", role));
    }
  }
  const Duration life = ttl.value_or(options_.token_default_ttl);
  if (life <= Duration::zero() || life > options_.token_max_ttl) {
    return Status(
        ErrorCode::kInvalidArgument,
        fmt::format(
            "a token's lifetime must be 1 s..{} days",
            std::chrono::duration_cast<std::chrono::hours>(options_.token_max_ttl).count() / 24));
  }
  const Timestamp now = clock_.Now();
  IssuedToken t;
  t.secret = RandomToken("amt_");
  t.record.id = NewId(clock_);
  t.record.kind = CredentialKind::kToken;
  t.record.secret_hash = Sha256Hex(t.secret);
  t.record.owner = owner.username;
  t.record.name = std::string(name);
  t.record.created_at = now;
  t.record.expires_at = now + life;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(UserRecord user, tx.GetUser(owner.username));
    // "" follows the user's role; anything else stays that role (intersected at use).
    t.record.role = granted == user.role ? std::string() : granted;
    AUTOMAN_RETURN_IF_ERROR(tx.InsertCredential(t.record));
    return Audit(tx, actor, "token.issue", "token/" + t.record.id, "ok",
                 Details({{"name", json::value(t.record.name)}, {"role", json::value(granted)}}));
  }));
  return t;
}

Result<std::vector<CredentialRecord>> AuthService::ListTokens(std::string_view owner) {
  std::vector<CredentialRecord> out;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListCredentials(CredentialKind::kToken, owner));
    return Status::Ok();
  }));
  std::lock_guard lock(mu_);
  for (CredentialRecord& c : out) {
    if (auto it = cache_.find(c.secret_hash);
        it != cache_.end() && it->second.last_used > Timestamp{}) {
      c.last_used_at = std::max(c.last_used_at.value_or(Timestamp{}), it->second.last_used);
    }
  }
  return out;
}

Status AuthService::RevokeToken(const Subject& s, std::string_view id, const Actor& actor) {
  const Timestamp now = clock_.Now();
  std::string hash;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    Result<CredentialRecord> c = tx.GetCredential(id);
    // Someone else's token is answered exactly like a token that does not exist.
    if (!c.ok() || c->kind != CredentialKind::kToken ||
        (c->owner != s.username && !s.Can(Permission::kUsersManage))) {
      return c.ok() || c.status().code() == ErrorCode::kNotFound
                 ? Status(ErrorCode::kNotFound, fmt::format("token \"{}\" does not exist", id))
                 : c.status();
    }
    hash = c->secret_hash;
    if (!c->revoked_at) {
      c->revoked_at = now;
      AUTOMAN_RETURN_IF_ERROR(tx.UpdateCredential(*c));
    }
    return Audit(tx, actor, "token.revoke", "token/" + std::string(id), "ok",
                 Details({{"owner", json::value(c->owner)}, {"name", json::value(c->name)}}));
  }));
  std::lock_guard lock(mu_);
  cache_.erase(hash);
  return Status::Ok();
}

void AuthService::Maintain() {
  std::vector<CredentialRecord> due;
  {
    std::lock_guard lock(mu_);
    const auto steady = clock_.SteadyNow();
    for (auto it = cache_.begin(); it != cache_.end();) {
      Cached& c = it->second;
      if (c.last_used - c.last_used_written >= options_.last_used_resolution) {
        CredentialRecord r = c.record;
        r.last_used_at = c.last_used;
        c.last_used_written = c.last_used;
        due.push_back(std::move(r));
      }
      // Entries not used for a while are dropped (they reload from the store).
      if (steady - c.fetched > options_.cache_ttl * 30) {
        it = cache_.erase(it);
      } else {
        ++it;
      }
    }
  }
  const Timestamp now = clock_.Now();
  (void)store_.Transact(Store::TxMode::kWriteProgress, [&](StoreTx& tx) -> Status {
    for (const CredentialRecord& r : due) {
      // Written only over a record that is still live (a revoke meanwhile wins).
      Result<CredentialRecord> cur = tx.GetCredential(r.id);
      if (!cur.ok() || cur->revoked_at) continue;
      cur->last_used_at = std::max(cur->last_used_at.value_or(Timestamp{}), *r.last_used_at);
      AUTOMAN_RETURN_IF_ERROR(tx.UpdateCredential(*cur));
    }
    // Dead credentials are kept a week for the record, then purged.
    return tx.PurgeCredentials(now - std::chrono::hours(24 * 7)).status();
  });
}

void AuthService::Invalidate(std::string_view username) {
  std::lock_guard lock(mu_);
  if (username.empty()) {
    cache_.clear();
    return;
  }
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (it->second.record.owner == username) {
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
}

std::string CookieValue(std::string_view header, std::string_view name) {
  size_t i = 0;
  while (i < header.size()) {
    size_t end = header.find(';', i);
    if (end == std::string_view::npos) end = header.size();
    std::string_view part = header.substr(i, end - i);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      std::string_view v = part.substr(name.size() + 1);
      while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
      return std::string(v);
    }
    i = end + 1;
  }
  return {};
}

}  // namespace automan::auth
