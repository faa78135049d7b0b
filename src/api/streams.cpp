// Live streams: /api/v1/runs/{id}/stream (a run's log lines and status) and
// /api/v1/stream (every run change of this server). The transport serves them as
// Server-Sent Events, or as WebSocket messages when the request upgrades.
//
// Resumption. Log events carry the id "ATTEMPT.SEQ" of the line; a client that reconnects
// with Last-Event-ID (or ?last_event_id= on WebSocket) gets the lines after it: first
// from the store, then from the hub's ring, so there is no gap and no duplicate. Status
// ("run") events carry no id: each connection starts with the run's current state and
// gets it again on every change. The activity stream's ids are "EPOCH-SEQ"; resuming
// from another epoch (the server restarted) or from events the ring already dropped
// sends a "reset" event: reload the state you show, then follow.
#include <fmt/format.h>

#include <map>

#include "api/access.h"
#include "api/routes.h"
#include "api/wire.h"
#include "common/ids.h"

namespace automan::api {

namespace {

constexpr size_t kBatch = 500;

// A stream re-checks its subject this often: a revoked token, a disabled user or a
// narrower role ends the stream within this time (plus the auth cache's lifetime).
constexpr std::chrono::seconds kRecheckEvery{2};

// The subject a stream serves, re-authenticated every kRecheckEvery.
class StreamAccess {
 public:
  StreamAccess(ApiContext& ctx, std::shared_ptr<const auth::Subject> subject)
      : ctx_(ctx), subject_(std::move(subject)), checked_(ctx.clock.SteadyNow()) {}

  // False (and an "end" event in `out`) when the subject may no longer read runs.
  bool StillAllowed(std::vector<StreamEvent>& out) {
    const auto now = ctx_.clock.SteadyNow();
    if (now - checked_ < kRecheckEvery) return true;
    checked_ = now;
    auto fresh = ctx_.security.auth.Recheck(*subject_);
    if (fresh.ok() && (*fresh)->Can(auth::Permission::kRunsRead)) {
      subject_ = std::move(*fresh);
      return true;
    }
    if (!fresh.ok() && fresh.status().code() != ErrorCode::kUnauthenticated) return true;
    out.push_back({"", "end", R"({"reason":"unauthorized"})"});
    return false;
  }
  const auth::Subject& subject() const { return *subject_; }

 private:
  ApiContext& ctx_;
  std::shared_ptr<const auth::Subject> subject_;
  std::chrono::steady_clock::time_point checked_;
};

class RunStream final : public EventStream {
 public:
  RunStream(ApiContext& ctx, std::string run_id, int attempt, int64_t seq,
            std::unique_ptr<EventHub::StreamSlot> slot, std::shared_ptr<const auth::Subject> who)
      : ctx_(ctx),
        access_(ctx, std::move(who)),
        run_id_(std::move(run_id)),
        attempt_(attempt),
        seq_(seq),
        slot_(std::move(slot)) {}

  void SetWaker(std::function<void()> wake) override {
    sub_ = ctx_.hub.Subscribe(run_id_, std::move(wake));
  }

  bool Poll(std::vector<StreamEvent>& out) override {
    if (sub_) sub_->Arm();
    if (!access_.StillAllowed(out)) return false;
    auto view = CurrentView();
    if (!view.ok()) {
      if (view.status().code() != ErrorCode::kNotFound) return true;  // try again later
      out.push_back({"", "end", R"({"reason":"deleted"})"});
      return false;
    }
    if (*view != view_) {
      // A new view (the run changed, or was re-read): send it if it shows something new.
      if (view_ == nullptr || (*view)->json != view_->json)
        out.push_back({"", "run", (*view)->json});
      view_ = std::move(*view);
    }
    size_t budget = kBatch;
    bool caught_up = false;
    while (budget > 0) {
      std::vector<EventHub::LiveLine> lines;
      if (!ctx_.hub.ReadLogs(run_id_, attempt_, seq_, budget, lines)) {
        LogQuery q;
        q.run_id = run_id_;
        q.attempt = attempt_;
        q.after_seq = seq_;
        q.limit = static_cast<int>(budget);
        std::vector<LogLine> stored;
        Status s = ctx_.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
          AUTOMAN_ASSIGN_OR_RETURN(stored, tx.ReadLogLines(q));
          return Status::Ok();
        });
        if (!s.ok()) break;  // try again at the next poll
        for (const LogLine& l : stored) lines.push_back({l.seq, json::serialize(LogLineJson(l))});
      }
      if (lines.empty()) {
        if (attempt_ < view_->attempt) {
          ++attempt_;
          seq_ = 0;
          continue;
        }
        caught_up = true;
        break;
      }
      for (EventHub::LiveLine& l : lines) {
        out.push_back({fmt::format("{}.{}", attempt_, l.seq), "log", std::move(l.json)});
        seq_ = l.seq;
      }
      budget -= std::min(budget, lines.size());
    }
    if (view_->terminal && caught_up && attempt_ >= view_->attempt) {
      out.push_back({"", "end", json::serialize(json::object{{"status", view_->status}})});
      return false;
    }
    return true;
  }

