// XEP-0163 on the server (see pep.h): requests as storage jobs, notifications through the
// router to the resources that want them.
#include "im/pep.h"

#include <boost/asio.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <variant>

#include "core/ids.h"
#include "im/caps.h"
#include "im/logic/pep_event.h"
#include "im/logic/pep_request.h"
#include "im/logic/personal.h"
#include "im/logic/subscription.h"
#include "im/pep_store.h"
#include "metrics/metrics.h"
#include "net/worker.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using logic::PepConfig;
using logic::PepRequestError;
using storage::RosterItem;
using xml::Element;

namespace {

using ns::kPubsub;
constexpr std::string_view kOwner = "http://jabber.org/protocol/pubsub#owner";
constexpr std::string_view kEvent = "http://jabber.org/protocol/pubsub#event";
constexpr std::string_view kPrivate = "jabber:iq:private";        // XEP-0049
constexpr std::string_view kVcardUpdate = "vcard-temp:x:update";  // XEP-0153

PepRequestError error(StanzaError condition, std::string pubsub = {}) {
  return {condition, std::move(pubsub), {}};
}

logic::Reader reader_of(const std::optional<RosterItem>& item, bool owner) {
  logic::Reader r;
  r.owner = owner;
  if (item) {
    r.in_roster = true;
    r.subscribed = logic::receives_presence(*item);
    r.groups = item->groups;
  }
  return r;
}

// XEP-0060 §6.5.7 and §4.5: what a reader who may not read a node gets.
PepRequestError access_error(const PepConfig& config) {
  switch (config.access) {
    case logic::AccessModel::kPresence:
      return error(StanzaError::kNotAuthorized, "presence-subscription-required");
    case logic::AccessModel::kRoster:
      return error(StanzaError::kNotAuthorized, "not-in-roster-group");
    case logic::AccessModel::kWhitelist:
    case logic::AccessModel::kOpen:
      break;
  }
  return error(StanzaError::kNotAllowed, "closed-node");
}

using pep_store::config_of;

std::string_view request_name(const logic::PepRequest& r) {
  static constexpr std::string_view kNames[] = {"publish",   "retract", "items", "create",
                                                "configure", "delete",  "purge", "invalid"};
  return kNames[r.index()];
}

// What a storage job found: an error, or what the reply and the notifications need.
struct Outcome {
  std::optional<PepRequestError> error;
  std::string item_id;                     // publish: the item's id
  PepConfig config;                        // the node's configuration (before a delete)
  std::vector<logic::PepItem> items;       // items: the result
  std::optional<xml::Element> form;        // configure get
  std::vector<RosterItem> roster;          // the owner's, when there are notifications to send
  std::vector<pep_store::Change> changes;  // the notifications
};

// What a storage job of a request needs to know of it.
struct Asker {
  std::string domain;
  std::string user;
  std::string from;       // full JID
  std::string from_bare;  // bare JID
  bool owner = false;
  logic::PepLimits limits;
  std::size_t max_nodes = 0;
  // The account as its nodes' owner, changing them.
  pep_store::Owner as_owner() const {
    return {domain, user, user + "@" + domain, from, limits, max_nodes};
  }
};

// The node of a request that is not the owner's, or the error: service-unavailable for an
// account that does not exist (RFC 6121 §8.5.1), item-not-found for a node that does not,
// the access model's error for a node the asker may not read.
std::optional<PepRequestError> readable(storage::Storage& st, const Asker& a,
                                        const std::optional<storage::PepNode>& node,
                                        PepConfig& config) {
  if (!node) {
    if (!a.owner && !st.get_account(a.domain, a.user))
      return error(StanzaError::kServiceUnavailable);
    return error(StanzaError::kItemNotFound);
  }
  config = config_of(*node);
  if (a.owner) return std::nullopt;
  if (!logic::may_read(config, reader_of(st.roster_item(a.domain, a.user, a.from_bare), false)))
    return access_error(config);
  return std::nullopt;
}

Outcome publish(storage::Storage& st, const Asker& a, const logic::PepPublish& p) {
  Outcome out;
  const auto owner = a.as_owner();
  PepConfig if_new;
  if (auto node = st.pep_node(a.domain, a.user, p.node)) {
    // §7.1.5: publish-options are preconditions on an existing node.
    if (p.options && !logic::preconditions_met(config_of(*node), *p.options, a.limits)) {
      out.error = error(StanzaError::kConflict, "precondition-not-met");
      return out;
    }
  } else if (p.options && logic::apply_form(if_new, *p.options, a.limits)) {
    // §7.1.4 auto-create takes the options as its configuration (XEP-0223), if it can.
    out.error = error(StanzaError::kConflict, "precondition-not-met");
    return out;
  }
  auto stored =
      pep_store::put(st, owner, p.node, if_new, logic::PepItem{p.item_id, p.payload}, out.changes);
  if (stored.error) {
    out.error = stored.error;
    return out;
  }
  out.item_id = stored.id;
  pep_store::after_publish(st, owner, p.node, logic::PepItem{stored.id, p.payload});
  out.roster = st.roster_get(a.domain, a.user);
  return out;
}

Outcome retract(storage::Storage& st, const Asker& a, const logic::PepRetract& r) {
  Outcome out;
  if (!pep_store::retract(st, a.as_owner(), r.node, r.item_id, r.notify, out.changes)) {
    out.error = error(StanzaError::kItemNotFound);
    return out;
  }
  if (!out.changes.empty()) out.roster = st.roster_get(a.domain, a.user);
  return out;
}

Outcome items(storage::Storage& st, const Asker& a, const logic::PepItems& r) {
  Outcome out;
  auto node = st.pep_node(a.domain, a.user, r.node);
  if ((out.error = readable(st, a, node, out.config))) return out;
  std::size_t max = std::min(out.config.max_items, a.limits.max_items);
  if (r.max) max = std::min<std::size_t>(max, *r.max);
  out.items = pep_store::items(st, a.as_owner(), r.node, r.ids, max);
  return out;
}

Outcome create(storage::Storage& st, const Asker& a, const logic::PepCreate& c) {
  Outcome out;
  PepConfig config;
  if (c.config) {
    if (auto e = logic::apply_form(config, *c.config, a.limits)) {
      out.error = error(e->condition, "invalid-options");
      return out;
    }
  }
  switch (st.pep_create(a.domain, a.user, {c.node, logic::encode(config)}, a.max_nodes)) {
    case storage::PepCreated::kCreated:
      break;
    case storage::PepCreated::kExists:
      out.error = error(StanzaError::kConflict);
      break;
    case storage::PepCreated::kTooMany:
      out.error = error(StanzaError::kNotAllowed, "max-nodes-exceeded");
      break;
  }
  return out;
}

Outcome configure(storage::Storage& st, const Asker& a, const logic::PepConfigure& c) {
  Outcome out;
  auto node = st.pep_node(a.domain, a.user, c.node);
  if (!node) {
    out.error = error(StanzaError::kItemNotFound);
    return out;
  }
  out.config = config_of(*node);
  if (!c.form) {
    out.form = logic::config_form(out.config);
    return out;
  }
  if (auto e = logic::apply_form(out.config, *c.form, a.limits)) {
    out.error = error(e->condition, "invalid-options");
    return out;
  }
  st.pep_configure(a.domain, a.user, {c.node, logic::encode(out.config)}, out.config.max_items);
  return out;
}

// A node event without items: <delete node=.../> or <purge node=.../> (§8.4.3.1, §8.5.3.1).
Element node_event(std::string_view owner, std::string_view what, std::string_view node) {
  Element m("message", std::string(ns::kClient));
  m.set_attr("from", owner).set_attr("type", "headline");
  m.add_child("event", std::string(kEvent))
      .add_child(std::string(what), std::string(kEvent))
      .set_attr("node", node);
  return m;
}

Outcome remove(storage::Storage& st, const Asker& a, const std::string& name, bool purge) {
  Outcome out;
  auto node = st.pep_node(a.domain, a.user, name);
  if (!node) {
    out.error = error(StanzaError::kItemNotFound);
    return out;
  }
  const PepConfig config = config_of(*node);
  if (purge)
    st.pep_purge(a.domain, a.user, name);
  else
    st.pep_delete_node(a.domain, a.user, name);
  out.changes.push_back(
      {name, config, node_event(a.as_owner().jid, purge ? "purge" : "delete", name)});
  out.roster = st.roster_get(a.domain, a.user);
  return out;
}

}  // namespace

