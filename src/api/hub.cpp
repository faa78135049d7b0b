#include "api/hub.h"

#include <fmt/format.h>

#include <algorithm>

#include "api/wire.h"
#include "common/ids.h"

namespace automan::api {

EventHub::EventHub() : EventHub(Options{}) {}

EventHub::EventHub(Options options) : options_(options) {
  unsigned char b[6];
  SecureRandomBytes(b, sizeof b);
  epoch_ = fmt::format("{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]);
}

EventHub::~EventHub() = default;

EventHub::Subscription::~Subscription() {
  if (hub_ != nullptr) hub_->Unsubscribe(this);
}

EventHub::StreamSlot::~StreamSlot() {
  if (hub_ != nullptr) hub_->ReleaseSlot(subject_);
}

void EventHub::PublishLog(const LogLine& line) {
  {
    std::lock_guard lock(mu_);
    if (runs_.find(line.run_id) == runs_.end()) return;  // nobody watches this run
  }
  // Rendered once here, outside the lock, instead of by every stream that sends it.
  LiveLine live{line.seq, json::serialize(LogLineJson(line))};
  {
    std::lock_guard lock(mu_);
    auto it = runs_.find(line.run_id);
    if (it == runs_.end()) return;  // the last watcher left meanwhile
    Ring& r = it->second;
    if (line.attempt != r.attempt) {
      if (line.attempt < r.attempt) return;
      r.attempt = line.attempt;
      r.lines.clear();
      r.bytes = 0;
    }
    if (!r.lines.empty() && line.seq != r.lines.back().seq + 1) {
      // A gap (lines published out of order): restart the ring at this line.
      r.lines.clear();
      r.bytes = 0;
    }
    r.bytes += live.json.size() + 64;
    r.lines.push_back(std::move(live));
    while (r.lines.size() > options_.ring_lines || r.bytes > options_.ring_bytes) {
      r.bytes -= r.lines.front().json.size() + 64;
      r.lines.pop_front();
    }
    for (Subscription* s : r.subs) s->Fire();
  }
}

void EventHub::PublishStep(const std::string& run_id) {
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  ++it->second.version;
  for (Subscription* s : it->second.subs) s->Fire();
}

void EventHub::PublishRun(const Run& run) {
  json::object ev;
  ev["type"] = "run";
  json::object r = RunJson(run);
  ev["run"] = std::move(r);
  std::string text = json::serialize(ev);
  std::lock_guard lock(mu_);
  Activity a;
  a.seq = ++activity_head_;
  a.runbook_id = run.runbook_id;
  a.json = std::move(text);
  activity_.push_back(std::move(a));
  while (activity_.size() > options_.activity_ring) activity_.pop_front();
  for (Subscription* s : activity_subs_) s->Fire();
  auto it = runs_.find(run.id);
  if (it != runs_.end()) {
    ++it->second.version;
    for (Subscription* s : it->second.subs) s->Fire();
  }
}

std::unique_ptr<EventHub::Subscription> EventHub::Subscribe(const std::string& run_id,
                                                            std::function<void()> wake) {
  auto sub = std::make_unique<Subscription>();
  sub->hub_ = this;
  sub->run_id_ = run_id;
  sub->wake_ = std::move(wake);
  std::lock_guard lock(mu_);
  if (run_id.empty()) {
    activity_subs_.push_back(sub.get());
  } else {
    runs_[run_id].subs.push_back(sub.get());
  }
  return sub;
}

void EventHub::Unsubscribe(Subscription* s) {
  std::lock_guard lock(mu_);
  if (s->run_id_.empty()) {
    std::erase(activity_subs_, s);
    return;
  }
  auto it = runs_.find(s->run_id_);
  if (it == runs_.end()) return;
  std::erase(it->second.subs, s);
  if (it->second.subs.empty()) runs_.erase(it);
}

bool EventHub::ReadLogs(const std::string& run_id, int attempt, int64_t after_seq, size_t max,
                        std::vector<LiveLine>& out) const {
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return false;
  const Ring& r = it->second;
  if (r.attempt != attempt || r.lines.empty()) return false;
  const int64_t first = r.lines.front().seq;
  const int64_t last = r.lines.back().seq;
  if (after_seq + 1 < first) return false;  // the ring starts after the cursor
  if (after_seq >= last) return true;       // covered: nothing new
  size_t i = static_cast<size_t>(after_seq + 1 - first);
  for (size_t n = 0; i < r.lines.size() && n < max; ++i, ++n) out.push_back(r.lines[i]);
  return true;
}

uint64_t EventHub::RunVersion(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  return it == runs_.end() ? 0 : it->second.version;
}

std::shared_ptr<const EventHub::RunView> EventHub::CachedRunView(
    const std::string& run_id, uint64_t version, SteadyTime now,
    std::chrono::milliseconds max_age) const {
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return nullptr;
  const Ring& r = it->second;
  if (r.view == nullptr || r.view_version != version || now - r.view_read_at >= max_age) {
    return nullptr;
  }
  return r.view;
}

void EventHub::StoreRunView(const std::string& run_id, uint64_t version, SteadyTime read_at,
                            std::shared_ptr<const RunView> view) {
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  Ring& r = it->second;
  // Keep the newest read: a slower reader must not replace a fresher view.
  if (r.view != nullptr &&
      (version < r.view_version || (version == r.view_version && read_at < r.view_read_at))) {
    return;
  }
  r.view = std::move(view);
  r.view_version = version;
  r.view_read_at = read_at;
}

bool EventHub::ReadActivity(uint64_t after_seq, size_t max, std::vector<Activity>& out) const {
  std::lock_guard lock(mu_);
  if (after_seq >= activity_head_) return after_seq == activity_head_;
  if (activity_.empty() || after_seq + 1 < activity_.front().seq) return false;
  size_t i = static_cast<size_t>(after_seq + 1 - activity_.front().seq);
  for (size_t n = 0; i < activity_.size() && n < max; ++i, ++n) out.push_back(activity_[i]);
  return true;
}

uint64_t EventHub::ActivityHead() const {
  std::lock_guard lock(mu_);
  return activity_head_;
}

std::unique_ptr<EventHub::StreamSlot> EventHub::AdmitStream(const std::string& subject,
                                                            int max_total, int max_per_subject) {
  std::lock_guard lock(mu_);
  if (open_streams_.load() >= max_total) return nullptr;
  int& n = slots_[subject];
  if (n >= max_per_subject) return nullptr;
  ++n;
  ++open_streams_;
  auto slot = std::make_unique<StreamSlot>();
  slot->hub_ = this;
  slot->subject_ = subject;
  return slot;
}

void EventHub::ReleaseSlot(const std::string& subject) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(subject);
  if (it != slots_.end() && --it->second <= 0) slots_.erase(it);
  --open_streams_;
}

}  // namespace automan::api
