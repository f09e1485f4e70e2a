// Connection admission; see connection_gate.h.
#include "core/connection_gate.h"

#include <algorithm>
#include <iterator>
#include <unordered_map>

namespace waddle::core {
namespace {

// Buckets that are full again are dropped when the map reaches a multiple of this size, so
// that many addresses, each seen once, do not grow it without bound.
constexpr std::size_t kSweepEvery = 1024;

struct Bucket {
  double tokens;
  ConnectionGate::Clock::time_point last;
};

}  // namespace

struct ConnectionGate::State {
  Limits limits;
  std::size_t total = 0;
  std::unordered_map<std::string, std::size_t> per_address;
  std::map<std::string, Bucket, std::less<>> rates;
};

void ConnectionGate::Ticket::release() {
  if (!state_) return;
  State& s = *state_;
  --s.total;
  if (auto it = s.per_address.find(address_); it != s.per_address.end() && --it->second == 0)
    s.per_address.erase(it);
  state_.reset();
}

ConnectionGate::ConnectionGate(Limits limits) : state_(std::make_shared<State>()) {
  state_->limits = limits;
}

void ConnectionGate::set_limits(Limits limits) {
  state_->limits = limits;
  state_->rates.clear();
}

bool ConnectionGate::take_rate(const std::string& address, Clock::time_point now) {
  const double burst = state_->limits.per_minute;
  if (burst <= 0) return true;
  auto& rates = state_->rates;
  const auto refill = [&](Bucket& b) {
    const double elapsed = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(burst, b.tokens + elapsed * burst / 60.0);
    b.last = now;
  };
  auto it = rates.find(address);
  if (it == rates.end()) {
    if (!rates.empty() && rates.size() % kSweepEvery == 0) {
      for (auto e = rates.begin(); e != rates.end();) {
        refill(e->second);
        e = e->second.tokens + 1e-9 >= burst ? rates.erase(e) : std::next(e);
      }
    }
    it = rates.emplace(address, Bucket{burst, now}).first;
  }
  refill(it->second);
  if (it->second.tokens + 1e-9 < 1.0) return false;
  it->second.tokens -= 1.0;
  return true;
}

std::optional<ConnectionGate::Refused> ConnectionGate::admit(const std::string& address,
                                                             Clock::time_point now,
                                                             Ticket& ticket) {
  if (!take_rate(address, now)) return Refused::kRate;
  State& s = *state_;
  if (s.total >= s.limits.max_unauthenticated) return Refused::kTotal;
  std::size_t& mine = s.per_address[address];
  if (mine >= s.limits.max_unauthenticated_per_address) {
    if (mine == 0) s.per_address.erase(address);
    return Refused::kAddress;
  }
  ++mine;
  ++s.total;
  ticket = Ticket(state_, address);
  return std::nullopt;
}

std::size_t ConnectionGate::unauthenticated() const {
  return state_->total;
}

std::size_t ConnectionGate::unauthenticated_from(std::string_view address) const {
  auto it = state_->per_address.find(std::string(address));
  return it == state_->per_address.end() ? 0 : it->second;
}

std::string_view to_string(ConnectionGate::Refused r) {
  switch (r) {
    case ConnectionGate::Refused::kTotal:
      return "unauthenticated";
    case ConnectionGate::Refused::kAddress:
      return "unauthenticated_per_address";
    case ConnectionGate::Refused::kRate:
      return "rate";
  }
  return "unknown";
}

}  // namespace waddle::core
