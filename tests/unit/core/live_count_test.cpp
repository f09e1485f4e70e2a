#include "core/live_count.h"

#include <gtest/gtest.h>

#include <optional>

namespace waddle::core {
namespace {

TEST(LiveCount, WaiterRunsAtOnceWhenNothingIsAlive) {
  LiveCount count;
  int calls = 0;
  count.when_empty([&] { ++calls; });
  EXPECT_EQ(calls, 1);
}

TEST(LiveCount, WaiterRunsOnceWhenTheLastTokenGoes) {
  LiveCount count;
  int calls = 0;
  std::optional<LiveCount::Token> a = count.enter();
  std::optional<LiveCount::Token> b = count.enter();
  EXPECT_EQ(count.size(), 2u);
  count.when_empty([&] { ++calls; });
  a.reset();
  EXPECT_EQ(calls, 0);
  b.reset();
  EXPECT_EQ(calls, 1);
  auto c = count.enter();  // a later session does not call an old waiter again
  EXPECT_EQ(calls, 1);
}

TEST(LiveCount, MovedTokensCountOnce) {
  LiveCount count;
  int calls = 0;
  {
    auto a = count.enter();
    LiveCount::Token b(std::move(a));
    LiveCount::Token c;
    c = std::move(b);
    EXPECT_EQ(count.size(), 1u);
    count.when_empty([&] { ++calls; });
  }
  EXPECT_EQ(count.size(), 0u);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace waddle::core
