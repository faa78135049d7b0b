#include "auth/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace automan::auth {

Duration RateLimiter::Take(std::string_view key, Timestamp now) {
  if (limit_.per_second <= 0) return Duration::zero();
  std::lock_guard lock(mu_);
  if (now - last_sweep_ > std::chrono::seconds(10) || buckets_.size() > max_keys_) Sweep(now);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) {
    it = buckets_.emplace(std::string(key), Bucket{limit_.burst, now}).first;
  }
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  if (elapsed > 0) {
    b.tokens = std::min(limit_.burst, b.tokens + elapsed * limit_.per_second);
    b.updated = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return Duration::zero();
  }
  const double wait_s = (1.0 - b.tokens) / limit_.per_second;
  return Duration(static_cast<int64_t>(std::ceil(wait_s * 1e6)));
}

void RateLimiter::Reset(std::string_view key) {
  std::lock_guard lock(mu_);
  buckets_.erase(std::string(key));
}

size_t RateLimiter::KeysForTest() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

void RateLimiter::Sweep(Timestamp now) {
  last_sweep_ = now;
  const double refill_s = limit_.burst / limit_.per_second;
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const double elapsed = std::chrono::duration<double>(now - it->second.updated).count();
    if (it->second.tokens + elapsed * limit_.per_second >= limit_.burst || elapsed > refill_s) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
  // Still too many (a flood of distinct keys): drop the least recently used half.
  if (buckets_.size() > max_keys_) {
    std::vector<std::pair<Timestamp, std::string>> by_age;
    by_age.reserve(buckets_.size());
    for (const auto& [k, b] : buckets_) by_age.emplace_back(b.updated, k);
    std::sort(by_age.begin(), by_age.end());
    for (size_t i = 0; i < by_age.size() / 2; ++i) buckets_.erase(by_age[i].second);
  }
}

}  // namespace automan::auth
