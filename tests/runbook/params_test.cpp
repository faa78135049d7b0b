// BindParams, CanonicalParamValue, EnvName, ToString(ParamType): every type and every error.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "runbook/runbook.h"
#include "runbook/runbook_test_util.h"

namespace automan {
namespace {

using Given = std::vector<std::pair<std::string, std::string>>;

Runbook Load(const std::string& yaml) {
  ParseResult r = automan::testing::Parse(yaml);
  EXPECT_TRUE(r.ok()) << automan::testing::DumpDiagnostics(r);
  return r.ok() ? *r.runbook : Runbook{};
}

const char* kAllTypes = R"(id: p
params:
  service: {type: string, required: true, pattern: "[a-z][a-z0-9-]*"}
  replicas: {type: int, default: 2}
  ratio: {type: number}
  verbose: {type: bool, default: false}
  env: {type: enum, values: [dev, staging, prod], default: dev}
  token: {type: secret, pattern: "tok_[A-Za-z0-9]+"}
  note: {}
steps: [{id: s, shell: echo}]
)";

// Binds one value for `name` (plus service=web so the required param is present).
Result<RunParams> BindOne(const std::string& name, const std::string& value) {
  static const Runbook rb = Load(kAllTypes);
  Given given = {{name, value}};
  if (name != "service") given.emplace_back("service", "web");
  return BindParams(rb, given);
}

std::string Text(const Result<RunParams>& r, const std::string& name) {
  if (!r.ok()) return "ERROR: " + r.status().message();
  auto it = r->find(name);
  return it == r->end() ? "ABSENT" : it->second.text;
}

void ExpectError(const Result<RunParams>& r, std::initializer_list<std::string_view> words) {
  ASSERT_FALSE(r.ok()) << "binding succeeded";
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  for (std::string_view w : words) {
    EXPECT_NE(r.status().message().find(w), std::string::npos)
        << "[" << w << "] not in: " << r.status().message();
  }
}

TEST(BindParams, AppliesDefaultsAndLeavesOptionalParamsAbsent) {
  Runbook rb = Load(kAllTypes);
  auto r = BindParams(rb, {{"service", "web"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 4u);
  EXPECT_EQ(r->at("service"), (ParamValue{"string", "web"}));
  EXPECT_EQ(r->at("replicas"), (ParamValue{"int", "2"}));
  EXPECT_EQ(r->at("verbose"), (ParamValue{"bool", "false"}));
  EXPECT_EQ(r->at("env"), (ParamValue{"enum", "dev"}));
  EXPECT_EQ(r->count("ratio"), 0u);
  EXPECT_EQ(r->count("token"), 0u);
  EXPECT_EQ(r->count("note"), 0u);
}

TEST(BindParams, GivenValuesOverrideDefaultsAndCarryTheirType) {
  Runbook rb = Load(kAllTypes);
  auto r = BindParams(rb, {{"service", "api-2"},
                           {"replicas", "5"},
                           {"ratio", "0.75"},
                           {"verbose", "yes"},
                           {"env", "prod"},
                           {"token", "tok_abc123"},
                           {"note", "hello world"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->at("replicas"), (ParamValue{"int", "5"}));
  EXPECT_EQ(r->at("ratio"), (ParamValue{"number", "0.75"}));
  EXPECT_EQ(r->at("verbose"), (ParamValue{"bool", "true"}));
  EXPECT_EQ(r->at("env"), (ParamValue{"enum", "prod"}));
  // Secret values are carried in text: the engine needs them; the store redacts.
  EXPECT_EQ(r->at("token"), (ParamValue{"secret", "tok_abc123"}));
  EXPECT_TRUE(r->at("token").secret());
  EXPECT_EQ(r->at("note"), (ParamValue{"string", "hello world"}));
}

TEST(BindParams, UnknownParameterListsWhatTheRunbookTakes) {
  Runbook rb = Load(kAllTypes);
  auto r = BindParams(rb, {{"service", "web"}, {"servce", "x"}});
  ExpectError(r, {"unknown parameter \"servce\"; this runbook takes: service, replicas, ratio, "
                  "verbose, env, token, note"});
}

TEST(BindParams, UnknownParameterWhenTheRunbookTakesNone) {
  Runbook rb = Load("id: p\nsteps: [{id: s, shell: echo}]\n");
  ExpectError(BindParams(rb, {{"x", "1"}}),
              {"unknown parameter \"x\"; this runbook takes no parameters"});
  auto ok = BindParams(rb, {});
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->empty());
}

TEST(BindParams, NameGivenTwice) {
  Runbook rb = Load(kAllTypes);
  ExpectError(BindParams(rb, {{"service", "a"}, {"service", "b"}}),
              {"parameter \"service\" is given more than once"});
}

TEST(BindParams, MissingRequired) {
  Runbook rb = Load(kAllTypes);
  auto r = BindParams(rb, {});
  ExpectError(r, {"missing required parameter \"service\" (string)", "-p service="});
}

TEST(BindParams, MissingRequiredSaysTheType) {
  Runbook rb =
      Load("id: p\nparams: {n: {type: int, required: true}}\nsteps: [{id: s, shell: echo}]\n");
  ExpectError(BindParams(rb, {}), {"missing required parameter \"n\" (int)"});
}

TEST(BindParams, Int) {
  EXPECT_EQ(Text(BindOne("replicas", "42"), "replicas"), "42");
  EXPECT_EQ(Text(BindOne("replicas", "007"), "replicas"), "7");
  EXPECT_EQ(Text(BindOne("replicas", "0"), "replicas"), "0");
  EXPECT_EQ(Text(BindOne("replicas", "000"), "replicas"), "0");
  EXPECT_EQ(Text(BindOne("replicas", "-0"), "replicas"), "0");
  EXPECT_EQ(Text(BindOne("replicas", "-007"), "replicas"), "-7");
  EXPECT_EQ(Text(BindOne("replicas", "9223372036854775807"), "replicas"), "9223372036854775807");
  EXPECT_EQ(Text(BindOne("replicas", "-9223372036854775808"), "replicas"), "-9223372036854775808");
  EXPECT_EQ(Text(BindOne("replicas", "0009223372036854775807"), "replicas"), "9223372036854775807");
  for (const char* bad : {"", "-", "+5", "1.0", "1e3", " 1", "1 ", "0x10", "ten", "--1", "1-"}) {
    ExpectError(BindOne("replicas", bad), {"parameter \"replicas\" must be an integer"});
  }
  ExpectError(BindOne("replicas", "9223372036854775808"), {"parameter \"replicas\" is out of range",
                                                           "-9223372036854775808 and "
                                                           "9223372036854775807"});
  ExpectError(BindOne("replicas", "-9223372036854775809"), {"out of range"});
  ExpectError(BindOne("replicas", "99999999999999999999999999"), {"out of range"});
}

TEST(BindParams, Number) {
  for (const char* good : {"0", "1.5", "-2", "1e3", "-1.25E-2", ".5", "5.", "+3", "1e-400"}) {
    EXPECT_EQ(Text(BindOne("ratio", good), "ratio"), good) << good;
  }
  for (const char* bad : {"", "inf", "-inf", "nan", "infinity", "0x1p3", "0x10", "1e999", "-1e999",
                          " 1", "1 ", "1,5", "1.2.3", "e5", "1e", ".", "-", "abc"}) {
    ExpectError(BindOne("ratio", bad), {"parameter \"ratio\" must be a finite decimal number"});
  }
}

TEST(BindParams, Bool) {
  for (const char* t : {"true", "TRUE", "True", "yes", "YES", "1"}) {
    EXPECT_EQ(Text(BindOne("verbose", t), "verbose"), "true") << t;
  }
  for (const char* f : {"false", "False", "no", "NO", "0"}) {
    EXPECT_EQ(Text(BindOne("verbose", f), "verbose"), "false") << f;
  }
  for (const char* bad : {"", "maybe", "on", "off", "2", "y", " true"}) {
    ExpectError(BindOne("verbose", bad), {"parameter \"verbose\" must be true or false"});
  }
}

TEST(BindParams, Enum) {
  EXPECT_EQ(Text(BindOne("env", "staging"), "env"), "staging");
  ExpectError(BindOne("env", "qa"),
              {"parameter \"env\" must be one of: dev, staging, prod", "got \"qa\""});
  ExpectError(BindOne("env", "PROD"), {"must be one of"});  // members match exactly
}

TEST(BindParams, StringPatternIsAFullMatch) {
  EXPECT_EQ(Text(BindOne("service", "web-2"), "service"), "web-2");
  ExpectError(BindOne("service", "Web"),
              {"parameter \"service\" must match the pattern [a-z][a-z0-9-]*", "got \"Web\""});
  // A partial match is not enough.
  ExpectError(BindOne("service", "web;rm -rf /"), {"must match the pattern"});
  ExpectError(BindOne("service", ""), {"must match the pattern"});
}

TEST(BindParams, StringWithoutPatternTakesAnything) {
  EXPECT_EQ(Text(BindOne("note", ""), "note"), "");
  EXPECT_EQ(Text(BindOne("note", "$(rm -rf /); `x` 'q' \"d\"\n"), "note"),
            "$(rm -rf /); `x` 'q' \"d\"\n");
  EXPECT_EQ(Text(BindOne("note", "héllo ✓"), "note"), "héllo ✓");
}

TEST(BindParams, SecretValuesAreNeverEchoed) {
  auto r = BindOne("token", "hunter2");
  ExpectError(r, {"parameter \"token\" must match the pattern tok_[A-Za-z0-9]+"});
  EXPECT_EQ(r.status().message().find("hunter2"), std::string::npos) << r.status().message();
}

TEST(BindParams, SizeLimit) {
  std::string max(kMaxParamValueBytes, 'a');
  EXPECT_EQ(Text(BindOne("note", max), "note").size(), kMaxParamValueBytes);
  ExpectError(BindOne("note", max + "a"),
              {"parameter \"note\" is 65537 bytes long", "limited to 65536 bytes"});
  ExpectError(BindOne("replicas", std::string(70'000, '1')), {"65536"});
}

TEST(BindParams, NulBytesAndInvalidUtf8AreRejected) {
  ExpectError(BindOne("note", std::string("a\0b", 3)), {"parameter \"note\" contains a NUL byte"});
  ExpectError(BindOne("note", "caf\xe9"), {"parameter \"note\" is not valid UTF-8"});
  ExpectError(BindOne("token", std::string("tok_\0", 5)), {"NUL byte"});
}

TEST(CanonicalParamValue, IsWhatDefaultsUse) {
  ParamSpec spec;
  spec.name = "n";
  spec.type = ParamType::kInt;
  auto v = CanonicalParamValue(spec, "010");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "10");
  spec.type = ParamType::kSecret;
  spec.pattern = "[0-9]+";
  auto bad = CanonicalParamValue(spec, "s3cr3t");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "parameter \"n\" must match the pattern [0-9]+");
}

TEST(EnvName, UpperCasesAndReplacesDashes) {
  EXPECT_EQ(EnvName("restart-web"), "RESTART_WEB");
  EXPECT_EQ(EnvName("service_name2"), "SERVICE_NAME2");
  EXPECT_EQ(EnvName(""), "");
  EXPECT_EQ(EnvName("a.b"), "A_B");
}

TEST(ParamTypeToString, NamesMatchTheFormat) {
  EXPECT_EQ(ToString(ParamType::kString), "string");
  EXPECT_EQ(ToString(ParamType::kInt), "int");
  EXPECT_EQ(ToString(ParamType::kNumber), "number");
  EXPECT_EQ(ToString(ParamType::kBool), "bool");
  EXPECT_EQ(ToString(ParamType::kEnum), "enum");
  EXPECT_EQ(ToString(ParamType::kSecret), "secret");
}

}  // namespace
}  // namespace automan
