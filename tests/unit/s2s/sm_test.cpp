// Stream management on server links (XEP-0198), the logic only: what the sending side keeps
// and when it asks, what an <a h=…/> releases (modulo 2^32), and that the receiving side
// never acknowledges a stanza whose handling is still running.
#include "s2s/sm.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "s2s/policy.h"
#include "s2s/wire.h"
#include "xml/element.h"

namespace waddle::s2s {
namespace {

std::string message(int n) {
  xml::Element m("message", "jabber:server");
  m.set_attr("id", std::to_string(n));
  return xml::serialize_stanza(m, "jabber:server");
}

TEST(SmSender, KeepsNothingUntilEnabled) {
  SmSender sm;
  EXPECT_EQ(sm.sent(message(1)), SmSender::Next::kNothing);
  EXPECT_EQ(sm.unacked(), 0u);
  EXPECT_TRUE(sm.take_unacked().empty());
}

TEST(SmSender, PlansARequestForTheFirstStanzaAndAsksAtOnceAfterABatch) {
  SmSender sm;
  sm.enable();
  EXPECT_EQ(sm.sent(message(1)), SmSender::Next::kPlan);
  EXPECT_TRUE(sm.request_due());
  for (std::size_t i = 2; i < SmSender::kRequestEvery; ++i)
    EXPECT_EQ(sm.sent(message(static_cast<int>(i))), SmSender::Next::kNothing);
  EXPECT_EQ(sm.sent(message(64)), SmSender::Next::kRequest);
  sm.requested();
  EXPECT_FALSE(sm.request_due());  // no timed request while one is outstanding
  for (std::size_t i = 65; i < 2 * SmSender::kRequestEvery; ++i)
    EXPECT_EQ(sm.sent(message(static_cast<int>(i))), SmSender::Next::kNothing);
  // But another batch is asked about at once, the first request still unanswered.
  EXPECT_EQ(sm.sent(message(128)), SmSender::Next::kRequest);
  sm.requested();
  EXPECT_EQ(sm.unacked(), 128u);
  EXPECT_FALSE(sm.acked(64));  // the answer to the first: the second is still outstanding
  EXPECT_EQ(sm.sent(message(129)), SmSender::Next::kNothing);
  EXPECT_FALSE(sm.request_due());
  EXPECT_FALSE(sm.acked(128));
  EXPECT_TRUE(sm.request_due());  // the last answered: what follows is asked about later
  EXPECT_EQ(sm.unacked(), 1u);
}

TEST(SmSender, AnAcknowledgementReleasesTheOldestStanzas) {
  SmSender sm;
  sm.enable();
  for (int i = 1; i <= 5; ++i) sm.sent(message(i));
  sm.requested();
  EXPECT_FALSE(sm.acked(3));
  EXPECT_EQ(sm.unacked(), 2u);
  EXPECT_FALSE(sm.request_due());  // the two left were covered by the request
  sm.sent(message(6));
  EXPECT_FALSE(sm.request_due());  // an answer covering the request is still to come
  auto rest = sm.take_unacked();
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0], message(4));
  EXPECT_EQ(rest[2], message(6));
}

TEST(SmSender, TheAnswerToTheLastRequestAllowsTheNextTimedOne) {
  SmSender sm;
  sm.enable();
  for (int i = 1; i <= 5; ++i) sm.sent(message(i));
  sm.requested();
  EXPECT_FALSE(sm.acked(3));
  sm.sent(message(6));
  EXPECT_FALSE(sm.request_due());
  EXPECT_FALSE(sm.acked(5));
  EXPECT_TRUE(sm.request_due());
  EXPECT_EQ(sm.unacked(), 1u);
}

TEST(SmSender, AnAcknowledgementOfMoreThanWasSentIsAnError) {
  SmSender sm;
  sm.enable();
  sm.sent(message(1));
  sm.sent(message(2));
  auto error = sm.acked(3);
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("only 2"), std::string::npos);
  EXPECT_EQ(sm.unacked(), 2u);  // nothing released
  EXPECT_FALSE(sm.acked(2));    // the same 'h' twice is fine
  EXPECT_FALSE(sm.acked(2));
  EXPECT_EQ(sm.unacked(), 0u);
}

