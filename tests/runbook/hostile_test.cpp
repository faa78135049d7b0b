// Hostile input: every one is refused with a diagnostic, quickly, without crashing.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>

#include "runbook/runbook.h"
#include "runbook/runbook_test_util.h"
#include "support/test_util.h"

namespace automan {
namespace {

using automan::testing::DumpDiagnostics;
using automan::testing::HasError;
using automan::testing::Parse;

constexpr const char* kValid = R"(id: web
params:
  service: {type: string, required: true, pattern: "[a-z]+"}
  n: {type: int, default: 3}
steps:
  - id: check
    shell: echo "$AUTOMAN_PARAM_SERVICE"
    outputs: [v]
    retries: {count: 2, delay: 1s}
  - id: run
    argv: [echo, hi]
    env: {A: b}
rollback:
  - id: undo
    shell: echo undo
schedules:
  - id: s
    every: 5m
    params: {service: web}
)";

TEST(Hostile, BillionLaughsIsRefusedWithoutExpanding) {
  std::string yaml = "id: x\nlol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i < 10; ++i) {
    yaml += "lol" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int j = 0; j < 9; ++j) yaml += std::string(j ? ", " : "") + "*l" + std::to_string(i - 1);
    yaml += "]\n";
  }
  yaml += "steps: [{id: s, shell: echo}]\n";
  auto start = std::chrono::steady_clock::now();
  ParseResult r = Parse(yaml);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r, 2, 7, {"YAML anchors (&l0) are not allowed", "write the value out"}));
  EXPECT_TRUE(HasError(r, 3, 12, {"YAML aliases (*l0) are not allowed"}));
  EXPECT_LT(took, std::chrono::seconds(2));
  // The list is capped, with a last line saying how many more there were.
  EXPECT_EQ(r.diagnostics.size(), 101u) << DumpDiagnostics(r);
  EXPECT_NE(r.diagnostics.back().message.find("more problems"), std::string::npos);
}

TEST(Hostile, AnAliasAloneIsRefused) {
  ParseResult r = Parse("id: x\nname: &n web\ndescription: *n\nsteps: [{id: s, shell: echo}]\n");
  EXPECT_TRUE(HasError(r, 2, 7, {"YAML anchors (&n) are not allowed"}));
  EXPECT_TRUE(HasError(r, 3, 14, {"YAML aliases (*n) are not allowed"}));
  EXPECT_EQ(r.diagnostics.size(), 2u) << DumpDiagnostics(r);
}

TEST(Hostile, MergeKeysAreAliasesToo) {
  ParseResult r =
      Parse("id: x\nsteps:\n  - &base {id: a, shell: echo}\n  - <<: *base\n    id: b\n");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasError(r, 4, 9, {"YAML aliases (*base) are not allowed"}));
}