bool Pep::handles(const Element& iq) {
  return logic::is_pep_request(iq);
}

asio::awaitable<void> Pep::iq(Element iq, Jid owner) {
  const auto type = iq.attr("type");
  if (type != "get" && type != "set") co_return;
  const auto from = Jid::parse(iq.attr("from"));
  if (!from) co_return;
  // A client's request to its own account may have no 'to': the answer comes from the account.
  if (!iq.has_attr("to")) iq.set_attr("to", owner.str());
  auto request = logic::parse_pep_request(iq, ctx_.config.pep.max_item_bytes);
  const std::string_view name = request_name(request);
  if (const auto* e = std::get_if<PepRequestError>(&request)) {
    count(name, "error");
    ctx_.router.route(logic::pep_error_reply(iq, *e));
    co_return;
  }
  Asker asker{owner.domain(),           owner.local(),         from->str(),
              from->bare_str(),         from->bare() == owner, {ctx_.config.pep.max_items},
              ctx_.config.pep.max_nodes};
  // Only the owner changes its nodes (PEP has no publishers but the owner).
  if (!asker.owner && !std::holds_alternative<logic::PepItems>(request)) {
    count(name, "error");
    ctx_.router.route(logic::pep_error_reply(iq, error(StanzaError::kForbidden)));
    co_return;
  }
  auto job = [asker, request](storage::Storage& st) -> Outcome {
    return std::visit(
        [&](const auto& r) -> Outcome {
          using T = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<T, logic::PepPublish>) return publish(st, asker, r);
          if constexpr (std::is_same_v<T, logic::PepRetract>) return retract(st, asker, r);
          if constexpr (std::is_same_v<T, logic::PepItems>) return items(st, asker, r);
          if constexpr (std::is_same_v<T, logic::PepCreate>) return create(st, asker, r);
          if constexpr (std::is_same_v<T, logic::PepConfigure>) return configure(st, asker, r);
          if constexpr (std::is_same_v<T, logic::PepDelete>)
            return remove(st, asker, r.node, false);
          if constexpr (std::is_same_v<T, logic::PepPurge>) return remove(st, asker, r.node, true);
          return Outcome{};
        },
        request);
  };
  Outcome out = co_await ctx_.worker.run(std::move(job));
  if (out.error) {
    count(name, "error");
    ctx_.router.route(logic::pep_error_reply(iq, *out.error));
    co_return;
  }
  count(name, "ok");
  Element reply = xml::make_iq_result(iq);
  if (const auto* p = std::get_if<logic::PepPublish>(&request)) {
    // §7.1.2: the id of the item, which the service may have made.
    reply.add_child("pubsub", std::string(kPubsub))
        .add_child("publish", std::string(kPubsub))
        .set_attr("node", p->node)
        .add_child("item", std::string(kPubsub))
        .set_attr("id", out.item_id);
  } else if (const auto* i = std::get_if<logic::PepItems>(&request)) {
    reply = logic::pep_items_result(iq, i->node, out.items);
  } else if (const auto* c = std::get_if<logic::PepConfigure>(&request); c && out.form) {
    reply.add_child("pubsub", std::string(kOwner))
        .add_child("configure", std::string(kOwner))
        .set_attr("node", c->node)
        .add_child(std::move(*out.form));
  }
  ctx_.router.route(std::move(reply));
  notify(owner, out.changes, out.roster);
}

