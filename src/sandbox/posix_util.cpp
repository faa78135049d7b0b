#include "sandbox/posix_util.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "common/status.h"

namespace automan::sandbox_detail {

void InitCleanSpawnAttr(posix_spawnattr_t* attr) {
  posix_spawnattr_init(attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(attr, &none);
  sigset_t all;
  sigfillset(&all);
#if defined(__GLIBC__) && defined(__SIGRTMIN)
  // Signals __SIGRTMIN .. SIGRTMIN-1 are glibc's own (SIGCANCEL, SIGSETXID); sigaddset
  // refuses them, so set their bits directly.
  constexpr int kWordBits = 8 * sizeof(all.__val[0]);
  for (int sig = __SIGRTMIN; sig < SIGRTMIN; ++sig) {
    all.__val[(sig - 1) / kWordBits] |= 1UL << ((sig - 1) % kWordBits);
  }
#endif
  posix_spawnattr_setsigdefault(attr, &all);
  posix_spawnattr_setpgroup(attr, 0);
  posix_spawnattr_setflags(attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

bool ResolveProgram(const StepCommand& cmd, int at, std::string* program, std::string* error) {
  *program = cmd.argv[0];
  if (program->find('/') != std::string::npos) return true;
  std::string_view path = "/bin:/usr/bin";  // glibc's execvp default without PATH
  for (const auto& e : cmd.env) {
    if (e.rfind("PATH=", 0) == 0) path = std::string_view(e).substr(5);
  }
  int first_error = ENOENT;
  for (size_t start = 0; start <= path.size();) {
    size_t colon = path.find(':', start);
    if (colon == std::string_view::npos) colon = path.size();
    std::string_view dir = path.substr(start, colon - start);
    start = colon + 1;
    std::string candidate =
        dir.empty() ? cmd.argv[0] : std::string(dir) + (dir.back() == '/' ? "" : "/") + cmd.argv[0];
    struct stat st;
    if (fstatat(at, candidate.c_str(), &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
    if (faccessat(at, candidate.c_str(), X_OK, AT_EACCESS) != 0) {
      first_error = EACCES;  // like execvp: keep looking, report EACCES if nothing runs
      continue;
    }
    *program = std::move(candidate);
    return true;
  }
  *error = "cannot execute '" + cmd.argv[0] + "': " + ErrnoText(first_error) +
           " (searched PATH=" + std::string(path) + ")";
  return false;
}

}  // namespace automan::sandbox_detail
