#include "storage/sqlite/sqlite_archive.h"

#include <algorithm>

#include "core/ids.h"

namespace waddle::storage::sqlite {

namespace {

// The columns of an entry, with the correspondent's JID read back from its number.
constexpr const char* kColumns =
    "a.id, a.sid, a.time_us, w.jid, a.resource, a.stanza FROM archive a "
    "JOIN archive_jids w ON w.id = a.with_bare";

// Cached JID numbers at most; past it the cache starts again (a lookup is one indexed read).
constexpr std::size_t kMaxCachedJids = 65536;

// JID lists as one text column: each JID followed by a newline (JIDs have none).
std::string join(const std::vector<std::string>& jids) {
  std::string out;
  for (const auto& j : jids) out += j + '\n';
  return out;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

ArchiveEntry read_entry(const std::string& owner, Statement::Run& run) {
  // (column 0 is the row id)
  std::string with = run.column_text(3), resource = run.column_text(4);
  std::string full = resource.empty() ? std::string() : with + '/' + resource;
  return ArchiveEntry{owner,           run.column_text(1), run.column_int(2),
                      std::move(with), std::move(full),    run.column_text(5)};
}

// The resource of `full` when it is `bare` with one, else nothing.
std::string_view resource_of(std::string_view full, std::string_view bare) {
  if (full.size() <= bare.size() + 1 || full.substr(0, bare.size()) != bare ||
      full[bare.size()] != '/')
    return {};
  return full.substr(bare.size() + 1);
}

// An insert of `rows` entries. OR IGNORE (a row whose id or indexed stanza-id is taken is
// skipped) rather than ON CONFLICT DO NOTHING: under the latter a NOT NULL violation would
// abort the statement, and a statement of several rows that may abort keeps a journal of
// every page it changes (a copy of each 16 KiB page, which cost more than the rows saved).
std::string insert_sql(std::size_t rows) {
  std::string sql =
      "INSERT OR IGNORE INTO archive (id, owner, sid, time_us, with_bare, resource, stanza, "
      "sid_indexed) VALUES ";
  for (std::size_t i = 0; i < rows; ++i) sql += i == 0 ? "(?,?,?,?,?,?,?,?)" : ",(?,?,?,?,?,?,?,?)";
  return sql;
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

Archive::Archive(const Database& db)
    : db_(db),
      row_of_(db, "SELECT id FROM archive WHERE sid = ? AND sid_indexed = 1 AND owner = ?"),
      row_by_id_(db, "SELECT owner FROM archive WHERE id = ? AND sid = ?"),
      max_row_(db, "SELECT max(id) FROM archive"),
      jid_get_(db, "SELECT id FROM archive_jids WHERE jid = ?"),
      jid_put_(db, "INSERT INTO archive_jids (jid) VALUES (?)"),
      first_(db,
             (std::string("SELECT ") + kColumns + " WHERE a.owner = ? ORDER BY a.id ASC LIMIT 1")
                 .c_str()),
      last_(db,
            (std::string("SELECT ") + kColumns + " WHERE a.owner = ? ORDER BY a.id DESC LIMIT 1")
                .c_str()),
      prefs_get_(db, "SELECT default_mode, always, never FROM archive_prefs WHERE owner = ?"),
      prefs_put_(db,
                 "INSERT OR REPLACE INTO archive_prefs (owner, default_mode, always, never) "
                 "VALUES (?,?,?,?)"),
      roster_has_(db,
                  "SELECT 1 FROM roster WHERE domain = ? AND username = ? AND contact = ? "
                  "AND hidden = 0"),
      account_has_(db, "SELECT 1 FROM accounts WHERE domain = ? AND username = ?"),
      delete_owner_(db, "DELETE FROM archive WHERE owner = ?"),
      delete_prefs_(db, "DELETE FROM archive_prefs WHERE owner = ?"),
      replace_(db, "UPDATE archive SET stanza = ? WHERE id = ?"),
      unwrite_(db, "DELETE FROM archive WHERE id = ? AND sid = ? AND sid_indexed = 0") {
  for (std::size_t rows = 1; rows <= kMaxRowsPerInsert; rows *= 2)
    inserts_.push_back(std::make_unique<Statement>(db, insert_sql(rows).c_str()));
}

std::size_t Archive::append(const ArchiveBatch& batch, const std::string& default_mode) {
  std::vector<Owner> cache;
  std::size_t stored = 0;
  numbered_.clear();
  try {
    Transaction tx(db_);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const ArchiveBatch::Entry e = batch[i];
      if (!keeps(e, default_mode, cache)) continue;
      // A stanza-id whose number is above every row's is the row's id: found by it, it needs
      // no entry in archive_sid. Such rows (nearly all: the ids Waddle makes) are written
      // together, several per statement.
      const auto number = core::ordered_id_number(e.id);
      const std::int64_t above = numbered_.empty() ? last_row() : numbered_.back().number;
      if (number && *number > above) {
        numbered_.push_back({i, *number});
        continue;
      }
      stored += write_numbered(batch);  // the rows before this one first
      if (write_one(e, number)) ++stored;
    }
    stored += write_numbered(batch);
    tx.commit();
  } catch (...) {
    jids_.clear();  // numbers added in the failed transaction are gone
    last_row_.reset();
    numbered_.clear();
    throw;
  }
  return stored;
}

void Archive::bind_entry(Statement::Run& run, int first, const ArchiveBatch::Entry& e,
                         std::optional<std::int64_t> number) {
  // The batch outlives each run: its texts are bound without copies.
  if (number) run.integer(first, *number);  // else NULL: the next row id
  run.integer(first + 1, *jid_id(e.owner, true))
      .text_kept(first + 2, e.id)
      .integer(first + 3, e.time_us)
      .integer(first + 4, *jid_id(e.with_bare, true))
      .text_kept(first + 5, resource_of(e.with_full, e.with_bare))
      .text_kept(first + 6, e.stanza)
      .integer(first + 7, number ? 0 : 1);
}

bool Archive::insert_row(const ArchiveBatch::Entry& e, std::optional<std::int64_t> number) {
  auto run = inserts_.front()->run();
  bind_entry(run, 1, e, number);
  run.done();
  return sqlite3_changes(db_.handle()) > 0;
}

bool Archive::write_one(const ArchiveBatch::Entry& e, std::optional<std::int64_t> number) {
  // Any stanza-id but a number above every row's is indexed, unless it is archived already.
  const bool by_number = number && *number > last_row();
  if (!by_number && number && row_owner(*number, e.id)) return false;
  bool inserted = insert_row(e, by_number ? number : std::nullopt);
  // The number taken after all (a row written by another connection): indexed instead.
  if (!inserted && by_number && !row_owner(*number, e.id)) inserted = insert_row(e, std::nullopt);
  if (!inserted) return false;  // a stanza-id archived already
  last_row_ = sqlite3_last_insert_rowid(db_.handle());
  return true;
}

std::size_t Archive::write_numbered(const ArchiveBatch& batch) {
  std::size_t stored = 0, at = 0;
  while (at < numbered_.size()) {
    // The largest statement that fits what is left: 32 rows, then 16, 8, ... 1.
    std::size_t n = kMaxRowsPerInsert, which = inserts_.size() - 1;
    while (n > numbered_.size() - at) n /= 2, --which;
    {
      auto run = inserts_[which]->run();
      for (std::size_t k = 0; k < n; ++k)
        bind_entry(run, static_cast<int>(8 * k + 1), batch[numbered_[at + k].entry],
                   numbered_[at + k].number);
      run.done();
    }
    if (static_cast<std::size_t>(sqlite3_changes(db_.handle())) == n) {
      stored += n;
      last_row_ = numbered_[at + n - 1].number;
      at += n;
      continue;
    }
    // Some numbers were taken after all (rows another connection wrote). What this statement
    // wrote is taken back, and from its first row on each row is written as it would be
    // alone, so that the rows keep the order in which they came.
    for (std::size_t k = 0; k < n; ++k) {
      const auto e = batch[numbered_[at + k].entry];
      unwrite_.run().integer(1, numbered_[at + k].number).text_kept(2, e.id).done();
    }
    last_row_.reset();
    break;
  }
  for (; at < numbered_.size(); ++at)
    if (write_one(batch[numbered_[at].entry], numbered_[at].number)) ++stored;
  numbered_.clear();
  return stored;
}

std::optional<std::int64_t> Archive::jid_id(std::string_view jid, bool add) {
  if (auto it = jids_.find(jid); it != jids_.end()) return it->second;
  std::optional<std::int64_t> id;
  {
    auto run = jid_get_.run();
    run.text(1, jid);
    if (run.step()) id = run.column_int(0);
  }
  if (!id && add) {
    jid_put_.run().text(1, jid).done();
    id = sqlite3_last_insert_rowid(db_.handle());
  }
  if (!id) return std::nullopt;
  if (jids_.size() >= kMaxCachedJids) jids_.clear();
  jids_.emplace(std::string(jid), *id);
  return id;
}

bool Archive::keeps(const ArchiveBatch::Entry& e, const std::string& default_mode,
                    std::vector<Owner>& cache) {
  if (e.room) return true;
  auto it = std::find_if(cache.begin(), cache.end(), [&](auto& c) { return c.name == e.owner; });
  if (it == cache.end()) {
    const bool exists = account_exists(e.owner);
    std::string owner(e.owner);
    auto kept = exists ? prefs(owner) : std::nullopt;
    cache.push_back({std::move(owner), exists, std::move(kept)});
    it = std::prev(cache.end());
  }
  if (!it->exists) return false;
  const auto& p = it->prefs;
  if (p && contains(p->never, e.with_bare)) return false;
  if (p && contains(p->always, e.with_bare)) return true;
  const std::string& mode = p ? p->default_mode : default_mode;
  if (mode == "never") return false;
  if (mode == "roster") return in_roster(e.owner, e.with_bare);
  return true;
}

bool Archive::account_exists(std::string_view owner) {
  const auto at = owner.find('@');
  if (at == std::string::npos) return false;
  auto run = account_has_.run();
  run.text(1, owner.substr(at + 1)).text(2, owner.substr(0, at));
  return run.step();
}

bool Archive::in_roster(std::string_view owner, std::string_view contact) {
  const auto at = owner.find('@');
  if (at == std::string::npos) return false;
  auto run = roster_has_.run();
  run.text(1, owner.substr(at + 1)).text(2, owner.substr(0, at)).text(3, contact);
  return run.step();
}

std::int64_t Archive::last_row() {
  if (!last_row_) {
    auto run = max_row_.run();
    last_row_ = run.step() ? run.column_int(0) : 0;  // NULL (no rows) reads as 0
  }
  return *last_row_;
}

std::optional<std::int64_t> Archive::row_owner(std::int64_t row, std::string_view id) {
  auto run = row_by_id_.run();
  run.integer(1, row).text(2, id);
  if (!run.step()) return std::nullopt;
  return run.column_int(0);
}

std::optional<std::int64_t> Archive::row_of(std::int64_t owner, std::string_view id) {
  if (const auto number = core::ordered_id_number(id); number && row_owner(*number, id) == owner)
    return *number;
  auto run = row_of_.run();
  run.text(1, id).integer(2, owner);
  if (!run.step()) return std::nullopt;
  return run.column_int(0);
}

ArchivePage Archive::query(const std::string& owner, const ArchiveFilter& f) {
  ArchivePage page;
  const auto owner_id = jid_id(owner, false);
  std::optional<std::int64_t> after, before;
  if (!f.after_id.empty() && !(owner_id && (after = row_of(*owner_id, f.after_id))))
    page.unknown_id = true;
  if (!f.before_id.empty() && !(owner_id && (before = row_of(*owner_id, f.before_id))))
    page.unknown_id = true;
  if (page.unknown_id) return page;
  // The ids asked for, as rows of this archive (an id it does not have matches nothing).
  std::vector<std::int64_t> rows;
  for (const auto& id : f.ids)
    if (owner_id)
      if (const auto row = row_of(*owner_id, id)) rows.push_back(*row);
  if (!f.ids.empty() && rows.empty()) return page;  // none of them: complete, empty
  // A filter on a full JID is its bare JID's number and its resource.
  const auto slash = f.with.find('/');
  const std::string_view with_bare = std::string_view(f.with).substr(0, slash);
  const auto with_id = f.with.empty() ? std::nullopt : jid_id(with_bare, false);
  if (!owner_id || (!f.with.empty() && !with_id)) return page;  // nothing archived: complete
  const bool backwards = f.backwards && !after;
  std::string sql = std::string("SELECT ") + kColumns + " WHERE a.owner = ?1";
  if (!f.with.empty()) sql += " AND a.with_bare = ?2";
  if (slash != std::string::npos) sql += " AND a.resource = ?9";
  if (f.start_us) sql += " AND a.time_us >= ?3";
  if (f.end_us) sql += " AND a.time_us <= ?4";
  if (after) sql += " AND a.id > ?5";
  if (before) sql += " AND a.id < ?6";
  if (!rows.empty()) {
    sql += " AND a.id IN (";
    for (std::size_t i = 0; i < rows.size(); ++i) sql += (i ? ",?" : "?") + std::to_string(10 + i);
    sql += ")";
  }
  sql += backwards ? " ORDER BY a.id DESC LIMIT ?7" : " ORDER BY a.id ASC LIMIT ?7";
  Statement st(db_, sql.c_str());
  auto run = st.run();
  run.integer(1, *owner_id);
  if (with_id) run.integer(2, *with_id);
  if (slash != std::string::npos) run.text(9, std::string_view(f.with).substr(slash + 1));
  if (f.start_us) run.integer(3, *f.start_us);
  if (f.end_us) run.integer(4, *f.end_us);
  if (after) run.integer(5, *after);
  if (before) run.integer(6, *before);
  run.integer(7, static_cast<std::int64_t>(f.max) + 1);
  for (std::size_t i = 0; i < rows.size(); ++i) run.integer(static_cast<int>(10 + i), rows[i]);
  while (run.step()) page.items.push_back(read_entry(owner, run));
  page.complete = page.items.size() <= f.max;
  if (!page.complete) page.items.pop_back();
  if (backwards) std::reverse(page.items.begin(), page.items.end());
  return page;
}

std::optional<std::pair<ArchiveEntry, ArchiveEntry>> Archive::bounds(const std::string& owner) {
  std::pair<ArchiveEntry, ArchiveEntry> out;
  const auto owner_id = jid_id(owner, false);
  if (!owner_id) return std::nullopt;
  {
    auto run = first_.run();
    run.integer(1, *owner_id);
    if (!run.step()) return std::nullopt;
    out.first = read_entry(owner, run);
  }
  auto run = last_.run();
  run.integer(1, *owner_id);
  if (!run.step()) return std::nullopt;
  out.second = read_entry(owner, run);
  return out;
}

std::uint64_t Archive::expire(std::int64_t before_us, std::uint64_t max_per_owner) {
  Transaction tx(db_);
  std::uint64_t removed = 0;
  {
    Statement old(db_, "DELETE FROM archive WHERE time_us < ?");
    old.run().integer(1, before_us).done();
    removed += static_cast<std::uint64_t>(sqlite3_changes(db_.handle()));
  }
  if (max_per_owner > 0) {
    std::vector<std::int64_t> over;
    {
      Statement big(db_, "SELECT owner FROM archive GROUP BY owner HAVING COUNT(*) > ?");
      auto run = big.run();
      run.integer(1, static_cast<std::int64_t>(max_per_owner));
      while (run.step()) over.push_back(run.column_int(0));
    }
    Statement trim(db_,
                   "DELETE FROM archive WHERE owner = ?1 AND id <= (SELECT id FROM archive "
                   "WHERE owner = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)");
    for (const std::int64_t owner : over) {
      trim.run().integer(1, owner).integer(2, static_cast<std::int64_t>(max_per_owner)).done();
      removed += static_cast<std::uint64_t>(sqlite3_changes(db_.handle()));
    }
  }
  // JIDs no row refers to any more go too, so that archive_jids is bounded by what the archives
  // hold (a peer writing from ever new JIDs cannot grow it past retention). One scan of the
  // table, only when rows went; the cached numbers are dropped with them.
  if (removed > 0) {
    Statement orphans(db_,
                      "DELETE FROM archive_jids WHERE id NOT IN (SELECT owner FROM archive) "
                      "AND id NOT IN (SELECT with_bare FROM archive)");
    orphans.run().done();
    jids_.clear();
  }
  tx.commit();
  return removed;
}

bool Archive::replace(const std::string& owner, const std::string& id, const std::string& stanza) {
  const auto owner_id = jid_id(owner, false);
  if (!owner_id) return false;
  const auto row = row_of(*owner_id, id);
  if (!row) return false;
  replace_.run().text(1, stanza).integer(2, *row).done();
  return sqlite3_changes(db_.handle()) > 0;
}

std::optional<ArchivePrefs> Archive::prefs(const std::string& owner) {
  auto run = prefs_get_.run();
  run.text(1, owner);
  if (!run.step()) return std::nullopt;
  return ArchivePrefs{run.column_text(0), split(run.column_text(1)), split(run.column_text(2))};
}

void Archive::set_prefs(const std::string& owner, const ArchivePrefs& p) {
  prefs_put_.run()
      .text(1, owner)
      .text(2, p.default_mode)
      .text(3, join(p.always))
      .text(4, join(p.never))
      .done();
}

std::uint64_t Archive::delete_owner(const std::string& owner) {
  std::uint64_t removed = 0;
  if (const auto owner_id = jid_id(owner, false)) {
    delete_owner_.run().integer(1, *owner_id).done();
    removed = static_cast<std::uint64_t>(sqlite3_changes(db_.handle()));
  }
  delete_prefs_.run().text(1, owner).done();
  return removed;
}

}  // namespace waddle::storage::sqlite
