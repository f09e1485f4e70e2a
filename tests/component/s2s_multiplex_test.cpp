// Multiplexing in the pool (XEP-0220 §2.6) and its waiting rules, against a fake connector on
// a hand-advanced clock: a second local domain waits for a dial in progress and joins the
// stream; only the peer asked may answer; a refused pair is not asked again for ten minutes;
// no waiting where the peer's last stream could not be shared; a failed dial releases the
// waiters; the end of a shared stream ends every pair on it.
#include "s2s_pool_fixture.h"

#include <algorithm>

namespace waddle::s2s::testing {
namespace {

using namespace std::chrono_literals;

// Two local domains answer the same peer at once (say presence probes): the second waits for
// the first's stream, then authenticates on it with dialback instead of opening another.
TEST_F(PoolTest, SecondLocalDomain_WaitsForTheDialThenMultiplexes) {
  send("alice@a.test", "bob@r.test");
  send("carol@b.test", "bob@r.test", "from b");
  EXPECT_EQ(connector_.calls.size(), 1u);  // b waits
  auto ch = connector_.succeed(0, true, "s-42");
  run();
  EXPECT_EQ(connector_.calls.size(), 1u);
  const std::string request =
      wire::db_result("b.test", "r.test", keys_.key("r.test", "b.test", "s-42"));
  ASSERT_TRUE(ch->sent_contains(request));
  // An answer from another domain than the peer asked is not the answer.
  answer(*ch, "b.test", "valid", "evil.test");
  EXPECT_FALSE(ch->sent_contains("from b"));
  answer(*ch, "b.test", "valid");
  EXPECT_TRUE(ch->sent_contains("<body>from b</body>"));
  EXPECT_EQ(connector_.calls.size(), 1u);
  EXPECT_EQ(metric("waddle_s2s_authenticated_total{domain=\"r.test\",direction=\"out\","
                   "method=\"dialback\"}"),
            "1");
  EXPECT_EQ(metric("waddle_s2s_authenticated_total{domain=\"r.test\",direction=\"out\","
                   "method=\"dialback_multiplexed\"}"),
            "1");
  // Written straight away from now on, on the shared stream.
  send("carol@b.test", "bob@r.test", "again");
  EXPECT_TRUE(ch->sent_contains("<body>again</body>"));
}

TEST_F(PoolTest, MultiplexRefused_OpensOwnStreamAndDoesNotAskAgainForTenMinutes) {
  config_.idle_timeout = 3600s;  // the shared stream stays up meanwhile
  config_.ping_interval = 3600s;
  config_.retry.max_retries = 0;
  auto requests_from_b = [](const FakeChannel& ch) {
    return std::count_if(ch.sent.begin(), ch.sent.end(), [](const std::string& s) {
      return s.find("<db:result from='b.test'") != std::string::npos;
    });
  };
  send("alice@a.test", "bob@r.test");
  auto ch = connector_.succeed(0);
  run();
  send("carol@b.test", "bob@r.test");
  answer(*ch, "b.test", "invalid");
  ASSERT_EQ(connector_.calls.size(), 2u);  // its own stream instead
  EXPECT_EQ(connector_.calls[1]->request.local, "b.test");
  connector_.fail(1, Failure::kConnectionRefused, "refused");
  run();
  EXPECT_EQ(requests_from_b(*ch), 1);
  advance(599s);
  send("carol@b.test", "bob@r.test");
  EXPECT_EQ(connector_.calls.size(), 3u);  // not asked again on the shared stream
  EXPECT_EQ(requests_from_b(*ch), 1);
  connector_.fail(2, Failure::kConnectionRefused, "refused");
  run();
  advance(1s);  // ten minutes after the refusal
  send("carol@b.test", "bob@r.test");
  EXPECT_EQ(requests_from_b(*ch), 2);
  EXPECT_EQ(connector_.calls.size(), 3u);
}

// Where the peer's last stream could not be shared (no dialback errors offered), a second
// local domain does not wait for another's dial: it dials at once.
TEST_F(PoolTest, PeerThatCouldNotShare_SecondLocalDomainDoesNotWait) {
  send("alice@a.test", "bob@r.test");
  auto first = connector_.succeed(0, false);
  run();
  first->peer_ends();
  run();
  EXPECT_EQ(live_.size(), 0u);
  send("alice@a.test", "bob@r.test");  // dials again
  ASSERT_EQ(connector_.calls.size(), 2u);
  send("carol@b.test", "bob@r.test");
  ASSERT_EQ(connector_.calls.size(), 3u);
  EXPECT_EQ(connector_.calls[2]->request.local, "b.test");
  EXPECT_EQ(connector_.pending(), 2u);
}

// A waiting link gives up when the other dial fails, and dials itself.
TEST_F(PoolTest, DialFails_WaitingLinkDialsItsOwn) {
  config_.retry.max_retries = 0;
  send("alice@a.test", "bob@r.test");
  send("carol@b.test", "bob@r.test");
  EXPECT_EQ(connector_.calls.size(), 1u);
  connector_.fail(0, Failure::kDns, "no address for r.test");
  run();
  ASSERT_EQ(connector_.calls.size(), 2u);
  EXPECT_EQ(connector_.calls[1]->request.local, "b.test");
}

TEST_F(PoolTest, StreamEnds_MultiplexedDomainsLoseItToo) {
  send("alice@a.test", "bob@r.test");
  auto ch = connector_.succeed(0);
  run();
  send("carol@b.test", "bob@r.test");
  answer(*ch, "b.test", "valid");
  EXPECT_EQ(live_.size(), 2u);
  ch->push("</stream:stream>");
  ch->peer_ends();
  run();
  EXPECT_EQ(live_.size(), 0u);
  EXPECT_EQ(ch->sent.back(), "</stream:stream>");  // our closing tag answers the peer's
  EXPECT_EQ(
      metric(
          "waddle_s2s_streams_closed_total{domain=\"r.test\",direction=\"out\",reason=\"peer\"}"),
      "1");
}

}  // namespace
}  // namespace waddle::s2s::testing
