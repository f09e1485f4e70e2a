// Transport, parser feeding and the coalescing write queue of an XML stream.
#include "stream/xml_stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <mutex>

#include "web/logic/websocket.h"

namespace waddle::stream {
namespace asio = boost::asio;

namespace {
constexpr std::size_t kReadChunk = 16 * 1024;

// One read buffer per thread: a read fills it and the parser consumes it before the next
// suspension, so streams need none of their own.
char* read_buffer() {
  thread_local std::array<char, kReadChunk> buf;
  return buf.data();
}

// What OpenSSL said, as asio's ssl error category words it ("certificate verify failed
// (SSL routines)"); a peer that closes mid-handshake gets words of its own.
std::string describe_ssl_error(int ssl_error, int ret) {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e != 0 && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) e = 0;
  if (e != 0) {
    std::string text;
    if (const char* reason = ERR_reason_error_string(e))
      text = reason;
    else
      text = "error " + std::to_string(ERR_GET_REASON(e));
    if (const char* lib = ERR_lib_error_string(e)) text += std::string(" (") + lib + ")";
    return text;
  }
  if (ssl_error == SSL_ERROR_ZERO_RETURN || ssl_error == SSL_ERROR_SSL ||
      (ssl_error == SSL_ERROR_SYSCALL && ret == 0))
    return "the peer closed the connection during the TLS handshake";
  if (ssl_error == SSL_ERROR_SYSCALL) return std::string("socket error: ") + std::strerror(errno);
  return "TLS error " + std::to_string(ssl_error);
}
}  // namespace

namespace {
// OpenSSL writes to the socket with write(), which raises SIGPIPE when the peer has gone
// (asio's own writes pass MSG_NOSIGNAL). A peer closing its connection must be an error
// return for that one stream, never a signal that ends the process.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}
}  // namespace

XmlStream::XmlStream(asio::ip::tcp::socket socket, asio::ssl::context& tls,
                     xml::ParserLimits limits)
    : socket_((ignore_sigpipe(), std::move(socket))),
      ssl_(SSL_new(tls.native_handle())),
      parser_(limits),
      idle_signal_(socket_.get_executor()) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  // Reads and writes are attempted first and waited for only when they would block.
  socket_.non_blocking(true, ec);
  if (ssl_) {
    // OpenSSL reads the socket directly (the BIO does not own the descriptor: the socket
    // does). Read-ahead takes whatever arrived in one read() instead of two per record;
    // partial writes and a moving buffer suit the write queue.
    if (SSL_set_fd(ssl_.get(), static_cast<int>(socket_.native_handle())) != 1) ssl_.reset();
  }
  if (ssl_) {
    SSL_set_read_ahead(ssl_.get(), 1);
    // No TLS 1.2 renegotiation: it would run a handshake underneath established traffic.
    SSL_set_options(ssl_.get(), SSL_OP_NO_RENEGOTIATION);
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
  }
  idle_signal_.expires_at(asio::steady_timer::time_point::max());
}

XmlStream::~XmlStream() = default;

namespace {
// A WebSocket message holds one element and, around it, at most a framing element's worth.
constexpr std::size_t kFramingRoom = 1024;
}  // namespace

void XmlStream::use_websocket(std::string already_read) {
  ws_ = std::make_unique<web::WebSocketFraming>(parser_.limits().max_stanza_size + kFramingRoom);
  pending_input_ = std::move(already_read);
}

void XmlStream::set_max_stanza_size(std::size_t bytes) {
  parser_.set_max_stanza_size(bytes);
  if (ws_) ws_->set_max_message(bytes + kFramingRoom);
}

std::optional<core::StreamError> XmlStream::feed_websocket(std::string_view data,
                                                           std::vector<xml::StreamEvent>& out,
                                                           bool& eof) {
  web::WebSocketFraming::Decoded d;
  ws_->decode(data, d);
  if (!d.replies.empty()) send_unframed(d.replies);
  std::optional<core::StreamError> error;
  if (!d.xml.empty()) error = parser_.feed(d.xml, out);
  if (!error && d.error) error = d.error;
  if (d.failure)
    end_reason_ = "WebSocket protocol error (close " +
                  std::to_string(static_cast<unsigned>(*d.failure)) + ")";
  if (d.closed && !error) eof = true;
  return error;
}

