// Tests of src/auth: crypto primitives, the master key file, roles, the rate limiter,
// stream tickets and the AuthService (users, logins, sessions, tokens, audit).
//
// Time is a SimulatedClock everywhere (its Advance moves the wall and the steady reading
// together, so cached subjects age as the wall clock does). Password hashing uses OWASP's
// minimum argon2id cost for speed. Suites are named Auth* so `ctest -R Auth` runs them all.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "auth/auth_service.h"
#include "auth/crypto.h"
#include "auth/keys.h"
#include "auth/rate_limiter.h"
#include "auth/rbac.h"
#include "auth/roles_file.h"
#include "auth/tickets.h"
#include "common/clock.h"
#include "store/store.h"
#include "support/test_util.h"

namespace automan::auth {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using namespace std::string_literals;

const Timestamp kStart{std::chrono::sys_days{std::chrono::January / 10 / 2026}};

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

Key KeyOf(unsigned char fill) {
  Key k{};
  k.fill(fill);
  return k;
}

int FileMode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// ---------------------------------------------------------------------------------------
// crypto

TEST(AuthCryptoTest, Sha256AndHmacKnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // RFC 4231 test case 1 (a 20-byte key; HMAC pads keys with zeros, so 32 bytes with 12
  // trailing zeros is the same key).
  Key k{};
  std::fill(k.begin(), k.begin() + 20, 0x0b);
  EXPECT_EQ(HexEncode(HmacSha256(k, "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HmacSha256(k, "x").size(), 32u);
  EXPECT_NE(HmacSha256(k, "x"), HmacSha256(KeyOf(1), "x"));
  EXPECT_EQ(HexEncode("\x00\xff\x10"s), "00ff10");
  EXPECT_EQ(HexEncode(""), "");
}

TEST(AuthCryptoTest, PasswordHashRoundTrip) {
  Result<std::string> phc = HashPassword("correct horse battery", kOwaspMinimumCost);
  ASSERT_TRUE(phc.ok()) << phc.status().ToString();
  EXPECT_EQ(phc->rfind("$argon2id$v=19$", 0), 0u) << *phc;
  EXPECT_NE(phc->find("m=19456,"), std::string::npos) << *phc;  // 19 MiB in KiB
  EXPECT_NE(phc->find("t=2,"), std::string::npos) << *phc;
  EXPECT_TRUE(VerifyPassword(*phc, "correct horse battery"));
  EXPECT_FALSE(VerifyPassword(*phc, "correct horse batterY"));
  EXPECT_FALSE(VerifyPassword(*phc, "correct horse battery "));
  EXPECT_FALSE(VerifyPassword(*phc, ""));
  // A fresh salt every time.
  Result<std::string> again = HashPassword("correct horse battery", kOwaspMinimumCost);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*phc, *again);
  EXPECT_TRUE(VerifyPassword(*again, "correct horse battery"));
}

TEST(AuthCryptoTest, DefaultCostIsInteractive) {
  Result<std::string> phc = HashPassword("some password", PasswordCost{});
  ASSERT_TRUE(phc.ok());
  EXPECT_NE(phc->find("m=65536,t=2,p=1$"), std::string::npos) << *phc;
  EXPECT_FALSE(PasswordNeedsRehash(*phc, PasswordCost{}));
  EXPECT_TRUE(PasswordNeedsRehash(*phc, kOwaspMinimumCost));
}

TEST(AuthCryptoTest, LongPasswordsAreNotTruncated) {
  std::string pw(1024, 'x');
  for (size_t i = 0; i < pw.size(); ++i) pw[i] = static_cast<char>('a' + i % 26);
  Result<std::string> phc = HashPassword(pw, kOwaspMinimumCost);
  ASSERT_TRUE(phc.ok());
  EXPECT_TRUE(VerifyPassword(*phc, pw));
  // Differing only after byte 72 (where bcrypt stops looking).
  std::string late = pw;
  late[73] = late[73] == 'Z' ? 'Y' : 'Z';
  EXPECT_FALSE(VerifyPassword(*phc, late));
  std::string last = pw;
  last[1023] = last[1023] == 'Z' ? 'Y' : 'Z';
  EXPECT_FALSE(VerifyPassword(*phc, last));
  EXPECT_FALSE(VerifyPassword(*phc, pw.substr(0, 72)));
  EXPECT_FALSE(VerifyPassword(*phc, pw.substr(0, 1023)));

  // Two passwords that share their first 100 bytes hash to different strings and each
  // verifies only itself.
  const std::string a = std::string(100, 'p') + "tail-one";
  const std::string b = std::string(100, 'p') + "tail-two";
  Result<std::string> ha = HashPassword(a, kOwaspMinimumCost);
  ASSERT_TRUE(ha.ok());
  EXPECT_TRUE(VerifyPassword(*ha, a));
  EXPECT_FALSE(VerifyPassword(*ha, b));
}

TEST(AuthCryptoTest, NulBytesInsidePasswordsCount) {
  const std::string pw = "abc\0def-ghi"s;
  ASSERT_EQ(pw.size(), 11u);
  Result<std::string> phc = HashPassword(pw, kOwaspMinimumCost);
  ASSERT_TRUE(phc.ok());
  EXPECT_TRUE(VerifyPassword(*phc, pw));
  EXPECT_FALSE(VerifyPassword(*phc, "abc"));              // what a C string would see
  EXPECT_FALSE(VerifyPassword(*phc, "abc\0xyz-ghi"s));    // differs after the NUL
  EXPECT_FALSE(VerifyPassword(*phc, "abc\0def-ghi\0"s));  // one NUL more
}

TEST(AuthCryptoTest, MalformedPhcStringsNeverVerify) {
  Result<std::string> phc = HashPassword("password-1", kOwaspMinimumCost);
  ASSERT_TRUE(phc.ok());
  EXPECT_FALSE(VerifyPassword("", "password-1"));
  EXPECT_FALSE(VerifyPassword("$argon2id$garbage", "password-1"));
  EXPECT_FALSE(VerifyPassword(phc->substr(0, phc->size() - 4), "password-1"));
  EXPECT_FALSE(VerifyPassword(std::string(4096, '$'), "password-1"));
  EXPECT_FALSE(VerifyPassword("password-1", "password-1"));  // plaintext is not a hash
  // A valid string followed by a NUL and junk is malformed, not the string before the NUL.
  EXPECT_FALSE(VerifyPassword(*phc + "\0junk"s, "password-1"));
  EXPECT_TRUE(PasswordNeedsRehash("", kOwaspMinimumCost));
  EXPECT_TRUE(PasswordNeedsRehash("$argon2id$garbage", kOwaspMinimumCost));
}

TEST(AuthCryptoTest, PasswordNeedsRehash) {
  Result<std::string> phc = HashPassword("password-1", kOwaspMinimumCost);
  ASSERT_TRUE(phc.ok());
  EXPECT_FALSE(PasswordNeedsRehash(*phc, kOwaspMinimumCost));
  EXPECT_TRUE(PasswordNeedsRehash(*phc, PasswordCost{3, kOwaspMinimumCost.mem_bytes}));
  EXPECT_TRUE(PasswordNeedsRehash(*phc, PasswordCost{2, size_t{20} << 20}));
  EXPECT_TRUE(PasswordNeedsRehash(*phc, PasswordCost{}));
}

TEST(AuthCryptoTest, SealOpenRoundTrip) {
  const Key key = KeyOf(7);
  for (const std::string& plain :
       {""s, "x"s, "a secret value"s, "\0\1\2\xff binary\0"s, std::string(100000, 'q')}) {
    const std::string sealed = Seal(key, plain);
    EXPECT_EQ(sealed.size(), 24 + 16 + plain.size());
    Result<std::string> opened = Open(key, sealed);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ(*opened, plain);
  }
  // A random nonce each time: equal plaintexts seal differently.
  EXPECT_NE(Seal(key, "same"), Seal(key, "same"));
}

TEST(AuthCryptoTest, OpenRefusesTamperedWrongKeyAndShortInput) {
  const Key key = KeyOf(7);
  const std::string sealed = Seal(key, "the plaintext");
  // Every single flipped byte: in the nonce, the MAC and the ciphertext.
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    Result<std::string> r = Open(key, bad);
    ASSERT_FALSE(r.ok()) << "byte " << i;
    EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss) << "byte " << i;
  }
  Result<std::string> wrong = Open(KeyOf(8), sealed);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), ErrorCode::kDataLoss);
  // Appended or removed bytes.
  EXPECT_EQ(Open(key, sealed + "x").status().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(Open(key, sealed.substr(0, sealed.size() - 1)).status().code(), ErrorCode::kDataLoss);
  for (size_t n = 0; n < 40; ++n) {
    Result<std::string> r = Open(key, sealed.substr(0, n));
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.status().code(), ErrorCode::kDataLoss) << n;
  }
}

TEST(AuthCryptoTest, DeriveKeyIsDistinctPerIdAndContext) {
  const Key master = KeyOf(42);
  const Key a1 = DeriveKey(master, 1, "context1");
  EXPECT_EQ(a1, DeriveKey(master, 1, "context1"));  // deterministic
  EXPECT_NE(a1, DeriveKey(master, 2, "context1"));
  EXPECT_NE(a1, DeriveKey(master, 1, "context2"));
  EXPECT_NE(a1, DeriveKey(KeyOf(43), 1, "context1"));
  EXPECT_NE(a1, master);
  std::set<Key> seen;
  for (uint64_t id = 0; id < 50; ++id) {
    seen.insert(DeriveKey(master, id, "amticket"));
    seen.insert(DeriveKey(master, id, "amsecret"));
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(AuthCryptoTest, Base64UrlRoundTripAndRejection) {
  for (size_t n = 0; n <= 70; ++n) {
    const std::string bytes = RandomBytes(n);
    ASSERT_EQ(bytes.size(), n);
    const std::string text = Base64UrlEncode(bytes);
    EXPECT_EQ(text.size(), (n * 4 + 2) / 3) << n;  // no padding
    for (char c : text) ASSERT_TRUE(IsBase64UrlChar(c)) << text;
    std::string back;
    ASSERT_TRUE(Base64UrlDecode(text, back)) << text;
    EXPECT_EQ(back, bytes);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff\xfe"), "-__-");
  std::string out = "previous";
  EXPECT_TRUE(Base64UrlDecode("", out));
  EXPECT_EQ(out, "");
  for (std::string_view bad :
       {"ab+c", "ab/c", "abc=", "ab==", "ab c", "ab\nc", "a", "abcde", "ab.c", "\xc3\xa9"}) {
    out = "previous";
    EXPECT_FALSE(Base64UrlDecode(bad, out)) << bad;
    EXPECT_EQ(out, "") << bad;
  }
  EXPECT_FALSE(Base64UrlDecode("abc\0"s, out));
}

TEST(AuthCryptoTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("a\0b"s, "a\0b"s));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals("a\0b"s, "a\0c"s));
}

TEST(AuthCryptoTest, RandomTokens) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string t = RandomToken("amt_");
    ASSERT_EQ(t.rfind("amt_", 0), 0u) << t;
    const std::string body = t.substr(4);
    ASSERT_GE(body.size(), 43u) << t;
    for (char c : body) ASSERT_TRUE(IsBase64UrlChar(c)) << t;
    std::string raw;
    ASSERT_TRUE(Base64UrlDecode(body, raw));
    EXPECT_EQ(raw.size(), 32u);
    EXPECT_TRUE(seen.insert(t).second) << "duplicate token " << t;
  }
  EXPECT_EQ(RandomToken("").size(), 43u);
  EXPECT_NE(RandomBytes(32), RandomBytes(32));
  EXPECT_EQ(RandomBytes(0), "");
}

// ---------------------------------------------------------------------------------------
// keys

void ExpectSameKeys(const Keys& a, const Keys& b) {
  EXPECT_EQ(a.tickets, b.tickets);
  EXPECT_EQ(a.secrets, b.secrets);
  EXPECT_EQ(a.audit, b.audit);
  EXPECT_EQ(a.csrf, b.csrf);
  EXPECT_EQ(a.params, b.params);
}

TEST(AuthKeysTest, CreatesFile0600InNewDirectory) {
  testing::TempDir dir;
  const std::string keydir = dir.File("data");
  const std::string path = keydir + "/master.key";
  bool created = false;
  Result<Keys> keys = LoadOrCreateKeys(path, /*may_create=*/true, &created);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_TRUE(created);
  EXPECT_EQ(FileMode(path), 0600);
  EXPECT_EQ(FileMode(keydir), 0700);
  EXPECT_EQ(FileMode(path + ".tmp"), -1) << "the temporary file is left behind";
  const std::string text = testing::ReadFile(path);
  EXPECT_EQ(text.rfind("automan-master-key-v1\n", 0), 0u) << text;

  // Loading again gives the same keys, with and without may_create.
  created = true;
  Result<Keys> again = LoadOrCreateKeys(path, /*may_create=*/false, &created);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(created);
  ExpectSameKeys(*keys, *again);
  Result<Keys> third = LoadOrCreateKeys(path, /*may_create=*/true, &created);
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(created);
  ExpectSameKeys(*keys, *third);
  EXPECT_EQ(testing::ReadFile(path), text) << "the key file was rewritten";
}

