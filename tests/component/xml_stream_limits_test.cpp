// The XML stream's write bounds (docs/security.md, "Memory") over real TCP and TLS on
// 127.0.0.1: queued-but-unwritten bytes are capped (the stream keeps what it had queued, drops
// what would go beyond and tells its owner, which may still queue a last element); a writer that
// makes no progress for the stall timeout trips it even while the peer keeps writing to us;
// a shared buffer is queued by reference on many streams and counted against each cap.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loopback_stream_test.h"
#include "stream/xml_stream.h"

namespace waddle::stream {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr const char* kHeader =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='stream.test'>";

using XmlStreamLimitsTest = test_support::LoopbackStreamTest;

std::string stanza(int i, std::size_t payload) {
  return "<m i='" + std::to_string(i) + "'>" + std::string(payload, 'p') + "</m>";
}

struct Seen {
  std::vector<int> ids;         // <m i='…'/> in order
  bool last = false;            // <last/> arrived
  bool eof = false;             // the connection ended
  bool error = false;           // the parser refused the input (a stanza cut in half)
  std::size_t other_bytes = 0;  // what else arrived
  bool done = false;
};

// Reads elements until <last/>, the end of the stream or `max_ids` stanzas.
asio::awaitable<void> read_all(std::shared_ptr<XmlStream> s, Seen* seen, std::size_t max_ids) {
  std::vector<xml::StreamEvent> events;
  while (!seen->last && seen->ids.size() < max_ids) {
    events.clear();
    bool eof = false;
    if (co_await s->read(events, eof)) {
      seen->error = true;
      break;
    }
    for (auto& ev : events) {
      if (ev.kind != xml::StreamEvent::Kind::kElement) continue;
      if (ev.element.name() == "last") seen->last = true;
      if (ev.element.name() == "m")
        seen->ids.push_back(std::stoi(std::string(ev.element.attr("i"))));
    }
    if (eof) {
      seen->eof = true;
      break;
    }
  }
  seen->done = true;
}

asio::awaitable<bool> handshake(std::shared_ptr<XmlStream> s, bool as_server) {
  if (as_server) co_return co_await s->server_handshake();
  co_return co_await s->client_handshake("stream.test");
}

// A peer that reads nothing: the queue reaches the cap, the stream drops what would go beyond
// and tells its owner once; what was queued is written when the peer reads, whole stanzas, and
// a last element after it.
TEST_F(XmlStreamLimitsTest, QueueCap_TripsAndEndsCleanlyAfterWhatWasQueued) {
  constexpr std::size_t kCap = 256 * 1024;
  constexpr std::size_t kPayload = 16 * 1024;
  constexpr int kCount = 200;  // 3.2 MiB offered
  auto pair_c = connect_pair();
  auto s = pair_c.first;
  auto c = pair_c.second;
  std::vector<WriteLimit> trips;
  c->set_write_limits({kCap, 0s}, [&trips](WriteLimit w) { trips.push_back(w); });
  bool sent = false, s_ready = false;
  asio::co_spawn(
      io_, [&, s = s]() -> asio::awaitable<void> { s_ready = co_await handshake(s, true); },
      asio::detached);
  asio::co_spawn(
      io_,
      [&, c = c]() -> asio::awaitable<void> {
        if (!co_await handshake(c, false)) co_return;
        c->send(kHeader);
        for (int i = 0; i < kCount; ++i) {
          c->send(stanza(i, kPayload));
          EXPECT_LE(c->bytes_unwritten(), 4 * kCap);
          co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        }
        sent = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(sent));
  ASSERT_TRUE(s_ready);
  ASSERT_EQ(trips, std::vector<WriteLimit>{WriteLimit::kQueueFull});
  EXPECT_EQ(c->write_limit(), WriteLimit::kQueueFull);
  EXPECT_LE(c->bytes_unwritten(), 4 * kCap);
  // Every byte offered is counted as handed over, written or not.
  EXPECT_GE(c->bytes_queued(), static_cast<std::uint64_t>(kCount) * kPayload);
  EXPECT_LT(c->bytes_out(), static_cast<std::uint64_t>(kCount) * kPayload / 2);
  c->send("<dropped/>");  // ignored after the trip
  c->send_last("<last/>");
  Seen seen;
  asio::co_spawn(io_, read_all(s, &seen, kCount), asio::detached);
  ASSERT_TRUE(run_until(seen.done));
  EXPECT_FALSE(seen.error) << "a stanza was cut in half";
  EXPECT_TRUE(seen.last);
  ASSERT_FALSE(seen.ids.empty());
  ASSERT_LT(seen.ids.size(), static_cast<std::size_t>(kCount));
  for (std::size_t i = 0; i < seen.ids.size(); ++i) ASSERT_EQ(seen.ids[i], static_cast<int>(i));
}

// Without a handler the stream closes itself at the bound.
TEST_F(XmlStreamLimitsTest, QueueCap_WithoutAHandlerTheStreamCloses) {
  auto pair_c = connect_pair();
  auto s = pair_c.first;
  auto c = pair_c.second;
  c->set_write_limits({64 * 1024, 0s});
  c->send(kHeader);  // plaintext: no handshake
  // At once, before any write: four times the bound is the most a burst may queue.
  for (int i = 0; i < 40 && c->write_limit() == WriteLimit::kNone; ++i)
    c->send(stanza(i, 8 * 1024));
  EXPECT_LE(c->bytes_unwritten(), 4u * 64 * 1024);
  io_.restart();
  io_.poll();
  EXPECT_TRUE(c->closed());
  EXPECT_EQ(c->write_limit(), WriteLimit::kQueueFull);
}

// A burst queued at once (up to four times the bound) to a peer that reads is written as it
// reads: the bound trips only for a peer that lets nothing be written.
TEST_F(XmlStreamLimitsTest, QueueCap_ABurstToAPeerThatReadsIsWritten) {
  auto pair_c = connect_pair();
  auto s = pair_c.first;
  auto c = pair_c.second;
  bool tripped = false;
  c->set_write_limits({256 * 1024, 0s}, [&](WriteLimit) { tripped = true; });
  c->send(kHeader);
  for (int i = 0; i < 48; ++i) c->send(stanza(i, 16 * 1024));  // 768 KiB at once
  EXPECT_GT(c->bytes_unwritten(), 256u * 1024);
  Seen seen;
  asio::co_spawn(io_, read_all(s, &seen, 48), asio::detached);
  ASSERT_TRUE(run_until(seen.done));
  EXPECT_EQ(seen.ids.size(), 48u);
  EXPECT_FALSE(tripped);
  EXPECT_EQ(c->write_limit(), WriteLimit::kNone);
}

// The peer keeps writing to us (we read all of it) but reads nothing: the stall timeout
// fires all the same, once nothing could be written for that long.
TEST_F(XmlStreamLimitsTest, StallTimeout_FiresWhileThePeerKeepsWriting) {
  auto pair_c = connect_pair();
  auto s = pair_c.first;
  auto c = pair_c.second;
  std::optional<WriteLimit> tripped;
  std::chrono::steady_clock::time_point tripped_at, queued_at;
  c->set_write_limits({0, 400ms}, [&](WriteLimit w) {
    tripped = w;
    tripped_at = std::chrono::steady_clock::now();
    c->close();
  });
  bool s_ready = false, c_ready = false, c_reading_done = false;
  std::size_t pings_read = 0;
  asio::co_spawn(
      io_, [&, s = s]() -> asio::awaitable<void> { s_ready = co_await handshake(s, true); },
      asio::detached);
  asio::co_spawn(
      io_,
      [&, c = c]() -> asio::awaitable<void> {
        if (!co_await handshake(c, false)) co_return;
        c_ready = true;
        c->send(kHeader);
        queued_at = std::chrono::steady_clock::now();
        c->send(stanza(0, 8 * 1024 * 1024));  // far more than the socket buffers take
        std::vector<xml::StreamEvent> events;
        for (;;) {  // reads what the peer writes, until the trip closes the stream
          events.clear();
          bool eof = false;
          if (co_await c->read(events, eof) || eof) break;
          for (auto& ev : events) pings_read += ev.kind == xml::StreamEvent::Kind::kElement;
        }
        c_reading_done = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(c_ready));
  ASSERT_TRUE(run_until(s_ready));
  s->send(kHeader);
  // The peer writes a ping every 50 ms (a whitespace keepalive would do the same).
  asio::steady_timer pinger(io_);
  std::function<void()> ping = [&] {
    if (tripped) return;
    s->send("<ping/>");
    pinger.expires_after(50ms);
    pinger.async_wait([&](boost::system::error_code ec) {
      if (!ec) ping();
    });
  };
  ping();
  ASSERT_TRUE(run_until(c_reading_done, 10s));
  pinger.cancel();
  ASSERT_TRUE(tripped);
  EXPECT_EQ(*tripped, WriteLimit::kStalled);
  EXPECT_GE(tripped_at - queued_at, 400ms);  // no progress for the timeout, at the least
  EXPECT_GT(pings_read, 3u) << "the peer's writes were read while the writer was stuck";
  EXPECT_LT(c->bytes_out(), 8u * 1024 * 1024);
}

// A reader that keeps up never trips the stall timeout, however long the transfer takes.
TEST_F(XmlStreamLimitsTest, StallTimeout_NotWhileThePeerReads) {
  auto pair_c = connect_pair();
  auto s = pair_c.first;
  auto c = pair_c.second;
  bool tripped = false;
  c->set_write_limits({0, 300ms}, [&](WriteLimit) { tripped = true; });
  c->send(kHeader);
  // 2 MiB in pieces over about a second, read as it comes.
  Seen seen;
  asio::co_spawn(io_, read_all(s, &seen, 64), asio::detached);
  asio::co_spawn(
      io_,
      [&, c = c]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor);
        for (int i = 0; i < 64; ++i) {
          c->send(stanza(i, 32 * 1024));
          t.expires_after(15ms);
          co_await t.async_wait(asio::use_awaitable);
        }
      },
      asio::detached);
  ASSERT_TRUE(run_until(seen.done));
  EXPECT_EQ(seen.ids.size(), 64u);
  EXPECT_FALSE(tripped);
}

// One buffer for many streams: queued by reference, counted in full against each cap, and
// released once every stream has written it.
TEST_F(XmlStreamLimitsTest, SharedBuffer_QueuedByReferenceOnEveryStream) {
  auto pair_c1 = connect_pair();
  auto s1 = pair_c1.first;
  auto c1 = pair_c1.second;
  auto pair_c2 = connect_pair();
  auto s2 = pair_c2.first;
  auto c2 = pair_c2.second;
  auto pair_c3 = connect_pair();
  auto s3 = pair_c3.first;
  auto c3 = pair_c3.second;
  c3->set_write_limits({8 * 1024, 0s});
  for (auto& c : {c1, c2, c3}) c->send(kHeader);
  auto big = std::make_shared<const std::string>(stanza(7, 60 * 1024));  // (the parser's limit)
  c1->send(big);
  c2->send(big);
  EXPECT_EQ(big.use_count(), 3);  // no copies
  EXPECT_GE(c1->bytes_unwritten(), big->size());
  c3->send(big);  // over four times c3's bound: refused, and c3 closes
  EXPECT_EQ(big.use_count(), 3);
  EXPECT_EQ(c3->write_limit(), WriteLimit::kQueueFull);
  auto small = std::make_shared<const std::string>(stanza(8, 100));
  c1->send(small);  // small ones are copied (they coalesce with their neighbours)
  EXPECT_EQ(small.use_count(), 1);
  Seen seen1, seen2;
  asio::co_spawn(io_, read_all(s1, &seen1, 2), asio::detached);
  asio::co_spawn(io_, read_all(s2, &seen2, 1), asio::detached);
  ASSERT_TRUE(run_until(seen1.done));
  ASSERT_TRUE(run_until(seen2.done));
  EXPECT_EQ(seen1.ids, (std::vector<int>{7, 8}));
  EXPECT_EQ(seen2.ids, (std::vector<int>{7}));
  bool flushed = false;
  asio::co_spawn(
      io_,
      [&, c1 = c1, c2 = c2]() -> asio::awaitable<void> {
        co_await c1->flush();
        co_await c2->flush();
        flushed = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(flushed));
  EXPECT_EQ(big.use_count(), 1);
}

}  // namespace
}  // namespace waddle::stream
