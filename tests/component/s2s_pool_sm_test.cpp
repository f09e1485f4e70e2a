// Stream management (XEP-0198) on the pool's outbound streams, against a fake peer on a
// hand-advanced clock: <enable/> when offered, when <r/> goes out, what <a/> releases, that
// what the peer did not acknowledge goes out again on the next link (in order, before later
// stanzas) or bounces when the retries run out, and the error for an impossible 'h'.
#include "s2s_pool_fixture.h"

namespace waddle::s2s::testing {
namespace {

using namespace std::chrono_literals;
using core::StanzaError;

std::size_t count(const FakeChannel& ch, std::string_view text) {
  std::size_t n = 0;
  for (const auto& s : ch.sent) n += s.find(text) != std::string::npos ? 1 : 0;
  return n;
}

class PoolSmTest : public PoolTest {
 protected:
  // A link to r.test whose peer offers stream management.
  std::shared_ptr<FakeChannel> open_sm_link(const std::string& first_body) {
    send("alice@a.test", "bob@r.test", first_body);
    auto ch = connector_.succeed(connector_.calls.size() - 1, true, "stream-1", true);
    run();
    return ch;
  }
};

TEST_F(PoolSmTest, EnablesWhenOfferedBeforeTheFirstStanza) {
  auto ch = open_sm_link("m1");
  ASSERT_GE(ch->sent.size(), 2u);
  EXPECT_EQ(ch->sent[0], "<enable xmlns='urn:xmpp:sm:3'/>");
  EXPECT_NE(ch->sent[1].find("<body>m1</body>"), std::string::npos);
  EXPECT_EQ(metric("waddle_s2s_stream_management_total{domain=\"r.test\",direction=\"out\"}"), "1");
  EXPECT_EQ(metric("waddle_s2s_unacked_stanzas{domain=\"r.test\"}"), "1");
}

TEST_F(PoolSmTest, NotOffered_NothingIsKept) {
  send("alice@a.test", "bob@r.test", "m1");
  auto ch = connector_.succeed(0);
  run();
  EXPECT_FALSE(ch->sent_contains("urn:xmpp:sm:3"));
  advance(1s);
  EXPECT_EQ(count(*ch, "<r "), 0u);
  EXPECT_EQ(metric("waddle_s2s_unacked_stanzas{domain=\"r.test\"}"), "absent");
}

TEST_F(PoolSmTest, AsksAfterAShortDelayOrAtOnceAfterABatch) {
  auto ch = open_sm_link("m1");
  advance(249ms);
  EXPECT_EQ(count(*ch, "<r xmlns='urn:xmpp:sm:3'/>"), 0u);
  advance(1ms);
  EXPECT_EQ(count(*ch, "<r xmlns='urn:xmpp:sm:3'/>"), 1u);
  ch->push("<a xmlns='urn:xmpp:sm:3' h='1'/>");
  run();
  EXPECT_EQ(metric("waddle_s2s_unacked_stanzas{domain=\"r.test\"}"), "0");
  // A batch: the 64th stanza not asked about asks at once, without waiting.
  for (int i = 0; i < 64; ++i) send("alice@a.test", "bob@r.test", "b" + std::to_string(i));
  EXPECT_EQ(count(*ch, "<r xmlns='urn:xmpp:sm:3'/>"), 2u);
  // One request outstanding at a time: more stanzas do not ask again before the answer.
  send("alice@a.test", "bob@r.test", "late");
  advance(1s);
  EXPECT_EQ(count(*ch, "<r xmlns='urn:xmpp:sm:3'/>"), 2u);
  ch->push("<a xmlns='urn:xmpp:sm:3' h='65'/>");  // covers the batch, not "late"
  run();
  advance(250ms);
  EXPECT_EQ(count(*ch, "<r xmlns='urn:xmpp:sm:3'/>"), 3u);
}

TEST_F(PoolSmTest, UnacknowledgedStanzasGoOutAgainOnTheNextLinkInOrder) {
  auto ch = open_sm_link("m1");
  send("alice@a.test", "bob@r.test", "m2");
  send("alice@a.test", "bob@r.test", "m3");
  ch->push("<a xmlns='urn:xmpp:sm:3' h='1'/>");
  run();
  ch->peer_ends();  // the peer went away with m2 and m3 unacknowledged
  run();
  send("alice@a.test", "bob@r.test", "m4");  // written after the stream ended
  ASSERT_EQ(connector_.calls.size(), 2u);
  EXPECT_EQ(metric("waddle_s2s_queue_stanzas{domain=\"r.test\"}"), "3");
  auto next = connector_.succeed(1, true, "stream-2", true);
  run();
  EXPECT_EQ(bodies(*next), (std::vector<std::string>{"m2", "m3", "m4"}));
  EXPECT_EQ(metric("waddle_s2s_resent_total{domain=\"r.test\"}"), "2");
  EXPECT_EQ(metric("waddle_s2s_unacked_stanzas{domain=\"r.test\"}"), "3");
  EXPECT_TRUE(inbox_.stanzas.empty());
}

TEST_F(PoolSmTest, UnacknowledgedStanzasBounceWhenTheRetriesRunOut) {
  auto ch = open_sm_link("m1");
  send("alice@a.test", "bob@r.test", "m2");
  ch->peer_ends();
  run();
  const std::string cause = "cannot connect to r.test (127.0.0.1 port 5269): Connection refused";
  for (std::size_t attempt = 1; attempt <= 3; ++attempt) {  // max_retries = 2: three attempts
    ASSERT_EQ(connector_.calls.size(), attempt + 1);
    EXPECT_TRUE(inbox_.stanzas.empty());
    connector_.fail(attempt, Failure::kConnectionRefused, cause);
    run();
    advance(10s);
  }
  ASSERT_EQ(inbox_.stanzas.size(), 2u);  // sent = bounced: none lost
  for (const auto& bounce : inbox_.stanzas) {
    EXPECT_EQ(xml::stanza_error_condition(bounce), StanzaError::kRemoteServerNotFound);
    EXPECT_EQ(error_text(bounce), cause);
  }
}

TEST_F(PoolSmTest, AnAcknowledgementOfMoreThanWasSentEndsTheStream) {
  auto ch = open_sm_link("m1");
  ch->push("<a xmlns='urn:xmpp:sm:3' h='5'/>");
  run();
  EXPECT_TRUE(
      ch->sent_contains("<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                        "<handled-count-too-high xmlns='urn:xmpp:sm:3' h='5' send-count='1'/>"));
  EXPECT_TRUE(ch->closed());
  // m1 was not acknowledged: it goes out again on the next link.
  ASSERT_EQ(connector_.calls.size(), 2u);
  auto next = connector_.succeed(1, true, "stream-2", true);
  run();
  EXPECT_EQ(bodies(*next), (std::vector<std::string>{"m1"}));
}

TEST_F(PoolSmTest, RefusedWithFailed_CarriesOnWithoutAcknowledgements) {
  auto ch = open_sm_link("m1");
  ch->push(
      "<failed xmlns='urn:xmpp:sm:3'><unexpected-request "
      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
  run();
  send("alice@a.test", "bob@r.test", "m2");
  advance(1s);
  EXPECT_EQ(count(*ch, "<r xmlns='urn:xmpp:sm:3'/>"), 0u);
  EXPECT_EQ(metric("waddle_s2s_unacked_stanzas{domain=\"r.test\"}"), "0");
  EXPECT_FALSE(ch->closed());
}

TEST_F(PoolSmTest, ShutdownBouncesWhatThePeerDidNotAcknowledge) {
  auto ch = open_sm_link("m1");
  send("alice@a.test", "bob@r.test", "m2");
  ch->push("<a xmlns='urn:xmpp:sm:3' h='1'/>");
  run();
  pool().stop();
  run();
  // A last request and the closing tag; the peer does not answer within the grace period.
  EXPECT_TRUE(ch->sent_contains("<r xmlns='urn:xmpp:sm:3'/>"));
  EXPECT_FALSE(ch->closed());
  EXPECT_TRUE(inbox_.stanzas.empty());
  advance(2s);
  EXPECT_TRUE(ch->closed());
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  EXPECT_EQ(xml::stanza_error_condition(inbox_.stanzas[0]), StanzaError::kRemoteServerNotFound);
  EXPECT_EQ(error_text(inbox_.stanzas[0]), "Server is shutting down");
  EXPECT_NE(inbox_.stanzas[0].str().find("m2"), std::string::npos);
}

// The peer that answers the last request is not bounced anything it acknowledged.
TEST_F(PoolSmTest, Shutdown_ThePeersLastAcknowledgementCounts) {
  auto ch = open_sm_link("m1");
  send("alice@a.test", "bob@r.test", "m2");
  pool().stop();
  run();
  ch->push("<a xmlns='urn:xmpp:sm:3' h='2'/></stream:stream>");
  run();
  EXPECT_TRUE(ch->closed());
  EXPECT_TRUE(inbox_.stanzas.empty());
}

// A domain the policy no longer allows: the link closes with policy-violation (after a last
// request), and what it did not acknowledge bounces instead of going out again.
TEST_F(PoolSmTest, PolicyClose_UnacknowledgedBounceWithPolicyViolation) {
  auto ch = open_sm_link("m1");
  config_.policy = "blocklist";
  config_.blocked_domains = {"r.test"};
  admission_->reload(config_);
  pool().close_disallowed();
  run();
  EXPECT_TRUE(ch->sent_contains("<policy-violation"));
  advance(2s);
  ASSERT_EQ(inbox_.stanzas.size(), 1u);
  EXPECT_EQ(xml::stanza_error_condition(inbox_.stanzas[0]), StanzaError::kPolicyViolation);
  EXPECT_EQ(connector_.calls.size(), 1u);  // no new link to a domain no longer allowed
}

// The peer counts the watchdog's XEP-0199 ping among the stanzas it acknowledges: so must we,
// or its next <a/> looks like more than was sent and the link is torn down.
TEST_F(PoolSmTest, ThePingOfAQuietLinkCountsAmongTheAcknowledgedStanzas) {
  auto ch = open_sm_link("m1");
  ch->push("<a xmlns='urn:xmpp:sm:3' h='1'/>");
  run();
  advance(60s);  // ping_interval without traffic from the peer
  ASSERT_TRUE(ch->sent_contains("urn:xmpp:ping"));
  ch->push("<a xmlns='urn:xmpp:sm:3' h='2'/>");
  run();
  EXPECT_FALSE(ch->closed());
  EXPECT_FALSE(ch->sent_contains("handled-count-too-high"));
  EXPECT_EQ(metric("waddle_s2s_unacked_stanzas{domain=\"r.test\"}"), "0");
}

}  // namespace
}  // namespace waddle::s2s::testing
