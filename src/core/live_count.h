// Counts what is alive (client sessions, server streams) and tells whoever waits for the
// count to reach zero, without polling: shutdown closes everything, then waits for the call.
// Single-threaded: everything happens on the reactor thread.
#pragma once

#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

namespace waddle::core {

class LiveCount {
 public:
  // Held by each living thing; the count drops when it is destroyed.
  class Token {
   public:
    Token() = default;
    explicit Token(LiveCount& count) : count_(&count) { ++count_->n_; }
    Token(Token&& o) noexcept : count_(std::exchange(o.count_, nullptr)) {}
    Token& operator=(Token&& o) noexcept {
      if (this != &o) {
        release();
        count_ = std::exchange(o.count_, nullptr);
      }
      return *this;
    }
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;
    ~Token() { release(); }

   private:
    void release() {
      if (auto* c = std::exchange(count_, nullptr)) c->leave();
    }
    LiveCount* count_ = nullptr;
  };

  Token enter() { return Token(*this); }
  std::size_t size() const { return n_; }
  // `done` runs once the count is zero: at once if it is zero now, else when the last token
  // goes.
  void when_empty(std::function<void()> done) {
    if (n_ == 0) return done();
    waiters_.push_back(std::move(done));
  }

 private:
  void leave() {
    if (--n_ != 0) return;
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& w : waiters) w();
  }
  std::size_t n_ = 0;
  std::vector<std::function<void()>> waiters_;
};

}  // namespace waddle::core
