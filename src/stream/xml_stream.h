// One XML stream over TCP, optionally upgraded to TLS (STARTTLS or direct TLS): reads bytes
// into the expat parser, and writes through a coalescing queue (one write per burst, never
// one per stanza). Shared by client and server sessions.
//
// TLS is OpenSSL on the non-blocking socket itself (SSL_set_fd), driven by readiness waits,
// rather than asio::ssl::stream: that one keeps four 17 KiB buffers per connection (its own
// two and a BIO pair), which were most of an idle connection's memory. Reads go through one
// buffer per thread, so an idle stream holds no read buffer either, and OpenSSL releases its
// record buffers while idle (SSL_MODE_RELEASE_BUFFERS).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "xml/parser.h"

namespace boost::asio::ssl {
class context;
}

namespace waddle::stream {

class XmlStream : public std::enable_shared_from_this<XmlStream> {
 public:
  XmlStream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& tls,
            xml::ParserLimits limits);

  // TLS as server (after <proceed/>, or first thing on a direct-TLS port). False on failure.
  boost::asio::awaitable<bool> server_handshake();
  // Picks the server context (certificate) before the handshake, for peers that send no SNI:
  // the stream header's 'to' names the domain. An SNI sent by the peer still wins.
  void use_tls_context(SSL_CTX* ctx);
  // TLS as client with SNI = `server_name` (S2S outbound). False on failure; error() says why.
  boost::asio::awaitable<bool> client_handshake(const std::string& server_name);
  // The peer's certificate after the handshake (owned by the connection; may be null) and
  // whether its chain verified against the context's trust store.
  X509* peer_certificate() const;
  bool peer_chain_valid() const;
  // Why the chain did not verify ("certificate has expired", "unable to get local issuer
  // certificate", ...); empty when it did or there is none.
  std::string peer_verify_error() const;
  const std::string& tls_error() const { return tls_error_; }
  // Why reading ended, when it was not the peer closing cleanly or a close here: "socket
  // error: Connection reset by peer", "TLS error: bad record mac (SSL routines)". Empty else.
  const std::string& end_reason() const { return end_reason_; }
  bool tls_active() const { return tls_active_; }
  std::string tls_description() const;  // "TLSv1.3 TLS_AES_256_GCM_SHA384"

  // Reads once and parses; events are appended. Returns a stream error to send, or nullopt.
  // Sets `eof` when the peer closed or the socket failed (no error to send then).
  boost::asio::awaitable<std::optional<core::StreamError>> read(std::vector<xml::StreamEvent>& out,
                                                                bool& eof);
  void reset_parser() { parser_.reset(); }
  // The largest top-level element accepted from now on (small until authenticated).
  void set_max_stanza_size(std::size_t bytes) { parser_.set_max_stanza_size(bytes); }

  // Queues bytes; a writer coroutine flushes everything queued in one write. The stream must
  // be owned by a shared_ptr (the writer keeps it alive).
  void send(std::string_view data);
  // Completes when everything queued so far has been written (or the stream failed).
  boost::asio::awaitable<void> flush();
  // Closes the socket now (pending reads/writes complete with an error).
  void close();
  bool closed() const { return closed_; }

  std::string remote_address() const { return remote_; }
  std::uint64_t bytes_in() const { return bytes_in_; }
  std::uint64_t bytes_out() const { return bytes_out_; }        // written to the socket
  std::uint64_t bytes_queued() const { return bytes_queued_; }  // handed to send()

 private:
  static boost::asio::awaitable<void> write_loop(std::shared_ptr<XmlStream> self);
  boost::asio::awaitable<bool> handshake(bool as_server);
  // Waits until OpenSSL's last call can make progress (SSL_ERROR_WANT_READ/WRITE); false
  // when the stream closed meanwhile or the wait failed. `writer` tells which side waits.
  boost::asio::awaitable<bool> wait_for(int ssl_error, bool writer);
  // One side's OpenSSL call may take bytes off the socket that the other side is waiting
  // for (a post-handshake message completing inside SSL_write, a handshake finishing inside
  // SSL_read): the socket's readiness edge is then gone, so the other side is woken to retry.
  void wake_other_side(bool writer, std::uint64_t read_before);
  std::uint64_t socket_bytes_read() const;  // through OpenSSL's socket BIO, in total

  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<SSL, SslFree> ssl_;
  xml::StreamParser parser_;
  bool tls_active_ = false;
  std::string tls_error_;
  std::string end_reason_;
  bool closed_ = false;
  bool writing_ = false;
  // Which side is parked in wait_for, on what, and whether it was woken to retry.
  int reader_waits_ = 0, writer_waits_ = 0;  // 0, or SSL_ERROR_WANT_READ/WRITE
  bool reader_woken_ = false, writer_woken_ = false;
  std::string pending_;
  std::string in_flight_;
  boost::asio::steady_timer idle_signal_;  // cancelled whenever the writer goes idle
  std::string remote_;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::uint64_t bytes_queued_ = 0;
};

}  // namespace waddle::stream
