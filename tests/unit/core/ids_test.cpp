// Tests for identifiers: random hex and time-ordered archive ids.
#include "core/ids.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>

namespace waddle::core {
namespace {

TEST(IdsTest, RandomHexHasTheAskedLengthInLowercaseHex) {
  const std::string id = random_hex(12);
  EXPECT_EQ(id.size(), 24u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(random_hex(12), id);
}

TEST(IdsTest, OrderedIdsSortInTheOrderTheyWereMadeEvenWhenTheClockStandsOrStepsBack) {
  std::string previous = ordered_id(1'800'000'000'000'000);
  const std::int64_t clocks[] = {1'800'000'000'000'000,
                                 1'799'999'000'000'000,
                                 1'800'000'000'000'001,
                                 1'800'000'000'000'001,
                                 0,
                                 -5};
  for (std::int64_t now : clocks) {
    const std::string id = ordered_id(now);
    EXPECT_LT(previous, id) << "at clock " << now;
    EXPECT_EQ(id.size(), 28u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
    previous = id;
  }
}

// The first 16 digits are the clock in hex (on a thread of its own: the clock it last used
// is per thread).
TEST(IdsTest, OrderedIdsStartWithTheClockInHex) {
  std::string id;
  std::thread([&] { id = ordered_id(0x0123456789abcdef); }).join();
  EXPECT_EQ(id.substr(0, 16), "0123456789abcdef");
  EXPECT_EQ(id.size(), 28u);
}

// The number an ordered id starts with is its clock value; other ids have none.
TEST(IdsTest, OrderedIdNumberIsTheClockItStartsWith) {
  EXPECT_EQ(ordered_id_number(ordered_id(0x1234567890)), 0x1234567890);
  EXPECT_EQ(ordered_id_number("0000000000002000bbbbbbbbbbbb"), 0x2000);
  EXPECT_FALSE(ordered_id_number("0000000000000000aaaaaaaaaaaa").has_value());  // 0
  EXPECT_FALSE(ordered_id_number("8000000000000000aaaaaaaaaaaa").has_value());  // > INT64_MAX
  EXPECT_FALSE(ordered_id_number("000000000000200A").has_value());              // uppercase
  for (const char* edge : {"000000000000200g", "00000000000020/0", "00000000000020:0",
                           "00000000000020`0", "00000000000020 0"})
    EXPECT_FALSE(ordered_id_number(edge).has_value()) << edge;
  EXPECT_EQ(ordered_id_number("00000000000000af9"), 0xaf);  // the first 16 characters
  EXPECT_FALSE(ordered_id_number("no-number").has_value());
  EXPECT_FALSE(ordered_id_number("").has_value());
}

TEST(IdsTest, OrderedIdsAreUniqueAcrossManyBlocksOfRandomness) {
  std::set<std::string> seen;
  std::set<std::string> tails;
  for (int i = 0; i < 5000; ++i) {  // about 30 blocks of CSPRNG output
    const std::string id = ordered_id(1);
    EXPECT_TRUE(seen.insert(id).second);
    tails.insert(id.substr(16));
  }
  EXPECT_EQ(tails.size(), 5000u);  // the random part is not reused between ids
}

}  // namespace
}  // namespace waddle::core
