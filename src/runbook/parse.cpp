// YAML text -> YNode tree -> Runbook. The only file that includes yaml-cpp.
//
// yaml-cpp is driven through its event API rather than YAML::Load so that hostile input is
// refused before it costs anything: aliases are never resolved (no "billion laughs"), nesting
// is cut off at kMaxYamlDepth before the parser recurses further, tags are seen as written,
// and duplicate map keys (which YAML::Node silently merges) stay visible to the validator.
// Every exception yaml-cpp (or anything else) throws becomes a Diagnostic.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>

#include "runbook/runbook.h"
#include "runbook/yaml_tree.h"

namespace automan {

namespace {

using runbook_detail::YNode;

// A runbook has a few hundred nodes; this bounds the memory a 1 MiB file of "[1,1,1,..."
// can make the tree cost.
constexpr size_t kMaxYamlNodes = 100'000;
// Past this many problems the rest are noise; the builder stops and the list is cut.
constexpr size_t kMaxDiagnostics = 100;

SourceLocation LocOf(const YAML::Mark& m) {
  if (m.is_null() || m.line < 0 || m.column < 0) return {};
  return {m.line + 1, m.column + 1};
}

// Thrown from the event handler to stop the parser; the diagnostic is already recorded.
struct StopParsing {};

class TreeBuilder final : public YAML::EventHandler {
 public:
  explicit TreeBuilder(std::vector<Diagnostic>& diags) : diags_(diags) {}

  bool has_root() const { return has_root_; }
  YNode& root() { return root_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_++ > 0) {
      Error(LocOf(mark),
            "a runbook file holds exactly one YAML document; remove the second \"---\" "
            "and what follows, or put it in its own file");
      throw StopParsing{};
    }
  }
  void OnDocumentEnd() override {}

  void OnAnchor(const YAML::Mark& mark, const std::string& name) override {
    pending_anchor_ = name;
    Error(LocOf(mark), "YAML anchors (&" + Clip(name) +
                           ") are not allowed in runbooks; write the value out in full");
  }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override {
    YNode n;
    n.kind = YNode::Kind::kNull;
    n.loc = LocOf(mark);
    Add(std::move(n));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchor_names_.find(anchor);
    std::string name = it == anchor_names_.end() ? "name" : Clip(it->second);
    Error(LocOf(mark),
          "YAML aliases (*" + name + ") are not allowed in runbooks; write the value out in full");
    YNode n;
    n.kind = YNode::Kind::kNull;
    n.bad = true;
    n.loc = LocOf(mark);
    Add(std::move(n));
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    NameAnchor(anchor);
    YNode n;
    n.kind = YNode::Kind::kScalar;
    n.loc = LocOf(mark);
    n.value = value;
    n.plain = tag == "?";
    CheckTag(mark, tag, n);
    if (value.find('\0') != std::string::npos) {
      Error(n.loc, "text contains a NUL byte (\\0); remove it");
      n.bad = true;
    } else if (!runbook_detail::IsValidUtf8(value)) {
      // Only reachable through escapes such as "\ud800" (lone surrogates).
      Error(n.loc, "text is not valid UTF-8 (check \\u escapes); remove the escape");
      n.bad = true;
    }
    Add(std::move(n));
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    NameAnchor(anchor);
    Open(mark, tag, YNode::Kind::kSeq);
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    NameAnchor(anchor);
    Open(mark, tag, YNode::Kind::kMap);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    YNode node;
    bool have_key = false;
    YNode key;
  };

  static std::string Clip(const std::string& s) {
    return s.size() > 40 ? s.substr(0, 40) + "..." : s;
  }

  void Error(SourceLocation loc, std::string message) {
    diags_.push_back(Diagnostic{"", loc, std::move(message)});
    if (diags_.size() >= kMaxDiagnostics) throw StopParsing{};
  }

  void NameAnchor(YAML::anchor_t anchor) {
    if (anchor != 0 && anchor_names_.size() < 1000) anchor_names_[anchor] = pending_anchor_;
  }

