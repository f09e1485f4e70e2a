// XEP-0198 stream management on client sessions, the bookkeeping without I/O: what the
// session wrote since <enable/> and the client has not acknowledged (kept as the bytes written,
// shared with other sessions where a fan-out serialised the stanza once), and how many stanzas
// the client sent that the server handled. On <resume/> the unacknowledged stanzas are written
// again; when the session ends without resumption, the messages among them go where a
// message to a resource that is gone goes (RFC 6121 §8.5.3.2.1). 'h' counts modulo 2^32 (§4).
// What is kept is bounded in stanzas and in bytes (as written: a shared stanza's head and its
// shared bytes, in full for each session): past either bound the session ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace waddle::c2s {

class StreamManagement {
 public:
  struct Unacked {
    std::string head;  // before `bytes` (a shared stanza's envelope), or empty
    std::shared_ptr<const std::string> bytes;
    bool must_not_vanish = false;  // a message or an IQ request: rerouted if never acked
  };

  // Which bound the unacknowledged stanzas went past.
  enum class Overflow { kNone, kStanzas, kBytes };

  // <enable/> was answered with <enabled/>; `id` is empty unless the session may be resumed.
  void enable(std::string id) {
    enabled_ = true;
    id_ = std::move(id);
  }
  bool enabled() const { return enabled_; }
  bool resumable() const { return !id_.empty(); }
  const std::string& id() const { return id_; }

  // A stanza was written to the client (or kept for it while it is away).
  void sent(Unacked stanza) {
    bytes_ += size_of(stanza);
    unacked_.push_back(std::move(stanza));
  }
  // What one kept stanza counts for in unacked_bytes().
  static std::uint64_t size_of(const Unacked& u) {
    return u.head.size() + (u.bytes ? u.bytes->size() : 0);
  }
  // The client's <a h=…/> (or the h of its <resume/>): acknowledged stanzas are dropped.
  // False when h acknowledges more than was sent (nothing changes then).
  bool acked(std::uint32_t h);
  // What the client has not acknowledged, oldest first.
  const std::deque<Unacked>& unacked() const { return unacked_; }
  std::deque<Unacked> take_unacked();
  std::size_t unacked_count() const { return unacked_.size(); }
  std::uint64_t unacked_bytes() const { return bytes_; }
  // More than `max_stanzas` or more than `max_bytes` wait for an acknowledgement (the count
  // is checked first).
  Overflow over(std::size_t max_stanzas, std::uint64_t max_bytes) const {
    if (unacked_.size() > max_stanzas) return Overflow::kStanzas;
    if (bytes_ > max_bytes) return Overflow::kBytes;
    return Overflow::kNone;
  }
  std::uint32_t sent_count() const {
    return acked_h_ + static_cast<std::uint32_t>(unacked_.size());
  }

  // A stanza from the client was handled; the 'h' to answer an <r/> with.
  void received() { ++handled_; }
  std::uint32_t handled() const { return handled_; }

  // At most one <r/> is outstanding: true when one should be sent now (and notes it sent).
  bool request_now() {
    if (!enabled_ || awaiting_ || sent_count() == requested_h_) return false;
    awaiting_ = true;
    requested_h_ = sent_count();
    return true;
  }
  // The connection changed (resumption): a request sent on the old one will not be answered.
  void connection_changed() { awaiting_ = false; }

 private:
  bool enabled_ = false;
  bool awaiting_ = false;
  std::string id_;
  std::deque<Unacked> unacked_;
  std::uint64_t bytes_ = 0;
  std::uint32_t acked_h_ = 0;      // the client's last 'h'
  std::uint32_t requested_h_ = 0;  // sent_count() when the last <r/> went out
  std::uint32_t handled_ = 0;      // stanzas received from the client
};

}  // namespace waddle::c2s
