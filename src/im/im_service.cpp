// RFC 6121 on the server, the façade: owns the parts (roster, subscriptions, presence,
// offline storage, server IQs, and the home server side of federated identity) and sends
// each stanza to its part; message delivery rules (§8.5) are here.
#include "im/im_service.h"

#include <boost/asio.hpp>

#include <optional>

#include "core/jid.h"
#include "identity/home_server.h"
#include "im/archive.h"
#include "im/blocking.h"
#include "im/caps.h"
#include "im/carbons.h"
#include "im/context.h"
#include "im/logic/mam_query.h"
#include "im/offline.h"
#include "im/pep.h"
#include "im/presence.h"
#include "im/push.h"
#include "im/roster.h"
#include "im/server_iq.h"
#include "im/subscriptions.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using xml::Element;

struct ImService::Impl {
  std::unique_ptr<identity::HomeServer> home_server;
  Context ctx;
  Roster roster{ctx};
  Subscriptions subscriptions{ctx, roster};
  Push push{ctx};
  Offline offline{ctx, [this](const Jid& bare, const Element& m) { stored_offline(bare, m); }};
  Presence presence{ctx, subscriptions, offline};
  ServerIqs server_iqs{ctx, roster};
  Carbons carbons{ctx};
  Archive archive{ctx};
  Blocking blocking{ctx, [this](Element s, bool again) { to_local(std::move(s), again, true); },
                    [this](Element s, bool) { from_client(std::move(s), true); }};
  Caps caps{ctx};
  Pep pep{ctx};

  Impl(const core::Config& config, router::Router& router, net::Worker<storage::Storage>& worker,
       asio::any_io_executor executor, metrics::C2sMetrics* metrics,
       const identity::SigningKey* key)
      : home_server(
            key ? std::make_unique<identity::HomeServer>(config, router, worker, executor, *key)
                : nullptr),
        ctx{config,    router, worker, std::move(executor), metrics, home_server.get(),
            &blocking, &caps,  &pep} {
    caps.on_features = [this](const Jid& full) { pep.features_known(full); };
    archive.start_cleanup();
  }
  ~Impl() { archive.stop(); }

  void from_client(Element stanza, bool screened = false) {
    auto from = Jid::parse(stanza.attr("from"));
    if (!from) return;
    if (!screened && blocking.screen_outbound(stanza, *from)) return;
    switch (xml::stanza_kind(stanza)) {
      case xml::StanzaKind::kPresence:
        return presence.from_client(std::move(stanza), *from);
      case xml::StanzaKind::kMessage:
        // RFC 6120 §10.3.1: no 'to' means the sender's own bare JID.
        if (!stanza.has_attr("to")) stanza.set_attr("to", from->bare_str());
        carbons.sent(stanza, *from);
        archive.outgoing(stanza, *from);
        return ctx.route_from_user(std::move(stanza));
      case xml::StanzaKind::kIq: {
        if (carbons.take_iq(stanza, *from)) return;
        auto to = stanza.attr("to");
        if ((to.empty() || to == from->bare_str()) && Blocking::is_command(stanza))
          return ctx.spawn(blocking.handle_command(std::move(stanza), *from));
        if ((to.empty() || to == from->bare_str()) && Archive::handles(stanza))
          return ctx.spawn(archive.own_iq(std::move(stanza), *from));
        if ((to.empty() || to == from->bare_str()) && push.enabled() && Push::handles(stanza))
          return ctx.spawn(push.own_iq(std::move(stanza), *from));
        if ((to.empty() || to == from->bare_str()) && pep.enabled()) {
          if (Pep::handles(stanza)) return ctx.spawn(pep.iq(std::move(stanza), from->bare()));
          if (Pep::handles_private(stanza))
            return ctx.spawn(pep.private_iq(std::move(stanza), from->bare()));
          if (Pep::handles_vcard(stanza))
            return ctx.spawn(pep.vcard_iq(std::move(stanza), from->bare()));
          if (is_disco_items(stanza))
            return ctx.spawn(pep.disco_items(std::move(stanza), from->bare()));
        }
        if (to.empty() || to == from->bare_str())
          return ctx.spawn(server_iqs.own_account(std::move(stanza), *from));
        return ctx.route_from_user(std::move(stanza));
      }
      case xml::StanzaKind::kOther:
        return;
    }
  }

