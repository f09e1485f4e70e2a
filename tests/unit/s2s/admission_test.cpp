// Admission decisions (what may leave, how many streams and queued stanzas a remote domain
// gets, dialback without a certificate) and the rate limits' bandwidth budget, on a fixed
// clock.
#include "s2s/admission.h"

#include <gtest/gtest.h>

#include <chrono>

#include "s2s/rate_limit.h"

namespace waddle::s2s {
namespace {

using namespace std::chrono_literals;
using core::StanzaError;

class AdmissionTest : public ::testing::Test {
 protected:
  core::S2sConfig config_;
};

TEST_F(AdmissionTest, Outbound_AllowedByDefault) {
  Admission a(config_);
  EXPECT_FALSE(a.outbound("b.example", false));
}

TEST_F(AdmissionTest, Outbound_RefusedDuringShutdown) {
  Admission a(config_);
  auto no = a.outbound("b.example", true);
  ASSERT_TRUE(no);
  EXPECT_EQ(no->condition, StanzaError::kRemoteServerNotFound);
  EXPECT_EQ(no->text, "Server is shutting down");
}

TEST_F(AdmissionTest, Outbound_RefusedWhenFederationDisabled) {
  config_.enabled = false;
  Admission a(config_);
  auto no = a.outbound("b.example", false);
  ASSERT_TRUE(no);
  EXPECT_EQ(no->condition, StanzaError::kRemoteServerNotFound);
  EXPECT_EQ(no->text, "Federation is disabled on this server");
}

TEST_F(AdmissionTest, Outbound_RefusedByPolicy) {
  config_.policy = "blocklist";
  config_.blocked_domains = {"evil.example"};
  Admission a(config_);
  auto no = a.outbound("rooms.evil.example", false);
  ASSERT_TRUE(no);
  EXPECT_EQ(no->condition, StanzaError::kPolicyViolation);
  EXPECT_EQ(no->text, "Federation with rooms.evil.example is not allowed by this server's policy");
  EXPECT_FALSE(a.outbound("good.example", false));
  EXPECT_FALSE(a.allows("evil.example"));
}

TEST_F(AdmissionTest, Reload_ReplacesPolicyOnly) {
  Admission a(config_);
  core::S2sConfig fresh = config_;
  fresh.policy = "allowlist";
  fresh.allowed_domains = {"friend.example"};
  fresh.max_connections_per_domain = 1;
  a.reload(fresh);
  EXPECT_TRUE(a.allows("friend.example"));
  EXPECT_FALSE(a.allows("stranger.example"));
  // The limits are those the server started with.
  EXPECT_FALSE(a.another_stream("friend.example", 1));
}

TEST_F(AdmissionTest, AnotherStream_CappedAtMaxConnectionsPerDomain) {
  config_.max_connections_per_domain = 2;
  Admission a(config_);
  EXPECT_FALSE(a.another_stream("b.example", 0));
  EXPECT_FALSE(a.another_stream("b.example", 1));
  auto no = a.another_stream("b.example", 2);
  ASSERT_TRUE(no);
  EXPECT_EQ(no->condition, StanzaError::kResourceConstraint);
  EXPECT_EQ(no->text, "Too many connections to b.example (max_connections_per_domain)");
}

TEST_F(AdmissionTest, Enqueue_CappedAtQueueSize) {
  config_.queue_size = 3;
  Admission a(config_);
  EXPECT_FALSE(a.enqueue("b.example", 2));
  auto no = a.enqueue("b.example", 3);
  ASSERT_TRUE(no);
  EXPECT_EQ(no->condition, StanzaError::kResourceConstraint);
  EXPECT_EQ(no->text, "Too many stanzas are waiting for b.example");
}

TEST_F(AdmissionTest, DialbackWithoutCertificate_OnlyWhereAllowed) {
  config_.unverified_dialback_domains = {"legacy.example"};
  Admission listed(config_);
  EXPECT_TRUE(listed.dialback_without_certificate("legacy.example"));
  EXPECT_FALSE(listed.dialback_without_certificate("other.example"));
  EXPECT_FALSE(listed.dialback_without_certificate("sub.legacy.example"));
  config_.allow_unverified_dialback = true;
  Admission everyone(config_);
  EXPECT_TRUE(everyone.dialback_without_certificate("other.example"));
}

const RateLimits::Clock::time_point kT0 = RateLimits::Clock::time_point{} + 1000h;

TEST(RateLimitsTest, Bandwidth_UnlimitedByDefault) {
  core::S2sConfig config;
  RateLimits limits(config, kT0);
  EXPECT_FALSE(limits.bandwidth_limited());
  EXPECT_EQ(limits.bandwidth_pause(1 << 30, kT0), RateLimits::Clock::duration::zero());
}

TEST(RateLimitsTest, Bandwidth_DebtBecomesPause) {
  core::S2sConfig config;
  config.bandwidth_limit = 1000;  // bytes per second
  RateLimits limits(config, kT0);
  EXPECT_TRUE(limits.bandwidth_limited());
  EXPECT_EQ(limits.bandwidth_pause(1000, kT0), RateLimits::Clock::duration::zero());
  EXPECT_EQ(limits.bandwidth_pause(500, kT0), std::chrono::milliseconds(500));
  // Half a second later the debt is paid; the budget refills to at most one second's worth.
  EXPECT_EQ(limits.bandwidth_pause(0, kT0 + 500ms), RateLimits::Clock::duration::zero());
  EXPECT_EQ(limits.bandwidth_pause(1000, kT0 + 10s), RateLimits::Clock::duration::zero());
  EXPECT_GT(limits.bandwidth_pause(1, kT0 + 10s), RateLimits::Clock::duration::zero());
}

TEST(RateLimitsTest, Stanza_ThrottleCarriesPause_ThenDisconnects) {
  core::S2sConfig config;
  config.stanza_rate = 1;
  config.throttle_strikes = 2;
  RateLimits limits(config, kT0);
  EXPECT_EQ(limits.stanza("b.example", kT0).verdict, RateLimiter::Verdict::kAccept);
  auto throttled = limits.stanza("b.example", kT0);
  EXPECT_EQ(throttled.verdict, RateLimiter::Verdict::kThrottle);
  EXPECT_GT(throttled.pause, RateLimits::Clock::duration::zero());
  EXPECT_EQ(limits.stanza("b.example", kT0).verdict, RateLimiter::Verdict::kDisconnect);
}

TEST(RateLimitsTest, Reload_NewLimitsForEveryDomain) {
  core::S2sConfig config;
  config.connection_rate = 1;
  RateLimits limits(config, kT0);
  EXPECT_TRUE(limits.new_connection("b.example", kT0));
  EXPECT_FALSE(limits.new_connection("b.example", kT0));
  config.connection_rate = 0;  // unlimited
  limits.reload(config);
  EXPECT_TRUE(limits.new_connection("b.example", kT0));
  EXPECT_TRUE(limits.new_connection("b.example", kT0));
}

}  // namespace
}  // namespace waddle::s2s
