#include "sandbox/line_splitter.h"

#include <gtest/gtest.h>

#include "sandbox/sandbox_test_util.h"

namespace automan {
namespace {

using testing::RecordedLine;
using testing::RecordingSink;

constexpr LogStream kOut = LogStream::kStdout;

std::vector<RecordedLine> Split(const std::vector<std::string>& chunks, size_t max_line,
                                bool flush = true) {
  RecordingSink sink;
  LineSplitter splitter(kOut, max_line);
  for (const auto& c : chunks) splitter.Feed(c, sink);
  if (flush) splitter.Flush(sink);
  return sink.lines;
}

TEST(LineSplitterTest, SplitsAtNewlinesAcrossChunks) {
  auto lines = Split({"ab", "c\nde", "f\n\ng"}, 100);
  std::vector<RecordedLine> want = {
      {kOut, "abc", false}, {kOut, "def", false}, {kOut, "", false}, {kOut, "g", false}};
  EXPECT_EQ(lines, want);
}

TEST(LineSplitterTest, KeepsCarriageReturns) {
  auto lines = Split({"a\r\nb\r", "\n\r"}, 100);
  std::vector<RecordedLine> want = {
      {kOut, "a\r", false}, {kOut, "b\r", false}, {kOut, "\r", false}};
  EXPECT_EQ(lines, want);
}

TEST(LineSplitterTest, UnterminatedFragmentOnlyOnFlush) {
  RecordingSink sink;
  LineSplitter splitter(kOut, 100);
  splitter.Feed("one\ntw", sink);
  ASSERT_EQ(sink.lines.size(), 1u);
  EXPECT_EQ(splitter.pending(), 2u);
  splitter.Flush(sink);
  ASSERT_EQ(sink.lines.size(), 2u);
  EXPECT_EQ(sink.lines[1], (RecordedLine{kOut, "tw", false}));
  splitter.Flush(sink);  // nothing pending: no empty line
  EXPECT_EQ(sink.lines.size(), 2u);
}

TEST(LineSplitterTest, LineOfExactlyTheCapIsOneLine) {
  auto lines = Split({"abcd", "\n"}, 4);
  std::vector<RecordedLine> want = {{kOut, "abcd", false}};
  EXPECT_EQ(lines, want);
  // ... also when it is the unterminated end of the output.
  lines = Split({"abcd"}, 4);
  EXPECT_EQ(lines, want);
}

TEST(LineSplitterTest, LongLinesArriveInCapSizedPieces) {
  auto lines = Split({"abcdefghij\nxy\n"}, 4);
  std::vector<RecordedLine> want = {
      {kOut, "abcd", true}, {kOut, "efgh", true}, {kOut, "ij", false}, {kOut, "xy", false}};
  EXPECT_EQ(lines, want);
  lines = Split({"abcdefgh\n"}, 4);
  want = {{kOut, "abcd", true}, {kOut, "efgh", false}};
  EXPECT_EQ(lines, want);
}

TEST(LineSplitterTest, ByteByByteEqualsAllAtOnce) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += std::string(i % 23, 'a' + i % 26) + (i % 7 ? "\n" : "");
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  EXPECT_EQ(Split(bytes, 8), Split({text}, 8));
}

TEST(LineSplitterTest, PendingNeverExceedsTheCap) {
  RecordingSink sink;
  LineSplitter splitter(kOut, kMaxLineBytes);
  std::string flood(1 << 20, 'x');
  splitter.Feed(flood, sink);
  EXPECT_LE(splitter.pending(), kMaxLineBytes);
  EXPECT_EQ(sink.lines.size(), (1u << 20) / kMaxLineBytes - 1);
  for (const auto& l : sink.lines) {
    EXPECT_TRUE(l.partial);
    EXPECT_EQ(l.text.size(), kMaxLineBytes);
  }
  splitter.Flush(sink);
  EXPECT_FALSE(sink.lines.back().partial);
  EXPECT_EQ(sink.lines.back().text.size(), kMaxLineBytes);
}

}  // namespace
}  // namespace automan
