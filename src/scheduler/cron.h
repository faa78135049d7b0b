// Cron expressions: parsing, next match in local (wall-clock) time, and plain-words
// explanation. Pure: no clock, no time zone, no I/O. Time zones and DST are the business
// of scheduler/timing.h, which maps the local matches found here to UTC instants.
//
// Grammar (docs/schedules.md is the user-facing version):
//   5 fields  "MIN HOUR DOM MON DOW", or 6 fields "SEC MIN HOUR DOM MON DOW", separated by
//   ASCII spaces or tabs. Each field is a comma list of items; an item is `*`, `N`, `A-B`,
//   each optionally followed by `/STEP` (`*/15`, `10-50/20`; `N/STEP` means N-max/STEP;
//   STEP is 1..the field's maximum).
//   Ranges:  SEC 0-59, MIN 0-59, HOUR 0-23, DOM 1-31, MON 1-12 or JAN-DEC,
//            DOW 0-7 or SUN-SAT (0 and 7 are Sunday; SUN closing a range is 7, so FRI-SUN
//            works). Names are case-insensitive. Leading zeros are fine (`05`).
//   DOM also: `L` (last day), `L-N` (N days before the last, N 0..30), `NW` (the weekday
//            nearest day N, never crossing into another month; no match in a month without
//            day N), `LW` (last weekday), `?`.
//   DOW also: `NL` / `NAMEL` (last such weekday of the month), `N#K` / `NAME#K` (the K-th,
//            K 1..5), `?`.
//   `?` (only in DOM and DOW) must be the whole field and means "any", like `*`.
//   Macros:  @yearly @annually @monthly @weekly @daily @midnight @hourly (@reboot is not
//            supported: schedules fire at times). No CRON_TZ= / TZ= prefixes: a schedule has
//            its own tz.
//   Day matching follows Vixie cron: when both DOM and DOW are restricted (neither starts
//   with `*` or is `?`) a day matches if EITHER matches; otherwise both must match (so
//   `0 0 30 2 MON` fires on Mondays in February, while `0 0 */2 * MON` fires on Mondays
//   that are odd days of the month).
//   Ranges do not wrap (`FRI-MON` is an error); `A-B` needs A <= B.
// Every expression that parses can fire: one that matches no date in a whole 400-year
// Gregorian cycle (`0 0 30 2 *`) is rejected by Parse, with a message.
// Times handled are years 0000..9999: Next() never returns a later match and Matches() is
// false outside that range.
#pragma once

#include <date/date.h>

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace automan {

using LocalSeconds = date::local_seconds;

class CronExpr {
 public:
  // Longest accepted expression, in bytes.
  static constexpr size_t kMaxLength = 256;

  // kInvalidArgument with a message that names the field and the offending text, e.g.
  //   minute: "60" is out of range 0-59
  //   minute: 99 in "1-99/7" is out of range 0-59
  //   minute: step 0 in "*/0" must be at least 1
  //   day-of-month: "32" is out of range 1-31
  //   expected 5 or 6 fields separated by spaces, got 4
  //   CRON_TZ= prefixes are not supported: set the schedule's tz instead
  //   never fires: no date matches day 30 of February
  static Result<CronExpr> Parse(std::string_view text);

  // The first local time that matches, at or after `from` (whole seconds), and no later
  // than `from` + 400 years (one Gregorian cycle: if nothing matches by then nothing
  // ever will). nullopt when there is none in that window or the year would pass 9999.
  // Cost: at most 4,801 months scanned, O(1) each (a precomputed day mask per month length
  // and first weekday), then one time-of-day lookup; constant memory.
  std::optional<LocalSeconds> Next(LocalSeconds from) const;
  // As Next, but only matches strictly before `limit`.
  std::optional<LocalSeconds> NextBefore(LocalSeconds from, LocalSeconds limit) const;
  // Whether `t` (whole seconds) matches: the brute-force definition tests use as oracle.
  bool Matches(LocalSeconds t) const;

  // The expression as given (trimmed).
  const std::string& text() const { return text_; }
  bool has_seconds() const { return has_seconds_; }
  // True unless the hour field is the literal `*` (see the DST defaults in timing.h):
  // "30 2 * * *", "*/15 1-2 * * *", "0 */2 * * *" and "@daily" name their hours;
  // "*/20 * * * *" and "@hourly" do not.
  bool names_hours() const { return names_hours_; }

  // Plain words, e.g. "at 02:30 every day", "every 15 minutes, between 01:00 and 02:59,
  // on Monday through Friday", "at 00:00 on the last day of the month".
  std::string Explain() const;

 private:
  // The first match in [from, limit), searching month by month.
  std::optional<LocalSeconds> Search(LocalSeconds from, LocalSeconds limit) const;
  // Seconds since midnight of the first matching time of day at or after `tod`, or -1.
  int FirstTimeOfDay(int tod) const;
  // Whether day `d` (1-based) matches, for a month of `len` days whose day 1 is weekday `w1`
  // (0 = Sunday): the per-day rules written out directly (Matches() uses this).
  bool DayMatches(unsigned d, unsigned len, unsigned w1) const;
  // Fills the derived tables below from the parsed fields.
  void Derive();

  std::string text_;
  bool has_seconds_ = false;
  bool names_hours_ = false;
  std::bitset<60> seconds_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> dom_;     // 1..31 (all of them for `*` and `?`)
  std::bitset<13> months_;  // 1..12
  std::bitset<7> dow_;      // 0..6, Sunday 0 (all of them for `*` and `?`)
  bool dom_star_ = true;    // DOM starts with '*' or is '?'
  bool dow_star_ = true;
  // Quartz-style specials.
  std::bitset<31> dom_last_;             // L-N (L is L-0): N days before the last day
  bool dom_last_weekday_ = false;        // LW
  std::bitset<32> dom_nearest_weekday_;  // NW
  std::bitset<7> dow_last_;              // NL: last weekday N of the month
  std::bitset<7> dow_nth_[6];            // N#K: dow_nth_[K][N]
  // Derived by Derive() for Next(): matching days as a bit mask (bit d = day d), indexed by
  // [month length - 28][weekday of day 1], since the day rules depend on nothing else; and
  // for each field the smallest allowed value >= i (-1: none).
  uint32_t day_masks_[4][7] = {};
  int8_t next_second_[61] = {};
  int8_t next_minute_[61] = {};
  int8_t next_hour_[25] = {};
  // The fields as written (after macro expansion), SEC MIN HOUR DOM MON DOW; SEC is "0" for
  // 5-field expressions. Explain() reads these.
  std::string fields_[6];
};

}  // namespace automan
