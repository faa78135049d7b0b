// The master key file and the keys derived from it.
//
// One 256-bit master key lives in a file (DATA/master.key by default, mode 0600). Every
// key Automan uses is derived from it for one purpose, so a leak of one derived key (say,
// the stream-ticket key) says nothing about the others. A cluster shares one key file.
#pragma once

#include <string>

#include "auth/crypto.h"
#include "common/status.h"

namespace automan::auth {

struct Keys {
  Key tickets;  // HMAC of stream tickets
  Key secrets;  // secretbox of the secret store
  Key audit;    // keyed hash of the audit chain
  Key csrf;     // CSRF tokens of cookie sessions
  Key params;   // secretbox of the secret parameters of queued runs
};

Keys DeriveKeys(const Key& master);

// Reads the master key file at `path`. When it does not exist: creates it (0600, in a
// directory created 0700) if `may_create`, else kFailedPrecondition with a message that
// says what to do. A file readable by group or others, or not in the expected format,
// is refused (kFailedPrecondition / kDataLoss): a key is never silently replaced.
Result<Keys> LoadOrCreateKeys(const std::string& path, bool may_create, bool* created = nullptr);

}  // namespace automan::auth
