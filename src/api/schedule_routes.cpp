// /api/v1/schedules: CRUD, pause/resume, next fires preview, fire ledger; and
// /api/v1/cron/preview for a cron builder. Changes go through scheduler/changes.h like the
// CLI's and the file sync's, so a change takes effect at once.
#include <fmt/format.h>

#include <regex>

#include "api/access.h"
#include "api/routes.h"
#include "api/wire.h"
#include "common/duration.h"
#include "scheduler/changes.h"
#include "scheduler/cron.h"
#include "scheduler/definition.h"
#include "scheduler/timing.h"

namespace automan::api {

namespace {

// Sources of schedules the API may change: its own and the CLI's (file schedules are
// changed in their file).
bool ManagedHere(const ScheduleRecord& r) { return r.source == "api" || r.source == "cli"; }

Result<ScheduleSpec> SpecFromJson(const json::object& o, const Runbook& rb) {
  AUTOMAN_RETURN_IF_ERROR(
      CheckFields(o, {"runbook", "id", "cron", "every", "at", "tz", "lead", "params", "dst",
                      "misfire", "max_lateness", "overlap", "jitter", "paused", "active"}));
  static const std::regex kId("^[a-z][a-z0-9_-]{0,62}$");
  ScheduleSpec s;
  AUTOMAN_ASSIGN_OR_RETURN(std::optional<std::string> id, GetString(o, "id"));
  if (!id || !std::regex_match(*id, kId)) {
    return Status(
        ErrorCode::kInvalidArgument,
        "field \"id\" must be lower-case letters, digits, '_' and '-' (e.g. \"nightly\")");
  }
  s.id = *id;
  auto str = [&](std::string_view key, std::string& out) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<std::string> v, GetString(o, key));
    if (v) out = *v;
    return Status::Ok();
  };
  AUTOMAN_RETURN_IF_ERROR(str("cron", s.cron));
  AUTOMAN_RETURN_IF_ERROR(str("at", s.at));
  AUTOMAN_RETURN_IF_ERROR(str("tz", s.tz));
  AUTOMAN_RETURN_IF_ERROR(str("misfire", s.misfire));
  AUTOMAN_RETURN_IF_ERROR(str("overlap", s.overlap));
  auto dur = [&](std::string_view key, std::optional<Millis>& out) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<std::string> v, GetString(o, key));
    if (!v) return Status::Ok();
    auto d = ParseDuration(*v);
    if (!d.ok()) {
      return Status(ErrorCode::kInvalidArgument,
                    fmt::format("field \"{}\": {}", key, d.status().message()));
    }
    out = *d;
    return Status::Ok();
  };
  AUTOMAN_RETURN_IF_ERROR(dur("every", s.every));
  AUTOMAN_RETURN_IF_ERROR(dur("lead", s.lead));
  AUTOMAN_RETURN_IF_ERROR(dur("max_lateness", s.max_lateness));
  AUTOMAN_RETURN_IF_ERROR(dur("jitter", s.jitter));
  int kinds = (!s.cron.empty()) + (s.every.has_value()) + (!s.at.empty());
  if (kinds != 1) {
    return Status(ErrorCode::kInvalidArgument,
                  "give exactly one of \"cron\", \"every\" and \"at\"");
  }
  if (!s.at.empty() && !ParseRfc3339(s.at)) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("field \"at\": \"{}\" is not an RFC 3339 instant", s.at));
  }
  static const std::vector<std::string> kMisfire{"skip", "run_once", "run_all"};
  static const std::vector<std::string> kOverlap{"allow", "skip", "queue_one", "cancel_previous"};
  if (std::find(kMisfire.begin(), kMisfire.end(), s.misfire) == kMisfire.end()) {
    return Status(ErrorCode::kInvalidArgument,
                  "field \"misfire\" must be skip, run_once or run_all");
  }
  if (std::find(kOverlap.begin(), kOverlap.end(), s.overlap) == kOverlap.end()) {
    return Status(ErrorCode::kInvalidArgument,
                  "field \"overlap\" must be allow, skip, queue_one or cancel_previous");
  }
  if (const json::value* d = o.if_contains("dst"); d && !d->is_null()) {
    if (!d->is_object())
      return Status(ErrorCode::kInvalidArgument, "field \"dst\" must be an object");
    AUTOMAN_RETURN_IF_ERROR(CheckFields(d->as_object(), {"gap", "repeat"}, "dst"));
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<std::string> gap, GetString(d->as_object(), "gap"));
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<std::string> rep, GetString(d->as_object(), "repeat"));
    if (gap && *gap != "shift" && *gap != "skip") {
      return Status(ErrorCode::kInvalidArgument, "dst.gap must be shift or skip");
    }
    if (rep && *rep != "first" && *rep != "both") {
      return Status(ErrorCode::kInvalidArgument, "dst.repeat must be first or both");
    }
    s.dst_gap = gap.value_or("");
    s.dst_repeat = rep.value_or("");
  }
  AUTOMAN_ASSIGN_OR_RETURN(std::optional<bool> active, GetBool(o, "active"));
  s.active = active.value_or(true);
  if (const json::value* p = o.if_contains("params"); p && !p->is_null()) {
    if (!p->is_object())
      return Status(ErrorCode::kInvalidArgument, "field \"params\" must be an object");
    for (const auto& kv : p->as_object()) {
      std::string name(kv.key());
      const ParamSpec* spec = rb.FindParam(name);
      if (spec == nullptr) {
        return Status(ErrorCode::kInvalidArgument,
                      fmt::format("params: runbook {} has no parameter \"{}\"", rb.id, name));
      }
      if (spec->type == ParamType::kSecret) {
        return Status(
            ErrorCode::kInvalidArgument,
            fmt::format("params: secret parameter \"{}\" cannot be stored in a schedule", name));
      }
      AUTOMAN_ASSIGN_OR_RETURN(std::string text, ParamText(name, kv.value()));
      AUTOMAN_ASSIGN_OR_RETURN(s.params[name], CanonicalParamValue(*spec, text));
    }
  }
  std::vector<std::pair<std::string, std::string>> all(s.params.begin(), s.params.end());
  AUTOMAN_RETURN_IF_ERROR(BindParams(rb, all).status());
  AUTOMAN_RETURN_IF_ERROR(ScheduleTiming::Make(s).status());
  return s;
}

