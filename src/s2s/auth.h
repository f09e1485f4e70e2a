// Pure S2S authentication pieces: XEP-0185 dialback keys and RFC 6125 identity checks of a
// peer certificate (DNS-ID with wildcards, SRV-ID, XmppAddr).
#pragma once

#include <openssl/x509.h>

#include <string>
#include <string_view>

namespace waddle::s2s {

// XEP-0185 §3: HMAC-SHA256(key = hex(SHA256(secret)), text = "Receiving Originating StreamID"),
// as lowercase hex.
std::string dialback_key(std::string_view secret, std::string_view receiving,
                         std::string_view originating, std::string_view stream_id);
// Constant-time comparison of two keys.
bool dialback_key_equal(std::string_view a, std::string_view b);

// RFC 6125 / RFC 6120 §13.7.1.2: true when `cert` is valid for the XMPP service `domain`:
// an XmppAddr (id-on-xmppAddr otherName) equal to the domain, an SRV-ID "_xmpp-server.domain"
// (id-on-dnsSRV otherName), or a DNS-ID matching with at most one left-most wildcard label
// (X509_check_host). The common name is not used when any subjectAltName is present.
bool certificate_matches_domain(X509* cert, std::string_view domain);

}  // namespace waddle::s2s