asio::awaitable<void> Pep::disco_items(Element iq, Jid owner) {
  const auto from = Jid::parse(iq.attr("from"));
  if (!from) co_return;
  if (!iq.has_attr("to")) iq.set_attr("to", owner.str());
  Asker a{
      owner.domain(), owner.local(), from->str(), from->bare_str(), from->bare() == owner, {}, 0};
  struct Found {
    bool exists = false;
    std::vector<std::string> nodes;
  };
  auto job = [a](storage::Storage& st) {
    Found f;
    f.exists = a.owner || st.get_account(a.domain, a.user).has_value();
    if (!f.exists) return f;
    const auto reader = a.owner ? logic::Reader{true, false, false, {}}
                                : reader_of(st.roster_item(a.domain, a.user, a.from_bare), false);
    for (const auto& n : st.pep_nodes(a.domain, a.user))
      if (logic::may_read(config_of(n), reader)) f.nodes.push_back(n.name);
    return f;
  };
  Found found = co_await ctx_.worker.run(std::move(job));
  if (!found.exists) {
    ctx_.router.bounce(iq, StanzaError::kServiceUnavailable);
    co_return;
  }
  Element reply = xml::make_iq_result(iq);
  auto& q = reply.add_child("query", std::string(ns::kDiscoItems));
  const std::string jid = owner.str();
  for (const auto& n : found.nodes)
    q.add_child("item", std::string(ns::kDiscoItems)).set_attr("jid", jid).set_attr("node", n);
  ctx_.router.route(std::move(reply));
}

