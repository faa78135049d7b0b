// Delay before retry number `retry` (1 = the first retry) under a RetryPolicy:
// fixed -> delay; exponential -> delay * 2^(retry-1), capped at max_delay.
#pragma once

#include "runbook/runbook.h"

namespace automan {

inline Millis BackoffDelay(const RetryPolicy& p, int retry) {
  if (p.backoff == RetryPolicy::Backoff::kFixed || retry <= 1) {
    return std::min(p.delay, std::max(p.delay, p.max_delay));
  }
  Millis d = p.delay;
  for (int i = 1; i < retry && d < p.max_delay; ++i) d *= 2;
  return std::min(d, p.max_delay);
}

}  // namespace automan
