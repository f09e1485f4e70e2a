// Federation policy (spec "Federation policy", "Abuse Prevention"): open / allowlist /
// blocklist, token buckets, and the per-domain limit on new inbound connections.
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

// New inbound connections per minute from each remote domain (a bucket of that many, refilled
// over the minute). Stanzas and bytes are paced per domain by Pacer (rate_limit.h).
class ConnectionLimiter {
 public:
  using Clock = TokenBucket::Clock;
  explicit ConnectionLimiter(std::uint32_t per_minute) : per_minute_(per_minute) {}

  // A new inbound connection from `domain`; false when over the per-minute limit.
  bool on_connection(const std::string& domain, Clock::time_point now);
  // A new limit applies to every domain from now on (buckets start over); 0 = unlimited.
  void set_limit(std::uint32_t per_minute) {
    per_minute_ = per_minute;
    domains_.clear();
  }

 private:
  std::uint32_t per_minute_;
  std::map<std::string, TokenBucket, std::less<>> domains_;
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
