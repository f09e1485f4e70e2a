// Pacing of remote domains (Pacer) and the rate limits the inbound streams ask (RateLimits),
// on a fake clock: a domain over its stanza or byte rate is told to wait, never refused nor
// disconnected unless the operator asked for it; its budget is shared by its streams and
// does not touch other domains; pacing is counted for /metrics.
#include "s2s/rate_limit.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "metrics/metrics.h"

namespace waddle::s2s {
namespace {

using namespace std::chrono_literals;
using Clock = Pacer::Clock;

// A fixed, arbitrary epoch: nothing here reads the real clock.
const Clock::time_point kT0 = Clock::time_point{} + 1000h;

Pacer::Limits stanzas(double rate, double burst) {
  Pacer::Limits l;
  l.stanza_rate = rate;
  l.stanza_burst = burst;
  return l;
}

Pacer::Limits bytes(double rate, double burst) {
  Pacer::Limits l;
  l.byte_rate = rate;
  l.byte_burst = burst;
  return l;
}

// A stream that honours every pause: it reads its next stanza when the last pause is over.
struct Reader {
  Pacer& pacer;
  std::string domain;
  std::uint64_t bytes_per_stanza = 0;
  Clock::time_point now = kT0;
  std::uint64_t stanzas = 0, pauses = 0, disconnects = 0, periods = 0, seconds = 0;
  Clock::duration longest{};