std::optional<Timestamp> NextFire(const ScheduleRecord& rec, const ScheduleDefinition& def,
                                  const ScheduleTiming& timing, Timestamp now) {
  if (!def.spec.active || rec.paused) return std::nullopt;
  Timestamp after = std::max(rec.cursor, now);
  for (int i = 0; i < 16; ++i) {
    auto occ = timing.Next(after);
    if (!occ) return std::nullopt;
    if (occ->kind == Occurrence::Kind::kFire) return occ->nominal;
    after = occ->nominal;
  }
  return std::nullopt;
}

json::object ScheduleJson(const ScheduleRecord& rec, Timestamp now) {
  json::object o;
  o["id"] = rec.id;
  o["runbook"] = rec.runbook_id;
  o["schedule"] = rec.id.substr(rec.id.find('/') + 1);
  o["source"] = rec.source;
  o["paused"] = rec.paused;
  o["generation"] = rec.generation;
  o["created_at"] = FormatRfc3339(rec.created_at);
  o["updated_at"] = FormatRfc3339(rec.updated_at);
  json::error_code ec;
  json::value def = json::parse(rec.spec_json, ec);
  o["definition"] = ec ? json::value(nullptr) : def;
  auto d = DecodeScheduleDefinition(rec.spec_json);
  json::value next = nullptr;
  std::string state = rec.paused ? "paused" : "active";
  if (d.ok()) {
    if (!d->spec.active) state = "inactive";
    if (auto timing = ScheduleTiming::Make(d->spec); timing.ok()) {
      if (auto n = NextFire(rec, *d, *timing, now)) next = json::value(FormatRfc3339(*n));
    }
  }
  o["state"] = state;
  o["next_fire_at"] = std::move(next);
  return o;
}

