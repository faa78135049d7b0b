#include "scheduler/cron.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <vector>

namespace automan {

namespace {

using date::days;
using date::local_days;
using std::chrono::seconds;

// One Gregorian cycle: the calendar, weekdays included, repeats exactly every 146,097 days.
constexpr days kCycle{146097};

enum FieldId { kSec = 0, kMin, kHour, kDom, kMon, kDow };

struct FieldSpec {
  const char* name;
  int min;
  int max;
};

constexpr FieldSpec kFields[6] = {
    {"second", 0, 59},       {"minute", 0, 59}, {"hour", 0, 23},
    {"day-of-month", 1, 31}, {"month", 1, 12},  {"day-of-week", 0, 7},
};

constexpr const char* kMonthAbbr[13] = {"",    "JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                        "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayAbbr[7] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
constexpr const char* kMonthName[13] = {"",        "January",  "February", "March",  "April",
                                        "May",     "June",     "July",     "August", "September",
                                        "October", "November", "December"};
constexpr const char* kDayName[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                     "Thursday", "Friday", "Saturday"};
constexpr const char* kNth[6] = {"", "first", "second", "third", "fourth", "fifth"};

constexpr local_days kFirstDay = local_days(date::year(0) / 1 / 1);
constexpr local_days kEndDay = local_days(date::year(10000) / 1 / 1);

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char Upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Upper(a[i]) != Upper(b[i])) return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// The code point of the UTF-8 sequence at s[i] and its length, or -1 if it is not valid
// UTF-8 (overlong forms, surrogates and values past U+10FFFF count as invalid).
int32_t DecodeUtf8(std::string_view s, size_t i, size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  int n = 0;
  int32_t cp = 0;
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return -1;
  }
  if (i + n > s.size()) return -1;
  for (int k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr int32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  *len = static_cast<size_t>(n);
  return cp;
}

// `s` in double quotes, printable: control bytes, quotes, backslashes and invalid UTF-8 are
// escaped; valid non-ASCII UTF-8 is kept so that "٣" reads as written.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t len = 0;
      if (DecodeUtf8(s, i, &len) >= 0) {
        out.append(s.substr(i, len));
        i += len;
      } else {
        out += fmt::format("\\x{:02x}", c);
        ++i;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  out += '"';
  return out;
}

// "U+0663" for a valid UTF-8 character at s[i], "byte 0xff" otherwise.
std::string DescribeNonAscii(std::string_view s, size_t i) {
  size_t len = 0;
  const int32_t cp = DecodeUtf8(s, i, &len);
  if (cp < 0) return fmt::format("byte 0x{:02x}", static_cast<unsigned char>(s[i]));
  return fmt::format("U+{:04X}", cp);
}

size_t FindNonAscii(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) return i;
  }
  return std::string_view::npos;
}

Status Invalid(std::string message) {
  return Status(ErrorCode::kInvalidArgument, std::move(message));
}

// One field, parsed. Values are bits (bit v for value v; day-of-week 7 already folded to 0).
struct ParsedField {
  uint64_t bits = 0;
  bool star = false;                    // the field starts with '*' or is '?'
  uint32_t last_offsets = 0;            // DOM L-N: bit N
  bool last_weekday = false;            // DOM LW
  uint32_t nearest = 0;                 // DOM NW: bit N
  uint8_t dow_last = 0;                 // DOW NL: bit N
  uint8_t nth[6] = {0, 0, 0, 0, 0, 0};  // DOW N#K: nth[K] bit N
};

class ItemParser {
 public:
  ItemParser(FieldId f, std::string_view item, ParsedField* out)
      : f_(f), spec_(kFields[f]), item_(item), out_(out) {}

  Status Parse() {
    if (f_ == kDom && Upper(item_[0]) == 'L') return ParseDomLast();
    int lo = 0;
    int hi = 0;
    bool single = false;
    size_t range_end = 0;  // item_[0, range_end) is the value or range, for messages
    if (item_[0] == '*') {
      p_ = 1;
      lo = spec_.min;
      hi = f_ == kDow ? 6 : spec_.max;
    } else {
      AUTOMAN_RETURN_IF_ERROR(ParseValue(/*range_end=*/false, &lo));
      hi = lo;
      single = true;
      if (p_ < item_.size() && item_[p_] == '-') {
        ++p_;
        AUTOMAN_RETURN_IF_ERROR(ParseValue(/*range_end=*/true, &hi));
        single = false;
        range_end = p_;
        if (hi < lo) return WrapError(range_end);
      }
    }
    int step = 1;
    if (p_ < item_.size()) {
      const char c = Upper(item_[p_]);
      if (c == 'W') return ParseNearestWeekday(single, lo);
      if (c == 'L') return ParseLastWeekdayOf(single, lo);
      if (c == '#') return ParseNth(single, lo);
      if (c == '/') {
        ++p_;
        AUTOMAN_RETURN_IF_ERROR(ParseStep(&step));
        if (single) hi = f_ == kDow ? 6 : spec_.max;
        if (single && f_ == kDow && lo == 7) hi = 7;  // 7/2: just Sunday
      }
      if (p_ < item_.size()) return Unexpected();
    }
    for (int v = lo; v <= hi; v += step) out_->bits |= uint64_t{1} << (f_ == kDow ? v % 7 : v);
    return Status::Ok();
  }

