// The supervisor with real processes: output, exit kinds, spawn errors, process-tree
// termination (timeouts, leftovers, cancellation, engine and shim death), and leaks.
// The test binary itself is the shim (tests/support/test_main.cpp dispatches __supervise).
#include "sandbox/supervisor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "common/ids.h"
#include "sandbox/sandbox_test_util.h"
#include "sandbox/supervisor_pool.h"
#include "sandbox/wire.h"
#include "support/test_util.h"

extern char** environ;

namespace automan {
namespace {

using std::chrono::milliseconds;
using testing::CountingSink;
using testing::RandomToken;
using testing::RecordedLine;
using testing::RecordingSink;
using testing::Shell;
using Kind = StepExit::Kind;

constexpr LogStream kOut = LogStream::kStdout;
constexpr LogStream kErr = LogStream::kStderr;

// A unique argument for `sleep` ("1000.<digits>", still ~1000 s) that makes the processes
// of one test findable by command line, even those started with an empty environment.
std::string UniqueSleep() {
  uint32_t v = 0;
  SecureRandomBytes(&v, sizeof v);
  return fmt::format("1000.{:010d}", v);
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<RunSupervisor>> s = RunSupervisor::Start();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sup_ = std::move(s).value();
  }

  StepExit Run(const StepCommand& cmd, LineSink& sink) {
    Result<StepExit> r = sup_->RunStep(cmd, sink, cancel_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : StepExit{.kind = Kind::kSpawnFailed, .error = "RunStep failed"};
  }

  StepExit Run(const StepCommand& cmd) {
    RecordingSink sink;
    return Run(cmd, sink);
  }

  // Asserts that nothing the step started is left: no process with its marker, none with
  // the unique `needle` on its command line, and no descendant of the shim.
  void ExpectTreeGone(const std::string& marker, const std::string& needle = "") {
    EXPECT_EQ(testing::ProcessesWithMarker(marker), std::vector<pid_t>{});
    if (!needle.empty()) {
      EXPECT_EQ(testing::ProcessesWithCmdline(needle), std::vector<pid_t>{});
    }
    EXPECT_EQ(testing::DescendantsOf(sup_->pid()), std::vector<pid_t>{});
  }

  std::unique_ptr<RunSupervisor> sup_;
  CancelSignal cancel_;
};

// --- output ----------------------------------------------------------------------------

TEST_F(SupervisorTest, DeliversLinesPerStreamInOrder) {
  RecordingSink sink;
  StepExit e = Run(Shell("printf 'one\\ntwo\\n'; printf 'e1\\ne2\\n' >&2; printf three"), sink);
  EXPECT_EQ(e, (StepExit{.kind = Kind::kExited, .exit_code = 0}));
  EXPECT_EQ(sink.Texts(kOut), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(sink.Texts(kErr), (std::vector<std::string>{"e1", "e2"}));
  for (const auto& l : sink.lines) EXPECT_FALSE(l.partial);
}

TEST_F(SupervisorTest, InterleavedStreamsKeepTheirOrderWhenFlushed) {
  RecordingSink sink;
  Run(Shell("echo a; sleep 0.05; echo b >&2; sleep 0.05; echo c; sleep 0.05; echo d >&2"), sink);
  std::vector<RecordedLine> want = {
      {kOut, "a", false}, {kErr, "b", false}, {kOut, "c", false}, {kErr, "d", false}};
  EXPECT_EQ(sink.lines, want);
}

TEST_F(SupervisorTest, KeepsCarriageReturnsAndEmptyLines) {
  RecordingSink sink;
  Run(Shell("printf 'a\\r\\n\\nb\\r\\n'"), sink);
  EXPECT_EQ(sink.Texts(kOut), (std::vector<std::string>{"a\r", "", "b\r"}));
}

TEST_F(SupervisorTest, LongLinesArriveAsCapSizedPieces) {
  RecordingSink sink;
  size_t n = 2 * kMaxLineBytes + 5;
  Run(Shell(fmt::format("head -c {} /dev/zero | tr '\\0' y; echo; head -c {} /dev/zero | "
                        "tr '\\0' z; echo; echo short",
                        n, kMaxLineBytes)),
      sink);
  std::vector<RecordedLine> want = {{kOut, std::string(kMaxLineBytes, 'y'), true},
                                    {kOut, std::string(kMaxLineBytes, 'y'), true},
                                    {kOut, "yyyyy", false},
                                    {kOut, std::string(kMaxLineBytes, 'z'), false},
                                    {kOut, "short", false}};
  EXPECT_EQ(sink.lines, want);
}

TEST_F(SupervisorTest, HundredMegabyteFloodWithoutNewlines) {
  CountingSink sink;
  StepExit e = Run(Shell("head -c 100000000 /dev/zero | tr '\\0' x"), sink);
  EXPECT_EQ(e, (StepExit{.kind = Kind::kExited, .exit_code = 0}));
  EXPECT_EQ(sink.bytes[0], 100000000u);
  EXPECT_EQ(sink.pieces[0], 100000000u / kMaxLineBytes);
  EXPECT_EQ(sink.lines[0], 1u);  // the unterminated tail, delivered at the end
  EXPECT_EQ(sink.bad_partial_sizes, 0u);
  EXPECT_EQ(sink.foreign_bytes, 0u);
}

TEST_F(SupervisorTest, FloodOnStdoutDoesNotStallStderr) {
  CountingSink sink;
  StepExit e = Run(Shell("head -c 20000000 /dev/zero | tr '\\0' x & "
                         "for i in 1 2 3 4 5; do echo err$i >&2; sleep 0.01; done; wait"),
                   sink);
  EXPECT_EQ(e.kind, Kind::kExited);
  EXPECT_EQ(sink.bytes[0], 20000000u);
  EXPECT_EQ(sink.foreign_bytes, 0u);
  EXPECT_EQ(sink.stderr_lines, (std::vector<std::string>{"err1", "err2", "err3", "err4", "err5"}));
}

TEST_F(SupervisorTest, SilentStepCompletes) {
  RecordingSink sink;
  StepExit e = Run(Shell("sleep 0.1"), sink);
  EXPECT_EQ(e, (StepExit{.kind = Kind::kExited, .exit_code = 0}));
  EXPECT_TRUE(sink.lines.empty());
}

TEST_F(SupervisorTest, OutputIsAttributedToItsStep) {
  // The first step's last bytes must not spill into the second step's lines.
  RecordingSink first;
  Run(Shell("head -c 300000 /dev/zero | tr '\\0' q; printf tail"), first);
  RecordingSink second;
  Run(Shell("echo second"), second);
  size_t bytes = 0;
  for (const auto& l : first.lines) bytes += l.text.size();
  EXPECT_EQ(bytes, 300000u + 4);
  EXPECT_EQ(first.lines.back().text.substr(first.lines.back().text.size() - 4), "tail");
  EXPECT_EQ(second.lines, (std::vector<RecordedLine>{{kOut, "second", false}}));
}

// --- exits and spawn errors ------------------------------------------------------------

TEST_F(SupervisorTest, ReportsExitCodes) {
  for (int code : {0, 1, 3, 42, 255}) {
    StepExit e = Run(Shell(fmt::format("exit {}", code)));
    EXPECT_EQ(e, (StepExit{.kind = Kind::kExited, .exit_code = code})) << code;
  }
}

TEST_F(SupervisorTest, ReportsASignalTheStepSentItself) {
  StepExit e = Run(Shell("kill -9 $$"));
  EXPECT_EQ(e, (StepExit{.kind = Kind::kSignaled, .signal = 9}));
  e = Run(Shell("kill -TERM $$"));
  EXPECT_EQ(e, (StepExit{.kind = Kind::kSignaled, .signal = SIGTERM}));
}

TEST_F(SupervisorTest, MissingExecutableIsASpawnFailure) {
  StepCommand cmd = Shell("");
  cmd.argv = {"automan-no-such-program"};
  StepExit e = Run(cmd);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("automan-no-such-program"), std::string::npos) << e.error;
  EXPECT_NE(e.error.find("No such file or directory"), std::string::npos) << e.error;

  cmd.argv = {"/nonexistent/bin/tool", "x"};
  e = Run(cmd);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("/nonexistent/bin/tool"), std::string::npos) << e.error;
  EXPECT_NE(e.error.find("No such file or directory"), std::string::npos) << e.error;
}

TEST_F(SupervisorTest, NonExecutableFileIsASpawnFailure) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("tool"), "#!/bin/sh\necho hi\n");
  StepCommand cmd = Shell("");
  cmd.argv = {dir.File("tool")};
  StepExit e = Run(cmd);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("Permission denied"), std::string::npos) << e.error;
  cmd.argv = {"tool"};
  cmd.env = {"PATH=" + dir.path()};
  e = Run(cmd);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("Permission denied"), std::string::npos) << e.error;
}

