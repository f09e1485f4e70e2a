// Tests for XEP-0082 timestamps.
#include "core/timestamp.h"

#include <gtest/gtest.h>

namespace waddle::core {
namespace {

TEST(TimestampTest, FormatsUtcWithZ) {
  EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_timestamp(1795084500), "2026-11-19T10:35:00Z");
}

TEST(TimestampTest, ParsesZonesFractionsAndRoundTrips) {
  EXPECT_EQ(parse_timestamp("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_timestamp(format_timestamp(1795084500)), 1795084500);
  EXPECT_EQ(parse_timestamp("2026-11-19T10:35:00.123Z"), 1795084500);
  EXPECT_EQ(parse_timestamp("2026-11-19T12:35:00+02:00"), 1795084500);
  EXPECT_EQ(parse_timestamp("2026-11-19T05:35:00-05:00"), 1795084500);
  EXPECT_EQ(parse_timestamp("2026-11-19T10:35:00"), 1795084500);  // no zone: UTC
}

TEST(TimestampTest, RejectsUnreadableInput) {
  EXPECT_FALSE(parse_timestamp(""));
  EXPECT_FALSE(parse_timestamp("yesterday"));
  EXPECT_FALSE(parse_timestamp("2026-11-19"));
  EXPECT_FALSE(parse_timestamp("2026-11-19T10:35:00 +0200"));
}

}  // namespace
}  // namespace waddle::core
