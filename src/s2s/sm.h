// XEP-0198 stream management on server links, without resumption (which servers do not use):
// the sending side keeps every stanza written after <enable/> (as the bytes written, which
// cost one allocation each rather than a parsed tree) until the peer's <a h=…/> says it was
// handled, so that when the link dies the rest can be sent again on the next link; the
// receiving side answers <r/> with the number of stanzas it has handled safely (delivered to a
// local session, stored, or queued for the next hop: router/handling.h), never more.
// 'h' counts modulo 2^32 (XEP-0198 §4). Pure logic: the pool and the inbound stream do the I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "router/handling.h"
#include "xml/element.h"

namespace waddle::s2s {

// The side that sends stanzas (our outbound streams).
class SmSender {
 public:
  // An <r/> goes out at once when this many stanzas are unacknowledged and not yet asked
  // about (whether or not earlier requests are answered yet); fewer are asked about after a
  // short delay (the pool's ack timer) once the last request has been answered.
  static constexpr std::size_t kRequestEvery = 64;

  // <enable/> was sent: stanzas written from now on are counted.
  void enable() { enabled_ = true; }
  bool enabled() const { return enabled_; }
  // The peer answered <failed/>: nothing is counted any more (what was kept is forgotten, as
  // if stream management had never been on).
  void disable();

  // A stanza was written (`bytes`: as serialised for a jabber:server stream): what to do
  // about acknowledgements.
  enum class Next {
    kNothing,  // a request is outstanding or one is already planned
    kRequest,  // send an <r/> now (kRequestEvery stanzas not asked about)
    kPlan,     // the first stanza not asked about: plan an <r/> after a short delay
  };
  Next sent(std::string bytes);
  // Stanzas written but not covered by a request yet, and the last request answered.
  bool request_due() const { return enabled_ && !awaiting_ && unrequested() > 0; }
  // An <r/> was sent.
  void requested();
  // <a h=…/>: acknowledged stanzas are dropped. nullopt when fine, else the error text
  // (h acknowledges more than was sent).
  std::optional<std::string> acked(std::uint32_t h);
  // The stream ended: what the peer has not acknowledged, in the order written.
  std::deque<std::string> take_unacked();

  std::size_t unacked() const { return unacked_.size(); }
  std::uint32_t sent_count() const {
    return acked_h_ + static_cast<std::uint32_t>(unacked_.size());
  }

 private:
  std::size_t unrequested() const { return sent_count() - requested_h_; }
  bool enabled_ = false;
  bool awaiting_ = false;  // an <r/> is outstanding
  std::deque<std::string> unacked_;
  std::uint32_t acked_h_ = 0;      // the peer's last 'h'
  std::uint32_t requested_h_ = 0;  // sent_count() when the last <r/> went out
};

// The side that receives stanzas (our inbound streams).
class SmReceiver {
 public:
  SmReceiver() : handling_(std::make_shared<router::Handling>()) {}

  // <enable/> was answered with <enabled/>: stanzas from now on are counted.
  void enable() { enabled_ = true; }
  bool enabled() const { return enabled_; }
  // Routing one received stanza: keep the scope alive around router.route() (counted only
  // once enabled).
  std::optional<router::Handling::Scope> scope() {
    if (!enabled_) return std::nullopt;
    return std::optional<router::Handling::Scope>(std::in_place, handling_);
  }
  // <r/>: the 'h' to answer with now, or nullopt when stanzas received before it are still
  // being handled; then answer_due() says when to answer (after on_progress()).
  std::optional<std::uint32_t> request();
  // Deferred handling finished: the answer owed to an earlier <r/>, if it can be given now.
  std::optional<std::uint32_t> answer_due();
  // What may be acknowledged right now (an unrequested <a/> before the stream closes).
  std::uint32_t handled() const { return static_cast<std::uint32_t>(handling_->handled()); }
  router::Handling& handling() { return *handling_; }

 private:
  bool enabled_ = false;
  std::shared_ptr<router::Handling> handling_;
  std::optional<std::uint64_t> owed_;  // an <r/> waits until this many are handled
};

}  // namespace waddle::s2s
