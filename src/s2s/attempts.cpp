// Connection attempts and their deadlines; see attempts.h.
#include "s2s/attempts.h"

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
}

void AttemptGroup::abort_all() {
  for (const auto& a : std::set<std::shared_ptr<Attempt>>(live_))
    a->abort(Attempt::Abort::kShutdown);
}

}  // namespace waddle::s2s