  // §8: a stanza for a local domain or one of its accounts.
  void to_local(Element stanza, bool again = false, bool screened = false) {
    auto from = Jid::parse(stanza.attr("from"));
    if (!from) return;
    std::optional<Jid> to = stanza.has_attr("to") ? Jid::parse(stanza.attr("to")) : from->bare();
    if (!to) return ctx.router.bounce(stanza, StanzaError::kJidMalformed);
    if (!screened && blocking.screen_inbound(stanza, *from, *to, again)) return;
    switch (xml::stanza_kind(stanza)) {
      case xml::StanzaKind::kIq:
        return iq_to_local(std::move(stanza), *to);
      case xml::StanzaKind::kMessage:
        return message_to_local(std::move(stanza), *from, *to, again);
      case xml::StanzaKind::kPresence:
        if (to->is_domain()) return;
        return presence.to_local(std::move(stanza), *from, *to);
      case xml::StanzaKind::kOther:
        return;
    }
  }

  void iq_to_local(Element iq, const Jid& to) {
    if (to.is_domain()) return server_iqs.to_domain(std::move(iq));
    if (!to.is_bare()) {
      if (auto* s = ctx.router.find(to)) return s->deliver(iq);
      return ctx.router.bounce(iq, StanzaError::kServiceUnavailable);
    }
    // XEP-0313: an archive is for its own account's clients only.
    if (Archive::handles(iq) && (iq.attr("type") == "get" || iq.attr("type") == "set"))
      return ctx.router.bounce(iq, StanzaError::kForbidden);
    // XEP-0357: registrations are made by the account's own clients only.
    if (push.enabled() && Push::handles(iq) &&
        (iq.attr("type") == "get" || iq.attr("type") == "set"))
      return ctx.router.bounce(iq, StanzaError::kForbidden);
    // XEP-0163: the account's PEP service.
    if (pep.enabled() && (iq.attr("type") == "get" || iq.attr("type") == "set")) {
      if (Pep::handles(iq)) return ctx.spawn(pep.iq(std::move(iq), to));
      if (is_disco_items(iq)) return ctx.spawn(pep.disco_items(std::move(iq), to));
      if (Pep::handles_private(iq)) return ctx.spawn(pep.private_iq(std::move(iq), to));
      if (Pep::handles_vcard(iq)) return ctx.spawn(pep.vcard_iq(std::move(iq), to));
    }
    // The answer of an app server to a push notification of this account, or of a contact's
    // client to the account's question about its capabilities (XEP-0115).
    if ((iq.attr("type") == "result" || iq.attr("type") == "error") &&
        (caps.take_answer(iq) || push.take_answer(iq)))
      return;
    ctx.spawn(server_iqs.to_account(std::move(iq), to));
  }

  void message_to_local(Element stanza, const Jid& from, const Jid& to, bool again) {
    if (to.is_domain()) return ctx.router.bounce(stanza, StanzaError::kServiceUnavailable);
    archive.incoming(stanza, from, to, again);
    auto type = stanza.attr("type");
    const bool copies = carbons.inbound(stanza);
    if (!to.is_bare()) {
      if (auto* s = ctx.router.find(to)) {
        s->deliver(stanza);
        if (copies) carbons.received(stanza, to.bare(), {s});
        if (s->hibernated()) notify_if_away(to.bare(), stanza, again);
        return;
      }
      // §8.5.3.2.1: no such resource.
      if (type == "groupchat") return ctx.router.bounce(stanza, StanzaError::kServiceUnavailable);
      if (type == "headline" || type == "error") return;
    }
    message_to_bare(std::move(stanza), to.bare(), again, copies);
  }

