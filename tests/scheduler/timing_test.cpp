// ScheduleTiming (src/scheduler/timing.h): schedule definitions mapped to UTC instants, with
// the DST policies. The cron part is checked against brute-force oracles that share nothing
// with timing.cpp's search except CronExpr::Matches (the definition of a match) and the tz
// database's get_info:
//   - WallOracle ("names hours" semantics, or any explicit policy): every wall-clock minute
//     (second, for 6-field expressions) that matches, classified by get_info(local):
//     unique -> its instant; nonexistent -> the end of the gap (gap: shift, several wall
//     times fire once) or a reported kSkipDstGap there (gap: skip); ambiguous -> the first
//     instant, plus the second (repeat: both) or a reported kSkipDstRepeat (repeat: first).
//     Skips are reported only for schedules that name their hours.
//   - RealTimeOracle (hour field `*` with its defaults skip + both): every UTC minute
//     (second) whose local time matches; nothing reported.
// Both are compared with iterating ScheduleTiming::Next from a - 1s to b, and with Next
// from arbitrary instants inside the window.
// Randomized: random expressions and policies over windows of a day around every DST
// transition of 2026-2028 in 12 zones, some historic transitions (Apia skipping
// 2011-12-30, Sao Paulo's midnight changes) and sampled windows elsewhere. The full 3-year
// comparison runs in optimized builds without sanitizers (AUTOMAN_TIMING_FULL_SWEEP=1
// forces it, =0 turns it off); sanitizer builds sweep two shorter spans.
// Replay a randomized run with AUTOMAN_TIMING_SEED=<seed> (every randomized test prints it).
#include "scheduler/timing.h"

#include <date/date.h>
#include <date/tz.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "scheduler/cron.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AUTOMAN_TIMING_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define AUTOMAN_TIMING_SANITIZED 1
#endif
#endif

namespace automan {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using SysSeconds = std::chrono::sys_seconds;
using Kind = Occurrence::Kind;

#if defined(NDEBUG) && !defined(AUTOMAN_TIMING_SANITIZED)
constexpr bool kOptimizedBuild = true;
#else
constexpr bool kOptimizedBuild = false;
#endif

bool FullSweep() {
  const char* env = std::getenv("AUTOMAN_TIMING_FULL_SWEEP");
  if (env != nullptr && *env != '\0') return std::string_view(env) != "0";
  return kOptimizedBuild;
}

uint64_t BaseSeed() {
  const char* env = std::getenv("AUTOMAN_TIMING_SEED");
  if (env != nullptr && *env != '\0') return std::strtoull(env, nullptr, 10);
  return 20260329;
}

const std::vector<std::string> kZones = {
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Europe/Dublin",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "America/St_Johns",
    "Asia/Tehran",
    "UTC",
    "Pacific/Apia",
};

// ---------------------------------------------------------------------------------------
// Small helpers.

Timestamp T(std::string_view rfc3339) {
  auto t = ParseRfc3339(rfc3339);
  if (!t) {
    ADD_FAILURE() << "bad instant in test: " << rfc3339;
    return Timestamp{};
  }
  return *t;
}
SysSeconds Sec(Timestamp t) { return std::chrono::floor<seconds>(t); }
Timestamp Ts(SysSeconds s) { return std::chrono::time_point_cast<Duration>(s); }
SysSeconds InstantOf(LocalSeconds wall, seconds offset) {
  return SysSeconds{wall.time_since_epoch() - offset};
}
std::string Utc(SysSeconds s) { return FormatRfc3339(Ts(s)); }

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kFire:
      return "fire";
    case Kind::kSkipDstGap:
      return "skip-gap";
    case Kind::kSkipDstRepeat:
      return "skip-repeat";
  }
  return "?";
}

ScheduleSpec CronSpec(std::string expr, std::string tz = "UTC", std::string gap = "",
                      std::string repeat = "") {
  ScheduleSpec s;
  s.id = "s";
  s.cron = std::move(expr);
  s.tz = std::move(tz);
  s.dst_gap = std::move(gap);
  s.dst_repeat = std::move(repeat);
  return s;
}

std::optional<ScheduleTiming> MakeTiming(const ScheduleSpec& spec) {
  auto r = ScheduleTiming::Make(spec);
  if (!r.ok()) {
    ADD_FAILURE() << "ScheduleTiming::Make: " << r.status().message();
    return std::nullopt;
  }
  return std::move(r).value();
}

// The first `n` occurrences after `from`, as "<local time with offset>[ <skip kind>]".
std::vector<std::string> Seq(const ScheduleTiming& t, Timestamp from, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    auto o = t.Next(from);
    if (!o) break;
    out.push_back(t.FormatLocal(o->nominal) +
                  (o->kind == Kind::kFire ? "" : std::string(" ") + KindName(o->kind)));
    from = o->nominal;
  }
  return out;
}