void XmlStream::send_unframed(std::string_view data) {
  bytes_queued_ += data.size();
  if (closed_ || limit_ != WriteLimit::kNone) return;
  if (over_limit(data.size())) return trip(WriteLimit::kQueueFull);
  enqueue(data, nullptr);
}

asio::awaitable<bool> XmlStream::wait_for(int ssl_error, bool writer) {
  if (closed_) co_return false;
  auto what = ssl_error == SSL_ERROR_WANT_WRITE ? asio::ip::tcp::socket::wait_write
                                                : asio::ip::tcp::socket::wait_read;
  int& waits = writer ? writer_waits_ : reader_waits_;
  bool& woken = writer ? writer_woken_ : reader_woken_;
  waits = ssl_error;
  auto [ec] = co_await socket_.async_wait(what, asio::as_tuple(asio::use_awaitable));
  waits = 0;
  if (closed_) co_return false;
  if (woken) {  // cancelled by wake_other_side (which cancels every wait on the socket)
    woken = false;
    co_return true;
  }
  co_return !ec;
}

std::uint64_t XmlStream::socket_bytes_read() const {
  return BIO_number_read(SSL_get_rbio(ssl_.get()));
}

void XmlStream::wake_other_side(bool writer, std::uint64_t read_before) {
  // Only when the other side is parked on readability and this call took bytes off the
  // socket (the readiness edge it waits for may be gone with them).
  const int other_waits = writer ? reader_waits_ : writer_waits_;
  if (other_waits != SSL_ERROR_WANT_READ || closed_) return;
  if (socket_bytes_read() == read_before) return;
  // cancel() ends every wait on the socket, so every parked side is flagged as woken: each
  // retries its OpenSSL call and parks again if nothing changed for it.
  if (reader_waits_) reader_woken_ = true;
  if (writer_waits_) writer_woken_ = true;
  boost::system::error_code ignored;
  socket_.cancel(ignored);
}

asio::awaitable<bool> XmlStream::handshake(bool as_server) {
  if (!ssl_) {
    tls_error_ = "cannot create a TLS session";
    co_return false;
  }
  if (as_server)
    SSL_set_accept_state(ssl_.get());
  else
    SSL_set_connect_state(ssl_.get());
  for (;;) {
    if (closed_) {
      tls_error_ = "aborted here (timeout or shutdown) during the TLS handshake";
      co_return false;
    }
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_.get());
    if (r == 1) break;
    const int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      const bool ready = co_await wait_for(err, false);
      if (ready) continue;
      tls_error_ = closed_ ? "aborted here (timeout or shutdown) during the TLS handshake"
                           : "connection lost during the TLS handshake";
      co_return false;
    }
    tls_error_ = describe_ssl_error(err, r);
    co_return false;
  }
  tls_active_ = true;
  co_return true;
}

asio::awaitable<bool> XmlStream::server_handshake() {
  return handshake(true);
}

void XmlStream::use_tls_context(SSL_CTX* ctx) {
  if (ctx && ssl_ && !tls_active_) SSL_set_SSL_CTX(ssl_.get(), ctx);
}

asio::awaitable<bool> XmlStream::client_handshake(const std::string& server_name) {
  if (ssl_) SSL_set_tlsext_host_name(ssl_.get(), server_name.c_str());
  return handshake(false);
}

X509* XmlStream::peer_certificate() const {
  if (!tls_active_) return nullptr;
  return SSL_get0_peer_certificate(ssl_.get());
}

bool XmlStream::peer_chain_valid() const {
  if (!peer_certificate()) return false;
  return SSL_get_verify_result(ssl_.get()) == X509_V_OK;
}

std::string XmlStream::peer_verify_error() const {
  if (!peer_certificate()) return {};
  const long result = SSL_get_verify_result(ssl_.get());
  if (result == X509_V_OK) return {};
  return X509_verify_cert_error_string(result);
}

