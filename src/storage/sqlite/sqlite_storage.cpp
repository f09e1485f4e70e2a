// SQLite implementation of Storage: WAL database, schema versioned by PRAGMA user_version with
// ordered migration steps, prepared statements, every write in its own transaction.
//
// A SqliteStorage (and its connection) is used by one thread at a time — the storage worker —
// so it has no locking of its own. Unexpected SQLite failures after opening (disk full, I/O
// errors, a lock held past busy_timeout) throw std::runtime_error, as the Storage interface
// has no error values; the storage worker turns them into internal-server-error answers.
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "storage/sqlite/sqlite_archive.h"
#include "storage/sqlite/sqlite_db.h"
#include "storage/sqlite/sqlite_pep.h"
#include "storage/sqlite/sqlite_push.h"
#include "storage/storage.h"

namespace waddle::storage {
namespace {

using sqlite::Database;
using sqlite::Statement;
using sqlite::Transaction;

// Groups are stored in one text column, each name followed by U+001F. XML 1.0 cannot carry
// that control character, so no group name contains it, and [] ("") differs from [""]
// ("\x1f").
constexpr char kGroupTerminator = '\x1f';

struct Migration {
  int version;
  const char* sql;
};

// Applied in order, each in its own transaction together with the new user_version. Never
// edit a released step: add a new one.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE accounts (
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  sha1_salt BLOB NOT NULL,
  sha1_iter INTEGER NOT NULL,
  sha1_stored BLOB NOT NULL,
  sha1_server BLOB NOT NULL,
  sha256_salt BLOB NOT NULL,
  sha256_iter INTEGER NOT NULL,
  sha256_stored BLOB NOT NULL,
  sha256_server BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (domain, username)
);
CREATE TABLE roster (
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  contact TEXT NOT NULL,
  name TEXT NOT NULL,
  groups TEXT NOT NULL,
  subscription INTEGER NOT NULL,
  ask_out INTEGER NOT NULL,
  pending_in INTEGER NOT NULL,
  pre_approved INTEGER NOT NULL,
  hidden INTEGER NOT NULL,
  PRIMARY KEY (domain, username, contact)
);
CREATE TABLE offline (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  stanza TEXT NOT NULL,
  stored_at INTEGER NOT NULL
);
CREATE INDEX offline_owner ON offline (domain, username, id);
)sql"},
    {2, R"sql(
CREATE TABLE muc_rooms (
  service TEXT NOT NULL,
  name TEXT NOT NULL,
  data TEXT NOT NULL,
  PRIMARY KEY (service, name)
);
)sql"},
    {3, R"sql(
ALTER TABLE accounts ADD COLUMN did TEXT NOT NULL DEFAULT '';
)sql"},
    {4, R"sql(
CREATE TABLE blocklist (
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  jid TEXT NOT NULL,
  PRIMARY KEY (domain, username, jid)
);
CREATE TABLE spam_reports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  jid TEXT NOT NULL,
  reason TEXT NOT NULL,
  text TEXT NOT NULL,
  reported_at INTEGER NOT NULL
);
CREATE INDEX spam_reports_domain ON spam_reports (domain, id);
)sql"},
    // Roster versioning (RFC 6121 §2.6): a counter per account, raised by every roster write.
    {5, R"sql(
CREATE TABLE roster_versions (
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (domain, username)
);
)sql"},
    {6, sqlite::kArchiveSchema},
    {7, sqlite::kArchiveRowIds},
    {8, sqlite::kPushSchema},
    {9, sqlite::kArchiveJidIds},
    {10, sqlite::kArchiveSidRows},
    {11, sqlite::kPepSchema},
    {12, sqlite::kPrivateSchema},
};

std::int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string join_groups(const std::vector<std::string>& groups) {
  std::string out;
  for (const auto& g : groups) {
    out += g;
    out += kGroupTerminator;
  }
  return out;
}

std::vector<std::string> split_groups(std::string_view s) {
  std::vector<std::string> groups;
  while (!s.empty()) {
    const auto end = s.find(kGroupTerminator);
    if (end == std::string_view::npos) {
      groups.emplace_back(s);  // not written by us; keep the text rather than lose it
      break;
    }
    groups.emplace_back(s.substr(0, end));
    s.remove_prefix(end + 1);
  }
  return groups;
}