std::vector<std::string> SplitFields(std::string_view expr) {
  std::vector<std::string> fields;
  std::string cur;
  for (char c : expr) {
    if (c == ' ' || c == '\t') {
      if (!cur.empty()) fields.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) fields.push_back(std::move(cur));
  return fields;
}

// The DST defaults' criterion, read from the text (not from CronExpr::names_hours()): the
// hour field as written is anything but the literal `*`.
bool NamesHours(std::string_view expr) {
  if (!expr.empty() && expr.front() == '@') return expr != "@hourly";
  const auto f = SplitFields(expr);
  return (f.size() == 6 ? f[2] : f[1]) != "*";
}
bool SixFields(std::string_view expr) {
  return !expr.empty() && expr.front() != '@' && SplitFields(expr).size() == 6;
}

// ---------------------------------------------------------------------------------------
// Oracles.

struct Occ {
  SysSeconds at;
  Kind kind;
  LocalSeconds wall;  // informational: not compared
  bool operator<(const Occ& o) const {
    return at != o.at ? at < o.at : static_cast<int>(kind) < static_cast<int>(o.kind);
  }
};
using OccList = std::vector<Occ>;

// The least and greatest UTC offset in force during [a, b), and whether all of them are
// whole minutes.
struct OffsetSpan {
  seconds min;
  seconds max;
  bool whole_minutes;
};
OffsetSpan Offsets(const date::time_zone* zone, SysSeconds a, SysSeconds b) {
  date::sys_info info = zone->get_info(a);
  OffsetSpan s{info.offset, info.offset, info.offset.count() % 60 == 0};
  while (info.end < b) {
    info = zone->get_info(info.end);
    s.min = std::min(s.min, info.offset);
    s.max = std::max(s.max, info.offset);
    s.whole_minutes = s.whole_minutes && info.offset.count() % 60 == 0;
  }
  return s;
}

OccList WallOracle(const CronExpr& cron, const date::time_zone* zone, DstGap gap, DstRepeat repeat,
                   bool report, seconds step, SysSeconds a, SysSeconds b) {
  const OffsetSpan span = Offsets(zone, a, b);
  // Every instant in [a, b) (and every transition there) has a wall time in [lo, hi).
  const LocalSeconds lo =
      std::chrono::floor<minutes>(LocalSeconds{a.time_since_epoch() + span.min - hours(1)});
  const LocalSeconds hi{b.time_since_epoch() + span.max + hours(1)};
  std::map<SysSeconds, Occ> fires, gap_skips, repeat_skips;
  for (LocalSeconds l = lo; l < hi; l += step) {
    if (!cron.Matches(l)) continue;
    const date::local_info li = zone->get_info(l);
    switch (li.result) {
      case date::local_info::unique:
        fires.emplace(InstantOf(l, li.first.offset), Occ{{}, Kind::kFire, l});
        break;
      case date::local_info::nonexistent: {
        const SysSeconds end_of_gap = li.second.begin;
        if (gap == DstGap::kShift) {
          fires.emplace(end_of_gap, Occ{{}, Kind::kFire, l});
        } else if (report) {
          gap_skips.emplace(end_of_gap, Occ{{}, Kind::kSkipDstGap, l});
        }
        break;
      }
      case date::local_info::ambiguous:
        fires.emplace(InstantOf(l, li.first.offset), Occ{{}, Kind::kFire, l});
        if (repeat == DstRepeat::kBoth) {
          fires.emplace(InstantOf(l, li.second.offset), Occ{{}, Kind::kFire, l});
        } else if (report) {
          repeat_skips.emplace(InstantOf(l, li.second.offset), Occ{{}, Kind::kSkipDstRepeat, l});
        }
        break;
    }
  }
  OccList out;
  auto take = [&](const std::map<SysSeconds, Occ>& m, bool unless_fire) {
    for (const auto& [at, o] : m) {
      if (at < a || at >= b) continue;
      // A gap whose end is itself a matching wall time fires there: nothing is skipped.
      if (unless_fire && fires.count(at) != 0) continue;
      out.push_back(Occ{at, o.kind, o.wall});
    }
  };
  take(fires, false);
  take(gap_skips, true);
  take(repeat_skips, true);
  std::sort(out.begin(), out.end());
  return out;
}

OccList RealTimeOracle(const CronExpr& cron, const date::time_zone* zone, seconds step,
                       SysSeconds a, SysSeconds b) {
  if (!Offsets(zone, a, b).whole_minutes) step = seconds(1);
  const int64_t st = step.count();
  const int64_t a0 = a.time_since_epoch().count();
  SysSeconds u{seconds((a0 >= 0 ? (a0 + st - 1) / st : a0 / st) * st)};
  date::sys_info info = zone->get_info(u);
  OccList out;
  for (; u < b; u += step) {
    if (u >= info.end) info = zone->get_info(u);
    const LocalSeconds l{u.time_since_epoch() + info.offset};
    if (cron.Matches(l)) out.push_back(Occ{u, Kind::kFire, l});
  }
  return out;
}

// Iterates Next from a - 1s until past b; checks each step's own invariants on the way.
struct Iterated {
  OccList list;
  std::string error;  // the first broken invariant, if any
};
Iterated IterateNext(const ScheduleTiming& timing, SysSeconds a, SysSeconds b, size_t cap) {
  Iterated r;
  const CronExpr& cron = *timing.cron();
  Timestamp t = Ts(a) - seconds(1);
  while (true) {
    const std::optional<Occurrence> o = timing.Next(t);
    if (!o || o->nominal >= Ts(b)) break;
    const SysSeconds at = Sec(o->nominal);
    std::string why;
    if (o->nominal <= t) {
      why = "not strictly after the previous one";
    } else if (Ts(at) != o->nominal) {
      why = "not a whole second";
    } else if (!cron.Matches(o->wall)) {
      why = "its wall time does not match the expression";
    } else {
      const date::local_info li = timing.zone()->get_info(o->wall);
      bool ok = false;
      switch (li.result) {
        case date::local_info::unique:
          ok = at == InstantOf(o->wall, li.first.offset);
          break;
        case date::local_info::nonexistent:
          ok = at == li.second.begin;
          break;
        case date::local_info::ambiguous:
          ok = at == InstantOf(o->wall, li.first.offset) ||
               at == InstantOf(o->wall, li.second.offset);
          break;
      }
      if (!ok) why = "its wall time does not stand for its instant";
    }
    if (!why.empty()) {
      r.error = fmt::format("Next({}) returned {} {} (wall {}): {}", FormatRfc3339(t),
                            FormatRfc3339(o->nominal), KindName(o->kind),
                            ScheduleTiming::FormatWall(o->wall), why);
      break;
    }
    r.list.push_back(Occ{at, o->kind, o->wall});
    if (r.list.size() > cap) {
      r.error = fmt::format("more than {} occurrences in the window", cap);
      break;
    }
    t = o->nominal;
  }
  return r;
}

std::string Describe(const ScheduleTiming& timing, const Occ& o) {
  return fmt::format("{} ({}) {} [wall {}]", timing.FormatLocal(Ts(o.at)), Utc(o.at),
                     KindName(o.kind), ScheduleTiming::FormatWall(o.wall));
}

::testing::AssertionResult SameOccurrences(const OccList& expected, const OccList& actual,
                                           const ScheduleTiming& timing) {
  auto key_less = [](const Occ& x, const Occ& y) { return x < y; };
  OccList missing, extra;
  std::set_difference(expected.begin(), expected.end(), actual.begin(), actual.end(),
                      std::back_inserter(missing), key_less);
  std::set_difference(actual.begin(), actual.end(), expected.begin(), expected.end(),
                      std::back_inserter(extra), key_less);
  if (missing.empty() && extra.empty()) return ::testing::AssertionSuccess();
  auto r = ::testing::AssertionFailure();
  r << expected.size() << " expected, " << actual.size() << " from Next";
  for (size_t i = 0; i < missing.size() && i < 8; ++i) {
    r << "\n  missing (oracle only): " << Describe(timing, missing[i]);
  }
  for (size_t i = 0; i < extra.size() && i < 8; ++i) {
    r << "\n  extra (Next only):     " << Describe(timing, extra[i]);
  }
  return r;
}

// Next(t) from arbitrary instants t in [a, b) is the first expected occurrence after t.
::testing::AssertionResult NextFromPoints(const ScheduleTiming& timing, const OccList& expected,
                                          SysSeconds a, SysSeconds b,
                                          const std::vector<Timestamp>& points) {
  for (Timestamp t : points) {
    if (t < Ts(a) || t >= Ts(b)) continue;
    auto it =
        std::find_if(expected.begin(), expected.end(), [&](const Occ& o) { return Ts(o.at) > t; });
    const std::optional<Occurrence> got = timing.Next(t);
    if (it == expected.end()) {
      if (got && got->nominal < Ts(b)) {
        return ::testing::AssertionFailure()
               << "Next(" << FormatRfc3339(t) << ") = " << timing.FormatLocal(got->nominal) << " "
               << KindName(got->kind) << ", expected nothing before " << Utc(b);
      }
      continue;
    }
    if (!got || got->nominal != Ts(it->at) || got->kind != it->kind) {
      return ::testing::AssertionFailure()
             << "Next(" << FormatRfc3339(t) << ") = "
             << (got ? timing.FormatLocal(got->nominal) + " " + KindName(got->kind)
                     : std::string("nullopt"))
             << ", expected " << Describe(timing, *it);
    }
  }
  return ::testing::AssertionSuccess();
}

// The transitions (UTC offset changes) of `zone` in [from, to).
std::vector<SysSeconds> Transitions(const date::time_zone* zone, SysSeconds from, SysSeconds to) {
  std::vector<SysSeconds> out;
  date::sys_info info = zone->get_info(from);
  while (info.end < to) {
    const date::sys_info next = zone->get_info(info.end);
    if (next.offset != info.offset) out.push_back(info.end);
    info = next;
  }
  return out;
}

SysSeconds Utc(int y, unsigned m, unsigned d) { return date::sys_days{date::year{y} / m / d}; }

// ---------------------------------------------------------------------------------------
// One comparison: an expression with policies in a zone over [a, b).

struct Case {
  std::string expr;
  std::string tz;
  std::string gap;     // "" (the default for the hour field) | shift | skip
  std::string repeat;  // "" | first | both
  std::string Label() const {
    return fmt::format("cron \"{}\" tz {} gap {} repeat {}", expr, tz,
                       gap.empty() ? "(default)" : gap, repeat.empty() ? "(default)" : repeat);
  }
};

struct Stats {
  size_t cases = 0;
  size_t occurrences = 0;
  size_t dst_touched = 0;  // occurrences whose wall time is in a gap or an overlap
  size_t skips = 0;
};

// Compares Next with the oracle for `c` over [a, b); `points` are extra starting instants
// for Next. Failures carry `context` (seed, window).
void CheckCase(const Case& c, SysSeconds a, SysSeconds b, const std::vector<Timestamp>& points,
               const std::string& context, Stats* stats) {
  SCOPED_TRACE(fmt::format("{}; window [{}, {}); {}", c.Label(), Utc(a), Utc(b), context));
  auto made = ScheduleTiming::Make(CronSpec(c.expr, c.tz, c.gap, c.repeat));
  ASSERT_TRUE(made.ok()) << made.status().message();
  const ScheduleTiming& timing = *made;
  const date::time_zone* zone = timing.zone();
  const CronExpr& cron = *timing.cron();

  const bool names = NamesHours(c.expr);
  const DstGap gap = c.gap == "shift"  ? DstGap::kShift
                     : c.gap == "skip" ? DstGap::kSkip
                     : names           ? DstGap::kShift
                                       : DstGap::kSkip;
  const DstRepeat repeat = c.repeat == "first"  ? DstRepeat::kFirst
                           : c.repeat == "both" ? DstRepeat::kBoth
                           : names              ? DstRepeat::kFirst
                                                : DstRepeat::kBoth;
  ASSERT_EQ(timing.gap(), gap) << "DST gap policy";
  ASSERT_EQ(timing.repeat(), repeat) << "DST repeat policy";
  const seconds step = SixFields(c.expr) ? seconds(1) : seconds(60);

  const bool real_time = !names && gap == DstGap::kSkip && repeat == DstRepeat::kBoth;
  const OccList expected = real_time ? RealTimeOracle(cron, zone, step, a, b)
                                     : WallOracle(cron, zone, gap, repeat, names, step, a, b);
  if (real_time) {
    // The two oracles are independent walks (UTC vs wall clock): they must agree.
    const OccList wall = WallOracle(cron, zone, gap, repeat, false, step, a, b);
    ASSERT_TRUE(SameOccurrences(wall, expected, timing)) << "the oracles disagree (wall vs UTC)";
  }
  const Iterated got = IterateNext(timing, a, b, expected.size() + 16);
  ASSERT_EQ(got.error, "");
  ASSERT_TRUE(SameOccurrences(expected, got.list, timing));
  ASSERT_TRUE(NextFromPoints(timing, expected, a, b, points));

  if (stats != nullptr) {
    ++stats->cases;
    stats->occurrences += got.list.size();
    for (const Occ& o : got.list) {
      if (zone->get_info(o.wall).result != date::local_info::unique) ++stats->dst_touched;
      if (o.kind != Kind::kFire) ++stats->skips;
    }
  }
}

// Starting points for Next inside [a, b): random instants (some with sub-second parts), the
// transitions and the instants around them, and around some expected occurrences.
std::vector<Timestamp> Points(std::mt19937_64& rng, SysSeconds a, SysSeconds b,
                              const std::vector<SysSeconds>& transitions) {
  std::vector<Timestamp> p;
  const int64_t len = (b - a).count();
  for (int i = 0; i < 12; ++i) {
    const Timestamp t = Ts(a + seconds(static_cast<int64_t>(rng() % len)));
    p.push_back(i % 3 == 0 ? t + Duration(static_cast<int64_t>(rng() % 1'000'000)) : t);
  }
  for (SysSeconds tr : transitions) {
    for (seconds d : {seconds(-3600), seconds(-1), seconds(0), seconds(1), seconds(60),
                      seconds(1800), seconds(2700), seconds(3599), seconds(3600)}) {
      p.push_back(Ts(tr + d));
    }
    p.push_back(Ts(tr) - Duration(1));
  }
  return p;
}

// ---------------------------------------------------------------------------------------
// Random expressions.

class ExprGen {
 public:
  explicit ExprGen(std::mt19937_64& rng) : rng_(rng) {}

  int Uniform(int lo, int hi) {  // inclusive
    return lo + static_cast<int>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool Chance(int percent) { return Uniform(1, 100) <= percent; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Uniform(0, static_cast<int>(v.size()) - 1))];
  }

  // A field of literals, ranges, steps and lists over [lo, hi]; `hot` values are favoured
  // for literals and range starts (the hours DST changes happen in).
  std::string Field(int lo, int hi, int star_percent, const std::vector<int>& steps,
                    const std::vector<int>& hot = {}) {
    if (Chance(star_percent)) return "*";
    const int items = Chance(25) ? Uniform(2, 3) : 1;
    std::string out;
    for (int i = 0; i < items; ++i) {
      if (i > 0) out += ',';
      auto value = [&] { return !hot.empty() && Chance(50) ? Pick(hot) : Uniform(lo, hi); };
      switch (Uniform(0, 4)) {
        case 0:
        case 1:
          out += std::to_string(value());
          break;
        case 2: {
          const int x = value();
          out += fmt::format("{}-{}", x, Uniform(x, std::min(hi, x + Uniform(0, 6))));
          break;
        }
        case 3:
          out += fmt::format("*/{}", Pick(steps));
          break;
        default: {
          const int x = value();
          out += fmt::format("{}-{}/{}", x, Uniform(x, hi), Pick(steps));
          break;
        }
      }
    }
    return out;
  }

  std::string Expr() {
    if (Chance(4)) {
      return Pick(std::vector<std::string>{"@hourly", "@daily", "@midnight", "@weekly", "@monthly",
                                           "@yearly", "@annually"});
    }
    std::string minute = Field(0, 59, 10, {2, 3, 5, 7, 10, 15, 20, 30}, {0, 15, 30, 45});
    std::string hour = Field(0, 23, 30, {2, 3, 4, 5, 6, 8, 12}, {0, 1, 2, 3, 23});
    std::string dom = "*";
    if (Chance(12)) {
      dom = Chance(30) ? Pick(std::vector<std::string>{"L", "LW", "15W", "L-2", "1W", "?"})
                       : Field(1, 31, 0, {2, 3, 7, 10}, {1, 15, 25, 28, 29, 30, 31});
    }
    std::string month = Chance(8) ? Field(1, 12, 0, {2, 3, 4, 6}, {2, 3, 4, 9, 10, 11}) : "*";
    std::string dow = "*";
    if (Chance(12)) {
      dow = Chance(30) ? Pick(std::vector<std::string>{"0", "7", "SUN", "SAT,SUN", "MON-FRI", "5L",
                                                       "0#1", "SUN#2", "?"})
                       : Field(0, 6, 0, {2, 3});
    }
    std::string head;
    if (Chance(8)) head = Field(0, 59, 0, {10, 15, 20, 30}, {0, 30}) + " ";
    return fmt::format("{}{} {} {} {} {}", head, minute, hour, dom, month, dow);
  }

  // An expression whose hours cover the wall times from `first` to `last` (a gap or an
  // overlap) and whose minutes hit them, so the window really exercises the DST policy.
  std::string Targeted(LocalSeconds first, LocalSeconds last) {
    const auto hour_of = [](LocalSeconds l) {
      return static_cast<int>(
          date::make_time(l - std::chrono::floor<date::days>(l)).hours().count());
    };
    const int64_t span = (last - first).count();
    const LocalSeconds w = first + seconds(span > 0 ? static_cast<int64_t>(rng_() % span) : 0);
    const int wh = hour_of(w);
    const int wm =
        static_cast<int>(date::make_time(w - std::chrono::floor<date::days>(w)).minutes().count());
    std::string hour;
    if (span > 6 * 3600) {
      hour = std::to_string(wh);
    } else {
      std::set<int> hs;
      for (LocalSeconds l = first; l <= last; l += minutes(30)) hs.insert(hour_of(l));
      hs.insert(hour_of(last));
      for (int h : hs) hour += (hour.empty() ? "" : ",") + std::to_string(h);
    }
    const std::string minute = Chance(50)
                                   ? std::to_string(wm)
                                   : fmt::format("*/{}", Pick(std::vector<int>{1, 5, 10, 15, 30}));
    // Sometimes with seconds, densely enough that a search which does not skip the rest of
    // an overlap it is in the second pass of would have to wade through thousands of them.
    const std::string second =
        Chance(25) ? Pick(std::vector<std::string>{"* ", "*/10 ", "0,30 ", "*/2 "}) : "";
    return fmt::format("{}{} {} * * *", second, minute, hour);
  }

  std::pair<std::string, std::string> Policies() {
    if (Chance(45)) return {"", ""};
    return {Pick(std::vector<std::string>{"", "shift", "skip"}),
            Pick(std::vector<std::string>{"", "first", "both"})};
  }

 private:
  std::mt19937_64& rng_;
};

