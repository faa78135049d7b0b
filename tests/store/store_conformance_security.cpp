// Users, credentials, secrets and the audit trail: part of the Store conformance suite
// (store_conformance.h, StoreSecurityConformanceTest). Instants are explicit (At(n)), never
// the wall clock.
#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "store_conformance.h"

namespace automan::testing {

// ---------------------------------------------------------------------------------------
// Helpers of the fixture: each call is one transaction.

Status StoreSecurityConformanceTest::PutUser(const UserRecord& u) {
  return Write([&](StoreTx& tx) { return tx.PutUser(u); });
}
Result<UserRecord> StoreSecurityConformanceTest::GetUser(const std::string& username) {
  return ReadValue<UserRecord>([&](StoreTx& tx) { return tx.GetUser(username); });
}
Result<std::vector<UserRecord>> StoreSecurityConformanceTest::ListUsers() {
  return ReadValue<std::vector<UserRecord>>([&](StoreTx& tx) { return tx.ListUsers(); });
}
Status StoreSecurityConformanceTest::InsertCredential(const CredentialRecord& c) {
  return Write([&](StoreTx& tx) { return tx.InsertCredential(c); });
}
Result<CredentialRecord> StoreSecurityConformanceTest::GetCredential(const std::string& id) {
  return ReadValue<CredentialRecord>([&](StoreTx& tx) { return tx.GetCredential(id); });
}
Result<CredentialRecord> StoreSecurityConformanceTest::FindCredential(
    const std::string& secret_hash) {
  return ReadValue<CredentialRecord>(
      [&](StoreTx& tx) { return tx.FindCredentialByHash(secret_hash); });
}
Result<std::vector<CredentialRecord>> StoreSecurityConformanceTest::ListCredentials(
    CredentialKind kind, const std::string& owner) {
  return ReadValue<std::vector<CredentialRecord>>(
      [&](StoreTx& tx) { return tx.ListCredentials(kind, owner); });
}
Status StoreSecurityConformanceTest::UpdateCredential(const CredentialRecord& c) {
  return Write([&](StoreTx& tx) { return tx.UpdateCredential(c); });
}
Result<int64_t> StoreSecurityConformanceTest::PurgeCredentials(Timestamp before) {
  std::optional<int64_t> out;
  Status s = Write([&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.PurgeCredentials(before));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return *out;
}
Status StoreSecurityConformanceTest::PutSecret(const SecretRecord& s) {
  return Write([&](StoreTx& tx) { return tx.PutSecret(s); });
}
Result<SecretRecord> StoreSecurityConformanceTest::GetSecret(const std::string& name) {
  return ReadValue<SecretRecord>([&](StoreTx& tx) { return tx.GetSecret(name); });
}
Result<std::vector<SecretRecord>> StoreSecurityConformanceTest::ListSecrets() {
  return ReadValue<std::vector<SecretRecord>>([&](StoreTx& tx) { return tx.ListSecrets(); });
}
Status StoreSecurityConformanceTest::DeleteSecret(const std::string& name) {
  return Write([&](StoreTx& tx) { return tx.DeleteSecret(name); });
}
Result<std::optional<AuditRecord>> StoreSecurityConformanceTest::LastAudit() {
  return ReadValue<std::optional<AuditRecord>>([&](StoreTx& tx) { return tx.LastAudit(); });
}
Status StoreSecurityConformanceTest::AppendAudit(const AuditRecord& e) {
  return Write([&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("audit"));
    return tx.AppendAudit(e);
  });
}
Result<std::vector<AuditRecord>> StoreSecurityConformanceTest::ListAudit(const AuditFilter& f) {
  return ReadValue<std::vector<AuditRecord>>([&](StoreTx& tx) { return tx.ListAudit(f); });
}
Result<std::vector<int64_t>> StoreSecurityConformanceTest::AuditSeqs(const AuditFilter& f) {
  AUTOMAN_ASSIGN_OR_RETURN(std::vector<AuditRecord> entries, ListAudit(f));
  std::vector<int64_t> out;
  for (const AuditRecord& e : entries) out.push_back(e.seq);
  return out;
}

namespace {

UserRecord SampleUser(const std::string& username = "alice") {
  UserRecord u;
  u.username = username;
  u.password_hash = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
  u.role = "operator";
  u.created_at = At(1);
  u.updated_at = At(1);
  return u;
}

// Every field away from its default.
UserRecord FullUser(const std::string& username = "bob") {
  UserRecord u = SampleUser(username);
  u.role = "admin";
  u.disabled = true;
  u.must_change_password = true;
  u.failed_logins = 4;
  u.locked_until = At(900);
  u.created_at = At(2);
  u.updated_at = At(3);
  return u;
}

// A 64-hex-digit "hash" unique per `n`.
std::string HashOf(int n) {
  std::string h = fmt::format("{:064x}", n);
  h[0] = 'e';
  return h;
}

CredentialRecord SampleCredential(const std::string& id, const std::string& owner = "alice",
                                  CredentialKind kind = CredentialKind::kToken,
                                  int64_t created = 10) {
  CredentialRecord c;
  c.id = id;
  c.kind = kind;
  c.secret_hash = HashOf(static_cast<int>(std::hash<std::string>{}(id)&0x7fffffff));
  c.owner = owner;
  c.name = kind == CredentialKind::kToken ? "ci token " + id : "";
  c.created_at = At(created);
  return c;
}

SecretRecord SampleSecret(const std::string& name = "db-password") {
  SecretRecord s;
  s.name = name;
  s.sealed = std::string("\x01\x02nonce", 7) + "ciphertext";
  s.description = "the primary database, ünïcødé ✓";
  s.created_at = At(5);
  s.updated_at = At(5);
  s.updated_by = "alice";
  return s;
}

AuditRecord SampleAudit(int64_t seq, const std::string& action = "run.create",
                        const std::string& actor = "alice", int64_t at = -1) {
  AuditRecord e;
  e.seq = seq;
  e.at = At(at >= 0 ? at : seq * 10);
  e.actor = actor;
  e.action = action;
  e.target = "run/0190a8f2-" + std::to_string(seq);
  e.outcome = "ok";
  e.remote = "192.0.2.7";
  e.details_json = R"({"runbook":"disk-cleanup","note":"ünïcødé ✓ \"q\""})";
  e.hash = HashOf(static_cast<int>(seq));
  return e;
}

