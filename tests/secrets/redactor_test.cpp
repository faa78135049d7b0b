// Tests of secrets::Redactor and secrets::RedactingStream: exact outputs for each encoding,
// then property tests over random secrets, random text and random write splits.
//
// Property tests use a fixed seed per test (printed on failure, through SCOPED_TRACE);
// AUTOMAN_TEST_SEED=<n> overrides it to explore. The encoders here are written
// independently of src/secrets (group-wise base64, per-character escaping), so a mistake
// in the redactor's pattern generation is not repeated in the expectations.
#include "secrets/redactor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace automan::secrets {
namespace {

using Rng = std::mt19937_64;

uint64_t SeedFor(uint64_t fixed) {
  if (const char* env = std::getenv("AUTOMAN_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return fixed;
}

size_t Uniform(Rng& rng, size_t lo, size_t hi) {  // inclusive
  return std::uniform_int_distribution<size_t>(lo, hi)(rng);
}

// Printable form of bytes for failure messages.
std::string Show(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(ch);
    } else {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// ---- Independent encoders -------------------------------------------------------------

std::string HexEnc(std::string_view s, bool upper) {
  static constexpr char kLower[] = "0123456789abcdef";
  static constexpr char kUpper[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    out.push_back((upper ? kUpper : kLower)[c / 16]);
    out.push_back((upper ? kUpper : kLower)[c % 16]);
  }
  return out;
}

std::string B64Enc(std::string_view s, bool url, bool pad) {
  const std::string alphabet =
      std::string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") +
      (url ? "-_" : "+/");
  std::string out;
  size_t i = 0;
  for (; i + 3 <= s.size(); i += 3) {
    const uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
    for (int k = 3; k >= 0; --k) out.push_back(alphabet[(v >> (6 * k)) & 63]);
  }
  if (s.size() - i == 1) {
    const uint32_t v = uint8_t(s[i]) << 16;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (pad) out += "==";
  } else if (s.size() - i == 2) {
    const uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    if (pad) out += "=";
  }
  return out;
}

// The characters of B64Enc(prefix + secret + suffix) that carry any bit of the secret.
std::string B64Touching(const std::string& blob, size_t prefix_len, size_t secret_len) {
  const size_t first = (8 * prefix_len) / 6;
  const size_t last = (8 * (prefix_len + secret_len) + 5) / 6 - 1;
  return blob.substr(first, last - first + 1);
}

bool IsAlnum(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string PctByte(uint8_t c, bool upper) {
  char buf[4];
  snprintf(buf, sizeof buf, upper ? "%%%02X" : "%%%02x", c);
  return buf;
}

enum class Pct { kAllUpper, kAllLower, kForm, kRfc3986 };

std::string PctEnc(std::string_view s, Pct style) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    switch (style) {
      case Pct::kAllUpper:
        out += PctByte(c, true);
        break;
      case Pct::kAllLower:
        out += PctByte(c, false);
        break;
      case Pct::kForm:  // application/x-www-form-urlencoded (WHATWG)
        if (IsAlnum(c) || c == '*' || c == '-' || c == '.' || c == '_') {
          out.push_back(ch);
        } else if (c == ' ') {
          out.push_back('+');
        } else {
          out += PctByte(c, true);
        }
        break;
      case Pct::kRfc3986:  // unreserved characters as is, lower-case escapes
        if (IsAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
          out.push_back(ch);
        } else {
          out += PctByte(c, false);
        }
        break;
    }
  }
  return out;
}

// Code points of valid UTF-8 (the secrets and fillers given to JSON encoders are valid).
std::vector<uint32_t> CodePoints(std::string_view s) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    const int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
    cps.push_back(cp);
    i += len;
  }
  return cps;
}

std::string AppendUtf8(std::string out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

std::string UEscape(uint32_t unit, bool upper) {
  char buf[8];
  snprintf(buf, sizeof buf, upper ? "\\u%04X" : "\\u%04x", unit);
  return buf;
}

enum class Json {
  kMinimal,     // RFC 8259's must-escapes only, UTF-8 as is (e.g. ensure_ascii=False)
  kAsciiLower,  // \uxxxx for non-ASCII and controls, "\/" (e.g. PHP, Python's default)
  kAsciiUpper,  // the same with upper-case hex (e.g. Jackson)
  kAllEscaped,  // every character as \uXXXX
};

std::string JsonEnc(std::string_view s, Json style) {
  std::string out;
  for (const uint32_t cp : CodePoints(s)) {
    const bool upper = style != Json::kAsciiLower;
    auto unit = [&](uint32_t u) { out += UEscape(u, upper); };
    auto escaped = [&](uint32_t c) {
      if (c >= 0x10000) {
        unit(0xD800 + ((c - 0x10000) >> 10));
        unit(0xDC00 + ((c - 0x10000) & 0x3FF));
      } else {
        unit(c);
      }
    };
    if (style == Json::kAllEscaped) {
      escaped(cp);
      continue;
    }
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      case '/':
        out += style == Json::kMinimal ? "/" : "\\/";
        continue;
      default:
        break;
    }
    if (cp < 0x20 || (style != Json::kMinimal && cp >= 0x7F)) {
      escaped(cp);
    } else {
      out = AppendUtf8(std::move(out), cp);
    }
  }
  return out;
}

// ---- Random material ------------------------------------------------------------------

// Secrets are made of these: quotes, backslashes, spaces, '/', '+', '%', control bytes and
// UTF-8 next to letters and digits. No '*' (the replacement): see ExpectNoLeak.
const std::vector<std::string>& SecretTokens() {
  static const std::vector<std::string> tokens = {"a",
                                                  "b",
                                                  "k",
                                                  "x",
                                                  "Z",
                                                  "Q",
                                                  "0",
                                                  "7",
                                                  "9",
                                                  "\"",
                                                  "\\",
                                                  " ",
                                                  "/",
                                                  "+",
                                                  "%",
                                                  "=",
                                                  "-",
                                                  "_",
                                                  ".",
                                                  "~",
                                                  "&",
                                                  "'",
                                                  "<",
                                                  ":",
                                                  "@",
                                                  "\n",
                                                  "\t",
                                                  "\r",
                                                  std::string(1, '\0'),
                                                  "\x01",
                                                  "\x1f",
                                                  "\x7f",
                                                  "\b",
                                                  "\f",
                                                  "\xc3\xa9",
                                                  "\xe2\x82\xac",
                                                  "\xf0\x9f\x98\x80",
                                                  "\xc3\x9f",
                                                  "\xe4\xb8\xad"};
  return tokens;
}

// Filler that leaves every decoder idle where it ends: no backslash, no '%'.
const std::vector<std::string>& QuietTokens() {
  static const std::vector<std::string> tokens = {
      "the", " ", " ", "log", "line", ":", "=", ",",  "\n",       "\t",           "{",  "}", "[",
      "]",   "(", ")", "#",   "!",    "?", "0", "42", "\xc3\xa9", "\xe2\x82\xac", "\"", "'", "_"};
  return tokens;
}

std::string FromTokens(Rng& rng, const std::vector<std::string>& tokens, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) out += tokens[Uniform(rng, 0, tokens.size() - 1)];
  return out;
}

