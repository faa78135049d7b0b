#include "engine/log_writer.h"

#include <fmt/format.h>

#include "engine/engine.h"

namespace automan {

LogWriter::LogWriter(Store& store, const Clock& clock, std::string run_id, int attempt,
                     int64_t fence, LogWriterOptions options, const secrets::Redactor* redactor,
                     RunObserver* observer)
    : store_(store),
      clock_(clock),
      run_id_(std::move(run_id)),
      attempt_(attempt),
      fence_(fence),
      options_(options),
      redactor_(redactor != nullptr && !redactor->empty() ? redactor : nullptr),
      observer_(observer) {}

LogWriter::~LogWriter() { (void)Finish(); }

void LogWriter::Append(const std::string& step_id, LogStream stream, std::string_view text,
                       bool partial) {
  if (truncated_) {
    ++dropped_lines_;
    dropped_step_ = step_id;
    return;
  }
  LogLine line;
  line.run_id = run_id_;
  line.attempt = attempt_;
  line.step_id = step_id;
  line.stream = stream;
  line.ts = clock_.Now();
  if (redactor_ == nullptr) {
    line.text = std::string(text);
  } else {
    const auto key = std::make_pair(step_id, stream);
    auto it = partial_.find(key);
    if (!partial && it == partial_.end()) {
      line.text = redactor_->Redact(text);
    } else {
      if (it == partial_.end())
        it = partial_.emplace(key, secrets::RedactingStream(*redactor_)).first;
      it->second.Write(text, &line.text);
      if (!partial) {
        it->second.Flush(&line.text);
        partial_.erase(it);
      }
    }
  }
  line.partial = partial;
  bytes_ += line.text.size() + 1;
  if (bytes_ > options_.max_bytes && stream != LogStream::kSystem) {
    truncated_ = true;
    ++dropped_lines_;
    dropped_step_ = step_id;
    line.stream = LogStream::kSystem;
    line.text = fmt::format(
        "log truncated: this run attempt printed more than {} bytes; further output is "
        "discarded",
        options_.max_bytes);
    line.partial = false;
  }
  line.seq = next_seq_++;
  if (observer_ != nullptr) observer_->OnLog(line);
  Enqueue(std::move(line));
}

void LogWriter::Enqueue(LogLine line) {
  // The writer thread starts with the first line: a run that prints nothing costs none.
  if (!flusher_.joinable()) {
    pending_.reserve(std::min<size_t>(options_.batch_lines, 1024));
    flusher_ = std::thread([this] { FlusherLoop(); });
  }
  std::unique_lock lock(mu_);
  space_available_.wait(lock,
                        [&] { return pending_.size() < 4 * options_.batch_lines || stopping_; });
  pending_.push_back(std::move(line));
  if (pending_.size() >= options_.batch_lines) wake_flusher_.notify_one();
}

Status LogWriter::WriteBatch(std::vector<LogLine>& batch) {
  for (size_t off = 0; off < batch.size(); off += options_.batch_lines) {
    size_t n = std::min(options_.batch_lines, batch.size() - off);
    std::span<const LogLine> part(batch.data() + off, n);
    Status s = store_.Transact(Store::TxMode::kWriteProgress, [&](StoreTx& tx) {
      AUTOMAN_RETURN_IF_ERROR(tx.CheckFence(run_id_, fence_));
      return tx.AppendLogLines(part);
    });
    if (!s.ok()) return s.WithContext("storing log lines");
  }
  return Status::Ok();
}

void LogWriter::FlusherLoop() {
  std::vector<LogLine> batch;
  std::unique_lock lock(mu_);
  while (true) {
    wake_flusher_.wait_for(lock, options_.flush_interval,
                           [&] { return stopping_ || pending_.size() >= options_.batch_lines; });
    if (pending_.empty()) {
      if (stopping_) return;
      continue;
    }
    batch.swap(pending_);
    bool stop_after = stopping_;
    lock.unlock();
    space_available_.notify_all();
    Status s = error_.ok() ? WriteBatch(batch) : Status::Ok();
    batch.clear();
    lock.lock();
    if (!s.ok() && error_.ok()) error_ = s;
    if (stop_after && pending_.empty()) return;
  }
}

Status LogWriter::Finish() {
  if (finished_) return error_;
  if (dropped_lines_ > 0) {
    uint64_t dropped = dropped_lines_;
    dropped_lines_ = 0;
    LogLine line;
    line.run_id = run_id_;
    line.attempt = attempt_;
    line.step_id = dropped_step_;
    line.stream = LogStream::kSystem;
    line.ts = clock_.Now();
    line.text = fmt::format("{} further output lines were discarded", dropped);
    line.seq = next_seq_++;
    if (observer_ != nullptr) observer_->OnLog(line);
    Enqueue(std::move(line));
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_flusher_.notify_one();
  space_available_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  finished_ = true;
  return error_;
}

}  // namespace automan