TEST_F(SupervisorTest, BadWorkingDirectoryIsASpawnFailure) {
  StepCommand cmd = Shell("pwd");
  cmd.cwd = "/nonexistent-automan-dir";
  StepExit e = Run(cmd);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("working directory '/nonexistent-automan-dir'"), std::string::npos)
      << e.error;
  EXPECT_NE(e.error.find("No such file or directory"), std::string::npos) << e.error;

  testing::TempDir dir;
  testing::WriteFile(dir.File("file"), "");
  cmd.cwd = dir.File("file");
  e = Run(cmd);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("Not a directory"), std::string::npos) << e.error;
}

TEST_F(SupervisorTest, RunsInTheGivenWorkingDirectory) {
  testing::TempDir dir;
  RecordingSink sink;
  StepCommand cmd = Shell("pwd; ls");
  cmd.cwd = dir.path();
  testing::WriteFile(dir.File("marker-file"), "");
  EXPECT_EQ(Run(cmd, sink).kind, Kind::kExited);
  EXPECT_EQ(sink.Texts(kOut), (std::vector<std::string>{dir.path(), "marker-file"}));
}

TEST_F(SupervisorTest, LooksUpTheProgramInTheStepsPath) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("mytool"), "#!/bin/sh\necho \"mytool $1\"\n");
  chmod(dir.File("mytool").c_str(), 0755);
  RecordingSink sink;
  StepCommand cmd;
  cmd.argv = {"mytool", "arg"};
  cmd.env = {"PATH=/nonexistent:" + dir.path()};
  EXPECT_EQ(Run(cmd, sink), (StepExit{.kind = Kind::kExited, .exit_code = 0}));
  EXPECT_EQ(sink.Texts(kOut), (std::vector<std::string>{"mytool arg"}));

  // Not the shim's PATH: with a PATH that lacks /bin, "sh" is not found.
  cmd.argv = {"sh", "-c", "true"};
  cmd.env = {"PATH=" + dir.path()};
  StepExit e = Run(cmd);
  EXPECT_EQ(e.kind, Kind::kSpawnFailed);
  EXPECT_NE(e.error.find("'sh'"), std::string::npos) << e.error;
  EXPECT_NE(e.error.find("PATH=" + dir.path()), std::string::npos) << e.error;
}

