// RunbookCatalog: every runbook the server offers, from three sources:
//   - built-in: embedded in the binary (runbooks/*.yaml in the source tree);
//   - directory: `--runbooks DIR`, re-read whenever a file there changes (hot reload);
//   - API-managed: created through POST /api/v1/runbooks, kept as one YAML file per
//     runbook in DATA/api-runbooks/ (written to a temporary file, fsynced, renamed).
// A runbook id defined in two places is a load error naming both sources: at start the
// server refuses to run; on a hot reload the previous catalog stays and the error is
// reported; through the API the request answers 409.
//
// Readers take a snapshot (an immutable shared map), so a reload never changes a catalog
// a request is using. Thread-safety: every method may be called from any thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "runbook/runbook.h"

namespace automan::api {

enum class RunbookOrigin { kBuiltin, kDirectory, kApi };
std::string_view ToString(RunbookOrigin o);  // "builtin" "directory" "api"

struct CatalogEntry {
  std::shared_ptr<const Runbook> runbook;
  RunbookOrigin origin = RunbookOrigin::kBuiltin;
  std::string source;  // "built-in host-info.yaml", "/etc/automan/runbooks/x.yaml", "api"
};

using CatalogSnapshot = std::map<std::string, CatalogEntry, std::less<>>;

struct BuiltinRunbook {
  std::string name;  // file name, for messages
  std::string yaml;
};

class RunbookCatalog {
 public:
  struct Options {
    std::vector<BuiltinRunbook> builtins;
    std::string directory;  // empty: none
    std::string api_dir;    // where API-managed runbooks are kept; created if missing
  };
  // Loads every source. kInvalidArgument listing every problem (one per line) when a file
  // does not parse or an id is defined twice.
  static Result<std::unique_ptr<RunbookCatalog>> Open(Options options);

  std::shared_ptr<const CatalogSnapshot> Snapshot() const;
  std::optional<CatalogEntry> Find(std::string_view id) const;

  // Re-reads the directory when its fingerprint changed. Returns whether the catalog
  // changed; on errors the previous catalog stays and the errors are returned.
  Result<bool> ReloadIfChanged();

  // Creates (`expect_id` empty) or replaces (`expect_id` = the id in the URL) an
  // API-managed runbook from YAML. kInvalidArgument with the diagnostics;
  // kAlreadyExists when creating an id that exists (naming its source); kNotFound when
  // replacing one that does not; kFailedPrecondition when it is not API-managed.
  Result<CatalogEntry> PutApiRunbook(std::string_view yaml, std::string_view expect_id);
  Status DeleteApiRunbook(std::string_view id);

 private:
  explicit RunbookCatalog(Options options) : options_(std::move(options)) {}
  // Builds a full snapshot from the builtins, `dir_entries` and api entries.
  Result<std::shared_ptr<const CatalogSnapshot>> Build(
      const std::vector<CatalogEntry>& dir_entries,
      const std::vector<CatalogEntry>& api_entries) const;
  Result<std::vector<CatalogEntry>> LoadDir(const std::string& dir, RunbookOrigin origin) const;

  Options options_;
  std::vector<CatalogEntry> builtin_entries_;
  mutable std::mutex mu_;  // guards everything below; writers serialise on it
  std::vector<CatalogEntry> dir_entries_;
  std::vector<CatalogEntry> api_entries_;
  std::string dir_fingerprint_;
  bool reload_refused_ = false;  // the last reload clashed with an API-managed runbook
  std::shared_ptr<const CatalogSnapshot> snapshot_;
};

// The runbooks embedded in this binary (generated from runbooks/*.yaml at build time).
const std::vector<BuiltinRunbook>& BuiltinRunbooks();

}  // namespace automan::api