 private:
  // L, L-N, LW at the start of a day-of-month item.
  Status ParseDomLast() {
    if (item_.size() == 1) {
      out_->last_offsets |= 1;
      return Status::Ok();
    }
    if (item_.size() == 2 && Upper(item_[1]) == 'W') {
      out_->last_weekday = true;
      return Status::Ok();
    }
    if (item_[1] != '-') {
      p_ = 1;
      return Unexpected();
    }
    p_ = 2;
    if (p_ >= item_.size() || !IsDigit(item_[p_])) {
      return Invalid(fmt::format("{}: expected a number of days after \"L-\" in {}", spec_.name,
                                 Quote(item_)));
    }
    std::string_view digits;
    const int n = ReadNumber(&digits);
    if (n > 30) {
      return Invalid(fmt::format("{}: offset {} in {} is out of range 0-30", spec_.name, digits,
                                 Quote(item_)));
    }
    if (p_ < item_.size()) return Unexpected();
    out_->last_offsets |= uint32_t{1} << n;
    return Status::Ok();
  }

  Status ParseNearestWeekday(bool single, int day) {
    if (f_ != kDom) return OnlyIn("\"W\"", "day-of-month");
    if (!single) {
      return Invalid(
          fmt::format("{}: \"W\" in {} needs a single day before it (e.g. 15W), not a "
                      "range or *",
                      spec_.name, Quote(item_)));
    }
    ++p_;
    if (p_ < item_.size()) return Unexpected();
    out_->nearest |= uint32_t{1} << day;
    return Status::Ok();
  }

  Status ParseLastWeekdayOf(bool single, int weekday) {
    if (f_ == kDom) {
      return Invalid(
          fmt::format("{}: \"L\" in {} must stand alone (L, L-N or LW), not follow a "
                      "day",
                      spec_.name, Quote(item_)));
    }
    if (f_ != kDow) return OnlyIn("\"L\"", "day-of-month and day-of-week");
    if (!single) {
      return Invalid(
          fmt::format("{}: \"L\" in {} needs a single weekday before it (e.g. 5L for "
                      "the last Friday), not a range or *",
                      spec_.name, Quote(item_)));
    }
    ++p_;
    if (p_ < item_.size()) return Unexpected();
    out_->dow_last |= static_cast<uint8_t>(1u << (weekday % 7));
    return Status::Ok();
  }

  Status ParseNth(bool single, int weekday) {
    if (f_ != kDow) return OnlyIn("\"#\"", "day-of-week");
    if (!single) {
      return Invalid(
          fmt::format("{}: \"#\" in {} needs a single weekday before it (e.g. FRI#3), "
                      "not a range or *",
                      spec_.name, Quote(item_)));
    }
    ++p_;
    if (p_ >= item_.size() || !IsDigit(item_[p_])) {
      return Invalid(fmt::format("{}: expected 1-5 after \"#\" in {}", spec_.name, Quote(item_)));
    }
    std::string_view digits;
    const int k = ReadNumber(&digits);
    if (k < 1 || k > 5) {
      return Invalid(
          fmt::format("{}: \"#{}\" in {} must be #1 to #5 (a month has at most five of "
                      "each weekday)",
                      spec_.name, digits, Quote(item_)));
    }
    if (p_ < item_.size()) return Unexpected();
    out_->nth[k] |= static_cast<uint8_t>(1u << (weekday % 7));
    return Status::Ok();
  }

  Status ParseStep(int* step) {
    if (p_ >= item_.size() || !IsDigit(item_[p_])) {
      return Invalid(
          fmt::format("{}: expected a step after \"/\" in {}", spec_.name, Quote(item_)));
    }
    std::string_view digits;
    const int n = ReadNumber(&digits);
    if (n == 0) {
      return Invalid(
          fmt::format("{}: step {} in {} must be at least 1", spec_.name, digits, Quote(item_)));
    }
    if (n > spec_.max) {
      return Invalid(fmt::format("{}: step {} in {} is larger than {}", spec_.name, digits,
                                 Quote(item_), spec_.max));
    }
    *step = n;
    return Status::Ok();
  }

