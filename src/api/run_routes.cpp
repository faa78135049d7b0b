// /api/v1/runs: create (one or a batch), list, get, logs, cancel, retry, delete.
#include <fmt/format.h>

#include <mutex>
#include <set>

#include "api/access.h"
#include "api/routes.h"
#include "api/wire.h"
#include "common/ids.h"

namespace automan::api {

namespace {

constexpr size_t kMaxBatch = 10000;

// A create request, with the runbook kept alive for the enqueue.
struct RunRequest {
  std::shared_ptr<const Runbook> runbook;
  EnqueueRequest enqueue;
};

Result<RunRequest> ParseRunRequest(ApiContext& ctx, const auth::Subject& subject,
                                   const json::object& o, std::string_view where) {
  AUTOMAN_RETURN_IF_ERROR(CheckFields(o,
                                      {"runbook", "params", "priority", "idempotency_key",
                                       "not_before", "max_attempts", "deadline_at"},
                                      where));
  RunRequest req;
  AUTOMAN_ASSIGN_OR_RETURN(std::optional<std::string> id, GetString(o, "runbook"));
  if (!id || id->empty()) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("{}: field \"runbook\" is required", where));
  }
  std::optional<CatalogEntry> entry = ctx.catalog.Find(*id);
  if (!entry) {
    return Status(ErrorCode::kNotFound, fmt::format("runbook \"{}\" does not exist", *id));
  }
  AUTOMAN_RETURN_IF_ERROR(CheckCanExecute(subject, *entry->runbook));
  req.runbook = entry->runbook;
  std::vector<std::pair<std::string, std::string>> given;
  if (const json::value* p = o.if_contains("params"); p != nullptr && !p->is_null()) {
    if (!p->is_object()) {
      return Status(ErrorCode::kInvalidArgument, "field \"params\" must be an object");
    }
    for (const auto& kv : p->as_object()) {
      AUTOMAN_ASSIGN_OR_RETURN(std::string text, ParamText(kv.key(), kv.value()));
      given.emplace_back(std::string(kv.key()), std::move(text));
    }
  }
  AUTOMAN_ASSIGN_OR_RETURN(req.enqueue.params, BindParams(*req.runbook, given));
  req.enqueue.runbook = req.runbook.get();
  req.enqueue.trigger = Trigger::kApi;
  req.enqueue.triggered_by = subject.username;
  AUTOMAN_ASSIGN_OR_RETURN(std::optional<int64_t> priority, GetInt(o, "priority"));
  if (priority) {
    if (*priority < -1000 || *priority > 1000) {
      return Status(ErrorCode::kInvalidArgument, "field \"priority\" must be in -1000..1000");
    }
    req.enqueue.priority = static_cast<int>(*priority);
  }
  AUTOMAN_ASSIGN_OR_RETURN(req.enqueue.idempotency_key, GetString(o, "idempotency_key"));
  AUTOMAN_ASSIGN_OR_RETURN(req.enqueue.not_before, GetTime(o, "not_before"));
  AUTOMAN_ASSIGN_OR_RETURN(req.enqueue.deadline_at, GetTime(o, "deadline_at"));
  AUTOMAN_ASSIGN_OR_RETURN(std::optional<int64_t> attempts, GetInt(o, "max_attempts"));
  if (attempts) {
    if (*attempts < 1 || *attempts > 1000) {
      return Status(ErrorCode::kInvalidArgument, "field \"max_attempts\" must be in 1..1000");
    }
    req.enqueue.max_attempts = static_cast<int>(*attempts);
  }
  return req;
}

Status RunNotFound(const std::string& id) {
  return Status(ErrorCode::kNotFound, fmt::format("run {} does not exist", ToValidUtf8(id)));
}

Status CheckRunId(const std::string& id) { return IsValidId(id) ? Status::Ok() : RunNotFound(id); }

// A run the caller may not see is answered exactly like one that does not exist.
Status CheckVisible(ApiContext& ctx, const HttpRequest& req, const Run& run) {
  return CanSeeRunsOf(ctx, *req.subject, run.runbook_id) ? Status::Ok() : RunNotFound(run.id);
}

