// The S2S resolver's answer cache and serve-stale memory (RFC 2308 §5, RFC 8767 §4-§5).
#include "s2s/dns_cache.h"

namespace waddle::s2s::dns {

bool negative(const Answer& a) {
  return a.outcome == Outcome::kNxDomain || a.outcome == Outcome::kNoData;
}

std::optional<Answer> AnswerCache::fresh(const Key& key, Clock::time_point now) {
  auto it = fresh_.find(key);
  if (it == fresh_.end()) return std::nullopt;
  if (it->second.expires <= now) {
    fresh_.erase(it);
    return std::nullopt;
  }
  return it->second.answer;
}

std::optional<Answer> AnswerCache::stale(const Key& key, Clock::time_point now,
                                         std::string why) const {
  auto it = known_.find(key);
  if (it == known_.end() || now - it->second.received > kMaxStale) return std::nullopt;
  Answer a = it->second.answer;
  a.stale = true;
  a.ttl = 0;
  a.failure = why.empty() ? it->second.failure : std::move(why);
  return a;
}

bool AnswerCache::failing(const Key& key, Clock::time_point now) const {
  auto it = known_.find(key);
  return it != known_.end() && it->second.failed_at &&
         now - *it->second.failed_at < kFailureRecheck;
}

void AnswerCache::store(const Key& key, const Answer& answer, Clock::time_point now) {
  if (answer.outcome != Outcome::kRecords && !negative(answer)) return;
  if (known_.size() >= kMaxEntries && !known_.count(key)) make_room(now);
  Known& k = known_[key];
  k.answer = answer;
  k.answer.stale = false;
  k.received = now;
  k.failed_at.reset();
  k.failure.clear();
  if (answer.ttl == 0) {
    fresh_.erase(key);
    return;
  }
  if (fresh_.size() >= kMaxEntries && !fresh_.count(key)) {
    std::erase_if(fresh_, [&](const auto& kv) { return kv.second.expires <= now; });
    if (fresh_.size() >= kMaxEntries) fresh_.clear();
  }
  fresh_[key] = Fresh{now + std::chrono::seconds(answer.ttl), answer};
}

// Full: answers too old to serve go first, then negative ones (many names that do not exist
// must not push out the addresses of real peers), then everything.
void AnswerCache::make_room(Clock::time_point now) {
  std::erase_if(known_, [&](const auto& kv) { return now - kv.second.received > kMaxStale; });
  if (known_.size() < kMaxEntries) return;
  std::erase_if(known_, [](const auto& kv) { return negative(kv.second.answer); });
  if (known_.size() >= kMaxEntries) known_.clear();
}

void AnswerCache::note_failure(const Key& key, Clock::time_point now, std::string why) {
  auto it = known_.find(key);
  if (it == known_.end()) return;
  it->second.failed_at = now;
  it->second.failure = std::move(why);
}

void AnswerCache::clear() {
  fresh_.clear();
  known_.clear();
}

}  // namespace waddle::s2s::dns
