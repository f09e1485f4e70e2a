// Tests for what client and server streams share (src/stream/negotiation.h, receiving.h,
// event_reader.h): the exact bytes of headers, features and stream-error closings, and, over
// real TCP on 127.0.0.1 with real TLS, the event reader, STARTTLS on the receiving side, the
// bounded close and the handshake deadline. Every run of the event loop is bounded.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loopback_stream_test.h"
#include "stream/event_reader.h"
#include "stream/negotiation.h"
#include "stream/receiving.h"
#include "stream/xml_stream.h"

namespace waddle::stream {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using Kind = xml::StreamEvent::Kind;

constexpr const char* kClientHeader =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='stream.test' version='1.0'>";

// --- bytes ---

TEST(StreamHeaderTest, ClientHeader_HasIdFromVersionAndLanguage) {
  EXPECT_EQ(client_header("a.test", "0123abcd"),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' from='a.test' id='0123abcd' "
            "version='1.0' xml:lang='en'>");
}

TEST(StreamHeaderTest, ServerHeader_DeclaresDialbackAndLeavesOutEmptyAttributes) {
  EXPECT_EQ(server_header("a.test", "b.test", ""),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='http://etherx.jabber.org/streams' "
            "xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>");
  EXPECT_EQ(server_header("", "b.test", "42"),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='http://etherx.jabber.org/streams' "
            "xmlns:db='jabber:server:dialback' to='b.test' id='42' version='1.0'>");
}

TEST(StreamHeaderTest, AttributeValues_AreEscaped) {
  const std::string h = server_header("a'b<c&d\"", "x", "1");
  EXPECT_NE(h.find("from='a&apos;b&lt;c&amp;d&quot;'"), std::string::npos) << h;
}

TEST(StreamHeaderTest, Header_ParsesBackAsAStreamOpening) {
  xml::StreamParser parser;
  std::vector<xml::StreamEvent> events;
  ASSERT_FALSE(parser.feed(server_header("a.test", "b.test", "7"), events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kStreamOpen);
  EXPECT_EQ(events[0].default_ns, ns::kServer);
  EXPECT_TRUE(events[0].element.is("stream", ns::kStream));
  EXPECT_EQ(events[0].element.attr("from"), "a.test");
  EXPECT_EQ(events[0].element.attr("to"), "b.test");
  EXPECT_EQ(events[0].element.attr("id"), "7");
  EXPECT_EQ(events[0].element.attr("version"), "1.0");
}

TEST(StreamFeaturesTest, StarttlsAndMechanisms_AreOfferedInOrder) {
  xml::Element tls = stream_features();
  offer_starttls(tls);
  EXPECT_EQ(tls.str(""),
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
            "</starttls></stream:features>");
  xml::Element sasl = stream_features();
  offer_sasl(sasl, std::array<std::string_view, 2>{"SCRAM-SHA-256", "PLAIN"});
  EXPECT_EQ(sasl.str(""),
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            "<mechanism>SCRAM-SHA-256</mechanism><mechanism>PLAIN</mechanism></mechanisms>"
            "</stream:features>");
}

TEST(StreamErrorCloseTest, WithoutHeader_IsTheErrorAndTheClosingTag) {
  EXPECT_EQ(stream_error_close(core::StreamError::kPolicyViolation, "Too many"),
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Too many</text>"
            "</stream:error></stream:stream>");
}

TEST(StreamErrorCloseTest, WithHeader_OpensTheStreamFirst) {
  auto header = client_header("a.test", "99");
  EXPECT_EQ(stream_error_close(core::StreamError::kHostUnknown, "", header),
            header +
                "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                "</stream:error></stream:stream>");
}

TEST(ParserLimitsTest, StanzaSizeIsPerSide_TheRestIsShared) {
  core::Config config;
  config.c2s.limits.max_stanza_size = 1000;
  config.c2s.limits.max_depth = 7;
  config.c2s.limits.max_attributes = 8;
  config.c2s.limits.max_header_size = 900;
  config.s2s.max_stanza_size = 5000;
  const auto c = client_parser_limits(config), s = server_parser_limits(config);
  EXPECT_EQ(c.max_stanza_size, 1000u);
  EXPECT_EQ(s.max_stanza_size, 5000u);
  for (const auto& l : {c, s}) {
    EXPECT_EQ(l.max_depth, 7u);
    EXPECT_EQ(l.max_attributes, 8u);
    EXPECT_EQ(l.max_header_size, 900u);
  }
}

// --- over loopback ---

using ReceivingStreamTest = test_support::LoopbackStreamTest;

struct Collected {
  std::vector<xml::StreamEvent> events;
  std::optional<core::StreamError> error;
  bool ended = false;
  bool ended_again = false;  // a second next() after the end also said so, without waiting
};

asio::awaitable<void> collect_all(std::shared_ptr<EventReader> reader, Collected* out) {
  for (int i = 0; i < 100; ++i) {
    auto ev = co_await reader->next();
    if (!ev) break;
    out->events.push_back(std::move(*ev));
  }
  out->error = reader->error();
  out->ended = true;
  out->ended_again = !(co_await reader->next());
}

// Elements and a parser error arriving in one read: the elements come first, then the end
// with the error, at once (the reader does not wait for more bytes that nobody would parse).
TEST_F(ReceivingStreamTest, EventReader_HandsOutEventsBeforeAParserErrorThenEnds) {
  auto [s, c] = connect_pair();
  auto reader = std::make_shared<EventReader>(s);
  Collected got;
  c->send(std::string(kClientHeader) + "<a/><b x='1'/><c><<</c>");
  asio::co_spawn(io_, collect_all(reader, &got), asio::detached);
  ASSERT_TRUE(run_until(got.ended_again, 5s)) << "the reader waited after a parser error";
  ASSERT_EQ(got.events.size(), 3u);
  EXPECT_EQ(got.events[0].kind, Kind::kStreamOpen);
  EXPECT_EQ(got.events[1].element.name(), "a");
  EXPECT_EQ(got.events[2].element.attr("x"), "1");
  ASSERT_TRUE(got.error);
  EXPECT_EQ(*got.error, core::StreamError::kNotWellFormed);
  EXPECT_FALSE(c->closed());  // the peer is still there: only the parser ended the stream
}

TEST_F(ReceivingStreamTest, EventReader_EndsWithoutErrorWhenThePeerCloses) {
  auto [s, c] = connect_pair();
  auto reader = std::make_shared<EventReader>(s);
  Collected got;
  c->send(std::string(kClientHeader) + "<a/></stream:stream>");
  asio::co_spawn(io_, collect_all(reader, &got), asio::detached);
  bool flushed = false;
  asio::co_spawn(
      io_,
      [c = c, &flushed]() -> asio::awaitable<void> {
        co_await c->flush();
        c->close();
        flushed = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(got.ended_again, 5s));
  ASSERT_EQ(got.events.size(), 3u);
  EXPECT_EQ(got.events[2].kind, Kind::kStreamClose);
  EXPECT_FALSE(got.error);
}

// The receiving side of STARTTLS: <proceed/> is written before the handshake, and the
// restarted stream is read by a new parser (a second header is no error).
TEST_F(ReceivingStreamTest, AcceptStarttls_ProceedsHandshakesAndRestartsTheParser) {
  auto [s, c] = connect_pair();
  auto server_reader = std::make_shared<EventReader>(s);
  auto client_reader = std::make_shared<EventReader>(c);
  bool accepted = false, server_done = false, client_done = false;
  Collected after;
  asio::co_spawn(
      io_,
      [&, s = s]() -> asio::awaitable<void> {
        auto open = co_await server_reader->next();
        auto starttls = co_await server_reader->next();
        if (open && starttls && starttls->element.is("starttls", ns::kTls)) {
          s->send(client_header("stream.test", "1"));
          accepted = co_await accept_starttls(*s, *server_reader, nullptr);
        }
        server_done = true;
        if (accepted) co_await collect_all(server_reader, &after);
      },
      asio::detached);
  asio::co_spawn(
      io_,
      [&, c = c]() -> asio::awaitable<void> {
        c->send(std::string(kClientHeader) + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        auto open = co_await client_reader->next();
        auto proceed = co_await client_reader->next();
        if (!open || !proceed || !proceed->element.is("proceed", ns::kTls)) {
          client_done = true;
          co_return;
        }
        if (co_await c->client_handshake("stream.test")) {
          c->reset_parser();
          c->send(std::string(kClientHeader) + "<over-tls/></stream:stream>");
          co_await c->flush();
          c->close();
        }
        client_done = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(server_done));
  ASSERT_TRUE(accepted) << s->tls_error();
  EXPECT_TRUE(s->tls_active());
  ASSERT_TRUE(run_until(after.ended_again));
  ASSERT_TRUE(run_until(client_done));
  ASSERT_EQ(after.events.size(), 3u);
  EXPECT_EQ(after.events[0].kind, Kind::kStreamOpen);
  EXPECT_EQ(after.events[1].element.name(), "over-tls");
  EXPECT_EQ(after.events[2].kind, Kind::kStreamClose);
  EXPECT_FALSE(after.error);
}

TEST_F(ReceivingStreamTest, AcceptStarttls_FailedHandshakeClosesTheStream) {
  auto [s, c] = connect_pair();
  auto reader = std::make_shared<EventReader>(s);
  bool done = false, accepted = true;
  asio::co_spawn(
      io_,
      [&, s = s]() -> asio::awaitable<void> {
        accepted = co_await accept_starttls(*s, *reader, nullptr);
        done = true;
      },
      asio::detached);
  c->send("this is not a TLS ClientHello at all, but long enough to be read as a record");
  ASSERT_TRUE(run_until(done));
  EXPECT_FALSE(accepted);
  EXPECT_TRUE(s->closed());
  EXPECT_FALSE(s->tls_error().empty());
}

// A peer that does not read cannot hold the connection open: the close gives up on the
// queued bytes after the limit.
TEST_F(ReceivingStreamTest, CloseStream_GivesUpFlushingAfterTheLimit) {
  auto [s, c] = connect_pair();
  s->send(std::string(kClientHeader) + std::string(16 * 1024 * 1024, ' '));  // never read
  bool closed = false;
  const auto start = std::chrono::steady_clock::now();
  asio::co_spawn(
      io_,
      [&, s = s]() -> asio::awaitable<void> {
        co_await close_stream(s, 200ms);
        closed = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(closed, 5s));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(s->closed());
}

// A reading peer gets everything queued, the closing tag last, before the socket closes.
TEST_F(ReceivingStreamTest, CloseStream_WritesWhatIsQueuedFirst) {
  auto [s, c] = connect_pair();
  auto reader = std::make_shared<EventReader>(c);
  Collected got;
  s->send(std::string(kClientHeader) + "<last/>");
  s->send(kStreamEnd);
  asio::co_spawn(io_, close_stream(s), asio::detached);
  asio::co_spawn(io_, collect_all(reader, &got), asio::detached);
  ASSERT_TRUE(run_until(got.ended_again, 5s));
  ASSERT_EQ(got.events.size(), 3u);
  EXPECT_EQ(got.events[1].element.name(), "last");
  EXPECT_EQ(got.events[2].kind, Kind::kStreamClose);
  EXPECT_TRUE(s->closed());
}

TEST_F(ReceivingStreamTest, HandshakeDeadline_FiresOnceUnlessCancelled) {
  asio::steady_timer fires(io_), cancelled(io_), later(io_);
  int fired = 0, fired_cancelled = 0;
  bool waited = false;
  arm_handshake_deadline(fires, 50ms, [&] { ++fired; });
  arm_handshake_deadline(cancelled, 50ms, [&] { ++fired_cancelled; });
  cancelled.cancel();
  later.expires_after(300ms);
  later.async_wait([&](boost::system::error_code) { waited = true; });
  ASSERT_TRUE(run_until(waited, 5s));
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(fired_cancelled, 0);
}

}  // namespace
}  // namespace waddle::stream
