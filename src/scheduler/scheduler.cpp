#include "scheduler/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/duration.h"

namespace automan {

struct Scheduler::Entry {
  ScheduleRecord rec;
  ScheduleDefinition def;
  std::optional<ScheduleTiming> timing;
  std::shared_ptr<const Runbook> runbook;
  std::string error;  // set: the schedule could not be loaded and is not scheduled
  std::optional<Timestamp> next_due;
  std::optional<Timestamp> wake_at;  // its key in Scheduler::wake_ (next_due - lookahead)
};

struct Scheduler::Decision {
  std::vector<FireRecord> rows;
  std::optional<Timestamp> cursor;
  bool changed = false;  // the definition changed under us: reload, decide nothing
  int enqueued = 0;
};

namespace {

constexpr int kStaleRowsListed = 100;
constexpr int64_t kMaxOccurrencesPerPass = 1'000'000;

std::string Human(Duration d) {
  return FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

bool IsStoreFailure(const Status& s) {
  switch (s.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
    case ErrorCode::kFailedPrecondition:
      return false;
    default:
      return true;
  }
}

}  // namespace

Scheduler::Scheduler(Store& store, Queue& queue, const Clock& clock, SchedulerOptions options)
    : store_(store), queue_(queue), clock_(clock), options_(std::move(options)) {}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Log(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Scheduler::Wake() {
  std::lock_guard<std::mutex> lock(mu_);
  woken_ = true;
  cv_.notify_all();
}

void Scheduler::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] {
    for (;;) {
      Result<std::optional<Timestamp>> next = Tick();
      std::chrono::microseconds wait = options_.revision_poll;
      if (!next.ok()) {
        Log(fmt::format("scheduler: {} (retrying in 1s)", next.status().ToString()));
        wait = std::chrono::seconds(1);
      } else if (!leadership_) {
        wait = options_.leadership_retry;
      } else if (*next) {
        wait = std::min(wait, std::max(Duration(0), **next - clock_.Now()));
      }
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, wait, [&] { return stopping_ || woken_; });
      if (stopping_) break;
      woken_ = false;
    }
  });
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  leadership_.reset();
}

Status Scheduler::EnsureLeadership() {
  if (leadership_) {
    if (leadership_->Held()) return Status::Ok();
    leadership_.reset();
    wake_.clear();
    entries_.clear();
    revision_.reset();
    Log("scheduler: lost the scheduler lock; standing by");
  }
  const auto steady = clock_.SteadyNow();
  if (steady < next_lead_attempt_) return Status::Ok();
  AUTOMAN_ASSIGN_OR_RETURN(std::unique_ptr<Leadership> lead, store_.TryLead("scheduler"));
  if (!lead) {
    if (next_lead_attempt_ == std::chrono::steady_clock::time_point{}) {
      Log("scheduler: another process runs the schedule loop for this store; standing by");
    }
    next_lead_attempt_ = steady + options_.leadership_retry;
    return Status::Ok();
  }
  leadership_ = std::move(lead);
  return Status::Ok();
}

Status Scheduler::LoadEntry(const ScheduleRecord& rec, Entry& e) {
  e.rec = rec;
  e.error.clear();
  e.timing.reset();
  e.runbook.reset();
  SetNextDue(e, std::nullopt);
  auto def = DecodeScheduleDefinition(rec.spec_json);
  if (!def.ok()) {
    e.error = def.status().message();
    return Status::Ok();
  }
  e.def = std::move(*def);
  auto timing = ScheduleTiming::Make(e.def.spec);
  if (!timing.ok()) {
    e.error = timing.status().message();
    return Status::Ok();
  }
  e.timing = std::move(*timing);
  auto cached = runbooks_.find(e.def.runbook_version);
  if (cached != runbooks_.end()) {
    e.runbook = cached->second;
    return Status::Ok();
  }
  RunbookVersion v;
  Status s = store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(v, tx.GetRunbookVersion(e.def.runbook_version));
    return Status::Ok();
  });
  if (s.code() == ErrorCode::kNotFound) {
    e.error = fmt::format("runbook version {} is not in the store", e.def.runbook_version);
    return Status::Ok();
  }
  AUTOMAN_RETURN_IF_ERROR(s);
  ParseResult parsed = ParseRunbook(v.yaml, v.source);
  if (!parsed.ok()) {
    e.error = fmt::format("stored runbook version {} does not parse: {}", v.version,
                          parsed.diagnostics.front().ToString());
    return Status::Ok();
  }
  e.runbook = std::make_shared<const Runbook>(std::move(*parsed.runbook));
  runbooks_[e.def.runbook_version] = e.runbook;
  return Status::Ok();
}

