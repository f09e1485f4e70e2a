// Tests for RFC 2782 SRV ordering (priorities, weighted selection, weight 0) with a seeded
// generator, and the resolver paths that need no DNS server (IP literals, invalid names, options).
#include "s2s/dns.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace waddle::s2s {
namespace {

constexpr int kDraws = 10000;

SrvRecord rec(std::string target, std::uint16_t priority, std::uint16_t weight) {
  return SrvRecord{std::move(target), 5269, priority, weight};
}

std::vector<std::string> targets(const std::vector<SrvRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.target);
  return out;
}

// How often each target comes first over kDraws orderings from one fixed seed.
std::map<std::string, int> first_counts(const std::vector<SrvRecord>& records) {
  std::mt19937 rng(12345);
  std::map<std::string, int> counts;
  for (int i = 0; i < kDraws; ++i) ++counts[order_srv(records, rng).front().target];
  return counts;
}

TEST(OrderSrvTest, Empty_ReturnsEmpty) {
  std::mt19937 rng(1);
  EXPECT_TRUE(order_srv({}, rng).empty());
}

TEST(OrderSrvTest, SingleRecord_ReturnedAsIs) {
  std::mt19937 rng(1);
  for (std::uint16_t weight : {0, 1, 65535}) {
    auto out = order_srv({rec("only.example", 7, weight)}, rng);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].target, "only.example");
    EXPECT_EQ(out[0].priority, 7);
    EXPECT_EQ(out[0].weight, weight);
    EXPECT_EQ(out[0].port, 5269);
  }
}

TEST(OrderSrvTest, Priorities_StrictlyAscendingWhateverTheWeights) {
  std::mt19937 rng(42);
  const std::vector<SrvRecord> records = {
      rec("p30-a", 30, 65535), rec("p10-a", 10, 0), rec("p20-a", 20, 5),
      rec("p10-b", 10, 100),   rec("p30-b", 30, 0), rec("p0", 0, 0),
      rec("p20-b", 20, 5),     rec("p10-c", 10, 1), rec("p65535", 65535, 9),
  };
  for (int i = 0; i < 1000; ++i) {
    auto out = order_srv(records, rng);
    ASSERT_EQ(out.size(), records.size());
    EXPECT_TRUE(std::is_sorted(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return a.priority < b.priority;
    }));
    auto got = targets(out);
    auto want = targets(records);
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want);  // every record exactly once
    EXPECT_EQ(out.front().target, "p0");
    EXPECT_EQ(out.back().target, "p65535");
  }
}

TEST(OrderSrvTest, Weights_FirstPickProportionalToWeight) {
  auto counts = first_counts({rec("w10", 5, 10), rec("w20", 5, 20), rec("w70", 5, 70)});
  // Standard deviation is at most 0.005 over 10000 draws: +-0.02 is wide and still decisive.
  EXPECT_NEAR(counts["w10"] / double(kDraws), 0.10, 0.02);
  EXPECT_NEAR(counts["w20"] / double(kDraws), 0.20, 0.02);
  EXPECT_NEAR(counts["w70"] / double(kDraws), 0.70, 0.02);
}

TEST(OrderSrvTest, Weights_SecondPickDrawnFromTheRemainder) {
  std::mt19937 rng(777);
  int after_w70 = 0;
  int w10_second = 0;
  const std::vector<SrvRecord> records = {rec("w10", 1, 10), rec("w20", 1, 20), rec("w70", 1, 70)};
  for (int i = 0; i < kDraws; ++i) {
    auto out = order_srv(records, rng);
    if (out[0].target != "w70") continue;
    ++after_w70;
    if (out[1].target == "w10") ++w10_second;
  }
  ASSERT_GT(after_w70, kDraws / 2);
  EXPECT_NEAR(w10_second / double(after_w70), 1.0 / 3.0, 0.03);
}

TEST(OrderSrvTest, Weights_EqualWeightsShareEvenly) {
  auto counts = first_counts({rec("a", 0, 1), rec("b", 0, 1), rec("c", 0, 1), rec("d", 0, 1)});
  for (const char* t : {"a", "b", "c", "d"}) {
    EXPECT_NEAR(counts[t] / double(kDraws), 0.25, 0.02) << t;
  }
}

TEST(OrderSrvTest, ZeroWeight_SmallChanceToComeFirst) {
  // RFC 2782: weight 0 records are placed first so the draw of 0 picks them: 1 in (sum + 1).
  auto counts = first_counts({rec("zero", 1, 0), rec("hundred", 1, 100)});
  EXPECT_GT(counts["zero"], 30);   // expected ~99
  EXPECT_LT(counts["zero"], 250);  // but never a fair share
  EXPECT_EQ(counts["zero"] + counts["hundred"], kDraws);
}

