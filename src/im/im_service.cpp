// RFC 6121 on the server: roster management (§2), subscriptions (§3, state machine in
// im/logic), presence broadcast and probes (§4), delivery rules (§8), offline storage
// (XEP-0160 with XEP-0203 stamps), and the server's disco/ping/version IQs.
#include "im/im_service.h"

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include <chrono>
#include <ctime>

#include "core/ids.h"
#include "core/jid.h"
#include "core/timestamp.h"
#include "core/version.h"
#include "identity/credential.h"
#include "im/logic/subscription.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "net/worker.h"
#include "storage/storage.h"
#include "xml/parser.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using storage::RosterItem;
using xml::Element;

namespace {

const std::string kClientNs(xml::ns::kClient);
const std::string kRosterNs(xml::ns::kRoster);
constexpr std::size_t kMaxHeld = 100;  // stanzas waiting for one room service's answer

bool is_subscription_type(std::string_view t) {
  return t == "subscribe" || t == "subscribed" || t == "unsubscribe" || t == "unsubscribed";
}

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

Element presence(std::string_view type, const std::string& from, const std::string& to) {
  Element p("presence", kClientNs);
  if (!type.empty()) p.set_attr("type", type);
  p.set_attr("from", from);
  p.set_attr("to", to);
  return p;
}

}  // namespace

struct ImService::Impl {
  const core::Config& config;
  router::Router& router;
  net::Worker& worker;
  asio::any_io_executor executor;
  metrics::C2sMetrics* metrics;
  const identity::SigningKey* key;
  std::uint64_t push_counter = 0;

  Impl(const core::Config& c, router::Router& r, net::Worker& w, asio::any_io_executor ex,
       metrics::C2sMetrics* m, const identity::SigningKey* k)
      : config(c), router(r), worker(w), executor(std::move(ex)), metrics(m), key(k) {}

  template <class Awaitable>
  void spawn(Awaitable a) {
    net::spawn_logged(executor, std::move(a), "im handler");
  }

  std::vector<router::LocalSession*> available(const Jid& bare, bool non_negative) {
    std::vector<router::LocalSession*> out;
    for (auto* s : router.sessions_of(bare))
      if (s->available && (!non_negative || s->priority >= 0)) out.push_back(s);
    return out;
  }

  // ---------------------------------------------------------------- from local clients
  void from_client(Element stanza) {
    auto from = Jid::parse(stanza.attr("from"));
    if (!from) return;
    switch (xml::stanza_kind(stanza)) {
      case xml::StanzaKind::kPresence:
        return client_presence(std::move(stanza), *from);
      case xml::StanzaKind::kMessage:
        // RFC 6120 §10.3.1: no 'to' means the sender's own bare JID.
        if (!stanza.has_attr("to")) stanza.set_attr("to", from->bare_str());
        return route_out(std::move(stanza));
      case xml::StanzaKind::kIq: {
        auto to = stanza.attr("to");
        if (to.empty() || to == from->bare_str())
          return spawn(own_account_iq(std::move(stanza), *from));
        return route_out(std::move(stanza));
      }
      case xml::StanzaKind::kOther:
        return;
    }
  }

  void client_presence(Element stanza, const Jid& from) {
    auto type = stanza.attr("type");
    if (!stanza.has_attr("to")) {
      if (type.empty() || type == "unavailable") {
        if (auto* s = router.find(from)) broadcast(*s, std::move(stanza));
      }
      return;  // probes, errors and subscription types without 'to' mean nothing here
    }
    auto to = Jid::parse(stanza.attr("to"));
    if (!to) return router.bounce(stanza, StanzaError::kJidMalformed);
    if (is_subscription_type(type))
      return spawn(outbound_subscription(std::move(stanza), from, *to));
    const bool vouch = type.empty() && key && !router.is_local(to->domain()) &&
                       stanza.child("x", ns::kMuc) &&
                       !stanza.child("credential", std::string(ns::kIdentity));
    if (type.empty() || type == "unavailable") {
      // Directed presence (§4.6): remember who got it so they learn when we go away.
      if (auto* s = router.find(from)) {
        if (type.empty())
          s->directed_to.insert(to->str());
        else
          s->directed_to.erase(to->str());
      }
    }
    if (vouch) return join_with_credential(std::move(stanza), to->domain());
    route_out(std::move(stanza));
  }

