// The pool's write bounds (docs/security.md, "Memory"), against a fake peer on a
// hand-advanced clock: a peer that offers stream management and never acknowledges makes the
// link fail over at s2s.max_unacked (or max_unacked_bytes); a stream dropped at its write
// bounds (stalled, queue full) fails over too, and what it never wrote goes out on the next
// link. A link that keeps failing so counts as retries and bounces when they run out: every
// stanza is written again or bounced, none dropped.
#include "s2s_pool_fixture.h"

namespace waddle::s2s::testing {
namespace {

using namespace std::chrono_literals;
using core::StanzaError;

std::vector<std::string> numbered(int first, int n) {
  std::vector<std::string> out;
  for (int i = first; i < first + n; ++i) out.push_back("m" + std::to_string(i));
  return out;
}

class PoolLimitsTest : public PoolTest {
 protected:
  std::shared_ptr<FakeChannel> open_link(const std::string& first_body, bool sm) {
    send("alice@a.test", "bob@r.test", first_body);
    auto ch = connector_.succeed(connector_.calls.size() - 1, true, "stream-1", sm);
    run();
    return ch;
  }
};

TEST_F(PoolLimitsTest, NeverAcknowledged_TheLinkFailsOverAtMaxUnacked) {
  config_.max_unacked = 64;
  config_.ping_interval = 1000s;  // no pings in the way
  auto ch = open_link("m0", true);
  for (int i = 1; i < 64; ++i) send("alice@a.test", "bob@r.test", "m" + std::to_string(i));
  EXPECT_FALSE(ch->closed());  // 64 unacknowledged: at the bound, not over it
  send("alice@a.test", "bob@r.test", "m64");
  EXPECT_FALSE(ch->closed());  // over it: the peer has write_stall_timeout to acknowledge
  advance(config_.write_stall_timeout);
  send("alice@a.test", "bob@r.test", "m65");
  EXPECT_TRUE(ch->closed());
  EXPECT_EQ(metric("waddle_s2s_write_limit_total{domain=\"r.test\",direction=\"out\",reason="
                   "\"unacked\"}"),
            "1");
  EXPECT_EQ(metric("waddle_s2s_errors_total{domain=\"r.test\",kind=\"timeout\"}"), "1");
  // Not at once: a failed link is a failed attempt, retried after the policy's delay.
  ASSERT_EQ(connector_.calls.size(), 1u);
  advance(1s);
  ASSERT_EQ(connector_.calls.size(), 2u);
  // (The next stream has no stream management: with it, 65 unacknowledged at once would be
  // over the bound again.)
  auto next = connector_.succeed(1, true, "stream-2", false);
  run();
  EXPECT_FALSE(next->closed());
  EXPECT_EQ(bodies(*next), numbered(0, 66));  // all again, in order
  EXPECT_EQ(metric("waddle_s2s_resent_total{domain=\"r.test\"}"), "66");
  EXPECT_TRUE(inbox_.stanzas.empty());
}

TEST_F(PoolLimitsTest, NeverAcknowledgedOnAnyLink_BouncedWhenTheRetriesRunOut) {
  config_.max_unacked = 64;
  config_.write_stall_timeout = 0s;  // over the bound, the link is replaced at once
  auto ch = open_link("m0", true);
  for (int i = 1; i <= 64; ++i) send("alice@a.test", "bob@r.test", "m" + std::to_string(i));
  ASSERT_TRUE(ch->closed());
  // max_retries = 2: two more links, each written everything at once and failing at once.
  for (std::size_t attempt = 1; attempt <= 2; ++attempt) {
    advance(10s);
    ASSERT_EQ(connector_.calls.size(), attempt + 1);
    auto next = connector_.succeed(attempt, true, "stream-" + std::to_string(attempt + 1), true);
    run();
    EXPECT_TRUE(next->closed());
    EXPECT_TRUE(inbox_.stanzas.empty() || attempt == 2);
  }
  advance(10s);
  EXPECT_EQ(connector_.calls.size(), 3u);
  ASSERT_EQ(inbox_.stanzas.size(), 65u);  // sent = bounced: none lost
  for (const auto& bounce : inbox_.stanzas)
    EXPECT_EQ(xml::stanza_error_condition(bounce), StanzaError::kRemoteServerTimeout);
  EXPECT_EQ(metric("waddle_s2s_write_limit_total{domain=\"r.test\",direction=\"out\",reason="
                   "\"unacked\"}"),
            "3");
}

TEST_F(PoolLimitsTest, NeverAcknowledged_TheByteBoundTripsFirstForLargeStanzas) {
  config_.max_unacked_bytes = 64 * 1024;
  config_.write_stall_timeout = 0s;  // over the bound, the link is replaced at once
  auto ch = open_link(std::string(20 * 1024, 'x'), true);
  for (int i = 0; i < 3 && !ch->closed(); ++i)
    send("alice@a.test", "bob@r.test", std::string(20 * 1024, 'y'));
  EXPECT_FALSE(ch->closed());  // four of 20 KiB: just over 64 KiB only with the next
  send("alice@a.test", "bob@r.test", "small");
  EXPECT_TRUE(ch->closed());
  EXPECT_EQ(metric("waddle_s2s_write_limit_total{domain=\"r.test\",direction=\"out\",reason="
                   "\"unacked\"}"),
            "1");
}

TEST_F(PoolLimitsTest, Acknowledged_NoBoundTrips) {
  config_.max_unacked = 64;
  auto ch = open_link("m0", true);
  for (int i = 1; i < 1000; ++i) {
    send("alice@a.test", "bob@r.test", "m" + std::to_string(i));
    if (i % 50 == 0) {
      ch->push("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(i + 1) + "'/>");
      run();
    }
  }
  EXPECT_FALSE(ch->closed());
  EXPECT_EQ(metric("waddle_s2s_write_limit_total{domain=\"r.test\",direction=\"out\",reason="
                   "\"unacked\"}"),
            "absent");
}

// Without stream management: what the stream never wrote goes out on the next link; what it
// wrote does not.
TEST_F(PoolLimitsTest, StreamStalled_WhatWasNotWrittenGoesOutOnTheNextLink) {
  auto ch = open_link("m0", false);
  ch->written_upto = ch->bytes_sent();  // m0 left; the peer reads nothing more
  send("alice@a.test", "bob@r.test", "m1");
  send("alice@a.test", "bob@r.test", "m2");
  ch->trip("stalled");
  run();
  EXPECT_EQ(metric("waddle_s2s_write_limit_total{domain=\"r.test\",direction=\"out\",reason="
                   "\"stalled\"}"),
            "1");
  advance(1s);
  ASSERT_EQ(connector_.calls.size(), 2u);
  auto next = connector_.succeed(1);
  run();
  EXPECT_EQ(bodies(*next), (std::vector<std::string>{"m1", "m2"}));
  EXPECT_TRUE(inbox_.stanzas.empty());
}

// A stanza given to a stream that has just been dropped (by the bound, before the pool saw
// it end) is not lost either.
TEST_F(PoolLimitsTest, QueueFull_StanzasAfterTheTripGoOutOnTheNextLink) {
  auto ch = open_link("m0", false);
  ch->written_upto = ch->bytes_sent();
  send("alice@a.test", "bob@r.test", "m1");
  ch->limit = "queue_full";  // tripped inside send(): the stream drops the rest, then closes
  send("alice@a.test", "bob@r.test", "m2");
  ch->close();
  run();
  advance(1s);
  ASSERT_EQ(connector_.calls.size(), 2u);
  auto next = connector_.succeed(1);
  run();
  EXPECT_EQ(bodies(*next), (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(metric("waddle_s2s_write_limit_total{domain=\"r.test\",direction=\"out\",reason="
                   "\"queue_full\"}"),
            "1");
}

// A stream that ended for any other reason with stanzas still unwritten sends them again too
// (and it is not a failed attempt: the next link is dialled at once).
TEST_F(PoolLimitsTest, PeerGone_UnwrittenStanzasAreNotLost) {
  auto ch = open_link("m0", false);
  ch->written_upto = ch->bytes_sent();
  send("alice@a.test", "bob@r.test", "m1");
  ch->peer_ends();
  run();
  ASSERT_EQ(connector_.calls.size(), 2u);
  auto next = connector_.succeed(1);
  run();
  EXPECT_EQ(bodies(*next), (std::vector<std::string>{"m1"}));
}

// A room invitation to thousands of unknown domains, say: connection attempts in flight are
// capped (max_connecting), the others start in their turn as attempts end, and one that
// cannot start within connect_timeout fails like a timed-out attempt (retried, then bounced).
TEST_F(PoolLimitsTest, MaxConnecting_AttemptsBeyondItWaitTheirTurn) {
  config_.max_connecting = 2;
  config_.retry.max_retries = 0;
  for (const char* d : {"r1.test", "r2.test", "r3.test", "r4.test"})
    send("alice@a.test", std::string("bob@") + d, d);
  run();
  ASSERT_EQ(connector_.calls.size(), 2u);  // two in flight, two waiting
  connector_.fail(0, Failure::kConnectionRefused, "refused");
  run();
  ASSERT_EQ(connector_.calls.size(), 3u);  // the first to wait starts
  EXPECT_EQ(connector_.calls[2]->request.remote, "r3.test");
  auto ch = connector_.succeed(1);
  run();
  ASSERT_EQ(connector_.calls.size(), 4u);
  EXPECT_EQ(connector_.calls[3]->request.remote, "r4.test");
  // Every stanza was written or bounced (r1.test's attempt was refused).
  EXPECT_EQ(bodies(*ch), (std::vector<std::string>{"r2.test"}));
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  EXPECT_EQ(inbox_.stanzas[0].child_text("body"), "r1.test");
}

TEST_F(PoolLimitsTest, MaxConnecting_AWaitLongerThanConnectTimeoutFails) {
  config_.max_connecting = 1;
  config_.retry.max_retries = 0;
  send("alice@a.test", "bob@r1.test", "1");
  send("alice@a.test", "bob@r2.test", "2");
  run();
  ASSERT_EQ(connector_.calls.size(), 1u);
  advance(config_.connect_timeout);
  // Both ended at the deadline: r1.test's attempt aborted, r2.test's never started.
  EXPECT_EQ(connector_.calls.size(), 1u);
  ASSERT_EQ(inbox_.stanzas.size(), 2u);
  for (const auto& bounce : inbox_.stanzas)
    EXPECT_EQ(xml::stanza_error_condition(bounce), StanzaError::kRemoteServerTimeout);
  const auto& r2 =
      inbox_.stanzas[0].child_text("body") == "2" ? inbox_.stanzas[0] : inbox_.stanzas[1];
  EXPECT_NE(error_text(r2).find("max_connecting"), std::string::npos) << error_text(r2);
  EXPECT_EQ(metric("waddle_s2s_errors_total{domain=\"r2.test\",kind=\"timeout\"}"), "1");
}

TEST_F(PoolLimitsTest, MaxLinks_ALinkBeyondItBouncesResourceConstraint) {
  config_.max_links = 2;
  send("alice@a.test", "bob@r1.test", "1");
  send("alice@a.test", "bob@r2.test", "2");
  send("alice@a.test", "bob@r2.test", "2b");  // an existing link takes more
  EXPECT_TRUE(inbox_.stanzas.empty());
  send("alice@a.test", "bob@r3.test", "3");
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  EXPECT_EQ(xml::stanza_error_condition(inbox_.stanzas[0]), StanzaError::kResourceConstraint);
  EXPECT_EQ(error_text(inbox_.stanzas[0]), "Too many server links are open or opening (max_links)");
  EXPECT_EQ(metric("waddle_s2s_bounced_total{domain=\"r3.test\",condition=\"resource-"
                   "constraint\"}"),
            "1");
  // Once a link has ended (refused, nothing left to send), a new domain gets one.
  connector_.fail(0, Failure::kConnectionRefused, "refused", true);
  run();
  send("alice@a.test", "bob@r3.test", "3b");
  EXPECT_EQ(inbox_.stanzas.size(), 2u);  // r1.test's stanza bounced; 3b is waiting
  EXPECT_EQ(inbox_.stanzas[1].child_text("body"), "1");
}

}  // namespace
}  // namespace waddle::s2s::testing
