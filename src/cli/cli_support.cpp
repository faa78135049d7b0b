#include "cli/cli_support.h"

#include <fmt/format.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

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

}  // namespace automan::cli
