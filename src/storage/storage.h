// Storage interfaces: accounts, rosters, offline messages, blocklists and abuse reports, and
// persistent rooms. Implementations are synchronous and are only ever called from the storage
// worker thread (never a reactor).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sasl/scram.h"

namespace waddle::storage {

struct Account {
  std::string domain;
  std::string username;  // nodeprepped localpart
  sasl::ScramCredentials sha1;
  sasl::ScramCredentials sha256;
  std::string did;  // ATProto DID linked to the account ("did:plc:..."), empty = none
};

// RFC 6121 roster item with the server-side subscription state of Appendix A.
enum class Subscription { kNone, kTo, kFrom, kBoth };

struct RosterItem {
  std::string jid;   // bare JID of the contact
  std::string name;  // optional handle
  std::vector<std::string> groups;
  Subscription subscription = Subscription::kNone;
  bool ask_out = false;     // we sent subscribe, not answered yet ("Pending Out")
  bool pending_in = false;  // contact asked to subscribe to us, not answered ("Pending In")
  bool pre_approved = false;
  // An item that exists only to remember an inbound request (not in the user's roster):
  // not returned in roster results, not pushed.
  bool hidden = false;
  friend bool operator==(const RosterItem&, const RosterItem&) = default;
};

struct OfflineMessage {
  std::int64_t id = 0;
  std::string stanza;  // serialized XML of the message as stored
};

// Message archives (XEP-0313): one per account ("user@domain") or room ("room@service").
struct ArchiveEntry {
  std::string owner;
  std::string id;            // the stanza-id the message was given (XEP-0359), unique
  std::int64_t time_us = 0;  // when it was archived, microseconds since the epoch
  std::string with_bare;     // the other party
  std::string with_full;     // the same with its resource, when it has one
  std::string stanza;        // the message as archived (jabber:client)
  // A room's archive: kept whatever the owner (no account, no preferences); with_bare is
  // the room, with_full the occupant JID that sent it.
  bool room = false;
};

// Entries on their way into the archives, packed: the texts of every entry in one buffer, so
// that a batch costs a few allocations however many messages it holds (archiving is on the
// path of every message; an entry of separate strings cost seven allocations and frees).
class ArchiveBatch {
 public:
  struct Entry {  // views into the batch, valid while it is unchanged
    std::string_view owner, id;
    std::int64_t time_us = 0;
    std::string_view with_bare, with_full, stanza;
    bool room = false;
  };

  // Adds an entry; `write_stanza(std::string& out)` appends the message to `out`. The views
  // must not point into this batch (its buffer may move as it grows).
  template <class WriteStanza>
  void add(std::string_view owner, std::string_view id, std::int64_t time_us,
           std::string_view with_bare, std::string_view with_full, bool room,
           WriteStanza&& write_stanza) {
    Row row{time_us, text_.size(), {}, room};
    const std::string_view fields[] = {owner, id, with_bare, with_full};
    for (std::size_t i = 0; i < 4; ++i) {
      text_.append(fields[i]);
      row.length[i] = fields[i].size();
    }
    const std::size_t before = text_.size();
    write_stanza(text_);
    row.length[4] = text_.size() - before;
    stanza_bytes_ += row.length[4];
    rooms_ += room ? 1 : 0;
    rows_.push_back(row);
  }
  void add(const ArchiveEntry& e) {
    add(e.owner, e.id, e.time_us, e.with_bare, e.with_full, e.room,
        [&](std::string& out) { out += e.stanza; });
  }
  // Takes back the entry added last.
  void pop_back() {
    const Row& row = rows_.back();
    stanza_bytes_ -= row.length[4];
    rooms_ -= row.room ? 1 : 0;
    text_.resize(row.at);
    rows_.pop_back();
  }

