// The server's own IQs: service discovery, ping, version, and the IQs a server answers for
// its accounts; urn:waddle:identity goes to the home server part of identity/.
#include "im/server_iq.h"

#include "im/caps.h"
#include "im/logic/extdisco.h"
#include "im/upload_slots.h"

#include <boost/asio.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "core/version.h"
#include "identity/home_server.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using xml::Element;

void ServerIqs::to_domain(Element iq) {
  auto type = iq.attr("type");
  if (type == "result" || type == "error") {
    // Answers to the server's own questions: about a client's capabilities (XEP-0115), or
    // the home server's about identity support.
    if (ctx_.caps && ctx_.caps->take_answer(iq)) return;
    if (ctx_.home_server) ctx_.home_server->take_answer(iq);
    return;
  }
  if (type != "get" && type != "set") return;
  const Element* q = iq.first_child();
  if (type == "get" && q) {
    if (q->is("query", ns::kDiscoInfo)) return ctx_.router.route(disco_info_result(iq, true));
    if (q->is("query", ns::kDiscoItems)) return ctx_.router.route(disco_items_result(iq));
    if (ctx_.home_server && q->ns() == ns::kIdentity)
      return ctx_.home_server->handle_iq(std::move(iq));
    if (q->is("ping", ns::kPing)) return ctx_.router.route(xml::make_iq_result(iq));
    if (q->is("query", ns::kVersion)) return ctx_.router.route(version_result(iq));
    if (q->ns() == logic::kExtdisco && !ctx_.config.turn.host.empty())
      return external_services(std::move(iq));
    if (q->is("request", ns::kHttpUpload) && ctx_.upload)
      return ctx_.router.route(ctx_.upload->request_slot(iq));
  }
  // XEP-0280 §4.1: carbons are for this server's own clients (theirs reach im/carbons).
  if (q && q->ns() == ns::kCarbons) return ctx_.router.bounce(iq, StanzaError::kNotAllowed);
  ctx_.router.bounce(iq, StanzaError::kServiceUnavailable);
}

asio::awaitable<void> ServerIqs::to_account(Element iq, Jid bare) {
  auto type = iq.attr("type");
  if (type != "get" && type != "set") co_return;
  const Element* q = iq.first_child();
  if (type == "get" && q && q->is("query", ns::kDiscoInfo)) {
    bool exists = co_await ctx_.account_exists(bare);
    if (exists) {
      ctx_.router.route(disco_info_result(iq, false));
      co_return;
    }
  }
  ctx_.router.bounce(iq, StanzaError::kServiceUnavailable);
}

asio::awaitable<void> ServerIqs::own_account(Element iq, Jid from) {
  auto type = iq.attr("type");
  if (type != "get" && type != "set") co_return;
  const Element* q = iq.first_child();
  if (q && q->is("query", ns::kRoster)) {
    co_await roster_.handle_iq(std::move(iq), from);
    co_return;
  }
  Element reply;
  if (type == "get" && q && q->is("query", ns::kDiscoInfo)) {
    reply = disco_info_result(iq, false);
  } else if (type == "get" && q && q->is("query", ns::kDiscoItems)) {
    reply = xml::make_iq_result(iq);
    reply.add_child("query", std::string(ns::kDiscoItems));
  } else if (type == "get" && q && q->is("ping", ns::kPing)) {
    reply = xml::make_iq_result(iq);
  } else {
    reply = xml::make_error_reply(iq, StanzaError::kServiceUnavailable);
  }
  ctx_.deliver_to(from, reply);
}

// XEP-0215 §3: the STUN and TURN services, for this server's own users (credentials grant
// the use of the operator's relay).
void ServerIqs::external_services(Element iq) {
  const auto from = Jid::parse(iq.attr("from"));
  if (!from || !ctx_.router.is_user_domain(from->domain()))
    return ctx_.router.bounce(iq, StanzaError::kForbidden);
  const Element* q = iq.first_child();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::string user = from->bare_str();
  Element reply = xml::make_iq_result(iq);
  if (q->name() == "services") {
    reply.add_child(logic::external_services(ctx_.config.turn, q->attr("type"), user, now));
  } else if (const Element* service = q->child("service", logic::kExtdisco);
             q->name() == "credentials" && service) {
    auto credentials = logic::external_credentials(ctx_.config.turn, service->attr("host"),
                                                   service->attr("type"), user, now);
    if (!credentials) return ctx_.router.bounce(iq, StanzaError::kItemNotFound);
    reply.add_child(std::move(*credentials));
  } else {
    return ctx_.router.bounce(iq, StanzaError::kBadRequest);
  }
  ctx_.router.route(std::move(reply));
}

