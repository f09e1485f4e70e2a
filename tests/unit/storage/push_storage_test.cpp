// SqliteStorage push registrations (XEP-0357): per account, oldest first, the same jid and
// node replaced, bounded in count (the oldest go), removal by jid or jid and node, kept across
// reopening, removed with the account.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "storage/storage.h"

namespace waddle::storage {
namespace {

namespace fs = std::filesystem;
using Regs = std::vector<PushRegistration>;

class PushStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "waddle-push-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "waddle.db").string();
    db_ = open_sqlite(path_);
    Account a;
    a.domain = "a.test";
    a.username = "alice";
    ASSERT_TRUE(db_->create_account(a));
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  static PushRegistration reg(std::string jid, std::string node, std::string options = {},
                              bool body = false) {
    return {std::move(jid), std::move(node), std::move(options), body};
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Storage> db_;
};

TEST_F(PushStorageTest, Empty_ForUnknownAccount) {
  EXPECT_TRUE(db_->push_get("a.test", "nobody").empty());
}

TEST_F(PushStorageTest, Put_RoundTripsOldestFirstPerAccount) {
  const auto form = std::string("<x xmlns='jabber:x:data' type='submit'/>");
  db_->push_put("a.test", "alice", reg("push.example", "n1", form, true), 5);
  auto after = db_->push_put("a.test", "alice", reg("push.example", "n2"), 5);
  db_->push_put("a.test", "dave", reg("other.example", "x"), 5);
  const Regs want{reg("push.example", "n1", form, true), reg("push.example", "n2")};
  EXPECT_EQ(after, want);
  EXPECT_EQ(db_->push_get("a.test", "alice"), want);
  EXPECT_EQ(db_->push_get("a.test", "dave"), Regs{reg("other.example", "x")});
}

TEST_F(PushStorageTest, Put_SameJidAndNodeReplacedAndBecomesNewest) {
  db_->push_put("a.test", "alice", reg("push.example", "n1"), 5);
  db_->push_put("a.test", "alice", reg("push.example", "n2"), 5);
  auto after = db_->push_put("a.test", "alice", reg("push.example", "n1", "", true), 5);
  EXPECT_EQ(after, (Regs{reg("push.example", "n2"), reg("push.example", "n1", "", true)}));
}

TEST_F(PushStorageTest, Put_BeyondMaxTheOldestGo) {
  for (int i = 0; i < 4; ++i)
    db_->push_put("a.test", "alice", reg("push.example", "n" + std::to_string(i)), 3);
  EXPECT_EQ(
      db_->push_get("a.test", "alice"),
      (Regs{reg("push.example", "n1"), reg("push.example", "n2"), reg("push.example", "n3")}));
  auto after = db_->push_put("a.test", "alice", reg("push.example", "n4"), 1);
  EXPECT_EQ(after, Regs{reg("push.example", "n4")});
}

TEST_F(PushStorageTest, Remove_ByJidAndNodeOrEveryNodeOfAJid) {
  db_->push_put("a.test", "alice", reg("push.example", "n1"), 5);
  db_->push_put("a.test", "alice", reg("push.example", "n2"), 5);
  db_->push_put("a.test", "alice", reg("other.example", "n1"), 5);
  auto after = db_->push_remove("a.test", "alice", "push.example", "n2");
  EXPECT_EQ(after, (Regs{reg("push.example", "n1"), reg("other.example", "n1")}));
  db_->push_put("a.test", "alice", reg("push.example", "n3"), 5);
  after = db_->push_remove("a.test", "alice", "push.example", "");
  EXPECT_EQ(after, Regs{reg("other.example", "n1")});
  EXPECT_EQ(db_->push_remove("a.test", "alice", "never.example", ""),
            Regs{reg("other.example", "n1")});
}

TEST_F(PushStorageTest, Reopen_Survives_DeleteAccount_Removes) {
  db_->push_put("a.test", "alice", reg("push.example", "n1"), 5);
  db_.reset();
  db_ = open_sqlite(path_);
  EXPECT_EQ(db_->push_get("a.test", "alice"), Regs{reg("push.example", "n1")});
  ASSERT_TRUE(db_->delete_account("a.test", "alice"));
  EXPECT_TRUE(db_->push_get("a.test", "alice").empty());
}

}  // namespace
}  // namespace waddle::storage