std::vector<std::string> Usernames(const std::vector<UserRecord>& users) {
  std::vector<std::string> out;
  for (const UserRecord& u : users) out.push_back(u.username);
  return out;
}

std::vector<std::string> CredentialIds(const std::vector<CredentialRecord>& creds) {
  std::vector<std::string> out;
  for (const CredentialRecord& c : creds) out.push_back(c.id);
  return out;
}

std::vector<std::string> SecretNames(const std::vector<SecretRecord>& secrets) {
  std::vector<std::string> out;
  for (const SecretRecord& s : secrets) out.push_back(s.name);
  return out;
}

using Seqs = std::vector<int64_t>;
using Names = std::vector<std::string>;

TEST_P(StoreSecurityConformanceTest, CredentialKindNames) {
  EXPECT_EQ(ToString(CredentialKind::kSession), "session");
  EXPECT_EQ(ToString(CredentialKind::kToken), "token");
  for (CredentialKind k : {CredentialKind::kSession, CredentialKind::kToken}) {
    EXPECT_EQ(ParseCredentialKind(ToString(k)), k) << ToString(k);
  }
  EXPECT_EQ(ParseCredentialKind("Token"), std::nullopt);
  EXPECT_EQ(ParseCredentialKind(""), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// Users

TEST_P(StoreSecurityConformanceTest, UserRoundTrip) {
  UserRecord plain = SampleUser("alice");
  UserRecord full = FullUser("bob");
  ASSERT_OK(PutUser(plain));
  ASSERT_OK(PutUser(full));
  auto a = GetUser("alice");
  ASSERT_OK(a);
  EXPECT_EQ(*a, plain);
  EXPECT_EQ(a->locked_until, std::nullopt);
  auto b = GetUser("bob");
  ASSERT_OK(b);
  EXPECT_EQ(*b, full);
}

TEST_P(StoreSecurityConformanceTest, PutUserReplacesEveryFieldButCreatedAt) {
  UserRecord u = FullUser("carol");
  ASSERT_OK(PutUser(u));
  UserRecord changed = SampleUser("carol");
  changed.password_hash = "$argon2id$v=19$m=65536,t=3,p=1$bmV3c2FsdA$bmV3aGFzaA";
  changed.role = "viewer";
  changed.created_at = At(500);  // ignored: the stored created_at stays
  changed.updated_at = At(501);
  ASSERT_OK(PutUser(changed));
  auto got = GetUser("carol");
  ASSERT_OK(got);
  UserRecord want = changed;
  want.created_at = u.created_at;
  EXPECT_EQ(*got, want);
  EXPECT_FALSE(got->disabled);
  EXPECT_FALSE(got->must_change_password);
  EXPECT_EQ(got->failed_logins, 0);
  EXPECT_EQ(got->locked_until, std::nullopt);
}

TEST_P(StoreSecurityConformanceTest, ReplacingAUserKeepsItsCredentials) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  CredentialRecord c = SampleCredential("tok-1");
  ASSERT_OK(InsertCredential(c));
  UserRecord again = SampleUser("alice");
  again.failed_logins = 1;
  again.updated_at = At(50);
  ASSERT_OK(PutUser(again));
  auto got = GetCredential("tok-1");
  ASSERT_OK(got);
  EXPECT_EQ(*got, c);
}

TEST_P(StoreSecurityConformanceTest, ListUsersByUsername) {
  auto empty = ListUsers();
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
  for (const char* name : {"mallory", "Zed", "alice", "bob", "alice2", "émile"}) {
    ASSERT_OK(PutUser(SampleUser(name)));
  }
  auto got = ListUsers();
  ASSERT_OK(got);
  // Bytewise: upper case before lower case, UTF-8 after ASCII.
  EXPECT_EQ(Usernames(*got), (Names{"Zed", "alice", "alice2", "bob", "mallory", "émile"}));
  EXPECT_EQ((*got)[1], SampleUser("alice"));
}

TEST_P(StoreSecurityConformanceTest, GetMissingUserIsNotFound) {
  ExpectError(GetUser("nobody").status(), ErrorCode::kNotFound, {"nobody"});
  ASSERT_OK(PutUser(SampleUser("alice")));
  ExpectError(GetUser("Alice").status(), ErrorCode::kNotFound);
}

TEST_P(StoreSecurityConformanceTest, MalformedUsersAreInvalidArgument) {
  UserRecord no_name = SampleUser("");
  ExpectError(PutUser(no_name), ErrorCode::kInvalidArgument, {"username"});
  UserRecord no_hash = SampleUser("dave");
  no_hash.password_hash.clear();
  ExpectError(PutUser(no_hash), ErrorCode::kInvalidArgument, {"dave", "password hash"});
  ExpectError(GetUser("").status(), ErrorCode::kInvalidArgument);
  auto users = ListUsers();
  ASSERT_OK(users);
  EXPECT_TRUE(users->empty());
}

// ---------------------------------------------------------------------------------------
// Credentials

TEST_P(StoreSecurityConformanceTest, CredentialRoundTrip) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  CredentialRecord session = SampleCredential("sess-1", "alice", CredentialKind::kSession);
  CredentialRecord token = SampleCredential("tok-1", "alice", CredentialKind::kToken);
  token.name = "deploy from CI ✓";
  token.role = "viewer";
  token.expires_at = At(1000);
  token.last_used_at = At(20);
  token.revoked_at = At(30);
  ASSERT_OK(InsertCredential(session));
  ASSERT_OK(InsertCredential(token));

  auto s = GetCredential("sess-1");
  ASSERT_OK(s);
  EXPECT_EQ(*s, session);
  EXPECT_EQ(s->expires_at, std::nullopt);
  EXPECT_EQ(s->last_used_at, std::nullopt);
  EXPECT_EQ(s->revoked_at, std::nullopt);
  auto t = GetCredential("tok-1");
  ASSERT_OK(t);
  EXPECT_EQ(*t, token);

  auto by_hash = FindCredential(token.secret_hash);
  ASSERT_OK(by_hash);
  EXPECT_EQ(*by_hash, token);
  by_hash = FindCredential(session.secret_hash);
  ASSERT_OK(by_hash);
  EXPECT_EQ(*by_hash, session);
}

