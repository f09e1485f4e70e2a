// RFC 6121 §2 on the server: roster get, set and remove, and roster pushes.
#include "im/roster.h"

#include <boost/asio.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "net/worker.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using storage::RosterItem;
using xml::Element;

namespace {

const std::string kRosterNs(ns::kRoster);

// A roster get's read: the current version, and the items unless the client has them.
struct RosterRead {
  std::string version;
  std::vector<RosterItem> items;
  bool current = false;
};

Element item_xml(const RosterItem& item) {
  Element e("item", kRosterNs);
  e.set_attr("jid", item.jid);
  if (!item.name.empty()) e.set_attr("name", item.name);
  e.set_attr("subscription", logic::subscription_name(item.subscription));
  if (logic::shows_ask(item)) e.set_attr("ask", "subscribe");
  if (logic::shows_approved(item)) e.set_attr("approved", "true");
  for (const auto& g : item.groups) e.add_child("group", kRosterNs).add_text(g);
  return e;
}

}  // namespace

void Roster::push(const Jid& bare, const RosterItem& item, std::uint64_t version) {
  push_element(bare, item_xml(item), version);
}

void Roster::push_element(const Jid& bare, const Element& item, std::uint64_t version) {
  for (auto* s : ctx_.router.sessions_of(bare)) {
    if (!s->roster_requested) continue;
    Element iq("iq", std::string(ns::kClient));
    iq.set_attr("type", "set");
    iq.set_attr("id", "push" + std::to_string(++push_counter_));
    iq.set_attr("to", s->jid().str());
    auto& query = iq.add_child("query", kRosterNs);
    if (version != 0) query.set_attr("ver", std::to_string(version));
    query.add_child(item);
    s->deliver(iq);
  }
}

// A plain function (not a coroutine): see net::Worker::run about closures and GCC 12.
asio::awaitable<logic::Transition> Roster::apply(const Jid& user, const std::string& contact,
                                                 Event event, std::uint32_t max_hidden) {
  auto update_item = [domain = user.domain(), name = user.local(), contact,
                      event = std::move(event), max_hidden](storage::Storage& st) {
    auto current = st.roster_item(domain, name, contact);
    logic::Transition t = event(current);
    if (!current && t.store && t.item && t.item->hidden && max_hidden != UINT32_MAX) {
      std::size_t hidden = 0;
      for (const auto& item : st.roster_get(domain, name)) hidden += item.hidden ? 1 : 0;
      if (hidden >= max_hidden) {
        logic::Transition refused;
        refused.refused = true;
        return refused;
      }
    }
    if (t.store) {
      if (t.item)
        st.roster_put(domain, name, *t.item);
      else
        st.roster_remove(domain, name, contact);
      t.roster_version = st.roster_version(domain, name);
    }
    return t;
  };
  return ctx_.worker.run(std::move(update_item));
}

// Not a coroutine itself: it only chooses the one that answers.
asio::awaitable<void> Roster::handle_iq(Element iq, Jid from) {
  if (iq.attr("type") == "get") return get(std::move(iq), std::move(from));
  return change(std::move(iq), std::move(from));
}

// A roster set or remove carries exactly one item, a valid contact other than the user
// (§2.3.3); the error reply when it does not.
std::optional<Element> Roster::refusal(const Element& iq, const Jid& user) {
  auto items = iq.child("query", ns::kRoster)->children("item", ns::kRoster);
  if (items.size() != 1)
    return xml::make_error_reply(iq, StanzaError::kBadRequest,
                                 "A roster set carries exactly one item");
  auto contact = Jid::parse(items.front()->attr("jid"));
  if (!contact || !contact->is_bare()) return xml::make_error_reply(iq, StanzaError::kJidMalformed);
  if (*contact == user)
    return xml::make_error_reply(iq, StanzaError::kNotAllowed, "Your own JID cannot be a contact");
  return std::nullopt;
}

