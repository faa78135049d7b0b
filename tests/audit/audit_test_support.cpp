#include "audit/audit_test_support.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

namespace automan::audit::testing {

AuditKey TestKey(unsigned char fill) {
  AuditKey k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<unsigned char>(fill + i);
  return k;
}

std::vector<AuditRecord> MakeChain(const AuditKey& key, int n) {
  std::vector<AuditRecord> out;
  std::string prev(kGenesisHash);
  for (int i = 1; i <= n; ++i) {
    AuditRecord r;
    r.seq = i;
    r.at = FromMicros(1'800'000'000'000'000 + i * 1000);
    r.actor = i % 2 ? "alice" : "bob";
    r.action = "run.create";
    r.target = fmt::format("run/{}", i);
    r.outcome = "ok";
    r.remote = "10.0.0.1";
    r.details_json = fmt::format("{{\"n\":{}}}", i);
    r.hash = EntryHash(key, prev, r);
    prev = r.hash;
    out.push_back(r);
  }
  return out;
}

AuditFixture::AuditFixture(AuditKey key)
    : key_(key),
      clock_(FromMicros(1'800'000'000'000'000)),
      db_path_(dir_.File("automan.db")),
      head_path_(dir_.File("audit.head")) {
  Open();
}

AuditFixture::~AuditFixture() { Close(); }

void AuditFixture::Open() {
  StoreOptions options;
  options.url = url();
  auto store = Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  store_ = std::move(store).value();
  AuditLogOptions log_options;
  log_options.head_path = head_path_;
  log_ = std::make_unique<AuditLog>(*store_, key_, clock_, log_options);
}

void AuditFixture::Close() {
  log_.reset();
  store_.reset();
}

void AuditFixture::AppendMany(int n) {
  for (int i = 1; i <= n; ++i) {
    AuditEvent e;
    e.actor = i % 2 ? "alice" : "bob";
    e.action = "run.create";
    e.target = fmt::format("run/e{}", i);
    e.remote = "127.0.0.1";
    e.details_json = fmt::format("{{\"i\":{}}}", i);
    Status st = log_->Append(e);
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_TRUE(log_->CheckpointStatus().ok()) << log_->CheckpointStatus().ToString();
    clock_.Advance(std::chrono::milliseconds(1));
  }
}

namespace {

struct Db {
  sqlite3* db = nullptr;
  ~Db() { sqlite3_close(db); }
};

void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << (err ? err : "?");
  sqlite3_free(err);
}

void OpenAndDropTriggers(Db& d, const std::string& path) {
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &d.db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  std::vector<std::string> triggers;
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(d.db,
                               "SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                               "tbl_name = 'audit'",
                               -1, &st, nullptr),
            SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW) {
    triggers.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  }
  sqlite3_finalize(st);
  for (const std::string& t : triggers) Exec(d.db, "DROP TRIGGER \"" + t + "\"");
}

}  // namespace

void AuditFixture::Tamper(const std::string& sql) {
  ASSERT_EQ(store_, nullptr) << "Close() the store before editing its file";
  Db d;
  OpenAndDropTriggers(d, db_path_);
  Exec(d.db, sql);
}

void AuditFixture::InsertRaw(const AuditRecord& r) {
  ASSERT_EQ(store_, nullptr) << "Close() the store before editing its file";
  Db d;
  OpenAndDropTriggers(d, db_path_);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(d.db,
                               "INSERT INTO audit (seq, at, actor, action, target, outcome, "
                               "remote, details_json, hash) VALUES (?,?,?,?,?,?,?,?,?)",
                               -1, &st, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(d.db);
  sqlite3_bind_int64(st, 1, r.seq);
  sqlite3_bind_int64(st, 2, ToMicros(r.at));
  int i = 3;
  for (const std::string* s :
       {&r.actor, &r.action, &r.target, &r.outcome, &r.remote, &r.details_json, &r.hash}) {
    sqlite3_bind_text(st, i++, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
  }
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  ASSERT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(d.db);
}

std::vector<AuditRecord> AuditFixture::All() {
  std::vector<AuditRecord> out;
  AuditFilter f;
  f.limit = 100000;
  auto r = log_->List(f);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (r.ok()) out = std::move(r).value();
  return out;
}

VerifyReport AuditFixture::Verify(std::vector<HeadAnchor> extra_anchors) {
  auto r = log_->Verify(std::move(extra_anchors));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : VerifyReport{};
}

}  // namespace automan::audit::testing

namespace automan::audit {
void PrintTo(const VerifyReport& r, std::ostream* os) {
  *os << (r.ok ? "ok" : "FAULT") << " checked=" << r.entries_checked << " last_seq=" << r.last_seq
      << " anchor_seq=" << r.anchor_seq << " kind=" << ToString(r.kind)
      << " first_bad_seq=" << r.first_bad_seq << " message=\"" << r.message << "\"";
}
}  // namespace automan::audit
