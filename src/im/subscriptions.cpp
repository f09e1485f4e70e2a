// RFC 6121 §3 on the server: routing and bookkeeping of subscription stanzas both ways.
#include "im/subscriptions.h"

#include <boost/asio.hpp>

#include <string>

#include "im/logic/subscription.h"
#include "im/pep.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using storage::RosterItem;
using xml::Element;

asio::awaitable<void> Subscriptions::outbound(Element stanza, Jid from, Jid to) {
  Jid user = from.bare(), contact = to.bare();
  std::string type(stanza.attr("type"));
  std::string c = contact.str();
  Roster::Event outbound_event = [type, c](const std::optional<RosterItem>& cur) {
    if (type == "subscribe") return logic::outbound_subscribe(cur, c);
    if (type == "subscribed") return logic::outbound_subscribed(cur, c);
    if (type == "unsubscribe") return logic::outbound_unsubscribe(cur, c);
    return logic::outbound_unsubscribed(cur, c);
  };
  auto t = co_await roster_.apply(user, c, std::move(outbound_event));
  if (t.push && t.item) roster_.push(user, *t.item, t.roster_version);
  if (!t.forward) co_return;
  // §3.1.2: subscription stanzas leave with the bare JID of the user.
  stanza.set_attr("from", user.str());
  stanza.set_attr("to", c);
  ctx_.router.route(std::move(stanza));
  if (type == "subscribed") {
    // §3.1.5: the new subscriber gets the user's current presence.
    ctx_.send_presence_of(user, c);
    // XEP-0163 §4.3.3: and the last items of the nodes it asks for.
    if (ctx_.pep) ctx_.pep->subscribed(user, contact);
  } else if (type == "unsubscribed") {
    for (auto* s : ctx_.available(user, false))
      ctx_.router.route(presence("unavailable", s->jid().str(), c));
  }
}

asio::awaitable<void> Subscriptions::inbound(Element stanza, Jid from, Jid to) {
  Jid user = to.bare(), contact = from.bare();
  std::string type(stanza.attr("type"));
  std::string c = contact.str();
  bool exists = co_await ctx_.account_exists(user);
  if (!exists) {
    if (type == "subscribe") ctx_.router.bounce(stanza, StanzaError::kServiceUnavailable);
    co_return;
  }
  Roster::Event inbound_event = [type, c](const std::optional<RosterItem>& cur) {
    if (type == "subscribe") return logic::inbound_subscribe(cur, c);
    if (type == "subscribed") return logic::inbound_subscribed(cur, c);
    if (type == "unsubscribe") return logic::inbound_unsubscribe(cur, c);
    return logic::inbound_unsubscribed(cur, c);
  };
  auto t = co_await roster_.apply(user, c, std::move(inbound_event),
                                  ctx_.config.c2s.max_pending_subscriptions);
  if (t.refused) {
    ctx_.router.bounce(stanza, StanzaError::kResourceConstraint,
                       "The recipient has too many unanswered subscription requests");
    co_return;
  }
  if (t.push && t.item) roster_.push(user, *t.item, t.roster_version);
  if (t.auto_subscribed) {
    ctx_.router.route(presence("subscribed", user.str(), c));
    ctx_.send_presence_of(user, c);
    if (ctx_.pep) ctx_.pep->subscribed(user, contact);
  }
  if (t.forward) {
    stanza.set_attr("from", c);
    ctx_.deliver_to_available(user, stanza);
  }
}

}  // namespace waddle::im
