#include "sandbox/posix_util.h"

#include <signal.h>
#include <string.h>

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

}  // namespace automan::sandbox_detail
