// The documentation's runbooks: every docs/examples/*.yaml parses and binds, the copies in
// docs/runbooks.md are identical to the files, and every other YAML snippet in the reference
// parses (or, when marked `# invalid`, fails).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "runbook/runbook.h"
#include "runbook/runbook_test_util.h"
#include "support/test_util.h"

namespace automan {
namespace {

using automan::testing::DumpDiagnostics;
using automan::testing::ReadFile;
using automan::testing::SourceDir;

std::vector<std::string> ExampleFiles() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(SourceDir() + "/docs/examples")) {
    if (e.path().extension() == ".yaml") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Block {
  int line;  // of the opening fence
  std::string text;
};

std::vector<Block> YamlBlocks(const std::string& markdown) {
  std::vector<Block> out;
  std::istringstream in(markdown);
  std::string line;
  int n = 0;
  bool inside = false;
  Block cur;
  while (std::getline(in, line)) {
    ++n;
    if (!inside && line == "```yaml") {
      inside = true;
      cur = Block{n, ""};
    } else if (inside && line == "```") {
      inside = false;
      out.push_back(cur);
    } else if (inside) {
      cur.text += line + "\n";
    }
  }
  EXPECT_FALSE(inside) << "unterminated ```yaml block";
  return out;
}

bool HasTopLevelKey(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return true;
  }
  return false;
}

TEST(Examples, TheRequiredOnesExist) {
  auto files = ExampleFiles();
  for (const char* name :
       {"hello.yaml", "params.yaml", "timeout.yaml", "restart-web.yaml", "reference.yaml"}) {
    EXPECT_NE(std::find(files.begin(), files.end(), SourceDir() + "/docs/examples/" + name),
              files.end())
        << name;
  }
}

TEST(Examples, EveryExampleParsesAndBinds) {
  for (const std::string& file : ExampleFiles()) {
    SCOPED_TRACE(file);
    ParseResult r = LoadRunbookFile(file);
    ASSERT_TRUE(r.ok()) << DumpDiagnostics(r);
    // Every example documents its command line; the only required param any of them has is
    // `service`.
    std::vector<std::pair<std::string, std::string>> given;
    if (const ParamSpec* p = r.runbook->FindParam("service"); p && p->required) {
      given.emplace_back("service", "web");
    }
    auto bound = BindParams(*r.runbook, given);
    EXPECT_TRUE(bound.ok()) << bound.status().ToString();
  }
}

TEST(Examples, TheReferenceExampleUsesEveryKey) {
  ParseResult r = LoadRunbookFile(SourceDir() + "/docs/examples/reference.yaml");
  ASSERT_TRUE(r.ok()) << DumpDiagnostics(r);
  const std::string& y = r.runbook->yaml;
  for (const char* key : {"id:",          "name:",
                          "description:", "category:",
                          "tags:",        "params:",
                          "type:",        "required",
                          "default:",     "pattern:",
                          "values:",      "timeout:",
                          "retries:",     "steps:",
                          "rollback:",    "dangerous:",
                          "requires:",    "allowed_roles:",
                          "concurrency:", "schedules:",
                          "cron:",        "every:",
                          "at:",          "tz:",
                          "lead:",        "dst:",
                          "misfire:",     "max_lateness:",
                          "overlap:",     "jitter:",
                          "active:",      "sandbox:",
                          "pid:",         "writable:",
                          "network:",     "shell:",
                          "argv:",        "env:",
                          "cwd:",         "continue_on_error:",
                          "outputs:",     "count:",
                          "backoff:",     "delay:",
                          "max_delay:",   "no_retry_exit_codes:"}) {
    EXPECT_NE(y.find(key), std::string::npos) << key;
  }
}

TEST(Examples, DocCopiesMatchTheFilesAndSnippetsParse) {
  const std::string doc_path = SourceDir() + "/docs/runbooks.md";
  const std::string doc = ReadFile(doc_path);
  ASSERT_FALSE(doc.empty()) << doc_path;
  auto blocks = YamlBlocks(doc);
  ASSERT_GT(blocks.size(), 10u);
  std::vector<std::string> copied;
  const std::string kFilePrefix = "# docs/examples/";
  for (const Block& b : blocks) {
    SCOPED_TRACE("docs/runbooks.md block at line " + std::to_string(b.line));
    if (b.text.rfind(kFilePrefix, 0) == 0) {
      size_t eol = b.text.find('\n');
      std::string name = b.text.substr(2, eol - 2);
      std::string body = b.text.substr(eol + 1);
      EXPECT_EQ(body, ReadFile(SourceDir() + "/" + name)) << name << " differs from its copy";
      copied.push_back(SourceDir() + "/" + name);
      continue;
    }
    const bool invalid = b.text.rfind("# invalid", 0) == 0;
    std::string text = b.text;
    if (!HasTopLevelKey(text, "id")) text = "id: doc-snippet\n" + text;
    if (!HasTopLevelKey(text, "steps")) text += "steps: [{id: doc_snippet, shell: echo}]\n";
    ParseResult r = ParseRunbook(text, "snippet");
    if (invalid) {
      EXPECT_FALSE(r.ok()) << "a snippet marked # invalid parses:\n" << b.text;
    } else {
      EXPECT_TRUE(r.ok()) << b.text << DumpDiagnostics(r);
    }
  }
  // Every example file appears in the reference.
  for (const std::string& file : ExampleFiles()) {
    EXPECT_NE(std::find(copied.begin(), copied.end(), file), copied.end())
        << file << " is not shown in docs/runbooks.md";
  }
}

}  // namespace
}  // namespace automan
