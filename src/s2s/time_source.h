// Time as the federation code sees it: now() and timers, behind a small interface so that
// component tests can drive the pool with a clock they advance by hand (retries, deadlines,
// idle close and pings in milliseconds, not seconds). The server uses SteadyTimeSource.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>

namespace waddle::s2s {

using Clock = std::chrono::steady_clock;

class Timer {
 public:
  virtual ~Timer() = default;
  // Waits until `when`: true when the time came, false when cancel() (or an Asio
  // cancellation of the awaiting operation) ended the wait first.
  virtual boost::asio::awaitable<bool> wait_until(Clock::time_point when) = 0;
  // Ends the pending wait, if any (a wait started later is not affected).
  virtual void cancel() = 0;
};

class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual Clock::time_point now() const = 0;
  virtual std::unique_ptr<Timer> make_timer() = 0;
};

// std::chrono::steady_clock and Asio's steady_timer.
class SteadyTimeSource final : public TimeSource {
 public:
  explicit SteadyTimeSource(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}
  Clock::time_point now() const override { return Clock::now(); }
  std::unique_ptr<Timer> make_timer() override;

 private:
  boost::asio::any_io_executor ex_;
};

}  // namespace waddle::s2s
