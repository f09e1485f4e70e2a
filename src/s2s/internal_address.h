// Addresses federation does not connect to unless [s2s] allow_internal_addresses is set:
// whoever writes a JID picks the domain this server connects to, so a domain that is an IP
// literal (RFC 7622 §3.2), or one whose DNS answers point into the operator's network, would
// aim it at hosts behind the firewall. The ranges are those of the IANA IPv4 and IPv6
// Special-Purpose Address Registries (RFC 6890) that are not globally reachable.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s2s/dns.h"

namespace waddle::s2s {

// What kind of address `address` (an IPv4 or IPv6 literal without brackets) is when it is not
// globally reachable: "loopback", "private", "link-local", "unspecified", "multicast",
// "shared address space", "documentation", "reserved", ... nullopt for a global address.
// IPv6 addresses that embed an IPv4 one (IPv4-mapped, NAT64 64:ff9b::/96, 6to4) are judged by
// it. Text that is not an address is "not an IP address" (never connected to).
std::optional<std::string_view> internal_range(std::string_view address);

struct Dropped {
  std::string address;
  std::string_view kind;  // internal_range()
};

// Removes from `endpoints` those at internal addresses and returns each distinct one, in the
// order met.
std::vector<Dropped> drop_internal(std::vector<Endpoint>& endpoints);

// Why a connection attempt to `domain` fails when every address it resolved to was dropped:
// "DOMAIN resolves only to internal addresses (127.0.0.5); set [s2s] ...".
std::string only_internal_text(std::string_view domain, const std::vector<Dropped>& dropped);

// The text of a stanza refused because its domain is an IP literal.
std::string ip_literal_text(std::string_view domain);

}  // namespace waddle::s2s