TEST(AuthKeysTest, TwoNewKeyFilesDiffer) {
  testing::TempDir dir;
  Result<Keys> a = LoadOrCreateKeys(dir.File("a.key"), true);
  Result<Keys> b = LoadOrCreateKeys(dir.File("b.key"), true);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->tickets, b->tickets);
  EXPECT_NE(a->secrets, b->secrets);
}

TEST(AuthKeysTest, MissingFileWithoutCreateIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.File("master.key");
  bool created = true;
  Result<Keys> keys = LoadOrCreateKeys(path, /*may_create=*/false, &created);
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(keys.status().message().find(path), std::string::npos) << keys.status().message();
  EXPECT_FALSE(created);
  EXPECT_EQ(FileMode(path), -1) << "a key file was created";
}

TEST(AuthKeysTest, FileReadableByOthersIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.File("master.key");
  ASSERT_TRUE(LoadOrCreateKeys(path, true).ok());
  const std::string text = testing::ReadFile(path);
  for (mode_t mode : {0640, 0604, 0660, 0644, 0620}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    Result<Keys> keys = LoadOrCreateKeys(path, /*may_create=*/true);
    ASSERT_FALSE(keys.ok()) << std::oct << mode;
    EXPECT_EQ(keys.status().code(), ErrorCode::kFailedPrecondition) << std::oct << mode;
    EXPECT_NE(keys.status().message().find("chmod 600"), std::string::npos)
        << keys.status().message();
    EXPECT_EQ(testing::ReadFile(path), text) << "the key was replaced";
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(LoadOrCreateKeys(path, false).ok());
}

TEST(AuthKeysTest, GarbageContentIsDataLoss) {
  testing::TempDir dir;
  const std::string path = dir.File("master.key");
  const std::string good_body = Base64UrlEncode(std::string(32, 'k'));
  for (const std::string& content :
       {""s, "garbage"s, "automan-master-key-v1\n"s, "automan-master-key-v1\nnot base64!\n"s,
        "automan-master-key-v1\n" + Base64UrlEncode(std::string(31, 'k')) + "\n",
        "automan-master-key-v1\n" + Base64UrlEncode(std::string(33, 'k')) + "\n",
        "automan-master-key-v2\n" + good_body + "\n", good_body + "\n", std::string(10000, 'a')}) {
    ::unlink(path.c_str());
    testing::WriteFile(path, content);
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
    Result<Keys> keys = LoadOrCreateKeys(path, /*may_create=*/true);
    ASSERT_FALSE(keys.ok()) << content;
    EXPECT_EQ(keys.status().code(), ErrorCode::kDataLoss) << content;
    EXPECT_NE(keys.status().message().find(path), std::string::npos);
    EXPECT_EQ(testing::ReadFile(path), content) << "the key was replaced";
  }
  // The well-formed version of the same file loads (and trailing whitespace is fine).
  ::unlink(path.c_str());
  testing::WriteFile(path, "automan-master-key-v1\n" + good_body + " \r\n");
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  Result<Keys> keys = LoadOrCreateKeys(path, false);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  Key master{};
  master.fill('k');
  ExpectSameKeys(*keys, DeriveKeys(master));
}

TEST(AuthKeysTest, DerivedKeysDifferFromEachOtherAndTheMaster) {
  const Key master = KeyOf(9);
  const Keys k = DeriveKeys(master);
  const std::vector<Key> all = {master, k.tickets, k.secrets, k.audit, k.csrf, k.params};
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = i + 1; j < all.size(); ++j) EXPECT_NE(all[i], all[j]) << i << " " << j;
  }
  ExpectSameKeys(k, DeriveKeys(master));
  EXPECT_NE(DeriveKeys(KeyOf(10)).tickets, k.tickets);
}

// ---------------------------------------------------------------------------------------
// rbac

TEST(AuthRbacTest, PermissionNamesRoundTrip) {
  const std::vector<Permission>& all = AllPermissions();
  ASSERT_EQ(all.size(), static_cast<size_t>(Permission::kCount));
  std::set<std::string> names;
  for (Permission p : all) {
    const std::string_view name = ToString(p);
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(std::string(name)).second) << name;
    std::optional<Permission> back = ParsePermission(name);
    ASSERT_TRUE(back.has_value()) << name;
    EXPECT_EQ(*back, p);
  }
  EXPECT_EQ(ToString(Permission::kRunsExecute), "runs.execute");
  EXPECT_EQ(ToString(Permission::kUsersManage), "users.manage");
  EXPECT_EQ(ToString(Permission::kCount), "unknown");
  for (std::string_view bad : {"", "runs", "runs.", "RUNS.EXECUTE", "runs.execute ", "unknown"}) {
    EXPECT_FALSE(ParsePermission(bad).has_value()) << bad;
  }
}

TEST(AuthRolesFileTest, AddsTheRolesOfAWellFormedFile) {
  RoleSet roles;
  Status s = LoadRolesText(R"(roles:
  deployer:
    description: Starts and cancels deploys
    permissions: [runbooks.read, runs.read, runs.execute, runs.cancel]
    categories: [deploy]
  auditor:
    permissions: [audit.read, runs.read]
)",
                           "roles.yaml", roles);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const Role* d = roles.Find("deployer");
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(d->builtin);
  EXPECT_EQ(d->description, "Starts and cancels deploys");
  EXPECT_EQ(d->permissions.Names(), (std::vector<std::string>{"runbooks.read", "runs.read",
                                                              "runs.execute", "runs.cancel"}));
  EXPECT_EQ(d->categories, (std::vector<std::string>{"deploy"}));
  ASSERT_NE(roles.Find("auditor"), nullptr);
  EXPECT_TRUE(roles.Find("auditor")->categories.empty());
  EXPECT_NE(roles.Find("admin"), nullptr);  // the built-ins stay
  EXPECT_EQ(roles.All().size(), 6u);
}

TEST(AuthRolesFileTest, RefusesBadFilesWithWhereAndWhyAndAddsNothing) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"roles: [a, b]\n", "roles.yaml:1:8: `roles` must map"},
      {"rolez: {}\n", "roles.yaml:1:1: unknown key \"rolez\""},
      {"- just a list\n", "a roles file is a mapping"},
      {"roles:\n  ok: {permissions: [runs.read]}\n  bad: {permissions: [runs.fly]}\n",
       "roles.yaml:3:3: role \"bad\": unknown permission \"runs.fly\""},
      {"roles:\n  admin: {permissions: [runs.read]}\n", "built in"},
      {"roles:\n  Bad Name: {permissions: [runs.read]}\n", "role name \"Bad Name\""},
      {"roles:\n  x: {description: no permissions}\n", "role \"x\" has no `permissions`"},
      {"roles:\n  x: {permissions: runs.read}\n", "permissions must be a list"},
      {"roles:\n  x: {permissions: [runs.read], colour: red}\n", "unknown key \"colour\""},
      {"roles:\n  x: {permissions: [runs.read]}\n  x: {permissions: [audit.read]}\n",
       "roles.yaml:3:3: \"x\" is given twice"},
      {"roles:\n  x: {permissions: [runs.read\n", "roles.yaml:"},
      {std::string(1 << 20, ' ') + "x", "over the 1 MiB limit"},
      {std::string("roles: {x: {permissions: [\"a") + '\0' + "b\"]}}\n", "roles.yaml:"},
  };
  for (const auto& [text, want] : cases) {
    RoleSet roles;
    Status s = LoadRolesText(text, "roles.yaml", roles);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message() << "\nwant: " << want;
    EXPECT_EQ(roles.All().size(), 4u) << "a role was added from a refused file: " << text;
  }
  RoleSet roles;
  EXPECT_EQ(LoadRolesFile("/nonexistent/roles.yaml", roles).code(), ErrorCode::kNotFound);
}

TEST(AuthRbacTest, PermissionSetOperations) {
  PermissionSet a;
  EXPECT_FALSE(a.Has(Permission::kRunsRead));
  EXPECT_TRUE(a.Names().empty());
  a.Add(Permission::kRunsRead);
  a.Add(Permission::kRunsCancel);
  EXPECT_TRUE(a.Has(Permission::kRunsRead));
  EXPECT_EQ(a.Names(), (std::vector<std::string>{"runs.read", "runs.cancel"}));
  PermissionSet b;
  b.Add(Permission::kRunsRead);
  EXPECT_TRUE(b.Within(a));
  EXPECT_FALSE(a.Within(b));
  EXPECT_TRUE(PermissionSet().Within(b));
  EXPECT_TRUE(a.Within(PermissionSet::All()));
  EXPECT_EQ(a.Intersect(b), b);
  EXPECT_EQ(a.Intersect(PermissionSet()), PermissionSet());
  EXPECT_EQ(PermissionSet::All().Names().size(), AllPermissions().size());
}

TEST(AuthRbacTest, BuiltinRoles) {
  RoleSet roles;
  ASSERT_EQ(roles.All().size(), 4u);
  for (const Role* r : roles.All()) EXPECT_TRUE(r->builtin) << r->name;

  const Role* admin = roles.Find("admin");
  ASSERT_NE(admin, nullptr);
  EXPECT_EQ(admin->permissions, PermissionSet::All());
  EXPECT_TRUE(admin->categories.empty());

  const Role* op = roles.Find("operator");
  ASSERT_NE(op, nullptr);
  for (Permission p : {Permission::kRunsRead, Permission::kRunsExecute, Permission::kRunsCancel,
                       Permission::kRunsApprove, Permission::kRunbooksRead}) {
    EXPECT_TRUE(op->permissions.Has(p)) << ToString(p);
  }
  for (Permission p : {Permission::kUsersManage, Permission::kRunsExecuteDangerous,
                       Permission::kSecretsManage, Permission::kRunsDelete}) {
    EXPECT_FALSE(op->permissions.Has(p)) << ToString(p);
  }
  EXPECT_TRUE(op->categories.empty());

  const Role* viewer = roles.Find("viewer");
  ASSERT_NE(viewer, nullptr);
  EXPECT_TRUE(viewer->permissions.Has(Permission::kRunsRead));
  EXPECT_TRUE(viewer->permissions.Has(Permission::kRunbooksRead));
  EXPECT_FALSE(viewer->permissions.Has(Permission::kRunsExecute));
  EXPECT_FALSE(viewer->permissions.Has(Permission::kRunsCancel));
  EXPECT_TRUE(viewer->permissions.Within(op->permissions));

  const Role* responder = roles.Find("responder");
  ASSERT_NE(responder, nullptr);
  EXPECT_TRUE(responder->permissions.Has(Permission::kRunsExecute));
  EXPECT_FALSE(responder->permissions.Has(Permission::kRunsCancel));
  EXPECT_EQ(responder->categories, (std::vector<std::string>{"diagnostics", "remediation"}));

  EXPECT_EQ(roles.Find("nobody"), nullptr);
  EXPECT_EQ(roles.Find(""), nullptr);
  EXPECT_EQ(roles.Find("Admin"), nullptr);

  RoleSet custom({"db"});
  EXPECT_EQ(custom.Find("responder")->categories, std::vector<std::string>{"db"});
}

TEST(AuthRbacTest, AddCustomRole) {
  RoleSet roles;
  ASSERT_TRUE(roles
                  .AddCustom("deployer", {"runs.read", "runs.execute", "runs.cancel"}, {"deploy"},
                             "deploys")
                  .ok());
  const Role* r = roles.Find("deployer");
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->builtin);
  EXPECT_EQ(r->description, "deploys");
  EXPECT_EQ(r->categories, std::vector<std::string>{"deploy"});
  EXPECT_EQ(r->permissions.Names(),
            (std::vector<std::string>{"runs.read", "runs.execute", "runs.cancel"}));
  EXPECT_EQ(roles.All().size(), 5u);
  // A custom role may be redefined.
  ASSERT_TRUE(roles.AddCustom("deployer", {"runs.read"}, {}, "").ok());
  EXPECT_EQ(roles.Find("deployer")->permissions.Names(), std::vector<std::string>{"runs.read"});
  EXPECT_TRUE(roles.AddCustom("empty", {}, {}, "").ok());
}

