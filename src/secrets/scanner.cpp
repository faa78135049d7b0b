#include "secrets/scanner.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace automan::secrets_detail {

void Intervals::Add(uint64_t start, uint64_t end) {
  // New ranges start near the end of the list (at or after the frontier), so search from
  // the back: `hi` is the first interval that starts after end + 1 (stays separate), `lo`
  // the first one that touches [start, end] (merges).
  auto hi = list_.end();
  while (hi != list_.begin() && std::prev(hi)->start > end + 1) --hi;
  auto lo = hi;
  while (lo != list_.begin() && std::prev(lo)->end + 1 >= start) --lo;
  if (lo == hi) {
    list_.insert(hi, Interval{start, end, false});
    return;
  }
  Interval merged{std::min(start, lo->start), std::max(end, std::prev(hi)->end), false};
  for (auto it = lo; it != hi; ++it) merged.emitted = merged.emitted || it->emitted;
  // A replacement is emitted only once nothing can start before the interval, so a later
  // range never extends an emitted interval to the left.
  assert(!merged.emitted || merged.start == lo->start);
  auto at = list_.erase(lo, hi);
  list_.insert(at, merged);
}

Reading::Reading(const Automaton& automaton)
    : automaton_(&automaton), ring_(16), mask_(ring_.size() - 1) {}

void Reading::Grow() {
  std::vector<Decoded> bigger(ring_.size() * 2);
  const uint64_t kept = std::min<uint64_t>(count_, ring_.size());
  for (uint64_t i = count_ - kept; i < count_; ++i) bigger[i & (bigger.size() - 1)] = At(i);
  ring_.swap(bigger);
  mask_ = ring_.size() - 1;
}

void Reading::Reset() {
  state_ = Automaton::kRoot;
  depth_ = 0;
  count_ = 0;
  extend_next_ = false;
}

void Reading::Push(uint8_t byte, uint64_t start, uint64_t end, Intervals& marks) {
  if (extend_next_) {
    // The previous byte ended a base64 match whose last character mixes secret bits with
    // the next byte's: this is that character.
    extend_next_ = false;
    if (IsBase64Char(byte)) marks.Add(start, end);
  }
  // After this byte the partial match is at most one longer; it and the byte before it
  // must still be in the ring.
  while (depth_ + 2 > ring_.size()) Grow();
  ring_[count_ & mask_] = Decoded{start, end, byte};
  ++count_;
  state_ = automaton_->Next(state_, FoldForMatch(byte));
  depth_ = automaton_->depth(state_);
  const uint32_t len = automaton_->match_len(state_);
  if (len == 0) return;
  const uint64_t first = count_ - len;
  uint64_t from = At(first).start;
  if (automaton_->match_extend_left(state_) && first > 0 && IsBase64Char(At(first - 1).byte)) {
    from = At(first - 1).start;
  }
  marks.Add(from, end);
  extend_next_ = automaton_->match_extend_right(state_);
}

uint64_t Reading::Frontier(uint64_t pos) const {
  const uint64_t first = count_ - depth_;  // the first byte of the partial match
  uint64_t frontier = first < count_ ? At(first).start : pos;
  if (automaton_->any_extend_left() && first > 0 && IsBase64Char(At(first - 1).byte)) {
    frontier = std::min(frontier, At(first - 1).start);
  }
  return frontier;
}

Scanner::Scanner(std::shared_ptr<const RedactorCore> core)
    : core_(std::move(core)),
      plain_(core_->automaton),
      percent_(core_->automaton),
      json_(core_->automaton) {}

void Scanner::Feed(uint8_t b) {
  const uint64_t pos = pos_++;
  plain_.Push(b, pos, pos, marks_);
  percent_decoder_.Feed(b, pos, [this](uint8_t d, uint64_t start, uint64_t end) {
    percent_.Push(d, start, end, marks_);
  });
  json_decoder_.Feed(b, pos, [this](uint8_t d, uint64_t start, uint64_t end) {
    json_.Push(d, start, end, marks_);
  });
}

uint64_t Scanner::Frontier() const {
  uint64_t f = std::min({plain_.Frontier(pos_), percent_.Frontier(pos_), json_.Frontier(pos_)});
  if (auto p = percent_decoder_.pending_start()) f = std::min(f, *p);
  if (auto p = json_decoder_.pending_start()) f = std::min(f, *p);
  return f;
}

void Scanner::Write(std::string_view chunk, std::string* out) {
  buffer_.append(chunk);
  // Emit now and then within a large chunk, so the marks and the output stay in step.
  constexpr size_t kStride = 64 * 1024;
  for (size_t i = 0; i < chunk.size(); ++i) {
    Feed(static_cast<uint8_t>(chunk[i]));
    if ((i + 1) % kStride == 0) Advance(Frontier(), out);
  }
  Advance(Frontier(), out);
}

void Scanner::Flush(std::string* out) {
  percent_decoder_.Flush(
      [this](uint8_t d, uint64_t start, uint64_t end) { percent_.Push(d, start, end, marks_); });
  json_decoder_.Flush(
      [this](uint8_t d, uint64_t start, uint64_t end) { json_.Push(d, start, end, marks_); });
  Advance(pos_, out);
  assert(emitted_ == pos_);
  marks_.clear();
  plain_.Reset();
  percent_.Reset();
  json_.Reset();
}

void Scanner::Advance(uint64_t frontier, std::string* out) {
  // Before `frontier` nothing new can start, so every byte there is final: plain text, or
  // inside an interval whose replacement can be written. An interval that reaches the
  // frontier may still grow to the right; it stays (emitted) and swallows what joins it.
  while (emitted_ < frontier) {
    if (!marks_.empty() && marks_.front().start <= emitted_) {
      Intervals::Interval& iv = marks_.front();
      if (!iv.emitted) {
        out->append(core_->replacement);
        iv.emitted = true;
        if (ranges_) ranges_->emplace_back(iv.start, iv.end + 1);
      } else if (ranges_) {
        ranges_->back().second = iv.end + 1;  // the last emitted interval may have grown
      }
      emitted_ = std::max(emitted_, std::min(iv.end + 1, pos_));
      if (iv.end + 1 >= frontier) break;
      marks_.pop_front();
    } else {
      const uint64_t stop = marks_.empty() ? frontier : std::min(frontier, marks_.front().start);
      out->append(buffer_, static_cast<size_t>(emitted_ - buffer_start_),
                  static_cast<size_t>(stop - emitted_));
      emitted_ = stop;
    }
  }
  if (emitted_ > buffer_start_) {
    buffer_.erase(0, static_cast<size_t>(emitted_ - buffer_start_));
    buffer_start_ = emitted_;
  }
}

}  // namespace automan::secrets_detail
