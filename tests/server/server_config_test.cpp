// The server's settings: precedence (file < env < flag), provenance, every error message,
// secrets kept out of output, and hostile config files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "server/config.h"
#include "support/test_util.h"

namespace automan {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using testing::TempDir;
using testing::WriteFile;

using Flags = std::map<std::string, std::string>;
using Env = std::vector<std::string>;

class ServerConfigTest : public ::testing::Test {
 protected:
  // Writes `text` to a fresh config file and returns its path.
  std::string File(const std::string& text) {
    std::string path = dir_.File("automan-" + std::to_string(n_++) + ".yaml");
    WriteFile(path, text);
    return path;
  }
  // The error message of loading `text` as the config file (fails the test if it loads).
  std::string FileError(const std::string& text, std::string* path_out = nullptr) {
    std::string path = File(text);
    if (path_out != nullptr) *path_out = path;
    auto r = LoadServerConfig(path, {}, {});
    EXPECT_FALSE(r.ok()) << "loaded:\n" << text;
    if (r.ok()) return "";
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << r.status().ToString();
    return r.status().message();
  }
  std::string EnvError(const Env& env) {
    auto r = LoadServerConfig("", {}, env);
    EXPECT_FALSE(r.ok());
    return r.ok() ? "" : r.status().message();
  }
  std::string FlagError(const Flags& flags) {
    auto r = LoadServerConfig("", flags, {});
    EXPECT_FALSE(r.ok());
    return r.ok() ? "" : r.status().message();
  }

