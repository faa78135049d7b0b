// `automan cron next|explain` and `automan schedules add|list|show|pause|resume|delete|
// ledger|sync`: schedules straight on the store (the server's API comes later).
#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdio>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>

#include "cli/cli_support.h"
#include "cli/commands.h"
#include "common/clock.h"
#include "common/duration.h"
#include "scheduler/changes.h"
#include "scheduler/definition.h"
#include "scheduler/sync.h"
#include "scheduler/timing.h"

namespace automan::cli {

namespace {

namespace json = boost::json;

// --from: an RFC 3339 instant, or a wall time ("2026-03-29T01:30:00", seconds optional)
// read in `zone` (the earlier instant when it occurs twice).
std::optional<Timestamp> ParseFrom(const std::string& text, const date::time_zone* zone) {
  if (auto t = ParseRfc3339(text)) return t;
  // A wall time: read its fields with the hardened RFC 3339 parser (date::parse misbehaves
  // on malformed input), as if it were UTC, then place it in the zone.
  std::string wall_text = text;
  if (wall_text.size() > 10 && wall_text[10] == ' ') wall_text[10] = 'T';
  if (wall_text.size() == 16) wall_text += ":00";  // YYYY-MM-DDTHH:MM
  const std::optional<Timestamp> fields = ParseRfc3339(wall_text + "Z");
  if (!fields) return std::nullopt;
  const LocalSeconds wall{
      std::chrono::duration_cast<std::chrono::seconds>(fields->time_since_epoch())};
  const date::local_info li = zone->get_info(wall);
  const auto offset =
      li.result == date::local_info::nonexistent ? li.second.offset : li.first.offset;
  return std::chrono::time_point_cast<Duration>(
      std::chrono::sys_seconds{wall.time_since_epoch() - offset});
}

std::string SpecSummary(const ScheduleSpec& s) {
  std::string what = !s.cron.empty() ? "cron \"" + s.cron + "\""
                     : s.every       ? "every " + FormatDuration(*s.every)
                                     : "at " + s.at;
  if (s.lead) what += ", lead " + FormatDuration(*s.lead);
  return what;
}

std::string StateOf(const ScheduleRecord& r, const ScheduleSpec& s) {
  if (!s.active) return "inactive";
  return r.paused ? "paused" : "active";
}

std::string DelayText(Duration d) {
  if (d < std::chrono::seconds(10)) return fmt::format("{:.1f} ms", d.count() / 1000.0);
  return FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

json::object FireJson(const FireRecord& f) {
  json::object o;
  o["schedule_id"] = f.schedule_id;
  o["nominal_at"] = FormatRfc3339(f.nominal);
  o["due_at"] = FormatRfc3339(f.due);
  o["status"] = std::string(ToString(f.status));
  o["reason"] = f.reason;
  o["run_id"] = f.run_id;
  o["delay_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(f.delay).count();
  o["wall"] = f.wall;
  o["generation"] = f.generation;
  o["recorded_at"] = FormatRfc3339(f.recorded_at);
  return o;
}

void PrintFire(const FireRecord& f, const ScheduleTiming* timing) {
  const std::string when = timing ? timing->FormatLocal(f.nominal) : FormatRfc3339(f.nominal);
  std::string detail = f.run_id.empty() ? f.reason : "run " + f.run_id;
  if (f.status == FireStatus::kFired || f.status == FireStatus::kLate) {
    detail += ", " + DelayText(f.delay) + " after due";
  }
  fmt::print("{}  {:<7}  {}\n", when, ToString(f.status), detail);
}

struct Loaded {
  ScheduleRecord rec;
  std::optional<ScheduleDefinition> def;
  std::optional<ScheduleTiming> timing;
  std::string error;
};

Loaded Load(const ScheduleRecord& rec) {
  Loaded l{rec, std::nullopt, std::nullopt, ""};
  auto def = DecodeScheduleDefinition(rec.spec_json);
  if (!def.ok()) {
    l.error = def.status().message();
    return l;
  }
  l.def = *def;
  auto timing = ScheduleTiming::Make(def->spec);
  if (!timing.ok()) {
    l.error = timing.status().message();
    return l;
  }
  l.timing = std::move(*timing);
  return l;
}

std::optional<Timestamp> NextFire(const Loaded& l) {
  if (!l.timing || !l.def->spec.active || l.rec.paused) return std::nullopt;
  Timestamp after = std::max(l.rec.cursor, SystemClock().Now());
  for (int i = 0; i < 16; ++i) {
    auto occ = l.timing->Next(after);
    if (!occ) return std::nullopt;
    if (occ->kind == Occurrence::Kind::kFire) return occ->nominal;
    after = occ->nominal;
  }
  return std::nullopt;
}

int Fail(const Status& s) {
  fmt::print(stderr, "error: {}\n", s.message());
  return ExitFor(s);
}

int RunCronNext(const CronOptions& o) {
  ScheduleSpec spec;
  spec.id = "preview";
  spec.cron = o.expr;
  spec.tz = o.tz;
  spec.dst_gap = o.gap;
  spec.dst_repeat = o.repeat;
  auto timing = ScheduleTiming::Make(spec);
  if (!timing.ok()) return Fail(timing.status());
  Timestamp after = SystemClock().Now();
  if (!o.from.empty()) {
    auto from = ParseFrom(o.from, timing->zone());
    if (!from) {
      fmt::print(stderr,
                 "error: --from {}: not an instant; write e.g. 2026-03-29T01:00:00Z, "
                 "2026-03-29T01:00:00+01:00 or a wall time 2026-03-29T01:00 in --tz\n",
                 o.from);
      return kExitInvalidInput;
    }
    after = *from;
  }
  int printed = 0;
  // Skipped occurrences (DST policy) are not fire times; bound the walk anyway.
  for (int guard = 0; printed < o.count && guard < o.count * 4 + 16; ++guard) {
    auto occ = timing->Next(after);
    if (!occ) break;
    after = occ->nominal;
    if (occ->kind != Occurrence::Kind::kFire) continue;
    fmt::print("{}\n", timing->FormatLocal(occ->nominal));
    ++printed;
  }
  if (printed == 0) fmt::print(stderr, "no fire time before the year 10000\n");
  return kExitSuccess;
}

int RunCronExplain(const CronOptions& o) {
  auto cron = CronExpr::Parse(o.expr);
  if (!cron.ok()) return Fail(cron.status());
  fmt::print("{}\n", cron->Explain());
  return kExitSuccess;
}

// --- schedules ------------------------------------------------------------------------

Result<ScheduleSpec> SpecFromFlags(const SchedulesOptions& o, const Runbook& rb) {
  static const std::regex kId("^[a-z][a-z0-9_-]{0,62}$");
  if (o.id.empty() || !std::regex_match(o.id, kId)) {
    return Error(ErrorCode::kInvalidArgument,
                 "--id {}: give the schedule an id of lower-case letters, digits, '_' and '-' "
                 "(e.g. --id nightly)",
                 o.id.empty() ? "(missing)" : "\"" + o.id + "\"");
  }
  ScheduleSpec s;
  s.id = o.id;
  s.cron = o.cron;
  s.at = o.at;
  s.tz = o.tz;
  s.misfire = o.misfire;
  s.overlap = o.overlap;
  s.dst_gap = o.gap;
  s.dst_repeat = o.repeat;
  s.active = true;
  auto duration = [&](const char* flag, const std::string& text,
                      std::optional<Millis>& out) -> Status {
    if (text.empty()) return Status::Ok();
    auto d = ParseDuration(text);
    if (!d.ok())
      return Error(ErrorCode::kInvalidArgument, "--{} {}: {}", flag, text, d.status().message());
    out = *d;
    return Status::Ok();
  };
  AUTOMAN_RETURN_IF_ERROR(duration("every", o.every, s.every));
  AUTOMAN_RETURN_IF_ERROR(duration("lead", o.lead, s.lead));
  AUTOMAN_RETURN_IF_ERROR(duration("max-lateness", o.max_lateness, s.max_lateness));
  AUTOMAN_RETURN_IF_ERROR(duration("jitter", o.jitter, s.jitter));
  if (!s.at.empty() && !ParseRfc3339(s.at)) {
    return Error(ErrorCode::kInvalidArgument,
                 "--at {}: not an RFC 3339 instant; write e.g. 2026-01-31T09:00:00Z", s.at);
  }
  AUTOMAN_ASSIGN_OR_RETURN(auto given, SplitParamFlags(o.params));
  for (const auto& [name, value] : given) {
    const ParamSpec* p = rb.FindParam(name);
    if (p == nullptr) {
      return Error(ErrorCode::kInvalidArgument, "-p {}: runbook {} has no parameter \"{}\"", name,
                   rb.id, name);
    }
    if (p->type == ParamType::kSecret) {
      return Error(ErrorCode::kInvalidArgument,
                   "-p {}: secret parameters cannot be stored in a schedule", name);
    }
    AUTOMAN_ASSIGN_OR_RETURN(s.params[name], CanonicalParamValue(*p, value));
  }
  // The run's parameters must bind at every fire.
  std::vector<std::pair<std::string, std::string>> all(s.params.begin(), s.params.end());
  AUTOMAN_RETURN_IF_ERROR(BindParams(rb, all).status());
  auto timing = ScheduleTiming::Make(s);
  if (!timing.ok()) return timing.status();
  return s;
}

int SchedulesAdd(Store& store, const SchedulesOptions& o) {
  if (o.args.size() != 1) {
    fmt::print(stderr, "error: schedules add takes one runbook (a file or an id in the store)\n");
    return kExitInvalidInput;
  }
  auto rb = ResolveRunbook(store, o.args[0]);
  if (!rb.ok()) return Fail(rb.status());
  auto spec = SpecFromFlags(o, *rb);
  if (!spec.ok()) return Fail(spec.status());
  const Timestamp now = SystemClock().Now();
  ScheduleRecord rec = NewScheduleRecord(*rb, *spec, "cli", now);
  rec.paused = o.paused;
  Status s = store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    auto existing = tx.GetSchedule(rec.id);
    if (existing.ok()) {
      if (existing->source != "cli") {
        return Error(ErrorCode::kAlreadyExists,
                     "schedule {} is defined by {}; change it there (or pick another --id)", rec.id,
                     existing->source);
      }
      if (!o.replace) {
        return Error(ErrorCode::kAlreadyExists,
                     "schedule {} exists; pass --replace to change it, or pick another --id",
                     rec.id);
      }
      rec.cursor = std::max(rec.cursor, existing->cursor);
    } else if (existing.status().code() != ErrorCode::kNotFound) {
      return existing.status();
    }
    AUTOMAN_RETURN_IF_ERROR(
        tx.PutRunbookVersion(RunbookVersion{rb->version, rb->id, rb->yaml, rb->source, now}));
    return PutScheduleChange(tx, rec, now).status();
  });
  if (!s.ok()) {
    fmt::print(stderr, "error: {}\n", s.message());
    return s.code() == ErrorCode::kAlreadyExists ? kExitInvalidInput : ExitFor(s);
  }
  Loaded l = Load(rec);
  auto next = NextFire(l);
  fmt::print("{} {}: {}, tz {}; next fire {}\n", rec.id, o.replace ? "saved" : "added",
             SpecSummary(*spec), spec->tz,
             o.paused ? "(paused)"
             : next   ? l.timing->FormatLocal(*next)
                      : "none");
  return kExitSuccess;
}

int SchedulesList(Store& store, const SchedulesOptions& o) {
  std::vector<ScheduleRecord> recs;
  std::map<std::string, FireRecord> last;
  Status s = store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(recs, tx.ListSchedules());
    for (const ScheduleRecord& r : recs) {
      AUTOMAN_ASSIGN_OR_RETURN(auto fires, tx.ListFires(r.id, std::nullopt, 1));
      if (!fires.empty()) last.emplace(r.id, fires.front());
    }
    return Status::Ok();
  });
  if (!s.ok()) return Fail(s);
  if (!o.json) {
    fmt::print("{:<32} {:<28} {:<18} {:<8} {:<26} {}\n", "ID", "WHEN", "TZ", "STATE", "NEXT FIRE",
               "LAST");
  }
  for (const ScheduleRecord& r : recs) {
    Loaded l = Load(r);
    auto next = NextFire(l);
    auto it = last.find(r.id);
    if (o.json) {
      json::object j;
      j["id"] = r.id;
      j["runbook"] = r.runbook_id;
      j["source"] = r.source;
      j["state"] = l.def ? StateOf(r, l.def->spec) : "invalid";
      j["next_fire_at"] = next ? json::value(FormatRfc3339(*next)) : json::value(nullptr);
      j["error"] = l.error;
      j["generation"] = r.generation;
      if (it != last.end()) j["last"] = FireJson(it->second);
      std::cout << json::serialize(j) << "\n";
      continue;
    }
    std::string last_text = "-";
    if (it != last.end()) {
      last_text = fmt::format(
          "{} {}", ToString(it->second.status),
          l.timing ? l.timing->FormatLocal(it->second.nominal) : FormatRfc3339(it->second.nominal));
    }
    fmt::print("{:<32} {:<28} {:<18} {:<8} {:<26} {}\n", r.id,
               l.def ? SpecSummary(l.def->spec) : "(invalid: " + l.error + ")",
               l.def ? l.def->spec.tz : "-", l.def ? StateOf(r, l.def->spec) : "invalid",
               next ? l.timing->FormatLocal(*next) : "-", last_text);
  }
  return kExitSuccess;
}

