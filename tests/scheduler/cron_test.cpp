// CronExpr: every parse error path, every grammar feature, Next() against a brute-force
// Matches() oracle on randomized expressions, the 400-year search bound, and Explain().
#include "scheduler/cron.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace automan {
namespace {

using date::days;
using date::local_days;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A larger randomized sweep only in optimized builds without sanitizers.
#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
constexpr int kSweepScale = 20;
#else
constexpr int kSweepScale = 1;
#endif

LocalSeconds At(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return LocalSeconds(local_days(date::year(y) / mo / d)) + hours(h) + minutes(mi) + seconds(s);
}

std::string Show(std::optional<LocalSeconds> t) {
  return t ? date::format("%F %T", *t) : std::string("none");
}

CronExpr MustParse(std::string_view text) {
  auto r = CronExpr::Parse(text);
  EXPECT_TRUE(r.ok()) << "\"" << text << "\": " << r.status().message();
  if (!r.ok()) return *CronExpr::Parse("* * * * *");
  return std::move(r).value();
}

std::string ParseError(std::string_view text) {
  auto r = CronExpr::Parse(text);
  if (r.ok()) return "<parsed>";
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << text;
  return r.status().message();
}

// The first n fires at or after `from`, formatted.
std::vector<std::string> Fires(const CronExpr& e, LocalSeconds from, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    auto t = e.Next(from);
    out.push_back(Show(t));
    if (!t) break;
    from = *t + seconds(1);
  }
  return out;
}

// Both expressions fire at the same instants for a while (Next chains and Matches agree).
void ExpectEquivalent(std::string_view a, std::string_view b, LocalSeconds from, int n = 200) {
  SCOPED_TRACE(std::string(a) + " vs " + std::string(b));
  const CronExpr ea = MustParse(a);
  const CronExpr eb = MustParse(b);
  EXPECT_EQ(Fires(ea, from, n), Fires(eb, from, n));
}

// ---- Errors ----

struct ErrorCase {
  std::string text;
  std::vector<std::string> expected;  // substrings of the message; the first is its prefix
};