  // Reads digits at p_, saturating (the value only needs to be compared with small bounds).
  int ReadNumber(std::string_view* digits) {
    const size_t start = p_;
    int n = 0;
    while (p_ < item_.size() && IsDigit(item_[p_])) {
      n = std::min(n * 10 + (item_[p_] - '0'), 1'000'000);
      ++p_;
    }
    *digits = item_.substr(start, p_ - start);
    return n;
  }

  // A number, or a name in the month and day-of-week fields.
  Status ParseValue(bool range_end, int* value) {
    if (p_ < item_.size() && IsDigit(item_[p_])) {
      std::string_view digits;
      const int n = ReadNumber(&digits);
      if (n < spec_.min || n > spec_.max) {
        if (digits.size() == item_.size()) {
          return Invalid(fmt::format("{}: {} is out of range {}-{}", spec_.name, Quote(digits),
                                     spec_.min, spec_.max));
        }
        return Invalid(fmt::format("{}: {} in {} is out of range {}-{}", spec_.name, digits,
                                   Quote(item_), spec_.min, spec_.max));
      }
      *value = n;
      return Status::Ok();
    }
    if (p_ < item_.size() && IsAlpha(item_[p_])) return ParseName(range_end, value);
    if (p_ >= item_.size()) {
      return Invalid(fmt::format("{}: expected a number after \"{}\" in {}", spec_.name,
                                 item_[p_ - 1], Quote(item_)));
    }
    return Invalid(fmt::format("{}: expected a number at {} in {}", spec_.name,
                               Quote(item_.substr(p_)), Quote(item_)));
  }

  Status ParseName(bool range_end, int* value) {
    size_t q = p_;
    while (q < item_.size() && IsAlpha(item_[q])) ++q;
    const std::string_view run = item_.substr(p_, q - p_);
    const bool has_w = EqualsIgnoreCase(run, "W") || EqualsIgnoreCase(run, "LW");
    if (has_w || EqualsIgnoreCase(run, "L")) {
      if (f_ == kDom) {  // L and LW are handled before; this is a W without its day
        return Invalid(
            fmt::format("{}: {} needs a day before it, e.g. 15W", spec_.name, Quote(item_)));
      }
      if (f_ == kDow && !has_w) {
        return Invalid(
            fmt::format("{}: {} needs a weekday before it, e.g. 5L or FRIL for the "
                        "last Friday of the month",
                        spec_.name, Quote(item_)));
      }
      return OnlyIn(Quote(run), has_w ? "day-of-month" : "day-of-month and day-of-week");
    }
    if (f_ == kMon || f_ == kDow) {
      const int count = f_ == kMon ? 12 : 7;
      for (int i = 0; i < count; ++i) {
        const char* name = f_ == kMon ? kMonthAbbr[i + 1] : kDayAbbr[i];
        if (run.size() >= 3 && EqualsIgnoreCase(run.substr(0, 3), name) &&
            (run.size() == 3 || (f_ == kDow && run.size() == 4 && Upper(run[3]) == 'L'))) {
          *value = f_ == kMon ? i + 1 : (i == 0 && range_end ? 7 : i);
          p_ += 3;
          return Status::Ok();
        }
      }
      return Invalid(fmt::format("{}: unknown name {} in {}; use {}", spec_.name, Quote(run),
                                 Quote(item_), f_ == kMon ? "JAN-DEC or 1-12" : "SUN-SAT or 0-7"));
    }
    return Invalid(fmt::format("{}: {} is not a number{}", spec_.name, Quote(item_),
                               f_ == kDom ? ""
                                          : " (names are only allowed in month and "
                                            "day-of-week)"));
  }

  Status WrapError(size_t range_end) {
    const std::string_view range = item_.substr(0, range_end);
    const size_t dash = range.find('-');
    const std::string_view a = range.substr(0, dash);
    const std::string_view b = range.substr(dash + 1);
    std::string split;
    if (f_ == kDow) {
      split = IsAlpha(a[0]) ? fmt::format("{}-SAT,SUN-{}", a, b) : fmt::format("{}-6,0-{}", a, b);
    } else if (f_ == kMon && IsAlpha(a[0])) {
      split = fmt::format("{}-DEC,JAN-{}", a, b);
    } else {
      split = fmt::format("{}-{},{}-{}", a, spec_.max, spec_.min, b);
    }
    return Invalid(
        fmt::format("{}: range {} goes backwards; ranges do not wrap around, write {} "
                    "instead",
                    spec_.name, Quote(range), Quote(split)));
  }

  Status OnlyIn(const std::string& what, const char* fields) {
    return Invalid(
        fmt::format("{}: {} in {} is only allowed in {}", spec_.name, what, Quote(item_), fields));
  }

  Status Unexpected() {
    return Invalid(
        fmt::format("{}: unexpected {} in {}", spec_.name, Quote(item_.substr(p_)), Quote(item_)));
  }

