// Aho–Corasick automaton over bytes, internal to src/secrets (the Redactor's matcher).
//
// Built once from a set of byte-string patterns; afterwards immutable, so one automaton may
// be stepped by any number of threads, each with its own state (a uint32_t, 0 = the root).
// Each pattern carries two flags the Redactor uses to widen a base64 match by one boundary
// character (see redactor.cpp); the automaton only stores and reports them.
//
// Layout: nodes are numbered in breadth-first order; a node's outgoing edges are a sorted
// run of (label, target) in two flat arrays. The root and the nodes of depth 1 (ids 0..k,
// at most 257) also have a dense 256-entry row with the failure links already followed, so
// text that matches nothing (the automaton stays near the root) costs one lookup per byte.
// Deeper, a step follows failure links until an edge exists, which is amortized O(1) per
// input byte (each failure link shortens the current match, each byte lengthens it by at
// most one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace automan::secrets_detail {

struct Pattern {
  std::string bytes;          // non-empty
  bool extend_left = false;   // widen a match over the byte before it (if base64)
  bool extend_right = false;  // widen a match over the byte after it (if base64)
};

class Automaton {
 public:
  // Duplicate patterns are merged (their flags or-ed). Empty patterns are ignored.
  explicit Automaton(const std::vector<Pattern>& patterns);

  static constexpr uint32_t kRoot = 0;

  uint32_t Next(uint32_t state, uint8_t byte) const {
    while (state > dense_last_) {
      const Node& n = nodes_[state];
      const uint32_t t = FindEdge(n.edge_begin, n.edge_count, byte);
      if (t != kRoot) return t;
      state = n.fail;
    }
    return dense_[static_cast<size_t>(state) * 256 + byte];
  }

  // Length of the path from the root: the longest suffix of the input so far that is a
  // prefix of some pattern. No match can start earlier than `depth` bytes back.
  uint32_t depth(uint32_t state) const { return nodes_[state].depth; }
  // Length of the longest pattern ending at the current input position (0: none). Every
  // other pattern ending here is a suffix of it.
  uint32_t match_len(uint32_t state) const { return nodes_[state].match >> 2; }
  // The extend_left flag of that longest pattern.
  bool match_extend_left(uint32_t state) const { return nodes_[state].match & 1; }
  // Whether any pattern ending here has extend_right.
  bool match_extend_right(uint32_t state) const { return nodes_[state].match & 2; }

  size_t pattern_count() const { return pattern_count_; }
  size_t longest() const { return longest_; }
  size_t node_count() const { return nodes_.size(); }
  bool any_extend_left() const { return any_extend_left_; }

 private:
  struct Node {
    uint32_t fail = kRoot;
    uint32_t edge_begin = 0;
    uint32_t depth = 0;
    uint32_t match = 0;  // match_len << 2 | extend_right << 1 | extend_left
    uint16_t edge_count = 0;
  };

  uint32_t FindEdge(uint32_t begin, uint32_t count, uint8_t byte) const {
    const uint8_t* labels = labels_.data() + begin;
    if (count <= 8) {
      for (uint32_t i = 0; i < count; ++i) {
        if (labels[i] == byte) return targets_[begin + i];
      }
      return kRoot;
    }
    uint32_t lo = 0, hi = count;
    while (lo < hi) {
      const uint32_t mid = (lo + hi) / 2;
      if (labels[mid] < byte) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo < count && labels[lo] == byte ? targets_[begin + lo] : kRoot;
  }

  std::vector<Node> nodes_;
  std::vector<uint8_t> labels_;
  std::vector<uint32_t> targets_;
  std::vector<uint32_t> dense_;  // rows of 256 for states 0..dense_last_
  uint32_t dense_last_ = 0;
  size_t pattern_count_ = 0;
  size_t longest_ = 0;
  bool any_extend_left_ = false;
};

}  // namespace automan::secrets_detail
