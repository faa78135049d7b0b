// Online backup of a store to one file (`automan backup`).
//
// SQLite: a consistent copy taken with SQLite's online backup API while the store stays in
// use. The copy is the database as of one instant, the start of the backup: every
// transaction committed before BackupStore was called is in it, none committed after it
// began is. Writers are never blocked (the store runs in WAL mode; the backup holds only
// a read snapshot, which keeps checkpoints from shrinking the -wal file meanwhile).
// PostgreSQL stores are backed up with pg_dump instead (see docs/operations.md).
//
// Contract
// - `dest_path` must not exist (kAlreadyExists); nothing is ever written under that name
//   but a complete, fsync'ed copy that passed `PRAGMA quick_check`. The copy is built in
//   `dest_path + ".tmp"` (mode 0600), which must not exist either (kAlreadyExists: another
//   backup is writing it, or an interrupted one left it) and is removed on every failure.
//   The final rename never replaces a file that appeared meanwhile.
// - Errors: kInvalidArgument for "sqlite::memory:" (private to its process) and for a URL
//   that is no store URL; kFailedPrecondition for a PostgreSQL URL (the message gives the
//   pg_dump command, password removed) and for a database of another application;
//   kNotFound when the SQLite file does not exist; kDataLoss when the source is not a
//   database or the copy fails its check; kUnavailable when the source stays locked (a
//   rollback-journal writer) for 30 s; kInternal for I/O errors.
// - Blocking, thread-safe (it opens its own connections), never modifies the source.
#pragma once

#include <string>

#include "common/status.h"

namespace automan {

Status BackupStore(const std::string& store_url, const std::string& dest_path);

}  // namespace automan