std::string RandomSecret(Rng& rng) {
  std::string s = FromTokens(rng, SecretTokens(), Uniform(rng, 2, 16));
  while (s.size() < Redactor::kMinSecretBytes) s += FromTokens(rng, SecretTokens(), 1);
  return s;
}

std::string RandomBytes(Rng& rng, size_t n, bool allow_star = true) {
  std::string s;
  while (s.size() < n) {
    const char c = static_cast<char>(Uniform(rng, 0, 255));
    if (allow_star || c != '*') s.push_back(c);
  }
  return s;
}

std::string Quiet(Rng& rng) { return FromTokens(rng, QuietTokens(), Uniform(rng, 0, 12)); }

// ---- Checking -------------------------------------------------------------------------

// Redacts `text` through a stream split into the given chunk sizes (the rest in one final
// write), checking the holdback bound after every write.
std::string RedactInChunks(const Redactor& r, std::string_view text,
                           const std::vector<size_t>& sizes) {
  RedactingStream stream(r);
  std::string out;
  size_t at = 0;
  for (const size_t n : sizes) {
    const size_t take = std::min(n, text.size() - at);
    stream.Write(text.substr(at, take), &out);
    EXPECT_LE(stream.held_bytes(), r.max_holdback());
    at += take;
  }
  stream.Write(text.substr(at), &out);
  EXPECT_LE(stream.held_bytes(), r.max_holdback());
  stream.Flush(&out);
  EXPECT_EQ(stream.held_bytes(), 0u);
  return out;
}

// The stream gives exactly the one-shot output for a split into two writes at every
// position and for `random_splits` random multi-chunk splits (empty chunks included).
void ExpectSplitInvariant(const Redactor& r, std::string_view text, const std::string& whole,
                          Rng& rng, int random_splits = 3) {
  for (size_t i = 0; i <= text.size(); ++i) {
    const std::string split = RedactInChunks(r, text, {i});
    if (split != whole) {
      ADD_FAILURE() << "split at " << i << " of " << text.size() << "\n  text:  " << Show(text)
                    << "\n  whole: " << Show(whole) << "\n  split: " << Show(split);
      return;
    }
  }
  for (int k = 0; k < random_splits; ++k) {
    std::vector<size_t> sizes;
    for (size_t total = 0; total < text.size();) {
      sizes.push_back(Uniform(rng, 0, 9));
      total += sizes.back();
    }
    const std::string split = RedactInChunks(r, text, sizes);
    if (split != whole) {
      std::string shape;
      for (const size_t n : sizes) shape += std::to_string(n) + " ";
      ADD_FAILURE() << "chunks " << shape << "\n  text:  " << Show(text)
                    << "\n  whole: " << Show(whole) << "\n  split: " << Show(split);
      return;
    }
  }
}

// No needle occurs in the output. Needles never contain '*', so an occurrence would lie in
// text the redactor left alone, not straddle a replacement.
void ExpectNoLeak(std::string_view out, const std::vector<std::string>& needles,
                  std::string_view text, std::string_view what) {
  for (const std::string& needle : needles) {
    ASSERT_EQ(needle.find('*'), std::string::npos);
    EXPECT_EQ(out.find(needle), std::string::npos)
        << what << ": " << Show(needle) << " survives\n  text: " << Show(text)
        << "\n  out:  " << Show(out);
  }
}

