// Tests for the XML stream transport over real TCP on 127.0.0.1 with real TLS (a self-signed
// certificate made for the test): bulk data larger than the socket buffers (so writes must
// wait for room), both directions at once, the plaintext path, and closing with a write
// pending. Every run of the event loop is bounded.
#include "stream/xml_stream.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loopback_stream_test.h"
#include "net/tls.h"

namespace waddle::stream {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr const char* kHeader =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='stream.test'>";

using XmlStreamTest = test_support::LoopbackStreamTest;

// Starts `s`'s handshake (as server, or as client for stream.test); `ok` gets the result and
// `finished` is set when it is over.
void spawn_handshake(asio::io_context& io, std::shared_ptr<XmlStream> s, bool as_server, bool* ok,
                     bool* finished) {
  asio::co_spawn(
      io,
      [s, as_server, ok, finished]() -> asio::awaitable<void> {
        bool result = false;
        if (as_server)
          result = co_await s->server_handshake();
        else
          result = co_await s->client_handshake("stream.test");
        if (ok) *ok = result;
        if (finished) *finished = true;
      },
      asio::detached);
}

// Stanzas <m i='K'>payload</m> for K in [first, first + n).
std::string stanzas(int first, int n, std::size_t payload) {
  std::string out;
  const std::string body(payload, 'p');
  for (int k = first; k < first + n; ++k)
    out += "<m i='" + std::to_string(k) + "'>" + body + "</m>";
  return out;
}

struct Received {
  std::vector<int> ids;
  std::size_t payload_bytes = 0;
  bool opened = false;
  bool eof = false;
  bool done = false;
  std::optional<core::StreamError> error;
};

// Reads until `want` stanzas arrived (or end of stream / error).
asio::awaitable<void> read_stanzas(std::shared_ptr<XmlStream> s, int want, Received* r) {
  std::vector<xml::StreamEvent> events;
  while (static_cast<int>(r->ids.size()) < want) {
    events.clear();
    bool eof = false;
    auto err = co_await s->read(events, eof);
    if (err) {
      r->error = err;
      break;
    }
    if (eof) {
      r->eof = true;
      break;
    }
    for (auto& ev : events) {
      if (ev.kind == xml::StreamEvent::Kind::kStreamOpen) r->opened = true;
      if (ev.kind != xml::StreamEvent::Kind::kElement) continue;
      r->ids.push_back(std::stoi(std::string(ev.element.attr("i"))));
      r->payload_bytes += ev.element.text().size();
    }
  }
  r->done = true;
}

void expect_in_order(const Received& r, int n, std::size_t payload) {
  ASSERT_EQ(static_cast<int>(r.ids.size()), n);
  for (int k = 0; k < n; ++k) ASSERT_EQ(r.ids[k], k) << "stanza " << k << " out of order";
  EXPECT_EQ(r.payload_bytes, static_cast<std::size_t>(n) * payload);
  EXPECT_FALSE(r.error);
}

TEST_F(XmlStreamTest, TlsHandshakeVerifiesTheServerAndReportsTls13) {
  auto [s, c] = connect_pair();
  bool server_ok = false, client_ok = false, server_done = false, client_done = false;
  spawn_handshake(io_, s, true, &server_ok, &server_done);
  spawn_handshake(io_, c, false, &client_ok, &client_done);
  ASSERT_TRUE(run_until(client_done));
  ASSERT_TRUE(run_until(server_done));
  EXPECT_TRUE(server_ok) << s->tls_error();
  ASSERT_TRUE(client_ok) << c->tls_error();
  EXPECT_TRUE(c->peer_chain_valid());
  EXPECT_NE(c->peer_certificate(), nullptr);
  EXPECT_EQ(c->tls_description().rfind("TLSv1.3 ", 0), 0u) << c->tls_description();
  EXPECT_TRUE(c->tls_active());
}

TEST_F(XmlStreamTest, HandshakeWithAnUntrustedServerFailsWithOpenSslsReason) {
  ssl::context other(ssl::context::tls_client);
  SSL_CTX_set_verify(other.native_handle(), SSL_VERIFY_PEER, nullptr);  // empty trust store
  tcp::socket client(io_);
  client.connect(acceptor_.local_endpoint());
  auto s = std::make_shared<XmlStream>(acceptor_.accept(), server_ctx_, limits());
  auto c = std::make_shared<XmlStream>(std::move(client), other, limits());
  bool client_ok = true, finished = false;
  spawn_handshake(io_, s, true, nullptr, nullptr);
  spawn_handshake(io_, c, false, &client_ok, &finished);
  ASSERT_TRUE(run_until(finished));
  EXPECT_FALSE(client_ok);
  EXPECT_NE(c->tls_error().find("certificate verify failed"), std::string::npos) << c->tls_error();
}

// 16 MiB sent in one burst while the receiver has not started reading: more than the socket
// buffers hold, so the writer must wait for room; everything arrives, in order.
TEST_F(XmlStreamTest, BulkDataOverTlsArrivesCompleteAndInOrder) {
  constexpr int kCount = 16 * 1024;
  constexpr std::size_t kPayload = 1000;
  auto [s, c] = connect_pair();
  Received got;
  bool flushed = false, writer_was_waiting = false;
  asio::co_spawn(
      io_,
      [&, s = s, c = c]() -> asio::awaitable<void> {
        if (!co_await s->server_handshake()) co_return;
        // Start reading only after the client's writer has had time to fill the buffers.
        asio::steady_timer t(co_await asio::this_coro::executor, 200ms);
        co_await t.async_wait(asio::use_awaitable);
        writer_was_waiting =
            !flushed && c->bytes_out() < static_cast<std::uint64_t>(kCount) * kPayload;
        co_await read_stanzas(s, kCount, &got);
      },
      asio::detached);
  asio::co_spawn(
      io_,
      [&, c = c]() -> asio::awaitable<void> {
        if (!co_await c->client_handshake("stream.test")) co_return;
        c->send(kHeader);
        c->send(stanzas(0, kCount, kPayload));
        co_await c->flush();
        flushed = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(got.done));
  EXPECT_TRUE(writer_was_waiting) << "16 MiB fit in 64 KiB socket buffers?";
  EXPECT_TRUE(got.opened);
  expect_in_order(got, kCount, kPayload);
  ASSERT_TRUE(run_until(flushed));
  EXPECT_GT(c->bytes_out(), static_cast<std::uint64_t>(kCount) * kPayload);
  EXPECT_EQ(s->bytes_in(), c->bytes_out());
}

// Both sides write 4 MiB at once and read at the same time (full duplex on one TLS session).
TEST_F(XmlStreamTest, BothDirectionsAtOnceOverTls) {
  constexpr int kCount = 4096;
  constexpr std::size_t kPayload = 1000;
  auto [s, c] = connect_pair();
  Received at_server, at_client;
  auto side = [&](std::shared_ptr<XmlStream> x, bool server, Received* r) {
    return [&, x, server, r]() -> asio::awaitable<void> {
      bool ok = false;
      if (server)
        ok = co_await x->server_handshake();
      else
        ok = co_await x->client_handshake("stream.test");
      if (!ok) {
        r->done = true;
        ADD_FAILURE() << "handshake failed: " << x->tls_error();
        co_return;
      }
      x->send(kHeader);
      x->send(stanzas(0, kCount, kPayload));
      co_await read_stanzas(x, kCount, r);
    };
  };
  asio::co_spawn(io_, side(s, true, &at_server), asio::detached);
  asio::co_spawn(io_, side(c, false, &at_client), asio::detached);
  bool both = false;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!both && std::chrono::steady_clock::now() < deadline) {
    io_.run_for(50ms);
    if (io_.stopped()) io_.restart();
    both = at_server.done && at_client.done;
  }
  ASSERT_TRUE(both);
  expect_in_order(at_server, kCount, kPayload);
  expect_in_order(at_client, kCount, kPayload);
}

TEST_F(XmlStreamTest, PlaintextBulkDataArrivesCompleteAndInOrder) {
  constexpr int kCount = 8 * 1024;
  constexpr std::size_t kPayload = 1000;
  auto [s, c] = connect_pair();
  Received got;
  asio::co_spawn(
      io_,
      [&, s = s]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor, 200ms);
        co_await t.async_wait(asio::use_awaitable);
        co_await read_stanzas(s, kCount, &got);
      },
      asio::detached);
  c->send(kHeader);
  c->send(stanzas(0, kCount, kPayload));
  ASSERT_TRUE(run_until(got.done));
  expect_in_order(got, kCount, kPayload);
  EXPECT_FALSE(c->tls_active());
  EXPECT_EQ(c->tls_description(), "plaintext");
}

