// Admission decisions (what may leave, how many streams and queued stanzas a remote domain
// gets, dialback without a certificate). The rate limits are in rate_limit_test.cpp.
#include "s2s/admission.h"

#include <gtest/gtest.h>

namespace waddle::s2s {
namespace {

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
  EXPECT_FALSE(a.another_stream("friend.example", 1, 1));
}

TEST_F(AdmissionTest, AnotherStream_CappedAtMaxConnectionsPerDomain) {
  config_.max_connections_per_domain = 2;
  Admission a(config_);
  EXPECT_FALSE(a.another_stream("b.example", 0, 1));
  EXPECT_FALSE(a.another_stream("b.example", 1, 1));
  auto no = a.another_stream("b.example", 2, 1);
  ASSERT_TRUE(no);
  EXPECT_EQ(no->condition, StanzaError::kResourceConstraint);
  EXPECT_EQ(no->text, "Too many connections to b.example (max_connections_per_domain)");
}

TEST_F(AdmissionTest, AnotherStream_OnePerLocalDomainEvenAboveTheCap) {
  config_.max_connections_per_domain = 2;
  Admission a(config_);
  EXPECT_FALSE(a.another_stream("b.example", 5, 6));  // six local domains, no multiplexing
  EXPECT_TRUE(a.another_stream("b.example", 6, 6));
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

}  // namespace
}  // namespace waddle::s2s