TEST(AuthRbacTest, AddCustomRoleValidation) {
  RoleSet roles;
  Status unknown = roles.AddCustom("auditor", {"audit.read", "audit.write"}, {}, "");
  EXPECT_EQ(unknown.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("audit.write"), std::string::npos) << unknown.message();
  EXPECT_EQ(roles.Find("auditor"), nullptr);

  for (const char* builtin : {"admin", "operator", "responder", "viewer"}) {
    Status s = roles.AddCustom(builtin, {"runs.read"}, {}, "");
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << builtin;
    EXPECT_TRUE(roles.Find(builtin)->builtin);
  }
  EXPECT_EQ(roles.Find("viewer")->permissions.Has(Permission::kRunsExecute), false);
  EXPECT_EQ(roles.Find("admin")->permissions, PermissionSet::All());

  for (const char* bad : {"", "Bad", "with space", "-lead", ".lead", "_lead", "a/b"}) {
    EXPECT_EQ(roles.AddCustom(bad, {"runs.read"}, {}, "").code(), ErrorCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(roles.All().size(), 4u);
}

TEST(AuthRbacTest, IsValidName) {
  EXPECT_TRUE(IsValidName("a"));
  EXPECT_TRUE(IsValidName("0"));
  EXPECT_TRUE(IsValidName("alice"));
  EXPECT_TRUE(IsValidName("a.b_c-d"));
  EXPECT_TRUE(IsValidName("9lives"));
  EXPECT_TRUE(IsValidName("trailing-"));
  EXPECT_TRUE(IsValidName(std::string(64, 'x')));
  EXPECT_FALSE(IsValidName(std::string(65, 'x')));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("-a"));
  EXPECT_FALSE(IsValidName(".a"));
  EXPECT_FALSE(IsValidName("_a"));
  EXPECT_FALSE(IsValidName("Alice"));
  EXPECT_FALSE(IsValidName("a b"));
  EXPECT_FALSE(IsValidName("a/b"));
  EXPECT_FALSE(IsValidName("a:b"));
  EXPECT_FALSE(IsValidName("a\nb"));
  EXPECT_FALSE(IsValidName("a\0b"s));
  EXPECT_FALSE(IsValidName("caf\xc3\xa9"));
  EXPECT_FALSE(IsValidName(" a"));
}

// ---------------------------------------------------------------------------------------
// rate limiter

TEST(AuthRateLimiterTest, BurstThenRefusalWithWait) {
  RateLimiter rl({.per_second = 1, .burst = 3});
  Timestamp t = kStart;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rl.Take("k", t), Duration::zero()) << i;
  const Duration wait = rl.Take("k", t);
  EXPECT_GT(wait, Duration::zero());
  EXPECT_LE(wait, seconds(1));
  // A refusal takes nothing: the wait stays the same.
  EXPECT_EQ(rl.Take("k", t), wait);
}

TEST(AuthRateLimiterTest, RefillsOverTime) {
  RateLimiter rl({.per_second = 2, .burst = 4});
  Timestamp t = kStart;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(rl.Take("k", t), Duration::zero());
  EXPECT_EQ(rl.Take("k", t), milliseconds(500));
  t += milliseconds(250);
  EXPECT_EQ(rl.Take("k", t), milliseconds(250));
  t += milliseconds(250);
  EXPECT_EQ(rl.Take("k", t), Duration::zero());
  EXPECT_GT(rl.Take("k", t), Duration::zero());
  // Never more than the burst, however long the pause.
  t += hours(1);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rl.Take("k", t), Duration::zero()) << i;
  EXPECT_GT(rl.Take("k", t), Duration::zero());
  // A fractional rate.
  RateLimiter slow({.per_second = 0.5, .burst = 1});
  EXPECT_EQ(slow.Take("k", t), Duration::zero());
  EXPECT_EQ(slow.Take("k", t), seconds(2));
}

TEST(AuthRateLimiterTest, ResetRefillsOneKey) {
  RateLimiter rl({.per_second = 1, .burst = 2});
  for (int i = 0; i < 2; ++i) ASSERT_EQ(rl.Take("a", kStart), Duration::zero());
  for (int i = 0; i < 2; ++i) ASSERT_EQ(rl.Take("b", kStart), Duration::zero());
  ASSERT_GT(rl.Take("a", kStart), Duration::zero());
  rl.Reset("a");
  rl.Reset("never-seen");
  EXPECT_EQ(rl.Take("a", kStart), Duration::zero());
  EXPECT_EQ(rl.Take("a", kStart), Duration::zero());
  EXPECT_GT(rl.Take("a", kStart), Duration::zero());
  EXPECT_GT(rl.Take("b", kStart), Duration::zero());
}

TEST(AuthRateLimiterTest, ZeroRateAllowsEverything) {
  RateLimiter rl({.per_second = 0, .burst = 0});
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(rl.Take("k", kStart), Duration::zero());
  EXPECT_EQ(rl.KeysForTest(), 0u);
  RateLimiter negative({.per_second = -1, .burst = 1});
  for (int i = 0; i < 10; ++i) ASSERT_EQ(negative.Take("k", kStart), Duration::zero());
}

TEST(AuthRateLimiterTest, KeysAreIndependent) {
  RateLimiter rl({.per_second = 1, .burst = 1});
  EXPECT_EQ(rl.Take("10.0.0.1", kStart), Duration::zero());
  EXPECT_GT(rl.Take("10.0.0.1", kStart), Duration::zero());
  EXPECT_EQ(rl.Take("10.0.0.2", kStart), Duration::zero());
  EXPECT_EQ(rl.Take("alice", kStart), Duration::zero());
  EXPECT_EQ(rl.Take("", kStart), Duration::zero());
  EXPECT_GT(rl.Take("", kStart), Duration::zero());
  EXPECT_GT(rl.Take("10.0.0.2", kStart), Duration::zero());
}

TEST(AuthRateLimiterTest, FullBucketsAreForgotten) {
  RateLimiter rl({.per_second = 1, .burst = 2});
  Timestamp t = kStart;
  for (int i = 0; i < 100; ++i) ASSERT_EQ(rl.Take("k" + std::to_string(i), t), Duration::zero());
  EXPECT_EQ(rl.KeysForTest(), 100u);
  // Exhaust one key so it is not full at the sweep below...
  ASSERT_EQ(rl.Take("busy", t + seconds(10)), Duration::zero());
  ASSERT_EQ(rl.Take("busy", t + seconds(10)), Duration::zero());
  // ... then sweep (more than 10 s since the last): the idle keys are full again.
  t += seconds(11);
  EXPECT_EQ(rl.Take("fresh", t), Duration::zero());
  EXPECT_EQ(rl.KeysForTest(), 2u);  // "busy" (not yet refilled) and "fresh"
  // The bucket that was kept still limits.
  EXPECT_EQ(rl.Take("busy", t), Duration::zero());
  EXPECT_GT(rl.Take("busy", t), Duration::zero());
}

TEST(AuthRateLimiterTest, MaxKeysBoundsMemory) {
  RateLimiter rl({.per_second = 1, .burst = 5}, /*max_keys=*/10);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(rl.Take("k" + std::to_string(i), kStart), Duration::zero());
    ASSERT_LE(rl.KeysForTest(), 11u) << i;
  }
}

// ---------------------------------------------------------------------------------------
// tickets

class AuthTicketsTest : public ::testing::Test {
 protected:
  SimulatedClock clock_{kStart};
  Key key_ = KeyOf(3);
  TicketIssuer issuer_{key_, clock_};
};

TEST_F(AuthTicketsTest, IssueAndRedeem) {
  const std::string t = issuer_.Issue("alice", "cred-1", "run:r1");
  EXPECT_EQ(t.rfind("amk1.", 0), 0u) << t;
  EXPECT_LE(t.size(), 1024u);
  Result<Ticket> r = issuer_.Redeem(t, "run:r1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->username, "alice");
  EXPECT_EQ(r->credential_id, "cred-1");
  EXPECT_EQ(r->scope, "run:r1");
  EXPECT_EQ(r->expires, kStart + kMaxTicketTtl);
  // Two tickets for the same thing differ (a nonce each).
  EXPECT_NE(issuer_.Issue("alice", "cred-1", "run:r1"), issuer_.Issue("alice", "cred-1", "run:r1"));
}

TEST_F(AuthTicketsTest, ReplayIsRefused) {
  const std::string t = issuer_.Issue("alice", "cred-1", "all");
  ASSERT_TRUE(issuer_.Redeem(t, "all").ok());
  Result<Ticket> again = issuer_.Redeem(t, "all");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kUnauthenticated);
  EXPECT_NE(again.status().message().find("used"), std::string::npos) << again.status().message();
  // Also for another scope, and after some time (but before expiry).
  clock_.Advance(seconds(30));
  EXPECT_FALSE(issuer_.Redeem(t, "run:x").ok());
}

TEST_F(AuthTicketsTest, ScopeIsChecked) {
  const std::string t = issuer_.Issue("alice", "cred-1", "run:r1");
  Result<Ticket> other = issuer_.Redeem(t, "run:r2");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(issuer_.Redeem(t, "all").ok());  // a run's ticket does not open everything
  EXPECT_FALSE(issuer_.Redeem(t, "run:r").ok());
  EXPECT_FALSE(issuer_.Redeem(t, "run:r1x").ok());
  // A refusal for the scope does not use the ticket up.
  EXPECT_TRUE(issuer_.Redeem(t, "run:r1").ok());

  const std::string all = issuer_.Issue("alice", "cred-1", "all");
  Result<Ticket> r = issuer_.Redeem(all, "run:r7");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->scope, "all");
}

TEST_F(AuthTicketsTest, ExpiredIsRefused) {
  const std::string t = issuer_.Issue("alice", "cred-1", "all", seconds(5));
  const std::string t60 = issuer_.Issue("alice", "cred-1", "all");
  clock_.Advance(seconds(5));
  Result<Ticket> r = issuer_.Redeem(t, "all");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnauthenticated);
  EXPECT_NE(r.status().message().find("expired"), std::string::npos) << r.status().message();
  clock_.Advance(seconds(55));
  EXPECT_FALSE(issuer_.Redeem(t60, "all").ok());
}

TEST_F(AuthTicketsTest, TtlIsClamped) {
  const std::string longer = issuer_.Issue("alice", "c", "all", hours(1));
  const std::string shorter = issuer_.Issue("alice", "c", "all", Duration::zero());
  const std::string negative = issuer_.Issue("alice", "c", "all", seconds(-5));
  Result<Ticket> a = issuer_.Redeem(longer, "all");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->expires, kStart + seconds(60));
  Result<Ticket> b = issuer_.Redeem(shorter, "all");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->expires, kStart + seconds(1));
  clock_.Advance(seconds(1));
  EXPECT_FALSE(issuer_.Redeem(negative, "all").ok());
}

TEST_F(AuthTicketsTest, AnyFlippedCharacterIsRefused) {
  const std::string t = issuer_.Issue("alice", "cred-1", "all");
  const size_t dot = t.find('.', 5);
  ASSERT_NE(dot, std::string::npos);
  for (size_t i = 5; i < t.size(); ++i) {
    if (i == dot) continue;
    std::string bad = t;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    Result<Ticket> r = issuer_.Redeem(bad, "all");
    ASSERT_FALSE(r.ok()) << "position " << i << (i < dot ? " (payload)" : " (mac)");
    EXPECT_EQ(r.status().code(), ErrorCode::kUnauthenticated);
  }
  // None of the forgeries used the ticket up.
  EXPECT_TRUE(issuer_.Redeem(t, "all").ok());
}

TEST_F(AuthTicketsTest, AnotherKeyIsRefused) {
  TicketIssuer other(KeyOf(4), clock_);
  const std::string t = other.Issue("alice", "cred-1", "all");
  Result<Ticket> r = issuer_.Redeem(t, "all");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnauthenticated);
  EXPECT_TRUE(other.Redeem(t, "all").ok());
}

TEST_F(AuthTicketsTest, ForgedPayloadWithValidMacButBadFieldsIsRefused) {
  auto make = [&](const std::string& payload) {
    return "amk1." + Base64UrlEncode(payload) + "." + Base64UrlEncode(HmacSha256(key_, payload));
  };
  const std::string exp = std::to_string(ToMicros(kStart + seconds(30)));
  // The well-formed version is accepted (the helper is right).
  EXPECT_TRUE(issuer_.Redeem(make("alice\nc\nall\n" + exp + "\nnonce1"), "all").ok());
  for (const std::string& payload :
       {""s, "alice"s, "alice\nc\nall\n" + exp, "alice\nc\nall\n" + exp + "\nn\nextra",
        "alice\nc\nall\nnot-a-number\nnonce2"s, "alice\nc\nall\n\nnonce3"s,
        "alice\nc\nall\n99999999999999999999999999\nnonce4"s}) {
    Result<Ticket> r = issuer_.Redeem(make(payload), "all");
    ASSERT_FALSE(r.ok()) << payload;
    EXPECT_EQ(r.status().code(), ErrorCode::kUnauthenticated);
  }
}

