// Message archives (XEP-0313) in SQLite: one table for every archive (accounts and rooms, their
// JIDs numbered in archive_jids), ordered by row id (the order messages were archived in: a new
// row's id is one more than the largest), with the stanza-id unique; the archiving preferences
// beside it. Used by SqliteStorage, on its connection and thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/sqlite/sqlite_db.h"
#include "storage/storage.h"

namespace waddle::storage::sqlite {

// The schema step that creates the archive tables (a migration of sqlite_storage.cpp).
inline constexpr const char* kArchiveSchema = R"sql(
CREATE TABLE archive (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  owner TEXT NOT NULL,
  sid TEXT NOT NULL,
  time_us INTEGER NOT NULL,
  with_bare TEXT NOT NULL,
  with_full TEXT NOT NULL,
  stanza TEXT NOT NULL
);
CREATE INDEX archive_owner ON archive (owner, id);
CREATE INDEX archive_with ON archive (owner, with_bare, id);
CREATE UNIQUE INDEX archive_sid ON archive (sid);
CREATE TABLE archive_prefs (
  owner TEXT PRIMARY KEY,
  default_mode TEXT NOT NULL,
  always TEXT NOT NULL,
  never TEXT NOT NULL
);
)sql";

// The step that rebuilds the archive table with plain row ids (no AUTOINCREMENT, which costs
// every insert a write to sqlite_sequence), keeping every row, its id and so its order.
inline constexpr const char* kArchiveRowIds = R"sql(
CREATE TABLE archive_rebuilt (
  id INTEGER PRIMARY KEY,
  owner TEXT NOT NULL,
  sid TEXT NOT NULL,
  time_us INTEGER NOT NULL,
  with_bare TEXT NOT NULL,
  with_full TEXT NOT NULL,
  stanza TEXT NOT NULL
);
INSERT INTO archive_rebuilt (id, owner, sid, time_us, with_bare, with_full, stanza)
  SELECT id, owner, sid, time_us, with_bare, with_full, stanza FROM archive;
DROP TABLE archive;
ALTER TABLE archive_rebuilt RENAME TO archive;
CREATE INDEX archive_owner ON archive (owner, id);
CREATE INDEX archive_with ON archive (owner, with_bare, id);
CREATE UNIQUE INDEX archive_sid ON archive (sid);
)sql";

// The step that numbers the JIDs of the archives: owner and correspondent are integers into
// archive_jids (one row per JID ever archived, never removed), and of the correspondent's full
// JID only the resource is kept. A row is about 90 bytes shorter and the two owner indexes
// compare integers instead of text: the insert, on the path of every message, costs about a
// sixth less. Every row keeps its id, and so its order.
inline constexpr const char* kArchiveJidIds = R"sql(
CREATE TABLE archive_jids (
  id INTEGER PRIMARY KEY,
  jid TEXT NOT NULL UNIQUE
);
INSERT INTO archive_jids (jid) SELECT owner FROM archive UNION SELECT with_bare FROM archive;
CREATE TABLE archive_numbered (
  id INTEGER PRIMARY KEY,
  owner INTEGER NOT NULL,
  sid TEXT NOT NULL,
  time_us INTEGER NOT NULL,
  with_bare INTEGER NOT NULL,
  resource TEXT NOT NULL,
  stanza TEXT NOT NULL
);
INSERT INTO archive_numbered (id, owner, sid, time_us, with_bare, resource, stanza)
  SELECT a.id, o.id, a.sid, a.time_us, w.id,
         CASE WHEN substr(a.with_full, 1, length(a.with_bare) + 1) = a.with_bare || '/'
              THEN substr(a.with_full, length(a.with_bare) + 2) ELSE '' END,
         a.stanza
  FROM archive a JOIN archive_jids o ON o.jid = a.owner JOIN archive_jids w ON w.jid = a.with_bare;
DROP TABLE archive;
ALTER TABLE archive_numbered RENAME TO archive;
CREATE INDEX archive_owner ON archive (owner, id);
CREATE INDEX archive_with ON archive (owner, with_bare, id);
CREATE UNIQUE INDEX archive_sid ON archive (sid);
)sql";

