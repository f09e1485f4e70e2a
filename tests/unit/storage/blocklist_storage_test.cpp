// SqliteStorage blocklists and abuse reports (XEP-0191, XEP-0377): per account, idempotent
// adds, removal of some or all, kept across reopening and upgrades from schema version 3,
// removed with the account.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "storage/storage.h"

namespace waddle::storage {
namespace {

namespace fs = std::filesystem;
using Jids = std::vector<std::string>;

class BlocklistStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "waddle-blocklist-XXXXXX").string();
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
  void exec(const char* sql) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(raw, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
    sqlite3_close(raw);
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Storage> db_;
};

TEST_F(BlocklistStorageTest, Empty_ForUnknownAccount) {
  EXPECT_TRUE(db_->blocklist_get("a.test", "alice").empty());
}

TEST_F(BlocklistStorageTest, Add_SortedDeduplicatedPerAccount) {
  db_->blocklist_add("a.test", "alice", {"spam.example", "bob@b.test", "bob@b.test/phone"});
  db_->blocklist_add("a.test", "alice", {"bob@b.test", "carol@c.test"});  // one already there
  db_->blocklist_add("a.test", "dave", {"x.example"});
  db_->blocklist_add("other.test", "alice", {"y.example"});
  EXPECT_EQ(db_->blocklist_get("a.test", "alice"),
            (Jids{"bob@b.test", "bob@b.test/phone", "carol@c.test", "spam.example"}));
  EXPECT_EQ(db_->blocklist_get("a.test", "dave"), Jids{"x.example"});
  EXPECT_EQ(db_->blocklist_get("other.test", "alice"), Jids{"y.example"});
}

TEST_F(BlocklistStorageTest, Remove_SomeThenAll_OtherAccountsKept) {
  db_->blocklist_add("a.test", "alice", {"bob@b.test", "carol@c.test", "spam.example"});
  db_->blocklist_add("a.test", "dave", {"bob@b.test"});
  db_->blocklist_remove("a.test", "alice", {"carol@c.test", "never@blocked.test"});
  EXPECT_EQ(db_->blocklist_get("a.test", "alice"), (Jids{"bob@b.test", "spam.example"}));
  db_->blocklist_remove("a.test", "alice", {});
  EXPECT_TRUE(db_->blocklist_get("a.test", "alice").empty());
  EXPECT_EQ(db_->blocklist_get("a.test", "dave"), Jids{"bob@b.test"});
}

TEST_F(BlocklistStorageTest, Reopen_ListAndReportsSurvive) {
  db_->blocklist_add("a.test", "alice", {"bob@b.test"});
  db_->spam_report_add({"a.test", "alice", "bob@b.test", "spam", "buy now", 0});
  reopen();
  EXPECT_EQ(db_->blocklist_get("a.test", "alice"), Jids{"bob@b.test"});
  EXPECT_EQ(db_->spam_reports("a.test").size(), 1u);
}

TEST_F(BlocklistStorageTest, Reports_OldestFirstPerDomainWithTime) {
  db_->spam_report_add({"a.test", "alice", "bob@b.test", "spam", "buy now", 0});
  db_->spam_report_add({"a.test", "dave", "eve@e.test", "abuse", "", 0});
  db_->spam_report_add({"z.test", "zed", "bob@b.test", "other", "ünïcode", 0});
  auto a = db_->spam_reports("a.test");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].username, "alice");
  EXPECT_EQ(a[0].jid, "bob@b.test");
  EXPECT_EQ(a[0].reason, "spam");
  EXPECT_EQ(a[0].text, "buy now");
  EXPECT_GT(a[0].reported_at, 1'600'000'000);
  EXPECT_EQ(a[1].username, "dave");
  EXPECT_EQ(a[1].reason, "abuse");
  auto z = db_->spam_reports("z.test");
  ASSERT_EQ(z.size(), 1u);
  EXPECT_EQ(z[0].text, "ünïcode");
  EXPECT_TRUE(db_->spam_reports("nobody.test").empty());
}

TEST_F(BlocklistStorageTest, DeleteAccount_RemovesBlocklistKeepsReports) {
  Account a;
  a.domain = "a.test";
  a.username = "alice";
  ASSERT_TRUE(db_->create_account(a));
  db_->blocklist_add("a.test", "alice", {"bob@b.test"});
  db_->spam_report_add({"a.test", "alice", "bob@b.test", "spam", "", 0});
  ASSERT_TRUE(db_->delete_account("a.test", "alice"));
  EXPECT_TRUE(db_->blocklist_get("a.test", "alice").empty());
  EXPECT_EQ(db_->spam_reports("a.test").size(), 1u);  // the operator's record
}

TEST_F(BlocklistStorageTest, UpgradeFromVersion3_KeepsAccountsAddsTables) {
  Account a;
  a.domain = "a.test";
  a.username = "alice";
  ASSERT_TRUE(db_->create_account(a));
  db_.reset();
  // Back to version 3: the tables of later steps (blocklists, roster versions, archives) go.
  exec(
      "DROP TABLE blocklist; DROP TABLE spam_reports; DROP TABLE roster_versions; "
      "DROP TABLE archive; DROP TABLE archive_jids; DROP TABLE archive_prefs; "
      "DROP TABLE push_registrations; DROP TABLE pep_items; DROP TABLE pep_nodes; DROP TABLE "
      "private_xml; "
      "PRAGMA user_version = 3;");
  reopen();
  EXPECT_TRUE(db_->get_account("a.test", "alice"));
  db_->blocklist_add("a.test", "alice", {"bob@b.test"});
  EXPECT_EQ(db_->blocklist_get("a.test", "alice"), Jids{"bob@b.test"});
}

}  // namespace
}  // namespace waddle::storage
