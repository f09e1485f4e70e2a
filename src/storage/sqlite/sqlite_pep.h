// PEP nodes and items (XEP-0163) in SQLite: a node per account and name with its configuration
// text, and its items ordered by a sequence number (the newest last); and the account's other
// personal data, private XML (XEP-0049) and its vCard (XEP-0054). Used by SqliteStorage, on its
// connection and thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "storage/sqlite/sqlite_db.h"
#include "storage/storage.h"

namespace waddle::storage::sqlite {

// The schema step that creates the tables (a migration of sqlite_storage.cpp).
inline constexpr const char* kPepSchema = R"sql(
CREATE TABLE pep_nodes (
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  node TEXT NOT NULL,
  config TEXT NOT NULL,
  PRIMARY KEY (domain, username, node)
) WITHOUT ROWID;
CREATE TABLE pep_items (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  node TEXT NOT NULL,
  item_id TEXT NOT NULL,
  publisher TEXT NOT NULL,
  published_us INTEGER NOT NULL,
  payload TEXT NOT NULL,
  UNIQUE (domain, username, node, item_id)
);
CREATE INDEX pep_items_node ON pep_items (domain, username, node, seq);
)sql";

// Private XML (XEP-0049) and vCards (XEP-0054), one row per account and key.
inline constexpr const char* kPrivateSchema = R"sql(
CREATE TABLE private_xml (
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (domain, username, key)
) WITHOUT ROWID;
)sql";

class Pep {
 public:
  explicit Pep(const Database& db);

  std::vector<PepNode> nodes(const std::string& domain, const std::string& username);
  std::optional<PepNode> node(const std::string& domain, const std::string& username,
                              const std::string& name);
  PepCreated create(const std::string& domain, const std::string& username, const PepNode& node,
                    std::size_t max_nodes);
  bool configure(const std::string& domain, const std::string& username, const PepNode& node,
                 std::uint32_t max_items);
  bool remove(const std::string& domain, const std::string& username, const std::string& name);
  bool purge(const std::string& domain, const std::string& username, const std::string& name);
  void publish(const std::string& domain, const std::string& username, const std::string& name,
               const PepStoredItem& item, std::uint32_t max_items);
  bool retract(const std::string& domain, const std::string& username, const std::string& name,
               const std::string& item_id);
  std::vector<PepStoredItem> items(const std::string& domain, const std::string& username,
                                   const std::string& name, const std::vector<std::string>& ids,
                                   std::size_t max);
  std::optional<std::string> private_get(const std::string& domain, const std::string& username,
                                         const std::string& key);
  bool private_put(const std::string& domain, const std::string& username, const std::string& key,
                   const std::string& value, std::size_t max_keys);
  // Within the caller's transaction (an account removed): nodes, items and private XML.
  void delete_owner(const std::string& domain, const std::string& username);

 private:
  void trim(const std::string& domain, const std::string& username, const std::string& name,
            std::uint32_t max_items);
  static PepStoredItem read_item(Statement::Run& run);

  const Database& db_;
  Statement select_nodes_;
  Statement select_node_;
  Statement count_nodes_;
  Statement insert_node_;
  Statement update_node_;
  Statement delete_node_;
  Statement delete_items_;
  Statement delete_item_;
  Statement insert_item_;
  Statement trim_;
  Statement select_newest_;
  Statement select_item_;
  Statement delete_owner_nodes_;
  Statement delete_owner_items_;
  Statement private_select_;
  Statement private_count_;
  Statement private_upsert_;
  Statement private_delete_;
  Statement delete_owner_private_;
};

}  // namespace waddle::storage::sqlite