asio::awaitable<void> Roster::change(Element iq, Jid from) {
  if (auto refused = refusal(iq, from.bare())) {
    ctx_.deliver_to(from, *refused);
    co_return;
  }
  Element item = *iq.child("query", ns::kRoster)->child("item", ns::kRoster);
  std::string contact = Jid::parse(item.attr("jid"))->str();
  if (item.attr("subscription") == "remove") {
    co_await remove(std::move(iq), from, std::move(contact));
    co_return;
  }
  co_await set(std::move(iq), from, std::move(contact), std::move(item));
}

// §2.1.3: the roster, without hidden items; the resource becomes interested in pushes.
// §2.6.3: a client that names the current version already has it and gets an empty result;
// any other version gets the whole roster (the server keeps no history to send pushes from).
asio::awaitable<void> Roster::get(Element iq, Jid from) {
  std::string domain = from.domain(), name = from.local();
  const Element* asked = iq.child("query", ns::kRoster);
  std::optional<std::string> cached;
  if (asked && asked->has_attr("ver")) cached = std::string(asked->attr("ver"));
  auto load_roster = [=](storage::Storage& st) {
    RosterRead read{std::to_string(st.roster_version(domain, name)), {}, false};
    read.current = cached && *cached == read.version;
    if (!read.current) read.items = st.roster_get(domain, name);
    return read;
  };
  auto roster = co_await ctx_.worker.run(std::move(load_roster));
  Element r = xml::make_iq_result(iq);
  r.remove_attr("from");
  if (!roster.current) {
    auto& q = r.add_child("query", kRosterNs);
    q.set_attr("ver", roster.version);
    for (const auto& item : roster.items)
      if (!item.hidden) q.add_child(item_xml(item));
  }
  if (auto* s = ctx_.router.find(from)) {
    s->roster_requested = true;
    s->deliver(r);
  }
}

// §2.5: the item goes, and the contact learns that the subscriptions are over.
asio::awaitable<void> Roster::remove(Element iq, Jid from, std::string contact) {
  Jid user = from.bare();
  std::string domain = user.domain(), name = user.local();
  auto remove_item = [=](storage::Storage& st) {
    auto cur = st.roster_item(domain, name, contact);
    auto res = logic::roster_remove(cur);
    if (res.t.store) st.roster_remove(domain, name, contact);
    return std::make_tuple(cur.has_value() && !cur->hidden, res, st.roster_version(domain, name));
  };
  auto outcome = co_await ctx_.worker.run(std::move(remove_item));
  if (!std::get<0>(outcome)) {
    ctx_.deliver_to(from, xml::make_error_reply(iq, StanzaError::kItemNotFound));
    co_return;
  }
  Element removed("item", kRosterNs);
  removed.set_attr("jid", contact);
  removed.set_attr("subscription", "remove");
  push_element(user, removed, std::get<2>(outcome));
  ctx_.deliver_to(from, xml::make_iq_result(iq));
  if (std::get<1>(outcome).send_unsubscribe)
    ctx_.router.route(presence("unsubscribe", user.str(), contact));
  if (std::get<1>(outcome).send_unsubscribed)
    ctx_.router.route(presence("unsubscribed", user.str(), contact));
}

// §2.3: name and groups replaced, subscription state kept.
asio::awaitable<void> Roster::set(Element iq, Jid from, std::string contact, Element item) {
  Jid user = from.bare();
  std::vector<std::string> groups;
  for (const auto* g : item.children("group", ns::kRoster)) {
    std::string text = g->text();
    if (text.empty()) {
      ctx_.deliver_to(from,
                      xml::make_error_reply(iq, StanzaError::kNotAcceptable, "Empty group name"));
      co_return;
    }
    if (std::find(groups.begin(), groups.end(), text) == groups.end()) groups.push_back(text);
  }
  std::string item_name(item.attr("name"));
  Event set_item = [=](const std::optional<RosterItem>& cur) {
    return logic::roster_set(cur, contact, item_name, groups);
  };
  auto t = co_await apply(user, contact, std::move(set_item));
  if (t.push && t.item) push(user, *t.item, t.roster_version);
  ctx_.deliver_to(from, xml::make_iq_result(iq));
}

}  // namespace waddle::im