TEST_F(SupervisorTest, StepSeesExactlyTheGivenEnvironment) {
  RecordingSink sink;
  StepCommand cmd;
  cmd.argv = {"/usr/bin/env"};
  cmd.env = {"PATH=/usr/bin:/bin", "A=1", "B=two words", "EMPTY=", "WEIRD=x=y\ttab"};
  EXPECT_EQ(Run(cmd, sink).kind, Kind::kExited);
  EXPECT_EQ(sink.Texts(kOut), cmd.env);

  cmd.env.clear();
  sink.lines.clear();
  EXPECT_EQ(Run(cmd, sink).kind, Kind::kExited);
  EXPECT_TRUE(sink.lines.empty());
}

TEST_F(SupervisorTest, ParameterValuesAreNeverInterpreted) {
  testing::TempDir dir;
  std::string value = "$(touch " + dir.File("pwned") + "); rm -rf /";
  RecordingSink sink;
  StepExit e = Run(Shell("echo \"$VAR\"", "", {"VAR=" + value}), sink);
  EXPECT_EQ(e.kind, Kind::kExited);
  EXPECT_EQ(sink.Texts(kOut), std::vector<std::string>{value});
  EXPECT_FALSE(std::filesystem::exists(dir.File("pwned")));
}

TEST_F(SupervisorTest, StepGetsOnlyStandardDescriptorsAndDevNullInput) {
  RecordingSink sink;
  Run(Shell("ls /proc/$$/fd; readlink /proc/$$/fd/0; cat"), sink);
  EXPECT_EQ(sink.Texts(kOut), (std::vector<std::string>{"0", "1", "2", "/dev/null"}));
}