// ---------------------------------------------------------------------------------------
// Oracle sanity: the oracles see the documented behaviour (so an oracle that finds
// nothing cannot make the comparisons pass vacuously).

TEST(TimingOracleTest, OraclesSeeTheDocumentedBerlinTransitions) {
  const date::time_zone* berlin = date::locate_zone("Europe/Berlin");
  auto cron = CronExpr::Parse("30 2 * * *");
  ASSERT_TRUE(cron.ok());
  const SysSeconds a = Utc(2026, 3, 28), b = Utc(2026, 3, 30);
  const OccList shift =
      WallOracle(*cron, berlin, DstGap::kShift, DstRepeat::kFirst, true, seconds(60), a, b);
  ASSERT_EQ(shift.size(), 2u);
  EXPECT_EQ(Utc(shift[1].at), "2026-03-29T01:00:00.000Z");
  EXPECT_EQ(shift[1].kind, Kind::kFire);
  const OccList skip =
      WallOracle(*cron, berlin, DstGap::kSkip, DstRepeat::kFirst, true, seconds(60), a, b);
  ASSERT_EQ(skip.size(), 2u);
  EXPECT_EQ(skip[1].kind, Kind::kSkipDstGap);

  const SysSeconds c = Utc(2026, 10, 25), d = Utc(2026, 10, 26);
  const OccList first =
      WallOracle(*cron, berlin, DstGap::kShift, DstRepeat::kFirst, true, seconds(60), c, d);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(Utc(first[0].at), "2026-10-25T00:30:00.000Z");
  EXPECT_EQ(Utc(first[1].at), "2026-10-25T01:30:00.000Z");
  EXPECT_EQ(first[1].kind, Kind::kSkipDstRepeat);

  auto every20 = CronExpr::Parse("*/20 * * * *");
  ASSERT_TRUE(every20.ok());
  // 24 real hours on the spring-forward day are only 23 UTC hours of local day.
  EXPECT_EQ(RealTimeOracle(*every20, berlin, seconds(60), Utc(2026, 3, 28) + hours(23),
                           Utc(2026, 3, 29) + hours(22))
                .size(),
            23u * 3);
  EXPECT_EQ(RealTimeOracle(*every20, berlin, seconds(60), c - hours(2), d - hours(1)).size(),
            25u * 3);
}

