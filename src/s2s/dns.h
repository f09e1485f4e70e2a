// DNS discovery for S2S (RFC 6120 §3.2, XEP-0368): SRV _xmpps-server._tcp / _xmpp-server._tcp
// ordered per RFC 2782, fallback to A/AAAA on port 5269, answers cached by TTL and served stale
// when the DNS server fails (RFC 8767). Resolution runs on c-ares; results come back through a
// callback on the caller's chosen executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace waddle::s2s {

struct SrvRecord {
  std::string target;
  std::uint16_t port = 0;
  std::uint16_t priority = 0;
  std::uint16_t weight = 0;
};

// Orders SRV records per RFC 2782: ascending priority; within a priority, weighted random
// selection (records of weight 0 first among equals when drawn, as the RFC's algorithm
// gives them a chance). `rng` makes tests deterministic.
std::vector<SrvRecord> order_srv(std::vector<SrvRecord> records, std::mt19937& rng);

// One address to try, in order.
struct Endpoint {
  std::string host;     // the SRV target or the domain itself (A/AAAA fallback)
  std::string address;  // IPv6 or IPv4 literal
  std::uint16_t port = 0;
  bool direct_tls = false;  // from _xmpps-server (XEP-0368): TLS before the stream
  bool srv = false;         // found through an SRV record (not the A/AAAA fallback)
};

struct Resolution {
  std::vector<Endpoint> endpoints;  // in the order they must be tried
  // Empty on success; otherwise what failed, for the bounce text and logs, e.g.
  // "no SRV or A/AAAA record for example.org", "SRV target '.': service not offered",
  // "DNS server 127.0.0.53 timed out".
  std::string error;
};

class Resolver {
 public:
  struct Options {
    std::vector<std::string> nameservers;  // "IP" / "IP:port" / "[IPv6]:port"; empty = system
    std::chrono::milliseconds timeout{std::chrono::seconds(5)};  // per query, all tries
    int tries = 2;
    std::uint16_t default_port = 5269;
    // RFC 8767 §5's client response timer (it suggests 1.8 s): a lookup with a last known
    // answer waits this long for a fresh one, then gets the known one while the query goes on
    // to refresh the cache. After a failure, such lookups get it at once (see dns_cache.h).
    std::chrono::milliseconds stale_answer_wait{1800};
  };
  // Runs c-ares on its own thread. Throws std::runtime_error if c-ares cannot initialize.
  explicit Resolver(Options options);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Resolves a server domain: both SRV services (direct TLS first within equal priority is
  // not required: _xmpps-server records come before _xmpp-server ones of the same priority),
  // each SRV target's AAAA and A records, or the domain's own AAAA/A on default_port when
  // there is no SRV record. A single SRV record with target "." means "no service": that
  // service is skipped (and the domain is reported unreachable when both say so).
  // `done` is called exactly once, on the resolver thread; callers post it where they need.
  void resolve_server(const std::string& domain, std::function<void(Resolution)> done);

  // Plain A/AAAA lookup (used for dialback's authoritative server and `check s2s`).
  void resolve_host(const std::string& host, std::uint16_t port,
                    std::function<void(Resolution)> done);

  // Drops cached answers (config reload, tests); the last known answers kept for when the DNS
  // server fails (serve stale) stay.
  void clear_cache();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace waddle::s2s
