// The dnsmasq fixture of the resolver's component tests: a real DNS server on a loopback address
// and a port the kernel picked, serving a test zone, plus helpers to wait for resolver callbacks.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "s2s/dns.h"

extern char** environ;

namespace waddle::s2s::dns_testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";
inline constexpr const char* kAddress = "127.0.0.55";

inline constexpr const char* kZone = R"(local=/test/
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
inline constexpr const char* kHosts = "127.0.0.71 moving.test\n";

inline bool can_bind(int family, const char* address, std::uint16_t port, int type) {
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

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string describe(const Resolution& r) {
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
      // Names in the hosts file can change while dnsmasq runs: it reads the file again on SIGHUP,
      // as the user it drops to when started as root.
      std::ofstream(dir_ / "hosts") << kHosts;
      namespace fs = std::filesystem;
      fs::permissions(dir_, fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add);
      fs::permissions(dir_ / "hosts", fs::perms::others_read | fs::perms::group_read,
                      fs::perm_options::add);
      std::ofstream conf(dir_ / "dnsmasq.conf");
      conf << kZone << "addn-hosts=" << (dir_ / "hosts").string() << "\n";
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

}  // namespace waddle::s2s::dns_testing
