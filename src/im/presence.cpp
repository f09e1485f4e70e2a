// RFC 6121 §4 on the server: presence broadcast, directed presence, probes, and the
// presence a new session receives at login (§4.2.2, §3.1.3).
#include "im/presence.h"

#include <boost/asio.hpp>

#include <algorithm>
#include <vector>

#include "im/blocking.h"
#include "im/caps.h"
#include "im/logic/subscription.h"
#include "im/pep.h"
#include "net/worker.h"
#include "storage/storage.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using xml::Element;

void Presence::from_client(Element stanza, const Jid& from) {
  auto type = stanza.attr("type");
  if (!stanza.has_attr("to")) {
    if (type.empty() || type == "unavailable") {
      if (auto* s = ctx_.router.find(from)) broadcast(*s, std::move(stanza));
    }
    return;  // probes, errors and subscription types without 'to' mean nothing here
  }
  auto to = Jid::parse(stanza.attr("to"));
  if (!to) return ctx_.router.bounce(stanza, StanzaError::kJidMalformed);
  if (is_subscription_type(type))
    return ctx_.spawn(subscriptions_.outbound(std::move(stanza), from, *to));
  if (type.empty() && ctx_.pep) ctx_.pep->stamp_avatar(stanza, from.bare());  // XEP-0398 §4
  if (type.empty() || type == "unavailable") {
    // Directed presence (§4.6): remember who got it so they learn when we go away.
    if (auto* s = ctx_.router.find(from)) {
      if (type.empty())
        s->directed_to.insert(to->str());
      else
        s->directed_to.erase(to->str());
    }
  }
  ctx_.route_from_user(std::move(stanza));
}

void Presence::to_local(Element stanza, const Jid& from, const Jid& to) {
  auto type = stanza.attr("type");
  if (is_subscription_type(type))
    return ctx_.spawn(subscriptions_.inbound(std::move(stanza), from, to));
  if (type == "probe") return ctx_.spawn(answer_probe(std::move(stanza), from, to));
  // A contact's resource (XEP-0115): its capabilities, asked about by the user it wrote to.
  // Only presence to the bare JID, as contacts broadcast it (RFC 6121 §4.2.2): not what
  // room occupants or directed presence send to a resource.
  if (ctx_.caps && to.is_bare() && !from.is_bare() && from.bare() != to) {
    if (type.empty()) {
      ctx_.caps->presence(from, stanza, to.str());
      if (ctx_.pep) ctx_.pep->available(to, from);  // XEP-0163: a recipient of to's events
    } else if (type == "unavailable") {
      ctx_.caps->forget(from);
      if (ctx_.pep) ctx_.pep->unavailable(to, from);
    }
  }
  if (!to.is_bare()) {
    if (auto* s = ctx_.router.find(to)) s->deliver(stanza);
    return;
  }
  ctx_.deliver_to_available(to, stanza);
}

void Presence::session_ended(router::LocalSession& s) {
  if (!s.available && s.directed_to.empty()) return;
  Element p("presence", std::string(ns::kClient));
  p.set_attr("type", "unavailable");
  broadcast(s, std::move(p));
}