struct Case {
  std::string text;
  // Must not occur anywhere in the output. Only context-free forms (bytes, hex, base64):
  // a JSON or percent form can occur by coincidence across other escapes without meaning
  // the secret ("9\u20ac" inside "\u00e9\u20ac", which is "é€"); those are checked where
  // they were put, through must_cover.
  std::vector<std::string> needles;
  std::vector<Redactor::Range> must_cover;  // input ranges that must be redacted

  Case& Plain(std::string_view piece) {
    text += piece;
    return *this;
  }
  Case& Covered(std::string_view piece) {
    must_cover.push_back({text.size(), text.size() + piece.size()});
    text += piece;
    return *this;
  }
};

struct Form {
  const char* name;
  std::function<Case(const std::string& secret, Rng& rng)> make;
};

// Each encoded form of `secret`, embedded in surrounding text the way it occurs in output:
// the encoder applied to a longer value around the secret, inside ordinary text. The
// secret's part of the encoding must be covered by a redacted range.
std::vector<Form> Forms() {
  std::vector<Form> forms;
  forms.push_back({"raw", [](const std::string& s, Rng& rng) {
                     Case c{.needles = {s}};
                     return c.Plain(Quiet(rng)).Covered(s).Plain(Quiet(rng));
                   }});
  for (const bool upper : {false, true}) {
    forms.push_back(
        {upper ? "hex-upper" : "hex-lower", [upper](const std::string& s, Rng& rng) {
           Case c{.needles = {HexEnc(s, upper)}};
           c.Plain(Quiet(rng)).Plain(HexEnc(RandomBytes(rng, Uniform(rng, 0, 4)), upper));
           return c.Covered(HexEnc(s, upper)).Plain(Quiet(rng));
         }});
  }
  for (const bool url : {false, true}) {
    for (const bool pad : {false, true}) {
      forms.push_back({url ? (pad ? "base64url-alone-padded" : "base64url-alone")
                           : (pad ? "base64-alone-padded" : "base64-alone"),
                       [url, pad](const std::string& s, Rng& rng) {
                         const std::string b = B64Enc(s, url, pad);
                         Case c{.needles = {b}};
                         return c.Plain(Quiet(rng)).Covered(b).Plain(Quiet(rng));
                       }});
    }
    forms.push_back(
        {url ? "base64url-embedded" : "base64-embedded", [url](const std::string& s, Rng& rng) {
           const std::string p = RandomBytes(rng, Uniform(rng, 0, 7));
           const std::string q = RandomBytes(rng, Uniform(rng, 0, 7));
           const std::string blob = B64Enc(p + s + q, url, true);
           const std::string touching = B64Touching(blob, p.size(), s.size());
           const size_t first = (8 * p.size()) / 6;
           Case c{.needles = {touching}};
           c.Plain(Quiet(rng)).Plain(blob.substr(0, first)).Covered(touching);
           return c.Plain(blob.substr(first + touching.size())).Plain(Quiet(rng));
         }});
  }
  for (const auto& [name, style] :
       std::vector<std::pair<const char*, Pct>>{{"percent-all-upper", Pct::kAllUpper},
                                                {"percent-all-lower", Pct::kAllLower},
                                                {"percent-form", Pct::kForm},
                                                {"percent-rfc3986", Pct::kRfc3986}}) {
    forms.push_back({name, [style](const std::string& s, Rng& rng) {
                       const std::string p = FromTokens(rng, SecretTokens(), Uniform(rng, 0, 4));
                       const std::string q = FromTokens(rng, SecretTokens(), Uniform(rng, 0, 4));
                       Case c;
                       c.Plain(Quiet(rng) + "?token=" + PctEnc(p, style)).Covered(PctEnc(s, style));
                       return c.Plain(PctEnc(q, style) + "&x=1" + Quiet(rng));
                     }});
  }
  for (const auto& [name, style] :
       std::vector<std::pair<const char*, Json>>{{"json-minimal", Json::kMinimal},
                                                 {"json-ascii-lower", Json::kAsciiLower},
                                                 {"json-ascii-upper", Json::kAsciiUpper},
                                                 {"json-all-escaped", Json::kAllEscaped}}) {
    forms.push_back({name, [style](const std::string& s, Rng& rng) {
                       const std::string p = FromTokens(rng, SecretTokens(), Uniform(rng, 0, 4));
                       const std::string q = FromTokens(rng, SecretTokens(), Uniform(rng, 0, 4));
                       Case c;
                       c.Plain(Quiet(rng) + "{\"password\": \"" + JsonEnc(p, style));
                       c.Covered(JsonEnc(s, style));
                       return c.Plain(JsonEnc(q, style) + "\"}" + Quiet(rng));
                     }});
  }
  return forms;
}

// The text with `ranges` replaced, as Redact does it.
std::string Apply(std::string_view text, const std::vector<Redactor::Range>& ranges,
                  std::string_view replacement = "***") {
  std::string out;
  size_t at = 0;
  for (const Redactor::Range& r : ranges) {
    out.append(text.substr(at, r.begin - at));
    out.append(replacement);
    at = r.end;
  }
  out.append(text.substr(at));
  return out;
}

