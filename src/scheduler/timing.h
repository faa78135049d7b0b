// When a schedule fires: its definition (cron in a time zone with DST rules, a fixed
// interval, or a one-shot instant; optionally deadline-aligned with a lead time) mapped to
// UTC instants. Pure: no clock, no store. docs/schedules.md is the user-facing version.
//
// Occurrences and nominal times
//   Every occurrence has a nominal instant: the cron match (or interval tick, or `at`) as
//   a UTC instant. For a deadline-aligned schedule (`lead` set) the nominal instant is the
//   send time, stored as is and handed to the run as deadline_at; the run is due at
//   nominal - lead (derived once, here, in Due()). Jitter delays the due time by a
//   deterministic amount in [0, jitter) from (schedule id, nominal).
//
// DST (cron only)
//   A wall time in a spring-forward gap does not exist; one in a fall-back overlap exists
//   twice. Policies, per schedule:
//     gap:    shift — fire once at the first valid instant after the gap (02:30 → 03:00
//                     at the new offset); several wall times in one gap fire once.
//             skip  — do not fire.
//     repeat: first — fire at the first occurrence only.
//             both  — fire at both.
//   Defaults depend on the hour field: a schedule that names its hours ("30 2 * * *",
//   "*/15 1-2 * * *", "0 */2 * * *") gets shift + first, i.e. "once per day per named
//   wall time"; one whose hour field is the literal `*` ("*/20 * * * *", "@hourly")
//   follows real time: skip + both, i.e. it fires at every real occurrence of its minutes
//   and never at wall times that do not exist. Skips of a schedule that names its hours
//   are reported (as occurrences of kind kSkipDstGap / kSkipDstRepeat, so the ledger
//   records them); the real-time defaults skip nothing that exists and report nothing.
//   Interval schedules keep absolute spacing (ticks at multiples of `every` since the
//   Unix epoch, whatever the wall clock does).
//   The system tz database knows transitions up to 2037; later instants use the last
//   known offset (no DST).
#pragma once

#include <date/tz.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/duration.h"
#include "common/status.h"
#include "runbook/runbook.h"
#include "scheduler/cron.h"

namespace automan {

// Looks `name` up in the system tz database ("UTC", "Europe/Berlin"). The name is
// checked for shape first (letters, digits, "_+-/", no "..", no leading '/', at most 64
// bytes) and is never used as a path by us. kInvalidArgument with a message otherwise.
Result<const date::time_zone*> LookupZone(std::string_view name);

enum class DstGap { kShift, kSkip };
enum class DstRepeat { kFirst, kBoth };

struct Occurrence {
  enum class Kind {
    kFire,
    kSkipDstGap,     // wall time in a gap, gap: skip (hours named)
    kSkipDstRepeat,  // second occurrence of a repeated wall time, repeat: first (hours named)
  };
  Timestamp nominal{};
  Kind kind = Kind::kFire;
  LocalSeconds wall{};  // the wall time it stands for (cron: the match; others: local time)
};

class ScheduleTiming {
 public:
  // From a runbook's schedule entry (already structurally validated by the runbook
  // parser): parses the cron expression and the zone, resolves the DST defaults.
  // kInvalidArgument with a message naming the key ("cron: minute: 60 is out of range").
  static Result<ScheduleTiming> Make(const ScheduleSpec& spec);

  // The first occurrence whose nominal instant is strictly after `after`; nullopt when
  // there is none (a past `at`, a cron with no match before year 9999).
  std::optional<Occurrence> Next(Timestamp after) const;

  // When the run of this occurrence is due: nominal - lead + jitter.
  Timestamp Due(Timestamp nominal, std::string_view schedule_id) const;
  // How late a fire may still run (misfire policy): max_lateness when set; otherwise one
  // period: the interval, or the gap from `nominal` to the next occurrence (cron), or
  // one hour for a one-shot `at`.
  Duration MaxLateness(Timestamp nominal) const;

  // "2026-03-29T03:00:00+02:00": `t` in the schedule's zone with its UTC offset.
  std::string FormatLocal(Timestamp t) const;
  // "2026-03-29T02:30:00" (a wall time, no offset).
  static std::string FormatWall(LocalSeconds wall);

  const date::time_zone* zone() const { return zone_; }
  const std::optional<CronExpr>& cron() const { return cron_; }
  DstGap gap() const { return gap_; }
  DstRepeat repeat() const { return repeat_; }
  std::optional<Duration> lead() const { return lead_; }

 private:
  std::optional<Occurrence> NextCron(Timestamp after) const;

  const date::time_zone* zone_ = nullptr;
  std::optional<CronExpr> cron_;
  std::optional<Duration> every_;
  std::optional<Timestamp> at_;
  std::optional<Duration> lead_;
  std::optional<Duration> jitter_;
  std::optional<Duration> max_lateness_;
  DstGap gap_ = DstGap::kShift;
  DstRepeat repeat_ = DstRepeat::kFirst;
  bool report_dst_skips_ = true;
};

}  // namespace automan