TEST_P(StoreSecurityConformanceTest, DuplicateCredentialIdOrHashIsAlreadyExists) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  CredentialRecord c = SampleCredential("tok-1");
  ASSERT_OK(InsertCredential(c));

  CredentialRecord same_id = SampleCredential("tok-1");
  same_id.secret_hash = HashOf(1);
  ExpectError(InsertCredential(same_id), ErrorCode::kAlreadyExists, {"tok-1"});

  CredentialRecord same_hash = SampleCredential("tok-2");
  same_hash.secret_hash = c.secret_hash;
  Status s = InsertCredential(same_hash);
  ExpectError(s, ErrorCode::kAlreadyExists, {"tok-2"});
  // The hash stands for a secret: messages never carry it.
  EXPECT_EQ(s.message().find(c.secret_hash), std::string::npos) << s.ToString();

  ExpectError(GetCredential("tok-2").status(), ErrorCode::kNotFound);
  auto stored = GetCredential("tok-1");
  ASSERT_OK(stored);
  EXPECT_EQ(*stored, c);
}

TEST_P(StoreSecurityConformanceTest, TransactionMayContinueAfterARefusedCredential) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  CredentialRecord c = SampleCredential("tok-1");
  ASSERT_OK(InsertCredential(c));
  CredentialRecord retry = SampleCredential("tok-2");
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    CredentialRecord clash = retry;
    clash.secret_hash = c.secret_hash;
    Status s = tx.InsertCredential(clash);
    if (s.code() != ErrorCode::kAlreadyExists) {
      return Error(ErrorCode::kInternal, "expected ALREADY_EXISTS, got {}", s.ToString());
    }
    CredentialRecord orphan = SampleCredential("tok-3", "nobody");
    s = tx.InsertCredential(orphan);
    if (s.code() != ErrorCode::kNotFound) {
      return Error(ErrorCode::kInternal, "expected NOT_FOUND, got {}", s.ToString());
    }
    return tx.InsertCredential(retry);  // a fresh secret, as a caller retries
  }));
  auto got = GetCredential("tok-2");
  ASSERT_OK(got);
  EXPECT_EQ(*got, retry);
}

TEST_P(StoreSecurityConformanceTest, CredentialOfUnknownOwnerIsNotFound) {
  ExpectError(InsertCredential(SampleCredential("tok-1", "ghost")), ErrorCode::kNotFound,
              {"ghost"});
  ExpectError(GetCredential("tok-1").status(), ErrorCode::kNotFound);
  ASSERT_OK(PutUser(SampleUser("ghost")));
  ASSERT_OK(InsertCredential(SampleCredential("tok-1", "ghost")));
}

TEST_P(StoreSecurityConformanceTest, MissingCredentialIsNotFound) {
  ExpectError(GetCredential("tok-404").status(), ErrorCode::kNotFound, {"tok-404"});
  ExpectError(FindCredential(HashOf(404)).status(), ErrorCode::kNotFound);
  ExpectError(UpdateCredential(SampleCredential("tok-404")), ErrorCode::kNotFound, {"tok-404"});
}

TEST_P(StoreSecurityConformanceTest, MalformedCredentialsAreInvalidArgument) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  CredentialRecord no_id = SampleCredential("");
  ExpectError(InsertCredential(no_id), ErrorCode::kInvalidArgument, {"id"});
  CredentialRecord no_hash = SampleCredential("tok-1");
  no_hash.secret_hash.clear();
  ExpectError(InsertCredential(no_hash), ErrorCode::kInvalidArgument, {"tok-1", "hash"});
  CredentialRecord no_owner = SampleCredential("tok-2", "");
  ExpectError(InsertCredential(no_owner), ErrorCode::kInvalidArgument, {"tok-2", "owner"});
  ExpectError(GetCredential("").status(), ErrorCode::kInvalidArgument);
  ExpectError(FindCredential("").status(), ErrorCode::kInvalidArgument);
  ExpectError(UpdateCredential(no_id), ErrorCode::kInvalidArgument);
  auto all = ListCredentials(CredentialKind::kToken);
  ASSERT_OK(all);
  EXPECT_TRUE(all->empty());
}

