// Message archives (XEP-0313) in SQLite: appending with preferences, paging both ways, the
// filters, unknown ids, metadata bounds, retention and the per-archive limit.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "storage/storage.h"

namespace waddle::storage {
namespace {

namespace fs = std::filesystem;
const std::string kOwner = "alice@example.test";

// The packed batch gives back every field of every entry, whatever their lengths (empty
// ones too), and takes back the last entry exactly.
TEST(ArchiveBatchTest, KeepsEveryFieldAndTakesBackTheLastEntry) {
  ArchiveBatch batch;
  batch.add(ArchiveEntry{"a@x", "id1", 5, "b@y", "", "<m/>", false});
  batch.add("room@muc.x", "id2", 6, "room@muc.x", "room@muc.x/nick", true,
            [](std::string& out) { out += "<message type='groupchat'/>"; });
  batch.add(ArchiveEntry{"", "", 7, "", "", "", false});
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch.rooms(), 1u);
  EXPECT_EQ(batch.stanza_bytes(), 4u + 27u);
  const auto first = batch[0], second = batch[1], third = batch[2];
  EXPECT_EQ(first.owner, "a@x");
  EXPECT_EQ(first.id, "id1");
  EXPECT_EQ(first.time_us, 5);
  EXPECT_EQ(first.with_bare, "b@y");
  EXPECT_EQ(first.with_full, "");
  EXPECT_EQ(first.stanza, "<m/>");
  EXPECT_FALSE(first.room);
  EXPECT_EQ(second.owner, "room@muc.x");
  EXPECT_EQ(second.with_full, "room@muc.x/nick");
  EXPECT_EQ(second.stanza, "<message type='groupchat'/>");
  EXPECT_TRUE(second.room);
  EXPECT_EQ(third.time_us, 7);
  EXPECT_TRUE(third.stanza.empty());

