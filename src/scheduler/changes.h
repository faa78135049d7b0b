// Changing a stored schedule: the one way the CLI, file syncs (and later the API) put,
// pause, resume, replace and delete schedules, in the caller's write transaction.
//
// The loop may decide an occurrence ahead of its due time (scheduler.h, "Deciding ahead"):
// its ledger row is written and its run queued with not_before = the due time. A change
// withdraws those early decisions in the same transaction as the change — the ledger rows
// whose due time is still in the future are deleted and their runs, still PENDING (not
// claimable before their due time), are cancelled — and moves the cursor back before
// them, so the new definition decides those times afresh. Together with the generation
// fence on the loop's side this is what makes a change take effect at once: no run of the
// old definition starts after the change commits.
#pragma once

#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "store/store.h"

namespace automan {

// Withdraws the early decisions (see above), then PutSchedule(rec) with its cursor moved
// back before the first withdrawn occurrence when there was one.
Result<ScheduleRecord> PutScheduleChange(StoreTx& tx, ScheduleRecord rec, Timestamp now);
// Withdraws the early decisions, then DeleteSchedule(id).
Status DeleteScheduleChange(StoreTx& tx, std::string_view id, Timestamp now);

}  // namespace automan