std::string XmlStream::tls_description() const {
  if (!tls_active_) return "plaintext";
  return std::string(SSL_get_version(ssl_.get())) + " " + SSL_get_cipher_name(ssl_.get());
}

asio::awaitable<std::string_view> XmlStream::read_some() {
  if (!pending_input_.empty()) {
    // Handed out from the thread's read buffer, like bytes from the socket.
    const std::size_t n = std::min(pending_input_.size(), kReadChunk);
    char* buf = read_buffer();
    std::memcpy(buf, pending_input_.data(), n);
    pending_input_.erase(0, n);
    if (pending_input_.empty()) std::string().swap(pending_input_);
    co_return std::string_view(buf, n);
  }
  // Let other handlers run first (this stream's writer among them): a read that finds data
  // completes without suspending, and a peer that keeps the socket full would otherwise
  // keep the thread to itself.
  co_await asio::post(socket_.get_executor(), asio::use_awaitable);
  for (;;) {
    if (closed_) co_return std::string_view{};
    char* buf = read_buffer();
    if (tls_active_) {
      // Always try first: OpenSSL may hold decrypted or read-ahead bytes already.
      ERR_clear_error();
      const std::uint64_t read_before = socket_bytes_read();
      const int n = SSL_read(ssl_.get(), buf, static_cast<int>(kReadChunk));
      wake_other_side(false, read_before);
      if (n > 0) {
        bytes_in_ += static_cast<std::uint64_t>(n);
        co_return std::string_view(buf, static_cast<std::size_t>(n));
      }
      const int err = SSL_get_error(ssl_.get(), n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        const bool ready = co_await wait_for(err, false);
        if (ready) continue;
      } else if (!closed_ && err == SSL_ERROR_SSL &&
                 ERR_GET_REASON(ERR_peek_last_error()) != SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        // (A peer closing TCP after its </stream:stream> without a TLS close_notify is an
        // ordinary end, however OpenSSL 3 words it.)
        end_reason_ = "TLS error: " + describe_ssl_error(err, n);
      } else if (!closed_ && err == SSL_ERROR_SYSCALL && errno != 0) {
        end_reason_ = std::string("socket error: ") + std::strerror(errno);
      }
      ERR_clear_error();
      co_return std::string_view{};  // closed, reset, or a TLS failure: nothing more to read
    }
    boost::system::error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(buf, kReadChunk), ec);
    if (!ec && n > 0) {
      bytes_in_ += n;
      co_return std::string_view(buf, n);
    }
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      const bool ready = co_await wait_for(SSL_ERROR_WANT_READ, false);
      if (ready) continue;
    } else if (ec && ec != asio::error::eof && !closed_) {
      end_reason_ = "socket error: " + ec.message();
    }
    co_return std::string_view{};
  }
}

asio::awaitable<std::optional<core::StreamError>> XmlStream::read(
    std::vector<xml::StreamEvent>& out, bool& eof) {
  const std::string_view data = co_await read_some();
  if (data.empty()) {
    eof = true;
    co_return std::nullopt;
  }
  if (ws_) {
    auto error = feed_websocket(data, out, eof);
    // The closing handshake's frame goes out before the owner closes the connection (the
    // write limits bound how long a client that does not read can hold this).
    if (eof) co_await flush();
    co_return error;
  }
  co_return parser_.feed(data, out);
}

std::string_view to_string(WriteLimit w) {
  switch (w) {
    case WriteLimit::kNone:
      return "none";
    case WriteLimit::kQueueFull:
      return "queue_full";
    case WriteLimit::kStalled:
      return "stalled";
  }
  return "none";
}

namespace {
// The most plaintext one SSL_write call is given: four TLS records.
constexpr std::size_t kWriteChunk = 64 * 1024;
// Shared buffers smaller than this are copied: they then coalesce with their neighbours into
// one write, and copying them costs less than the write they would need on their own.
constexpr std::size_t kShareFrom = 4096;
// An idle stream keeps no large write buffer (small ones are reused).
constexpr std::size_t kKeep = 4096;
// See over_limit().
constexpr std::uint64_t kBurstFactor = 4;
constexpr auto kQueueGrace = std::chrono::seconds(1);
}  // namespace

