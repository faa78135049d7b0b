// StartJailed: how the shim starts a sandboxed step (StepCommand::sandbox). Internal to
// src/sandbox; README.md "The sandbox" describes what a step sees.
//
//   shim ── fork ──> setup process: joins the step's cgroup, unshare(mount, IPC, UTS[, PID]
//                    [, network]) ── fork ──> jail init (PID 1 of the new PID namespace):
//                    exits                       reports its pid, builds the file system view,
//                    pivot_root,
//                                                 lowers its privileges, posix_spawns the
//                                                 step, reaps everything, reports the
//                                                 step's wait status, exits
//
// The jail init is the step's main process as far as the shim is concerned (it leads the
// step's process group), so the shim's timeouts, cancellation and tree termination work
// unchanged. The init ignores SIGTERM (the step's processes get it); when it is SIGKILLed
// the kernel kills the whole PID namespace. When the step's main process exits, the init
// sends SIGTERM to what is left in the namespace, waits up to the kill grace, and exits,
// which kills the rest: nothing a sandboxed step starts outlives it.
//
// The report pipe carries, from the init to the shim, in order: 'P' + the init's pid, 'S'
// (the step started) and at the end 'X' + the step's wait status; the setup process or the
// init sends 'E' + why instead when setting up fails. Messages are a tag byte, a u32
// length and the payload.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/status.h"
#include "sandbox/cgroup.h"
#include "sandbox/supervisor.h"

namespace automan::sandbox_detail {

struct JailedStep {
  pid_t pid = -1;           // the jail's init: the step's main process and process group
  int report_fd = -1;       // read end of the report pipe (non-blocking); the caller closes it
  std::string protections;  // what is enforced, in words, for the step's record
};

// Starts `cmd` (cmd.sandbox must be set) with stdin on `devnull_fd` and stdout/stderr on
// the shim's output pipes. A non-OK result carries the text of a kSpawnFailed report.
Result<JailedStep> StartJailed(const StepCommand& cmd, int devnull_fd, StepCgroup& cgroup);

// After the init has been reaped: the wait status of the step's main process as the init
// reported it, or nullopt if the init was killed before it could report.
std::optional<int> ReadJailedStatus(int report_fd);

}  // namespace automan::sandbox_detail
