#include "secrets/aho_corasick.h"

#include <algorithm>
#include <cassert>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace automan::secrets_detail {

namespace {

// The trie while it is built: children as sorted sibling lists.
struct TrieNode {
  uint32_t first_child = 0;  // 0: none (the root is never a child)
  uint32_t next_sibling = 0;
  uint8_t label = 0;
  uint8_t flags = 0;  // bit 0 extend_left, bit 1 extend_right
  bool terminal = false;
};

}  // namespace

Automaton::Automaton(const std::vector<Pattern>& patterns) {
  // Deduplicate, or-ing the flags of equal patterns.
  std::unordered_map<std::string_view, uint8_t> unique;
  unique.reserve(patterns.size());
  for (const Pattern& p : patterns) {
    if (p.bytes.empty()) continue;
    unique[p.bytes] |= (p.extend_left ? 1 : 0) | (p.extend_right ? 2 : 0);
  }
  pattern_count_ = unique.size();

  std::vector<TrieNode> trie(1);
  for (const auto& [bytes, flags] : unique) {
    uint32_t node = 0;
    for (const char ch : bytes) {
      const uint8_t c = static_cast<uint8_t>(ch);
      // Find or insert c among node's children, kept sorted by label.
      uint32_t prev = 0;
      uint32_t child = trie[node].first_child;
      while (child != 0 && trie[child].label < c) {
        prev = child;
        child = trie[child].next_sibling;
      }
      if (child == 0 || trie[child].label != c) {
        const uint32_t fresh = static_cast<uint32_t>(trie.size());
        trie.push_back(TrieNode{.next_sibling = child, .label = c});
        if (prev == 0) {
          trie[node].first_child = fresh;
        } else {
          trie[prev].next_sibling = fresh;
        }
        child = fresh;
      }
      node = child;
    }
    trie[node].terminal = true;
    trie[node].flags |= flags;
    longest_ = std::max(longest_, bytes.size());
    any_extend_left_ = any_extend_left_ || (flags & 1);
  }

  // Renumber breadth-first and flatten the edges; BFS order puts every node after its
  // parent and after every node of smaller depth, which the failure links rely on.
  nodes_.resize(trie.size());
  labels_.reserve(trie.size());
  targets_.reserve(trie.size());
  std::vector<uint32_t> order;  // new id -> trie id
  order.reserve(trie.size());
  order.push_back(0);
  for (size_t i = 0; i < order.size(); ++i) {
    const TrieNode& t = trie[order[i]];
    Node& n = nodes_[i];
    n.edge_begin = static_cast<uint32_t>(labels_.size());
    for (uint32_t c = t.first_child; c != 0; c = trie[c].next_sibling) {
      const uint32_t id = static_cast<uint32_t>(order.size());
      order.push_back(c);
      labels_.push_back(trie[c].label);
      targets_.push_back(id);
      nodes_[id].depth = n.depth + 1;
      if (trie[c].terminal) {
        nodes_[id].match = (nodes_[id].depth << 2) | trie[c].flags;
      }
    }
    n.edge_count = static_cast<uint16_t>(labels_.size() - n.edge_begin);
  }
  // The root's dense row: its children, the root elsewhere.
  dense_.assign(256, kRoot);
  for (uint32_t e = 0; e < nodes_[kRoot].edge_count; ++e) dense_[labels_[e]] = targets_[e];

  // Failure links and match summaries, parents before children.
  for (uint32_t u = 0; u < nodes_.size(); ++u) {
    const Node& parent = nodes_[u];
    for (uint32_t e = parent.edge_begin; e < parent.edge_begin + parent.edge_count; ++e) {
      const uint32_t v = targets_[e];
      uint32_t fail = kRoot;
      if (u != kRoot) fail = Next(parent.fail, labels_[e]);
      Node& child = nodes_[v];
      child.fail = fail;
      const uint32_t inherited = nodes_[fail].match;
      if ((child.match >> 2) == 0) {
        child.match = inherited;  // the longest match here is the fail node's
      } else {
        child.match |= inherited & 2;  // a shorter pattern ending here may extend right
      }
    }
  }
  // Dense rows for the depth-1 nodes (ids 1..k in BFS order): a child if there is one, else
  // the root's transition (a depth-1 node's failure link is the root).
  const uint32_t depth1 = nodes_[kRoot].edge_count;
  dense_.resize(static_cast<size_t>(depth1 + 1) * 256);
  for (uint32_t s = 1; s <= depth1; ++s) {
    uint32_t* row = &dense_[static_cast<size_t>(s) * 256];
    for (uint32_t c = 0; c < 256; ++c) row[c] = dense_[c];
    const Node& n = nodes_[s];
    for (uint32_t e = n.edge_begin; e < n.edge_begin + n.edge_count; ++e) {
      row[labels_[e]] = targets_[e];
    }
  }
  dense_last_ = depth1;
  assert(nodes_.size() < (1ull << 32));
}

}  // namespace automan::secrets_detail
