// Internal address ranges (IANA IPv4/IPv6 Special-Purpose Address Registries, RFC 6890, with
// RFC 4291 §2.4 for what IPv6 global unicast is); see internal_address.h.
#include "s2s/internal_address.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>

namespace waddle::s2s {
namespace {

using Bytes = std::array<std::uint8_t, 16>;

struct Range {
  const char* prefix;  // an address literal
  int bits;
  std::string_view kind;
};

// Longer prefixes before the shorter ones that contain them.
constexpr std::array<Range, 15> kIpv4{{
    {"0.0.0.0", 32, "unspecified"},
    {"255.255.255.255", 32, "broadcast"},
    {"0.0.0.0", 8, "\"this network\""},
    {"10.0.0.0", 8, "private"},
    {"100.64.0.0", 10, "shared address space"},  // carrier-grade NAT (RFC 6598)
    {"127.0.0.0", 8, "loopback"},
    {"169.254.0.0", 16, "link-local"},
    {"172.16.0.0", 12, "private"},
    {"192.0.0.0", 24, "IETF protocol assignments"},
    {"192.0.2.0", 24, "documentation"},
    {"192.88.99.0", 24, "6to4 relay anycast"},  // deprecated (RFC 7526)
    {"192.168.0.0", 16, "private"},
    {"198.18.0.0", 15, "benchmarking"},
    {"224.0.0.0", 4, "multicast"},
    {"240.0.0.0", 4, "reserved"},
}};
// Not in one /N with the others above.
constexpr std::array<Range, 2> kIpv4Documentation{{
    {"198.51.100.0", 24, "documentation"},
    {"203.0.113.0", 24, "documentation"},
}};

constexpr std::array<Range, 11> kIpv6{{
    {"::", 128, "unspecified"},
    {"::1", 128, "loopback"},
    {"2001::", 32, "Teredo"},
    {"2001:db8::", 32, "documentation"},
    {"2001::", 23, "IETF protocol assignments"},
    {"3fff::", 20, "documentation"},
    {"fc00::", 7, "private"},  // unique local addresses (RFC 4193)
    {"fe80::", 10, "link-local"},
    {"fec0::", 10, "site-local"},  // deprecated (RFC 3879)
    {"ff00::", 8, "multicast"},
    {"64:ff9b:1::", 48, "NAT64 local use"},
}};

bool parse(int family, const char* text, Bytes& out) {
  out.fill(0);
  return inet_pton(family, text, out.data()) == 1;
}

// The first `bits` bits of `a` and `b` are equal.
bool same_prefix(const Bytes& a, const Bytes& b, int bits) {
  const int whole = bits / 8;
  if (!std::equal(a.begin(), a.begin() + whole, b.begin())) return false;
  const int rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

template <std::size_t N>
std::optional<std::string_view> find(const std::array<Range, N>& ranges, int family,
                                     const Bytes& address) {
  for (const Range& r : ranges) {
    Bytes prefix;
    if (parse(family, r.prefix, prefix) && same_prefix(address, prefix, r.bits)) return r.kind;
  }
  return std::nullopt;
}

// `address` holds an IPv4 address in its first four bytes.
std::optional<std::string_view> ipv4_range(const Bytes& address) {
  if (auto kind = find(kIpv4, AF_INET, address)) return kind;
  return find(kIpv4Documentation, AF_INET, address);
}

// The IPv4 address at bytes [from, from + 4) of an IPv6 one.
Bytes embedded(const Bytes& v6, std::size_t from) {
  Bytes v4{};
  std::copy_n(v6.begin() + static_cast<std::ptrdiff_t>(from), 4, v4.begin());
  return v4;
}

std::optional<std::string_view> ipv6_range(const Bytes& address) {
  Bytes prefix;
  // IPv4-mapped (::ffff:0:0/96) and the NAT64 well-known prefix (64:ff9b::/96, RFC 6052):
  // the IPv4 address in the last 32 bits is what the connection reaches.
  for (const char* p : {"::ffff:0:0", "64:ff9b::"}) {
    if (parse(AF_INET6, p, prefix) && same_prefix(address, prefix, 96))
      return ipv4_range(embedded(address, 12));
  }
  if (parse(AF_INET6, "2002::", prefix) && same_prefix(address, prefix, 16)) {
    if (auto kind = ipv4_range(embedded(address, 2))) return kind;  // 6to4 (RFC 3056)
    return std::nullopt;
  }
  if (auto kind = find(kIpv6, AF_INET6, address)) return kind;
  // RFC 4291 §2.4: global unicast is 2000::/3; the rest is reserved or special (::/96, 100::/64,
  // ...).
  if (parse(AF_INET6, "2000::", prefix) && same_prefix(address, prefix, 3)) return std::nullopt;
  return "reserved";
}

}  // namespace

std::optional<std::string_view> internal_range(std::string_view address) {
  const std::string text(address);
  Bytes bytes;
  if (parse(AF_INET, text.c_str(), bytes)) return ipv4_range(bytes);
  if (parse(AF_INET6, text.c_str(), bytes)) return ipv6_range(bytes);
  return "not an IP address";
}

std::vector<Dropped> drop_internal(std::vector<Endpoint>& endpoints) {
  std::vector<Dropped> dropped;
  std::erase_if(endpoints, [&](const Endpoint& e) {
    auto kind = internal_range(e.address);
    if (!kind) return false;
    const bool seen = std::any_of(dropped.begin(), dropped.end(),
                                  [&](const Dropped& d) { return d.address == e.address; });
    if (!seen) dropped.push_back(Dropped{e.address, *kind});
    return true;
  });
  return dropped;
}

std::string only_internal_text(std::string_view domain, const std::vector<Dropped>& dropped) {
  constexpr std::size_t kListed = 4;
  std::string addresses;
  for (std::size_t i = 0; i < dropped.size() && i < kListed; ++i)
    addresses += (i ? ", " : "") + dropped[i].address;
  if (dropped.size() > kListed) addresses += fmt::format(" and {} more", dropped.size() - kListed);
  return fmt::format(
      "{} resolves only to internal addresses ({}); set [s2s] allow_internal_addresses = true to "
      "federate inside a private network",
      domain, addresses);
}

std::string ip_literal_text(std::string_view domain) {
  return fmt::format(
      "{} is an IP address, and this server only connects to domain names; set [s2s] "
      "allow_internal_addresses = true to federate inside a private network",
      domain);
}

}  // namespace waddle::s2s