TEST_F(SupervisorTest, StepHasCleanSignalStateAndItsOwnProcessGroup) {
  // grep is the step's main process here, so it shows the state exec gave it.
  RecordingSink sink;
  StepCommand cmd;
  cmd.argv = {"grep", "-E", "^(SigBlk|SigIgn)", "/proc/self/status"};
  cmd.env = {"PATH=/usr/bin:/bin"};
  Run(cmd, sink);
  // The shim ignores SIGPIPE and blocks SIGCHLD and the terminating signals, and glibc's
  // posix_spawn ignores its internal signals in the child: none of that reaches the step.
  EXPECT_EQ(sink.Texts(kOut),
            (std::vector<std::string>{"SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"}));

  sink.lines.clear();
  Run(Shell("cut -d' ' -f5 /proc/$$/stat; echo $$"), sink);
  std::vector<std::string> out = sink.Texts(kOut);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], out[1]);  // process group id == pid
}

TEST_F(SupervisorTest, InvalidCommandsAreRejectedAndTheSupervisorStaysUsable) {
  RecordingSink sink;
  StepCommand empty;
  Result<StepExit> r = sup_->RunStep(empty, sink, cancel_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("empty argv"), std::string::npos);

  StepCommand bad = Shell("true");
  bad.timeout = milliseconds(-10);
  r = sup_->RunStep(bad, sink, cancel_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);

  EXPECT_EQ(Run(Shell("exit 5")).exit_code, 5);
}

// --- terminating trees -----------------------------------------------------------------

TEST_F(SupervisorTest, TimeoutKillsDoubleForkedDaemons) {
  std::string marker = RandomToken();
  // Unique sleep durations make the processes findable by command line too, including the
  // one started with an empty environment.
  std::string tag = UniqueSleep();
  StepCommand cmd =
      Shell("(setsid sleep " + tag + "1 &); " + "setsid sh -c \"sleep " + tag +
                "2 & echo \\$!\"; " + "(env -i /bin/sleep " + tag + "3 &); " + "sleep " + tag + "4",
            marker);
  cmd.timeout = milliseconds(300);
  cmd.kill_grace = milliseconds(2000);
  RecordingSink sink;
  StepExit e = Run(cmd, sink);
  EXPECT_EQ(e, (StepExit{.kind = Kind::kTimedOut}));
  ASSERT_EQ(sink.Texts(kOut).size(), 1u);  // the daemon's pid
  ExpectTreeGone(marker, tag);
}

TEST_F(SupervisorTest, LeftoversOfASuccessfulStepAreGoneWhenItReturns) {
  std::string marker = RandomToken();
  std::string tag = UniqueSleep();
  RecordingSink sink;
  StepExit e =
      Run(Shell("(setsid sleep " + tag + " &); sleep " + tag + " & echo done", marker), sink);
  EXPECT_EQ(e, (StepExit{.kind = Kind::kExited, .exit_code = 0}));
  EXPECT_EQ(sink.Texts(kOut), std::vector<std::string>{"done"});
  ExpectTreeGone(marker, tag);
}

TEST_F(SupervisorTest, TermIsSentFirstAndTheStepMayCleanUp) {
  std::string marker = RandomToken();
  StepCommand cmd =
      Shell("trap 'echo cleaning up; exit 7' TERM; echo ready; sleep 1000 & wait", marker);
  cmd.timeout = milliseconds(200);
  cmd.kill_grace = milliseconds(60000);  // everything exits on TERM: no waiting for this
  RecordingSink sink;
  StepExit e = Run(cmd, sink);
  EXPECT_EQ(e.kind, Kind::kTimedOut);
  EXPECT_EQ(sink.Texts(kOut), (std::vector<std::string>{"ready", "cleaning up"}));
  ExpectTreeGone(marker);
}

