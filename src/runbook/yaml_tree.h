// Internal to src/runbook: the YAML document as a plain owned tree.
//
// parse.cpp (the only file that includes yaml-cpp) builds it from parser events after the
// hostile-input checks (aliases, tags, depth, size), so validate.cpp can walk an ordinary
// value type with source positions and no yaml-cpp objects in sight.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runbook/runbook.h"

namespace automan::runbook_detail {

struct YEntry;

struct YNode {
  enum class Kind { kNull, kScalar, kSeq, kMap };
  Kind kind = Kind::kNull;
  std::string value;   // scalar text
  bool plain = false;  // a plain (unquoted, untagged) scalar: subject to bool/int resolution
  bool bad = false;    // already reported (e.g. an alias); validators skip it silently
  SourceLocation loc;
  std::vector<YNode> items;     // kSeq
  std::vector<YEntry> entries;  // kMap, in file order, duplicates kept

  bool IsNull() const { return kind == Kind::kNull; }
  bool IsScalar() const { return kind == Kind::kScalar; }
  bool IsSeq() const { return kind == Kind::kSeq; }
  bool IsMap() const { return kind == Kind::kMap; }
};

// One `key: value` pair of a map.
struct YEntry {
  YNode key;
  YNode value;
};

// Turns a document tree into a Runbook, appending every problem found to `diags`
// (positions only; the caller fills in the file name). Returns a Runbook even when there
// are diagnostics; the caller discards it then.
Runbook BuildRunbook(const YNode& root, std::vector<Diagnostic>& diags);

// "a list", "a map", "nothing", "a number", "a boolean", "a string".
std::string Describe(const YNode& n);

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
int EditDistance(std::string_view a, std::string_view b);

// Valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF). On failure `bad_offset` is the
// byte offset of the first invalid sequence.
bool IsValidUtf8(std::string_view s, size_t* bad_offset = nullptr);

}  // namespace automan::runbook_detail
