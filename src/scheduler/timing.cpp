#include "scheduler/timing.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace automan {
namespace {

using std::chrono::seconds;
using SysSeconds = std::chrono::sys_seconds;

bool ZoneNameShapeOk(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '/' ||
      name.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '+' || c == '-' || c == '/';
  });
}

// date's sys_info bounds are seconds since the epoch like ours; these keep the two
// chrono libraries' types apart.
SysSeconds ToSys(Timestamp t) { return std::chrono::floor<seconds>(t); }
Timestamp FromSys(SysSeconds s) { return std::chrono::time_point_cast<Duration>(s); }
LocalSeconds WallOf(SysSeconds t, seconds offset) {
  return LocalSeconds{t.time_since_epoch() + offset};
}
SysSeconds InstantOf(LocalSeconds wall, seconds offset) {
  return SysSeconds{wall.time_since_epoch() - offset};
}

// Transitions before this are not worth looking behind (and keep the arithmetic far from
// the library's "beginning of time" sentinel).
constexpr int64_t kEarliestTransition = -5'000'000'000;  // about 1811

uint64_t Fnv1a(std::string_view a, int64_t b) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](unsigned char c) {
    h ^= c;
    h *= 1099511628211ULL;
  };
  for (char c : a) mix(static_cast<unsigned char>(c));
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(static_cast<uint64_t>(b) >> (8 * i)));
  return h;
}

}  // namespace

Result<const date::time_zone*> LookupZone(std::string_view name) {
  if (!ZoneNameShapeOk(name)) {
    return Error(ErrorCode::kInvalidArgument,
                 "\"{}\" is not a time zone name; write an IANA name such as Europe/Berlin, "
                 "America/New_York or UTC",
                 name.size() > 64 ? std::string(name.substr(0, 64)) + "..." : std::string(name));
  }
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return Error(ErrorCode::kInvalidArgument,
                 "unknown time zone \"{}\" (not in the system tz database); write an IANA "
                 "name such as Europe/Berlin, America/New_York or UTC",
                 name);
  }
}

Result<ScheduleTiming> ScheduleTiming::Make(const ScheduleSpec& spec) {
  ScheduleTiming t;
  const int kinds = (spec.cron.empty() ? 0 : 1) + (spec.every ? 1 : 0) + (spec.at.empty() ? 0 : 1);
  if (kinds != 1) {
    return Error(ErrorCode::kInvalidArgument, "a schedule needs exactly one of cron, every or at");
  }
  auto zone = LookupZone(spec.tz.empty() ? "UTC" : spec.tz);
  if (!zone.ok()) return Error(ErrorCode::kInvalidArgument, "tz: {}", zone.status().message());
  t.zone_ = *zone;
  if (!spec.cron.empty()) {
    auto cron = CronExpr::Parse(spec.cron);
    if (!cron.ok()) return Error(ErrorCode::kInvalidArgument, "cron: {}", cron.status().message());
    t.cron_ = std::move(*cron);
  }
  if (spec.every) {
    if (*spec.every < std::chrono::seconds(1)) {
      return Error(ErrorCode::kInvalidArgument, "every: must be at least 1s");
    }
    t.every_ = std::chrono::duration_cast<Duration>(*spec.every);
  }
  if (!spec.at.empty()) {
    auto at = ParseRfc3339(spec.at);
    if (!at) {
      return Error(ErrorCode::kInvalidArgument, "at: \"{}\" is not an RFC 3339 instant", spec.at);
    }
    t.at_ = *at;
  }
  auto non_negative = [](const std::optional<Millis>& d, const char* key,
                         std::optional<Duration>& out) -> Status {
    if (!d) return Status::Ok();
    if (d->count() < 0) return Error(ErrorCode::kInvalidArgument, "{}: must not be negative", key);
    out = std::chrono::duration_cast<Duration>(*d);
    return Status::Ok();
  };
  AUTOMAN_RETURN_IF_ERROR(non_negative(spec.lead, "lead", t.lead_));
  AUTOMAN_RETURN_IF_ERROR(non_negative(spec.jitter, "jitter", t.jitter_));
  AUTOMAN_RETURN_IF_ERROR(non_negative(spec.max_lateness, "max_lateness", t.max_lateness_));
  if (t.lead_ && *t.lead_ > std::chrono::hours(24 * 366)) {
    return Error(ErrorCode::kInvalidArgument, "lead: at most one year");
  }
  if (t.jitter_ && *t.jitter_ > std::chrono::hours(24)) {
    return Error(ErrorCode::kInvalidArgument, "jitter: at most 24h");
  }

  const bool names_hours = t.cron_ && t.cron_->names_hours();
  t.gap_ = names_hours ? DstGap::kShift : DstGap::kSkip;
  t.repeat_ = names_hours ? DstRepeat::kFirst : DstRepeat::kBoth;
  if (spec.dst_gap == "shift") t.gap_ = DstGap::kShift;
  if (spec.dst_gap == "skip") t.gap_ = DstGap::kSkip;
  if (spec.dst_repeat == "first") t.repeat_ = DstRepeat::kFirst;
  if (spec.dst_repeat == "both") t.repeat_ = DstRepeat::kBoth;
  t.report_dst_skips_ = names_hours;
  return t;
}

