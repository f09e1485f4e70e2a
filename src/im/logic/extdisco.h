// External service discovery (XEP-0215) and contact addresses (XEP-0157) without I/O: the STUN
// and TURN services of [turn], with TURN credentials valid for [turn] ttl as coturn's
// use-auth-secret checks them (the username is the expiry in Unix seconds, a colon and the
// user's JID; the password the base64 HMAC-SHA1 of the username keyed with the shared secret),
// and the addresses of [contact] as the serverinfo form of the server's disco#info.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"
#include "xml/element.h"

namespace waddle::im::logic {

inline constexpr std::string_view kExtdisco = "urn:xmpp:extdisco:2";

// The <services/> answer to a request for the services (only those of `type` if not empty)
// from `user` at `now` (Unix seconds).
xml::Element external_services(const core::TurnConfig& turn, std::string_view type,
                               std::string_view user, std::int64_t now);
// The <credentials/> answer (XEP-0215 §3.3) for the service of `host` and `type`, or nothing
// when there is no such TURN service (item-not-found).
std::optional<xml::Element> external_credentials(const core::TurnConfig& turn,
                                                 std::string_view host, std::string_view type,
                                                 std::string_view user, std::int64_t now);
// coturn's password for `username`.
std::string turn_password(std::string_view secret, std::string_view username);

// XEP-0157 §4: the form, or nothing when no address is configured.
std::optional<xml::Element> contact_form(const core::ContactConfig& contact);

}  // namespace waddle::im::logic
