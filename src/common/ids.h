// Time-sortable identifiers (UUIDv7, RFC 9562) for runs and everything else that lists by
// creation. Lexicographic order of the canonical text equals creation order within one
// process (a 12-bit counter after the millisecond timestamp keeps ids strictly increasing
// even when many are made in the same millisecond) and across processes at millisecond
// granularity.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"

namespace automan {

// Thread-safe.
std::string NewId(const Clock& clock);
// True for the canonical lower-case 8-4-4-4-12 form.
bool IsValidId(std::string_view id);

// Fills `out` with cryptographically secure random bytes (getrandom(2)).
void SecureRandomBytes(void* out, size_t n);

}  // namespace automan
