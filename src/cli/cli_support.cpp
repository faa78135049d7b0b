#include "cli/cli_support.h"

#include <fmt/format.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "common/duration.h"

namespace automan::cli {

namespace {

// Lock-free, so the signal handler may read it.
std::atomic<CancelSignal*> g_cancel{nullptr};

extern "C" void OnInterrupt(int) {
  if (CancelSignal* c = g_cancel.load()) c->Cancel();
}

}  // namespace

Result<std::unique_ptr<Store>> OpenStore(const StoreFlags& flags, Durability durability) {
  if (flags.db_url.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(flags.data_dir, ec);
    if (ec) {
      return Error(ErrorCode::kFailedPrecondition, "cannot create data directory {}: {}",
                   flags.data_dir, ec.message());
    }
    chmod(flags.data_dir.c_str(), 0700);
  }
  StoreOptions so;
  so.url = flags.ResolvedUrl();
  so.durability = durability;
  return Store::Open(so);
}

Result<std::vector<std::pair<std::string, std::string>>> SplitParamFlags(
    const std::vector<std::string>& flags) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : flags) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Error(ErrorCode::kInvalidArgument, "parameter \"{}\" must be written name=value",
                   p.substr(0, 64));
    }
    out.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> GatherParams(
    const std::vector<std::string>& param_flags, const std::vector<std::string>& secret_names,
    const std::function<bool(std::string_view)>& is_secret) {
  AUTOMAN_ASSIGN_OR_RETURN(auto out, SplitParamFlags(param_flags));
  for (const auto& [name, value] : out) {
    if (is_secret(name)) {
      return Error(ErrorCode::kInvalidArgument,
                   "parameter \"{}\" is a secret and is never taken from the command line "
                   "(ps and shell history show it): pass --secret-param {} and type it, or "
                   "pipe it on standard input",
                   name, name);
    }
  }
  for (const std::string& name : secret_names) {
    for (const auto& [given, value] : out) {
      if (given == name) {
        return Error(ErrorCode::kInvalidArgument, "parameter \"{}\" is given twice", name);
      }
    }
    AUTOMAN_ASSIGN_OR_RETURN(std::string value,
                             ReadSecret("value of secret parameter " + name + ": "));
    out.emplace_back(name, std::move(value));
  }
  return out;
}

std::function<bool(std::string_view)> SecretParamsOf(const Runbook& rb) {
  return [&rb](std::string_view name) {
    const ParamSpec* spec = rb.FindParam(name);
    return spec != nullptr && spec->type == ParamType::kSecret;
  };
}

Result<std::optional<auth::Keys>> LoadKeysIfPresent(const StoreFlags& store,
                                                    const std::string& key_file) {
  const std::string path = key_file.empty() ? store.data_dir + "/master.key" : key_file;
  std::error_code ec;
  if (key_file.empty() && !std::filesystem::exists(path, ec)) return std::optional<auth::Keys>();
  AUTOMAN_ASSIGN_OR_RETURN(auth::Keys keys, auth::LoadOrCreateKeys(path, false));
  return std::optional<auth::Keys>(keys);
}

std::string HostName() {
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  return host;
}

std::string CurrentUserName() {
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return std::to_string(getuid());
}

CancelOnSignals::CancelOnSignals(CancelSignal& signal) {
  g_cancel = &signal;
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
}

CancelOnSignals::~CancelOnSignals() { g_cancel = nullptr; }

std::optional<std::chrono::milliseconds> DurationFlag(std::string_view name,
                                                      const std::string& text, bool allow_zero) {
  auto d = ParseDuration(text);
  if (!d.ok()) {
    fmt::print(stderr, "error: --{} {}: {}\n", name, text, d.status().message());
    return std::nullopt;
  }
  if (!allow_zero && d->count() <= 0) {
    fmt::print(stderr, "error: --{} must be longer than 0, e.g. 30s\n", name);
    return std::nullopt;
  }
  return *d;
}

Result<Runbook> ResolveRunbook(Store& store, const std::string& ref) {
  if (ref.ends_with(".yaml") || ref.ends_with(".yml") || ref.find('/') != std::string::npos) {
    ParseResult parsed = LoadRunbookFile(ref);
    if (!parsed.ok()) {
      std::string all;
      for (const auto& d : parsed.diagnostics) all += "\n" + d.ToString();
      return Error(ErrorCode::kInvalidArgument, "{} is not a valid runbook:{}", ref, all);
    }
    return std::move(*parsed.runbook);
  }
  RunbookVersion v;
  AUTOMAN_RETURN_IF_ERROR(store.Transact(Store::TxMode::kRead, [&](StoreTx& tx) -> Status {
    RunFilter f;
    f.runbook_id = ref;
    f.limit = 1;
    AUTOMAN_ASSIGN_OR_RETURN(std::vector<Run> runs, tx.ListRuns(f));
    if (runs.empty()) {
      return Error(ErrorCode::kNotFound,
                   "no runbook \"{}\" in the store yet; enqueue its YAML file once "
                   "(automan enqueue FILE.yaml)",
                   ref);
    }
    AUTOMAN_ASSIGN_OR_RETURN(v, tx.GetRunbookVersion(runs.front().runbook_version));
    return Status::Ok();
  }));
  ParseResult parsed = ParseRunbook(v.yaml, v.source);
  if (!parsed.ok()) {
    return Error(ErrorCode::kDataLoss, "stored version {} of {} does not parse: {}", v.version, ref,
                 parsed.diagnostics.front().ToString());
  }
  return std::move(*parsed.runbook);
}

Result<std::string> ReadSecret(const std::string& prompt) {
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  termios old{};
  if (tty) {
    std::fprintf(stderr, "%s", prompt.c_str());
    std::fflush(stderr);
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::string line;
  bool got = false;
  for (;;) {
    char c = 0;
    const ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got = true;
    if (c == '\n') break;
    line.push_back(c);
    if (line.size() > (1 << 20)) break;
  }
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::fprintf(stderr, "\n");
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (!got) return Status(ErrorCode::kInvalidArgument, "no input: " + prompt);
  return line;
}

int ExitFor(const Status& s) {
  return s.code() == ErrorCode::kInvalidArgument || s.code() == ErrorCode::kNotFound
             ? kExitInvalidInput
             : kExitFailed;
}

EngineOptions EngineOptionsFor(const std::string& data_dir,
                               const std::vector<std::string>& secret_files) {
  EngineOptions eo;
  eo.work_root = data_dir + "/work";
  std::error_code ec;
  auto absolute = [&ec](const std::string& p) {
    return std::filesystem::absolute(p, ec).lexically_normal().string();
  };
  eo.sandbox.hidden.push_back(absolute(data_dir));
  for (const auto& f : secret_files) {
    if (!f.empty()) eo.sandbox.hidden.push_back(absolute(f));
  }
  return eo;
}

}  // namespace automan::cli