TEST_F(AuthTicketsTest, MalformedInputsAreRefused) {
  const std::string good = issuer_.Issue("alice", "cred-1", "all");
  for (const std::string& bad :
       {""s, "amk1"s, "amk1."s, "amk1.."s, "amk1.abc"s, "amk1.abc."s, "amk1..abc"s, "amk1.a.b.c"s,
        "amk1.!!!.???"s, "amk2." + good.substr(5), "AMK1." + good.substr(5), good.substr(5),
        good + "x", good + ".", good.substr(0, good.size() - 1), " " + good,
        "amk1." + std::string(2000, 'A') + "." + std::string(43, 'A'),
        "amk1." + std::string(1 << 20, 'A'), "amk1.\0\0.\0"s}) {
    Result<Ticket> r = issuer_.Redeem(bad, "all");
    ASSERT_FALSE(r.ok()) << bad.substr(0, 80);
    EXPECT_EQ(r.status().code(), ErrorCode::kUnauthenticated) << bad.substr(0, 80);
  }
  EXPECT_TRUE(issuer_.Redeem(good, "all").ok());
}

// ---------------------------------------------------------------------------------------
// AuthService

const Actor kAdminActor{"admin", "192.0.2.1"};

class AuthServiceTest : public ::testing::Test {
 protected:
  AuthServiceTest() {
    Result<std::unique_ptr<Store>> s = Store::Open({.url = "sqlite::memory:"});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    options_.password_cost = kOwaspMinimumCost;
    options_.lockout_after = 3;
    options_.lockout_base = minutes(1);
    options_.lockout_max = minutes(4);
    EXPECT_TRUE(roles_.AddCustom("auditor", {"audit.read", "runs.read"}, {}, "").ok());
    EXPECT_TRUE(roles_.AddCustom("deployer", {"runs.read", "runs.execute"}, {"deploy"}, "").ok());
    EXPECT_TRUE(
        roles_.AddCustom("diagnoser", {"runs.read", "runs.execute"}, {"diagnostics", "deploy"}, "")
            .ok());
    Reset();
  }

  // A new service over the same store with the current options_.
  void Reset() { auth_ = NewService(options_); }
  std::unique_ptr<AuthService> NewService(const AuthOptions& o) {
    return std::make_unique<AuthService>(
        *store_, clock_, roles_, keys_, o,
        [this](StoreTx& tx, const AuditRecord& e) { return Hook(tx, e); });
  }

  Status Hook(StoreTx& tx, const AuditRecord& e) {
    calls_.push_back(e);
    if (e.action == fail_action_) return Status(ErrorCode::kInternal, "the audit hook failed");
    AUTOMAN_RETURN_IF_ERROR(tx.LockKey("audit"));
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<AuditRecord> last, tx.LastAudit());
    AuditRecord r = e;
    r.seq = last ? last->seq + 1 : 1;
    r.at = clock_.Now();
    r.hash = "test";
    return tx.AppendAudit(r);
  }

  // The audit entries committed, as "action outcome".
  std::vector<std::string> Committed() {
    std::vector<AuditRecord> all;
    EXPECT_TRUE(store_
                    ->Transact(Store::TxMode::kRead,
                               [&](StoreTx& tx) -> Status {
                                 AUTOMAN_ASSIGN_OR_RETURN(all, tx.ListAudit(AuditFilter{}));
                                 return Status::Ok();
                               })
                    .ok());
    std::vector<std::string> out;
    for (const AuditRecord& r : all) out.push_back(r.action + " " + r.outcome);
    return out;
  }
  std::vector<AuditRecord> CommittedRecords() {
    std::vector<AuditRecord> all;
    EXPECT_TRUE(store_
                    ->Transact(Store::TxMode::kRead,
                               [&](StoreTx& tx) -> Status {
                                 AUTOMAN_ASSIGN_OR_RETURN(all, tx.ListAudit(AuditFilter{}));
                                 return Status::Ok();
                               })
                    .ok());
    return all;
  }

  std::vector<CredentialRecord> Credentials(CredentialKind kind, const std::string& owner = "") {
    std::vector<CredentialRecord> out;
    EXPECT_TRUE(store_
                    ->Transact(Store::TxMode::kRead,
                               [&](StoreTx& tx) -> Status {
                                 AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListCredentials(kind, owner));
                                 return Status::Ok();
                               })
                    .ok());
    return out;
  }
  CredentialRecord Credential(const std::string& id) {
    CredentialRecord out;
    EXPECT_TRUE(store_
                    ->Transact(Store::TxMode::kRead,
                               [&](StoreTx& tx) -> Status {
                                 AUTOMAN_ASSIGN_OR_RETURN(out, tx.GetCredential(id));
                                 return Status::Ok();
                               })
                    .ok());
    return out;
  }

  static std::string Pw(const std::string& user) { return "pw-of-" + user + "!"; }

  // The admin (bootstrapped with a known password).
  void BootstrapAdmin() {
    Result<std::optional<std::string>> r = auth_->Bootstrap(Pw("admin"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->has_value());
  }
  void MakeUser(const std::string& name, const std::string& role) {
    Result<UserRecord> u = auth_->CreateUser(name, Pw(name), role, false, kAdminActor);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
  }
  LoginResult LoginOk(const std::string& name, bool want_token = false) {
    Result<LoginResult> r = auth_->Login(name, Pw(name), want_token, Actor{"", "198.51.100.7"});
    EXPECT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    return r.ok() ? std::move(*r) : LoginResult{};
  }
  std::shared_ptr<const Subject> AuthOk(std::string_view secret) {
    Result<std::shared_ptr<const Subject>> s = auth_->Authenticate(secret);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : nullptr;
  }
  ErrorCode AuthCode(std::string_view secret) {
    Result<std::shared_ptr<const Subject>> s = auth_->Authenticate(secret);
    return s.ok() ? ErrorCode::kOk : s.status().code();
  }
  UserRecord User(const std::string& name) {
    Result<UserRecord> u = auth_->GetUser(name);
    EXPECT_TRUE(u.ok()) << u.status().ToString();
    return u.ok() ? *u : UserRecord{};
  }
  IssuedToken Issue(const Subject& owner, const std::string& name, const std::string& role = "",
                    std::optional<Duration> ttl = std::nullopt) {
    Result<IssuedToken> t = auth_->IssueToken(owner, name, role, ttl, Actor{owner.username, ""});
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : IssuedToken{};
  }
  const PermissionSet& PermsOf(const std::string& role) { return roles_.Find(role)->permissions; }

  SimulatedClock clock_{kStart};
  std::unique_ptr<Store> store_;
  RoleSet roles_;
  Keys keys_ = DeriveKeys(KeyOf(11));
  AuthOptions options_;
  std::unique_ptr<AuthService> auth_;
  std::vector<AuditRecord> calls_;  // every call of the hook, committed or not
  std::string fail_action_;         // the hook fails for this action
};

TEST_F(AuthServiceTest, BootstrapWithoutPasswordReturnsOneTimePassword) {
  Result<std::optional<std::string>> r = auth_->Bootstrap(std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->has_value());
  const std::string pw = **r;
  EXPECT_GE(pw.size(), 16u);
  EXPECT_TRUE(AuthService::CheckPassword(pw).ok());
  UserRecord u = User("admin");
  EXPECT_EQ(u.role, "admin");
  EXPECT_TRUE(u.must_change_password);
  EXPECT_FALSE(u.disabled);
  EXPECT_EQ(u.password_hash.rfind("$argon2id$v=19$", 0), 0u);
  EXPECT_TRUE(VerifyPassword(u.password_hash, pw));

  Result<LoginResult> login = auth_->Login("admin", pw, false, Actor{});
  ASSERT_TRUE(login.ok()) << login.status().ToString();
  EXPECT_TRUE(login->subject->must_change_password);

  // Users exist now: nothing happens, whatever the password.
  Result<std::optional<std::string>> again = auth_->Bootstrap(std::nullopt);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  Result<std::optional<std::string>> with_pw = auth_->Bootstrap("another-password");
  ASSERT_TRUE(with_pw.ok());
  EXPECT_FALSE(with_pw->has_value());
  EXPECT_TRUE(VerifyPassword(User("admin").password_hash, pw));
  EXPECT_EQ(Committed(), (std::vector<std::string>{"user.bootstrap ok", "auth.login ok"}));
  EXPECT_EQ(CommittedRecords()[0].actor, "system");
  EXPECT_EQ(CommittedRecords()[0].target, "user/admin");
}

TEST_F(AuthServiceTest, TwoBootstrapsMakeDifferentPasswords) {
  Result<std::optional<std::string>> a = auth_->Bootstrap(std::nullopt);
  Result<std::unique_ptr<Store>> other = Store::Open({.url = "sqlite::memory:"});
  ASSERT_TRUE(other.ok());
  AuthService second(**other, clock_, roles_, keys_, options_, nullptr);  // no audit hook
  Result<std::optional<std::string>> b = second.Bootstrap(std::nullopt);
  ASSERT_TRUE(a.ok() && b.ok() && a->has_value() && b->has_value());
  EXPECT_NE(**a, **b);
}

TEST_F(AuthServiceTest, BootstrapWithPassword) {
  Result<std::optional<std::string>> bad = auth_->Bootstrap("short");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(auth_->GetUser("admin").status().code(), ErrorCode::kNotFound);

  Result<std::optional<std::string>> r = auth_->Bootstrap("the-env-password");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, "");  // nothing to print
  EXPECT_FALSE(User("admin").must_change_password);
  Result<LoginResult> login = auth_->Login("admin", "the-env-password", false, Actor{});
  ASSERT_TRUE(login.ok());
  EXPECT_FALSE(login->subject->must_change_password);
  EXPECT_FALSE(auth_->Bootstrap("the-env-password")->has_value());
}

TEST_F(AuthServiceTest, LoginReturnsSessionCsrfAndToken) {
  BootstrapAdmin();
  Result<LoginResult> r = auth_->Login("admin", Pw("admin"), true, Actor{"", "203.0.113.5"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->session_secret.rfind("ams_", 0), 0u);
  EXPECT_GE(r->session_secret.size(), 4u + 43u);
  EXPECT_EQ(r->session_expires, kStart + options_.session_absolute);
  ASSERT_NE(r->subject, nullptr);
  const Subject& s = *r->subject;
  EXPECT_EQ(s.username, "admin");
  EXPECT_EQ(s.role, "admin");
  EXPECT_EQ(s.kind, CredentialKind::kSession);
  EXPECT_EQ(s.permissions, PermissionSet::All());
  EXPECT_FALSE(s.csrf_token.empty());
  EXPECT_EQ(s.csrf_token, auth_->CsrfToken(r->session_secret));
  EXPECT_EQ(s.secret_hash, Sha256Hex(r->session_secret));
  EXPECT_FALSE(s.must_change_password);
  ASSERT_TRUE(r->token.has_value());
  EXPECT_EQ(r->token->rfind("amt_", 0), 0u);
  EXPECT_NE(*r->token, r->session_secret);

  // The store keeps only hashes.
  std::vector<CredentialRecord> sessions = Credentials(CredentialKind::kSession);
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].id, s.credential_id);
  EXPECT_EQ(sessions[0].secret_hash, Sha256Hex(r->session_secret));
  EXPECT_EQ(sessions[0].expires_at, r->session_expires);
  std::vector<CredentialRecord> tokens = Credentials(CredentialKind::kToken);
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].secret_hash, Sha256Hex(*r->token));
  EXPECT_EQ(tokens[0].name, "login");
  EXPECT_EQ(tokens[0].owner, "admin");
  EXPECT_EQ(tokens[0].expires_at, kStart + options_.token_default_ttl);

  // Both authenticate.
  std::shared_ptr<const Subject> by_session = AuthOk(r->session_secret);
  ASSERT_NE(by_session, nullptr);
  EXPECT_EQ(by_session->kind, CredentialKind::kSession);
  EXPECT_EQ(by_session->credential_id, s.credential_id);
  EXPECT_EQ(by_session->csrf_token, s.csrf_token);
  std::shared_ptr<const Subject> by_token = AuthOk(*r->token);
  ASSERT_NE(by_token, nullptr);
  EXPECT_EQ(by_token->kind, CredentialKind::kToken);
  EXPECT_EQ(by_token->username, "admin");
  EXPECT_EQ(by_token->permissions, PermissionSet::All());
  EXPECT_TRUE(by_token->csrf_token.empty());
  EXPECT_EQ(by_token->credential_id, tokens[0].id);

  // Without a token.
  Result<LoginResult> plain = auth_->Login("admin", Pw("admin"), false, Actor{});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->token.has_value());
  EXPECT_NE(plain->session_secret, r->session_secret);
  EXPECT_NE(plain->subject->csrf_token, s.csrf_token);

  std::vector<AuditRecord> audit = CommittedRecords();
  ASSERT_EQ(audit.size(), 4u);  // bootstrap, token.issue, auth.login, auth.login
  EXPECT_EQ(audit[1].action, "token.issue");
  EXPECT_EQ(audit[2].action, "auth.login");
  EXPECT_EQ(audit[2].outcome, "ok");
  EXPECT_EQ(audit[2].actor, "admin");
  EXPECT_EQ(audit[2].remote, "203.0.113.5");
  EXPECT_EQ(audit[2].target, "user/admin");
  // Secrets never reach the audit trail.
  for (const AuditRecord& e : audit) {
    EXPECT_EQ(e.details_json.find(r->session_secret), std::string::npos);
    EXPECT_EQ(e.details_json.find(*r->token), std::string::npos);
    EXPECT_EQ(e.details_json.find(Pw("admin")), std::string::npos);
  }
}

