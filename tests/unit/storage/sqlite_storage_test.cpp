// SqliteStorage against real database files in a temporary directory: accounts, rosters,
// offline messages, persistence, schema version and open failures.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "storage/storage.h"

namespace waddle::storage {
namespace {

namespace fs = std::filesystem;
using sasl::ScramCredentials;
using sasl::ScramHash;

class SqliteStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "waddle-storage-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "waddle.db").string();
    db_ = open_sqlite(path_);
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  void reopen() {
    db_.reset();
    db_ = open_sqlite(path_);
  }

  // Reads one integer/text PRAGMA through a separate connection.
  std::string pragma(const std::string& name) const {
    sqlite3* raw = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    const std::string sql = "PRAGMA " + name;
    if (sqlite3_prepare_v2(raw, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close_v2(raw);
    return out;
  }

  static Account account(const std::string& domain, const std::string& username,
                         const std::string& password = "pencil") {
    Account a;
    a.domain = domain;
    a.username = username;
    a.sha1 = sasl::make_credentials(ScramHash::kSha1, password);
    a.sha256 = sasl::make_credentials(ScramHash::kSha256, password);
    return a;
  }

  static RosterItem item(const std::string& jid, std::vector<std::string> groups = {}) {
    RosterItem i;
    i.jid = jid;
    i.name = "Name of " + jid;
    i.groups = std::move(groups);
    i.subscription = Subscription::kBoth;
    return i;
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Storage> db_;
};

// --- accounts ---

TEST_F(SqliteStorageTest, CreateAccount_GetReturnsIt) {
  const Account a = account("example.org", "juliet");
  EXPECT_TRUE(db_->create_account(a));
  const auto got = db_->get_account("example.org", "juliet");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->domain, "example.org");
  EXPECT_EQ(got->username, "juliet");
  EXPECT_EQ(got->sha1, a.sha1);
  EXPECT_EQ(got->sha256, a.sha256);
  EXPECT_TRUE(sasl::verify_password(ScramHash::kSha256, got->sha256, "pencil"));
}

TEST_F(SqliteStorageTest, CreateAccount_DuplicateRefusedAndOriginalKept) {
  const Account a = account("example.org", "juliet", "first");
  ASSERT_TRUE(db_->create_account(a));
  EXPECT_FALSE(db_->create_account(account("example.org", "juliet", "second")));
  EXPECT_EQ(db_->get_account("example.org", "juliet")->sha256, a.sha256);
}

TEST_F(SqliteStorageTest, SameUsernameOtherDomain_Distinct) {
  ASSERT_TRUE(db_->create_account(account("example.org", "juliet")));
  EXPECT_TRUE(db_->create_account(account("example.net", "juliet")));
  EXPECT_FALSE(db_->get_account("example.com", "juliet"));
  EXPECT_FALSE(db_->get_account("example.org", "romeo"));
}

TEST_F(SqliteStorageTest, BinaryAndEmptyCredentials_RoundTrip) {
  Account a;
  a.domain = "example.org";
  a.username = "bin";
  a.sha1.salt = std::string("\0\x01\xff\0", 4);
  a.sha1.iterations = 4294967295u;
  a.sha1.stored_key = std::string(20, '\0');
  a.sha1.server_key = std::string("\x80\x7f", 2);
  // a.sha256 stays empty: an account created before SHA-256 credentials existed.
  ASSERT_TRUE(db_->create_account(a));
  const auto got = db_->get_account("example.org", "bin");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->sha1, a.sha1);
  EXPECT_EQ(got->sha256, ScramCredentials{});
  EXPECT_TRUE(got->sha256.empty());
}

TEST_F(SqliteStorageTest, SetCredentials_ReplacesBoth) {
  ASSERT_TRUE(db_->create_account(account("example.org", "juliet", "old")));
  const Account fresh = account("example.org", "juliet", "new");
  EXPECT_TRUE(db_->set_credentials("example.org", "juliet", fresh.sha1, fresh.sha256));
  const auto got = db_->get_account("example.org", "juliet");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->sha1, fresh.sha1);
  EXPECT_EQ(got->sha256, fresh.sha256);
  EXPECT_TRUE(sasl::verify_password(ScramHash::kSha1, got->sha1, "new"));
  EXPECT_FALSE(sasl::verify_password(ScramHash::kSha1, got->sha1, "old"));
}

TEST_F(SqliteStorageTest, SetCredentials_UnknownAccountFalse) {
  const Account a = account("example.org", "ghost");
  EXPECT_FALSE(db_->set_credentials("example.org", "ghost", a.sha1, a.sha256));
  EXPECT_FALSE(db_->get_account("example.org", "ghost"));
}

TEST_F(SqliteStorageTest, ListAccounts_SortedPerDomain) {
  ASSERT_TRUE(db_->create_account(account("example.org", "romeo")));
  ASSERT_TRUE(db_->create_account(account("example.org", "juliet")));
  ASSERT_TRUE(db_->create_account(account("example.net", "nurse")));
  EXPECT_EQ(db_->list_accounts("example.org"), (std::vector<std::string>{"juliet", "romeo"}));
  EXPECT_EQ(db_->list_accounts("example.net"), (std::vector<std::string>{"nurse"}));
  EXPECT_TRUE(db_->list_accounts("example.com").empty());
}

TEST_F(SqliteStorageTest, DeleteAccount_RemovesRosterAndOffline) {
  ASSERT_TRUE(db_->create_account(account("example.org", "juliet")));
  ASSERT_TRUE(db_->create_account(account("example.org", "romeo")));  // distractor
  db_->roster_put("example.org", "juliet", item("romeo@example.org"));
  db_->roster_put("example.org", "romeo", item("juliet@example.org"));
  ASSERT_TRUE(db_->offline_store("example.org", "juliet", "<message/>", 10, UINT64_MAX));
  ASSERT_TRUE(db_->offline_store("example.org", "romeo", "<message/>", 10, UINT64_MAX));

  EXPECT_TRUE(db_->delete_account("example.org", "juliet"));
  EXPECT_FALSE(db_->get_account("example.org", "juliet"));
  EXPECT_TRUE(db_->roster_get("example.org", "juliet").empty());
  EXPECT_EQ(db_->offline_count("example.org", "juliet"), 0u);

  EXPECT_TRUE(db_->get_account("example.org", "romeo"));
  EXPECT_EQ(db_->roster_get("example.org", "romeo").size(), 1u);
  EXPECT_EQ(db_->offline_count("example.org", "romeo"), 1u);

  // Re-registering starts from an empty roster.
  ASSERT_TRUE(db_->create_account(account("example.org", "juliet")));
  EXPECT_TRUE(db_->roster_get("example.org", "juliet").empty());
}

TEST_F(SqliteStorageTest, DeleteAccount_AbsentFalseAndKeepsOrphans) {
  EXPECT_FALSE(db_->delete_account("example.org", "ghost"));
  // Nothing else is touched when the account does not exist.
  db_->roster_put("example.org", "ghost", item("romeo@example.org"));
  EXPECT_FALSE(db_->delete_account("example.org", "ghost"));
  EXPECT_EQ(db_->roster_get("example.org", "ghost").size(), 1u);
  // A later write still works (no transaction left open).
  EXPECT_TRUE(db_->create_account(account("example.org", "ghost")));
}

// --- rosters ---

TEST_F(SqliteStorageTest, RosterPut_GetAndItemRoundTrip) {
  RosterItem a = item("romeo@example.net", {"Friends", "Lovers"});
  a.subscription = Subscription::kTo;
  a.ask_out = true;
  RosterItem b = item("nurse@example.com");
  b.name = "";
  b.subscription = Subscription::kNone;
  b.pending_in = true;
  b.pre_approved = true;
  b.hidden = true;
  RosterItem c = item("benvolio@example.net", {"Friends"});
  c.subscription = Subscription::kFrom;
  db_->roster_put("example.org", "juliet", a);
  db_->roster_put("example.org", "juliet", b);
  db_->roster_put("example.org", "juliet", c);
  db_->roster_put("example.org", "romeo", item("tybalt@example.org"));  // distractor

  const auto all = db_->roster_get("example.org", "juliet");
  EXPECT_EQ(all, (std::vector<RosterItem>{c, b, a}));  // ordered by contact
  EXPECT_EQ(db_->roster_item("example.org", "juliet", "romeo@example.net"), a);
  EXPECT_EQ(db_->roster_item("example.org", "juliet", "nurse@example.com"), b);
  EXPECT_FALSE(db_->roster_item("example.org", "juliet", "tybalt@example.org"));
  EXPECT_FALSE(db_->roster_item("example.org", "romeo", "romeo@example.net"));
}

TEST_F(SqliteStorageTest, RosterGroups_EdgeCasesRoundTrip) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {""},
      {"", ""},
      {"a", ""},
      {"Friends"},
      {"Famille \xC3\xA9t\xC3\xA9", "\xE5\x8F\x8B\xE4\xBA\xBA", "\xF0\x9F\x90\xA7 penguins"},
      {"with,comma", "with;semicolon", "with\ttab", "with\nnewline", "with space "},
  };
  int n = 0;
  for (const auto& groups : cases) {
    const RosterItem it = item("c" + std::to_string(n++) + "@example.org", groups);
    db_->roster_put("example.org", "juliet", it);
    const auto got = db_->roster_item("example.org", "juliet", it.jid);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->groups, groups);
  }
}