Element ServerIqs::disco_info_result(const Element& iq, bool server) const {
  Element r = xml::make_iq_result(iq);
  auto& q = r.add_child("query", std::string(ns::kDiscoInfo));
  if (auto node = iq.child("query")->attr("node"); !node.empty()) q.set_attr("node", node);
  auto& id = q.add_child("identity", std::string(ns::kDiscoInfo));
  if (server) {
    id.set_attr("category", "server").set_attr("type", "im").set_attr("name", "Waddle");
    // XEP-0363 §3: the domain is also the upload service.
    if (ctx_.upload)
      q.add_child("identity", std::string(ns::kDiscoInfo))
          .set_attr("category", "store")
          .set_attr("type", "file")
          .set_attr("name", "HTTP File Upload");
  } else {
    id.set_attr("category", "account").set_attr("type", "registered");
    // XEP-0163 §5: every account is a PEP service.
    if (ctx_.config.pep.enabled)
      q.add_child("identity", std::string(ns::kDiscoInfo))
          .set_attr("category", "pubsub")
          .set_attr("type", "pep");
  }
  std::vector<std::string_view> features{ns::kDiscoInfo, ns::kDiscoItems};
  // XEP-0191 §3.1 and XEP-0377 §3 (with the reasons of its version 0.2, also accepted).
  features.insert(features.end(), {ns::kBlocking, ns::kReporting, ns::kReporting0,
                                   ns::kReporting0Spam, ns::kReporting0Abuse});
  // XEP-0313 §7 / XEP-0359 §6: the account's archive and the stanza ids it gives.
  if (!server && ctx_.config.mam.enabled)
    features.insert(features.end(), {ns::kMam, ns::kMamExtended, ns::kSid});
  // XEP-0357 §4: the account's clients may register app servers.
  if (!server && ctx_.config.push.enabled) features.push_back(ns::kPush);
  // XEP-0060 §10 features of the PEP service (im/pep.h), as XEP-0163 §5 asks.
  static constexpr std::string_view kPepFeatures[] = {
      "http://jabber.org/protocol/pubsub#access-open",
      "http://jabber.org/protocol/pubsub#access-presence",
      "http://jabber.org/protocol/pubsub#access-roster",
      "http://jabber.org/protocol/pubsub#access-whitelist",
      "http://jabber.org/protocol/pubsub#auto-create",
      "http://jabber.org/protocol/pubsub#config-node",
      "http://jabber.org/protocol/pubsub#create-nodes",
      "http://jabber.org/protocol/pubsub#delete-items",
      "http://jabber.org/protocol/pubsub#delete-nodes",
      "http://jabber.org/protocol/pubsub#filtered-notifications",
      "http://jabber.org/protocol/pubsub#item-ids",
      "http://jabber.org/protocol/pubsub#last-published",
      "http://jabber.org/protocol/pubsub#persistent-items",
      "http://jabber.org/protocol/pubsub#publish",
      "http://jabber.org/protocol/pubsub#publish-options",
      "http://jabber.org/protocol/pubsub#purge-nodes",
      "http://jabber.org/protocol/pubsub#retract-items",
      "http://jabber.org/protocol/pubsub#retrieve-items"};
  if (ctx_.config.pep.enabled) {
    // XEP-0054 on every account, XEP-0049 for the account's own clients.
    features.insert(features.end(), {ns::kVcardTemp, "jabber:iq:private"});
  }
  if (!server && ctx_.config.pep.enabled) {
    // XEP-0402 §5.3 (bookmarks kept in sync with XEP-0048 in private XML) and XEP-0398.
    features.insert(features.end(),
                    {"urn:xmpp:bookmarks:1#compat", "urn:xmpp:pep-vcard-conversion:0"});
    features.push_back(ns::kPubsub);
    features.insert(features.end(), std::begin(kPepFeatures), std::end(kPepFeatures));
  }
  if (server) {
    features.insert(features.end(), {ns::kPing, ns::kVersion, ns::kOffline, ns::kCarbons});
    if (ctx_.config.c2s.allow_registration) features.push_back(ns::kRegister);
    if (ctx_.home_server) features.push_back(ns::kIdentity);
    if (!ctx_.config.turn.host.empty()) features.push_back(logic::kExtdisco);
    if (ctx_.upload) features.push_back(ns::kHttpUpload);
  }
  for (auto f : features) q.add_child("feature", std::string(ns::kDiscoInfo)).set_attr("var", f);
  // XEP-0157: where to reach the service's operators.
  if (server)
    if (auto form = logic::contact_form(ctx_.config.contact)) q.add_child(std::move(*form));
  // XEP-0363 §3: the largest file, in the service's disco#info.
  if (server && ctx_.upload) q.add_child(ctx_.upload->disco_form());
  return r;
}

// The room service of this domain, so that clients find where to create rooms, and the
// components under it.
Element ServerIqs::disco_items_result(const Element& iq) const {
  Element r = xml::make_iq_result(iq);
  auto& items = r.add_child("query", std::string(ns::kDiscoItems));
  auto to = Jid::parse(iq.attr("to"));
  if (auto muc = to ? ctx_.config.muc_domain(to->domain()) : std::string(); !muc.empty()) {
    items.add_child("item", std::string(ns::kDiscoItems))
        .set_attr("jid", muc)
        .set_attr("name", "Chatrooms");
  }
  // External components on subdomains of this one (as Prosody lists them).
  for (const auto& [component, secret] : ctx_.config.components.secrets) {
    if (!to || component.size() <= to->domain().size() + 1) continue;
    const std::string_view suffix =
        std::string_view(component).substr(component.size() - to->domain().size() - 1);
    if (suffix[0] == '.' && suffix.substr(1) == to->domain())
      items.add_child("item", std::string(ns::kDiscoItems)).set_attr("jid", component);
  }
  return r;
}

Element ServerIqs::server_caps(std::string_view domain) const {
  Element iq("iq", std::string(ns::kClient));
  iq.set_attr("to", domain);
  iq.add_child("query", std::string(ns::kDiscoInfo));
  const Element r = disco_info_result(iq, true);
  return Caps::server_caps(*r.child("query", ns::kDiscoInfo));
}

Element ServerIqs::version_result(const Element& iq) const {
  Element r = xml::make_iq_result(iq);
  auto& v = r.add_child("query", std::string(ns::kVersion));
  v.add_child("name", std::string(ns::kVersion)).add_text("Waddle");
  v.add_child("version", std::string(ns::kVersion)).add_text(WADDLE_VERSION);
  return r;
}

}  // namespace waddle::im