// ---------------------------------------------------------------------------------------
// Randomized comparison, per zone.

class TimingRandomTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TimingRandomTest, NextMatchesOracleAroundEveryTransitionAndElsewhere) {
  const std::string& tz = GetParam();
  const date::time_zone* zone = date::locate_zone(tz);
  const size_t zone_index =
      static_cast<size_t>(std::find(kZones.begin(), kZones.end(), tz) - kZones.begin());
  const uint64_t seed = BaseSeed() * 1000 + zone_index;
  std::cout << "seed " << BaseSeed() << " (zone seed " << seed
            << "); replay with AUTOMAN_TIMING_SEED=" << BaseSeed() << "\n";
  std::mt19937_64 rng(seed);
  ExprGen gen(rng);
  const int per_window = kOptimizedBuild ? 6 : 2;

  struct Window {
    SysSeconds a, b;
    std::vector<SysSeconds> transitions;
    std::string why;
  };
  std::vector<Window> windows;
  auto around = [&](SysSeconds tr, const std::string& why) {
    const seconds shift(static_cast<int64_t>(rng() % (6 * 3600)) - 3 * 3600);
    const SysSeconds a = tr - hours(12) + shift;
    windows.push_back({a, a + hours(24), {tr}, why});
  };
  const std::vector<SysSeconds> current = Transitions(zone, Utc(2026, 1, 1), Utc(2029, 1, 1));
  for (SysSeconds tr : current) around(tr, "transition " + Utc(tr));
  // Some historic transitions (other rules, e.g. Sao Paulo's DST until 2019).
  std::vector<SysSeconds> historic = Transitions(zone, Utc(1990, 1, 1), Utc(2026, 1, 1));
  std::shuffle(historic.begin(), historic.end(), rng);
  for (size_t i = 0; i < historic.size() && i < 3; ++i) {
    around(historic[i], "historic transition " + Utc(historic[i]));
  }
  // Remarkable ones: Apia skipped 2011-12-30 entirely (a 24-hour gap); Sao Paulo changed
  // at midnight, so the gap and the overlap straddle a date.
  for (SysSeconds tr : Transitions(zone, Utc(2011, 12, 29), Utc(2011, 12, 31))) {
    around(tr, "Apia's skipped day " + Utc(tr));
  }
  for (SysSeconds tr : Transitions(zone, Utc(2018, 11, 1), Utc(2019, 3, 1))) {
    around(tr, "midnight transition " + Utc(tr));
  }
  // Sampled windows with no transition in particular.
  for (int i = 0; i < 4; ++i) {
    const SysSeconds a = Utc(2026, 1, 1) + seconds(static_cast<int64_t>(rng() % (3 * 365 * 86400)));
    windows.push_back({a, a + hours(24), {}, "sampled 2026-2028"});
  }
  for (int i = 0; i < 2; ++i) {
    const SysSeconds a =
        Utc(1995, 1, 1) + seconds(static_cast<int64_t>(rng() % (43 * 365 * 86400LL)));
    windows.push_back({a, a + hours(24), {}, "sampled 1995-2037"});
  }
  {
    const SysSeconds a =
        Utc(2038, 1, 1) + seconds(static_cast<int64_t>(rng() % (8 * 365 * 86400LL)));
    windows.push_back({a, a + hours(24), {}, "sampled after 2037"});
  }