  FieldId f_;
  const FieldSpec& spec_;
  std::string_view item_;
  ParsedField* out_;
  size_t p_ = 0;
};

Status ParseField(FieldId f, std::string_view field, ParsedField* out) {
  const FieldSpec& spec = kFields[f];
  const bool day_field = f == kDom || f == kDow;
  if (field == "?") {
    if (!day_field) {
      return Invalid(
          fmt::format("{}: \"?\" is only allowed in day-of-month and day-of-week; use * for any {}",
                      spec.name, spec.name));
    }
    out->star = true;
    out->bits = f == kDom ? 0xFFFFFFFEull : 0x7Full;
    return Status::Ok();
  }
  out->star = field[0] == '*';
  size_t start = 0;
  while (true) {
    const size_t comma = field.find(',', start);
    const std::string_view item = field.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) {
      return Invalid(fmt::format("{}: empty item in {}", spec.name, Quote(field)));
    }
    if (const size_t bad = FindNonAscii(item); bad != std::string_view::npos) {
      return Invalid(fmt::format("{}: non-ASCII character {} in {}; use ASCII digits and names",
                                 spec.name, DescribeNonAscii(item, bad), Quote(item)));
    }
    if (item.find('?') != std::string_view::npos) {
      if (day_field) {
        return Invalid(fmt::format("{}: \"?\" must be the whole field, not part of {}", spec.name,
                                   Quote(field)));
      }
      return Invalid(fmt::format(
          "{}: \"?\" in {} is only allowed in day-of-month and day-of-week; use * for any {}",
          spec.name, Quote(item), spec.name));
    }
    AUTOMAN_RETURN_IF_ERROR(ItemParser(f, item, out).Parse());
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return Status::Ok();
}

// Macro -> the 5-field expression it stands for.
struct Macro {
  const char* name;
  const char* expansion;
};
constexpr Macro kMacros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

bool IsLeap(int y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

unsigned DaysInMonth(int y, unsigned m) {
  static constexpr unsigned kDays[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m];
}

// ---- Explain helpers ----

template <size_t N>
std::vector<int> Values(const std::bitset<N>& bits) {
  std::vector<int> v;
  for (size_t i = 0; i < N; ++i) {
    if (bits[i]) v.push_back(static_cast<int>(i));
  }
  return v;
}

std::string JoinAnd(const std::vector<std::string>& parts, const char* last = " and ") {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += i + 1 == parts.size() ? last : ", ";
    out += parts[i];
  }
  return out;
}

// Runs of three or more consecutive values become "A<through>B".
template <typename Fn>
std::string ListOf(const std::vector<int>& v, Fn name, const char* through,
                   const char* last = " and ") {
  std::vector<std::string> parts;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (j - i >= 2) {
      parts.push_back(name(v[i]) + through + name(v[j]));
      i = j + 1;
    } else {
      parts.push_back(name(v[i]));
      ++i;
    }
  }
  return JoinAnd(parts, last);
}

std::string Numbers(const std::vector<int>& v) {
  return ListOf(
      v, [](int x) { return std::to_string(x); }, "-");
}

// "minute 5" / "minutes 5 and 10".
std::string UnitList(const char* unit, const std::vector<int>& v) {
  return fmt::format("{}{} {}", unit, v.size() == 1 ? "" : "s", Numbers(v));
}

// Whether v is {0, n, 2n, ...} covering [0, period) with n dividing period (n = 1: all).
bool IsEvery(const std::vector<int>& v, int period, int* n) {
  if (v.size() < 2 || v[0] != 0) return false;
  const int step = v[1];
  if (period % step != 0 || static_cast<int>(v.size()) != period / step) return false;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != static_cast<int>(i) * step) return false;
  }
  *n = step;
  return true;
}

// Whether v is one run of consecutive values.
bool IsRun(const std::vector<int>& v) {
  return !v.empty() && v.back() - v.front() + 1 == static_cast<int>(v.size());
}

std::string Ordinal(int n) {
  const char* suffix = "th";
  if (n % 100 < 11 || n % 100 > 13) {
    if (n % 10 == 1) suffix = "st";
    if (n % 10 == 2) suffix = "nd";
    if (n % 10 == 3) suffix = "rd";
  }
  return fmt::format("{}{}", n, suffix);
}

}  // namespace

