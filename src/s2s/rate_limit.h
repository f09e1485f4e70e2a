// Abuse prevention in one place (spec "Abuse Prevention"): the pacing of what authenticated
// domains send (Pacer), and the bandwidth budget that all S2S streams share (new connections
// are limited per address when accepted: core/connection_gate.h). Exceeding a limit slows
// reading down (backpressure: TCP pushes back on the peer), never loses what was read; a
// domain is disconnected only when the operator asked for it (disconnect_when_paced_for).
// Time is passed in, so tests need no clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "core/config.h"
#include "metrics/metrics.h"
#include "s2s/policy.h"

namespace waddle::s2s {

// Per remote domain, shared by all its streams: a bucket of stanzas and one of bytes, each
// with a rate and a burst. What a stream has read is always accepted (charged, possibly into
// debt); the answer is how long that stream should stop reading so that the domain stays
// within its rates. A domain is "paced" while one of its streams is told to wait.
class Pacer {
 public:
  using Clock = TokenBucket::Clock;
  struct Limits {
    double stanza_rate = 0;  // per second; 0 = unlimited
    double stanza_burst = 0;
    double byte_rate = 0;  // per second; 0 = unlimited
    double byte_burst = 0;
    // A domain paced without a break of kBreak for this long is to be disconnected; zero =
    // never.
    Clock::duration disconnect_after{};
  };
  // Pauses shorter than this are not worth a timer: a paced stream waits until the domain
  // may send this long at its rate (or a full burst, if smaller) before it reads on.
  static constexpr Clock::duration kBatch = std::chrono::milliseconds(10);
  // Pacing with gaps shorter than this counts as one continuous period.
  static constexpr Clock::duration kBreak = std::chrono::seconds(1);

  struct Verdict {
    Clock::duration pause{};    // how long the stream should stop reading; zero = read on
    bool disconnect = false;    // paced for longer than disconnect_after
    bool started = false;       // a new period of pacing began (after a break of kBreak)
    std::uint64_t seconds = 0;  // whole seconds of pacing this verdict completed
  };

  explicit Pacer(Limits limits) : limits_(limits) {}
  // Charges one stanza and the `bytes` read with it to `domain`.
  Verdict charge(const std::string& domain, std::uint64_t bytes, Clock::time_point now);
  // New limits apply to every domain from now on (buckets start over, full).
  void set_limits(Limits limits) {
    limits_ = limits;
    domains_.clear();
  }

 private:
  struct Domain {
    Domain(const Limits& l, Clock::time_point now)
        : stanzas(l.stanza_rate, l.stanza_burst, now), bytes(l.byte_rate, l.byte_burst, now) {}
    TokenBucket stanzas;
    TokenBucket bytes;
    bool paced = false;               // ever paced
    Clock::time_point paced_until{};  // the end of the last pause ordered
    Clock::time_point since{};        // the start of the current period of pacing
    double seconds = 0;               // paced in total
  };
  Domain& domain(const std::string& name, Clock::time_point now);
  Clock::duration pause(Domain& d, Clock::time_point now) const;
  void account(Domain& d, Verdict& v, Clock::time_point now, Clock::time_point until) const;

  Limits limits_;
  std::map<std::string, Domain, std::less<>> domains_;
};

class RateLimits {
 public:
  using Clock = std::chrono::steady_clock;
  // `metrics` (may be null) counts pacing (waddle_s2s_paced_total, _paced_seconds_total).
  RateLimits(const core::S2sConfig& config, Clock::time_point now,
             metrics::S2sMetrics* metrics = nullptr);

  // SIGHUP: new per-domain limits (every domain starts over); the bandwidth limit stays.
  void reload(const core::S2sConfig& config);

  // One stanza from `domain` and the `bytes` read since the last one on its stream. It is
  // delivered in any case; then its stream stops reading for `pause`. `disconnect` only
  // when the operator set disconnect_when_paced_for and the domain has been paced as long.
  struct Stanza {
    Clock::duration pause{};
    bool disconnect = false;
  };
  Stanza stanza(const std::string& domain, std::uint64_t bytes, Clock::time_point now);

  bool bandwidth_limited() const { return bandwidth_limit_ > 0; }
  // Charges `bytes` read to the budget of bandwidth_limit bytes per second (all domains
  // together; the budget may go into debt); returns how long to stop reading.
  Clock::duration bandwidth_pause(std::uint64_t bytes, Clock::time_point now);

 private:
  static Pacer::Limits limits(const core::S2sConfig& config);
  Pacer pacer_;
  metrics::S2sMetrics* metrics_;
  double bandwidth_limit_;  // bytes per second; 0 = unlimited
  double budget_;           // bytes that may still be read now (negative: a debt)
  Clock::time_point last_;
};

}  // namespace waddle::s2s
