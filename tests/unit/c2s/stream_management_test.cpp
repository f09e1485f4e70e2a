#include "c2s/logic/stream_management.h"

#include <gtest/gtest.h>

namespace waddle::c2s {
namespace {

StreamManagement::Unacked stanza(const std::string& text, bool keep = true) {
  return {{}, std::make_shared<const std::string>(text), keep};
}

TEST(StreamManagementTest, AcksDropTheOldestAndCountBytes) {
  StreamManagement sm;
  sm.enable("id");
  EXPECT_TRUE(sm.resumable());
  for (const char* s : {"<a/>", "<bb/>", "<ccc/>"}) sm.sent(stanza(s));
  EXPECT_EQ(sm.sent_count(), 3u);
  EXPECT_EQ(sm.unacked_bytes(), 4u + 5u + 6u);
  EXPECT_TRUE(sm.acked(2));
  ASSERT_EQ(sm.unacked_count(), 1u);
  EXPECT_EQ(*sm.unacked().front().bytes, "<ccc/>");
  EXPECT_EQ(sm.unacked_bytes(), 6u);
  EXPECT_TRUE(sm.acked(2));  // the same h again: nothing changes
  EXPECT_EQ(sm.unacked_count(), 1u);
}

TEST(StreamManagementTest, AnAckForMoreThanWasSentIsRefused) {
  StreamManagement sm;
  sm.enable({});
  EXPECT_FALSE(sm.resumable());
  sm.sent(stanza("<a/>"));
  EXPECT_FALSE(sm.acked(2));
  EXPECT_EQ(sm.unacked_count(), 1u);
  EXPECT_TRUE(sm.acked(1));
  EXPECT_FALSE(sm.acked(0));  // backwards is 2^32 - 1 ahead: refused too
}

TEST(StreamManagementTest, OneRequestAtATime) {
  StreamManagement sm;
  EXPECT_FALSE(sm.request_now());  // not enabled
  sm.enable({});
  EXPECT_FALSE(sm.request_now());  // nothing sent
  sm.sent(stanza("<a/>"));
  EXPECT_TRUE(sm.request_now());
  sm.sent(stanza("<b/>"));
  EXPECT_FALSE(sm.request_now());  // the first is outstanding
  EXPECT_TRUE(sm.acked(0));        // an unsolicited ack of nothing does not answer it
  EXPECT_FALSE(sm.request_now());
  EXPECT_TRUE(sm.acked(1));  // answers the request (it covered one stanza)
  EXPECT_TRUE(sm.request_now());
  sm.connection_changed();         // a request on the old connection will not be answered
  EXPECT_FALSE(sm.request_now());  // (nothing new since it)
  sm.sent(stanza("<c/>"));
  EXPECT_TRUE(sm.request_now());
}

TEST(StreamManagementTest, TakeUnackedEmptiesTheQueueInOrder) {
  StreamManagement sm;
  sm.enable("id");
  sm.sent(stanza("<a/>", true));
  sm.sent(stanza("<p/>", false));
  auto all = sm.take_unacked();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(all[0].must_not_vanish);
  EXPECT_FALSE(all[1].must_not_vanish);
  EXPECT_EQ(sm.unacked_count(), 0u);
  EXPECT_EQ(sm.unacked_bytes(), 0u);
  EXPECT_EQ(sm.sent_count(), 2u);
}

// unacked_bytes() is always what the kept stanzas weigh: each one's head and bytes.
std::uint64_t weight(const StreamManagement& sm) {
  std::uint64_t sum = 0;
  for (const auto& u : sm.unacked()) sum += u.head.size() + u.bytes->size();
  return sum;
}

TEST(StreamManagementTest, BytesCountTheHeadOfASharedStanzaAndItsSharedBytes) {
  StreamManagement sm;
  sm.enable("id");
  auto shared = std::make_shared<const std::string>(std::string(1000, 'x'));
  sm.sent({"<message to='a@x/1'>", shared, true});  // 20 + 1000
  sm.sent({"<message to='a@x/2'>", shared, true});  // the same buffer counts again
  EXPECT_EQ(sm.unacked_bytes(), 2040u);
  EXPECT_EQ(sm.unacked_bytes(), weight(sm));
  EXPECT_TRUE(sm.acked(1));
  EXPECT_EQ(sm.unacked_bytes(), 1020u);
}

TEST(StreamManagementTest, OverTheStanzaOrTheByteBound) {
  StreamManagement sm;
  sm.enable({});
  using Overflow = StreamManagement::Overflow;
  for (int i = 0; i < 3; ++i) sm.sent(stanza(std::string(100, 'm')));
  EXPECT_EQ(sm.over(3, 300), Overflow::kNone);  // at the bounds is not past them
  sm.sent(stanza(std::string(100, 'm')));
  EXPECT_EQ(sm.over(3, 1000), Overflow::kStanzas);
  EXPECT_EQ(sm.over(10, 399), Overflow::kBytes);
  EXPECT_EQ(sm.over(3, 399), Overflow::kStanzas);  // both: the count is reported
  EXPECT_EQ(sm.over(10, 400), Overflow::kNone);
  EXPECT_TRUE(sm.acked(2));
  EXPECT_EQ(sm.unacked_bytes(), 200u);
  EXPECT_EQ(sm.over(10, 199), Overflow::kBytes);
  EXPECT_EQ(sm.over(10, 200), Overflow::kNone);
}

// Resumption: the new session takes the old one's bookkeeping, the <resume/>'s h drops what
// the client got, the rest is written again (and still counted until acknowledged).
TEST(StreamManagementTest, BytesFollowTheStanzasThroughResumption) {
  StreamManagement old;
  old.enable("id");
  for (const char* s : {"<a/>", "<bb/>", "<ccc/>", "<dddd/>"}) old.sent(stanza(s));
  EXPECT_TRUE(old.acked(1));
  EXPECT_EQ(old.unacked_bytes(), 5u + 6u + 7u);
  StreamManagement resumed = std::move(old);  // Output::take_over
  old = {};
  EXPECT_EQ(old.unacked_bytes(), 0u);
  EXPECT_EQ(old.unacked_count(), 0u);
  resumed.connection_changed();
  EXPECT_TRUE(resumed.acked(2));  // the <resume h='2'/>: <bb/> had arrived
  EXPECT_EQ(resumed.unacked_bytes(), 6u + 7u);
  // Re-sending (Output::resend_unacked) reads the queue and leaves the count alone.
  std::string again;
  for (const auto& u : resumed.unacked()) again += u.head + *u.bytes;
  EXPECT_EQ(again, "<ccc/><dddd/>");
  EXPECT_EQ(resumed.unacked_bytes(), again.size());
  resumed.sent(stanza("<e/>"));
  EXPECT_EQ(resumed.unacked_bytes(), again.size() + 4u);
  EXPECT_EQ(resumed.unacked_bytes(), weight(resumed));
  EXPECT_TRUE(resumed.acked(5));
  EXPECT_EQ(resumed.unacked_bytes(), 0u);
  EXPECT_EQ(resumed.unacked_count(), 0u);
}

// Many acknowledgements of varying stride and stanzas of varying size, after the session
// handed its queue over once (take_unacked): the byte count never drifts.
TEST(StreamManagementTest, BytesStayExactOverManyAcks) {
  StreamManagement sm;
  sm.enable({});
  for (int i = 0; i < 10; ++i) sm.sent(stanza("<x/>"));
  sm.take_unacked();
  EXPECT_EQ(sm.unacked_bytes(), 0u);
  std::uint32_t h = sm.sent_count();
  ASSERT_TRUE(sm.acked(h));
  for (std::uint32_t round = 0; round < 200; ++round) {
    for (std::uint32_t i = 0; i <= round % 7; ++i)
      sm.sent(stanza(std::string(1 + (round * 31 + i) % 97, 'z')));
    h += (round % 3 == 0) ? static_cast<std::uint32_t>(sm.unacked_count()) : 1u;
    ASSERT_TRUE(sm.acked(h));
    ASSERT_EQ(sm.unacked_bytes(), weight(sm)) << round;
  }
  ASSERT_TRUE(sm.acked(sm.sent_count()));
  EXPECT_EQ(sm.unacked_bytes(), 0u);
}

TEST(StreamManagementTest, HandledCountsReceivedStanzas) {
  StreamManagement sm;
  sm.enable({});
  sm.received();
  sm.received();
  EXPECT_EQ(sm.handled(), 2u);
}

}  // namespace
}  // namespace waddle::c2s
