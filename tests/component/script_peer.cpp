// Scripted connection end (see script_peer.h).
#include "script_peer.h"

#include <array>
#include <stdexcept>
#include <vector>

#include "core/namespaces.h"

namespace waddle::testing {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

bool pump(asio::io_context& io, const std::function<bool()>& done,
          std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    io.run_one_for(std::min<Clock::duration>(deadline - now, std::chrono::milliseconds(20)));
    if (io.stopped()) io.restart();
  }
  return true;
}

bool matches(const xml::Element& pattern, const xml::Element& got, bool exact) {
  if (pattern.name() != got.name() || pattern.ns() != got.ns()) return false;
  for (const auto& a : pattern.attrs()) {
    if (!got.has_attr(a.name)) return false;
    if (a.value != "*" && got.attr(a.name) != a.value) return false;
  }
  if (exact && got.attrs().size() != pattern.attrs().size()) return false;
  const std::string text = pattern.text();
  if (!text.empty() && got.text() != text) return false;
  auto wanted = pattern.children();
  auto offered = got.children();
  if (exact && wanted.size() != offered.size()) return false;
  std::vector<bool> used(offered.size(), false);
  for (const auto* w : wanted) {
    bool found = false;
    for (std::size_t i = 0; i < offered.size() && !found; ++i) {
      if (used[i] || !matches(*w, *offered[i], exact)) continue;
      used[i] = found = true;
    }
    if (!found) return false;
  }
  return true;
}

xml::Element pattern(std::string_view text) {
  xml::StreamParser parser;
  std::vector<xml::StreamEvent> events;
  std::string doc = "<stream:stream xmlns='";
  doc += ns::kServer;
  doc += "' xmlns:stream='";
  doc += ns::kStream;
  doc += "' xmlns:db='";
  doc += ns::kDialback;
  doc += "'>";
  doc += text;
  if (!parser.feed(doc, events))
    for (auto& ev : events)
      if (ev.kind == xml::StreamEvent::Kind::kElement) return std::move(ev.element);
  throw std::invalid_argument("invalid pattern: " + std::string(text));
}

Peer::Peer(asio::io_context& io, std::string name, std::chrono::milliseconds deadline)
    : io_(io), name_(std::move(name)), deadline_(deadline) {}

Peer::~Peer() {
  cut();
}

Peer::Socket& Peer::socket() {
  return tls_ ? tls_->next_layer() : *plain_;
}

bool Peer::open() const {
  return (tls_ && tls_->next_layer().is_open()) || (plain_ && plain_->is_open());
}

// Pumps until `done`; at the deadline cancels what is pending on `socket` and waits for the
// cancellation to complete, so no handler outlives the caller's frame.
bool Peer::wait(const bool& done, Socket& s) {
  if (pump(
          io_, [&] { return done; }, deadline_))
    return true;
  problem_ = "nothing within " + std::to_string(deadline_.count()) + " ms";
  boost::system::error_code ignored;
  s.cancel(ignored);
  if (!pump(
          io_, [&] { return done; }, std::chrono::seconds(5))) {
    s.close(ignored);
    pump(
        io_, [&] { return done; }, std::chrono::seconds(5));
  }
  return false;
}

void Peer::reset(bool initiated) {
  cut();
  tls_.reset();
  plain_ = std::make_unique<Socket>(io_);
  parser_.reset();
  events_.clear();
  eof_ = false;
  initiated_ = initiated;
  stream_id_.clear();
  problem_.clear();
}

bool Peer::connect(const tcp::endpoint& to) {
  reset(true);
  note("(connect)");
  boost::system::error_code ec;
  bool done = false;
  plain_->async_connect(to, [&](boost::system::error_code e) { ec = e, done = true; });
  if (!wait(done, *plain_)) return false;
  if (ec) return problem_ = "connect: " + ec.message(), false;
  plain_->set_option(tcp::no_delay(true), ec);  // each scripted write leaves at once
  return true;
}