// Each password hash takes 64 MiB by default: concurrent logins beyond the cap wait their
// turn instead of running the server out of memory.
TEST_F(AuthServiceTest, ConcurrentLoginsHashAtMostTheCapAtOnce) {
  options_.max_concurrent_hashes = 2;
  Reset();
  BootstrapAdmin();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      // Half with the right password, half wrong: both verify a hash.
      auto r = auth_->Login("admin", i % 2 ? Pw("admin") : "wrong-password", false, Actor{});
      if (r.ok()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(auth_->HashesInFlightPeak(), 1);
  EXPECT_LE(auth_->HashesInFlightPeak(), 2);
}

TEST_F(AuthServiceTest, LoginFailuresShareOneMessage) {
  BootstrapAdmin();
  MakeUser("alice", "operator");
  MakeUser("dave", "viewer");
  ASSERT_TRUE(auth_->UpdateUser("dave", std::nullopt, true, std::nullopt, kAdminActor).ok());

  struct Case {
    std::string user, password, reason;
  };
  const std::vector<Case> cases = {
      {"alice", "wrong-password", "wrong password"},
      {"nobody", Pw("nobody"), "unknown user"},
      {"dave", Pw("dave"), "disabled"},
      {"Not A Name", "whatever-pw", "unknown user"},
      {"alice", "", "wrong password"},
      {"alice", std::string(5000, 'x'), "unknown user"},  // too long: not even looked up
      {"", "", "unknown user"},
  };
  std::string message;
  for (const Case& c : cases) {
    Result<LoginResult> r = auth_->Login(c.user, c.password, true, Actor{"", "10.1.1.1"});
    ASSERT_FALSE(r.ok()) << c.user;
    EXPECT_EQ(r.status().code(), ErrorCode::kUnauthenticated) << c.user;
    if (message.empty()) message = r.status().message();
    EXPECT_EQ(r.status().message(), message) << c.user;
  }
  EXPECT_EQ(message, "invalid username or password");
  EXPECT_TRUE(Credentials(CredentialKind::kSession).empty());
  EXPECT_TRUE(Credentials(CredentialKind::kToken).empty());
  // A disabled user's attempts do not count towards a lockout.
  EXPECT_EQ(User("dave").failed_logins, 0);
  EXPECT_EQ(User("alice").failed_logins, 2);

  // Each failure is audited with its true reason (the audit trail may say what the
  // client may not).
  std::vector<AuditRecord> failed;
  for (const AuditRecord& e : CommittedRecords()) {
    if (e.action == "auth.login") failed.push_back(e);
  }
  ASSERT_EQ(failed.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(failed[i].outcome, "failed");
    EXPECT_EQ(failed[i].actor, "anonymous");
    EXPECT_EQ(failed[i].remote, "10.1.1.1");
    EXPECT_NE(failed[i].details_json.find(cases[i].reason), std::string::npos)
        << failed[i].details_json;
  }
  EXPECT_EQ(failed[0].target, "user/alice");
  EXPECT_EQ(failed[3].target, "user/?");
}

TEST_F(AuthServiceTest, LockoutAfterConsecutiveFailures) {
  BootstrapAdmin();
  MakeUser("alice", "operator");
  const Actor anon{"", "10.0.0.9"};
  for (int i = 1; i <= 2; ++i) {
    ASSERT_FALSE(auth_->Login("alice", "wrong-password", false, anon).ok());
    EXPECT_EQ(User("alice").failed_logins, i);
    EXPECT_FALSE(User("alice").locked_until.has_value());
  }
  ASSERT_FALSE(auth_->Login("alice", "wrong-password", false, anon).ok());
  UserRecord u = User("alice");
  EXPECT_EQ(u.failed_logins, 3);
  ASSERT_TRUE(u.locked_until.has_value());
  EXPECT_EQ(*u.locked_until, kStart + minutes(1));

  // Locked: even the right password fails, with the same message, and does not extend it.
  clock_.Advance(seconds(59));
  Result<LoginResult> locked = auth_->Login("alice", Pw("alice"), false, anon);
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.status().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(locked.status().message(), "invalid username or password");
  ASSERT_FALSE(auth_->Login("alice", "wrong-password", false, anon).ok());
  EXPECT_EQ(User("alice").failed_logins, 3);
  EXPECT_EQ(User("alice").locked_until, kStart + minutes(1));
  EXPECT_NE(CommittedRecords().back().details_json.find("locked"), std::string::npos);
  EXPECT_TRUE(Credentials(CredentialKind::kSession).empty());

  // Past locked_until the right password works and clears the failures.
  clock_.Advance(seconds(1));
  Result<LoginResult> ok = auth_->Login("alice", Pw("alice"), false, anon);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  u = User("alice");
  EXPECT_EQ(u.failed_logins, 0);
  EXPECT_FALSE(u.locked_until.has_value());
  // Other users were never affected.
  EXPECT_EQ(User("admin").failed_logins, 0);
}

TEST_F(AuthServiceTest, LockoutDoublesUpToTheMaximum) {
  BootstrapAdmin();
  MakeUser("alice", "operator");
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(auth_->Login("alice", "bad-bad-bad", false, {}).ok());
  EXPECT_EQ(User("alice").locked_until, clock_.Now() + minutes(1));
  for (Duration expected : {Duration(minutes(2)), Duration(minutes(4)), Duration(minutes(4))}) {
    clock_.Set(*User("alice").locked_until);  // exactly at the end: no longer locked
    ASSERT_FALSE(auth_->Login("alice", "bad-bad-bad", false, {}).ok());
    EXPECT_EQ(User("alice").locked_until, clock_.Now() + expected);
  }
  EXPECT_EQ(User("alice").failed_logins, 6);
}

TEST_F(AuthServiceTest, SuccessfulLoginResetsFailures) {
  BootstrapAdmin();
  MakeUser("alice", "operator");
  for (int i = 0; i < 2; ++i) ASSERT_FALSE(auth_->Login("alice", "bad-bad-bad", false, {}).ok());
  EXPECT_EQ(User("alice").failed_logins, 2);
  LoginOk("alice");
  EXPECT_EQ(User("alice").failed_logins, 0);
  for (int i = 0; i < 2; ++i) ASSERT_FALSE(auth_->Login("alice", "bad-bad-bad", false, {}).ok());
  EXPECT_FALSE(User("alice").locked_until.has_value());
  LoginOk("alice");
  ASSERT_FALSE(auth_->Login("alice", "bad-bad-bad", false, {}).ok());
  EXPECT_FALSE(User("alice").locked_until.has_value());
}

TEST_F(AuthServiceTest, AuthenticateRejectsUnknownSecrets) {
  BootstrapAdmin();
  LoginResult l = LoginOk("admin", true);
  for (const std::string& bad :
       {""s, "x"s, "amt_"s, "ams_nothing"s, l.session_secret + "x", l.session_secret.substr(1),
        std::string(201, 'a'), std::string(100000, 'a'), Sha256Hex(l.session_secret),
        l.subject->credential_id}) {
    Result<std::shared_ptr<const Subject>> s = auth_->Authenticate(bad);
    ASSERT_FALSE(s.ok()) << bad.substr(0, 60);
    EXPECT_EQ(s.status().code(), ErrorCode::kUnauthenticated);
  }
  EXPECT_NE(AuthOk(l.session_secret), nullptr);
}

TEST_F(AuthServiceTest, SessionIdleExpiry) {
  options_.session_idle = minutes(10);
  options_.session_absolute = hours(1);
  Reset();
  BootstrapAdmin();
  LoginResult used = LoginOk("admin");
  LoginResult unused = LoginOk("admin");
  // Use keeps a session alive.
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(minutes(9));
    ASSERT_NE(AuthOk(used.session_secret), nullptr) << i;
  }
  // Unused since login: idle.
  EXPECT_EQ(AuthCode(unused.session_secret), ErrorCode::kUnauthenticated);
  clock_.Advance(minutes(10));
  EXPECT_EQ(AuthCode(used.session_secret), ErrorCode::kUnauthenticated);
  // And it stays expired.
  clock_.Advance(seconds(1));
  EXPECT_EQ(AuthCode(used.session_secret), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(auth_->AuthenticateCredential(used.subject->credential_id).ok());
}

TEST_F(AuthServiceTest, SessionIdleExpiryIsExactAtTheBoundary) {
  options_.session_idle = minutes(10);
  Reset();
  BootstrapAdmin();
  LoginResult l = LoginOk("admin");
  clock_.Advance(minutes(10) - Duration(1));
  EXPECT_NE(AuthOk(l.session_secret), nullptr);
  clock_.Advance(minutes(10));
  EXPECT_EQ(AuthCode(l.session_secret), ErrorCode::kUnauthenticated);
}

TEST_F(AuthServiceTest, SessionIdleExpiryWhileCached) {
  // With a long cache TTL every check after the first is answered from the cache, which
  // must apply the idle and absolute limits itself.
  options_.session_idle = minutes(10);
  options_.session_absolute = minutes(25);
  options_.cache_ttl = hours(10);
  Reset();
  BootstrapAdmin();
  LoginResult a = LoginOk("admin");
  LoginResult b = LoginOk("admin");
  ASSERT_NE(AuthOk(a.session_secret), nullptr);
  ASSERT_NE(AuthOk(b.session_secret), nullptr);
  clock_.Advance(minutes(8));
  ASSERT_NE(AuthOk(a.session_secret), nullptr);
  clock_.Advance(minutes(8));
  ASSERT_NE(AuthOk(a.session_secret), nullptr);
  EXPECT_EQ(AuthCode(b.session_secret), ErrorCode::kUnauthenticated);  // idle 16 min
  clock_.Advance(minutes(8));
  ASSERT_NE(AuthOk(a.session_secret), nullptr);  // 24 min after login
  clock_.Advance(minutes(1));
  EXPECT_EQ(AuthCode(a.session_secret), ErrorCode::kUnauthenticated);  // absolute
}

TEST_F(AuthServiceTest, SessionAbsoluteExpiry) {
  options_.session_idle = minutes(10);
  options_.session_absolute = hours(1);
  Reset();
  BootstrapAdmin();
  LoginResult l = LoginOk("admin");
  EXPECT_EQ(l.session_expires, kStart + hours(1));
  for (int i = 1; i < 12; ++i) {
    clock_.Advance(minutes(5));
    ASSERT_NE(AuthOk(l.session_secret), nullptr) << i * 5 << " min";
  }
  clock_.Advance(minutes(5));
  EXPECT_EQ(AuthCode(l.session_secret), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(auth_->Recheck(*l.subject).ok());
}

TEST_F(AuthServiceTest, IdleTimeIsKeptAcrossCacheReloads) {
  // The use seen by this process counts although it was never written to the store.
  options_.session_idle = minutes(10);
  options_.cache_ttl = seconds(1);
  options_.last_used_resolution = hours(1);
  Reset();
  BootstrapAdmin();
  LoginResult l = LoginOk("admin");
  clock_.Advance(minutes(9));
  ASSERT_NE(AuthOk(l.session_secret), nullptr);
  auth_->Maintain();           // nothing due (resolution 1 h); the entry stays
  clock_.Advance(minutes(9));  // 18 min after login, 9 after the last use; cache stale
  EXPECT_NE(AuthOk(l.session_secret), nullptr);
}

TEST_F(AuthServiceTest, TokenExpiry) {
  options_.cache_ttl = hours(10);  // also from the cache
  Reset();
  BootstrapAdmin();
  LoginResult l = LoginOk("admin");
  IssuedToken t = Issue(*l.subject, "ci", "", hours(1));
  EXPECT_EQ(t.record.expires_at, kStart + hours(1));
  EXPECT_EQ(t.secret.rfind("amt_", 0), 0u);
  ASSERT_NE(AuthOk(t.secret), nullptr);
  clock_.Advance(minutes(59));
  ASSERT_NE(AuthOk(t.secret), nullptr);  // tokens have no idle limit
  clock_.Advance(minutes(1));
  EXPECT_EQ(AuthCode(t.secret), ErrorCode::kUnauthenticated);
  Reset();  // and from the store
  EXPECT_EQ(AuthCode(t.secret), ErrorCode::kUnauthenticated);
}

TEST_F(AuthServiceTest, TokenLifetimeLimits) {
  BootstrapAdmin();
  LoginResult l = LoginOk("admin");
  IssuedToken def = Issue(*l.subject, "default");
  EXPECT_EQ(def.record.expires_at, kStart + options_.token_default_ttl);
  IssuedToken max = Issue(*l.subject, "max", "", options_.token_max_ttl);
  EXPECT_EQ(max.record.expires_at, kStart + options_.token_max_ttl);
  for (Duration bad :
       {Duration::zero(), Duration(-seconds(1)), Duration(options_.token_max_ttl + seconds(1))}) {
    Result<IssuedToken> t = auth_->IssueToken(*l.subject, "bad", "", bad, kAdminActor);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), ErrorCode::kInvalidArgument);
  }
  for (std::string_view bad_name : {"", "Bad", "a b", "-x"}) {
    Result<IssuedToken> t = auth_->IssueToken(*l.subject, bad_name, "", std::nullopt, kAdminActor);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), ErrorCode::kInvalidArgument);
  }
  Result<IssuedToken> unknown = auth_->IssueToken(*l.subject, "x", "root", std::nullopt, {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kInvalidArgument);
  Result<std::vector<CredentialRecord>> list = auth_->ListTokens("admin");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
}