// Find() agrees with Redact() and covers every range the case requires.
void ExpectCovered(const Redactor& r, std::string_view text, const std::string& out,
                   const std::vector<Redactor::Range>& must_cover) {
  const std::vector<Redactor::Range> found = r.Find(text);
  for (size_t i = 0; i < found.size(); ++i) {
    ASSERT_LT(found[i].begin, found[i].end);
    if (i > 0) {
      ASSERT_GT(found[i].begin, found[i - 1].end) << "ranges overlap or touch";
    }
  }
  ASSERT_EQ(Apply(text, found, r.replacement()), out) << "Find and Redact disagree";
  for (const Redactor::Range& want : must_cover) {
    const bool covered = std::any_of(found.begin(), found.end(), [&](const Redactor::Range& f) {
      return f.begin <= want.begin && want.end <= f.end;
    });
    EXPECT_TRUE(covered) << "bytes [" << want.begin << ", " << want.end << ") "
                         << Show(text.substr(want.begin, want.end - want.begin))
                         << " not redacted\n  text: " << Show(text) << "\n  out:  " << Show(out);
  }
}

// ---- Exact behaviour ------------------------------------------------------------------

TEST(RedactorTest, EmptyAndShortSecretsPassThrough) {
  const Redactor none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.Redact("anything at all"), "anything at all");

  const Redactor shorts({"", "a", "ab", "abc"});
  EXPECT_TRUE(shorts.empty());
  EXPECT_EQ(shorts.skipped_count(), 4u);
  EXPECT_EQ(shorts.Redact("abc ab a"), "abc ab a");
  RedactingStream stream(shorts);
  std::string out;
  stream.Write("abc", &out);
  EXPECT_EQ(out, "abc");

  const Redactor r({"abcd", "abcd", "xy"});
  EXPECT_EQ(r.secret_count(), 1u);
  EXPECT_EQ(r.skipped_count(), 1u);
  EXPECT_FALSE(Redactor::IsRedactable("abc"));
  EXPECT_TRUE(Redactor::IsRedactable("abcd"));
}

TEST(RedactorTest, RawSecretIsReplaced) {
  const Redactor r({"hunter22"});
  EXPECT_EQ(r.Redact("password=hunter22 ok"), "password=*** ok");
  EXPECT_EQ(r.Redact("hunter22"), "***");
  EXPECT_EQ(r.Redact("hunter22\nhunter22\n"), "***\n***\n");
  EXPECT_EQ(r.Redact("hunter2 hunter2"), "hunter2 hunter2");
  EXPECT_EQ(r.Redact(""), "");
}

TEST(RedactorTest, OverlappingSecretsRedactTheUnion) {
  const Redactor r({"abcdef", "defghi"});
  EXPECT_EQ(r.Redact("xxabcdefghixx"), "xx***xx");
  EXPECT_EQ(r.Redact("xxdefghiabcdefxx"), "xx***xx");
  // A secret inside another.
  const Redactor nested({"--cdef--", "cdef"});
  EXPECT_EQ(nested.Redact("a--cdef--b cdef"), "a***b ***");
}

TEST(RedactorTest, SecretThatIsAPrefixOfAnother) {
  const Redactor r({"abcd", "abcdefgh"});
  EXPECT_EQ(r.Redact("abcdefgh abcd abcdefg"), "*** *** ***efg");
  // Leftmost-longest: the longer secret is removed whole, whatever the write boundaries.
  RedactingStream stream(r);
  std::string out;
  stream.Write("xabcd", &out);
  stream.Write("efghx", &out);
  stream.Flush(&out);
  EXPECT_EQ(out, "x***x");
}

TEST(RedactorTest, FindReportsTheReplacedRanges) {
  const Redactor r({"abcdef", "defghi", "hunter22"});
  using R = Redactor::Range;
  EXPECT_EQ(r.Find("xxabcdefghixx hunter22"), (std::vector<R>{{2, 11}, {14, 22}}));
  EXPECT_EQ(r.Find("%68%75nter22."), (std::vector<R>{{0, 12}}));
  EXPECT_EQ(r.Find("nothing"), std::vector<R>{});
  EXPECT_EQ(Redactor().Find("hunter22"), std::vector<R>{});
}

TEST(RedactorTest, AdjacentMatchesBecomeOneReplacement) {
  const Redactor r({"abcd", "wxyz"});
  EXPECT_EQ(r.Redact("abcdabcd"), "***");
  EXPECT_EQ(r.Redact("abcdwxyz abcd wxyz"), "*** *** ***");
}

TEST(RedactorTest, ReplacementIsAParameter) {
  const Redactor r({"s3cr3t!"}, "[REDACTED]");
  EXPECT_EQ(r.replacement(), "[REDACTED]");
  EXPECT_EQ(r.Redact("key s3cr3t!."), "key [REDACTED].");
  const Redactor gone({"s3cr3t!"}, "");
  EXPECT_EQ(gone.Redact("key s3cr3t!."), "key .");
}