 private:
  // The run as the hub shares it among this run's streams, re-read from the store when
  // this process changed the run, or every stream_poll for changes made elsewhere.
  Result<std::shared_ptr<const EventHub::RunView>> CurrentView() {
    const uint64_t version = ctx_.hub.RunVersion(run_id_);
    const auto now = ctx_.clock.SteadyNow();
    if (auto cached = ctx_.hub.CachedRunView(run_id_, version, now, ctx_.options.stream_poll)) {
      return cached;
    }
    Run run;
    std::vector<StepRun> steps;
    if (Status s = ReadRunWithSteps(ctx_.store, run_id_, run, steps); !s.ok()) return s;
    auto view = std::make_shared<EventHub::RunView>();
    view->json = json::serialize(RunJson(run, &steps));
    view->attempt = std::max(run.attempt, 1);
    view->terminal = IsTerminal(run.status);
    view->status = std::string(ToString(run.status));
    ctx_.hub.StoreRunView(run_id_, version, now, view);
    return std::shared_ptr<const EventHub::RunView>(std::move(view));
  }

  ApiContext& ctx_;
  StreamAccess access_;
  const std::string run_id_;
  int attempt_;
  int64_t seq_;
  std::unique_ptr<EventHub::StreamSlot> slot_;
  std::unique_ptr<EventHub::Subscription> sub_;
  std::shared_ptr<const EventHub::RunView> view_;  // the last one this stream saw
};

class ActivityStream final : public EventStream {
 public:
  ActivityStream(ApiContext& ctx, std::string resume_from,
                 std::unique_ptr<EventHub::StreamSlot> slot,
                 std::shared_ptr<const auth::Subject> who)
      : ctx_(ctx),
        access_(ctx, std::move(who)),
        resume_(std::move(resume_from)),
        slot_(std::move(slot)) {}

  void SetWaker(std::function<void()> wake) override {
    sub_ = ctx_.hub.Subscribe("", std::move(wake));
  }

  bool Poll(std::vector<StreamEvent>& out) override {
    if (sub_) sub_->Arm();
    if (!access_.StillAllowed(out)) return false;
    if (!started_) {
      started_ = true;
      cursor_ = ctx_.hub.ActivityHead();
      if (!resume_.empty()) {
        const std::string prefix = ctx_.hub.epoch() + "-";
        bool ok = false;
        if (resume_.rfind(prefix, 0) == 0) {
          try {
            size_t n = 0;
            std::string rest = resume_.substr(prefix.size());
            uint64_t seq = std::stoull(rest, &n);
            if (n == rest.size() && seq <= cursor_) {
              cursor_ = seq;
              ok = true;
            }
          } catch (const std::exception&) {
          }
        }
        if (!ok)
          out.push_back({"", "reset", R"({"reason":"cannot resume from that event; reload"})"});
      }
    }
    std::vector<EventHub::Activity> acts;
    if (!ctx_.hub.ReadActivity(cursor_, kBatch, acts)) {
      out.push_back(
          {"", "reset", R"({"reason":"events were dropped while you were away; reload"})"});
      cursor_ = ctx_.hub.ActivityHead();
      return true;
    }
    for (EventHub::Activity& a : acts) {
      cursor_ = a.seq;
      auto [it, fresh] = visible_.try_emplace(a.runbook_id, false);
      if (fresh) it->second = CanSeeRunsOf(ctx_, access_.subject(), a.runbook_id);
      if (!it->second) continue;
      out.push_back({fmt::format("{}-{}", ctx_.hub.epoch(), a.seq), "run", std::move(a.json)});
    }
    return true;
  }

