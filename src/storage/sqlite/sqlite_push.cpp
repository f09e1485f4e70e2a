// XEP-0357 registrations in SQLite (see sqlite_push.h).
#include "storage/sqlite/sqlite_push.h"

namespace waddle::storage::sqlite {

Push::Push(const Database& db)
    : db_(db),
      select_(db,
              "SELECT jid, node, options, include_body FROM push_registrations "
              "WHERE domain = ? AND username = ? ORDER BY id"),
      delete_one_(db,
                  "DELETE FROM push_registrations "
                  "WHERE domain = ? AND username = ? AND jid = ? AND node = ?"),
      insert_(db,
              "INSERT INTO push_registrations (domain, username, jid, node, options, "
              "include_body) VALUES (?,?,?,?,?,?)"),
      // Every registration of the account but the newest `max` (LIMIT -1: no limit).
      trim_(db,
            "DELETE FROM push_registrations WHERE id IN (SELECT id FROM push_registrations "
            "WHERE domain = ?1 AND username = ?2 ORDER BY id DESC LIMIT -1 OFFSET ?3)"),
      delete_jid_(db,
                  "DELETE FROM push_registrations WHERE domain = ? AND username = ? AND jid = ?"),
      delete_owner_(db, "DELETE FROM push_registrations WHERE domain = ? AND username = ?") {}

std::vector<PushRegistration> Push::get(const std::string& domain, const std::string& username) {
  std::vector<PushRegistration> out;
  auto run = select_.run();
  run.text(1, domain).text(2, username);
  while (run.step())
    out.push_back(
        {run.column_text(0), run.column_text(1), run.column_text(2), run.column_int(3) != 0});
  return out;
}

std::vector<PushRegistration> Push::put(const std::string& domain, const std::string& username,
                                        const PushRegistration& reg, std::size_t max) {
  {
    Transaction tx(db_);
    delete_one_.run().text(1, domain).text(2, username).text(3, reg.jid).text(4, reg.node).done();
    insert_.run()
        .text(1, domain)
        .text(2, username)
        .text(3, reg.jid)
        .text(4, reg.node)
        .text(5, reg.options)
        .integer(6, reg.include_body ? 1 : 0)
        .done();
    trim_.run().text(1, domain).text(2, username).integer(3, static_cast<std::int64_t>(max)).done();
    tx.commit();
  }
  return get(domain, username);
}

std::vector<PushRegistration> Push::remove(const std::string& domain, const std::string& username,
                                           const std::string& jid, const std::string& node) {
  if (node.empty())
    delete_jid_.run().text(1, domain).text(2, username).text(3, jid).done();
  else
    delete_one_.run().text(1, domain).text(2, username).text(3, jid).text(4, node).done();
  return get(domain, username);
}

void Push::delete_owner(const std::string& domain, const std::string& username) {
  delete_owner_.run().text(1, domain).text(2, username).done();
}

}  // namespace waddle::storage::sqlite