TEST_P(StoreSecurityConformanceTest, ListCredentialsByKindAndOwnerOldestFirst) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  ASSERT_OK(PutUser(SampleUser("bob")));
  const auto kToken = CredentialKind::kToken;
  const auto kSession = CredentialKind::kSession;
  // Inserted out of creation order; "t-b1" and "t-a2" share an instant (then by id).
  ASSERT_OK(InsertCredential(SampleCredential("t-a3", "alice", kToken, 30)));
  ASSERT_OK(InsertCredential(SampleCredential("t-b1", "bob", kToken, 20)));
  ASSERT_OK(InsertCredential(SampleCredential("t-a1", "alice", kToken, 10)));
  ASSERT_OK(InsertCredential(SampleCredential("t-a2", "alice", kToken, 20)));
  ASSERT_OK(InsertCredential(SampleCredential("s-b1", "bob", kSession, 5)));
  ASSERT_OK(InsertCredential(SampleCredential("s-a1", "alice", kSession, 15)));
  ASSERT_OK(InsertCredential(SampleCredential("s-a2", "alice", kSession, 1)));

  auto tokens = ListCredentials(kToken);
  ASSERT_OK(tokens);
  EXPECT_EQ(CredentialIds(*tokens), (Names{"t-a1", "t-a2", "t-b1", "t-a3"}));
  EXPECT_EQ((*tokens)[0], SampleCredential("t-a1", "alice", kToken, 10));
  auto alice_tokens = ListCredentials(kToken, "alice");
  ASSERT_OK(alice_tokens);
  EXPECT_EQ(CredentialIds(*alice_tokens), (Names{"t-a1", "t-a2", "t-a3"}));
  auto bob_tokens = ListCredentials(kToken, "bob");
  ASSERT_OK(bob_tokens);
  EXPECT_EQ(CredentialIds(*bob_tokens), (Names{"t-b1"}));
  auto sessions = ListCredentials(kSession);
  ASSERT_OK(sessions);
  EXPECT_EQ(CredentialIds(*sessions), (Names{"s-a2", "s-b1", "s-a1"}));
  auto alice_sessions = ListCredentials(kSession, "alice");
  ASSERT_OK(alice_sessions);
  EXPECT_EQ(CredentialIds(*alice_sessions), (Names{"s-a2", "s-a1"}));
  auto nobody = ListCredentials(kSession, "nobody");
  ASSERT_OK(nobody);
  EXPECT_TRUE(nobody->empty());
}

TEST_P(StoreSecurityConformanceTest, UpdateCredentialChangesOnlyItsMutableFields) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  ASSERT_OK(PutUser(SampleUser("bob")));
  CredentialRecord c = SampleCredential("tok-1", "alice", CredentialKind::kToken, 10);
  c.expires_at = At(1000);
  ASSERT_OK(InsertCredential(c));

  CredentialRecord u = c;
  u.name = "renamed";
  u.role = "viewer";
  u.expires_at = std::nullopt;
  u.last_used_at = At(40);
  u.revoked_at = At(41);
  // These never change:
  u.kind = CredentialKind::kSession;
  u.secret_hash = HashOf(77);
  u.owner = "bob";
  u.created_at = At(99);
  ASSERT_OK(UpdateCredential(u));

  CredentialRecord want = c;
  want.name = "renamed";
  want.role = "viewer";
  want.expires_at = std::nullopt;
  want.last_used_at = At(40);
  want.revoked_at = At(41);
  auto got = GetCredential("tok-1");
  ASSERT_OK(got);
  EXPECT_EQ(*got, want);
  auto by_old_hash = FindCredential(c.secret_hash);
  ASSERT_OK(by_old_hash);
  EXPECT_EQ(*by_old_hash, want);
  ExpectError(FindCredential(HashOf(77)).status(), ErrorCode::kNotFound);
  auto sessions = ListCredentials(CredentialKind::kSession);
  ASSERT_OK(sessions);
  EXPECT_TRUE(sessions->empty());

  // A writer holding an older copy (no revoked_at) never undoes the revocation.
  CredentialRecord stale = c;
  stale.last_used_at = At(50);
  ASSERT_OK(UpdateCredential(stale));
  auto after = GetCredential("tok-1");
  ASSERT_OK(after);
  EXPECT_EQ(after->revoked_at, At(41));
  EXPECT_EQ(after->last_used_at, At(50));

  // Touching last use alone, as every authenticated request may.
  want.last_used_at = At(60);
  ASSERT_OK(UpdateCredential(want));
  got = GetCredential("tok-1");
  ASSERT_OK(got);
  EXPECT_EQ(*got, want);
}