TEST(RedactorTest, HexAndStandaloneBase64) {
  const Redactor r({"hunter22"});
  EXPECT_EQ(r.Redact("hex 68756e7465723232 HEX 68756E7465723232."), "hex *** HEX ***.");
  EXPECT_EQ(r.Redact("b64 aHVudGVyMjI= nopad aHVudGVyMjI."), "b64 *** nopad ***.");
  // Bytes whose base64 differs between the alphabets.
  const std::string binary = "\xfb\xffhunter22?";
  const Redactor b({binary});
  EXPECT_EQ(b.Redact("std +/9odW50ZXIyMj8= url -_9odW50ZXIyMj8"), "std *** url ***");
}

TEST(RedactorTest, BasicAuthHeaderAtEachAlignment) {
  const Redactor r({"hunter22"});
  // base64("admin:hunter22"), base64("user:hunter22"), base64("ab:hunter22"): the secret at
  // offsets 6, 5 and 3; every character carrying a bit of it goes. At offsets 6 and 3 the
  // blob ends with the secret's own padded base64, so its padding goes too.
  EXPECT_EQ(r.Redact("Authorization: Basic YWRtaW46aHVudGVyMjI=\n"),
            "Authorization: Basic YWRtaW46***\n");
  EXPECT_EQ(r.Redact("Authorization: Basic dXNlcjpodW50ZXIyMg==\n"),
            "Authorization: Basic dXNlcj***==\n");
  EXPECT_EQ(r.Redact("Authorization: Basic YWI6aHVudGVyMjI=\n"), "Authorization: Basic YWI6***\n");
}

TEST(RedactorTest, Base64AtEveryOffsetRedactsEveryCharacterTouchingTheSecret) {
  Rng rng(SeedFor(7));
  for (int round = 0; round < 40; ++round) {
    const std::string secret = RandomBytes(rng, Uniform(rng, 4, 20), /*allow_star=*/false);
    const Redactor r({secret});
    for (const bool url : {false, true}) {
      for (size_t p = 0; p <= 6; ++p) {
        for (size_t q = 0; q <= 3; ++q) {
          const std::string before = RandomBytes(rng, p);
          const std::string after = RandomBytes(rng, q);
          const std::string blob = B64Enc(before + secret + after, url, true);
          const size_t first = (8 * p) / 6;
          const size_t last = (8 * (p + secret.size()) + 5) / 6 - 1;
          // At a multiple of 3 and at the end, the blob ends with the secret's own padded
          // base64, so the padding goes too.
          const std::string expected =
              blob.substr(0, first) + "***" + (p % 3 == 0 && q == 0 ? "" : blob.substr(last + 1));
          EXPECT_EQ(r.Redact(blob), expected)
              << "secret " << Show(secret) << " prefix " << p << " suffix " << q << " url " << url;
        }
      }
    }
  }
}

TEST(RedactorTest, PercentEncodedForms) {
  const Redactor r({"p@ss w/rd+1"});
  EXPECT_EQ(r.Redact("GET /login?pw=p%40ss%20w%2Frd%2B1&x=1"), "GET /login?pw=***&x=1");
  EXPECT_EQ(r.Redact("body pw=p%40ss+w%2Frd%2B1&x=1"), "body pw=***&x=1");
  EXPECT_EQ(r.Redact("lower p%40ss%20w%2frd%2b1."), "lower ***.");
  EXPECT_EQ(r.Redact("all %70%40%73%73%20%77%2F%72%64%2B%31."), "all ***.");
  // Go's url.PathEscape leaves '+' alone.
  EXPECT_EQ(r.Redact("/p%40ss%20w%2Frd+1/"), "/***/");
}

TEST(RedactorTest, JsonEscapedForms) {
  const std::string secret = "p\"ss\\w\n\xc3\xa9\xf0\x9f\x98\x80";  // p"ss\w<LF>é😀
  const Redactor r({secret});
  EXPECT_EQ(r.Redact(R"({"pw": "p\"ss\\w\n\u00e9\ud83d\ude00"})"), R"({"pw": "***"})");
  EXPECT_EQ(r.Redact(R"({"pw": "p\"ss\\w\n)"
                     "\xc3\xa9\xf0\x9f\x98\x80"
                     R"("})"),
            R"({"pw": "***"})");
  EXPECT_EQ(r.Redact(R"({"pw": "p\u0022ss\u005Cw\u000A\u00E9\uD83D\uDE00"})"), R"({"pw": "***"})");
  EXPECT_EQ(r.Redact(R"(["x", "p\"ss\\w\n\u00e9\ud83d\ude00", "y"])"), R"(["x", "***", "y"])");
}

TEST(RedactorTest, EncodingsInsideTheReadings) {
  const std::string secret = "\xfb\xffhunter22?";  // base64 +/9odW50ZXIyMj8=
  const Redactor r({secret});
  // base64 in a query string, '+', '/' and '=' percent-encoded.
  EXPECT_EQ(r.Redact("?t=%2B%2F9odW50ZXIyMj8%3D&a=b"), "?t=***&a=b");
  // base64 in JSON with "\/".
  EXPECT_EQ(r.Redact(R"({"t":"+\/9odW50ZXIyMj8="})"), R"({"t":"***"})");
  // hex in JSON.
  EXPECT_EQ(r.Redact(R"({"t":"fbff68756e74657232323f"})"), R"({"t":"***"})");
}

