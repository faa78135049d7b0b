// Property test of the queue: random sequences of operations run against the real Queue on
// a real store and against a small in-memory reference model of the queue's state machine
// (src/queue/queue.h). After every operation the store must agree with the model (status,
// attempt, fence, lease, cancel flag, delays, who got which run) and the invariants hold:
//   - a RUNNING run always has a lease (owner, expiry); nothing else has an expiry;
//   - a terminal run never changes again;
//   - a stale fence never wins (Finish and Heartbeat with an old view are refused);
//   - a key never has more RUNNING holders than its limit, rate tokens are respected;
//   - a claim takes the best eligible runs: priority, then enqueue order.
//
// Every sequence starts from a fresh store and a seed; a failure prints the seed, the
// operations so far and how to replay just that sequence:
//   AUTOMAN_QUEUE_MODEL_SEED=<seed> AUTOMAN_QUEUE_MODEL_SEQUENCES=1 <test binary>
//     --gtest_filter='*QueueModelTest*'
// AUTOMAN_QUEUE_MODEL_SEQUENCES=N runs N sequences per backend instead of the default.
#include <fmt/format.h>
#include <gmock/gmock.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "queue_conformance.h"
#include "runbook/backoff.h"

namespace automan::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr milliseconds kLease{30'000};
constexpr double kTokenEpsilon = 1e-9;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

// The runbooks the sequences enqueue: keys that overlap, a lock, a rate, retry policies.
std::vector<Runbook> ModelRunbooks() {
  const char* yamls[] = {
      "id: free\nsteps:\n  - id: s\n    shell: \"true\"\n",
      "id: retry\nretries: {count: 2, delay: 4s, no_retry_exit_codes: [75]}\n"
      "steps:\n  - id: s\n    shell: \"true\"\n",
      "id: lock\nconcurrency: {key: lock, limit: 1}\nretries: {count: 3, delay: 2s}\n"
      "steps:\n  - id: s\n    shell: \"true\"\n",
      "id: pair\nconcurrency: {key: pair, limit: 2}\nsteps:\n  - id: s\n    shell: \"true\"\n",
      // 2 starts per 8 s: with whole-second clock steps every token count is exact.
      "id: rated\nconcurrency: {key: rated, rate: 2/8s}\n"
      "retries: {count: 1, backoff: exponential, delay: 1s}\n"
      "steps:\n  - id: s\n    shell: \"true\"\n",
      "id: both\nconcurrency: [{key: lock, limit: 1}, {key: pair, limit: 2}]\n"
      "steps:\n  - id: s\n    shell: \"true\"\n",
  };
  std::vector<Runbook> out;
  for (const char* y : yamls) out.push_back(ParseOrFail(y));
  return out;
}

struct ModelRun {
  std::string id;
  size_t rb = 0;
  int64_t seq = 0;  // enqueue order
  int priority = 0;
  Timestamp created_at{};
  std::optional<std::string> idempotency_key;
  RunStatus status = RunStatus::kPending;
  int attempt = 0;
  int max_attempts = 0;
  int64_t fence = 0;
  std::optional<Timestamp> not_before;
  std::optional<Timestamp> finished_at;
  std::string lease_owner;  // compared while RUNNING
  std::optional<Timestamp> lease_expires_at;
  bool cancel_requested = false;
  std::vector<RunStatus> attempts;  // status of each attempt row
};

struct Bucket {
  double tokens = 0;
  int64_t refilled_at_us = 0;
};

// How often the interesting paths ran, summed over the sequences (printed, so that a
// change that starves a path shows).
struct Coverage {
  std::map<std::string, int64_t> n;
  void Add(const std::string& what) { n[what]++; }
  std::string ToString() const {
    std::string out;
    for (const auto& [what, count] : n) out += fmt::format(" {}={}", what, count);
    return out;
  }
};

class Sequence {
 public:
  Sequence(Store& store, const std::vector<Runbook>& runbooks, uint64_t seed, Coverage& cov)
      : cov_(cov),
        store_(store),
        runbooks_(runbooks),
        clock_(QueueEpoch()),
        queue_(store, clock_, QueueOptions{.lease = kLease}),
        rng_(seed) {}