TEST_F(SqliteStorageTest, RosterUnicode_RoundTrip) {
  RosterItem it =
      item("\xE3\x83\xAD\xE3\x83\x9F\xE3\x82\xAA@example.jp", {"\xE5\xAE\xB6\xE6\x97\x8F"});
  it.name = "R\xC3\xB3meo \xF0\x9F\x8C\xB9";
  db_->roster_put("\xC3\xA9xample.org", "j\xC3\xBCliet", it);
  EXPECT_EQ(db_->roster_item("\xC3\xA9xample.org", "j\xC3\xBCliet", it.jid), it);
  EXPECT_EQ(db_->roster_get("\xC3\xA9xample.org", "j\xC3\xBCliet"), std::vector<RosterItem>{it});
}

TEST_F(SqliteStorageTest, RosterPut_ReplacesExisting) {
  RosterItem it = item("romeo@example.net", {"Friends", "Lovers"});
  db_->roster_put("example.org", "juliet", it);
  it.name = "";
  it.groups = {};
  it.subscription = Subscription::kNone;
  it.ask_out = true;
  db_->roster_put("example.org", "juliet", it);
  EXPECT_EQ(db_->roster_get("example.org", "juliet"), std::vector<RosterItem>{it});
}

TEST_F(SqliteStorageTest, RosterRemove_OnlyThatItem) {
  db_->roster_put("example.org", "juliet", item("romeo@example.net"));
  db_->roster_put("example.org", "juliet", item("nurse@example.com"));
  db_->roster_put("example.org", "romeo", item("romeo@example.net"));  // distractor
  EXPECT_TRUE(db_->roster_remove("example.org", "juliet", "romeo@example.net"));
  EXPECT_FALSE(db_->roster_remove("example.org", "juliet", "romeo@example.net"));
  EXPECT_FALSE(db_->roster_remove("example.org", "juliet", "ghost@example.net"));
  const auto rest = db_->roster_get("example.org", "juliet");
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].jid, "nurse@example.com");
  EXPECT_TRUE(db_->roster_item("example.org", "romeo", "romeo@example.net"));
}