// Reads the run (kNotFound when it does not exist or the caller may not see it).
Result<Run> VisibleRun(ApiContext& ctx, const HttpRequest& req, const std::string& id) {
  AUTOMAN_RETURN_IF_ERROR(CheckRunId(id));
  Run run;
  AUTOMAN_RETURN_IF_ERROR(ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(run, tx.GetRun(id));
    return Status::Ok();
  }));
  AUTOMAN_RETURN_IF_ERROR(CheckVisible(ctx, req, run));
  return run;
}

// Step counts of runbook versions, for progress (parsing a version once).
class StepCounts {
 public:
  int Get(ApiContext& ctx, const Run& run) {
    if (auto e = ctx.catalog.Find(run.runbook_id);
        e && e->runbook->version == run.runbook_version) {
      return static_cast<int>(e->runbook->steps.size());
    }
    {
      std::lock_guard lock(mu_);
      auto it = counts_.find(run.runbook_version);
      if (it != counts_.end()) return it->second;
    }
    int n = -1;
    RunbookVersion v;
    Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(v, tx.GetRunbookVersion(run.runbook_version));
      return Status::Ok();
    });
    if (s.ok()) {
      ParseResult pr = ParseRunbook(v.yaml, v.source);
      if (pr.ok()) n = static_cast<int>(pr.runbook->steps.size());
    }
    std::lock_guard lock(mu_);
    if (counts_.size() > 4096) counts_.clear();
    counts_[run.runbook_version] = n;
    return n;
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> counts_;
};

json::object RunDetail(ApiContext& ctx, StepCounts& counts, const Run& run,
                       const std::vector<StepRun>& steps) {
  json::object o = RunJson(run, &steps);
  int done = 0;
  json::value current = nullptr;
  for (const StepRun& s : steps) {
    if (s.attempt != run.attempt) continue;
    if (s.status == StepStatus::kRunning) current = json::value(s.step_id);
    if (s.status != StepStatus::kPending && s.status != StepStatus::kRunning) ++done;
  }
  json::object progress;
  progress["steps_done"] = done;
  int total = counts.Get(ctx, run);
  progress["steps_total"] = total >= 0 ? json::value(total) : json::value(nullptr);
  o["progress"] = std::move(progress);
  o["current_step"] = std::move(current);
  if (run.started_at) {
    Timestamp end = run.finished_at ? *run.finished_at : ctx.clock.Now();
    o["duration_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - *run.started_at).count();
  } else {
    o["duration_ms"] = nullptr;
  }
  return o;
}

// A run refused while its runbook cools down: 429 "cooldown" with Retry-After, and an
// audit entry. (Another refusal of the same kind is answered as it is.)
HttpResponse CooldownRefused(ApiContext& ctx, HttpRequest& req, const Runbook& rb,
                             const Status& refusal) {
  std::optional<Timestamp> ends;
  Status s = ctx.store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(ends, ctx.queue.CooldownEnds(tx, rb, ctx.clock.Now()));
    if (!ends) return Status::Ok();
    json::object details{{"runbook", rb.id}, {"reason", "cooldown"}};
    if (ends) details["retry_at"] = FormatRfc3339(*ends);
    return AuditIn(ctx, tx, req, "run.create", "runbook/" + rb.id, "denied",
                   json::serialize(details));
  });
  if (!s.ok()) return ErrorResponse(s);
  if (!ends) return ErrorResponse(refusal);
  HttpResponse r = ErrorResponse(429, "cooldown", refusal.message());
  const auto wait = std::chrono::duration_cast<std::chrono::seconds>(*ends - ctx.clock.Now());
  r.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, wait.count() + 1)));
  return r;
}

