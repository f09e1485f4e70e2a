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

TEST(StreamManagementTest, HandledCountsReceivedStanzas) {
  StreamManagement sm;
  sm.enable({});
  sm.received();
  sm.received();
  EXPECT_EQ(sm.handled(), 2u);
}

}  // namespace
}  // namespace waddle::c2s
