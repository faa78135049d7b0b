// ConnectionPool: the bounded set of database connections behind one Store, shared by the
// backends (SQLite, PostgreSQL).
//
// A thread borrows a connection for one transaction (Acquire) and gives it back (Release,
// usually through a PooledConnection). At most `max_open` connections exist at once; idle
// ones are reused most-recently-used first. A borrower that finds them all in use waits
// until its deadline, then gets kUnavailable naming the store. Connections are opened and
// destroyed outside the lock, since either may do I/O.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace automan::store_detail {

template <typename Conn>
class ConnectionPool {
 public:
  using Opener = std::function<Result<std::unique_ptr<Conn>>()>;

  // `describe` names the store in messages ("sqlite:/path", a redacted URL).
  ConnectionPool(int max_open, Opener open, std::string describe,
                 std::chrono::milliseconds busy_timeout)
      : max_open_(max_open),
        open_connection_(std::move(open)),
        describe_(std::move(describe)),
        busy_timeout_(busy_timeout) {}

  // Adds a connection opened outside the pool (e.g. the one that ran the migrations).
  void Adopt(std::unique_ptr<Conn> c) {
    std::lock_guard<std::mutex> lock(mu_);
    ++open_;
    idle_.push_back(std::move(c));
  }

  Result<std::unique_ptr<Conn>> Acquire(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (!idle_.empty()) {
        std::unique_ptr<Conn> c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      if (open_ < max_open_) {
        ++open_;
        lock.unlock();
        auto c = open_connection_();
        if (!c.ok()) {
          lock.lock();
          --open_;
          cv_.notify_one();
        }
        return c;
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
          open_ >= max_open_) {
        return Error(ErrorCode::kUnavailable,
                     "store {} is busy: all {} connections stayed in use for longer than the "
                     "busy timeout ({} ms)",
                     describe_, max_open_, busy_timeout_.count());
      }
    }
  }

  // Takes a borrowed connection back; `keep` false destroys it (a broken connection, or one
  // that could not end its transaction) and frees its slot.
  void Release(std::unique_ptr<Conn> c, bool keep) {
    if (!keep) c.reset();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (keep) {
        idle_.push_back(std::move(c));
      } else {
        --open_;
      }
    }
    cv_.notify_one();
  }

 private:
  const int max_open_;
  const Opener open_connection_;
  const std::string describe_;
  const std::chrono::milliseconds busy_timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;  // guarded by mu_
  int open_ = 0;                             // idle + borrowed; guarded by mu_
};

// A borrowed connection that goes back to its owner on every path, including exceptions
// thrown by a Transact callback. `Owner::Release(std::unique_ptr<Conn>)` ends any open
// transaction and decides whether the connection is kept.
template <typename Owner, typename Conn>
class PooledConnection {
 public:
  PooledConnection(Owner& owner, std::unique_ptr<Conn> c) : owner_(owner), c_(std::move(c)) {}
  ~PooledConnection() { owner_.Release(std::move(c_)); }
  PooledConnection(const PooledConnection&) = delete;
  PooledConnection& operator=(const PooledConnection&) = delete;
  Conn& operator*() { return *c_; }
  Conn* operator->() { return c_.get(); }

 private:
  Owner& owner_;
  std::unique_ptr<Conn> c_;
};

}  // namespace automan::store_detail