// §4.2 / §4.5: presence broadcast of a session's own availability.
void Presence::broadcast(router::LocalSession& s, Element stanza) {
  const bool unavailable = stanza.attr("type") == "unavailable";
  const bool initial = !unavailable && !s.available;
  stanza.set_attr("from", s.jid().str());
  stanza.remove_attr("to");
  if (!unavailable && ctx_.pep) ctx_.pep->stamp_avatar(stanza, s.jid().bare());  // XEP-0398 §4
  if (ctx_.caps) {  // XEP-0115: the resource's capabilities, asked about by its domain
    if (unavailable) {
      ctx_.caps->forget(s.jid());
      if (ctx_.pep) ctx_.pep->unavailable(s.jid().bare(), s.jid());
    } else {
      ctx_.caps->presence(s.jid(), stanza, s.jid().domain());
      if (ctx_.pep) ctx_.pep->available(s.jid().bare(), s.jid());  // its own events
    }
  }
  if (unavailable) {
    if (!s.available && s.directed_to.empty()) return;
    s.available = false;
  } else {
    s.available = true;
    std::string prio = stanza.child_text("priority");
    try {
      s.priority = prio.empty() ? 0 : std::clamp(std::stoi(prio), -128, 127);
    } catch (...) {
      s.priority = 0;
    }
    s.last_presence = stanza;
  }
  // The user's own resources, including the sender (§4.2.2).
  for (auto* r : ctx_.router.sessions_of(s.jid().bare())) {
    if (r->available || r == &s) {
      Element copy = stanza;
      copy.set_attr("to", r->jid().str());
      r->deliver(copy);
    }
  }
  std::set<std::string> directed;
  if (unavailable) directed.swap(s.directed_to);
  ctx_.spawn(broadcast_to_contacts(s.jid(), std::move(stanza), initial, std::move(directed)));
}

asio::awaitable<void> Presence::broadcast_to_contacts(Jid full, Element stanza, bool initial,
                                                      std::set<std::string> directed) {
  Jid bare = full.bare();
  std::string domain = bare.domain(), user = bare.local();
  auto load_roster = [=](storage::Storage& st) { return st.roster_get(domain, user); };
  auto roster = co_await ctx_.worker.run(std::move(load_roster));
  // XEP-0191 §3.3: blocked contacts get nothing (`blocked` is valid until the next co_await).
  const logic::Blocklist* blocked = ctx_.blocking ? ctx_.blocking->list_of(bare) : nullptr;
  auto is_blocked = [&](const std::string& jid) { return blocked && blocked->blocks(jid); };
  for (const auto& item : roster) {
    if (logic::receives_presence(item) && !is_blocked(item.jid)) {
      directed.erase(item.jid);
      Element copy = stanza;
      copy.set_attr("to", item.jid);
      ctx_.router.route(std::move(copy));
    }
  }
  for (const auto& to : directed) {
    if (is_blocked(to)) continue;
    Element copy = stanza;
    copy.set_attr("to", to);
    ctx_.route_from_user(std::move(copy));
  }
  if (!initial) co_return;
  auto* s = ctx_.router.find(full);
  if (!s) co_return;
  // §4.2.2: probe the contacts we are subscribed to, and show this resource the others.
  for (const auto& item : roster)
    if (logic::sends_presence(item) && !is_blocked(item.jid))
      ctx_.router.route(presence("probe", bare.str(), item.jid));
  for (auto* r : ctx_.router.sessions_of(bare)) {
    if (r != s && r->available) {
      Element copy = r->last_presence;
      copy.set_attr("to", full.str());
      s->deliver(copy);
    }
  }
  // §3.1.3: subscription requests that arrived while offline are delivered at login.
  for (const auto& item : roster)
    if (item.pending_in) s->deliver(presence("subscribe", item.jid, bare.str()));
  if (s->priority >= 0) co_await offline_.deliver(full);
}

// §4.3.2: answer a probe from a contact subscribed to the user.
asio::awaitable<void> Presence::answer_probe(Element stanza, Jid from, Jid to) {
  Jid user = to.bare();
  std::string c = from.bare_str(), domain = user.domain(), name = user.local();
  auto load_item = [=](storage::Storage& st) { return st.roster_item(domain, name, c); };
  auto item = co_await ctx_.worker.run(std::move(load_item));
  if (!item || !logic::receives_presence(*item)) co_return;
  const std::string asker(stanza.attr("from"));
  if (ctx_.available(user, false).empty()) {
    ctx_.router.route(presence("unavailable", user.str(), asker));
    co_return;
  }
  ctx_.send_presence_of(user, asker);
}

}  // namespace waddle::im
