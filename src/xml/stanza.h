// Stanza helpers: namespaces, kinds, error replies (RFC 6120 §8.3) and stream errors (§4.9).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/errors.h"
#include "xml/element.h"

namespace waddle::xml {

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
