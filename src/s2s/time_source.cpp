// The real time source: steady_clock and steady_timer.
#include "s2s/time_source.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace waddle::s2s {
namespace asio = boost::asio;

namespace {

class SteadyTimer final : public Timer {
 public:
  explicit SteadyTimer(asio::any_io_executor ex) : timer_(std::move(ex)) {}
  asio::awaitable<bool> wait_until(Clock::time_point when) override {
    timer_.expires_at(when);
    auto [ec] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return !ec;
  }
  void cancel() override { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
};

}  // namespace

std::unique_ptr<Timer> SteadyTimeSource::make_timer() {
  return std::make_unique<SteadyTimer>(ex_);
}

}  // namespace waddle::s2s