std::optional<Occurrence> ScheduleTiming::Next(Timestamp after) const {
  if (cron_) return NextCron(after);
  if (every_) {
    const int64_t step = every_->count();
    const int64_t a = ToMicros(after);
    // The first multiple of `step` strictly greater than `a` (floor division for negatives).
    int64_t k = a / step;
    if (a % step != 0 && a < 0) --k;
    const Timestamp nominal = FromMicros((k + 1) * step);
    const auto info = zone_->get_info(ToSys(nominal));
    return Occurrence{nominal, Occurrence::Kind::kFire, WallOf(ToSys(nominal), info.offset)};
  }
  if (at_ && *at_ > after) {
    const auto info = zone_->get_info(ToSys(*at_));
    return Occurrence{*at_, Occurrence::Kind::kFire, WallOf(ToSys(*at_), info.offset)};
  }
  return std::nullopt;
}

// See the DST section of timing.h. Wall times map to instants in two sequences:
//  - primary: each matching wall time at its first occurrence (or, in a gap, the end of
//    the gap). This map is non-decreasing in wall time, so the first match whose instant
//    is after `after` is the primary candidate.
//  - secondary: the second occurrences of matching wall times inside fall-back overlaps.
// The answer is the earlier of the two candidates (they never coincide: an instant has one
// wall time, and it is either its first or its second occurrence).
std::optional<Occurrence> ScheduleTiming::NextCron(Timestamp after) const {
  const CronExpr& cron = *cron_;
  const SysSeconds t = ToSys(after);  // candidates are whole seconds: > after iff >= t + 1s
  const date::sys_info here = zone_->get_info(t);

  // Primary candidate.
  LocalSeconds from = WallOf(t, here.offset) + seconds(1);
  if (here.begin.time_since_epoch().count() > kEarliestTransition) {
    const date::sys_info before = zone_->get_info(here.begin - seconds(1));
    if (before.offset > here.offset && t < here.begin + (before.offset - here.offset)) {
      // t is in the second pass through an overlap: the wall times up to the end of the
      // overlap had their first occurrence before t.
      from = std::max(from, WallOf(here.begin, before.offset));
    }
  }
  std::optional<Occurrence> primary;
  for (int guard = 0; guard < 64 && !primary; ++guard) {
    const std::optional<LocalSeconds> m = cron.Next(from);
    if (!m) break;
    const date::local_info li = zone_->get_info(*m);
    if (li.result == date::local_info::nonexistent) {
      const SysSeconds gap_end = li.second.begin;
      const LocalSeconds gap_end_wall = WallOf(gap_end, li.second.offset);
      if (gap_ == DstGap::kShift || cron.Matches(gap_end_wall)) {
        primary = Occurrence{FromSys(gap_end), Occurrence::Kind::kFire,
                             gap_ == DstGap::kShift ? *m : gap_end_wall};
      } else if (report_dst_skips_) {
        primary = Occurrence{FromSys(gap_end), Occurrence::Kind::kSkipDstGap, *m};
      } else {
        from = gap_end_wall;  // the wall times in the gap do not exist: nothing to report
        continue;
      }
    } else {
      primary = Occurrence{FromSys(InstantOf(*m, li.first.offset)), Occurrence::Kind::kFire, *m};
    }
    if (primary->nominal <= after) {  // only in odd zone histories; move on
      from = *m + seconds(1);
      primary.reset();
    }
  }

  // Secondary candidate: look through the overlaps between t and the primary candidate.
  std::optional<Occurrence> secondary;
  const bool want_second = repeat_ == DstRepeat::kBoth || report_dst_skips_;
  if (want_second && primary) {
    date::sys_info interval = here;
    for (int guard = 0; guard < 1000; ++guard) {
      if (FromSys(interval.begin) > primary->nominal) break;
      if (interval.begin.time_since_epoch().count() > kEarliestTransition) {
        const date::sys_info before = zone_->get_info(interval.begin - seconds(1));
        if (before.offset > interval.offset) {
          const SysSeconds overlap_end = interval.begin + (before.offset - interval.offset);
          if (overlap_end > t) {
            LocalSeconds lo = WallOf(interval.begin, interval.offset);
            if (t >= interval.begin) lo = std::max(lo, WallOf(t, interval.offset) + seconds(1));
            const LocalSeconds hi = WallOf(interval.begin, before.offset);
            if (const auto m = cron.NextBefore(lo, hi)) {
              secondary = Occurrence{FromSys(InstantOf(*m, interval.offset)),
                                     repeat_ == DstRepeat::kBoth ? Occurrence::Kind::kFire
                                                                 : Occurrence::Kind::kSkipDstRepeat,
                                     *m};
              break;
            }
          }
        }
      }
      if (interval.end >= SysSeconds::max() - seconds(1) || interval.end <= interval.begin) break;
      if (FromSys(interval.end) > primary->nominal) break;
      interval = zone_->get_info(interval.end);
    }
  }
  if (secondary && (!primary || secondary->nominal < primary->nominal)) return secondary;
  return primary;
}

