// Backpressure between queues and the sources feeding them; see flow.h.
#include "router/flow.h"

#include <algorithm>

namespace waddle::router {
namespace {
// The reactor routes on one thread; a scope is only ever open on it.
thread_local Flow* current = nullptr;
}  // namespace

void Congestion::relieve() {
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& w : waiting)
    if (auto flow = w.lock()) flow->release();
}

Flow::Scope::Scope(Flow& flow) : outer_(current) {
  current = &flow;
}

Flow::Scope::~Scope() {
  current = outer_;
}

bool Flow::slow_down(Congestion& congestion, Wait wait) {
  Flow* flow = current;
  if (!flow) return false;
  if (wait == Wait::kLong && flow->longest_ == Wait::kBrief) return false;
  std::shared_ptr<Flow> self = flow->weak_from_this().lock();
  if (!self) return false;  // not owned by a shared_ptr: it could not be woken
  const bool already = std::any_of(congestion.waiting_.begin(), congestion.waiting_.end(),
                                   [&](const std::weak_ptr<Flow>& w) { return w.lock() == self; });
  if (!already) {
    congestion.waiting_.push_back(self);
    ++flow->holds_;
  }
  return true;
}

std::shared_ptr<Flow> Flow::carry() {
  if (!current) return nullptr;
  std::shared_ptr<Flow> self = current->weak_from_this().lock();
  if (!self) return nullptr;
  ++self->pending_;
  Flow* raw = self.get();
  return std::shared_ptr<Flow>(raw, [self = std::move(self)](Flow* f) { --f->pending_; });
}

void Flow::release() {
  if (holds_ == 0) return;
  if (--holds_ == 0 && on_resume_) on_resume_();
}

}  // namespace waddle::router
