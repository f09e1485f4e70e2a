// Transport, parser feeding and the coalescing write queue of an XML stream.
#include "stream/xml_stream.h"

#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

namespace waddle::stream {
namespace asio = boost::asio;

namespace {
constexpr std::size_t kReadChunk = 16 * 1024;
}

XmlStream::XmlStream(asio::ip::tcp::socket socket, asio::ssl::context& tls,
                     xml::ParserLimits limits)
    : ssl_(std::move(socket), tls), parser_(limits), idle_signal_(ssl_.get_executor()) {
  boost::system::error_code ec;
  auto ep = ssl_.next_layer().remote_endpoint(ec);
  if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  ssl_.next_layer().set_option(asio::ip::tcp::no_delay(true), ec);
  idle_signal_.expires_at(asio::steady_timer::time_point::max());
}

asio::awaitable<bool> XmlStream::server_handshake() {
  auto [ec] = co_await ssl_.async_handshake(asio::ssl::stream_base::server,
                                            asio::as_tuple(asio::use_awaitable));
  if (ec) {
    tls_error_ = ec.message();
    co_return false;
  }
  tls_active_ = true;
  co_return true;
}

void XmlStream::use_tls_context(SSL_CTX* ctx) {
  if (ctx && !tls_active_) SSL_set_SSL_CTX(ssl_.native_handle(), ctx);
}

asio::awaitable<bool> XmlStream::client_handshake(const std::string& server_name) {
  SSL_set_tlsext_host_name(ssl_.native_handle(), server_name.c_str());
  auto [ec] = co_await ssl_.async_handshake(asio::ssl::stream_base::client,
                                            asio::as_tuple(asio::use_awaitable));
  if (ec) {
    tls_error_ = ec.message();
    co_return false;
  }
  tls_active_ = true;
  co_return true;
}

X509* XmlStream::peer_certificate() const {
  if (!tls_active_) return nullptr;
  SSL* s = const_cast<asio::ssl::stream<asio::ip::tcp::socket>&>(ssl_).native_handle();
  return SSL_get0_peer_certificate(s);
}

bool XmlStream::peer_chain_valid() const {
  if (!peer_certificate()) return false;
  SSL* s = const_cast<asio::ssl::stream<asio::ip::tcp::socket>&>(ssl_).native_handle();
  return SSL_get_verify_result(s) == X509_V_OK;
}

std::string XmlStream::tls_description() const {
  if (!tls_active_) return "plaintext";
  SSL* s = const_cast<asio::ssl::stream<asio::ip::tcp::socket>&>(ssl_).native_handle();
  return std::string(SSL_get_version(s)) + " " + SSL_get_cipher_name(s);
}

asio::awaitable<std::optional<core::StreamError>> XmlStream::read(
    std::vector<xml::StreamEvent>& out, bool& eof) {
  if (read_buf_.size() != kReadChunk) read_buf_.resize(kReadChunk);
  boost::system::error_code ec;
  std::size_t n = 0;
  if (tls_active_) {
    std::tie(ec, n) =
        co_await ssl_.async_read_some(asio::buffer(read_buf_), asio::as_tuple(asio::use_awaitable));
  } else {
    std::tie(ec, n) = co_await ssl_.next_layer().async_read_some(
        asio::buffer(read_buf_), asio::as_tuple(asio::use_awaitable));
  }
  if (ec || closed_) {
    eof = true;
    co_return std::nullopt;
  }
  bytes_in_ += n;
  co_return parser_.feed(std::string_view(read_buf_.data(), n), out);
}

void XmlStream::send(std::string_view data) {
  if (closed_) return;
  pending_.append(data);
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(ssl_.get_executor(), write_loop(shared_from_this()), asio::detached);
  }
}

asio::awaitable<void> XmlStream::write_loop(std::shared_ptr<XmlStream> self) {
  XmlStream& s = *self;
  while (!s.pending_.empty() && !s.closed_) {
    s.in_flight_.clear();
    s.in_flight_.swap(s.pending_);
    boost::system::error_code ec;
    if (s.tls_active_) {
      std::tie(ec, std::ignore) = co_await asio::async_write(s.ssl_, asio::buffer(s.in_flight_),
                                                             asio::as_tuple(asio::use_awaitable));
    } else {
      std::tie(ec, std::ignore) = co_await asio::async_write(
          s.ssl_.next_layer(), asio::buffer(s.in_flight_), asio::as_tuple(asio::use_awaitable));
    }
    if (ec) {
      s.close();
      break;
    }
    s.bytes_out_ += s.in_flight_.size();
  }
  s.pending_.clear();
  s.writing_ = false;
  s.idle_signal_.cancel();
}

asio::awaitable<void> XmlStream::flush() {
  while (writing_ && !closed_) {
    co_await idle_signal_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void XmlStream::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  ssl_.next_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  ssl_.next_layer().close(ec);
  idle_signal_.cancel();
}

}  // namespace waddle::stream
