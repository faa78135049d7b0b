#include "audit/chain.h"

#include <sodium.h>

#include <cstdint>
#include <cstdlib>

namespace automan::audit {

namespace {

void EnsureSodium() {
  static const bool ok = [] { return sodium_init() >= 0; }();
  if (!ok) std::abort();  // libsodium unusable: nothing here can be trusted
}

void PutU64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void PutString(std::string& out, std::string_view s) {
  PutU64(out, s.size());
  out.append(s);
}

const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string Hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

}  // namespace

std::string CanonicalBytes(const AuditRecord& r) {
  std::string out;
  out.reserve(1 + 8 * 8 + r.actor.size() + r.action.size() + r.target.size() + r.outcome.size() +
              r.remote.size() + r.details_json.size());
  out.push_back('\x01');
  PutU64(out, static_cast<uint64_t>(r.seq));
  PutU64(out, static_cast<uint64_t>(ToMicros(r.at)));
  PutString(out, r.actor);
  PutString(out, r.action);
  PutString(out, r.target);
  PutString(out, r.outcome);
  PutString(out, r.remote);
  PutString(out, r.details_json);
  return out;
}

std::string EntryHash(const AuditKey& key, std::string_view prev_hash_hex, const AuditRecord& r) {
  EnsureSodium();
  const std::string canonical = CanonicalBytes(r);
  crypto_generichash_state state;
  unsigned char out[crypto_generichash_BYTES];
  static_assert(crypto_generichash_BYTES == 32);
  crypto_generichash_init(&state, key.data(), key.size(), sizeof out);
  crypto_generichash_update(&state, U(prev_hash_hex), prev_hash_hex.size());
  crypto_generichash_update(&state, U(canonical), canonical.size());
  crypto_generichash_final(&state, out, sizeof out);
  return Hex(out, sizeof out);
}

std::string KeyedHashHex(const AuditKey& key, std::string_view data) {
  EnsureSodium();
  unsigned char out[crypto_generichash_BYTES];
  crypto_generichash(out, sizeof out, U(data), data.size(), key.data(), key.size());
  return Hex(out, sizeof out);
}

bool IsHashHex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace automan::audit