// Closing while the writer waits for room ends the writer and the peer's reads; flush()
// returns; nothing is written afterwards.
TEST_F(XmlStreamTest, CloseWithAWritePendingEndsBothSides) {
  auto [s, c] = connect_pair();
  bool handshaken = false, flushed = false;
  Received got;
  asio::co_spawn(
      io_,
      [&, s = s]() -> asio::awaitable<void> {
        if (!co_await s->server_handshake()) co_return;
        handshaken = true;
      },
      asio::detached);
  asio::co_spawn(
      io_,
      [&, c = c]() -> asio::awaitable<void> {
        if (!co_await c->client_handshake("stream.test")) co_return;
        c->send(kHeader);
        c->send(stanzas(0, 64 * 1024, 1000));  // 64 MiB: cannot all fit in the buffers
        co_await c->flush();
        flushed = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(handshaken));
  asio::steady_timer t(io_, 200ms);
  bool waited = false;
  t.async_wait([&](boost::system::error_code) { waited = true; });
  ASSERT_TRUE(run_until(waited));
  EXPECT_FALSE(flushed) << "64 MiB fit in the socket buffers of an unread connection";
  c->close();
  ASSERT_TRUE(run_until(flushed));
  EXPECT_TRUE(c->closed());
  c->send("<after/>");  // ignored once closed
  asio::co_spawn(io_, read_stanzas(s, 64 * 1024, &got), asio::detached);
  ASSERT_TRUE(run_until(got.done));
  EXPECT_TRUE(got.eof);
}

// A handshake that the peer never answers ends when the stream is closed here (what the
// handshake deadlines do), and says so rather than blaming the peer.
TEST_F(XmlStreamTest, ClosingDuringTheHandshakeEndsItWithALocalReason) {
  auto [s, c] = connect_pair();
  bool finished = false, ok = true;
  spawn_handshake(io_, s, true, &ok, &finished);  // the client never sends its hello
  asio::steady_timer t(io_, 100ms);
  t.async_wait([s = s](boost::system::error_code) { s->close(); });
  ASSERT_TRUE(run_until(finished));
  EXPECT_FALSE(ok);
  EXPECT_NE(s->tls_error().find("aborted here"), std::string::npos) << s->tls_error();
  EXPECT_FALSE(s->tls_active());
}

// The peer going away mid-handshake is reported as such.
TEST_F(XmlStreamTest, PeerClosingDuringTheHandshakeIsReported) {
  auto [s, c] = connect_pair();
  bool finished = false, ok = true;
  spawn_handshake(io_, c, false, &ok, &finished);
  asio::steady_timer t(io_, 100ms);
  t.async_wait([s = s](boost::system::error_code) { s->close(); });  // server never answers
  ASSERT_TRUE(run_until(finished));
  EXPECT_FALSE(ok);
  EXPECT_NE(c->tls_error().find("peer closed the connection"), std::string::npos) << c->tls_error();
}

// How a TLS stream ended is told when it was not an ordinary close: garbage instead of TLS
// records, and a reset connection; a peer that just closes TCP leaves no reason.
TEST_F(XmlStreamTest, EndReasonNamesTlsErrorsAndResetsButNotOrdinaryCloses) {
  enum class Ending { kGarbage, kReset, kClose };
  for (Ending ending : {Ending::kGarbage, Ending::kReset, Ending::kClose}) {
    tcp::socket client_socket(io_);
    client_socket.connect(acceptor_.local_endpoint());
    auto s = std::make_shared<XmlStream>(acceptor_.accept(), server_ctx_, limits());
    auto peer = std::make_shared<ssl::stream<tcp::socket>>(std::move(client_socket), client_ctx_);
    SSL_set_tlsext_host_name(peer->native_handle(), "stream.test");
    Received got;
    bool server_ok = false, peer_ok = false;
    asio::co_spawn(
        io_,
        [&, s = s]() -> asio::awaitable<void> {
          server_ok = co_await s->server_handshake();
          if (server_ok) co_await read_stanzas(s, 1, &got);
        },
        asio::detached);
    peer->async_handshake(ssl::stream_base::client,
                          [&](boost::system::error_code ec) { peer_ok = !ec; });
    ASSERT_TRUE(run_until(peer_ok));
    ASSERT_TRUE(server_ok || !got.done);
    auto& raw = peer->next_layer();
    if (ending == Ending::kGarbage) {
      // An application-data record whose contents do not decrypt.
      std::string junk("\x17\x03\x03\x00\x20", 5);
      junk += std::string(32, 'x');
      asio::write(raw, asio::buffer(junk));
    } else if (ending == Ending::kReset) {
      raw.set_option(asio::socket_base::linger(true, 0));
      raw.close();
    } else {
      raw.shutdown(tcp::socket::shutdown_both);
      raw.close();
    }
    ASSERT_TRUE(run_until(got.done));
    EXPECT_TRUE(got.eof);
    const std::string reason = s->end_reason();
    switch (ending) {
      case Ending::kGarbage:
        EXPECT_EQ(reason.rfind("TLS error: ", 0), 0u) << reason;
        break;
      case Ending::kReset:
        EXPECT_NE(reason.find("reset"), std::string::npos) << reason;
        break;
      case Ending::kClose:
        EXPECT_EQ(reason, "");
        break;
    }
  }
}

}  // namespace
}  // namespace waddle::stream