Result<CronExpr> CronExpr::Parse(std::string_view text) {
  // The length check comes first: nothing else looks at an oversized input.
  if (text.size() > kMaxLength) {
    return Invalid(
        fmt::format("expression is {} bytes long; the limit is {}", text.size(), kMaxLength));
  }
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  if (text.empty()) {
    return Invalid(
        "empty expression; expected 5 or 6 fields (e.g. \"30 2 * * *\") or a macro "
        "such as @daily");
  }
  for (const char* prefix : {"CRON_TZ=", "TZ="}) {
    if (StartsWithIgnoreCase(text, prefix)) {
      return Invalid(
          fmt::format("{} prefixes are not supported: set the schedule's tz instead", prefix));
    }
  }

  CronExpr e;
  e.text_ = std::string(text);
  std::string_view body = text;
  if (text[0] == '@') {
    size_t end = 0;
    while (end < text.size() && !IsSpace(text[end])) ++end;
    const std::string_view name = text.substr(0, end);
    const char* expansion = nullptr;
    for (const Macro& m : kMacros) {
      if (EqualsIgnoreCase(name, m.name)) expansion = m.expansion;
    }
    if (expansion == nullptr) {
      if (EqualsIgnoreCase(name, "@reboot")) {
        return Invalid("@reboot is not supported: schedules fire at times, not at start-up");
      }
      if (EqualsIgnoreCase(name, "@every")) {
        return Invalid("@every is not supported: use an interval schedule (every: 90s)");
      }
      return Invalid(
          fmt::format("unknown macro {}; use @yearly, @annually, @monthly, @weekly, "
                      "@daily, @midnight or @hourly",
                      Quote(name)));
    }
    if (end < text.size()) {
      std::string_view rest = text.substr(end);
      while (!rest.empty() && IsSpace(rest.front())) rest.remove_prefix(1);
      return Invalid(fmt::format("unexpected {} after {}: a macro stands for the whole expression",
                                 Quote(rest), Quote(name)));
    }
    body = expansion;
  }

  std::vector<std::string_view> fields;
  for (size_t i = 0; i < body.size();) {
    if (IsSpace(body[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < body.size() && !IsSpace(body[j])) ++j;
    fields.push_back(body.substr(i, j - i));
    i = j;
  }
  if (fields.size() != 5 && fields.size() != 6) {
    if (const size_t bad = FindNonAscii(body); bad != std::string_view::npos) {
      return Invalid(
          fmt::format("non-ASCII character {} at byte {} of {}; separate fields with "
                      "ASCII spaces and use ASCII digits",
                      DescribeNonAscii(body, bad), bad, Quote(body)));
    }
    return Invalid(fmt::format("expected 5 or 6 fields separated by spaces, got {}{}",
                               fields.size(),
                               fields.size() == 7 ? " (a year field is not supported)" : ""));
  }
  e.has_seconds_ = fields.size() == 6;
  e.fields_[kSec] = "0";
  const size_t first = e.has_seconds_ ? 0 : 1;
  for (size_t i = 0; i < fields.size(); ++i) e.fields_[first + i] = std::string(fields[i]);

  ParsedField parsed[6];
  for (int f = kSec; f <= kDow; ++f) {
    AUTOMAN_RETURN_IF_ERROR(ParseField(static_cast<FieldId>(f), e.fields_[f], &parsed[f]));
  }
  e.seconds_ = std::bitset<60>(parsed[kSec].bits);
  e.minutes_ = std::bitset<60>(parsed[kMin].bits);
  e.hours_ = std::bitset<24>(parsed[kHour].bits);
  e.dom_ = std::bitset<32>(parsed[kDom].bits);
  e.months_ = std::bitset<13>(parsed[kMon].bits);
  e.dow_ = std::bitset<7>(parsed[kDow].bits);
  e.dom_star_ = parsed[kDom].star;
  e.dow_star_ = parsed[kDow].star;
  e.dom_last_ = std::bitset<31>(parsed[kDom].last_offsets);
  e.dom_last_weekday_ = parsed[kDom].last_weekday;
  e.dom_nearest_weekday_ = std::bitset<32>(parsed[kDom].nearest);
  e.dow_last_ = std::bitset<7>(parsed[kDow].dow_last);
  for (int k = 1; k <= 5; ++k) e.dow_nth_[k] = std::bitset<7>(parsed[kDow].nth[k]);
  e.names_hours_ = e.fields_[kHour] != "*";
  e.Derive();

  // Reject what can never fire: if nothing matches in one whole cycle, nothing ever will.
  const LocalSeconds cycle_start{local_days(date::year(2000) / 1 / 1)};
  if (!e.Search(cycle_start, cycle_start + kCycle)) {
    // The simple, common case: plain days of the month that the selected months lack.
    const bool plain_dom =
        e.dom_last_.none() && !e.dom_last_weekday_ && e.dom_nearest_weekday_.none() && e.dom_.any();
    const bool any_dow = e.dow_.all();
    if (plain_dom && any_dow) {
      std::vector<std::string> months;
      for (int m : Values(e.months_)) months.push_back(kMonthName[m]);
      const std::vector<int> days = Values(e.dom_);
      return Invalid(fmt::format("never fires: no date matches day{} {} of {}",
                                 days.size() == 1 ? "" : "s", Numbers(days),
                                 JoinAnd(months, " or ")));
    }
    return Invalid(
        "never fires: the day-of-month, month and day-of-week fields match no date in "
        "a 400-year cycle");
  }
  return e;
}

void CronExpr::Derive() {
  auto fill = [](auto bits, int8_t* next, int n) {
    next[n] = -1;
    for (int i = n - 1; i >= 0; --i) next[i] = bits[i] ? static_cast<int8_t>(i) : next[i + 1];
  };
  fill(seconds_, next_second_, 60);
  fill(minutes_, next_minute_, 60);
  fill(hours_, next_hour_, 24);

  // Day masks, built forward (by construction, unlike DayMatches, which checks one day).
  for (unsigned len = 28; len <= 31; ++len) {
    for (unsigned w1 = 0; w1 < 7; ++w1) {
      const uint32_t in_month = ((uint32_t{1} << len) - 1) << 1;
      auto weekday_of = [&](unsigned d) { return (w1 + d - 1) % 7; };
      // The first day of the month that falls on weekday w.
      auto first_on = [&](unsigned w) { return 1 + (w + 7 - w1) % 7; };
      uint32_t dom = static_cast<uint32_t>(dom_.to_ulong()) & in_month;
      for (unsigned o = 0; o < 31; ++o) {
        if (dom_last_[o] && o < len) dom |= uint32_t{1} << (len - o);
      }
      if (dom_last_weekday_) {
        unsigned d = len;
        if (weekday_of(d) == 6) d -= 1;
        if (weekday_of(d) == 0) d -= 2;
        dom |= uint32_t{1} << d;
      }
      for (unsigned n = 1; n <= len; ++n) {
        if (!dom_nearest_weekday_[n]) continue;
        unsigned d = n;
        if (weekday_of(n) == 6) d = n == 1 ? 3 : n - 1;
        if (weekday_of(n) == 0) d = n == len ? n - 2 : n + 1;
        dom |= uint32_t{1} << d;
      }
      uint32_t dow = 0;
      for (unsigned w = 0; w < 7; ++w) {
        const unsigned first = first_on(w);
        if (dow_[w]) {
          for (unsigned d = first; d <= len; d += 7) dow |= uint32_t{1} << d;
        }
        if (dow_last_[w]) dow |= uint32_t{1} << (first + 7 * ((len - first) / 7));
        for (unsigned k = 1; k <= 5; ++k) {
          const unsigned d = first + 7 * (k - 1);
          if (dow_nth_[k][w] && d <= len) dow |= uint32_t{1} << d;
        }
      }
      day_masks_[len - 28][w1] = (dom_star_ || dow_star_) ? (dom & dow) : (dom | dow);
    }
  }
}

bool CronExpr::DayMatches(unsigned d, unsigned len, unsigned w1) const {
  const unsigned wd = (w1 + d - 1) % 7;
  const bool weekday = wd >= 1 && wd <= 5;
  bool dom = dom_[d] || (len - d <= 30 && dom_last_[len - d]);
  // LW: a weekday with no weekday after it in the month.
  if (dom_last_weekday_ && weekday && (d == len || (wd == 5 && len - d <= 2))) dom = true;
  // NW: d itself is day N, or d is the Friday before a Saturday N (N > 1), or the Monday
  // after a Sunday N (N < len), or the 3rd when the 1st is a Saturday, or the last-but-two
  // day when the last is a Sunday.
  if (weekday) {
    if (dom_nearest_weekday_[d]) dom = true;
    if (wd == 5 && d + 1 <= len && dom_nearest_weekday_[d + 1]) dom = true;
    if (wd == 1 && d >= 2 && d - 1 < len && dom_nearest_weekday_[d - 1]) dom = true;
    if (wd == 1 && d == 3 && dom_nearest_weekday_[1]) dom = true;
    if (wd == 5 && d + 2 == len && dom_nearest_weekday_[len]) dom = true;
  }
  const bool dow = dow_[wd] || (dow_last_[wd] && d + 7 > len) || dow_nth_[(d - 1) / 7 + 1][wd];
  return (dom_star_ || dow_star_) ? (dom && dow) : (dom || dow);
}

bool CronExpr::Matches(LocalSeconds t) const {
  if (t < LocalSeconds(kFirstDay) || t >= LocalSeconds(kEndDay)) return false;
  const local_days day = date::floor<days>(t);
  const int64_t tod = (t - day).count();
  if (!seconds_[tod % 60] || !minutes_[tod / 60 % 60] || !hours_[tod / 3600]) return false;
  const date::year_month_day ymd(day);
  const unsigned m = static_cast<unsigned>(ymd.month());
  if (!months_[m]) return false;
  const int y = static_cast<int>(ymd.year());
  const unsigned w1 = date::weekday(local_days(ymd.year() / ymd.month() / 1)).c_encoding();
  return DayMatches(static_cast<unsigned>(ymd.day()), DaysInMonth(y, m), w1);
}

int CronExpr::FirstTimeOfDay(int tod) const {
  const int h = tod / 3600;
  const int m = tod / 60 % 60;
  const int s = tod % 60;
  const int first_ms = next_minute_[0] * 60 + next_second_[0];
  const int hh = next_hour_[h];
  if (hh < 0) return -1;
  if (hh != h) return hh * 3600 + first_ms;
  const int mm = next_minute_[m];
  if (mm == m) {
    if (next_second_[s] >= 0) return h * 3600 + m * 60 + next_second_[s];
    const int m2 = next_minute_[m + 1];
    if (m2 >= 0) return h * 3600 + m2 * 60 + next_second_[0];
  } else if (mm >= 0) {
    return h * 3600 + mm * 60 + next_second_[0];
  }
  const int h2 = next_hour_[h + 1];
  return h2 < 0 ? -1 : h2 * 3600 + first_ms;
}

std::optional<LocalSeconds> CronExpr::Search(LocalSeconds from, LocalSeconds limit) const {
  if (limit > LocalSeconds(kEndDay)) limit = LocalSeconds(kEndDay);
  if (from < LocalSeconds(kFirstDay)) from = LocalSeconds(kFirstDay);
  if (from >= limit) return std::nullopt;
  const local_days start_day = date::floor<days>(from);
  const int tod = static_cast<int>((from - start_day).count());
  const date::year_month_day ymd(start_day);
  int y = static_cast<int>(ymd.year());
  unsigned m = static_cast<unsigned>(ymd.month());
  const unsigned start_dom = static_cast<unsigned>(ymd.day());
  const int first_time = FirstTimeOfDay(0);
  bool first = true;
  // At most 4,801 months: limit is no more than 400 years after from.
  while (true) {
    const local_days month_start{date::year(y) / date::month(m) / 1};
    if (LocalSeconds(month_start) >= limit) return std::nullopt;
    if (months_[m]) {
      const unsigned len = DaysInMonth(y, m);
      const unsigned w1 = date::weekday(month_start).c_encoding();
      uint32_t mask = day_masks_[len - 28][w1];
      if (first) mask &= ~((uint32_t{1} << start_dom) - 1);
      while (mask != 0) {
        const auto d = static_cast<unsigned>(std::countr_zero(mask));
        mask &= mask - 1;
        const int t = (first && d == start_dom) ? FirstTimeOfDay(tod) : first_time;
        if (t < 0) continue;
        const LocalSeconds r = LocalSeconds(month_start + days(d - 1)) + seconds(t);
        if (r >= limit) return std::nullopt;
        return r;
      }
    }
    first = false;
    if (++m > 12) {
      m = 1;
      ++y;
    }
  }
}

std::optional<LocalSeconds> CronExpr::Next(LocalSeconds from) const {
  if (from >= LocalSeconds(kEndDay)) return std::nullopt;
  return Search(from, from + kCycle);
}

std::optional<LocalSeconds> CronExpr::NextBefore(LocalSeconds from, LocalSeconds limit) const {
  if (from >= LocalSeconds(kEndDay)) return std::nullopt;
  return Search(from, std::min(limit, LocalSeconds(from + kCycle)));
}

std::string CronExpr::Explain() const {
  const std::vector<int> secs = Values(seconds_);
  const std::vector<int> mins = Values(minutes_);
  const std::vector<int> hrs = Values(hours_);
  auto clock = [&](int h, int m, int s) {
    return has_seconds_ ? fmt::format("{:02}:{:02}:{:02}", h, m, s)
                        : fmt::format("{:02}:{:02}", h, m);
  };

  // Time of day.
  std::string time;
  bool clock_times = false;  // time is a list of clock times ("at 02:30")
  bool clause = false;       // time ends in a clause set off by a comma
  if (secs.size() == 1 && mins.size() * hrs.size() <= 4) {
    std::vector<std::string> times;
    for (int h : hrs) {
      for (int m : mins) times.push_back(clock(h, m, secs[0]));
    }
    time = "at " + JoinAnd(times);
    clock_times = true;
  } else {
    const bool hours_all = hrs.size() == 24;
    int n = 0;
    if (secs.size() == 1 && secs[0] == 0) {
      if (IsEvery(mins, 60, &n)) {
        time = n == 1 ? "every minute" : fmt::format("every {} minutes", n);
        if (!hours_all) {
          clause = true;
          time += IsRun(hrs)
                      ? fmt::format(", between {:02}:00 and {:02}:59", hrs.front(), hrs.back())
                      : ", during " + UnitList("hour", hrs);
        }
      } else if (hours_all) {
        time = "at " + UnitList("minute", mins) + " past every hour";
      } else if (IsEvery(hrs, 24, &n)) {
        time = fmt::format("every {} hours at {}", n, UnitList("minute", mins));
      } else {
        time = "at " + UnitList("minute", mins) + " past " + UnitList("hour", hrs);
      }
    } else {
      const bool sec_every = IsEvery(secs, 60, &n);
      time = !sec_every ? "at " + UnitList("second", secs)
             : n == 1   ? std::string("every second")
                        : fmt::format("every {} seconds", n);
      if (mins.size() == 60) {
        if (!sec_every) time += " of every minute";
        if (!hours_all) {
          clause = true;
          time += IsRun(hrs)
                      ? fmt::format(", between {:02}:00 and {:02}:59", hrs.front(), hrs.back())
                      : ", during " + UnitList("hour", hrs);
        }
      } else {
        time += (sec_every ? " during " : " of ") + UnitList("minute", mins);
        time += hours_all ? " past every hour" : " past " + UnitList("hour", hrs);
      }
    }
  }

  // Days: DOM and DOW pieces (each a union), combined per Vixie.
  // Vixie: with both fields restricted a day matches either (a full field then makes every
  // day match); otherwise both must match (a full field then restricts nothing).
  const bool either = !dom_star_ && !dow_star_;
  const std::vector<int> dom_days = Values(dom_);
  const std::vector<int> dow_days = Values(dow_);
  bool dom_restricted = dom_days.size() < 31;
  bool dow_restricted = dow_days.size() < 7;
  if (either && (!dom_restricted || !dow_restricted)) dom_restricted = dow_restricted = false;
  const char* dow_join = dom_restricted && !either ? " or " : " and ";

  std::vector<std::string> dom_pieces;
  if (dom_restricted) {
    if (!dom_days.empty()) {
      if (dom_days.size() <= 3 && !(dom_days.size() == 3 && IsRun(dom_days))) {
        std::vector<std::string> ords;
        for (int d : dom_days) ords.push_back(Ordinal(d));
        dom_pieces.push_back("the " + JoinAnd(ords));
      } else {
        dom_pieces.push_back(UnitList("day", dom_days));
      }
    }
    for (int o = 0; o < 31; ++o) {
      if (!dom_last_[o]) continue;
      dom_pieces.push_back(o == 0 ? "the last day"
                                  : fmt::format("the {}-to-last day", Ordinal(o + 1)));
    }
    if (dom_last_weekday_) dom_pieces.push_back("the last weekday");
    for (int d : Values(dom_nearest_weekday_)) {
      dom_pieces.push_back(fmt::format("the weekday nearest the {}", Ordinal(d)));
    }
  }
  std::vector<std::string> dow_pieces;
  if (dow_restricted) {
    // Monday-first order, so that runs read "Monday through Sunday".
    if (!dow_days.empty()) {
      std::vector<int> mon_first;
      for (int d : dow_days) mon_first.push_back(d == 0 ? 7 : d);
      std::sort(mon_first.begin(), mon_first.end());
      dow_pieces.push_back(ListOf(
          mon_first, [](int d) { return std::string(kDayName[d % 7]); }, " through ", dow_join));
    }
    for (int k = 1; k <= 5; ++k) {
      for (int d : Values(dow_nth_[k])) {
        dow_pieces.push_back(fmt::format("the {} {} of the month", kNth[k], kDayName[d]));
      }
    }
    for (int d : Values(dow_last_)) {
      dow_pieces.push_back(fmt::format("the last {} of the month", kDayName[d]));
    }
  }
  const std::vector<int> month_values = Values(months_);
  bool months_said = month_values.size() == 12;
  std::string day;
  if (dom_restricted) {
    std::string dom_text = JoinAnd(dom_pieces);
    // "on January 1" for a single plain day in a single month.
    if (!dow_restricted && month_values.size() == 1 && dom_pieces.size() == 1 &&
        dom_days.size() == 1) {
      dom_text = fmt::format("{} {}", kMonthName[month_values[0]], dom_days[0]);
      months_said = true;
    } else {
      dom_text += " of the month";
    }
    day = "on " + dom_text;
    if (dow_restricted) {
      day += either ? " or on " : " when that is ";
      day += JoinAnd(dow_pieces, dow_join);
    }
  } else if (dow_restricted) {
    day = "on " + JoinAnd(dow_pieces);
  }

  std::string out = time;
  if (!day.empty()) {
    out += (clause ? ", " : " ") + day;
  } else if (clock_times) {
    out += " every day";
  }
  if (!months_said) {
    out += (clause || !day.empty()) ? ", in " : " in ";
    out += ListOf(
        month_values, [](int m) { return std::string(kMonthName[m]); }, " through ");
  }
  return out;
}

}  // namespace automan