void XmlStream::set_write_limits(WriteLimits limits, std::function<void(WriteLimit)> handler) {
  limits_ = limits;
  on_limit_ = std::move(handler);
  if (limits_.stall_timeout.count() > 0 && !stall_timer_)
    stall_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
}

// Past max_queued, only a peer that lets nothing be written for kQueueGrace trips the bound: a
// burst queued at once (a queue of bounces, an offline backlog) to a peer that reads is written
// as it reads. Past kBurstFactor times max_queued, any peer trips it.
bool XmlStream::over_limit(std::size_t more) {
  if (limits_.max_queued == 0) return false;
  const std::uint64_t after = unwritten_ + more;
  if (after <= limits_.max_queued) return false;
  if (after > kBurstFactor * limits_.max_queued) return true;
  return std::chrono::steady_clock::now() - progress_at_ >= kQueueGrace;
}

void XmlStream::send(std::string_view data) {
  if (ws_) {
    // Counted as framed, so that bytes_queued() and bytes_out() stay comparable.
    std::string frames;
    ws_->encode(data, frames);
    if (!frames.empty()) send_unframed(frames);
    return;
  }
  bytes_queued_ += data.size();  // counted even when dropped: owners compare with bytes_out()
  if (closed_) return;
  if (limit_ != WriteLimit::kNone) return;  // dropped: the owner is told of the trip
  if (over_limit(data.size())) return trip(WriteLimit::kQueueFull);
  enqueue(data, nullptr);
}

void XmlStream::send(std::shared_ptr<const std::string> data) {
  if (!data) return;
  if (ws_) return send(std::string_view(*data));
  bytes_queued_ += data->size();
  if (closed_) return;
  if (limit_ != WriteLimit::kNone) return;
  if (over_limit(data->size())) return trip(WriteLimit::kQueueFull);
  if (data->size() < kShareFrom)
    enqueue(*data, nullptr);
  else
    enqueue({}, std::move(data));
}

void XmlStream::send_last(std::string_view data) {
  if (limit_ == WriteLimit::kNone || closed_) return;
  if (ws_) {
    std::string frames;
    ws_->encode(data, frames);
    bytes_queued_ += frames.size();
    enqueue(frames, nullptr);
    return;
  }
  bytes_queued_ += data.size();
  enqueue(data, nullptr);
}

void XmlStream::enqueue(std::string_view data, std::shared_ptr<const std::string> shared) {
  if (unwritten_ == 0) progress_at_ = std::chrono::steady_clock::now();  // stalls count from here
  if (shared) {
    unwritten_ += shared->size();
    chunks_.push_back(Chunk{{}, std::move(shared)});
  } else {
    unwritten_ += data.size();
    // Consecutive bytes of our own coalesce, but never into the chunk being written.
    const bool grow = chunks_.size() > head_ && !chunks_.back().shared &&
                      !(chunks_.size() - 1 == head_ && head_started_);
    if (grow) {
      chunks_.back().own.append(data);
    } else {
      Chunk c;
      c.own = std::move(spare_);
      c.own.assign(data);
      chunks_.push_back(std::move(c));
    }
  }
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(socket_.get_executor(), write_loop(shared_from_this()), asio::detached);
  }
}