  // A user's stanza: while a join to that room service waits for the identity question,
  // later stanzas to the service wait behind it (a leave must not overtake its join).
  void route_out(Element stanza) {
    if (!held.empty()) {
      auto to = Jid::parse(stanza.attr("to"));
      if (auto it = to ? held.find(to->domain()) : held.end(); it != held.end()) {
        if (it->second.size() < kMaxHeld) {
          it->second.push_back(std::move(stanza));
          return;
        }
      }
    }
    router.route(std::move(stanza));
  }

  // Joining a room on another server: vouch for the user with a federated credential (spec
  // "Identity Verification"), bound to that room service, when the service understands them
  // (disco#info feature urn:waddle:identity, asked once and cached). Other servers' rooms
  // never see the credential, so it is not shown to their occupants.
  struct Support {
    bool yes = false;
    std::chrono::steady_clock::time_point until;
  };
  std::map<std::string, Support> identity_support;    // room service domain -> answer
  std::map<std::string, std::vector<Element>> held;   // joins waiting for that answer
  std::map<std::string, std::string> support_probes;  // disco IQ id -> room service domain

  void join_with_credential(Element stanza, const std::string& service) {
    auto now = std::chrono::steady_clock::now();
    if (auto it = identity_support.find(service);
        it != identity_support.end() && it->second.until > now) {
      if (it->second.yes) attach_credential(stanza, service);
      return router.route(std::move(stanza));
    }
    auto& waiting = held[service];
    if (waiting.size() >= kMaxHeld) return router.route(std::move(stanza));  // bounded
    waiting.push_back(std::move(stanza));
    if (waiting.size() > 1) return;  // asked already
    const std::string id = "waddle-identity-" + core::random_hex(6);
    support_probes[id] = service;
    Element iq("iq", kClientNs);
    iq.set_attr("type", "get").set_attr("id", id).set_attr("to", service);
    iq.set_attr("from", Jid::parse(waiting.front().attr("from"))->domain());
    iq.add_child("query", std::string(xml::ns::kDiscoInfo));
    router.route(std::move(iq));
    auto timer = std::make_shared<asio::steady_timer>(executor, std::chrono::seconds(5));
    timer->async_wait([this, timer, id](boost::system::error_code ec) {
      if (!ec && support_probes.contains(id)) support_answer(id, false);
    });
  }

  void attach_credential(Element& stanza, const std::string& service) {
    auto from = Jid::parse(stanza.attr("from"));
    if (!from) return;
    if (auto token = issue_credential(*from, service))
      stanza.add_child("credential", std::string(ns::kIdentity)).add_text(*token);
  }

  void support_answer(const std::string& id, bool yes) {
    auto p = support_probes.find(id);
    if (p == support_probes.end()) return;
    const std::string service = p->second;
    support_probes.erase(p);
    // A service that did not answer is asked again sooner than one that said no.
    identity_support[service] = {yes, std::chrono::steady_clock::now() +
                                          (yes ? std::chrono::hours(1) : std::chrono::minutes(10))};
    auto waiting = std::move(held[service]);
    held.erase(service);
    for (auto& st : waiting) {
      const bool join = st.name() == "presence" && !st.has_attr("type") &&
                        st.child("x", ns::kMuc) &&
                        !st.child("credential", std::string(ns::kIdentity));
      if (yes && join) attach_credential(st, service);
      router.route(std::move(st));
    }
  }

  // §4.2 / §4.5: presence broadcast of a session's own availability.
  void broadcast(router::LocalSession& s, Element stanza) {
    const bool unavailable = stanza.attr("type") == "unavailable";
    const bool initial = !unavailable && !s.available;
    stanza.set_attr("from", s.jid().str());
    stanza.remove_attr("to");
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
    for (auto* r : router.sessions_of(s.jid().bare())) {
      if (r->available || r == &s) {
        Element copy = stanza;
        copy.set_attr("to", r->jid().str());
        r->deliver(copy);
      }
    }
    std::set<std::string> directed;
    if (unavailable) directed.swap(s.directed_to);
    spawn(broadcast_to_contacts(s.jid(), std::move(stanza), initial, std::move(directed)));
  }

