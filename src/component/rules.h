// External components (XEP-0114), the parts without I/O: the handshake's digest, what a
// component may send, and its stanzas brought into the server's namespace.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/errors.h"
#include "xml/element.h"

namespace waddle::component {

// XEP-0114 §3: the handshake's content, lowercase hex SHA-1 of the stream id and the secret.
std::string handshake_digest(std::string_view stream_id, std::string_view secret);
// Whether a component's <handshake/> text is that digest (hex of either case), compared in
// constant time.
bool handshake_matches(std::string_view answer, std::string_view stream_id,
                       std::string_view secret);

// What is done with an element a connected component sent.
struct Verdict {
  enum class Kind {
    kRoute,   // a stanza: routed like any other
    kAnswer,  // answered with the stanza error `error` (back to the component)
    kClose,   // the stream is closed with the stream error `stream_error`
  };
  Kind kind = Kind::kRoute;
  core::StanzaError error = core::StanzaError::kBadRequest;
  core::StreamError stream_error = core::StreamError::kUndefinedCondition;
  std::string text;
};
// A component speaks for its own domain only: 'from' must be that domain or a JID at it
// (else the stream is closed with invalid-from, as Prosody and ejabberd do); a stanza needs a
// 'to' (else bad-request); anything but message, presence and iq in jabber:component:accept
// closes the stream with unsupported-stanza-type.
Verdict check(const xml::Element& element, std::string_view domain);

// The stanza as the rest of the server sees it: jabber:client instead of
// jabber:component:accept, on it and on every descendant that inherited it.
xml::Element to_server_namespace(const xml::Element& stanza);

}  // namespace waddle::component
