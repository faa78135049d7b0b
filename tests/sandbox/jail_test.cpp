// The sandbox (StepCommand::sandbox) with real processes: what a step can see and do
// inside, and the escape attempts the issue lists. Each must fail while the host stays as
// it was. The test binary is the shim; the jail needs root (CAP_SYS_ADMIN), and the tests
// skip with a reason without it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "sandbox/sandbox_test_util.h"
#include "sandbox/supervisor.h"
#include "support/test_util.h"

namespace automan {
namespace {

namespace fs = std::filesystem;
using testing::RandomToken;
using testing::RecordingSink;
using Kind = StepExit::Kind;
constexpr LogStream kOut = LogStream::kStdout;
constexpr LogStream kErr = LogStream::kStderr;

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// A layout like a server's, outside /tmp (the jail's /tmp is private anyway, so only paths
// elsewhere exercise the hiding): ROOT/data with a key, ROOT/work/{mine,other}, and
// ROOT/shared, a sibling that stays visible (read-only).
class JailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0)
      GTEST_SKIP() << "the sandbox needs root (CAP_SYS_ADMIN); running as uid " << geteuid();
    root_ = "/var/tmp/automan-jail-" + RandomToken().substr(0, 12);
    fs::create_directories(root_ + "/data");
    fs::create_directories(root_ + "/work/mine");
    fs::create_directories(root_ + "/work/other");
    fs::create_directories(root_ + "/shared");
    fs::create_directories(root_ + "/extra");
    WriteFile(root_ + "/data/master.key", "the-master-key");
    WriteFile(root_ + "/work/other/secret.txt", "another run's file");
    WriteFile(root_ + "/shared/readme", "visible");
    auto s = RunSupervisor::Start();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sup_ = std::move(s).value();
  }
  void TearDown() override {
    sup_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }

  static void WriteFile(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }

  SandboxSpec Spec() const {
    SandboxSpec sb;
    sb.writable = {root_ + "/work/mine"};
    sb.hidden = {root_ + "/data", root_ + "/work"};
    return sb;
  }

  StepExit Run(const std::string& script, const SandboxSpec& sb, RecordingSink& sink,
               std::vector<std::string> env = {}, const std::string& marker = "") {
    StepCommand cmd = testing::Shell(script, marker, std::move(env));
    cmd.env.push_back("ROOT=" + root_);
    cmd.cwd = root_ + "/work/mine";
    cmd.kill_grace = std::chrono::milliseconds(500);
    cmd.timeout = std::chrono::seconds(60);
    cmd.sandbox = sb;
    CancelSignal cancel;
    auto r = sup_->RunStep(cmd, sink, cancel);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : StepExit{};
  }

  std::string root_;
  std::unique_ptr<RunSupervisor> sup_;
};

TEST_F(JailTest, TheDataDirectoryAndOtherRunsWorkDirectoriesAreAbsent) {
  RecordingSink sink;
  StepExit e =
      Run("cat \"$ROOT/data/master.key\" 2>&1 || true\n"
          "test -e \"$ROOT/data\" && echo data-visible || echo data-absent\n"
          "ls \"$ROOT/work\"\n"
          "cat \"$ROOT/work/other/secret.txt\" 2>&1 || true\n"
          "cat \"$ROOT/shared/readme\"; echo\n"
          "ls \"$ROOT\"\n",
          Spec(), sink);
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  std::string out = Joined(sink.Texts(kOut));
  EXPECT_EQ(out.find("the-master-key"), std::string::npos) << out;
  EXPECT_EQ(out.find("another run's file"), std::string::npos) << out;
  EXPECT_NE(out.find("No such file or directory"), std::string::npos) << out;
  EXPECT_NE(out.find("data-absent"), std::string::npos) << out;
  EXPECT_NE(out.find("visible"), std::string::npos) << out;
  // The work root shows only this run's directory, and ROOT lists its other entries.
  auto lines = sink.Texts(kOut);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "mine"), lines.end()) << out;
  EXPECT_EQ(std::find(lines.begin(), lines.end(), "other"), lines.end()) << out;
  EXPECT_NE(out.find("shared"), std::string::npos) << out;
  EXPECT_NE(out.find("extra"), std::string::npos) << out;
  EXPECT_NE(e.protections.find("hidden: " + root_ + "/data, " + root_ + "/work"), std::string::npos)
      << e.protections;
}