Duration Scheduler::AheadFor(const Entry& e) const {
  return e.def.spec.overlap == "allow" && !e.rec.paused ? options_.lookahead : Duration(0);
}

void Scheduler::SetNextDue(Entry& e, std::optional<Timestamp> due) {
  if (e.wake_at) wake_.erase({*e.wake_at, &e});
  e.next_due = due;
  e.wake_at.reset();
  if (due) {
    e.wake_at = *due - AheadFor(e);
    wake_.insert({*e.wake_at, &e});
  }
}

void Scheduler::ComputeNext(Entry& e) {
  std::optional<Timestamp> due;
  if (e.error.empty() && e.timing && e.def.spec.active) {
    if (auto occ = e.timing->Next(e.rec.cursor)) due = e.timing->Due(occ->nominal, e.rec.id);
  }
  SetNextDue(e, due);
}

Status Scheduler::Reload() {
  int64_t revision = 0;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(revision, tx.SchedulesRevision());
    return Status::Ok();
  }));
  if (revision_ && *revision_ == revision) return Status::Ok();
  std::vector<ScheduleRecord> records;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(records, tx.ListSchedules());
    AUTOMAN_ASSIGN_OR_RETURN(revision, tx.SchedulesRevision());
    return Status::Ok();
  }));
  std::map<std::string, std::unique_ptr<Entry>> next;
  int64_t errors = 0;
  for (const ScheduleRecord& rec : records) {
    auto it = entries_.find(rec.id);
    std::unique_ptr<Entry> e;
    if (it != entries_.end() && it->second->rec.generation == rec.generation) {
      e = std::move(it->second);
    } else {
      e = std::make_unique<Entry>();
      AUTOMAN_RETURN_IF_ERROR(LoadEntry(rec, *e));
      if (!e->error.empty()) {
        Log(fmt::format("scheduler: schedule {} is not scheduled: {}", rec.id, e->error));
      }
      ComputeNext(*e);
    }
    if (!e->error.empty()) ++errors;
    next.emplace(rec.id, std::move(e));
  }
  entries_ = std::move(next);
  wake_.clear();
  for (auto& [id, e] : entries_) {
    if (e->wake_at) wake_.insert({*e->wake_at, e.get()});
  }
  revision_ = revision;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.schedules = static_cast<int64_t>(entries_.size());
  stats_.errors = errors;
  return Status::Ok();
}

Result<std::optional<Timestamp>> Scheduler::Tick() {
  AUTOMAN_RETURN_IF_ERROR(EnsureLeadership());
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.leader = leadership_ != nullptr;
  }
  if (!leadership_) return std::optional<Timestamp>();
  AUTOMAN_RETURN_IF_ERROR(Reload());

  const Timestamp now = clock_.Now();
  std::vector<Entry*> due;
  for (auto it = wake_.begin(); it != wake_.end() && it->first <= now; ++it) {
    due.push_back(it->second);
  }
  std::sort(due.begin(), due.end(),
            [](const Entry* a, const Entry* b) { return *a->next_due < *b->next_due; });
  for (size_t i = 0; i < due.size(); i += static_cast<size_t>(options_.batch)) {
    std::vector<Entry*> batch(
        due.begin() + static_cast<std::ptrdiff_t>(i),
        due.begin() + static_cast<std::ptrdiff_t>(std::min(due.size(), i + options_.batch)));
    AUTOMAN_RETURN_IF_ERROR(DecideBatch(batch, now));
  }

  if (wake_.empty()) return std::optional<Timestamp>();
  return std::optional<Timestamp>(wake_.begin()->first);
}