TEST_F(SupervisorTest, StepIgnoringTermIsKilledAfterTheGrace) {
  std::string marker = RandomToken();
  StepCommand cmd = Shell("trap '' TERM; sleep 1000 & sleep 1000", marker);
  cmd.timeout = milliseconds(100);
  cmd.kill_grace = milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  StepExit e = Run(cmd);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(e.kind, Kind::kTimedOut);
  // SIGKILL only after the grace: a lower bound, which no scheduling delay can break.
  EXPECT_GE(elapsed, milliseconds(400));
  ExpectTreeGone(marker);
}

TEST_F(SupervisorTest, StoppedStepIsStillTerminated) {
  std::string marker = RandomToken();
  StepCommand cmd = Shell("kill -STOP $$; echo resumed", marker);
  cmd.timeout = milliseconds(100);
  StepExit e = Run(cmd);
  EXPECT_EQ(e.kind, Kind::kTimedOut);
  ExpectTreeGone(marker);
}

TEST_F(SupervisorTest, ZeroTimeoutStopsAtOnce) {
  std::string marker = RandomToken();
  StepCommand cmd = Shell("sleep 1000", marker);
  cmd.timeout = milliseconds(0);
  cmd.kill_grace = milliseconds(0);
  EXPECT_EQ(Run(cmd).kind, Kind::kTimedOut);
  ExpectTreeGone(marker);
}

TEST_F(SupervisorTest, CancelFromTheSinkStopsTheTree) {
  std::string marker = RandomToken();
  RecordingSink sink;
  sink.on_line = [&](LogStream, std::string_view text) {
    if (text == "ready") cancel_.Cancel();
  };
  StepExit e = Run(Shell("(setsid sleep 1000 &); echo ready; sleep 1000", marker), sink);
  EXPECT_EQ(e, (StepExit{.kind = Kind::kCancelled}));
  EXPECT_TRUE(cancel_.cancelled());
  ExpectTreeGone(marker);
}

TEST_F(SupervisorTest, AlreadyCancelledStartsNothing) {
  testing::TempDir dir;
  cancel_.Cancel();
  StepExit e = Run(Shell("touch " + dir.File("ran")));
  EXPECT_EQ(e.kind, Kind::kCancelled);
  EXPECT_FALSE(std::filesystem::exists(dir.File("ran")));
}

TEST_F(SupervisorTest, ShimCommandLineCarriesNoStepData) {
  std::string secret = "s3cret-" + RandomToken();
  std::string cmdline;
  std::string environ_text;
  RecordingSink sink;
  sink.on_line = [&](LogStream, std::string_view text) {
    if (text != "ready") return;
    cmdline = testing::ReadProcFile(sup_->pid(), "cmdline");
    environ_text = testing::ReadProcFile(sup_->pid(), "environ");
    cancel_.Cancel();
  };
  StepExit e = Run(Shell("echo ready; sleep 1000", "", {"TOKEN=" + secret}), sink);
  EXPECT_EQ(e.kind, Kind::kCancelled);
  ASSERT_FALSE(cmdline.empty());
  EXPECT_EQ(cmdline.find(secret), std::string::npos);
  EXPECT_EQ(environ_text.find(secret), std::string::npos);
  EXPECT_NE(cmdline.find("__supervise"), std::string::npos);
}