TEST_F(SqliteStorageTest, RosterVersion_RaisedByEveryWrite) {
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 0u);
  db_->roster_put("example.org", "juliet", item("romeo@example.net"));
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 1u);
  RosterItem renamed = item("romeo@example.net");
  renamed.name = "Romeo";
  db_->roster_put("example.org", "juliet", renamed);
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 2u);
  db_->roster_put("example.org", "romeo", item("juliet@example.org"));  // distractor
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 2u);
  EXPECT_EQ(db_->roster_version("example.org", "romeo"), 1u);
  EXPECT_EQ(db_->roster_version("example.net", "juliet"), 0u);  // same name, other domain
  // Removing nothing changes nothing; removing an item raises it.
  EXPECT_FALSE(db_->roster_remove("example.org", "juliet", "ghost@example.net"));
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 2u);
  EXPECT_TRUE(db_->roster_remove("example.org", "juliet", "romeo@example.net"));
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 3u);
  // Reads do not raise it.
  (void)db_->roster_get("example.org", "juliet");
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 3u);
}

TEST_F(SqliteStorageTest, RosterVersion_SurvivesReopenAndAccountDeletion) {
  ASSERT_TRUE(db_->create_account(account("example.org", "juliet")));
  db_->roster_put("example.org", "juliet", item("romeo@example.net"));
  db_->roster_put("example.org", "juliet", item("nurse@example.net"));
  reopen();
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 2u);
  // A new account of the same name never reuses a version a client may have cached.
  ASSERT_TRUE(db_->delete_account("example.org", "juliet"));
  ASSERT_TRUE(db_->create_account(account("example.org", "juliet")));
  EXPECT_GT(db_->roster_version("example.org", "juliet"), 2u);
  // An absent account's deletion touches nothing.
  EXPECT_FALSE(db_->delete_account("example.org", "ghost"));
  EXPECT_EQ(db_->roster_version("example.org", "ghost"), 0u);
}

