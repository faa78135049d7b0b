#include "scheduler/sync.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include "scheduler/changes.h"
#include "scheduler/definition.h"
#include "scheduler/timing.h"

namespace automan {
namespace {

namespace fs = std::filesystem;

bool IsYaml(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

std::vector<std::string> YamlFilesIn(const std::string& dir, std::error_code& ec) {
  std::vector<std::string> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_regular_file(type_ec) && IsYaml(it->path())) files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

struct Wanted {
  ScheduleRecord rec;
  std::string yaml_source;
  RunbookVersion version;
};

// `scope(source)`: whether a stored file schedule belongs to the files being synced.
Result<SyncReport> Sync(Store& store, const Clock& clock, const std::vector<std::string>& files,
                        const std::function<bool(const std::string&)>& in_scope) {
  SyncReport report;
  const Timestamp now = clock.Now();
  std::map<std::string, Wanted> wanted;  // by schedule id
  std::set<std::string> keep_sources;    // files that failed: their schedules stay as they are
  for (const std::string& file : files) {
    const std::string source = "file:" + Absolute(file);
    ParseResult parsed = LoadRunbookFile(file);
    if (!parsed.ok()) {
      for (const Diagnostic& d : parsed.diagnostics) report.errors.push_back(d.ToString());
      keep_sources.insert(source);
      continue;
    }
    const Runbook& rb = *parsed.runbook;
    std::vector<Diagnostic> diags = CheckSchedules(rb);
    std::set<std::string> bad;
    for (const Diagnostic& d : diags) report.errors.push_back(d.ToString());
    for (size_t i = 0; i < rb.schedules.size(); ++i) {
      const ScheduleSpec& spec = rb.schedules[i];
      if (!ScheduleTiming::Make(spec).ok()) {
        bad.insert(ScheduleStoreId(rb.id, spec.id));
        continue;
      }
      Wanted w;
      w.rec = NewScheduleRecord(rb, spec, source, now);
      w.version.version = rb.version;
      w.version.runbook_id = rb.id;
      w.version.yaml = rb.yaml;
      w.version.source = rb.source;
      auto [it, inserted] = wanted.emplace(w.rec.id, w);
      if (!inserted) {
        report.errors.push_back(
            fmt::format("schedule {} is defined in {} and in {}; runbook ids "
                        "must be unique",
                        w.rec.id, it->second.rec.source.substr(5), file));
      }
    }
    for (const std::string& id : bad) {
      // Keep the stored definition of a schedule that no longer validates.
      wanted.erase(id);
      keep_sources.insert(source + "#" + id);
    }
  }

  AUTOMAN_RETURN_IF_ERROR(store.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    SyncReport r;
    r.errors = report.errors;
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<ScheduleRecord> stored, tx.ListSchedules());
    std::map<std::string, ScheduleRecord> by_id;
    for (ScheduleRecord& s : stored) by_id.emplace(s.id, std::move(s));
    for (auto& [id, w] : wanted) {
      auto it = by_id.find(id);
      if (it != by_id.end() && it->second.source != w.rec.source) {
        r.errors.push_back(fmt::format("schedule {} from {} is already defined by {}; rename one",
                                       id, w.rec.source, it->second.source));
        continue;
      }
      if (it != by_id.end() && it->second.spec_json == w.rec.spec_json &&
          it->second.runbook_id == w.rec.runbook_id) {
        r.unchanged.push_back(id);
        continue;
      }
      AUTOMAN_RETURN_IF_ERROR(tx.PutRunbookVersion(RunbookVersion{
          w.version.version, w.version.runbook_id, w.version.yaml, w.version.source, now}));
      ScheduleRecord rec = w.rec;
      if (it != by_id.end()) {
        rec.paused = it->second.paused;
        rec.cursor = std::max(now, it->second.cursor);
      }
      AUTOMAN_RETURN_IF_ERROR(PutScheduleChange(tx, rec, now).status());
      (it == by_id.end() ? r.added : r.updated).push_back(id);
    }
    for (const auto& [id, s] : by_id) {
      if (!s.source.starts_with("file:") || !in_scope(s.source.substr(5))) continue;
      if (wanted.count(id) || keep_sources.count(s.source) ||
          keep_sources.count(s.source + "#" + id)) {
        continue;
      }
      AUTOMAN_RETURN_IF_ERROR(DeleteScheduleChange(tx, id, now));
      r.removed.push_back(id);
    }
    report = std::move(r);
    return Status::Ok();
  }));
  return report;
}

}  // namespace

std::vector<Diagnostic> CheckSchedules(const Runbook& rb) {
  std::vector<Diagnostic> out;
  for (size_t i = 0; i < rb.schedules.size(); ++i) {
    const ScheduleSpec& s = rb.schedules[i];
    auto timing = ScheduleTiming::Make(s);
    if (!timing.ok()) {
      out.push_back(Diagnostic{rb.source, s.loc,
                               fmt::format("schedules[{}].{}", i, timing.status().message())});
    }
  }
  return out;
}

Result<SyncReport> SyncScheduleDir(Store& store, const Clock& clock, const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> files = YamlFilesIn(dir, ec);
  if (ec) {
    return Error(ErrorCode::kInvalidArgument, "cannot read runbook directory {}: {}", dir,
                 ec.message());
  }
  const std::string prefix = Absolute(dir) + "/";
  return Sync(store, clock, files,
              [&](const std::string& path) { return path.starts_with(prefix); });
}

Result<SyncReport> SyncScheduleFiles(Store& store, const Clock& clock,
                                     const std::vector<std::string>& files) {
  std::set<std::string> scope;
  for (const std::string& f : files) scope.insert(Absolute(f));
  return Sync(store, clock, files, [&](const std::string& path) { return scope.count(path) != 0; });
}

std::string ScanRunbookDir(const std::string& dir) {
  std::error_code ec;
  std::string print;
  for (const std::string& f : YamlFilesIn(dir, ec)) {
    std::error_code e2;
    const auto size = fs::file_size(f, e2);
    const auto mtime = fs::last_write_time(f, e2).time_since_epoch().count();
    print += fmt::format("{}\t{}\t{}\n", f, e2 ? 0 : size, e2 ? 0 : mtime);
  }
  if (ec) print += "error:" + ec.message();
  return print;
}

ScheduleDirWatcher::ScheduleDirWatcher(Store& store, const Clock& clock, std::string dir,
                                       std::chrono::milliseconds interval,
                                       std::function<void(const Result<SyncReport>&)> on_sync)
    : store_(store),
      clock_(clock),
      dir_(std::move(dir)),
      interval_(interval),
      on_sync_(std::move(on_sync)) {
  SyncNow();
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, interval_, [&] { return stopping_; })) {
      lock.unlock();
      if (ScanRunbookDir(dir_) != fingerprint_) SyncNow();
      lock.lock();
    }
  });
}

ScheduleDirWatcher::~ScheduleDirWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ScheduleDirWatcher::SyncNow() {
  // Fingerprint first: a change during the sync triggers another one.
  fingerprint_ = ScanRunbookDir(dir_);
  Result<SyncReport> report = SyncScheduleDir(store_, clock_, dir_);
  if (on_sync_) on_sync_(report);
}

}  // namespace automan