bool Peer::accept(tcp::acceptor& acceptor) {
  reset(false);
  note("(accept)");
  boost::system::error_code ec;
  bool done = false;
  acceptor.async_accept(*plain_, [&](boost::system::error_code e) { ec = e, done = true; });
  if (!pump(
          io_, [&] { return done; }, deadline_)) {
    problem_ = "no connection within " + std::to_string(deadline_.count()) + " ms";
    acceptor.cancel(ec);
    pump(
        io_, [&] { return done; }, std::chrono::seconds(5));
    return false;
  }
  if (ec) return problem_ = "accept: " + ec.message(), false;
  plain_->set_option(tcp::no_delay(true), ec);
  return true;
}

bool Peer::send(std::string_view data) {
  if (!open()) return problem_ = "send: not connected", false;
  note("sent " + std::string(data));
  boost::system::error_code ec;
  bool done = false;
  auto handler = [&](boost::system::error_code e, std::size_t) { ec = e, done = true; };
  if (tls_)
    asio::async_write(*tls_, asio::buffer(data), handler);
  else
    asio::async_write(*plain_, asio::buffer(data), handler);
  if (!wait(done, socket())) return false;
  if (ec) problem_ = "send: " + ec.message();
  return !ec;
}

bool Peer::start_tls_client(ssl::context& ctx, const std::string& sni) {
  if (!plain_) return problem_ = "TLS: not connected", false;
  tls_ = std::make_unique<TlsSocket>(std::move(*plain_), ctx);
  plain_.reset();
  SSL_set_tlsext_host_name(tls_->native_handle(), sni.c_str());
  boost::system::error_code ec;
  bool done = false;
  tls_->async_handshake(ssl::stream_base::client, [&](auto e) { ec = e, done = true; });
  if (!wait(done, socket())) return false;
  if (ec) return problem_ = "TLS handshake: " + ec.message(), false;
  restart();
  return true;
}

bool Peer::start_tls_server(ssl::context& ctx) {
  if (!plain_) return problem_ = "TLS: not connected", false;
  tls_ = std::make_unique<TlsSocket>(std::move(*plain_), ctx);
  plain_.reset();
  boost::system::error_code ec;
  bool done = false;
  tls_->async_handshake(ssl::stream_base::server, [&](auto e) { ec = e, done = true; });
  if (!wait(done, socket())) return false;
  if (ec) return problem_ = "TLS handshake: " + ec.message(), false;
  restart();
  return true;
}

void Peer::restart() {
  parser_.reset();
  events_.clear();
  note("(new stream)");
}

std::optional<xml::StreamEvent> Peer::next() {
  std::array<char, 16 * 1024> buf;
  while (events_.empty()) {
    if (eof_ || !open()) return problem_ = "the connection is closed", std::nullopt;
    boost::system::error_code ec;
    std::size_t n = 0;
    bool done = false;
    auto handler = [&](boost::system::error_code e, std::size_t k) { ec = e, n = k, done = true; };
    if (tls_)
      tls_->async_read_some(asio::buffer(buf), handler);
    else
      plain_->async_read_some(asio::buffer(buf), handler);
    if (!wait(done, socket())) return std::nullopt;
    if (ec) {
      eof_ = true;
      note("(end of connection: " + ec.message() + ")");
      return problem_ = "end of connection: " + ec.message(), std::nullopt;
    }
    std::vector<xml::StreamEvent> events;
    if (auto err = parser_.feed(std::string_view(buf.data(), n), events)) {
      eof_ = true;
      return problem_ = "not XML: " + std::string(buf.data(), n), std::nullopt;
    }
    for (auto& ev : events) {
      if (ev.kind == xml::StreamEvent::Kind::kStreamOpen) {
        stream_id_ = std::string(ev.element.attr("id"));
        note("received header id='" + stream_id_ + "' from='" +
             std::string(ev.element.attr("from")) + "' to='" + std::string(ev.element.attr("to")) +
             "'");
      } else if (ev.kind == xml::StreamEvent::Kind::kStreamClose) {
        note("received </stream:stream>");
      } else {
        note("received " + ev.element.str());
      }
      events_.push_back(std::move(ev));
    }
  }
  auto ev = std::move(events_.front());
  events_.pop_front();
  return ev;
}

void Peer::cut(bool reset) {
  if (!open()) return;
  boost::system::error_code ignored;
  if (reset) socket().set_option(asio::socket_base::linger(true, 0), ignored);
  socket().close(ignored);
  note(reset ? "(reset)" : "(cut)");
}

}  // namespace waddle::testing
