#include "common/ids.h"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <mutex>

namespace automan {

void SecureRandomBytes(void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      std::abort();  // no entropy source: nothing safe to do
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
}

std::string NewId(const Clock& clock) {
  static std::mutex mu;
  static uint64_t last_ms = 0;
  static uint16_t counter = 0;

  uint64_t ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock.Now().time_since_epoch())
          .count());
  std::array<unsigned char, 16> b{};
  SecureRandomBytes(b.data(), b.size());
  uint16_t seq = 0;
  {
    std::lock_guard lock(mu);
    if (ms <= last_ms) {
      ms = last_ms;  // a clock that steps back must not break ordering
      if (++counter > 0x0fff) {
        ++ms;  // counter exhausted: borrow the next millisecond
        counter = 0;
      }
    } else {
      counter = static_cast<uint16_t>(b[6] & 0x03);  // random start, room to grow
    }
    last_ms = ms;
    seq = counter;
  }
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(ms >> (40 - 8 * i));
  b[6] = static_cast<unsigned char>(0x70 | ((seq >> 8) & 0x0f));
  b[7] = static_cast<unsigned char>(seq & 0xff);
  b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3f));

  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[b[i] >> 4]);
    s.push_back(kHex[b[i] & 0x0f]);
  }
  return s;
}

bool IsValidId(std::string_view id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace automan