  batch.pop_back();
  batch.pop_back();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch.rooms(), 0u);
  EXPECT_EQ(batch.stanza_bytes(), 4u);
  EXPECT_EQ(batch.text_bytes(), std::string("a@xid1b@y<m/>").size());
  batch.add(ArchiveEntry{"c@z", "id3", 8, "d@w", "d@w/r", "<n/>", false});
  EXPECT_EQ(batch[1].with_full, "d@w/r");
  EXPECT_EQ(batch[0].stanza, "<m/>");
}

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "waddle-archive-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_ = open_sqlite((dir_ / "waddle.db").string());
    for (const char* user : {"alice", "bob"}) {
      Account a;
      a.domain = "example.test";
      a.username = user;
      ASSERT_TRUE(db_->create_account(a));
    }
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  // n messages for kOwner, ids m0.., with alternating partners, one second apart.
  void fill(int n, const std::string& owner = kOwner) {
    std::vector<ArchiveEntry> entries;
    for (int i = 0; i < n; ++i) {
      const std::string with = i % 2 ? "bob@example.test" : "carol@other.test";
      entries.push_back({owner, owner[0] + std::string("m") + std::to_string(i),
                         (1000 + i) * 1'000'000LL, with, with + "/r",
                         "<message><body>" + std::to_string(i) + "</body></message>"});
    }
    EXPECT_EQ(db_->archive_append(entries, "always"), static_cast<std::size_t>(n));
  }

  std::vector<std::string> ids(const ArchivePage& page) {
    std::vector<std::string> out;
    for (const auto& e : page.items) out.push_back(e.id);
    return out;
  }

  // A count read beside the server's connection, from the database file.
  int count(const char* sql) {
    sqlite3* raw = nullptr;
    EXPECT_EQ(sqlite3_open_v2((dir_ / "waddle.db").c_str(), &raw, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(raw, sql, -1, &st, nullptr);
    const int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close_v2(raw);
    return n;
  }

  fs::path dir_;
  std::unique_ptr<Storage> db_;
};

TEST_F(ArchiveTest, PagesForwardFromTheStartAndBackwardFromTheEnd) {
  fill(5);
  ArchiveFilter f;
  f.max = 2;
  auto page = db_->archive_query(kOwner, f);
  EXPECT_EQ(ids(page), (std::vector<std::string>{"am0", "am1"}));
  EXPECT_FALSE(page.complete);
  f.after_id = "am3";
  page = db_->archive_query(kOwner, f);
  EXPECT_EQ(ids(page), (std::vector<std::string>{"am4"}));
  EXPECT_TRUE(page.complete);

  ArchiveFilter last;
  last.max = 2;
  last.backwards = true;  // <before/>: the newest, oldest first within the page
  page = db_->archive_query(kOwner, last);
  EXPECT_EQ(ids(page), (std::vector<std::string>{"am3", "am4"}));
  EXPECT_FALSE(page.complete);
  last.before_id = "am1";
  page = db_->archive_query(kOwner, last);
  EXPECT_EQ(ids(page), (std::vector<std::string>{"am0"}));
  EXPECT_TRUE(page.complete);
}

TEST_F(ArchiveTest, Filters) {
  fill(6);
  ArchiveFilter f;
  f.with = "bob@example.test";
  EXPECT_EQ(ids(db_->archive_query(kOwner, f)), (std::vector<std::string>{"am1", "am3", "am5"}));
  f.with = "carol@other.test/r";  // a full JID matches the full JID
  EXPECT_EQ(ids(db_->archive_query(kOwner, f)), (std::vector<std::string>{"am0", "am2", "am4"}));
  f.with = "carol@other.test/else";
  EXPECT_TRUE(db_->archive_query(kOwner, f).items.empty());
  // A correspondent never archived (bare or full) matches nothing, and the page is complete.
  for (const char* never : {"dave@example.test", "dave@example.test/r"}) {
    f.with = never;
    const auto none = db_->archive_query(kOwner, f);
    EXPECT_TRUE(none.items.empty()) << never;
    EXPECT_TRUE(none.complete) << never;
  }
  // Entries read back carry the correspondent's full JID as archived.
  f.with = "bob@example.test";
  const auto bob = db_->archive_query(kOwner, f);
  ASSERT_FALSE(bob.items.empty());
  EXPECT_EQ(bob.items[0].with_bare, "bob@example.test");
  EXPECT_EQ(bob.items[0].with_full, "bob@example.test/r");
  ArchiveFilter t;
  t.start_us = 1001 * 1'000'000LL;
  t.end_us = 1003 * 1'000'000LL;
  EXPECT_EQ(ids(db_->archive_query(kOwner, t)), (std::vector<std::string>{"am1", "am2", "am3"}));
  ArchiveFilter by_id;
  by_id.ids = {"am4", "am0", "nope"};
  EXPECT_EQ(ids(db_->archive_query(kOwner, by_id)), (std::vector<std::string>{"am0", "am4"}));
  ArchiveFilter between;
  between.after_id = "am1";
  between.before_id = "am4";
  EXPECT_EQ(ids(db_->archive_query(kOwner, between)), (std::vector<std::string>{"am2", "am3"}));
}

TEST_F(ArchiveTest, ArchivesAreSeparateAndUnknownIdsAreReported) {
  fill(2);
  fill(2, "bob@example.test");
  ArchiveFilter f;
  f.after_id = "bm0";  // bob's, not alice's
  EXPECT_TRUE(db_->archive_query(kOwner, f).unknown_id);
  f.after_id = "am0";
  EXPECT_FALSE(db_->archive_query(kOwner, f).unknown_id);
  EXPECT_EQ(db_->archive_query("bob@example.test", {}).items.size(), 2u);
}

TEST_F(ArchiveTest, BoundsAreTheOldestAndTheNewest) {
  EXPECT_FALSE(db_->archive_bounds(kOwner).has_value());
  fill(3);
  auto b = db_->archive_bounds(kOwner);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->first.id, "am0");
  EXPECT_EQ(b->second.id, "am2");
  EXPECT_EQ(b->second.time_us, 1002 * 1'000'000LL);
}