TEST(CronParse, EveryErrorPathNamesTheFieldAndTheItem) {
  const std::vector<ErrorCase> cases = {
      // Steps, ranges, values.
      {"*/0 * * * *", {"minute: ", "step 0", "\"*/0\"", "at least 1"}},
      {"60 * * * *", {"minute: ", "\"60\"", "out of range 0-59"}},
      {"1-99/7 * * * *", {"minute: ", "99", "\"1-99/7\"", "out of range 0-59"}},
      {"*/60 * * * *", {"minute: ", "step 60", "\"*/60\"", "larger than 59"}},
      {"*/ * * * *", {"minute: ", "step", "\"*/\""}},
      {"5- * * * *", {"minute: ", "expected a number", "\"5-\""}},
      {"-5 * * * *", {"minute: ", "\"-5\""}},
      {"0 24 * * *", {"hour: ", "\"24\"", "0-23"}},
      {"0 0 0 * *", {"day-of-month: ", "\"0\"", "1-31"}},
      {"0 0 32 * *", {"day-of-month: ", "\"32\"", "out of range 1-31"}},
      {"0 0 * 13 *", {"month: ", "\"13\"", "1-12"}},
      {"0 0 * 0 *", {"month: ", "\"0\"", "1-12"}},
      {"0 0 * * 8", {"day-of-week: ", "\"8\"", "0-7"}},
      {"60 0 0 * * *", {"second: ", "\"60\"", "0-59"}},
      {"0 0 0 * * 1-9", {"day-of-week: ", "9", "\"1-9\""}},
      {"99999999999999999999 * * * *", {"minute: ", "\"99999999999999999999\"", "out of range"}},
      // Wrapping ranges.
      {"0 0 * * FRI-MON", {"day-of-week: ", "\"FRI-MON\"", "wrap", "\"FRI-SAT,SUN-MON\""}},
      {"0 22-2 * * *", {"hour: ", "\"22-2\"", "wrap", "\"22-23,0-2\""}},
      {"0 0 * NOV-FEB *", {"month: ", "\"NOV-FEB\"", "\"NOV-DEC,JAN-FEB\""}},
      {"0 0 * * 5-1", {"day-of-week: ", "\"5-1\"", "\"5-6,0-1\""}},
      // Lists and garbage.
      {"1,,2 * * * *", {"minute: ", "empty item", "\"1,,2\""}},
      {",1 * * * *", {"minute: ", "empty item", "\",1\""}},
      {"0 1, * * *", {"hour: ", "empty item", "\"1,\""}},
      {"5x * * * *", {"minute: ", "unexpected \"x\"", "\"5x\""}},
      {"*/5/2 * * * *", {"minute: ", "unexpected \"/2\"", "\"*/5/2\""}},
      {"0 0 1-2- * *", {"day-of-month: ", "\"1-2-\""}},
      {"0 0 * * MON-", {"day-of-week: ", "\"MON-\""}},
      {"0 0 L5 * *", {"day-of-month: ", "\"L5\""}},
      {"0 0 * * 5L/2", {"day-of-week: ", "unexpected \"/2\"", "\"5L/2\""}},
      {"0 0 1 * 1\x01", {"day-of-week: ", "\\x01"}},
      // Names.
      {"MON * * * *", {"minute: ", "\"MON\"", "not a number"}},
      {"0 0 * JANUARY *", {"month: ", "unknown name \"JANUARY\"", "JAN-DEC"}},
      {"0 0 * * FOO", {"day-of-week: ", "unknown name \"FOO\"", "SUN-SAT"}},
      {"0 0 MON * *", {"day-of-month: ", "\"MON\"", "not a number"}},
      // L, W, # in the wrong field or the wrong shape.
      {"5L * * * *", {"minute: ", "\"L\"", "\"5L\"", "day-of-month and day-of-week"}},
      {"0 L * * *", {"hour: ", "\"L\"", "only allowed in day-of-month and day-of-week"}},
      {"0 0 * L *", {"month: ", "\"L\"", "only allowed"}},
      {"0 0 * 5L *", {"month: ", "\"5L\"", "only allowed"}},
      {"0 5W * * *", {"hour: ", "\"W\"", "\"5W\"", "only allowed in day-of-month"}},
      {"0 0 * * 5W", {"day-of-week: ", "\"W\"", "\"5W\"", "only allowed in day-of-month"}},
      {"0 0 * * LW", {"day-of-week: ", "\"LW\"", "only allowed in day-of-month"}},
      {"0 0 5#2 * *", {"day-of-month: ", "\"#\"", "\"5#2\"", "only allowed in day-of-week"}},
      {"0 5#2 * * *", {"hour: ", "\"#\"", "only allowed in day-of-week"}},
      {"0 0 5L * *", {"day-of-month: ", "\"5L\"", "stand alone"}},
      {"0 0 * * FRI#6", {"day-of-week: ", "\"#6\"", "\"FRI#6\"", "#1 to #5"}},
      {"0 0 * * 5#0", {"day-of-week: ", "\"#0\"", "#1 to #5"}},
      {"0 0 * * 5#", {"day-of-week: ", "\"5#\"", "1-5"}},
      {"0 0 * * 1-5#2", {"day-of-week: ", "\"1-5#2\"", "single weekday"}},
      {"0 0 * * 1-5L", {"day-of-week: ", "\"1-5L\"", "single weekday"}},
      {"0 0 * * *L", {"day-of-week: ", "\"*L\""}},
      {"0 0 * * L", {"day-of-week: ", "\"L\"", "needs a weekday"}},
      {"0 0 1-5W * *", {"day-of-month: ", "\"W\"", "\"1-5W\"", "single day"}},
      {"0 0 *W * *", {"day-of-month: ", "\"*W\"", "single day"}},
      {"0 0 W * *", {"day-of-month: ", "\"W\"", "needs a day"}},
      {"0 0 0W * *", {"day-of-month: ", "\"0W\"", "1-31"}},
      {"0 0 32W * *", {"day-of-month: ", "\"32W\"", "1-31"}},
      {"0 0 15W/2 * *", {"day-of-month: ", "\"15W/2\""}},
      {"0 0 L-31 * *", {"day-of-month: ", "offset 31", "\"L-31\"", "0-30"}},
      {"0 0 L- * *", {"day-of-month: ", "\"L-\""}},
      {"0 0 L/2 * *", {"day-of-month: ", "\"L/2\""}},
      // ?
      {"0 ? * * *", {"hour: ", "\"?\"", "only allowed in day-of-month and day-of-week"}},
      {"? * * * *", {"minute: ", "\"?\""}},
      {"0 0 * ? *", {"month: ", "\"?\""}},
      {"0 0 ?,1 * *", {"day-of-month: ", "whole field", "\"?,1\""}},
      {"0 0 * * 1,?", {"day-of-week: ", "whole field", "\"1,?\""}},
      // Field count.
      {"* * * *", {"expected 5 or 6 fields", "got 4"}},
      {"*", {"expected 5 or 6 fields", "got 1"}},
      {"* * * * * * *", {"expected 5 or 6 fields", "got 7", "year field"}},
      // Non-ASCII: Arabic-Indic and full-width digits, a no-break space, invalid UTF-8.
      {"\u0663\u0660 * * * *", {"minute: ", "non-ASCII character", "U+0663", "\"\u0663\u0660\""}},
      {"0 \uff11\uff12 * * *", {"hour: ", "non-ASCII character", "U+FF11"}},
      {"0 0 1,\u0662 * *", {"day-of-month: ", "non-ASCII character", "\"\u0662\""}},
      {"0\u00a00 * * * *", {"minute: ", "non-ASCII character", "U+00A0"}},
      {"0\u00a00 * * *", {"non-ASCII character U+00A0", "byte 1"}},
      {"\xff * * * *", {"minute: ", "non-ASCII character", "byte 0xff", "\"\\xff\""}},
      // Prefixes and macros.
      {"CRON_TZ=Europe/Berlin 0 0 * * *", {"CRON_TZ=", "not supported", "schedule's tz"}},
      {"cron_tz=UTC 0 0 * * *", {"CRON_TZ=", "schedule's tz"}},
      {"TZ=UTC 0 0 * * *", {"TZ=", "not supported", "schedule's tz"}},
      {"@reboot", {"@reboot is not supported"}},
      {"@REBOOT", {"@reboot is not supported"}},
      {"@every 5m", {"@every is not supported", "every:"}},
      {"@fortnightly", {"unknown macro \"@fortnightly\"", "@daily"}},
      {"@daily 0", {"unexpected \"0\" after \"@daily\""}},
      {"", {"empty expression"}},
      {" \t ", {"empty expression"}},
      // Impossible expressions.
      {"0 0 30 2 *", {"never fires", "day 30 of February"}},
      {"0 0 31 4,6,9,11 *", {"never fires", "day 31 of April, June, September or November"}},
      {"0 0 30,31 2 *", {"never fires", "days 30 and 31 of February"}},
      {"0 0 30 2 ?", {"never fires", "day 30 of February"}},
      {"0 0 0 31 2 *", {"never fires", "day 31 of February"}},
      {"0 0 30 2 */2", {"never fires", "400-year cycle"}},
      {"0 0 31W 2 *", {"never fires", "400-year cycle"}},
      {"0 0 L-30 2 *", {"never fires", "400-year cycle"}},
      {"0 0 * 2 *,1#5", {"<parsed>"}},  // AND with a full DOW: every day in February
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string message = ParseError(c.text);
    ASSERT_FALSE(c.expected.empty());
    if (c.expected[0] == "<parsed>") {
      EXPECT_EQ(message, "<parsed>");
      continue;
    }
    EXPECT_THAT(message, StartsWith(c.expected[0]));
    for (const std::string& s : c.expected) EXPECT_THAT(message, HasSubstr(s));
  }
}

