// Settings of `automan server`: defaults < config file < environment < command-line flags.
//
// One table (config.cpp) describes every key once: its name, type, help text, range and
// the ServerConfig member it sets. The same row serves the YAML file (`listen: ...`), the
// environment (`AUTOMAN_LISTEN`) and the flags (`--listen`), so adding a key is one line
// there plus the member here (and a row in docs/configuration.md).
//
// Contract
// - LoadServerConfig is a pure function of its arguments and the config file: it reads no
//   environment of its own, changes nothing, and is safe to call from any thread.
// - On success every value has been validated (types, ranges, ADDR:PORT, durations,
//   tls_cert/tls_key both or neither), so the server may use the config as is.
// - On failure the Status is kInvalidArgument (kNotFound when the config file does not
//   exist, kInternal when memory runs out) and its message lists every problem found, one
//   per line, each naming the key and where its value came from ("FILE:LINE:COL",
//   "env AUTOMAN_X", "flag --x").
// - Values of keys whose name contains "password" or "token", or ends in "key" (tls_key),
//   are never shown: not in `sources`, not in error messages. (key_file is a path: shown.)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace automan {

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";  // ADDR:PORT; port 0 = any free port
  std::string data = "./automan-data";
  std::string db;                 // empty: sqlite:<data>/automan.db
  std::string runbooks;           // a directory of runbook YAML files, hot-reloaded; empty: none
  std::string tls_cert, tls_key;  // both or neither
  bool metrics_public = false;
  int workers = 4;            // executor threads of the in-process worker pool (0: no worker)
  bool scheduler = true;      // run the schedule loop
  bool sandbox = true;        // sandbox steps (false: only for hosts that cannot; audited)
  std::string lease = "30s";  // durations as text, validated with ParseDuration
  std::string grace = "30s";  // shutdown grace for running steps
  int64_t max_body_bytes = 8 << 20;     // request body limit
  std::string request_timeout = "30s";  // time to read a whole request
  int max_streams = 10000;              // global cap on open SSE/WebSocket streams
  int max_streams_per_subject = 100;
  std::string log_level = "info";  // debug|info|warn|error
  std::string access_log = "on";   // on|off: JSON access log lines on stderr
  // Security (docs/security.md).
  std::string key_file;                  // empty: <data>/master.key
  std::string roles_file;                // custom roles (auth/roles_file.h); empty: none
  std::string trusted_proxies;           // comma-separated peer addresses whose XFF is believed
  std::string allowed_origins;           // comma-separated extra Origins for browser sessions
  int api_rate_limit = 500;              // requests/s per user or token (burst 10x); 0: off
  std::string session_idle = "30m";      // a browser session ends after this long unused
  std::string session_lifetime = "12h";  // and this long after login in any case
};

// One setting's provenance, for the start-up banner.
struct ConfigSource {
  std::string key;
  std::string value;  // "(set)" for secret-ish keys; control characters escaped
  std::string from;   // "file /path", "env AUTOMAN_X", "flag --x"
};

struct LoadedConfig {
  ServerConfig config;
  // Only the keys whose final value differs from the default, in table order.
  std::vector<ConfigSource> sources;
  // Things ignored but worth saying: AUTOMAN_* variables that match no key (with a "did you
  // mean" when close). Never contains a value.
  std::vector<std::string> warnings;
};

// `config_file`: path of the YAML file, empty for none. At most 1 MiB, UTF-8, one document
// holding a map of `key: scalar`; nesting deeper than 16 levels, anchors, aliases, tags and
// duplicate keys are refused.
// `flags`: key -> value of the flags given on the command line, key in snake_case as in the
// file ("tls_cert"; "tls-cert" is accepted too). Bool keys take "true"/"false" etc.: pass
// {"scheduler", "false"} for --no-scheduler and {"metrics_public", "true"} for
// --metrics-public. Unknown keys are an error.
// `env`: the process environment as "K=V" strings (pass `environ` in production). Only
// AUTOMAN_<KEY> (key upper-cased) is read; AUTOMAN_SERVER, AUTOMAN_TOKEN and
// AUTOMAN_ADMIN_PASSWORD (the CLI's) are skipped silently, other unknown AUTOMAN_*
// variables produce a warning. When a variable appears twice the first wins (as getenv).
// Bools accept true/false/yes/no/on/off/1/0 (any case) from every source.
Result<LoadedConfig> LoadServerConfig(const std::string& config_file,
                                      const std::map<std::string, std::string>& flags,
                                      const std::vector<std::string>& env);

// The lines the server prints at start, each ending in '\n': one per source
// ("config: listen = 0.0.0.0:9000 (from env AUTOMAN_LISTEN)") then one per warning
// ("config: warning: ..."). Empty when everything is a default.
std::string DescribeConfigSources(const LoadedConfig& loaded);

// The table, for registering flags and printing help without repeating it.
enum class ConfigType { kBool, kInt, kString, kDuration };
struct ServerConfigKey {
  std::string_view name;  // "tls_cert"
  ConfigType type;
  std::string_view help;      // one line
  std::string env;            // "AUTOMAN_TLS_CERT"
  std::string flag;           // "--tls-cert"; a bool defaulting to true: "--no-scheduler"
  std::string default_value;  // as text ("30s", "4", "true", "" for none)
  std::string_view choices;   // "debug|info|warn|error", or empty for any
  bool secret = false;        // the value is never printed
};
const std::vector<ServerConfigKey>& ServerConfigKeys();

}  // namespace automan
