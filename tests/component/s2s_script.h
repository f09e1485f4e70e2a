// Scripted-peer tests of the S2S service through its public façade (S2sService) and real
// sockets: a script is a list of steps, each sent or expected element of one scripted
// connection ("in": a remote server that connects to us; "out"/"auth": remote servers that we
// connect to, found through DNS) or an action on the service. Every script can be run again
// with its n-th transport step failing (the peer cuts the TCP connection there) for every n,
// which checks each error exit: the service settles, and no stanza is lost.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/config.h"
#include "dnsmasq.h"
#include "metrics/metrics.h"
#include "net/tls.h"
#include "router/handling.h"
#include "router/router.h"
#include "s2s/s2s.h"
#include "script_peer.h"
#include "test_pki.h"

namespace waddle::testing {

// Domains of the scripts. The service serves kLocal and kLocal2; kRemote and kRemote2 resolve
// (SRV) to the listener of the scripted remote servers; kNowhere does not resolve.
inline constexpr const char* kLocal = "local.test";
inline constexpr const char* kLocal2 = "other.test";
inline constexpr const char* kRemote = "remote.test";
inline constexpr const char* kRemote2 = "remote2.test";
inline constexpr const char* kNowhere = "nowhere.test";
// Resolves (SRV _xmpps-server, XEP-0368) to the same listener, with TLS from the start.
inline constexpr const char* kDirect = "direct.test";
inline constexpr const char* kSecret = "scripted-dialback-secret";

// The certificate a scripted peer presents: none, one of the test CA valid for kRemote,
// kRemote2 and kDirect, a self-signed one for them, or one of the test CA for another name.
// kValid has no extended key usage; the last three are kValid with one: TLS server
// authentication only (as public CAs issue them), TLS client authentication only, or e-mail
// protection only (for no TLS role).
enum class Cred { kNone, kValid, kSelfSigned, kWrongName, kServerAuth, kClientAuth, kEmailOnly };

class Scene;

// A string computed when its step runs (stream ids and dialback keys are known only then).
class Text {
 public:
  Text(const char* s) : make_([v = std::string(s)](Scene&) { return v; }) {}
  Text(std::string s) : make_([v = std::move(s)](Scene&) { return v; }) {}
  Text(std::function<std::string(Scene&)> f) : make_(std::move(f)) {}
  std::string operator()(Scene& s) const { return make_(s); }

 private:
  std::function<std::string(Scene&)> make_;
};

// How the transport step a failing run stops at fails.
enum class Fault {
  kClose,  // the peer closes the TCP connection
  kReset,  // the peer resets it
  kStop,   // the service is stopped (S2sService::stop) instead
};

struct Step {
  std::string what;  // for failure messages, e.g. "in: expect <proceed/>"
  std::string peer;  // the connection whose transport this step uses; empty: none
  // Runs the step; returns why it failed, or "" on success.
  std::function<std::string(Scene&)> run;
  // What a failing transport (kClose, kReset) does instead of this step; unset: it cuts the
  // connection.
  std::function<void(Scene&, Fault)> fail = {};
};
using Script = std::vector<Step>;
Script operator+(Script a, const Script& b);

// Steps of one scripted connection.
class Role {
 public:
  explicit Role(std::string name) : name_(std::move(name)) {}
  // To the service's S2S listener, or its direct TLS (XEP-0368) one.
  Step connect(bool direct_tls = false) const;
  Step accept() const;  // a connection the service opens to a remote server
  Step send(Text xml) const;
  Step expect(Text pattern) const;        // the next element matches (see matches())
  Step expect_exact(Text pattern) const;  // ... with nothing more than the pattern
  // A stream header from the service; `from`/`to` checked when not empty. The stream id is
  // kept for keys (Scene::stream_id).
  Step expect_header(std::string from, std::string to) const;
  // <stream:error> with `condition`, </stream:stream>, then the end of the connection.
  Step expect_stream_error(std::string condition) const;
  Step expect_closed() const;  // </stream:stream>, then the end of the connection
  // The end of the connection, with or without </stream:stream> first.
  Step expect_disconnect() const;
  // TLS: as client with SNI `sni` on a connection we opened, as server on one we accepted.
  Step start_tls(Cred cred, std::string sni = kLocal) const;
  Step restart() const;  // a new stream on the same connection (after SASL success)
  // The peer goes away: the TCP connection is closed at once (a deliberate step of the
  // script, not counted among its transport steps).
  Step cut() const;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// Steps on the service.
// A <message/> from user@`from`/r to user@`to` given to S2sService::send.
Step service_send(std::string from, std::string to, std::string id);
// The router got a stanza for a local domain matching `pattern`.
Step expect_delivered(Text pattern);
// The message `id` came back as an error with `condition` whose text contains `text`.
Step expect_bounced(std::string id, std::string condition, std::string text = {});
// No stanza reached the router yet (checked at once: use it once the stream has ended).
Step expect_nothing_delivered();
// S2sService::live_streams() reaches `n`.
Step expect_live_streams(std::size_t n);
// No connection from the service waits at the remote servers' listener (checked at once: use it
// after a bounce or an answer, which come after any connection attempt).
Step expect_no_connection();

// XML a scripted peer sends or expects.
inline constexpr const char* kStartTls = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
inline constexpr const char* kProceed = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
inline constexpr const char* kSuccess = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
inline constexpr const char* kStartTlsRequired =
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "</stream:features>";
inline constexpr const char* kStartTlsOffered =
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>";
inline constexpr const char* kDialbackOnly =
    "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
    "</stream:features>";
// What the service offers once TLS is on and no SASL restart follows (no usable certificate,
// or after SASL EXTERNAL): dialback and stream management (XEP-0198).
inline constexpr const char* kDialbackAndSm =
    "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
    "<sm xmlns='urn:xmpp:sm:3'/></stream:features>";
inline constexpr const char* kExternalAndDialback =
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>EXTERNAL</mechanism></mechanisms>"
    "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>";
std::string sasl_auth(const std::string& mechanism, const std::string& payload);
std::string sasl_failure(const std::string& condition);
std::string header(const std::string& from, const std::string& to, const std::string& id = {});
std::string message(const std::string& from, const std::string& to, const std::string& id);
// <db:result/> or <db:verify/> (XEP-0220); empty fields are left out.
std::string db(const std::string& name, const std::string& from, const std::string& to,
               const std::string& type, const std::string& id, const std::string& key);
// <db:result type='error'> with a stanza error condition (XEP-0220 §2.4).
std::string db_error(const std::string& condition, const std::string& text = {});
// The key the service computes for a stream (XEP-0185) with the scripts' dialback secret.
std::string key(const std::string& receiving, const std::string& originating,
                const std::string& stream_id);

// `role` opens a stream from `from` to the service's `to` and negotiates TLS (presenting
// `cred`), up to the service's header of the new stream.
Script open_with_tls(const Role& role, Cred cred, const std::string& from = kRemote,
                     const std::string& to = kLocal);
// `role` accepts the stream the service opens for `local` to kRemote and negotiates TLS as
// the server (presenting `cred`), up to its own header of the new stream, whose id is "s2".
Script accept_with_tls(const Role& role, const std::string& local = kLocal,
                       Cred cred = Cred::kValid);

// The environment every scene of a test shares: a test CA and certificates, a DNS server, the
// listening socket of the scripted remote servers, and the base configuration.
class FederationTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // A TCP port on 127.0.0.1 that is free (for a second listener of the service).
  static std::uint16_t free_port();

