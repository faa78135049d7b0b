// Token-bucket rate limits keyed by a string (a client address, a username, a subject).
//
// Each key gets a bucket of `burst` tokens refilled at `per_second`; a request takes one.
// Buckets that are full again are forgotten, so memory is bounded by the keys active in
// the last burst/per_second seconds (and at most `max_keys`, beyond which the oldest idle
// buckets are dropped). Thread-safe.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"

namespace automan::auth {

class RateLimiter {
 public:
  struct Limit {
    double per_second = 10;
    double burst = 20;
  };
  explicit RateLimiter(Limit limit, size_t max_keys = 100000)
      : limit_(limit), max_keys_(max_keys) {}

  // Zero when the request may go ahead (a token was taken); else how long until one will
  // be available (nothing taken). A limit with per_second <= 0 allows everything.
  Duration Take(std::string_view key, Timestamp now);
  // Returns the bucket of `key` to full (a successful login clears its failures).
  void Reset(std::string_view key);
  size_t KeysForTest() const;

 private:
  struct Bucket {
    double tokens;
    Timestamp updated;
  };
  void Sweep(Timestamp now);

  Limit limit_;
  size_t max_keys_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  Timestamp last_sweep_{};
};

}  // namespace automan::auth