json::object FireJson(const FireRecord& f) {
  json::object o;
  o["nominal_at"] = FormatRfc3339(f.nominal);
  o["due_at"] = FormatRfc3339(f.due);
  o["status"] = ToString(f.status);
  o["reason"] = f.reason.empty() ? json::value(nullptr) : json::value(f.reason);
  o["run_id"] = f.run_id.empty() ? json::value(nullptr) : json::value(f.run_id);
  o["delay_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(f.delay).count();
  o["wall"] = f.wall;
  o["generation"] = f.generation;
  o["recorded_at"] = FormatRfc3339(f.recorded_at);
  return o;
}

std::string PathId(HttpRequest& req) {
  return ScheduleStoreId(req.path_params["runbook"], req.path_params["schedule"]);
}

// A schedule of a runbook the caller may not see does not exist for it.
Status CheckVisible(ApiContext& ctx, const HttpRequest& req, const ScheduleRecord& rec) {
  if (CanSeeRunsOf(ctx, *req.subject, rec.runbook_id)) return Status::Ok();
  return Status(ErrorCode::kNotFound, fmt::format("schedule {} does not exist", rec.id));
}

Result<ScheduleRecord> Load(ApiContext& ctx, const HttpRequest& req, const std::string& id) {
  ScheduleRecord rec;
  AUTOMAN_RETURN_IF_ERROR(ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(rec, tx.GetSchedule(id));
    return Status::Ok();
  }));
  AUTOMAN_RETURN_IF_ERROR(CheckVisible(ctx, req, rec));
  return rec;
}

HttpResponse ListSchedules(ApiContext& ctx, HttpRequest& req) {
  std::vector<ScheduleRecord> recs;
  Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(recs, tx.ListSchedules());
    return Status::Ok();
  });
  if (!s.ok()) return ErrorResponse(s);
  const std::string* runbook = req.Query("runbook");
  const Timestamp now = ctx.clock.Now();
  json::array items;
  for (const ScheduleRecord& r : recs) {
    if (runbook && r.runbook_id != *runbook) continue;
    if (!CheckVisible(ctx, req, r).ok()) continue;
    items.push_back(ScheduleJson(r, now));
  }
  return JsonResponse(200, ListJson(std::move(items), std::nullopt));
}

// Create (`replace_id` empty) or replace.
HttpResponse PutSchedule(ApiContext& ctx, HttpRequest& req, const std::string& replace_id) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  std::string runbook_id;
  if (replace_id.empty()) {
    auto rb = GetString(*body, "runbook");
    if (!rb.ok()) return ErrorResponse(rb.status());
    if (!*rb)
      return ErrorResponse(Status(ErrorCode::kInvalidArgument, "field \"runbook\" is required"));
    runbook_id = **rb;
  } else {
    runbook_id = req.path_params["runbook"];
    (*body)["id"] = req.path_params["schedule"];
    body->erase("runbook");
  }
  auto entry = ctx.catalog.Find(runbook_id);
  if (!entry) {
    return ErrorResponse(
        Status(ErrorCode::kNotFound, fmt::format("runbook \"{}\" does not exist", runbook_id)));
  }
  const Runbook& rb = *entry->runbook;
  // A schedule starts runs on its creator's behalf: they must be allowed to start them.
  if (Status st = CheckCanExecute(*req.subject, rb); !st.ok()) return ErrorResponse(st);
  auto spec = SpecFromJson(*body, rb);
  if (!spec.ok()) return ErrorResponse(spec.status());
  auto paused = GetBool(*body, "paused");
  if (!paused.ok()) return ErrorResponse(paused.status());
  const Timestamp now = ctx.clock.Now();
  ScheduleRecord rec = NewScheduleRecord(rb, *spec, "api", now);
  rec.paused = paused->value_or(false);
  ScheduleRecord stored;
  Status s = ctx.store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    auto existing = tx.GetSchedule(rec.id);
    if (existing.ok()) {
      if (replace_id.empty()) {
        return Status(ErrorCode::kAlreadyExists,
                      fmt::format("schedule {} exists; PUT /api/v1/schedules/{} replaces it",
                                  rec.id, rec.id));
      }
      if (!ManagedHere(*existing)) {
        return Status(
            ErrorCode::kFailedPrecondition,
            fmt::format("schedule {} is defined by {}; change it there", rec.id, existing->source));
      }
      rec.cursor = std::max(rec.cursor, existing->cursor);
      if (!paused->has_value()) rec.paused = existing->paused;
    } else if (existing.status().code() != ErrorCode::kNotFound) {
      return existing.status();
    } else if (!replace_id.empty()) {
      return Status(ErrorCode::kNotFound, fmt::format("schedule {} does not exist", rec.id));
    }
    AUTOMAN_RETURN_IF_ERROR(
        tx.PutRunbookVersion(RunbookVersion{rb.version, rb.id, rb.yaml, entry->source, now}));
    AUTOMAN_ASSIGN_OR_RETURN(stored, PutScheduleChange(tx, rec, now));
    return AuditIn(ctx, tx, req, replace_id.empty() ? "schedule.create" : "schedule.update",
                   "schedule/" + rec.id, "ok",
                   json::serialize(json::object{{"spec", json::parse(rec.spec_json)}}));
  });
  if (!s.ok()) return ErrorResponse(s);
  return JsonResponse(replace_id.empty() ? 201 : 200, ScheduleJson(stored, now));
}

