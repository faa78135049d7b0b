// Verification of the audit chain: is every entry the one that was written, in its place,
// and is nothing missing, from the first entry to the newest one known?
//
// ChainVerifier is pure logic fed page by page (memory is bounded by one page plus a
// bounded look-ahead window, whatever the chain's length); VerifyAudit reads a Store in
// pages of 10,000 and feeds it. The first fault found ends the check and is named:
//
//   missing    a seq is absent (a gap): the entry at first_bad_seq was deleted.
//   modified   entry first_bad_seq no longer matches its hash, while the chain shows the
//              hash itself is genuine (the next entry, or an anchor, chains from it): its
//              fields were changed. Also when only the stored hash was changed.
//   reordered  the entry at first_bad_seq is a genuine entry from another position (its
//              hash continues the chain elsewhere, or the genuine entry first_bad_seq sits
//              at another seq): entries were moved or swapped. Also seqs that do not
//              increase in the input.
//   forged     the entry at first_bad_seq does not hash under the key and is no displaced
//              genuine entry: inserted, or rewritten with a hash computed without the key.
//   truncated  an anchor (the head file, or one given by the caller) records an entry
//              first_bad_seq or later that the chain no longer has, or has with another
//              hash (cut back, then grown again).
//   anchor     the head file is missing while the chain has entries, malformed, or its
//              MAC does not match: the tail cannot be vouched for.
//
// Classification looks at up to kClassifyWindow entries after the first bad one; beyond
// that window a displaced entry is reported as forged or modified rather than reordered.
// Whatever the kind, first_bad_seq is where the chain stops being trustworthy.
//
// What Verify cannot see (README.md): anything done by someone holding the key, and a
// rollback of the whole store together with its head file to an older copy, unless an
// anchor recorded elsewhere is passed in VerifyOptions::anchors.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit/chain.h"
#include "audit/head.h"
#include "common/status.h"
#include "store/store.h"

namespace automan::audit {

enum class FaultKind { kNone, kModified, kMissing, kReordered, kForged, kTruncated, kAnchor };
// "none" "modified" "missing" "reordered" "forged" "truncated" "anchor"
std::string_view ToString(FaultKind k);

struct VerifyReport {
  bool ok = true;
  int64_t entries_checked = 0;          // entries that verified, before the first fault
  int64_t last_seq = 0;                 // seq of the last entry that verified (0: none)
  std::string last_hash{kGenesisHash};  // its hash
  // The newest anchored position that was checked (the head file's, or the highest of
  // the caller's); 0 when there was none, so truncation of the tail was not checked.
  int64_t anchor_seq = 0;
  // Set when !ok.
  FaultKind kind = FaultKind::kNone;
  int64_t first_bad_seq = 0;
  std::string message;  // for a person: what is wrong, where, and the likely cause
};

inline constexpr size_t kClassifyWindow = 10000;

// Feed entries in the order the store returns them (by seq), in pages of any size.
// Not thread-safe; one instance per verification.
class ChainVerifier {
 public:
  // `anchors`: positions known from outside the chain (any order). Each must be present
  // in the chain with that hash.
  explicit ChainVerifier(const AuditKey& key, std::vector<HeadAnchor> anchors = {});

  // Returns true while more entries can change the outcome, false once it is decided
  // (a fault was found and classified): the caller may stop reading.
  bool Feed(std::span<const AuditRecord> entries);
  // The end of the chain: checks the anchors against it and returns the report.
  VerifyReport Finish();

 private:
  bool Step(const AuditRecord& e);
  void Fail(FaultKind kind, int64_t seq, std::string message);
  void Classify();
  bool ChainsFrom(std::string_view prev_hash, const AuditRecord& e) const;
  bool GenuineAt(std::string_view prev_hash, const AuditRecord& e, int64_t seq) const;
  std::optional<HeadAnchor> AnchorAt(int64_t seq) const;

  AuditKey key_;
  std::vector<HeadAnchor> anchors_;  // by seq
  size_t next_anchor_ = 0;           // the first anchor not yet passed
  VerifyReport report_;
  bool done_ = false;
  std::optional<AuditRecord> suspect_;  // the first entry whose hash does not match
  std::vector<AuditRecord> window_;     // entries after the suspect (look-ahead)
};

// One-shot form of ChainVerifier over entries in memory.
VerifyReport VerifyEntries(const AuditKey& key, std::span<const AuditRecord> entries,
                           std::vector<HeadAnchor> anchors = {});

struct VerifyOptions {
  // The head file AuditLog maintains ("" = none: the tail is not checked, anchor_seq 0).
  // When set, a missing file while the chain has entries is a fault (kind "anchor").
  std::string head_path;
  // Further anchors recorded elsewhere (a report printed last week, an off-host log).
  std::vector<HeadAnchor> anchors;
  int page_size = 10000;  // 1..100000
};

// Reads the whole chain from `store` (each page in its own kRead transaction) and
// verifies it. The head file is read first, so entries appended meanwhile never look
// like a fault. Store errors are returned as they are; every finding about the chain is
// in the report.
Result<VerifyReport> VerifyAudit(Store& store, const AuditKey& key, const VerifyOptions& options);

}  // namespace automan::audit