void Pep::notify(const Jid& owner, const std::vector<pep_store::Change>& changes,
                 const std::vector<RosterItem>& roster) {
  // XEP-0398 §4: a new avatar is the hash of the account's next presences.
  for (const auto& change : changes) {
    if (change.node != logic::kAvatarMetadata) continue;
    auto it = avatars_.find(owner.str());
    if (it == avatars_.end()) continue;
    const Element* items = change.event.child("event", kEvent);
    items = items ? items->child("items", kEvent) : nullptr;
    const Element* item = items ? items->child("item", kEvent) : nullptr;
    if (!item) continue;  // a retraction: the next metadata says
    const auto* payload = item->first_child();
    const auto info = payload ? logic::avatar_info(*payload) : std::nullopt;
    it->second = info ? info->id : std::string();
  }
  if (!ctx_.caps || changes.empty()) return;
  auto it = recipients_.find(owner.str());
  if (it == recipients_.end()) return;
  std::unordered_map<std::string_view, const RosterItem*> contacts;
  for (const auto& item : roster) contacts.emplace(item.jid, &item);
  struct Recipient {
    std::string jid;
    std::shared_ptr<const Caps::Features> features;
    logic::Reader reader;
  };
  std::vector<Recipient> recipients;
  for (const auto& full : it->second) {
    const auto jid = Jid::parse(full);
    if (!jid) continue;
    auto features = ctx_.caps->features(*jid);
    if (!features) continue;
    const bool own = jid->bare() == owner;
    std::optional<RosterItem> item;
    if (!own)
      if (auto c = contacts.find(jid->bare_str()); c != contacts.end()) item = *c->second;
    recipients.push_back({full, std::move(features), reader_of(item, own)});
  }
  for (const auto& change : changes) {
    std::vector<std::string> to;
    for (const auto& r : recipients)
      if (logic::wants_notifications(*r.features, change.node) &&
          logic::may_read(change.config, r.reader))
        to.push_back(r.jid);
    if (to.empty()) continue;
    if (ctx_.metrics) ctx_.metrics->pep_notifications.inc(to.size());
    ctx_.router.fan_out(change.event, to);
  }
}

void Pep::available(const Jid& owner, const Jid& full) {
  if (!enabled()) return;
  const std::string o = owner.str(), f = full.str();
  auto r = recipients_.find(o);
  if (r != recipients_.end() && r->second.count(f)) return;
  const std::size_t max = 10 * std::max<std::size_t>(ctx_.config.c2s.caps_cache_size, 1);
  if (pairs_ >= max) return;
  recipients_[o].insert(f);
  owners_of_[f].insert(o);
  ++pairs_;
  // A resource new to this owner whose features are known already gets the last items now;
  // the others when they are (features_known).
  if (ctx_.caps && ctx_.caps->features(full)) ctx_.spawn(send_last(owner, {f}));
}

