// SupervisorPool: ready-to-use RunSupervisors, so that a run does not pay for starting a
// shim on top of its steps.
//
// Starting a shim execs the automan binary with all its shared libraries: milliseconds,
// several times the cost of a short step (see README.md for measurements). A shim holds no
// per-run state between steps (the step's cwd is applied in the child, the whole tree is
// gone before a step is reported), so the engine can take one from the pool for a run and
// give it back afterwards; it is then reused if it is still healthy. Prewarm() starts some
// ahead of time, e.g. at server start.
//
// When runs get per-run isolation (namespaces, cgroups) this is the place that decides
// which shims may be shared.
//
// Thread-safe: every method may be called from any thread. Starting and destroying shims
// happens outside the lock.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "common/status.h"
#include "sandbox/supervisor.h"

namespace automan {

class SupervisorPool {
 public:
  struct Options {
    SupervisorOptions supervisor;
    size_t max_idle = 4;  // idle supervisors kept for reuse; more are destroyed on Release
  };

  explicit SupervisorPool(Options options);
  SupervisorPool() : SupervisorPool(Options{}) {}
  ~SupervisorPool();  // destroys the idle supervisors (their shims exit)
  SupervisorPool(const SupervisorPool&) = delete;
  SupervisorPool& operator=(const SupervisorPool&) = delete;

  // Starts supervisors until `n` (at most max_idle) are idle. kUnavailable as Start().
  Status Prewarm(size_t n);

  // A healthy idle supervisor if there is one, else a newly started one (kUnavailable as
  // RunSupervisor::Start()).
  Result<std::unique_ptr<RunSupervisor>> Acquire();

  // Gives a supervisor back after its run. Kept if IsHealthy() and fewer than max_idle are
  // idle; destroyed otherwise. Null is ignored.
  void Release(std::unique_ptr<RunSupervisor> supervisor);

  size_t idle() const;

 private:
  Options options_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<RunSupervisor>> idle_;
};

}  // namespace automan
