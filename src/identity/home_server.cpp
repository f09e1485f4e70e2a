// The home server's side of urn:waddle:identity: credentials for its own users, the public
// key, confirmation of credentials, and vouching for joins to rooms on other servers.
#include "identity/home_server.h"

#include "core/timestamp.h"

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include <memory>
#include <stdexcept>

#include "core/ids.h"
#include "net/listen.h"
#include "net/worker.h"
#include "storage/storage.h"
#include "xml/stanza.h"

namespace waddle::identity {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using xml::Element;

namespace {

constexpr auto kProbeTimeout = std::chrono::seconds(5);
// A service that did not answer is asked again sooner than one that said no.
constexpr auto kRememberYes = std::chrono::hours(1);
constexpr auto kRememberNo = std::chrono::minutes(10);

const std::string kIdentityNs(ns::kIdentity);

// An available presence to a room that carries no credential yet.
bool is_join_without_credential(const Element& stanza) {
  return stanza.name() == "presence" && stanza.attr("type").empty() &&
         stanza.child("x", ns::kMuc) && !stanza.child("credential", kIdentityNs);
}

}  // namespace

HomeServer::HomeServer(const core::Config& config, router::Router& router,
                       net::Worker<storage::Storage>& worker, asio::any_io_executor executor,
                       const SigningKey& key)
    : config_(config),
      router_(router),
      worker_(worker),
      executor_(std::move(executor)),
      key_(key) {}

// ---------------------------------------------------------------- vouching for joins

void HomeServer::route_from_user(Element stanza) {
  if (is_join_without_credential(stanza)) {
    auto to = Jid::parse(stanza.attr("to"));
    // Other servers' rooms never see the credential, so it is not shown to their occupants.
    if (to && !router_.is_local(to->domain()))
      return join_with_credential(std::move(stanza), to->domain());
  }
  if (!held_.empty()) {
    auto to = Jid::parse(stanza.attr("to"));
    if (auto it = to ? held_.find(to->domain()) : held_.end(); it != held_.end()) {
      if (it->second.size() < kMaxHeld) {
        it->second.push_back(std::move(stanza));
        return;
      }
      release_held(to->domain());  // full: what waits goes first, so nothing overtakes it
    }
  }
  router_.route(std::move(stanza));
}

// Routes what waits for `service`'s answer, in order and without credentials; the question
// stays open, and its answer is remembered for later joins.
void HomeServer::release_held(const std::string& service) {
  auto it = held_.find(service);
  if (it == held_.end()) return;
  auto waiting = std::move(it->second);
  held_.erase(it);
  spdlog::info("identity: {} stanzas to {} leave without waiting for its answer (at most {} wait)",
               waiting.size(), service, kMaxHeld);
  for (auto& st : waiting) router_.route(std::move(st));
}

bool HomeServer::asking(const std::string& service) const {
  for (const auto& [id, s] : probes_)
    if (s == service) return true;
  return false;
}

void HomeServer::join_with_credential(Element stanza, const std::string& service) {
  auto now = std::chrono::steady_clock::now();
  if (auto it = support_.find(service); it != support_.end() && it->second.until > now) {
    if (it->second.yes) attach_credential(stanza, service);
    return router_.route(std::move(stanza));
  }
  if (auto it = held_.find(service); it != held_.end() && it->second.size() >= kMaxHeld) {
    release_held(service);
    return router_.route(std::move(stanza));
  }
  auto& waiting = held_[service];
  waiting.push_back(std::move(stanza));
  if (waiting.size() > 1 || asking(service)) return;  // asked already
  ask_support(service, Jid::parse(waiting.front().attr("from"))->domain());
}

// Asks `service` by disco#info whether it understands credentials; no answer counts as no.
void HomeServer::ask_support(const std::string& service, const std::string& from_domain) {
  const std::string id = "waddle-identity-" + core::random_hex(6);
  probes_[id] = service;
  Element iq("iq", std::string(ns::kClient));
  iq.set_attr("type", "get").set_attr("id", id).set_attr("to", service);
  iq.set_attr("from", from_domain);
  iq.add_child("query", std::string(ns::kDiscoInfo));
  router_.route(std::move(iq));
  auto timer = std::make_shared<asio::steady_timer>(executor_, kProbeTimeout);
  timer->async_wait([this, timer, id](boost::system::error_code ec) {
    if (!ec && probes_.contains(id)) support_answer(id, false);
  });
}

void HomeServer::take_answer(const Element& iq) {
  auto p = probes_.find(std::string(iq.attr("id")));
  if (p == probes_.end() || iq.attr("from") != p->second) return;
  bool yes = false;
  if (const Element* q = iq.child("query", ns::kDiscoInfo))
    for (const auto* f : q->children("feature", ns::kDiscoInfo))
      yes |= f->attr("var") == kIdentityNs;
  support_answer(std::string(p->first), yes);
}

void HomeServer::support_answer(const std::string& id, bool yes) {
  auto p = probes_.find(id);
  if (p == probes_.end()) return;
  const std::string service = p->second;
  probes_.erase(p);
  support_[service] = {yes, std::chrono::steady_clock::now() + (yes ? kRememberYes : kRememberNo)};
  auto waiting = std::move(held_[service]);
  held_.erase(service);
  for (auto& st : waiting) {
    if (yes && is_join_without_credential(st)) attach_credential(st, service);
    router_.route(std::move(st));
  }
}

void HomeServer::attach_credential(Element& stanza, const std::string& service) {
  auto from = Jid::parse(stanza.attr("from"));
  if (!from) return;
  if (auto token = issue_credential(*from, service))
    stanza.add_child("credential", kIdentityNs).add_text(*token);
}

// nullopt when the claims do not fit in a credential (very long JIDs).
std::optional<std::string> HomeServer::issue_credential(const Jid& user,
                                                        const std::string& audience) {
  std::string did;
  if (auto* s = router_.find(user)) did = s->did;  // user is the full JID of a session
  Claims c;
  const auto now = core::unix_now();
  c.issuer = user.domain();
  c.subject = user.bare_str();  // the credential names the account, not the resource
  c.audience = audience;
  c.did = did;
  c.issued_at = now;
  c.expires_at =
      now + std::chrono::duration_cast<std::chrono::seconds>(config_.identity.credential_lifetime)
                .count();
  try {
    return issue(key_, c);
  } catch (const std::invalid_argument& e) {
    spdlog::warn("identity: no credential for {}: {}", user.bare_str(), e.what());
    return std::nullopt;
  }
}

// ---------------------------------------------------------------- the IQs

// <key/> (anyone: the public key), <credential/> (its own users: a fresh credential),
// <verify/> (anyone: is this credential ours, valid, and its user still an account here?).
void HomeServer::handle_iq(Element iq) {
  const Element* q = iq.first_child();
  auto from = Jid::parse(iq.attr("from"));
  auto to = Jid::parse(iq.attr("to"));
  if (!q || !from || !to) return;
  if (q->name() == "key") {
    Element r = xml::make_iq_result(iq);
    r.add_child("key", kIdentityNs)
        .set_attr("algorithm", "Ed25519")
        .set_attr("id", key_.key_id())
        .add_text(key_.public_key_b64());
    return router_.route(std::move(r));
  }
  if (q->name() == "credential") {
    if (from->domain() != to->domain() || from->local().empty())
      return router_.bounce(iq, StanzaError::kForbidden,
                            "Credentials are issued to this server's own users");
    return answer_credential_request(iq, *q, *from);
  }
  if (q->name() == "verify") {
    return net::spawn_logged(executor_, verify_credential(std::move(iq)), "identity handler");
  }
  router_.bounce(iq, StanzaError::kFeatureNotImplemented);
}

void HomeServer::answer_credential_request(const Element& iq, const Element& q, const Jid& from) {
  std::string audience(q.attr("audience"));
  auto aud = Jid::parse(audience);
  if (!audience.empty() && (!aud || !aud->is_domain()))
    return router_.bounce(iq, StanzaError::kBadRequest, "The audience must be a domain");
  auto token = issue_credential(from, aud ? aud->domain() : std::string());
  if (!token) return router_.bounce(iq, StanzaError::kBadRequest, "JID too long for a credential");
  Element r = xml::make_iq_result(iq);
  r.add_child("credential", kIdentityNs).add_text(*token);
  router_.route(std::move(r));
}

void HomeServer::refuse(const Element& iq, const std::string& asker, const std::string& user,
                        std::string_view reason) {
  spdlog::info("identity: {} asked about a credential for {}: {}", asker, user, reason);
  router_.bounce(iq, StanzaError::kNotAuthorized, reason);
}

asio::awaitable<void> HomeServer::verify_credential(Element iq) {
  const Element* q = iq.first_child();
  auto user = Jid::parse(q->child_text("jid", kIdentityNs));
  const std::string token = q->child_text("credential", kIdentityNs);
  auto to = Jid::parse(iq.attr("to"));
  if (!user || !user->is_bare() || user->local().empty() || token.empty() || !to) {
    router_.bounce(iq, StanzaError::kBadRequest, "Expected <jid/> and <credential/>");
    co_return;
  }
  if (user->domain() != to->domain()) {
    router_.bounce(iq, StanzaError::kNotAuthorized,
                   user->domain() + " is not this server's domain");
    co_return;
  }
  auto result =
      verify(token, key_.public_key(), to->domain(), user->bare_str(), "", core::unix_now());
  const std::string asker(iq.attr("from"));
  if (result.verdict != Verdict::kValid) {
    refuse(iq, asker, user->bare_str(), describe(result.verdict));
    co_return;
  }
  std::string domain = user->domain(), name = user->local();
  auto account_did = [=](storage::Storage& st) {
    std::optional<std::string> did;  // the account's DID; nullopt = no such account
    if (auto acct = st.get_account(domain, name)) did = acct->did;
    return did;
  };
  auto did = co_await worker_.run(std::move(account_did));
  if (!did) {
    refuse(iq, asker, user->bare_str(), "No such account");
    co_return;
  }
  if (*did != result.claims.did) {
    refuse(iq, asker, user->bare_str(),
           "The account's ATProto DID is no longer the one in the credential");
    co_return;
  }
  spdlog::info("identity: confirmed the credential of {} to {}", user->bare_str(), asker);
  Element r = xml::make_iq_result(iq);
  auto& id = r.add_child("identity", kIdentityNs);
  id.set_attr("jid", user->bare_str());
  id.set_attr("expires", std::to_string(result.claims.expires_at));
  if (!result.claims.did.empty()) id.set_attr("did", result.claims.did);
  router_.route(std::move(r));
}

}  // namespace waddle::identity
