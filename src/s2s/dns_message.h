// What a DNS reply means for the question asked (RFC 1035, RFC 2308 §5, RFC 2782, RFC 3596):
// records with their TTL, NXDOMAIN or NODATA with the negative TTL, or a failure worded for
// bounce texts and logs.
#pragma once

#include <string>

#include "s2s/dns_cache.h"

namespace waddle::s2s::dns {

inline constexpr int kClassIn = 1;
inline constexpr int kTypeA = 1;
inline constexpr int kTypeSoa = 6;
inline constexpr int kTypeAaaa = 28;
inline constexpr int kTypeSrv = 33;

// The name servers as failure texts name them.
struct Servers {
  std::string phrase;   // "DNS server 127.0.0.53:53", "DNS servers 192.0.2.53:53, [::1]:53"
  bool plural = false;  // then c-ares reports SERVFAIL/REFUSED from all of them as ECONNREFUSED
};

// The answer to a query of `type` (A, AAAA or SRV) from c-ares' status and reply message.
Answer interpret(int type, int status, const unsigned char* abuf, int alen, const Servers& servers);

}  // namespace waddle::s2s::dns