Subscription subscription_from(std::int64_t v) {
  switch (v) {
    case 1:
      return Subscription::kTo;
    case 2:
      return Subscription::kFrom;
    case 3:
      return Subscription::kBoth;
    default:
      return Subscription::kNone;
  }
}

std::int64_t subscription_to(Subscription s) {
  switch (s) {
    case Subscription::kNone:
      return 0;
    case Subscription::kTo:
      return 1;
    case Subscription::kFrom:
      return 2;
    case Subscription::kBoth:
      return 3;
  }
  return 0;
}

void migrate(const Database& db) {
  int version = 0;
  {
    Statement s(db, "PRAGMA user_version");
    auto run = s.run();
    if (run.step()) version = static_cast<int>(run.column_int(0));
  }
  const int latest = std::end(kMigrations)[-1].version;
  if (version > latest) {
    db.fail("schema version " + std::to_string(version) + " is newer than this server (" +
            std::to_string(latest) + ")");
  }
  for (const auto& step : kMigrations) {
    if (step.version <= version) continue;
    Transaction tx(db);
    db.exec(step.sql);
    // PRAGMA takes no bound parameters; the value is our own integer.
    db.exec(("PRAGMA user_version = " + std::to_string(step.version)).c_str());
    tx.commit();
  }
}

const char* const kAccountColumns =
    "sha1_salt, sha1_iter, sha1_stored, sha1_server, "
    "sha256_salt, sha256_iter, sha256_stored, sha256_server";