TEST(Hostile, DeepFlowNestingStopsAtTheLimit) {
  std::string yaml =
      "id: x\nsteps: " + std::string(100'000, '[') + std::string(100'000, ']') + "\n";
  auto start = std::chrono::steady_clock::now();
  ParseResult r = Parse(yaml);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
  EXPECT_TRUE(HasError(r, 2, 8 + kMaxYamlDepth - 1, {"nesting is deeper than 32 levels"}));
}

TEST(Hostile, DeepBlockNestingStopsAtTheLimit) {
  std::string yaml = "id: x\nsteps:\n";
  for (int i = 0; i < 60; ++i) yaml += std::string(2 * i, ' ') + "- \n";
  ParseResult r = Parse(yaml);
  ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
  EXPECT_NE(r.diagnostics[0].message.find("deeper than 32"), std::string::npos);
}

TEST(Hostile, NestingUpToTheLimitIsFine) {
  // 31 lists inside the top-level map: depth 32.
  std::string yaml = "id: x\nsteps: [{id: s, shell: echo}]\ntags: " + std::string(30, '[') + "[a]" +
                     std::string(30, ']') + "\n";
  ParseResult r = Parse(yaml);
  // The structure is legal YAML within the limit; only the type is wrong.
  EXPECT_TRUE(HasError(r, 3, 8, {"tags[0]: expected a string, got a list"}));
  EXPECT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
}

TEST(Hostile, HugeFileIsRefusedBeforeParsing) {
  std::string yaml =
      "id: x\nsteps: [{id: s, shell: echo}]\n# " + std::string(kMaxRunbookBytes, 'a');
  ParseResult r = Parse(yaml);
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_TRUE(HasError(r, 1, 1, {"runbooks are limited to 1048576 bytes (1 MiB)"}));

  automan::testing::TempDir dir;
  automan::testing::WriteFile(dir.File("big.yaml"), yaml);
  ParseResult f = LoadRunbookFile(dir.File("big.yaml"));
  ASSERT_EQ(f.diagnostics.size(), 1u);
  EXPECT_NE(f.diagnostics[0].message.find("larger than 1048576 bytes"), std::string::npos);
  // An endless file is not read to the end.
  ParseResult z = LoadRunbookFile("/dev/zero");
  ASSERT_EQ(z.diagnostics.size(), 1u);
  EXPECT_NE(z.diagnostics[0].message.find("larger than"), std::string::npos);
}

TEST(Hostile, ExactlyAtTheSizeLimitIsParsed) {
  std::string yaml = "id: x\nsteps: [{id: s, shell: echo}]\n# ";
  yaml += std::string(kMaxRunbookBytes - yaml.size() - 1, 'a') + "\n";
  ASSERT_EQ(yaml.size(), kMaxRunbookBytes);
  ParseResult r = Parse(yaml);
  EXPECT_TRUE(r.ok()) << DumpDiagnostics(r);
}

TEST(Hostile, ABigScriptIsFast) {
  std::string yaml = "id: x\nsteps:\n  - id: s\n    shell: |\n";
  while (yaml.size() < kMaxRunbookBytes - 100)
    yaml += "      echo 0123456789012345678901234567890123456789\n";
  auto start = std::chrono::steady_clock::now();
  ParseResult r = Parse(yaml);
  EXPECT_TRUE(r.ok()) << DumpDiagnostics(r);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(Hostile, TooManyValues) {
  std::string yaml = "id: x\nsteps: [{id: s, shell: echo}]\ntags: [";
  for (int i = 0; i < 150'000; ++i) yaml += "a,";
  yaml += "a]\n";
  ParseResult r = Parse(yaml);
  ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
  EXPECT_NE(r.diagnostics[0].message.find("more than 100000 YAML values"), std::string::npos);
}

TEST(Hostile, BinaryGarbage) {
  std::mt19937 rng(42);
  for (int i = 0; i < 200; ++i) {
    std::string junk(1 + rng() % 4096, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    ParseResult r = Parse(junk);
    EXPECT_FALSE(r.ok());
    EXPECT_FALSE(r.diagnostics.empty());
  }
}

TEST(Hostile, NonUtf8Text) {
  ParseResult r = Parse("id: x\nname: caf\xe9\nsteps: [{id: s, shell: echo}]\n");
  ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
  EXPECT_TRUE(HasError(r, 2, 10, {"not valid UTF-8", "offset 15", "save it as UTF-8"}));
  // Overlong encodings and encoded surrogates are not UTF-8 either.
  EXPECT_FALSE(Parse("id: \xc0\xafx\n").ok());
  EXPECT_FALSE(Parse("id: \xed\xa0\x80\n").ok());
  EXPECT_FALSE(Parse("id: \xf4\x90\x80\x80\n").ok());
}

TEST(Hostile, Utf16IsRefused) {
  std::string utf16("\xff\xfei\0d\0:\0 \0x\0\n\0", 14);
  ParseResult r = Parse(utf16);
  ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
  EXPECT_NE(r.diagnostics[0].message.find("not valid UTF-8"), std::string::npos);
}

TEST(Hostile, Utf8TextAndBomAreFine) {
  ParseResult r = Parse(
      "\xef\xbb\xbfid: x\nname: caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80\n"
      "steps: [{id: s, shell: echo}]\n");
  ASSERT_TRUE(r.ok()) << DumpDiagnostics(r);
  EXPECT_EQ(r.runbook->name, "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80");
}

TEST(Hostile, ControlCharacters) {
  ParseResult r = Parse(std::string("id: x\nname: a\x01\n", 15));
  ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
  EXPECT_TRUE(HasError(r, 2, 8, {"control character 0x01 is not allowed"}));
  EXPECT_FALSE(Parse(std::string("id: x\0\n", 7)).ok());
  EXPECT_FALSE(Parse("id: x\x7f\n").ok());
  // Tabs and CRLF line ends are fine.
  EXPECT_TRUE(Parse("id: x\r\nname:\tweb\r\nsteps: [{id: s, shell: echo}]\r\n").ok());
}

TEST(Hostile, EscapedNulAndLoneSurrogateInQuotedText) {
  ParseResult r = Parse("id: x\nname: \"a\\0b\"\nsteps: [{id: s, shell: echo}]\n");
  ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
  EXPECT_TRUE(HasError(r, 2, 7, {"NUL byte"}));
  ParseResult s = Parse("id: x\nname: \"\\ud800\"\nsteps: [{id: s, shell: echo}]\n");
  EXPECT_FALSE(s.ok());
}

TEST(Hostile, Tags) {
  ParseResult r = Parse(
      "id: !!binary eA==\nname: !!str web\ntags: !!seq [a]\ndescription: !local x\n"
      "steps: [{id: s, shell: echo}]\n");
  ASSERT_EQ(r.diagnostics.size(), 4u) << DumpDiagnostics(r);
  EXPECT_TRUE(HasError(r, 1, 5, {"YAML tags (!!binary) are not allowed", "quote it"}));
  EXPECT_TRUE(HasError(r, 2, 7, {"YAML tags (!!str)"}));
  EXPECT_TRUE(HasError(r, 3, 7, {"YAML tags (!!seq)"}));
  EXPECT_TRUE(HasError(r, 4, 14, {"YAML tags (!local)"}));
}

TEST(Hostile, DuplicateKeysAtEveryLevel) {
  ParseResult r = Parse(
      "id: x\nid: y\nsteps:\n  - id: s\n    shell: a\n    shell: b\nparams:\n  p: {type: int, "
      "type: bool}\n");
  ASSERT_EQ(r.diagnostics.size(), 3u) << DumpDiagnostics(r);
  EXPECT_TRUE(HasError(r, 2, 1, {"duplicate key \"id\" (first at line 1)"}));
  EXPECT_TRUE(HasError(r, 6, 5, {"duplicate key \"shell\" in steps[0] (first at line 5)"}));
  EXPECT_TRUE(HasError(r, 8, 18, {"duplicate key \"type\" in params.p"}));
}

TEST(Hostile, MoreThanOneDocument) {
  ParseResult r = Parse("id: x\nsteps: [{id: s, shell: echo}]\n---\nid: y\n");
  ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
  EXPECT_TRUE(HasError(r, 3, 1, {"exactly one YAML document", "remove the second \"---\""}));
}

TEST(Hostile, SyntaxErrorsCarryThePosition) {
  ParseResult r = Parse("id: x\nsteps: [a\n");
  ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
  EXPECT_TRUE(HasError(r, 3, 1, {"YAML syntax error", "end of sequence flow not found"}));
  ParseResult r2 = Parse("id: x\n  name: y\n bad\n");
  ASSERT_EQ(r2.diagnostics.size(), 1u) << DumpDiagnostics(r2);
  EXPECT_NE(r2.diagnostics[0].message.find("YAML syntax error"), std::string::npos);
  EXPECT_GT(r2.diagnostics[0].loc.line, 0);
  EXPECT_FALSE(Parse("id: \"unterminated\n").ok());
  EXPECT_FALSE(Parse("{{{{").ok());
  EXPECT_FALSE(Parse("? ? ? ?").ok());
  EXPECT_FALSE(Parse("%YAML 9.9\n---\nid: x\n").ok());
}

// Found by runbook_fuzz: the date library behind ParseRfc3339 reads uninitialised fields
// on some malformed instants (UBSan: NaN converted to an integer). Only well-formed text
// may reach it; every shape below must be a plain diagnostic.
TEST(Hostile, MalformedInstantsAreRejectedBeforeTheDateLibrary) {
  for (const char* at :
       {"2030-01-31T09:o", "2030-01-31T09:", "2030-01-31T09", "2030-01-31T09:00:0xZ",
        "2030-01-31T09:00:00", "2030-01-31 09:00:00Z", "2030-01-31t09:00:00z",
        "2030-01-31T09:00:00+0100", "2030-01-31T09:00:00.Z", "2030-01-31T09:00:00.1234567890Z",
        "2030-01-31T09:00:00ZZ", "2030-1-31T09:00:00Z", "nan", "2030-13-01T00:00:00Z",
        "2030-02-30T00:00:00Z", "2030-01-01T25:00:00Z"}) {
    SCOPED_TRACE(at);
    // Parse twice: the date library's bad path showed up only after an earlier parse.
    for (int i = 0; i < 2; ++i) {
      ParseResult r = Parse(std::string("id: x\nschedules: [{id: n, at: \"2030-01-31T09:00:00Z\"}, "
                                        "{id: m, at: \"") +
                            at + "\"}]\nsteps: [{id: s, shell: echo}]\n");
      ASSERT_EQ(r.diagnostics.size(), 1u) << DumpDiagnostics(r);
      EXPECT_NE(r.diagnostics[0].message.find("is not an RFC 3339 instant"), std::string::npos);
    }
  }
  for (const char* at : {"2030-01-31T09:00:00Z", "2030-01-31T09:00:00.5Z",
                         "2030-01-31T09:00:00.123456Z", "2030-01-31T09:00:00-05:30"}) {
    SCOPED_TRACE(at);
    ParseResult r = Parse(std::string("id: x\nschedules: [{id: m, at: \"") + at +
                          "\"}]\nsteps: [{id: s, shell: echo}]\n");
    EXPECT_TRUE(r.ok()) << DumpDiagnostics(r);
  }
}

TEST(Hostile, ComplexKeysAreRefused) {
  ParseResult r = Parse("id: x\n? {a: 1}\n: v\nsteps: [{id: s, shell: echo}]\n");
  EXPECT_TRUE(HasError(r, 2, 3, {"keys must be plain names", "got a map"}));
}

// A cheap in-process fuzz pass that runs in every test run: byte flips, truncations and
// splices of a valid runbook. The real fuzzer is tests/fuzz (see its README).
TEST(Hostile, MutationsOfAValidRunbookNeverCrash) {
  ASSERT_TRUE(Parse(kValid).ok()) << DumpDiagnostics(Parse(kValid));
  std::mt19937 rng(7);
  const std::string base = kValid;
  const std::string alphabet = "{}[]:-,&*!|>'\"#%@` \n\t?0aZ\\";
  int ok = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string s = base;
    int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % (s.size() + 1);
      switch (rng() % 4) {
        case 0:
          if (pos < s.size()) s[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          s.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 2:
          s.erase(pos, rng() % 8);
          break;
        case 3:
          s.insert(pos, base.substr(rng() % base.size(), rng() % 40));
          break;
      }
    }
    ParseResult r = Parse(s);
    if (r.ok()) {
      ++ok;
      EXPECT_TRUE(r.diagnostics.empty());
      EXPECT_EQ(r.runbook->version.rfind("sha256:", 0), 0u);
      (void)BindParams(*r.runbook, {{"service", "web"}});
    } else {
      EXPECT_FALSE(r.diagnostics.empty());
      for (const auto& d : r.diagnostics) EXPECT_FALSE(d.message.empty());
    }
  }
  EXPECT_GT(ok, 0);  // some mutations (e.g. in comments or strings) stay valid
}

}  // namespace
}  // namespace automan