TEST(OrderSrvTest, ZeroWeight_StillListedAfterWeightedOnes) {
  std::mt19937 rng(3);
  for (int i = 0; i < 100; ++i) {
    auto out = order_srv({rec("zero", 1, 0), rec("one", 1, 1), rec("two", 1, 2)}, rng);
    ASSERT_EQ(out.size(), 3u);
    auto t = targets(out);
    EXPECT_NE(std::find(t.begin(), t.end(), "zero"), t.end());
  }
}

TEST(OrderSrvTest, AllZeroWeights_UniformOrder) {
  auto counts = first_counts({rec("a", 3, 0), rec("b", 3, 0), rec("c", 3, 0)});
  for (const char* t : {"a", "b", "c"}) {
    EXPECT_NEAR(counts[t] / double(kDraws), 1.0 / 3.0, 0.03) << t;
  }
}

TEST(OrderSrvTest, SameSeed_SameOrder) {
  const std::vector<SrvRecord> records = {rec("a", 1, 5), rec("b", 1, 5), rec("c", 2, 0),
                                          rec("d", 2, 3), rec("e", 1, 0)};
  std::mt19937 one(99);
  std::mt19937 two(99);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(targets(order_srv(records, one)), targets(order_srv(records, two)));
  }
}

// Resolver paths that never reach a DNS server: the configured one is a closed port.
class ResolverTest : public ::testing::Test {
 protected:
  Resolution run_server(Resolver& r, const std::string& domain) {
    std::promise<Resolution> p;
    auto f = p.get_future();
    r.resolve_server(domain, [&p](Resolution res) { p.set_value(std::move(res)); });
    EXPECT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    return f.get();
  }
  Resolver::Options options() {
    Resolver::Options o;
    o.nameservers = {"127.0.0.1:9"};
    o.timeout = std::chrono::milliseconds(500);
    return o;
  }
};

TEST_F(ResolverTest, IpLiteralDomain_UsedDirectlyOnDefaultPort) {
  Resolver r(options());
  auto v4 = run_server(r, "127.0.0.7");
  EXPECT_EQ(v4.error, "");
  ASSERT_EQ(v4.endpoints.size(), 1u);
  EXPECT_EQ(v4.endpoints[0].address, "127.0.0.7");
  EXPECT_EQ(v4.endpoints[0].port, 5269);
  EXPECT_FALSE(v4.endpoints[0].direct_tls);

  auto v6 = run_server(r, "[::1]");
  ASSERT_EQ(v6.endpoints.size(), 1u);
  EXPECT_EQ(v6.endpoints[0].address, "::1");
}

TEST_F(ResolverTest, HostLiteral_KeepsPort) {
  Resolver r(options());
  std::promise<Resolution> p;
  auto f = p.get_future();
  r.resolve_host("::1", 5999, [&p](Resolution res) { p.set_value(std::move(res)); });
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto res = f.get();
  ASSERT_EQ(res.endpoints.size(), 1u);
  EXPECT_EQ(res.endpoints[0].address, "::1");
  EXPECT_EQ(res.endpoints[0].port, 5999);
}

TEST_F(ResolverTest, InvalidDomain_ErrorNamesIt) {
  Resolver r(options());
  for (const char* bad : {"", "a..b", "spa ce.example", "back\\slash.example", "."}) {
    auto res = run_server(r, bad);
    EXPECT_TRUE(res.endpoints.empty()) << bad;
    EXPECT_NE(res.error.find("invalid domain name"), std::string::npos) << res.error;
  }
  auto long_label = run_server(r, std::string(64, 'a') + ".example");
  EXPECT_NE(long_label.error.find("invalid"), std::string::npos);
}

TEST_F(ResolverTest, InvalidOptions_Throw) {
  auto o = options();
  o.nameservers = {"not-an-address"};
  EXPECT_THROW(Resolver{o}, std::runtime_error);
  o = options();
  o.nameservers = {"127.0.0.1,127.0.0.2"};
  EXPECT_THROW(Resolver{o}, std::runtime_error);
  o = options();
  o.tries = 0;
  EXPECT_THROW(Resolver{o}, std::runtime_error);
  o = options();
  o.timeout = std::chrono::milliseconds(0);
  EXPECT_THROW(Resolver{o}, std::runtime_error);
  o = options();
  o.stale_answer_wait = std::chrono::milliseconds(0);
  EXPECT_THROW(Resolver{o}, std::runtime_error);
}

TEST_F(ResolverTest, ConstructDestroy_Repeatedly) {
  for (int i = 0; i < 20; ++i) {
    Resolver r(options());
    r.clear_cache();
  }
}

}  // namespace
}  // namespace waddle::s2s