TEST(CronParse, OverlongInputIsRejectedBeforeAnythingElse) {
  // 10 KB that would otherwise be a valid expression (spaces are trimmed later).
  std::string big = "0 0 * * *" + std::string(10 * 1024, ' ');
  EXPECT_EQ(ParseError(big),
            fmt::format("expression is {} bytes long; the limit is 256", big.size()));
  // Garbage of any kind: still the length message, not a field error.
  EXPECT_THAT(ParseError(std::string(10 * 1024, '\xff')), StartsWith("expression is 10240 bytes"));
  EXPECT_THAT(ParseError("CRON_TZ=UTC " + std::string(300, '1')), StartsWith("expression is"));
  // Exactly the limit is fine.
  std::string at_limit = "0 0 * * *" + std::string(CronExpr::kMaxLength - 9, ' ');
  ASSERT_EQ(at_limit.size(), CronExpr::kMaxLength);
  EXPECT_TRUE(CronExpr::Parse(at_limit).ok());
  EXPECT_THAT(ParseError(at_limit + " "), StartsWith("expression is 257 bytes"));
}

// ---- Features ----

TEST(CronParse, AccessorsTextSecondsAndNamedHours) {
  const CronExpr e = MustParse("  \t30 2 * * *\n");
  EXPECT_EQ(e.text(), "30 2 * * *");
  EXPECT_FALSE(e.has_seconds());
  EXPECT_TRUE(MustParse("0 30 2 * * *").has_seconds());
  EXPECT_FALSE(MustParse("@daily").has_seconds());
  EXPECT_EQ(MustParse("@daily").text(), "@daily");

  for (const char* named :
       {"30 2 * * *", "*/15 1-2 * * *", "0 */2 * * *", "@daily", "@weekly", "0 */1 * * *",
        "0 0-23 * * *", "0 1,2 * * *", "0 0 0 * * *", "@yearly", "@midnight"}) {
    EXPECT_TRUE(MustParse(named).names_hours()) << named;
  }
  for (const char* unnamed : {"*/20 * * * *", "@hourly", "* * * * *", "0 * * * 1-5",
                              "*/5 * * * * *", "0 0 * 1 * *", "0 0 * * * *"}) {
    EXPECT_FALSE(MustParse(unnamed).names_hours()) << unnamed;
  }
}

TEST(CronParse, FieldSeparatorsAndCase) {
  const LocalSeconds from = At(2024, 1, 1);
  ExpectEquivalent("0\t2  *   * *", "0 2 * * *", from);
  ExpectEquivalent("05 02 01 01 *", "5 2 1 1 *", from, 5);
  ExpectEquivalent("0 0 * jan,Feb,mAR *", "0 0 * 1-3 *", from);
  ExpectEquivalent("0 0 * jan-mar *", "0 0 * 1,2,3 *", from);
  ExpectEquivalent("0 0 * * mon-fri", "0 0 * * 1-5", from);
  ExpectEquivalent("0 0 * * Mon,wed,FRI", "0 0 * * 1,3,5", from);
  ExpectEquivalent("@DAILY", "0 0 * * *", from);
}

TEST(CronParse, ZeroAndSevenAreBothSunday) {
  const LocalSeconds from = At(2024, 1, 1);
  for (const char* sunday : {"0 0 * * 7", "0 0 * * SUN", "0 0 * * sun", "0 0 * * 0,7"}) {
    ExpectEquivalent(sunday, "0 0 * * 0", from, 60);
  }
  ExpectEquivalent("0 0 * * 5-7", "0 0 * * 5,6,0", from);
  ExpectEquivalent("0 0 * * FRI-SUN", "0 0 * * 5,6,0", from);
  ExpectEquivalent("0 0 * * SAT-SUN", "0 0 * * 6,0", from);
  ExpectEquivalent("0 0 * * 1-7", "0 0 * * *", from);
  ExpectEquivalent("0 0 * * SUN-SAT", "0 0 * * *", from);
  ExpectEquivalent("0 0 * * 7#1", "0 0 * * SUN#1", from, 24);
  ExpectEquivalent("0 0 * * 7L", "0 0 * * 0L", from, 24);
  // 2024-01-07 is the first Sunday of 2024.
  EXPECT_EQ(Show(MustParse("0 0 * * 7").Next(from)), "2024-01-07 00:00:00");
}

TEST(CronParse, RangesStepsAndLists) {
  const LocalSeconds from = At(2024, 1, 1);
  ExpectEquivalent("*/15 * * * *", "0,15,30,45 * * * *", from);
  ExpectEquivalent("5/20 * * * *", "5,25,45 * * * *", from);
  ExpectEquivalent("10-50/20 * * * *", "10,30,50 * * * *", from);
  ExpectEquivalent("0 */6 * * *", "0 0,6,12,18 * * *", from);
  ExpectEquivalent("0 0 */10 * *", "0 0 1,11,21,31 * *", from);
  ExpectEquivalent("0 0 1 */4 *", "0 0 1 1,5,9 *", from, 10);
  ExpectEquivalent("0 0 * * */2", "0 0 * * 0,2,4,6", from);
  ExpectEquivalent("0 0 * * 1/2", "0 0 * * 1,3,5", from);
  ExpectEquivalent("1-3,5,7-9/2 * * * *", "1,2,3,5,7,9 * * * *", from);
  ExpectEquivalent("*/59 * * * *", "0,59 * * * *", from);
  ExpectEquivalent("0 0 * * *,MON", "0 0 * * *", from);
  ExpectEquivalent("*/20 * * * * *", "0,20,40 * * * * *", from);
  ExpectEquivalent("0 * * * * *", "* * * * *", from);
  // Macros.
  ExpectEquivalent("@yearly", "0 0 1 1 *", from, 3);
  ExpectEquivalent("@annually", "0 0 1 1 *", from, 3);
  ExpectEquivalent("@monthly", "0 0 1 * *", from, 13);
  ExpectEquivalent("@weekly", "0 0 * * 0", from);
  ExpectEquivalent("@daily", "0 0 * * *", from);
  ExpectEquivalent("@midnight", "0 0 * * *", from);
  ExpectEquivalent("@hourly", "0 * * * *", from);
  // ? means any.
  ExpectEquivalent("0 0 ? * MON", "0 0 * * MON", from);
  ExpectEquivalent("0 0 1 * ?", "0 0 1 * *", from, 13);
  ExpectEquivalent("0 0 ? * ?", "0 0 * * *", from);
}

