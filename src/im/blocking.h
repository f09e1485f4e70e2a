// Blocking Command (XEP-0191) with abuse reports (XEP-0377) on the server: the commands a
// client sends to its own account (§3.2-§3.5: blocklist, block, unblock, pushes to the
// resources that asked for the list), and the blocklists applied to what local accounts
// receive from and send to blocked JIDs and domains (§3.3 and §3.4, XEP-0016 §2.1 matching).
// Lists are kept in memory for accounts with sessions only.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/jid.h"
#include "im/context.h"
#include "im/logic/blocklist.h"
#include "router/flow.h"
#include "router/router.h"
#include "storage/storage.h"
#include "xml/element.h"

namespace waddle::im {

class Blocking {
 public:
  // Continues a stanza that waited for its account's list to be read, past the screening:
  // into ImService's to_local (inbound, with its `again`) or from_client (outbound).
  using Resume = std::function<void(xml::Element stanza, bool again)>;

  Blocking(const Context& ctx, Resume inbound, Resume outbound)
      : ctx_(ctx), inbound_(std::move(inbound)), outbound_(std::move(outbound)) {}

  // A <blocklist/>, <block/> or <unblock/> IQ (sent by a client to its own account).
  static bool is_command(const xml::Element& iq) { return logic::is_block_command(iq); }
  boost::asio::awaitable<void> handle_command(xml::Element iq, core::Jid from);

  // A stanza from `from` for the local account `to`: true when taken here (refused, dropped,
  // or held until the account's list has been read, then continued through `inbound`).
  bool screen_inbound(xml::Element& stanza, const core::Jid& from, const core::Jid& to, bool again);
  // A stanza sent by the local session `from` (its first one starts reading the account's
  // list): true when taken here (refused, or held as above and continued via `outbound`).
  bool screen_outbound(xml::Element& stanza, const core::Jid& from);
  // The list of `user` (an account with sessions) when it is cached and not empty, else null.
  // Valid until the next co_await. The list is read on a session's first stanza, so before
  // the roster that its presence broadcast reads (the storage worker runs jobs in order).
  const logic::Blocklist* list_of(const core::Jid& user) const;
  // A session goes away: it gets no more pushes; after the last one the list leaves memory.
  void session_ended(router::LocalSession& session);

 private:
  using Waiter = std::function<void(const logic::Blocklist&)>;
  struct Entry {
    logic::Blocklist list;
    bool loaded = false;
    std::vector<Waiter> waiting;  // stanzas held while the list is read
    // Their sources (a client pipelining, a server stream), read no further until it is.
    std::unique_ptr<router::Congestion> loading;
    // Sessions that asked for the list (§3.2), which get the pushes.
    std::map<core::Jid, router::LocalSession*> interested;
  };
  // What a block or unblock did in storage.
  struct Change {
    bool too_many = false;                    // refused: past logic::kMaxBlocklistItems
    std::vector<std::string> changed;         // added or removed
    std::vector<std::string> list;            // the whole list afterwards
    std::vector<storage::RosterItem> roster;  // when something changed
  };

  std::unordered_map<std::string, Entry>::iterator start_loading(const core::Jid& user);
  void with_list(const core::Jid& user, Waiter then);
  boost::asio::awaitable<void> load(core::Jid user, Waiter then);
  void loaded(const core::Jid& user, bool read_ok, const std::vector<std::string>& jids,
              const Waiter& then);
  void settle(const core::Jid& user, std::optional<logic::Blocklist> list, bool authoritative);
  void hold_source(Entry& e);
  boost::asio::awaitable<void> evict(core::Jid user);
  void count() const;  // the waddle_blocklists_cached gauge
  bool needs_reading(const xml::Element& stanza, const core::Jid& to) const;
  void refuse_inbound(const xml::Element& stanza);
  void refuse_outbound(const xml::Element& stanza, const core::Jid& from);

  boost::asio::awaitable<void> get(xml::Element iq, core::Jid from);
  boost::asio::awaitable<void> change(xml::Element iq, core::Jid from, logic::BlockCommand cmd);
  void changed(const xml::Element& iq, const core::Jid& from, const logic::BlockCommand& cmd,
               const Change& c);
  void push(const core::Jid& user, const logic::BlockCommand& cmd);
  void blocked_presence(const core::Jid& user, const Change& c);
  void unblocked_presence(const core::Jid& user, const Change& c);

  const Context& ctx_;
  Resume inbound_;
  Resume outbound_;
  std::unordered_map<std::string, Entry> cache_;  // by bare JID
  std::uint64_t push_counter_ = 0;
};

}  // namespace waddle::im