int SchedulesShow(Store& store, const SchedulesOptions& o) {
  if (o.args.empty()) {
    fmt::print(stderr, "error: schedules show takes schedule ids (RUNBOOK/ID)\n");
    return kExitInvalidInput;
  }
  for (const std::string& id : o.args) {
    ScheduleRecord rec;
    std::vector<FireRecord> fires;
    Status s = store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(rec, tx.GetSchedule(id));
      AUTOMAN_ASSIGN_OR_RETURN(fires, tx.ListFires(id, std::nullopt, 10));
      return Status::Ok();
    });
    if (!s.ok()) return Fail(s);
    Loaded l = Load(rec);
    if (o.json) {
      json::object j;
      j["id"] = rec.id;
      j["runbook"] = rec.runbook_id;
      j["source"] = rec.source;
      j["definition"] = json::parse(rec.spec_json);
      j["paused"] = rec.paused;
      j["generation"] = rec.generation;
      j["cursor"] = FormatRfc3339(rec.cursor);
      j["error"] = l.error;
      json::array f;
      for (const FireRecord& r : fires) f.push_back(FireJson(r));
      j["recent_fires"] = std::move(f);
      std::cout << json::serialize(j) << "\n";
      continue;
    }
    fmt::print("id:          {}\nrunbook:     {}\nsource:      {}\n", rec.id, rec.runbook_id,
               rec.source);
    if (!l.def) {
      fmt::print("invalid:     {}\n", l.error);
      continue;
    }
    const ScheduleSpec& sp = l.def->spec;
    fmt::print("when:        {}\ntz:          {}\nstate:       {}\n", SpecSummary(sp), sp.tz,
               StateOf(rec, sp));
    if (l.timing && l.timing->cron()) {
      fmt::print("explained:   {}\n", l.timing->cron()->Explain());
      fmt::print("dst:         gap {}, repeat {}\n",
                 l.timing->gap() == DstGap::kShift ? "shift" : "skip",
                 l.timing->repeat() == DstRepeat::kFirst ? "first" : "both");
    }
    fmt::print("misfire:     {}{}\noverlap:     {}\n", sp.misfire,
               sp.max_lateness ? ", max_lateness " + FormatDuration(*sp.max_lateness) : "",
               sp.overlap);
    if (sp.jitter) fmt::print("jitter:      {}\n", FormatDuration(*sp.jitter));
    if (!sp.params.empty()) {
      std::string p;
      for (const auto& [k, v] : sp.params) p += (p.empty() ? "" : ", ") + k + "=" + v;
      fmt::print("params:      {}\n", p);
    }
    fmt::print("version:     {} (generation {})\n", l.def->runbook_version, rec.generation);
    if (!l.error.empty()) fmt::print("invalid:     {}\n", l.error);
    if (l.timing && sp.active && !rec.paused) {
      fmt::print("next fires:\n");
      Timestamp after = std::max(rec.cursor, SystemClock().Now());
      for (int printed = 0, guard = 0; printed < 5 && guard < 40; ++guard) {
        auto occ = l.timing->Next(after);
        if (!occ) break;
        after = occ->nominal;
        if (occ->kind != Occurrence::Kind::kFire) continue;
        fmt::print("  {}{}\n", l.timing->FormatLocal(occ->nominal),
                   sp.lead ? "  (starts " +
                                 l.timing->FormatLocal(l.timing->Due(occ->nominal, rec.id)) + ")"
                           : "");
        ++printed;
      }
    }
    if (!fires.empty()) {
      fmt::print("recent fires (newest first):\n");
      for (const FireRecord& f : fires) {
        fmt::print("  ");
        PrintFire(f, l.timing ? &*l.timing : nullptr);
      }
    }
  }
  return kExitSuccess;
}