HttpResponse CreateRun(ApiContext& ctx, HttpRequest& req) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  auto rr = ParseRunRequest(ctx, *req.subject, *body, "body");
  if (!rr.ok()) return ErrorResponse(rr.status());
  auto e = ctx.queue.Enqueue(rr->enqueue, [&](StoreTx& tx, const std::vector<Enqueued>& out) {
    if (!out.front().created) return Status::Ok();
    const Run& run = out.front().run;
    json::object details{{"runbook", run.runbook_id}};
    // Opting out of the sandbox is recorded with every run it affects.
    if (!rr->runbook->sandbox.enabled) details["sandbox"] = "off";
    return AuditIn(ctx, tx, req, "run.create", "run/" + run.id, "ok", json::serialize(details));
  });
  if (!e.ok()) {
    if (e.status().code() == ErrorCode::kFailedPrecondition && rr->runbook->cooldown) {
      return CooldownRefused(ctx, req, *rr->runbook, e.status());
    }
    return ErrorResponse(e.status());
  }
  return JsonResponse(e->created ? 201 : 200, RunJson(e->run));
}

HttpResponse CreateRunBatch(ApiContext& ctx, HttpRequest& req) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (Status s = CheckFields(*body, {"runs"}); !s.ok()) return ErrorResponse(s);
  const json::value* runs = body->if_contains("runs");
  if (runs == nullptr || !runs->is_array()) {
    return ErrorResponse(Status(ErrorCode::kInvalidArgument, "field \"runs\" must be an array"));
  }
  const json::array& arr = runs->as_array();
  if (arr.empty() || arr.size() > kMaxBatch) {
    return ErrorResponse(
        Status(ErrorCode::kInvalidArgument,
               fmt::format("\"runs\" holds {} runs; send 1..{}", arr.size(), kMaxBatch)));
  }
  std::vector<RunRequest> reqs;
  reqs.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string where = fmt::format("runs[{}]", i);
    if (!arr[i].is_object()) {
      return ErrorResponse(Status(ErrorCode::kInvalidArgument, where + " must be an object"));
    }
    auto rr = ParseRunRequest(ctx, *req.subject, arr[i].as_object(), where);
    if (!rr.ok()) {
      return ErrorResponse(rr.status().WithContext(where), json::object{{"index", i}});
    }
    reqs.push_back(std::move(*rr));
  }
  std::vector<EnqueueRequest> enq;
  enq.reserve(reqs.size());
  for (const RunRequest& r : reqs) enq.push_back(r.enqueue);
  // One audit entry for the batch (not one per run: a batch is one action).
  auto out = ctx.queue.EnqueueMany(enq, [&](StoreTx& tx, const std::vector<Enqueued>& done) {
    std::set<std::string> runbooks;
    int64_t created = 0;
    for (const Enqueued& e : done) {
      runbooks.insert(e.run.runbook_id);
      created += e.created ? 1 : 0;
    }
    json::array rbs;
    for (const std::string& id : runbooks) rbs.emplace_back(id);
    return AuditIn(ctx, tx, req, "run.create_batch",
                   "run/" + done.front().run.id + ".." + done.back().run.id, "ok",
                   json::serialize(json::object{{"created", created},
                                                {"requested", static_cast<int64_t>(done.size())},
                                                {"runbooks", std::move(rbs)}}));
  });
  if (!out.ok()) return ErrorResponse(out.status());
  json::array items;
  items.reserve(out->size());
  for (const Enqueued& e : *out) {
    json::object o;
    o["id"] = e.run.id;
    o["status"] = ToString(e.run.status);
    o["created"] = e.created;
    items.push_back(std::move(o));
  }
  json::object resp;
  resp["items"] = std::move(items);
  return JsonResponse(201, resp);
}

