// StepCgroup: the cgroup a supervisor's sandboxed steps run in, holding the memory and
// process limits of the step that runs. Internal to src/sandbox (the shim).
//
// One cgroup per shim, `automan-sbx-<shim pid>`, created beside the shim's own cgroup on
// first use and reused for each step (steps of a shim run one at a time; the cgroup is
// empty between them), removed when the shim exits. cgroup v1 (a `memory` and a `pids`
// hierarchy, as on these machines) and v2 (the unified hierarchy, when the memory and pids
// controllers are delegated to the shim's cgroup) are detected; a host with neither
// writable gives no cgroup, and the description says why. Left-over cgroups of shims that
// died are removed when the next one is created.
//
// Not thread-safe; the shim is single-threaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace automan::sandbox_detail {

class StepCgroup {
 public:
  StepCgroup() = default;
  ~StepCgroup();
  StepCgroup(const StepCgroup&) = delete;
  StepCgroup& operator=(const StepCgroup&) = delete;

  // Sets the limits for the next step (0: none). Returns the `cgroup.procs` files the
  // step's first process writes "0" into to join; empty when no cgroup is available.
  // `*what` describes the limits in force ("cgroup v1: memory 64 MiB, processes 32") or
  // why there are none.
  std::vector<std::string> Prepare(uint64_t memory_bytes, uint32_t max_processes,
                                   std::string* what);

  // How many times the kernel's OOM killer acted in the cgroup so far (0 without one).
  uint64_t OomKills() const;

 private:
  void Detect();

  bool detected_ = false;
  int version_ = 0;                   // 0: none, 1, 2
  std::string why_not_;               // when version_ == 0
  std::string memory_dir_;            // v1: in the memory hierarchy; v2: the cgroup
  std::string pids_dir_;              // v1: in the pids hierarchy; v2: the same as memory_dir_
  uint64_t memory_set_ = UINT64_MAX;  // the limits written last (UINT64_MAX: never)
  uint64_t pids_set_ = UINT64_MAX;
};

}  // namespace automan::sandbox_detail