TEST(RedactorTest, MalformedEscapesPassThrough) {
  const Redactor r({"hunter22"});
  for (const std::string text :
       {"%", "%4", "%zz", "100%", "%%41", "\\", "\\u", "\\u12", "\\u12G4", "\\q", "\\uD83D",
        "\\uD83Dx", "\\uD83D\\u0041", "\\uDE00", "C:\\new\\table", "50% off %2", "\\\\\\"}) {
    EXPECT_EQ(r.Redact(text), text) << Show(text);
    EXPECT_EQ(r.Redact(text + "hunter22"), text + "***") << Show(text);
  }
  // A lone high surrogate does not hide the escape after it.
  EXPECT_EQ(r.Redact("\\uD83D\\u0068unter22"), "\\uD83D***");
}

TEST(RedactorTest, SecretContainingTheReplacementIsALimitation) {
  // Documented in the header: the output may spell such a secret by accident.
  const Redactor r({"x***", "abcd"});
  EXPECT_EQ(r.Redact("xabcd"), "x***");
}

TEST(RedactorTest, CopiesShareAndThreadsMayRedactConcurrently) {
  Rng rng(SeedFor(11));
  std::vector<std::string> secrets;
  for (int i = 0; i < 50; ++i) secrets.push_back(RandomSecret(rng));
  const Redactor r(secrets);
  const Redactor copy = r;  // NOLINT(performance-unnecessary-copy-initialization)
  std::string text;
  for (const std::string& s : secrets) text += Quiet(rng) + s + B64Enc(s, false, true);
  const std::string expected = r.Redact(text);
  std::vector<std::thread> threads;
  std::vector<std::string> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      RedactingStream stream(t % 2 ? copy : r);
      std::string out;
      for (size_t i = 0; i < text.size(); i += 7) stream.Write(text.substr(i, 7), &out);
      stream.Flush(&out);
      results[t] = out;
    });
  }
  for (auto& th : threads) th.join();
  for (const std::string& out : results) EXPECT_EQ(out, expected);
}

// ---- Streaming ------------------------------------------------------------------------

TEST(RedactingStreamTest, SecretSplitAcrossWritesAtEveryPosition) {
  const Redactor r({"hunter22"});
  const std::string text = "a hunter22 b %68%75nter22 c aHVudGVyMjI= d \\u0068unter22 e";
  const std::string whole = r.Redact(text);
  EXPECT_EQ(whole, "a *** b *** c *** d *** e");
  Rng rng(SeedFor(3));
  ExpectSplitInvariant(r, text, whole, rng, 50);
}

TEST(RedactingStreamTest, HoldsBackOnlyWhatMayStillMatch) {
  const Redactor r({"hunter22"});
  RedactingStream stream(r);
  std::string out;
  stream.Write("plain line\n", &out);
  EXPECT_EQ(out, "plain line\n");
  EXPECT_EQ(stream.held_bytes(), 0u);
  stream.Write("x hun", &out);  // "hun" may start the secret; ' ' is not base64
  EXPECT_EQ(out, "plain line\nx ");
  EXPECT_EQ(stream.held_bytes(), 3u);
  stream.Write("ted\n", &out);
  EXPECT_EQ(out, "plain line\nx hunted\n");
  stream.Write("hunter2", &out);
  stream.Write("2!", &out);
  EXPECT_EQ(out, "plain line\nx hunted\n***!");
  stream.Write("%6", &out);  // an unfinished escape
  EXPECT_EQ(stream.held_bytes(), 2u);
  stream.Flush(&out);
  EXPECT_EQ(out, "plain line\nx hunted\n***!%6");
}

TEST(RedactingStreamTest, HoldbackStaysWithinTheBound) {
  const Redactor r({"hunter22", "0123456789abcdef0123456789abcdef"});
  // The longest possible run of a partial match: the longest pattern, all \u-escaped.
  std::string longest;
  for (const char c : HexEnc("0123456789abcdef0123456789abcdef", true))
    longest += UEscape(c, false);
  longest.pop_back();  // never completes
  RedactingStream stream(r);
  std::string out;
  for (const char c : longest) {
    stream.Write(std::string_view(&c, 1), &out);
    ASSERT_LE(stream.held_bytes(), r.max_holdback());
  }
  EXPECT_GT(stream.held_bytes(), r.longest_pattern());
  stream.Flush(&out);
  EXPECT_EQ(out, longest);
}

TEST(RedactingStreamTest, MovesCarryTheStateAndTheMovedFromStreamEmitsNothing) {
  const Redactor r({"hunter22"});
  RedactingStream a(r);
  std::string out;
  a.Write("x hunt", &out);
  RedactingStream b = std::move(a);
  b.Write("er22 y", &out);
  b.Flush(&out);
  EXPECT_EQ(out, "x *** y");
  a.Write("hunter22", &out);  // NOLINT(bugprone-use-after-move): the point of the test
  EXPECT_EQ(out, "x *** y");

  RedactingStream plain{Redactor()};
  RedactingStream moved = std::move(plain);
  moved.Write("as is", &out);
  plain.Write("lost", &out);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(out, "x *** yas is");
}

