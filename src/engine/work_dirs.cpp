#include "engine/work_dirs.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace automan {

namespace {

// Removes everything inside `dir`. False if something could not be removed.
bool Empty(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      names.emplace_back(e->d_name);
    }
  }
  closedir(d);
  bool ok = true;
  for (const auto& n : names) {
    std::error_code ec;
    std::filesystem::remove_all(dir + "/" + n, ec);
    if (ec) ok = false;
  }
  return ok;
}

bool StillPrivateDir(const std::string& dir) {
  struct stat st {};
  return lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 &&
         st.st_uid == geteuid();
}

}  // namespace

WorkDirPool::WorkDirPool(std::string root, size_t max_idle)
    : root_(std::move(root)), max_idle_(max_idle) {}

WorkDirPool::~WorkDirPool() {
  for (const auto& dir : idle_) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
}

Result<std::string> WorkDirPool::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      std::string dir = std::move(idle_.back());
      idle_.pop_back();
      return dir;
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(root_, ec);
  if (ec) {
    return Error(ErrorCode::kUnavailable, "cannot create the work directory root {}: {}", root_,
                 ec.message());
  }
  std::string tmpl = root_ + "/w-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {  // mkdtemp creates it 0700
    return Error(ErrorCode::kUnavailable, "cannot create a work directory under {}: {}", root_,
                 ErrnoText(errno));
  }
  return tmpl;
}

void WorkDirPool::Release(const std::string& dir) {
  if (StillPrivateDir(dir) && Empty(dir)) {
    std::lock_guard lock(mu_);
    if (idle_.size() < max_idle_) {
      idle_.push_back(dir);
      return;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace automan
