// /api/v1/runbooks: the catalog (list, get with a JSON Schema of the params), API-managed
// runbooks from YAML (create, replace, delete), validate, dry-run.
#include <fmt/format.h>

#include "api/access.h"
#include "api/routes.h"
#include "api/wire.h"
#include "common/duration.h"

namespace automan::api {

namespace {

json::value TypedDefault(const ParamSpec& p, const std::string& text) {
  switch (p.type) {
    case ParamType::kInt:
      return json::value(std::strtoll(text.c_str(), nullptr, 10));
    case ParamType::kNumber:
      return json::value(std::strtod(text.c_str(), nullptr));
    case ParamType::kBool:
      return json::value(text == "true");
    default:
      return json::value(text);
  }
}

// The params as a JSON Schema 2020-12 document (what a UI form is generated from).
json::object ParamsSchema(const Runbook& rb) {
  json::object props;
  json::array required;
  for (const ParamSpec& p : rb.params) {
    json::object s;
    switch (p.type) {
      case ParamType::kString:
        s["type"] = "string";
        break;
      case ParamType::kInt:
        s["type"] = "integer";
        break;
      case ParamType::kNumber:
        s["type"] = "number";
        break;
      case ParamType::kBool:
        s["type"] = "boolean";
        break;
      case ParamType::kEnum: {
        s["type"] = "string";
        json::array e;
        for (const auto& v : p.values) e.push_back(json::value(v));
        s["enum"] = std::move(e);
        break;
      }
      case ParamType::kSecret:
        s["type"] = "string";
        s["format"] = "password";
        s["writeOnly"] = true;
        break;
    }
    if (!p.pattern.empty()) s["pattern"] = "^(?:" + p.pattern + ")$";
    if (!p.description.empty()) s["description"] = p.description;
    if (p.default_value && p.type != ParamType::kSecret)
      s["default"] = TypedDefault(p, *p.default_value);
    props[p.name] = std::move(s);
    if (p.required) required.push_back(json::value(p.name));
  }
  json::object o;
  o["$schema"] = "https://json-schema.org/draft/2020-12/schema";
  o["type"] = "object";
  o["properties"] = std::move(props);
  o["required"] = std::move(required);
  o["additionalProperties"] = false;
  return o;
}

json::value MillisOrNull(const std::optional<Millis>& m) {
  if (!m) return nullptr;
  return json::value(m->count());
}

json::object StepJson(const Step& s) {
  json::object o;
  o["id"] = s.id;
  o["name"] = s.name;
  if (s.shell) {
    o["kind"] = "shell";
    o["shell"] = *s.shell;
  } else {
    o["kind"] = "argv";
    json::array a;
    for (const auto& x : s.argv) a.push_back(json::value(x));
    o["argv"] = std::move(a);
  }
  json::object env;
  for (const auto& [k, v] : s.env) env[k] = v;
  o["env"] = std::move(env);
  o["cwd"] = s.cwd.empty() ? json::value(nullptr) : json::value(s.cwd);
  o["timeout_ms"] = MillisOrNull(s.timeout);
  o["retries"] = s.retries ? json::value(s.retries->count) : json::value(nullptr);
  o["continue_on_error"] = s.continue_on_error;
  json::array outs;
  for (const auto& k : s.outputs) outs.push_back(json::value(k));
  o["outputs"] = std::move(outs);
  return o;
}

json::object Summary(const CatalogEntry& e) {
  const Runbook& rb = *e.runbook;
  json::object o;
  o["id"] = rb.id;
  o["name"] = rb.name;
  o["description"] = rb.description;
  o["category"] = rb.category.empty() ? json::value(nullptr) : json::value(rb.category);
  json::array tags;
  for (const auto& t : rb.tags) tags.push_back(json::value(t));
  o["tags"] = std::move(tags);
  o["version"] = rb.version;
  o["origin"] = ToString(e.origin);
  o["source"] = e.source;
  o["dangerous"] = rb.dangerous;
  o["params_count"] = rb.params.size();
  o["steps_count"] = rb.steps.size();
  return o;
}

json::object Detail(const CatalogEntry& e) {
  const Runbook& rb = *e.runbook;
  json::object o = Summary(e);
  o["params_schema"] = ParamsSchema(rb);
  json::array steps, rollback;
  for (const Step& s : rb.steps) steps.push_back(StepJson(s));
  for (const Step& s : rb.rollback) rollback.push_back(StepJson(s));
  o["steps"] = std::move(steps);
  o["rollback"] = std::move(rollback);
  o["timeout_ms"] = MillisOrNull(rb.timeout);
  o["cooldown_ms"] = MillisOrNull(rb.cooldown);
  o["requires"] =
      rb.requires_permission.empty() ? json::value(nullptr) : json::value(rb.requires_permission);
  json::array roles;
  for (const auto& r : rb.allowed_roles) roles.push_back(json::value(r));
  o["allowed_roles"] = std::move(roles);
  json::array sched;
  for (const auto& s : rb.schedules) sched.push_back(json::value(s.id));
  o["schedules"] = std::move(sched);
  o["yaml"] = rb.yaml;
  return o;
}

bool Contains(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  auto lower = [](std::string_view s) {
    std::string o(s);
    for (char& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
  };
  return lower(hay).find(lower(needle)) != std::string::npos;
}

HttpResponse ListRunbooks(ApiContext& ctx, HttpRequest& req) {
  auto limit = QueryInt(req, "limit", 1, 1000);
  if (!limit.ok()) return ErrorResponse(limit.status());
  const std::string* category = req.Query("category");
  const std::string* tag = req.Query("tag");
  const std::string* q = req.Query("q");
  const std::string* cursor = req.Query("cursor");
  auto snap = ctx.catalog.Snapshot();
  json::array items;
  std::optional<std::string> next;
  const size_t want = static_cast<size_t>(limit->value_or(100));
  for (auto it = cursor ? snap->upper_bound(*cursor) : snap->begin(); it != snap->end(); ++it) {
    const Runbook& rb = *it->second.runbook;
    if (!CanSee(*req.subject, rb)) continue;
    if (category && rb.category != *category) continue;
    if (tag && std::find(rb.tags.begin(), rb.tags.end(), *tag) == rb.tags.end()) continue;
    if (q && !Contains(rb.id, *q) && !Contains(rb.name, *q) && !Contains(rb.description, *q)) {
      continue;
    }
    if (items.size() == want) {
      next = items.back().as_object().at("id").as_string().c_str();
      break;
    }
    items.push_back(Summary(it->second));
  }
  return JsonResponse(200, ListJson(std::move(items), next));
}

// The catalog entry, if the caller may see it (a runbook it may not see does not exist).
std::optional<CatalogEntry> FindVisible(ApiContext& ctx, const HttpRequest& req,
                                        const std::string& id) {
  auto e = ctx.catalog.Find(id);
  if (e && !CanSee(*req.subject, *e->runbook)) return std::nullopt;
  return e;
}

// The audit entry of a runbook change. The catalog keeps API runbooks as files, not in the
// store, so the entry commits right after the change rather than with it.
void AuditRunbook(ApiContext& ctx, const HttpRequest& req, const std::string& action,
                  const std::string& id, const json::object& details) {
  (void)ctx.store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) {
    return AuditIn(ctx, tx, req, action, "runbook/" + id, "ok", json::serialize(details));
  });
}

HttpResponse GetRunbook(ApiContext& ctx, HttpRequest& req) {
  auto e = FindVisible(ctx, req, req.path_params["id"]);
  if (!e) {
    return ErrorResponse(Status(
        ErrorCode::kNotFound, fmt::format("runbook \"{}\" does not exist", req.path_params["id"])));
  }
  return JsonResponse(200, Detail(*e));
}

// The YAML of a request: the raw body (application/yaml, text/yaml, text/plain) or a JSON
// object {"yaml": "..."}.
Result<std::string> YamlBody(const HttpRequest& req) {
  const std::string* ct = req.Header("content-type");
  std::string type = ct ? ct->substr(0, ct->find(';')) : "";
  if (type == "application/json") {
    AUTOMAN_ASSIGN_OR_RETURN(json::object o, ParseBodyObject(req.body));
    AUTOMAN_RETURN_IF_ERROR(CheckFields(o, {"yaml"}));
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<std::string> y, GetString(o, "yaml"));
    if (!y) return Status(ErrorCode::kInvalidArgument, "field \"yaml\" is required");
    return *y;
  }
  if (req.body.empty()) {
    return Status(ErrorCode::kInvalidArgument, "the request body is empty; send the runbook YAML");
  }
  return req.body;
}