  // Runs `ops` random operations; returns "" or what went wrong.
  std::string Drive(int ops) {
    for (int i = 0; i < ops && failure_.empty(); ++i) {
      Step();
      if (failure_.empty()) Compare();
    }
    if (failure_.empty()) CompareAttempts();
    if (failure_.empty()) Drain();
    return failure_.empty() ? "" : failure_ + "\noperations:\n" + log_.str();
  }

 private:
  template <typename... Args>
  void Fail(fmt::format_string<Args...> f, Args&&... args) {
    if (failure_.empty()) failure_ = fmt::format(f, std::forward<Args>(args)...);
  }
  int Rand(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Rand(1, 100) <= percent; }
  int64_t Offset(Timestamp t) const {
    return std::chrono::duration_cast<milliseconds>(t - QueueEpoch()).count();
  }

  void Step() {
    const int dice = Rand(1, 100);
    if (dice <= 22) {
      Enqueue();
    } else if (dice <= 42) {
      Claim();
    } else if (dice <= 52) {
      Heartbeat();
    } else if (dice <= 66) {
      Advance();
    } else if (dice <= 84) {
      Finish();
    } else if (dice <= 90) {
      Cancel();
    } else if (dice <= 97) {
      Rescue();
    } else {
      FinishAgain();
    }
  }

  // ---- operations

  void Enqueue() {
    const size_t rb = static_cast<size_t>(Rand(0, static_cast<int>(runbooks_.size()) - 1));
    EnqueueRequest r;
    r.runbook = &runbooks_[rb];
    r.triggered_by = "model";
    static constexpr int kPriorities[] = {-1, 0, 0, 0, 1, 2};
    r.priority = kPriorities[Rand(0, 5)];
    if (Chance(25)) r.not_before = clock_.Now() + seconds(Rand(1, 20));
    if (Chance(10)) r.idempotency_key = Chance(50) ? "k1" : "k2";
    if (Chance(15)) r.max_attempts = Rand(1, 4);
    log_ << "enqueue " << runbooks_[rb].id << " p" << r.priority << (r.not_before ? " delay" : "")
         << (r.idempotency_key ? " " + *r.idempotency_key : "")
         << (r.max_attempts ? " max" + std::to_string(*r.max_attempts) : "");
    auto e = queue_.Enqueue(r);
    if (!e.ok()) return Fail("enqueue failed: {}", e.status().ToString());
    log_ << " -> " << Short(e->run.id) << "\n";
    if (r.idempotency_key) {
      const ModelRun* existing = nullptr;
      for (const auto& [id, m] : runs_) {
        if (m.idempotency_key == r.idempotency_key && (!existing || m.seq > existing->seq)) {
          existing = &m;
        }
      }
      if (existing != nullptr) {
        cov_.Add("idempotent-hit");
        if (e->created || e->run.id != existing->id) {
          Fail("idempotency key {} created={} run {}, expected run {}", *r.idempotency_key,
               e->created, e->run.id, existing->id);
        }
        return;
      }
    }
    if (!e->created) return Fail("enqueue without a known key returned created=false");
    if (runs_.contains(e->run.id)) return Fail("enqueue reused id {}", e->run.id);
    ModelRun m;
    m.id = e->run.id;
    m.rb = rb;
    m.seq = next_seq_++;
    m.priority = r.priority;
    m.created_at = clock_.Now();
    m.idempotency_key = r.idempotency_key;
    m.max_attempts = r.max_attempts.value_or(
        std::max(3, 1 + (runbooks_[rb].retries ? runbooks_[rb].retries->count : 0)));
    m.not_before = r.not_before;
    runs_[m.id] = m;
  }

  int Holders(const std::string& key) const {
    int n = 0;
    for (const auto& [id, m] : runs_) {
      if (m.status != RunStatus::kRunning) continue;
      for (const ConcurrencyLimit& k : runbooks_[m.rb].concurrency) n += k.key == key;
    }
    return n;
  }

  double Tokens(const ConcurrencyLimit& k, int64_t now_us) const {
    auto it = buckets_.find(k.key);
    if (it == buckets_.end()) return k.rate_count;
    const int64_t elapsed = std::max<int64_t>(0, now_us - it->second.refilled_at_us);
    const double refill = (static_cast<double>(elapsed) * 1.0 * k.rate_count) /
                          (static_cast<double>(k.rate_per.count()) * 1000.0);
    return std::min<double>(k.rate_count, it->second.tokens + refill);
  }

