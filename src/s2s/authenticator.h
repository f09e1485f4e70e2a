// How a server proves its domain, both sides of it behind one interface: SASL EXTERNAL with
// a certificate (RFC 6120 §6, XEP-0178) and Server Dialback (XEP-0220). The connector runs a
// method's outbound side on a stream it opened; an inbound stream offers every method in its
// features and hands each method its elements. A third method is one more implementation;
// neither the connector nor the inbound stream changes.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "s2s/failure.h"
#include "xml/element.h"

namespace waddle::s2s {

class InboundStream;
class StreamChannel;

// `check s2s`: every step of a connection attempt, in words for the operator. Inactive (and
// free) for the server's own connections.
class Trace {
 public:
  Trace() = default;
  explicit Trace(std::vector<std::string>* lines) : lines_(lines) {}
  void note(std::string line) const {
    if (lines_) lines_->push_back(std::move(line));
  }

 private:
  std::vector<std::string>* lines_ = nullptr;
};

// A stream the connector has opened and protected with TLS, at the features that follow.
struct OutboundNegotiation {
  StreamChannel& channel;
  const std::string& local;      // the domain we authenticate as
  const std::string& remote;     // the peer
  const std::string& stream_id;  // the id the peer gave this stream
  const xml::Element& features;
  const std::string& where;  // "host (address port N)", for messages
  const Trace& trace;
};

// What an outbound authentication step came to.
struct AuthStep {
  enum class Kind {
    kAuthenticated,  // done: stanzas may flow
    kRestart,        // done, and the stream restarts (SASL, RFC 6120 §6.4.6)
    kDeclined,       // this method did not work out: try the next one
    kFailed,         // the stream is lost for authentication: `outcome` says why
  };
  Kind kind = Kind::kDeclined;
  Outcome outcome;
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // The method as logs and `check s2s` name it: "SASL EXTERNAL", "dialback".
  virtual std::string_view name() const = 0;
  // The method in waddle_s2s_authenticated_total (a pair authenticated on a stream of its own).
  virtual metrics::AuthMethod counted_as() const = 0;

  // Outbound: whether the peer's features offer this method.
  virtual bool offered(const xml::Element& features) const = 0;
  // Outbound: authenticates n.local to n.remote.
  virtual boost::asio::awaitable<AuthStep> authenticate(OutboundNegotiation& n) = 0;

  // Inbound: adds this method's offer to the features of a TLS-protected stream.
  virtual void offer(xml::Element& features, const InboundStream& in) const = 0;
  // Inbound: whether `e` is one of this method's elements; handle() then takes it.
  virtual bool handles(const xml::Element& e) const = 0;
  virtual void handle(const std::shared_ptr<InboundStream>& in, xml::Element e) = 0;
};

}  // namespace waddle::s2s