TEST_P(StoreSecurityConformanceTest, PurgeCredentialsCountsAndKeepsLiveOnes) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  auto cred = [](const std::string& id, std::optional<int64_t> expires,
                 std::optional<int64_t> revoked) {
    CredentialRecord c = SampleCredential(id);
    if (expires) c.expires_at = At(*expires);
    if (revoked) c.revoked_at = At(*revoked);
    return c;
  };
  const std::vector<CredentialRecord> creds = {
      cred("expired", 50, std::nullopt),            // gone
      cred("revoked", std::nullopt, 60),            // gone
      cred("both", 200, 70),                        // revoked before: gone
      cred("expires-at-cut", 100, std::nullopt),    // not before the cut: stays
      cred("revoked-at-cut", std::nullopt, 100),    // stays
      cred("live", 500, std::nullopt),              // stays
      cred("forever", std::nullopt, std::nullopt),  // stays
      cred("revoked-later", 90 + 1000, 150),        // stays
  };
  for (const CredentialRecord& c : creds) ASSERT_OK(InsertCredential(c));

  auto n = PurgeCredentials(At(100));
  ASSERT_OK(n);
  EXPECT_EQ(*n, 3);
  auto left = ListCredentials(CredentialKind::kToken);
  ASSERT_OK(left);
  std::vector<std::string> ids = CredentialIds(*left);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (Names{"expires-at-cut", "forever", "live", "revoked-at-cut", "revoked-later"}));
  ExpectError(GetCredential("expired").status(), ErrorCode::kNotFound);
  ExpectError(FindCredential(creds[1].secret_hash).status(), ErrorCode::kNotFound);

  n = PurgeCredentials(At(100));
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0);
  n = PurgeCredentials(At(10000));
  ASSERT_OK(n);
  EXPECT_EQ(*n, 4);
  auto forever = GetCredential("forever");
  ASSERT_OK(forever);
  EXPECT_EQ(*forever, creds[6]);
}

// ---------------------------------------------------------------------------------------
// Secrets

TEST_P(StoreSecurityConformanceTest, SecretRoundTripKeepsEveryByte) {
  std::string every_byte;
  for (int i = 0; i < 256; ++i) every_byte.push_back(static_cast<char>(i));
  SecretRecord nul = SampleSecret("with-nul");
  nul.sealed = std::string("\0\0nonce\0cipher\0", 15);
  SecretRecord all = SampleSecret("all-bytes");
  all.sealed = every_byte + every_byte;  // not UTF-8, NULs, 0xff
  SecretRecord big = SampleSecret("big");
  big.sealed = std::string(70000, '\0') + every_byte;
  SecretRecord empty = SampleSecret("empty");
  empty.sealed.clear();
  empty.description.clear();
  empty.updated_by.clear();
  for (const SecretRecord& s : {nul, all, big, empty}) ASSERT_OK(PutSecret(s));
  for (const SecretRecord& s : {nul, all, big, empty}) {
    auto got = GetSecret(s.name);
    ASSERT_OK(got);
    EXPECT_EQ(got->sealed.size(), s.sealed.size()) << s.name;
    EXPECT_EQ(*got, s) << s.name;
  }
  auto list = ListSecrets();
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[0], all);
  EXPECT_EQ((*list)[3], nul);
}

TEST_P(StoreSecurityConformanceTest, PutSecretReplacesAndKeepsCreatedAt) {
  SecretRecord s = SampleSecret("api-key");
  ASSERT_OK(PutSecret(s));
  SecretRecord rotated = s;
  rotated.sealed = std::string("\x09\x08\x00rotated", 10);
  rotated.description = "rotated";
  rotated.created_at = At(700);  // ignored
  rotated.updated_at = At(701);
  rotated.updated_by = "bob";
  ASSERT_OK(PutSecret(rotated));
  auto got = GetSecret("api-key");
  ASSERT_OK(got);
  SecretRecord want = rotated;
  want.created_at = s.created_at;
  EXPECT_EQ(*got, want);
  auto list = ListSecrets();
  ASSERT_OK(list);
  EXPECT_EQ(list->size(), 1u);
}

TEST_P(StoreSecurityConformanceTest, ListSecretsByNameAndDelete) {
  auto empty = ListSecrets();
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
  for (const char* name : {"smtp", "DB", "aws/key", "aws", "b"})
    ASSERT_OK(PutSecret(SampleSecret(name)));
  auto list = ListSecrets();
  ASSERT_OK(list);
  EXPECT_EQ(SecretNames(*list), (Names{"DB", "aws", "aws/key", "b", "smtp"}));
  EXPECT_EQ((*list)[1], SampleSecret("aws"));

  ASSERT_OK(DeleteSecret("aws"));
  ExpectError(GetSecret("aws").status(), ErrorCode::kNotFound, {"aws"});
  ExpectError(DeleteSecret("aws"), ErrorCode::kNotFound, {"aws"});
  list = ListSecrets();
  ASSERT_OK(list);
  EXPECT_EQ(SecretNames(*list), (Names{"DB", "aws/key", "b", "smtp"}));
  // Deleted and put again: a new secret (new created_at).
  SecretRecord again = SampleSecret("aws");
  again.created_at = At(900);
  again.updated_at = At(900);
  ASSERT_OK(PutSecret(again));
  auto got = GetSecret("aws");
  ASSERT_OK(got);
  EXPECT_EQ(*got, again);
}

