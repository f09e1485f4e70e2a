// Personal eventing (XEP-0163) on every local account's bare JID, with the XEP-0060 subset
// PEP clients use: publish with auto-create and publish-options (XEP-0223), retract, items,
// create, configure, delete and purge, with the access models of im/logic/pep_config.h.
// Nodes and items live in storage; each request is one job of the storage worker, so the
// read-modify-write of a node is never interleaved with another. Notifications go to the
// resources that sent the owner available presence (the owner's own, and contacts' local or
// remote) whose capabilities (XEP-0115, im/caps.h) ask for the node (+notify) and who may read
// it; such a resource gets each node's last item when its features become known, and when the
// owner approves its subscription. At most ten times [c2s] caps_cache_size such resources are
// remembered.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/jid.h"
#include "im/context.h"
#include "im/logic/pep_config.h"
#include "im/pep_store.h"
#include "storage/storage.h"
#include "xml/element.h"

namespace waddle::im {

class Pep {
 public:
  explicit Pep(const Context& ctx) : ctx_(ctx) {}

  bool enabled() const { return ctx_.config.pep.enabled; }
  // A get or set IQ with a <pubsub/> payload (either namespace).
  static bool handles(const xml::Element& iq);
  // Such an IQ to the account `owner` (a bare JID), from its own clients or anyone else.
  boost::asio::awaitable<void> iq(xml::Element iq, core::Jid owner);
  // disco#items of `owner`'s bare JID: the nodes the asker may read.
  boost::asio::awaitable<void> disco_items(xml::Element iq, core::Jid owner);
  // XEP-0049 private XML (jabber:iq:private) of `owner`, for its own clients only.
  static bool handles_private(const xml::Element& iq);
  boost::asio::awaitable<void> private_iq(xml::Element iq, core::Jid owner);
  // XEP-0054 vcard-temp of `owner`: anyone gets it, its own clients set it.
  static bool handles_vcard(const xml::Element& iq);
  boost::asio::awaitable<void> vcard_iq(xml::Element iq, core::Jid owner);

  // Available presence of `full` to `owner` (a contact's resource to the owner's bare JID,
  // or one of the owner's own resources); call after Caps::presence.
  void available(const core::Jid& owner, const core::Jid& full);
  // Unavailable presence of `full` to `owner`.
  void unavailable(const core::Jid& owner, const core::Jid& full);
  // A local session ended: it gets nothing more from anyone.
  void session_ended(const core::Jid& full);
  // The capabilities of `full` became known (Caps::on_features).
  void features_known(const core::Jid& full);
  // `owner` approved the presence subscription of `contact` (a bare JID): its resources that
  // sent presence get the last items.
  void subscribed(const core::Jid& owner, const core::Jid& contact);
  // The account is gone (its nodes went with it in storage).
  void account_removed(const core::Jid& owner);

  // XEP-0398 §4: the avatar hash of an account with sessions goes into its available
  // presence. A session bound reads it (once per account); the account's last session gone
  // forgets it.
  void session_bound(const core::Jid& full);
  void session_gone(const core::Jid& full);
  // Puts the account's avatar hash into `presence` (available, from `owner`) as XEP-0398 §4
  // says: not into one with an empty <photo/>, over an empty <x/> or another hash.
  void stamp_avatar(xml::Element& presence, const core::Jid& owner) const;

 private:
  boost::asio::awaitable<void> send_last(core::Jid owner, std::vector<std::string> to);
  boost::asio::awaitable<void> load_avatar(core::Jid owner);
  // Sends each change to the resources of `owner`'s recipients that ask for its node and
  // may read it (`roster`: the owner's).
  void notify(const core::Jid& owner, const std::vector<pep_store::Change>& changes,
              const std::vector<storage::RosterItem>& roster);
  void count(std::string_view request, std::string_view result) const;

  const Context& ctx_;
  std::unordered_map<std::string, std::set<std::string>> recipients_;  // owner -> full JIDs
  std::unordered_map<std::string, std::set<std::string>> owners_of_;   // full JID -> owners
  std::size_t pairs_ = 0;
  // Accounts with sessions -> their avatar's id ("": none), once read (XEP-0398 §4).
  std::unordered_map<std::string, std::string> avatars_;
};

}  // namespace waddle::im
