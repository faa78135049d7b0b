// The cryptographic primitives of Automan, all from libsodium: random tokens, SHA-256,
// constant-time comparison, argon2id password hashes (PHC strings), HMAC-SHA-256 and
// authenticated encryption (XSalsa20-Poly1305 "secretbox").
//
// Nothing here logs or keeps a secret; callers own the values.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace automan::auth {

// A 256-bit key.
using Key = std::array<unsigned char, 32>;

// `n` random bytes (the OS CSPRNG).
std::string RandomBytes(size_t n);
// `prefix` + base64url (no padding) of 32 random bytes: 256 bits of entropy.
std::string RandomToken(std::string_view prefix);

std::string Base64UrlEncode(std::string_view bytes);
// False on characters outside the base64url alphabet.
bool Base64UrlDecode(std::string_view text, std::string& out);
std::string HexEncode(std::string_view bytes);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);
// Raw HMAC-SHA-256 of `data` under `key`.
std::string HmacSha256(const Key& key, std::string_view data);

// True when a and b are equal, in time that depends only on their lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// argon2id cost. The default is libsodium's "interactive" level (t=2, 64 MiB), above
// OWASP's minimum (t=2, 19 MiB); tests may lower it (never below OWASP's minimum).
struct PasswordCost {
  unsigned long long ops = 2;
  size_t mem_bytes = size_t{64} << 20;
};
inline constexpr PasswordCost kOwaspMinimumCost{2, size_t{19} << 20};

// The PHC string ("$argon2id$v=19$m=65536,t=2,p=1$salt$hash") of `password`, with a fresh
// random salt. kResourceExhausted when the memory cannot be had.
Result<std::string> HashPassword(std::string_view password, const PasswordCost& cost);
// True when `password` matches `phc`. False for a malformed PHC string.
bool VerifyPassword(std::string_view phc, std::string_view password);
// True when `phc` was made with other parameters than `cost` (rehash after a login).
bool PasswordNeedsRehash(std::string_view phc, const PasswordCost& cost);

// Authenticated encryption under `key`: the result is nonce (24 bytes) || ciphertext.
std::string Seal(const Key& key, std::string_view plaintext);
// kDataLoss when `sealed` was not made by Seal under this key or was altered.
Result<std::string> Open(const Key& key, std::string_view sealed);

// A subkey of `master` for one purpose (libsodium's crypto_kdf: BLAKE2b keyed with the
// master key, the subkey id and an 8-byte context).
Key DeriveKey(const Key& master, uint64_t subkey_id, std::string_view context8);

}  // namespace automan::auth
