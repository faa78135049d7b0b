// Time: the instant type every module uses, and the injectable clock.
//
// Logic never reads the wall clock directly; it takes a Clock&. Production code passes
// SystemClock(); tests pass a SimulatedClock that moves only when told, so leases, backoff
// and (later) DST changes are driven in microseconds instead of sleeps.
// Instants are UTC, microsecond precision; the store keeps them as integer microseconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace automan {

using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;
using Duration = std::chrono::microseconds;

// Thread-safe: every method may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  // The current UTC instant.
  virtual Timestamp Now() const = 0;
  // A monotonic reading for measuring elapsed time; never jumps with wall-clock changes.
  virtual std::chrono::steady_clock::time_point SteadyNow() const = 0;
};

// The process-wide real clock.
Clock& SystemClock();

// Moves only through Advance()/Set(). Both readings move together.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(Timestamp start);
  Timestamp Now() const override;
  std::chrono::steady_clock::time_point SteadyNow() const override;
  void Advance(Duration d);
  // Steps the wall clock (as NTP might); the steady reading is unaffected.
  void Set(Timestamp t);

 private:
  mutable std::mutex mu_;
  Timestamp now_;
  std::chrono::steady_clock::time_point steady_;
};

int64_t ToMicros(Timestamp t);
Timestamp FromMicros(int64_t us);

// RFC 3339 in UTC with milliseconds: "2026-11-22T07:11:30.123Z".
std::string FormatRfc3339(Timestamp t);
// Accepts RFC 3339 / ISO 8601 with 'Z' or a numeric offset, optional fractional seconds.
std::optional<Timestamp> ParseRfc3339(std::string_view text);

}  // namespace automan
