// SqliteStorage PEP nodes and items (XEP-0163): nodes per account, created once and bounded in
// number, configured and deleted; items newest first, replaced by id (the new one newest),
// bounded per node (the oldest go), asked by id, retracted and purged; kept across reopening,
// removed with the account.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "storage/storage.h"

namespace waddle::storage {
namespace {

namespace fs = std::filesystem;

class PepStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "waddle-pep-XXXXXX").string();
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

  static PepStoredItem item(std::string id, std::string payload = "<p/>") {
    return {std::move(id), "alice@a.test/phone", 1700000000000000, std::move(payload)};
  }
  std::vector<std::string> ids(const std::string& node, std::vector<std::string> wanted = {},
                               std::size_t max = 100) {
    std::vector<std::string> out;
    for (const auto& i : db_->pep_items("a.test", "alice", node, wanted, max)) out.push_back(i.id);
    return out;
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Storage> db_;
};

TEST_F(PepStorageTest, CreateOnce_ThenExists) {
  EXPECT_EQ(db_->pep_create("a.test", "alice", {"n1", "access_model=open"}, 10),
            PepCreated::kCreated);
  EXPECT_EQ(db_->pep_create("a.test", "alice", {"n1", "other"}, 10), PepCreated::kExists);
  auto node = db_->pep_node("a.test", "alice", "n1");
  ASSERT_TRUE(node.has_value());
  EXPECT_EQ(node->config, "access_model=open");
  EXPECT_FALSE(db_->pep_node("a.test", "alice", "n2").has_value());
  EXPECT_FALSE(db_->pep_node("a.test", "bob", "n1").has_value());
}

TEST_F(PepStorageTest, Create_RefusedBeyondMaxNodes) {
  EXPECT_EQ(db_->pep_create("a.test", "alice", {"n1", ""}, 2), PepCreated::kCreated);
  EXPECT_EQ(db_->pep_create("a.test", "alice", {"n2", ""}, 2), PepCreated::kCreated);
  EXPECT_EQ(db_->pep_create("a.test", "alice", {"n3", ""}, 2), PepCreated::kTooMany);
  // Another account has its own count.
  EXPECT_EQ(db_->pep_create("a.test", "bob", {"n3", ""}, 2), PepCreated::kCreated);
  const auto nodes = db_->pep_nodes("a.test", "alice");
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].name, "n1");
  EXPECT_EQ(nodes[1].name, "n2");
}

TEST_F(PepStorageTest, Publish_NewestFirst_ReplacesById_TrimsOldest) {
  ASSERT_EQ(db_->pep_create("a.test", "alice", {"n", ""}, 10), PepCreated::kCreated);
  db_->pep_publish("a.test", "alice", "n", item("a"), 3);
  db_->pep_publish("a.test", "alice", "n", item("b"), 3);
  db_->pep_publish("a.test", "alice", "n", item("c"), 3);
  EXPECT_EQ(ids("n"), (std::vector<std::string>{"c", "b", "a"}));
  db_->pep_publish("a.test", "alice", "n", item("a", "<new/>"), 3);
  EXPECT_EQ(ids("n"), (std::vector<std::string>{"a", "c", "b"}));
  EXPECT_EQ(db_->pep_items("a.test", "alice", "n", {"a"}, 10).at(0).payload, "<new/>");
  db_->pep_publish("a.test", "alice", "n", item("d"), 3);
  EXPECT_EQ(ids("n"), (std::vector<std::string>{"d", "a", "c"}));
  EXPECT_EQ(ids("n", {}, 1), (std::vector<std::string>{"d"}));
  // By id: the ones found, newest first; unknown ids are left out.
  EXPECT_EQ(ids("n", {"c", "zz", "d"}), (std::vector<std::string>{"d", "c"}));
  const auto stored = db_->pep_items("a.test", "alice", "n", {"d"}, 1).at(0);
  EXPECT_EQ(stored.publisher, "alice@a.test/phone");
  EXPECT_EQ(stored.published_us, 1700000000000000);
}