TEST_F(ArchiveTest, PreferencesDecideWhatIsKept) {
  ArchivePrefs prefs{"never", {"bob@example.test"}, {}};
  db_->archive_set_prefs(kOwner, prefs);
  EXPECT_EQ(db_->archive_prefs(kOwner), prefs);
  std::vector<ArchiveEntry> e{
      {kOwner, "x1", 1, "bob@example.test", "", "<message/>"},
      {kOwner, "x2", 2, "carol@other.test", "", "<message/>"},
  };
  EXPECT_EQ(db_->archive_append(e, "always"), 1u);  // only the "always" JID
  db_->archive_set_prefs(kOwner, {"roster", {}, {"dave@example.test"}});
  RosterItem carol;
  carol.jid = "carol@other.test";
  db_->roster_put("example.test", "alice", carol);
  std::vector<ArchiveEntry> more{
      {kOwner, "y1", 3, "carol@other.test", "", "<message/>"},   // in the roster
      {kOwner, "y2", 4, "eve@other.test", "", "<message/>"},     // not
      {kOwner, "y3", 5, "dave@example.test", "", "<message/>"},  // never
  };
  EXPECT_EQ(db_->archive_append(more, "always"), 1u);
  EXPECT_EQ(ids(db_->archive_query(kOwner, {})), (std::vector<std::string>{"x1", "y1"}));
  // Without preferences the server's default applies.
  std::vector<ArchiveEntry> other{{"bob@example.test", "z1", 1, kOwner, "", "<message/>"}};
  EXPECT_EQ(db_->archive_append(other, "never"), 0u);
}

TEST_F(ArchiveTest, RetentionAndTheLimitPerArchive) {
  fill(10);
  fill(3, "bob@example.test");
  EXPECT_EQ(db_->archive_expire(1002 * 1'000'000LL, 0), 2u + 2u);  // m0, m1 of each
  EXPECT_EQ(db_->archive_query(kOwner, {}).items.front().id, "am2");
  EXPECT_EQ(db_->archive_expire(0, 5), 3u);  // alice keeps her newest 5, bob's 1 is under it
  EXPECT_EQ(ids(db_->archive_query(kOwner, {})),
            (std::vector<std::string>{"am5", "am6", "am7", "am8", "am9"}));
  EXPECT_EQ(db_->archive_query("bob@example.test", {}).items.size(), 1u);
}

// Retention also removes the JID numbers no entry refers to any more; archiving the same JIDs
// afterwards works (the cache of numbers went with them).
TEST_F(ArchiveTest, RetentionRemovesJidsNoEntryUses) {
  fill(4);  // with bob@example.test and carol@other.test, archived at 1000..1003 s
  auto count_jids = [&] {
    ArchiveFilter f;
    f.with = "carol@other.test";
    return db_->archive_query(kOwner, f).items.size();
  };
  auto numbered = [&] { return count("SELECT COUNT(*) FROM archive_jids"); };
  EXPECT_EQ(count_jids(), 2u);
  EXPECT_EQ(numbered(), 3);                                   // alice, bob, carol
  EXPECT_EQ(db_->archive_expire(2000 * 1'000'000LL, 0), 4u);  // everything
  EXPECT_EQ(numbered(), 0);
  EXPECT_EQ(count_jids(), 0u);
  fill(2);
  EXPECT_EQ(count_jids(), 1u);
  ArchiveFilter all;
  EXPECT_EQ(db_->archive_query(kOwner, all).items.size(), 2u);
  EXPECT_EQ(db_->archive_query(kOwner, all).items[1].with_bare, "bob@example.test");
}