  // §8.5.2.1.1: to the available resources with non-negative priority, else offline storage.
  void message_to_bare(Element stanza, Jid bare, bool again, bool copies) {
    auto type = stanza.attr("type");
    if (type == "error") return;  // never answered, nobody to show it to
    if (type == "groupchat") return ctx.router.bounce(stanza, StanzaError::kServiceUnavailable);
    auto targets = ctx.available(bare, true);
    if (!targets.empty()) {
      for (auto* s : targets) s->deliver(stanza);
      if (copies) carbons.received(stanza, bare, targets);
      notify_if_away(bare, stanza, again);
      return;
    }
    if (type == "headline") return;
    // XEP-0160 §4: chat states, receipts and markers alone are not stored (the archive and
    // the client's next query make them redundant).
    if (!worth_keeping(stanza)) return;
    ctx.spawn(offline.store(std::move(stanza), std::move(bare), again));
  }

  void notify_if_away(const Jid& bare, const Element& stanza, bool again);

  static bool is_disco_items(const Element& iq) {
    const Element* q = iq.first_child();
    return iq.attr("type") == "get" && q && q->is("query", ns::kDiscoItems) &&
           q->attr("node").empty();
  }

  // XEP-0357: a message stored for an account, unless one of its clients is here to take it
  // (a resource that became available while it was stored gets it at once).
  void stored_offline(const Jid& bare, const Element& stanza) {
    for (const auto* s : ctx.available(bare, true))
      if (!s->hibernated()) return;
    push.message_waiting(bare, stanza);
  }
};

// XEP-0357: a message worth keeping that every session of `bare` keeps for a client that is
// away (XEP-0198, waiting to be resumed). Messages routed `again` were counted the first time.
void ImService::Impl::notify_if_away(const Jid& bare, const Element& stanza, bool again) {
  if (again || !worth_keeping(stanza)) return;
  const auto sessions = ctx.router.sessions_of(bare);
  if (sessions.empty()) return;
  for (const auto* s : sessions)
    if (!s->hibernated()) return;
  push.message_waiting(bare, stanza);
}

ImService::ImService(const core::Config& config, router::Router& router,
                     net::Worker<storage::Storage>& worker, asio::any_io_executor executor,
                     metrics::C2sMetrics* metrics, const identity::SigningKey* identity_key)
    : impl_(std::make_unique<Impl>(config, router, worker, std::move(executor), metrics,
                                   identity_key)) {}

ImService::~ImService() = default;

void ImService::from_client(Element stanza) {
  impl_->from_client(std::move(stanza));
}
void ImService::to_local(Element stanza) {
  impl_->to_local(std::move(stanza));
}
void ImService::to_local_again(Element stanza) {
  impl_->to_local(std::move(stanza), true);
}
Archive& ImService::archive() {
  return impl_->archive;
}
void ImService::session_bound(const Jid& full) {
  impl_->push.session_bound(full);
  impl_->pep.session_bound(full);
}
void ImService::set_upload(UploadSlots* upload) {
  impl_->ctx.upload = upload;
}

void ImService::account_removed(const Jid& bare) {
  impl_->push.account_removed(bare);
  impl_->pep.account_removed(bare);
}
xml::Element ImService::server_caps(std::string_view domain) const {
  return impl_->server_iqs.server_caps(domain);
}
void ImService::session_ended(router::LocalSession& s) {
  impl_->caps.forget(s.jid());
  impl_->pep.session_ended(s.jid());
  impl_->pep.session_gone(s.jid());
  impl_->presence.session_ended(s);
  impl_->carbons.session_ended(s);
  impl_->blocking.session_ended(s);
}

}  // namespace waddle::im