TEST_F(SqliteStorageTest, RosterVersion_MigratedFromVersion3) {
  db_->roster_put("example.org", "juliet", item("romeo@example.net"));
  db_.reset();
  // The schema as a server before roster versioning left it.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(raw,
                   "DROP TABLE roster_versions; DROP TABLE blocklist; DROP TABLE spam_reports; "
                   "DROP TABLE archive; DROP TABLE archive_jids; DROP TABLE archive_prefs; "
                   "DROP TABLE push_registrations; DROP TABLE pep_items; DROP TABLE pep_nodes; "
                   "DROP TABLE private_xml; "
                   "PRAGMA user_version = 3",
                   nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close_v2(raw);
  reopen();
  EXPECT_EQ(pragma("user_version"), "12");
  EXPECT_EQ(db_->roster_get("example.org", "juliet").size(), 1u);
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 0u);
  db_->roster_put("example.org", "juliet", item("nurse@example.net"));
  EXPECT_EQ(db_->roster_version("example.org", "juliet"), 1u);
}

TEST_F(SqliteStorageTest, AllSubscriptionStates_RoundTrip) {
  for (Subscription s :
       {Subscription::kNone, Subscription::kTo, Subscription::kFrom, Subscription::kBoth}) {
    RosterItem it = item("romeo@example.net");
    it.subscription = s;
    db_->roster_put("example.org", "juliet", it);
    EXPECT_EQ(db_->roster_item("example.org", "juliet", it.jid)->subscription, s);
  }
}

// --- offline messages ---

TEST_F(SqliteStorageTest, OfflineTake_OldestFirstAndDeletes) {
  ASSERT_TRUE(db_->offline_store("example.org", "juliet", "<message id='1'/>", 10, UINT64_MAX));
  ASSERT_TRUE(db_->offline_store("example.org", "romeo", "<message id='r'/>", 10, UINT64_MAX));
  ASSERT_TRUE(db_->offline_store("example.org", "juliet", "<message id='2'>\xE2\x9C\x93</message>",
                                 10, UINT64_MAX));
  ASSERT_TRUE(db_->offline_store("example.org", "juliet", "<message id='3'/>", 10, UINT64_MAX));
  EXPECT_EQ(db_->offline_count("example.org", "juliet"), 3u);

  const auto taken = db_->offline_take("example.org", "juliet");
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_EQ(taken[0].stanza, "<message id='1'/>");
  EXPECT_EQ(taken[1].stanza, "<message id='2'>\xE2\x9C\x93</message>");
  EXPECT_EQ(taken[2].stanza, "<message id='3'/>");
  EXPECT_LT(taken[0].id, taken[1].id);
  EXPECT_LT(taken[1].id, taken[2].id);

  EXPECT_EQ(db_->offline_count("example.org", "juliet"), 0u);
  EXPECT_TRUE(db_->offline_take("example.org", "juliet").empty());
  EXPECT_EQ(db_->offline_count("example.org", "romeo"), 1u);
}

