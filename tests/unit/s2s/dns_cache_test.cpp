// Tests for the resolver's answer cache: TTLs, the last known answer served stale for up to a day
// (RFC 8767 §4), and the failure recheck timer of RFC 8767 §5 that lets it be served at once.
#include "s2s/dns_cache.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace waddle::s2s::dns {
namespace {

using namespace std::chrono_literals;
using Clock = AnswerCache::Clock;

constexpr int kTypeA = 1;
constexpr int kTypeSrv = 33;

Answer records(std::string address, std::uint32_t ttl) {
  Answer a;
  a.outcome = Outcome::kRecords;
  a.addresses = {std::move(address)};
  a.ttl = ttl;
  return a;
}

Answer failure(std::string text) {
  Answer a;
  a.failure = std::move(text);
  return a;
}

class AnswerCacheTest : public ::testing::Test {
 protected:
  AnswerCache cache_;
  const Clock::time_point t0_ = Clock::now();
  const AnswerCache::Key key_{kTypeA, "peer.example"};
};

TEST_F(AnswerCacheTest, Fresh_WithinTtlOnly) {
  cache_.store(key_, records("192.0.2.1", 60), t0_);
  auto hit = cache_.fresh(key_, t0_ + 59s);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->addresses, std::vector<std::string>{"192.0.2.1"});
  EXPECT_FALSE(hit->stale);
  EXPECT_FALSE(cache_.fresh(key_, t0_ + 60s).has_value());
  EXPECT_FALSE(cache_.fresh({kTypeSrv, "peer.example"}, t0_).has_value());  // other type
}

TEST_F(AnswerCacheTest, TtlZero_NeverFreshButKnown) {
  cache_.store(key_, records("192.0.2.1", 0), t0_);
  EXPECT_FALSE(cache_.fresh(key_, t0_).has_value());
  auto stale = cache_.stale(key_, t0_ + 1s, "DNS server timed out");
  ASSERT_TRUE(stale.has_value());
  EXPECT_TRUE(stale->stale);
  EXPECT_EQ(stale->addresses, std::vector<std::string>{"192.0.2.1"});
  EXPECT_EQ(stale->failure, "DNS server timed out");
}

TEST_F(AnswerCacheTest, Stale_UpToADayAfterItCame) {
  cache_.store(key_, records("192.0.2.1", 300), t0_);
  EXPECT_TRUE(cache_.stale(key_, t0_ + AnswerCache::kMaxStale, "x").has_value());
  EXPECT_FALSE(cache_.stale(key_, t0_ + AnswerCache::kMaxStale + 1s, "x").has_value());
  EXPECT_FALSE(cache_.stale({kTypeA, "never.example"}, t0_, "x").has_value());
}

TEST_F(AnswerCacheTest, NegativeAnswers_KnownToo) {
  Answer nodata;
  nodata.outcome = Outcome::kNoData;
  nodata.ttl = 0;
  cache_.store(key_, nodata, t0_);
  auto stale = cache_.stale(key_, t0_ + 1h, "refused");
  ASSERT_TRUE(stale.has_value());
  EXPECT_EQ(stale->outcome, Outcome::kNoData);
}

TEST_F(AnswerCacheTest, Failures_NotStoredAndDoNotReplaceTheKnownAnswer) {
  cache_.store(key_, failure("SERVFAIL"), t0_);
  EXPECT_FALSE(cache_.stale(key_, t0_, "x").has_value());
  cache_.store(key_, records("192.0.2.1", 0), t0_);
  cache_.store(key_, failure("SERVFAIL"), t0_ + 1s);
  Answer shutdown;
  shutdown.outcome = Outcome::kShutdown;
  cache_.store(key_, shutdown, t0_ + 2s);
  auto stale = cache_.stale(key_, t0_ + 3s, "x");
  ASSERT_TRUE(stale.has_value());
  EXPECT_EQ(stale->outcome, Outcome::kRecords);
}

