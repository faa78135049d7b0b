// /api/v1/audit: the audit trail (query, export as JSON lines or CSV) and its verification.
#include <fmt/format.h>

#include "api/access.h"
#include "api/routes.h"
#include "api/wire.h"
#include "audit/export.h"

namespace automan::api {

namespace {

json::object EntryJson(const AuditRecord& e) {
  json::error_code ec;
  json::value details = json::parse(e.details_json, ec);
  return json::object{{"seq", e.seq},       {"at", audit::FormatRfc3339Micros(e.at)},
                      {"actor", e.actor},   {"action", e.action},
                      {"target", e.target}, {"outcome", e.outcome},
                      {"remote", e.remote}, {"details", ec ? json::value(json::object{}) : details},
                      {"hash", e.hash}};
}

HttpResponse ListAudit(ApiContext& ctx, HttpRequest& req) {
  AuditFilter f;
  auto after = QueryInt(req, "cursor", 0, INT64_MAX);
  if (!after.ok()) return ErrorResponse(after.status());
  f.after_seq = after->value_or(0);
  auto limit = QueryInt(req, "limit", 1, 10000);
  if (!limit.ok()) return ErrorResponse(limit.status());
  f.limit = static_cast<int>(limit->value_or(100));
  if (const std::string* v = req.Query("actor")) f.actor = *v;
  if (const std::string* v = req.Query("action")) f.action = *v;
  auto since = QueryTime(req, "since");
  if (!since.ok()) return ErrorResponse(since.status());
  f.since = *since;
  auto until = QueryTime(req, "until");
  if (!until.ok()) return ErrorResponse(until.status());
  f.until = *until;
  const std::string* format = req.Query("format");
  const std::string fmt_name = format ? *format : "json";
  if (fmt_name != "json" && fmt_name != "jsonl" && fmt_name != "csv") {
    return ErrorResponse(400, "invalid_argument", "format must be json, jsonl or csv");
  }
  auto entries = ctx.security.log.List(f);
  if (!entries.ok()) return ErrorResponse(entries.status());
  std::optional<std::string> next;
  if (static_cast<int>(entries->size()) == f.limit) next = std::to_string(entries->back().seq);
  if (fmt_name == "json") {
    json::array items;
    for (const AuditRecord& e : *entries) items.push_back(EntryJson(e));
    return JsonResponse(200, ListJson(std::move(items), next));
  }
  HttpResponse resp;
  if (fmt_name == "csv") {
    resp.content_type = "text/csv; charset=utf-8";
    resp.body = audit::AuditToCsv(*entries);
  } else {
    resp.content_type = "application/x-ndjson";
    resp.body = audit::AuditToJsonLines(*entries);
  }
  // The cursor of the next page, for exports that page through the trail.
  if (next) resp.headers.emplace_back("X-Next-Cursor", *next);
  return resp;
}

HttpResponse VerifyAudit(ApiContext& ctx, HttpRequest&) {
  // Anchor what this server committed since its last tick first: those entries are
  // genuine, and a head that lags behind them would read as a truncation.
  (void)ctx.security.log.Checkpoint();
  auto report = ctx.security.log.Verify();
  if (!report.ok()) return ErrorResponse(report.status());
  const audit::VerifyReport& r = *report;
  json::object o{{"ok", r.ok},
                 {"entries_checked", r.entries_checked},
                 {"last_seq", r.last_seq},
                 {"anchor_seq", r.anchor_seq}};
  if (!r.ok) {
    o["kind"] = std::string(audit::ToString(r.kind));
    o["first_bad_seq"] = r.first_bad_seq;
    o["message"] = r.message;
  }
  return JsonResponse(200, o);
}

}  // namespace

void AddAuditRoutes(Router& r, ApiContext& ctx) {
  r.Add({"GET",
         "/api/v1/audit",
         "audit.read",
         "Audit entries, oldest first (format=json, jsonl or csv for export)",
         "audit",
         {{"cursor", "integer", "entries after this seq (next_cursor of the last page)"},
          {"limit", "integer", "at most this many (1..10000, default 100)"},
          {"actor", "string", "only this actor"},
          {"action", "string", "this action, or a prefix ending in '.' (run.)"},
          {"since", "string", "at or after this instant (RFC 3339)"},
          {"until", "string", "before this instant (RFC 3339)"},
          {"format", "string", "json (default), jsonl or csv"}},
         "",
         "AuditList",
         200,
         false,
         [&ctx](HttpRequest& q) { return ListAudit(ctx, q); }});
  r.Add({"GET",
         "/api/v1/audit/verify",
         "audit.read",
         "Check the hash chain of the audit trail: modified, missing, reordered, forged or "
         "truncated entries",
         "audit",
         {},
         "",
         "AuditVerify",
         200,
         false,
         [&ctx](HttpRequest& q) { return VerifyAudit(ctx, q); }});
}

}  // namespace automan::api
