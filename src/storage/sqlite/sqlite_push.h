// Push notification registrations (XEP-0357) in SQLite: one row per account, app server JID
// and node, ordered by row id (the oldest first). Used by SqliteStorage, on its connection and
// thread.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "storage/sqlite/sqlite_db.h"
#include "storage/storage.h"

namespace waddle::storage::sqlite {

// The schema step that creates the table (a migration of sqlite_storage.cpp).
inline constexpr const char* kPushSchema = R"sql(
CREATE TABLE push_registrations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  jid TEXT NOT NULL,
  node TEXT NOT NULL,
  options TEXT NOT NULL,
  include_body INTEGER NOT NULL,
  UNIQUE (domain, username, jid, node)
);
CREATE INDEX push_registrations_owner ON push_registrations (domain, username, id);
)sql";

class Push {
 public:
  explicit Push(const Database& db);

  std::vector<PushRegistration> get(const std::string& domain, const std::string& username);
  std::vector<PushRegistration> put(const std::string& domain, const std::string& username,
                                    const PushRegistration& reg, std::size_t max);
  std::vector<PushRegistration> remove(const std::string& domain, const std::string& username,
                                       const std::string& jid, const std::string& node);
  // Within the caller's transaction (an account removed).
  void delete_owner(const std::string& domain, const std::string& username);

 private:
  const Database& db_;
  Statement select_;
  Statement delete_one_;
  Statement insert_;
  Statement trim_;
  Statement delete_jid_;
  Statement delete_owner_;
};

}  // namespace waddle::storage::sqlite
