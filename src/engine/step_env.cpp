#include "engine/step_env.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
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
  if (ctx.secrets != nullptr) {
    for (const auto& [name, value] : *ctx.secrets) env["AUTOMAN_SECRET_" + EnvName(name)] = value;
  }
  for (const auto& [name, value] : outputs.vars()) env[name] = value;
  for (const auto& [name, value] : ctx.step.env) env[name] = value;

  std::vector<std::string> out;
  out.reserve(env.size());
  for (auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

Result<std::map<std::string, std::string>> ParseStepOutputs(std::string_view text) {
  std::map<std::string, std::string> out;
  size_t n = 0;
  // Same line splitting as std::getline: a final '\n' does not start another line.
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++n;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument,
                   "$AUTOMAN_OUTPUT line {} has no '=': write key=value lines", n);
    }
    std::string_view key = line.substr(0, eq);
    if (!ValidKey(key)) {
      return Error(ErrorCode::kInvalidArgument,
                   "$AUTOMAN_OUTPUT line {}: \"{}\" is not a valid output key (letters, digits "
                   "and _, not starting with a digit)",
                   n, key.substr(0, 64));
    }
    out[std::string(key)] = std::string(line.substr(eq + 1));
  }
  return out;
}

Result<std::map<std::string, std::string>> ReadStepOutputs(const std::string& path,
                                                           uint64_t max_bytes) {
  // The file lives in a directory the step controls: never follow a link it planted there
  // (the engine may be more privileged than the step), never block on a FIFO, and never
  // read more than the limit even if the file keeps growing.
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::map<std::string, std::string>{};  // wrote no outputs
    if (errno == ELOOP) {
      return Error(ErrorCode::kInvalidArgument,
                   "$AUTOMAN_OUTPUT was replaced by a symbolic link; write key=value lines to "
                   "the file itself");
    }
    return Error(ErrorCode::kInvalidArgument, "cannot open $AUTOMAN_OUTPUT: {}", ErrnoText(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return Error(ErrorCode::kInvalidArgument, "$AUTOMAN_OUTPUT is no longer a regular file");
  }
  std::string text;
  char buf[16384];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max_bytes) break;
  }
  close(fd);
  if (text.size() > max_bytes) {
    return Error(ErrorCode::kResourceExhausted,
                 "the step wrote more than {} bytes to $AUTOMAN_OUTPUT; that is the limit",
                 max_bytes);
  }
  return ParseStepOutputs(text);
}

}  // namespace automan
