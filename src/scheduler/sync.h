// Schedules defined in runbook files, kept in sync with the store; and the checks every
// way of defining a schedule shares.
//
// A file's `schedules:` entries are stored as "<runbook id>/<schedule id>" with source
// "file:<absolute path>" and the runbook version of the file pinned. Syncing a set of
// files puts new and changed entries (a change moves the cursor to now, so no occurrence
// of the old definition is decided afterwards), deletes the file schedules in scope that no
// file defines any more, and leaves unchanged ones alone (their cursor and pause state
// too). An invalid file or schedule changes nothing in the store: the error is reported
// and the previous definition stays. A schedule id already taken by a schedule from
// elsewhere (the CLI, another file) is an error naming both sources.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "runbook/runbook.h"
#include "store/store.h"

namespace automan {

// The checks a schedule entry needs beyond the runbook parser's: the cron expression,
// the time zone and the policies (ScheduleTiming::Make). Messages start with the key
// path, e.g. "schedules[0].cron: minute: 60 is out of range 0-59".
std::vector<Diagnostic> CheckSchedules(const Runbook& rb);

struct SyncReport {
  std::vector<std::string> added, updated, removed, unchanged;  // schedule ids
  std::vector<std::string> errors;                              // one line each
};

// Loads every *.yaml / *.yml file directly in `dir` (sorted by name) and syncs their
// schedules; the scope is every file schedule whose source is under `dir`.
Result<SyncReport> SyncScheduleDir(Store& store, const Clock& clock, const std::string& dir);
// Syncs the schedules of these files; the scope is exactly these files (a file whose
// schedules were all removed loses them from the store).
Result<SyncReport> SyncScheduleFiles(Store& store, const Clock& clock,
                                     const std::vector<std::string>& files);

// A fingerprint of the files of `dir` (names, sizes, modification times): the worker
// re-syncs when it changes.
std::string ScanRunbookDir(const std::string& dir);

// Syncs `dir` at construction (on the caller's thread, so start-up errors show at once)
// and again, from a thread of its own, whenever ScanRunbookDir(dir) changes (checked every
// `interval`), until destroyed. `on_sync` gets every report (and failures as an error).
class ScheduleDirWatcher {
 public:
  ScheduleDirWatcher(Store& store, const Clock& clock, std::string dir,
                     std::chrono::milliseconds interval,
                     std::function<void(const Result<SyncReport>&)> on_sync);
  ~ScheduleDirWatcher();
  ScheduleDirWatcher(const ScheduleDirWatcher&) = delete;
  ScheduleDirWatcher& operator=(const ScheduleDirWatcher&) = delete;

 private:
  void SyncNow();

  Store& store_;
  const Clock& clock_;
  const std::string dir_;
  const std::chrono::milliseconds interval_;
  std::function<void(const Result<SyncReport>&)> on_sync_;
  std::string fingerprint_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace automan
