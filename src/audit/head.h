// The head anchor: a record of the chain's newest entry kept outside the chain.
//
// The hash chain (chain.h) shows any change to an entry and any gap, but not the removal
// of the newest entries: a chain cut after entry K is still a valid chain. The head file
// records (seq, hash) of the newest entry known committed, with a keyed MAC, so Verify can
// tell that entries after K existed. AuditLog (audit_log.h) advances it after each commit.
//
// Format: one line of text,
//   automan-audit-head v1 <seq> <hash> <mac>\n
// where mac = hex(BLAKE2b-256_key("automan-audit-head v1\n<seq>\n<hash>")), with the chain
// key (the input cannot be mistaken for a chain input, which starts with 64 hex digits).
// The file is replaced atomically (a temporary file in the same directory, mode 0600,
// fsync, rename), so a reader sees the old or the new head, never a torn one.
//
// Limits (src/audit/README.md): the MAC stops forging a head for a position the chain
// never reached, not the replay of an older genuine head file together with a chain cut
// back to it. Anchors kept elsewhere (VerifyOptions::anchors) close that gap.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "audit/chain.h"
#include "common/status.h"

namespace automan::audit {

// A chain position known from outside the chain: entry `seq` has hash `hash`.
struct HeadAnchor {
  int64_t seq = 0;
  std::string hash;
  bool operator==(const HeadAnchor&) const = default;
};

// The file's text for `head` (one line, with its MAC).
std::string FormatHeadFile(const AuditKey& key, const HeadAnchor& head);
// The anchor in `text`; kDataLoss when it is malformed or its MAC does not match (a file
// written with another key, or edited).
Result<HeadAnchor> ParseHeadFile(const AuditKey& key, std::string_view text);

// Reads the head file at `path`: nullopt when it does not exist; kDataLoss as above;
// kPermissionDenied/kInternal for an I/O error.
Result<std::optional<HeadAnchor>> ReadHeadFile(const std::string& path, const AuditKey& key);
// Replaces the head file atomically (see above). `sync`: fsync the new file before the
// rename, so a power loss leaves the old head or the new one, never an empty or torn file
// (on any file system). The directory is not fsynced: after a power loss the rename may
// be undone, leaving the previous head, which anchors fewer entries but is never wrong
// (a lagging head is accepted by Verify; one fsync per write instead of two). Without
// `sync`, file systems that do not order data before renames (ext4 does, by default) may
// leave an empty file after a power loss, which Verify reports as "anchor".
// Not serialised: AuditLog holds a lock around it.
Status WriteHeadFile(const std::string& path, const AuditKey& key, const HeadAnchor& head,
                     bool sync);

}  // namespace automan::audit