TEST_F(SupervisorTest, ShimDeathFailsTheStepAndKillsItsGroup) {
  std::string marker = RandomToken();
  // The step's processes are orphaned when the shim dies: have them reparented to us, so
  // we can reap them (this machine's init does not).
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  RecordingSink sink;
  sink.on_line = [&](LogStream, std::string_view text) {
    if (text != "ready") return;
    // The step may print before the shim has sent kStarted (which names the group to
    // kill). The shim sends it before it first waits in ppoll(2), and only waits in poll(2)
    // while idle: wait until it is in ppoll, so the kill below is never too early.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (
        testing::ReadProcFile(sup_->pid(), "syscall").rfind(std::to_string(SYS_ppoll) + " ", 0) !=
            0 &&
        std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    kill(sup_->pid(), SIGKILL);
  };
  Result<StepExit> r = sup_->RunStep(Shell("echo ready; sleep 1000", marker), sink, cancel_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.status().message().find("exited unexpectedly"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("killed by signal 9"), std::string::npos)
      << r.status().message();
  // Best-effort SIGKILL of the step's group: its members die and come back to us.
  int reaped = 0;
  while (waitpid(-1, nullptr, __WALL) > 0) ++reaped;
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  EXPECT_GE(reaped, 1);  // the step (dash execs its last command) and any child
  EXPECT_EQ(testing::ProcessesWithMarker(marker), std::vector<pid_t>{});
  // Later calls fail the same way without hanging.
  r = sup_->RunStep(Shell("true"), sink, cancel_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  sup_.reset();
  EXPECT_TRUE(testing::NoChildren());
}

TEST_F(SupervisorTest, AStepAbandonedByAThrowingSinkRetiresTheSupervisor) {
  std::string marker = RandomToken();
  RecordingSink sink;
  sink.on_line = [](LogStream, std::string_view text) {
    if (text == "ready") throw std::runtime_error("sink failed");
  };
  EXPECT_THROW((void)sup_->RunStep(Shell("(setsid sleep 1000 &); echo ready; sleep 1000", marker),
                                   sink, cancel_),
               std::runtime_error);
  EXPECT_FALSE(sup_->IsHealthy());
  Result<StepExit> r = sup_->RunStep(Shell("true"), sink, cancel_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.status().message().find("abandoned"), std::string::npos) << r.status().message();
  // The shim took the whole tree down before exiting, and was reaped.
  EXPECT_EQ(testing::ProcessesWithMarker(marker), std::vector<pid_t>{});
  sup_.reset();
  EXPECT_TRUE(testing::NoChildren());
}

// Simulates the engine dying mid-step: a forked child hosts the supervisor and is killed
// with SIGKILL; the shim sees EOF on its control socket and must take the tree down.
TEST(SupervisorEngineDeathTest, EngineDeathKillsTheTree) {
  std::string marker = RandomToken();
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  // Orphans (the shim, once its host dies) come back to us to be reaped.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t host = fork();
  ASSERT_GE(host, 0);
  if (host == 0) {
    close(ready[0]);
    auto sup = RunSupervisor::Start();
    if (!sup.ok()) _exit(1);
    RecordingSink sink;
    pid_t shim = (*sup)->pid();
    sink.on_line = [&](LogStream, std::string_view text) {
      if (text == "ready") {
        ssize_t ignored = write(ready[1], &shim, sizeof shim);
        (void)ignored;
      }
    };
    CancelSignal cancel;
    (void)(*sup)->RunStep(
        Shell("(setsid sleep 1000 &); trap 'exit 0' TERM; echo ready; sleep 1000 & wait", marker),
        sink, cancel);
    _exit(2);  // not reached: the parent kills us first
  }
  close(ready[1]);
  pid_t shim = 0;
  ssize_t n = read(ready[0], &shim, sizeof shim);
  close(ready[0]);
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof shim));
  EXPECT_FALSE(testing::ProcessesWithMarker(marker).empty());
  kill(host, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(host, &status, 0), host);
  // The shim exits once the tree is gone; it was reparented to us (subreaper).
  ASSERT_EQ(waitpid(shim, &status, 0), shim);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(testing::ProcessesWithMarker(marker), std::vector<pid_t>{});
  EXPECT_TRUE(testing::NoChildren());
}