  Entry operator[](std::size_t i) const {
    const Row& row = rows_[i];
    std::string_view field[5];
    std::size_t at = row.at;
    for (std::size_t f = 0; f < 5; ++f) {
      field[f] = std::string_view(text_).substr(at, row.length[f]);
      at += row.length[f];
    }
    return Entry{field[0], field[1], row.time_us, field[2], field[3], field[4], row.room};
  }
  std::size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }
  std::size_t rooms() const { return rooms_; }                  // entries of room archives
  std::uint64_t stanza_bytes() const { return stanza_bytes_; }  // the messages' text
  std::size_t capacity() const { return rows_.capacity(); }
  // Empties the batch, keeping its memory for the next one.
  void clear() {
    text_.clear();
    rows_.clear();
    stanza_bytes_ = 0;
    rooms_ = 0;
  }
  std::size_t text_capacity() const { return text_.capacity(); }
  void reserve(std::size_t entries, std::size_t bytes) {
    rows_.reserve(entries);
    text_.reserve(bytes);
  }
  std::size_t text_bytes() const { return text_.size(); }

 private:
  struct Row {
    std::int64_t time_us;
    std::size_t at;         // where the entry's texts start in text_
    std::size_t length[5];  // owner, id, with_bare, with_full, stanza
    bool room;
  };
  std::string text_;
  std::vector<Row> rows_;
  std::uint64_t stanza_bytes_ = 0;
  std::size_t rooms_ = 0;
};

struct ArchiveFilter {
  std::string with;  // a bare JID matches with_bare, a full JID with_full; empty = anyone
  std::optional<std::int64_t> start_us, end_us;  // inclusive
  std::string after_id, before_id;               // exclusive bounds, by id
  // Paging backwards (XEP-0059 <before/>): the newest results first, before before_id if
  // given (the page is still returned oldest first).
  bool backwards = false;
  std::vector<std::string> ids;  // only these (empty = no such filter)
  std::size_t max = 50;
};

struct ArchivePage {
  std::vector<ArchiveEntry> items;  // oldest first
  bool complete = true;             // no more results beyond the page, in the direction of paging
  bool unknown_id = false;          // after_id or before_id is not in this archive
};

// XEP-0313 §6 archiving preferences: default "always", "never" or "roster".
struct ArchivePrefs {
  std::string default_mode = "always";
  std::vector<std::string> always, never;  // bare JIDs
  friend bool operator==(const ArchivePrefs&, const ArchivePrefs&) = default;
};

// An abuse report sent with a block command (XEP-0377): `username`@`domain` reported `jid`.
struct SpamReport {
  std::string domain;
  std::string username;
  std::string jid;
  std::string reason;  // "spam", "abuse" or "other"
  std::string text;
  std::int64_t reported_at = 0;  // Unix seconds; set by the storage
  friend bool operator==(const SpamReport&, const SpamReport&) = default;
};

// A push notification registration (XEP-0357 §5) of an account: the app server's JID and node,
// the publish-options form to forward (serialized XML, empty = none), and whether the user
// opted in to message bodies in notifications.
struct PushRegistration {
  std::string jid;
  std::string node;
  std::string options;
  bool include_body = false;
  friend bool operator==(const PushRegistration&, const PushRegistration&) = default;
};

// A PEP node (XEP-0163) of an account: its name and configuration, as im/logic/pep_config.h
// encodes it.
struct PepNode {
  std::string name;
  std::string config;
  friend bool operator==(const PepNode&, const PepNode&) = default;
};
// An item of a PEP node: its id, the full JID that published it, when (Unix microseconds), and
// its payload (serialized XML).
struct PepStoredItem {
  std::string id;
  std::string publisher;
  std::int64_t published_us = 0;
  std::string payload;
  friend bool operator==(const PepStoredItem&, const PepStoredItem&) = default;
};
enum class PepCreated { kCreated, kExists, kTooMany };

class Storage {
 public:
  virtual ~Storage() = default;