  Stats stats;
  for (const Window& w : windows) {
    // Transitions inside the window, for the starting points.
    const std::vector<SysSeconds> trs = Transitions(zone, w.a, w.b);
    std::vector<Case> cases;
    if (!trs.empty()) {
      // One expression aimed at the wall times of the first transition's gap or overlap.
      const date::sys_info before = zone->get_info(trs[0] - seconds(1));
      const date::sys_info after = zone->get_info(trs[0]);
      const LocalSeconds w1{trs[0].time_since_epoch() + before.offset};
      const LocalSeconds w2{trs[0].time_since_epoch() + after.offset};
      auto [g, r] = gen.Policies();
      cases.push_back({gen.Targeted(std::min(w1, w2), std::max(w1, w2) - seconds(1)), tz, g, r});
    }
    while (static_cast<int>(cases.size()) < per_window + (trs.empty() ? 0 : 1)) {
      std::string expr = gen.Expr();
      if (!CronExpr::Parse(expr).ok()) continue;  // e.g. "0 0 31 2 *" never fires
      auto [g, r] = gen.Policies();
      cases.push_back({std::move(expr), tz, g, r});
    }
    for (const Case& c : cases) {
      const std::vector<Timestamp> points = Points(rng, w.a, w.b, trs);
      CheckCase(c, w.a, w.b, points, fmt::format("{}; seed {}", w.why, BaseSeed()), &stats);
      if (HasFailure()) return;  // the first failing case says it all
    }
  }
  std::cout << tz << ": " << windows.size() << " windows, " << stats.cases << " cases, "
            << stats.occurrences << " occurrences, " << stats.dst_touched
            << " at wall times in a gap or overlap, " << stats.skips << " reported skips\n";
  EXPECT_GT(stats.occurrences, 0u);
  if (!current.empty()) {
    EXPECT_GT(stats.dst_touched, 0u) << "no case exercised a transition";
  }
}

std::string ZoneTestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(Zones, TimingRandomTest, ::testing::ValuesIn(kZones), ZoneTestName);

// ---------------------------------------------------------------------------------------
// The sweep: fixed expressions over 2026-2028 entirely (optimized builds), or over the
// weeks around the 2026 transitions of most zones (sanitizer builds).

const std::vector<std::array<const char*, 3>> kSweep = {
    {"30 2 * * *", "", ""},     {"30 2 * * *", "skip", "both"},
    {"*/15 2 * * *", "", ""},   {"*/15 1-3 * * *", "skip", "first"},
    {"*/20 * * * *", "", ""},   {"*/20 * * * *", "shift", "first"},
    {"0 * * * *", "", ""},      {"@hourly", "", ""},
    {"0 */2 * * *", "", ""},    {"45 2 * * *", "", ""},
    {"0 0 * * *", "", "both"},  {"59 23 * * *", "shift", "both"},
    {"30 1,2,3 * * 0", "", ""}, {"0 9 * * 1-5", "", ""},
    {"*/7 * * * *", "", ""},    {"15 3 L * *", "", ""},
    {"0 12 29 2 *", "", ""},    {"5,35 0-4 * * *", "", "both"},
};

class TimingSweepTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TimingSweepTest, FixedExpressionsMatchOracle) {
  std::vector<std::pair<SysSeconds, SysSeconds>> spans;
  if (FullSweep()) {
    spans.push_back({Utc(2026, 1, 1), Utc(2029, 1, 1)});
  } else {
    // Berlin, Dublin (03-29), Sydney, Lord Howe, Chatham (04-05); Berlin, Dublin (10-25),
    // New York, St. John's (11-01).
    spans.push_back({Utc(2026, 3, 27), Utc(2026, 4, 7)});
    spans.push_back({Utc(2026, 10, 24), Utc(2026, 11, 2)});
  }
  std::cout << (FullSweep() ? "full sweep 2026-01-01..2029-01-01"
                            : "short sweep (sanitizer or debug build; "
                              "AUTOMAN_TIMING_FULL_SWEEP=1 for the full one)")
            << "\n";
  Stats stats;
  for (const auto& [expr, gap, repeat] : kSweep) {
    for (const auto& [a, b] : spans) {
      CheckCase({expr, GetParam(), gap, repeat}, a, b, {}, "sweep", &stats);
      if (HasFailure()) return;
    }
  }
  std::cout << GetParam() << ": " << stats.occurrences << " occurrences, " << stats.dst_touched
            << " at wall times in a gap or overlap, " << stats.skips << " reported skips\n";
  EXPECT_GT(stats.occurrences, 0u);
}

INSTANTIATE_TEST_SUITE_P(Zones, TimingSweepTest, ::testing::ValuesIn(kZones), ZoneTestName);

// ---------------------------------------------------------------------------------------
// Explicit cases: the documented behaviour, instant by instant.

TEST(TimingTest, SpringForwardNamedHourFiresOnceAtEndOfGap) {
  auto t = MakeTiming(CronSpec("30 2 * * *", "Europe/Berlin"));
  ASSERT_TRUE(t);
  auto o = t->Next(T("2026-03-28T12:00:00Z"));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->nominal, T("2026-03-29T01:00:00Z"));
  EXPECT_EQ(o->kind, Kind::kFire);
  EXPECT_EQ(ScheduleTiming::FormatWall(o->wall), "2026-03-29T02:30:00");
  EXPECT_EQ(Seq(*t, T("2026-03-28T12:00:00Z"), 2),
            (std::vector<std::string>{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}));
}

TEST(TimingTest, SpringForwardGapSkipReportsTheSkipAndDoesNotFire) {
  auto t = MakeTiming(CronSpec("30 2 * * *", "Europe/Berlin", "skip"));
  ASSERT_TRUE(t);
  auto o = t->Next(T("2026-03-28T12:00:00Z"));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->nominal, T("2026-03-29T01:00:00Z"));
  EXPECT_EQ(o->kind, Kind::kSkipDstGap);
  EXPECT_EQ(ScheduleTiming::FormatWall(o->wall), "2026-03-29T02:30:00");
  EXPECT_EQ(Seq(*t, T("2026-03-28T12:00:00Z"), 2),
            (std::vector<std::string>{"2026-03-29T03:00:00+02:00 skip-gap",
                                      "2026-03-30T02:30:00+02:00"}));
}

TEST(TimingTest, SpringForwardSeveralWallTimesInGapFireOnce) {
  auto t = MakeTiming(CronSpec("*/15 2 * * *", "Europe/Berlin"));
  ASSERT_TRUE(t);
  EXPECT_EQ(Seq(*t, T("2026-03-28T12:00:00Z"), 3),
            (std::vector<std::string>{"2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00",
                                      "2026-03-30T02:15:00+02:00"}));
}

TEST(TimingTest, SpringForwardRealTimeScheduleSkipsMissingWallTimesSilently) {
  auto t = MakeTiming(CronSpec("*/20 * * * *", "Europe/Berlin"));
  ASSERT_TRUE(t);
  EXPECT_EQ(Seq(*t, T("2026-03-29T00:30:00Z"), 3),
            (std::vector<std::string>{"2026-03-29T01:40:00+01:00", "2026-03-29T03:00:00+02:00",
                                      "2026-03-29T03:20:00+02:00"}));
}

TEST(TimingTest, FallBackNamedHourFiresAtFirstOccurrenceAndReportsTheSecond) {
  auto t = MakeTiming(CronSpec("30 2 * * *", "Europe/Berlin"));
  ASSERT_TRUE(t);
  auto o = t->Next(T("2026-10-24T12:00:00Z"));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->nominal, T("2026-10-25T00:30:00Z"));
  EXPECT_EQ(o->kind, Kind::kFire);
  auto second = t->Next(o->nominal);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->nominal, T("2026-10-25T01:30:00Z"));
  EXPECT_EQ(second->kind, Kind::kSkipDstRepeat);
  EXPECT_EQ(Seq(*t, T("2026-10-24T12:00:00Z"), 3),
            (std::vector<std::string>{"2026-10-25T02:30:00+02:00",
                                      "2026-10-25T02:30:00+01:00 skip-repeat",
                                      "2026-10-26T02:30:00+01:00"}));
  // Exactly one fire that day.
  int fires = 0;
  Timestamp from = T("2026-10-24T22:00:00Z");
  for (int i = 0; i < 10; ++i) {
    auto n = t->Next(from);
    ASSERT_TRUE(n);
    ASSERT_GT(n->nominal, from);
    if (n->nominal >= T("2026-10-25T23:00:00Z")) break;
    fires += n->kind == Kind::kFire;
    from = n->nominal;
  }
  EXPECT_EQ(fires, 1);
}

TEST(TimingTest, FallBackRepeatBothFiresAtBothOccurrences) {
  auto t = MakeTiming(CronSpec("30 2 * * *", "Europe/Berlin", "", "both"));
  ASSERT_TRUE(t);
  EXPECT_EQ(Seq(*t, T("2026-10-24T12:00:00Z"), 3),
            (std::vector<std::string>{"2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00",
                                      "2026-10-26T02:30:00+01:00"}));
  auto o = t->Next(T("2026-10-25T00:30:00Z"));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->nominal, T("2026-10-25T01:30:00Z"));
  EXPECT_EQ(o->kind, Kind::kFire);
}

TEST(TimingTest, FallBackRealTimeScheduleFiresEveryRealHalfHour) {
  auto t = MakeTiming(CronSpec("*/30 * * * *", "Europe/Berlin"));
  ASSERT_TRUE(t);
  EXPECT_EQ(Seq(*t, T("2026-10-24T23:45:00Z"), 5),
            (std::vector<std::string>{"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
                                      "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00",
                                      "2026-10-25T03:00:00+01:00"}));
  Timestamp from = T("2026-10-24T23:45:00Z");
  for (int i = 0; i < 8; ++i) {
    auto o = t->Next(from);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->nominal, T("2026-10-25T00:00:00Z") + minutes(30) * i);
    EXPECT_EQ(o->kind, Kind::kFire);
    from = o->nominal;
  }
}