TEST(CronParse, SixFieldsHaveSeconds) {
  const CronExpr e = MustParse("30 * * * * *");
  EXPECT_EQ(Fires(e, At(2024, 1, 1, 0, 0, 31), 2),
            (std::vector<std::string>{"2024-01-01 00:01:30", "2024-01-01 00:02:30"}));
  EXPECT_EQ(Show(MustParse("*/10 * * * * *").Next(At(2024, 1, 1, 0, 0, 1))), "2024-01-01 00:00:10");
  // Five fields fire at second 0 only.
  EXPECT_EQ(Show(MustParse("* * * * *").Next(At(2024, 1, 1, 0, 0, 1))), "2024-01-01 00:01:00");
  EXPECT_FALSE(MustParse("* * * * *").Matches(At(2024, 1, 1, 0, 0, 1)));
}

// Days of 2024 (one year) on which a day-level expression fires at 00:00, as "MM-DD".
std::vector<std::string> Days2024(std::string_view expr) {
  std::vector<std::string> out;
  const CronExpr e = MustParse(expr);
  LocalSeconds from = At(2024, 1, 1);
  for (int i = 0; i < 400; ++i) {  // bounded even if Next() misbehaves
    const auto t = e.Next(from);
    if (!t || *t >= At(2025, 1, 1)) break;
    EXPECT_GE(*t, from) << expr;
    out.push_back(date::format("%m-%d", *t));
    from = std::max(*t, from) + seconds(1);
  }
  return out;
}

TEST(CronDays, LastDayAndOffsets) {
  EXPECT_EQ(Days2024("0 0 L * *"),
            (std::vector<std::string>{"01-31", "02-29", "03-31", "04-30", "05-31", "06-30", "07-31",
                                      "08-31", "09-30", "10-31", "11-30", "12-31"}));
  EXPECT_EQ(Days2024("0 0 L-1 * *"),
            (std::vector<std::string>{"01-30", "02-28", "03-30", "04-29", "05-30", "06-29", "07-30",
                                      "08-30", "09-29", "10-30", "11-29", "12-30"}));
  EXPECT_EQ(Days2024("0 0 L-30 * *"), (std::vector<std::string>{"01-01", "03-01", "05-01", "07-01",
                                                                "08-01", "10-01", "12-01"}));
  EXPECT_EQ(Days2024("0 0 1,L 2 *"), (std::vector<std::string>{"02-01", "02-29"}));
  EXPECT_EQ(Show(MustParse("0 0 L 2 *").Next(At(2023, 1, 1))), "2023-02-28 00:00:00");
}

TEST(CronDays, WeekdaySpecifiers) {
  // LW: last weekday (2024-03-31 is a Sunday, 2024-08-31 a Saturday).
  EXPECT_EQ(Days2024("0 0 LW * *"),
            (std::vector<std::string>{"01-31", "02-29", "03-29", "04-30", "05-31", "06-28", "07-31",
                                      "08-30", "09-30", "10-31", "11-29", "12-31"}));
  // 15W: 2024-06-15 is a Saturday (-> Friday 14th), 2024-09-15 and 2024-12-15 Sundays.
  EXPECT_EQ(Days2024("0 0 15W * *"),
            (std::vector<std::string>{"01-15", "02-15", "03-15", "04-15", "05-15", "06-14", "07-15",
                                      "08-15", "09-16", "10-15", "11-15", "12-16"}));
  // 1W never crosses back into the previous month: Saturday 2024-06-01 -> Monday 3rd.
  EXPECT_EQ(Days2024("0 0 1W * *"),
            (std::vector<std::string>{"01-01", "02-01", "03-01", "04-01", "05-01", "06-03", "07-01",
                                      "08-01", "09-02", "10-01", "11-01", "12-02"}));
  // 31W: only months with a 31st; Sunday 2024-03-31 -> Friday 29th, never into April.
  EXPECT_EQ(Days2024("0 0 31W * *"), (std::vector<std::string>{"01-31", "03-29", "05-31", "07-31",
                                                               "08-30", "10-31", "12-31"}));
  // 30W in June 2024: the 30th is the last day and a Sunday -> Friday 28th.
  EXPECT_EQ(Days2024("0 0 30W 6 *"), (std::vector<std::string>{"06-28"}));
  // 5L / FRIL: last Friday.
  const std::vector<std::string> last_fridays = {"01-26", "02-23", "03-29", "04-26",
                                                 "05-31", "06-28", "07-26", "08-30",
                                                 "09-27", "10-25", "11-29", "12-27"};
  EXPECT_EQ(Days2024("0 0 * * 5L"), last_fridays);
  EXPECT_EQ(Days2024("0 0 * * FRIL"), last_fridays);
  EXPECT_EQ(Days2024("0 0 * * fril"), last_fridays);
  // 1#1 / MON#1: first Monday.
  const std::vector<std::string> first_mondays = {"01-01", "02-05", "03-04", "04-01",
                                                  "05-06", "06-03", "07-01", "08-05",
                                                  "09-02", "10-07", "11-04", "12-02"};
  EXPECT_EQ(Days2024("0 0 * * 1#1"), first_mondays);
  EXPECT_EQ(Days2024("0 0 * * MON#1"), first_mondays);
  // 5#5: fifth Friday.
  EXPECT_EQ(Days2024("0 0 * * 5#5"),
            (std::vector<std::string>{"03-29", "05-31", "08-30", "11-29"}));
  // Lists of specials.
  EXPECT_EQ(Days2024("0 0 * 1 1#1,5L"), (std::vector<std::string>{"01-01", "01-26"}));
  EXPECT_EQ(Days2024("0 0 1,15W,L 6 *"), (std::vector<std::string>{"06-01", "06-14", "06-30"}));
}

