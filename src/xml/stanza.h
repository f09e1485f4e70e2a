// Stanza helpers: namespaces, kinds, error replies (RFC 6120 §8.3) and stream errors (§4.9).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/errors.h"
#include "xml/element.h"

namespace waddle::xml {

namespace ns {
inline constexpr std::string_view kClient = "jabber:client";
inline constexpr std::string_view kServer = "jabber:server";
inline constexpr std::string_view kStream = "http://etherx.jabber.org/streams";
inline constexpr std::string_view kTls = "urn:ietf:params:xml:ns:xmpp-tls";
inline constexpr std::string_view kSasl = "urn:ietf:params:xml:ns:xmpp-sasl";
inline constexpr std::string_view kBind = "urn:ietf:params:xml:ns:xmpp-bind";
inline constexpr std::string_view kSession = "urn:ietf:params:xml:ns:xmpp-session";
inline constexpr std::string_view kRoster = "jabber:iq:roster";
inline constexpr std::string_view kRegister = "jabber:iq:register";
inline constexpr std::string_view kRegisterFeature = "http://jabber.org/features/iq-register";
inline constexpr std::string_view kDiscoInfo = "http://jabber.org/protocol/disco#info";
inline constexpr std::string_view kDiscoItems = "http://jabber.org/protocol/disco#items";
inline constexpr std::string_view kPing = "urn:xmpp:ping";
inline constexpr std::string_view kVersion = "jabber:iq:version";
inline constexpr std::string_view kDelay = "urn:xmpp:delay";
inline constexpr std::string_view kOffline = "msgoffline";
}  // namespace ns

enum class StanzaKind { kMessage, kPresence, kIq, kOther };

// message/presence/iq in jabber:client or jabber:server.
StanzaKind stanza_kind(const Element& e);
inline bool is_stanza(const Element& e) {
  return stanza_kind(e) != StanzaKind::kOther;
}
// type='error' stanzas, and IQ results, are never answered with an error (RFC 6120 §8.3.1).
bool may_bounce(const Element& stanza);

// Builds the error reply to `stanza`: to/from swapped, type='error', the original children
// kept (for IQs only the first payload), and <error type=...><condition/><text/></error>.
Element make_error_reply(const Element& stanza, core::StanzaError condition,
                         std::string_view text = {});
// An IQ result answering `iq` (to/from swapped, same id), without payload.
Element make_iq_result(const Element& iq);

// Reads the condition of a stanza error, if any.
std::optional<core::StanzaError> stanza_error_condition(const Element& stanza);

// "<stream:error><COND xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>[<text>]</stream:error>"
std::string stream_error_xml(core::StreamError condition, std::string_view text = {});

}  // namespace waddle::xml
