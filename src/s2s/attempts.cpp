// Connection attempts and their deadlines; see attempts.h.
#include "s2s/attempts.h"

#include <algorithm>

#include "net/listen.h"

namespace waddle::s2s {
namespace asio = boost::asio;

void Attempt::abort(Abort why) {
  if (aborted_ != Abort::kNone) return;
  aborted_ = why;
  signal_.emit(asio::cancellation_type::terminal);
}

asio::awaitable<void> Attempt::expire(std::shared_ptr<Attempt> self, Clock::time_point when) {
  if (self->finished_) co_return;  // finished before this coroutine first ran
  const bool expired = co_await self->deadline_->wait_until(when);
  if (expired && !self->finished_) self->abort(Abort::kDeadline);
}

asio::awaitable<bool> AttemptGroup::admit(Clock::time_point deadline) {
  if (aborted_) co_return false;
  if (waiting_.empty() && room()) co_return true;
  std::shared_ptr<Timer> timer = time_.make_timer();
  waiting_.push_back(timer);
  for (;;) {
    co_await timer->wait_until(deadline);  // woken early by wake_next() or abort_all()
    const bool first = !waiting_.empty() && waiting_.front() == timer;
    if (!aborted_ && first && room()) {
      waiting_.pop_front();
      wake_next();  // there may be room for more than one
      co_return true;
    }
    if (aborted_ || time_.now() >= deadline) {
      std::erase(waiting_, timer);
      wake_next();
      co_return false;
    }
  }
}

void AttemptGroup::wake_next() {
  if (!waiting_.empty() && room()) waiting_.front()->cancel();
}

std::shared_ptr<Attempt> AttemptGroup::start(Clock::time_point deadline) {
  auto attempt = std::make_shared<Attempt>();
  live_.insert(attempt);
  if (deadline != Clock::time_point::max()) {
    attempt->deadline_ = time_.make_timer();
    net::spawn_logged(ex_, Attempt::expire(attempt, deadline), "s2s connect deadline");
  }
  return attempt;
}

void AttemptGroup::finish(const std::shared_ptr<Attempt>& attempt) {
  attempt->finished_ = true;
  if (attempt->deadline_) attempt->deadline_->cancel();
  live_.erase(attempt);
  wake_next();
}

void AttemptGroup::abort_all() {
  aborted_ = true;
  for (const auto& a : std::set<std::shared_ptr<Attempt>>(live_))
    a->abort(Attempt::Abort::kShutdown);
  for (const auto& t : waiting_) t->cancel();
}

}  // namespace waddle::s2s