void XmlStream::pop_front_chunk() {
  Chunk& c = chunks_[head_];
  if (!c.shared && c.own.capacity() <= kKeep && spare_.capacity() == 0) {
    spare_ = std::move(c.own);
    spare_.clear();
  }
  c = Chunk{};
  ++head_;
  head_off_ = 0;
  head_started_ = false;
  if (head_ == chunks_.size()) {
    chunks_.clear();
    head_ = 0;
  } else if (head_ >= 64 && 2 * head_ >= chunks_.size()) {
    chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

// What is queued stays (it is within the bound, and a reader that is merely slow gets it, a
// last element after it); what would go beyond is dropped from here on.
void XmlStream::trip(WriteLimit why) {
  if (limit_ != WriteLimit::kNone || closed_) return;
  limit_ = why;
  asio::post(socket_.get_executor(), [weak = weak_from_this(), why] {
    auto s = weak.lock();
    if (!s || s->closed_) return;
    if (auto handler = s->on_limit_)
      handler(why);
    else
      s->close();
  });
}

void XmlStream::arm_stall_timer() {
  if (!stall_timer_ || stall_armed_ || closed_ || limit_ != WriteLimit::kNone) return;
  stall_armed_ = true;
  stall_timer_->expires_at(progress_at_ + limits_.stall_timeout);
  stall_timer_->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto s = weak.lock();
    if (!s) return;
    s->stall_armed_ = false;
    if (ec || s->closed_ || s->limit_ != WriteLimit::kNone || s->unwritten_ == 0) return;
    // Only the writer's progress counts: a peer that writes to us but does not read is stuck
    // all the same.
    if (std::chrono::steady_clock::now() - s->progress_at_ >= s->limits_.stall_timeout)
      s->trip(WriteLimit::kStalled);
    else
      s->arm_stall_timer();
  });
}

asio::awaitable<void> XmlStream::write_loop(std::shared_ptr<XmlStream> self) {
  XmlStream& s = *self;
  // Writes complete at once when the socket has room, so let the current handler finish
  // first: everything it queues (a burst of stanzas) then goes out in one write.
  co_await asio::post(s.socket_.get_executor(), asio::use_awaitable);
  bool failed = false;
  while (s.head_ < s.chunks_.size() && !s.closed_ && !failed) {
    s.head_started_ = true;
    // Looked up again after every wait: the queue may have grown (and moved) meanwhile.
    const std::string_view data = s.chunks_[s.head_].view();
    if (s.head_off_ >= data.size()) {
      s.pop_front_chunk();
      continue;
    }
    const std::size_t left = data.size() - s.head_off_;
    std::size_t n = 0;
    int wait = 0;
    if (s.tls_active_) {
      ERR_clear_error();
      const std::uint64_t read_before = s.socket_bytes_read();
      // At most kWriteChunk per call: SSL_write returns only once all it was given is
      // written, and bytes_out() should show a large backlog's progress as it goes.
      const int r = SSL_write(s.ssl_.get(), data.data() + s.head_off_,
                              static_cast<int>(std::min(left, kWriteChunk)));
      s.wake_other_side(true, read_before);
      if (r > 0) {
        n = static_cast<std::size_t>(r);
      } else {
        const int err = SSL_get_error(s.ssl_.get(), r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
          wait = err;
        else
          failed = true;
        ERR_clear_error();
      }
    } else {
      boost::system::error_code ec;
      n = s.socket_.write_some(asio::buffer(data.data() + s.head_off_, left), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again)
        wait = SSL_ERROR_WANT_WRITE;
      else if (ec)
        failed = true;
    }
    if (n > 0) {
      s.head_off_ += n;
      s.bytes_out_ += n;
      s.unwritten_ -= std::min<std::uint64_t>(n, s.unwritten_);
      s.progress_at_ = std::chrono::steady_clock::now();
      continue;
    }
    if (wait != 0) {
      s.arm_stall_timer();
      if (!co_await s.wait_for(wait, true)) failed = true;
    }
  }
  if (failed || s.closed_) s.close();
  s.chunks_.clear();
  s.head_ = s.head_off_ = 0;
  s.head_started_ = false;
  if (s.closed_) s.unwritten_ = 0;
  if (s.chunks_.capacity() > 16) s.chunks_.shrink_to_fit();
  s.writing_ = false;
  s.idle_signal_.cancel();
}

asio::awaitable<void> XmlStream::flush() {
  while (writing_ && !closed_) {
    co_await idle_signal_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void XmlStream::shutdown_send() {
  boost::system::error_code ec;
  if (!closed_) socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
}

void XmlStream::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  // OpenSSL keeps the descriptor number, but no SSL call is made once closed_ is set.
  socket_.close(ec);
  idle_signal_.cancel();
  if (stall_timer_) stall_timer_->cancel();
  on_limit_ = nullptr;  // it may hold the owner
}

}  // namespace waddle::stream
