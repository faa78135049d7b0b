// Export of audit entries for people and for other systems (a SIEM, a spreadsheet).
//
// Pure functions; thread-safe. Text fields come out as valid UTF-8 whatever the store
// holds (invalid sequences become U+FFFD), so one tampered row cannot break the output.
#pragma once

#include <string>
#include <vector>

#include "store/store.h"

namespace automan::audit {

// One JSON object per line ("\n"-terminated), in the order given:
//   {"seq":1,"at":"2026-11-22T07:11:30.123456Z","actor":"...","action":"...",
//    "target":"...","outcome":"...","remote":"...","details":{...},"hash":"..."}
// `at` is RFC 3339 in UTC with microseconds (what the hash covers). `details` is the
// stored details_json embedded as an object (AuditLog stores it compact, so this is its
// exact text); a stored value that is no JSON object comes out as a JSON string.
std::string AuditToJsonLines(const std::vector<AuditRecord>& entries);

// RFC 4180 CSV with a header row (seq,at,actor,action,target,outcome,remote,details,hash),
// CRLF line ends. A cell is quoted when it holds a comma, a double quote, CR or LF
// (quotes doubled). Against formula injection in spreadsheets, a cell that starts with
// '=', '+', '-', '@', TAB or CR gets a leading single quote ("'=cmd()"): such cells are
// altered on purpose and no longer round-trip exactly.
std::string AuditToCsv(const std::vector<AuditRecord>& entries);

// RFC 3339 in UTC with microseconds: "2026-11-22T07:11:30.123456Z".
std::string FormatRfc3339Micros(Timestamp t);

}  // namespace automan::audit