HttpResponse ListRuns(ApiContext& ctx, HttpRequest& req) {
  RunFilter f;
  if (const std::string* v = req.Query("runbook")) f.runbook_id = *v;
  if (const std::string* v = req.Query("status")) {
    std::string up;
    for (char c : *v) up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    f.status = ParseRunStatus(up);
    if (!f.status) {
      return ErrorResponse(
          Status(ErrorCode::kInvalidArgument,
                 fmt::format("unknown status \"{}\"; use PENDING, RUNNING, WAITING, "
                             "SUCCESS, FAILED, TIMEOUT, CANCELLED, ROLLED_BACK or DEAD",
                             *v)));
    }
  }
  if (const std::string* v = req.Query("trigger")) {
    f.trigger = ParseTrigger(*v);
    if (!f.trigger) {
      return ErrorResponse(Status(
          ErrorCode::kInvalidArgument,
          fmt::format(
              "unknown trigger \"{}\"; use manual, api, schedule, event, webhook, retry or chain",
              *v)));
    }
  }
  auto limit = QueryInt(req, "limit", 1, 1000);
  if (!limit.ok()) return ErrorResponse(limit.status());
  f.limit = static_cast<int>(limit->value_or(50));
  auto since = QueryTime(req, "since");
  if (!since.ok()) return ErrorResponse(since.status());
  auto until = QueryTime(req, "until");
  if (!until.ok()) return ErrorResponse(until.status());
  if (const std::string* c = req.Query("cursor")) {
    if (!IsValidId(*c)) {
      return ErrorResponse(Status(ErrorCode::kInvalidArgument, "malformed cursor"));
    }
    f.before_id = *c;
  }
  if (*until) {
    // Ids order by millisecond; created_at below decides within the last one.
    std::string bound = IdLowerBound(std::chrono::ceil<std::chrono::milliseconds>(**until));
    if (!f.before_id || bound < *f.before_id) f.before_id = bound;
  }
  std::optional<std::string> floor;
  if (*since) floor = IdLowerBound(**since);
  std::vector<Run> runs;
  Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(runs, tx.ListRuns(f));
    return Status::Ok();
  });
  if (!s.ok()) return ErrorResponse(s);
  json::array items;
  bool reached_floor = false;
  std::map<std::string, bool, std::less<>> visible;  // by runbook id
  for (const Run& r : runs) {
    if (floor && r.id < *floor) {
      reached_floor = true;
      break;
    }
    if ((*since && r.created_at < **since) || (*until && r.created_at >= **until)) continue;
    auto [it, fresh] = visible.try_emplace(r.runbook_id, false);
    if (fresh) it->second = CanSeeRunsOf(ctx, *req.subject, r.runbook_id);
    if (!it->second) continue;  // a page may hold fewer items; next_cursor still goes on
    items.push_back(RunJson(r));
  }
  std::optional<std::string> next;
  if (!reached_floor && static_cast<int>(runs.size()) == f.limit) next = runs.back().id;
  return JsonResponse(200, ListJson(std::move(items), next));
}

HttpResponse GetRun(ApiContext& ctx, StepCounts& counts, HttpRequest& req) {
  const std::string& id = req.path_params["id"];
  if (Status s = CheckRunId(id); !s.ok()) return ErrorResponse(s);
  Run run;
  std::vector<StepRun> steps;
  if (Status s = ReadRunWithSteps(ctx.store, id, run, steps); !s.ok()) return ErrorResponse(s);
  if (Status s = CheckVisible(ctx, req, run); !s.ok()) return ErrorResponse(s);
  return JsonResponse(200, RunDetail(ctx, counts, run, steps));
}