  asio::awaitable<void> broadcast_to_contacts(Jid full, Element stanza, bool initial,
                                              std::set<std::string> directed) {
    Jid bare = full.bare();
    std::string domain = bare.domain(), user = bare.local();
    auto job1 = [=](storage::Storage& st) { return st.roster_get(domain, user); };
    auto roster = co_await worker.run(std::move(job1));
    for (const auto& item : roster) {
      if (logic::receives_presence(item)) {
        directed.erase(item.jid);
        Element copy = stanza;
        copy.set_attr("to", item.jid);
        router.route(std::move(copy));
      }
    }
    for (const auto& to : directed) {
      Element copy = stanza;
      copy.set_attr("to", to);
      route_out(std::move(copy));
    }
    if (!initial) co_return;
    auto* s = router.find(full);
    if (!s) co_return;
    // §4.2.2: probe the contacts we are subscribed to, and show this resource the others.
    for (const auto& item : roster)
      if (logic::sends_presence(item)) router.route(presence("probe", bare.str(), item.jid));
    for (auto* r : router.sessions_of(bare)) {
      if (r != s && r->available) {
        Element copy = r->last_presence;
        copy.set_attr("to", full.str());
        s->deliver(copy);
      }
    }
    // §3.1.3: subscription requests that arrived while offline are delivered at login.
    for (const auto& item : roster)
      if (item.pending_in) s->deliver(presence("subscribe", item.jid, bare.str()));
    if (s->priority >= 0) co_await deliver_offline(full);
  }

  asio::awaitable<void> deliver_offline(Jid full) {
    std::string domain = full.domain(), user = full.local();
    auto job2 = [=](storage::Storage& st) { return st.offline_take(domain, user); };
    auto messages = co_await worker.run(std::move(job2));
    if (messages.empty()) co_return;
    auto* s = router.find(full);
    std::vector<Element> parsed;
    for (const auto& m : messages) {
      if (auto el = xml::parse_element(m.stanza))
        parsed.push_back(std::move(*el));
      else
        spdlog::warn("im: unreadable offline message {} for {}", m.id, full.bare_str());
    }
    if (!s) {
      // The session went away meanwhile: keep the messages.
      auto job3 = [=](storage::Storage& st) {
        for (const auto& m : messages) st.offline_store(domain, user, m.stanza, UINT32_MAX);
        return true;
      };
      co_await worker.run(std::move(job3));
      co_return;
    }
    for (const auto& el : parsed) s->deliver(el);
    spdlog::debug("im: delivered {} offline messages to {}", parsed.size(), full.str());
  }

  void session_ended(router::LocalSession& s) {
    if (!s.available && s.directed_to.empty()) return;
    Element p("presence", kClientNs);
    p.set_attr("type", "unavailable");
    broadcast(s, std::move(p));
  }

  // ---------------------------------------------------------------- roster pushes
  void push(const Jid& bare, const RosterItem& item, bool removed = false) {
    Element x = item_xml(item);
    if (removed) {
      x = Element("item", kRosterNs);
      x.set_attr("jid", item.jid);
      x.set_attr("subscription", "remove");
    }
    for (auto* s : router.sessions_of(bare)) {
      if (!s->roster_requested) continue;
      Element iq("iq", kClientNs);
      iq.set_attr("type", "set");
      iq.set_attr("id", "push" + std::to_string(++push_counter));
      iq.set_attr("to", s->jid().str());
      iq.add_child("query", kRosterNs).add_child(x);
      s->deliver(iq);
    }
  }

  // Applies `event` to `user`'s item for `contact` on the storage thread and persists the
  // result; the read-modify-write is one job, so concurrent events cannot interleave. A
  // plain function (not a coroutine): see net::Worker::run about closures and GCC 12.
  template <class Event>
  asio::awaitable<logic::Transition> apply(const Jid& user, const std::string& contact,
                                           Event event) {
    auto job = [domain = user.domain(), name = user.local(), contact,
                event = std::move(event)](storage::Storage& st) {
      auto current = st.roster_item(domain, name, contact);
      logic::Transition t = event(current);
      if (t.store) {
        if (t.item)
          st.roster_put(domain, name, *t.item);
        else
          st.roster_remove(domain, name, contact);
      }
      return t;
    };
    return worker.run(std::move(job));
  }