  bool KeysAllow(const ModelRun& m, int64_t now_us) const {
    for (const ConcurrencyLimit& k : runbooks_[m.rb].concurrency) {
      if (Holders(k.key) >= k.limit) return false;
      if (k.rate_count > 0 && Tokens(k, now_us) < 1.0 - kTokenEpsilon) return false;
    }
    return true;
  }

  void Claim() {
    const std::string owner = "o" + std::to_string(Rand(1, 3));
    const int max = Rand(1, 3);
    const Timestamp now = clock_.Now();
    const int64_t now_us = ToMicros(now);
    // ListClaimable: the best `max` eligible runs.
    std::vector<ModelRun*> eligible;
    for (auto& [id, m] : runs_) {
      if (m.status == RunStatus::kPending && !m.cancel_requested &&
          (!m.not_before || *m.not_before <= now) && KeysAllow(m, now_us)) {
        eligible.push_back(&m);
      }
    }
    std::sort(eligible.begin(), eligible.end(), [](const ModelRun* a, const ModelRun* b) {
      return a->priority != b->priority ? a->priority > b->priority : a->seq < b->seq;
    });
    if (eligible.size() > static_cast<size_t>(max)) eligible.resize(max);
    // AcquireSlots, one candidate after the other (an earlier one may fill a key).
    std::vector<std::string> expected;
    for (ModelRun* m : eligible) {
      if (!KeysAllow(*m, now_us)) continue;
      for (const ConcurrencyLimit& k : runbooks_[m->rb].concurrency) {
        if (k.rate_count > 0) buckets_[k.key] = {std::max(0.0, Tokens(k, now_us) - 1.0), now_us};
      }
      m->status = RunStatus::kRunning;
      m->attempt += 1;
      m->fence += 1;
      m->lease_owner = owner;
      m->lease_expires_at = now + kLease;
      m->attempts.push_back(RunStatus::kRunning);
      expected.push_back(m->id);
      cov_.Add(m->attempt > 1 ? "claimed-again" : "claimed");
    }
    log_ << "claim " << owner << " " << max;
    auto got = queue_.Claim(owner, max);
    if (!got.ok()) return Fail("claim failed: {}", got.status().ToString());
    std::vector<std::string> ids;
    for (const Run& r : *got) {
      ids.push_back(r.id);
      views_[owner].push_back(r);
      log_ << " " << Short(r.id);
    }
    log_ << "\n";
    if (ids != expected) {
      Fail("claim by {} of {} took [{}], the model expected [{}]", owner, max, fmt::join(ids, ", "),
           fmt::join(expected, ", "));
    }
  }

  void Heartbeat() {
    const std::string owner = "o" + std::to_string(Rand(1, 3));
    std::vector<Run>& held = views_[owner];
    if (held.empty()) return;
    std::vector<LeaseRef> leases;
    std::set<std::string> want_lost, want_cancel;
    for (const Run& v : held) {
      leases.push_back({v.id, v.fence});
      ModelRun& m = runs_.at(v.id);
      if (m.fence == v.fence) {
        m.lease_expires_at = clock_.Now() + kLease;
        if (m.cancel_requested) want_cancel.insert(v.id);
      } else {
        want_lost.insert(v.id);
        cov_.Add("heartbeat-lost");
      }
    }
    log_ << "heartbeat " << owner << " (" << leases.size() << " leases)\n";
    auto r = queue_.Heartbeat(leases);
    if (!r.ok()) return Fail("heartbeat failed: {}", r.status().ToString());
    std::set<std::string> lost(r->lost.begin(), r->lost.end());
    std::set<std::string> cancel(r->cancel_requested.begin(), r->cancel_requested.end());
    if (lost != want_lost) {
      Fail("heartbeat of {} lost [{}], the model expected [{}]", owner, fmt::join(lost, ", "),
           fmt::join(want_lost, ", "));
    }
    if (cancel != want_cancel) {
      Fail("heartbeat of {} reported cancel [{}], the model expected [{}]", owner,
           fmt::join(cancel, ", "), fmt::join(want_cancel, ", "));
    }
    // The owner stops working on what it lost.
    std::erase_if(held, [&](const Run& v) { return lost.contains(v.id); });
  }

