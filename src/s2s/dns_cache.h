// What the S2S resolver remembers of DNS answers: each answer for its TTL (negative ones for the
// SOA minimum, RFC 2308 §5), and the last answer to each question for serving stale when the DNS
// server fails or is slow (RFC 8767 §4-§5), with the failure recheck timer of RFC 8767 §5.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "s2s/dns.h"

namespace waddle::s2s::dns {

enum class Outcome { kRecords, kNxDomain, kNoData, kFailure, kShutdown };

// One query's answer.
struct Answer {
  Outcome outcome = Outcome::kFailure;
  std::vector<SrvRecord> srv;          // kRecords for SRV (targets without the final dot)
  std::vector<std::string> addresses;  // kRecords for A/AAAA
  // kFailure: what went wrong. A stale answer: why it was used instead of a fresh one.
  std::string failure;
  bool server_replied = false;  // kFailure: an error response (SERVFAIL...), no timeout
  bool timed_out = false;       // kFailure: no answer before the deadline
  std::uint32_t ttl = 0;        // seconds this answer may be reused
  bool stale = false;           // the last known answer, used because the server failed
};

bool negative(const Answer& a);

class AnswerCache {
 public:
  using Clock = std::chrono::steady_clock;
  using Key = std::pair<int, std::string>;  // query type, lower-case name without the final dot

  // RFC 8767 §5 suggests one to seven days; a peer that was reachable a minute ago stays
  // reachable through a DNS outage of up to a day.
  static constexpr auto kMaxStale = std::chrono::hours(24);
  // RFC 8767 §5's failure recheck timer: after the server left a question unanswered, the stale
  // answer is used at once for this long (a refresh query still goes out, one at a time).
  static constexpr auto kFailureRecheck = std::chrono::seconds(30);
  static constexpr std::size_t kMaxEntries = 10000;

  // The answer received within its TTL; expired ones are dropped.
  std::optional<Answer> fresh(const Key& key, Clock::time_point now);
  // The last answer received (records, NXDOMAIN or NODATA), if not older than kMaxStale, marked
  // stale with `why` (a failure noted for the question when `why` is empty).
  std::optional<Answer> stale(const Key& key, Clock::time_point now, std::string why = {}) const;
  // The server left `key` unanswered within the last kFailureRecheck and has not answered it
  // since: a stale answer may be used without waiting.
  bool failing(const Key& key, Clock::time_point now) const;

  // An answer from the server: kept for its TTL and as the last known answer (which ends a
  // failure noted for the question). Failures and shutdowns are not answers: see note_failure.
  void store(const Key& key, const Answer& answer, Clock::time_point now);
  // The server did not answer `key` in time (the resolver notes timeouts: a server that refuses
  // costs no wait). Noted only for questions with a last known answer: without one there is
  // nothing to use instead.
  void note_failure(const Key& key, Clock::time_point now, std::string why);

  // Drops the answers within their TTL (config reload, tests); the last known answers stay.
  void clear_fresh() { fresh_.clear(); }
  void clear();

 private:
  struct Fresh {
    Clock::time_point expires;
    Answer answer;
  };
  struct Known {
    Answer answer;
    Clock::time_point received;
    std::optional<Clock::time_point> failed_at;
    std::string failure;
  };
  void make_room(Clock::time_point now);

  std::map<Key, Fresh> fresh_;
  std::map<Key, Known> known_;
};

}  // namespace waddle::s2s::dns