TEST_P(StoreSecurityConformanceTest, MissingAndMalformedSecrets) {
  ExpectError(GetSecret("nope").status(), ErrorCode::kNotFound, {"nope"});
  ExpectError(DeleteSecret("nope"), ErrorCode::kNotFound, {"nope"});
  ExpectError(PutSecret(SampleSecret("")), ErrorCode::kInvalidArgument, {"name"});
  ExpectError(GetSecret("").status(), ErrorCode::kInvalidArgument);
  ExpectError(DeleteSecret(""), ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------
// Audit trail

TEST_P(StoreSecurityConformanceTest, AuditAppendAndLast) {
  auto none = LastAudit();
  ASSERT_OK(none);
  EXPECT_EQ(*none, std::nullopt);
  auto empty = ListAudit({});
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());

  AuditRecord first = SampleAudit(1, "auth.login");
  AuditRecord second = SampleAudit(2, "run.create");
  second.target.clear();
  second.remote.clear();
  second.outcome = "denied";
  second.details_json = "{}";
  ASSERT_OK(AppendAudit(first));
  auto last = LastAudit();
  ASSERT_OK(last);
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ(**last, first);
  ASSERT_OK(AppendAudit(second));
  last = LastAudit();
  ASSERT_OK(last);
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ(**last, second);

  auto all = ListAudit({});
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0], first);
  EXPECT_EQ((*all)[1], second);
}

TEST_P(StoreSecurityConformanceTest, LastAuditIsTheHighestSeq) {
  // The store keeps whatever seqs it is given (the callers keep them gapless).
  ASSERT_OK(AppendAudit(SampleAudit(5)));
  ASSERT_OK(AppendAudit(SampleAudit(12)));
  ASSERT_OK(AppendAudit(SampleAudit(7)));
  auto last = LastAudit();
  ASSERT_OK(last);
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->seq, 12);
  auto seqs = AuditSeqs({});
  ASSERT_OK(seqs);
  EXPECT_EQ(*seqs, (Seqs{5, 7, 12}));
}

TEST_P(StoreSecurityConformanceTest, AppendAuditRefusesATakenOrInvalidSeq) {
  AuditRecord e = SampleAudit(1);
  ASSERT_OK(AppendAudit(e));
  AuditRecord dup = SampleAudit(1, "auth.logout", "bob");
  ExpectError(AppendAudit(dup), ErrorCode::kAlreadyExists, {"1"});
  ExpectError(AppendAudit(SampleAudit(0)), ErrorCode::kInvalidArgument, {"0"});
  ExpectError(AppendAudit(SampleAudit(-3)), ErrorCode::kInvalidArgument);
  auto all = ListAudit({});
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0], e);

  // A refused append leaves the transaction usable (the caller re-reads LastAudit and
  // appends after it).
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("audit"));
    Status s = tx.AppendAudit(dup);
    if (s.code() != ErrorCode::kAlreadyExists) {
      return Error(ErrorCode::kInternal, "expected ALREADY_EXISTS, got {}", s.ToString());
    }
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<AuditRecord> last, tx.LastAudit());
    if (!last) return Error(ErrorCode::kInternal, "no last entry");
    dup.seq = last->seq + 1;
    return tx.AppendAudit(dup);
  }));
  auto seqs = AuditSeqs({});
  ASSERT_OK(seqs);
  EXPECT_EQ(*seqs, (Seqs{1, 2}));
}