  // ---------------------------------------------------------------- subscriptions (§3)
  asio::awaitable<void> outbound_subscription(Element stanza, Jid from, Jid to) {
    Jid user = from.bare(), contact = to.bare();
    std::string type(stanza.attr("type"));
    std::string c = contact.str();
    auto event = [type, c](const std::optional<RosterItem>& cur) {
      if (type == "subscribe") return logic::outbound_subscribe(cur, c);
      if (type == "subscribed") return logic::outbound_subscribed(cur, c);
      if (type == "unsubscribe") return logic::outbound_unsubscribe(cur, c);
      return logic::outbound_unsubscribed(cur, c);
    };
    auto t = co_await apply(user, c, std::move(event));
    if (t.push && t.item) push(user, *t.item);
    if (!t.forward) co_return;
    // §3.1.2: subscription stanzas leave with the bare JID of the user.
    stanza.set_attr("from", user.str());
    stanza.set_attr("to", c);
    router.route(std::move(stanza));
    if (type == "subscribed") {
      // §3.1.5: the new subscriber gets the user's current presence.
      for (auto* s : available(user, false)) {
        Element p = s->last_presence;
        p.set_attr("to", c);
        router.route(std::move(p));
      }
    } else if (type == "unsubscribed") {
      for (auto* s : available(user, false))
        router.route(presence("unavailable", s->jid().str(), c));
    }
  }

  asio::awaitable<void> inbound_subscription(Element stanza, Jid from, Jid to) {
    Jid user = to.bare(), contact = from.bare();
    std::string type(stanza.attr("type"));
    std::string c = contact.str();
    bool exists = co_await account_exists(user);
    if (!exists) {
      if (type == "subscribe") router.bounce(stanza, StanzaError::kServiceUnavailable);
      co_return;
    }
    auto event = [type, c](const std::optional<RosterItem>& cur) {
      if (type == "subscribe") return logic::inbound_subscribe(cur, c);
      if (type == "subscribed") return logic::inbound_subscribed(cur, c);
      if (type == "unsubscribe") return logic::inbound_unsubscribe(cur, c);
      return logic::inbound_unsubscribed(cur, c);
    };
    auto t = co_await apply(user, c, std::move(event));
    if (t.push && t.item) push(user, *t.item);
    if (t.auto_subscribed) {
      router.route(presence("subscribed", user.str(), c));
      for (auto* s : available(user, false)) {
        Element p = s->last_presence;
        p.set_attr("to", c);
        router.route(std::move(p));
      }
    }
    if (t.forward) {
      stanza.set_attr("from", c);
      for (auto* s : available(user, false)) {
        Element copy = stanza;
        copy.set_attr("to", s->jid().str());
        s->deliver(copy);
      }
    }
  }

  // §4.3.2: answer a probe from a contact subscribed to the user.
  asio::awaitable<void> answer_probe(Element stanza, Jid from, Jid to) {
    Jid user = to.bare();
    std::string c = from.bare_str(), domain = user.domain(), name = user.local();
    auto job5 = [=](storage::Storage& st) { return st.roster_item(domain, name, c); };
    auto item = co_await worker.run(std::move(job5));
    if (!item || !logic::receives_presence(*item)) co_return;
    auto resources = available(user, false);
    if (resources.empty()) {
      router.route(presence("unavailable", user.str(), std::string(stanza.attr("from"))));
      co_return;
    }
    for (auto* s : resources) {
      Element p = s->last_presence;
      p.set_attr("to", stanza.attr("from"));
      router.route(std::move(p));
    }
  }

