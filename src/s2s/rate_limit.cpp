// Rate limits; see rate_limit.h.
#include "s2s/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace waddle::s2s {
namespace {

// Entries that equal a fresh one are dropped when the map reaches a multiple of this size, so
// that many domains, each paced once, do not grow it without bound.
constexpr std::size_t kSweepEvery = 1024;

double seconds(Pacer::Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

Pacer::Domain& Pacer::domain(const std::string& name, Clock::time_point now) {
  if (auto it = domains_.find(name); it != domains_.end()) return it->second;
  if (!domains_.empty() && domains_.size() % kSweepEvery == 0) {
    // A domain that has rested (full buckets, not paced lately) behaves like a new one.
    for (auto entry = domains_.begin(); entry != domains_.end();) {
      Domain& d = entry->second;
      const bool rested = (!d.paced || now > d.paced_until + kBreak) &&
                          d.stanzas.tokens(now) >= limits_.stanza_burst &&
                          d.bytes.tokens(now) >= limits_.byte_burst;
      entry = rested ? domains_.erase(entry) : std::next(entry);
    }
  }
  return domains_.try_emplace(name, limits_, now).first->second;
}

// Until every bucket in debt is back to a batch's worth (kBatch at its rate, at most a burst).
Pacer::Clock::duration Pacer::pause(Domain& d, Clock::time_point now) const {
  Clock::duration wait{};
  const auto settle = [&](TokenBucket& bucket, double rate, double burst) {
    if (rate <= 0 || bucket.tokens(now) >= 0) return;
    wait = std::max(wait, bucket.wait_time(now, std::min(burst, rate * seconds(kBatch))));
  };
  settle(d.stanzas, limits_.stanza_rate, limits_.stanza_burst);
  settle(d.bytes, limits_.byte_rate, limits_.byte_burst);
  return wait;
}

// A pause from `now` to `until`: the period of pacing it belongs to, the time it adds (once
// per domain, however many of its streams wait at the same time), and the operator's limit.
void Pacer::account(Domain& d, Verdict& v, Clock::time_point now, Clock::time_point until) const {
  if (!d.paced || now > d.paced_until + kBreak) {
    d.since = now;
    v.started = true;
  }
  d.paced = true;
  const auto from = std::max(now, d.paced_until);
  if (until > from) {
    const double before = std::floor(d.seconds);
    d.seconds += seconds(until - from);
    v.seconds = static_cast<std::uint64_t>(std::floor(d.seconds) - before);
    d.paced_until = until;
  }
  v.disconnect = limits_.disconnect_after > Clock::duration::zero() &&
                 now - d.since >= limits_.disconnect_after;
}

Pacer::Verdict Pacer::charge(const std::string& name, std::uint64_t bytes, Clock::time_point now) {
  Verdict v;
  if (limits_.stanza_rate <= 0 && limits_.byte_rate <= 0) return v;
  Domain& d = domain(name, now);
  if (limits_.stanza_rate > 0) d.stanzas.charge(now, 1);
  if (limits_.byte_rate > 0 && bytes > 0) d.bytes.charge(now, static_cast<double>(bytes));
  v.pause = pause(d, now);
  if (v.pause > Clock::duration::zero()) account(d, v, now, now + v.pause);
  return v;
}

Pacer::Limits RateLimits::limits(const core::S2sConfig& config) {
  return {static_cast<double>(config.stanza_rate), static_cast<double>(config.stanza_burst),
          static_cast<double>(config.byte_rate), static_cast<double>(config.byte_burst),
          config.disconnect_when_paced_for};
}

RateLimits::RateLimits(const core::S2sConfig& config, Clock::time_point now,
                       metrics::S2sMetrics* metrics)
    : pacer_(limits(config)),
      metrics_(metrics),
      bandwidth_limit_(static_cast<double>(config.bandwidth_limit)),
      budget_(bandwidth_limit_),
      last_(now) {}

void RateLimits::reload(const core::S2sConfig& config) {
  pacer_.set_limits(limits(config));
}

RateLimits::Stanza RateLimits::stanza(const std::string& domain, std::uint64_t bytes,
                                      Clock::time_point now) {
  const Pacer::Verdict v = pacer_.charge(domain, bytes, now);
  if (metrics_ && v.started) metrics_->paced(domain);
  if (metrics_ && v.seconds > 0) metrics_->paced_seconds(domain, v.seconds);
  return {v.pause, v.disconnect};
}

RateLimits::Clock::duration RateLimits::bandwidth_pause(std::uint64_t bytes,
                                                        Clock::time_point now) {
  const double rate = bandwidth_limit_;
  if (rate <= 0) return {};
  budget_ = std::min(rate, budget_ + rate * std::chrono::duration<double>(now - last_).count());
  last_ = now;
  budget_ -= static_cast<double>(bytes);
  if (budget_ >= 0) return {};
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(-budget_ / rate));
}

}  // namespace waddle::s2s
