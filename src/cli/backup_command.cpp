// `automan backup [--data DIR | --db URL] FILE`: a consistent online copy of the store.
#include <fmt/format.h>

#include "cli/cli_support.h"
#include "cli/commands.h"
#include "store/backup.h"

namespace automan::cli {

int RunBackup(const BackupOptions& o) {
  const std::string url = o.store.ResolvedUrl();
  Status s = BackupStore(url, o.file);
  if (!s.ok()) {
    fmt::print(stderr, "error: {}\n", s.message());
    return ExitFor(s);
  }
  fmt::print("backed up {} to {}\n", RedactStoreUrl(url), o.file);
  fmt::print(stderr,
             "note: restore with the server stopped (docs/operations.md); keep this copy as safe "
             "as the data directory itself\n"
             "note: the copy is useless without the master key file ({}/master.key, or the "
             "server's --key-file): its secrets and audit trail are sealed with it. Keep a copy "
             "of the key with the backup (and of {}/audit.head, the audit trail's anchor), "
             "stored apart from it\n",
             o.store.data_dir, o.store.data_dir);
  return kExitSuccess;
}

}  // namespace automan::cli