Status Scheduler::DecideBatch(std::vector<Entry*>& batch, Timestamp now) {
  std::vector<Decision> decisions(batch.size());
  auto decide = [&](StoreTx& tx, size_t from, size_t to) -> Status {
    for (size_t i = from; i < to; ++i) {
      decisions[i] = Decision{};
      AUTOMAN_RETURN_IF_ERROR(DecideInTx(tx, *batch[i], now, decisions[i]));
    }
    return Status::Ok();
  };
  Status s = store_.Transact(Store::TxMode::kWrite,
                             [&](StoreTx& tx) { return decide(tx, 0, batch.size()); });
  std::vector<bool> failed(batch.size(), false);
  if (!s.ok()) {
    if (batch.size() == 1) {
      failed[0] = true;
      Log(fmt::format("scheduler: deciding {} failed: {}", batch[0]->rec.id, s.ToString()));
    } else {
      // Find the schedule that failed: decide each on its own.
      for (size_t i = 0; i < batch.size(); ++i) {
        Status one = store_.Transact(Store::TxMode::kWrite,
                                     [&](StoreTx& tx) { return decide(tx, i, i + 1); });
        if (!one.ok()) {
          failed[i] = true;
          Log(fmt::format("scheduler: deciding {} failed: {}", batch[i]->rec.id, one.ToString()));
        }
      }
    }
  }
  const Timestamp committed_at = clock_.Now();
  int enqueued = 0;
  SchedulerStats delta;
  for (size_t i = 0; i < batch.size(); ++i) {
    Entry& e = *batch[i];
    const Decision& d = decisions[i];
    if (failed[i]) {
      // Try again later rather than in a hot loop.
      SetNextDue(e, now + std::chrono::seconds(5));
      continue;
    }
    if (d.changed) {
      revision_.reset();  // the next Tick reloads it
      SetNextDue(e, std::nullopt);
      continue;
    }
    if (d.cursor) e.rec.cursor = *d.cursor;
    enqueued += d.enqueued;
    for (const FireRecord& r : d.rows) {
      if (options_.on_decided) options_.on_decided(r, committed_at);
      switch (r.status) {
        case FireStatus::kFired:
          ++delta.fired;
          break;
        case FireStatus::kLate:
          ++delta.late;
          break;
        case FireStatus::kSkipped:
          ++delta.skipped;
          break;
        case FireStatus::kMissed:
          ++delta.missed;
          break;
      }
    }
    ComputeNext(e);
  }
  if (enqueued > 0) queue_.Notify();
  std::lock_guard<std::mutex> lock(mu_);
  stats_.fired += delta.fired;
  stats_.late += delta.late;
  stats_.skipped += delta.skipped;
  stats_.missed += delta.missed;
  return Status::Ok();
}

