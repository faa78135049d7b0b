// Shared by the audit tests: keys, an AuditLog over a SQLite file store in a temp dir,
// and direct edits of that file with the sqlite3 C API (the attacker's view).
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "audit/chain.h"
#include "common/clock.h"
#include "store/store.h"
#include "support/test_util.h"

namespace automan::audit::testing {

AuditKey TestKey(unsigned char fill);

// An in-memory chain of `n` entries, as AuditLog would write them (for the pure tests).
std::vector<AuditRecord> MakeChain(const AuditKey& key, int n);

// A SQLite file store "DIR/automan.db" with an AuditLog whose head is "DIR/audit.head".
class AuditFixture {
 public:
  explicit AuditFixture(AuditKey key = TestKey(7));
  ~AuditFixture();

  void Open();   // the store and the log
  void Close();  // both, so the file can be edited
  // Appends events "e1".."en" (actor alternating alice/bob), the clock moving 1 ms each.
  void AppendMany(int n);

  // Runs `sql` on the closed database file after dropping every trigger on the audit
  // table (the store's append-only guard). Fails the test on an SQLite error.
  void Tamper(const std::string& sql);
  // Inserts a row as given (hash included), bypassing the store.
  void InsertRaw(const AuditRecord& r);
  // Every stored entry (store open).
  std::vector<AuditRecord> All();
  VerifyReport Verify(std::vector<HeadAnchor> extra_anchors = {});

  Store& store() { return *store_; }
  AuditLog& log() { return *log_; }
  const AuditKey& key() const { return key_; }
  SimulatedClock& clock() { return clock_; }
  const std::string& db_path() const { return db_path_; }
  const std::string& head_path() const { return head_path_; }
  std::string url() const { return "sqlite:" + db_path_; }

 private:
  automan::testing::TempDir dir_;
  AuditKey key_;
  SimulatedClock clock_;
  std::string db_path_;
  std::string head_path_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<AuditLog> log_;
};

}  // namespace automan::audit::testing

namespace automan::audit {
// gtest prints reports readably in failure messages.
void PrintTo(const VerifyReport& r, std::ostream* os);
}  // namespace automan::audit
