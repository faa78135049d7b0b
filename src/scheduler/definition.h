// A stored schedule's definition: the runbook schedule entry (ScheduleSpec, the one shape
// of docs/schedules.md for runbook files and the CLI alike) plus the exact runbook version
// its runs execute, pinned when the schedule was defined (a later edit of the runbook file
// re-syncs the schedule, which moves it to the new version).
//
// Stored as ScheduleRecord::spec_json:
//   {"id":"nightly","cron":"30 2 * * *","tz":"Europe/Berlin","lead":"30m",
//    "params":{"service":"web"},"dst":{"gap":"shift","repeat":"first"},
//    "misfire":"run_once","max_lateness":"1h","overlap":"skip","jitter":"30s",
//    "active":true,"runbook_version":"sha256:..."}
// Durations in the FormatDuration form; unset optional keys are omitted.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "runbook/runbook.h"
#include "store/store.h"

namespace automan {

struct ScheduleDefinition {
  ScheduleSpec spec;
  std::string runbook_version;
};

std::string EncodeScheduleDefinition(const ScheduleDefinition& d);
// kDataLoss when the text is not what EncodeScheduleDefinition writes.
Result<ScheduleDefinition> DecodeScheduleDefinition(std::string_view json);

// The store id of schedule `schedule_id` of runbook `runbook_id`: "runbook/schedule".
std::string ScheduleStoreId(std::string_view runbook_id, std::string_view schedule_id);

// A schedule record for `spec` of `rb` (rb.version pinned), from `source` ("cli" or
// "file:PATH"), not paused, with cursor, created_at and updated_at set to `now`.
ScheduleRecord NewScheduleRecord(const Runbook& rb, const ScheduleSpec& spec, std::string source,
                                 Timestamp now);

}  // namespace automan