void Pep::unavailable(const Jid& owner, const Jid& full) {
  const std::string o = owner.str(), f = full.str();
  auto r = recipients_.find(o);
  if (r == recipients_.end() || !r->second.erase(f)) return;
  --pairs_;
  if (r->second.empty()) recipients_.erase(r);
  if (auto w = owners_of_.find(f); w != owners_of_.end()) {
    w->second.erase(o);
    if (w->second.empty()) owners_of_.erase(w);
  }
}

void Pep::session_ended(const Jid& full) {
  auto w = owners_of_.find(full.str());
  if (w == owners_of_.end()) return;
  const std::set<std::string> owners = w->second;
  for (const auto& o : owners)
    if (auto owner = Jid::parse(o)) unavailable(*owner, full);
}

void Pep::features_known(const Jid& full) {
  if (!enabled()) return;
  auto w = owners_of_.find(full.str());
  if (w == owners_of_.end()) return;
  for (const auto& o : w->second)
    if (auto owner = Jid::parse(o)) ctx_.spawn(send_last(*owner, {full.str()}));
}

void Pep::subscribed(const Jid& owner, const Jid& contact) {
  if (!enabled()) return;
  auto r = recipients_.find(owner.str());
  if (r == recipients_.end()) return;
  std::vector<std::string> to;
  for (const auto& f : r->second)
    if (auto j = Jid::parse(f); j && j->bare() == contact) to.push_back(f);
  if (!to.empty()) ctx_.spawn(send_last(owner, std::move(to)));
}

void Pep::account_removed(const Jid& owner) {
  auto r = recipients_.find(owner.str());
  if (r == recipients_.end()) return;
  const std::set<std::string> fulls = r->second;
  for (const auto& f : fulls)
    if (auto j = Jid::parse(f)) unavailable(owner, *j);
}

// XEP-0163 §4.3.2: the last item of each node a resource asks for and may read.
asio::awaitable<void> Pep::send_last(Jid owner, std::vector<std::string> to) {
  if (!ctx_.caps) co_return;
  struct Target {
    std::string jid;
    std::string bare;
    bool own = false;
    std::shared_ptr<const Caps::Features> features;
  };
  std::vector<Target> targets;
  for (auto& t : to) {
    auto j = Jid::parse(t);
    if (!j) continue;
    auto features = ctx_.caps->features(*j);
    // Only resources that ask for some node's notifications are worth a storage job.
    if (!features || std::none_of(features->begin(), features->end(),
                                  [](const std::string& f) { return f.ends_with("+notify"); }))
      continue;
    targets.push_back({t, j->bare_str(), j->bare() == owner, std::move(features)});
  }
  if (targets.empty()) co_return;
  struct Last {
    std::string node;
    logic::PepItem item;
    std::size_t target = 0;
  };
  auto job = [domain = owner.domain(), user = owner.local(), targets](storage::Storage& st) {
    std::vector<Last> out;
    const auto nodes = st.pep_nodes(domain, user);
    if (nodes.empty()) return out;
    const pep_store::Owner owner{domain, user, user + "@" + domain, {}, {}, 0};
    std::vector<PepConfig> configs;
    for (const auto& n : nodes) configs.push_back(config_of(n));
    // Each node's last item read once, for however many targets want it.
    std::map<std::size_t, std::vector<logic::PepItem>> last_of;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const auto& t = targets[i];
      const auto reader =
          reader_of(t.own ? std::nullopt : st.roster_item(domain, user, t.bare), t.own);
      for (std::size_t k = 0; k < nodes.size(); ++k) {
        if (configs[k].send_last == logic::SendLast::kNever ||
            !logic::wants_notifications(*t.features, nodes[k].name) ||
            !logic::may_read(configs[k], reader))
          continue;
        auto it = last_of.find(k);
        if (it == last_of.end())
          it = last_of.emplace(k, pep_store::items(st, owner, nodes[k].name, {}, 1)).first;
        for (const auto& item : it->second) out.push_back({nodes[k].name, item, i});
      }
    }
    return out;
  };
  std::vector<Last> last = co_await ctx_.worker.run(std::move(job));
  const std::string from = owner.str();
  for (const auto& l : last) {
    Element event = logic::pep_publish_event(from, l.node, l.item);
    event.set_attr("to", targets[l.target].jid);
    if (ctx_.metrics) ctx_.metrics->pep_notifications.inc();
    ctx_.router.route(std::move(event));
  }
}