int SchedulesSetPaused(Store& store, const SchedulesOptions& o, bool paused) {
  if (o.args.empty()) {
    fmt::print(stderr, "error: schedules {} takes schedule ids (RUNBOOK/ID)\n", o.action);
    return kExitInvalidInput;
  }
  for (const std::string& id : o.args) {
    Status s = store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(ScheduleRecord rec, tx.GetSchedule(id));
      if (rec.paused == paused) return Status::Ok();
      rec.paused = paused;
      const Timestamp now = SystemClock().Now();
      // Resuming does not catch up what fell due while paused (the loop recorded those as
      // skipped while it ran).
      if (!paused) rec.cursor = std::max(rec.cursor, now);
      rec.updated_at = now;
      return PutScheduleChange(tx, rec, now).status();
    });
    if (!s.ok()) return Fail(s);
    fmt::print("{} {}\n", id, paused ? "paused" : "resumed");
  }
  return kExitSuccess;
}

int SchedulesDelete(Store& store, const SchedulesOptions& o) {
  if (o.args.empty()) {
    fmt::print(stderr, "error: schedules delete takes schedule ids (RUNBOOK/ID)\n");
    return kExitInvalidInput;
  }
  for (const std::string& id : o.args) {
    Status s = store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(ScheduleRecord rec, tx.GetSchedule(id));
      if (rec.source != "cli") {
        return Error(ErrorCode::kFailedPrecondition,
                     "schedule {} is defined by {}; remove it from that file (or pause it)", id,
                     rec.source.substr(rec.source.find(':') + 1));
      }
      return DeleteScheduleChange(tx, id, SystemClock().Now());
    });
    if (!s.ok()) {
      fmt::print(stderr, "error: {}\n", s.message());
      return s.code() == ErrorCode::kFailedPrecondition ? kExitInvalidInput : ExitFor(s);
    }
    fmt::print("{} deleted (its ledger is kept)\n", id);
  }
  return kExitSuccess;
}

