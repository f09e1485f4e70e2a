// Abuse prevention in one place (spec "Abuse Prevention"): the per-domain limits on new
// inbound connections and stanzas (RateLimiter, policy.h) and the bandwidth budget that all
// S2S streams share. Exceeding a limit slows reading down (backpressure, never loss); only a
// domain that keeps flooding is disconnected. Time is passed in, so tests need no clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/config.h"
#include "s2s/policy.h"

namespace waddle::s2s {

class RateLimits {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimits(const core::S2sConfig& config, Clock::time_point now);

  // SIGHUP: new per-domain limits (every domain starts over); the bandwidth limit stays.
  void reload(const core::S2sConfig& config);

  // A new inbound stream from `domain`; false when over connection_rate.
  bool new_connection(const std::string& domain, Clock::time_point now);

  // One stanza from `domain`: kAccept; kThrottle (delivered, then reading pauses for
  // `pause`); kDisconnect after throttle_strikes throttled stanzas in a row.
  struct Stanza {
    RateLimiter::Verdict verdict = RateLimiter::Verdict::kAccept;
    Clock::duration pause{};
  };
  Stanza stanza(const std::string& domain, Clock::time_point now);

  bool bandwidth_limited() const { return bandwidth_limit_ > 0; }
  // Charges `bytes` read to the budget of bandwidth_limit bytes per second (all domains
  // together; the budget may go into debt); returns how long to stop reading.
  Clock::duration bandwidth_pause(std::uint64_t bytes, Clock::time_point now);

 private:
  static RateLimiter::Limits limits(const core::S2sConfig& config);
  RateLimiter limiter_;
  double bandwidth_limit_;  // bytes per second; 0 = unlimited
  double budget_;           // bytes that may still be read now (negative: a debt)
  Clock::time_point last_;
};

}  // namespace waddle::s2s