TEST_F(JailTest, WritesLandOnlyInTheWorkDirectoryAndWritablePaths) {
  SandboxSpec sb = Spec();
  sb.writable.push_back(root_ + "/extra");
  RecordingSink sink;
  StepExit e =
      Run("echo mine > \"$ROOT/work/mine/out\"\n"
          "echo extra > \"$ROOT/extra/out\"\n"
          "echo tmp > /tmp/out && echo tmp-ok\n"
          "echo no > \"$ROOT/shared/out\" 2>&1 || echo shared-refused\n"
          "touch /usr/automan-jail-test 2>&1 || echo usr-refused\n"
          "touch /etc/automan-jail-test 2>&1 || echo etc-refused\n",
          sb, sink);
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  std::string out = Joined(sink.Texts(kOut)) + Joined(sink.Texts(kErr));
  EXPECT_NE(out.find("tmp-ok"), std::string::npos) << out;
  EXPECT_NE(out.find("shared-refused"), std::string::npos) << out;
  EXPECT_NE(out.find("usr-refused"), std::string::npos) << out;
  EXPECT_NE(out.find("etc-refused"), std::string::npos) << out;
  EXPECT_NE(out.find("Read-only file system"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(root_ + "/work/mine/out"));
  EXPECT_TRUE(fs::exists(root_ + "/extra/out"));
  EXPECT_FALSE(fs::exists(root_ + "/shared/out"));
  EXPECT_FALSE(fs::exists("/usr/automan-jail-test"));
  EXPECT_FALSE(fs::exists("/tmp/out") && testing::ReadFile("/tmp/out") == "tmp\n");
}

TEST_F(JailTest, TheJailCannotBeUndoneFromInside) {
  RecordingSink sink;
  StepExit e =
      Run("umount /tmp 2>/dev/null && echo umount-worked\n"
          "mount -t tmpfs none /mnt 2>/dev/null && echo mount-worked\n"
          "mount -o remount,rw / 2>/dev/null && echo remount-worked\n"
          "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status\n"
          "ls /dev | tr '\\n' ' '; echo\n"
          "echo x > /dev/sda 2>/dev/null && echo disk-written\n"
          "echo hostname-$(hostname)\n",
          Spec(), sink);
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  std::string out = Joined(sink.Texts(kOut));
  EXPECT_EQ(out.find("worked"), std::string::npos) << out;
  EXPECT_EQ(out.find("disk-written"), std::string::npos) << out;
  EXPECT_NE(out.find("NoNewPrivs:\t1"), std::string::npos) << out;
  // CAP_SYS_ADMIN (21) is gone: the effective set is the kept one, 0x000000002000c1eb... in
  // any case bit 21 is clear.
  size_t at = out.find("CapEff:\t");
  ASSERT_NE(at, std::string::npos) << out;
  uint64_t caps = std::stoull(out.substr(at + 8, 16), nullptr, 16);
  EXPECT_EQ(caps & (uint64_t{1} << 21), 0u) << out;
  EXPECT_EQ(caps & (uint64_t{1} << 2), 0u) << "CAP_DAC_READ_SEARCH " << out;
  EXPECT_EQ(caps & (uint64_t{1} << 19), 0u) << "CAP_SYS_PTRACE " << out;
  EXPECT_NE(caps & (uint64_t{1} << 1), 0u) << "CAP_DAC_OVERRIDE is kept " << out;
  EXPECT_EQ(out.find("sda"), std::string::npos) << out;
  EXPECT_NE(out.find("null"), std::string::npos) << out;
}

TEST_F(JailTest, APrivatePidNamespaceShowsOnlyTheStepAndHidesTheHostsEnvironments) {
  RecordingSink sink;
  StepExit e =
      Run("cat /proc/1/environ > /dev/null 2>&1 && echo init-environ-read\n"
          "cat /proc/$HOST_PID/environ 2>/dev/null | tr '\\0' '\\n' | grep -c SECRET_OF_HOST\n"
          "ls /proc | grep -cE '^[0-9]+$'\n",
          Spec(), sink, {"HOST_PID=" + std::to_string(getpid())});
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  auto lines = sink.Texts(kOut);
  std::string out = Joined(lines);
  EXPECT_EQ(out.find("init-environ-read"), std::string::npos) << out;
  ASSERT_EQ(lines.size(), 2u) << out;
  EXPECT_EQ(lines[0], "0") << out;
  // The init, the shell, ls and grep at most.
  EXPECT_LE(std::stoi(lines[1]), 5) << out;
  EXPECT_NE(e.protections.find("PID"), std::string::npos) << e.protections;
}

TEST_F(JailTest, WithHostPidsTheStepSeesProcessesButNotTheirEnvironments) {
  setenv("SECRET_OF_HOST", "host-secret-value", 1);
  SandboxSpec sb = Spec();
  sb.private_pids = false;
  RecordingSink sink;
  StepExit e =
      Run("test -d /proc/$HOST_PID && echo host-pid-visible\n"
          "cat /proc/$HOST_PID/environ 2>&1 | tr '\\0' '\\n' | grep -c host-secret-value\n"
          "ls /proc/$HOST_PID/root/ 2>/dev/null | head -1 | grep -c . \n"
          "cat /proc/1/environ > /dev/null 2>&1 && echo init-environ-read\n",
          sb, sink, {"HOST_PID=" + std::to_string(getpid())});
  unsetenv("SECRET_OF_HOST");
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  auto lines = sink.Texts(kOut);
  ASSERT_GE(lines.size(), 3u) << Joined(lines);
  EXPECT_EQ(lines[0], "host-pid-visible");
  EXPECT_EQ(lines[1], "0") << Joined(lines);
  EXPECT_EQ(lines[2], "0") << "the host's root through /proc/PID/root " << Joined(lines);
  EXPECT_EQ(Joined(lines).find("init-environ-read"), std::string::npos);
}

TEST_F(JailTest, NothingTheStepStartsOutlivesIt) {
  const std::string marker = RandomToken();
  RecordingSink sink;
  StepExit e =
      Run("(sleep 1000 &) ; setsid sleep 1000 & nohup sleep 1000 >/dev/null 2>&1 &\n"
          "echo started",
          Spec(), sink, {}, marker);
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  EXPECT_EQ(e.exit_code, 0);
  EXPECT_TRUE(testing::ProcessesWithMarker(marker).empty());
  // Also with host PIDs (the shim's tree termination instead of the namespace's end).
  SandboxSpec sb = Spec();
  sb.private_pids = false;
  RecordingSink sink2;
  e = Run("(sleep 1000 &) ; setsid sleep 1000 & echo started", sb, sink2, {}, marker);
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  EXPECT_TRUE(testing::WaitForNoMarker(marker).empty());
}

TEST_F(JailTest, ATimeoutEndsTheWholeJail) {
  const std::string marker = RandomToken();
  StepCommand cmd = testing::Shell("sleep 1000 & sleep 1000", marker);
  cmd.timeout = std::chrono::milliseconds(300);
  cmd.kill_grace = std::chrono::milliseconds(200);
  cmd.sandbox = Spec();
  RecordingSink sink;
  CancelSignal cancel;
  auto r = sup_->RunStep(cmd, sink, cancel);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, Kind::kTimedOut);
  EXPECT_TRUE(testing::ProcessesWithMarker(marker).empty());
  // The supervisor serves the next step.
  RecordingSink sink2;
  StepExit e = Run("echo again", Spec(), sink2);
  EXPECT_EQ(sink2.Texts(kOut), std::vector<std::string>{"again"});
  EXPECT_EQ(e.exit_code, 0);
}

