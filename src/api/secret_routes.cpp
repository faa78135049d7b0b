// /api/v1/secrets: the secret store. Values go in, never out: the list shows names and
// metadata only (secrets/secret_store.h).
#include <fmt/format.h>

#include "api/access.h"
#include "api/routes.h"
#include "api/wire.h"

namespace automan::api {

namespace {

json::object SecretJson(const SecretRecord& r) {
  return json::object{{"name", r.name},
                      {"description", r.description},
                      {"created_at", TimeOrNull(r.created_at)},
                      {"updated_at", TimeOrNull(r.updated_at)},
                      {"updated_by", r.updated_by}};
}

HttpResponse ListSecrets(ApiContext& ctx, HttpRequest&) {
  auto list = ctx.security.secrets.List();
  if (!list.ok()) return ErrorResponse(list.status());
  json::array items;
  for (const SecretRecord& r : *list) items.push_back(SecretJson(r));
  return JsonResponse(200, ListJson(std::move(items), std::nullopt));
}

HttpResponse PutSecret(ApiContext& ctx, HttpRequest& req) {
  auto body = ParseBodyObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (Status s = CheckFields(*body, {"value", "description"}); !s.ok()) return ErrorResponse(s);
  auto value = GetString(*body, "value");
  auto description = GetString(*body, "description");
  if (!value.ok()) return ErrorResponse(value.status());
  if (!description.ok()) return ErrorResponse(description.status());
  if (!*value) return ErrorResponse(400, "invalid_argument", "field \"value\" is required");
  const std::string& name = req.path_params["name"];
  auto stored = ctx.security.secrets.Put(name, **value, description->value_or(""), ActorOf(req));
  if (!stored.ok()) return ErrorResponse(stored.status());
  return JsonResponse(200, SecretJson(*stored));
}

HttpResponse DeleteSecret(ApiContext& ctx, HttpRequest& req) {
  Status s = ctx.security.secrets.Delete(req.path_params["name"], ActorOf(req));
  return s.ok() ? NoContent() : ErrorResponse(s);
}

}  // namespace

void AddSecretRoutes(Router& r, ApiContext& ctx) {
  Route list;
  list.method = "GET";
  list.pattern = "/api/v1/secrets";
  list.permission = "secrets.manage";
  list.summary = "Secrets: names and metadata (values are never returned)";
  list.tag = "secrets";
  list.response_schema = "SecretList";
  list.handler = [&ctx](HttpRequest& q) { return ListSecrets(ctx, q); };
  r.Add(std::move(list));
  Route put;
  put.method = "PUT";
  put.pattern = "/api/v1/secrets/{name}";
  put.permission = "secrets.manage";
  put.summary = "Create or replace a secret (encrypted at rest)";
  put.tag = "secrets";
  put.request_schema = "SecretPut";
  put.response_schema = "Secret";
  put.handler = [&ctx](HttpRequest& q) { return PutSecret(ctx, q); };
  r.Add(std::move(put));
  Route del;
  del.method = "DELETE";
  del.pattern = "/api/v1/secrets/{name}";
  del.permission = "secrets.manage";
  del.summary = "Delete a secret";
  del.tag = "secrets";
  del.success_status = 204;
  del.handler = [&ctx](HttpRequest& q) { return DeleteSecret(ctx, q); };
  r.Add(std::move(del));
}

}  // namespace automan::api
