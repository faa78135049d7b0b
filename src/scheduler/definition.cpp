#include "scheduler/definition.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/duration.h"

namespace automan {

namespace json = boost::json;

namespace {

json::string_view Sv(std::string_view s) { return json::string_view(s.data(), s.size()); }

Status Bad(std::string_view what) {
  return Error(ErrorCode::kDataLoss, "stored schedule definition: {}", what);
}

}  // namespace

std::string ScheduleStoreId(std::string_view runbook_id, std::string_view schedule_id) {
  return std::string(runbook_id) + "/" + std::string(schedule_id);
}

ScheduleRecord NewScheduleRecord(const Runbook& rb, const ScheduleSpec& spec, std::string source,
                                 Timestamp now) {
  ScheduleRecord rec;
  rec.id = ScheduleStoreId(rb.id, spec.id);
  rec.runbook_id = rb.id;
  rec.source = std::move(source);
  rec.spec_json = EncodeScheduleDefinition({spec, rb.version});
  rec.cursor = now;
  rec.created_at = now;
  rec.updated_at = now;
  return rec;
}

std::string EncodeScheduleDefinition(const ScheduleDefinition& d) {
  const ScheduleSpec& s = d.spec;
  json::object o;
  o.emplace("id", Sv(s.id));
  if (!s.cron.empty()) o.emplace("cron", Sv(s.cron));
  if (s.every) o.emplace("every", FormatDuration(*s.every));
  if (!s.at.empty()) o.emplace("at", Sv(s.at));
  o.emplace("tz", Sv(s.tz));
  if (s.lead) o.emplace("lead", FormatDuration(*s.lead));
  json::object params;
  for (const auto& [k, v] : s.params) params.emplace(Sv(k), Sv(v));
  o.emplace("params", std::move(params));
  json::object dst;
  if (!s.dst_gap.empty()) dst.emplace("gap", Sv(s.dst_gap));
  if (!s.dst_repeat.empty()) dst.emplace("repeat", Sv(s.dst_repeat));
  if (!dst.empty()) o.emplace("dst", std::move(dst));
  o.emplace("misfire", Sv(s.misfire));
  if (s.max_lateness) o.emplace("max_lateness", FormatDuration(*s.max_lateness));
  o.emplace("overlap", Sv(s.overlap));
  if (s.jitter) o.emplace("jitter", FormatDuration(*s.jitter));
  o.emplace("active", s.active);
  o.emplace("runbook_version", Sv(d.runbook_version));
  return json::serialize(o);
}

Result<ScheduleDefinition> DecodeScheduleDefinition(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(Sv(text), ec);
  if (ec) return Bad("not JSON: " + ec.message());
  const json::object* o = v.if_object();
  if (o == nullptr) return Bad("not an object");
  ScheduleDefinition d;
  ScheduleSpec& s = d.spec;
  Status status = Status::Ok();
  auto str = [&](const char* key, std::string& out) {
    if (const json::value* x = o->if_contains(key)) {
      if (const json::string* js = x->if_string()) {
        out.assign(js->data(), js->size());
      } else {
        status = Bad(std::string(key) + " is not a string");
      }
    }
  };
  auto dur = [&](const char* key, std::optional<Millis>& out) {
    std::string text;
    str(key, text);
    if (text.empty()) return;
    auto parsed = ParseDuration(text);
    if (!parsed.ok()) {
      status = Bad(std::string(key) + ": " + parsed.status().message());
      return;
    }
    out = *parsed;
  };
  str("id", s.id);
  str("cron", s.cron);
  dur("every", s.every);
  str("at", s.at);
  str("tz", s.tz);
  dur("lead", s.lead);
  str("misfire", s.misfire);
  dur("max_lateness", s.max_lateness);
  str("overlap", s.overlap);
  dur("jitter", s.jitter);
  str("runbook_version", d.runbook_version);
  if (const json::value* x = o->if_contains("dst")) {
    if (const json::object* dst = x->if_object()) {
      if (const json::value* g = dst->if_contains("gap"); g && g->is_string()) {
        s.dst_gap = std::string(g->get_string());
      }
      if (const json::value* r = dst->if_contains("repeat"); r && r->is_string()) {
        s.dst_repeat = std::string(r->get_string());
      }
    }
  }
  if (const json::value* x = o->if_contains("params")) {
    const json::object* p = x->if_object();
    if (p == nullptr) return Bad("params is not an object");
    for (const auto& kv : *p) {
      const json::string* js = kv.value().if_string();
      if (js == nullptr) return Bad("a param value is not a string");
      s.params.emplace(std::string(kv.key()), std::string(*js));
    }
  }
  if (const json::value* x = o->if_contains("active")) {
    if (!x->is_bool()) return Bad("active is not a boolean");
    s.active = x->get_bool();
  }
  AUTOMAN_RETURN_IF_ERROR(status);
  if (s.id.empty() || d.runbook_version.empty()) return Bad("id or runbook_version missing");
  return d;
}

}  // namespace automan
