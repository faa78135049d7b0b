// /api/v1/queue (stats), /api/v1/dlq (dead-letter list, replay, purge) and
// /api/v1/analytics (success rate and duration percentiles per runbook over a range).
#include <fmt/format.h>

#include <algorithm>

#include "api/access.h"
#include "api/routes.h"
#include "api/wire.h"
#include "common/ids.h"

namespace automan::api {

namespace {

HttpResponse QueueStats(ApiContext& ctx) {
  std::map<RunStatus, int64_t> counts;
  Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(counts, tx.CountRunsByStatus());
    return Status::Ok();
  });
  if (!s.ok()) return ErrorResponse(s);
  json::object c;
  int64_t total = 0;
  for (const auto& [st, n] : counts) {
    c[ToString(st)] = n;
    total += n;
  }
  json::object o;
  o["counts"] = std::move(c);
  o["total"] = total;
  return JsonResponse(200, o);
}

HttpResponse ListDead(ApiContext& ctx, HttpRequest& req) {
  auto limit = QueryInt(req, "limit", 1, 1000);
  if (!limit.ok()) return ErrorResponse(limit.status());
  RunFilter f;
  f.status = RunStatus::kDead;
  f.limit = static_cast<int>(limit->value_or(50));
  if (const std::string* v = req.Query("runbook")) f.runbook_id = *v;
  if (const std::string* c = req.Query("cursor")) {
    if (!IsValidId(*c))
      return ErrorResponse(Status(ErrorCode::kInvalidArgument, "malformed cursor"));
    f.before_id = *c;
  }
  std::vector<Run> runs;
  Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(runs, tx.ListRuns(f));
    return Status::Ok();
  });
  if (!s.ok()) return ErrorResponse(s);
  json::array items;
  for (const Run& r : runs) {
    if (CanSeeRunsOf(ctx, *req.subject, r.runbook_id)) items.push_back(RunJson(r));
  }
  std::optional<std::string> next;
  if (static_cast<int>(runs.size()) == f.limit) next = runs.back().id;
  return JsonResponse(200, ListJson(std::move(items), next));
}

HttpResponse ReplayOne(ApiContext& ctx, HttpRequest& req) {
  const std::string& id = req.path_params["id"];
  if (!IsValidId(id))
    return ErrorResponse(
        Status(ErrorCode::kNotFound, fmt::format("run \"{}\" does not exist", id)));
  Run dead;
  Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(dead, tx.GetRun(id));
    return Status::Ok();
  });
  if (s.ok() && !CanSeeRunsOf(ctx, *req.subject, dead.runbook_id)) {
    s = Status(ErrorCode::kNotFound, fmt::format("run {} does not exist", id));
  }
  if (!s.ok()) return ErrorResponse(s);
  if (auto e = ctx.catalog.Find(dead.runbook_id)) {
    if (Status st = CheckCanExecute(*req.subject, *e->runbook); !st.ok()) return ErrorResponse(st);
  }
  if (dead.status != RunStatus::kDead) {
    return ErrorResponse(Status(ErrorCode::kFailedPrecondition,
                                fmt::format("run {} is {}, not in the dead-letter queue; "
                                            "POST /api/v1/runs/{}/retry runs it again",
                                            id, ToString(dead.status), id)));
  }
  auto run = ctx.queue.Replay(
      id, req.subject->username, [&](StoreTx& tx, const std::vector<Enqueued>& out) {
        return AuditIn(ctx, tx, req, "dlq.replay", "run/" + id, "ok",
                       json::serialize(json::object{{"new_run", out.front().run.id}}));
      });
  if (!run.ok()) return ErrorResponse(run.status());
  return JsonResponse(201, RunJson(*run));
}

// Deletes every DEAD run (of one runbook, with ?runbook=), in batches.
HttpResponse Purge(ApiContext& ctx, HttpRequest& req) {
  int64_t purged = 0;
  while (true) {
    RunFilter f;
    f.status = RunStatus::kDead;
    f.limit = 500;
    if (const std::string* v = req.Query("runbook")) f.runbook_id = *v;
    int n = 0;
    Status s = ctx.store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(std::vector<Run> runs, tx.ListRuns(f));
      std::vector<std::string> ids;
      for (const Run& r : runs) ids.push_back(r.id);
      n = static_cast<int>(ids.size());
      AUTOMAN_RETURN_IF_ERROR(tx.DeleteRuns(ids));
      if (n == 0) return Status::Ok();
      return AuditIn(ctx, tx, req, "dlq.purge",
                     "runbook/" + (f.runbook_id ? *f.runbook_id : std::string("*")), "ok",
                     json::serialize(json::object{{"deleted", n}}));
    });
    if (!s.ok()) return ErrorResponse(s);
    purged += n;
    if (n < f.limit) break;
  }
  json::object o;
  o["purged"] = purged;
  return JsonResponse(200, o);
}

double Percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]);
}

constexpr int kMaxScanned = 200000;