Timestamp ScheduleTiming::Due(Timestamp nominal, std::string_view schedule_id) const {
  Timestamp due = nominal;
  if (lead_) due -= *lead_;
  if (jitter_ && jitter_->count() > 0) {
    due += Duration(static_cast<int64_t>(Fnv1a(schedule_id, ToMicros(nominal)) %
                                         static_cast<uint64_t>(jitter_->count())));
  }
  return due;
}

Duration ScheduleTiming::MaxLateness(Timestamp nominal) const {
  if (max_lateness_) return *max_lateness_;
  if (every_) return *every_;
  if (cron_) {
    if (auto next = Next(nominal)) return next->nominal - nominal;
    return std::chrono::hours(24);
  }
  return std::chrono::hours(1);
}

std::string ScheduleTiming::FormatWall(LocalSeconds wall) { return date::format("%FT%T", wall); }

std::string ScheduleTiming::FormatLocal(Timestamp t) const {
  const SysSeconds s = ToSys(t);
  const auto info = zone_->get_info(s);
  const LocalSeconds wall = WallOf(s, info.offset);
  const int64_t off = info.offset.count();
  const int64_t a = off < 0 ? -off : off;
  std::string text = FormatWall(wall);
  if (a % 60 != 0) {
    return fmt::format("{}{}{:02}:{:02}:{:02}", text, off < 0 ? '-' : '+', a / 3600, a / 60 % 60,
                       a % 60);
  }
  return fmt::format("{}{}{:02}:{:02}", text, off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}

}  // namespace automan