bool Pep::handles_private(const Element& iq) {
  return iq.child("query", kPrivate) != nullptr;
}

bool Pep::handles_vcard(const Element& iq) {
  return iq.child("vCard", ns::kVcardTemp) != nullptr;
}

// XEP-0049: one element per namespace, for the account's own clients only.
asio::awaitable<void> Pep::private_iq(Element iq, Jid owner) {
  const auto type = iq.attr("type");
  if (type != "get" && type != "set") co_return;
  const auto from = Jid::parse(iq.attr("from"));
  if (!from) co_return;
  if (!iq.has_attr("to")) iq.set_attr("to", owner.str());
  if (from->bare() != owner) {  // §3: not another user's data
    ctx_.router.bounce(iq, StanzaError::kForbidden);
    co_return;
  }
  const Element* query = iq.child("query", kPrivate);
  std::vector<Element> elements;
  for (const auto& n : query->nodes())
    if (n.is_element()) elements.push_back(*n.element);
  // §2: at least one element; one to get; none in a jabber: namespace (the protocol's own).
  const bool reserved = std::any_of(elements.begin(), elements.end(), [](const Element& e) {
    return e.ns().starts_with("jabber:") || e.ns().empty();
  });
  if (elements.empty() || (type == "get" && elements.size() != 1) || reserved) {
    ctx_.router.bounce(iq, reserved ? StanzaError::kNotAcceptable : StanzaError::kBadRequest);
    co_return;
  }
  for (const auto& e : elements)
    if (e.str().size() > ctx_.config.pep.max_item_bytes) {
      ctx_.router.bounce(iq, StanzaError::kNotAcceptable, "Too large");
      co_return;
    }
  Asker a{owner.domain(),           owner.local(), from->str(),
          from->bare_str(),         true,          {ctx_.config.pep.max_items},
          ctx_.config.pep.max_nodes};
  struct Done {
    bool ok = true;
    std::optional<Element> got;
    std::vector<pep_store::Change> changes;
    std::vector<RosterItem> roster;
  };
  const bool get = type == "get";
  auto job = [a, elements, get](storage::Storage& st) {
    Done d;
    const auto owner = a.as_owner();
    if (get) {
      d.got = pep_store::private_get(st, owner, elements.front());
      return d;
    }
    for (const auto& e : elements)
      if (!pep_store::private_put(st, owner, e, d.changes)) {
        d.ok = false;
        break;
      }
    if (!d.changes.empty()) d.roster = st.roster_get(a.domain, a.user);
    return d;
  };
  Done done = co_await ctx_.worker.run(std::move(job));
  if (!done.ok) {
    ctx_.router.bounce(iq, StanzaError::kResourceConstraint, "Too many private XML namespaces");
  } else {
    Element reply = xml::make_iq_result(iq);
    if (done.got) reply.add_child("query", std::string(kPrivate)).add_child(std::move(*done.got));
    ctx_.router.route(std::move(reply));
  }
  notify(owner, done.changes, done.roster);
}