// The step that takes most rows out of archive_sid: a row whose stanza-id starts with its row
// id in 16 hex digits (the ids Waddle makes start with the time in microseconds, always rising)
// is found through its id, a primary-key read, and stores sid_indexed = 0; archive_sid keeps
// only the rows with sid_indexed = 1: every row archived before this step, and those whose
// stanza-id has another form or a number not above the newest row's (a clock set back). The
// insert on the path of every message writes two indexes instead of three.
inline constexpr const char* kArchiveSidRows = R"sql(
ALTER TABLE archive ADD COLUMN sid_indexed INTEGER NOT NULL DEFAULT 1;
DROP INDEX archive_sid;
CREATE UNIQUE INDEX archive_sid ON archive (sid) WHERE sid_indexed = 1;
)sql";

class Archive {
 public:
  explicit Archive(const Database& db);

  std::size_t append(const ArchiveBatch& batch, const std::string& default_mode);
  ArchivePage query(const std::string& owner, const ArchiveFilter& filter);
  std::optional<std::pair<ArchiveEntry, ArchiveEntry>> bounds(const std::string& owner);
  std::uint64_t expire(std::int64_t before_us, std::uint64_t max_per_owner);
  bool replace(const std::string& owner, const std::string& id, const std::string& stanza);
  std::optional<ArchivePrefs> prefs(const std::string& owner);
  void set_prefs(const std::string& owner, const ArchivePrefs& prefs);
  // Within the caller's transaction (an account or a room removed); returns the entries
  // removed.
  std::uint64_t delete_owner(const std::string& owner);

 private:
  struct Owner {  // what one append learned about an archive's owner
    std::string name;
    bool exists = false;
    std::optional<ArchivePrefs> prefs;
  };
  // Binds an entry as the row whose first parameter is `first`; `number` is its row id (else
  // the next one, and its stanza-id indexed).
  void bind_entry(Statement::Run& run, int first, const ArchiveBatch::Entry& e,
                  std::optional<std::int64_t> number);
  // Inserts an entry with `number` as its row id (else the next one, and its stanza-id
  // indexed); false if the row id or the indexed stanza-id is taken.
  bool insert_row(const ArchiveBatch::Entry& e, std::optional<std::int64_t> number);
  // Writes one entry, by its number if that is above every row's, else indexed; false if its
  // stanza-id is archived already.
  bool write_one(const ArchiveBatch::Entry& e, std::optional<std::int64_t> number);
  // Writes the entries gathered in numbered_ (each with its number as its row id, several per
  // statement); returns how many were written.
  std::size_t write_numbered(const ArchiveBatch& batch);
  bool keeps(const ArchiveBatch::Entry& entry, const std::string& default_mode,
             std::vector<Owner>& cache);
  bool in_roster(std::string_view owner, std::string_view contact);
  bool account_exists(std::string_view owner);
  std::optional<std::int64_t> row_of(std::int64_t owner, std::string_view id);
  // The owner of the row numbered `row` if it has the stanza-id `id`.
  std::optional<std::int64_t> row_owner(std::int64_t row, std::string_view id);
  // The largest row id: read once, then kept as rows are added (this connection is the
  // archive's only writer); forgotten when a transaction fails.
  std::int64_t last_row();
  // The number of `jid` in archive_jids: none if it has none and `add` is false.
  std::optional<std::int64_t> jid_id(std::string_view jid, bool add);

  struct ViewHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view v) const { return std::hash<std::string_view>()(v); }
  };
  // JID numbers known to be in archive_jids (rows there are never removed); emptied when a
  // transaction that may have added some fails, and when it grows past kMaxCachedJids.
  std::unordered_map<std::string, std::int64_t, ViewHash, std::equal_to<>> jids_;

  // Rows one insert statement writes at most. A row written alone costs about twice its
  // share of a statement of 32 (the statement's set-up, and each B-tree's insertion point
  // found again from its root instead of next to the row before).
  static constexpr std::size_t kMaxRowsPerInsert = 32;
  struct Numbered {
    std::size_t entry;    // in the batch
    std::int64_t number;  // its stanza-id's number: its row id
  };

  const Database& db_;
  std::optional<std::int64_t> last_row_;
  std::vector<Numbered> numbered_;  // of the append under way

  // Inserts of 1, 2, 4, ... kMaxRowsPerInsert rows.
  std::vector<std::unique_ptr<Statement>> inserts_;
  Statement row_of_;
  Statement row_by_id_;
  Statement max_row_;
  Statement jid_get_;
  Statement jid_put_;
  Statement first_;
  Statement last_;
  Statement prefs_get_;
  Statement prefs_put_;
  Statement roster_has_;
  Statement account_has_;
  Statement delete_owner_;
  Statement delete_prefs_;
  Statement replace_;
  Statement unwrite_;  // a row of a multi-row insert taken back
};

}  // namespace waddle::storage::sqlite