TEST_F(PepStorageTest, Configure_ReplacesConfig_AndTrims) {
  ASSERT_EQ(db_->pep_create("a.test", "alice", {"n", "old"}, 10), PepCreated::kCreated);
  for (const char* id : {"a", "b", "c"}) db_->pep_publish("a.test", "alice", "n", item(id), 10);
  EXPECT_TRUE(db_->pep_configure("a.test", "alice", {"n", "new"}, 1));
  EXPECT_EQ(db_->pep_node("a.test", "alice", "n")->config, "new");
  EXPECT_EQ(ids("n"), (std::vector<std::string>{"c"}));
  EXPECT_FALSE(db_->pep_configure("a.test", "alice", {"missing", "x"}, 1));
}

TEST_F(PepStorageTest, RetractPurgeDelete) {
  ASSERT_EQ(db_->pep_create("a.test", "alice", {"n", ""}, 10), PepCreated::kCreated);
  for (const char* id : {"a", "b", "c"}) db_->pep_publish("a.test", "alice", "n", item(id), 10);
  EXPECT_TRUE(db_->pep_retract("a.test", "alice", "n", "b"));
  EXPECT_FALSE(db_->pep_retract("a.test", "alice", "n", "b"));
  EXPECT_EQ(ids("n"), (std::vector<std::string>{"c", "a"}));
  EXPECT_TRUE(db_->pep_purge("a.test", "alice", "n"));
  EXPECT_TRUE(ids("n").empty());
  EXPECT_TRUE(db_->pep_node("a.test", "alice", "n").has_value());
  EXPECT_FALSE(db_->pep_purge("a.test", "alice", "missing"));
  db_->pep_publish("a.test", "alice", "n", item("x"), 10);
  EXPECT_TRUE(db_->pep_delete_node("a.test", "alice", "n"));
  EXPECT_FALSE(db_->pep_delete_node("a.test", "alice", "n"));
  EXPECT_FALSE(db_->pep_node("a.test", "alice", "n").has_value());
  // A node created again under the name starts empty.
  ASSERT_EQ(db_->pep_create("a.test", "alice", {"n", ""}, 10), PepCreated::kCreated);
  EXPECT_TRUE(ids("n").empty());
}

TEST_F(PepStorageTest, KeptAcrossReopen_RemovedWithAccount) {
  ASSERT_EQ(db_->pep_create("a.test", "alice", {"n", "c"}, 10), PepCreated::kCreated);
  db_->pep_publish("a.test", "alice", "n", item("a"), 10);
  db_.reset();
  db_ = open_sqlite(path_);
  EXPECT_EQ(ids("n"), (std::vector<std::string>{"a"}));
  ASSERT_TRUE(db_->delete_account("a.test", "alice"));
  EXPECT_TRUE(db_->pep_nodes("a.test", "alice").empty());
  EXPECT_TRUE(ids("n").empty());
}

TEST_F(PepStorageTest, PrivateXml_PutGetReplaceRemove_BoundedInKeys) {
  EXPECT_FALSE(db_->private_get("a.test", "alice", "{a}x").has_value());
  EXPECT_TRUE(db_->private_put("a.test", "alice", "{a}x", "<x xmlns='a'/>", 2));
  EXPECT_TRUE(db_->private_put("a.test", "alice", "{a}x", "<x xmlns='a'>2</x>", 2));
  EXPECT_EQ(db_->private_get("a.test", "alice", "{a}x"), "<x xmlns='a'>2</x>");
  EXPECT_TRUE(db_->private_put("a.test", "alice", "{b}y", "<y xmlns='b'/>", 2));
  // A third key is refused; replacing one of the two is not.
  EXPECT_FALSE(db_->private_put("a.test", "alice", "{c}z", "<z xmlns='c'/>", 2));
  EXPECT_TRUE(db_->private_put("a.test", "alice", "{b}y", "<y xmlns='b'>2</y>", 2));
  EXPECT_FALSE(db_->private_get("a.test", "bob", "{a}x").has_value());
  // Empty removes, and makes room.
  EXPECT_TRUE(db_->private_put("a.test", "alice", "{a}x", "", 2));
  EXPECT_FALSE(db_->private_get("a.test", "alice", "{a}x").has_value());
  EXPECT_TRUE(db_->private_put("a.test", "alice", "{c}z", "<z xmlns='c'/>", 2));
  ASSERT_TRUE(db_->delete_account("a.test", "alice"));
  EXPECT_FALSE(db_->private_get("a.test", "alice", "{c}z").has_value());
}

}  // namespace
}  // namespace waddle::storage
