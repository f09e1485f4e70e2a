// Federation policy modes with subdomain coverage, token buckets and the per-domain
// connection limit on a fake clock, and the retry backoff schedule. Pacing: rate_limit_test.
#include "s2s/policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace waddle::s2s {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;

// A fixed, arbitrary epoch: nothing here reads the real clock.
const Clock::time_point kT0 = Clock::time_point{} + 1000h;

// --- Policy ---

TEST(PolicyTest, Open_AllowsEveryDomain) {
  Policy open("open", {"allowed.example"}, {"blocked.example"});
  EXPECT_EQ(open.mode(), PolicyMode::kOpen);
  EXPECT_TRUE(open.allows("blocked.example"));
  EXPECT_TRUE(open.allows("anything.example"));
  EXPECT_TRUE(Policy().allows("example.org"));
}

TEST(PolicyTest, Allowlist_AllowsListedDomainAndSubdomains) {
  Policy p("allowlist", {"example.org", "chat.example.net"}, {});
  EXPECT_EQ(p.mode(), PolicyMode::kAllowlist);
  EXPECT_TRUE(p.allows("example.org"));
  EXPECT_TRUE(p.allows("rooms.example.org"));
  EXPECT_TRUE(p.allows("a.b.example.org"));
  EXPECT_TRUE(p.allows("chat.example.net"));
  EXPECT_TRUE(p.allows("muc.chat.example.net"));
}

TEST(PolicyTest, Allowlist_RejectsUnlistedAndNearMisses) {
  Policy p("allowlist", {"example.org", "chat.example.net"}, {});
  EXPECT_FALSE(p.allows("badexample.org"));
  EXPECT_FALSE(p.allows("example.org.evil.example"));
  EXPECT_FALSE(p.allows("xample.org"));
  EXPECT_FALSE(p.allows("org"));
  EXPECT_FALSE(p.allows("example.net"));  // a listed subdomain does not cover its parent
  EXPECT_FALSE(p.allows("otherchat.example.net"));
  EXPECT_FALSE(p.allows(""));
}

TEST(PolicyTest, Allowlist_IgnoresBlockedList) {
  Policy p("allowlist", {"example.org"}, {"example.org"});
  EXPECT_TRUE(p.allows("example.org"));
  EXPECT_FALSE(p.allows("other.example"));
}

TEST(PolicyTest, EmptyAllowlist_AllowsNothing) {
  Policy p("allowlist", {}, {});
  EXPECT_FALSE(p.allows("example.org"));
}

TEST(PolicyTest, Blocklist_BlocksListedDomainAndSubdomains) {
  Policy p("blocklist", {}, {"spam.example"});
  EXPECT_EQ(p.mode(), PolicyMode::kBlocklist);
  EXPECT_FALSE(p.allows("spam.example"));
  EXPECT_FALSE(p.allows("muc.spam.example"));
  EXPECT_FALSE(p.allows("a.b.spam.example"));
}

TEST(PolicyTest, Blocklist_AllowsOthersAndNearMisses) {
  Policy p("blocklist", {"allowed.example"}, {"spam.example"});
  EXPECT_TRUE(p.allows("nospam.example"));
  EXPECT_TRUE(p.allows("spam.example.org"));
  EXPECT_TRUE(p.allows("example"));
  EXPECT_TRUE(p.allows("friendly.example"));
}

TEST(PolicyTest, Listing_IsCaseInsensitive) {
  Policy p("blocklist", {}, {"Spam.Example"});
  EXPECT_FALSE(p.allows("spam.example"));
  EXPECT_FALSE(p.allows("MUC.SPAM.example"));
}

TEST(PolicyTest, UnknownMode_Throws) {
  EXPECT_THROW(Policy("closed", {}, {}), std::invalid_argument);
}

// --- TokenBucket ---

TEST(TokenBucketTest, StartsFull_AllowsBurstThenRefuses) {
  TokenBucket bucket(10, 5, kT0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.take(kT0)) << i;
  EXPECT_FALSE(bucket.take(kT0));
  EXPECT_DOUBLE_EQ(bucket.tokens(kT0), 0.0);
}

TEST(TokenBucketTest, Refills_AtRate) {
  TokenBucket bucket(10, 5, kT0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bucket.take(kT0));
  EXPECT_FALSE(bucket.take(kT0 + 50ms));  // half a token
  EXPECT_TRUE(bucket.take(kT0 + 100ms));  // one token
  EXPECT_FALSE(bucket.take(kT0 + 100ms));
  EXPECT_NEAR(bucket.tokens(kT0 + 300ms), 2.0, 1e-9);
}

TEST(TokenBucketTest, Refill_CapsAtBurst) {
  TokenBucket bucket(10, 5, kT0);
  ASSERT_TRUE(bucket.take(kT0, 5));
  EXPECT_DOUBLE_EQ(bucket.tokens(kT0 + 1h), 5.0);
  EXPECT_TRUE(bucket.take(kT0 + 1h, 5));
  EXPECT_FALSE(bucket.take(kT0 + 1h));
}

TEST(TokenBucketTest, TakeMany_AllOrNothing) {
  TokenBucket bucket(1, 3, kT0);
  EXPECT_TRUE(bucket.take(kT0, 2));
  EXPECT_FALSE(bucket.take(kT0, 2));
  EXPECT_DOUBLE_EQ(bucket.tokens(kT0), 1.0);
}

TEST(TokenBucketTest, WaitTime_ZeroWhenAvailable) {
  TokenBucket bucket(10, 5, kT0);
  EXPECT_EQ(bucket.wait_time(kT0), Clock::duration::zero());
  EXPECT_EQ(bucket.wait_time(kT0, 5), Clock::duration::zero());
}

