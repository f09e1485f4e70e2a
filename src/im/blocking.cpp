// XEP-0191 §3.3/§3.4 on the server: blocklists applied to stanzas from and to local
// accounts, and the per-account cache of lists (accounts with sessions only). The commands
// themselves are in blocking_command.cpp.
#include "im/blocking.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <memory>
#include <optional>

#include "metrics/metrics.h"
#include "net/worker.h"
#include "router/flow.h"
#include "router/handling.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using xml::Element;

namespace {

// Stanzas between an account and itself or its own server are never blocked (a user who
// blocks their own domain still gets pushes and answers from the server).
bool exempt(const Jid& other, const Jid& user) {
  if (other.domain() != user.domain()) return false;
  if (other.local().empty()) return other.is_bare();  // the server itself
  return other.local() == user.local();
}

// A stanza that waited for its blocklist is routed as coming from where it was read (a
// client, a server stream), so that a queue it fills holds that source back.
class SourceScope {
 public:
  explicit SourceScope(const std::shared_ptr<router::Flow>& source) {
    if (source) scope_.emplace(*source);
  }

 private:
  std::optional<router::Flow::Scope> scope_;
};

}  // namespace

void Blocking::count() const {
  if (ctx_.metrics) ctx_.metrics->blocklists_cached.set(static_cast<double>(cache_.size()));
}

bool Blocking::screen_inbound(Element& stanza, const Jid& from, const Jid& to, bool again) {
  if (to.is_domain() || exempt(from, to)) return false;
  auto it = cache_.find(to.bare_str());
  if (it != cache_.end() && it->second.loaded) {
    if (!it->second.list.blocks(from)) return false;  // the hot path: one lookup when empty
    refuse_inbound(stanza);
    return true;
  }
  if (it == cache_.end() && !needs_reading(stanza, to)) return false;
  auto waiter = [this, stanza = std::move(stanza), from, again, hold = router::Handling::hold(),
                 source = router::Flow::carry()](const logic::Blocklist& list) mutable {
    if (list.blocks(from)) return refuse_inbound(stanza);
    router::Handling::Resume resume(hold);
    SourceScope routing(source);
    inbound_(std::move(stanza), again);
  };
  with_list(to.bare(), std::move(waiter));
  return true;
}

bool Blocking::screen_outbound(Element& stanza, const Jid& from) {
  auto it = cache_.find(from.bare_str());
  if (it == cache_.end()) it = start_loading(from.bare());
  auto to_attr = stanza.attr("to");
  if (to_attr.empty()) return false;
  Entry& e = it->second;
  if (e.loaded && e.list.empty()) return false;
  auto to = Jid::parse(to_attr);
  if (!to || exempt(*to, from)) return false;  // a malformed 'to' is the router's to answer
  if (e.loaded) {
    if (!e.list.blocks(*to)) return false;
    refuse_outbound(stanza, from);
    return true;
  }
  hold_source(e);
  e.waiting.push_back([this, stanza = std::move(stanza), from, to = *to,
                       hold = router::Handling::hold(),
                       source = router::Flow::carry()](const logic::Blocklist& list) mutable {
    if (list.blocks(to)) return refuse_outbound(stanza, from);
    router::Handling::Resume resume(hold);
    SourceScope routing(source);
    outbound_(std::move(stanza), false);
  });
  return true;
}

const logic::Blocklist* Blocking::list_of(const Jid& user) const {
  auto it = cache_.find(user.bare_str());
  if (it == cache_.end() || it->second.list.empty()) return nullptr;
  return &it->second.list;
}

void Blocking::session_ended(router::LocalSession& s) {
  auto it = cache_.find(s.jid().bare_str());
  if (it == cache_.end()) return;
  auto& interested = it->second.interested;
  if (auto i = interested.find(s.jid()); i != interested.end() && i->second == &s)
    interested.erase(i);
  // Called before the session leaves the router: it is still among the account's sessions.
  if (ctx_.router.sessions_of(s.jid().bare()).size() <= 1) ctx_.spawn(evict(s.jid().bare()));
}

// After the storage jobs queued before this one (the roster that the session's unavailable
// presence broadcast reads, which still leaves out blocked contacts), if no session came back.
asio::awaitable<void> Blocking::evict(Jid user) {
  auto nothing = [](storage::Storage&) { return true; };
  co_await ctx_.worker.run(std::move(nothing));
  auto it = cache_.find(user.str());
  if (it != cache_.end() && it->second.loaded && ctx_.router.sessions_of(user).empty()) {
    cache_.erase(it);
    count();
  }
}

std::unordered_map<std::string, Blocking::Entry>::iterator Blocking::start_loading(
    const Jid& user) {
  auto [it, inserted] = cache_.try_emplace(user.bare_str());
  if (inserted) {
    count();
    ctx_.spawn(load(user.bare(), nullptr));
  }
  return it;
}

