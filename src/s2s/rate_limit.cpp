// Rate limits; see rate_limit.h.
#include "s2s/rate_limit.h"

#include <algorithm>

namespace waddle::s2s {

RateLimiter::Limits RateLimits::limits(const core::S2sConfig& config) {
  return {config.stanza_rate, config.connection_rate, config.throttle_strikes};
}

RateLimits::RateLimits(const core::S2sConfig& config, Clock::time_point now)
    : limiter_(limits(config)),
      bandwidth_limit_(static_cast<double>(config.bandwidth_limit)),
      budget_(bandwidth_limit_),
      last_(now) {}

void RateLimits::reload(const core::S2sConfig& config) {
  limiter_.set_limits(limits(config));
}

bool RateLimits::new_connection(const std::string& domain, Clock::time_point now) {
  return limiter_.on_connection(domain, now);
}

RateLimits::Stanza RateLimits::stanza(const std::string& domain, Clock::time_point now) {
  Stanza s;
  s.verdict = limiter_.on_stanza(domain, now);
  if (s.verdict == RateLimiter::Verdict::kThrottle) s.pause = limiter_.throttle_delay(domain, now);
  return s;
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
