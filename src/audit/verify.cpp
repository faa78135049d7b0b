#include "audit/verify.h"

#include <algorithm>
#include <utility>

namespace automan::audit {

namespace {

std::string Short(std::string_view hash) {
  return std::string(hash.substr(0, 12)) + (hash.size() > 12 ? "…" : "");
}

}  // namespace

std::string_view ToString(FaultKind k) {
  switch (k) {
    case FaultKind::kNone:
      return "none";
    case FaultKind::kModified:
      return "modified";
    case FaultKind::kMissing:
      return "missing";
    case FaultKind::kReordered:
      return "reordered";
    case FaultKind::kForged:
      return "forged";
    case FaultKind::kTruncated:
      return "truncated";
    case FaultKind::kAnchor:
      return "anchor";
  }
  return "unknown";
}

ChainVerifier::ChainVerifier(const AuditKey& key, std::vector<HeadAnchor> anchors)
    : key_(key), anchors_(std::move(anchors)) {
  std::erase_if(anchors_, [](const HeadAnchor& a) { return a.seq < 1; });
  std::stable_sort(anchors_.begin(), anchors_.end(),
                   [](const HeadAnchor& a, const HeadAnchor& b) { return a.seq < b.seq; });
  if (!anchors_.empty()) report_.anchor_seq = anchors_.back().seq;
}

bool ChainVerifier::Feed(std::span<const AuditRecord> entries) {
  for (const AuditRecord& e : entries) {
    if (done_) return false;
    if (suspect_) {
      window_.push_back(e);
      if (window_.size() >= kClassifyWindow) {
        Classify();
        return false;
      }
      continue;
    }
    Step(e);
  }
  return !done_;
}

VerifyReport ChainVerifier::Finish() {
  if (suspect_ && !done_) Classify();
  if (!done_ && next_anchor_ < anchors_.size()) {
    const HeadAnchor& a = anchors_.back();
    const int64_t first = report_.last_seq + 1;
    Fail(FaultKind::kTruncated, first,
         first == a.seq
             ? fmt::format("the chain ends at seq {}, but entry {} (hash {}) was anchored: the "
                           "newest entry was removed",
                           report_.last_seq, a.seq, Short(a.hash))
             : fmt::format("the chain ends at seq {}, but entry {} (hash {}) was anchored: "
                           "entries {}..{} or more were removed from the tail",
                           report_.last_seq, a.seq, Short(a.hash), first, a.seq));
  }
  return report_;
}

void ChainVerifier::Fail(FaultKind kind, int64_t seq, std::string message) {
  report_.ok = false;
  report_.kind = kind;
  report_.first_bad_seq = seq;
  report_.message = std::move(message);
  done_ = true;
}

bool ChainVerifier::ChainsFrom(std::string_view prev_hash, const AuditRecord& e) const {
  return EntryHash(key_, prev_hash, e) == e.hash;
}

bool ChainVerifier::GenuineAt(std::string_view prev_hash, const AuditRecord& e, int64_t seq) const {
  AuditRecord moved = e;
  moved.seq = seq;
  return EntryHash(key_, prev_hash, moved) == e.hash;
}

std::optional<HeadAnchor> ChainVerifier::AnchorAt(int64_t seq) const {
  for (const HeadAnchor& a : anchors_) {
    if (a.seq == seq) return a;
  }
  return std::nullopt;
}

bool ChainVerifier::Step(const AuditRecord& e) {
  const int64_t last = report_.last_seq;
  if (e.seq <= last) {
    Fail(FaultKind::kReordered, e.seq,
         fmt::format("entry {} comes after entry {}: the entries are out of order", e.seq, last));
    return false;
  }
  if (e.seq > last + 1) {
    Fail(FaultKind::kMissing, last + 1,
         e.seq == last + 2
             ? fmt::format("entry {} is missing: the chain goes from seq {} to seq {}", last + 1,
                           last, e.seq)
             : fmt::format("entries {}..{} are missing: the chain goes from seq {} to seq {}",
                           last + 1, e.seq - 1, last, e.seq));
    return false;
  }
  if (!ChainsFrom(report_.last_hash, e)) {
    suspect_ = e;  // classified once the look-ahead window is filled (or input ends)
    return false;
  }
  for (; next_anchor_ < anchors_.size() && anchors_[next_anchor_].seq <= e.seq; ++next_anchor_) {
    const HeadAnchor& a = anchors_[next_anchor_];
    if (a.hash != e.hash) {
      Fail(FaultKind::kTruncated, e.seq,
           fmt::format("entry {} verifies, but its hash {} is not the anchored {}: the chain was "
                       "cut back to seq {} or earlier and grown again (or the anchor belongs to "
                       "another store)",
                       e.seq, Short(e.hash), Short(a.hash), e.seq));
      return false;
    }
  }
  ++report_.entries_checked;
  report_.last_seq = e.seq;
  report_.last_hash = e.hash;
  return true;
}

// The suspect is entry N = last_seq + 1, whose hash does not match prev || its fields.
// Decide which story the neighbourhood supports (verify.h lists the kinds).
void ChainVerifier::Classify() {
  const AuditRecord r = *suspect_;
  const int64_t n = r.seq;
  const std::string& prev = report_.last_hash;
  const std::string expected = EntryHash(key_, prev, r);
  const AuditRecord* next = !window_.empty() && window_[0].seq == n + 1 ? &window_[0] : nullptr;
  const bool r_hash_ok = IsHashHex(r.hash);

  // The stored hash is genuine (the chain continues from it): the fields were changed.
  if (next && r_hash_ok && ChainsFrom(r.hash, *next)) {
    return Fail(FaultKind::kModified, n,
                fmt::format("entry {} was changed after it was written: its fields no longer "
                            "match its hash, which entry {} still chains from",
                            n, n + 1));
  }
  const std::optional<HeadAnchor> anchor_n = AnchorAt(n);
  if (anchor_n && anchor_n->hash == r.hash) {
    return Fail(FaultKind::kModified, n,
                fmt::format("entry {} was changed after it was written: its fields no longer "
                            "match its hash, which is the anchored one",
                            n));
  }
  // The fields are genuine (the chain continues from their hash): the hash was changed.
  if ((next && ChainsFrom(expected, *next)) || (anchor_n && anchor_n->hash == expected)) {
    return Fail(FaultKind::kModified, n,
                fmt::format("the stored hash of entry {} was changed (its fields are intact)", n));
  }

  // Is the genuine entry N somewhere later?
  std::optional<size_t> genuine_n;
  for (size_t i = 0; i < window_.size() && !genuine_n; ++i) {
    if (window_[i].seq != n && GenuineAt(prev, window_[i], n)) genuine_n = i;
  }
  if (genuine_n) {
    // A swap: the suspect is the genuine entry of the place where entry N went.
    const int64_t m = window_[*genuine_n].seq;
    std::optional<std::string> prev_m;
    if (m == n + 1) prev_m = window_[*genuine_n].hash;
    for (const AuditRecord& w : window_) {
      if (!prev_m && w.seq == m - 1) prev_m = w.hash;
    }
    if (prev_m && GenuineAt(*prev_m, r, m)) {
      return Fail(FaultKind::kReordered, n,
                  fmt::format("entries {} and {} were swapped: each is a genuine entry of the "
                              "other's place",
                              n, m));
    }
  }
  // Is the suspect a genuine entry of another place (something continues from its hash)?
  std::optional<int64_t> r_home;
  if (r_hash_ok) {
    for (const AuditRecord& w : window_) {
      if (ChainsFrom(r.hash, w)) {
        r_home = w.seq - 1;
        break;
      }
    }
    for (const HeadAnchor& a : anchors_) {
      if (!r_home && a.seq != n && a.hash == r.hash) r_home = a.seq;
    }
  }
  if (r_home) {
    return Fail(FaultKind::kReordered, n,
                fmt::format("the entry at seq {} is a genuine entry from another place (the "
                            "chain continues from its hash after seq {}): entries were moved",
                            n, *r_home));
  }
  if (genuine_n) {
    return Fail(FaultKind::kForged, n,
                fmt::format("the entry at seq {} does not hash under this key, and the genuine "
                            "entry {} now sits at seq {}: a forged entry was inserted",
                            n, n, window_[*genuine_n].seq));
  }
  if (anchor_n) {
    return Fail(FaultKind::kForged, n,
                fmt::format("entry {} was replaced: neither its fields nor its stored hash match "
                            "the anchored hash {}",
                            n, Short(anchor_n->hash)));
  }
  if (window_.empty()) {
    const int64_t newest_anchor = anchors_.empty() ? 0 : anchors_.back().seq;
    if (!anchors_.empty() && newest_anchor < n) {
      return Fail(FaultKind::kForged, n,
                  fmt::format("entry {}, after the anchored head (seq {}), does not hash under "
                              "this key: it was appended by someone without the key",
                              n, newest_anchor));
    }
    return Fail(FaultKind::kModified, n,
                fmt::format("entry {} does not match its hash (no later entry or anchor tells "
                            "whether its fields or its hash were changed, or whether it was "
                            "appended without the key)",
                            n));
  }
  return Fail(FaultKind::kForged, n,
              fmt::format("entry {} does not hash under this key and nothing chains from its "
                          "hash: it was inserted or rewritten by someone without the key",
                          n));
}

VerifyReport VerifyEntries(const AuditKey& key, std::span<const AuditRecord> entries,
                           std::vector<HeadAnchor> anchors) {
  ChainVerifier v(key, std::move(anchors));
  v.Feed(entries);
  return v.Finish();
}

Result<VerifyReport> VerifyAudit(Store& store, const AuditKey& key, const VerifyOptions& options) {
  if (options.page_size < 1 || options.page_size > 100000) {
    return Error(ErrorCode::kInvalidArgument, "audit verify page size {} is out of range 1..100000",
                 options.page_size);
  }
  // The head first: it only moves after commits, so entries read afterwards reach it.
  std::vector<HeadAnchor> anchors = options.anchors;
  std::optional<std::string> head_problem;
  bool head_missing = false;
  if (!options.head_path.empty()) {
    auto head = ReadHeadFile(options.head_path, key);
    if (!head.ok()) {
      if (head.status().code() != ErrorCode::kDataLoss) return head.status();
      head_problem = head.status().message();
    } else if (*head) {
      anchors.push_back(**head);
    } else {
      head_missing = true;
    }
  }

  ChainVerifier verifier(key, std::move(anchors));
  AuditFilter filter;
  filter.limit = options.page_size;
  for (;;) {
    std::vector<AuditRecord> page;
    AUTOMAN_RETURN_IF_ERROR(store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(page, tx.ListAudit(filter));
      return Status::Ok();
    }));
    if (page.empty()) break;
    const bool more = verifier.Feed(page);
    int64_t max_seq = filter.after_seq;
    for (const AuditRecord& e : page) max_seq = std::max(max_seq, e.seq);
    if (!more || static_cast<int>(page.size()) < filter.limit || max_seq == filter.after_seq) {
      break;
    }
    filter.after_seq = max_seq;
  }
  VerifyReport report = verifier.Finish();
  if (report.ok && (head_problem || (head_missing && report.last_seq > 0))) {
    report.ok = false;
    report.kind = FaultKind::kAnchor;
    report.first_bad_seq = report.last_seq + 1;
    report.message =
        head_problem ? fmt::format(
                           "{} (entries 1..{} verify, but removal of newer ones cannot be ruled "
                           "out)",
                           *head_problem, report.last_seq)
                     : fmt::format(
                           "the head file {} is missing although the chain has {} entries: "
                           "removal of newer entries cannot be ruled out (it was deleted, or the "
                           "entries were appended without AuditLog::Checkpoint)",
                           options.head_path, report.last_seq);
  }
  return report;
}

}  // namespace automan::audit
