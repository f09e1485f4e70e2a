// Tracking deferred handling of routed stanzas; see handling.h.
#include "router/handling.h"

namespace waddle::router {
namespace {
// The reactor routes on one thread; a scope is only ever open on it.
thread_local Handling::Scope* current = nullptr;
thread_local Handling::Resume* resumed = nullptr;
}  // namespace

Handling::Scope::Scope(const std::shared_ptr<Handling>& handling)
    : handling_(handling), seq_(++handling->received_), outer_(current) {
  current = this;
}

Handling::Scope::~Scope() {
  current = outer_;
  hold_.reset();  // the last owner when no handler kept it: handled now
}

Handling::Resume::Resume(std::shared_ptr<void> hold)
    : hold_(std::move(hold)), scope_(current), outer_(resumed) {
  current = nullptr;
  resumed = this;
}

Handling::Resume::~Resume() {
  current = scope_;
  resumed = outer_;
}

std::shared_ptr<void> Handling::hold() {
  Scope* scope = current;
  if (!scope) return resumed ? resumed->hold_ : std::shared_ptr<void>();
  if (!scope->hold_) {
    auto handling = scope->handling_;
    const std::uint64_t seq = scope->seq_;
    handling->pending_.insert(seq);
    // Owns no object (the pointer only makes the hold non-empty); the deleter marks it done.
    scope->hold_ = std::shared_ptr<void>(static_cast<void*>(handling.get()),
                                         [handling, seq](void*) { handling->done(seq); });
  }
  return scope->hold_;
}

void Handling::done(std::uint64_t seq) {
  const bool was_first = !pending_.empty() && *pending_.begin() == seq;
  pending_.erase(seq);
  if (was_first && on_progress_) on_progress_();
}

}  // namespace waddle::router