class SqliteStorage final : public Storage {
 public:
  explicit SqliteStorage(std::unique_ptr<Database> db)
      : db_(std::move(db)),
        account_insert_(*db_,
                        (std::string("INSERT INTO accounts (domain, username, ") + kAccountColumns +
                         ", created_at, did) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                         "ON CONFLICT (domain, username) DO NOTHING")
                            .c_str()),
        account_get_(*db_, (std::string("SELECT ") + kAccountColumns +
                            ", did FROM accounts WHERE domain = ? AND username = ?")
                               .c_str()),
        account_update_(*db_,
                        "UPDATE accounts SET sha1_salt = ?3, sha1_iter = ?4, sha1_stored = ?5, "
                        "sha1_server = ?6, sha256_salt = ?7, sha256_iter = ?8, "
                        "sha256_stored = ?9, sha256_server = ?10 "
                        "WHERE domain = ?1 AND username = ?2"),
        account_delete_(*db_, "DELETE FROM accounts WHERE domain = ? AND username = ?"),
        account_list_(*db_, "SELECT username FROM accounts WHERE domain = ? ORDER BY username"),
        roster_delete_all_(*db_, "DELETE FROM roster WHERE domain = ? AND username = ?"),
        roster_select_all_(*db_,
                           "SELECT contact, name, groups, subscription, ask_out, pending_in, "
                           "pre_approved, hidden FROM roster WHERE domain = ? AND username = ? "
                           "ORDER BY contact"),
        roster_select_one_(*db_,
                           "SELECT contact, name, groups, subscription, ask_out, pending_in, "
                           "pre_approved, hidden FROM roster "
                           "WHERE domain = ? AND username = ? AND contact = ?"),
        roster_upsert_(*db_,
                       "INSERT OR REPLACE INTO roster (domain, username, contact, name, groups, "
                       "subscription, ask_out, pending_in, pre_approved, hidden) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?)"),
        roster_delete_(*db_,
                       "DELETE FROM roster WHERE domain = ? AND username = ? AND contact = ?"),
        roster_version_get_(
            *db_, "SELECT version FROM roster_versions WHERE domain = ? AND username = ?"),
        roster_version_bump_(*db_,
                             "INSERT INTO roster_versions (domain, username, version) "
                             "VALUES (?, ?, 1) ON CONFLICT (domain, username) "
                             "DO UPDATE SET version = version + 1"),
        offline_delete_all_(*db_, "DELETE FROM offline WHERE domain = ? AND username = ?"),
        offline_count_(*db_, "SELECT COUNT(*) FROM offline WHERE domain = ? AND username = ?"),
        offline_bytes_(*db_,
                       "SELECT COALESCE(SUM(LENGTH(CAST(stanza AS BLOB))), 0) FROM offline "
                       "WHERE domain = ? AND username = ?"),
        offline_insert_(*db_,
                        "INSERT INTO offline (domain, username, stanza, stored_at) "
                        "VALUES (?,?,?,?)"),
        offline_select_(*db_,
                        "SELECT id, stanza FROM offline WHERE domain = ? AND username = ? "
                        "ORDER BY id"),
        account_set_did_(*db_, "UPDATE accounts SET did = ?3 WHERE domain = ?1 AND username = ?2"),
        room_upsert_(*db_, "INSERT OR REPLACE INTO muc_rooms (service, name, data) VALUES (?,?,?)"),
        room_delete_(*db_, "DELETE FROM muc_rooms WHERE service = ? AND name = ?"),
        room_list_(*db_, "SELECT name, data FROM muc_rooms WHERE service = ? ORDER BY name"),
        block_select_(*db_,
                      "SELECT jid FROM blocklist WHERE domain = ? AND username = ? ORDER BY jid"),
        block_insert_(*db_,
                      "INSERT OR IGNORE INTO blocklist (domain, username, jid) VALUES (?,?,?)"),
        block_delete_(*db_, "DELETE FROM blocklist WHERE domain = ? AND username = ? AND jid = ?"),
        block_delete_all_(*db_, "DELETE FROM blocklist WHERE domain = ? AND username = ?"),
        report_insert_(*db_,
                       "INSERT INTO spam_reports (domain, username, jid, reason, text, "
                       "reported_at) VALUES (?,?,?,?,?,?)"),
        report_select_(*db_,
                       "SELECT username, jid, reason, text, reported_at FROM spam_reports "
                       "WHERE domain = ? ORDER BY id"),
        archive_(*db_),
        push_(*db_),
        pep_(*db_) {}

  bool create_account(const Account& a) override {
    Transaction tx(*db_);
    auto run = account_insert_.run();
    run.text(1, a.domain).text(2, a.username);
    bind_credentials(run, 3, a.sha1);
    bind_credentials(run, 7, a.sha256);
    run.integer(11, now_unix()).text(12, a.did).done();
    const bool inserted = sqlite3_changes(db_->handle()) > 0;
    tx.commit();
    return inserted;
  }

  std::optional<Account> get_account(const std::string& domain,
                                     const std::string& username) override {
    auto run = account_get_.run();
    run.text(1, domain).text(2, username);
    if (!run.step()) return std::nullopt;
    Account a;
    a.domain = domain;
    a.username = username;
    a.sha1 = read_credentials(run, 0);
    a.sha256 = read_credentials(run, 4);
    a.did = run.column_text(8);
    return a;
  }

  bool set_did(const std::string& domain, const std::string& username,
               const std::string& did) override {
    account_set_did_.run().text(1, domain).text(2, username).text(3, did).done();
    return sqlite3_changes(db_->handle()) > 0;
  }

  bool set_credentials(const std::string& domain, const std::string& username,
                       const sasl::ScramCredentials& sha1,
                       const sasl::ScramCredentials& sha256) override {
    Transaction tx(*db_);
    auto run = account_update_.run();
    run.text(1, domain).text(2, username);
    bind_credentials(run, 3, sha1);
    bind_credentials(run, 7, sha256);
    run.done();
    const bool updated = sqlite3_changes(db_->handle()) > 0;
    tx.commit();
    return updated;
  }

  bool delete_account(const std::string& domain, const std::string& username) override {
    Transaction tx(*db_);
    bool deleted = false;
    {
      auto run = account_delete_.run();
      run.text(1, domain).text(2, username).done();
      deleted = sqlite3_changes(db_->handle()) > 0;
    }
    if (!deleted) return false;  // rolls back the empty transaction
    roster_delete_all_.run().text(1, domain).text(2, username).done();
    // Kept and raised, so that a cache from a deleted account never matches a new one's.
    bump_roster_version(domain, username);
    offline_delete_all_.run().text(1, domain).text(2, username).done();
    block_delete_all_.run().text(1, domain).text(2, username).done();
    archive_.delete_owner(username + "@" + domain);
    push_.delete_owner(domain, username);
    pep_.delete_owner(domain, username);
    tx.commit();
    return true;
  }

  std::vector<std::string> list_accounts(const std::string& domain) override {
    std::vector<std::string> out;
    auto run = account_list_.run();
    run.text(1, domain);
    while (run.step()) out.push_back(run.column_text(0));
    return out;
  }

  std::vector<RosterItem> roster_get(const std::string& domain,
                                     const std::string& username) override {
    std::vector<RosterItem> out;
    auto run = roster_select_all_.run();
    run.text(1, domain).text(2, username);
    while (run.step()) out.push_back(read_item(run));
    return out;
  }

  std::optional<RosterItem> roster_item(const std::string& domain, const std::string& username,
                                        const std::string& contact) override {
    auto run = roster_select_one_.run();
    run.text(1, domain).text(2, username).text(3, contact);
    if (!run.step()) return std::nullopt;
    return read_item(run);
  }

  void roster_put(const std::string& domain, const std::string& username,
                  const RosterItem& item) override {
    Transaction tx(*db_);
    {
      auto run = roster_upsert_.run();
      run.text(1, domain)
          .text(2, username)
          .text(3, item.jid)
          .text(4, item.name)
          .text(5, join_groups(item.groups))
          .integer(6, subscription_to(item.subscription))
          .integer(7, item.ask_out ? 1 : 0)
          .integer(8, item.pending_in ? 1 : 0)
          .integer(9, item.pre_approved ? 1 : 0)
          .integer(10, item.hidden ? 1 : 0)
          .done();
    }
    bump_roster_version(domain, username);
    tx.commit();
  }

  bool roster_remove(const std::string& domain, const std::string& username,
                     const std::string& contact) override {
    Transaction tx(*db_);
    bool removed = false;
    {
      auto run = roster_delete_.run();
      run.text(1, domain).text(2, username).text(3, contact).done();
      removed = sqlite3_changes(db_->handle()) > 0;
    }
    if (removed) bump_roster_version(domain, username);
    tx.commit();
    return removed;
  }

  std::uint64_t roster_version(const std::string& domain, const std::string& username) override {
    auto run = roster_version_get_.run();
    run.text(1, domain).text(2, username);
    return run.step() ? static_cast<std::uint64_t>(run.column_int(0)) : 0;
  }

  bool offline_store(const std::string& domain, const std::string& username,
                     const std::string& stanza, std::uint32_t max,
                     std::uint64_t max_bytes) override {
    // IMMEDIATE takes the write lock first, so the count cannot change before the insert.
    Transaction tx(*db_);
    if (count(domain, username) >= max) return false;
    if (stanza.size() > max_bytes || stored_bytes(domain, username) > max_bytes - stanza.size())
      return false;
    offline_insert_.run()
        .text(1, domain)
        .text(2, username)
        .text(3, stanza)
        .integer(4, now_unix())
        .done();
    tx.commit();
    return true;
  }

  std::vector<OfflineMessage> offline_take(const std::string& domain,
                                           const std::string& username) override {
    Transaction tx(*db_);
    std::vector<OfflineMessage> out;
    {
      auto run = offline_select_.run();
      run.text(1, domain).text(2, username);
      while (run.step()) out.push_back(OfflineMessage{run.column_int(0), run.column_text(1)});
    }
    if (out.empty()) return out;
    offline_delete_all_.run().text(1, domain).text(2, username).done();
    tx.commit();
    return out;
  }

  std::size_t offline_count(const std::string& domain, const std::string& username) override {
    return count(domain, username);
  }

  void room_put(const std::string& service, const std::string& name,
                const std::string& data) override {
    room_upsert_.run().text(1, service).text(2, name).text(3, data).done();
  }

  bool room_delete(const std::string& service, const std::string& name) override {
    room_delete_.run().text(1, service).text(2, name).done();
    return sqlite3_changes(db_->handle()) > 0;
  }

  using Storage::archive_append;
  std::size_t archive_append(const ArchiveBatch& batch, const std::string& default_mode) override {
    return archive_.append(batch, default_mode);
  }
  ArchivePage archive_query(const std::string& owner, const ArchiveFilter& filter) override {
    return archive_.query(owner, filter);
  }
  std::optional<std::pair<ArchiveEntry, ArchiveEntry>> archive_bounds(
      const std::string& owner) override {
    return archive_.bounds(owner);
  }
  std::uint64_t archive_expire(std::int64_t before_us, std::uint64_t max_per_owner) override {
    return archive_.expire(before_us, max_per_owner);
  }
  std::uint64_t archive_delete(const std::string& owner) override {
    Transaction tx(*db_);
    const std::uint64_t removed = archive_.delete_owner(owner);
    tx.commit();
    return removed;
  }
  bool archive_replace(const std::string& owner, const std::string& id,
                       const std::string& stanza) override {
    return archive_.replace(owner, id, stanza);
  }
  std::optional<ArchivePrefs> archive_prefs(const std::string& owner) override {
    return archive_.prefs(owner);
  }
  void archive_set_prefs(const std::string& owner, const ArchivePrefs& prefs) override {
    archive_.set_prefs(owner, prefs);
  }

  std::vector<std::pair<std::string, std::string>> room_list(const std::string& service) override {
    std::vector<std::pair<std::string, std::string>> out;
    auto run = room_list_.run();
    run.text(1, service);
    while (run.step()) out.emplace_back(run.column_text(0), run.column_text(1));
    return out;
  }

  std::vector<std::string> blocklist_get(const std::string& domain,
                                         const std::string& username) override {
    std::vector<std::string> out;
    auto run = block_select_.run();
    run.text(1, domain).text(2, username);
    while (run.step()) out.push_back(run.column_text(0));
    return out;
  }

  void blocklist_add(const std::string& domain, const std::string& username,
                     const std::vector<std::string>& jids) override {
    Transaction tx(*db_);
    for (const auto& jid : jids)
      block_insert_.run().text(1, domain).text(2, username).text(3, jid).done();
    tx.commit();
  }

  void blocklist_remove(const std::string& domain, const std::string& username,
                        const std::vector<std::string>& jids) override {
    Transaction tx(*db_);
    if (jids.empty()) block_delete_all_.run().text(1, domain).text(2, username).done();
    for (const auto& jid : jids)
      block_delete_.run().text(1, domain).text(2, username).text(3, jid).done();
    tx.commit();
  }

  std::vector<PushRegistration> push_get(const std::string& domain,
                                         const std::string& username) override {
    return push_.get(domain, username);
  }
  std::vector<PushRegistration> push_put(const std::string& domain, const std::string& username,
                                         const PushRegistration& reg, std::size_t max) override {
    return push_.put(domain, username, reg, max);
  }
  std::vector<PepNode> pep_nodes(const std::string& domain, const std::string& username) override {
    return pep_.nodes(domain, username);
  }
  std::optional<PepNode> pep_node(const std::string& domain, const std::string& username,
                                  const std::string& node) override {
    return pep_.node(domain, username, node);
  }
  PepCreated pep_create(const std::string& domain, const std::string& username, const PepNode& node,
                        std::size_t max_nodes) override {
    return pep_.create(domain, username, node, max_nodes);
  }
  bool pep_configure(const std::string& domain, const std::string& username, const PepNode& node,
                     std::uint32_t max_items) override {
    return pep_.configure(domain, username, node, max_items);
  }
  bool pep_delete_node(const std::string& domain, const std::string& username,
                       const std::string& node) override {
    return pep_.remove(domain, username, node);
  }
  bool pep_purge(const std::string& domain, const std::string& username,
                 const std::string& node) override {
    return pep_.purge(domain, username, node);
  }
  void pep_publish(const std::string& domain, const std::string& username, const std::string& node,
                   const PepStoredItem& item, std::uint32_t max_items) override {
    pep_.publish(domain, username, node, item, max_items);
  }
  bool pep_retract(const std::string& domain, const std::string& username, const std::string& node,
                   const std::string& item_id) override {
    return pep_.retract(domain, username, node, item_id);
  }
  std::vector<PepStoredItem> pep_items(const std::string& domain, const std::string& username,
                                       const std::string& node, const std::vector<std::string>& ids,
                                       std::size_t max) override {
    return pep_.items(domain, username, node, ids, max);
  }
  std::optional<std::string> private_get(const std::string& domain, const std::string& username,
                                         const std::string& key) override {
    return pep_.private_get(domain, username, key);
  }
  bool private_put(const std::string& domain, const std::string& username, const std::string& key,
                   const std::string& value, std::size_t max_keys) override {
    return pep_.private_put(domain, username, key, value, max_keys);
  }
  std::vector<PushRegistration> push_remove(const std::string& domain, const std::string& username,
                                            const std::string& jid,
                                            const std::string& node) override {
    return push_.remove(domain, username, jid, node);
  }

  void spam_report_add(const SpamReport& r) override {
    report_insert_.run()
        .text(1, r.domain)
        .text(2, r.username)
        .text(3, r.jid)
        .text(4, r.reason)
        .text(5, r.text)
        .integer(6, now_unix())
        .done();
  }

  std::vector<SpamReport> spam_reports(const std::string& domain) override {
    std::vector<SpamReport> out;
    auto run = report_select_.run();
    run.text(1, domain);
    while (run.step()) {
      out.push_back(SpamReport{domain, run.column_text(0), run.column_text(1), run.column_text(2),
                               run.column_text(3), run.column_int(4)});
    }
    return out;
  }

 private:
  void bump_roster_version(const std::string& domain, const std::string& username) {
    roster_version_bump_.run().text(1, domain).text(2, username).done();
  }

  static void bind_credentials(Statement::Run& run, int first, const sasl::ScramCredentials& c) {
    run.blob(first, c.salt)
        .integer(first + 1, c.iterations)
        .blob(first + 2, c.stored_key)
        .blob(first + 3, c.server_key);
  }

  static sasl::ScramCredentials read_credentials(const Statement::Run& run, int first) {
    sasl::ScramCredentials c;
    c.salt = run.column_blob(first);
    c.iterations = static_cast<std::uint32_t>(run.column_int(first + 1));
    c.stored_key = run.column_blob(first + 2);
    c.server_key = run.column_blob(first + 3);
    return c;
  }

  static RosterItem read_item(const Statement::Run& run) {
    RosterItem item;
    item.jid = run.column_text(0);
    item.name = run.column_text(1);
    item.groups = split_groups(run.column_text(2));
    item.subscription = subscription_from(run.column_int(3));
    item.ask_out = run.column_int(4) != 0;
    item.pending_in = run.column_int(5) != 0;
    item.pre_approved = run.column_int(6) != 0;
    item.hidden = run.column_int(7) != 0;
    return item;
  }

  std::size_t count(const std::string& domain, const std::string& username) {
    auto run = offline_count_.run();
    run.text(1, domain).text(2, username);
    return run.step() ? static_cast<std::size_t>(run.column_int(0)) : 0;
  }

  std::uint64_t stored_bytes(const std::string& domain, const std::string& username) {
    auto run = offline_bytes_.run();
    run.text(1, domain).text(2, username);
    return run.step() ? static_cast<std::uint64_t>(run.column_int(0)) : 0;
  }

  std::unique_ptr<Database> db_;  // declared first: the statements below use it
  Statement account_insert_;
  Statement account_get_;
  Statement account_update_;
  Statement account_delete_;
  Statement account_list_;
  Statement roster_delete_all_;
  Statement roster_select_all_;
  Statement roster_select_one_;
  Statement roster_upsert_;
  Statement roster_delete_;
  Statement roster_version_get_;
  Statement roster_version_bump_;
  Statement offline_delete_all_;
  Statement offline_count_;
  Statement offline_bytes_;
  Statement offline_insert_;
  Statement offline_select_;
  Statement account_set_did_;
  Statement room_upsert_;
  Statement room_delete_;
  Statement room_list_;
  Statement block_select_;
  Statement block_insert_;
  Statement block_delete_;
  Statement block_delete_all_;
  Statement report_insert_;
  Statement report_select_;
  sqlite::Archive archive_;
  sqlite::Push push_;
  sqlite::Pep pep_;
};

}  // namespace

std::unique_ptr<Storage> open_sqlite(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      throw std::runtime_error("sqlite: " + path + ": cannot create directory " + parent.string() +
                               ": " + ec.message());
    }
  }
  auto db = std::make_unique<Database>(path);
  db->open();
  // 16 KiB pages (SQLite's default is 4 KiB) take effect only when the file is created: an
  // archived message costs about a third less to write (fewer WAL frames, fewer system calls).
  db->exec("PRAGMA page_size = 16384");
  db->exec("PRAGMA journal_mode = WAL");
  db->exec("PRAGMA synchronous = NORMAL");
  db->exec("PRAGMA foreign_keys = ON");
  migrate(*db);
  return std::make_unique<SqliteStorage>(std::move(db));
}

}  // namespace waddle::storage