// The engine may vanish right after sending a step, before the shim has even spawned it:
// the shim then fails to send kStarted and must still take the step down and exit. Driven
// by hand over the wire protocol, so the order is certain.
TEST(SupervisorEngineDeathTest, EngineGoneBeforeTheStepStarted) {
  std::string marker = RandomToken();
  int ctl[2];
  int out[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl), 0);
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  // High copies, so the dup2s onto 3..5 below cannot clobber a source.
  int shim_ctl = fcntl(ctl[1], F_DUPFD_CLOEXEC, 100);
  int shim_out = fcntl(out[1], F_DUPFD_CLOEXEC, 100);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, shim_ctl, sandbox_detail::kShimControlFd);
  posix_spawn_file_actions_adddup2(&fa, shim_out, sandbox_detail::kShimStdoutFd);
  posix_spawn_file_actions_adddup2(&fa, shim_out, sandbox_detail::kShimStderrFd);
  std::string exe = "/proc/self/exe";
  std::string arg(kSupervisorCommand);
  char* argv[] = {exe.data(), arg.data(), nullptr};
  pid_t shim = -1;
  ASSERT_EQ(posix_spawn(&shim, exe.c_str(), &fa, nullptr, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  for (int fd : {ctl[1], out[1], shim_ctl, shim_out}) close(fd);

  // Take the greeting first, so the shim is surely in its loop when the step arrives.
  char hello[sandbox_detail::kFrameHeaderBytes + 4];
  ASSERT_EQ(recv(ctl[0], hello, sizeof hello, MSG_WAITALL), static_cast<ssize_t>(sizeof hello));
  StepCommand cmd = Shell("sleep 1000", marker);
  std::string frame =
      sandbox_detail::EncodeFrame(static_cast<uint32_t>(sandbox_detail::ControlFrame::kRunStep),
                                  sandbox_detail::EncodeStepCommand(cmd));
  ASSERT_EQ(send(ctl[0], frame.data(), frame.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(frame.size()));
  close(ctl[0]);  // gone before the shim could answer

  // Bounded wait, so a shim that keeps running fails the test instead of hanging it.
  int status = 0;
  pid_t r = 0;
  for (int i = 0; i < 2000 && (r = waitpid(shim, &status, WNOHANG)) == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  if (r == 0) {
    kill(shim, SIGKILL);
    waitpid(shim, &status, 0);
  }
  close(out[0]);
  EXPECT_EQ(r, shim) << "the shim did not exit";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(testing::WaitForNoMarker(marker), std::vector<pid_t>{});
}

// --- supervisor lifecycle --------------------------------------------------------------

// A daemonised engine may run without stdin/stdout/stderr: the channel descriptors then
// get numbers 0..2, which Start must not confuse with the shim's fixed 3..5.
TEST(SupervisorLifecycleTest, WorksWhenTheEngineHasNoStandardDescriptors) {
  pid_t host = fork();
  ASSERT_GE(host, 0);
  if (host == 0) {
    close(0);
    close(1);
    close(2);
    auto sup = RunSupervisor::Start();
    if (!sup.ok()) _exit(10);
    RecordingSink sink;
    CancelSignal cancel;
    Result<StepExit> r = (*sup)->RunStep(Shell("echo out; echo err >&2; exit 4"), sink, cancel);
    if (!r.ok()) _exit(11);
    if (*r != StepExit{.kind = Kind::kExited, .exit_code = 4}) _exit(12);
    if (sink.lines != std::vector<RecordedLine>{{kOut, "out", false}, {kErr, "err", false}}) {
      _exit(13);
    }
    sup->reset();
    _exit(testing::NoChildren() ? 0 : 14);
  }
  int status = 0;
  ASSERT_EQ(waitpid(host, &status, 0), host);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SupervisorLifecycleTest, NoDescriptorOrChildLeaks) {
  {
    // Warm up anything initialised lazily (sanitizer runtimes, the eventfd).
    auto sup = RunSupervisor::Start();
    ASSERT_TRUE(sup.ok());
    CancelSignal cancel;
    RecordingSink sink;
    ASSERT_TRUE((*sup)->RunStep(Shell("true"), sink, cancel).ok());
  }
  int before = testing::CountOpenFds();
  ASSERT_TRUE(testing::NoChildren());
  for (int round = 0; round < 3; ++round) {
    auto sup = RunSupervisor::Start();
    ASSERT_TRUE(sup.ok()) << sup.status().ToString();
    CancelSignal cancel;
    for (int i = 0; i < 30; ++i) {
      RecordingSink sink;
      StepCommand cmd = Shell(fmt::format("echo {}; echo err >&2; exit {}", i, i % 3));
      if (i % 10 == 9) cmd.argv = {"no-such-program-automan"};
      if (i % 10 == 8) {
        cmd = Shell("sleep 1000");
        cmd.timeout = milliseconds(1);
      }
      Result<StepExit> r = (*sup)->RunStep(cmd, sink, cancel);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
    EXPECT_GT(testing::CountOpenFds(), before);  // the supervisor's own channels
  }
  EXPECT_EQ(testing::CountOpenFds(), before);
  EXPECT_TRUE(testing::NoChildren());
}

TEST(SupervisorLifecycleTest, StartFailsForAMissingExecutable) {
  SupervisorOptions options;
  options.exe = "/nonexistent/automan";
  auto sup = RunSupervisor::Start(options);
  ASSERT_FALSE(sup.ok());
  EXPECT_EQ(sup.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(sup.status().message().find("No such file or directory"), std::string::npos);
}

TEST(SupervisorLifecycleTest, AnExecutableThatIsNotAShimFailsTheStep) {
  SupervisorOptions options;
  options.exe = "/bin/true";
  auto sup = RunSupervisor::Start(options);
  ASSERT_TRUE(sup.ok());
  RecordingSink sink;
  CancelSignal cancel;
  Result<StepExit> r = (*sup)->RunStep(Shell("echo hi"), sink, cancel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.status().message().find("supervisor"), std::string::npos);
  sup->reset();
  EXPECT_TRUE(testing::NoChildren());
}

TEST(SupervisorLifecycleTest, ShimRefusesToRunWithoutItsDescriptors) {
  testing::CommandResult r = testing::RunCommand(
      "exec 3>&- 4>&- 5>&-; /proc/" + std::to_string(getpid()) + "/exe __supervise 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("internal"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace automan

namespace automan {
namespace {

using testing::RecordingSink;
using testing::Shell;

Result<StepExit> RunEcho(RunSupervisor& sup, const std::string& text) {
  RecordingSink sink;
  CancelSignal cancel;
  Result<StepExit> r = sup.RunStep(Shell("echo " + text), sink, cancel);
  if (r.ok() && sink.Texts(LogStream::kStdout) != std::vector<std::string>{text}) {
    return Error(ErrorCode::kInternal, "wrong output");
  }
  return r;
}

TEST(SupervisorPoolTest, ReusesHealthySupervisors) {
  SupervisorPool pool;
  ASSERT_TRUE(pool.Prewarm(2).ok());
  EXPECT_EQ(pool.idle(), 2u);
  auto a = pool.Acquire();
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(pool.idle(), 1u);
  int pid = (*a)->pid();
  ASSERT_TRUE(RunEcho(**a, "first").ok());
  pool.Release(std::move(*a));
  EXPECT_EQ(pool.idle(), 2u);
  // Last in, first out: the same shim serves the next run.
  auto b = pool.Acquire();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->pid(), pid);
  ASSERT_TRUE(RunEcho(**b, "second").ok());
  pool.Release(std::move(*b));
  pool.Release(nullptr);
  EXPECT_EQ(pool.idle(), 2u);
}

TEST(SupervisorPoolTest, DropsSupervisorsWhoseShimDied) {
  SupervisorPool pool;
  ASSERT_TRUE(pool.Prewarm(1).ok());
  auto a = pool.Acquire();
  ASSERT_TRUE(a.ok());
  int dead = (*a)->pid();
  ASSERT_TRUE(RunEcho(**a, "x").ok());
  pool.Release(std::move(*a));
  ASSERT_EQ(pool.idle(), 1u);
  kill(dead, SIGKILL);
  // Wait until the death is visible on the control socket (the shim's exit closes it).
  while (testing::ReadProcFile(dead, "stat").find(") Z") == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto b = pool.Acquire();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_NE((*b)->pid(), dead);
  EXPECT_EQ(pool.idle(), 0u);
  ASSERT_TRUE(RunEcho(**b, "y").ok());
  b->reset();
  EXPECT_TRUE(testing::NoChildren());  // the dead shim was reaped too
}

TEST(SupervisorPoolTest, KeepsAtMostMaxIdle) {
  SupervisorPool pool({.max_idle = 1});
  ASSERT_TRUE(pool.Prewarm(3).ok());
  EXPECT_EQ(pool.idle(), 1u);
  auto a = pool.Acquire();
  auto b = pool.Acquire();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->pid(), (*b)->pid());
  pool.Release(std::move(*a));
  pool.Release(std::move(*b));
  EXPECT_EQ(pool.idle(), 1u);
}

TEST(SupervisorPoolTest, StartFailuresAreReported) {
  SupervisorPool::Options options;
  options.supervisor.exe = "/nonexistent/automan";
  SupervisorPool pool(options);
  EXPECT_EQ(pool.Prewarm(1).code(), ErrorCode::kUnavailable);
  EXPECT_EQ(pool.Acquire().status().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace automan
