#include "sandbox/process_tree.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "support/test_util.h"

extern char** environ;

namespace automan::sandbox_detail {
namespace {

TEST(ProcessTreeTest, ReadsOwnEntry) {
  ProcessEntry e;
  ASSERT_TRUE(ReadProcessEntry(getpid(), &e));
  EXPECT_EQ(e.pid, getpid());
  EXPECT_EQ(e.ppid, getppid());
  EXPECT_EQ(e.pgrp, getpgrp());
  EXPECT_FALSE(ReadProcessEntry(0x7ffffff0, &e));
}

TEST(ProcessTreeTest, ParsesCommandNamesWithSpacesAndParentheses) {
  testing::TempDir dir;
  std::string odd = dir.File("a) b (c");
  std::filesystem::copy_file("/bin/sleep", odd);
  chmod(odd.c_str(), 0755);
  char* argv[] = {odd.data(), const_cast<char*>("1000"), nullptr};
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, odd.c_str(), nullptr, nullptr, argv, environ), 0);
  ProcessEntry e;
  bool ok = ReadProcessEntry(pid, &e);
  std::vector<ProcessEntry> mine = Descendants(getpid(), ListProcesses());
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(ok);
  EXPECT_EQ(e.ppid, getpid());
  EXPECT_TRUE(
      std::any_of(mine.begin(), mine.end(), [&](const ProcessEntry& d) { return d.pid == pid; }));
}

TEST(ProcessTreeTest, DescendantsFollowParentChainsInAnyOrder) {
  // 50 -> 7 -> 900 -> 3 (pids wrapped around), 60 unrelated, 70 child of the unrelated.
  std::vector<ProcessEntry> all = {{3, 900, 3}, {900, 7, 7},  {7, 50, 7},
                                   {60, 1, 60}, {70, 60, 60}, {50, 1, 50}};
  std::vector<ProcessEntry> d = Descendants(50, all);
  std::vector<pid_t> pids;
  for (const auto& e : d) pids.push_back(e.pid);
  std::sort(pids.begin(), pids.end());
  EXPECT_EQ(pids, (std::vector<pid_t>{3, 7, 900}));
  EXPECT_TRUE(Descendants(3, all).empty());
}

}  // namespace
}  // namespace automan::sandbox_detail