TEST_P(StoreSecurityConformanceTest, ListAuditFilters) {
  // seq: action, actor, at (seconds)
  const std::vector<AuditRecord> entries = {
      SampleAudit(1, "auth.login", "alice", 10),   SampleAudit(2, "run.create", "alice", 20),
      SampleAudit(3, "runbook.update", "bob", 30), SampleAudit(4, "run.cancel", "bob", 40),
      SampleAudit(5, "run", "system", 50),         SampleAudit(6, "run.create", "anonymous", 50),
      SampleAudit(7, "runx.create", "alice", 60),  SampleAudit(8, "run.create.child", "alice", 70),
      SampleAudit(9, "auth.login", "bob", 80),
  };
  ASSERT_OK(Write([&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("audit"));
    for (const AuditRecord& e : entries) AUTOMAN_RETURN_IF_ERROR(tx.AppendAudit(e));
    return Status::Ok();
  }));
  auto seqs = [&](const AuditFilter& f) {
    auto r = AuditSeqs(f);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Seqs{-1};
  };

  EXPECT_EQ(seqs({}), (Seqs{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(seqs({.after_seq = 6}), (Seqs{7, 8, 9}));
  EXPECT_EQ(seqs({.after_seq = 9}), Seqs{});
  EXPECT_EQ(seqs({.actor = "alice"}), (Seqs{1, 2, 7, 8}));
  EXPECT_EQ(seqs({.actor = "alic"}), Seqs{});
  // Exact action.
  EXPECT_EQ(seqs({.action = "run.create"}), (Seqs{2, 6}));
  EXPECT_EQ(seqs({.action = "run"}), (Seqs{5}));
  // A prefix: "run." is not "runbook.", "runx." or the bare "run".
  EXPECT_EQ(seqs({.action = "run."}), (Seqs{2, 4, 6, 8}));
  EXPECT_EQ(seqs({.action = "run.create."}), (Seqs{8}));
  EXPECT_EQ(seqs({.action = "auth."}), (Seqs{1, 9}));
  EXPECT_EQ(seqs({.action = "runbook."}), (Seqs{3}));
  EXPECT_EQ(seqs({.action = "nothing."}), Seqs{});
  // Instants: since inclusive, until exclusive.
  EXPECT_EQ(seqs({.since = At(50)}), (Seqs{5, 6, 7, 8, 9}));
  EXPECT_EQ(seqs({.until = At(50)}), (Seqs{1, 2, 3, 4}));
  EXPECT_EQ(seqs({.since = At(30), .until = At(60)}), (Seqs{3, 4, 5, 6}));
  EXPECT_EQ(seqs({.since = At(60), .until = At(60)}), Seqs{});
  // Limit, and paging with after_seq.
  EXPECT_EQ(seqs({.limit = 3}), (Seqs{1, 2, 3}));
  EXPECT_EQ(seqs({.after_seq = 3, .limit = 3}), (Seqs{4, 5, 6}));
  EXPECT_EQ(seqs({.after_seq = 6, .limit = 3}), (Seqs{7, 8, 9}));
  // Every field at once.
  EXPECT_EQ(seqs({.after_seq = 1,
                  .actor = "alice",
                  .action = "run.",
                  .since = At(20),
                  .until = At(71),
                  .limit = 1}),
            (Seqs{2}));
  EXPECT_EQ(
      seqs({.after_seq = 2, .actor = "alice", .action = "run.", .since = At(20), .until = At(71)}),
      (Seqs{8}));
  EXPECT_EQ(seqs({.actor = "bob", .action = "auth.login"}), (Seqs{9}));

  auto full = ListAudit({.after_seq = 3, .limit = 1});
  ASSERT_OK(full);
  ASSERT_EQ(full->size(), 1u);
  EXPECT_EQ((*full)[0], entries[3]);
}

TEST_P(StoreSecurityConformanceTest, ListAuditActionPrefixIsNotAPattern) {
  ASSERT_OK(AppendAudit(SampleAudit(1, "a_b.x")));
  ASSERT_OK(AppendAudit(SampleAudit(2, "axb.x")));
  ASSERT_OK(AppendAudit(SampleAudit(3, "a%.x")));
  ASSERT_OK(AppendAudit(SampleAudit(4, "abc.x")));
  ASSERT_OK(AppendAudit(SampleAudit(5, "A_B.x")));
  auto seqs = AuditSeqs({.action = "a_b."});
  ASSERT_OK(seqs);
  EXPECT_EQ(*seqs, (Seqs{1}));
  seqs = AuditSeqs({.action = "a%."});
  ASSERT_OK(seqs);
  EXPECT_EQ(*seqs, (Seqs{3}));
  seqs = AuditSeqs({.action = "a_b.x"});
  ASSERT_OK(seqs);
  EXPECT_EQ(*seqs, (Seqs{1}));
}

TEST_P(StoreSecurityConformanceTest, ListAuditValidatesTheFilter) {
  ASSERT_OK(AppendAudit(SampleAudit(1)));
  ExpectError(ListAudit({.limit = 0}).status(), ErrorCode::kInvalidArgument, {"limit"});
  ExpectError(ListAudit({.limit = -1}).status(), ErrorCode::kInvalidArgument, {"limit"});
  ExpectError(ListAudit({.limit = 100001}).status(), ErrorCode::kInvalidArgument, {"100001"});
  ExpectError(ListAudit({.after_seq = -1}).status(), ErrorCode::kInvalidArgument, {"after_seq"});
  auto max = ListAudit({.limit = 100000});
  ASSERT_OK(max);
  EXPECT_EQ(max->size(), 1u);
  auto one = ListAudit({.limit = 1});
  ASSERT_OK(one);
  EXPECT_EQ(one->size(), 1u);
}

// ---------------------------------------------------------------------------------------
// Transactions

TEST_P(StoreSecurityConformanceTest, WritesInAReadTransactionAreRefused) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  CredentialRecord c = SampleCredential("tok-1");
  ASSERT_OK(InsertCredential(c));
  ASSERT_OK(PutSecret(SampleSecret("s")));
  auto refused = [&](const std::function<Status(StoreTx&)>& fn, std::string_view op) {
    ExpectError(Read(fn), ErrorCode::kFailedPrecondition, {"read transaction", op});
  };
  refused([&](StoreTx& tx) { return tx.PutUser(SampleUser("bob")); }, "PutUser");
  refused([&](StoreTx& tx) { return tx.InsertCredential(SampleCredential("tok-2")); },
          "InsertCredential");
  refused([&](StoreTx& tx) { return tx.UpdateCredential(c); }, "UpdateCredential");
  refused([&](StoreTx& tx) { return tx.PurgeCredentials(At(1000000)).status(); },
          "PurgeCredentials");
  refused([&](StoreTx& tx) { return tx.PutSecret(SampleSecret("t")); }, "PutSecret");
  refused([&](StoreTx& tx) { return tx.DeleteSecret("s"); }, "DeleteSecret");
  refused([&](StoreTx& tx) { return tx.AppendAudit(SampleAudit(1)); }, "AppendAudit");
  // The reads work there.
  ASSERT_OK(Read([&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.GetUser("alice").status());
    AUTOMAN_RETURN_IF_ERROR(tx.ListUsers().status());
    AUTOMAN_RETURN_IF_ERROR(tx.GetCredential("tok-1").status());
    AUTOMAN_RETURN_IF_ERROR(tx.FindCredentialByHash(c.secret_hash).status());
    AUTOMAN_RETURN_IF_ERROR(tx.ListCredentials(CredentialKind::kToken, "").status());
    AUTOMAN_RETURN_IF_ERROR(tx.GetSecret("s").status());
    AUTOMAN_RETURN_IF_ERROR(tx.ListSecrets().status());
    AUTOMAN_RETURN_IF_ERROR(tx.LastAudit().status());
    return tx.ListAudit({}).status();
  }));
  auto users = ListUsers();
  ASSERT_OK(users);
  EXPECT_EQ(users->size(), 1u);
  auto purged = GetCredential("tok-1");
  ASSERT_OK(purged);
  auto audit = ListAudit({});
  ASSERT_OK(audit);
  EXPECT_TRUE(audit->empty());
}

