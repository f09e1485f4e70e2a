// XEP-0163 nodes and items in SQLite (see sqlite_pep.h).
#include "storage/sqlite/sqlite_pep.h"

#include <algorithm>
#include <utility>

namespace waddle::storage::sqlite {

namespace {
bool changed(const Database& db) {
  return sqlite3_changes(db.handle()) > 0;
}
}  // namespace

Pep::Pep(const Database& db)
    : db_(db),
      select_nodes_(db,
                    "SELECT node, config FROM pep_nodes WHERE domain = ? AND username = ? "
                    "ORDER BY node"),
      select_node_(db,
                   "SELECT config FROM pep_nodes WHERE domain = ? AND username = ? AND node = ?"),
      count_nodes_(db, "SELECT count(*) FROM pep_nodes WHERE domain = ? AND username = ?"),
      insert_node_(db,
                   "INSERT INTO pep_nodes (domain, username, node, config) VALUES (?,?,?,?) "
                   "ON CONFLICT DO NOTHING"),
      update_node_(db,
                   "UPDATE pep_nodes SET config = ?4 "
                   "WHERE domain = ?1 AND username = ?2 AND node = ?3"),
      delete_node_(db, "DELETE FROM pep_nodes WHERE domain = ? AND username = ? AND node = ?"),
      delete_items_(db, "DELETE FROM pep_items WHERE domain = ? AND username = ? AND node = ?"),
      delete_item_(db,
                   "DELETE FROM pep_items "
                   "WHERE domain = ? AND username = ? AND node = ? AND item_id = ?"),
      insert_item_(db,
                   "INSERT INTO pep_items (domain, username, node, item_id, publisher, "
                   "published_us, payload) VALUES (?,?,?,?,?,?,?)"),
      // Every item of the node but the newest `max_items` (LIMIT -1: no limit).
      trim_(db,
            "DELETE FROM pep_items WHERE seq IN (SELECT seq FROM pep_items "
            "WHERE domain = ?1 AND username = ?2 AND node = ?3 "
            "ORDER BY seq DESC LIMIT -1 OFFSET ?4)"),
      select_newest_(db,
                     "SELECT item_id, publisher, published_us, payload FROM pep_items "
                     "WHERE domain = ? AND username = ? AND node = ? ORDER BY seq DESC LIMIT ?"),
      select_item_(db,
                   "SELECT item_id, publisher, published_us, payload, seq FROM pep_items "
                   "WHERE domain = ? AND username = ? AND node = ? AND item_id = ?"),
      delete_owner_nodes_(db, "DELETE FROM pep_nodes WHERE domain = ? AND username = ?"),
      delete_owner_items_(db, "DELETE FROM pep_items WHERE domain = ? AND username = ?"),
      private_select_(
          db, "SELECT value FROM private_xml WHERE domain = ? AND username = ? AND key = ?"),
      private_count_(db, "SELECT count(*) FROM private_xml WHERE domain = ? AND username = ?"),
      private_upsert_(db,
                      "INSERT INTO private_xml (domain, username, key, value) VALUES (?,?,?,?) "
                      "ON CONFLICT DO UPDATE SET value = excluded.value"),
      private_delete_(db, "DELETE FROM private_xml WHERE domain = ? AND username = ? AND key = ?"),
      delete_owner_private_(db, "DELETE FROM private_xml WHERE domain = ? AND username = ?") {}

std::vector<PepNode> Pep::nodes(const std::string& domain, const std::string& username) {
  std::vector<PepNode> out;
  auto run = select_nodes_.run();
  run.text(1, domain).text(2, username);
  while (run.step()) out.push_back({run.column_text(0), run.column_text(1)});
  return out;
}

std::optional<PepNode> Pep::node(const std::string& domain, const std::string& username,
                                 const std::string& name) {
  auto run = select_node_.run();
  run.text(1, domain).text(2, username).text(3, name);
  if (!run.step()) return std::nullopt;
  return PepNode{name, run.column_text(0)};
}

PepCreated Pep::create(const std::string& domain, const std::string& username, const PepNode& node,
                       std::size_t max_nodes) {
  Transaction tx(db_);
  std::int64_t count = 0;
  {
    auto run = count_nodes_.run();
    run.text(1, domain).text(2, username);
    if (run.step()) count = run.column_int(0);
  }
  if (this->node(domain, username, node.name)) return PepCreated::kExists;
  if (static_cast<std::size_t>(count) >= max_nodes) return PepCreated::kTooMany;
  insert_node_.run()
      .text(1, domain)
      .text(2, username)
      .text(3, node.name)
      .text(4, node.config)
      .done();
  tx.commit();
  return PepCreated::kCreated;
}

bool Pep::configure(const std::string& domain, const std::string& username, const PepNode& node,
                    std::uint32_t max_items) {
  Transaction tx(db_);
  update_node_.run()
      .text(1, domain)
      .text(2, username)
      .text(3, node.name)
      .text(4, node.config)
      .done();
  if (!changed(db_)) return false;
  trim(domain, username, node.name, max_items);
  tx.commit();
  return true;
}

bool Pep::remove(const std::string& domain, const std::string& username, const std::string& name) {
  Transaction tx(db_);
  delete_node_.run().text(1, domain).text(2, username).text(3, name).done();
  if (!changed(db_)) return false;
  delete_items_.run().text(1, domain).text(2, username).text(3, name).done();
  tx.commit();
  return true;
}

bool Pep::purge(const std::string& domain, const std::string& username, const std::string& name) {
  if (!node(domain, username, name)) return false;
  delete_items_.run().text(1, domain).text(2, username).text(3, name).done();
  return true;
}

void Pep::publish(const std::string& domain, const std::string& username, const std::string& name,
                  const PepStoredItem& item, std::uint32_t max_items) {
  Transaction tx(db_);
  delete_item_.run().text(1, domain).text(2, username).text(3, name).text(4, item.id).done();
  insert_item_.run()
      .text(1, domain)
      .text(2, username)
      .text(3, name)
      .text(4, item.id)
      .text(5, item.publisher)
      .integer(6, item.published_us)
      .text(7, item.payload)
      .done();
  trim(domain, username, name, max_items);
  tx.commit();
}

bool Pep::retract(const std::string& domain, const std::string& username, const std::string& name,
                  const std::string& item_id) {
  delete_item_.run().text(1, domain).text(2, username).text(3, name).text(4, item_id).done();
  return changed(db_);
}

PepStoredItem Pep::read_item(Statement::Run& run) {
  return {run.column_text(0), run.column_text(1), run.column_int(2), run.column_text(3)};
}

std::vector<PepStoredItem> Pep::items(const std::string& domain, const std::string& username,
                                      const std::string& name, const std::vector<std::string>& ids,
                                      std::size_t max) {
  std::vector<PepStoredItem> out;
  if (ids.empty()) {
    auto run = select_newest_.run();
    run.text(1, domain).text(2, username).text(3, name).integer(4, static_cast<std::int64_t>(max));
    while (run.step()) out.push_back(read_item(run));
    return out;
  }
  std::vector<std::pair<std::int64_t, PepStoredItem>> found;
  for (const auto& id : ids) {
    auto run = select_item_.run();
    run.text(1, domain).text(2, username).text(3, name).text(4, id);
    if (run.step()) found.emplace_back(run.column_int(4), read_item(run));
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

void Pep::trim(const std::string& domain, const std::string& username, const std::string& name,
               std::uint32_t max_items) {
  trim_.run().text(1, domain).text(2, username).text(3, name).integer(4, max_items).done();
}

std::optional<std::string> Pep::private_get(const std::string& domain, const std::string& username,
                                            const std::string& key) {
  auto run = private_select_.run();
  run.text(1, domain).text(2, username).text(3, key);
  if (!run.step()) return std::nullopt;
  return run.column_text(0);
}

bool Pep::private_put(const std::string& domain, const std::string& username,
                      const std::string& key, const std::string& value, std::size_t max_keys) {
  if (value.empty()) {
    private_delete_.run().text(1, domain).text(2, username).text(3, key).done();
    return true;
  }
  Transaction tx(db_);
  if (!private_get(domain, username, key)) {
    auto run = private_count_.run();
    run.text(1, domain).text(2, username);
    if (run.step() && static_cast<std::size_t>(run.column_int(0)) >= max_keys) return false;
  }
  private_upsert_.run().text(1, domain).text(2, username).text(3, key).text(4, value).done();
  tx.commit();
  return true;
}

void Pep::delete_owner(const std::string& domain, const std::string& username) {
  delete_owner_nodes_.run().text(1, domain).text(2, username).done();
  delete_owner_items_.run().text(1, domain).text(2, username).done();
  delete_owner_private_.run().text(1, domain).text(2, username).done();
}

}  // namespace waddle::storage::sqlite
