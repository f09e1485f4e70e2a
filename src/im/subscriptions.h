// Presence subscriptions (RFC 6121 §3): the user's outbound subscription stanzas and the
// contacts' inbound ones, applied to the roster through the state machine of im/logic.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "core/jid.h"
#include "im/context.h"
#include "im/roster.h"
#include "xml/element.h"

namespace waddle::im {

class Subscriptions {
 public:
  Subscriptions(const Context& ctx, Roster& roster) : ctx_(ctx), roster_(roster) {}

  // A subscription stanza the local user `from` sends to `to` (A.2).
  boost::asio::awaitable<void> outbound(xml::Element stanza, core::Jid from, core::Jid to);
  // A subscription stanza from the contact `from` to the local user `to` (A.3).
  boost::asio::awaitable<void> inbound(xml::Element stanza, core::Jid from, core::Jid to);

 private:
  const Context& ctx_;
  Roster& roster_;
};

}  // namespace waddle::im