HttpResponse Analytics(ApiContext& ctx, HttpRequest& req) {
  auto since = QueryTime(req, "since");
  if (!since.ok()) return ErrorResponse(since.status());
  auto until = QueryTime(req, "until");
  if (!until.ok()) return ErrorResponse(until.status());
  auto limit = QueryInt(req, "limit", 1, 1000);
  if (!limit.ok()) return ErrorResponse(limit.status());
  const Timestamp now = ctx.clock.Now();
  const Timestamp to = until->value_or(now);
  const Timestamp from = since->value_or(to - std::chrono::hours(24 * 7));
  if (from >= to) {
    return ErrorResponse(Status(ErrorCode::kInvalidArgument, "\"since\" must be before \"until\""));
  }
  struct Acc {
    int64_t total = 0, finished = 0, success = 0;
    std::map<std::string, int64_t> by_status;
    std::vector<int64_t> durations;
    std::string last_run_at;
  };
  std::map<std::string, Acc> acc;
  const std::string floor = IdLowerBound(from);
  RunFilter f;
  f.limit = 1000;
  f.before_id = IdLowerBound(to);
  if (const std::string* v = req.Query("runbook")) f.runbook_id = *v;
  int scanned = 0;
  bool truncated = false;
  while (true) {
    std::vector<Run> page;
    Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(page, tx.ListRuns(f));
      return Status::Ok();
    });
    if (!s.ok()) return ErrorResponse(s);
    bool done = static_cast<int>(page.size()) < f.limit;
    for (const Run& r : page) {
      if (r.id < floor) {
        done = true;
        break;
      }
      Acc& a = acc[r.runbook_id];
      if (a.last_run_at.empty()) a.last_run_at = FormatRfc3339(r.created_at);
      ++a.total;
      ++a.by_status[std::string(ToString(r.status))];
      if (IsTerminal(r.status)) {
        ++a.finished;
        if (r.status == RunStatus::kSuccess) ++a.success;
        if (r.started_at && r.finished_at) {
          a.durations.push_back(
              std::chrono::duration_cast<std::chrono::milliseconds>(*r.finished_at - *r.started_at)
                  .count());
        }
      }
      if (++scanned >= kMaxScanned) {
        truncated = true;
        done = true;
        break;
      }
    }
    if (done || page.empty()) break;
    f.before_id = page.back().id;
  }
  std::vector<std::pair<std::string, Acc*>> order;
  for (auto& [id, a] : acc) order.emplace_back(id, &a);
  std::sort(order.begin(), order.end(), [](const auto& x, const auto& y) {
    return x.second->total != y.second->total ? x.second->total > y.second->total
                                              : x.first < y.first;
  });
  json::array items;
  const size_t want = static_cast<size_t>(limit->value_or(100));
  for (auto& [id, a] : order) {
    if (items.size() == want) break;
    json::object o;
    o["runbook"] = id;
    o["runs"] = a->total;
    o["finished"] = a->finished;
    o["success"] = a->success;
    o["success_rate"] =
        a->finished > 0
            ? json::value(static_cast<double>(a->success) / static_cast<double>(a->finished))
            : json::value(nullptr);
    json::object st;
    for (const auto& [k, n] : a->by_status) st[k] = n;
    o["by_status"] = std::move(st);
    json::object d;
    if (a->durations.empty()) {
      d["p50"] = nullptr;
      d["p90"] = nullptr;
      d["p99"] = nullptr;
      d["max"] = nullptr;
    } else {
      d["p50"] = Percentile(a->durations, 0.50);
      d["p90"] = Percentile(a->durations, 0.90);
      d["p99"] = Percentile(a->durations, 0.99);
      d["max"] = *std::max_element(a->durations.begin(), a->durations.end());
    }
    o["duration_ms"] = std::move(d);
    o["last_run_at"] = a->last_run_at;
    items.push_back(std::move(o));
  }
  json::object o;
  o["since"] = FormatRfc3339(from);
  o["until"] = FormatRfc3339(to);
  o["runs_scanned"] = scanned;
  o["truncated"] = truncated;
  o["items"] = std::move(items);
  return JsonResponse(200, o);
}

}  // namespace

void AddQueueRoutes(Router& r, ApiContext& ctx) {
  r.Add({"GET",
         "/api/v1/queue/stats",
         "runs.read",
         "Runs per status",
         "queue",
         {},
         "",
         "QueueStats",
         200,
         false,
         [&ctx](HttpRequest&) { return QueueStats(ctx); }});
  r.Add({"GET",
         "/api/v1/dlq",
         "runs.read",
         "The dead-letter queue: DEAD runs, newest first",
         "queue",
         {{"runbook", "string", "only runs of this runbook"},
          {"limit", "integer", "1..1000, default 50"},
          {"cursor", "string", "next_cursor of the previous page"}},
         "",
         "RunList",
         200,
         false,
         [&ctx](HttpRequest& q) { return ListDead(ctx, q); }});
  r.Add({"POST",
         "/api/v1/dlq/{id}/replay",
         "queue.manage",
         "Replay a dead run as a new run (retry_of points at it)",
         "queue",
         {},
         "",
         "Run",
         201,
         false,
         [&ctx](HttpRequest& q) { return ReplayOne(ctx, q); }});
  r.Add({"DELETE",
         "/api/v1/dlq",
         "queue.manage",
         "Purge the dead-letter queue",
         "queue",
         {{"runbook", "string", "only runs of this runbook"}},
         "",
         "PurgeResult",
         200,
         false,
         [&ctx](HttpRequest& q) { return Purge(ctx, q); }});
  r.Add({"GET",
         "/api/v1/analytics/runbooks",
         "runs.read",
         "Per runbook over a range, most used first: runs, success rate, duration percentiles",
         "analytics",
         {{"since", "string", "RFC 3339, default a week before until"},
          {"until", "string", "RFC 3339, default now"},
          {"runbook", "string", "only this runbook"},
          {"limit", "integer", "1..1000, default 100"}},
         "",
         "Analytics",
         200,
         false,
         [&ctx](HttpRequest& q) { return Analytics(ctx, q); }});
}

}  // namespace automan::api