TEST(SmSender, ComparesHModulo2To32) {
  SmSender sm;
  sm.enable();
  for (int i = 0; i < 3; ++i) sm.sent(message(i));
  // 2^32 - 1 is "one less than zero": far more than the 3 sent, not a small number.
  EXPECT_TRUE(sm.acked(std::numeric_limits<std::uint32_t>::max()));
  EXPECT_FALSE(sm.acked(3));
  EXPECT_EQ(sm.unacked(), 0u);
}

TEST(SmSender, FailedForgetsWhatWasKept) {
  SmSender sm;
  sm.enable();
  sm.sent(message(1));
  sm.disable();
  EXPECT_FALSE(sm.enabled());
  EXPECT_TRUE(sm.take_unacked().empty());
  EXPECT_EQ(sm.sent(message(2)), SmSender::Next::kNothing);
}

TEST(SmReceiver, CountsOnlyOnceEnabled) {
  SmReceiver sm;
  EXPECT_FALSE(sm.scope());
  sm.enable();
  { auto s = sm.scope(); }
  { auto s = sm.scope(); }
  EXPECT_EQ(sm.request(), 2u);
}

TEST(SmReceiver, DoesNotAcknowledgeAStanzaWhoseHandlingIsStillRunning) {
  SmReceiver sm;
  sm.enable();
  int progress = 0;
  sm.handling().on_progress([&] { ++progress; });
  std::shared_ptr<void> storing;  // e.g. an offline store on the storage thread
  { auto s = sm.scope(); }        // 1: delivered at once
  {
    auto s = sm.scope();  // 2: its handler continues later
    storing = router::Handling::hold();
    ASSERT_TRUE(storing);
  }
  { auto s = sm.scope(); }  // 3: delivered at once
  EXPECT_EQ(sm.handled(), 1u);
  EXPECT_FALSE(sm.request());  // an <r/> now cannot be answered with 3
  EXPECT_FALSE(sm.answer_due());
  storing.reset();
  EXPECT_EQ(progress, 1);
  EXPECT_EQ(sm.handled(), 3u);
  EXPECT_EQ(sm.answer_due(), 3u);
  EXPECT_FALSE(sm.answer_due());  // answered once
}

TEST(SmReceiver, HoldOutsideAScopeIsEmpty) {
  EXPECT_FALSE(router::Handling::hold());
}

TEST(SmWire, ReadsH) {
  auto a = [](std::string h) {
    xml::Element e("a", "urn:xmpp:sm:3");
    if (!h.empty()) e.set_attr("h", h);
    return wire::sm_h(e);
  };
  EXPECT_EQ(a("0"), 0u);
  EXPECT_EQ(a("4294967295"), 4294967295u);
  EXPECT_FALSE(a("4294967296"));
  EXPECT_FALSE(a("-1"));
  EXPECT_FALSE(a("12a"));
  EXPECT_FALSE(a(""));
  EXPECT_EQ(wire::sm_answer(7), "<a xmlns='urn:xmpp:sm:3' h='7'/>");
  EXPECT_EQ(wire::sm_enable(), "<enable xmlns='urn:xmpp:sm:3'/>");
}

TEST(RetryJitter, StaysWithinTheFraction) {
  using std::chrono::milliseconds;
  EXPECT_EQ(with_jitter(milliseconds(1000), 0.2, 0.0), milliseconds(800));
  EXPECT_EQ(with_jitter(milliseconds(1000), 0.2, 0.5), milliseconds(1000));
  EXPECT_EQ(with_jitter(milliseconds(1000), 0.2, 0.999999), milliseconds(1200));
  EXPECT_EQ(with_jitter(milliseconds(1000), 0.2, 7.0), milliseconds(1200));  // clamped
  EXPECT_EQ(with_jitter(milliseconds(1000), 0.0, 0.9), milliseconds(1000));  // off
}

}  // namespace
}  // namespace waddle::s2s
