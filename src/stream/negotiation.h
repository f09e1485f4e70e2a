// What client and server streams write alike while they negotiate (RFC 6120 §4.3, §4.7,
// §4.9, §5.3.1): the stream header, the features block, the closing with a stream error, and
// the parser limits each kind of stream reads with. Bytes only: no sockets here.
#pragma once

#include <algorithm>
#include <span>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/errors.h"
#include "xml/element.h"
#include "xml/parser.h"

namespace waddle::stream {

// RFC 6120 §4.4: the end of a stream.
inline constexpr std::string_view kStreamEnd = "</stream:stream>";

// The opening tag of a stream (RFC 6120 §4.7): "<?xml version='1.0'?><stream:stream
// xmlns=... version='1.0'>", attribute values escaped, empty ones left out.
// A client stream's answer: from the served domain, with the stream id, in English.
std::string client_header(std::string_view from, std::string_view id);
// A server stream's header, either direction; the db: prefix (XEP-0220 §2.1) declared.
std::string server_header(std::string_view from, std::string_view to, std::string_view id);
// An external component's stream (XEP-0114 §3), answered from its domain: no version, no
// features.
std::string component_header(std::string_view from, std::string_view id);

// <stream:features/>, to be filled with the offers below and sent with str().
xml::Element stream_features();
// RFC 6120 §5.3.1: STARTTLS, mandatory to negotiate.
void offer_starttls(xml::Element& features);
// RFC 6120 §6.4.1: the SASL mechanisms, in order of preference.
void offer_sasl(xml::Element& features, std::span<const std::string_view> mechanisms);

// RFC 6120 §4.9: a stream error and the end of the stream, after `header_first` (one of the
// headers above, when none was sent yet: an error needs a stream to be in).
std::string stream_error_close(core::StreamError error, std::string_view text,
                               std::string_view header_first = {});

// Parser limits (ARCHITECTURE.md principle 5). Depth, attribute count and header size are
// [c2s.limits] for every stream; the stanza size is [c2s.limits] for clients and
// [s2s] max_stanza_size for servers.
inline xml::ParserLimits client_parser_limits(const core::Config& config) {
  const auto& l = config.c2s.limits;
  return {l.max_stanza_size, l.max_depth, l.max_attributes, l.max_header_size};
}
inline xml::ParserLimits server_parser_limits(const core::Config& config) {
  const auto& l = config.c2s.limits;
  return {config.s2s.max_stanza_size, l.max_depth, l.max_attributes, l.max_header_size};
}
// What a receiving stream reads with until the peer has authenticated: the stanza size at
// most [c2s.limits] max_unauthenticated_stanza_size (docs/security.md "Memory"); the stream
// raises it to `limits.max_stanza_size` once authenticated.
inline xml::ParserLimits before_authentication(xml::ParserLimits limits,
                                               const core::Config& config) {
  limits.max_stanza_size =
      std::min(limits.max_stanza_size, config.c2s.limits.max_unauthenticated_stanza_size);
  return limits;
}

}  // namespace waddle::stream