  // Runs `script` once as written, then once for every transport step n with step n failing
  // with `fault`, each time on a fresh service made from `config_`. After each failure the
  // service must settle (Scene::settle) without losing a stanza (Scene::nothing_lost) and,
  // with `rerun` (and a service not stopped), pass the whole script once more.
  void every_failure(const Script& script, bool rerun = true, Fault fault = Fault::kClose);

 public:
  core::Config config_;
  std::filesystem::path dir_;
  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<Dnsmasq> dns_;
  int remote_listener_ = -1;  // descriptor each scene's acceptor duplicates
  std::map<Cred, std::unique_ptr<boost::asio::ssl::context>> client_tls_, server_tls_;
};

// What the router hands to local domains: stanzas from remote servers, and bounces.
// While `hold` is set, each stanza's handling is left running (as an offline store on the
// storage thread would be) until the test releases `holds`.
class Recorder : public router::LocalHandler {
 public:
  void to_local(xml::Element stanza) override {
    if (hold) holds.push_back(router::Handling::hold());
    got.push_back(std::move(stanza));
  }
  std::vector<xml::Element> got;
  bool hold = false;
  std::vector<std::shared_ptr<void>> holds;
};

// One service under test with its peers, on its own io_context.
class Scene {
 public:
  explicit Scene(FederationTest& env);
  ~Scene();
  Scene(const Scene&) = delete;
  Scene& operator=(const Scene&) = delete;

  ::testing::AssertionResult start();
  // Runs the steps in order and stops at the first that fails. With `fail_at`, the transport
  // step of that number (counting transport steps only) fails with `fault` instead, and the
  // run ends there.
  ::testing::AssertionResult run(const Script& script, std::optional<std::size_t> fail_at = {},
                                 Fault fault = Fault::kClose);
  // Cuts every scripted connection (closing any the service still opens to the remote
  // servers) and waits until live_streams() is 0, connection and queue gauges at zero.
  ::testing::AssertionResult settle();
  // Every message given to send() was either written to a remote server (counted in the
  // stanzas_sent metric) or bounced once with a remote-server-* condition.
  ::testing::AssertionResult nothing_lost();
  // Starts a new count for nothing_lost() and expect_* steps (a second run on this service).
  void forget();

  Peer& peer(const std::string& role);
  const std::string& stream_id(const std::string& role) { return peer(role).stream_id(); }
  // Records a message given to send() (for nothing_lost()).
  void sent(const std::string& id, const std::string& remote);
  // Stanzas written to remote servers since the last forget() (the stanzas_sent metric, less
  // those sent again: the resent metric).
  std::uint64_t written() const;

  FederationTest& env;
  core::Config config;
  router::Router router;
  Recorder recorder;
  metrics::Registry registry;
  metrics::S2sMetrics metrics;
  std::unique_ptr<net::TlsContexts> tls;
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor remote_listener;  // where the service finds remote servers
  boost::asio::ip::tcp::endpoint endpoint;         // the service's S2S listener
  boost::asio::ip::tcp::endpoint direct_endpoint;  // ... and its direct TLS one, if any
  std::map<std::string, std::unique_ptr<Peer>> peers;
  std::unique_ptr<s2s::S2sService> service;

 private:
  std::map<std::string, std::string> sent_;
  std::set<std::string> remotes_;
  std::uint64_t written_before_ = 0;
};

std::size_t transport_steps(const Script& script);

}  // namespace waddle::testing
