#include "sandbox/wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

namespace automan::sandbox_detail {
namespace {

using std::chrono::milliseconds;

StepCommand Sample() {
  StepCommand cmd;
  cmd.argv = {"sh", "-c", "echo \"$X\"", ""};
  cmd.env = {"PATH=/usr/bin:/bin", "X=a=b c", "EMPTY="};
  cmd.cwd = "/tmp";
  cmd.timeout = milliseconds(1500);
  cmd.kill_grace = milliseconds(250);
  return cmd;
}

void ExpectSame(const StepCommand& a, const StepCommand& b) {
  EXPECT_EQ(a.argv, b.argv);
  EXPECT_EQ(a.env, b.env);
  EXPECT_EQ(a.cwd, b.cwd);
  EXPECT_EQ(a.timeout, b.timeout);
  EXPECT_EQ(a.kill_grace, b.kill_grace);
  EXPECT_EQ(a.sandbox, b.sandbox);
}

StepCommand SandboxedSample() {
  StepCommand cmd = Sample();
  SandboxSpec sb;
  sb.private_pids = false;
  sb.no_network = true;
  sb.writable = {"/var/lib/automan/work/w-1", "/var/log/app"};
  sb.hidden = {"/var/lib/automan", "/etc/automan/config.yaml"};
  sb.run_as = "nobody";
  sb.memory_bytes = uint64_t{64} << 20;
  sb.max_processes = 32;
  sb.cpu_seconds = 90;
  sb.open_files = 256;
  sb.file_size_bytes = uint64_t{1} << 30;
  cmd.sandbox = sb;
  return cmd;
}

TEST(WireTest, StepCommandRoundTrips) {
  StepCommand cmd = Sample();
  ASSERT_TRUE(ValidateStepCommand(cmd).ok());
  Result<StepCommand> back = DecodeStepCommand(EncodeStepCommand(cmd));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSame(cmd, *back);

  cmd.timeout.reset();
  cmd.cwd.clear();
  cmd.env.clear();
  back = DecodeStepCommand(EncodeStepCommand(cmd));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSame(cmd, *back);
}

TEST(WireTest, SandboxSpecRoundTrips) {
  StepCommand cmd = SandboxedSample();
  ASSERT_TRUE(ValidateStepCommand(cmd).ok());
  Result<StepCommand> back = DecodeStepCommand(EncodeStepCommand(cmd));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSame(cmd, *back);
  cmd.sandbox = SandboxSpec{};  // defaults: private PIDs, nothing else
  back = DecodeStepCommand(EncodeStepCommand(cmd));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSame(cmd, *back);
}

TEST(WireTest, SandboxPathsMustBeAbsolute) {
  StepCommand cmd = SandboxedSample();
  cmd.sandbox->writable.push_back("relative/path");
  Status s = ValidateStepCommand(cmd);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("\"relative/path\" is not an absolute path"), std::string::npos)
      << s.message();
  cmd = SandboxedSample();
  cmd.sandbox->hidden.push_back(std::string("/a\0b", 4));
  EXPECT_EQ(ValidateStepCommand(cmd).code(), ErrorCode::kInvalidArgument);
}

TEST(WireTest, EveryTruncationIsRejected) {
  std::string payload = EncodeStepCommand(SandboxedSample());
  for (size_t n = 0; n < payload.size(); ++n) {
    Result<StepCommand> r = DecodeStepCommand(std::string_view(payload).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(WireTest, TrailingBytesAreRejected) {
  Result<StepCommand> r = DecodeStepCommand(EncodeStepCommand(Sample()) + "x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("trailing"), std::string::npos);
}

TEST(WireTest, HugeCountsInASmallPayloadAreRejectedWithoutAllocating) {
  std::string payload(8, '\0');
  uint32_t huge = 0xffffffffu;
  std::memcpy(payload.data(), &huge, 4);
  Result<StepCommand> r = DecodeStepCommand(payload);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos);
}

TEST(WireTest, DecodedCommandIsValidated) {
  StepCommand cmd = Sample();
  cmd.env.push_back("NOEQUALS");
  // Encoding does not validate; the decoder must.
  Result<StepCommand> r = DecodeStepCommand(EncodeStepCommand(cmd));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("KEY=VALUE"), std::string::npos);
}

TEST(WireTest, ValidationNamesTheProblem) {
  struct Case {
    std::function<void(StepCommand&)> mutate;
    std::string words;
  };
  std::vector<Case> cases = {
      {[](StepCommand& c) { c.argv.clear(); }, "empty argv"},
      {[](StepCommand& c) { c.argv[0].clear(); }, "empty argv"},
      {[](StepCommand& c) { c.argv[2] = std::string("a\0b", 3); }, "argv[2] contains a NUL"},
      {[](StepCommand& c) { c.env.push_back("=value"); }, "KEY=VALUE"},
      {[](StepCommand& c) { c.env.push_back(std::string("SECRET=a\0b", 10)); },
       "SECRET contains a NUL"},
      {[](StepCommand& c) { c.cwd = std::string("/t\0p", 4); }, "working directory"},
      {[](StepCommand& c) { c.timeout = milliseconds(-1); }, "timeout -1ms"},
      {[](StepCommand& c) { c.timeout = kMaxStepDuration + milliseconds(1); }, "timeout"},
      {[](StepCommand& c) { c.kill_grace = milliseconds(-5); }, "kill grace -5ms"},
      {[](StepCommand& c) { c.env.push_back("BIG=" + std::string(kMaxStepSpecBytes, 'v')); },
       "bytes encoded"},
      {[](StepCommand& c) { c.env.resize(kMaxStepStrings, "K=v"); }, "entries"},
  };
  for (auto& c : cases) {
    StepCommand cmd = Sample();
    c.mutate(cmd);
    Status s = ValidateStepCommand(cmd);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << c.words;
    EXPECT_NE(s.message().find(c.words), std::string::npos) << s.message();
  }
}

TEST(WireTest, SecretValuesStayOutOfValidationMessages) {
  StepCommand cmd = Sample();
  cmd.env.push_back(std::string("TOKEN=hunter2\0", 14));
  Status s = ValidateStepCommand(cmd);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().find("hunter2"), std::string::npos) << s.message();
}

TEST(WireTest, FramesAndIntegers) {
  std::string frame = EncodeFrame(42, "abc");
  ASSERT_EQ(frame.size(), kFrameHeaderBytes + 3);
  FrameHeader h = DecodeFrameHeader(frame.data());
  EXPECT_EQ(h.type, 42u);
  EXPECT_EQ(h.length, 3u);
  EXPECT_EQ(frame.substr(kFrameHeaderBytes), "abc");

  Result<int32_t> v = DecodeInt32(EncodeInt32(-77));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, -77);
  EXPECT_EQ(DecodeInt32("abc").status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace automan::sandbox_detail