// Log cursor "ATTEMPT.SEQ": the last line received.
bool ParseLogCursor(std::string_view c, int& attempt, int64_t& seq) {
  size_t dot = c.find('.');
  if (dot == std::string_view::npos) return false;
  try {
    size_t n1 = 0, n2 = 0;
    std::string a(c.substr(0, dot)), b(c.substr(dot + 1));
    long av = std::stol(a, &n1);
    long long bv = std::stoll(b, &n2);
    if (n1 != a.size() || n2 != b.size() || av < 1 || av > 1000000 || bv < 0) return false;
    attempt = static_cast<int>(av);
    seq = bv;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

HttpResponse GetLogs(ApiContext& ctx, HttpRequest& req) {
  const std::string& id = req.path_params["id"];
  if (Status s = CheckRunId(id); !s.ok()) return ErrorResponse(s);
  auto limit = QueryInt(req, "limit", 1, 10000);
  if (!limit.ok()) return ErrorResponse(limit.status());
  auto only_attempt = QueryInt(req, "attempt", 1, 1000000);
  if (!only_attempt.ok()) return ErrorResponse(only_attempt.status());
  LogQuery q;
  q.run_id = id;
  if (const std::string* v = req.Query("step")) q.step_id = *v;
  if (const std::string* v = req.Query("stream")) {
    q.stream = ParseLogStream(*v);
    if (!q.stream) {
      return ErrorResponse(
          Status(ErrorCode::kInvalidArgument,
                 fmt::format("unknown stream \"{}\"; use stdout, stderr or system", *v)));
    }
  }
  int attempt = only_attempt->value_or(1);
  int64_t after = 0;
  if (const std::string* c = req.Query("cursor")) {
    if (!ParseLogCursor(*c, attempt, after)) {
      return ErrorResponse(Status(ErrorCode::kInvalidArgument,
                                  "malformed cursor; pass the next_cursor of the previous page"));
    }
  }
  const int want = static_cast<int>(limit->value_or(1000));
  json::array items;
  std::optional<std::string> next;
  Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(Run run, tx.GetRun(id));
    AUTOMAN_RETURN_IF_ERROR(CheckVisible(ctx, req, run));
    int last_attempt = *only_attempt ? static_cast<int>(**only_attempt) : std::max(run.attempt, 1);
    int got = 0;
    int64_t last_seq = after;
    while (attempt <= last_attempt) {
      q.attempt = attempt;
      q.after_seq = after;
      q.limit = want - got;
      AUTOMAN_ASSIGN_OR_RETURN(std::vector<LogLine> lines, tx.ReadLogLines(q));
      for (const LogLine& l : lines) {
        items.push_back(LogLineJson(l));
        last_seq = l.seq;
      }
      got += static_cast<int>(lines.size());
      if (got >= want) {
        next = fmt::format("{}.{}", attempt, last_seq);
        break;
      }
      if (attempt == last_attempt) {
        // Not terminal: more lines may come; the cursor resumes here.
        next = IsTerminal(run.status)
                   ? std::nullopt
                   : std::optional<std::string>(fmt::format("{}.{}", attempt, last_seq));
        break;
      }
      ++attempt;
      after = 0;
      last_seq = 0;
    }
    return Status::Ok();
  });
  if (!s.ok()) return ErrorResponse(s);
  return JsonResponse(200, ListJson(std::move(items), next));
}

HttpResponse CancelRun(ApiContext& ctx, HttpRequest& req) {
  const std::string& id = req.path_params["id"];
  if (auto seen = VisibleRun(ctx, req, id); !seen.ok()) return ErrorResponse(seen.status());
  auto run = ctx.queue.Cancel(id, [&](StoreTx& tx, const Run&) {
    return AuditIn(ctx, tx, req, "run.cancel", "run/" + id);
  });
  if (!run.ok()) return ErrorResponse(run.status());
  return JsonResponse(200, RunJson(*run));
}

HttpResponse RetryRun(ApiContext& ctx, HttpRequest& req) {
  const std::string& id = req.path_params["id"];
  auto seen = VisibleRun(ctx, req, id);
  if (!seen.ok()) return ErrorResponse(seen.status());
  // A retry is a new run: the caller must be allowed to start this runbook now.
  if (auto e = ctx.catalog.Find(seen->runbook_id)) {
    if (Status s = CheckCanExecute(*req.subject, *e->runbook); !s.ok()) return ErrorResponse(s);
  } else if (!req.subject->Can(auth::Permission::kUsersManage)) {
    return ErrorResponse(RunNotFound(id));
  }
  auto run = ctx.queue.Replay(
      id, req.subject->username, [&](StoreTx& tx, const std::vector<Enqueued>& out) {
        return AuditIn(ctx, tx, req, "run.retry", "run/" + id, "ok",
                       json::serialize(json::object{{"new_run", out.front().run.id}}));
      });
  if (!run.ok()) return ErrorResponse(run.status());
  return JsonResponse(201, RunJson(*run));
}

HttpResponse DeleteRun(ApiContext& ctx, HttpRequest& req) {
  const std::string& id = req.path_params["id"];
  if (Status s = CheckRunId(id); !s.ok()) return ErrorResponse(s);
  Status s = ctx.store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(Run run, tx.GetRun(id));
    AUTOMAN_RETURN_IF_ERROR(CheckVisible(ctx, req, run));
    if (!IsTerminal(run.status)) {
      return Status(ErrorCode::kFailedPrecondition,
                    fmt::format("run {} is {}; cancel it first, only finished runs can be deleted",
                                id, ToString(run.status)));
    }
    std::vector<std::string> ids{id};
    AUTOMAN_RETURN_IF_ERROR(tx.DeleteRuns(ids));
    return AuditIn(ctx, tx, req, "run.delete", "run/" + id, "ok",
                   json::serialize(json::object{{"runbook", run.runbook_id}}));
  });
  if (!s.ok()) return ErrorResponse(s);
  return NoContent();
}

}  // namespace