HttpResponse GetSchedule(ApiContext& ctx, HttpRequest& req) {
  auto rec = Load(ctx, req, PathId(req));
  if (!rec.ok()) return ErrorResponse(rec.status());
  return JsonResponse(200, ScheduleJson(*rec, ctx.clock.Now()));
}

HttpResponse SetPaused(ApiContext& ctx, HttpRequest& req, bool paused) {
  const std::string id = PathId(req);
  ScheduleRecord stored;
  const Timestamp now = ctx.clock.Now();
  Status s = ctx.store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(ScheduleRecord rec, tx.GetSchedule(id));
    AUTOMAN_RETURN_IF_ERROR(CheckVisible(ctx, req, rec));
    stored = rec;
    if (rec.paused == paused) return Status::Ok();
    rec.paused = paused;
    // Resuming does not catch up what fell due while paused.
    if (!paused) rec.cursor = std::max(rec.cursor, now);
    rec.updated_at = now;
    AUTOMAN_ASSIGN_OR_RETURN(stored, PutScheduleChange(tx, rec, now));
    return AuditIn(ctx, tx, req, paused ? "schedule.pause" : "schedule.resume", "schedule/" + id);
  });
  if (!s.ok()) return ErrorResponse(s);
  return JsonResponse(200, ScheduleJson(stored, now));
}

HttpResponse DeleteSchedule(ApiContext& ctx, HttpRequest& req) {
  const std::string id = PathId(req);
  Status s = ctx.store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(ScheduleRecord rec, tx.GetSchedule(id));
    AUTOMAN_RETURN_IF_ERROR(CheckVisible(ctx, req, rec));
    if (!ManagedHere(rec)) {
      return Status(
          ErrorCode::kFailedPrecondition,
          fmt::format("schedule {} is defined by {}; remove it from that file (or pause it)", id,
                      rec.source));
    }
    AUTOMAN_RETURN_IF_ERROR(DeleteScheduleChange(tx, id, ctx.clock.Now()));
    return AuditIn(ctx, tx, req, "schedule.delete", "schedule/" + id);
  });
  if (!s.ok()) return ErrorResponse(s);
  return NoContent();
}