TEST_F(AnswerCacheTest, Failing_ForTheRecheckTimeAfterTheLastFailure) {
  cache_.store(key_, records("192.0.2.1", 0), t0_);
  EXPECT_FALSE(cache_.failing(key_, t0_));
  cache_.note_failure(key_, t0_ + 10s, "DNS server timed out");
  EXPECT_TRUE(cache_.failing(key_, t0_ + 10s));
  EXPECT_TRUE(cache_.failing(key_, t0_ + 10s + AnswerCache::kFailureRecheck - 1ms));
  EXPECT_FALSE(cache_.failing(key_, t0_ + 10s + AnswerCache::kFailureRecheck));
  // Without a reason of its own, the stale answer gives the noted failure.
  EXPECT_EQ(cache_.stale(key_, t0_ + 11s)->failure, "DNS server timed out");
  // Each new failure starts the timer again.
  cache_.note_failure(key_, t0_ + 35s, "refused");
  EXPECT_TRUE(cache_.failing(key_, t0_ + 60s));
  EXPECT_EQ(cache_.stale(key_, t0_ + 60s)->failure, "refused");
}

TEST_F(AnswerCacheTest, Failing_EndsWhenTheServerAnswers) {
  cache_.store(key_, records("192.0.2.1", 0), t0_);
  cache_.note_failure(key_, t0_ + 1s, "timed out");
  cache_.store(key_, records("192.0.2.2", 0), t0_ + 2s);
  EXPECT_FALSE(cache_.failing(key_, t0_ + 2s));
  EXPECT_EQ(cache_.stale(key_, t0_ + 3s, "x")->addresses, std::vector<std::string>{"192.0.2.2"});
}

TEST_F(AnswerCacheTest, Failing_OnlyForQuestionsWithAKnownAnswer) {
  const AnswerCache::Key other{kTypeSrv, "_xmpp-server._tcp.new.example"};
  cache_.note_failure(other, t0_, "timed out");
  EXPECT_FALSE(cache_.failing(other, t0_));
  EXPECT_FALSE(cache_.stale(other, t0_).has_value());
}

TEST_F(AnswerCacheTest, ClearFresh_KeepsKnownAnswers) {
  cache_.store(key_, records("192.0.2.1", 300), t0_);
  cache_.clear_fresh();
  EXPECT_FALSE(cache_.fresh(key_, t0_).has_value());
  EXPECT_TRUE(cache_.stale(key_, t0_, "x").has_value());
  cache_.clear();
  EXPECT_FALSE(cache_.stale(key_, t0_, "x").has_value());
}

TEST_F(AnswerCacheTest, Bounded_ManyNamesStillAnswerTheLatest) {
  for (std::size_t i = 0; i <= AnswerCache::kMaxEntries + 5; ++i) {
    cache_.store({kTypeA, "n" + std::to_string(i) + ".example"}, records("192.0.2.1", 60), t0_);
  }
  const AnswerCache::Key last{kTypeA,
                              "n" + std::to_string(AnswerCache::kMaxEntries + 5) + ".example"};
  EXPECT_TRUE(cache_.fresh(last, t0_).has_value());
  EXPECT_TRUE(cache_.stale(last, t0_, "x").has_value());
}

TEST_F(AnswerCacheTest, Full_NegativeAnswersMakeRoomBeforeAddresses) {
  cache_.store(key_, records("192.0.2.1", 0), t0_);
  Answer nx;
  nx.outcome = Outcome::kNxDomain;
  for (std::size_t i = 0; i < AnswerCache::kMaxEntries + 5; ++i) {
    cache_.store({kTypeA, "nx" + std::to_string(i) + ".example"}, nx, t0_ + 1s);
  }
  auto kept = cache_.stale(key_, t0_ + 2s, "x");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->addresses, std::vector<std::string>{"192.0.2.1"});
}

}  // namespace
}  // namespace waddle::s2s::dns