TEST_F(AuthServiceTest, RevokeToken) {
  options_.cache_ttl = hours(10);  // revocation must not wait for the cache
  Reset();
  BootstrapAdmin();
  MakeUser("alice", "operator");
  MakeUser("bob", "operator");
  std::shared_ptr<const Subject> alice = LoginOk("alice").subject;
  std::shared_ptr<const Subject> bob = LoginOk("bob").subject;
  std::shared_ptr<const Subject> admin = LoginOk("admin").subject;
  IssuedToken t1 = Issue(*alice, "one");
  IssuedToken t2 = Issue(*alice, "two");
  ASSERT_NE(AuthOk(t1.secret), nullptr);
  ASSERT_NE(AuthOk(t2.secret), nullptr);

  // Someone else's token looks exactly like one that does not exist.
  Status by_bob = auth_->RevokeToken(*bob, t1.record.id, Actor{"bob", ""});
  EXPECT_EQ(by_bob.code(), ErrorCode::kNotFound);
  Status missing = auth_->RevokeToken(*bob, "no-such-id", Actor{"bob", ""});
  EXPECT_EQ(missing.code(), ErrorCode::kNotFound);
  EXPECT_EQ(by_bob.message().find(t1.record.id) != std::string::npos,
            missing.message().find("no-such-id") != std::string::npos);
  ASSERT_NE(AuthOk(t1.secret), nullptr);
  // A session is no token.
  EXPECT_EQ(auth_->RevokeToken(*alice, alice->credential_id, {}).code(), ErrorCode::kNotFound);
  EXPECT_FALSE(Credential(alice->credential_id).revoked_at.has_value());

  // The owner.
  ASSERT_TRUE(auth_->RevokeToken(*alice, t1.record.id, Actor{"alice", ""}).ok());
  EXPECT_EQ(AuthCode(t1.secret), ErrorCode::kUnauthenticated);
  EXPECT_TRUE(Credential(t1.record.id).revoked_at.has_value());
  // An admin (users.manage).
  ASSERT_TRUE(auth_->RevokeToken(*admin, t2.record.id, kAdminActor).ok());
  EXPECT_EQ(AuthCode(t2.secret), ErrorCode::kUnauthenticated);
  // Revoking again is fine and changes nothing.
  EXPECT_TRUE(auth_->RevokeToken(*alice, t1.record.id, {}).ok());
  EXPECT_EQ(AuthCode(t1.secret), ErrorCode::kUnauthenticated);

  std::vector<std::string> revokes;
  for (const AuditRecord& e : CommittedRecords()) {
    if (e.action == "token.revoke") revokes.push_back(e.actor + " " + e.target);
  }
  EXPECT_EQ(revokes,
            (std::vector<std::string>{"alice token/" + t1.record.id, "admin token/" + t2.record.id,
                                      "anonymous token/" + t1.record.id}));
}

TEST_F(AuthServiceTest, RevocationByAnotherProcessTakesEffectWithinCacheTtl) {
  options_.cache_ttl = seconds(2);
  Reset();
  BootstrapAdmin();
  std::shared_ptr<const Subject> admin = LoginOk("admin").subject;
  IssuedToken t = Issue(*admin, "ci");
  ASSERT_NE(AuthOk(t.secret), nullptr);
  std::unique_ptr<AuthService> other = NewService(options_);
  ASSERT_TRUE(other->RevokeToken(*admin, t.record.id, kAdminActor).ok());
  EXPECT_FALSE(other->Authenticate(t.secret).ok());
  clock_.Advance(seconds(1));
  EXPECT_NE(AuthOk(t.secret), nullptr);  // cached here, as documented
  clock_.Advance(seconds(2));
  EXPECT_EQ(AuthCode(t.secret), ErrorCode::kUnauthenticated);
}

TEST_F(AuthServiceTest, TokenRoleMayOnlyBeNarrower) {
  BootstrapAdmin();
  MakeUser("olive", "operator");
  std::shared_ptr<const Subject> olive = LoginOk("olive").subject;
  for (const char* wider : {"admin", "auditor"}) {
    Result<IssuedToken> t = auth_->IssueToken(*olive, "x", wider, std::nullopt, {});
    ASSERT_FALSE(t.ok()) << wider;
    EXPECT_EQ(t.status().code(), ErrorCode::kPermissionDenied) << wider;
  }
  EXPECT_TRUE(auth_->ListTokens("olive")->empty());

  // Own role, explicitly or by "".
  std::shared_ptr<const Subject> own = AuthOk(Issue(*olive, "own").secret);
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->role, "operator");
  EXPECT_EQ(own->permissions, PermsOf("operator"));
  std::shared_ptr<const Subject> own2 = AuthOk(Issue(*olive, "own2", "operator").secret);
  ASSERT_NE(own2, nullptr);
  EXPECT_EQ(own2->permissions, PermsOf("operator"));

  // Narrower.
  IssuedToken narrow = Issue(*olive, "narrow", "viewer");
  EXPECT_EQ(narrow.record.role, "viewer");
  std::shared_ptr<const Subject> v = AuthOk(narrow.secret);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->role, "viewer");
  EXPECT_EQ(v->username, "olive");
  EXPECT_EQ(v->permissions, PermsOf("viewer"));
  EXPECT_FALSE(v->Can(Permission::kRunsExecute));
}

TEST_F(AuthServiceTest, TokenPermissionsAreTheIntersectionWithTheOwnersCurrentRole) {
  options_.cache_ttl = hours(10);  // role changes must not wait for the cache
  Reset();
  BootstrapAdmin();
  MakeUser("carol", "admin");
  std::shared_ptr<const Subject> carol = LoginOk("carol").subject;
  IssuedToken aud = Issue(*carol, "aud", "auditor");
  IssuedToken resp = Issue(*carol, "resp", "responder");
  IssuedToken full = Issue(*carol, "full");
  std::shared_ptr<const Subject> a = AuthOk(aud.secret);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->permissions, PermsOf("auditor"));
  EXPECT_TRUE(a->Can(Permission::kAuditRead));
  ASSERT_NE(AuthOk(resp.secret), nullptr);
  EXPECT_EQ(AuthOk(full.secret)->permissions, PermissionSet::All());

  // Demoted to operator: the auditor token keeps runs.read but loses audit.read; the
  // responder token is unchanged (within operator); the full token follows the owner.
  ASSERT_TRUE(auth_->UpdateUser("carol", "operator", std::nullopt, std::nullopt, kAdminActor).ok());
  a = AuthOk(aud.secret);
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(a->Can(Permission::kAuditRead));
  EXPECT_TRUE(a->Can(Permission::kRunsRead));
  EXPECT_EQ(a->permissions, PermsOf("auditor").Intersect(PermsOf("operator")));
  EXPECT_EQ(AuthOk(resp.secret)->permissions, PermsOf("responder"));
  EXPECT_EQ(AuthOk(full.secret)->permissions, PermsOf("operator"));
  EXPECT_EQ(AuthOk(full.secret)->role, "operator");

  // Demoted to viewer: nobody may execute.
  ASSERT_TRUE(auth_->UpdateUser("carol", "viewer", std::nullopt, std::nullopt, kAdminActor).ok());
  std::shared_ptr<const Subject> r = AuthOk(resp.secret);
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->Can(Permission::kRunsExecute));
  EXPECT_EQ(r->permissions, PermsOf("viewer"));
  EXPECT_EQ(AuthOk(full.secret)->permissions, PermsOf("viewer"));
  // Recheck (open streams) sees the same.
  Result<std::shared_ptr<const Subject>> re = auth_->Recheck(*a);
  ASSERT_TRUE(re.ok());
  EXPECT_EQ((*re)->permissions, PermsOf("auditor").Intersect(PermsOf("viewer")));
  // Promoted back: the narrower token never gets more than its own role.
  ASSERT_TRUE(auth_->UpdateUser("carol", "admin", std::nullopt, std::nullopt, kAdminActor).ok());
  EXPECT_EQ(AuthOk(aud.secret)->permissions, PermsOf("auditor"));
}

bool MayExecuteCategory(const Subject& s, const std::string& category) {
  return s.Can(Permission::kRunsExecute) &&
         (s.categories.empty() ||
          std::find(s.categories.begin(), s.categories.end(), category) != s.categories.end());
}

TEST_F(AuthServiceTest, TokenCategoriesNeverExceedTheOwners) {
  BootstrapAdmin();
  MakeUser("rita", "responder");  // may execute diagnostics and remediation only
  std::shared_ptr<const Subject> rita = LoginOk("rita").subject;
  EXPECT_EQ(rita->categories, (std::vector<std::string>{"diagnostics", "remediation"}));
  EXPECT_TRUE(MayExecuteCategory(*rita, "diagnostics"));
  EXPECT_FALSE(MayExecuteCategory(*rita, "deploy"));

  // "deployer" has no more permissions than a responder, but other categories: its
  // token must not let rita run deploy runbooks.
  Result<IssuedToken> dep = auth_->IssueToken(*rita, "dep", "deployer", std::nullopt, {});
  if (dep.ok()) {
    std::shared_ptr<const Subject> d = AuthOk(dep->secret);
    ASSERT_NE(d, nullptr);
    for (const char* c : {"deploy", "diagnostics", "remediation", "other"}) {
      EXPECT_FALSE(MayExecuteCategory(*d, c)) << c;
    }
  } else {
    EXPECT_EQ(dep.status().code(), ErrorCode::kPermissionDenied);
  }
  // Overlapping categories: only the common ones.
  Result<IssuedToken> diag = auth_->IssueToken(*rita, "diag", "diagnoser", std::nullopt, {});
  ASSERT_TRUE(diag.ok()) << diag.status().ToString();
  std::shared_ptr<const Subject> g = AuthOk(diag->secret);
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(MayExecuteCategory(*g, "diagnostics"));
  EXPECT_FALSE(MayExecuteCategory(*g, "deploy"));
  EXPECT_FALSE(MayExecuteCategory(*g, "remediation"));

  // An unrestricted owner's token gets the token role's categories.
  MakeUser("olive", "operator");
  std::shared_ptr<const Subject> olive = LoginOk("olive").subject;
  std::shared_ptr<const Subject> od = AuthOk(Issue(*olive, "dep", "deployer").secret);
  ASSERT_NE(od, nullptr);
  EXPECT_TRUE(MayExecuteCategory(*od, "deploy"));
  EXPECT_FALSE(MayExecuteCategory(*od, "diagnostics"));
  // A category-free narrower role of a restricted owner keeps the owner's categories.
  std::shared_ptr<const Subject> rr = AuthOk(Issue(*rita, "own", "responder").secret);
  ASSERT_NE(rr, nullptr);
  EXPECT_EQ(rr->categories, rita->categories);
}

TEST_F(AuthServiceTest, NarrowTokenCannotIssueAWiderToken) {
  BootstrapAdmin();
  std::shared_ptr<const Subject> admin = LoginOk("admin").subject;
  std::shared_ptr<const Subject> narrow = AuthOk(Issue(*admin, "ro", "viewer").secret);
  ASSERT_NE(narrow, nullptr);
  ASSERT_EQ(narrow->role, "viewer");
  ASSERT_FALSE(narrow->Can(Permission::kUsersManage));

  Result<IssuedToken> wider = auth_->IssueToken(*narrow, "root", "admin", std::nullopt, {});
  ASSERT_FALSE(wider.ok());
  EXPECT_EQ(wider.status().code(), ErrorCode::kPermissionDenied);
  // "" (its own role) and its role by name: still only a viewer, not the owner's admin.
  for (const char* role : {"", "viewer"}) {
    Result<IssuedToken> t = auth_->IssueToken(*narrow, "again", role, std::nullopt, {});
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    std::shared_ptr<const Subject> s = AuthOk(t->secret);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->permissions, PermsOf("viewer")) << "role \"" << role << "\"";
    EXPECT_FALSE(s->Can(Permission::kUsersManage)) << "role \"" << role << "\"";
  }
}

