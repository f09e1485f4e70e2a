// Federation policy (spec "Federation policy", "Abuse Prevention"): open / allowlist /
// blocklist, and token buckets. New inbound connections are limited per address when accepted
// (core/connection_gate.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace waddle::s2s {

enum class PolicyMode { kOpen, kAllowlist, kBlocklist };

class Policy {
 public:
  Policy() = default;
  // mode: "open", "allowlist" or "blocklist"; domains are already prepared (lowercase).
  Policy(std::string_view mode, std::vector<std::string> allowed, std::vector<std::string> blocked);

  // Whether federation with `domain` is allowed. A listed domain also covers its subdomains
  // ("example.org" covers "rooms.example.org").
  bool allows(std::string_view domain) const;
  PolicyMode mode() const { return mode_; }

 private:
  static bool listed(const std::vector<std::string>& list, std::string_view domain);
  PolicyMode mode_ = PolicyMode::kOpen;
  std::vector<std::string> allowed_;
  std::vector<std::string> blocked_;
};

// Token bucket: `rate` tokens per second, up to `burst`. Time is passed in so tests are
// deterministic.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(double rate, double burst, Clock::time_point now);
  // Takes `n` tokens if available.
  bool take(Clock::time_point now, double n = 1.0);
  // Takes `n` tokens even when fewer are there: the bucket goes into debt, and wait_time()
  // counts the debt too. For what has already happened (a stanza read), which cannot be
  // refused, only made up for.
  void charge(Clock::time_point now, double n);
  // How long until `n` tokens will be available (zero if now).
  Clock::duration wait_time(Clock::time_point now, double n = 1.0);
  double tokens(Clock::time_point now);

 private:
  void refill(Clock::time_point now);
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

// The specification's RetryPolicy: delay before retry `attempt` (1-based):
// min(initial * multiplier^(attempt-1), max).
std::chrono::milliseconds retry_delay(std::uint32_t attempt, std::chrono::milliseconds initial,
                                      std::chrono::milliseconds max, double multiplier);

// `delay` spread by up to ± `fraction` of itself; `unit` is a random number in [0, 1) (0 gives
// the shortest delay, towards 1 the longest).
std::chrono::milliseconds with_jitter(std::chrono::milliseconds delay, double fraction,
                                      double unit);

}  // namespace waddle::s2s