int SchedulesLedger(Store& store, const SchedulesOptions& o) {
  if (o.args.size() != 1) {
    fmt::print(stderr, "error: schedules ledger takes one schedule id (RUNBOOK/ID)\n");
    return kExitInvalidInput;
  }
  std::optional<Timestamp> before;
  if (!o.before.empty()) {
    before = ParseRfc3339(o.before);
    if (!before) {
      fmt::print(stderr, "error: --before {}: not an RFC 3339 instant\n", o.before);
      return kExitInvalidInput;
    }
  }
  std::vector<FireRecord> fires;
  std::optional<ScheduleRecord> rec;
  Status s = store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    auto r = tx.GetSchedule(o.args[0]);
    if (r.ok()) rec = *r;
    AUTOMAN_ASSIGN_OR_RETURN(fires, tx.ListFires(o.args[0], before, o.limit));
    return Status::Ok();
  });
  if (!s.ok()) return Fail(s);
  std::optional<Loaded> l;
  if (rec) l = Load(*rec);
  for (const FireRecord& f : fires) {
    if (o.json) {
      std::cout << json::serialize(FireJson(f)) << "\n";
    } else {
      PrintFire(f, l && l->timing ? &*l->timing : nullptr);
    }
  }
  if (fires.empty() && !o.json) fmt::print(stderr, "no ledger rows\n");
  return kExitSuccess;
}