// Stanza-ids of the form the server makes (16 hex digits of a rising number, then random ones)
// are found through their number, without an entry in archive_sid; any other id is indexed:
// one of another form, and one whose number is not above the newest row's (a clock set back).
// Both kinds keep their order, answer every id filter, and are stored once if archived twice.
TEST_F(ArchiveTest, StanzaIdsAreFoundByTheirNumberOrThroughTheIndex) {
  auto entry = [](const std::string& id) {
    return ArchiveEntry{kOwner, id, 1'000'000, "bob@example.test", "", "<message/>"};
  };
  const std::string first = "0000000000001000aaaaaaaaaaaa", second = "0000000000002000bbbbbbbbbbbb",
                    earlier = "0000000000001500cccccccccccc", other = "no-number";
  EXPECT_EQ(
      db_->archive_append({entry(first), entry(second), entry(other), entry(earlier)}, "always"),
      4u);
  // Archived again (the same ids): nothing is stored twice.
  EXPECT_EQ(db_->archive_append({entry(second), entry(other), entry(earlier)}, "always"), 0u);
  EXPECT_EQ(count("SELECT COUNT(*) FROM archive"), 4);
  EXPECT_EQ(count("SELECT COUNT(*) FROM archive WHERE sid_indexed = 1"), 2);  // other, earlier
  EXPECT_EQ(count("SELECT id FROM archive WHERE sid = '0000000000002000bbbbbbbbbbbb'"), 0x2000);

  const std::vector<std::string> order{first, second, other, earlier};
  EXPECT_EQ(ids(db_->archive_query(kOwner, {})), order);
  for (std::size_t i = 0; i < order.size(); ++i) {
    ArchiveFilter after;
    after.after_id = order[i];
    EXPECT_EQ(ids(db_->archive_query(kOwner, after)),
              std::vector<std::string>(order.begin() + static_cast<long>(i) + 1, order.end()))
        << order[i];
    ArchiveFilter before;
    before.before_id = order[i];
    EXPECT_EQ(ids(db_->archive_query(kOwner, before)),
              std::vector<std::string>(order.begin(), order.begin() + static_cast<long>(i)))
        << order[i];
  }
  ArchiveFilter some;
  some.ids = {earlier, "0000000000003000dddddddddddd", first, other};
  EXPECT_EQ(ids(db_->archive_query(kOwner, some)),
            (std::vector<std::string>{first, other, earlier}));
  // A number that is a row, with the wrong random part, or in another archive, is unknown.
  ArchiveFilter wrong;
  wrong.after_id = "0000000000002000bbbbbbbbbbbc";
  EXPECT_TRUE(db_->archive_query(kOwner, wrong).unknown_id);
  wrong.after_id = second;
  EXPECT_TRUE(db_->archive_query("bob@example.test", wrong).unknown_id);
  wrong.after_id = other;
  EXPECT_TRUE(db_->archive_query("bob@example.test", wrong).unknown_id);
  // New rows come after all of them, by number again once it is above the newest row.
  const std::string later = "7000000000000000eeeeeeeeeeee";
  EXPECT_EQ(db_->archive_append({entry(later)}, "always"), 1u);
  EXPECT_EQ(db_->archive_bounds(kOwner)->second.id, later);
  EXPECT_EQ(count("SELECT COUNT(*) FROM archive WHERE sid_indexed = 1"), 2);
}

// A stanza-id "0000000000001000" + 12 more characters: the number n in 16 hex digits.
std::string numbered_id(std::int64_t n, char rest = 'a') {
  char digits[17];
  std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(n));
  return digits + std::string(12, rest);
}