// XEP-0054: the vCard of an account, public; set by its own clients (XEP-0398 conversion).
asio::awaitable<void> Pep::vcard_iq(Element iq, Jid owner) {
  const auto type = iq.attr("type");
  if (type != "get" && type != "set") co_return;
  const auto from = Jid::parse(iq.attr("from"));
  if (!from) co_return;
  if (!iq.has_attr("to")) iq.set_attr("to", owner.str());
  const bool own = from->bare() == owner;
  if (type == "set" && !own) {
    ctx_.router.bounce(iq, StanzaError::kForbidden);
    co_return;
  }
  const Element vcard = *iq.child("vCard", ns::kVcardTemp);
  if (type == "set" && vcard.str().size() > ctx_.config.pep.max_item_bytes) {
    ctx_.router.bounce(iq, StanzaError::kNotAcceptable, "The vCard is too large");
    co_return;
  }
  Asker a{owner.domain(),           owner.local(), from->str(),
          from->bare_str(),         own,           {ctx_.config.pep.max_items},
          ctx_.config.pep.max_nodes};
  struct Done {
    bool exists = true;
    std::optional<Element> got;
    std::vector<pep_store::Change> changes;
    std::vector<RosterItem> roster;
  };
  const bool get = type == "get";
  auto job = [a, vcard, get](storage::Storage& st) {
    Done d;
    const auto owner = a.as_owner();
    if (get) {
      d.exists = a.owner || st.get_account(a.domain, a.user).has_value();
      if (d.exists) d.got = pep_store::vcard_get(st, owner);
      return d;
    }
    pep_store::vcard_put(st, owner, vcard, d.changes);
    if (!d.changes.empty()) d.roster = st.roster_get(a.domain, a.user);
    return d;
  };
  Done done = co_await ctx_.worker.run(std::move(job));
  if (!done.exists) {
    ctx_.router.bounce(iq, StanzaError::kServiceUnavailable);
    co_return;
  }
  Element reply = xml::make_iq_result(iq);
  // An account without one has an empty vCard (XEP-0054 §3.1 allows either).
  if (get)
    reply.add_child(done.got ? std::move(*done.got)
                             : Element("vCard", std::string(ns::kVcardTemp)));
  ctx_.router.route(std::move(reply));
  notify(owner, done.changes, done.roster);
}

void Pep::session_bound(const Jid& full) {
  if (!enabled()) return;
  const std::string owner = full.bare_str();
  if (avatars_.contains(owner)) return;
  ctx_.spawn(load_avatar(full.bare()));
}

asio::awaitable<void> Pep::load_avatar(Jid owner) {
  pep_store::Owner o{owner.domain(), owner.local(), owner.str(), {}, {}, 0};
  auto job = [o](storage::Storage& st) {
    std::string id;
    for (const auto& m : pep_store::items(st, o, std::string(logic::kAvatarMetadata), {}, 1))
      if (auto info = logic::avatar_info(m.payload)) id = info->id;
    return id;
  };
  std::string id = co_await ctx_.worker.run(std::move(job));
  // Only while the account has sessions, and unless a publish meanwhile said better.
  if (!ctx_.router.sessions_of(owner).empty()) avatars_.try_emplace(owner.str(), std::move(id));
}

void Pep::session_gone(const Jid& full) {
  const Jid bare = full.bare();
  for (const auto* s : ctx_.router.sessions_of(bare))
    if (s->jid() != full) return;
  avatars_.erase(bare.str());
}

void Pep::stamp_avatar(Element& presence, const Jid& owner) const {
  auto it = avatars_.find(owner.str());
  if (it == avatars_.end() || it->second.empty() || presence.has_attr("type")) return;
  Element* x = presence.child("x", kVcardUpdate);
  if (x) {
    const Element* photo = x->child("photo", kVcardUpdate);
    if (photo && photo->text().empty()) return;  // the client says: no avatar
    x->clear_children();
  } else {
    x = &presence.add_child("x", std::string(kVcardUpdate));
  }
  x->add_child("photo", std::string(kVcardUpdate)).add_text(it->second);
}

void Pep::count(std::string_view request, std::string_view result) const {
  if (ctx_.metrics) ctx_.metrics->pep_requests.get({request, result}).inc();
}

}  // namespace waddle::im
