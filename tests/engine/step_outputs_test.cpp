// Unit tests of the $AUTOMAN_OUTPUT parser (ParseStepOutputs) and of the file reader around
// it (ReadStepOutputs). The fuzz target tests/fuzz/step_outputs_fuzz.cpp covers the same
// parser with arbitrary bytes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>

#include "engine/step_env.h"
#include "support/test_util.h"

namespace automan {
namespace {

using ::testing::HasSubstr;
using Outputs = std::map<std::string, std::string>;

Outputs ParseOk(std::string_view text) {
  auto r = ParseStepOutputs(text);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Outputs{};
}

TEST(StepOutputs, ParsesKeyValueLines) {
  EXPECT_EQ(ParseOk("greeting=hello world\ncount=3\n"),
            (Outputs{{"greeting", "hello world"}, {"count", "3"}}));
  // The last line needs no newline; keys keep their case.
  EXPECT_EQ(ParseOk("Mixed_Case_1=x"), (Outputs{{"Mixed_Case_1", "x"}}));
  EXPECT_EQ(ParseOk("_private=1\n"), (Outputs{{"_private", "1"}}));
}

TEST(StepOutputs, EmptyInputHasNoOutputs) {
  EXPECT_EQ(ParseOk(""), Outputs{});
  EXPECT_EQ(ParseOk("\n\n\r\n"), Outputs{});
}

TEST(StepOutputs, IgnoresBlankLines) {
  EXPECT_EQ(ParseOk("\na=1\n\n\nb=2\n\n"), (Outputs{{"a", "1"}, {"b", "2"}}));
}

TEST(StepOutputs, StripsOneCarriageReturnPerLine) {
  EXPECT_EQ(ParseOk("a=1\r\nb=2\r\n"), (Outputs{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(ParseOk("a=1\r"), (Outputs{{"a", "1"}}));
  // Only the last one: a value may itself end in '\r'.
  EXPECT_EQ(ParseOk("a=1\r\r\n"), (Outputs{{"a", "1\r"}}));
  // A '\r' inside a line is part of the value, not a line break.
  EXPECT_EQ(ParseOk("a=1\rb=2\n"), (Outputs{{"a", "1\rb=2"}}));
}

TEST(StepOutputs, LaterKeyWins) {
  EXPECT_EQ(ParseOk("state=starting\nother=x\nstate=done\n"),
            (Outputs{{"state", "done"}, {"other", "x"}}));
}

TEST(StepOutputs, ValueMayContainEqualsAndSpaces) {
  EXPECT_EQ(ParseOk("url=https://x.test/?a=1&b=2\n"),
            (Outputs{{"url", "https://x.test/?a=1&b=2"}}));
  EXPECT_EQ(ParseOk("k==\n"), (Outputs{{"k", "="}}));
  EXPECT_EQ(ParseOk("k= spaced \t\n"), (Outputs{{"k", " spaced \t"}}));
}

TEST(StepOutputs, ValueMayBeEmpty) { EXPECT_EQ(ParseOk("empty=\n"), (Outputs{{"empty", ""}})); }

TEST(StepOutputs, ValueKeepsArbitraryBytes) {
  const std::string text("bin=\x01\xff\xfe", 7);
  EXPECT_EQ(ParseOk(text), (Outputs{{"bin", std::string("\x01\xff\xfe", 3)}}));
  const std::string nul("nul=a\0b\n", 8);
  EXPECT_EQ(ParseOk(nul), (Outputs{{"nul", std::string("a\0b", 3)}}));
}

TEST(StepOutputs, LineWithoutEqualsFailsNamingTheLine) {
  auto r = ParseStepOutputs("a=1\n\njust some log line\nb=2\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "$AUTOMAN_OUTPUT line 3 has no '=': write key=value lines");
}

TEST(StepOutputs, LineNumbersCountBlankAndCrlfLines) {
  auto r = ParseStepOutputs("\r\n\r\na=1\r\noops\r\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("line 4 has no '='"));
}

TEST(StepOutputs, InvalidKeysFail) {
  for (const char* text : {"=value", "1abc=x", "has space=x", "dash-key=x", "dot.key=x", " lead=x",
                           "k\t=x", "caf\xc3\xa9=x"}) {
    auto r = ParseStepOutputs(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_THAT(r.status().message(), HasSubstr("line 1: \"")) << text;
    EXPECT_THAT(r.status().message(), HasSubstr("is not a valid output key")) << text;
  }
  auto r = ParseStepOutputs("ok=1\n9lives=x\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "$AUTOMAN_OUTPUT line 2: \"9lives\" is not a valid output key (letters, digits and "
            "_, not starting with a digit)");
}

TEST(StepOutputs, KeyLengthLimit) {
  const std::string k128(128, 'k');
  EXPECT_EQ(ParseOk(k128 + "=v"), (Outputs{{k128, "v"}}));
  auto r = ParseStepOutputs(std::string(129, 'k') + "=v");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  // The message quotes at most 64 characters of the key.
  EXPECT_THAT(r.status().message(), HasSubstr("\"" + std::string(64, 'k') + "\" is not"));
}

TEST(StepOutputs, FirstBadLineStopsParsing) {
  auto r = ParseStepOutputs("a=1\nbad\n1x=2\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("line 2 has no '='"));
}

TEST(StepOutputs, LongValue) {
  const std::string v(1 << 20, 'v');
  EXPECT_EQ(ParseOk("big=" + v + "\n"), (Outputs{{"big", v}}));
}

TEST(StepOutputs, ReadParsesTheFile) {
  testing::TempDir dir;
  const std::string path = dir.File("out");
  testing::WriteFile(path, "a=1\r\nb=x=y\n");
  auto r = ReadStepOutputs(path, 1024);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (Outputs{{"a", "1"}, {"b", "x=y"}}));

  testing::WriteFile(path, "a=1\nno equals\n");
  r = ReadStepOutputs(path, 1024);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "$AUTOMAN_OUTPUT line 2 has no '=': write key=value lines");
}

TEST(StepOutputs, ReadMissingFileHasNoOutputs) {
  testing::TempDir dir;
  auto r = ReadStepOutputs(dir.File("gone"), 1024);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->empty());
}

TEST(StepOutputs, ReadOversizedFileFails) {
  testing::TempDir dir;
  const std::string path = dir.File("out");
  testing::WriteFile(path, "k=" + std::string(18, 'v'));  // 20 bytes
  EXPECT_TRUE(ReadStepOutputs(path, 20).ok());
  auto r = ReadStepOutputs(path, 19);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(r.status().message(),
            "the step wrote more than 19 bytes to $AUTOMAN_OUTPUT; that is the limit");
}

TEST(StepOutputs, ReadNonRegularFileFails) {
  testing::TempDir dir;
  auto r = ReadStepOutputs(dir.path(), 1024);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("no longer a regular file"));
}

TEST(StepOutputs, SymlinkPlantedByTheStepIsNotFollowed) {
  testing::TempDir dir;
  const std::string secret = dir.File("secret");
  testing::WriteFile(secret, "password=hunter2\n");
  const std::string path = dir.File("out");
  ASSERT_EQ(symlink(secret.c_str(), path.c_str()), 0);
  auto r = ReadStepOutputs(path, 1024);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("symbolic link"));
  EXPECT_THAT(r.status().message(), ::testing::Not(HasSubstr("hunter2")));
}

TEST(StepOutputs, FifoPlantedByTheStepDoesNotBlock) {
  testing::TempDir dir;
  const std::string path = dir.File("out");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  auto r = ReadStepOutputs(path, 1024);  // would hang forever on a blocking open
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no longer a regular file"));
}

}  // namespace
}  // namespace automan