HttpResponse PutRunbook(ApiContext& ctx, HttpRequest& req, bool create) {
  auto yaml = YamlBody(req);
  if (!yaml.ok()) return ErrorResponse(yaml.status());
  if (!create && !FindVisible(ctx, req, req.path_params["id"]) &&
      ctx.catalog.Find(req.path_params["id"])) {
    return ErrorResponse(Status(
        ErrorCode::kNotFound, fmt::format("runbook \"{}\" does not exist", req.path_params["id"])));
  }
  auto e = ctx.catalog.PutApiRunbook(*yaml, create ? "" : req.path_params["id"]);
  if (!e.ok()) return ErrorResponse(e.status());
  json::object details{{"version", e->runbook->version}};
  if (!e->runbook->sandbox.enabled) details["sandbox"] = "off";  // an opt-out, on record
  AuditRunbook(ctx, req, create ? "runbook.create" : "runbook.update", e->runbook->id, details);
  return JsonResponse(create ? 201 : 200, Detail(*e));
}

HttpResponse DeleteRunbook(ApiContext& ctx, HttpRequest& req) {
  const std::string& id = req.path_params["id"];
  if (!FindVisible(ctx, req, id) && ctx.catalog.Find(id)) {
    return ErrorResponse(
        Status(ErrorCode::kNotFound, fmt::format("runbook \"{}\" does not exist", id)));
  }
  Status s = ctx.catalog.DeleteApiRunbook(id);
  if (!s.ok()) return ErrorResponse(s);
  AuditRunbook(ctx, req, "runbook.delete", id, json::object{{"version", ""}});
  return NoContent();
}

