// What a client session writes, and what becomes of it when the client may not have got it.
// Without stream management, messages and IQ requests are kept until written; with it (XEP-0198)
// every stanza is kept until the client acknowledges it, also while the session waits to be
// resumed with no connection at all. While the client is inactive (XEP-0352) presence and chat
// states wait (c2s/logic/csi.h). When the session ends, what the client did not get goes where
// a message to a resource that is gone goes, or bounces.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "c2s/logic/csi.h"
#include "c2s/logic/stream_management.h"
#include "xml/element.h"

namespace waddle::stream {
class XmlStream;
}
namespace waddle::router {
class LocalSession;
}
namespace waddle::core {
class Jid;
}

namespace waddle::c2s {

struct C2sContext;

class Output {
 public:
  Output(C2sContext& ctx, std::shared_ptr<stream::XmlStream> stream);

  // LocalSession::deliver and deliver_shared.
  void deliver(const xml::Element& stanza);
  void deliver_shared(const xml::Element& stanza, const xml::SharedStanza& shared,
                      std::string_view to);

  // --- Stream management ---
  StreamManagement& sm() { return sm_; }
  // The client's <r/>: answered with <a h=…/>.
  void answer_request();
  // The client's <a h=…/>; false when h acknowledges more than was sent.
  bool acknowledged(std::uint32_t h);
  // Called once when more than max_unacked_stanzas, or more than max_unacked_bytes (never
  // less than twice the largest stanza: Config::c2s_unacked_bytes), wait for an
  // acknowledgement, with the bound passed; it is called from inside a delivery (a fan-out may
  // be iterating the router), so it should only post.
  using Overflow = StreamManagement::Overflow;
  void on_overflow(std::function<void(Overflow)> handler) { overflow_ = std::move(handler); }
  // The connection is gone and the session waits to be resumed: stanzas are kept, not written.
  void detach();
  bool attached() const { return attached_; }
  // Resumption on a new connection: this output takes over what `old` kept (and held).
  void take_over(Output& old);
  // After <resumed/>: writes again what the client has not acknowledged, then asks for an ack.
  void resend_unacked();

  // --- Client state indication ---
  void set_inactive(bool inactive);

  // The session has ended (left the router, its stream closed): messages and IQ requests the
  // client did not get (not written or, with stream management, not acknowledged) are routed
  // again as if never delivered; `jid` is the session's, `self` the session itself.
  void reroute(const core::Jid& jid, const router::LocalSession* self);

 private:
  struct Unwritten {
    std::uint64_t end;  // the stream's bytes_queued() once it was queued
    std::string head;   // before `bytes` (a shared stanza's head), or empty
    std::shared_ptr<const std::string> bytes;
  };

  void write(std::string head, std::shared_ptr<const std::string> bytes, bool keep);
  // Holds a stanza for an inactive client (true), or sends what was held (false: the caller
  // writes the stanza next).
  bool hold(const xml::Element& stanza, const std::string& head,
            const std::shared_ptr<const std::string>& bytes);
  void flush_held();
  void track(std::string head, std::shared_ptr<const std::string> bytes);
  std::string_view route_again(xml::Element stanza, const core::Jid& jid,
                               const router::LocalSession* self);

  C2sContext& ctx_;
  std::shared_ptr<stream::XmlStream> stream_;
  bool attached_ = true;
  StreamManagement sm_;
  ClientState csi_;
  std::vector<Unwritten> unwritten_;  // without stream management, in the order queued
  std::function<void(Overflow)> overflow_;
  bool overflowing_ = false;
};

}  // namespace waddle::c2s
