// XEP-0352 client state indication, the holding back without I/O: while a client is inactive,
// presence updates and chat-state notifications wait, only the latest per sender (an older
// one is replaced: it would be out of date when shown); anything else that arrives sends
// them first, in the order they came, so that nothing overtakes what it followed. What waits
// is bounded in stanzas (senders) and in bytes (as written); past either, all of it is sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "xml/element.h"

namespace waddle::c2s {

class ClientState {
 public:
  struct Held {
    std::string head;  // before `bytes` (a shared stanza's envelope), or empty
    std::shared_ptr<const std::string> bytes;
  };

  // What hold() did: held, or not (the caller sends everything held, then the stanza) because
  // one more stanza would exceed the bound in stanzas (kFull) or in bytes (kFullBytes).
  enum class Hold { kHeld, kFull, kFullBytes };

  ClientState(std::size_t capacity, std::uint64_t capacity_bytes)
      : capacity_(capacity), capacity_bytes_(capacity_bytes) {}

  bool inactive() const { return inactive_; }
  void set_inactive(bool inactive) { inactive_ = inactive; }

  // The key under which `stanza` may wait while the client is inactive ("p" or "c" and its
  // sender), or empty when it must go at once: presence without a type or 'unavailable', and
  // messages that carry nothing but a chat state (XEP-0085) may wait.
  static std::string hold_key(const xml::Element& stanza);

  // Holds a stanza (replacing what its key held: that one is dropped, never sent, whatever
  // the outcome). Not held when nothing may be held (a bound of 0) or when holding it would
  // put more than the bounds in the queue.
  Hold hold(std::string key, Held stanza);
  // Everything held, in the order held (the queue is empty afterwards).
  std::list<Held> take();
  bool empty() const { return order_.empty(); }
  std::size_t size() const { return order_.size(); }
  // The bytes held (each stanza's head and bytes).
  std::uint64_t bytes() const { return bytes_; }
  static std::uint64_t size_of(const Held& h) {
    return h.head.size() + (h.bytes ? h.bytes->size() : 0);
  }
  // Held stanzas replaced by a newer one from the same sender (never sent).
  std::size_t replaced() const { return replaced_; }

 private:
  std::size_t capacity_;
  std::uint64_t capacity_bytes_;
  std::uint64_t bytes_ = 0;
  bool inactive_ = false;
  std::list<Held> order_;
  std::unordered_map<std::string, std::list<Held>::iterator> by_key_;
  std::size_t replaced_ = 0;
};

}  // namespace waddle::c2s