TEST_F(SqliteStorageTest, OfflineStore_RefusesAtLimit) {
  EXPECT_TRUE(db_->offline_store("example.org", "juliet", "<message id='1'/>", 2, UINT64_MAX));
  EXPECT_TRUE(db_->offline_store("example.org", "juliet", "<message id='2'/>", 2, UINT64_MAX));
  EXPECT_FALSE(db_->offline_store("example.org", "juliet", "<message id='3'/>", 2, UINT64_MAX));
  EXPECT_EQ(db_->offline_count("example.org", "juliet"), 2u);
  EXPECT_TRUE(db_->offline_store("example.org", "romeo", "<message/>", 2, UINT64_MAX));  // per user
  EXPECT_FALSE(db_->offline_store("example.org", "nurse", "<message/>", 0, UINT64_MAX));

  db_->offline_take("example.org", "juliet");
  EXPECT_TRUE(db_->offline_store("example.org", "juliet", "<message id='4'/>", 2, UINT64_MAX));
}

TEST_F(SqliteStorageTest, OfflineStore_RefusesBeyondTheBytes) {
  const std::string ten(10, 'x');  // each stanza below is 10 bytes ("\u2713" is 3 bytes)
  EXPECT_TRUE(db_->offline_store("example.org", "juliet", ten, 100, 25));
  EXPECT_TRUE(db_->offline_store("example.org", "juliet", ten, 100, 25));
  EXPECT_FALSE(db_->offline_store("example.org", "juliet", ten, 100, 25));              // 30 > 25
  EXPECT_TRUE(db_->offline_store("example.org", "juliet", "\xE2\x9C\x93xx", 100, 25));  // 25
  EXPECT_FALSE(db_->offline_store("example.org", "juliet", "y", 100, 25));
  EXPECT_FALSE(db_->offline_store("example.org", "romeo", std::string(26, 'z'), 100, 25));
  EXPECT_EQ(db_->offline_count("example.org", "juliet"), 3u);
  db_->offline_take("example.org", "juliet");
  EXPECT_TRUE(db_->offline_store("example.org", "juliet", ten, 100, 25));
}

TEST_F(SqliteStorageTest, OfflineIds_NotReusedAfterTake) {
  ASSERT_TRUE(db_->offline_store("example.org", "juliet", "<a/>", 10, UINT64_MAX));
  const auto first = db_->offline_take("example.org", "juliet");
  ASSERT_TRUE(db_->offline_store("example.org", "juliet", "<b/>", 10, UINT64_MAX));
  const auto second = db_->offline_take("example.org", "juliet");
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(second[0].id, first[0].id);
}

// --- files, schema, failures ---

TEST_F(SqliteStorageTest, Reopen_DataSurvives) {
  const Account a = account("example.org", "juliet");
  ASSERT_TRUE(db_->create_account(a));
  const RosterItem it = item("romeo@example.net", {"Friends", ""});
  db_->roster_put("example.org", "juliet", it);
  ASSERT_TRUE(db_->offline_store("example.org", "juliet", "<message/>", 10, UINT64_MAX));

  reopen();
  const auto got = db_->get_account("example.org", "juliet");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->sha256, a.sha256);
  EXPECT_EQ(db_->roster_get("example.org", "juliet"), std::vector<RosterItem>{it});
  EXPECT_EQ(db_->offline_count("example.org", "juliet"), 1u);
  EXPECT_FALSE(db_->create_account(a));
}

TEST_F(SqliteStorageTest, Schema_VersionAndWal) {
  EXPECT_EQ(pragma("user_version"), "12");
  EXPECT_EQ(pragma("journal_mode"), "wal");
  EXPECT_EQ(pragma("page_size"), "16384");
  reopen();  // migrations are not applied twice
  EXPECT_EQ(pragma("user_version"), "12");
}