// Calls `then` with the list of `user`: at once when cached, else once read. An account
// with sessions keeps it cached; for one without, it is read for this stanza only.
void Blocking::with_list(const Jid& user, Waiter then) {
  auto it = cache_.find(user.bare_str());
  if (it != cache_.end() && it->second.loaded) return then(it->second.list);
  if (it == cache_.end()) {
    if (ctx_.router.sessions_of(user).empty()) return ctx_.spawn(load(user, std::move(then)));
    it = start_loading(user);
  }
  hold_source(it->second);
  it->second.waiting.push_back(std::move(then));
}

asio::awaitable<void> Blocking::load(Jid user, Waiter then) {
  std::string domain = user.domain(), name = user.local();
  auto read = [=](storage::Storage& st) { return st.blocklist_get(domain, name); };
  std::vector<std::string> jids;
  bool read_ok = true;
  try {
    jids = co_await ctx_.worker.run(std::move(read));
  } catch (const std::exception& e) {
    // Delivered as if nothing were blocked, and read again for the next stanza.
    spdlog::error("blocklist of {} could not be read: {}", user.str(), e.what());
    read_ok = false;
  }
  loaded(user, read_ok, jids, then);
}

void Blocking::loaded(const Jid& user, bool read_ok, const std::vector<std::string>& jids,
                      const Waiter& then) {
  std::optional<logic::Blocklist> list;
  if (read_ok) list.emplace(jids);
  if (!then) return settle(user, std::move(list), false);
  if (list) return then(*list);
  then(logic::Blocklist());
}

// The list of `user` is known (nullopt: it could not be read): the cache keeps it while the
// account has sessions, and the stanzas that waited for it continue. A list read from storage
// does not replace one a command has set since (`authoritative`): that one is newer.
void Blocking::settle(const Jid& user, std::optional<logic::Blocklist> list, bool authoritative) {
  auto it = cache_.find(user.str());
  if (it == cache_.end()) {
    if (!authoritative || !list || ctx_.router.sessions_of(user).empty()) return;
    it = cache_.try_emplace(user.str()).first;
    count();
  }
  Entry& e = it->second;
  if (e.loaded && !authoritative) return;
  std::vector<Waiter> waiting = std::move(e.waiting);
  e.waiting.clear();
  std::unique_ptr<router::Congestion> loading = std::move(e.loading);
  logic::Blocklist known = list ? *list : logic::Blocklist();
  if (list && !ctx_.router.sessions_of(user).empty()) {
    e.list = std::move(*list);
    e.loaded = true;
  } else {
    cache_.erase(it);
    count();
  }
  for (auto& w : waiting) w(known);
  if (loading) loading->relieve();  // their sources read on
}

// The source of the stanza being held (if it can wait) reads no further until the list is
// known: what it sends meanwhile is routed in order once it is, not piled up here first.
void Blocking::hold_source(Entry& e) {
  if (!e.loading) e.loading = std::make_unique<router::Congestion>();
  router::Flow::slow_down(*e.loading, router::Wait::kBrief);
}

// Accounts without sessions: only what could be stored, answered or acted upon is checked
// (messages, IQ requests, probes and subscription requests); other presence goes nowhere.
bool Blocking::needs_reading(const Element& stanza, const Jid& to) const {
  if (!ctx_.router.sessions_of(to.bare()).empty()) return true;
  auto type = stanza.attr("type");
  switch (xml::stanza_kind(stanza)) {
    case xml::StanzaKind::kMessage:
      // Without a session a message can only go to offline storage, whose job on the storage
      // thread checks the list itself (im/offline.cpp): one job per message, and nothing
      // held here while the list is read.
      return false;
    case xml::StanzaKind::kIq:
      return type == "get" || type == "set";
    case xml::StanzaKind::kPresence:
      return type == "probe" || is_subscription_type(type);
    case xml::StanzaKind::kOther:
      break;
  }
  return false;
}

// §3.4: presence is dropped without an answer, IQ get/set and messages get
// service-unavailable (so the user appears offline), IQ results and errors are dropped.
void Blocking::refuse_inbound(const Element& stanza) {
  if (ctx_.metrics) ctx_.metrics->blocked("inbound");
  if (stanza.name() == "presence") return;
  auto type = stanza.attr("type");
  if (stanza.name() == "iq" && type != "get" && type != "set") return;
  ctx_.router.bounce(stanza, StanzaError::kServiceUnavailable);
}

// §3.3: the user's server does not route it, and tells the user's client why.
void Blocking::refuse_outbound(const Element& stanza, const Jid& from) {
  if (ctx_.metrics) ctx_.metrics->blocked("outbound");
  if (!xml::may_bounce(stanza)) return;
  Element reply = xml::make_error_reply(stanza, StanzaError::kNotAcceptable);
  if (Element* error = reply.child("error", stanza.ns()))
    error->add_child("blocked", std::string(ns::kBlockingErrors));
  ctx_.deliver_to(from, reply);
}

}  // namespace waddle::im
