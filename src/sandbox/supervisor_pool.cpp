#include "sandbox/supervisor_pool.h"

#include <algorithm>
#include <utility>

namespace automan {

SupervisorPool::SupervisorPool(Options options) : options_(std::move(options)) {}

SupervisorPool::~SupervisorPool() = default;

Status SupervisorPool::Prewarm(size_t n) {
  n = std::min(n, options_.max_idle);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (idle_.size() >= n) return Status::Ok();
    }
    AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<RunSupervisor> sup,
                             RunSupervisor::Start(options_.supervisor));
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(sup));
  }
}

Result<std::unique_ptr<RunSupervisor>> SupervisorPool::Acquire() {
  for (;;) {
    std::unique_ptr<RunSupervisor> sup;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (idle_.empty()) break;
      sup = std::move(idle_.back());
      idle_.pop_back();
    }
    // A shim may have died while idle (OOM killer, an operator's kill): skip it.
    if (sup->IsHealthy()) return sup;
  }
  return RunSupervisor::Start(options_.supervisor);
}

void SupervisorPool::Release(std::unique_ptr<RunSupervisor> supervisor) {
  if (supervisor == nullptr || !supervisor->IsHealthy()) return;  // destroyed here
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < options_.max_idle) {
      idle_.push_back(std::move(supervisor));
      return;
    }
  }
  supervisor.reset();  // outside the lock: this waits for the shim to exit
}

size_t SupervisorPool::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.size();
}

}  // namespace automan