TEST(CronDays, VixieOrWhenBothRestrictedAndWhenOneIsStar) {
  // Both restricted: the 13th OR Fridays (November 2024: Fridays 1, 8, 15, 22, 29).
  EXPECT_EQ(Days2024("0 0 13 11 5"),
            (std::vector<std::string>{"11-01", "11-08", "11-13", "11-15", "11-22", "11-29"}));
  // DOM starts with '*': both must match, so odd-numbered Fridays only.
  EXPECT_EQ(Days2024("0 0 */2 11 5"), (std::vector<std::string>{"11-01", "11-15", "11-29"}));
  // ? is like *: DOW alone decides.
  EXPECT_EQ(Days2024("0 0 ? 11 FRI"),
            (std::vector<std::string>{"11-01", "11-08", "11-15", "11-22", "11-29"}));
  // A restricted DOW star-step with a restricted DOM: AND as well.
  EXPECT_EQ(Days2024("0 0 1-10 11 */7"), (std::vector<std::string>{"11-03", "11-10"}));
  // 30 February or Mondays in February: not impossible.
  EXPECT_EQ(Days2024("0 0 30 2 MON"),
            (std::vector<std::string>{"02-05", "02-12", "02-19", "02-26"}));
}

// ---- Next() against the brute-force oracle ----

// Random expressions from the grammar, biased so that many fire often enough for a short
// brute-force window, while the rest exercise sparse schedules.
class ExprGen {
 public:
  explicit ExprGen(uint64_t seed) : rng_(seed) {}

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }

  // field: 0 second, 1 minute, 2 hour, 3 day-of-month, 4 month, 5 day-of-week.
  std::string Field(int field, int star_percent) {
    if (Chance(star_percent)) return "*";
    if ((field == 3 || field == 5) && Chance(8)) return "?";
    const int items = Chance(60) ? 1 : Uniform(2, 3);
    std::string out;
    for (int i = 0; i < items; ++i) {
      if (i > 0) out += ',';
      out += Item(field);
    }
    return out;
  }

  // With seconds the oracle window is shorter, so the other fields are denser.
  std::string Expression(bool seconds) {
    std::string e;
    if (seconds) e += Field(0, 40) + " ";
    e += Field(1, seconds ? 50 : 35) + " ";
    e += Field(2, seconds ? 65 : 45) + " ";
    e += Field(3, seconds ? 70 : 55) + " ";
    e += Field(4, seconds ? 85 : 75) + " ";
    e += Field(5, seconds ? 70 : 55);
    return e;
  }

  // A random instant in 1970..2099, sometimes at a month's end or an exact midnight.
  LocalSeconds Instant() {
    const int y = Uniform(1970, 2099);
    const unsigned m = static_cast<unsigned>(Uniform(1, 12));
    const int kind = Uniform(0, 7);
    const unsigned last = static_cast<unsigned>(
        (date::year_month_day_last(date::year(y), date::month_day_last(date::month(m)))).day());
    if (kind == 0) return At(y, m, last, 23, Uniform(0, 59), Uniform(0, 59));
    if (kind == 1) return At(y, m, static_cast<unsigned>(Uniform(1, static_cast<int>(last))));
    if (kind == 2 && m == 12) return At(y, 12, 31, 23, 59, 59);
    return At(y, m, static_cast<unsigned>(Uniform(1, static_cast<int>(last))), Uniform(0, 23),
              Uniform(0, 59), Uniform(0, 59));
  }

 private:
  static constexpr int kMin[6] = {0, 0, 0, 1, 1, 0};
  static constexpr int kMax[6] = {59, 59, 23, 31, 12, 7};

  std::string Value(int field, int v) {
    static constexpr const char* kMonths[13] = {"",    "JAN", "feb", "Mar", "APR", "may", "Jun",
                                                "JUL", "aug", "Sep", "OCT", "nov", "Dec"};
    static constexpr const char* kDays[8] = {"SUN", "mon", "Tue", "WED",
                                             "thu", "Fri", "SAT", "sun"};
    if (field == 4 && Chance(30)) return kMonths[v];
    if (field == 5 && Chance(30)) return kDays[v];
    return std::to_string(v);
  }

  std::string Item(int field) {
    const int lo = kMin[field];
    const int hi = kMax[field];
    if (field == 3) {
      switch (Uniform(0, 11)) {
        case 0:
          return "L";
        case 1:
          return "L-" + std::to_string(Chance(80) ? Uniform(0, 6) : Uniform(0, 30));
        case 2:
          return "LW";
        case 3: {  // edge days are where the W rules differ
          static constexpr int kEdges[] = {1, 2, 3, 27, 28, 29, 30, 31};
          return std::to_string(Chance(60) ? kEdges[Uniform(0, 7)] : Uniform(1, 31)) + "W";
        }
        default:
          break;
      }
    }
    if (field == 5) {
      switch (Uniform(0, 9)) {
        case 0:
          return Value(field, Uniform(0, 7)) + "L";
        case 1:
          return Value(field, Uniform(0, 7)) + "#" + std::to_string(Uniform(1, 5));
        default:
          break;
      }
    }
    const int step = Chance(50) ? Uniform(1, std::min(hi, 15)) : Uniform(1, hi);
    switch (Uniform(0, 5)) {
      case 0:
        return "*/" + std::to_string(step);
      case 1:
      case 2:
        return Value(field, Uniform(lo, hi));
      case 3: {
        const int a = Uniform(lo, hi);
        return Value(field, a) + "-" + Value(field, Uniform(a, hi));
      }
      case 4: {
        const int a = Uniform(lo, hi);
        return Value(field, a) + "-" + Value(field, Uniform(a, hi)) + "/" + std::to_string(step);
      }
      default:
        return Value(field, Uniform(lo, hi)) + "/" + std::to_string(step);
    }
  }

  std::mt19937_64 rng_;
};

