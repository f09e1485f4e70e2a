// Admission of new connections on a listener, decided when a connection is accepted, before
// any byte is read: new connections per minute from one address, and connections not yet
// authenticated in total and from one address (docs/security.md "Memory"). Time is passed in,
// so tests need no clock. One thread (the reactor's).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace waddle::core {

class ConnectionGate {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    std::uint32_t max_unauthenticated = 1000;            // in total
    std::uint32_t max_unauthenticated_per_address = 20;  // from one address
    std::uint32_t per_minute = 0;                        // new connections per address; 0 = any
  };
  enum class Refused { kTotal, kAddress, kRate };

 private:
  struct State;

 public:
  // One unauthenticated connection, counted until release() (authenticated) or destruction
  // (the connection ended). It may outlive the gate.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept = default;
    Ticket& operator=(Ticket&& other) noexcept {
      if (this != &other) {
        release();
        state_ = std::move(other.state_);
        address_ = std::move(other.address_);
      }
      return *this;
    }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { release(); }
    void release();
    bool held() const { return state_ != nullptr; }

   private:
    friend class ConnectionGate;
    Ticket(std::shared_ptr<State> state, std::string address)
        : state_(std::move(state)), address_(std::move(address)) {}
    std::shared_ptr<State> state_;
    std::string address_;
  };

  explicit ConnectionGate(Limits limits);
  // New limits from now on (connections already counted stay counted; rates start over).
  void set_limits(Limits limits);

  // A connection accepted from `address`: every one is charged to the address's rate, then
  // counted as unauthenticated (`ticket`) unless a limit refuses it.
  std::optional<Refused> admit(const std::string& address, Clock::time_point now, Ticket& ticket);

  std::size_t unauthenticated() const;
  std::size_t unauthenticated_from(std::string_view address) const;

 private:
  bool take_rate(const std::string& address, Clock::time_point now);
  std::shared_ptr<State> state_;
};

std::string_view to_string(ConnectionGate::Refused r);

}  // namespace waddle::core