HttpResponse Validate(HttpRequest& req) {
  auto yaml = YamlBody(req);
  if (!yaml.ok()) return ErrorResponse(yaml.status());
  ParseResult pr = ParseRunbook(*yaml, "request body");
  json::object o;
  o["valid"] = pr.ok();
  o["id"] = pr.ok() ? json::value(pr.runbook->id) : json::value(nullptr);
  o["version"] = pr.ok() ? json::value(pr.runbook->version) : json::value(nullptr);
  json::array diags;
  for (const Diagnostic& d : pr.diagnostics) {
    json::object x;
    x["line"] = d.loc.line;
    x["column"] = d.loc.column;
    x["message"] = d.message;
    diags.push_back(std::move(x));
  }
  o["diagnostics"] = std::move(diags);
  return JsonResponse(200, o);
}

json::object PlanStep(const Step& s, const RunParams& params) {
  json::object o = StepJson(s);
  json::object env;
  for (const auto& [k, v] : s.env) env[k] = v;
  for (const auto& [name, v] : params) {
    env["AUTOMAN_PARAM_" + EnvName(name)] =
        v.secret() ? json::value("(secret: " + name + ")") : json::value(v.text);
  }
  o["env"] = std::move(env);
  return o;
}

HttpResponse DryRun(ApiContext& ctx, HttpRequest& req) {
  auto e = FindVisible(ctx, req, req.path_params["id"]);
  if (!e) {
    return ErrorResponse(Status(
        ErrorCode::kNotFound, fmt::format("runbook \"{}\" does not exist", req.path_params["id"])));
  }
  std::vector<std::pair<std::string, std::string>> given;
  if (!req.body.empty()) {
    auto body = ParseBodyObject(req.body);
    if (!body.ok()) return ErrorResponse(body.status());
    if (Status s = CheckFields(*body, {"params"}); !s.ok()) return ErrorResponse(s);
    if (const json::value* p = body->if_contains("params"); p && !p->is_null()) {
      if (!p->is_object()) {
        return ErrorResponse(
            Status(ErrorCode::kInvalidArgument, "field \"params\" must be an object"));
      }
      for (const auto& kv : p->as_object()) {
        auto text = ParamText(kv.key(), kv.value());
        if (!text.ok()) return ErrorResponse(text.status());
        given.emplace_back(std::string(kv.key()), std::move(*text));
      }
    }
  }
  const Runbook& rb = *e->runbook;
  auto params = BindParams(rb, given);
  if (!params.ok()) return ErrorResponse(params.status());
  json::object o;
  o["runbook"] = rb.id;
  o["version"] = rb.version;
  o["dry_run"] = true;
  json::object ps;
  for (const auto& [name, v] : *params) {
    ps[name] = v.secret() ? json::value("(secret: " + name + ")") : json::value(v.text);
  }
  o["params"] = std::move(ps);
  json::array steps, rollback;
  for (const Step& s : rb.steps) steps.push_back(PlanStep(s, *params));
  for (const Step& s : rb.rollback) rollback.push_back(PlanStep(s, *params));
  o["steps"] = std::move(steps);
  o["rollback"] = std::move(rollback);
  o["timeout_ms"] = MillisOrNull(rb.timeout);
  return JsonResponse(200, o);
}

}  // namespace

