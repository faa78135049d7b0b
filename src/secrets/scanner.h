// The streaming matcher behind Redactor and RedactingStream; internal to src/secrets.
//
// The input is read three ways ("readings"): as is, percent-decoded and JSON-unescaped.
// Each reading is a decoder that turns input bytes into decoded bytes, each decoded byte
// tagged with the range of input positions it came from, and an Aho–Corasick state over
// the decoded bytes. A match in any reading marks the input range of its decoded bytes;
// marked ranges are merged into disjoint intervals, each replaced by one replacement.
//
// Input positions are absolute (counted from the scanner's creation). The scanner emits
// input bytes, and replacements, only up to the frontier: the earliest input position at
// which a match may still start, given every reading's partial match and pending escape.
// Everything before the frontier is final. One thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "secrets/aho_corasick.h"

namespace automan::secrets_detail {

struct RedactorCore {
  Automaton automaton;
  std::string replacement;
  size_t secret_count = 0;
  size_t skipped_count = 0;
};

// Base64 characters of either alphabet: a base64 match may be widened over one of them.
inline bool IsBase64Char(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '-' || c == '_';
}

// '+' and ' ' match each other (form-encoded spaces); patterns are folded the same way.
inline uint8_t FoldForMatch(uint8_t c) { return c == '+' ? ' ' : c; }

inline int HexValue(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Disjoint, sorted input ranges to replace; adjacent ranges are merged. `emitted`: the
// replacement for this interval was written (its start is final), later bytes that join it
// are swallowed.
class Intervals {
 public:
  struct Interval {
    uint64_t start;
    uint64_t end;  // inclusive
    bool emitted;
  };

  void Add(uint64_t start, uint64_t end);
  bool empty() const { return list_.empty(); }
  Interval& front() { return list_.front(); }
  void pop_front() { list_.pop_front(); }
  void clear() { list_.clear(); }

 private:
  std::deque<Interval> list_;
};

// One reading's matcher: the decoded bytes' recent input ranges and the automaton state.
class Reading {
 public:
  explicit Reading(const Automaton& automaton);

  // A decoded byte that came from input positions [start, end].
  void Push(uint8_t byte, uint64_t start, uint64_t end, Intervals& marks);
  // The earliest input position a future match of this reading (with the base64 byte it
  // may take along on its left) can start at; `pos` if none.
  uint64_t Frontier(uint64_t pos) const;
  void Reset();

 private:
  struct Decoded {
    uint64_t start;
    uint64_t end;
    uint8_t byte;
  };
  const Decoded& At(uint64_t index) const { return ring_[index & mask_]; }
  void Grow();

  const Automaton* automaton_;
  uint32_t state_ = Automaton::kRoot;
  uint32_t depth_ = 0;  // automaton_->depth(state_)
  uint64_t count_ = 0;  // decoded bytes pushed since the last Reset
  bool extend_next_ = false;
  // The last ring_.size() decoded bytes (a power of two). It holds at least the current
  // partial match and the byte before it, and grows only when a partial match needs it, so
  // a stream's memory follows the matches it sees, not the longest pattern (a 64 KiB secret
  // has a 128 KiB hex pattern).
  std::vector<Decoded> ring_;
  uint64_t mask_;
};

// %XX (either case) -> the byte; anything else, including a malformed escape, as is.
class PercentDecoder {
 public:
  template <typename Sink>
  void Feed(uint8_t b, uint64_t pos, Sink&& sink) {
    if (n_ == 1) {
      if (HexValue(b) >= 0) {
        hi_ = b;
        n_ = 2;
        return;
      }
      n_ = 0;
      sink('%', start_, start_);
    } else if (n_ == 2) {
      n_ = 0;
      if (HexValue(b) >= 0) {
        sink(static_cast<uint8_t>(HexValue(hi_) * 16 + HexValue(b)), start_, pos);
        return;
      }
      sink('%', start_, start_);
      sink(hi_, start_ + 1, start_ + 1);
    }
    if (b == '%') {
      n_ = 1;
      start_ = pos;
    } else {
      sink(b, pos, pos);
    }
  }
  template <typename Sink>
  void Flush(Sink&& sink) {
    if (n_ >= 1) sink('%', start_, start_);
    if (n_ == 2) sink(hi_, start_ + 1, start_ + 1);
    n_ = 0;
  }
  std::optional<uint64_t> pending_start() const {
    return n_ ? std::optional<uint64_t>(start_) : std::nullopt;
  }

 private:
  int n_ = 0;  // bytes of an unfinished escape: 0, "%" or "%X"
  uint8_t hi_ = 0;
  uint64_t start_ = 0;
};

// JSON string escapes -> the bytes they stand for (\uXXXX and surrogate pairs as UTF-8);
// anything else as is. An escape that turns out malformed (\q, \u12G, a lone surrogate)
// yields its backslash as is and the bytes after it are read again, so the decoding is
// what a JSON parser does for a valid string and the identity elsewhere.
class JsonDecoder {
 public:
  template <typename Sink>
  void Feed(uint8_t b, uint64_t pos, Sink&& sink) {
    if (state_ == kIdle) {
      if (b == '\\') {
        state_ = kEscape;
        start_ = pos;
        pending_[0] = b;
        n_ = 1;
      } else {
        sink(b, pos, pos);
      }
      return;
    }
    pending_[n_++] = b;
    switch (state_) {
      case kIdle:
        break;
      case kEscape: {
        const int simple = SimpleEscape(b);
        if (simple >= 0) {
          Done();
          sink(static_cast<uint8_t>(simple), start_, pos);
        } else if (b == 'u') {
          state_ = kHex;
          code_ = 0;
          digits_ = 0;
        } else {
          Fail(sink);
        }
        return;
      }
      case kHex:
      case kLowHex: {
        const int v = HexValue(b);
        if (v < 0) return Fail(sink);
        code_ = code_ * 16 + static_cast<uint32_t>(v);
        if (++digits_ < 4) return;
        if (state_ == kHex) {
          if (code_ >= 0xD800 && code_ <= 0xDBFF) {
            high_ = code_;
            state_ = kHighEscape;
            return;
          }
          if (code_ >= 0xDC00 && code_ <= 0xDFFF) return Fail(sink);
          Done();
          return EmitUtf8(code_, pos, sink);
        }
        if (code_ < 0xDC00 || code_ > 0xDFFF) return Fail(sink);
        Done();
        return EmitUtf8(0x10000 + ((high_ - 0xD800) << 10) + (code_ - 0xDC00), pos, sink);
      }
      case kHighEscape:
        if (b != '\\') return Fail(sink);
        state_ = kHighU;
        return;
      case kHighU:
        if (b != 'u') return Fail(sink);
        state_ = kLowHex;
        code_ = 0;
        digits_ = 0;
        return;
    }
  }
  template <typename Sink>
  void Flush(Sink&& sink) {
    while (state_ != kIdle) Fail(sink);  // each round yields one byte as is
  }
  std::optional<uint64_t> pending_start() const {
    return state_ != kIdle ? std::optional<uint64_t>(start_) : std::nullopt;
  }

 private:
  enum State { kIdle, kEscape, kHex, kHighEscape, kHighU, kLowHex };

  static int SimpleEscape(uint8_t b) {
    switch (b) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      default:
        return -1;
    }
  }

  void Done() {
    state_ = kIdle;
    n_ = 0;
  }

  // The pending escape is malformed: its backslash is plain text, the rest is read again.
  template <typename Sink>
  void Fail(Sink&& sink) {
    uint8_t bytes[kMaxPending];
    const size_t n = n_;
    const uint64_t start = start_;
    std::copy(pending_, pending_ + n, bytes);
    Done();
    sink(bytes[0], start, start);
    for (size_t i = 1; i < n; ++i) Feed(bytes[i], start + i, sink);
  }

  template <typename Sink>
  void EmitUtf8(uint32_t cp, uint64_t end, Sink&& sink) {
    if (cp < 0x80) {
      sink(static_cast<uint8_t>(cp), start_, end);
    } else if (cp < 0x800) {
      sink(static_cast<uint8_t>(0xC0 | (cp >> 6)), start_, end);
      sink(static_cast<uint8_t>(0x80 | (cp & 0x3F)), start_, end);
    } else if (cp < 0x10000) {
      sink(static_cast<uint8_t>(0xE0 | (cp >> 12)), start_, end);
      sink(static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)), start_, end);
      sink(static_cast<uint8_t>(0x80 | (cp & 0x3F)), start_, end);
    } else {
      sink(static_cast<uint8_t>(0xF0 | (cp >> 18)), start_, end);
      sink(static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F)), start_, end);
      sink(static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)), start_, end);
      sink(static_cast<uint8_t>(0x80 | (cp & 0x3F)), start_, end);
    }
  }

  static constexpr size_t kMaxPending = 12;  // "\uD83D\uDE00"
  State state_ = kIdle;
  uint8_t pending_[kMaxPending] = {};
  size_t n_ = 0;
  uint64_t start_ = 0;
  uint32_t code_ = 0;
  uint32_t high_ = 0;
  int digits_ = 0;
};

class Scanner {
 public:
  explicit Scanner(std::shared_ptr<const RedactorCore> core);

  void Write(std::string_view chunk, std::string* out);
  void Flush(std::string* out);
  size_t held_bytes() const { return static_cast<size_t>(pos_ - emitted_); }

  // Also records each replaced input range [begin, end) here, as it is emitted.
  void RecordRanges(std::vector<std::pair<uint64_t, uint64_t>>* ranges) { ranges_ = ranges; }

 private:
  void Feed(uint8_t b);
  uint64_t Frontier() const;
  // Emits input bytes and replacements before `frontier`, and drops them from buffer_.
  void Advance(uint64_t frontier, std::string* out);

  std::shared_ptr<const RedactorCore> core_;
  Reading plain_;
  Reading percent_;
  Reading json_;
  PercentDecoder percent_decoder_;
  JsonDecoder json_decoder_;
  Intervals marks_;
  uint64_t pos_ = 0;      // input bytes written
  uint64_t emitted_ = 0;  // input bytes emitted or swallowed by a replacement
  std::string buffer_;    // input bytes [buffer_start_, pos_)
  uint64_t buffer_start_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>>* ranges_ = nullptr;
};

}  // namespace automan::secrets_detail