Status ReadRunWithSteps(Store& store, const std::string& id, Run& run,
                        std::vector<StepRun>& steps) {
  return store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(run, tx.GetRun(id));
    AUTOMAN_ASSIGN_OR_RETURN(steps, tx.ListStepRuns(id));
    return Status::Ok();
  });
}

void AddRunRoutes(Router& r, ApiContext& ctx) {
  auto counts = std::make_shared<StepCounts>();
  r.Add({"POST",
         "/api/v1/runs",
         "runs.execute",
         "Create a run (201; 200 with the existing run when the idempotency key was seen)",
         "runs",
         {},
         "RunCreate",
         "Run",
         201,
         false,
         [&ctx](HttpRequest& q) { return CreateRun(ctx, q); }});
  r.Add({"POST",
         "/api/v1/runs/batch",
         "runs.execute",
         "Create up to 10,000 runs in one transaction (all or none)",
         "runs",
         {},
         "RunBatch",
         "RunBatchResult",
         201,
         false,
         [&ctx](HttpRequest& q) { return CreateRunBatch(ctx, q); }});
  r.Add({"GET",
         "/api/v1/runs",
         "runs.read",
         "List runs, newest first",
         "runs",
         {{"runbook", "string", "only runs of this runbook"},
          {"status", "string", "only runs in this status"},
          {"trigger", "string", "only runs with this trigger"},
          {"since", "string", "created at or after (RFC 3339)"},
          {"until", "string", "created before (RFC 3339)"},
          {"limit", "integer", "1..1000, default 50"},
          {"cursor", "string", "next_cursor of the previous page"}},
         "",
         "RunList",
         200,
         false,
         [&ctx](HttpRequest& q) { return ListRuns(ctx, q); },
         HandlerCost::kQuick});
  r.Add({"GET",
         "/api/v1/runs/{id}",
         "runs.read",
         "A run with its steps, progress, current step and timings",
         "runs",
         {},
         "",
         "RunDetail",
         200,
         false,
         [&ctx, counts](HttpRequest& q) { return GetRun(ctx, *counts, q); },
         HandlerCost::kQuick});
  r.Add({"GET",
         "/api/v1/runs/{id}/logs",
         "runs.read",
         "Log lines of a run, paged by sequence (cursor ATTEMPT.SEQ)",
         "runs",
         {{"attempt", "integer", "only this attempt"},
          {"step", "string", "only this step"},
          {"stream", "string", "stdout, stderr or system"},
          {"limit", "integer", "1..10000, default 1000"},
          {"cursor", "string", "next_cursor of the previous page"}},
         "",
         "LogPage",
         200,
         false,
         [&ctx](HttpRequest& q) { return GetLogs(ctx, q); }});
  r.Add({"POST",
         "/api/v1/runs/{id}/cancel",
         "runs.cancel",
         "Cancel a run (pending: at once; running: its worker stops it)",
         "runs",
         {},
         "",
         "Run",
         200,
         false,
         [&ctx](HttpRequest& q) { return CancelRun(ctx, q); }});
  r.Add({"POST",
         "/api/v1/runs/{id}/retry",
         "runs.execute",
         "Run a finished run again as a new run with retry_of",
         "runs",
         {},
         "",
         "Run",
         201,
         false,
         [&ctx](HttpRequest& q) { return RetryRun(ctx, q); }});
  r.Add({"DELETE",
         "/api/v1/runs/{id}",
         "runs.delete",
         "Delete a finished run with its attempts, steps and logs",
         "runs",
         {},
         "",
         "",
         204,
         false,
         [&ctx](HttpRequest& q) { return DeleteRun(ctx, q); }});
}

}  // namespace automan::api
