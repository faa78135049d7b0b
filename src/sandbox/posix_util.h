// Small POSIX helpers shared by the engine side and the shim: posix_spawn attributes for a
// new process group with a clean signal state. (Thread-safe errno text is
// automan::ErrnoText in common/status.h.)
//
// Thread-safe: no shared state.
#pragma once

#include <spawn.h>

#include <string>

#include "sandbox/supervisor.h"

namespace automan::sandbox_detail {

// Initialises `attr` (the caller destroys it) so that the child
//   - leads a new process group (POSIX_SPAWN_SETPGROUP, pgroup 0),
//   - starts with no signal blocked (POSIX_SPAWN_SETSIGMASK, empty mask),
//   - has every signal at its default disposition (POSIX_SPAWN_SETSIGDEF). glibc's
//     sigfillset leaves out its two internal real-time signals, which its posix_spawn then
//     sets to SIG_IGN in the child, and exec keeps ignored signals; they are added to the
//     default set by hand so the child really starts clean.
void InitCleanSpawnAttr(posix_spawnattr_t* attr);

// The program to execute for cmd.argv[0]: argv[0] itself when it contains a '/', else the
// first executable regular file in the *step's* PATH (default "/bin:/usr/bin"), as execvp
// would search but with the step's environment rather than ours; relative PATH entries are
// relative to `at` (the step's cwd, a directory descriptor, or AT_FDCWD). EACCES wins over
// ENOENT like execvp. On failure returns false with `*error` saying what was searched.
bool ResolveProgram(const StepCommand& cmd, int at, std::string* program, std::string* error);

}  // namespace automan::sandbox_detail
