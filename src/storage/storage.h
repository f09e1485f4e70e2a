// Storage interfaces: accounts, rosters, offline messages, blocklists and abuse reports, and
// persistent rooms. Implementations are synchronous and are only ever called from the storage
// worker thread (never a reactor).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
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
  // Removes the account with its roster, offline messages and blocklist; false when absent.
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

  // Offline messages (XEP-0160). offline_store returns false when `max` are already stored,
  // or when the stored stanzas and this one would exceed `max_bytes` together.
  virtual bool offline_store(const std::string& domain, const std::string& username,
                             const std::string& stanza, std::uint32_t max,
                             std::uint64_t max_bytes) = 0;
  // Returns the stored messages oldest first and deletes them.
  virtual std::vector<OfflineMessage> offline_take(const std::string& domain,
                                                   const std::string& username) = 0;
  virtual std::size_t offline_count(const std::string& domain, const std::string& username) = 0;

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
