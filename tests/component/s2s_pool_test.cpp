// The outbound pool against a fake connector on a hand-advanced clock: the retry schedule and
// the bounce texts, connect_timeout, the queue and connection limits (and holding back the
// sources that can wait), idle close, pings (behind a backlog too), shutdown and policy reload.
#include "router/flow.h"
#include "s2s_pool_fixture.h"

namespace waddle::s2s::testing {
namespace {

using namespace std::chrono_literals;
using core::StanzaError;

TEST_F(PoolTest, ReadyLink_WritesStanzasAndQueuesNone) {
  send("alice@a.test", "bob@r.test", "first");
  ASSERT_EQ(connector_.calls.size(), 1u);
  EXPECT_EQ(connector_.calls[0]->request.local, "a.test");
  EXPECT_EQ(connector_.calls[0]->request.remote, "r.test");
  EXPECT_EQ(metric("waddle_s2s_queue_stanzas{domain=\"r.test\"}"), "1");
  auto ch = connector_.succeed(0);
  run();
  send("alice@a.test", "bob@r.test", "second");
  ASSERT_EQ(ch->sent.size(), 2u);
  EXPECT_NE(ch->sent[0].find("<body>first</body>"), std::string::npos);
  EXPECT_NE(ch->sent[1].find("<body>second</body>"), std::string::npos);
  EXPECT_EQ(metric("waddle_s2s_queue_stanzas{domain=\"r.test\"}"), "0");
  EXPECT_EQ(metric("waddle_s2s_stanzas_sent_total{domain=\"r.test\"}"), "2");
  EXPECT_EQ(connector_.calls.size(), 1u);
  EXPECT_TRUE(inbox_.stanzas.empty());
}

TEST_F(PoolTest, RetrySchedule_ThenBouncesNotFoundWithTheCause) {
  const std::string cause = "cannot connect to r.test (127.0.0.1 port 5269): Connection refused";
  send("alice@a.test", "bob@r.test");
  connector_.fail(0, Failure::kConnectionRefused, cause);
  run();
  // Retry 1 after initial_delay (1 s), retry 2 after twice that.
  advance(999ms);
  EXPECT_EQ(connector_.calls.size(), 1u);
  advance(1ms);
  ASSERT_EQ(connector_.calls.size(), 2u);
  connector_.fail(1, Failure::kConnectionRefused, cause);
  run();
  advance(1999ms);
  EXPECT_EQ(connector_.calls.size(), 2u);
  EXPECT_TRUE(inbox_.stanzas.empty());
  advance(1ms);
  ASSERT_EQ(connector_.calls.size(), 3u);
  connector_.fail(2, Failure::kConnectionRefused, cause);
  run();
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  const xml::Element& bounce = inbox_.stanzas[0];
  EXPECT_EQ(bounce.attr("to"), "alice@a.test");
  EXPECT_EQ(bounce.attr("type"), "error");
  EXPECT_EQ(xml::stanza_error_condition(bounce), StanzaError::kRemoteServerNotFound);
  EXPECT_EQ(error_text(bounce), cause);
  EXPECT_EQ(metric("waddle_s2s_errors_total{domain=\"r.test\",kind=\"connection_refused\"}"), "3");
  EXPECT_EQ(
      metric("waddle_s2s_bounced_total{domain=\"r.test\",condition=\"remote-server-not-found\"}"),
      "1");
  EXPECT_EQ(live_.size(), 0u);
}

TEST_F(PoolTest, DefinitiveRefusal_BouncesWithoutRetry) {
  send("alice@a.test", "bob@r.test");
  connector_.fail(0, Failure::kDialback, "r.test refused our dialback key (not-authorized)", true);
  run();
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  EXPECT_EQ(error_text(inbox_.stanzas[0]), "r.test refused our dialback key (not-authorized)");
  advance(60s);
  EXPECT_EQ(connector_.calls.size(), 1u);
}

TEST_F(PoolTest, ConnectTimeout_AbortsAttemptAndBouncesTimeoutWithTheCause) {
  config_.retry.max_retries = 0;
  send("alice@a.test", "bob@r.test");
  advance(9999ms);
  EXPECT_FALSE(connector_.calls[0]->aborted);
  advance(1ms);
  EXPECT_TRUE(connector_.calls[0]->aborted);
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  EXPECT_EQ(xml::stanza_error_condition(inbox_.stanzas[0]), StanzaError::kRemoteServerTimeout);
  EXPECT_EQ(error_text(inbox_.stanzas[0]),
            "timed out after " + core::format_duration(10s) +
                " connecting to r.test (cannot connect to r.test (127.0.0.1 port 5269): "
                "Operation canceled)");
  EXPECT_EQ(metric("waddle_s2s_errors_total{domain=\"r.test\",kind=\"timeout\"}"), "1");
}

TEST_F(PoolTest, QueueLimit_BouncesResourceConstraint) {
  config_.queue_size = 2;
  send("alice@a.test", "bob@r.test", "1");
  send("alice@a.test", "bob@r.test", "2");
  EXPECT_TRUE(inbox_.stanzas.empty());
  send("alice@a.test", "bob@r.test", "3");
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  EXPECT_EQ(xml::stanza_error_condition(inbox_.stanzas[0]), StanzaError::kResourceConstraint);
  EXPECT_EQ(error_text(inbox_.stanzas[0]), "Too many stanzas are waiting for r.test");
  EXPECT_EQ(inbox_.stanzas[0].child_text("body"), "3");
  EXPECT_EQ(metric("waddle_s2s_bounced_total{domain=\"r.test\",condition=\"resource-"
                   "constraint\"}"),
            "1");
  auto ch = connector_.succeed(0);
  run();
  EXPECT_EQ(ch->sent.size(), 2u);
}

// A stanza from a source that can wait (an inbound server stream) is kept beyond queue_size,
// and the source waits until the queue has drained.
TEST_F(PoolTest, QueueLimit_HoldsBackASourceThatCanWaitInsteadOfBouncing) {
  config_.queue_size = 2;
  int resumed = 0;
  auto source = std::make_shared<router::Flow>([&] { ++resumed; });
  {
    router::Flow::Scope routing(*source);
    for (int i = 1; i <= 5; ++i) send("alice@a.test", "bob@r.test", std::to_string(i));
  }
  EXPECT_TRUE(inbox_.stanzas.empty());
  EXPECT_TRUE(source->paused());
  EXPECT_EQ(metric("waddle_s2s_queue_stanzas{domain=\"r.test\"}"), "5");
  send("alice@a.test", "bob@r.test", "local");  // a source that cannot wait: bounced
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  EXPECT_EQ(inbox_.stanzas[0].child_text("body"), "local");
  auto ch = connector_.succeed(0);
  run();
  ASSERT_EQ(ch->sent.size(), 5u);
  for (int i = 1; i <= 5; ++i)
    EXPECT_NE(ch->sent[i - 1].find("<body>" + std::to_string(i) + "</body>"), std::string::npos);
  EXPECT_FALSE(source->paused());
  EXPECT_EQ(resumed, 1);
}

// Beyond ten times queue_size even a source that waits is refused; and when the link gives
// up, its queue bounces and the source goes on.
TEST_F(PoolTest, QueueLimit_HardLimitAndAFailedLinkReleaseTheSource) {
  config_.queue_size = 2;
  config_.retry.max_retries = 0;
  int resumed = 0;
  auto source = std::make_shared<router::Flow>([&] { ++resumed; });
  {
    router::Flow::Scope routing(*source);
    for (int i = 1; i <= 21; ++i) send("alice@a.test", "bob@r.test", std::to_string(i));
  }
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  EXPECT_EQ(inbox_.stanzas[0].child_text("body"), "21");
  EXPECT_EQ(xml::stanza_error_condition(inbox_.stanzas[0]), StanzaError::kResourceConstraint);
  EXPECT_TRUE(source->paused());
  connector_.fail(0, Failure::kConnectionRefused, "connection refused");
  run();
  EXPECT_EQ(inbox_.stanzas.size(), 21u);  // sent = delivered (none) + bounced
  EXPECT_FALSE(source->paused());
  EXPECT_EQ(resumed, 1);
}

TEST_F(PoolTest, MaxConnectionsPerDomain_EveryLocalDomainMayHaveAStream) {
  // Three local domains (a, b, c.test) and a cap of one: each pair gets a link (the later
  // ones wait for the first stream, to share it or open their own), and no stanza bounces.
  config_.max_connections_per_domain = 1;
  send("alice@a.test", "bob@r.test");
  send("carol@b.test", "bob@r.test");
  send("erin@c.test", "bob@r.test");
  run();
  EXPECT_TRUE(inbox_.stanzas.empty());
  // Another remote domain is not affected.
  send("carol@b.test", "dave@s.test");
  EXPECT_TRUE(inbox_.stanzas.empty());
}

TEST_F(PoolTest, MaxConnectionsPerDomain_MultiplexedPairsCountOnce) {
  config_.max_connections_per_domain = 2;
  send("alice@a.test", "bob@r.test");
  auto ch = connector_.succeed(0);
  run();
  send("carol@b.test", "bob@r.test");
  answer(*ch, "b.test", "valid");
  // Two pairs on one stream: a third local domain may still open a stream.
  send("erin@c.test", "bob@r.test");
  EXPECT_TRUE(inbox_.stanzas.empty());
  EXPECT_TRUE(ch->sent_contains("<db:result from='c.test' to='r.test'>"));
}

TEST_F(PoolTest, IdleLink_ClosedAfterIdleTimeout) {
  config_.ping_interval = 1000s;  // no pings in the way
  send("alice@a.test", "bob@r.test");
  auto ch = connector_.succeed(0);
  run();
  advance(299s);
  EXPECT_FALSE(ch->closed());
  advance(1s);
  EXPECT_TRUE(ch->closed());
  EXPECT_EQ(ch->sent.back(), "</stream:stream>");
  EXPECT_EQ(live_.size(), 0u);
  EXPECT_EQ(
      metric(
          "waddle_s2s_streams_closed_total{domain=\"r.test\",direction=\"out\",reason=\"idle\"}"),
      "1");
  // The next stanza opens a new stream.
  send("alice@a.test", "bob@r.test");
  EXPECT_EQ(connector_.calls.size(), 2u);
}

TEST_F(PoolTest, UnansweredPing_ReplacesTheLink) {
  send("alice@a.test", "bob@r.test");
  auto ch = connector_.succeed(0);
  run();
  advance(60s);
  ASSERT_TRUE(ch->sent_contains("<ping xmlns='urn:xmpp:ping'/>"));
  EXPECT_TRUE(ch->sent_contains(" "));
  EXPECT_FALSE(ch->closed());
  advance(60s);
  EXPECT_TRUE(ch->closed());
  EXPECT_EQ(metric("waddle_s2s_errors_total{domain=\"r.test\",kind=\"timeout\"}"), "1");
  EXPECT_EQ(metric("waddle_s2s_streams_closed_total{domain=\"r.test\",direction=\"out\",reason="
                   "\"ping_timeout\"}"),
            "1");
  send("alice@a.test", "bob@r.test");
  ASSERT_EQ(connector_.calls.size(), 2u);
  auto replacement = connector_.succeed(1);
  run();
  EXPECT_TRUE(replacement->sent_contains("<message"));
}

// A ping written behind a backlog the peer is slow to read is only waited for once it has
// been written.
TEST_F(PoolTest, PingBehindABacklog_IsWaitedForOnceWritten) {
  send("alice@a.test", "bob@r.test");
  auto ch = connector_.succeed(0);
  run();
  ch->written_upto = ch->bytes_sent();  // the backlog leaves slowly, the ping behind it
  advance(60s);
  ASSERT_TRUE(ch->sent_contains("<ping xmlns='urn:xmpp:ping'/>"));
  for (int i = 0; i < 4; ++i) {
    *ch->written_upto += 1;
    advance(30s);
  }
  EXPECT_FALSE(ch->closed());
  ch->written_upto.reset();  // the backlog has been written, the ping with it
  advance(1s);               // (it is seen written within a quarter of a second)
  advance(58s);
  EXPECT_FALSE(ch->closed());
  advance(2s);
  EXPECT_TRUE(ch->closed());
  EXPECT_EQ(metric("waddle_s2s_streams_closed_total{domain=\"r.test\",direction=\"out\",reason="
                   "\"ping_timeout\"}"),
            "1");
}

// A backlog that does not move at all (the peer has stopped reading, or the connection is
// gone) for a minute (at least ping_interval) is a dead link.
TEST_F(PoolTest, PingBehindAStalledBacklog_ReplacesTheLink) {
  send("alice@a.test", "bob@r.test");
  auto ch = connector_.succeed(0);
  run();
  ch->written_upto = ch->bytes_sent();
  advance(60s);
  ASSERT_TRUE(ch->sent_contains("<ping xmlns='urn:xmpp:ping'/>"));
  // In steps the watchdog keeps up with (a server too busy to look does not blame the peer).
  for (int i = 0; i < 59 * 4; ++i) advance(250ms);
  EXPECT_FALSE(ch->closed());
  for (int i = 0; i < 2 * 4; ++i) advance(250ms);
  EXPECT_TRUE(ch->closed());
  EXPECT_EQ(metric("waddle_s2s_streams_closed_total{domain=\"r.test\",direction=\"out\",reason="
                   "\"ping_timeout\"}"),
            "1");
}

// Anything read from the peer after the ping (here its acknowledgement requests) shows the
// link is alive while the answer to the ping is still on its way.
TEST_F(PoolTest, UnansweredPing_AnythingReadKeepsTheLink) {
  send("alice@a.test", "bob@r.test");
  auto ch = connector_.succeed(0);
  run();
  advance(60s);
  ASSERT_TRUE(ch->sent_contains("<ping xmlns='urn:xmpp:ping'/>"));
  advance(50s);
  ch->push("<r xmlns='urn:xmpp:sm:3'/>");
  run();
  advance(50s);
  EXPECT_FALSE(ch->closed());
  // So does a stanza from the peer on its own stream to us (the answer may be queued behind
  // what it is sending us there).
  xml::Element m("message", "jabber:server");
  m.set_attr("from", "bob@r.test").set_attr("to", "alice@a.test");
  EXPECT_FALSE(pool().from_peer(m, "a.test", "r.test"));
  advance(50s);
  EXPECT_FALSE(ch->closed());
  advance(10s);
  EXPECT_TRUE(ch->closed());
}

TEST_F(PoolTest, AnsweredPing_KeepsTheLink) {
  send("alice@a.test", "bob@r.test");
  auto ch = connector_.succeed(0);
  run();
  advance(60s);
  std::string ping;
  for (const auto& s : ch->sent)
    if (s.find("<ping") != std::string::npos) ping = s;
  ASSERT_FALSE(ping.empty());
  auto iq = xml::parse_element(ping);
  ASSERT_TRUE(iq);
  xml::Element reply("iq", "jabber:server");
  reply.set_attr("type", "result").set_attr("id", iq->attr("id"));
  reply.set_attr("from", "r.test").set_attr("to", "a.test");
  EXPECT_TRUE(pool().from_peer(reply, "a.test", "r.test"));
  advance(60s);
  EXPECT_FALSE(ch->closed());
  EXPECT_EQ(metric("waddle_s2s_errors_total{domain=\"r.test\",kind=\"timeout\"}"), "absent");
}

TEST_F(PoolTest, Shutdown_BouncesQueuedStanzasAndAbortsTheAttempt) {
  send("alice@a.test", "bob@r.test", "1");
  send("alice@a.test", "bob@r.test", "2");
  send("carol@b.test", "dave@s.test", "3");
  auto ch = connector_.succeed(1);  // s.test is up
  run();
  pool().stop();
  run();
  ASSERT_EQ(inbox_.stanzas.size(), 2u);
  for (const auto& bounce : inbox_.stanzas) {
    EXPECT_EQ(xml::stanza_error_condition(bounce), StanzaError::kRemoteServerNotFound);
    EXPECT_EQ(error_text(bounce), "Server is shutting down");
  }
  EXPECT_TRUE(connector_.calls[0]->aborted);
  EXPECT_EQ(ch->sent.back(), "</stream:stream>");
  EXPECT_TRUE(ch->closed());
  EXPECT_EQ(live_.size(), 0u);
  EXPECT_EQ(metric("waddle_s2s_streams_closed_total{domain=\"s.test\",direction=\"out\",reason="
                   "\"shutdown\"}"),
            "1");
  // After stop, stanzas bounce at once.
  send("alice@a.test", "bob@r.test", "late");
  ASSERT_EQ(inbox_.stanzas.size(), 3u);
  EXPECT_EQ(error_text(inbox_.stanzas[2]), "Server is shutting down");
  EXPECT_EQ(connector_.calls.size(), 2u);
}

TEST_F(PoolTest, PolicyReload_ClosesLinksNoLongerAllowed) {
  send("alice@a.test", "bob@r.test");
  auto r = connector_.succeed(0);
  send("alice@a.test", "bob@s.test");
  auto s = connector_.succeed(1);
  run();
  core::S2sConfig fresh = config_;
  fresh.policy = "blocklist";
  fresh.blocked_domains = {"r.test"};
  admission_->reload(fresh);
  pool().close_disallowed();
  run();
  EXPECT_TRUE(r->closed());
  EXPECT_TRUE(r->sent_contains("<policy-violation"));
  EXPECT_FALSE(s->closed());
  EXPECT_EQ(
      metric(
          "waddle_s2s_streams_closed_total{domain=\"r.test\",direction=\"out\",reason=\"policy\"}"),
      "1");
}

}  // namespace
}  // namespace waddle::s2s::testing
