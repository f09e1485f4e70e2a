// Presence (RFC 6121 §4): a session's own availability broadcast to its resources and
// contacts, directed presence (§4.6), probes (§4.3), presence for local users (§8.5), and
// the subscription stanzas handed to Subscriptions.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <set>
#include <string>

#include "core/jid.h"
#include "im/context.h"
#include "im/offline.h"
#include "im/subscriptions.h"
#include "router/router.h"
#include "xml/element.h"

namespace waddle::im {

class Presence {
 public:
  Presence(const Context& ctx, Subscriptions& subscriptions, Offline& offline)
      : ctx_(ctx), subscriptions_(subscriptions), offline_(offline) {}

  // A presence stanza sent by the local session bound to `from`.
  void from_client(xml::Element stanza, const core::Jid& from);
  // A presence stanza for the local user (not a domain) `to`.
  void to_local(xml::Element stanza, const core::Jid& from, const core::Jid& to);
  // The session is going away: unavailable presence for it, if it was available.
  void session_ended(router::LocalSession& session);

 private:
  void broadcast(router::LocalSession& s, xml::Element stanza);
  boost::asio::awaitable<void> broadcast_to_contacts(core::Jid full, xml::Element stanza,
                                                     bool initial, std::set<std::string> directed);
  boost::asio::awaitable<void> answer_probe(xml::Element stanza, core::Jid from, core::Jid to);

  const Context& ctx_;
  Subscriptions& subscriptions_;
  Offline& offline_;
};

}  // namespace waddle::im
