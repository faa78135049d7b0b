#include "engine/step_env.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <string_view>

#include "common/clock.h"

namespace automan {

namespace {

constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool Allowed(std::string_view name) {
  static constexpr std::string_view kAllow[] = {"PATH", "HOME", "USER",  "LOGNAME",
                                                "LANG", "TZ",   "TMPDIR"};
  for (auto a : kAllow) {
    if (name == a) return true;
  }
  return name.starts_with("LC_");
}

bool ValidKey(std::string_view k) {
  if (k.empty() || k.size() > 128) return false;
  if (!(std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_')) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

}  // namespace

void OutputsEnv::Add(const std::string& step_id,
                     const std::map<std::string, std::string>& outputs) {
  for (const auto& [k, v] : outputs) {
    vars_["AUTOMAN_OUT_" + EnvName(step_id) + "_" + EnvName(k)] = v;
  }
}

std::vector<std::string> BuildStepEnv(const StepEnvContext& ctx, const OutputsEnv& outputs,
                                      char** parent_env) {
  std::map<std::string, std::string> env;
  for (char** e = parent_env; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = kv.substr(0, eq);
    if (Allowed(name)) env[std::string(name)] = std::string(kv.substr(eq + 1));
  }
  if (!env.contains("PATH")) env["PATH"] = kDefaultPath;

  env["AUTOMAN_RUN_ID"] = ctx.run.id;
  env["AUTOMAN_ATTEMPT"] = std::to_string(ctx.run.attempt);
  env["AUTOMAN_RUNBOOK_ID"] = ctx.runbook.id;
  env["AUTOMAN_STEP_ID"] = ctx.step.id;
  env["AUTOMAN_WORK_DIR"] = ctx.work_dir;
  env["AUTOMAN_OUTPUT"] = ctx.output_file;
  if (ctx.run.deadline_at) env["AUTOMAN_DEADLINE"] = FormatRfc3339(*ctx.run.deadline_at);
  for (const auto& [name, value] : ctx.params) {
    env["AUTOMAN_PARAM_" + EnvName(name)] = value.text;
  }
  for (const auto& [name, value] : outputs.vars()) env[name] = value;
  for (const auto& [name, value] : ctx.step.env) env[name] = value;

  std::vector<std::string> out;
  out.reserve(env.size());
  for (auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

Result<std::map<std::string, std::string>> ReadStepOutputs(const std::string& path,
                                                           uint64_t max_bytes) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    // The step removed its output file: no outputs.
    return std::map<std::string, std::string>{};
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kInvalidArgument, "$AUTOMAN_OUTPUT is no longer a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Error(ErrorCode::kResourceExhausted,
                 "the step wrote {} bytes to $AUTOMAN_OUTPUT; the limit is {} bytes", st.st_size,
                 max_bytes);
  }
  std::ifstream in(path, std::ios::binary);
  std::map<std::string, std::string> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return Error(ErrorCode::kInvalidArgument,
                   "$AUTOMAN_OUTPUT line {} has no '=': write key=value lines", n);
    }
    std::string key = line.substr(0, eq);
    if (!ValidKey(key)) {
      return Error(ErrorCode::kInvalidArgument,
                   "$AUTOMAN_OUTPUT line {}: \"{}\" is not a valid output key (letters, digits "
                   "and _, not starting with a digit)",
                   n, key.substr(0, 64));
    }
    out[key] = line.substr(eq + 1);
  }
  return out;
}

}  // namespace automan