// The next `count` occurrences of a timing after `from`, skipped ones marked.
json::array Preview(const ScheduleTiming& timing, Timestamp from, int count,
                    const std::string& sched_id) {
  json::array items;
  Timestamp after = from;
  for (int guard = 0; static_cast<int>(items.size()) < count && guard < count * 4; ++guard) {
    auto occ = timing.Next(after);
    if (!occ) break;
    json::object o;
    o["nominal_at"] = FormatRfc3339(occ->nominal);
    o["local"] = timing.FormatLocal(occ->nominal);
    o["due_at"] = FormatRfc3339(timing.Due(occ->nominal, sched_id));
    o["wall"] = ScheduleTiming::FormatWall(occ->wall);
    o["fires"] = occ->kind == Occurrence::Kind::kFire;
    if (occ->kind == Occurrence::Kind::kSkipDstGap) o["skipped"] = "dst_gap";
    if (occ->kind == Occurrence::Kind::kSkipDstRepeat) o["skipped"] = "dst_repeat";
    items.push_back(std::move(o));
    after = occ->nominal;
  }
  return items;
}

HttpResponse NextFires(ApiContext& ctx, HttpRequest& req) {
  auto count = QueryInt(req, "count", 1, 100);
  if (!count.ok()) return ErrorResponse(count.status());
  auto rec = Load(ctx, req, PathId(req));
  if (!rec.ok()) return ErrorResponse(rec.status());
  auto def = DecodeScheduleDefinition(rec->spec_json);
  if (!def.ok()) return ErrorResponse(def.status());
  auto timing = ScheduleTiming::Make(def->spec);
  if (!timing.ok()) return ErrorResponse(timing.status());
  const Timestamp from = std::max(rec->cursor, ctx.clock.Now());
  json::object o;
  o["id"] = rec->id;
  o["tz"] = def->spec.tz;
  o["items"] = Preview(*timing, from, static_cast<int>(count->value_or(10)), rec->id);
  return JsonResponse(200, o);
}

HttpResponse Ledger(ApiContext& ctx, HttpRequest& req) {
  auto limit = QueryInt(req, "limit", 1, 10000);
  if (!limit.ok()) return ErrorResponse(limit.status());
  std::optional<Timestamp> before;
  if (const std::string* c = req.Query("cursor")) {
    before = ParseRfc3339(*c);
    if (!before) return ErrorResponse(Status(ErrorCode::kInvalidArgument, "malformed cursor"));
  }
  const std::string id = PathId(req);
  if (!CanSeeRunsOf(ctx, *req.subject, req.path_params["runbook"])) {
    return ErrorResponse(
        Status(ErrorCode::kNotFound, fmt::format("schedule {} does not exist", id)));
  }
  const int want = static_cast<int>(limit->value_or(50));
  std::vector<FireRecord> fires;
  Status s = ctx.store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(fires, tx.ListFires(id, before, want));
    // A deleted schedule keeps its ledger: 404 only when there is neither.
    if (fires.empty() && !before) {
      auto rec = tx.GetSchedule(id);
      if (!rec.ok()) return rec.status();
    }
    return Status::Ok();
  });
  if (!s.ok()) return ErrorResponse(s);
  json::array items;
  for (const FireRecord& f : fires) items.push_back(FireJson(f));
  std::optional<std::string> next;
  if (static_cast<int>(fires.size()) == want) next = FormatRfc3339(fires.back().nominal);
  return JsonResponse(200, ListJson(std::move(items), next));
}

// A cron expression in a zone, without a schedule: the cron builder's preview.
HttpResponse CronPreview(ApiContext& ctx, HttpRequest& req) {
  const std::string* expr = req.Query("expr");
  if (expr == nullptr) {
    return ErrorResponse(
        Status(ErrorCode::kInvalidArgument, "query parameter \"expr\" is required"));
  }
  auto count = QueryInt(req, "count", 1, 100);
  if (!count.ok()) return ErrorResponse(count.status());
  ScheduleSpec spec;
  spec.id = "preview";
  spec.cron = *expr;
  if (const std::string* tz = req.Query("tz")) spec.tz = *tz;
  auto cron = CronExpr::Parse(*expr);
  if (!cron.ok()) return ErrorResponse(cron.status());
  auto timing = ScheduleTiming::Make(spec);
  if (!timing.ok()) return ErrorResponse(timing.status());
  auto from = QueryTime(req, "from");
  if (!from.ok()) return ErrorResponse(from.status());
  json::object o;
  o["expr"] = *expr;
  o["tz"] = spec.tz;
  o["explain"] = cron->Explain();
  o["items"] = Preview(*timing, from->value_or(ctx.clock.Now()),
                       static_cast<int>(count->value_or(10)), "preview");
  return JsonResponse(200, o);
}

}  // namespace