TEST(RedactingStreamTest, LargeSecretInEveryFormThroughAStream) {
  // 64 KiB, the largest value the secret store takes: the readings' rings grow to the
  // partial matches (a 128 KiB hex form, a 384 KiB all-\u JSON form) and shrink nothing.
  Rng rng(SeedFor(64));
  std::string secret;
  while (secret.size() < 64 * 1024 - 4) secret += FromTokens(rng, SecretTokens(), 1);
  secret.resize(64 * 1024, 'a');  // whole characters: the JSON form needs valid UTF-8
  ASSERT_EQ(secret.size(), 64u * 1024);
  const Redactor r({secret, "hunter22"});
  Case c;
  c.Plain("start hunter22\n").Covered(secret).Plain("\n").Covered(HexEnc(secret, true));
  c.Plain("\n{\"k\": \"").Covered(JsonEnc(secret, Json::kAllEscaped)).Plain("\"}\n");
  c.Plain("?t=").Covered(PctEnc(secret, Pct::kForm)).Plain("&\n");
  const std::string blob = B64Enc("xy" + secret + "z", true, false);
  const std::string touching = B64Touching(blob, 2, secret.size());
  const size_t first = (8 * 2) / 6;
  const std::string rest = blob.substr(first + touching.size());
  c.Plain(blob.substr(0, first)).Covered(touching).Plain(rest).Plain(" end hunter22");
  std::vector<size_t> sizes;
  for (size_t total = 0; total < c.text.size(); total += sizes.back()) {
    sizes.push_back(Uniform(rng, 1, 70000));
  }
  const std::string out = RedactInChunks(r, c.text, sizes);
  EXPECT_EQ(out, "start ***\n***\n***\n{\"k\": \"***\"}\n?t=***&\n" + blob.substr(0, first) +
                     "***" + rest + " end ***");
  EXPECT_EQ(r.Redact(c.text), out);
  ExpectCovered(r, c.text, out, c.must_cover);
}

TEST(RedactingStreamTest, FlushEndsTheStream) {
  const Redactor r({"hunter22"});
  RedactingStream stream(r);
  std::string out;
  stream.Write("hunt", &out);
  stream.Flush(&out);
  stream.Write("er22 hunter22", &out);
  stream.Flush(&out);
  EXPECT_EQ(out, "hunter22 ***");
}

TEST(RedactingStreamTest, LargeChunksAndMatchesAcrossTheirInsides) {
  const Redactor r({"hunter22"});
  std::string text;
  std::string expected;
  Rng rng(SeedFor(5));
  while (text.size() < 300 * 1024) {
    const std::string filler(Uniform(rng, 0, 40000), 'x');
    text += filler + " hunter22 ";
    expected += filler + " *** ";
  }
  EXPECT_EQ(r.Redact(text), expected);
  EXPECT_EQ(RedactInChunks(r, text, {65535, 1, 65536, 100000}), expected);
}

// ---- Properties -----------------------------------------------------------------------