TEST_F(AuthServiceTest, ChangePassword) {
  options_.cache_ttl = hours(10);
  Reset();
  BootstrapAdmin();
  Result<UserRecord> created = auth_->CreateUser("alice", Pw("alice"), "operator", true, {});
  ASSERT_TRUE(created.ok());
  LoginResult current = LoginOk("alice");
  LoginResult other = LoginOk("alice", true);
  ASSERT_TRUE(current.subject->must_change_password);
  ASSERT_NE(AuthOk(other.session_secret), nullptr);  // cached

  Status wrong = auth_->ChangePassword(*current.subject, "not-my-password", "new-password-1", {});
  EXPECT_EQ(wrong.code(), ErrorCode::kInvalidArgument);
  Status too_short = auth_->ChangePassword(*current.subject, Pw("alice"), "short", {});
  EXPECT_EQ(too_short.code(), ErrorCode::kInvalidArgument);
  Status same = auth_->ChangePassword(*current.subject, Pw("alice"), Pw("alice"), {});
  EXPECT_EQ(same.code(), ErrorCode::kInvalidArgument);
  Status nul = auth_->ChangePassword(*current.subject, Pw("alice"), "with\0nul-byte"s, {});
  EXPECT_EQ(nul.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(AuthOk(other.session_secret), nullptr);
  EXPECT_TRUE(User("alice").must_change_password);

  ASSERT_TRUE(
      auth_->ChangePassword(*current.subject, Pw("alice"), "new-password-1", {"alice", ""}).ok());
  EXPECT_FALSE(User("alice").must_change_password);
  // The other session ends; the current one and the token stay.
  EXPECT_EQ(AuthCode(other.session_secret), ErrorCode::kUnauthenticated);
  std::shared_ptr<const Subject> still = AuthOk(current.session_secret);
  ASSERT_NE(still, nullptr);
  EXPECT_FALSE(still->must_change_password);
  EXPECT_NE(AuthOk(*other.token), nullptr);
  // Only the new password logs in.
  EXPECT_FALSE(auth_->Login("alice", Pw("alice"), false, {}).ok());
  EXPECT_TRUE(auth_->Login("alice", "new-password-1", false, {}).ok());
  EXPECT_EQ(Committed().back(), "auth.login ok");
  std::vector<std::string> pw_entries;
  for (const AuditRecord& e : CommittedRecords()) {
    if (e.action == "user.password") pw_entries.push_back(e.actor + " " + e.target);
  }
  EXPECT_EQ(pw_entries, std::vector<std::string>{"alice user/alice"});
}

TEST_F(AuthServiceTest, ChangePasswordFromATokenEndsEverySession) {
  BootstrapAdmin();
  LoginResult l = LoginOk("admin", true);
  std::shared_ptr<const Subject> tok = AuthOk(*l.token);
  ASSERT_NE(tok, nullptr);
  ASSERT_TRUE(auth_->ChangePassword(*tok, Pw("admin"), "another-password", kAdminActor).ok());
  EXPECT_EQ(AuthCode(l.session_secret), ErrorCode::kUnauthenticated);
  EXPECT_NE(AuthOk(*l.token), nullptr);
}

TEST_F(AuthServiceTest, LastEnabledAdminIsProtected) {
  BootstrapAdmin();
  auto update = [&](const std::string& user, std::optional<std::string> role,
                    std::optional<bool> disabled) {
    return auth_->UpdateUser(user, std::move(role), disabled, std::nullopt, kAdminActor);
  };
  Result<UserRecord> demote = update("admin", "operator", std::nullopt);
  ASSERT_FALSE(demote.ok());
  EXPECT_EQ(demote.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(demote.status().message().find("last enabled admin"), std::string::npos);
  EXPECT_EQ(update("admin", std::nullopt, true).status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(update("admin", "admin", true).status().code(), ErrorCode::kFailedPrecondition);
  UserRecord u = User("admin");
  EXPECT_EQ(u.role, "admin");
  EXPECT_FALSE(u.disabled);
  // Harmless updates of the last admin are fine.
  EXPECT_TRUE(update("admin", "admin", false).ok());

  // A disabled second admin does not count.
  MakeUser("second", "admin");
  ASSERT_TRUE(update("second", std::nullopt, true).ok());
  EXPECT_EQ(update("admin", "viewer", std::nullopt).status().code(),
            ErrorCode::kFailedPrecondition);
  // An enabled one does.
  ASSERT_TRUE(update("second", std::nullopt, false).ok());
  Result<UserRecord> ok = update("admin", "viewer", std::nullopt);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->role, "viewer");
  EXPECT_EQ(update("second", "operator", std::nullopt).status().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(update("second", std::nullopt, true).status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(User("second").role, "admin");
}

TEST_F(AuthServiceTest, DisablingAUserEndsItsAccess) {
  options_.cache_ttl = hours(10);
  Reset();
  BootstrapAdmin();
  MakeUser("alice", "operator");
  LoginResult l = LoginOk("alice", true);
  ASSERT_NE(AuthOk(l.session_secret), nullptr);
  ASSERT_NE(AuthOk(*l.token), nullptr);
  ASSERT_TRUE(auth_->UpdateUser("alice", std::nullopt, true, std::nullopt, kAdminActor).ok());
  EXPECT_EQ(AuthCode(l.session_secret), ErrorCode::kUnauthenticated);
  EXPECT_EQ(AuthCode(*l.token), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(auth_->Recheck(*l.subject).ok());
  EXPECT_FALSE(auth_->AuthenticateCredential(l.subject->credential_id).ok());
  EXPECT_FALSE(auth_->Login("alice", Pw("alice"), false, {}).ok());
  // Enabled again: the token works, the session stays ended.
  ASSERT_TRUE(auth_->UpdateUser("alice", std::nullopt, false, std::nullopt, kAdminActor).ok());
  EXPECT_NE(AuthOk(*l.token), nullptr);
  EXPECT_EQ(AuthCode(l.session_secret), ErrorCode::kUnauthenticated);
  LoginOk("alice");
}

TEST_F(AuthServiceTest, PasswordResetByAnAdmin) {
  BootstrapAdmin();
  MakeUser("alice", "operator");
  LoginResult l = LoginOk("alice");
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(auth_->Login("alice", "bad-bad-bad", false, {}).ok());
  ASSERT_TRUE(User("alice").locked_until.has_value());
  Result<UserRecord> r =
      auth_->UpdateUser("alice", std::nullopt, std::nullopt, "reset-password", kAdminActor);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->must_change_password);
  EXPECT_EQ(r->failed_logins, 0);
  EXPECT_FALSE(r->locked_until.has_value());
  EXPECT_EQ(AuthCode(l.session_secret), ErrorCode::kUnauthenticated);
  Result<LoginResult> again = auth_->Login("alice", "reset-password", false, {});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->subject->must_change_password);
  EXPECT_EQ(
      auth_->UpdateUser("alice", std::nullopt, std::nullopt, "short", kAdminActor).status().code(),
      ErrorCode::kInvalidArgument);
  // The details say a reset happened, never the password.
  const std::string details = CommittedRecords()[CommittedRecords().size() - 2].details_json;
  EXPECT_NE(details.find("reset"), std::string::npos) << details;
  EXPECT_EQ(details.find("reset-password"), std::string::npos) << details;
}

TEST_F(AuthServiceTest, UpdateUserValidation) {
  BootstrapAdmin();
  MakeUser("alice", "operator");
  EXPECT_EQ(auth_->UpdateUser("alice", "root", std::nullopt, std::nullopt, {}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(auth_->UpdateUser("nobody", "viewer", std::nullopt, std::nullopt, {}).status().code(),
            ErrorCode::kNotFound);
  Result<UserRecord> r = auth_->UpdateUser("alice", "responder", std::nullopt, std::nullopt, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->role, "responder");
  EXPECT_EQ(User("alice").role, "responder");
  EXPECT_EQ(User("alice").created_at, kStart);
  EXPECT_EQ(LoginOk("alice").subject->role, "responder");
}

TEST_F(AuthServiceTest, CreateUserValidation) {
  BootstrapAdmin();
  auto create = [&](std::string_view name, std::string_view pw, std::string_view role) {
    return auth_->CreateUser(name, pw, role, false, kAdminActor).status().code();
  };
  for (std::string_view bad : {"", "Alice", "a b", "-a", ".a", "a/b"}) {
    EXPECT_EQ(create(bad, "long-enough", "viewer"), ErrorCode::kInvalidArgument) << bad;
  }
  const std::string name65(65, 'n');
  EXPECT_EQ(create(name65, "long-enough", "viewer"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create("alice", std::string(7, 'p'), "viewer"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create("alice", std::string(1025, 'p'), "viewer"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create("alice", "", "viewer"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create("alice", "has\0a-nul"s, "viewer"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create("alice", "long-enough", "root"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create("alice", "long-enough", ""), ErrorCode::kInvalidArgument);
  EXPECT_EQ(auth_->GetUser("alice").status().code(), ErrorCode::kNotFound);

  // The bounds themselves are fine; a custom role is a role.
  EXPECT_EQ(create("eight", std::string(8, 'p'), "viewer"), ErrorCode::kOk);
  EXPECT_EQ(create(std::string(64, 'n'), std::string(1024, 'p'), "auditor"), ErrorCode::kOk);
  EXPECT_EQ(create("admin", "long-enough", "viewer"), ErrorCode::kAlreadyExists);
  EXPECT_EQ(create("eight", "other-password", "admin"), ErrorCode::kAlreadyExists);
  EXPECT_EQ(User("eight").role, "viewer");
  Result<LoginResult> l = auth_->Login("eight", std::string(8, 'p'), false, {});
  ASSERT_TRUE(l.ok());

  Result<std::vector<UserRecord>> users = auth_->ListUsers();
  ASSERT_TRUE(users.ok());
  std::vector<std::string> names;
  for (const UserRecord& u : *users) names.push_back(u.username);
  EXPECT_EQ(names, (std::vector<std::string>{"admin", "eight", std::string(64, 'n')}));

  EXPECT_TRUE(AuthService::CheckPassword(std::string(8, 'x')).ok());
  EXPECT_TRUE(AuthService::CheckPassword(std::string(1024, 'x')).ok());
  EXPECT_FALSE(AuthService::CheckPassword(std::string(7, 'x')).ok());
  EXPECT_FALSE(AuthService::CheckPassword(std::string(1025, 'x')).ok());
}

TEST_F(AuthServiceTest, LongPasswordsWorkEndToEnd) {
  BootstrapAdmin();
  std::string pw(1024, 'x');
  for (size_t i = 0; i < pw.size(); ++i) pw[i] = static_cast<char>('!' + i % 90);
  ASSERT_TRUE(auth_->CreateUser("long", pw, "viewer", false, {}).ok());
  std::string late = pw;
  late[900] = late[900] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(auth_->Login("long", late, false, {}).ok());
  EXPECT_FALSE(auth_->Login("long", pw.substr(0, 72), false, {}).ok());
  EXPECT_TRUE(auth_->Login("long", pw, false, {}).ok());
}

TEST_F(AuthServiceTest, AuditActionsAreRecorded) {
  BootstrapAdmin();
  std::shared_ptr<const Subject> admin = LoginOk("admin").subject;
  MakeUser("alice", "operator");
  ASSERT_FALSE(auth_->Login("alice", "wrong-password", false, {"", "10.0.0.1"}).ok());
  LoginResult alice = LoginOk("alice", true);
  IssuedToken t = Issue(*alice.subject, "ci", "viewer");
  ASSERT_TRUE(auth_->RevokeToken(*alice.subject, t.record.id, {"alice", "10.0.0.2"}).ok());
  ASSERT_TRUE(
      auth_->UpdateUser("alice", "responder", std::nullopt, std::nullopt, kAdminActor).ok());
  ASSERT_TRUE(auth_->ChangePassword(*alice.subject, Pw("alice"), "changed-pw", {"alice", ""}).ok());
  ASSERT_TRUE(auth_->Logout(*alice.subject, {"alice", ""}).ok());
  EXPECT_EQ(AuthCode(alice.session_secret), ErrorCode::kUnauthenticated);

  EXPECT_EQ(Committed(), (std::vector<std::string>{
                             "user.bootstrap ok",
                             "auth.login ok",
                             "user.create ok",
                             "auth.login failed",
                             "token.issue ok",  // the login token
                             "auth.login ok",
                             "token.issue ok",
                             "token.revoke ok",
                             "user.update ok",
                             "user.password ok",
                             "auth.logout ok",
                         }));
  std::vector<AuditRecord> all = CommittedRecords();
  EXPECT_EQ(all[2].actor, "admin");
  EXPECT_EQ(all[2].remote, "192.0.2.1");
  EXPECT_EQ(all[2].target, "user/alice");
  EXPECT_NE(all[2].details_json.find("operator"), std::string::npos);
  EXPECT_EQ(all[6].target, "token/" + t.record.id);
  EXPECT_NE(all[6].details_json.find("viewer"), std::string::npos) << all[6].details_json;
  EXPECT_EQ(all[7].remote, "10.0.0.2");
  EXPECT_NE(all[8].details_json.find("responder"), std::string::npos) << all[8].details_json;
  for (const AuditRecord& e : all) {
    EXPECT_EQ(e.details_json.front(), '{') << e.action;
    EXPECT_FALSE(e.actor.empty()) << e.action;
  }
  EXPECT_EQ(calls_.size(), all.size());
}

TEST_F(AuthServiceTest, FailingAuditRollsTheActionBack) {
  BootstrapAdmin();
  std::shared_ptr<const Subject> admin = LoginOk("admin").subject;
  MakeUser("alice", "operator");
  LoginResult alice = LoginOk("alice");
  IssuedToken kept = Issue(*alice.subject, "kept");
  const size_t committed = Committed().size();

  fail_action_ = "user.create";
  EXPECT_FALSE(auth_->CreateUser("bob", Pw("bob"), "viewer", false, kAdminActor).ok());
  EXPECT_EQ(auth_->GetUser("bob").status().code(), ErrorCode::kNotFound);

  fail_action_ = "token.issue";
  EXPECT_FALSE(auth_->IssueToken(*alice.subject, "lost", "", std::nullopt, {}).ok());
  EXPECT_EQ(auth_->ListTokens("alice")->size(), 1u);

  fail_action_ = "token.revoke";
  EXPECT_FALSE(auth_->RevokeToken(*alice.subject, kept.record.id, {}).ok());
  EXPECT_NE(AuthOk(kept.secret), nullptr);
  EXPECT_FALSE(Credential(kept.record.id).revoked_at.has_value());

  fail_action_ = "user.update";
  EXPECT_FALSE(auth_->UpdateUser("alice", "viewer", true, "new-password", kAdminActor).ok());
  UserRecord u = User("alice");
  EXPECT_EQ(u.role, "operator");
  EXPECT_FALSE(u.disabled);
  EXPECT_TRUE(VerifyPassword(u.password_hash, Pw("alice")));
  EXPECT_NE(AuthOk(alice.session_secret), nullptr);

  fail_action_ = "user.password";
  EXPECT_FALSE(auth_->ChangePassword(*alice.subject, Pw("alice"), "new-password", {}).ok());
  EXPECT_TRUE(VerifyPassword(User("alice").password_hash, Pw("alice")));

  fail_action_ = "auth.login";
  const size_t sessions = Credentials(CredentialKind::kSession).size();
  EXPECT_FALSE(auth_->Login("alice", Pw("alice"), true, {}).ok());
  EXPECT_EQ(Credentials(CredentialKind::kSession).size(), sessions);
  EXPECT_EQ(auth_->ListTokens("alice")->size(), 1u);

  EXPECT_EQ(Committed().size(), committed);
  fail_action_.clear();
  EXPECT_TRUE(auth_->CreateUser("bob", Pw("bob"), "viewer", false, kAdminActor).ok());
}

TEST_F(AuthServiceTest, LogoutEndsTheSession) {
  options_.cache_ttl = hours(10);
  Reset();
  BootstrapAdmin();
  LoginResult a = LoginOk("admin", true);
  LoginResult b = LoginOk("admin");
  ASSERT_NE(AuthOk(a.session_secret), nullptr);
  ASSERT_TRUE(auth_->Logout(*a.subject, kAdminActor).ok());
  EXPECT_EQ(AuthCode(a.session_secret), ErrorCode::kUnauthenticated);
  EXPECT_NE(AuthOk(b.session_secret), nullptr);
  EXPECT_NE(AuthOk(*a.token), nullptr);
  EXPECT_TRUE(Credential(a.subject->credential_id).revoked_at.has_value());
  EXPECT_TRUE(auth_->Logout(*a.subject, kAdminActor).ok());  // twice is fine
}

TEST_F(AuthServiceTest, RecheckAndAuthenticateCredential) {
  BootstrapAdmin();
  MakeUser("alice", "operator");
  LoginResult l = LoginOk("alice", true);
  Result<std::shared_ptr<const Subject>> re = auth_->Recheck(*l.subject);
  ASSERT_TRUE(re.ok()) << re.status().ToString();
  EXPECT_EQ((*re)->username, "alice");
  EXPECT_EQ((*re)->permissions, PermsOf("operator"));
  Result<std::shared_ptr<const Subject>> byid =
      auth_->AuthenticateCredential(l.subject->credential_id);
  ASSERT_TRUE(byid.ok()) << byid.status().ToString();
  EXPECT_EQ((*byid)->kind, CredentialKind::kSession);
  EXPECT_EQ((*byid)->username, "alice");
  EXPECT_EQ(auth_->AuthenticateCredential("no-such-id").status().code(),
            ErrorCode::kUnauthenticated);
  // (An empty id cannot come from a ticket; the store calls it invalid.)
  EXPECT_FALSE(auth_->AuthenticateCredential("").ok());
  // The CSRF token of a session filled in by Recheck first stays right.
  std::shared_ptr<const Subject> s = AuthOk(l.session_secret);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->csrf_token, l.subject->csrf_token);

  ASSERT_TRUE(auth_->Logout(*l.subject, {}).ok());
  EXPECT_FALSE(auth_->Recheck(*l.subject).ok());
  EXPECT_FALSE(auth_->AuthenticateCredential(l.subject->credential_id).ok());
}

TEST_F(AuthServiceTest, LoginRehashesAnOutdatedHash) {
  BootstrapAdmin();
  MakeUser("alice", "viewer");
  const std::string before = User("alice").password_hash;
  EXPECT_NE(before.find("t=2,"), std::string::npos);
  AuthOptions stronger = options_;
  stronger.password_cost = PasswordCost{3, kOwaspMinimumCost.mem_bytes};
  std::unique_ptr<AuthService> other = NewService(stronger);
  ASSERT_TRUE(other->Login("alice", Pw("alice"), false, {}).ok());
  const std::string after = User("alice").password_hash;
  EXPECT_NE(after.find("t=3,"), std::string::npos) << after;
  EXPECT_TRUE(VerifyPassword(after, Pw("alice")));
  // Up to date: left alone.
  ASSERT_TRUE(other->Login("alice", Pw("alice"), false, {}).ok());
  EXPECT_EQ(User("alice").password_hash, after);
}

TEST_F(AuthServiceTest, MaintainWritesLastUsed) {
  options_.last_used_resolution = seconds(60);
  Reset();
  BootstrapAdmin();
  std::shared_ptr<const Subject> admin = LoginOk("admin").subject;
  IssuedToken t = Issue(*admin, "ci");
  EXPECT_FALSE(Credential(t.record.id).last_used_at.has_value());
  auth_->Maintain();
  EXPECT_FALSE(Credential(t.record.id).last_used_at.has_value());  // never used

  clock_.Advance(seconds(5));
  ASSERT_NE(AuthOk(t.secret), nullptr);
  EXPECT_FALSE(Credential(t.record.id).last_used_at.has_value());  // not on the hot path
  auth_->Maintain();
  EXPECT_EQ(Credential(t.record.id).last_used_at, kStart + seconds(5));

  // Within the resolution: not written again.
  clock_.Advance(seconds(10));
  ASSERT_NE(AuthOk(t.secret), nullptr);
  auth_->Maintain();
  EXPECT_EQ(Credential(t.record.id).last_used_at, kStart + seconds(5));
  // ListTokens shows what this process saw.
  Result<std::vector<CredentialRecord>> list = auth_->ListTokens("admin");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].last_used_at, kStart + seconds(15));

  clock_.Advance(seconds(60));
  ASSERT_NE(AuthOk(t.secret), nullptr);
  auth_->Maintain();
  EXPECT_EQ(Credential(t.record.id).last_used_at, kStart + seconds(75));

  // A revoked credential is not written over.
  clock_.Advance(seconds(120));
  ASSERT_NE(AuthOk(t.secret), nullptr);
  ASSERT_TRUE(NewService(options_)->RevokeToken(*admin, t.record.id, {}).ok());
  auth_->Maintain();
  EXPECT_EQ(Credential(t.record.id).last_used_at, kStart + seconds(75));

  // Sessions too: the idle clock of another process sees the use.
  options_.session_idle = minutes(10);
  Reset();
  LoginResult l = LoginOk("admin");
  clock_.Advance(minutes(9));
  ASSERT_NE(AuthOk(l.session_secret), nullptr);
  auth_->Maintain();
  EXPECT_EQ(Credential(l.subject->credential_id).last_used_at, clock_.Now());
  clock_.Advance(minutes(9));
  std::unique_ptr<AuthService> other = NewService(options_);
  EXPECT_TRUE(other->Authenticate(l.session_secret).ok());
}

TEST_F(AuthServiceTest, MaintainPurgesLongDeadCredentials) {
  options_.session_absolute = hours(1);
  Reset();
  BootstrapAdmin();
  std::shared_ptr<const Subject> admin = LoginOk("admin").subject;  // expires in 1 h
  IssuedToken revoked = Issue(*admin, "revoked");
  IssuedToken expiring = Issue(*admin, "expiring", "", hours(2));
  IssuedToken live = Issue(*admin, "live");
  ASSERT_TRUE(auth_->RevokeToken(*admin, revoked.record.id, kAdminActor).ok());

  clock_.Advance(hours(24 * 6));
  auth_->Maintain();  // dead for less than a week: kept for the record
  EXPECT_EQ(auth_->ListTokens("admin")->size(), 3u);
  EXPECT_EQ(Credentials(CredentialKind::kSession).size(), 1u);

  clock_.Advance(hours(24) + hours(3));
  auth_->Maintain();
  Result<std::vector<CredentialRecord>> left = auth_->ListTokens("");
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].id, live.record.id);
  EXPECT_TRUE(Credentials(CredentialKind::kSession).empty());
  EXPECT_NE(AuthOk(live.secret), nullptr);
}

TEST_F(AuthServiceTest, ListTokens) {
  BootstrapAdmin();
  MakeUser("alice", "operator");
  std::shared_ptr<const Subject> admin = LoginOk("admin").subject;
  std::shared_ptr<const Subject> alice = LoginOk("alice").subject;
  Issue(*admin, "a1");
  Issue(*alice, "b1");
  Issue(*alice, "b2", "viewer");
  EXPECT_EQ(auth_->ListTokens("admin")->size(), 1u);
  Result<std::vector<CredentialRecord>> mine = auth_->ListTokens("alice");
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 2u);
  EXPECT_EQ((*mine)[0].name, "b1");
  EXPECT_EQ((*mine)[1].role, "viewer");
  EXPECT_EQ(auth_->ListTokens("")->size(), 3u);
  EXPECT_TRUE(auth_->ListTokens("nobody")->empty());
}

// ---------------------------------------------------------------------------------------
// CookieValue

TEST(AuthCookieTest, CookieValue) {
  EXPECT_EQ(CookieValue("ams=abc", "ams"), "abc");
  EXPECT_EQ(CookieValue("a=1; ams=abc; b=2", "ams"), "abc");
  EXPECT_EQ(CookieValue("a=1;ams=abc;b=2", "ams"), "abc");
  EXPECT_EQ(CookieValue("a=1;   ams=abc  ; b=2", "ams"), "abc");
  EXPECT_EQ(CookieValue("xams=1; amsx=2; ams=3", "ams"), "3");
  EXPECT_EQ(CookieValue("ams=first; ams=second", "ams"), "first");
  EXPECT_EQ(CookieValue("ams=a=b", "ams"), "a=b");
  EXPECT_EQ(CookieValue("ams=", "ams"), "");
  EXPECT_EQ(CookieValue("ams", "ams"), "");
  EXPECT_EQ(CookieValue("", "ams"), "");
  EXPECT_EQ(CookieValue("a=1; b=2", "ams"), "");
  EXPECT_EQ(CookieValue(";;;", "ams"), "");
  EXPECT_EQ(CookieValue("a=1;", "a"), "1");
  EXPECT_EQ(CookieValue("AMS=x", "ams"), "");
  EXPECT_EQ(CookieValue("ams =x", "ams"), "");
  EXPECT_EQ(CookieValue(std::string(100000, ';') + "ams=v", "ams"), "v");
}

}  // namespace
}  // namespace automan::auth
