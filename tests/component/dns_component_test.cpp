// Component tests for the S2S resolver (RFC 6120 §3.2.1, XEP-0368) against a real dnsmasq on a
// loopback address: SRV ordering, A/AAAA fallback, '.' targets, errors, shutdown. The cache and
// serve stale are in dns_stale_test.cpp. ctest label: component.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dns_fixture.h"
#include "s2s/dns.h"

namespace waddle::s2s {
namespace {

using namespace std::chrono_literals;
using namespace dns_testing;
using Clock = std::chrono::steady_clock;

TEST_F(DnsComponentTest, Srv_OrderedByPriorityWithAaaaThenA) {
  Resolver r(options());
  for (int i = 0; i < 5; ++i) {  // priorities differ: the order never varies
    auto res = server_of(r, "srv.test");
    EXPECT_EQ(res.error, "");
    ASSERT_EQ(res.endpoints.size(), 3u) << describe(res);
    expect_endpoint(res, 0, "host1.test", "::1", 5270, false);
    expect_endpoint(res, 1, "host1.test", "127.0.0.62", 5270, false);
    expect_endpoint(res, 2, "host2.test", "127.0.0.63", 5271, false);
  }
}

TEST_F(DnsComponentTest, NoSrv_FallsBackToDomainAddressOnDefaultPort) {
  Resolver r(options());
  auto res = server_of(r, "a.test");
  EXPECT_EQ(res.error, "");
  ASSERT_EQ(res.endpoints.size(), 1u) << describe(res);
  expect_endpoint(res, 0, "a.test", "127.0.0.61", 5269, false);

  auto o = options();
  o.default_port = 5999;
  Resolver other(o);
  auto custom = server_of(other, "A.Test.");  // case and final dot do not matter
  ASSERT_EQ(custom.endpoints.size(), 1u) << describe(custom);
  expect_endpoint(custom, 0, "a.test", "127.0.0.61", 5999, false);
}

TEST_F(DnsComponentTest, DotTarget_ServiceNotOffered) {
  Resolver r(options());
  auto res = server_of(r, "none.test");
  EXPECT_TRUE(res.endpoints.empty()) << describe(res);
  EXPECT_NE(res.error.find("service not offered"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find("'.'"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find("_xmpp-server._tcp.none.test"), std::string::npos) << res.error;
}

TEST_F(DnsComponentTest, DotTargetForPlainService_DirectTlsStillUsed) {
  Resolver r(options());
  auto res = server_of(r, "onlytls.test");
  EXPECT_EQ(res.error, "");
  ASSERT_EQ(res.endpoints.size(), 1u) << describe(res);
  expect_endpoint(res, 0, "tls.test", "127.0.0.64", 5223, true);
}

TEST_F(DnsComponentTest, NxDomain_ErrorNamesDomainAndCause) {
  Resolver r(options());
  auto res = server_of(r, "nx.test");
  EXPECT_TRUE(res.endpoints.empty());
  EXPECT_NE(res.error.find("nx.test"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find("NXDOMAIN"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find("no SRV or A/AAAA record"), std::string::npos) << res.error;
}

TEST_F(DnsComponentTest, Xmpps_DirectTlsFirstAmongEqualPriorities) {
  Resolver r(options());
  auto res = server_of(r, "tls.test");
  EXPECT_EQ(res.error, "");
  ASSERT_EQ(res.endpoints.size(), 3u) << describe(res);
  expect_endpoint(res, 0, "host3.test", "127.0.0.65", 5269, false);  // priority 5
  expect_endpoint(res, 1, "tls.test", "127.0.0.64", 5223, true);     // priority 10, xmpps
  expect_endpoint(res, 2, "tls.test", "127.0.0.64", 5269, false);    // priority 10, xmpp
}

TEST_F(DnsComponentTest, SrvTargetWithoutAddress_ErrorNamesTarget) {
  Resolver r(options());
  auto res = server_of(r, "ghost.test");
  EXPECT_TRUE(res.endpoints.empty());
  EXPECT_NE(res.error.find("no address for SRV target missing.test"), std::string::npos)
      << res.error;

  auto half = server_of(r, "half.test");  // the other target still works
  EXPECT_EQ(half.error, "");
  ASSERT_EQ(half.endpoints.size(), 1u) << describe(half);
  expect_endpoint(half, 0, "host2.test", "127.0.0.63", 5269, false);
}

TEST_F(DnsComponentTest, Ipv6OnlyTarget_Listed) {
  Resolver r(options());
  auto res = server_of(r, "v6srv.test");
  EXPECT_EQ(res.error, "");
  ASSERT_EQ(res.endpoints.size(), 1u) << describe(res);
  expect_endpoint(res, 0, "v6.test", "::1", 5269, false);
}

TEST_F(DnsComponentTest, ResolveHost_BothFamiliesAndErrors) {
  Resolver r(options());
  auto res = host_of(r, "host1.test", 1234);
  EXPECT_EQ(res.error, "");
  ASSERT_EQ(res.endpoints.size(), 2u) << describe(res);
  expect_endpoint(res, 0, "host1.test", "::1", 1234, false);
  expect_endpoint(res, 1, "host1.test", "127.0.0.62", 1234, false);

  auto nx = host_of(r, "nx.test", 5269);
  EXPECT_TRUE(nx.endpoints.empty());
  EXPECT_EQ(nx.error, "no A/AAAA record for nx.test (NXDOMAIN)");
}

// dnsmasq answers REFUSED for names it neither holds nor may forward: `address=` gives A records
// only, so the SRV queries for refusing.example are refused.
TEST_F(DnsComponentTest, SrvRefused_FallsBackToAddress) {
  Resolver r(options());
  auto res = server_of(r, "refusing.example");
  EXPECT_EQ(res.error, "");
  ASSERT_EQ(res.endpoints.size(), 1u) << describe(res);
  expect_endpoint(res, 0, "refusing.example", "127.0.0.66", 5269, false);

  auto nothing = server_of(r, "nothing.example");
  EXPECT_TRUE(nothing.endpoints.empty());
  EXPECT_NE(nothing.error.find("nothing.example"), std::string::npos) << nothing.error;
  EXPECT_NE(nothing.error.find("query refused by DNS server " + server()), std::string::npos)
      << nothing.error;
}

TEST_F(DnsComponentTest, NameserverPort_Honoured) {
  {
    Resolver::Options o = options(1s);
    o.nameservers = {kAddress};  // port 53: nobody listens there
    Resolver r(o);
    auto res = server_of(r, "srv.test");
    EXPECT_TRUE(res.endpoints.empty());
    EXPECT_NE(res.error.find(std::string(kAddress) + ":53"), std::string::npos) << res.error;
  }
  if (ipv6_) {
    Resolver::Options o = options();
    o.nameservers = {"[::1]:" + std::to_string(port_)};
    Resolver r(o);
    auto res = server_of(r, "srv.test");
    EXPECT_EQ(res.error, "");
    EXPECT_EQ(res.endpoints.size(), 3u) << describe(res);
  }
  {
    // First server dead (refused), second answers.
    Resolver::Options o = options();
    o.nameservers = {std::string(kAddress) + ":53", server()};
    Resolver r(o);
    auto res = server_of(r, "a.test");
    EXPECT_EQ(res.error, "");
    EXPECT_EQ(res.endpoints.size(), 1u) << describe(res);
  }
}

TEST_F(DnsComponentTest, SilentServer_TimeoutNamesServer) {
  UdpSocket silent(kAddress);  // bound, never answers
  ASSERT_NE(silent.port(), 0);
  Resolver::Options o;
  o.nameservers = {std::string(kAddress) + ":" + std::to_string(silent.port())};
  o.timeout = 500ms;
  Resolver r(o);
  const auto start = Clock::now();
  auto res = host_of(r, "a.test", 5269);
  EXPECT_LT(Clock::now() - start, 1500ms);
  EXPECT_NE(res.error.find("cannot resolve a.test"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find(o.nameservers[0] + " timed out"), std::string::npos) << res.error;
}

TEST_F(DnsComponentTest, Destructor_CompletesPendingWithShutdown) {
  UdpSocket silent(kAddress);
  Resolver::Options o;
  o.nameservers = {std::string(kAddress) + ":" + std::to_string(silent.port())};
  o.timeout = 30s;
  auto r = std::make_unique<Resolver>(o);
  std::vector<Waiter> waiters(10);
  for (std::size_t i = 0; i < waiters.size(); ++i) {
    if (i % 2) {
      r->resolve_server("pending" + std::to_string(i) + ".test", waiters[i].callback());
    } else {
      r->resolve_host("pending" + std::to_string(i) + ".test", 1, waiters[i].callback());
    }
  }
  std::this_thread::sleep_for(100ms);  // queries are in flight
  const auto start = Clock::now();
  r.reset();
  EXPECT_LT(Clock::now() - start, 1s);
  for (auto& w : waiters) {
    auto res = w.get(1s);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->error, "resolver shut down");
  }
}

TEST_F(DnsComponentTest, ManyCallers_EachCallbackOnceOnResolverThread) {
  Resolver r(options(5s));
  const auto start = Clock::now();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::atomic<int> calls{0};
  std::mutex mutex;
  std::set<std::thread::id> callback_threads;
  std::vector<std::shared_ptr<Waiter>> waiters;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) waiters.push_back(std::make_shared<Waiter>());
  }
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const char* names[] = {"srv.test", "a.test", "nx.test", "tls.test", "none.test"};
      for (int i = 0; i < kPerThread; ++i) {
        auto cb = waiters[t * kPerThread + i]->callback();
        r.resolve_server(names[i % 5], [&, cb](Resolution res) {
          ++calls;
          {
            std::lock_guard lock(mutex);
            callback_threads.insert(std::this_thread::get_id());
          }
          cb(std::move(res));
        });
        if (i == kPerThread / 2) r.clear_cache();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& w : waiters) ASSERT_TRUE(w->get(10s).has_value());
  // Concurrent lookups of one name share a query: no lost datagram, so no retry after the first
  // try's timeout (5 s / 3).
  EXPECT_LT(Clock::now() - start, 1500ms);
  EXPECT_EQ(calls.load(), kThreads * kPerThread);
  ASSERT_EQ(callback_threads.size(), 1u);
  EXPECT_EQ(callback_threads.count(std::this_thread::get_id()), 0u);
}

TEST_F(DnsComponentTest, DestroyedFromOwnCallback_NoCrash) {
  auto r = std::make_unique<Resolver>(options());
  std::promise<void> done;
  r->resolve_server("srv.test", [&](Resolution) {
    r.reset();  // on the resolver thread
    done.set_value();
  });
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(r, nullptr);
}

}  // namespace
}  // namespace waddle::s2s
