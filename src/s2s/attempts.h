// Connection attempts in flight, each with an Asio cancellation signal that the connector
// listens to: a deadline (connect_timeout) or shutdown emits it, and the connector then
// closes whatever the attempt has open. The group owns the deadlines and can abort them all.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
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
  AttemptGroup(boost::asio::any_io_executor ex, TimeSource& time)
      : ex_(std::move(ex)), time_(time) {}
  AttemptGroup(const AttemptGroup&) = delete;
  AttemptGroup& operator=(const AttemptGroup&) = delete;

  // A new attempt, aborted at `deadline` unless finished first, or by abort_all().
  std::shared_ptr<Attempt> start(Clock::time_point deadline);
  // The attempt ended (whichever way): its deadline is disarmed.
  void finish(const std::shared_ptr<Attempt>& attempt);
  // Shutdown: aborts every attempt in flight.
  void abort_all();
  std::size_t size() const { return live_.size(); }

 private:
  boost::asio::any_io_executor ex_;
  TimeSource& time_;
  std::set<std::shared_ptr<Attempt>> live_;
};

}  // namespace waddle::s2s