int SchedulesSync(Store& store, const SchedulesOptions& o) {
  if (o.args.empty()) {
    fmt::print(stderr, "error: schedules sync takes runbook files\n");
    return kExitInvalidInput;
  }
  auto report = SyncScheduleFiles(store, SystemClock(), o.args);
  if (!report.ok()) return Fail(report.status());
  for (const std::string& e : report->errors) fmt::print(stderr, "error: {}\n", e);
  for (const auto& id : report->added) fmt::print("added     {}\n", id);
  for (const auto& id : report->updated) fmt::print("updated   {}\n", id);
  for (const auto& id : report->removed) fmt::print("removed   {}\n", id);
  for (const auto& id : report->unchanged) fmt::print("unchanged {}\n", id);
  return report->errors.empty() ? kExitSuccess : kExitInvalidInput;
}

}  // namespace

int RunCron(const CronOptions& o) {
  return o.action == "explain" ? RunCronExplain(o) : RunCronNext(o);
}

int RunSchedules(const SchedulesOptions& o) {
  if (!o.server.url.empty()) return RunSchedulesViaApi(o);
  auto store = OpenStore(o.store);
  if (!store.ok()) {
    fmt::print(stderr, "error: {}\n", store.status().message());
    return kExitFailed;
  }
  Store& st = **store;
  if (o.action == "add") return SchedulesAdd(st, o);
  if (o.action == "list") return SchedulesList(st, o);
  if (o.action == "show") return SchedulesShow(st, o);
  if (o.action == "pause") return SchedulesSetPaused(st, o, true);
  if (o.action == "resume") return SchedulesSetPaused(st, o, false);
  if (o.action == "delete") return SchedulesDelete(st, o);
  if (o.action == "ledger") return SchedulesLedger(st, o);
  return SchedulesSync(st, o);
}

}  // namespace automan::cli