uint64_t Seed() {
  uint64_t seed = 20260329;
  if (const char* env = std::getenv("AUTOMAN_CRON_SEED")) seed = std::strtoull(env, nullptr, 10);
  printf("cron randomized tests: seed %llu (set AUTOMAN_CRON_SEED to change), scale %d\n",
         static_cast<unsigned long long>(seed), kSweepScale);
  return seed;
}

// Compares Next(from) with a step-by-step Matches() scan over [from, from + window).
void CheckAgainstOracle(const CronExpr& e, LocalSeconds from, seconds window, int* found) {
  const seconds step = e.has_seconds() ? seconds(1) : seconds(60);
  LocalSeconds t = from;
  if (!e.has_seconds()) t = date::ceil<minutes>(from);  // 5 fields: whole minutes only
  std::optional<LocalSeconds> oracle;
  for (; t < from + window; t += step) {
    if (e.Matches(t)) {
      oracle = t;
      break;
    }
  }
  const auto next = e.Next(from);
  ASSERT_TRUE(next.has_value()) << "parsed, so it fires within 400 years";
  EXPECT_GE(*next, from);
  EXPECT_TRUE(e.Matches(*next)) << Show(next);
  if (oracle) {
    ++*found;
    EXPECT_EQ(Show(next), Show(oracle));
  } else {
    EXPECT_GE(*next, from + window) << "the oracle saw no match before it";
  }
}

TEST(CronNext, MatchesBruteForceOracleFiveFields) {
  ExprGen gen(Seed());
  int parsed = 0;
  int found = 0;
  const int cases = 1000 * kSweepScale;
  for (int i = 0; i < cases; ++i) {
    const std::string text = gen.Expression(/*seconds=*/false);
    auto e = CronExpr::Parse(text);
    if (!e.ok()) {
      // The generator only produces well-formed items; the one allowed failure is "never".
      EXPECT_THAT(e.status().message(), StartsWith("never fires")) << text;
      continue;
    }
    ++parsed;
    for (int k = 0; k < 2; ++k) {
      const LocalSeconds from = gen.Instant();
      SCOPED_TRACE(text + " from " + Show(from));
      CheckAgainstOracle(*e, from, hours(48), &found);
      if (HasFailure()) return;
    }
  }
  printf("5-field: %d expressions parsed of %d, %d oracle matches\n", parsed, cases, found);
  EXPECT_GT(parsed, cases * 9 / 10);
  EXPECT_GT(found, parsed / 2) << "the generator should produce mostly dense expressions";
}

TEST(CronNext, MatchesBruteForceOracleSixFields) {
  ExprGen gen(Seed() + 1);
  int parsed = 0;
  int found = 0;
  const int cases = 300 * kSweepScale;
  for (int i = 0; i < cases; ++i) {
    const std::string text = gen.Expression(/*seconds=*/true);
    auto e = CronExpr::Parse(text);
    if (!e.ok()) {
      EXPECT_THAT(e.status().message(), StartsWith("never fires")) << text;
      continue;
    }
    ++parsed;
    const LocalSeconds from = gen.Instant();
    SCOPED_TRACE(text + " from " + Show(from));
    CheckAgainstOracle(*e, from, hours(3), &found);
    if (HasFailure()) return;
  }
  printf("6-field: %d expressions parsed of %d, %d oracle matches\n", parsed, cases, found);
  EXPECT_GT(parsed, cases * 9 / 10);
  EXPECT_GT(found, parsed / 3);
}

// Day-level expressions over three years: every fire of the Next() chain against a
// day-by-day Matches() scan (the time of day is fixed, so checking it once a day is exact).
TEST(CronNext, DayRulesMatchDayByDayOracleOverYears) {
  ExprGen gen(Seed() + 2);
  int parsed = 0;
  const int cases = 150 * kSweepScale;
  for (int i = 0; i < cases; ++i) {
    const int h = gen.Uniform(0, 23);
    const int m = gen.Uniform(0, 59);
    const std::string text =
        fmt::format("{} {} {} {} {}", m, h, gen.Field(3, 10), gen.Field(4, 60), gen.Field(5, 40));
    auto e = CronExpr::Parse(text);
    if (!e.ok()) continue;
    ++parsed;
    const local_days first = date::floor<days>(gen.Instant());
    const local_days end = first + days(3 * 366);
    SCOPED_TRACE(text + " from " + date::format("%F", first));
    std::vector<LocalSeconds> oracle;
    for (local_days d = first; d < end; d += days(1)) {
      const LocalSeconds t = LocalSeconds(d) + hours(h) + minutes(m);
      if (e->Matches(t)) oracle.push_back(t);
    }
    std::vector<LocalSeconds> chain;
    LocalSeconds from = LocalSeconds(first);
    while (chain.size() <= oracle.size()) {  // bounded even if Next() misbehaves
      const auto t = e->Next(from);
      if (!t || *t >= LocalSeconds(end)) break;
      chain.push_back(*t);
      from = std::max(*t, from) + seconds(1);
    }
    if (chain != oracle) {
      size_t k = 0;
      while (k < chain.size() && k < oracle.size() && chain[k] == oracle[k]) ++k;
      FAIL() << "fire #" << k << ": Next chain has "
             << (k < chain.size() ? Show(chain[k]) : "nothing") << ", the oracle "
             << (k < oracle.size() ? Show(oracle[k]) : "nothing");
    }
  }
  printf("day rules: %d expressions parsed of %d\n", parsed, cases);
  EXPECT_GT(parsed, cases / 2);
}