void AddScheduleRoutes(Router& r, ApiContext& ctx) {
  const std::string one = "/api/v1/schedules/{runbook}/{schedule}";
  r.Add({"GET",
         "/api/v1/schedules",
         "schedules.read",
         "List schedules with their next fire",
         "schedules",
         {{"runbook", "string", "only schedules of this runbook"}},
         "",
         "ScheduleList",
         200,
         false,
         [&ctx](HttpRequest& q) { return ListSchedules(ctx, q); }});
  r.Add({"POST",
         "/api/v1/schedules",
         "schedules.manage",
         "Create a schedule",
         "schedules",
         {},
         "ScheduleCreate",
         "Schedule",
         201,
         false,
         [&ctx](HttpRequest& q) { return PutSchedule(ctx, q, ""); }});
  r.Add({"GET",
         one,
         "schedules.read",
         "A schedule",
         "schedules",
         {},
         "",
         "Schedule",
         200,
         false,
         [&ctx](HttpRequest& q) { return GetSchedule(ctx, q); }});
  r.Add({"PUT",
         one,
         "schedules.manage",
         "Replace a schedule (API- or CLI-managed)",
         "schedules",
         {},
         "ScheduleCreate",
         "Schedule",
         200,
         false,
         [&ctx](HttpRequest& q) { return PutSchedule(ctx, q, PathId(q)); }});
  r.Add({"DELETE",
         one,
         "schedules.manage",
         "Delete a schedule (its ledger is kept)",
         "schedules",
         {},
         "",
         "",
         204,
         false,
         [&ctx](HttpRequest& q) { return DeleteSchedule(ctx, q); }});
  r.Add({"POST",
         one + "/pause",
         "schedules.manage",
         "Pause a schedule",
         "schedules",
         {},
         "",
         "Schedule",
         200,
         false,
         [&ctx](HttpRequest& q) { return SetPaused(ctx, q, true); }});
  r.Add({"POST",
         one + "/resume",
         "schedules.manage",
         "Resume a schedule (what fell due while paused is not caught up)",
         "schedules",
         {},
         "",
         "Schedule",
         200,
         false,
         [&ctx](HttpRequest& q) { return SetPaused(ctx, q, false); }});
  r.Add({"GET",
         one + "/next",
         "schedules.read",
         "The next fires, DST decisions included",
         "schedules",
         {{"count", "integer", "1..100, default 10"}},
         "",
         "FirePreview",
         200,
         false,
         [&ctx](HttpRequest& q) { return NextFires(ctx, q); }});
  r.Add({"GET",
         one + "/ledger",
         "schedules.read",
         "The fire ledger, newest first: fired, late, skipped (why), missed",
         "schedules",
         {{"limit", "integer", "1..10000, default 50"},
          {"cursor", "string", "next_cursor of the previous page"}},
         "",
         "FireList",
         200,
         false,
         [&ctx](HttpRequest& q) { return Ledger(ctx, q); }});
  r.Add({"GET",
         "/api/v1/cron/preview",
         "schedules.read",
         "Explain a cron expression and list its next fires in a zone",
         "schedules",
         {{"expr", "string", "the cron expression", true},
          {"tz", "string", "IANA zone, default UTC"},
          {"from", "string", "RFC 3339, default now"},
          {"count", "integer", "1..100, default 10"}},
         "",
         "FirePreview",
         200,
         false,
         [&ctx](HttpRequest& q) { return CronPreview(ctx, q); }});
}

}  // namespace automan::api
