// The audit hash chain: how one AuditRecord is encoded and hashed.
//
// Every entry of the audit trail (store.h: AuditRecord) carries
//
//   hash(N) = hex( BLAKE2b-256_key( hash(N-1) || Canonical(entry N) ) )
//
// where hash(0) is kGenesisHash, hash(N-1) enters as its 64 lower-case hex characters,
// BLAKE2b is keyed (libsodium crypto_generichash with a 32-byte key, derived from the
// master key by the caller) and Canonical() is the byte encoding below. Changing any
// field of any entry, or its position, changes its hash and breaks the link to every
// later entry; without the key nobody can compute a valid replacement.
//
// Canonical encoding (version 1), every field except `hash`:
//   0x01                                  format version
//   seq                                   8 bytes, big-endian two's complement
//   at                                    8 bytes, big-endian, microseconds since the epoch
//   actor, action, target, outcome, remote, details_json
//                                         each: length (8 bytes, big-endian) then the bytes
// Fixed-width integers and length-prefixed strings make the encoding injective: no two
// distinct records encode to the same bytes.
//
// Pure functions; thread-safe.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "store/store.h"

namespace automan::audit {

// The 32-byte key of the keyed hash (the same type as auth::Key).
using AuditKey = std::array<unsigned char, 32>;

// The previous hash of entry 1.
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// The canonical bytes of `r` (every field except r.hash), as described above.
std::string CanonicalBytes(const AuditRecord& r);

// Lower-case hex (64 characters) of the keyed BLAKE2b-256 of prev_hash_hex || Canonical(r).
// `prev_hash_hex` is used as given (its bytes); in a valid chain it is always the previous
// entry's 64-character hash, or kGenesisHash.
std::string EntryHash(const AuditKey& key, std::string_view prev_hash_hex, const AuditRecord& r);

// True for exactly 64 lower-case hex digits.
bool IsHashHex(std::string_view s);

// Keyed BLAKE2b-256 of arbitrary bytes, lower-case hex (the head anchor's MAC). Callers
// that share the chain key must keep their inputs distinct from chain inputs, which
// always start with 64 hex digits.
std::string KeyedHashHex(const AuditKey& key, std::string_view data);

}  // namespace automan::audit
