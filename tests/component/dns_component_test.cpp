// Component tests for the S2S resolver (RFC 6120 §3.2.1, XEP-0368) against a real dnsmasq on a
// loopback address: SRV ordering, A/AAAA fallback, '.' targets, errors, TTL cache, shutdown.
// ctest label: component.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "s2s/dns.h"

extern char** environ;

namespace waddle::s2s {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";
constexpr const char* kAddress = "127.0.0.55";

constexpr const char* kZone = R"(local=/test/
local-ttl=300
address=/a.test/127.0.0.61
address=/host1.test/127.0.0.62
address=/host1.test/::1
address=/host2.test/127.0.0.63
address=/host3.test/127.0.0.65
address=/v6.test/::1
address=/tls.test/127.0.0.64
srv-host=_xmpp-server._tcp.srv.test,host1.test,5270,10,1
srv-host=_xmpp-server._tcp.srv.test,host2.test,5271,20,1
srv-host=_xmpp-server._tcp.none.test
srv-host=_xmpps-server._tcp.tls.test,tls.test,5223,10,1
srv-host=_xmpp-server._tcp.tls.test,tls.test,5269,10,1
srv-host=_xmpp-server._tcp.tls.test,host3.test,5269,5,1
srv-host=_xmpps-server._tcp.onlytls.test,tls.test,5223,0,0
srv-host=_xmpp-server._tcp.onlytls.test
srv-host=_xmpp-server._tcp.ghost.test,missing.test,5269,0,0
srv-host=_xmpp-server._tcp.half.test,missing.test,5269,0,0
srv-host=_xmpp-server._tcp.half.test,host2.test,5269,10,0
srv-host=_xmpp-server._tcp.v6srv.test,v6.test,5269,0,0
address=/refusing.example/127.0.0.66
)";

bool can_bind(int family, const char* address, std::uint16_t port, int type) {
  const int fd = ::socket(family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int ok = -1;
  if (family == AF_INET) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, address, &sa.sin_addr);
    ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  } else {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    inet_pton(AF_INET6, address, &sa.sin6_addr);
    ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  ::close(fd);
  return ok == 0;
}

// A UDP port on `address` that the kernel picked, bound until destruction.
class UdpSocket {
 public:
  explicit UdpSocket(const char* address) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, address, &sa.sin_addr);
    socklen_t len = sizeof sa;
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), len) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
      port_ = ntohs(sa.sin_port);
    }
  }
  ~UdpSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string describe(const Resolution& r) {
  std::string s = "error='" + r.error + "' endpoints=[";
  for (const auto& e : r.endpoints) {
    s += e.host + "/" + e.address + ":" + std::to_string(e.port) + (e.direct_tls ? "/tls" : "") +
         " ";
  }
  return s + "]";
}

// Waits (bounded) for a resolver callback.
class Waiter {
 public:
  std::function<void(Resolution)> callback() {
    return [p = promise_](Resolution r) { p->set_value(std::move(r)); };
  }
  std::optional<Resolution> get(std::chrono::milliseconds limit = 5s) {
    if (future_.wait_for(limit) != std::future_status::ready) return std::nullopt;
    return future_.get();
  }

 private:
  std::shared_ptr<std::promise<Resolution>> promise_ = std::make_shared<std::promise<Resolution>>();
  std::future<Resolution> future_ = promise_->get_future();
};

class DnsComponentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kDnsmasq, X_OK) != 0) GTEST_SKIP() << kDnsmasq << " not installed";
    char tmpl[] = "/tmp/waddle-dns-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    {
      std::ofstream conf(dir_ / "dnsmasq.conf");
      conf << kZone;
    }
    // The port comes from the kernel so parallel test processes do not collide; dnsmasq may
    // still lose a race for it, hence a few attempts.
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
      port_ = pick_port();
      ASSERT_NE(port_, 0);
      start_dnsmasq();
      if (!wait_until_answering()) stop_dnsmasq();
    }
    ASSERT_GT(pid_, 0) << "dnsmasq did not answer; log:\n" << read_file(dir_ / "dnsmasq.log");
  }

  void TearDown() override {
    stop_dnsmasq();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  std::uint16_t pick_port() {
    for (int i = 0; i < 20; ++i) {
      UdpSocket probe(kAddress);
      const std::uint16_t port = probe.port();
      if (port == 0) continue;
      const bool v6 = can_bind(AF_INET6, "::1", port, SOCK_DGRAM) &&
                      can_bind(AF_INET6, "::1", port, SOCK_STREAM);
      if (!can_bind(AF_INET, kAddress, port, SOCK_STREAM)) continue;
      ipv6_ = v6;
      return port;
    }
    return 0;
  }

  void start_dnsmasq() {
    std::vector<std::string> args = {kDnsmasq,
                                     "--keep-in-foreground",
                                     "--no-resolv",
                                     "--no-hosts",
                                     "--bind-interfaces",
                                     std::string("--listen-address=") + kAddress,
                                     "--port=" + std::to_string(port_),
                                     "--conf-file=" + (dir_ / "dnsmasq.conf").string(),
                                     "--pid-file=" + (dir_ / "dnsmasq.pid").string(),
                                     "--log-facility=-",
                                     "--log-queries"};
    if (ipv6_) args.push_back("--listen-address=::1");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = (dir_ / "dnsmasq.log").string();
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, kDnsmasq, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    pid_ = rc == 0 ? pid : -1;
  }

  bool wait_until_answering() {
    if (pid_ <= 0) return false;
    Resolver probe(options(200ms));
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited (e.g. port taken)
        pid_ = -1;
        return false;
      }
      Waiter w;
      probe.resolve_host("a.test", 1, w.callback());
      auto r = w.get(2s);
      if (r && r->error.empty()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  void stop_dnsmasq() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::kill(pid_, SIGCONT);  // a stopped process only sees SIGTERM once continued
    const auto deadline = Clock::now() + 3s;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    pid_ = -1;
  }

  std::string server() const { return std::string(kAddress) + ":" + std::to_string(port_); }

  Resolver::Options options(std::chrono::milliseconds timeout = 2s) const {
    Resolver::Options o;
    o.nameservers = {server()};
    o.timeout = timeout;
    return o;
  }

  static Resolution server_of(Resolver& r, const std::string& domain,
                              std::chrono::milliseconds limit = 5s) {
    Waiter w;
    r.resolve_server(domain, w.callback());
    auto res = w.get(limit);
    EXPECT_TRUE(res.has_value()) << "no callback for " << domain;
    return res.value_or(Resolution{{}, "no callback"});
  }

  static Resolution host_of(Resolver& r, const std::string& host, std::uint16_t port) {
    Waiter w;
    r.resolve_host(host, port, w.callback());
    auto res = w.get();
    EXPECT_TRUE(res.has_value()) << "no callback for " << host;
    return res.value_or(Resolution{{}, "no callback"});
  }

  static void expect_endpoint(const Resolution& r, std::size_t i, const std::string& host,
                              const std::string& address, std::uint16_t port, bool tls) {
    ASSERT_LT(i, r.endpoints.size()) << describe(r);
    const Endpoint& e = r.endpoints[i];
    EXPECT_EQ(e.host, host) << i << ": " << describe(r);
    EXPECT_EQ(e.address, address) << i << ": " << describe(r);
    EXPECT_EQ(e.port, port) << i << ": " << describe(r);
    EXPECT_EQ(e.direct_tls, tls) << i << ": " << describe(r);
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  bool ipv6_ = false;
};

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

TEST_F(DnsComponentTest, Cache_AnswersWhileServerStopped_NewNameTimesOut) {
  const auto timeout = 800ms;
  Resolver r(options(timeout));
  auto first = server_of(r, "srv.test");
  ASSERT_EQ(first.endpoints.size(), 3u) << describe(first);
  auto nx = server_of(r, "nx.test");
  ASSERT_NE(nx.error.find("NXDOMAIN"), std::string::npos) << nx.error;
  auto host = host_of(r, "a.test", 1);
  ASSERT_EQ(host.endpoints.size(), 1u) << describe(host);

  ASSERT_EQ(::kill(pid_, SIGSTOP), 0);  // no answers from now on, sockets stay open

  auto start = Clock::now();
  auto cached = server_of(r, "srv.test");
  EXPECT_EQ(describe(cached), describe(first));
  auto cached_nx = server_of(r, "nx.test");  // negative answers are cached too
  EXPECT_EQ(cached_nx.error, nx.error);
  auto cached_host = host_of(r, "a.test", 1);
  EXPECT_EQ(describe(cached_host), describe(host));
  EXPECT_LT(Clock::now() - start, 300ms);

  start = Clock::now();
  auto fresh = server_of(r, "fresh.test");
  const auto elapsed = Clock::now() - start;
  EXPECT_TRUE(fresh.endpoints.empty());
  EXPECT_NE(fresh.error.find("fresh.test"), std::string::npos) << fresh.error;
  EXPECT_NE(fresh.error.find("DNS server " + server() + " timed out"), std::string::npos)
      << fresh.error;
  EXPECT_GE(elapsed, timeout - 100ms);
  EXPECT_LT(elapsed, timeout + 400ms);

  // Cached answers gone (as when their TTL runs out): the query times out, and the last good
  // answer is used instead (RFC 8767, serve stale), for the SRV records and the addresses.
  r.clear_cache();
  start = Clock::now();
  auto stale = server_of(r, "srv.test");
  EXPECT_EQ(describe(stale), describe(first));
  EXPECT_GE(Clock::now() - start, timeout - 100ms);
  auto stale_host = host_of(r, "a.test", 1);
  EXPECT_EQ(describe(stale_host), describe(host));
  // Only answers with records are served stale: a name that never resolved still fails.
  r.clear_cache();
  auto still_nx = server_of(r, "nx.test");
  EXPECT_NE(still_nx.error.find("timed out"), std::string::npos) << describe(still_nx);
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
