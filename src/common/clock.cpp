#include "common/clock.h"

#include <date/date.h>

#include <sstream>

namespace automan {

namespace {
class RealClock final : public Clock {
 public:
  Timestamp Now() const override {
    return std::chrono::time_point_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now());
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::now();
  }
};
}  // namespace

Clock& SystemClock() {
  static RealClock clock;
  return clock;
}

SimulatedClock::SimulatedClock(Timestamp start)
    : now_(start), steady_(std::chrono::steady_clock::time_point{}) {}

Timestamp SimulatedClock::Now() const {
  std::lock_guard lock(mu_);
  return now_;
}

std::chrono::steady_clock::time_point SimulatedClock::SteadyNow() const {
  std::lock_guard lock(mu_);
  return steady_;
}

void SimulatedClock::Advance(Duration d) {
  std::lock_guard lock(mu_);
  now_ += d;
  steady_ += d;
}

void SimulatedClock::Set(Timestamp t) {
  std::lock_guard lock(mu_);
  now_ = t;
}

int64_t ToMicros(Timestamp t) { return t.time_since_epoch().count(); }
Timestamp FromMicros(int64_t us) { return Timestamp(std::chrono::microseconds(us)); }

std::string FormatRfc3339(Timestamp t) {
  auto ms = std::chrono::floor<std::chrono::milliseconds>(t);
  return date::format("%FT%TZ", ms);
}

std::optional<Timestamp> ParseRfc3339(std::string_view text) {
  if (text.size() > 64) return std::nullopt;
  std::istringstream in{std::string(text)};
  date::sys_time<std::chrono::microseconds> tp;
  if (!text.empty() && (text.back() == 'Z' || text.back() == 'z')) {
    in >> date::parse("%FT%T", tp);
    if (in.fail()) return std::nullopt;
    char z = 0;
    in >> z;
    if (z != 'Z' && z != 'z') return std::nullopt;
  } else {
    std::chrono::minutes offset{0};
    in >> date::parse("%FT%T%Ez", tp, offset);
    if (in.fail()) return std::nullopt;
  }
  if (in.peek() != std::char_traits<char>::eof()) return std::nullopt;
  return tp;
}

}  // namespace automan