TEST(TimingTest, LeapDayFrom2097IsFoundIn2104) {
  auto t = MakeTiming(CronSpec("0 0 29 2 *"));
  ASSERT_TRUE(t);
  auto o = t->Next(T("2097-01-01T00:00:00Z"));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->nominal, T("2104-02-29T00:00:00Z"));
  EXPECT_EQ(t->FormatLocal(o->nominal), "2104-02-29T00:00:00+00:00");
}

TEST(TimingTest, IntervalKeepsAbsoluteSpacingAcrossDst) {
  ScheduleSpec spec;
  spec.id = "every";
  spec.every = milliseconds(90'000);
  for (const char* tz : {"UTC", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"}) {
    SCOPED_TRACE(tz);
    spec.tz = tz;
    auto t = MakeTiming(spec);
    ASSERT_TRUE(t);
    // Across Berlin's spring forward and fall back.
    for (const char* start : {"2026-03-29T00:55:00.250Z", "2026-10-25T00:55:00Z"}) {
      Timestamp from = T(start);
      auto o = t->Next(from);
      ASSERT_TRUE(o);
      EXPECT_GT(o->nominal, from);
      EXPECT_LE(o->nominal - from, seconds(90));
      for (int i = 0; i < 100; ++i) {
        ASSERT_EQ(ToMicros(o->nominal) % 90'000'000, 0) << FormatRfc3339(o->nominal);
        auto n = t->Next(o->nominal);
        ASSERT_TRUE(n);
        ASSERT_EQ(n->nominal - o->nominal, seconds(90));
        ASSERT_EQ(n->kind, Kind::kFire);
        o = n;
      }
    }
    // 2026-03-29T01:00:00Z is 19,719,400 * 90 s since the epoch: a tick, at 03:00 in Berlin.
    auto tick = t->Next(T("2026-03-29T00:59:59Z"));
    ASSERT_TRUE(tick);
    EXPECT_EQ(tick->nominal, T("2026-03-29T01:00:00Z"));
  }
}

TEST(TimingTest, OneShotAtFiresOnceThenNever) {
  ScheduleSpec spec;
  spec.id = "once";
  spec.at = "2026-05-01T10:00:00+02:00";
  spec.tz = "Europe/Berlin";
  auto t = MakeTiming(spec);
  ASSERT_TRUE(t);
  const Timestamp at = T("2026-05-01T08:00:00Z");
  for (Timestamp before : {T("2020-01-01T00:00:00Z"), at - seconds(1), at - Duration(1)}) {
    auto o = t->Next(before);
    ASSERT_TRUE(o) << FormatRfc3339(before);
    EXPECT_EQ(o->nominal, at);
    EXPECT_EQ(o->kind, Kind::kFire);
  }
  EXPECT_EQ(t->FormatLocal(at), "2026-05-01T10:00:00+02:00");
  EXPECT_FALSE(t->Next(at));
  EXPECT_FALSE(t->Next(at + Duration(1)));
  EXPECT_FALSE(t->Next(T("2030-01-01T00:00:00Z")));
}

TEST(TimingTest, DeadlineAlignedRunIsDueLeadBeforeTheSendTime) {
  ScheduleSpec spec = CronSpec("0 9 * * *", "Europe/Berlin");
  spec.lead = minutes(30);
  auto t = MakeTiming(spec);
  ASSERT_TRUE(t);
  auto o = t->Next(T("2026-06-01T00:00:00Z"));
  ASSERT_TRUE(o);
  // The nominal instant is the send time, the cron match itself...
  EXPECT_EQ(t->FormatLocal(o->nominal), "2026-06-01T09:00:00+02:00");
  // ...and the run starts lead before it, once (not 08:00, which a double shift would give).
  EXPECT_EQ(t->Due(o->nominal, "campaign"), T("2026-06-01T06:30:00Z"));
  EXPECT_EQ(t->Due(o->nominal, "campaign"), o->nominal - minutes(30));
  // Asking from the start time still finds the same send time (no shifted occurrence).
  auto again = t->Next(t->Due(o->nominal, "campaign") - seconds(1));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->nominal, o->nominal);

  // A lead that crosses the spring-forward change is real time: 03:30+02:00 - 1h is
  // 01:30+01:00.
  ScheduleSpec early = CronSpec("30 3 * * *", "Europe/Berlin");
  early.lead = hours(1);
  auto e = MakeTiming(early);
  ASSERT_TRUE(e);
  auto send = e->Next(T("2026-03-28T12:00:00Z"));
  ASSERT_TRUE(send);
  EXPECT_EQ(e->FormatLocal(send->nominal), "2026-03-29T03:30:00+02:00");
  EXPECT_EQ(e->FormatLocal(e->Due(send->nominal, "x")), "2026-03-29T01:30:00+01:00");

  // A deadline-aligned one-shot.
  ScheduleSpec once;
  once.id = "launch";
  once.at = "2026-07-01T12:00:00Z";
  once.lead = minutes(45);
  auto l = MakeTiming(once);
  ASSERT_TRUE(l);
  auto lo = l->Next(T("2026-07-01T00:00:00Z"));
  ASSERT_TRUE(lo);
  EXPECT_EQ(lo->nominal, T("2026-07-01T12:00:00Z"));
  EXPECT_EQ(l->Due(lo->nominal, "launch"), T("2026-07-01T11:15:00Z"));
}

TEST(TimingTest, JitterIsBoundedDeterministicAndDiffersAcrossSchedules) {
  ScheduleSpec spec = CronSpec("0 9 * * *", "Europe/Berlin");
  spec.lead = minutes(30);
  spec.jitter = minutes(10);
  auto t = MakeTiming(spec);
  ASSERT_TRUE(t);
  // No jitter: exactly nominal - lead.
  ScheduleSpec plain = spec;
  plain.jitter.reset();
  auto p = MakeTiming(plain);
  ASSERT_TRUE(p);

  Timestamp from = T("2026-01-01T00:00:00Z");
  Duration lowest = minutes(10), highest = Duration(0);
  for (int day = 0; day < 200; ++day) {
    auto o = t->Next(from);
    ASSERT_TRUE(o);
    const Timestamp nominal = o->nominal;
    from = nominal;
    EXPECT_EQ(p->Due(nominal, "a"), nominal - minutes(30));
    std::set<int64_t> distinct;
    for (int id = 0; id < 20; ++id) {
      const std::string name = "schedule-" + std::to_string(id);
      const Timestamp due = t->Due(nominal, name);
      ASSERT_GE(due, nominal - minutes(30)) << name;
      ASSERT_LT(due, nominal - minutes(20)) << name;
      ASSERT_EQ(due, t->Due(nominal, name)) << "not deterministic";
      distinct.insert(ToMicros(due));
      lowest = std::min(lowest, due - (nominal - minutes(30)));
      highest = std::max(highest, due - (nominal - minutes(30)));
    }
    ASSERT_GE(distinct.size(), 15u) << "jitter hardly differs across schedule ids";
  }
  // Spread over the whole range, not stuck at one end.
  EXPECT_LT(lowest, minutes(1));
  EXPECT_GT(highest, minutes(9));
  // The same schedule gets different delays on different days.
  EXPECT_NE(t->Due(T("2026-06-01T07:00:00Z"), "a") - T("2026-06-01T07:00:00Z"),
            t->Due(T("2026-06-02T07:00:00Z"), "a") - T("2026-06-02T07:00:00Z"));
}

TEST(TimingTest, MaxLatenessDefaultsToOnePeriodAndExplicitValueWins) {
  auto hourly = MakeTiming(CronSpec("0 * * * *", "Europe/Berlin"));
  ASSERT_TRUE(hourly);
  EXPECT_EQ(hourly->MaxLateness(T("2026-06-01T10:00:00Z")), hours(1));
  // Daily at 02:30 Berlin: the period into the spring-forward day is the real 23.5 hours.
  auto daily = MakeTiming(CronSpec("30 2 * * *", "Europe/Berlin"));
  ASSERT_TRUE(daily);
  EXPECT_EQ(daily->MaxLateness(T("2026-03-28T01:30:00Z")), hours(23) + minutes(30));

  ScheduleSpec every;
  every.id = "e";
  every.every = milliseconds(90'000);
  auto e = MakeTiming(every);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->MaxLateness(T("2026-06-01T10:00:30Z")), seconds(90));

  ScheduleSpec at;
  at.id = "a";
  at.at = "2026-06-01T10:00:00Z";
  auto a = MakeTiming(at);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->MaxLateness(T("2026-06-01T10:00:00Z")), hours(1));

  for (ScheduleSpec spec : {CronSpec("0 * * * *"), every, at}) {
    spec.max_lateness = minutes(5);
    auto t = MakeTiming(spec);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->MaxLateness(T("2026-06-01T10:00:00Z")), minutes(5));
  }
}