TEST_P(StoreSecurityConformanceTest, RollbackLeavesNothing) {
  ASSERT_OK(PutUser(SampleUser("alice")));
  CredentialRecord kept = SampleCredential("tok-kept");
  kept.expires_at = At(5);
  ASSERT_OK(InsertCredential(kept));
  ASSERT_OK(PutSecret(SampleSecret("kept")));
  ASSERT_OK(AppendAudit(SampleAudit(1)));

  Status s = Write([&](StoreTx& tx) -> Status {
    AUTOMAN_RETURN_IF_ERROR(tx.PutUser(SampleUser("bob")));
    UserRecord changed = SampleUser("alice");
    changed.role = "admin";
    AUTOMAN_RETURN_IF_ERROR(tx.PutUser(changed));
    AUTOMAN_RETURN_IF_ERROR(tx.InsertCredential(SampleCredential("tok-new", "bob")));
    CredentialRecord revoked = kept;
    revoked.revoked_at = At(2);
    AUTOMAN_RETURN_IF_ERROR(tx.UpdateCredential(revoked));
    AUTOMAN_ASSIGN_OR_RETURN(int64_t purged, tx.PurgeCredentials(At(100)));
    if (purged != 1) return Error(ErrorCode::kInternal, "purged {}", purged);
    AUTOMAN_RETURN_IF_ERROR(tx.PutSecret(SampleSecret("new")));
    AUTOMAN_RETURN_IF_ERROR(tx.DeleteSecret("kept"));
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("audit"));
    AUTOMAN_RETURN_IF_ERROR(tx.AppendAudit(SampleAudit(2)));
    // Visible inside the transaction...
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<AuditRecord> last, tx.LastAudit());
    if (!last || last->seq != 2) return Error(ErrorCode::kInternal, "last audit not 2");
    AUTOMAN_RETURN_IF_ERROR(tx.GetUser("bob").status());
    return Error(ErrorCode::kCancelled, "the caller changed its mind");
  });
  EXPECT_EQ(s.code(), ErrorCode::kCancelled) << s.ToString();

  // ...and nothing afterwards.
  ExpectError(GetUser("bob").status(), ErrorCode::kNotFound);
  auto alice = GetUser("alice");
  ASSERT_OK(alice);
  EXPECT_EQ(*alice, SampleUser("alice"));
  ExpectError(GetCredential("tok-new").status(), ErrorCode::kNotFound);
  auto still = GetCredential("tok-kept");
  ASSERT_OK(still);
  EXPECT_EQ(*still, kept);
  ExpectError(GetSecret("new").status(), ErrorCode::kNotFound);
  ASSERT_OK(GetSecret("kept"));
  auto seqs = AuditSeqs({});
  ASSERT_OK(seqs);
  EXPECT_EQ(*seqs, (Seqs{1}));
}

// ---------------------------------------------------------------------------------------
// The schema's own refusals (raw SQL behind the store's back)

TEST_P(StoreSecurityConformanceTest, AuditRowsRefuseUpdateAndDelete) {
  if (!GetParam().raw_exec) GTEST_SKIP() << "no raw access to this backend's data";
  AuditRecord e = SampleAudit(1);
  ASSERT_OK(AppendAudit(e));
  ASSERT_OK(AppendAudit(SampleAudit(2)));
  const auto& raw = GetParam().raw_exec;

  Status update = raw(*store_, "UPDATE audit SET outcome = 'denied' WHERE seq = 1");
  EXPECT_FALSE(update.ok());
  EXPECT_NE(update.message().find("append-only"), std::string::npos) << update.ToString();
  Status del = raw(*store_, "DELETE FROM audit WHERE seq = 2");
  EXPECT_FALSE(del.ok());
  EXPECT_NE(del.message().find("append-only"), std::string::npos) << del.ToString();
  Status all = raw(*store_, "DELETE FROM audit");
  EXPECT_FALSE(all.ok());
  // Other tables are not affected by the triggers.
  ASSERT_OK(PutSecret(SampleSecret("s")));
  ASSERT_OK(raw(*store_, "DELETE FROM secrets WHERE name = 's'"));

  auto got = ListAudit({});
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0], e);
  ASSERT_OK(AppendAudit(SampleAudit(3)));
}

TEST_P(StoreSecurityConformanceTest, DeletingAUserDeletesItsCredentials) {
  if (!GetParam().raw_exec) GTEST_SKIP() << "no raw access to this backend's data";
  ASSERT_OK(PutUser(SampleUser("alice")));
  ASSERT_OK(PutUser(SampleUser("bob")));
  ASSERT_OK(InsertCredential(SampleCredential("a-1", "alice")));
  ASSERT_OK(InsertCredential(SampleCredential("a-2", "alice", CredentialKind::kSession)));
  ASSERT_OK(InsertCredential(SampleCredential("b-1", "bob")));
  ASSERT_OK(GetParam().raw_exec(*store_, "DELETE FROM users WHERE username = 'alice'"));
  auto tokens = ListCredentials(CredentialKind::kToken);
  ASSERT_OK(tokens);
  EXPECT_EQ(CredentialIds(*tokens), (Names{"b-1"}));
  auto sessions = ListCredentials(CredentialKind::kSession);
  ASSERT_OK(sessions);
  EXPECT_TRUE(sessions->empty());
}

}  // namespace
}  // namespace automan::testing