TEST_F(JailTest, ExitCodesAndSignalsOfTheStepAreReported) {
  RecordingSink a, b;
  StepExit e = Run("exit 7", Spec(), a);
  EXPECT_EQ(e.kind, Kind::kExited);
  EXPECT_EQ(e.exit_code, 7);
  e = Run("kill -USR1 $$", Spec(), b);
  EXPECT_EQ(e.kind, Kind::kSignaled);
  EXPECT_EQ(e.signal, SIGUSR1);
}

TEST_F(JailTest, TheMemoryLimitStopsAStepAndSaysSo) {
  SandboxSpec sb = Spec();
  sb.memory_bytes = 32 << 20;
  RecordingSink sink;
  StepExit e = Run("dd if=/dev/zero of=/dev/null bs=256M count=1 2>&1", sb, sink);
  if (e.protections.find("no cgroup") != std::string::npos) {
    GTEST_SKIP() << "no writable cgroup on this host: " << e.protections;
  }
  EXPECT_NE(e.protections.find("memory 32 MiB"), std::string::npos) << e.protections;
  EXPECT_TRUE(e.kind == Kind::kSignaled || (e.kind == Kind::kExited && e.exit_code != 0))
      << static_cast<int>(e.kind);
  EXPECT_NE(e.error.find("memory limit of 32 MiB was reached"), std::string::npos) << e.error;
  // The next step has the memory it needs again.
  RecordingSink next;
  e = Run("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null && echo fine", Spec(), next);
  EXPECT_EQ(next.Texts(kOut), std::vector<std::string>{"fine"});
}