  Pacer::Verdict one() {
    const auto v = pacer.charge(domain, bytes_per_stanza, now);
    ++stanzas;
    if (v.pause > Clock::duration::zero()) ++pauses;
    if (v.disconnect) ++disconnects;
    if (v.started) ++periods;
    seconds += v.seconds;
    longest = std::max(longest, v.pause);
    now += v.pause;
    return v;
  }
  void read(std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) one();
  }
};

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// --- Pacer ---

TEST(PacerTest, WithinRatesAndBursts_NeverPaused) {
  Pacer::Limits l = stanzas(10, 20);
  l.byte_rate = 1000;
  l.byte_burst = 5000;
  Pacer pacer(l);
  // A burst of 20 stanzas (4000 bytes) at once...
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(pacer.charge("a.example", 200, kT0).pause, Clock::duration::zero()) << i;
  // ... then a steady 10 stanzas (1000 bytes) per second for a minute.
  for (int i = 1; i <= 600; ++i)
    ASSERT_EQ(pacer.charge("a.example", 100, kT0 + i * 100ms).pause, Clock::duration::zero()) << i;
}

TEST(PacerTest, StanzaFlood_PacedToTheRate_NeverDisconnected) {
  Pacer pacer(stanzas(100, 50));
  Reader flood{pacer, "flood.example"};
  flood.read(10'050);
  EXPECT_EQ(flood.disconnects, 0u);
  // The burst at once, then 10,000 stanzas at 100 per second: 100 seconds.
  EXPECT_NEAR(seconds_between(kT0, flood.now), 100.0, 0.1);
  EXPECT_EQ(flood.periods, 1u);  // one long period of pacing
  EXPECT_NEAR(static_cast<double>(flood.seconds), 100.0, 1.0);
}

TEST(PacerTest, Pauses_AreBatched_NotOneTimerPerStanza) {
  Pacer pacer(stanzas(1000, 1000));
  Reader flood{pacer, "flood.example"};
  flood.read(11'000);
  // 10 s at 1000/s beyond the burst, in pauses of ~kBatch (10 ms): ~1,000 pauses, not 10,000.
  EXPECT_NEAR(seconds_between(kT0, flood.now), 10.0, 0.05);
  EXPECT_LE(flood.pauses, 1'100u);
  EXPECT_GE(flood.pauses, 900u);
  EXPECT_LE(flood.longest, Pacer::kBatch + 2ms);
}

TEST(PacerTest, SmallBurst_BatchNeverExceedsIt) {
  Pacer pacer(stanzas(1000, 2));  // a batch (10 at this rate) would not fit in the bucket
  Reader flood{pacer, "flood.example"};
  flood.read(1'002);
  EXPECT_NEAR(seconds_between(kT0, flood.now), 1.0, 0.01);
}

TEST(PacerTest, ByteFlood_PacedToTheByteRate) {
  Pacer pacer(bytes(10'000, 20'000));
  Reader big{pacer, "big.example", 1'000};  // 1 kB stanzas
  big.read(120);                            // 120 kB: 20 kB at once, then 10 s
  EXPECT_EQ(big.disconnects, 0u);
  EXPECT_NEAR(seconds_between(kT0, big.now), 10.0, 0.1);
  // Bytes charged in lumps (a whole read charged to one stanza) make a longer pause, not a
  // faster domain.
  Pacer lumpy(bytes(10'000, 20'000));
  Clock::time_point now = kT0;
  for (int i = 0; i < 10; ++i) now += lumpy.charge("big.example", 16'384, now).pause;
  EXPECT_NEAR(seconds_between(kT0, now), (163'840.0 - 20'000.0) / 10'000.0, 0.1);
}

TEST(PacerTest, BothBuckets_TheTighterOneWins) {
  Pacer::Limits l = stanzas(100, 10);
  l.byte_rate = 1'000'000;
  l.byte_burst = 1'000'000;
  Pacer pacer(l);
  Reader small{pacer, "small.example", 10};  // stanzas bind: 100/s
  small.read(1'010);
  EXPECT_NEAR(seconds_between(kT0, small.now), 10.0, 0.1);
  Pacer::Limits m = stanzas(1'000'000, 1'000'000);
  m.byte_rate = 10'000;
  m.byte_burst = 10'000;
  Pacer by_bytes(m);
  Reader large{by_bytes, "large.example", 1'000};  // bytes bind: 10 stanzas/s
  large.read(110);
  EXPECT_NEAR(seconds_between(kT0, large.now), 10.0, 0.1);
}

TEST(PacerTest, StreamsOfOneDomain_ShareItsBudget) {
  Pacer pacer(stanzas(100, 100));
  // Three streams of the same domain, each honouring its own pauses, read as fast as they
  // are allowed; whichever may read next does.
  std::vector<Reader> streams(3, Reader{pacer, "multi.example"});
  std::uint64_t total = 0;
  while (true) {
    Reader* next = &streams[0];
    for (auto& s : streams)
      if (s.now < next->now) next = &s;
    if (next->now >= kT0 + 10s) break;
    next->one();
    ++total;
  }
  // The burst, then 100 per second for all three together (not 300).
  EXPECT_NEAR(static_cast<double>(total), 100.0 + 10 * 100.0, 5.0);
  for (const auto& s : streams) EXPECT_GT(s.stanzas, 200u) << "a stream was starved";
  // Overlapping pauses of the three streams count once: about 10 s of pacing, not 30.
  std::uint64_t seconds = 0;
  for (const auto& s : streams) seconds += s.seconds;
  EXPECT_NEAR(static_cast<double>(seconds), 10.0, 1.0);
}

TEST(PacerTest, PacedDomain_DoesNotAffectAnother) {
  Pacer pacer(stanzas(10, 10));
  Reader flood{pacer, "flood.example"};
  flood.read(1'000);
  ASSERT_GT(flood.pauses, 0u);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(pacer.charge("quiet.example", 0, flood.now).pause, Clock::duration::zero()) << i;
}

TEST(PacerTest, DisconnectAfter_OnlyWhenSet_AfterThatLongPaced) {
  Pacer::Limits l = stanzas(100, 100);
  l.disconnect_after = 5s;
  Pacer pacer(l);
  Reader flood{pacer, "flood.example"};
  flood.read(100);  // the burst: not paced
  const auto paced_from = flood.now;
  while (!flood.one().disconnect) ASSERT_LT(flood.now - paced_from, 6s);
  EXPECT_GE(flood.now - paced_from, 5s);
  EXPECT_EQ(flood.periods, 1u);
}

TEST(PacerTest, DisconnectAfter_ABreakStartsAPeriodAfresh) {
  Pacer::Limits l = stanzas(100, 100);
  l.disconnect_after = 5s;
  Pacer pacer(l);
  Reader flood{pacer, "flood.example"};
  // The burst and 4 s paced, then quiet for 2 s (a break), then the burst again and 4 s
  // paced: never 5 s in a row.
  flood.read(500);
  flood.now += 2s;
  flood.read(500);
  EXPECT_EQ(flood.disconnects, 0u);
  EXPECT_EQ(flood.periods, 2u);
}

TEST(PacerTest, UnlimitedRates_NeverPause) {
  Pacer pacer(Pacer::Limits{});
  for (int i = 0; i < 100'000; ++i)
    ASSERT_EQ(pacer.charge("a.example", 1'000'000, kT0).pause, Clock::duration::zero()) << i;
}

TEST(PacerTest, NewLimits_EveryDomainStartsOver) {
  Pacer pacer(stanzas(1, 1));
  EXPECT_EQ(pacer.charge("a.example", 0, kT0).pause, Clock::duration::zero());
  EXPECT_GT(pacer.charge("a.example", 0, kT0).pause, Clock::duration::zero());
  pacer.set_limits(stanzas(1000, 1000));
  EXPECT_EQ(pacer.charge("a.example", 0, kT0).pause, Clock::duration::zero());
}

TEST(PacerTest, ManyDomains_EachStartsWithFullBudget) {
  Pacer pacer(stanzas(2, 2));
  // Enough distinct domains to pass the internal clean-up of rested entries several times.
  for (int i = 0; i < 5000; ++i) {
    const std::string domain = "d" + std::to_string(i) + ".example";
    ASSERT_EQ(pacer.charge(domain, 0, kT0 + i * 1ms).pause, Clock::duration::zero()) << domain;
  }
  // A domain that has not rested keeps its state across the clean-ups.
  EXPECT_EQ(pacer.charge("d4999.example", 0, kT0 + 5s).pause, Clock::duration::zero());
  EXPECT_GT(pacer.charge("d4999.example", 0, kT0 + 5s).pause, Clock::duration::zero());
}

// --- RateLimits ---

TEST(RateLimitsTest, Defaults_ARoomOfAThousandPassesUnpaced) {
  core::S2sConfig config;
  RateLimits limits(config, kT0);
  // A room elsewhere with 1,000 occupants here: 1,000 stanzas (~1 KiB each) per message.
  // Five messages at once, then one a second for a minute, and nothing waits.
  auto now = kT0;
  for (int i = 0; i < 5'000; ++i) {
    const auto s = limits.stanza("rooms.example", 1'024, now);
    ASSERT_EQ(s.pause, RateLimits::Clock::duration::zero()) << i;
  }
  for (int message = 0; message < 60; ++message) {
    now += 1s;
    for (int i = 0; i < 1'000; ++i)
      ASSERT_EQ(limits.stanza("rooms.example", 1'024, now).pause,
                RateLimits::Clock::duration::zero())
          << message;
  }
}

TEST(RateLimitsTest, Flood_PausesAndNeverDisconnectsByDefault) {
  core::S2sConfig config;
  config.stanza_rate = 100;
  config.stanza_burst = 100;
  metrics::Registry registry;
  metrics::S2sMetrics metrics(registry, 100);
  RateLimits limits(config, kT0, &metrics);
  auto now = kT0;
  bool paused = false;
  for (int i = 0; i < 100'100; ++i) {  // 1,000 s of flood at the rate it is allowed
    const auto s = limits.stanza("flood.example", 200, now);
    ASSERT_FALSE(s.disconnect) << i;
    paused = paused || s.pause > RateLimits::Clock::duration::zero();
    now += s.pause;
  }
  EXPECT_TRUE(paused);
  EXPECT_EQ(metrics.paced_total.get({"flood.example"}).value(), 1u);
  EXPECT_NEAR(static_cast<double>(metrics.paced_time.get({"flood.example"}).value()), 1000.0, 1.0);
  EXPECT_EQ(metrics.paced_total.get({"quiet.example"}).value(), 0u);
}

TEST(RateLimitsTest, DisconnectWhenPacedFor_TheOperatorsChoice) {
  core::S2sConfig config;
  config.stanza_rate = 10;
  config.stanza_burst = 10;
  config.disconnect_when_paced_for = std::chrono::seconds(3);
  RateLimits limits(config, kT0);
  auto now = kT0;
  int read = 0;
  for (;; ++read) {
    const auto s = limits.stanza("flood.example", 0, now);
    if (s.disconnect) break;
    now += s.pause;
    ASSERT_LT(now - kT0, 10s);
  }
  EXPECT_GE(now - kT0, 3s);
  EXPECT_LE(now - kT0, 4s);
  EXPECT_GE(read, 35);  // the burst and three seconds at the rate were read
}

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

TEST(RateLimitsTest, Reload_NewLimitsForEveryDomain) {
  core::S2sConfig config;
  config.stanza_rate = 1;
  config.stanza_burst = 1;
  RateLimits limits(config, kT0);
  EXPECT_EQ(limits.stanza("b.example", 0, kT0).pause, RateLimits::Clock::duration::zero());
  EXPECT_GT(limits.stanza("b.example", 0, kT0).pause, RateLimits::Clock::duration::zero());
  config.stanza_rate = 0;
  limits.reload(config);
  EXPECT_EQ(limits.stanza("b.example", 0, kT0).pause, RateLimits::Clock::duration::zero());
}

}  // namespace
}  // namespace waddle::s2s
