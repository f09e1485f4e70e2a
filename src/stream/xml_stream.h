// One XML stream over TCP, optionally upgraded to TLS (STARTTLS or direct TLS): reads bytes
// into the expat parser, and writes through a coalescing queue (one write per burst, never
// one per stanza). Shared by client and server sessions.
//
// TLS is OpenSSL on the non-blocking socket itself (SSL_set_fd), driven by readiness waits,
// rather than asio::ssl::stream: that one keeps four 17 KiB buffers per connection (its own
// two and a BIO pair), which were most of an idle connection's memory. Reads go through one
// buffer per thread, so an idle stream holds no read buffer either, and OpenSSL releases its
// record buffers while idle (SSL_MODE_RELEASE_BUFFERS).
//
// What is queued but not yet written is bounded (WriteLimits): a peer that stops reading
// trips a byte cap or a write-stall timeout, and the stream's owner decides what happens to
// the stream (docs/security.md, "Memory").
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "xml/parser.h"

namespace boost::asio::ssl {
class context;
}

namespace waddle::web {
class WebSocketFraming;
}

namespace waddle::stream {

// Bounds on output queued and not yet written; zero turns a bound off.
// max_queued bounds the bytes handed to send() and not yet written to the socket while the
// peer lets nothing be written for a second; a burst queued at once to a peer that reads may
// go up to four times it.
struct WriteLimits {
  std::size_t max_queued = 0;  // bytes handed to send() and not yet written to the socket
  std::chrono::steady_clock::duration stall_timeout{0};  // no write progress with output queued
};

// Which bound tripped.
enum class WriteLimit { kNone, kQueueFull, kStalled };
std::string_view to_string(WriteLimit w);  // "none", "queue_full", "stalled"

class XmlStream : public std::enable_shared_from_this<XmlStream> {
 public:
  XmlStream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& tls,
            xml::ParserLimits limits);
  ~XmlStream();

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

  // Reads bytes as they come (HTTP before a WebSocket upgrade): a view of at most 16 KiB,
  // valid until the next suspension of the caller; empty once the peer closed or the socket
  // failed (end_reason() says why).
  boost::asio::awaitable<std::string_view> read_some();
  // From now on the stream is XMPP over WebSocket (RFC 7395): read() takes frames, send()
  // writes one frame per element (web/logic/websocket.h). `already_read`: bytes read past the
  // upgrade request, taken first. A message larger than the largest stanza the parser takes
  // (with room for the framing element) closes the connection, before and after
  // authentication alike (set_max_stanza_size).
  void use_websocket(std::string already_read = {});
  bool websocket() const { return ws_ != nullptr; }
  // The largest top-level element accepted from now on (small until authenticated).
  void set_max_stanza_size(std::size_t bytes);

  // Queues bytes; a writer coroutine flushes everything queued in one write. The stream must
  // be owned by a shared_ptr (the writer keeps it alive).
  void send(std::string_view data);
  // Queues a buffer shared with other streams (one stanza serialised once for many
  // recipients): a reference is queued, not a copy; it counts in full towards max_queued.
  // Small ones are copied (they coalesce into one write with their neighbours).
  void send(std::shared_ptr<const std::string> data);

  // The bounds on unwritten output, and what to do when one trips. When a bound trips, the
  // stream keeps what it had queued (a slow reader still gets it), drops every send() from
  // then on, and posts `handler` once (it runs outside the send() that tripped it). The
  // handler may queue a last element with send_last(), then close the stream (gracefully,
  // with a bounded flush), or close it at once. Without a handler the stream closes.
  void set_write_limits(WriteLimits limits, std::function<void(WriteLimit)> handler = {});
  WriteLimit write_limit() const { return limit_; }
  // After a trip: queues `data` (a stream error and the closing tag) after what is queued.
  void send_last(std::string_view data);
  // Completes when everything queued so far has been written (or the stream failed).
  boost::asio::awaitable<void> flush();
  // Closes the socket now (pending reads/writes complete with an error).
  void close();
  // Ends the sending direction only (TCP FIN): what the peer still sends can be read.
  void shutdown_send();
  bool closed() const { return closed_; }

  std::string remote_address() const { return remote_; }
  boost::asio::ip::tcp::socket::executor_type executor() { return socket_.get_executor(); }
  std::uint64_t bytes_in() const { return bytes_in_; }
  std::uint64_t bytes_out() const { return bytes_out_; }  // written to the socket
  // Handed to send(), whether queued or dropped (closed, or past a write bound).
  std::uint64_t bytes_queued() const { return bytes_queued_; }
  // Queued and not yet written (what max_queued bounds).
  std::uint64_t bytes_unwritten() const { return unwritten_; }

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
  // One queued piece of output: bytes of its own (consecutive send()s coalesce into one) or
  // a buffer shared with other streams.
  struct Chunk {
    std::string own;
    std::shared_ptr<const std::string> shared;
    std::string_view view() const { return shared ? std::string_view(*shared) : own; }
  };
  void enqueue(std::string_view data, std::shared_ptr<const std::string> shared);
  bool over_limit(std::size_t more);
  void trip(WriteLimit why);
  void pop_front_chunk();
  void arm_stall_timer();

  std::optional<core::StreamError> feed_websocket(std::string_view data,
                                                  std::vector<xml::StreamEvent>& out, bool& eof);
  // Bytes written as they are, past the framing (the WebSocket control frames).
  void send_unframed(std::string_view data);

  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<SSL, SslFree> ssl_;
  xml::StreamParser parser_;
  std::unique_ptr<web::WebSocketFraming> ws_;  // XMPP over WebSocket; null for TCP streams
  std::string pending_input_;                  // read before use_websocket(), taken first
  bool tls_active_ = false;
  std::string tls_error_;
  std::string end_reason_;
  bool closed_ = false;
  bool writing_ = false;
  // Which side is parked in wait_for, on what, and whether it was woken to retry.
  int reader_waits_ = 0, writer_waits_ = 0;  // 0, or SSL_ERROR_WANT_READ/WRITE
  bool reader_woken_ = false, writer_woken_ = false;
  // The write queue: chunks_[head_] is being written, head_off_ bytes of it already are.
  std::vector<Chunk> chunks_;
  std::size_t head_ = 0;
  std::size_t head_off_ = 0;
  bool head_started_ = false;  // the writer has begun on chunks_[head_] (it may not grow)
  std::string spare_;          // a small buffer kept for the next burst
  std::uint64_t unwritten_ = 0;
  WriteLimits limits_;
  std::function<void(WriteLimit)> on_limit_;
  WriteLimit limit_ = WriteLimit::kNone;
  std::chrono::steady_clock::time_point progress_at_;       // last write progress
  std::unique_ptr<boost::asio::steady_timer> stall_timer_;  // while a stall timeout is set
  bool stall_armed_ = false;
  boost::asio::steady_timer idle_signal_;  // cancelled whenever the writer goes idle
  std::string remote_;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::uint64_t bytes_queued_ = 0;
};

}  // namespace waddle::stream