// Rows numbered by their stanza-ids are written several per statement: a batch of many, with
// an id of another form and an id given twice among them, keeps every row once, in order,
// each found by its id.
TEST_F(ArchiveTest, ManyRowsInOneBatch_EachOnceInOrder) {
  std::vector<ArchiveEntry> entries;
  std::vector<std::string> order;
  for (int i = 0; i < 100; ++i) {
    const std::string id = numbered_id(0x1000 + 16 * i);
    entries.push_back({kOwner, id, 1'000'000 + i, "bob@example.test",
                       "bob@example.test/r" + std::to_string(i % 3),
                       "<message><body>" + std::to_string(i) + "</body></message>"});
    order.push_back(id);
    if (i == 49) {
      entries.push_back({kOwner, "no-number", 1'000'000 + i, "bob@example.test", "", "<message/>"});
      order.push_back("no-number");
    }
    if (i == 69) entries.push_back(entries[10]);  // archived already, within the same batch
  }
  ASSERT_EQ(entries.size(), 102u);
  EXPECT_EQ(db_->archive_append(entries, "always"), 101u);
  EXPECT_EQ(count("SELECT COUNT(*) FROM archive"), 101);
  EXPECT_EQ(count("SELECT COUNT(*) FROM archive WHERE sid_indexed = 1"), 1);  // no-number
  ArchiveFilter all;
  all.max = 200;
  const auto page = db_->archive_query(kOwner, all);
  EXPECT_EQ(ids(page), order);
  ASSERT_EQ(page.items.size(), 101u);
  EXPECT_EQ(page.items[99].stanza, "<message><body>98</body></message>");
  EXPECT_EQ(page.items[99].with_full, "bob@example.test/r2");
  ArchiveFilter after;
  after.after_id = order[95];
  EXPECT_EQ(ids(db_->archive_query(kOwner, after)),
            std::vector<std::string>(order.begin() + 96, order.end()));
}

// Numbers taken by rows the server's connection did not write (another writer of the same
// file, one of them above the numbers of the batch): the statement that met one is taken back
// and its rows and the rest are written one at a time, indexed by their stanza-ids after the
// newest row, keeping the order in which they came.
TEST_F(ArchiveTest, NumbersTakenByAnotherWriter_RowsIndexedInTheirOrder) {
  auto entry = [](const std::string& id) {
    return ArchiveEntry{kOwner, id, 1'000'000, "bob@example.test", "", "<message/>"};
  };
  ASSERT_EQ(db_->archive_append({entry(numbered_id(0x1000))}, "always"), 1u);
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open_v2((dir_ / "waddle.db").c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr),
              SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(raw,
                           "INSERT INTO archive (id, owner, sid, time_us, with_bare, resource, "
                           "stanza) VALUES (8192, 999, 'elsewhere', 0, 999, '', '<x/>'), "
                           "(36864, 999, 'further', 0, 999, '', '<x/>')",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close_v2(raw);
  }
  const std::vector<std::string> order{numbered_id(0x1000), numbered_id(0x1800),
                                       numbered_id(0x2000), numbered_id(0x2800)};
  // Statements of 2 and 1 rows; the first meets 8192.
  EXPECT_EQ(db_->archive_append({entry(order[1]), entry(order[2]), entry(order[3])}, "always"), 3u);
  EXPECT_EQ(count("SELECT COUNT(*) FROM archive"), 6);
  EXPECT_EQ(count("SELECT COUNT(*) FROM archive WHERE sid_indexed = 1"), 5);  // but order[0]
  EXPECT_EQ(count("SELECT id FROM archive WHERE sid = '0000000000001800aaaaaaaaaaaa'"), 36865);
  EXPECT_EQ(count("SELECT id FROM archive WHERE sid = '0000000000002800aaaaaaaaaaaa'"), 36867);
  EXPECT_EQ(ids(db_->archive_query(kOwner, {})), order);
  ArchiveFilter some;
  some.ids = {order[2], order[1]};
  EXPECT_EQ(ids(db_->archive_query(kOwner, some)), (std::vector<std::string>{order[1], order[2]}));
  // Archived again: nothing twice.
  EXPECT_EQ(db_->archive_append({entry(order[2]), entry(order[3])}, "always"), 0u);
  // New numbers above every row are row ids again.
  EXPECT_EQ(db_->archive_append({entry(numbered_id(0x10000))}, "always"), 1u);
  EXPECT_EQ(count("SELECT COUNT(*) FROM archive WHERE sid_indexed = 0"), 2);
}

