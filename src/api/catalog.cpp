#include "api/catalog.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "scheduler/sync.h"

namespace automan::api {

std::string_view ToString(RunbookOrigin o) {
  switch (o) {
    case RunbookOrigin::kBuiltin:
      return "builtin";
    case RunbookOrigin::kDirectory:
      return "directory";
    case RunbookOrigin::kApi:
      return "api";
  }
  return "builtin";
}

namespace {

bool IsYamlName(const std::string& name) {
  auto ends = [&](std::string_view suf) {
    return name.size() > suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  return (ends(".yaml") || ends(".yml")) && name.front() != '.';
}

std::string JoinDiagnostics(const std::vector<Diagnostic>& ds) {
  std::string out;
  for (const auto& d : ds) out += (out.empty() ? "" : "\n") + d.ToString();
  return out;
}

Status WriteFileDurably(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status(ErrorCode::kInternal, fmt::format("writing {}: {}", tmp, ErrnoText(errno)));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status(ErrorCode::kInternal, fmt::format("writing {}: {}", tmp, ErrnoText(e)));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Status(ErrorCode::kInternal, fmt::format("syncing {}: {}", tmp, ErrnoText(errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status(ErrorCode::kInternal, fmt::format("renaming {}: {}", tmp, ErrnoText(errno)));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<CatalogEntry>> RunbookCatalog::LoadDir(const std::string& dir,
                                                          RunbookOrigin origin) const {
  std::vector<CatalogEntry> out;
  if (dir.empty()) return out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("cannot read runbook directory {}: {}", dir, ErrnoText(errno)));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (IsYamlName(name)) names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<Diagnostic> errors;
  for (const std::string& name : names) {
    std::string path = dir + "/" + name;
    ParseResult pr = LoadRunbookFile(path);
    if (!pr.ok()) {
      errors.insert(errors.end(), pr.diagnostics.begin(), pr.diagnostics.end());
      continue;
    }
    CatalogEntry e;
    e.origin = origin;
    e.source = origin == RunbookOrigin::kApi ? "api" : path;
    e.runbook = std::make_shared<const Runbook>(std::move(*pr.runbook));
    out.push_back(std::move(e));
  }
  if (!errors.empty()) return Status(ErrorCode::kInvalidArgument, JoinDiagnostics(errors));
  return out;
}

Result<std::shared_ptr<const CatalogSnapshot>> RunbookCatalog::Build(
    const std::vector<CatalogEntry>& dir_entries,
    const std::vector<CatalogEntry>& api_entries) const {
  auto snap = std::make_shared<CatalogSnapshot>();
  std::vector<std::string> errors;
  for (const auto* list : {&builtin_entries_, &dir_entries, &api_entries}) {
    for (const CatalogEntry& e : *list) {
      auto [it, inserted] = snap->emplace(e.runbook->id, e);
      if (!inserted) {
        errors.push_back(fmt::format(
            "runbook id \"{}\" is defined twice: in {} ({}) and in {} ({})", e.runbook->id,
            it->second.source, ToString(it->second.origin), e.source, ToString(e.origin)));
      }
    }
  }
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) msg += (msg.empty() ? "" : "\n") + e;
    return Status(ErrorCode::kInvalidArgument, msg);
  }
  return std::shared_ptr<const CatalogSnapshot>(std::move(snap));
}

Result<std::unique_ptr<RunbookCatalog>> RunbookCatalog::Open(Options options) {
  std::unique_ptr<RunbookCatalog> c(new RunbookCatalog(std::move(options)));
  std::vector<Diagnostic> errors;
  for (const BuiltinRunbook& b : c->options_.builtins) {
    ParseResult pr = ParseRunbook(b.yaml, "built-in " + b.name);
    if (!pr.ok()) {
      errors.insert(errors.end(), pr.diagnostics.begin(), pr.diagnostics.end());
      continue;
    }
    CatalogEntry e;
    e.origin = RunbookOrigin::kBuiltin;
    e.source = "built-in " + b.name;
    e.runbook = std::make_shared<const Runbook>(std::move(*pr.runbook));
    c->builtin_entries_.push_back(std::move(e));
  }
  if (!errors.empty()) return Status(ErrorCode::kInternal, JoinDiagnostics(errors));
  if (!c->options_.api_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(c->options_.api_dir, ec);
    if (ec) {
      return Status(ErrorCode::kInvalidArgument,
                    fmt::format("cannot create {}: {}", c->options_.api_dir, ec.message()));
    }
  }
  auto dir = c->LoadDir(c->options_.directory, RunbookOrigin::kDirectory);
  if (!dir.ok()) return dir.status();
  auto api = c->LoadDir(c->options_.api_dir, RunbookOrigin::kApi);
  if (!api.ok()) return api.status();
  auto snap = c->Build(*dir, *api);
  if (!snap.ok()) return snap.status();
  c->dir_entries_ = std::move(*dir);
  c->api_entries_ = std::move(*api);
  c->snapshot_ = std::move(*snap);
  if (!c->options_.directory.empty()) c->dir_fingerprint_ = ScanRunbookDir(c->options_.directory);
  return c;
}

std::shared_ptr<const CatalogSnapshot> RunbookCatalog::Snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

std::optional<CatalogEntry> RunbookCatalog::Find(std::string_view id) const {
  auto snap = Snapshot();
  auto it = snap->find(id);
  if (it == snap->end()) return std::nullopt;
  return it->second;
}

Result<bool> RunbookCatalog::ReloadIfChanged() {
  if (options_.directory.empty()) return false;
  std::string fp = ScanRunbookDir(options_.directory);
  std::lock_guard lock(mu_);
  if (fp == dir_fingerprint_) return false;
  dir_fingerprint_ = fp;  // report a broken state once, not on every check
  auto dir = LoadDir(options_.directory, RunbookOrigin::kDirectory);
  if (!dir.ok()) return dir.status();
  auto snap = Build(*dir, api_entries_);
  if (!snap.ok()) {
    // A clash with an API-managed runbook: an API change may resolve it, so the next
    // check after one must load the directory again (see ApiChanged).
    reload_refused_ = true;
    return snap.status();
  }
  reload_refused_ = false;
  dir_entries_ = std::move(*dir);
  snapshot_ = std::move(*snap);
  return true;
}

Result<CatalogEntry> RunbookCatalog::PutApiRunbook(std::string_view yaml,
                                                   std::string_view expect_id) {
  if (options_.api_dir.empty()) {
    return Status(ErrorCode::kFailedPrecondition, "this server keeps no API-managed runbooks");
  }
  ParseResult pr = ParseRunbook(yaml, "request body");
  if (!pr.ok()) return Status(ErrorCode::kInvalidArgument, JoinDiagnostics(pr.diagnostics));
  Runbook rb = std::move(*pr.runbook);
  std::lock_guard lock(mu_);
  auto existing = snapshot_->find(rb.id);
  if (expect_id.empty()) {
    if (existing != snapshot_->end()) {
      return Status(ErrorCode::kAlreadyExists,
                    fmt::format("runbook \"{}\" already exists (defined in {})", rb.id,
                                existing->second.source));
    }
  } else {
    if (rb.id != expect_id) {
      return Status(
          ErrorCode::kInvalidArgument,
          fmt::format("the YAML defines id \"{}\" but the URL names \"{}\"", rb.id, expect_id));
    }
    if (existing == snapshot_->end()) {
      return Status(ErrorCode::kNotFound, fmt::format("runbook \"{}\" does not exist", rb.id));
    }
    if (existing->second.origin != RunbookOrigin::kApi) {
      return Status(ErrorCode::kFailedPrecondition,
                    fmt::format("runbook \"{}\" is defined in {}; change it there", rb.id,
                                existing->second.source));
    }
  }
  AUTOMAN_RETURN_IF_ERROR(WriteFileDurably(options_.api_dir + "/" + rb.id + ".yaml", yaml));
  CatalogEntry e;
  e.origin = RunbookOrigin::kApi;
  e.source = "api";
  e.runbook = std::make_shared<const Runbook>(std::move(rb));
  std::vector<CatalogEntry> api = api_entries_;
  std::erase_if(api, [&](const CatalogEntry& x) { return x.runbook->id == e.runbook->id; });
  api.push_back(e);
  auto snap = Build(dir_entries_, api);
  if (!snap.ok()) return snap.status();
  api_entries_ = std::move(api);
  snapshot_ = std::move(*snap);
  if (reload_refused_) dir_fingerprint_.clear();
  return e;
}

Status RunbookCatalog::DeleteApiRunbook(std::string_view id) {
  std::lock_guard lock(mu_);
  auto existing = snapshot_->find(id);
  if (existing == snapshot_->end()) {
    return Status(ErrorCode::kNotFound, fmt::format("runbook \"{}\" does not exist", id));
  }
  if (existing->second.origin != RunbookOrigin::kApi) {
    return Status(ErrorCode::kFailedPrecondition,
                  fmt::format("runbook \"{}\" is defined in {}; remove it there", id,
                              existing->second.source));
  }
  std::string path = options_.api_dir + "/" + std::string(id) + ".yaml";
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status(ErrorCode::kInternal, fmt::format("removing {}: {}", path, ErrnoText(errno)));
  }
  std::vector<CatalogEntry> api = api_entries_;
  std::erase_if(api, [&](const CatalogEntry& x) { return x.runbook->id == id; });
  auto snap = Build(dir_entries_, api);
  if (!snap.ok()) return snap.status();
  api_entries_ = std::move(api);
  snapshot_ = std::move(*snap);
  if (reload_refused_) dir_fingerprint_.clear();
  return Status::Ok();
}

}  // namespace automan::api