// Matches() itself, spot-checked against dates from a calendar.
TEST(CronMatches, SpotChecks) {
  EXPECT_TRUE(MustParse("30 2 * * *").Matches(At(2024, 5, 5, 2, 30)));
  EXPECT_FALSE(MustParse("30 2 * * *").Matches(At(2024, 5, 5, 2, 31)));
  EXPECT_FALSE(MustParse("30 2 * * *").Matches(At(2024, 5, 5, 2, 30, 1)));
  EXPECT_TRUE(MustParse("15 30 2 * * *").Matches(At(2024, 5, 5, 2, 30, 15)));
  EXPECT_TRUE(MustParse("0 0 L 2 *").Matches(At(2024, 2, 29)));
  EXPECT_FALSE(MustParse("0 0 L 2 *").Matches(At(2024, 2, 28)));
  EXPECT_TRUE(MustParse("0 0 L 2 *").Matches(At(2023, 2, 28)));
  EXPECT_TRUE(MustParse("0 0 * * 5L").Matches(At(2024, 2, 23)));   // a Friday
  EXPECT_FALSE(MustParse("0 0 * * 5L").Matches(At(2024, 2, 16)));  // not the last one
  EXPECT_TRUE(MustParse("0 0 * * 1#1").Matches(At(2024, 9, 2)));
  EXPECT_FALSE(MustParse("0 0 * * 1#2").Matches(At(2024, 9, 2)));
  EXPECT_TRUE(MustParse("0 0 15W * *").Matches(At(2024, 6, 14)));
  EXPECT_FALSE(MustParse("0 0 15W * *").Matches(At(2024, 6, 15)));
  EXPECT_TRUE(MustParse("0 0 LW * *").Matches(At(2024, 3, 29)));
  // Outside years 0000..9999: never.
  EXPECT_FALSE(MustParse("* * * * *").Matches(At(10000, 1, 1)));
  EXPECT_FALSE(MustParse("* * * * *").Matches(At(-1, 12, 31, 23, 59)));
  EXPECT_FALSE(MustParse("* * * * *").Matches(LocalSeconds::max()));
  EXPECT_FALSE(MustParse("* * * * *").Matches(LocalSeconds::min()));
}

// ---- The search bound ----

TEST(CronNext, FindsRareDatesWithinOneCycle) {
  // No February 29 in 2100: the next after 2097 is 2104.
  EXPECT_EQ(Show(MustParse("0 0 29 2 *").Next(At(2097, 1, 1))), "2104-02-29 00:00:00");
  EXPECT_EQ(Show(MustParse("0 0 29 2 *").Next(At(2096, 2, 29, 0, 0, 1))), "2104-02-29 00:00:00");
  // Vixie OR: the 29th of February or any Monday in February; 2097-02-04 is a Monday.
  const auto or_fire = MustParse("0 0 29 2 1").Next(At(2097, 1, 1));
  ASSERT_TRUE(or_fire);
  EXPECT_EQ(Show(or_fire), "2097-02-04 00:00:00");
  EXPECT_EQ(date::weekday(date::floor<days>(*or_fire)), date::Monday);
  // A fifth Friday in February needs a leap year whose February starts on a Friday.
  const CronExpr fifth_friday = MustParse("0 0 * 2 5#5");
  EXPECT_EQ(Show(fifth_friday.Next(At(2024, 3, 1))), "2036-02-29 00:00:00");
  EXPECT_EQ(Show(fifth_friday.Next(At(2097, 1, 1))), "2104-02-29 00:00:00");
  EXPECT_EQ(Show(MustParse("0 0 * 2 FRIL").Next(At(2036, 2, 28))), "2036-02-29 00:00:00");
  // A sparse AND (DOM starts with '*'): Fridays that are the 1st, 14th or 27th.
  const CronExpr sparse = MustParse("0 0 */13 * FRI");
  std::vector<std::string> fires;
  for (const std::string& f : Fires(sparse, At(2024, 1, 1), 5)) fires.push_back(f.substr(0, 10));
  EXPECT_EQ(fires, (std::vector<std::string>{"2024-03-01", "2024-06-14", "2024-09-27", "2024-11-01",
                                             "2024-12-27"}));
}

TEST(CronNext, StopsAtYear9999) {
  EXPECT_EQ(Show(MustParse("0 0 29 2 *").Next(At(9996, 1, 1))), "9996-02-29 00:00:00");
  EXPECT_EQ(Show(MustParse("0 0 29 2 *").Next(At(9996, 3, 1))), "none");  // 10000 is too late
  EXPECT_EQ(Show(MustParse("0 0 1 1 *").Next(At(9999, 6, 1))), "none");
  const CronExpr every = MustParse("* * * * *");
  EXPECT_EQ(Show(every.Next(At(9999, 12, 31, 23, 59))), "9999-12-31 23:59:00");
  EXPECT_EQ(Show(every.Next(At(9999, 12, 31, 23, 59, 1))), "none");
  EXPECT_EQ(Show(every.Next(At(10000, 1, 1))), "none");
  EXPECT_EQ(Show(every.Next(LocalSeconds::max())), "none");
  EXPECT_EQ(Show(every.NextBefore(LocalSeconds::max(), LocalSeconds::max())), "none");
  EXPECT_EQ(Show(MustParse("59 59 23 31 12 *").Next(At(9999, 1, 1))), "9999-12-31 23:59:59");
  // Before year 0: the first match in range.
  EXPECT_EQ(Show(every.Next(At(-1, 12, 31, 23, 0))), "0000-01-01 00:00:00");
  EXPECT_EQ(Show(every.Next(LocalSeconds::min())), "none");
}

