#include "queue/lease_keeper.h"

#include <fmt/format.h>

#include <cstdio>
#include <vector>

namespace automan {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

LeaseKeeper::LeaseKeeper(Queue& queue, Options options, Callback callback)
    : queue_(queue), options_(std::move(options)), callback_(std::move(callback)) {
  if (options_.heartbeat.count() <= 0) {
    options_.heartbeat = std::max(milliseconds(10), queue_.options().lease / 3);
  }
  if (options_.cancel_poll.count() <= 0) options_.cancel_poll = milliseconds(250);
  thread_ = std::thread([this] { Loop(); });
}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void LeaseKeeper::Add(const LeaseRef& lease) {
  std::lock_guard<std::mutex> lock(mu_);
  leases_[lease.run_id] = lease.fence;
}

void LeaseKeeper::Remove(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  leases_.erase(run_id);
  cancel_reported_.erase(run_id);
}

void LeaseKeeper::Loop() {
  auto next_heartbeat = steady_clock::now() + options_.heartbeat;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::min(options_.cancel_poll, options_.heartbeat), [&] { return stop_; });
    if (stop_) break;
    if (leases_.empty()) {
      next_heartbeat = steady_clock::now() + options_.heartbeat;
      continue;
    }
    const bool beat = steady_clock::now() >= next_heartbeat;
    std::vector<LeaseRef> leases;
    leases.reserve(leases_.size());
    for (const auto& [id, fence] : leases_) leases.push_back({id, fence});
    lock.unlock();

    std::vector<std::pair<std::string, Event>> events;
    if (beat) {
      next_heartbeat = steady_clock::now() + options_.heartbeat;
      auto r = queue_.Heartbeat(leases);
      if (!r.ok()) {
        // The next beat tries again; a lease outliving its renewals is rescued elsewhere
        // and the fence then stops this owner's writes.
        fmt::print(stderr, "automan: renewing {} lease(s) failed: {}\n", leases.size(),
                   r.status().ToString());
      } else {
        for (auto& id : r->lost) events.emplace_back(std::move(id), Event::kLost);
        for (auto& id : r->cancel_requested) {
          events.emplace_back(std::move(id), Event::kCancelRequested);
        }
      }
    } else if (!options_.owner.empty()) {
      std::vector<std::string> ids;
      Status s = queue_.store().Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
        AUTOMAN_ASSIGN_OR_RETURN(ids, tx.ListCancelRequested(options_.owner));
        return Status::Ok();
      });
      if (s.ok()) {
        for (auto& id : ids) events.emplace_back(std::move(id), Event::kCancelRequested);
      }
    }

    lock.lock();
    for (auto& [id, event] : events) {
      if (!leases_.contains(id)) continue;
      if (event == Event::kCancelRequested && !cancel_reported_.insert(id).second) continue;
      if (event == Event::kLost) leases_.erase(id);
      lock.unlock();
      callback_(id, event);
      lock.lock();
    }
  }
}

}  // namespace automan
