// Finding and signalling the processes below a given process, by scanning /proc.
//
// Used by the shim to terminate a step's whole tree, including double-forked daemons that
// left the step's process group (setsid) but, thanks to PR_SET_CHILD_SUBREAPER, still
// descend from the shim. Each process is signalled through a pidfd opened after the scan
// and re-checked against the tree, so a pid recycled by an unrelated process between the
// scan and the signal is not hit.
//
// Thread-compatible; no state. Errors reading /proc for one process (it exited meanwhile)
// skip that process; the caller re-scans until nothing is left.
#pragma once

#include <sys/types.h>

#include <initializer_list>
#include <vector>

namespace automan::sandbox_detail {

struct ProcessEntry {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
};

// Every process visible in /proc (thread-group leaders), with parent and process group.
std::vector<ProcessEntry> ListProcesses();

// The entries of `all` whose chain of parents reaches `root` (root itself excluded).
std::vector<ProcessEntry> Descendants(pid_t root, const std::vector<ProcessEntry>& all);

// Reads pid, ppid and pgrp of one process from /proc/PID/stat; false if it is gone.
bool ReadProcessEntry(pid_t pid, ProcessEntry* out);

// Sends each of `signals` once to every current descendant of `root`: to the process
// group `pgid` (if > 0) as a whole when `group_known_alive` or when a descendant is still
// in it (a group id is only reused once the group is empty), and one by one to the
// descendants outside that group. Returns the number of descendants found.
size_t SignalDescendants(pid_t root, pid_t pgid, bool group_known_alive,
                         std::initializer_list<int> signals);

}  // namespace automan::sandbox_detail
