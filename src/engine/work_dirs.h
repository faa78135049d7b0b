// WorkDirPool: the private scratch directories steps run in, reused between runs.
//
// Every run attempt gets an empty directory, mode 0700, as its steps' default cwd and as
// $AUTOMAN_WORK_DIR (step outputs are written there too). Creating and removing a directory
// costs about 0.1 ms on ext4 — more than a short step's own overhead — so directories are
// emptied and kept for the next run instead of deleted. A directory whose mode or type a
// step changed, or that cannot be emptied, is discarded rather than reused.
//
// Directories are named `w-XXXXXX` (mkdtemp) under the root, so several processes can
// share a root. Idle directories are removed when the pool is destroyed; a process that
// dies leaves its directories behind, and they are safe to delete when it is gone.
//
// Thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace automan {

class WorkDirPool {
 public:
  WorkDirPool(std::string root, size_t max_idle);
  ~WorkDirPool();
  WorkDirPool(const WorkDirPool&) = delete;
  WorkDirPool& operator=(const WorkDirPool&) = delete;

  // An empty private directory (absolute path). kUnavailable if none can be created.
  Result<std::string> Acquire();
  // Empties the directory and keeps it for reuse (or removes it).
  void Release(const std::string& dir);

  const std::string& root() const { return root_; }

 private:
  const std::string root_;
  const size_t max_idle_;
  std::mutex mu_;
  std::vector<std::string> idle_;
};

}  // namespace automan
