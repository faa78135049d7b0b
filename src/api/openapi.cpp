// The OpenAPI 3.1 document, generated from the route table so it cannot drift from what
// the server serves. tests/api_contract/openapi_lint.sh lints it with Redocly's CLI, and
// tests/api_contract/routes_test.cpp checks every answer against these schemas.
#include <set>

#include "api/api.h"
#include "api/wire.h"

namespace automan::api {

namespace {

json::object Ref(std::string_view name) {
  return json::object{{"$ref", "#/components/schemas/" + std::string(name)}};
}

json::object Obj(std::initializer_list<std::pair<std::string_view, json::value>> props,
                 std::initializer_list<std::string_view> required = {}) {
  json::object p;
  for (const auto& [k, v] : props) p[k] = v;
  json::object o{{"type", "object"}, {"properties", std::move(p)}};
  if (required.size() > 0) {
    json::array r;
    for (auto k : required) r.push_back(json::value(k));
    o["required"] = std::move(r);
  }
  return o;
}

json::value T(std::string_view type) { return json::object{{"type", type}}; }
json::value Nullable(std::string_view type) {
  return json::object{{"type", json::array{json::value(type), json::value("null")}}};
}
json::value Time() { return json::object{{"type", "string"}, {"format", "date-time"}}; }
json::value NullableTime() {
  return json::object{{"type", json::array{"string", "null"}}, {"format", "date-time"}};
}
json::value ArrayOf(json::value items) {
  return json::object{{"type", "array"}, {"items", std::move(items)}};
}
json::value MapOf(json::value v) {
  return json::object{{"type", "object"}, {"additionalProperties", std::move(v)}};
}
json::value ListOf(std::string_view item) {
  return Obj({{"items", ArrayOf(Ref(item))}, {"next_cursor", Nullable("string")}},
             {"items", "next_cursor"});
}

const char* kStatuses[] = {"PENDING", "RUNNING",   "WAITING",     "SUCCESS", "FAILED",
                           "TIMEOUT", "CANCELLED", "ROLLED_BACK", "DEAD"};

json::object Schemas() {
  json::array statuses;
  for (const char* s : kStatuses) statuses.push_back(json::value(s));
  json::object s;
  s["Error"] = Obj(
      {{"error", Obj({{"code", T("string")}, {"message", T("string")}, {"details", json::object{}}},
                     {"code", "message"})}},
      {"error"});
  s["RunStatus"] = json::object{{"type", "string"}, {"enum", statuses}};
  s["StepRun"] = Obj({{"id", T("string")},
                      {"index", T("integer")},
                      {"attempt", T("integer")},
                      {"status", T("string")},
                      {"exit_code", Nullable("integer")},
                      {"signal", Nullable("integer")},
                      {"started_at", NullableTime()},
                      {"finished_at", NullableTime()},
                      {"duration_ms", Nullable("integer")},
                      {"error", Nullable("string")},
                      {"outputs", MapOf(T("string"))},
                      {"sandbox", Nullable("string")}});
  s["Run"] = Obj({{"id", T("string")},
                  {"runbook", T("string")},
                  {"runbook_version", T("string")},
                  {"status", Ref("RunStatus")},
                  {"params", json::object{{"type", "object"}}},
                  {"trigger", T("string")},
                  {"triggered_by", T("string")},
                  {"priority", T("integer")},
                  {"attempt", T("integer")},
                  {"max_attempts", T("integer")},
                  {"created_at", Time()},
                  {"not_before", NullableTime()},
                  {"started_at", NullableTime()},
                  {"finished_at", NullableTime()},
                  {"deadline_at", NullableTime()},
                  {"outputs", MapOf(MapOf(T("string")))},
                  {"retry_of", Nullable("string")},
                  {"idempotency_key", Nullable("string")},
                  {"cancel_requested", T("boolean")},
                  {"error", Nullable("string")}},
                 {"id", "runbook", "status", "created_at"});
  json::object detail{
      {"allOf",
       json::array{Ref("Run"), Obj({{"steps", ArrayOf(Ref("StepRun"))},
                                    {"progress", Obj({{"steps_done", T("integer")},
                                                      {"steps_total", Nullable("integer")}})},
                                    {"current_step", Nullable("string")},
                                    {"duration_ms", Nullable("integer")}})}}};
  s["RunDetail"] = detail;
  s["RunList"] = ListOf("Run");
  s["RunCreate"] = Obj({{"runbook", T("string")},
                        {"params", json::object{{"type", "object"}}},
                        {"priority", T("integer")},
                        {"idempotency_key", T("string")},
                        {"not_before", Time()},
                        {"deadline_at", Time()},
                        {"max_attempts", T("integer")}},
                       {"runbook"});
  s["RunBatch"] = Obj(
      {{"runs", json::object{{"type", "array"}, {"items", Ref("RunCreate")}, {"maxItems", 10000}}}},
      {"runs"});
  s["RunBatchResult"] =
      Obj({{"items",
            ArrayOf(Obj(
                {{"id", T("string")}, {"status", Ref("RunStatus")}, {"created", T("boolean")}}))}});
  s["LogLine"] = Obj({{"attempt", T("integer")},
                      {"seq", T("integer")},
                      {"ts", Time()},
                      {"step", T("string")},
                      {"stream", json::object{{"type", "string"},
                                              {"enum", json::array{"stdout", "stderr", "system"}}}},
                      {"text", T("string")},
                      {"partial", T("boolean")}});
  s["LogPage"] = ListOf("LogLine");
  s["RunbookSummary"] = Obj({{"id", T("string")},
                             {"name", T("string")},
                             {"description", T("string")},
                             {"category", Nullable("string")},
                             {"tags", ArrayOf(T("string"))},
                             {"version", T("string")},
                             {"origin", T("string")},
                             {"source", T("string")},
                             {"dangerous", T("boolean")},
                             {"params_count", T("integer")},
                             {"steps_count", T("integer")}});
  s["RunbookList"] = ListOf("RunbookSummary");
  s["RunbookDetail"] = json::object{
      {"allOf", json::array{Ref("RunbookSummary"),
                            Obj({{"params_schema", json::object{{"type", "object"}}},
                                 {"steps", ArrayOf(json::object{{"type", "object"}})},
                                 {"rollback", ArrayOf(json::object{{"type", "object"}})},
                                 {"timeout_ms", Nullable("integer")},
                                 {"cooldown_ms", Nullable("integer")},
                                 {"requires", Nullable("string")},
                                 {"allowed_roles", ArrayOf(T("string"))},
                                 {"schedules", ArrayOf(T("string"))},
                                 {"yaml", T("string")}})}}};
  s["ValidateResult"] =
      Obj({{"valid", T("boolean")},
           {"id", Nullable("string")},
           {"version", Nullable("string")},
           {"diagnostics",
            ArrayOf(Obj(
                {{"line", T("integer")}, {"column", T("integer")}, {"message", T("string")}}))}});
  s["DryRunRequest"] = Obj({{"params", json::object{{"type", "object"}}}});
  s["DryRunPlan"] = Obj({{"runbook", T("string")},
                         {"version", T("string")},
                         {"dry_run", T("boolean")},
                         {"params", json::object{{"type", "object"}}},
                         {"steps", ArrayOf(json::object{{"type", "object"}})},
                         {"rollback", ArrayOf(json::object{{"type", "object"}})},
                         {"timeout_ms", Nullable("integer")}});
  s["ScheduleCreate"] = Obj({{"runbook", T("string")},
                             {"id", T("string")},
                             {"cron", T("string")},
                             {"every", T("string")},
                             {"at", Time()},
                             {"tz", T("string")},
                             {"lead", T("string")},
                             {"params", json::object{{"type", "object"}}},
                             {"dst", Obj({{"gap", T("string")}, {"repeat", T("string")}})},
                             {"misfire", T("string")},
                             {"max_lateness", T("string")},
                             {"overlap", T("string")},
                             {"jitter", T("string")},
                             {"paused", T("boolean")},
                             {"active", T("boolean")}},
                            {"id"});
  s["Schedule"] = Obj({{"id", T("string")},
                       {"runbook", T("string")},
                       {"schedule", T("string")},
                       {"source", T("string")},
                       {"paused", T("boolean")},
                       {"state", T("string")},
                       {"definition", json::object{{"type", "object"}}},
                       {"next_fire_at", NullableTime()},
                       {"generation", T("integer")},
                       {"created_at", Time()},
                       {"updated_at", Time()}});
  s["ScheduleList"] = ListOf("Schedule");
  s["Fire"] = Obj({{"nominal_at", Time()},
                   {"due_at", Time()},
                   {"status", T("string")},
                   {"reason", Nullable("string")},
                   {"run_id", Nullable("string")},
                   {"delay_ms", T("integer")},
                   {"wall", T("string")},
                   {"generation", T("integer")},
                   {"recorded_at", Time()}});
  s["FireList"] = ListOf("Fire");
  s["FirePreview"] = Obj({{"id", T("string")},
                          {"expr", T("string")},
                          {"tz", T("string")},
                          {"explain", T("string")},
                          {"items", ArrayOf(Obj({{"nominal_at", Time()},
                                                 {"local", T("string")},
                                                 {"due_at", Time()},
                                                 {"wall", T("string")},
                                                 {"fires", T("boolean")},
                                                 {"skipped", T("string")}}))}});
  s["QueueStats"] = Obj({{"counts", MapOf(T("integer"))}, {"total", T("integer")}});
  s["PurgeResult"] = Obj({{"purged", T("integer")}});
  s["Analytics"] = Obj({{"since", Time()},
                        {"until", Time()},
                        {"runs_scanned", T("integer")},
                        {"truncated", T("boolean")},
                        {"items", ArrayOf(Obj({{"runbook", T("string")},
                                               {"runs", T("integer")},
                                               {"success_rate", Nullable("number")},
                                               {"duration_ms", MapOf(Nullable("number"))}}))}});
  s["Health"] = Obj({{"status", T("string")}});
  s["Version"] = Obj({{"version", T("string")},
                      {"commit", T("string")},
                      {"api", T("string")},
                      {"store_schema", T("integer")}});
  // Security (auth_routes.cpp).
  const json::value strings = ArrayOf(T("string"));
  s["LoginRequest"] = Obj(
      {{"username", T("string")},
       {"password", json::object{{"type", "string"}, {"format", "password"}, {"maxLength", 1024}}},
       {"token", T("boolean")}},
      {"username", "password"});
  s["Login"] = Obj({{"user", T("string")},
                    {"role", T("string")},
                    {"permissions", strings},
                    {"must_change_password", T("boolean")},
                    {"csrf_token", T("string")},
                    {"expires_at", Time()},
                    {"token", T("string")}},
                   {"user", "role", "must_change_password", "csrf_token"});
  s["Me"] = Obj(
      {{"user", T("string")},
       {"role", T("string")},
       {"permissions", strings},
       {"categories", strings},
       {"must_change_password", T("boolean")},
       {"credential", json::object{{"type", "string"}, {"enum", json::array{"session", "token"}}}},
       {"csrf_token", T("string")}},
      {"user", "role", "permissions", "must_change_password", "credential"});
  s["PasswordChange"] = Obj({{"current", T("string")}, {"new", T("string")}}, {"current", "new"});
  s["TicketRequest"] = Obj({{"scope", T("string")}});
  s["Ticket"] = Obj({{"ticket", T("string")}, {"scope", T("string")}, {"expires_in", T("integer")}},
                    {"ticket", "scope", "expires_in"});
  s["Token"] = Obj({{"id", T("string")},
                    {"name", T("string")},
                    {"owner", T("string")},
                    {"role", Nullable("string")},
                    {"created_at", Time()},
                    {"expires_at", NullableTime()},
                    {"last_used_at", NullableTime()},
                    {"revoked_at", NullableTime()}},
                   {"id", "name", "owner", "created_at"});
  s["TokenList"] = ListOf("Token");
  s["TokenRequest"] =
      Obj({{"name", T("string")}, {"role", T("string")}, {"expires_in", T("integer")}}, {"name"});
  s["IssuedToken"] =
      json::object{{"allOf", json::array{Ref("Token"), Obj({{"token", T("string")}}, {"token"})}}};
  s["User"] = Obj({{"username", T("string")},
                   {"role", T("string")},
                   {"disabled", T("boolean")},
                   {"must_change_password", T("boolean")},
                   {"locked_until", NullableTime()},
                   {"created_at", Time()},
                   {"updated_at", Time()}},
                  {"username", "role", "disabled", "must_change_password"});
  s["UserList"] = ListOf("User");
  s["UserCreate"] = Obj({{"username", T("string")},
                         {"password", T("string")},
                         {"role", T("string")},
                         {"must_change_password", T("boolean")}},
                        {"username", "password", "role"});
  s["UserUpdate"] =
      Obj({{"role", T("string")}, {"disabled", T("boolean")}, {"password", T("string")}});
  s["Role"] = Obj({{"name", T("string")},
                   {"description", T("string")},
                   {"permissions", strings},
                   {"categories", strings},
                   {"builtin", T("boolean")}},
                  {"name", "permissions"});
  s["RoleList"] = ListOf("Role");
  s["AuditEntry"] = Obj({{"seq", T("integer")},
                         {"at", Time()},
                         {"actor", T("string")},
                         {"action", T("string")},
                         {"target", T("string")},
                         {"outcome", json::object{{"type", "string"},
                                                  {"enum", json::array{"ok", "denied", "failed"}}}},
                         {"remote", T("string")},
                         {"details", json::object{{"type", "object"}}},
                         {"hash", T("string")}},
                        {"seq", "at", "actor", "action", "outcome", "hash"});
  s["AuditList"] = ListOf("AuditEntry");
  s["Secret"] = Obj({{"name", T("string")},
                     {"description", T("string")},
                     {"created_at", Time()},
                     {"updated_at", Time()},
                     {"updated_by", T("string")}},
                    {"name", "created_at", "updated_at"});
  s["SecretList"] = ListOf("Secret");
  s["SecretPut"] =
      Obj({{"value",
            json::object{
                {"type", "string"}, {"writeOnly", true}, {"minLength", 4}, {"maxLength", 65536}}},
           {"description", T("string")}},
          {"value"});
  s["AuditVerify"] = Obj({{"ok", T("boolean")},
                          {"entries_checked", T("integer")},
                          {"last_seq", T("integer")},
                          {"anchor_seq", T("integer")},
                          {"kind", T("string")},
                          {"first_bad_seq", T("integer")},
                          {"message", T("string")}},
                         {"ok", "entries_checked", "last_seq", "anchor_seq"});
  return s;
}

std::string OperationId(const Route& r) {
  std::string id;
  for (char c : r.method)
    id.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  bool upper = true;
  for (char c : r.pattern) {
    if (c == '/' || c == '{' || c == '}' || c == '-' || c == '.' || c == '_') {
      upper = true;
      continue;
    }
    id.push_back(upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c);
    upper = false;
  }
  return id;
}

json::object Content(std::string_view type, json::value schema) {
  return json::object{{std::string(type), json::object{{"schema", std::move(schema)}}}};
}

}  // namespace

std::string OpenApiDocument(const Router& router, const std::string& version) {
  json::object paths;
  std::set<std::string> tags;
  for (const Route& r : router.routes()) {
    json::object op;
    op["operationId"] = OperationId(r);
    op["summary"] = r.summary;
    op["tags"] = json::array{json::value(r.tag)};
    tags.insert(r.tag);
    op["x-permission"] = r.permission;
    if (r.permission == kPublic) op["security"] = json::array{};
    if (r.stream) {
      op["security"] = json::array{json::object{{"bearerAuth", json::array{}}},
                                   json::object{{"cookieAuth", json::array{}}},
                                   json::object{{"streamTicket", json::array{}}}};
    }
    json::array params;
    size_t pos = 0;
    while ((pos = r.pattern.find('{', pos)) != std::string::npos) {
      size_t end = r.pattern.find('}', pos);
      params.push_back(json::object{{"name", r.pattern.substr(pos + 1, end - pos - 1)},
                                    {"in", "path"},
                                    {"required", true},
                                    {"schema", T("string")}});
      pos = end;
    }
    for (const QueryDoc& q : r.query) {
      params.push_back(json::object{{"name", q.name},
                                    {"in", "query"},
                                    {"required", false},
                                    {"description", q.description},
                                    {"schema", T(q.type)}});
    }
    if (r.stream) {
      params.push_back(json::object{{"name", "Last-Event-ID"},
                                    {"in", "header"},
                                    {"required", false},
                                    {"description", "resume after this event"},
                                    {"schema", T("string")}});
    }
    if (!params.empty()) op["parameters"] = std::move(params);
    if (r.request_schema == "yaml") {
      json::object content = Content("application/yaml", T("string"));
      content["application/json"] =
          json::object{{"schema", Obj({{"yaml", T("string")}}, {"yaml"})}};
      op["requestBody"] = json::object{{"required", true}, {"content", std::move(content)}};
    } else if (!r.request_schema.empty()) {
      op["requestBody"] =
          json::object{{"required", r.request_schema != "DryRunRequest"},
                       {"content", Content("application/json", Ref(r.request_schema))}};
    }
    json::object responses;
    json::object ok{{"description", r.summary}};
    if (r.stream) {
      ok["content"] = Content("text/event-stream", T("string"));
    } else if (r.pattern == "/metrics") {
      ok["content"] = Content("text/plain", T("string"));
    } else if (r.pattern == "/api/v1/openapi.json") {
      ok["content"] = Content("application/json", json::object{{"type", "object"}});
    } else if (!r.response_schema.empty()) {
      ok["content"] = Content("application/json", Ref(r.response_schema));
    }
    responses[std::to_string(r.success_status)] = std::move(ok);
    if (r.success_status == 201 && r.pattern == "/api/v1/runs") {
      responses["200"] =
          json::object{{"description", "the run created earlier with this idempotency key"},
                       {"content", Content("application/json", Ref("Run"))}};
    }
    json::object err_ref{{"$ref", "#/components/responses/Error"}};
    responses["4XX"] = err_ref;
    responses["5XX"] = err_ref;
    op["responses"] = std::move(responses);
    std::string method;
    for (char c : r.method)
      method.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    json::value& item = paths[r.pattern];
    if (!item.is_object()) item = json::object{};
    item.as_object()[method] = std::move(op);
  }
  json::array tag_list;
  for (const std::string& t : tags) {
    tag_list.push_back(json::object{{"name", t}, {"description", "Automan " + t}});
  }
  json::object doc;
  doc["openapi"] = "3.1.0";
  doc["info"] = json::object{
      {"title", "Automan API"},
      {"version", version.empty() ? "0" : version},
      {"description", "REST API v1 of Automan, the self-hosted automation platform."},
      {"license", json::object{{"name", "Proprietary"}, {"identifier", "LicenseRef-Automan"}}}};
  doc["servers"] = json::array{json::object{{"url", "http://127.0.0.1:8080"},
                                            {"description", "the default listen address"}}};
  doc["tags"] = std::move(tag_list);
  doc["security"] = json::array{json::object{{"bearerAuth", json::array{}}},
                                json::object{{"cookieAuth", json::array{}}}};
  doc["paths"] = std::move(paths);
  doc["components"] = json::object{
      {"schemas", Schemas()},
      {"responses", json::object{{"Error", json::object{{"description", "an error"},
                                                        {"content", Content("application/json",
                                                                            Ref("Error"))}}}}},
      {"securitySchemes",
       json::object{{"bearerAuth", json::object{{"type", "http"}, {"scheme", "bearer"}}},
                    {"cookieAuth", json::object{{"type", "apiKey"},
                                                {"in", "cookie"},
                                                {"name", "automan_session"},
                                                {"description",
                                                 "a login session; state changes also need the "
                                                 "X-CSRF-Token header"}}},
                    {"streamTicket",
                     json::object{{"type", "apiKey"},
                                  {"in", "query"},
                                  {"name", "ticket"},
                                  {"description",
                                   "a single-use stream ticket (POST /api/v1/auth/tickets)"}}}}}};
  return json::serialize(doc);
}

}  // namespace automan::api