 private:
  ApiContext& ctx_;
  StreamAccess access_;
  std::map<std::string, bool, std::less<>> visible_;  // by runbook id
  std::string resume_;
  std::unique_ptr<EventHub::StreamSlot> slot_;
  std::unique_ptr<EventHub::Subscription> sub_;
  bool started_ = false;
  uint64_t cursor_ = 0;
};

std::string ResumeId(const HttpRequest& req) {
  if (const std::string* h = req.Header("last-event-id")) return *h;
  if (const std::string* q = req.Query("last_event_id")) return *q;
  return "";
}

Result<std::unique_ptr<EventHub::StreamSlot>> Admit(ApiContext& ctx, const HttpRequest& req) {
  auto slot = ctx.hub.AdmitStream(req.subject->username, ctx.options.max_streams,
                                  ctx.options.max_streams_per_subject);
  if (!slot) {
    return Status(
        ErrorCode::kResourceExhausted,
        fmt::format("too many open streams (at most {} in all, {} per client); retry later",
                    ctx.options.max_streams, ctx.options.max_streams_per_subject));
  }
  return slot;
}

HttpResponse TooMany(const Status& s) {
  HttpResponse r = ErrorResponse(s);
  r.headers.emplace_back("Retry-After", "5");
  return r;
}

HttpResponse RunStreamRoute(ApiContext& ctx, HttpRequest& req) {
  const std::string& id = req.path_params["id"];
  if (!IsValidId(id))
    return ErrorResponse(
        Status(ErrorCode::kNotFound, fmt::format("run \"{}\" does not exist", id)));
  std::string runbook_id;
  Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(Run run, tx.GetRun(id));
    runbook_id = run.runbook_id;
    return Status::Ok();
  });
  if (s.ok() && !CanSeeRunsOf(ctx, *req.subject, runbook_id)) {
    s = Status(ErrorCode::kNotFound, fmt::format("run {} does not exist", id));
  }
  if (!s.ok()) return ErrorResponse(s);
  int attempt = 1;
  int64_t seq = 0;
  if (std::string resume = ResumeId(req); !resume.empty()) {
    size_t dot = resume.find('.');
    try {
      if (dot == std::string::npos) throw std::invalid_argument("no dot");
      size_t n1 = 0, n2 = 0;
      std::string a = resume.substr(0, dot), b = resume.substr(dot + 1);
      int av = std::stoi(a, &n1);
      long long bv = std::stoll(b, &n2);
      if (n1 != a.size() || n2 != b.size() || av < 1 || bv < 0)
        throw std::invalid_argument("range");
      attempt = av;
      seq = bv;
    } catch (const std::exception&) {
      return ErrorResponse(
          Status(ErrorCode::kInvalidArgument,
                 "Last-Event-ID must be the id of an event of this stream (ATTEMPT.SEQ)"));
    }
  }
  auto slot = Admit(ctx, req);
  if (!slot.ok()) return TooMany(slot.status());
  HttpResponse resp;
  resp.stream = std::make_shared<RunStream>(ctx, id, attempt, seq, std::move(*slot), req.subject);
  return resp;
}

HttpResponse ActivityRoute(ApiContext& ctx, HttpRequest& req) {
  auto slot = Admit(ctx, req);
  if (!slot.ok()) return TooMany(slot.status());
  HttpResponse resp;
  resp.stream = std::make_shared<ActivityStream>(ctx, ResumeId(req), std::move(*slot), req.subject);
  return resp;
}

}  // namespace

void AddStreamRoutes(Router& r, ApiContext& ctx) {
  r.Add({"GET",
         "/api/v1/runs/{id}/stream",
         "runs.read",
         "Live log lines and status of a run (SSE; WebSocket on upgrade); resumable with "
         "Last-Event-ID",
         "streams",
         {{"last_event_id", "string", "resume after this event (WebSocket clients)"}},
         "",
         "",
         200,
         true,
         [&ctx](HttpRequest& q) { return RunStreamRoute(ctx, q); }});
  r.Add({"GET",
         "/api/v1/stream",
         "runs.read",
         "Live activity: every run change (SSE; WebSocket on upgrade)",
         "streams",
         {{"last_event_id", "string", "resume after this event (WebSocket clients)"}},
         "",
         "",
         200,
         true,
         [&ctx](HttpRequest& q) { return ActivityRoute(ctx, q); }});
}

}  // namespace automan::api