TEST(CronNext, IsInclusiveAndNextBeforeIsExclusive) {
  const CronExpr daily = MustParse("0 0 * * *");
  EXPECT_EQ(Show(daily.Next(At(2024, 1, 2))), "2024-01-02 00:00:00");
  EXPECT_EQ(Show(daily.Next(At(2024, 1, 2, 0, 0, 1))), "2024-01-03 00:00:00");
  EXPECT_EQ(Show(daily.NextBefore(At(2024, 1, 1, 0, 0, 1), At(2024, 1, 2))), "none");
  EXPECT_EQ(Show(daily.NextBefore(At(2024, 1, 1, 0, 0, 1), At(2024, 1, 2, 0, 0, 1))),
            "2024-01-02 00:00:00");
  EXPECT_EQ(Show(daily.NextBefore(At(2024, 1, 2), At(2024, 1, 1))), "none");
  EXPECT_EQ(Show(MustParse("0 0 29 2 *").NextBefore(At(2097, 1, 1), At(2104, 1, 1))), "none");
  // Time-of-day rollover within the first day and into the next month/year.
  EXPECT_EQ(Show(MustParse("*/20 * * * * *").Next(At(2024, 12, 31, 23, 59, 41))),
            "2025-01-01 00:00:00");
  EXPECT_EQ(Show(MustParse("10,50 3,23 * * *").Next(At(2024, 1, 31, 23, 50, 1))),
            "2024-02-01 03:10:00");
  EXPECT_EQ(Show(MustParse("10,50 3,23 * * *").Next(At(2024, 1, 31, 3, 10, 1))),
            "2024-01-31 03:50:00");
  EXPECT_EQ(Show(MustParse("10,50 3,23 * * *").Next(At(2024, 1, 31, 3, 50, 1))),
            "2024-01-31 23:10:00");
}

// ---- Explain ----

TEST(CronExplain, TypicalExpressions) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"* * * * *", "every minute"},
      {"*/15 * * * *", "every 15 minutes"},
      {"30 2 * * *", "at 02:30 every day"},
      {"0 9 * * 1-5", "at 09:00 on Monday through Friday"},
      {"0 9 * * MON-FRI", "at 09:00 on Monday through Friday"},
      {"0 0 L * *", "at 00:00 on the last day of the month"},
      {"0 12 * * 5#3", "at 12:00 on the third Friday of the month"},
      {"0 12 * * FRIL", "at 12:00 on the last Friday of the month"},
      {"*/15 1-2 * * 1-5", "every 15 minutes, between 01:00 and 02:59, on Monday through Friday"},
      {"5,10 1-3 1,15 1 1",
       "at minutes 5 and 10 past hours 1-3 on the 1st and 15th of the month or on Monday, in "
       "January"},
      {"@hourly", "at minute 0 past every hour"},
      {"@daily", "at 00:00 every day"},
      {"@weekly", "at 00:00 on Sunday"},
      {"@monthly", "at 00:00 on the 1st of the month"},
      {"@yearly", "at 00:00 on January 1"},
      {"0 0 29 2 *", "at 00:00 on February 29"},
      {"0 9,17 * * *", "at 09:00 and 17:00 every day"},
      {"0 */2 * * *", "every 2 hours at minute 0"},
      {"0 0 15W * *", "at 00:00 on the weekday nearest the 15th of the month"},
      {"0 0 LW * *", "at 00:00 on the last weekday of the month"},
      {"0 0 L-2 * *", "at 00:00 on the 3rd-to-last day of the month"},
      {"0 0 * * 6,0", "at 00:00 on Saturday and Sunday"},
      {"0 0 * jan-mar,dec *", "at 00:00 every day in January through March and December"},
      {"0 0 */2 11 5",
       "at 00:00 on days 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29 "
       "and 31 of the month when that is Friday, in November"},
      {"0 0 1-31 * MON", "at 00:00 every day"},  // OR with a full day-of-month
      {"* 3 * * *", "every minute, between 03:00 and 03:59"},
      {"*/5 1,3 * * *", "every 5 minutes, during hours 1 and 3"},
      {"7 */5 * * *", "at minute 7 past hours 0, 5, 10, 15 and 20"},
      // Six fields.
      {"*/10 * * * * *", "every 10 seconds"},
      {"* * * * * *", "every second"},
      {"0 30 2 * * *", "at 02:30:00 every day"},
      {"15 30 2 * * *", "at 02:30:15 every day"},
      {"0 * * * * *", "every minute"},
      {"5 * * * * *", "at second 5 of every minute"},
      {"*/30 5 * * * *", "every 30 seconds during minute 5 past every hour"},
      {"0,30 * 9-17 * * MON-FRI",
       "every 30 seconds, between 09:00 and 17:59, on Monday through Friday"},
  };
  for (const auto& [expr, words] : cases) {
    EXPECT_EQ(MustParse(expr).Explain(), words) << expr;
  }
}

// Explain() never contradicts the schedule: for random expressions it produces something,
// and the time-of-day list form names exactly the fire times of a day that fires.
TEST(CronExplain, RandomExpressionsAreExplained) {
  ExprGen gen(Seed() + 3);
  for (int i = 0; i < 300 * kSweepScale; ++i) {
    const std::string text = gen.Expression(gen.Chance(30));
    auto e = CronExpr::Parse(text);
    if (!e.ok()) continue;
    const std::string words = e->Explain();
    EXPECT_FALSE(words.empty()) << text;
    EXPECT_EQ(words.find("  "), std::string::npos) << text << ": " << words;
  }
}

}  // namespace
}  // namespace automan