  TempDir dir_;
  int n_ = 0;
};

std::string Describe(const std::vector<ConfigSource>& sources) {
  std::string out;
  for (const auto& s : sources) out += s.key + "=" + s.value + " <- " + s.from + "\n";
  return out;
}

TEST_F(ServerConfigTest, NothingGivenMeansDefaults) {
  auto r = LoadServerConfig("", {}, {"PATH=/usr/bin", "HOME=/root"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ServerConfig d;
  EXPECT_EQ(r->config.listen, "127.0.0.1:8080");
  EXPECT_EQ(r->config.workers, d.workers);
  EXPECT_EQ(r->config.max_body_bytes, 8 << 20);
  EXPECT_TRUE(r->config.scheduler);
  EXPECT_THAT(r->sources, IsEmpty());
  EXPECT_THAT(r->warnings, IsEmpty());
  EXPECT_EQ(DescribeConfigSources(*r), "");
}

TEST_F(ServerConfigTest, FlagsBeatEnvBeatFileBeatDefaults) {
  const std::string path = File(
      "# server settings\n"
      "listen: 0.0.0.0:7000\n"
      "workers: 8\n"
      "log_level: debug\n"
      "lease: 1m\n");
  const Env env = {"AUTOMAN_LISTEN=0.0.0.0:9000", "AUTOMAN_WORKERS=2", "AUTOMAN_GRACE=10s"};
  const Flags flags = {{"listen", "[::1]:9100"}, {"max_streams", "50"}};
  auto r = LoadServerConfig(path, flags, env);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config.listen, "[::1]:9100");
  EXPECT_EQ(r->config.workers, 2);
  EXPECT_EQ(r->config.log_level, "debug");
  EXPECT_EQ(r->config.lease, "1m");
  EXPECT_EQ(r->config.grace, "10s");
  EXPECT_EQ(r->config.max_streams, 50);
  EXPECT_EQ(r->config.data, "./automan-data");  // untouched

  // Table order; only non-defaults; the winning source of each.
  EXPECT_EQ(Describe(r->sources),
            "listen=[::1]:9100 <- flag --listen\n"
            "workers=2 <- env AUTOMAN_WORKERS\n"
            "lease=1m <- file " +
                path +
                "\n"
                "grace=10s <- env AUTOMAN_GRACE\n"
                "max_streams=50 <- flag --max-streams\n"
                "log_level=debug <- file " +
                path + "\n");
  EXPECT_EQ(DescribeConfigSources(*r),
            "config: listen = [::1]:9100 (from flag --listen)\n"
            "config: workers = 2 (from env AUTOMAN_WORKERS)\n"
            "config: lease = 1m (from file " +
                path +
                ")\n"
                "config: grace = 10s (from env AUTOMAN_GRACE)\n"
                "config: max_streams = 50 (from flag --max-streams)\n"
                "config: log_level = debug (from file " +
                path + ")\n");
}

TEST_F(ServerConfigTest, EnvOverFileAlone) {
  auto r = LoadServerConfig(File("listen: 0.0.0.0:7000\n"), {}, {"AUTOMAN_LISTEN=0.0.0.0:9000"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(DescribeConfigSources(*r), "config: listen = 0.0.0.0:9000 (from env AUTOMAN_LISTEN)\n");
}

TEST_F(ServerConfigTest, ValueSetBackToTheDefaultIsNotListed) {
  auto r = LoadServerConfig(File("workers: 9\n"), {{"workers", "4"}}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config.workers, 4);
  EXPECT_THAT(r->sources, IsEmpty());
}

TEST_F(ServerConfigTest, BoolSpellingsFromEnvFlagsAndFile) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, bool>>{{"true", true},
                                                                            {"YES", true},
                                                                            {"on", true},
                                                                            {"1", true},
                                                                            {"False", false},
                                                                            {"no", false},
                                                                            {"OFF", false},
                                                                            {"0", false}}) {
    SCOPED_TRACE(text);
    auto e = LoadServerConfig("", {}, {"AUTOMAN_METRICS_PUBLIC=" + text});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_EQ(e->config.metrics_public, want);
    auto f = LoadServerConfig("", {{"scheduler", text}}, {});
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(f->config.scheduler, want);
    auto y = LoadServerConfig(File("metrics_public: " + text + "\n"), {}, {});
    ASSERT_TRUE(y.ok()) << y.status().ToString();
    EXPECT_EQ(y->config.metrics_public, want);
  }
}

TEST_F(ServerConfigTest, NoSchedulerFlagIsNamedAsTyped) {
  auto r = LoadServerConfig("", {{"scheduler", "false"}, {"metrics_public", "true"}}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->config.scheduler);
  EXPECT_EQ(Describe(r->sources),
            "metrics_public=true <- flag --metrics-public\n"
            "scheduler=false <- flag --no-scheduler\n");
}

TEST_F(ServerConfigTest, DashedFlagKeysAreAccepted) {
  auto r = LoadServerConfig("", {{"log-level", "warn"}}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config.log_level, "warn");
  EXPECT_EQ(r->sources.at(0).from, "flag --log-level");
}

// ---- Secrets -----------------------------------------------------------------------------

TEST_F(ServerConfigTest, SecretishValuesAreNeverPrinted) {
  const std::string kKeyPath = "/etc/automan/very-private-key.pem";
  auto r = LoadServerConfig(File("tls_cert: /etc/automan/cert.pem\n"), {{"tls_key", kKeyPath}},
                            {"AUTOMAN_TOKEN=tok-123-secret", "AUTOMAN_ADMIN_PASSWORD=hunter2",
                             "AUTOMAN_SERVER=https://automan.example:8443"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config.tls_key, kKeyPath);
  const std::string text = DescribeConfigSources(*r);
  EXPECT_THAT(text, HasSubstr("config: tls_cert = /etc/automan/cert.pem"));
  EXPECT_THAT(text, HasSubstr("config: tls_key = (set) (from flag --tls-key)"));
  EXPECT_THAT(text,
              AllOf(Not(HasSubstr(kKeyPath)), Not(HasSubstr("tok-123")), Not(HasSubstr("hunter2")),
                    Not(HasSubstr("AUTOMAN_TOKEN")), Not(HasSubstr("AUTOMAN_ADMIN_PASSWORD")),
                    Not(HasSubstr("AUTOMAN_SERVER"))));
  // The CLI's variables are skipped silently.
  EXPECT_THAT(r->warnings, IsEmpty());
  for (const auto& k : ServerConfigKeys()) {
    EXPECT_EQ(k.secret, k.name == "tls_key") << k.name;
  }
}

TEST_F(ServerConfigTest, TlsNeedsBothAndTheMessageHidesTheKey) {
  std::string msg = EnvError({"AUTOMAN_TLS_KEY=/secret/key.pem"});
  EXPECT_THAT(msg, HasSubstr("tls_key is set (env AUTOMAN_TLS_KEY) but tls_cert is not; set both"));
  EXPECT_THAT(msg, Not(HasSubstr("/secret/key.pem")));

  std::string path;
  msg = FileError("\n  tls_cert: cert.pem\n", &path);
  EXPECT_THAT(msg, HasSubstr("tls_cert is set (" + path + ":2:13) but tls_key is not"));
}

TEST_F(ServerConfigTest, ControlCharactersAreEscapedInTheBanner) {
  auto r = LoadServerConfig("", {}, {"AUTOMAN_DATA=/srv/a\nb\x1b[31m"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(DescribeConfigSources(*r),
            "config: data = /srv/a\\x0ab\\x1b[31m (from env AUTOMAN_DATA)\n");
}

// ---- Environment -------------------------------------------------------------------------

TEST_F(ServerConfigTest, UnknownAutomanVariablesAreWarnedAboutWithoutTheirValues) {
  auto r = LoadServerConfig(
      "", {},
      {"AUTOMAN_LISTN=0.0.0.0:1", "AUTOMAN_listen=0.0.0.0:2", "AUTOMAN_FROBNICATE=super-secret",
       "LISTEN=0.0.0.0:3", "AUTOMAN_SERVER=x", "AUTOMAN_TOKEN=y", "AUTOMAN_ADMIN_PASSWORD=z"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config.listen, "127.0.0.1:8080");
  EXPECT_THAT(r->warnings,
              ElementsAre("ignoring AUTOMAN_LISTN: no such setting (did you mean AUTOMAN_LISTEN?)",
                          "ignoring AUTOMAN_listen: no such setting (did you mean AUTOMAN_LISTEN?)",
                          "ignoring AUTOMAN_FROBNICATE: no such setting"));
  EXPECT_THAT(DescribeConfigSources(*r),
              HasSubstr("config: warning: ignoring AUTOMAN_LISTN: no such setting"));
  EXPECT_THAT(DescribeConfigSources(*r), Not(HasSubstr("super-secret")));
}

TEST_F(ServerConfigTest, FirstOfDuplicateVariablesWinsAsGetenv) {
  auto r = LoadServerConfig("", {}, {"AUTOMAN_WORKERS=7", "AUTOMAN_WORKERS=9", "NOEQUALS"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config.workers, 7);
}

TEST_F(ServerConfigTest, EnvErrorsNameTheVariable) {
  EXPECT_THAT(EnvError({"AUTOMAN_WORKERS=many"}),
              HasSubstr("env AUTOMAN_WORKERS: workers: expected an integer from 0 to 256, got "
                        "\"many\""));
  EXPECT_THAT(EnvError({"AUTOMAN_SCHEDULER=maybe"}),
              HasSubstr("env AUTOMAN_SCHEDULER: scheduler: expected a boolean (true/false, "
                        "yes/no, on/off, 1/0), got \"maybe\""));
}

// ---- Flags -------------------------------------------------------------------------------

TEST_F(ServerConfigTest, FlagErrors) {
  EXPECT_THAT(FlagError({{"listn", "x"}}),
              HasSubstr("unknown flag --listn; did you mean \"listen\"?"));
  EXPECT_THAT(FlagError({{"request_timeout", "30"}}),
              HasSubstr("flag --request-timeout: request_timeout: duration \"30\" has no unit"));
}

// ---- File errors -------------------------------------------------------------------------

TEST_F(ServerConfigTest, UnknownKeysNameFileLineAndSuggest) {
  std::string path;
  std::string msg = FileError("workers: 2\nlistn: 0.0.0.0:80\n", &path);
  EXPECT_EQ(msg, path + ":2:1: unknown key \"listn\"; did you mean \"listen\"?");
  EXPECT_THAT(FileError("tls-cert: a.pem\n"),
              HasSubstr("unknown key \"tls-cert\"; did you mean \"tls_cert\"?"));
  EXPECT_THAT(FileError("max_stream_per_subject: 5\n"),
              HasSubstr("did you mean \"max_streams_per_subject\"?"));
  EXPECT_THAT(FileError("no_scheduler: true\n"),
              HasSubstr("unknown key \"no_scheduler\"; write `scheduler: false`"));
  msg = FileError("frobnicate: 1\n");
  EXPECT_THAT(msg, HasSubstr("unknown key \"frobnicate\""));
  EXPECT_THAT(msg, Not(HasSubstr("did you mean")));
}

TEST_F(ServerConfigTest, WrongTypesNameKeyFileLineAndType) {
  std::string path;
  std::string msg = FileError("listen: 127.0.0.1:80\nworkers: many\n", &path);
  EXPECT_EQ(msg, path + ":2:10: workers: expected an integer from 0 to 256, got \"many\"");
  EXPECT_THAT(FileError("workers: 257\n"),
              HasSubstr(":1:10: workers: expected an integer from 0 to 256, got \"257\""));
  EXPECT_THAT(FileError("workers: -1\n"), HasSubstr("got \"-1\""));
  EXPECT_THAT(FileError("workers: 2.5\n"), HasSubstr("expected an integer"));
  msg = FileError("workers:\nlisten: 127.0.0.1:80\n", &path);
  EXPECT_THAT(msg,
              HasSubstr(path + ":1:1: workers: no value; write an integer from 0 to 256 or remove "
                               "the line to use the default"));
  EXPECT_THAT(FileError("workers: [1, 2]\n"),
              HasSubstr("workers: expected an integer from 0 to 256, got a list"));
  EXPECT_THAT(FileError("listen: {host: a, port: 1}\n"),
              HasSubstr("listen: expected a string, got a map"));
  EXPECT_THAT(FileError("metrics_public: maybe\n"),
              HasSubstr("metrics_public: expected a boolean (true/false, yes/no, on/off, 1/0)"));
  EXPECT_THAT(FileError("lease: 30\n"),
              HasSubstr(":1:8: lease: duration \"30\" has no unit; write e.g. 30s"));
  EXPECT_THAT(FileError("lease: 0s\n"), HasSubstr("lease: must be at least 1s, got \"0s\""));
  EXPECT_THAT(FileError("grace: soon\n"), HasSubstr("grace: invalid duration \"soon\""));
  EXPECT_THAT(FileError("log_level: warning\n"),
              HasSubstr("log_level: expected one of debug, info, warn, error, got \"warning\" (did "
                        "you mean \"warn\"?)"));
  EXPECT_THAT(FileError("access_log: yes\n"),
              HasSubstr("access_log: expected one of on, off, got \"yes\""));
}

TEST_F(ServerConfigTest, IntegerLimits) {
  struct Case {
    std::string key, value;
    bool ok;
  };
  for (const Case& c : std::vector<Case>{
           {"max_body_bytes", "1023", false},
           {"max_body_bytes", "1024", true},
           {"max_body_bytes", "1073741824", true},
           {"max_body_bytes", "1073741825", false},
           {"max_body_bytes", "99999999999999999999999", false},
           {"workers", "0", true},
           {"workers", "256", true},
           {"workers", "+3", true},
           {"workers", "", false},
           {"workers", "0x10", false},
           {"max_streams", "0", false},
           {"max_streams_per_subject", "1", true},
       }) {
    SCOPED_TRACE(c.key + "=" + c.value);
    auto r = LoadServerConfig("", {{c.key, c.value}}, {});
    EXPECT_EQ(r.ok(), c.ok) << (r.ok() ? "" : r.status().message());
  }
}

TEST_F(ServerConfigTest, ListenForms) {
  for (const std::string good : {"127.0.0.1:8080", "0.0.0.0:0", "[::1]:8080", "[::]:65535",
                                 "localhost:80", "automan.example.com:443", "[fe80::1%eth0]:80"}) {
    auto r = LoadServerConfig("", {{"listen", good}}, {});
    EXPECT_TRUE(r.ok()) << good << ": " << r.status().message();
  }
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "expected ADDR:PORT"},
      {"8080", "the \":PORT\" is missing"},
      {"127.0.0.1", "the \":PORT\" is missing"},
      {":8080", "the address before \":PORT\" is missing; write 0.0.0.0:PORT"},
      {"::1:8080", "write IPv6 addresses in brackets, e.g. [::1]:8080"},
      {"[::1]8080", "the \":PORT\" is missing"},
      {"[::1:8080", "the \"]\" is missing"},
      {"[zz]:80", "not an IPv6 address"},
      {"999.1.1.1:80", "not an IPv4 address"},
      {"127.0.0.1:65536", "port from 0 to 65535"},
      {"127.0.0.1:-1", "port from 0 to 65535"},
      {"127.0.0.1:http", "port from 0 to 65535"},
      {"bad host:80", "neither an IP address nor a host name"},
  };
  for (const auto& [value, want] : bad) {
    std::string msg = FlagError({{"listen", value}});
    EXPECT_THAT(msg, AllOf(HasSubstr("flag --listen: listen: "), HasSubstr(want),
                           HasSubstr("got \"" + value + "\"")))
        << value;
  }
}

TEST_F(ServerConfigTest, EveryProblemIsReportedAtOnce) {
  std::string path = File("workers: many\nlog_level: loud\n");
  auto r = LoadServerConfig(path, {{"listen", "nope"}}, {"AUTOMAN_LEASE=forever"});
  ASSERT_FALSE(r.ok());
  std::string msg = r.status().message();
  EXPECT_THAT(msg, HasSubstr(path + ":1:10: workers:"));
  EXPECT_THAT(msg, HasSubstr(path + ":2:12: log_level:"));
  EXPECT_THAT(msg, HasSubstr("env AUTOMAN_LEASE: lease:"));
  EXPECT_THAT(msg, HasSubstr("flag --listen: listen:"));
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 3) << msg;
}

// ---- Hostile and odd files ---------------------------------------------------------------

TEST_F(ServerConfigTest, MissingFileIsNotFound) {
  auto r = LoadServerConfig(dir_.File("absent.yaml"), {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("absent.yaml: No such file or directory"));
  auto d = LoadServerConfig(dir_.path(), {}, {});
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("Is a directory"));
}

TEST_F(ServerConfigTest, EmptyAndCommentOnlyFilesAreNoSettings) {
  for (const std::string text : {"", "# nothing yet\n", "---\n", "~\n", "{}\n"}) {
    auto r = LoadServerConfig(File(text), {}, {});
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_THAT(r->sources, IsEmpty());
  }
}

TEST_F(ServerConfigTest, HugeFileIsRefused) {
  std::string text = "# " + std::string(size_t{1} << 20, 'x') + "\nworkers: 2\n";
  EXPECT_THAT(FileError(text), HasSubstr("larger than 1048576 bytes (1 MiB)"));
  // Reading is bounded: an endless file costs at most 1 MiB.
  auto r = LoadServerConfig("/dev/zero", {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("larger than"));
}

TEST_F(ServerConfigTest, DeepNestingIsRefused) {
  // 16 levels (the root map plus 15) parse and are then a type error; 17 are refused.
  std::string ok = "listen: " + std::string(15, '[') + std::string(15, ']') + "\n";
  EXPECT_THAT(FileError(ok), HasSubstr("listen: expected a string, got a list"));
  std::string deep = "listen: " + std::string(16, '[') + std::string(16, ']') + "\n";
  EXPECT_THAT(FileError(deep), HasSubstr(":1:24: YAML nesting is deeper than 16 levels"));
  // A million brackets: refused at level 17, quickly, without recursion.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(FileError("a: " + std::string(1'000'000, '[')), HasSubstr("deeper than 16 levels"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  std::string block;
  for (int i = 0; i < 40; ++i) block += std::string(i * 2, ' ') + "k" + std::to_string(i) + ":\n";
  EXPECT_THAT(FileError(block), HasSubstr("deeper than 16 levels"));
}

TEST_F(ServerConfigTest, BinaryGarbageIsRefused) {
  std::mt19937 rng(42);
  for (int i = 0; i < 50; ++i) {
    std::string junk(1 + rng() % 4096, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    auto r = LoadServerConfig(File(junk), {}, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << r.status().ToString();
  }
  EXPECT_THAT(FileError(std::string("workers: 2\nlisten: \xff\xfe\n")),
              HasSubstr(":2:9: the file is not UTF-8 text (invalid byte at offset 19)"));
  EXPECT_THAT(FileError(std::string("workers: 2\0\n", 12)),
              HasSubstr(":1:11: control character 0x00 is not allowed"));
  // UTF-16 with a BOM: not UTF-8.
  EXPECT_THAT(FileError(std::string("\xff\xfew\0o\0", 6)), HasSubstr("not UTF-8"));
}

TEST_F(ServerConfigTest, DuplicateKeysAreRefused) {
  std::string path;
  std::string msg = FileError("workers: 2\nlisten: 127.0.0.1:80\nworkers: 3\n", &path);
  EXPECT_EQ(msg, path + ":3:1: duplicate key \"workers\" (first at line 1); keep one");
}

TEST_F(ServerConfigTest, StructureErrors) {
  EXPECT_THAT(FileError("- listen\n- workers\n"), HasSubstr(":1:1: the config file must be a map"));
  EXPECT_THAT(FileError("just text\n"),
              HasSubstr("must be a map of `key: value` settings, not a single value"));
  EXPECT_THAT(FileError("workers: 2\n---\nworkers: 3\n"), HasSubstr("holds one YAML document"));
  EXPECT_THAT(FileError("data: &d /srv\nruns: *d\n"),
              HasSubstr("YAML anchors (&name) are not allowed"));
  EXPECT_THAT(FileError("data: !!str /srv\n"), HasSubstr("YAML tags (!!str) are not allowed"));
  EXPECT_THAT(FileError("[a]: 1\n"), HasSubstr("keys must be setting names"));
  std::string path;
  std::string msg = FileError("workers: 2\nlisten: [127.0.0.1\n", &path);
  EXPECT_THAT(msg, HasSubstr(path + ":"));
  EXPECT_THAT(msg, HasSubstr(": YAML syntax error"));
}

TEST_F(ServerConfigTest, QuotedScalarsAreText) {
  auto r = LoadServerConfig(File("workers: \"3\"\nruns: x\n"), {}, {});
  ASSERT_FALSE(r.ok());  // runs is unknown; workers is fine
  EXPECT_THAT(r.status().message(), Not(HasSubstr("workers")));
  auto ok =
      LoadServerConfig(File("workers: \"3\"\ndb: 'postgresql://automan@db/automan'\n"), {}, {});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->config.workers, 3);
  EXPECT_EQ(ok->config.db, "postgresql://automan@db/automan");
}

// ---- The table ---------------------------------------------------------------------------

TEST_F(ServerConfigTest, KeysTableMatchesTheDocumentedFlagsAndVariables) {
  std::vector<std::string> flags, envs;
  for (const auto& k : ServerConfigKeys()) {
    flags.push_back(k.flag);
    envs.push_back(k.env);
    EXPECT_FALSE(k.help.empty()) << k.name;
  }
  EXPECT_THAT(flags, ElementsAre("--listen", "--data", "--db", "--runbooks", "--tls-cert",
                                 "--tls-key", "--metrics-public", "--workers", "--no-scheduler",
                                 "--no-sandbox", "--lease", "--grace", "--max-body-bytes",
                                 "--request-timeout", "--max-streams", "--max-streams-per-subject",
                                 "--log-level", "--access-log", "--key-file", "--roles-file",
                                 "--trusted-proxies", "--allowed-origins", "--api-rate-limit",
                                 "--session-idle", "--session-lifetime"));
  EXPECT_EQ(envs.front(), "AUTOMAN_LISTEN");
  EXPECT_EQ(envs.at(4), "AUTOMAN_TLS_CERT");
  const auto& lease = ServerConfigKeys().at(10);
  EXPECT_EQ(lease.name, "lease");
  EXPECT_EQ(lease.type, ConfigType::kDuration);
  EXPECT_EQ(lease.default_value, "30s");
  EXPECT_EQ(ServerConfigKeys().at(12).default_value, "8388608");
  EXPECT_EQ(ServerConfigKeys().at(16).choices, "debug|info|warn|error");
}

}  // namespace
}  // namespace automan