  // Accounts. create_account returns false when the account exists.
  virtual bool create_account(const Account& account) = 0;
  virtual std::optional<Account> get_account(const std::string& domain,
                                             const std::string& username) = 0;
  // Replaces both credential sets; false when the account does not exist.
  virtual bool set_credentials(const std::string& domain, const std::string& username,
                               const sasl::ScramCredentials& sha1,
                               const sasl::ScramCredentials& sha256) = 0;
  // Links an ATProto DID to the account (empty = unlink); false when the account is absent.
  virtual bool set_did(const std::string& domain, const std::string& username,
                       const std::string& did) = 0;
  // Removes the account with its roster, offline messages, blocklist, archive, push
  // registrations, PEP nodes, private XML and vCard; false when absent.
  virtual bool delete_account(const std::string& domain, const std::string& username) = 0;
  virtual std::vector<std::string> list_accounts(const std::string& domain) = 0;

  // Rosters (the owner is domain + username).
  virtual std::vector<RosterItem> roster_get(const std::string& domain,
                                             const std::string& username) = 0;
  virtual std::optional<RosterItem> roster_item(const std::string& domain,
                                                const std::string& username,
                                                const std::string& contact) = 0;
  // Inserts or replaces the item keyed by item.jid.
  virtual void roster_put(const std::string& domain, const std::string& username,
                          const RosterItem& item) = 0;
  virtual bool roster_remove(const std::string& domain, const std::string& username,
                             const std::string& contact) = 0;
  // The roster's version (RFC 6121 §2.6): raised by every roster_put, every roster_remove
  // that removed an item, and delete_account; 0 for a roster never written.
  virtual std::uint64_t roster_version(const std::string& domain, const std::string& username) = 0;

  // Offline messages (XEP-0160). offline_store returns false when `max` are already stored,
  // or when the stored stanzas and this one would exceed `max_bytes` together.
  virtual bool offline_store(const std::string& domain, const std::string& username,
                             const std::string& stanza, std::uint32_t max,
                             std::uint64_t max_bytes) = 0;
  // Returns the stored messages oldest first and deletes them.
  virtual std::vector<OfflineMessage> offline_take(const std::string& domain,
                                                   const std::string& username) = 0;
  virtual std::size_t offline_count(const std::string& domain, const std::string& username) = 0;

  // Message archives. archive_append stores the entries (one transaction) of rooms, and of
  // existing accounts whose preferences keep them (the account's prefs, else `default_mode`;
  // "roster" asks the account's roster); returns how many were stored.
  virtual std::size_t archive_append(const ArchiveBatch& batch,
                                     const std::string& default_mode) = 0;
  std::size_t archive_append(const std::vector<ArchiveEntry>& entries,
                             const std::string& default_mode) {
    ArchiveBatch batch;
    for (const auto& e : entries) batch.add(e);
    return archive_append(batch, default_mode);
  }
  virtual ArchivePage archive_query(const std::string& owner, const ArchiveFilter& filter) = 0;
  // The oldest and the newest entry (XEP-0313 §5.1 metadata), if any.
  virtual std::optional<std::pair<ArchiveEntry, ArchiveEntry>> archive_bounds(
      const std::string& owner) = 0;
  // Retention: removes entries archived before `before_us`, and the oldest of each archive
  // beyond `max_per_owner` entries (0 = no limit); returns how many went.
  virtual std::uint64_t archive_expire(std::int64_t before_us, std::uint64_t max_per_owner) = 0;
  // Removes one archive (a room that went away) with its preferences; returns how many
  // entries went.
  virtual std::uint64_t archive_delete(const std::string& owner) = 0;
  // Replaces the stanza of the entry with the stanza-id `id` in `owner`'s archive (a message
  // retracted by a room's moderator, XEP-0425, keeps its place as a tombstone); false when
  // there is no such entry.
  virtual bool archive_replace(const std::string& owner, const std::string& id,
                               const std::string& stanza) = 0;
  virtual std::optional<ArchivePrefs> archive_prefs(const std::string& owner) = 0;
  virtual void archive_set_prefs(const std::string& owner, const ArchivePrefs& prefs) = 0;
  // Blocklists (XEP-0191): the account's blocked JIDs, sorted. blocklist_add ignores JIDs
  // already there; blocklist_remove with no JIDs removes them all.
  virtual std::vector<std::string> blocklist_get(const std::string& domain,
                                                 const std::string& username) = 0;
  virtual void blocklist_add(const std::string& domain, const std::string& username,
                             const std::vector<std::string>& jids) = 0;
  virtual void blocklist_remove(const std::string& domain, const std::string& username,
                                const std::vector<std::string>& jids) = 0;
  // Abuse reports (XEP-0377), kept for the operator; listed oldest first per domain.
  virtual void spam_report_add(const SpamReport& report) = 0;
  virtual std::vector<SpamReport> spam_reports(const std::string& domain) = 0;