// XEP-0425: a retracted message keeps its place, as a tombstone, found by either kind of id.
TEST_F(ArchiveTest, ReplaceKeepsThePlaceOfAnEntry) {
  auto entry = [](const std::string& id, const std::string& stanza) {
    return ArchiveEntry{kOwner, id, 1'000'000, "bob@example.test", "", stanza};
  };
  const std::string numbered = "0000000000001000aaaaaaaaaaaa", other = "no-number";
  ASSERT_EQ(db_->archive_append({entry(numbered, "<message><body>a</body></message>"),
                                 entry(other, "<message><body>b</body></message>")},
                                "always"),
            2u);
  EXPECT_TRUE(db_->archive_replace(kOwner, numbered, "<message><retracted/></message>"));
  EXPECT_TRUE(db_->archive_replace(kOwner, other, "<message><gone/></message>"));
  EXPECT_FALSE(db_->archive_replace(kOwner, "0000000000003000dddddddddddd", "<x/>"));
  EXPECT_FALSE(db_->archive_replace("bob@example.test", numbered, "<x/>"));
  const auto page = db_->archive_query(kOwner, {});
  ASSERT_EQ(page.items.size(), 2u);
  EXPECT_EQ(page.items[0].id, numbered);
  EXPECT_EQ(page.items[0].stanza, "<message><retracted/></message>");
  EXPECT_EQ(page.items[1].stanza, "<message><gone/></message>");
}

TEST_F(ArchiveTest, OnlyAccountsThatExistHaveArchives) {
  std::vector<ArchiveEntry> e{{"nobody@example.test", "n1", 1, kOwner, "", "<message/>"},
                              {kOwner, "n2", 2, "nobody@example.test", "", "<message/>"}};
  EXPECT_EQ(db_->archive_append(e, "always"), 1u);
  EXPECT_TRUE(db_->archive_query("nobody@example.test", {}).items.empty());
}

TEST_F(ArchiveTest, AccountRemovalTakesItsArchive) {
  fill(2);
  db_->archive_set_prefs(kOwner, {"never", {}, {}});
  ASSERT_TRUE(db_->delete_account("example.test", "alice"));
  EXPECT_TRUE(db_->archive_query(kOwner, {}).items.empty());
  EXPECT_FALSE(db_->archive_prefs(kOwner).has_value());
}

TEST_F(ArchiveTest, RoomArchivesAreKeptByOccupantAndDeletedWhole) {
  const std::string room = "lobby@conference.example.test";
  std::vector<ArchiveEntry> e{{room, "r1", 1, room, room + "/Alice", "<message/>"},
                              {room, "r2", 2, room, room + "/Bob", "<message/>"},
                              {"other@conference.example.test", "r3", 3,
                               "other@conference.example.test", "x", "<message/>"}};
  for (auto& entry : e) entry.room = true;
  // No account of that name, and the account default says never: rooms keep them all.
  EXPECT_EQ(db_->archive_append(e, "never"), 3u);
  EXPECT_EQ(ids(db_->archive_query(room, {})), (std::vector<std::string>{"r1", "r2"}));
  ArchiveFilter by_bob;
  by_bob.with = room + "/Bob";
  EXPECT_EQ(ids(db_->archive_query(room, by_bob)), (std::vector<std::string>{"r2"}));
  ArchiveFilter whole;
  whole.with = room;
  EXPECT_EQ(ids(db_->archive_query(room, whole)).size(), 2u);
  // Retention and the limit per archive apply to rooms as to accounts.
  EXPECT_EQ(db_->archive_expire(0, 1), 1u);
  EXPECT_EQ(ids(db_->archive_query(room, {})), (std::vector<std::string>{"r2"}));
  EXPECT_EQ(db_->archive_expire(3, 0), 1u);
  EXPECT_EQ(db_->archive_delete(room), 0u);
  EXPECT_EQ(db_->archive_append(e, "never"), 2u);  // r3 is still there: not stored twice
  EXPECT_EQ(db_->archive_delete(room), 2u);
  EXPECT_TRUE(db_->archive_query(room, {}).items.empty());
  EXPECT_EQ(db_->archive_query("other@conference.example.test", {}).items.size(), 1u);
}

}  // namespace
}  // namespace waddle::storage
