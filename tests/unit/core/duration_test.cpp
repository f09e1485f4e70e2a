// Tests for configuration durations ("10s", "250ms", "5m", "1h").
#include "core/duration.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace waddle::core {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(DurationTest, Parse_EachUnit) {
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("10s"), seconds(10));
  EXPECT_EQ(parse_duration("5m"), minutes(5));
  EXPECT_EQ(parse_duration("1h"), hours(1));
  EXPECT_EQ(parse_duration("300s"), minutes(5));
}

TEST(DurationTest, Parse_ZeroAndLeadingZeros) {
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("0ms"), milliseconds(0));
  EXPECT_EQ(parse_duration("007s"), seconds(7));
}

TEST(DurationTest, Parse_RejectsMalformed) {
  for (const char* s :
       {"",    "s",    "ms",  "10",   "10 s",  " 10s", "10s ",  "+10s",  "-10s",  "1.5s", "10sec",
        "10S", "10MS", "10d", "10us", "1m30s", "10ss", "1e3ms", "0x10s", "10m s", "١٠s"}) {
    EXPECT_FALSE(parse_duration(s)) << s;
  }
}

TEST(DurationTest, Parse_RejectsOverflow) {
  constexpr auto kMax = std::numeric_limits<Duration::rep>::max();  // 9223372036854775807
  EXPECT_EQ(parse_duration(std::to_string(kMax) + "ms"), Duration(kMax));
  EXPECT_FALSE(parse_duration("9223372036854775808ms"));
  EXPECT_FALSE(parse_duration("99999999999999999999999ms"));
  EXPECT_EQ(parse_duration(std::to_string(kMax / 1000) + "s"), seconds(kMax / 1000));
  EXPECT_FALSE(parse_duration(std::to_string(kMax / 1000 + 1) + "s"));
  EXPECT_EQ(parse_duration(std::to_string(kMax / 3'600'000) + "h"), hours(kMax / 3'600'000));
  EXPECT_FALSE(parse_duration(std::to_string(kMax / 3'600'000 + 1) + "h"));
  EXPECT_FALSE(parse_duration(std::to_string(kMax / 60'000 + 1) + "m"));
}

TEST(DurationTest, Format_ShortestExactForm) {
  EXPECT_EQ(format_duration(seconds(10)), "10s");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(format_duration(seconds(300)), "5m");
  EXPECT_EQ(format_duration(minutes(60)), "1h");
  EXPECT_EQ(format_duration(seconds(90)), "90s");
  EXPECT_EQ(format_duration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(format_duration(minutes(90)), "90m");
  EXPECT_EQ(format_duration(hours(48)), "48h");
  EXPECT_EQ(format_duration(milliseconds(0)), "0s");
}

TEST(DurationTest, Format_Negative) {
  EXPECT_EQ(format_duration(seconds(-10)), "-10s");
  const auto min = Duration(std::numeric_limits<Duration::rep>::min());
  EXPECT_EQ(format_duration(min), "-9223372036854775808ms");
}

TEST(DurationTest, RoundTrip_FormatThenParse) {
  for (auto d : {milliseconds(1), milliseconds(999), milliseconds(1000), milliseconds(61'000),
                 milliseconds(3'600'000), milliseconds(86'400'000), milliseconds(123'456'789),
                 Duration(std::numeric_limits<Duration::rep>::max())}) {
    EXPECT_EQ(parse_duration(format_duration(d)), d) << d.count();
  }
}

}  // namespace
}  // namespace waddle::core