  // ---------------------------------------------------------------- local delivery (§8)
  void to_local(Element stanza) {
    auto from = Jid::parse(stanza.attr("from"));
    if (!from) return;
    std::optional<Jid> to = stanza.has_attr("to") ? Jid::parse(stanza.attr("to")) : from->bare();
    if (!to) return router.bounce(stanza, StanzaError::kJidMalformed);
    auto type = stanza.attr("type");
    switch (xml::stanza_kind(stanza)) {
      case xml::StanzaKind::kIq:
        if (to->is_domain()) return server_iq(std::move(stanza));
        if (!to->is_bare()) {
          if (auto* s = router.find(*to)) return s->deliver(stanza);
          return router.bounce(stanza, StanzaError::kServiceUnavailable);
        }
        return spawn(account_iq(std::move(stanza), *to));
      case xml::StanzaKind::kMessage:
        if (to->is_domain()) return router.bounce(stanza, StanzaError::kServiceUnavailable);
        if (!to->is_bare()) {
          if (auto* s = router.find(*to)) {
            return s->deliver(stanza);
          }
          // §8.5.3.2.1: no such resource.
          if (type == "groupchat") return router.bounce(stanza, StanzaError::kServiceUnavailable);
          if (type == "headline" || type == "error") return;
        }
        return message_to_bare(std::move(stanza), to->bare());
      case xml::StanzaKind::kPresence:
        if (to->is_domain()) return;
        if (is_subscription_type(type))
          return spawn(inbound_subscription(std::move(stanza), *from, *to));
        if (type == "probe") return spawn(answer_probe(std::move(stanza), *from, *to));
        if (!to->is_bare()) {
          if (auto* s = router.find(*to)) s->deliver(stanza);
          return;
        }
        for (auto* s : available(*to, false)) {
          Element copy = stanza;
          copy.set_attr("to", s->jid().str());
          s->deliver(copy);
        }
        return;
      case xml::StanzaKind::kOther:
        return;
    }
  }

  void message_to_bare(Element stanza, Jid bare) {
    auto type = stanza.attr("type");
    if (type == "error") return;  // never answered, nobody to show it to
    if (type == "groupchat") return router.bounce(stanza, StanzaError::kServiceUnavailable);
    auto targets = available(bare, true);
    if (!targets.empty()) {
      for (auto* s : targets) s->deliver(stanza);
      return;
    }
    if (type == "headline") return;
    spawn(store_offline(std::move(stanza), std::move(bare)));
  }

  asio::awaitable<void> store_offline(Element stanza, Jid bare) {
    enum class R { kStored, kNoAccount, kFull };
    Element stored = stanza;
    stored.add_child("delay", std::string(xml::ns::kDelay))
        .set_attr("from", bare.domain())
        .set_attr("stamp", core::format_timestamp(std::chrono::system_clock::to_time_t(
                               std::chrono::system_clock::now())))
        .add_text("Offline Storage");
    std::string text = stored.str(), domain = bare.domain(), user = bare.local();
    auto max = config.c2s.max_offline_messages;
    auto job6 = [=](storage::Storage& st) {
      if (!st.get_account(domain, user)) return R::kNoAccount;
      return st.offline_store(domain, user, text, max) ? R::kStored : R::kFull;
    };
    R r = co_await worker.run(std::move(job6));
    if (r == R::kNoAccount) {
      router.bounce(stanza, StanzaError::kServiceUnavailable);
      co_return;
    }
    if (r == R::kFull) {
      router.bounce(stanza, StanzaError::kServiceUnavailable,
                    "The recipient's offline storage is full");
      co_return;
    }
    if (metrics) metrics->offline_message_stored();
    // A resource may have become available while we were storing.
    for (auto* s : available(bare, true)) {
      if (s->priority >= 0) co_await deliver_offline(s->jid());
      break;
    }
  }

  // ---------------------------------------------------------------- IQs
  asio::awaitable<bool> account_exists(Jid bare) {
    if (!router.sessions_of(bare).empty()) co_return true;
    std::string domain = bare.domain(), user = bare.local();
    auto job7 = [=](storage::Storage& st) { return st.get_account(domain, user).has_value(); };
    bool found = co_await worker.run(std::move(job7));
    co_return found;
  }

  Element disco_info_result(const Element& iq, bool server) {
    Element r = xml::make_iq_result(iq);
    auto& q = r.add_child("query", std::string(xml::ns::kDiscoInfo));
    if (auto node = iq.child("query")->attr("node"); !node.empty()) q.set_attr("node", node);
    auto& id = q.add_child("identity", std::string(xml::ns::kDiscoInfo));
    if (server) {
      id.set_attr("category", "server").set_attr("type", "im").set_attr("name", "Waddle");
    } else {
      id.set_attr("category", "account").set_attr("type", "registered");
    }
    std::vector<std::string_view> features{xml::ns::kDiscoInfo, xml::ns::kDiscoItems};
    if (server) {
      features.insert(features.end(), {xml::ns::kPing, xml::ns::kVersion, xml::ns::kOffline});
      if (config.c2s.allow_registration) features.push_back(xml::ns::kRegister);
      if (key) features.push_back(ns::kIdentity);
    }
    for (auto f : features)
      q.add_child("feature", std::string(xml::ns::kDiscoInfo)).set_attr("var", f);
    return r;
  }