TEST_F(JailTest, TheProcessLimitStopsAForkBomb) {
  SandboxSpec sb = Spec();
  sb.max_processes = 16;
  const std::string marker = RandomToken();
  RecordingSink sink;
  StepExit e =
      Run("i=0; while [ $i -lt 64 ]; do sleep 1000 & i=$((i+1)); done 2>&1; echo spawned; exit 3",
          sb, sink, {}, marker);
  if (e.protections.find("no cgroup") != std::string::npos) {
    GTEST_SKIP() << "no writable cgroup on this host: " << e.protections;
  }
  EXPECT_NE(e.protections.find("processes 16"), std::string::npos) << e.protections;
  std::string out = Joined(sink.Texts(kOut)) + Joined(sink.Texts(kErr));
  // dash says "Cannot fork", bash "Resource temporarily unavailable".
  EXPECT_TRUE(out.find("Cannot fork") != std::string::npos ||
              out.find("Resource temporarily unavailable") != std::string::npos)
      << out;
  EXPECT_TRUE(testing::ProcessesWithMarker(marker).empty());
}

TEST_F(JailTest, RlimitsApplyToTheStep) {
  SandboxSpec sb = Spec();
  sb.open_files = 64;
  sb.file_size_bytes = 1 << 20;
  sb.cpu_seconds = 30;
  RecordingSink sink;
  StepExit e =
      Run("ulimit -n; ulimit -t\n"
          "head -c 2097152 /dev/zero > big 2>/dev/null; echo size=$(stat -c %s big)\n",
          sb, sink);
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  auto lines = sink.Texts(kOut);
  ASSERT_EQ(lines.size(), 3u) << Joined(lines);
  EXPECT_EQ(lines[0], "64");
  EXPECT_EQ(lines[1], "30");
  EXPECT_EQ(lines[2], "size=1048576");
  EXPECT_NE(e.protections.find("open files 64"), std::string::npos) << e.protections;
}

TEST_F(JailTest, WithoutNetworkOnlyTheJailsOwnLoopbackAnswers) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  const std::string script = "bash -c 'echo > /dev/tcp/127.0.0.1/" + port +
                             "' 2>/dev/null && echo connected || echo refused";
  SandboxSpec none = Spec();
  none.no_network = true;
  RecordingSink a, b;
  StepExit e = Run(script, none, a);
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  EXPECT_EQ(a.Texts(kOut), std::vector<std::string>{"refused"});
  EXPECT_NE(e.protections.find("no network"), std::string::npos) << e.protections;
  e = Run(script, Spec(), b);
  EXPECT_EQ(b.Texts(kOut), std::vector<std::string>{"connected"});
  close(listener);
}

TEST_F(JailTest, RunAsAnotherUserOwnsTheWorkDirectory) {
  SandboxSpec sb = Spec();
  sb.run_as = "nobody";
  RecordingSink sink;
  StepExit e = Run("id -u; echo hi > out && echo wrote; echo $HOME $USER", sb, sink,
                   {"HOME=/root", "USER=root"});
  ASSERT_EQ(e.kind, Kind::kExited) << e.error;
  auto lines = sink.Texts(kOut);
  ASSERT_EQ(lines.size(), 3u) << Joined(lines);
  EXPECT_EQ(lines[0], "65534");
  EXPECT_EQ(lines[1], "wrote");
  EXPECT_EQ(lines[2], "/nonexistent nobody");
  EXPECT_NE(e.protections.find("user nobody"), std::string::npos) << e.protections;
}

TEST_F(JailTest, SetupProblemsAreSpawnFailuresThatSayWhat) {
  SandboxSpec sb = Spec();
  sb.writable.push_back(root_ + "/missing");
  RecordingSink a, b, c, d;
  StepExit e = Run("true", sb, a);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("writable path " + root_ + "/missing"), std::string::npos) << e.error;
  sb = Spec();
  sb.run_as = "no-such-user-here";
  e = Run("true", sb, b);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("no user \"no-such-user-here\""), std::string::npos) << e.error;
  sb = Spec();
  sb.writable.push_back(root_);  // would uncover the hidden data directory
  e = Run("true", sb, c);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("contains " + root_ + "/data"), std::string::npos) << e.error;
  sb = Spec();
  sb.writable.push_back(root_ + "/data");  // only the work directory may be inside
  RecordingSink e2;
  e = Run("true", sb, e2);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("is inside " + root_ + "/data"), std::string::npos) << e.error;
  StepCommand cmd = testing::Shell("true");
  cmd.argv = {"no-such-program-anywhere"};
  cmd.sandbox = Spec();
  CancelSignal cancel;
  auto r = sup_->RunStep(cmd, d, cancel);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, Kind::kSpawnFailed);
  EXPECT_NE(r->error.find("cannot execute 'no-such-program-anywhere'"), std::string::npos)
      << r->error;
  // Still usable afterwards.
  RecordingSink ok;
  e = Run("echo ok", Spec(), ok);
  EXPECT_EQ(ok.Texts(kOut), std::vector<std::string>{"ok"});
}

}  // namespace
}  // namespace automan