TEST_F(SqliteStorageTest, Did_SetReadClearAndUnknownAccount) {
  Account a;
  a.domain = "a.test";
  a.username = "bob";
  ASSERT_TRUE(db_->create_account(a));
  EXPECT_EQ(db_->get_account("a.test", "bob")->did, "");
  EXPECT_TRUE(db_->set_did("a.test", "bob", "did:plc:ewvi7nxzyoun6zhxrhs64oiz"));
  reopen();
  EXPECT_EQ(db_->get_account("a.test", "bob")->did, "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
  EXPECT_TRUE(db_->set_did("a.test", "bob", ""));
  EXPECT_EQ(db_->get_account("a.test", "bob")->did, "");
  EXPECT_FALSE(db_->set_did("a.test", "nobody", "did:web:x.example"));
  a.username = "carol";
  a.did = "did:web:carol.example";
  ASSERT_TRUE(db_->create_account(a));
  EXPECT_EQ(db_->get_account("a.test", "carol")->did, "did:web:carol.example");
}

TEST_F(SqliteStorageTest, Rooms_PutListDeleteAndSurviveReopen) {
  db_->room_put("conference.a.test", "lobby", "<room/>");
  db_->room_put("conference.a.test", "dev", "<room name='x'/>");
  db_->room_put("conference.b.test", "lobby", "<room name='b'/>");
  db_->room_put("conference.a.test", "lobby", "<room name='new'/>");  // replaces
  reopen();
  auto rooms = db_->room_list("conference.a.test");
  ASSERT_EQ(rooms.size(), 2u);
  EXPECT_EQ(rooms[0], (std::pair<std::string, std::string>{"dev", "<room name='x'/>"}));
  EXPECT_EQ(rooms[1], (std::pair<std::string, std::string>{"lobby", "<room name='new'/>"}));
  EXPECT_TRUE(db_->room_delete("conference.a.test", "lobby"));
  EXPECT_FALSE(db_->room_delete("conference.a.test", "lobby"));
  EXPECT_EQ(db_->room_list("conference.a.test").size(), 1u);
  EXPECT_EQ(db_->room_list("conference.b.test").size(), 1u);
}

TEST_F(SqliteStorageTest, NewerSchema_Throws) {
  db_.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  try {
    open_sqlite(path_);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("sqlite: " + path_ + ": ", 0), 0u) << e.what();
  }
}

TEST_F(SqliteStorageTest, NestedMissingDirectories_Created) {
  const std::string nested = (dir_ / "a" / "b" / "c" / "waddle.db").string();
  auto other = open_sqlite(nested);
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->create_account(account("example.org", "juliet")));
  EXPECT_TRUE(fs::exists(nested));
}

TEST_F(SqliteStorageTest, ParentIsAFile_Throws) {
  const fs::path file = dir_ / "plain-file";
  std::ofstream(file) << "not a directory";
  const std::string bad = (file / "sub" / "waddle.db").string();
  try {
    open_sqlite(bad);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("sqlite: " + bad + ": ", 0), 0u) << e.what();
  }
}

TEST_F(SqliteStorageTest, PathIsADirectory_Throws) {
  const fs::path sub = dir_ / "dir.db";
  fs::create_directory(sub);
  EXPECT_THROW(open_sqlite(sub.string()), std::runtime_error);
}

TEST_F(SqliteStorageTest, NotADatabase_Throws) {
  const fs::path junk = dir_ / "junk.db";
  std::ofstream(junk) << std::string(4096, 'x');
  EXPECT_THROW(open_sqlite(junk.string()), std::runtime_error);
}

}  // namespace
}  // namespace waddle::storage

namespace waddle::storage {
namespace {

// The archive rewritten as versions 6 to 8 kept it (JIDs as text, the full JID whole), with
// its row ids as `id_column` declares them, then `rest` (more of the older schema).
std::string archive_as_text(const std::string& id_column, const std::string& rest) {
  return "CREATE TABLE old (id " + id_column + R"sql(, owner TEXT NOT NULL, sid TEXT NOT NULL,
  time_us INTEGER NOT NULL, with_bare TEXT NOT NULL, with_full TEXT NOT NULL, stanza TEXT NOT NULL);
INSERT INTO old SELECT a.id, o.jid, a.sid, a.time_us, w.jid,
  CASE WHEN a.resource = '' THEN '' ELSE w.jid || '/' || a.resource END, a.stanza
  FROM archive a JOIN archive_jids o ON o.id = a.owner JOIN archive_jids w ON w.id = a.with_bare;
DROP TABLE archive;
DROP TABLE archive_jids;
ALTER TABLE old RENAME TO archive;
CREATE INDEX archive_owner ON archive (owner, id);
CREATE INDEX archive_with ON archive (owner, with_bare, id);
CREATE UNIQUE INDEX archive_sid ON archive (sid);
)sql" + rest;
}