TEST(RedactorPropertyTest, EncodedFormsNeverSurviveAnySplit) {
  const uint64_t seed = SeedFor(20261203);
  SCOPED_TRACE("seed=" + std::to_string(seed));
  Rng rng(seed);
  const std::vector<Form> forms = Forms();
  for (int round = 0; round < 24; ++round) {
    const std::string secret = RandomSecret(rng);
    // Sometimes with company: other secrets share the automaton.
    std::vector<std::string> secrets = {secret};
    for (size_t i = Uniform(rng, 0, 3); i > 0; --i) secrets.push_back(RandomSecret(rng));
    const Redactor r(secrets);
    for (const Form& form : forms) {
      SCOPED_TRACE(std::string("form=") + form.name + " round=" + std::to_string(round) +
                   " secret=" + Show(secret));
      const Case c = form.make(secret, rng);
      const std::string out = r.Redact(c.text);
      std::vector<std::string> needles = c.needles;
      needles.push_back(secret);
      ExpectNoLeak(out, needles, c.text, form.name);
      ExpectCovered(r, c.text, out, c.must_cover);
      ExpectSplitInvariant(r, c.text, out, rng);
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST(RedactorPropertyTest, BinarySecretsInNoisyText) {
  // Any bytes, around forms that do not depend on the decoders' context: the plain bytes,
  // hex, base64 (alone or embedded) and all-bytes percent-encoding.
  const uint64_t seed = SeedFor(99);
  SCOPED_TRACE("seed=" + std::to_string(seed));
  Rng rng(seed);
  for (int round = 0; round < 150; ++round) {
    const std::string secret = RandomBytes(rng, Uniform(rng, 4, 24), /*allow_star=*/false);
    const Redactor r({secret});
    const std::string p = RandomBytes(rng, Uniform(rng, 0, 5));
    const std::string blob = B64Enc(p + secret + RandomBytes(rng, Uniform(rng, 0, 5)), true, true);
    const std::vector<std::string> needles = {secret,
                                              HexEnc(secret, false),
                                              HexEnc(secret, true),
                                              B64Enc(secret, false, true),
                                              B64Enc(secret, true, false),
                                              PctEnc(secret, Pct::kAllUpper),
                                              PctEnc(secret, Pct::kAllLower),
                                              B64Touching(blob, p.size(), secret.size())};
    Case c;
    c.Plain(RandomBytes(rng, Uniform(rng, 0, 20)));
    for (const std::string& n : needles) c.Covered(n).Plain(RandomBytes(rng, Uniform(rng, 0, 6)));
    const std::string& text = c.text;
    SCOPED_TRACE("round=" + std::to_string(round));
    const std::string out = r.Redact(text);
    ExpectNoLeak(out, needles, text, "noisy");
    ExpectCovered(r, text, out, c.must_cover);
    ExpectSplitInvariant(r, text, out, rng, 2);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(RedactorPropertyTest, TextWithoutSecretsPassesThroughUnchanged) {
  // Random bytes (every value, escapes and all) against random secrets of 12+ bytes: the
  // chance that the text holds one of their forms by accident is below 2^-60.
  const uint64_t seed = SeedFor(4242);
  SCOPED_TRACE("seed=" + std::to_string(seed));
  Rng rng(seed);
  for (int round = 0; round < 60; ++round) {
    std::vector<std::string> secrets;
    for (size_t i = Uniform(rng, 1, 8); i > 0; --i) {
      secrets.push_back(RandomBytes(rng, Uniform(rng, 12, 40)));
    }
    const Redactor r(secrets);
    std::string text = RandomBytes(rng, Uniform(rng, 0, 300));
    // And shapes the decoders care about.
    text += "%41%4%%zz\\u0041\\uD83D\\uDE00\\uD83D\\q\\\\\\n+ +\n";
    SCOPED_TRACE("round=" + std::to_string(round));
    ASSERT_EQ(r.Redact(text), text) << Show(text);
    ExpectSplitInvariant(r, text, text, rng, 2);
    if (::testing::Test::HasFailure()) return;
  }
}

// The union of all occurrences, by brute force.
std::string NaiveRedact(const std::string& text, const std::vector<std::string>& secrets) {
  std::vector<bool> marked(text.size(), false);
  for (const std::string& s : secrets) {
    for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at + 1)) {
      std::fill(marked.begin() + at, marked.begin() + at + s.size(), true);
    }
  }
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!marked[i]) {
      out.push_back(text[i]);
    } else if (i == 0 || !marked[i - 1]) {
      out += "***";
    }
  }
  return out;
}

TEST(RedactorPropertyTest, OverlappingAndPrefixSecretsMatchNaiveUnion) {
  // Over the alphabet {a, b} secrets overlap, nest and prefix each other constantly, and
  // none of their encoded forms can occur in the text (they use other characters), so the
  // exact output is the brute-force union.
  const uint64_t seed = SeedFor(1234);
  SCOPED_TRACE("seed=" + std::to_string(seed));
  Rng rng(seed);
  auto ab = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(Uniform(rng, 0, 1) ? 'a' : 'b');
    return s;
  };
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string> secrets;
    for (size_t i = Uniform(rng, 1, 6); i > 0; --i) {
      std::string s = ab(Uniform(rng, 4, 9));
      secrets.push_back(s);
      if (Uniform(rng, 0, 1)) secrets.push_back(s.substr(0, Uniform(rng, 4, s.size())));  // prefix
      if (Uniform(rng, 0, 1)) secrets.push_back(s.substr(s.size() - 4) + ab(3));          // overlap
    }
    const Redactor r(secrets);
    const std::string text = ab(Uniform(rng, 0, 80));
    SCOPED_TRACE("round=" + std::to_string(round) + " text=" + text);
    const std::string out = r.Redact(text);
    ASSERT_EQ(out, NaiveRedact(text, secrets));
    ExpectSplitInvariant(r, text, out, rng, 2);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(RedactorPropertyTest, ThousandSecrets) {
  const uint64_t seed = SeedFor(1000);
  SCOPED_TRACE("seed=" + std::to_string(seed));
  Rng rng(seed);
  std::vector<std::string> secrets;
  for (int i = 0; i < 1000; ++i) secrets.push_back(RandomSecret(rng));
  const Redactor r(secrets);
  EXPECT_GT(r.secret_count(), 990u);  // random duplicates are merged
  const std::vector<Form> forms = Forms();
  std::string text;
  std::vector<std::string> needles;
  std::vector<Redactor::Range> must_cover;
  for (int i = 0; i < 200; ++i) {
    const std::string& s = secrets[Uniform(rng, 0, secrets.size() - 1)];
    const Form& form = forms[Uniform(rng, 0, forms.size() - 1)];
    const Case c = form.make(s, rng);
    for (const Redactor::Range& range : c.must_cover) {
      must_cover.push_back({text.size() + range.begin, text.size() + range.end});
    }
    text += c.text + "\n";
    needles.insert(needles.end(), c.needles.begin(), c.needles.end());
    needles.push_back(s);
  }
  const std::string out = r.Redact(text);
  ExpectNoLeak(out, needles, "(200 cases)", "thousand");
  ExpectCovered(r, text, out, must_cover);
  std::vector<size_t> sizes;
  for (size_t total = 0; total < text.size(); total += sizes.back()) {
    sizes.push_back(Uniform(rng, 1, 300));
  }
  EXPECT_EQ(RedactInChunks(r, text, sizes), out);
  // Text of characters no secret, hex or base64 uses is untouched.
  const std::string quiet = FromTokens(
      rng, {"#", "!", "?", "(", ")", "[", "]", "{", "}", ",", ";", "|", "\xce\xbb"}, 5000);
  EXPECT_EQ(r.Redact(quiet), quiet);
}

}  // namespace
}  // namespace automan::secrets