  // Plain scalars arrive as "?", quoted ones and block scalars as "!". Anything else was
  // written explicitly (`!!binary`, `!!str`, `!custom`).
  void CheckTag(const YAML::Mark& mark, const std::string& tag, YNode& n) {
    if (tag.empty() || tag == "?" || tag == "!") return;
    std::string shown = tag;
    const std::string kCore = "tag:yaml.org,2002:";
    if (shown.rfind(kCore, 0) == 0) shown = "!!" + shown.substr(kCore.size());
    Error(LocOf(mark), "YAML tags (" + Clip(shown) +
                           ") are not allowed in runbooks; remove the tag and write plain "
                           "text (quote it if it must stay a string)");
    n.bad = true;
  }

  void Open(const YAML::Mark& mark, const std::string& tag, YNode::Kind kind) {
    if (static_cast<int>(stack_.size()) >= kMaxYamlDepth) {
      Error(LocOf(mark), "YAML nesting is deeper than " + std::to_string(kMaxYamlDepth) +
                             " levels; a runbook never needs more than a few");
      throw StopParsing{};
    }
    Frame f;
    f.node.kind = kind;
    f.node.loc = LocOf(mark);
    CheckTag(mark, tag, f.node);
    CountNode(f.node.loc);
    stack_.push_back(std::move(f));
  }

  void Close() {
    if (stack_.empty()) return;  // unbalanced events: yaml-cpp never sends them
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.have_key) {  // a key without value cannot come from yaml-cpp; keep it anyway
      YNode null;
      null.loc = f.key.loc;
      f.node.entries.push_back(runbook_detail::YEntry{std::move(f.key), std::move(null)});
    }
    Attach(std::move(f.node));
  }

  void CountNode(SourceLocation loc) {
    if (++nodes_ > kMaxYamlNodes) {
      Error(loc, "the file has more than " + std::to_string(kMaxYamlNodes) +
                     " YAML values; a runbook never needs that many");
      throw StopParsing{};
    }
  }

  void Add(YNode n) {
    CountNode(n.loc);
    Attach(std::move(n));
  }

  void Attach(YNode n) {
    if (stack_.empty()) {
      root_ = std::move(n);
      has_root_ = true;
      return;
    }
    Frame& top = stack_.back();
    if (top.node.kind == YNode::Kind::kSeq) {
      top.node.items.push_back(std::move(n));
    } else if (!top.have_key) {
      top.key = std::move(n);
      top.have_key = true;
    } else {
      // An empty value (`name:`) is reported by yaml-cpp at the next token, often on the
      // next line; the key's position is where the user must look.
      if (n.kind == YNode::Kind::kNull && !n.bad) n.loc = top.key.loc;
      top.node.entries.push_back(runbook_detail::YEntry{std::move(top.key), std::move(n)});
      top.have_key = false;
    }
  }

  std::vector<Diagnostic>& diags_;
  std::vector<Frame> stack_;
  YNode root_;
  bool has_root_ = false;
  int documents_ = 0;
  size_t nodes_ = 0;
  std::string pending_anchor_;
  std::map<YAML::anchor_t, std::string> anchor_names_;
};

// Byte-level checks before yaml-cpp sees the text: UTF-8 only (yaml-cpp would silently
// decode UTF-16/32) and no control characters YAML does not allow.
bool CheckText(std::string_view text, std::vector<Diagnostic>& diags) {
  auto loc_at = [&](size_t offset) {
    SourceLocation loc{1, 1};
    for (size_t i = 0; i < offset; ++i) {
      if (text[i] == '\n') {
        ++loc.line;
        loc.column = 1;
      } else {
        ++loc.column;
      }
    }
    return loc;
  };
  size_t bad = 0;
  if (!runbook_detail::IsValidUtf8(text, &bad)) {
    diags.push_back({"", loc_at(bad),
                     "the file is not valid UTF-8 text (invalid byte at offset " +
                         std::to_string(bad) + "); save it as UTF-8"});
    return false;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      char hex[8];
      snprintf(hex, sizeof hex, "0x%02x", c);
      diags.push_back({"", loc_at(i),
                       std::string("control character ") + hex +
                           " is not allowed in YAML text; remove it (write \\t, \\n or "
                           "\\x.. escapes inside double quotes instead)"});
      return false;
    }
  }
  return true;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

