// XEP-0313 queries without I/O: the 'with' of a room archive query.
#include "im/logic/mam_query.h"

#include <gtest/gtest.h>

namespace waddle::im {
namespace {

const std::string kRoom = "lobby@conference.example.test";

TEST(MamQueryTest, RoomWith_OccupantJidOrTheRoomItself) {
  EXPECT_FALSE(room_with_error("", kRoom).has_value());
  EXPECT_FALSE(room_with_error(kRoom, kRoom).has_value());
  EXPECT_FALSE(room_with_error(kRoom + "/Alice", kRoom).has_value());
}

TEST(MamQueryTest, RoomWith_OtherJids_FeatureNotImplemented) {
  for (const std::string with : {"alice@example.test", "alice@example.test/phone",
                                 "other@conference.example.test/Alice", "example.test"}) {
    auto err = room_with_error(with, kRoom);
    ASSERT_TRUE(err.has_value()) << with;
    EXPECT_EQ(err->condition, core::StanzaError::kFeatureNotImplemented) << with;
  }
}

}  // namespace
}  // namespace waddle::im