TEST(TimingTest, FormatLocalWritesTheOffsetInForce) {
  struct Want {
    const char* tz;
    const char* utc;
    const char* local;
  };
  for (const Want& w : std::vector<Want>{
           {"Asia/Kolkata", "2026-01-15T12:00:00Z", "2026-01-15T17:30:00+05:30"},
           {"Pacific/Chatham", "2026-01-15T12:00:00Z", "2026-01-16T01:45:00+13:45"},
           {"Pacific/Chatham", "2026-07-15T12:00:00Z", "2026-07-16T00:45:00+12:45"},
           {"UTC", "2026-01-15T12:00:00Z", "2026-01-15T12:00:00+00:00"},
           {"America/St_Johns", "2026-01-15T12:00:00Z", "2026-01-15T08:30:00-03:30"},
           {"Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00"},
           {"Europe/Berlin", "2026-03-29T00:59:59Z", "2026-03-29T01:59:59+01:00"},
       }) {
    auto t = MakeTiming(CronSpec("0 * * * *", w.tz));
    ASSERT_TRUE(t);
    EXPECT_EQ(t->FormatLocal(T(w.utc)), w.local) << w.tz << " " << w.utc;
  }
}

TEST(TimingTest, LookupZoneAcceptsIanaNamesOnly) {
  for (std::string name :
       {std::string("../etc/passwd"), std::string("/etc/localtime"), std::string("Europe/../../x"),
        std::string(""), std::string(100, 'A'), "Europe/" + std::string(93, 'B'),
        std::string("Nowhere/City"), std::string("Europe/Berlin\n"), std::string("Europe/Berlin "),
        std::string("Europe\\Berlin")}) {
    auto z = LookupZone(name);
    EXPECT_FALSE(z.ok()) << "accepted \"" << name << "\"";
    if (!z.ok()) {
      EXPECT_EQ(z.status().code(), ErrorCode::kInvalidArgument) << name;
    }
  }
  auto unknown = LookupZone("Nowhere/City");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("Nowhere/City"), std::string::npos)
      << unknown.status().message();
  for (const char* name : {"UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"}) {
    auto z = LookupZone(name);
    ASSERT_TRUE(z.ok()) << name << ": " << z.status().message();
    EXPECT_EQ((*z)->name(), name);
  }
}

TEST(TimingTest, MakeRejectsBadCronAndBadZoneNamingTheKey) {
  for (const char* expr : {"61 * * * *", "* * * *", "*/0 * * * *", "0 0 30 2 *"}) {
    auto t = ScheduleTiming::Make(CronSpec(expr));
    ASSERT_FALSE(t.ok()) << expr;
    EXPECT_EQ(t.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(t.status().message().rfind("cron:", 0), 0u) << t.status().message();
  }
  for (const char* tz : {"Mars/Olympus_Mons", "../etc/passwd", "Europe/Berlin/"}) {
    auto t = ScheduleTiming::Make(CronSpec("0 * * * *", tz));
    ASSERT_FALSE(t.ok()) << tz;
    EXPECT_EQ(t.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(t.status().message().rfind("tz:", 0), 0u) << t.status().message();
  }
  // Defaults by hour field, and explicit policies win.
  auto named = MakeTiming(CronSpec("*/15 1-2 * * *", "Europe/Berlin"));
  ASSERT_TRUE(named);
  EXPECT_EQ(named->gap(), DstGap::kShift);
  EXPECT_EQ(named->repeat(), DstRepeat::kFirst);
  auto real_time = MakeTiming(CronSpec("*/20 * * * *", "Europe/Berlin"));
  ASSERT_TRUE(real_time);
  EXPECT_EQ(real_time->gap(), DstGap::kSkip);
  EXPECT_EQ(real_time->repeat(), DstRepeat::kBoth);
  auto explicit_policies = MakeTiming(CronSpec("30 2 * * *", "Europe/Berlin", "skip", "both"));
  ASSERT_TRUE(explicit_policies);
  EXPECT_EQ(explicit_policies->gap(), DstGap::kSkip);
  EXPECT_EQ(explicit_policies->repeat(), DstRepeat::kBoth);
}

}  // namespace
}  // namespace automan