  void Advance() {
    const int s = Chance(20) ? Rand(31, 45) : Rand(1, 6);
    clock_.Advance(seconds(s));
    log_ << "advance " << s << "s (t=" << Offset(clock_.Now()) / 1000 << "s)\n";
  }

  // Finish of a run this owner holds, with its possibly stale view.
  void Finish() {
    const std::string owner = "o" + std::to_string(Rand(1, 3));
    std::vector<Run>& held = views_[owner];
    if (held.empty()) return;
    const size_t pick = static_cast<size_t>(Rand(0, static_cast<int>(held.size()) - 1));
    Run view = held[pick];
    held.erase(held.begin() + static_cast<std::ptrdiff_t>(pick));

    static constexpr RunStatus kOutcomes[] = {RunStatus::kSuccess, RunStatus::kSuccess,
                                              RunStatus::kFailed,  RunStatus::kFailed,
                                              RunStatus::kTimeout, RunStatus::kCancelled};
    AttemptOutcome o;
    o.status = kOutcomes[Rand(0, 5)];
    if (o.status == RunStatus::kFailed) o.exit_code = Chance(25) ? 75 : 1;
    if (o.status != RunStatus::kSuccess) o.error = "model " + std::string(ToString(o.status));
    const std::optional<RetryPolicy>& policy = runbooks_.at(runs_.at(view.id).rb).retries;
    const bool keep = Chance(15);
    log_ << "finish " << owner << " " << Short(view.id) << " fence " << view.fence << " attempt "
         << view.attempt << " " << ToString(o.status) << (keep ? " keep-lease" : "");

    ModelRun& m = runs_.at(view.id);
    auto r = queue_.Finish(view, o, policy, Queue::FinishOptions{.keep_lease_for_retry = keep});
    log_ << " -> " << (r.ok() ? std::string(ToString(r->status)) : r.status().ToString()) << "\n";
    const bool current =
        m.fence == view.fence && m.status == RunStatus::kRunning && m.attempt == view.attempt;
    if (!current) {
      cov_.Add("finish-stale");
      // A stale view never wins.
      if (r.ok() || r.status().code() != ErrorCode::kAborted) {
        Fail(
            "finish of run {} with a stale view (fence {}, attempt {}; the run is {} at fence "
            "{} attempt {}) was not refused with kAborted: {}",
            view.id, view.fence, view.attempt, ToString(m.status), m.fence, m.attempt,
            r.ok() ? "OK" : r.status().ToString());
      }
      return;
    }
    if (!r.ok()) return Fail("finish of run {} failed: {}", view.id, r.status().ToString());
    spent_[owner].push_back(view);

    const Timestamp now = clock_.Now();
    m.attempts.at(static_cast<size_t>(m.attempt - 1)) = o.status;
    const bool failed = o.status == RunStatus::kFailed || o.status == RunStatus::kTimeout;
    const bool retryable =
        failed && policy &&
        !(o.exit_code && std::count(policy->no_retry_exit_codes.begin(),
                                    policy->no_retry_exit_codes.end(), *o.exit_code) > 0);
    // Failures are retried `retries.count` times at most, within the attempt budget that
    // rescues share.
    const bool attempts_left = retryable && m.attempt < std::min(m.max_attempts, 1 + policy->count);
    if (attempts_left && !m.cancel_requested) {
      // Backoff with equal jitter: between half the delay and the delay.
      const milliseconds d = BackoffDelay(*policy, m.attempt);
      if (!r->not_before || *r->not_before < now + (d - d / 2) || *r->not_before > now + d) {
        return Fail("retry of run {} after attempt {}: not_before {} is outside [{}, {}] ms",
                    view.id, m.attempt, r->not_before ? Offset(*r->not_before) : -1,
                    Offset(now + (d - d / 2)), Offset(now + d));
      }
      m.not_before = r->not_before;
      cov_.Add(keep ? "retry-keep-lease" : "retry");
      if (keep) {
        m.attempt += 1;
        m.attempts.push_back(RunStatus::kRunning);
        m.lease_expires_at = *m.not_before + kLease;
        held.push_back(*r);  // the owner goes on with the next attempt
      } else {
        m.status = RunStatus::kPending;
        m.lease_owner.clear();
        m.lease_expires_at.reset();
      }
    } else {
      if (attempts_left && m.cancel_requested) {
        m.status = RunStatus::kCancelled;  // never retried once cancellation was asked for
        cov_.Add("cancelled-instead-of-retry");
      } else {
        m.status = retryable ? RunStatus::kDead : o.status;
      }
      cov_.Add("finished-" + std::string(automan::ToString(m.status)));
      m.finished_at = now;
      m.lease_expires_at.reset();
    }
    if (r->status != m.status || r->attempt != m.attempt) {
      Fail("finish of run {} returned {} attempt {}, the model expected {} attempt {}", view.id,
           ToString(r->status), r->attempt, ToString(m.status), m.attempt);
    }
  }