  // Push registrations (XEP-0357), oldest first. push_put adds `reg`, replacing one with the
  // same jid and node (the new one is then the newest), and removes the oldest beyond `max`;
  // push_remove removes those of `jid` (of `node` only, when not empty). Both return the
  // account's registrations afterwards.
  virtual std::vector<PushRegistration> push_get(const std::string& domain,
                                                 const std::string& username) = 0;
  virtual std::vector<PushRegistration> push_put(const std::string& domain,
                                                 const std::string& username,
                                                 const PushRegistration& reg, std::size_t max) = 0;
  virtual std::vector<PushRegistration> push_remove(const std::string& domain,
                                                    const std::string& username,
                                                    const std::string& jid,
                                                    const std::string& node) = 0;

  // PEP nodes and items (XEP-0163) of an account. pep_create refuses a node that exists, and
  // any beyond `max_nodes`; pep_configure replaces a node's configuration and keeps its newest
  // `max_items` items. pep_publish stores an item, replacing one with the same id (the new one
  // is then the newest), and removes the oldest beyond `max_items`. pep_items gives the items
  // with the given ids, or (none given) the newest `max`, newest first. The bool results say
  // whether the node (or item) was there.
  virtual std::vector<PepNode> pep_nodes(const std::string& domain,
                                         const std::string& username) = 0;
  virtual std::optional<PepNode> pep_node(const std::string& domain, const std::string& username,
                                          const std::string& node) = 0;
  virtual PepCreated pep_create(const std::string& domain, const std::string& username,
                                const PepNode& node, std::size_t max_nodes) = 0;
  virtual bool pep_configure(const std::string& domain, const std::string& username,
                             const PepNode& node, std::uint32_t max_items) = 0;
  virtual bool pep_delete_node(const std::string& domain, const std::string& username,
                               const std::string& node) = 0;
  virtual bool pep_purge(const std::string& domain, const std::string& username,
                         const std::string& node) = 0;
  virtual void pep_publish(const std::string& domain, const std::string& username,
                           const std::string& node, const PepStoredItem& item,
                           std::uint32_t max_items) = 0;
  virtual bool pep_retract(const std::string& domain, const std::string& username,
                           const std::string& node, const std::string& item_id) = 0;
  virtual std::vector<PepStoredItem> pep_items(const std::string& domain,
                                               const std::string& username, const std::string& node,
                                               const std::vector<std::string>& ids,
                                               std::size_t max) = 0;

  // An account's private XML (XEP-0049) and vCard (XEP-0054), by key ("{namespace}name" for
  // private XML): the element as written. private_put with an empty value removes the key,
  // and refuses (false) a new key beyond `max_keys`.
  virtual std::optional<std::string> private_get(const std::string& domain,
                                                 const std::string& username,
                                                 const std::string& key) = 0;
  virtual bool private_put(const std::string& domain, const std::string& username,
                           const std::string& key, const std::string& value,
                           std::size_t max_keys) = 0;

  // Persistent chat rooms (XEP-0045) of a room service: saved state as text, by room name.
  virtual void room_put(const std::string& service, const std::string& name,
                        const std::string& data) = 0;
  virtual bool room_delete(const std::string& service, const std::string& name) = 0;
  virtual std::vector<std::pair<std::string, std::string>> room_list(
      const std::string& service) = 0;
};

// Opens (creating when needed) the SQLite database at `path` in WAL mode and brings its
// schema to the current version. Throws std::runtime_error with a readable message on failure.
std::unique_ptr<Storage> open_sqlite(const std::string& path);

}  // namespace waddle::storage
