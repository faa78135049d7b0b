#include "auth/crypto.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace automan::auth {

namespace {

void EnsureInit() {
  static const bool ok = [] { return sodium_init() >= 0; }();
  if (!ok) {
    // Without a working CSPRNG nothing secure can be done: stop rather than go on.
    std::abort();
  }
}

const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::string RandomBytes(size_t n) {
  EnsureInit();
  std::string out(n, '\0');
  randombytes_buf(out.data(), n);
  return out;
}

std::string RandomToken(std::string_view prefix) {
  return std::string(prefix) + Base64UrlEncode(RandomBytes(32));
}

std::string Base64UrlEncode(std::string_view bytes) {
  EnsureInit();
  const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_encoded_len(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), U(bytes), bytes.size(), variant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

bool Base64UrlDecode(std::string_view text, std::string& out) {
  EnsureInit();
  out.assign(text.size(), '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != text.data() + text.size()) {
    out.clear();
    return false;
  }
  out.resize(len);
  return true;
}

std::string HexEncode(std::string_view bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), U(bytes), bytes.size());
  out.pop_back();
  return out;
}

std::string Sha256Hex(std::string_view data) {
  // OpenSSL's SHA-256 uses the CPU's SHA extensions where there are some (about twice as
  // fast as libsodium's portable code): it runs on every authenticated request. One
  // digest context per thread, reused; the algorithm fetched once.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Ctx t;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (sha256 == nullptr || t.ctx == nullptr || EVP_DigestInit_ex2(t.ctx, sha256, nullptr) != 1 ||
      EVP_DigestUpdate(t.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(t.ctx, digest, &len) != 1 || len != crypto_hash_sha256_BYTES) {
    EnsureInit();  // no usable OpenSSL digest: libsodium's gives the same bytes
    crypto_hash_sha256(digest, U(data), data.size());
  }
  return HexEncode(
      std::string_view(reinterpret_cast<const char*>(digest), crypto_hash_sha256_BYTES));
}

std::string HmacSha256(const Key& key, std::string_view data) {
  EnsureInit();
  static_assert(crypto_auth_hmacsha256_KEYBYTES == 32);
  std::string out(crypto_auth_hmacsha256_BYTES, '\0');
  crypto_auth_hmacsha256(reinterpret_cast<unsigned char*>(out.data()), U(data), data.size(),
                         key.data());
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<std::string> HashPassword(std::string_view password, const PasswordCost& cost) {
  EnsureInit();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), cost.ops, cost.mem_bytes,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Status(ErrorCode::kResourceExhausted,
                  "hashing a password failed: not enough memory for argon2id");
  }
  return std::string(out);
}

bool VerifyPassword(std::string_view phc, std::string_view password) {
  EnsureInit();
  // An embedded NUL would hide what follows it from libsodium (a C string): malformed.
  if (phc.empty() || phc.size() >= crypto_pwhash_STRBYTES ||
      phc.find('\0') != std::string_view::npos) {
    return false;
  }
  const std::string z(phc);  // NUL-terminated
  return crypto_pwhash_str_verify(z.c_str(), password.data(), password.size()) == 0;
}

bool PasswordNeedsRehash(std::string_view phc, const PasswordCost& cost) {
  EnsureInit();
  if (phc.empty() || phc.size() >= crypto_pwhash_STRBYTES ||
      phc.find('\0') != std::string_view::npos) {
    return true;
  }
  const std::string z(phc);
  return crypto_pwhash_str_needs_rehash(z.c_str(), cost.ops, cost.mem_bytes) != 0;
}

std::string Seal(const Key& key, std::string_view plaintext) {
  EnsureInit();
  static_assert(crypto_secretbox_KEYBYTES == 32);
  std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plaintext.size(), '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, U(plaintext), plaintext.size(), nonce,
                        key.data());
  return out;
}

Result<std::string> Open(const Key& key, std::string_view sealed) {
  EnsureInit();
  if (sealed.size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
    return Status(ErrorCode::kDataLoss, "a sealed value is too short");
  }
  const size_t n = sealed.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
  std::string out(n, '\0');
  if (crypto_secretbox_open_easy(
          reinterpret_cast<unsigned char*>(out.data()), U(sealed) + crypto_secretbox_NONCEBYTES,
          sealed.size() - crypto_secretbox_NONCEBYTES, U(sealed), key.data()) != 0) {
    sodium_memzero(out.data(), out.size());
    return Status(ErrorCode::kDataLoss,
                  "a sealed value does not open with this key (altered, or another key file)");
  }
  return out;
}

Key DeriveKey(const Key& master, uint64_t subkey_id, std::string_view context8) {
  EnsureInit();
  static_assert(crypto_kdf_KEYBYTES == 32);
  char ctx[crypto_kdf_CONTEXTBYTES] = {};
  std::memcpy(ctx, context8.data(), std::min(context8.size(), sizeof ctx));
  Key out{};
  crypto_kdf_derive_from_key(out.data(), out.size(), subkey_id, ctx, master.data());
  return out;
}

}  // namespace automan::auth