// Version 6 created the archive with AUTOINCREMENT; version 7 rebuilds it with plain row ids
// (and later steps run after it).
// Every message keeps its stanza id and its place, and new ones come after them.
TEST_F(SqliteStorageTest, Archive_MigratedFromVersion6KeepsIdsAndOrder) {
  Account a;
  a.domain = "example.org";
  a.username = "juliet";
  ASSERT_TRUE(db_->create_account(a));
  const std::string owner = "juliet@example.org";
  auto entry = [&](const std::string& id) {
    return ArchiveEntry{
        owner, id, 1, "romeo@example.net", "", "<message><body>" + id + "</body></message>"};
  };
  // Ids in no particular order (version 6 made random ones).
  ASSERT_EQ(db_->archive_append({entry("f1"), entry("0a"), entry("c7")}, "always"), 3u);
  db_.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         archive_as_text("INTEGER PRIMARY KEY AUTOINCREMENT",
                                         "DROP TABLE push_registrations; DROP TABLE pep_items; "
                                         "DROP TABLE pep_nodes; DROP TABLE private_xml; "
                                         "PRAGMA user_version = 6;")
                             .c_str(),
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close_v2(raw);
  reopen();
  EXPECT_EQ(pragma("user_version"), "12");
  ASSERT_EQ(db_->archive_append({entry("00")}, "always"), 1u);
  ArchiveFilter all;
  all.max = 10;
  std::vector<std::string> ids;
  for (const auto& e : db_->archive_query(owner, all).items) ids.push_back(e.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"f1", "0a", "c7", "00"}));
  ArchiveFilter after;
  after.max = 10;
  after.after_id = "0a";
  ids.clear();
  for (const auto& e : db_->archive_query(owner, after).items) ids.push_back(e.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"c7", "00"}));
}

// Version 9 numbers the archives' JIDs: rows written as version 8 kept them as text. Every
// entry keeps its id, its place, its correspondent's full JID (a resource or none), and the
// filters find them as before; new entries come after.
TEST_F(SqliteStorageTest, Archive_MigratedFromVersion8NumbersJidsAndKeepsResources) {
  Account a;
  a.domain = "example.org";
  a.username = "juliet";
  ASSERT_TRUE(db_->create_account(a));
  const std::string owner = "juliet@example.org", room = "hall@rooms.example.org";
  auto entry = [&](const std::string& who, const std::string& id, const std::string& full) {
    return ArchiveEntry{
        who, id, 1, "romeo@example.net", full, "<message><body>" + id + "</body></message>"};
  };
  ArchiveEntry in_room{room, "r1", 1, room, room + "/nurse", "<message/>", true};
  ASSERT_EQ(
      db_->archive_append({entry(owner, "s1", "romeo@example.net/phone"), entry(owner, "s2", ""),
                           in_room, entry(owner, "s3", "romeo@example.net/desk")},
                          "always"),
      4u);
  db_.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         archive_as_text(
                             "INTEGER PRIMARY KEY",
                             "DROP TABLE pep_items; DROP TABLE pep_nodes; DROP TABLE private_xml; "
                             "PRAGMA user_version = 8;")
                             .c_str(),
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close_v2(raw);
  reopen();
  EXPECT_EQ(pragma("user_version"), "12");
  ASSERT_EQ(db_->archive_append({entry(owner, "s4", "romeo@example.net/phone")}, "always"), 1u);
  ArchiveFilter all;
  all.max = 10;
  const auto page = db_->archive_query(owner, all);
  std::vector<std::string> ids, fulls;
  for (const auto& e : page.items) {
    ids.push_back(e.id);
    fulls.push_back(e.with_full);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"s1", "s2", "s3", "s4"}));
  EXPECT_EQ(fulls, (std::vector<std::string>{"romeo@example.net/phone", "",
                                             "romeo@example.net/desk", "romeo@example.net/phone"}));
  ArchiveFilter phone;
  phone.max = 10;
  phone.with = "romeo@example.net/phone";
  ids.clear();
  for (const auto& e : db_->archive_query(owner, phone).items) ids.push_back(e.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"s1", "s4"}));
  const auto hall = db_->archive_query(room, all);
  ASSERT_EQ(hall.items.size(), 1u);
  EXPECT_EQ(hall.items[0].with_full, room + "/nurse");
}

}  // namespace
}  // namespace waddle::storage
