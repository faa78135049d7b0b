// LogWriter: numbers, redacts (secret params and secrets, in every encoding the redactor
// knows: secrets/redactor.h), caps and stores the log lines of one run attempt.
//
// Append() is called by the thread that reads the step's output; it never waits for the
// store except when more than 4 batches are pending (backpressure bounds memory). A
// background thread writes batches in transactions that also check the run's fencing
// token, every `log_flush_interval` or as soon as a batch is full. Finish() flushes the rest
// and returns the first store error, if any (kAborted means the lease was lost).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "core/run.h"
#include "secrets/redactor.h"
#include "store/store.h"

namespace automan {

class RunObserver;

struct LogWriterOptions {
  uint64_t max_bytes = 64ull << 20;
  size_t batch_lines = 8192;
  std::chrono::milliseconds flush_interval{100};
};

class LogWriter {
 public:
  // `redactor` (may be null: nothing to redact) must outlive the writer.
  LogWriter(Store& store, const Clock& clock, std::string run_id, int attempt, int64_t fence,
            LogWriterOptions options, const secrets::Redactor* redactor, RunObserver* observer);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  void Append(const std::string& step_id, LogStream stream, std::string_view text, bool partial);
  // Flushes everything appended so far and stops the writer thread. Idempotent.
  Status Finish();

  int64_t lines_appended() const { return next_seq_ - 1; }

 private:
  void Enqueue(LogLine line);
  void FlusherLoop();
  Status WriteBatch(std::vector<LogLine>& batch);

  Store& store_;
  const Clock& clock_;
  const std::string run_id_;
  const int attempt_;
  const int64_t fence_;
  const LogWriterOptions options_;
  const secrets::Redactor* const redactor_;
  RunObserver* const observer_;
  // A line longer than the splitter's limit arrives in partial pieces: a secret may
  // straddle two of them, so such pieces go through a stream that holds back a possible
  // secret's beginning until the next piece (per step and stream; producer thread only).
  std::map<std::pair<std::string, LogStream>, secrets::RedactingStream> partial_;

  // Producer-side state (the Append caller's thread only).
  int64_t next_seq_ = 1;
  uint64_t bytes_ = 0;
  bool truncated_ = false;
  uint64_t dropped_lines_ = 0;
  std::string dropped_step_;

  std::mutex mu_;
  std::condition_variable wake_flusher_;
  std::condition_variable space_available_;
  std::vector<LogLine> pending_;
  bool stopping_ = false;
  bool finished_ = false;
  Status error_;
  std::thread flusher_;
};

}  // namespace automan
