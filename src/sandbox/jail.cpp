#include "sandbox/jail.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/size.h"
#include "sandbox/posix_util.h"
#include "sandbox/wire.h"

namespace automan::sandbox_detail {
namespace {

// Where the jail's root is assembled, inside its own mount namespace (the host never sees
// it). The new root covers the host's /tmp there, which is why writable paths are opened
// before it is mounted.
constexpr const char* kNewRoot = "/tmp";

// The capabilities a step that stays root keeps: Docker's default set without MKNOD,
// SYS_CHROOT and SETFCAP. Gone, among others: SYS_ADMIN (mount, so no way to undo the
// jail), DAC_READ_SEARCH (open_by_handle_at), SYS_PTRACE, SYS_MODULE, SYS_RAWIO, SYS_BOOT,
// NET_ADMIN, SYS_TIME. Without SYS_PTRACE and with fewer capabilities than the server,
// /proc/PID/environ and /proc/PID/root of host processes are out of reach even with
// `pid: host`.
constexpr int kKeptCapabilities[] = {
    CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,           CAP_FSETID,  CAP_KILL,       CAP_SETGID,
    CAP_SETUID, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_AUDIT_WRITE};

struct User {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string name;
  std::string home;
};

// A directory whose listing is replaced, inside the jail, by a tmpfs holding bind mounts of
// the host's entries except `hidden`; hidden names in `keep` (a writable path lies inside)
// become empty directories that the writable path's mount point is created in.
struct Skeleton {
  std::string dir;
  std::set<std::string> hidden;
  std::set<std::string> keep;
};

struct Plan {
  const StepCommand* cmd = nullptr;
  std::vector<std::string> writable;  // canonical host paths, in the given order
  std::vector<Skeleton> skeletons;    // outermost first
  std::optional<User> user;
  std::vector<std::string> cgroup_procs;
  std::vector<std::string> env;  // cmd->env with HOME/USER/LOGNAME of run_as
  int devnull = -1;
  int report = -1;  // write end of the report pipe
};

bool IsUnder(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Child(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

// --- the report pipe --------------------------------------------------------------------

void PutMessage(int fd, char tag, std::string_view payload) {
  std::string m(1, tag);
  uint32_t n = static_cast<uint32_t>(payload.size());
  m.append(reinterpret_cast<const char*>(&n), 4);
  m.append(payload);
  const char* p = m.data();
  size_t left = m.size();
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    left -= static_cast<size_t>(w);
  }
}

bool ReadFull(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Blocking; false on EOF or a malformed message.
bool GetMessage(int fd, char* tag, std::string* payload) {
  char head[5];
  if (!ReadFull(fd, head, sizeof head)) return false;
  *tag = head[0];
  uint32_t n = 0;
  std::memcpy(&n, head + 1, 4);
  if (n > kMaxStatusPayload) return false;
  payload->resize(n);
  return ReadFull(fd, payload->data(), n);
}

std::string Int32Payload(int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

// --- inside the jail (the setup process and the init; single-threaded forks) -------------

[[noreturn]] void Die(const Plan& plan, const std::string& why) {
  PutMessage(plan.report, 'E', why);
  _exit(127);
}

[[noreturn]] void DieErrno(const Plan& plan, const std::string& what) {
  Die(plan, "sandbox: " + what + ": " + ErrnoText(errno));
}

void MountOrDie(const Plan& plan, const char* source, const std::string& target, const char* type,
                unsigned long flags, const char* data = nullptr) {
  if (mount(source, target.c_str(), type, flags, data) != 0) {
    DieErrno(plan, fmt::format("cannot mount {} on {}", source != nullptr ? source : "(remount)",
                               target));
  }
}

void SetAttrOrDie(const Plan& plan, const std::string& target, uint64_t set) {
  mount_attr attr{};
  attr.attr_set = set;
  if (mount_setattr(AT_FDCWD, target.c_str(), AT_RECURSIVE, &attr, sizeof attr) != 0) {
    DieErrno(plan, "cannot restrict the mounts under " + target);
  }
}

void BindReadOnly(const Plan& plan, const std::string& source, const std::string& target) {
  MountOrDie(plan, source.c_str(), target, nullptr, MS_BIND | MS_REC);
  SetAttrOrDie(plan, target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
}

// Creates the missing directories of `path` below `root` (which exists).
void MakeDirsOrDie(const Plan& plan, const std::string& root, const std::string& path) {
  for (size_t pos = root.size() + 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      DieErrno(plan, "cannot create the mount point " + prefix.substr(root.size()));
    }
  }
}

void BuildSkeleton(const Plan& plan, const std::string& root, const Skeleton& sk) {
  const std::string target = root + (sk.dir == "/" ? "" : sk.dir);
  struct stat st;
  if (stat(sk.dir.c_str(), &st) != 0) DieErrno(plan, "cannot stat " + sk.dir);
  MountOrDie(plan, "tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV,
             fmt::format("mode={:o}", st.st_mode & 07777).c_str());
  DIR* d = opendir(sk.dir.c_str());
  if (d == nullptr) DieErrno(plan, "cannot list " + sk.dir);
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string dst = target + "/" + name;
    if (sk.hidden.contains(name)) {
      if (sk.keep.contains(name) && mkdir(dst.c_str(), 0755) != 0) {
        DieErrno(plan, "cannot create " + dst);
      }
      continue;
    }
    const std::string src = Child(sk.dir, name);
    struct stat est;
    if (lstat(src.c_str(), &est) != 0) continue;  // gone meanwhile
    if (S_ISLNK(est.st_mode)) {
      char link[4096];
      ssize_t n = readlink(src.c_str(), link, sizeof link - 1);
      if (n < 0) continue;
      link[n] = '\0';
      if (symlink(link, dst.c_str()) != 0) DieErrno(plan, "cannot create " + dst);
      continue;
    }
    if (S_ISDIR(est.st_mode)) {
      if (mkdir(dst.c_str(), 0755) != 0) DieErrno(plan, "cannot create " + dst);
    } else {
      int fd = open(dst.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) DieErrno(plan, "cannot create " + dst);
      close(fd);
    }
    BindReadOnly(plan, src, dst);
  }
  closedir(d);
}

// A /dev with only the harmless character devices: no disks, no /dev/mem, no terminals of
// others.
void BuildDev(const Plan& plan, const std::string& root) {
  const std::string dev = root + "/dev";
  MountOrDie(plan, "tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755");
  for (const char* name : {"null", "zero", "full", "random", "urandom", "tty"}) {
    std::string src = std::string("/dev/") + name;
    if (access(src.c_str(), F_OK) != 0) continue;
    std::string dst = dev + "/" + name;
    int fd = open(dst.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) DieErrno(plan, "cannot create " + dst);
    close(fd);
    MountOrDie(plan, src.c_str(), dst, nullptr, MS_BIND);
  }
  const std::pair<const char*, const char*> links[] = {{"fd", "/proc/self/fd"},
                                                       {"stdin", "/proc/self/fd/0"},
                                                       {"stdout", "/proc/self/fd/1"},
                                                       {"stderr", "/proc/self/fd/2"}};
  for (const auto& [name, to] : links) {
    if (symlink(to, (dev + "/" + name).c_str()) != 0) DieErrno(plan, "cannot create /dev link");
  }
  if (mkdir((dev + "/shm").c_str(), 01777) != 0) DieErrno(plan, "cannot create /dev/shm");
  MountOrDie(plan, "tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  MountOrDie(plan, nullptr, dev, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC);
}

void LoopbackUp(const Plan& plan) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) DieErrno(plan, "cannot open a socket to bring up loopback");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) DieErrno(plan, "cannot read the loopback's flags");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) DieErrno(plan, "cannot bring up loopback");
  close(s);
}

uint64_t KeptCapabilities() {
  uint64_t keep = 0;
  for (int cap : kKeptCapabilities) keep |= uint64_t{1} << cap;
  return keep;
}

// Bounds what any later exec can have (needs CAP_SETPCAP, so before a change of user).
void LimitBoundingSet(const Plan& plan) {
  const uint64_t keep = KeptCapabilities();
  for (int cap = 0; cap < 64; ++cap) {
    if ((keep >> cap) & 1) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      DieErrno(plan, "cannot drop capability " + std::to_string(cap));
    }
  }
  (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

// A process staying root keeps only the kept capabilities.
void ReduceCapabilities(const Plan& plan) {
  const uint64_t keep = KeptCapabilities();
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = static_cast<uint32_t>(keep);
  data[1].effective = data[1].permitted = static_cast<uint32_t>(keep >> 32);
  if (syscall(SYS_capset, &header, data) != 0) DieErrno(plan, "cannot reduce capabilities");
}

void SetLimit(const Plan& plan, int resource, uint64_t value, uint64_t hard, const char* what) {
  if (value == 0) return;
  rlimit rl{static_cast<rlim_t>(value), static_cast<rlim_t>(hard)};
  if (setrlimit(resource, &rl) != 0)
    DieErrno(plan, std::string("cannot set the ") + what + " limit");
}

// The jail's init: PID 1 of the new PID namespace (or a plain parent with `pid: host`).
[[noreturn]] void JailInit(const Plan& plan) {
  const StepCommand& cmd = *plan.cmd;
  const SandboxSpec& sb = *cmd.sandbox;
  (void)setpgid(0, 0);
  // Its pid as the shim knows it: /proc is still the host's here. Sent by the init itself so
  // that 'P', 'S' and 'X' arrive in order.
  char self[32] = {};
  if (readlink("/proc/self", self, sizeof self - 1) <= 0) DieErrno(plan, "readlink /proc/self");
  PutMessage(plan.report, 'P', Int32Payload(static_cast<int32_t>(std::atoi(self))));
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) (void)sigaction(sig, &ignore, nullptr);

  // Writable paths are opened before the new root covers /tmp, where they may live.
  std::vector<int> writable_fds;
  for (const auto& w : plan.writable) {
    int fd = open(w.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) DieErrno(plan, "cannot open the writable path " + w);
    writable_fds.push_back(fd);
  }
  if (plan.user && !writable_fds.empty() &&
      fchownat(writable_fds[0], "", plan.user->uid, plan.user->gid, AT_EMPTY_PATH) != 0) {
    DieErrno(plan, "cannot give the work directory to " + plan.user->name);
  }

  const std::string root = kNewRoot;
  MountOrDie(plan, nullptr, "/", nullptr, MS_REC | MS_PRIVATE);
  MountOrDie(plan, "/", root, nullptr, MS_BIND | MS_REC);
  SetAttrOrDie(plan, root, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  for (const Skeleton& sk : plan.skeletons) BuildSkeleton(plan, root, sk);
  MountOrDie(plan, "tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  BuildDev(plan, root);
  for (size_t i = 0; i < plan.writable.size(); ++i) {
    const std::string target = root + plan.writable[i];
    MakeDirsOrDie(plan, root, target);
    std::string source = "/proc/self/fd/" + std::to_string(writable_fds[i]);
    MountOrDie(plan, source.c_str(), target, nullptr, MS_BIND | MS_REC);
    SetAttrOrDie(plan, target, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    close(writable_fds[i]);
  }
  for (const Skeleton& sk : plan.skeletons) {
    MountOrDie(plan, nullptr, root + (sk.dir == "/" ? "" : sk.dir), nullptr,
               MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV);
  }
  if (sb.private_pids) {
    MountOrDie(plan, "proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY);
  }
  if (sb.no_network) LoopbackUp(plan);
  if (chdir(root.c_str()) != 0) DieErrno(plan, "cannot enter the new root");
  if (syscall(SYS_pivot_root, ".", ".") != 0) DieErrno(plan, "pivot_root");
  if (umount2(".", MNT_DETACH) != 0) DieErrno(plan, "cannot detach the host's root");
  if (chdir("/") != 0) DieErrno(plan, "chdir /");

  const std::string cwd = cmd.cwd.empty() ? "/" : cmd.cwd;
  int cwd_fd = open(cwd.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cwd_fd < 0) {
    Die(plan, "cannot use working directory '" + cwd + "' inside the sandbox: " + ErrnoText(errno));
  }
  std::string program;
  if (std::string error; !ResolveProgram(cmd, cwd_fd, &program, &error)) Die(plan, error);

  // Lower privileges last: everything above needed them.
  SetLimit(plan, RLIMIT_CPU, sb.cpu_seconds, sb.cpu_seconds + 1, "CPU time");
  SetLimit(plan, RLIMIT_NOFILE, sb.open_files, sb.open_files, "open files");
  SetLimit(plan, RLIMIT_FSIZE, sb.file_size_bytes, sb.file_size_bytes, "file size");
  LimitBoundingSet(plan);
  if (plan.user) {
    // A change of user clears the capabilities.
    SetLimit(plan, RLIMIT_NPROC, sb.max_processes, sb.max_processes, "processes");
    const User& u = *plan.user;
    if (setgroups(u.groups.size(), u.groups.data()) != 0) DieErrno(plan, "setgroups");
    if (setresgid(u.gid, u.gid, u.gid) != 0) DieErrno(plan, "setresgid");
    if (setresuid(u.uid, u.uid, u.uid) != 0) DieErrno(plan, "setresuid");
  } else {
    ReduceCapabilities(plan);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) DieErrno(plan, "no_new_privs");
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // the init's /proc entries stay closed

  std::vector<char*> argv;
  for (const auto& a : cmd.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : plan.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, plan.devnull, 0);
  posix_spawn_file_actions_adddup2(&fa, kShimStdoutFd, 1);
  posix_spawn_file_actions_adddup2(&fa, kShimStderrFd, 2);
  posix_spawn_file_actions_addfchdir_np(&fa, cwd_fd);
  posix_spawnattr_t attr;
  InitCleanSpawnAttr(&attr);
  short flags = 0;
  posix_spawnattr_getflags(&attr, &flags);
  posix_spawnattr_setflags(&attr, static_cast<short>(flags & ~POSIX_SPAWN_SETPGROUP));
  pid_t step = -1;
  int err = posix_spawn(&step, program.c_str(), &fa, &attr, argv.data(), envp.data());
  if (err != 0) {
    Die(plan, "cannot execute '" + program + "' in '" + cwd + "': " + ErrnoText(err));
  }
  close(cwd_fd);
  PutMessage(plan.report, 'S', "");

  int status = 0;
  for (;;) {
    int st = 0;
    pid_t r = waitpid(-1, &st, 0);
    if (r == step) {
      status = st;
      break;
    }
    if (r < 0 && errno != EINTR) break;
  }
  PutMessage(plan.report, 'X', Int32Payload(status));
  if (sb.private_pids) {
    // What the step left behind gets the same grace as in the shim; when the init exits
    // the kernel kills whatever is still there.
    (void)kill(-1, SIGTERM);
    (void)kill(-1, SIGCONT);
    auto end = std::chrono::steady_clock::now() + cmd.kill_grace;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    for (;;) {
      pid_t r = waitpid(-1, nullptr, WNOHANG | __WALL);
      if (r > 0) continue;
      if (r < 0 && errno != EINTR) break;  // ECHILD: nothing left
      auto left = end - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) break;
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(left);
      timespec ts{secs.count(),
                  std::chrono::duration_cast<std::chrono::nanoseconds>(left - secs).count()};
      (void)sigtimedwait(&chld, nullptr, &ts);
    }
  }
  _exit(0);
}

// The setup process: joins the cgroup, creates the namespaces, forks the init.
[[noreturn]] void SetupProcess(const Plan& plan) {
  for (const auto& file : plan.cgroup_procs) {
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) DieErrno(plan, "cannot join the cgroup " + file);
    close(fd);
  }
  const SandboxSpec& sb = *plan.cmd->sandbox;
  int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
  if (sb.private_pids) flags |= CLONE_NEWPID;
  if (sb.no_network) flags |= CLONE_NEWNET;
  if (unshare(flags) != 0) {
    Die(plan, "sandbox: cannot create namespaces (unshare): " + ErrnoText(errno) +
                  "; the sandbox needs the server to run as root. Run it as root, or opt this "
                  "runbook out with `sandbox: off`");
  }
  pid_t init = fork();
  if (init < 0) DieErrno(plan, "fork");
  if (init == 0) JailInit(plan);
  _exit(0);
}

Result<User> ResolveUser(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int err = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    return Error(ErrorCode::kFailedPrecondition, "sandbox.run_as: no user \"{}\" on this host{}",
                 name, err != 0 ? " (" + ErrnoText(err) + ")" : "");
  }
  User u;
  u.uid = pw.pw_uid;
  u.gid = pw.pw_gid;
  u.name = name;
  u.home = pw.pw_dir != nullptr ? pw.pw_dir : "/";
  int n = 64;
  u.groups.resize(static_cast<size_t>(n));
  if (getgrouplist(name.c_str(), u.gid, u.groups.data(), &n) < 0) {
    u.groups.resize(static_cast<size_t>(n));
    if (getgrouplist(name.c_str(), u.gid, u.groups.data(), &n) < 0) n = 0;
  }
  u.groups.resize(static_cast<size_t>(std::max(n, 0)));
  return u;
}

std::string Describe(const Plan& plan, const std::vector<std::string>& hidden,
                     const std::string& cgroup_what) {
  const SandboxSpec& sb = *plan.cmd->sandbox;
  std::vector<std::string> parts;
  parts.push_back(fmt::format("namespaces: mount, {}IPC, UTS{}", sb.private_pids ? "PID, " : "",
                              sb.no_network ? ", network (no network)" : ""));
  parts.push_back("file system read-only, private /tmp and /dev");
  if (!hidden.empty()) parts.push_back(fmt::format("hidden: {}", fmt::join(hidden, ", ")));
  if (!plan.writable.empty()) {
    parts.push_back(fmt::format("writable: {}", fmt::join(plan.writable, ", ")));
  }
  parts.push_back(
      plan.user ? fmt::format("user {} (uid {}), no capabilities", plan.user->name, plan.user->uid)
                : "root with reduced capabilities");
  parts.push_back("no_new_privs");
  std::vector<std::string> limits;
  if (sb.cpu_seconds != 0) limits.push_back(fmt::format("CPU time {}s", sb.cpu_seconds));
  if (sb.open_files != 0) limits.push_back(fmt::format("open files {}", sb.open_files));
  if (sb.file_size_bytes != 0) {
    limits.push_back(fmt::format("file size {}", FormatBytes(sb.file_size_bytes)));
  }
  if (plan.user && sb.max_processes != 0) {
    limits.push_back(fmt::format("processes {}", sb.max_processes));
  }
  if (!limits.empty()) parts.push_back(fmt::format("rlimits: {}", fmt::join(limits, ", ")));
  parts.push_back(cgroup_what);
  return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace

Result<JailedStep> StartJailed(const StepCommand& cmd, int devnull_fd, StepCgroup& cgroup) {
  const SandboxSpec& sb = *cmd.sandbox;
  Plan plan;
  plan.cmd = &cmd;
  plan.devnull = devnull_fd;
  for (const auto& w : sb.writable) {
    char* real = realpath(w.c_str(), nullptr);
    if (real == nullptr) {
      return Error(ErrorCode::kFailedPrecondition,
                   "sandbox: the writable path {} cannot be used: {}", w, ErrnoText(errno));
    }
    plan.writable.emplace_back(real);
    free(real);
  }
  std::vector<std::string> hidden;
  std::vector<std::string> absent;  // every hidden path that exists, for the description
  for (const auto& h : sb.hidden) {
    char* real = realpath(h.c_str(), nullptr);
    if (real == nullptr) continue;  // what does not exist needs no hiding
    std::string path = real;
    free(real);
    if (path == "/") {
      return Error(ErrorCode::kFailedPrecondition, "sandbox: cannot hide / (from {})", h);
    }
    absent.push_back(path);
    if (!IsUnder(path, "/tmp")) hidden.push_back(std::move(path));  // /tmp is private anyway
  }
  std::sort(hidden.begin(), hidden.end());
  hidden.erase(std::unique(hidden.begin(), hidden.end()), hidden.end());
  std::erase_if(hidden, [&](const std::string& h) {
    return std::any_of(hidden.begin(), hidden.end(),
                       [&](const std::string& o) { return o != h && IsUnder(h, o); });
  });
  // Only the first writable path (the run's work directory) may lie inside a hidden one.
  for (size_t i = 1; i < plan.writable.size(); ++i) {
    for (const auto& h : hidden) {
      if (IsUnder(plan.writable[i], h)) {
        return Error(ErrorCode::kFailedPrecondition,
                     "sandbox: the writable path {} is inside {}, which steps may not see",
                     plan.writable[i], h);
      }
    }
  }
  std::map<std::string, Skeleton> skeletons;
  for (const auto& h : hidden) {
    for (const auto& w : plan.writable) {
      if (IsUnder(h, w) && h != w) {
        return Error(ErrorCode::kFailedPrecondition,
                     "sandbox: the writable path {} contains {}, which steps may not see; name "
                     "a narrower path",
                     w, h);
      }
    }
    Skeleton& sk = skeletons[Parent(h)];
    sk.dir = Parent(h);
    std::string name = h.substr(h.rfind('/') + 1);
    sk.hidden.insert(name);
    for (const auto& w : plan.writable) {
      if (IsUnder(w, h)) sk.keep.insert(name);
    }
  }
  for (auto& [dir, sk] : skeletons) plan.skeletons.push_back(std::move(sk));
  std::sort(plan.skeletons.begin(), plan.skeletons.end(),
            [](const Skeleton& a, const Skeleton& b) { return a.dir.size() < b.dir.size(); });

  plan.env = cmd.env;
  if (!sb.run_as.empty()) {
    AUTOMAN_ASSIGN_OR_RETURN(User user, ResolveUser(sb.run_as));
    for (auto& e : plan.env) {
      if (e.rfind("HOME=", 0) == 0) e = "HOME=" + user.home;
      if (e.rfind("USER=", 0) == 0) e = "USER=" + user.name;
      if (e.rfind("LOGNAME=", 0) == 0) e = "LOGNAME=" + user.name;
    }
    plan.user = std::move(user);
  }
  std::string cgroup_what;
  plan.cgroup_procs = cgroup.Prepare(sb.memory_bytes, sb.max_processes, &cgroup_what);
  std::sort(absent.begin(), absent.end());
  absent.erase(std::unique(absent.begin(), absent.end()), absent.end());
  std::string protections = Describe(plan, absent, cgroup_what);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return Error(ErrorCode::kUnavailable, "sandbox: pipe: {}", ErrnoText(errno));
  }
  pid_t setup = fork();
  if (setup < 0) {
    int e = errno;
    close(fds[0]);
    close(fds[1]);
    return Error(ErrorCode::kUnavailable, "sandbox: fork: {}", ErrnoText(e));
  }
  if (setup == 0) {
    close(fds[0]);
    plan.report = fds[1];
    SetupProcess(plan);
  }
  close(fds[1]);
  auto fail = [&](std::string why) -> Result<JailedStep> {
    close(fds[0]);
    return Error(ErrorCode::kFailedPrecondition, "{}", why);
  };
  // 'P' then 'S' from the init, or 'E' from either process.
  char tag = 0;
  std::string payload;
  pid_t init = -1;
  for (char expected : {'P', 'S'}) {
    if (!GetMessage(fds[0], &tag, &payload)) {
      return fail("sandbox: the jail's setup ended before the step started");
    }
    if (tag == 'E') return fail(payload);
    if (tag != expected || (tag == 'P' && payload.size() != 4)) {
      return fail("sandbox: the jail sent a malformed report");
    }
    if (tag == 'P') std::memcpy(&init, payload.data(), 4);
  }
  (void)fcntl(fds[0], F_SETFL, O_NONBLOCK);
  return JailedStep{init, fds[0], std::move(protections)};
}

std::optional<int> ReadJailedStatus(int report_fd) {
  char tag = 0;
  std::string payload;
  // The init wrote everything before it exited, so a non-blocking read finds it whole.
  while (GetMessage(report_fd, &tag, &payload)) {
    if (tag == 'X' && payload.size() == 4) {
      int32_t status = 0;
      std::memcpy(&status, payload.data(), 4);
      return status;
    }
  }
  return std::nullopt;
}

}  // namespace automan::sandbox_detail