Status Scheduler::DecideInTx(StoreTx& tx, Entry& e, Timestamp now, Decision& d) {
  const ScheduleSpec& spec = e.def.spec;
  const ScheduleTiming& timing = *e.timing;
  const std::string& id = e.rec.id;

  // 1. Collect the occurrences due by `now` (+ the lookahead) and classify them.
  const Timestamp horizon = now + AheadFor(e);
  Timestamp cursor = e.rec.cursor;
  int stale_listed = 0;
  int64_t stale_more = 0;
  Timestamp stale_more_first{}, stale_more_last{};
  std::vector<size_t> misfired;  // indexes into d.rows of run_once candidates
  for (int64_t seen = 0; seen < kMaxOccurrencesPerPass &&
                         static_cast<int>(d.rows.size()) < options_.max_rows_per_pass;
       ++seen) {
    const std::optional<Occurrence> occ = timing.Next(cursor);
    if (!occ) break;
    const Timestamp due = timing.Due(occ->nominal, id);
    if (due > horizon) break;
    cursor = occ->nominal;
    FireRecord r;
    r.schedule_id = id;
    r.nominal = occ->nominal;
    r.due = due;
    r.wall = ScheduleTiming::FormatWall(occ->wall) + " " + std::string(timing.zone()->name());
    r.generation = e.rec.generation;
    r.recorded_at = now;
    const Duration lateness = now - due;
    if (e.rec.paused) {
      r.status = FireStatus::kSkipped;
      r.reason = "paused";
    } else if (occ->kind == Occurrence::Kind::kSkipDstGap) {
      r.status = FireStatus::kSkipped;
      r.reason = fmt::format(
          "dst_gap: {} does not exist in {} (clocks spring forward); dst.gap "
          "is skip",
          ScheduleTiming::FormatWall(occ->wall), timing.zone()->name());
    } else if (occ->kind == Occurrence::Kind::kSkipDstRepeat) {
      r.status = FireStatus::kSkipped;
      r.reason = fmt::format(
          "dst_repeat: second occurrence of {} in {} (clocks fall back); "
          "dst.repeat is first",
          ScheduleTiming::FormatWall(occ->wall), timing.zone()->name());
    } else if (lateness > timing.MaxLateness(occ->nominal)) {
      if (stale_listed >= kStaleRowsListed) {
        if (stale_more == 0) stale_more_first = occ->nominal;
        stale_more_last = occ->nominal;
        ++stale_more;
        continue;
      }
      ++stale_listed;
      r.status = FireStatus::kMissed;
      r.reason = fmt::format("max_lateness: due {} ago, more than max_lateness {}", Human(lateness),
                             Human(timing.MaxLateness(occ->nominal)));
    } else if (lateness > options_.misfire_after) {
      if (spec.misfire == "skip") {
        r.status = FireStatus::kSkipped;
        r.reason = fmt::format("misfire: due {} ago; misfire is skip", Human(lateness));
      } else {
        r.status = FireStatus::kLate;
        if (spec.misfire == "run_once") misfired.push_back(d.rows.size());
      }
    } else {
      r.status = FireStatus::kFired;
    }
    d.rows.push_back(std::move(r));
  }
  if (stale_more > 0) {
    FireRecord r;
    r.schedule_id = id;
    r.nominal = stale_more_last;
    r.due = timing.Due(stale_more_last, id);
    r.status = FireStatus::kMissed;
    r.reason = fmt::format(
        "max_lateness: {} more occurrences from {} to {} were missed (not listed one by one)",
        stale_more, timing.FormatLocal(stale_more_first), timing.FormatLocal(stale_more_last));
    r.wall = timing.FormatLocal(stale_more_last);
    r.generation = e.rec.generation;
    r.recorded_at = now;
    // Keep the ledger in nominal order: the summary sits at its last occurrence.
    auto pos = std::find_if(d.rows.begin(), d.rows.end(),
                            [&](const FireRecord& x) { return x.nominal > stale_more_last; });
    for (size_t& i : misfired) {
      if (i >= static_cast<size_t>(pos - d.rows.begin())) ++i;
    }
    d.rows.insert(pos, std::move(r));
  }
  if (misfired.size() > 1) {
    for (size_t k = 0; k + 1 < misfired.size(); ++k) {
      FireRecord& r = d.rows[misfired[k]];
      r.status = FireStatus::kSkipped;
      r.reason = "misfire: run_once runs only the latest missed occurrence";
    }
  }
  if (cursor == e.rec.cursor) return Status::Ok();

  // 2. The fence: refused when the definition changed since we loaded it.
  Status fence = tx.AdvanceScheduleCursor(id, e.rec.generation, cursor);
  if (fence.code() == ErrorCode::kAborted || fence.code() == ErrorCode::kNotFound) {
    d.rows.clear();
    d.changed = true;
    return Status::Ok();
  }
  AUTOMAN_RETURN_IF_ERROR(fence);
  d.cursor = cursor;

  // 3. Runs, under the overlap policy.
  std::optional<std::vector<Run>> active;
  const bool serialise = spec.overlap == "queue_one" || spec.overlap == "cancel_previous";
  std::vector<bool> decided_before(d.rows.size(), false);
  for (size_t i = 0; i < d.rows.size(); ++i) {
    FireRecord& r = d.rows[i];
    if (r.status != FireStatus::kFired && r.status != FireStatus::kLate) continue;
    // Decided before (by another loop, e.g. one whose PostgreSQL session was lost): its
    // ledger row stands as it is, whatever it says; nothing is run or cancelled for it.
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<FireRecord> prior,
                             tx.ListFires(id, r.nominal + Duration(1), 1));
    if (!prior.empty() && prior.front().nominal == r.nominal) {
      decided_before[i] = true;
      continue;
    }
    if (spec.overlap != "allow" && !active) {
      AUTOMAN_ASSIGN_OR_RETURN(active, tx.ListActiveRuns(Trigger::kSchedule, id, 100));
    }
    if (spec.overlap == "skip" && !active->empty()) {
      r.status = FireStatus::kSkipped;
      r.reason = fmt::format("overlap: run {} is still {}; overlap is skip", active->front().id,
                             ToString(active->front().status));
      continue;
    }
    if (spec.overlap == "queue_one") {
      auto queued = std::find_if(active->begin(), active->end(),
                                 [](const Run& x) { return x.status == RunStatus::kPending; });
      if (queued != active->end()) {
        r.status = FireStatus::kSkipped;
        r.reason =
            fmt::format("overlap: run {} is already queued; overlap is queue_one", queued->id);
        continue;
      }
    }
    if (spec.overlap == "cancel_previous") {
      for (const Run& old : *active) {
        Result<Run> c = queue_.CancelInTx(tx, old.id);
        if (!c.ok() && c.status().code() != ErrorCode::kNotFound) return c.status();
      }
      active->clear();
    }
    std::vector<std::pair<std::string, std::string>> given(spec.params.begin(), spec.params.end());
    Result<RunParams> params = BindParams(*e.runbook, given);
    if (!params.ok()) {
      r.status = FireStatus::kMissed;
      r.reason = "error: " + params.status().message();
      continue;
    }
    // The runbook's cooldown (queue/queue.h): a fire within it is skipped, not missed.
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<Timestamp> cooling,
                             queue_.CooldownEnds(tx, *e.runbook, clock_.Now()));
    if (cooling) {
      r.status = FireStatus::kSkipped;
      r.reason =
          fmt::format("cooldown: runbook {} may run again at {} (cooldown {})", e.runbook->id,
                      FormatRfc3339(*cooling), FormatDuration(*e.runbook->cooldown));
      continue;
    }
    EnqueueRequest req;
    req.runbook = e.runbook.get();
    req.params = std::move(*params);
    req.trigger = Trigger::kSchedule;
    req.triggered_by = id;
    // The generation keeps a decision withdrawn by a change (changes.h) from answering
    // for the new definition's decision of the same time.
    req.idempotency_key =
        fmt::format("schedule:{}@{}#{}", id, ToMicros(r.nominal), e.rec.generation);
    if (timing.lead()) req.deadline_at = r.nominal;
    if (r.due > now) req.not_before = r.due;  // decided ahead: claimable when due
    if (serialise) req.extra_concurrency.push_back(ConcurrencyLimit{"schedule:" + id, 1, 0, {}});
    Result<Enqueued> enq = queue_.EnqueueInTx(tx, req);
    if (!enq.ok()) {
      if (IsStoreFailure(enq.status())) return enq.status();
      r.status = FireStatus::kMissed;
      r.reason = "error: " + enq.status().message();
      continue;
    }
    r.run_id = enq->run.id;
    r.delay = std::max(Duration(0), clock_.Now() - r.due);
    if (enq->created) ++d.enqueued;
    if (active) active->push_back(enq->run);
  }

  // 4. The ledger. A row already there was decided before (a second loop): keep it (and
  // leave it out of this loop's counts).
  std::vector<FireRecord> recorded;
  for (size_t i = 0; i < d.rows.size(); ++i) {
    if (decided_before[i]) continue;
    Status s = tx.InsertFire(d.rows[i]);
    if (s.code() == ErrorCode::kAlreadyExists) {
      // Another loop decided this time after our check above (both ran at once): roll
      // back, so the run queued here is not left without its ledger row. The retry sees
      // the other loop's row and leaves it.
      if (!d.rows[i].run_id.empty()) {
        return Error(ErrorCode::kAborted, "schedule {}: {} was decided by another loop meanwhile",
                     id, FormatRfc3339(d.rows[i].nominal));
      }
      continue;
    }
    AUTOMAN_RETURN_IF_ERROR(s);
    recorded.push_back(std::move(d.rows[i]));
  }
  d.rows = std::move(recorded);
  return Status::Ok();
}

}  // namespace automan
