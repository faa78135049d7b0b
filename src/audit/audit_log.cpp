#include "audit/audit_log.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <cstdio>
#include <utility>

#include "audit/head.h"
#include "audit/text.h"

namespace automan::audit {

namespace {

constexpr size_t kMaxDetailsBytes = 64 * 1024;

// An exclusive flock on "<head>.lock", held for the scope (threads and processes).
class HeadFileLock {
 public:
  explicit HeadFileLock(const std::string& head_path)
      : path_(head_path + ".lock"), fd_(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ < 0) {
      status_ = Error(ErrorCode::kInternal, "opening {}: {}", path_, ErrnoText(errno));
      return;
    }
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      status_ = Error(ErrorCode::kInternal, "locking {}: {}", path_, ErrnoText(errno));
      return;
    }
  }
  ~HeadFileLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  HeadFileLock(const HeadFileLock&) = delete;
  HeadFileLock& operator=(const HeadFileLock&) = delete;
  const Status& status() const { return status_; }

 private:
  std::string path_;
  int fd_;
  Status status_;
};

}  // namespace

AuditLog::AuditLog(Store& store, const AuditKey& key, const Clock& clock, AuditLogOptions options)
    : store_(store), key_(key), clock_(clock), options_(std::move(options)) {}

AuditLog::~AuditLog() { sodium_memzero(key_.data(), key_.size()); }

Result<AuditRecord> AuditLog::MakeRecord(AuditEvent event) const {
  if (event.actor.empty()) return Error(ErrorCode::kInvalidArgument, "audit event has no actor");
  if (event.action.empty()) {
    return Error(ErrorCode::kInvalidArgument, "audit event has no action");
  }
  if (event.outcome != "ok" && event.outcome != "denied" && event.outcome != "failed") {
    return Error(ErrorCode::kInvalidArgument,
                 "audit event outcome \"{}\" is not \"ok\", \"denied\" or \"failed\"",
                 detail::ToValidUtf8(event.outcome, true));
  }
  if (event.details_json.size() > kMaxDetailsBytes) {
    return Error(ErrorCode::kInvalidArgument, "audit event details are {} bytes (at most {})",
                 event.details_json.size(), kMaxDetailsBytes);
  }
  boost::system::error_code ec;
  boost::json::value details = boost::json::parse(event.details_json, ec);
  if (ec) {
    return Error(ErrorCode::kInvalidArgument, "audit event details are not valid JSON: {}",
                 ec.message());
  }
  if (!details.is_object()) {
    return Error(ErrorCode::kInvalidArgument, "audit event details are not a JSON object");
  }
  AuditRecord r;
  r.actor = detail::ToValidUtf8(event.actor, true);
  r.action = detail::ToValidUtf8(event.action, true);
  r.target = detail::ToValidUtf8(event.target, true);
  r.outcome = std::move(event.outcome);
  r.remote = detail::ToValidUtf8(event.remote, true);
  r.details_json = boost::json::serialize(details);
  return r;
}

Status AuditLog::Append(StoreTx& tx, AuditEvent event) {
  return AppendInTx(tx, std::move(event)).status();
}

Result<int64_t> AuditLog::AppendInTx(StoreTx& tx, AuditEvent event) {
  AUTOMAN_ASSIGN_OR_RETURN(AuditRecord r, MakeRecord(std::move(event)));
  AUTOMAN_RETURN_IF_ERROR(tx.LockKey("audit"));
  AUTOMAN_ASSIGN_OR_RETURN(std::optional<AuditRecord> last, tx.LastAudit());
  r.seq = last ? last->seq + 1 : 1;
  r.at = clock_.Now();
  r.hash = EntryHash(key_, last ? std::string_view(last->hash) : kGenesisHash, r);
  AUTOMAN_RETURN_IF_ERROR(tx.AppendAudit(r));
  return r.seq;
}

Status AuditLog::Append(AuditEvent event) {
  int64_t seq = 0;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kWrite, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(seq, AppendInTx(tx, event));
    return Status::Ok();
  }));
  if (!options_.head_path.empty()) {
    Status st = CheckpointCovering(seq);
    if (!st.ok()) {
      std::fprintf(stderr, "audit: entry %lld is committed, but the head was not advanced: %s\n",
                   static_cast<long long>(seq), st.ToString().c_str());
    }
  }
  return Status::Ok();
}

Status AuditLog::Checkpoint() { return CheckpointCovering(std::nullopt); }

Status AuditLog::CheckpointCovering(std::optional<int64_t> seq) {
  if (options_.head_path.empty()) return Status::Ok();
  Status st = [&]() -> Status {
    HeadFileLock lock(options_.head_path);
    AUTOMAN_RETURN_IF_ERROR(lock.status());
    AUTOMAN_ASSIGN_OR_RETURN(std::optional<HeadAnchor> head,
                             ReadHeadFile(options_.head_path, key_));
    std::optional<AuditRecord> last;
    std::optional<AuditRecord> anchored;  // the entry at head->seq
    AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
      AUTOMAN_ASSIGN_OR_RETURN(last, tx.LastAudit());
      if (head) {
        AuditFilter f;
        f.after_seq = head->seq - 1;
        f.limit = 1;
        AUTOMAN_ASSIGN_OR_RETURN(std::vector<AuditRecord> at, tx.ListAudit(f));
        if (!at.empty() && at[0].seq == head->seq) anchored = std::move(at[0]);
      }
      return Status::Ok();
    }));
    if (!last) {
      if (!head) return Status::Ok();
      return Error(ErrorCode::kDataLoss,
                   "the audit chain is empty but the head anchors entry {}: entries were "
                   "removed; the head is kept as evidence",
                   head->seq);
    }
    if (head) {
      if (last->seq < head->seq) {
        return Error(ErrorCode::kDataLoss,
                     "the audit chain ends at entry {} but the head anchors entry {}: entries "
                     "were removed; the head is kept as evidence",
                     last->seq, head->seq);
      }
      if (!anchored || anchored->hash != head->hash) {
        return Error(ErrorCode::kDataLoss,
                     "audit entry {} is not the one the head anchors: the chain was cut and "
                     "grown again; the head is kept as evidence",
                     head->seq);
      }
      // Group commit of the head: while this thread waited for the lock, another one may
      // have anchored this entry already; newer entries are their appenders' to anchor.
      if (last->seq == head->seq || (seq && head->seq >= *seq)) return Status::Ok();
    }
    return WriteHeadFile(options_.head_path, key_, HeadAnchor{last->seq, last->hash},
                         options_.sync_head);
  }();
  std::lock_guard<std::mutex> guard(mu_);
  checkpoint_status_ = st;
  return st;
}

Status AuditLog::CheckpointStatus() const {
  std::lock_guard<std::mutex> guard(mu_);
  return checkpoint_status_;
}

Result<std::vector<AuditRecord>> AuditLog::List(const AuditFilter& filter) {
  std::vector<AuditRecord> out;
  AUTOMAN_RETURN_IF_ERROR(store_.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    AUTOMAN_ASSIGN_OR_RETURN(out, tx.ListAudit(filter));
    return Status::Ok();
  }));
  return out;
}

Result<VerifyReport> AuditLog::Verify(std::vector<HeadAnchor> extra_anchors) {
  VerifyOptions options;
  options.head_path = options_.head_path;
  options.anchors = std::move(extra_anchors);
  return VerifyAudit(store_, key_, options);
}

}  // namespace automan::audit
