// The environment and the scenes of the S2S scripts (see s2s_script.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cstdlib>
#include <sstream>

#include "s2s_script.h"
#include "xml/stanza.h"

namespace waddle::testing {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kPeerDeadline = 3s;

// A listening TCP socket on 127.0.0.1 and a port the kernel picked; -1 on failure.
int listen_socket(std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  port = ntohs(sa.sin_port);
  return fd;
}

std::unique_ptr<ssl::context> tls_context(ssl::context::method method, const core::CertKey* ck) {
  auto ctx = std::make_unique<ssl::context>(method);
  ctx->set_verify_mode(ssl::verify_none);  // the scripts judge the service, not its certificate
  if (ck) {
    ctx->use_certificate_chain_file(ck->cert);
    ctx->use_private_key_file(ck->key, ssl::context::pem);
  }
  return ctx;
}

// Values of the series of `family` in Prometheus text that are not 0, as "series value" lines.
std::string nonzero_series(const std::string& text, const std::string& family) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind(family + "{", 0) != 0) continue;
    if (line.substr(line.rfind(' ') + 1) != "0") out += "\n  " + line;
  }
  return out;
}

}  // namespace

void FederationTest::SetUp() {
  if (!Dnsmasq::installed()) GTEST_SKIP() << Dnsmasq::kBinary << " not installed";
  const char* level = std::getenv("WADDLE_TEST_LOG");
  spdlog::set_level(spdlog::level::from_str(level ? level : "off"));
  char tmpl[] = "/tmp/waddle-s2s-script-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  dir_ = tmpl;
  pki_ = std::make_unique<TestPki>(dir_);
  const auto local = pki_->issue("local", {kLocal, kLocal2});
  const auto valid = pki_->issue("remote", {kRemote, kRemote2, kDirect});
  const auto self = pki_->issue("remote-self-signed", {kRemote, kRemote2, kDirect}, true);
  const auto wrong = pki_->issue("elsewhere", {"elsewhere.test"});
  const std::vector<std::string> remotes{kRemote, kRemote2, kDirect};
  const std::map<Cred, core::CertKey> with_eku{
      {Cred::kServerAuth, pki_->issue("remote-server-auth", remotes, false, "serverAuth")},
      {Cred::kClientAuth, pki_->issue("remote-client-auth", remotes, false, "clientAuth")},
      {Cred::kEmailOnly, pki_->issue("remote-email", remotes, false, "emailProtection")}};

  std::uint16_t remote_port = 0;
  remote_listener_ = listen_socket(remote_port);
  ASSERT_GE(remote_listener_, 0);
  std::string zone = "local=/test/\naddress=/peer.test/127.0.0.1\n";
  for (const char* d : {kRemote, kRemote2})
    zone += std::string("srv-host=_xmpp-server._tcp.") + d + ",peer.test," +
            std::to_string(remote_port) + ",0,0\n";
  zone += std::string("srv-host=_xmpps-server._tcp.") + kDirect + ",peer.test," +
          std::to_string(remote_port) + ",0,0\n";
  std::string log;
  dns_ = Dnsmasq::start(dir_, zone, "peer.test", log);
  ASSERT_NE(dns_, nullptr) << "dnsmasq did not answer; its log:\n" << log;

  config_ = core::default_config();
  config_.server.domains = {kLocal, kLocal2};
  config_.server.listen = {"127.0.0.1"};
  config_.server.data_dir = (dir_ / "data").string();
  config_.muc.enabled = false;
  config_.tls.default_cert = local;
  config_.tls.ca_file = pki_->ca_file();
  config_.dns.nameservers = {dns_->nameserver()};
  auto& s2s = config_.s2s;
  s2s.port = free_port();
  s2s.connect_timeout = 3s;
  s2s.handshake_timeout = 5s;
  s2s.retry.max_retries = 0;  // a failure bounces at once: every script ends promptly
  s2s.connection_rate = 0;
  s2s.stanza_rate = 0;
  s2s.dialback_secret = kSecret;
  // The scripted remote servers are on a loopback address.
  s2s.allow_internal_addresses = true;

  for (Cred c : {Cred::kNone, Cred::kValid, Cred::kSelfSigned, Cred::kWrongName}) {
    const core::CertKey* ck = c == Cred::kValid        ? &valid
                              : c == Cred::kSelfSigned ? &self
                              : c == Cred::kWrongName  ? &wrong
                                                       : nullptr;
    client_tls_[c] = tls_context(ssl::context::tls_client, ck);
    if (ck) server_tls_[c] = tls_context(ssl::context::tls_server, ck);
  }
  for (const auto& [c, ck] : with_eku) {
    client_tls_[c] = tls_context(ssl::context::tls_client, &ck);
    server_tls_[c] = tls_context(ssl::context::tls_server, &ck);
  }
}

