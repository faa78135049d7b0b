// RunbookCatalog: the three sources, duplicate ids naming both places, hot reload that keeps
// the previous catalog on errors, API-managed runbooks written durably.
#include "api/catalog.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "support/test_util.h"

namespace automan::api {
namespace {

std::string Yaml(const std::string& id, const std::string& echo = "hi") {
  return "id: " + id + "\nname: " + id + "\nsteps:\n  - id: s\n    shell: echo " + echo + "\n";
}

struct Dirs {
  automan::testing::TempDir tmp;
  std::string dir = tmp.path() + "/runbooks";
  std::string api = tmp.path() + "/api";
  Dirs() { std::filesystem::create_directories(dir); }
};

TEST(RunbookCatalogTest, LoadsBuiltinDirectoryAndApiRunbooks) {
  Dirs d;
  automan::testing::WriteFile(d.dir + "/a.yaml", Yaml("alpha"));
  automan::testing::WriteFile(d.dir + "/notes.txt", "not a runbook");
  auto c = RunbookCatalog::Open({{{"b.yaml", Yaml("builtin-one")}}, d.dir, d.api});
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto e = (*c)->PutApiRunbook(Yaml("gamma"), "");
  ASSERT_TRUE(e.ok()) << e.status().message();
  auto snap = (*c)->Snapshot();
  ASSERT_EQ(snap->size(), 3u);
  EXPECT_EQ(snap->at("builtin-one").origin, RunbookOrigin::kBuiltin);
  EXPECT_EQ(snap->at("builtin-one").source, "built-in b.yaml");
  EXPECT_EQ(snap->at("alpha").origin, RunbookOrigin::kDirectory);
  EXPECT_EQ(snap->at("gamma").origin, RunbookOrigin::kApi);
  struct stat st {};
  ASSERT_EQ(::stat((d.api + "/gamma.yaml").c_str(), &st), 0) << "kept as a file";
  EXPECT_FALSE(std::filesystem::exists(d.api + "/gamma.yaml.tmp"));
  // A new catalog over the same directories finds the API-managed one again.
  auto again = RunbookCatalog::Open({{}, d.dir, d.api});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->Find("gamma").has_value());
}

TEST(RunbookCatalogTest, AnIdDefinedTwiceIsALoadErrorNamingBothSources) {
  Dirs d;
  automan::testing::WriteFile(d.dir + "/a.yaml", Yaml("dup"));
  auto c = RunbookCatalog::Open({{{"x.yaml", Yaml("dup")}}, d.dir, d.api});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("\"dup\" is defined twice"), std::string::npos);
  EXPECT_NE(c.status().message().find("built-in x.yaml"), std::string::npos);
  EXPECT_NE(c.status().message().find(d.dir + "/a.yaml"), std::string::npos);
}

TEST(RunbookCatalogTest, ApiCannotShadowOrChangeOtherSources) {
  Dirs d;
  automan::testing::WriteFile(d.dir + "/a.yaml", Yaml("alpha"));
  auto c = RunbookCatalog::Open({{{"b.yaml", Yaml("core")}}, d.dir, d.api});
  ASSERT_TRUE(c.ok());
  auto dup = (*c)->PutApiRunbook(Yaml("alpha"), "");
  EXPECT_EQ(dup.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(dup.status().message().find(d.dir + "/a.yaml"), std::string::npos);
  EXPECT_EQ((*c)->PutApiRunbook(Yaml("core"), "core").status().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ((*c)->DeleteApiRunbook("core").code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ((*c)->DeleteApiRunbook("nope").code(), ErrorCode::kNotFound);
  EXPECT_EQ((*c)->PutApiRunbook(Yaml("nope"), "nope").status().code(), ErrorCode::kNotFound);
  auto mismatch = (*c)->PutApiRunbook(Yaml("other"), "alpha");
  EXPECT_EQ(mismatch.status().code(), ErrorCode::kInvalidArgument);
  auto bad = (*c)->PutApiRunbook("id: x\nsteps: 7\n", "");
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("request body:"), std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(std::filesystem::exists(d.api + "/x.yaml"));
}

TEST(RunbookCatalogTest, ApiRunbooksCanBeReplacedAndDeleted) {
  Dirs d;
  auto c = RunbookCatalog::Open({{}, "", d.api});
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->PutApiRunbook(Yaml("r", "one"), "").ok());
  const std::string v1 = (*c)->Find("r")->runbook->version;
  auto before = (*c)->Snapshot();
  ASSERT_TRUE((*c)->PutApiRunbook(Yaml("r", "two"), "r").ok());
  EXPECT_NE((*c)->Find("r")->runbook->version, v1);
  EXPECT_EQ(before->at("r").runbook->version, v1) << "a snapshot taken before never changes";
  ASSERT_TRUE((*c)->DeleteApiRunbook("r").ok());
  EXPECT_FALSE((*c)->Find("r").has_value());
  EXPECT_FALSE(std::filesystem::exists(d.api + "/r.yaml"));
}

TEST(RunbookCatalogTest, HotReloadPicksUpChangesAndKeepsTheCatalogOnErrors) {
  Dirs d;
  automan::testing::WriteFile(d.dir + "/a.yaml", Yaml("alpha"));
  auto c = RunbookCatalog::Open({{}, d.dir, d.api});
  ASSERT_TRUE(c.ok());
  auto unchanged = (*c)->ReloadIfChanged();
  ASSERT_TRUE(unchanged.ok());
  EXPECT_FALSE(*unchanged);
  automan::testing::WriteFile(d.dir + "/b.yaml", Yaml("beta"));
  auto changed = (*c)->ReloadIfChanged();
  ASSERT_TRUE(changed.ok()) << changed.status().message();
  EXPECT_TRUE(*changed);
  EXPECT_TRUE((*c)->Find("beta").has_value());
  // A broken file: the reload is refused and the previous catalog stays.
  automan::testing::WriteFile(d.dir + "/c.yaml", "id: broken\nsteps: [\n");
  auto broken = (*c)->ReloadIfChanged();
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("c.yaml"), std::string::npos);
  EXPECT_TRUE((*c)->Find("beta").has_value());
  // A duplicate with an API-managed runbook is refused too.
  std::filesystem::remove(d.dir + "/c.yaml");
  ASSERT_TRUE((*c)->PutApiRunbook(Yaml("gamma"), "").ok());
  automan::testing::WriteFile(d.dir + "/g.yaml", Yaml("gamma"));
  auto dup = (*c)->ReloadIfChanged();
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("defined twice"), std::string::npos);
  EXPECT_EQ((*c)->Find("gamma")->origin, RunbookOrigin::kApi);
  // Removing files removes their runbooks.
  std::filesystem::remove(d.dir + "/g.yaml");
  std::filesystem::remove(d.dir + "/b.yaml");
  auto removed = (*c)->ReloadIfChanged();
  ASSERT_TRUE(removed.ok()) << removed.status().message();
  EXPECT_FALSE((*c)->Find("beta").has_value());
  EXPECT_TRUE((*c)->Find("alpha").has_value());
}

TEST(RunbookCatalogTest, TheEmbeddedBuiltinsParse) {
  automan::testing::TempDir tmp;
  auto c = RunbookCatalog::Open({BuiltinRunbooks(), "", tmp.path() + "/api"});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(BuiltinRunbooks().empty());
  EXPECT_TRUE((*c)->Find("host-info").has_value());
}

}  // namespace
}  // namespace automan::api