  void server_iq(Element iq) {
    auto type = iq.attr("type");
    if (type == "result" || type == "error") {
      // The answer to a room service's identity support question (join_with_credential).
      auto p = support_probes.find(std::string(iq.attr("id")));
      if (p == support_probes.end() || iq.attr("from") != p->second) return;
      bool yes = false;
      if (const Element* q = iq.child("query", xml::ns::kDiscoInfo))
        for (const auto* f : q->children("feature", xml::ns::kDiscoInfo))
          yes |= f->attr("var") == std::string(ns::kIdentity);
      return support_answer(std::string(p->first), yes);
    }
    if (type != "get" && type != "set") return;
    const Element* q = iq.first_child();
    if (type == "get" && q) {
      if (q->is("query", xml::ns::kDiscoInfo)) return router.route(disco_info_result(iq, true));
      if (q->is("query", xml::ns::kDiscoItems)) {
        // The room service of this domain, so that clients find where to create rooms.
        Element r = xml::make_iq_result(iq);
        auto& items = r.add_child("query", std::string(xml::ns::kDiscoItems));
        auto to = Jid::parse(iq.attr("to"));
        if (auto muc = to ? config.muc_domain(to->domain()) : std::string(); !muc.empty()) {
          items.add_child("item", std::string(xml::ns::kDiscoItems))
              .set_attr("jid", muc)
              .set_attr("name", "Chatrooms");
        }
        return router.route(std::move(r));
      }
      if (key && q->ns() == std::string(ns::kIdentity)) return identity_iq(std::move(iq), *q);
      if (q->is("ping", xml::ns::kPing)) return router.route(xml::make_iq_result(iq));
      if (q->is("query", xml::ns::kVersion)) {
        Element r = xml::make_iq_result(iq);
        auto& v = r.add_child("query", std::string(xml::ns::kVersion));
        v.add_child("name", std::string(xml::ns::kVersion)).add_text("Waddle");
        v.add_child("version", std::string(xml::ns::kVersion)).add_text(WADDLE_VERSION);
        return router.route(std::move(r));
      }
    }
    router.bounce(iq, StanzaError::kServiceUnavailable);
  }

  // ------------------------------------------------------------ federated identity
  // nullopt when the claims do not fit in a credential (very long JIDs).
  std::optional<std::string> issue_credential(const Jid& user, const std::string& audience) {
    std::string did;
    if (auto* s = router.find(user)) did = s->did;  // user is the full JID of a session
    identity::Claims c;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    c.issuer = user.domain();
    c.subject = user.bare_str();  // the credential names the account, not the resource
    c.audience = audience;
    c.did = did;
    c.issued_at = now;
    c.expires_at =
        now + std::chrono::duration_cast<std::chrono::seconds>(config.identity.credential_lifetime)
                  .count();
    try {
      return identity::issue(*key, c);
    } catch (const std::invalid_argument& e) {
      spdlog::warn("identity: no credential for {}: {}", user.bare_str(), e.what());
      return std::nullopt;
    }
  }

  // The home server's side of urn:waddle:identity: <key/> (anyone: the public key),
  // <credential/> (its own users: a fresh credential), <verify/> (anyone: is this credential
  // ours, valid, and its user still an account here?).
  void identity_iq(Element iq, const Element& q) {
    auto from = Jid::parse(iq.attr("from"));
    auto to = Jid::parse(iq.attr("to"));
    if (!from || !to) return;
    if (q.name() == "key") {
      Element r = xml::make_iq_result(iq);
      r.add_child("key", std::string(ns::kIdentity))
          .set_attr("algorithm", "Ed25519")
          .set_attr("id", key->key_id())
          .add_text(key->public_key_b64());
      return router.route(std::move(r));
    }
    if (q.name() == "credential") {
      if (from->domain() != to->domain() || from->local().empty())
        return router.bounce(iq, StanzaError::kForbidden,
                             "Credentials are issued to this server's own users");
      std::string audience(q.attr("audience"));
      auto aud = Jid::parse(audience);
      if (!audience.empty() && (!aud || !aud->is_domain()))
        return router.bounce(iq, StanzaError::kBadRequest, "The audience must be a domain");
      auto token = issue_credential(*from, aud ? aud->domain() : std::string());
      if (!token)
        return router.bounce(iq, StanzaError::kBadRequest, "JID too long for a credential");
      Element r = xml::make_iq_result(iq);
      r.add_child("credential", std::string(ns::kIdentity)).add_text(*token);
      return router.route(std::move(r));
    }
    if (q.name() == "verify") return spawn(verify_credential(std::move(iq)));
    router.bounce(iq, StanzaError::kFeatureNotImplemented);
  }

