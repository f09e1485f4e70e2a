// One end of a scripted XMPP connection for component tests: raw XML over loopback TCP, TLS
// (OpenSSL through Asio) when the script starts it, and what arrives parsed with the project's
// own xml::StreamParser. Every operation pumps the shared io_context (so the server under test
// runs meanwhile) and gives up at a deadline.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "xml/parser.h"

namespace waddle::testing {

// Runs `io` until `done()` or `limit` passed; true when done.
bool pump(boost::asio::io_context& io, const std::function<bool()>& done,
          std::chrono::milliseconds limit);

// True when `got` matches `pattern`: same name and namespace, every attribute of the pattern
// present with that value ("*" = any value), the pattern's text (when it has any) equal, and
// every child of the pattern matching a distinct child of `got`. With `exact`, `got` may have
// no other children nor attributes.
bool matches(const xml::Element& pattern, const xml::Element& got, bool exact);

// Parses a pattern written with the stream's prefixes in scope: jabber:server as the default
// namespace, stream: and db: as on a server stream. Throws std::invalid_argument if invalid.
xml::Element pattern(std::string_view xml);

class Peer {
 public:
  using Socket = boost::asio::ip::tcp::socket;
  using TlsSocket = boost::asio::ssl::stream<Socket>;

  Peer(boost::asio::io_context& io, std::string name, std::chrono::milliseconds deadline);
  ~Peer();
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  bool connect(const boost::asio::ip::tcp::endpoint& to);
  bool accept(boost::asio::ip::tcp::acceptor& acceptor);
  bool send(std::string_view data);
  // TLS on the connection, as client (with SNI) or server; the parser starts a new stream.
  bool start_tls_client(boost::asio::ssl::context& ctx, const std::string& sni);
  bool start_tls_server(boost::asio::ssl::context& ctx);
  // A new stream on the same connection (after SASL success).
  void restart();
  // The next event; nullopt at end of stream, on an error, or at the deadline (see problem()).
  std::optional<xml::StreamEvent> next();
  // Closes the TCP connection at once, without closing the stream or TLS first; with `reset`,
  // with a TCP reset instead of an orderly close.
  void cut(bool reset = false);

  bool open() const;
  // Whether this end opened the connection (connect) rather than accepted it.
  bool initiated() const { return initiated_; }
  // Whether the other end closed the connection (as opposed to a deadline passing).
  bool at_eof() const { return eof_; }
  const std::string& name() const { return name_; }
  // The id of the last stream header received.
  const std::string& stream_id() const { return stream_id_; }
  // Why the last operation failed, and everything received so far (for failure messages).
  const std::string& problem() const { return problem_; }
  const std::string& transcript() const { return transcript_; }

 private:
  bool wait(const bool& done, Socket& socket);
  Socket& socket();
  // Forgets the previous connection and stream (a new connect or accept).
  void reset(bool initiated);
  void note(std::string_view what) { (transcript_ += what) += '\n'; }

  boost::asio::io_context& io_;
  std::string name_;
  std::chrono::milliseconds deadline_;
  std::unique_ptr<Socket> plain_;
  std::unique_ptr<TlsSocket> tls_;
  xml::StreamParser parser_;
  std::deque<xml::StreamEvent> events_;
  bool eof_ = false;
  bool initiated_ = false;
  std::string stream_id_;
  std::string problem_;
  std::string transcript_;
};

}  // namespace waddle::testing
