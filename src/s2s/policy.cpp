// Federation policy (open / allowlist / blocklist with subdomain coverage), token buckets,
// the per-domain connection limit (spec "Abuse Prevention") and the RetryPolicy backoff.
#include "s2s/policy.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <utility>

namespace waddle::s2s {
namespace {

// Tolerance for floating-point drift in refills: waiting exactly wait_time() must be enough.
constexpr double kEpsilon = 1e-9;

std::string lowercase(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::vector<std::string> prepare(std::vector<std::string> list) {
  std::vector<std::string> out;
  out.reserve(list.size());
  for (auto& d : list) {
    if (!d.empty() && d.back() == '.') d.pop_back();
    if (!d.empty()) out.push_back(lowercase(std::move(d)));
  }
  return out;
}

PolicyMode parse_mode(std::string_view mode) {
  if (mode == "open") return PolicyMode::kOpen;
  if (mode == "allowlist") return PolicyMode::kAllowlist;
  if (mode == "blocklist") return PolicyMode::kBlocklist;
  // Configuration time only: the config reader has already rejected other values.
  throw std::invalid_argument("s2s.policy: expected open, allowlist or blocklist, got \"" +
                              std::string(mode) + "\"");
}

}  // namespace

Policy::Policy(std::string_view mode, std::vector<std::string> allowed,
               std::vector<std::string> blocked)
    : mode_(parse_mode(mode)),
      allowed_(prepare(std::move(allowed))),
      blocked_(prepare(std::move(blocked))) {}

bool Policy::listed(const std::vector<std::string>& list, std::string_view domain) {
  std::string d = lowercase(std::string(domain));
  if (!d.empty() && d.back() == '.') d.pop_back();
  if (d.empty()) return false;
  const std::string_view dv = d;
  return std::any_of(list.begin(), list.end(), [dv](const std::string& entry) {
    if (dv == entry) return true;
    // A parent domain covers its subdomains only at a label boundary: "example.org" covers
    // "rooms.example.org" but not "badexample.org".
    return dv.size() > entry.size() && dv.ends_with(entry) &&
           dv[dv.size() - entry.size() - 1] == '.';
  });
}

bool Policy::allows(std::string_view domain) const {
  switch (mode_) {
    case PolicyMode::kOpen:
      return true;
    case PolicyMode::kAllowlist:
      return listed(allowed_, domain);
    case PolicyMode::kBlocklist:
      return !listed(blocked_, domain);
  }
  return false;
}

TokenBucket::TokenBucket(double rate, double burst, Clock::time_point now)
    : rate_(std::max(rate, 0.0)), burst_(std::max(burst, 0.0)), tokens_(burst_), last_(now) {}

void TokenBucket::refill(Clock::time_point now) {
  // A clock that goes backwards (or a caller passing an older time) neither adds tokens nor
  // moves the reference point back.
  if (now <= last_) return;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  last_ = now;
}

bool TokenBucket::take(Clock::time_point now, double n) {
  refill(now);
  if (tokens_ + kEpsilon < n) return false;
  tokens_ = std::max(0.0, tokens_ - n);
  return true;
}

void TokenBucket::charge(Clock::time_point now, double n) {
  refill(now);
  tokens_ -= n;
}

TokenBucket::Clock::duration TokenBucket::wait_time(Clock::time_point now, double n) {
  refill(now);
  if (tokens_ + kEpsilon >= n) return Clock::duration::zero();
  // Never available: no refill, or more than the bucket can hold.
  if (rate_ <= 0.0 || n > burst_ + kEpsilon) return Clock::duration::max();
  const std::chrono::duration<double> seconds((n - tokens_) / rate_);
  const auto wait = std::chrono::ceil<Clock::duration>(seconds);
  return std::max(wait, Clock::duration(1));
}

double TokenBucket::tokens(Clock::time_point now) {
  refill(now);
  return tokens_;
}

std::chrono::milliseconds retry_delay(std::uint32_t attempt, std::chrono::milliseconds initial,
                                      std::chrono::milliseconds max, double multiplier) {
  using std::chrono::milliseconds;
  if (max.count() <= 0) return milliseconds::zero();
  if (initial.count() <= 0) return milliseconds::zero();
  const std::uint32_t exponent = attempt > 0 ? attempt - 1 : 0;
  // In floating point so that a large attempt or multiplier saturates at infinity instead
  // of overflowing; NaN (a nonsensical multiplier) also ends at the cap.
  const double delay =
      static_cast<double>(initial.count()) * std::pow(multiplier, static_cast<double>(exponent));
  if (!(delay < static_cast<double>(max.count()))) return max;
  if (delay <= 0.0) return milliseconds::zero();
  return milliseconds(static_cast<milliseconds::rep>(std::round(delay)));
}

std::chrono::milliseconds with_jitter(std::chrono::milliseconds delay, double fraction,
                                      double unit) {
  const double factor = 1.0 - fraction + 2.0 * fraction * std::clamp(unit, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(
      std::round(static_cast<double>(delay.count()) * factor)));
}

}  // namespace waddle::s2s