  asio::awaitable<void> verify_credential(Element iq) {
    const Element* q = iq.first_child();
    auto user = Jid::parse(q->child_text("jid", std::string(ns::kIdentity)));
    const std::string token = q->child_text("credential", std::string(ns::kIdentity));
    auto to = Jid::parse(iq.attr("to"));
    if (!user || !user->is_bare() || user->local().empty() || token.empty() || !to) {
      router.bounce(iq, StanzaError::kBadRequest, "Expected <jid/> and <credential/>");
      co_return;
    }
    if (user->domain() != to->domain()) {
      router.bounce(iq, StanzaError::kNotAuthorized,
                    user->domain() + " is not this server's domain");
      co_return;
    }
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    auto result =
        identity::verify(token, key->public_key(), to->domain(), user->bare_str(), "", now);
    const std::string asker(iq.attr("from"));
    if (result.verdict != identity::Verdict::kValid) {
      spdlog::info("identity: {} asked about a credential for {}: {}", asker, user->bare_str(),
                   identity::describe(result.verdict));
      router.bounce(iq, StanzaError::kNotAuthorized, identity::describe(result.verdict));
      co_return;
    }
    std::string domain = user->domain(), name = user->local();
    auto lookup = [=](storage::Storage& st) {
      std::optional<std::string> did;  // the account's DID; nullopt = no such account
      if (auto acct = st.get_account(domain, name)) did = acct->did;
      return did;
    };
    auto did = co_await worker.run(std::move(lookup));
    std::string problem;
    if (!did)
      problem = "No such account";
    else if (*did != result.claims.did)
      problem = "The account's ATProto DID is no longer the one in the credential";
    if (!problem.empty()) {
      spdlog::info("identity: {} asked about a credential for {}: {}", asker, user->bare_str(),
                   problem);
      router.bounce(iq, StanzaError::kNotAuthorized, problem);
      co_return;
    }
    spdlog::info("identity: confirmed the credential of {} to {}", user->bare_str(), asker);
    Element r = xml::make_iq_result(iq);
    auto& id = r.add_child("identity", std::string(ns::kIdentity));
    id.set_attr("jid", user->bare_str());
    id.set_attr("expires", std::to_string(result.claims.expires_at));
    if (!result.claims.did.empty()) id.set_attr("did", result.claims.did);
    router.route(std::move(r));
  }

  // An IQ to another account's bare JID: the server answers on its behalf (§8.5.2.1.3).
  asio::awaitable<void> account_iq(Element iq, Jid bare) {
    auto type = iq.attr("type");
    if (type != "get" && type != "set") co_return;
    const Element* q = iq.first_child();
    if (type == "get" && q && q->is("query", xml::ns::kDiscoInfo)) {
      bool exists = co_await account_exists(bare);
      if (exists) {
        router.route(disco_info_result(iq, false));
        co_return;
      }
    }
    router.bounce(iq, StanzaError::kServiceUnavailable);
  }

  // An IQ from a client to its own account (no 'to', or its bare JID).
  asio::awaitable<void> own_account_iq(Element iq, Jid from) {
    auto type = iq.attr("type");
    if (type != "get" && type != "set") co_return;
    const Element* q = iq.first_child();
    if (q && q->is("query", xml::ns::kRoster)) {
      co_await roster_iq(std::move(iq), from);
      co_return;
    }
    if (type == "get" && q && q->is("query", xml::ns::kDiscoInfo)) {
      deliver_to(from, disco_info_result(iq, false));
      co_return;
    }
    if (type == "get" && q && q->is("query", xml::ns::kDiscoItems)) {
      Element r = xml::make_iq_result(iq);
      r.add_child("query", std::string(xml::ns::kDiscoItems));
      {
        deliver_to(from, std::move(r));
        co_return;
      }
    }
    if (type == "get" && q && q->is("ping", xml::ns::kPing)) {
      deliver_to(from, xml::make_iq_result(iq));
      co_return;
    }
    deliver_to(from, xml::make_error_reply(iq, StanzaError::kServiceUnavailable));
  }