void AddRunbookRoutes(Router& r, ApiContext& ctx) {
  r.Add({"GET",
         "/api/v1/runbooks",
         "runbooks.read",
         "List runbooks (filter by category, tag, text)",
         "runbooks",
         {{"category", "string", "only this category"},
          {"tag", "string", "only runbooks with this tag"},
          {"q", "string", "text in the id, name or description"},
          {"limit", "integer", "1..1000, default 100"},
          {"cursor", "string", "next_cursor of the previous page"}},
         "",
         "RunbookList",
         200,
         false,
         [&ctx](HttpRequest& q) { return ListRunbooks(ctx, q); },
         HandlerCost::kQuick});
  r.Add({"GET",
         "/api/v1/runbooks/{id}",
         "runbooks.read",
         "A runbook with its params as a JSON Schema and its steps",
         "runbooks",
         {},
         "",
         "RunbookDetail",
         200,
         false,
         [&ctx](HttpRequest& q) { return GetRunbook(ctx, q); },
         HandlerCost::kQuick});
  r.Add({"POST",
         "/api/v1/runbooks",
         "runbooks.manage",
         "Create an API-managed runbook from YAML",
         "runbooks",
         {},
         "yaml",
         "RunbookDetail",
         201,
         false,
         [&ctx](HttpRequest& q) { return PutRunbook(ctx, q, true); }});
  r.Add({"PUT",
         "/api/v1/runbooks/{id}",
         "runbooks.manage",
         "Replace an API-managed runbook from YAML",
         "runbooks",
         {},
         "yaml",
         "RunbookDetail",
         200,
         false,
         [&ctx](HttpRequest& q) { return PutRunbook(ctx, q, false); }});
  r.Add({"DELETE",
         "/api/v1/runbooks/{id}",
         "runbooks.manage",
         "Delete an API-managed runbook",
         "runbooks",
         {},
         "",
         "",
         204,
         false,
         [&ctx](HttpRequest& q) { return DeleteRunbook(ctx, q); }});
  r.Add({"POST",
         "/api/v1/runbooks/validate",
         "runbooks.read",
         "Check runbook YAML; answers the diagnostics (line, column, message)",
         "runbooks",
         {},
         "yaml",
         "ValidateResult",
         200,
         false,
         [](HttpRequest& q) { return Validate(q); }});
  r.Add({"POST",
         "/api/v1/runbooks/{id}/dry-run",
         "runs.execute",
         "The rendered plan for these params; nothing is executed or recorded",
         "runbooks",
         {},
         "DryRunRequest",
         "DryRunPlan",
         200,
         false,
         [&ctx](HttpRequest& q) { return DryRun(ctx, q); }});
}

}  // namespace automan::api