  // A second completion of an attempt that was already recorded changes nothing.
  void FinishAgain() {
    const std::string owner = "o" + std::to_string(Rand(1, 3));
    std::vector<Run>& spent = spent_[owner];
    if (spent.empty()) return;
    const Run view = spent[static_cast<size_t>(Rand(0, static_cast<int>(spent.size()) - 1))];
    AttemptOutcome o;
    o.status = Chance(50) ? RunStatus::kSuccess : RunStatus::kFailed;
    cov_.Add("finish-again");
    log_ << "finish-again " << owner << " " << Short(view.id) << " attempt " << view.attempt;
    auto r = queue_.Finish(view, o, runbooks_.at(runs_.at(view.id).rb).retries);
    log_ << " -> " << (r.ok() ? std::string(ToString(r->status)) : r.status().ToString()) << "\n";
    const ModelRun& m = runs_.at(view.id);
    if (m.fence == view.fence && m.status == RunStatus::kRunning && m.attempt == view.attempt) {
      return;  // cannot happen: spent views are never current (checked by Compare)
    }
    if (r.ok() || r.status().code() != ErrorCode::kAborted) {
      Fail("a second finish of run {} attempt {} was not refused with kAborted: {}", view.id,
           view.attempt, r.ok() ? "OK" : r.status().ToString());
    }
  }

  void Cancel() {
    if (runs_.empty()) return;
    auto it = runs_.begin();
    std::advance(it, Rand(0, static_cast<int>(runs_.size()) - 1));
    ModelRun& m = it->second;
    log_ << "cancel " << Short(m.id) << " (" << ToString(m.status) << ")";
    auto r = queue_.Cancel(m.id);
    log_ << " -> " << (r.ok() ? std::string(ToString(r->status)) : r.status().ToString()) << "\n";
    if (!r.ok()) return Fail("cancel of run {} failed: {}", m.id, r.status().ToString());
    if (m.status == RunStatus::kPending) {
      m.status = RunStatus::kCancelled;
      m.finished_at = clock_.Now();
    } else if (m.status == RunStatus::kRunning) {
      m.cancel_requested = true;
      cov_.Add("cancel-running");
    }
    if (r->status != m.status) {
      Fail("cancel of run {} returned {}, the model expected {}", m.id, ToString(r->status),
           ToString(m.status));
    }
  }

  void Rescue() {
    const Timestamp now = clock_.Now();
    int want = 0;
    for (auto& [id, m] : runs_) {
      if (m.status != RunStatus::kRunning || !m.lease_expires_at || *m.lease_expires_at >= now) {
        continue;
      }
      ++want;
      cov_.Add("rescued");
      m.attempts.at(static_cast<size_t>(m.attempt - 1)) = RunStatus::kFailed;
      m.fence += 1;
      m.lease_expires_at.reset();
      if (m.cancel_requested) {
        m.status = RunStatus::kCancelled;
        m.finished_at = now;
      } else if (m.attempt < m.max_attempts) {
        m.status = RunStatus::kPending;
        m.not_before = now;
        m.lease_owner.clear();
      } else {
        m.status = RunStatus::kDead;
        m.finished_at = now;
      }
    }
    auto r = queue_.Rescue();
    log_ << "rescue -> " << (r.ok() ? std::to_string(*r) : r.status().ToString()) << "\n";
    if (!r.ok()) return Fail("rescue failed: {}", r.status().ToString());
    if (*r != want) Fail("rescue moved {} runs, the model expected {}", *r, want);
  }