TEST(TokenBucketTest, WaitTime_UntilEnoughTokens) {
  TokenBucket bucket(10, 5, kT0);
  ASSERT_TRUE(bucket.take(kT0, 5));
  const auto one = bucket.wait_time(kT0);
  EXPECT_GE(one, 100ms - 1us);
  EXPECT_LE(one, 100ms + 1us);
  const auto three = bucket.wait_time(kT0, 3);
  EXPECT_GE(three, 300ms - 1us);
  EXPECT_LE(three, 300ms + 1us);
  EXPECT_FALSE(bucket.take(kT0 + one - 1ms));
  EXPECT_TRUE(bucket.take(kT0 + one));  // waiting exactly wait_time() is enough
}

TEST(TokenBucketTest, WaitTime_AfterWaitingTakeSucceeds_AtOddRates) {
  TokenBucket bucket(3, 1, kT0);
  Clock::time_point now = kT0;
  for (int i = 0; i < 100; ++i) {
    if (bucket.take(now)) continue;
    const auto wait = bucket.wait_time(now);
    ASSERT_GT(wait, Clock::duration::zero());
    ASSERT_LT(wait, 1s);
    now += wait;
    ASSERT_TRUE(bucket.take(now)) << "iteration " << i;
  }
  // 100 tokens at 3/s with a burst of 1: about 33 seconds.
  EXPECT_GE(now - kT0, 32s);
  EXPECT_LE(now - kT0, 34s);
}

TEST(TokenBucketTest, WaitTime_NeverWhenMoreThanBurstOrNoRate) {
  TokenBucket small(10, 2, kT0);
  EXPECT_EQ(small.wait_time(kT0, 3), Clock::duration::max());
  TokenBucket stuck(0, 1, kT0);
  ASSERT_TRUE(stuck.take(kT0));
  EXPECT_EQ(stuck.wait_time(kT0 + 1h), Clock::duration::max());
}

TEST(TokenBucketTest, ClockGoingBackwards_AddsNoTokens) {
  TokenBucket bucket(10, 5, kT0 + 10s);
  ASSERT_TRUE(bucket.take(kT0 + 10s, 5));
  EXPECT_FALSE(bucket.take(kT0));
  EXPECT_DOUBLE_EQ(bucket.tokens(kT0), 0.0);
  // Time is measured from the latest point seen, not the earlier one.
  EXPECT_TRUE(bucket.take(kT0 + 10s + 100ms));
}

TEST(TokenBucketTest, Charge_GoesIntoDebtThatWaitTimeCounts) {
  TokenBucket bucket(10, 5, kT0);
  bucket.charge(kT0, 8);  // 5 there, 3 owed
  EXPECT_DOUBLE_EQ(bucket.tokens(kT0), -3.0);
  // Back to zero after 300 ms, to one token after 400 ms.
  EXPECT_GE(bucket.wait_time(kT0, 0), 300ms - 1us);
  EXPECT_LE(bucket.wait_time(kT0, 0), 300ms + 1us);
  EXPECT_GE(bucket.wait_time(kT0), 400ms - 1us);
  EXPECT_LE(bucket.wait_time(kT0), 400ms + 1us);
  EXPECT_FALSE(bucket.take(kT0 + 390ms));
  EXPECT_TRUE(bucket.take(kT0 + 400ms));
  // The debt is made up for, never forgiven, and a refill still stops at the burst.
  EXPECT_DOUBLE_EQ(bucket.tokens(kT0 + 10s), 5.0);
}

// --- retry_delay ---

TEST(RetryDelayTest, DefaultSchedule_DoublesFromOneSecond) {
  EXPECT_EQ(retry_delay(1, 1s, 30s, 2.0), 1s);
  EXPECT_EQ(retry_delay(2, 1s, 30s, 2.0), 2s);
  EXPECT_EQ(retry_delay(3, 1s, 30s, 2.0), 4s);
  EXPECT_EQ(retry_delay(4, 1s, 30s, 2.0), 8s);
  EXPECT_EQ(retry_delay(5, 1s, 30s, 2.0), 16s);
}

TEST(RetryDelayTest, Delay_CappedAtMax) {
  EXPECT_EQ(retry_delay(6, 1s, 30s, 2.0), 30s);  // 32s capped
  EXPECT_EQ(retry_delay(7, 1s, 30s, 2.0), 30s);
  EXPECT_EQ(retry_delay(2, 20s, 30s, 2.0), 30s);
  EXPECT_EQ(retry_delay(1, 45s, 30s, 2.0), 30s);  // initial above the cap
}

TEST(RetryDelayTest, HugeAttemptOrMultiplier_DoesNotOverflow) {
  const std::uint32_t huge = std::numeric_limits<std::uint32_t>::max();
  EXPECT_EQ(retry_delay(huge, 1s, 30s, 2.0), 30s);
  EXPECT_EQ(retry_delay(1000, 1s, 30s, 10.0), 30s);
  EXPECT_EQ(
      retry_delay(64, std::chrono::milliseconds::max() / 2, std::chrono::milliseconds::max(), 2.0),
      std::chrono::milliseconds::max());
}

TEST(RetryDelayTest, OtherMultipliers_FollowFormula) {
  EXPECT_EQ(retry_delay(3, 500ms, 30s, 1.5), 1125ms);
  EXPECT_EQ(retry_delay(10, 2s, 30s, 1.0), 2s);
}

TEST(RetryDelayTest, AttemptZero_TreatedAsFirst) {
  EXPECT_EQ(retry_delay(0, 1s, 30s, 2.0), 1s);
}

}  // namespace
}  // namespace waddle::s2s
