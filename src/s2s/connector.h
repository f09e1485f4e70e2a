// Opening a server stream to a remote domain: DNS (SRV, XEP-0368 direct TLS, A/AAAA), TCP to
// each address in turn, TLS (STARTTLS or direct), the stream features, then the first
// authentication method that works (authenticator.h). Used for the pool's links, for
// dialback verification streams and for `check s2s` (with a trace of every step).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "s2s/authenticator.h"
#include "s2s/dns.h"
#include "s2s/failure.h"
#include "xml/parser.h"

namespace boost::asio {
class io_context;
}
namespace waddle::net {
class TlsContexts;
}
namespace waddle::stream {
class XmlStream;
}

namespace waddle::s2s {

class Admission;
class Channel;
class StreamChannel;

struct ConnectRequest {
  std::string local;   // the domain we authenticate as
  std::string remote;  // the peer
  // Stop at a TLS-protected stream, without authenticating: dialback verification
  // (XEP-0220 §2.3) asks its question on such a stream.
  bool verify_only = false;
};

// An authenticated (or, with verify_only, TLS-protected) outbound stream, or why not.
struct Connected {
  Outcome outcome;
  std::shared_ptr<Channel> channel;  // set when outcome.ok()
  std::string method;                // "SASL EXTERNAL", "dialback"; "verify" for verify_only
  metrics::AuthMethod counted_as = metrics::AuthMethod::kDialback;  // the method, for metrics
  bool cert_valid = false;  // the peer's certificate is valid for its domain
  std::string stream_id;    // the stream the pair authenticated on
  // The peer offers dialback with errors on it: other local domains may multiplex on this
  // stream (XEP-0220 §2.4, §2.6).
  bool multiplexable = false;
  // The peer offers stream management (XEP-0198) on the authenticated stream.
  bool sm = false;
};

class Connector {
 public:
  virtual ~Connector() = default;
  // Emitting a cancellation on `abort` (a deadline, shutdown) closes whatever the attempt
  // has open, so that it ends with the failure of the step it was in, and keeps it from
  // trying further addresses.
  virtual boost::asio::awaitable<Connected> connect(ConnectRequest request,
                                                    boost::asio::cancellation_slot abort) = 0;
};

class TlsConnector final : public Connector {
 public:
  TlsConnector(const core::Config& config, boost::asio::io_context& io, Resolver& resolver,
               net::TlsContexts& tls, const Admission& admission, Trace trace = {});
  // The authentication methods, in order of preference.
  void set_methods(std::vector<Authenticator*> methods) { methods_ = std::move(methods); }

  boost::asio::awaitable<Connected> connect(ConnectRequest request,
                                            boost::asio::cancellation_slot abort) override;

 private:
  struct Open;        // what an abort closes
  struct StreamOpen;  // a stream header answered, with the features that followed
  boost::asio::awaitable<std::optional<Resolution>> resolve(const std::string& domain, Open& open);
  boost::asio::awaitable<Outcome> endpoints(const std::string& remote, Open& open,
                                            std::vector<Endpoint>& out);
  void note_endpoints(const std::string& remote, const Resolution& res) const;
  boost::asio::awaitable<Connected> negotiate(std::shared_ptr<stream::XmlStream> s,
                                              const ConnectRequest& req, bool direct_tls,
                                              const std::string& where);
  boost::asio::awaitable<StreamOpen> open_stream(StreamChannel& ch, const ConnectRequest& req,
                                                 const std::string& where);
  boost::asio::awaitable<Outcome> starttls(StreamChannel& ch, const xml::Element& features,
                                           const std::string& remote, const std::string& where);
  void note_peer(stream::XmlStream& s, const std::string& remote, const xml::Element& features,
                 bool cert_valid) const;
  boost::asio::awaitable<AuthStep> authenticate(OutboundNegotiation& n,
                                                std::vector<Authenticator*>& tried,
                                                Authenticator*& used);

  const core::Config& config_;
  boost::asio::io_context& io_;
  Resolver& resolver_;
  net::TlsContexts& tls_;
  const Admission& admission_;
  Trace trace_;
  std::vector<Authenticator*> methods_;
};

}  // namespace waddle::s2s