ParseResult Finish(std::vector<Diagnostic> diags, std::optional<Runbook> rb,
                   std::string_view source) {
  ParseResult r;
  for (Diagnostic& d : diags) d.file = std::string(source);
  std::stable_sort(diags.begin(), diags.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.loc.line != b.loc.line) return a.loc.line < b.loc.line;
    return a.loc.column < b.loc.column;
  });
  if (diags.size() > kMaxDiagnostics) {
    size_t more = diags.size() - kMaxDiagnostics;
    diags.resize(kMaxDiagnostics);
    diags.push_back(
        {std::string(source), diags.back().loc,
         "... and " + std::to_string(more) + " more problems; fix the ones above first"});
  }
  r.diagnostics = std::move(diags);
  if (r.diagnostics.empty()) r.runbook = std::move(rb);
  return r;
}

ParseResult ParseImpl(std::string_view yaml, std::string_view source) {
  std::vector<Diagnostic> diags;
  if (yaml.size() > kMaxRunbookBytes) {
    diags.push_back({"",
                     {1, 1},
                     "the file is " + std::to_string(yaml.size()) +
                         " bytes; runbooks are limited to " + std::to_string(kMaxRunbookBytes) +
                         " bytes (1 MiB): move large scripts into files the steps run"});
    return Finish(std::move(diags), std::nullopt, source);
  }
  if (!CheckText(yaml, diags)) return Finish(std::move(diags), std::nullopt, source);

  TreeBuilder builder(diags);
  try {
    std::istringstream in{std::string(yaml)};
    YAML::Parser parser(in);
    if (parser.HandleNextDocument(builder)) {
      // A second document is reported (and parsing stopped) by OnDocumentStart.
      parser.HandleNextDocument(builder);
    }
  } catch (const StopParsing&) {
    return Finish(std::move(diags), std::nullopt, source);
  } catch (const YAML::Exception& e) {
    std::string msg = e.msg;
    if (!msg.empty()) msg[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(msg[0])));
    diags.push_back({"", LocOf(e.mark), "YAML syntax error: " + msg});
    return Finish(std::move(diags), std::nullopt, source);
  }

  if (!builder.has_root() || builder.root().IsNull()) {
    diags.push_back({"", {1, 1}, "the file is empty; a runbook needs at least `id:` and `steps:`"});
    return Finish(std::move(diags), std::nullopt, source);
  }
  Runbook rb = runbook_detail::BuildRunbook(builder.root(), diags);
  if (!diags.empty()) return Finish(std::move(diags), std::nullopt, source);
  rb.source = std::string(source);
  rb.yaml = std::string(yaml);
  rb.version = "sha256:" + Sha256Hex(yaml);
  return Finish(std::move(diags), std::move(rb), source);
}

}  // namespace

ParseResult ParseRunbook(std::string_view yaml, std::string_view source) {
  std::string why;
  try {
    return ParseImpl(yaml, source);
  } catch (const std::bad_alloc&) {
    why = "out of memory";
  } catch (const std::exception& e) {
    why = e.what();
  } catch (...) {
    why = "unknown exception";
  }
  ParseResult r;
  r.diagnostics.push_back(
      {std::string(source), {}, "internal error while parsing the runbook: " + why});
  return r;
}

ParseResult LoadRunbookFile(const std::string& path) {
  auto fail = [&](std::string message) {
    ParseResult r;
    r.diagnostics.push_back({path, {}, std::move(message)});
    return r;
  };
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::string("cannot read the file: ") + ErrnoText(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return fail("cannot read the file: " + ErrnoText(e));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return fail("is a directory, not a runbook file");
  }
  // Read at most one byte past the limit so /dev/zero and friends cannot exhaust memory;
  // ParseRunbook reports the size.
  std::string text;
  char buf[65536];
  while (text.size() <= kMaxRunbookBytes) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return fail("cannot read the file: " + ErrnoText(e));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (text.size() > kMaxRunbookBytes) {
    return fail("the file is larger than " + std::to_string(kMaxRunbookBytes) +
                " bytes (1 MiB), the limit for runbooks: move large scripts into files the "
                "steps run");
  }
  return ParseRunbook(text, path);
}

}  // namespace automan