  // ---- checks

  static std::string Short(const std::string& id) {
    return id.size() > 8 ? id.substr(id.size() - 8) : id;
  }

  void Compare() {
    std::vector<Run> stored;
    Status s = store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(stored, tx.ListRuns({.limit = 1000}));
      return Status::Ok();
    });
    if (!s.ok()) return Fail("listing runs failed: {}", s.ToString());
    if (stored.size() != runs_.size()) {
      return Fail("the store has {} runs, the model {}", stored.size(), runs_.size());
    }
    std::map<std::string, int> holders;
    for (const Run& r : stored) {
      auto it = runs_.find(r.id);
      if (it == runs_.end()) return Fail("the store has run {} the model never made", r.id);
      const ModelRun& m = it->second;
      auto mismatch = [&](std::string_view field, const std::string& got, const std::string& want) {
        Fail("run {} ({}): {} is {} in the store, {} in the model", r.id, runbooks_[m.rb].id, field,
             got, want);
      };
      auto ts = [&](const std::optional<Timestamp>& t) {
        return t ? std::to_string(Offset(*t)) + "ms" : std::string("unset");
      };
      if (r.status != m.status) {
        return mismatch("status", std::string(ToString(r.status)), std::string(ToString(m.status)));
      }
      if (r.attempt != m.attempt) {
        return mismatch("attempt", std::to_string(r.attempt), std::to_string(m.attempt));
      }
      if (r.fence != m.fence) {
        return mismatch("fence", std::to_string(r.fence), std::to_string(m.fence));
      }
      if (r.max_attempts != m.max_attempts) {
        return mismatch("max_attempts", std::to_string(r.max_attempts),
                        std::to_string(m.max_attempts));
      }
      if (r.priority != m.priority || r.created_at != m.created_at) {
        return mismatch("priority/created_at", std::to_string(r.priority),
                        std::to_string(m.priority));
      }
      if (r.cancel_requested != m.cancel_requested) {
        return mismatch("cancel_requested", std::to_string(r.cancel_requested),
                        std::to_string(m.cancel_requested));
      }
      if (r.not_before != m.not_before) {
        return mismatch("not_before", ts(r.not_before), ts(m.not_before));
      }
      if (r.lease_expires_at != m.lease_expires_at) {
        return mismatch("lease_expires_at", ts(r.lease_expires_at), ts(m.lease_expires_at));
      }
      if (IsTerminal(r.status) && r.finished_at != m.finished_at) {
        return mismatch("finished_at", ts(r.finished_at), ts(m.finished_at));
      }
      // Invariants.
      if (r.status == RunStatus::kRunning) {
        if (r.lease_owner != m.lease_owner)
          return mismatch("lease_owner", r.lease_owner, m.lease_owner);
        if (r.lease_owner.empty() || !r.lease_expires_at) {
          return Fail("run {} is RUNNING without a lease", r.id);
        }
        for (const ConcurrencyLimit& k : r.concurrency) holders[k.key]++;
      } else if (r.lease_expires_at) {
        return Fail("run {} is {} but has a lease expiry", r.id, ToString(r.status));
      }
      if (r.status == RunStatus::kDead && r.error.empty()) {
        return Fail("run {} is DEAD without a reason", r.id);
      }
      if (IsTerminal(r.status)) {
        auto [first, inserted] = terminal_.emplace(r.id, r);
        if (!inserted && first->second != r) {
          return Fail("run {} changed after it ended {}", r.id, ToString(first->second.status));
        }
      }
    }
    for (const auto& [key, n] : holders) {
      int limit = INT32_MAX;
      for (const Runbook& rb : runbooks_) {
        for (const ConcurrencyLimit& k : rb.concurrency) {
          if (k.key == key) limit = std::min(limit, k.limit);
        }
      }
      if (n > limit) return Fail("key {} has {} running holders, over its limit {}", key, n, limit);
    }
  }

  void CompareAttempts() {
    for (const auto& [id, m] : runs_) {
      std::vector<Attempt> attempts;
      Status s = store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
        AUTOMAN_ASSIGN_OR_RETURN(attempts, tx.ListAttempts(id));
        return Status::Ok();
      });
      if (!s.ok()) return Fail("listing attempts of {} failed: {}", id, s.ToString());
      std::vector<RunStatus> got;
      for (size_t i = 0; i < attempts.size(); ++i) {
        if (attempts[i].number != static_cast<int>(i) + 1) {
          return Fail("run {}: attempt rows are numbered {} at position {}", id, attempts[i].number,
                      i + 1);
        }
        got.push_back(attempts[i].status);
      }
      if (got != m.attempts) {
        std::vector<std::string_view> g, w;
        for (RunStatus st : got) g.push_back(ToString(st));
        for (RunStatus st : m.attempts) w.push_back(ToString(st));
        return Fail("run {}: attempts are [{}] in the store, [{}] in the model", id,
                    fmt::join(g, ", "), fmt::join(w, ", "));
      }
    }
  }

  // Every run ends once its workers are gone: cancel everything, let the leases expire.
  void Drain() {
    for (auto& [id, m] : runs_) {
      auto r = queue_.Cancel(id);
      if (!r.ok()) return Fail("drain: cancel of {} failed: {}", id, r.status().ToString());
    }
    clock_.Advance(kLease + seconds(60));  // past every lease, kept ones included
    auto moved = queue_.Rescue();
    if (!moved.ok()) return Fail("drain: rescue failed: {}", moved.status().ToString());
    auto counts = [&]() -> Result<std::map<RunStatus, int64_t>> {
      std::map<RunStatus, int64_t> out;
      AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
        AUTOMAN_ASSIGN_OR_RETURN(out, tx.CountRunsByStatus());
        return Status::Ok();
      }));
      return out;
    }();
    if (!counts.ok()) return Fail("drain: counting failed: {}", counts.status().ToString());
    for (const auto& [status, n] : *counts) {
      if (!IsTerminal(status) && n > 0) {
        Fail("drain: {} runs are still {} after cancelling everything and a rescue", n,
             ToString(status));
      }
    }
  }

  Coverage& cov_;
  Store& store_;
  const std::vector<Runbook>& runbooks_;
  SimulatedClock clock_;
  Queue queue_;
  std::mt19937_64 rng_;
  std::map<std::string, ModelRun> runs_;
  std::map<std::string, Bucket> buckets_;
  std::map<std::string, std::vector<Run>> views_;  // what each owner believes it holds
  std::map<std::string, std::vector<Run>> spent_;  // views whose attempt it finished
  std::map<std::string, Run> terminal_;            // first terminal record of each run
  int64_t next_seq_ = 0;
  std::ostringstream log_;
  std::string failure_;
};

