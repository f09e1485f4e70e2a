// Connection attempts in flight, each with an Asio cancellation signal that the connector
// listens to: a deadline (connect_timeout) or shutdown emits it, and the connector then
// closes whatever the attempt has open. The group owns the deadlines and can abort them all.
// It also bounds how many are in flight at once (s2s.max_connecting): more wait their turn.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>

#include "s2s/time_source.h"

namespace waddle::s2s {

class Attempt {
 public:
  enum class Abort { kNone, kDeadline, kShutdown };

  // The slot to hand to Connector::connect.
  boost::asio::cancellation_slot slot() { return signal_.slot(); }
  // Why the attempt was aborted, if it was.
  Abort aborted() const { return aborted_; }
  bool timed_out() const { return aborted_ == Abort::kDeadline; }

 private:
  friend class AttemptGroup;
  void abort(Abort why);
  static boost::asio::awaitable<void> expire(std::shared_ptr<Attempt> self, Clock::time_point when);

  boost::asio::cancellation_signal signal_;
  std::unique_ptr<Timer> deadline_;
  Abort aborted_ = Abort::kNone;
  bool finished_ = false;
};

class AttemptGroup {
 public:
  // At most *max_in_flight attempts at once, read when asked (null: no bound).
  AttemptGroup(boost::asio::any_io_executor ex, TimeSource& time,
               const std::uint32_t* max_in_flight = nullptr)
      : ex_(std::move(ex)), time_(time), max_(max_in_flight) {}
  AttemptGroup(const AttemptGroup&) = delete;
  AttemptGroup& operator=(const AttemptGroup&) = delete;

  // Waits until one more attempt may start (fewer than max_in_flight in flight; those that
  // wait start in the order they came): false when `deadline` or abort_all() came first.
  boost::asio::awaitable<bool> admit(Clock::time_point deadline);
  // A new attempt, aborted at `deadline` unless finished first, or by abort_all().
  std::shared_ptr<Attempt> start(Clock::time_point deadline);
  // The attempt ended (whichever way): its deadline is disarmed.
  void finish(const std::shared_ptr<Attempt>& attempt);
  // Shutdown: aborts every attempt in flight, and every wait to start one.
  void abort_all();
  std::size_t size() const { return live_.size(); }

 private:
  bool room() const { return !max_ || live_.size() < *max_; }
  void wake_next();

  boost::asio::any_io_executor ex_;
  TimeSource& time_;
  const std::uint32_t* max_;
  bool aborted_ = false;
  std::set<std::shared_ptr<Attempt>> live_;
  std::deque<std::shared_ptr<Timer>> waiting_;  // each waiter's timer, in order of arrival
};

}  // namespace waddle::s2s