  void deliver_to(const Jid& full, Element stanza) {
    if (auto* s = router.find(full)) s->deliver(stanza);
  }

  // RFC 6121 §2.
  asio::awaitable<void> roster_iq(Element iq, Jid from) {
    Jid user = from.bare();
    std::string domain = user.domain(), name = user.local();
    if (iq.attr("type") == "get") {
      auto job8 = [=](storage::Storage& st) { return st.roster_get(domain, name); };
      auto items = co_await worker.run(std::move(job8));
      Element r = xml::make_iq_result(iq);
      r.remove_attr("from");
      auto& q = r.add_child("query", kRosterNs);
      for (const auto& item : items)
        if (!item.hidden) q.add_child(item_xml(item));
      if (auto* s = router.find(from)) {
        s->roster_requested = true;
        s->deliver(r);
      }
      co_return;
    }
    const Element* q = iq.child("query", xml::ns::kRoster);
    auto items = q->children("item", xml::ns::kRoster);
    if (items.size() != 1) {
      deliver_to(from, xml::make_error_reply(iq, StanzaError::kBadRequest,
                                             "A roster set carries exactly one item"));
      co_return;
    }
    const Element& it = *items.front();
    auto contact = Jid::parse(it.attr("jid"));
    if (!contact || !contact->is_bare()) {
      deliver_to(from, xml::make_error_reply(iq, StanzaError::kJidMalformed));
      co_return;
    }
    if (*contact == user) {
      deliver_to(from, xml::make_error_reply(iq, StanzaError::kNotAllowed,
                                             "Your own JID cannot be a contact"));
      co_return;
    }
    std::string c = contact->str();
    if (it.attr("subscription") == "remove") {
      auto job9 = [=](storage::Storage& st) {
        auto cur = st.roster_item(domain, name, c);
        auto res = logic::roster_remove(cur);
        if (res.t.store) st.roster_remove(domain, name, c);
        return std::make_pair(cur.has_value() && !cur->hidden, res);
      };
      auto r = co_await worker.run(std::move(job9));
      if (!r.first) {
        deliver_to(from, xml::make_error_reply(iq, StanzaError::kItemNotFound));
        co_return;
      }
      RosterItem removed;
      removed.jid = c;
      push(user, removed, true);
      deliver_to(from, xml::make_iq_result(iq));
      if (r.second.send_unsubscribe) router.route(presence("unsubscribe", user.str(), c));
      if (r.second.send_unsubscribed) router.route(presence("unsubscribed", user.str(), c));
      co_return;
    }
    std::vector<std::string> groups;
    for (const auto* g : it.children("group", xml::ns::kRoster)) {
      std::string text = g->text();
      if (text.empty()) {
        deliver_to(from,
                   xml::make_error_reply(iq, StanzaError::kNotAcceptable, "Empty group name"));
        co_return;
      }
      if (std::find(groups.begin(), groups.end(), text) == groups.end()) groups.push_back(text);
    }
    std::string item_name(it.attr("name"));
    auto event = [=](const std::optional<RosterItem>& cur) {
      return logic::roster_set(cur, c, item_name, groups);
    };
    auto t = co_await apply(user, c, std::move(event));
    if (t.push && t.item) push(user, *t.item);
    deliver_to(from, xml::make_iq_result(iq));
  }
};

ImService::ImService(const core::Config& config, router::Router& router, net::Worker& worker,
                     asio::any_io_executor executor, metrics::C2sMetrics* metrics,
                     const identity::SigningKey* identity_key)
    : impl_(std::make_unique<Impl>(config, router, worker, std::move(executor), metrics,
                                   identity_key)) {}

ImService::~ImService() = default;

void ImService::from_client(Element stanza) {
  impl_->from_client(std::move(stanza));
}
void ImService::to_local(Element stanza) {
  impl_->to_local(std::move(stanza));
}
void ImService::session_ended(router::LocalSession& s) {
  impl_->session_ended(s);
}

}  // namespace waddle::im