// One the kernel hands out, free again once probed.
std::uint16_t FederationTest::free_port() {
  std::uint16_t port = 0;
  ::close(listen_socket(port));
  return port;
}

void FederationTest::TearDown() {
  dns_.reset();
  if (remote_listener_ >= 0) ::close(remote_listener_);
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

void FederationTest::every_failure(const Script& script, bool rerun, Fault fault) {
  {
    SCOPED_TRACE("the script as written");
    Scene scene(*this);
    ASSERT_TRUE(scene.start());
    ASSERT_TRUE(scene.run(script));
    EXPECT_TRUE(scene.settle());
    EXPECT_TRUE(scene.nothing_lost());
  }
  const std::size_t n = transport_steps(script);
  for (std::size_t fail_at = 0; fail_at < n; ++fail_at) {
    SCOPED_TRACE("transport step " + std::to_string(fail_at) + " of " + std::to_string(n) +
                 " fails");
    Scene scene(*this);
    ASSERT_TRUE(scene.start());
    EXPECT_TRUE(scene.run(script, fail_at, fault));
    EXPECT_TRUE(scene.settle());
    EXPECT_TRUE(scene.nothing_lost());
    if (!rerun || fault == Fault::kStop) continue;
    scene.forget();
    EXPECT_TRUE(scene.run(script)) << "the service does not work as before after the failure";
    EXPECT_TRUE(scene.settle());
    EXPECT_TRUE(scene.nothing_lost());
  }
}

Scene::Scene(FederationTest& e)
    : env(e),
      config(e.config_),
      router(config.server.domains),
      metrics(registry, 100),
      remote_listener(io),
      endpoint(asio::ip::make_address("127.0.0.1"), config.s2s.port),
      direct_endpoint(endpoint.address(), config.s2s.direct_tls_port) {
  remote_listener.assign(tcp::v4(), ::dup(env.remote_listener_));
  // Connections a previous scene's service left in the backlog are not this scene's.
  remote_listener.non_blocking(true);
  boost::system::error_code ec;
  for (int i = 0; i < 64 && !ec; ++i) {
    tcp::socket stale(io);
    remote_listener.accept(stale, ec);
  }
  remote_listener.non_blocking(false);
}

Scene::~Scene() {
  if (service) {
    service->stop();
    pump(
        io, [&] { return service->live_streams() == 0; }, 5s);
    // What stop() made ready (aborted accepts, closing streams) runs before the service goes.
    io.restart();
    std::size_t ran = 1;
    for (int i = 0; i < 100 && ran > 0; ++i) ran = io.poll();
  }
  peers.clear();
  router.set_remote(nullptr);
  service.reset();
  // What is still pending (closing flushes, timers) ends with the io_context.
}

::testing::AssertionResult Scene::start() {
  try {
    tls = std::make_unique<net::TlsContexts>(config);
    service = std::make_unique<s2s::S2sService>(config, router, *tls, io, &metrics);
    service->start();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "the service does not start: " << e.what();
  }
  router.set_local_handler(&recorder);
  router.set_remote(service.get());
  return ::testing::AssertionSuccess();
}

Peer& Scene::peer(const std::string& role) {
  auto& p = peers[role];
  if (!p) p = std::make_unique<Peer>(io, role, kPeerDeadline);
  return *p;
}

::testing::AssertionResult Scene::run(const Script& script, std::optional<std::size_t> fail_at,
                                      Fault fault) {
  std::size_t transport = 0;
  for (std::size_t i = 0; i < script.size(); ++i) {
    const Step& step = script[i];
    if (fail_at && !step.peer.empty() && transport++ == *fail_at) {
      if (fault == Fault::kStop)
        service->stop();
      else if (step.fail)
        step.fail(*this, fault);
      else
        peer(step.peer).cut(fault == Fault::kReset);
      return ::testing::AssertionSuccess();
    }
    const std::string why = step.run(*this);
    if (why.empty()) continue;
    auto failure = ::testing::AssertionFailure();
    failure << "step " << i << " (" << step.what << ") failed: " << why;
    if (!step.peer.empty())
      failure << "\n" << step.peer << "'s transcript:\n" << peer(step.peer).transcript();
    return failure;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Scene::settle() {
  for (auto& [role, p] : peers) p->cut();
  // Connections the service still opens to the remote servers are accepted and closed.
  struct Sink {
    tcp::socket socket;
    bool armed = false, done = false;
  };
  Sink sink{tcp::socket(io)};
  std::function<void()> arm = [&] {
    sink.armed = true;
    remote_listener.async_accept(sink.socket, [&](boost::system::error_code ec) {
      sink.armed = false;
      if (ec) return;
      sink.socket.close();
      if (!sink.done) arm();
    });
  };
  arm();
  const auto started = Clock::now();
  const bool settled = pump(
      io, [&] { return service->live_streams() == 0; }, config.s2s.connect_timeout + 2s);
  const auto took = Clock::now() - started;
  sink.done = true;
  remote_listener.cancel();
  pump(
      io, [&] { return !sink.armed; }, 5s);
  if (!settled)
    return ::testing::AssertionFailure()
           << "live_streams() is still " << service->live_streams() << " after the peers left";
  if (took >= config.s2s.connect_timeout)
    return ::testing::AssertionFailure()
           << "the service took the connect timeout to notice that the peers left";
  const std::string text = registry.render();
  const std::string open = nonzero_series(text, "waddle_s2s_connections_active") +
                           nonzero_series(text, "waddle_s2s_queue_stanzas");
  if (!open.empty()) return ::testing::AssertionFailure() << "gauges not back to 0:" << open;
  return ::testing::AssertionSuccess();
}

void Scene::sent(const std::string& id, const std::string& remote) {
  sent_[id] = remote;
  remotes_.insert(remote);
}

// A stanza queued again for another link (not acknowledged, or never written to the socket:
// waddle_s2s_resent_total) was counted when it was handed to the stream that lost it: it counts
// as written only when it is written again, and as bounced when it bounces.
std::uint64_t Scene::written() const {
  std::uint64_t n = 0;
  for (const auto& r : remotes_)
    n += metrics.stanzas_sent.get({r}).value() - metrics.resends.get({r}).value();
  return n - written_before_;
}

::testing::AssertionResult Scene::nothing_lost() {
  std::map<std::string, int> bounces;
  for (const auto& e : recorder.got) {
    if (e.attr("type") != "error" || !sent_.contains(std::string(e.attr("id")))) continue;
    ++bounces[std::string(e.attr("id"))];
    auto cond = xml::stanza_error_condition(e);
    if (cond != core::StanzaError::kRemoteServerNotFound &&
        cond != core::StanzaError::kRemoteServerTimeout)
      return ::testing::AssertionFailure() << "bounced with another condition: " << e.str();
  }
  for (const auto& [id, n] : bounces)
    if (n > 1) return ::testing::AssertionFailure() << id << " bounced " << n << " times";
  const std::uint64_t written_now = written();
  if (sent_.size() != written_now + bounces.size())
    return ::testing::AssertionFailure() << sent_.size() << " sent, " << written_now << " written, "
                                         << bounces.size() << " bounced";
  return ::testing::AssertionSuccess();
}

void Scene::forget() {
  recorder.got.clear();
  sent_.clear();
  written_before_ = 0;
  written_before_ = written();
}

}  // namespace waddle::testing
