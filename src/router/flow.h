// Backpressure from where stanzas wait back to where they are read. A queue over its limit
// (an S2S link still being set up) cannot refuse a stanza without bouncing it, and bouncing a
// legitimate peer's traffic is loss to its users. Instead it asks the source of the stanza
// being routed, if that source can wait, to slow down: an inbound server stream stops routing
// (and soon reading: TCP pushes back on the peer) until every queue it is waiting for has
// drained or gone away.
//
// The source routes each stanza inside a Flow::Scope. A queue over its limit calls
// Flow::slow_down(its Congestion) and keeps the stanza when that returns true; when it drains,
// Congestion::relieve() lets the waiting sources go on. Outside a scope (a local client, a
// timer), slow_down() returns false and the queue refuses the stanza as it always did.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

namespace waddle::router {

class Flow;

// Owned by a queue: the sources waiting for it to drain.
class Congestion {
 public:
  Congestion() = default;
  Congestion(const Congestion&) = delete;
  Congestion& operator=(const Congestion&) = delete;
  ~Congestion() { relieve(); }

  // The queue has drained (or is gone): every source waiting for it may go on.
  void relieve();
  std::size_t waiting() const { return waiting_.size(); }

 private:
  friend class Flow;
  std::vector<std::weak_ptr<Flow>> waiting_;
};

// How long a queue may make its source wait: until a remote server answers (kLong: seconds,
// a link being set up) or only until local work catches up (kBrief: the storage thread).
enum class Wait { kLong, kBrief };

// One source of routed stanzas that can wait (an inbound server stream; a client session,
// for brief waits only: a client that cannot be read cannot answer pings either).
class Flow : public std::enable_shared_from_this<Flow> {
 public:
  // `on_resume` runs when the last congestion holding the source back is relieved (from
  // inside the queue's code: it should only schedule the work). `longest`: the longest wait
  // this source accepts.
  explicit Flow(std::function<void()> on_resume, Wait longest = Wait::kLong)
      : on_resume_(std::move(on_resume)), longest_(longest) {}
  Flow(const Flow&) = delete;
  Flow& operator=(const Flow&) = delete;

  bool paused() const { return holds_ > 0; }

  // While alive, the stanza being routed comes from `flow`.
  class Scope {
   public:
    explicit Scope(Flow& flow);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Flow* outer_;
  };

  // Called by a queue over its limit while a stanza is routed: the stanza's source waits for
  // `congestion` (true), or there is no source that can wait as long as `wait` (false:
  // refuse the stanza).
  static bool slow_down(Congestion& congestion, Wait wait = Wait::kLong);

  // Work that the stanza being routed leaves to be routed later (a room posts its answers):
  // the current source (or null outside a scope), to route that work in a Scope of its own.
  // Until the last copy of the pointer is gone, the work counts in pending(), and the source
  // lets it run before it routes its next stanza.
  static std::shared_ptr<Flow> carry();
  std::size_t pending() const { return pending_; }

 private:
  friend class Congestion;
  void release();

  std::size_t holds_ = 0;    // congestions this source waits for
  std::size_t pending_ = 0;  // carry() pointers alive
  std::function<void()> on_resume_;
  Wait longest_;
};

}  // namespace waddle::router