TEST_P(QueueModelTest, StoreAgreesWithTheModel) {
  const ModelBackend& b = GetParam();
  const std::vector<Runbook> runbooks = ModelRunbooks();
  ASSERT_FALSE(HasFailure());
  const uint64_t base = EnvOr("AUTOMAN_QUEUE_MODEL_SEED", 20260329);
  const uint64_t sequences =
      EnvOr("AUTOMAN_QUEUE_MODEL_SEQUENCES", static_cast<uint64_t>(b.sequences));
  const auto start = std::chrono::steady_clock::now();
  Coverage cov;
  for (uint64_t i = 0; i < sequences; ++i) {
    const uint64_t seed = base + i;
    auto store = b.backend.open();
    ASSERT_OK(store);
    Sequence seq(**store, runbooks, seed, cov);
    std::string failure = seq.Drive(b.ops);
    if (!failure.empty()) {
      FAIL() << "sequence with seed " << seed << " (" << b.backend.name << "): " << failure
             << "replay: AUTOMAN_QUEUE_MODEL_SEED=" << seed
             << " AUTOMAN_QUEUE_MODEL_SEQUENCES=1 <binary> --gtest_filter='*QueueModelTest*'";
    }
  }
  std::printf(
      "[ model    ] %llu sequences x %d operations on %s in %.2f s (seeds %llu..%llu)\n"
      "[ model    ]%s\n",
      static_cast<unsigned long long>(sequences), b.ops, b.backend.name.c_str(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
      static_cast<unsigned long long>(base), static_cast<unsigned long long>(base + sequences - 1),
      cov.ToString().c_str());
}

}  // namespace
}  // namespace automan::testing
