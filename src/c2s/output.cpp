#include "c2s/output.h"

#include "c2s/c2s.h"
#include "core/jid.h"
#include "im/im_service.h"
#include "metrics/metrics.h"
#include "router/router.h"
#include "stream/xml_stream.h"
#include "xml/parser.h"
#include "xml/stanza.h"

namespace waddle::c2s {
using xml::Element;

namespace {

constexpr std::string_view kRequest = "<r xmlns='urn:xmpp:sm:3'/>";

// Messages and IQ requests must reach the client or be answered: they are kept until written
// (or acknowledged) and routed again when the session ends first.
bool must_not_vanish(const Element& stanza) {
  if (stanza.name() == "message") return true;
  if (stanza.name() != "iq") return false;
  const auto type = stanza.attr("type");
  return type == "get" || type == "set";
}

}  // namespace

Output::Output(C2sContext& ctx, std::shared_ptr<stream::XmlStream> stream)
    : ctx_(ctx),
      stream_(std::move(stream)),
      csi_(ctx.config.c2s.csi_queue_size, ctx.config.c2s.csi_queue_bytes) {}

void Output::deliver(const Element& stanza) {
  std::string bytes = xml::serialize_stanza(stanza, xml::ns::kClient);
  const bool keep = must_not_vanish(stanza);
  if (!keep && !sm_.enabled() && !csi_.inactive()) return stream_->send(bytes);
  // Kept until written: not with much more capacity than it uses (a copy costs CPU on
  // every message, so only then).
  if (bytes.capacity() > bytes.size() + bytes.size() / 2 + 64) bytes.shrink_to_fit();
  auto shared = std::make_shared<const std::string>(std::move(bytes));
  if (csi_.inactive() && attached_ && hold(stanza, {}, shared)) return;
  write({}, std::move(shared), keep);
}

void Output::deliver_shared(const Element& stanza, const xml::SharedStanza& shared,
                            std::string_view to) {
  std::string head = shared.head(to);
  if (csi_.inactive() && attached_ && hold(stanza, head, shared.tail)) return;
  write(std::move(head), shared.tail, must_not_vanish(stanza));
}

bool Output::hold(const Element& stanza, const std::string& head,
                  const std::shared_ptr<const std::string>& bytes) {
  if (auto key = ClientState::hold_key(stanza); !key.empty()) {
    const auto replaced = csi_.replaced();
    const auto held = csi_.hold(std::move(key), {head, bytes});
    if (ctx_.metrics && csi_.replaced() != replaced) ctx_.metrics->csi("replaced");
    if (held == ClientState::Hold::kHeld) {
      if (ctx_.metrics) ctx_.metrics->csi("held");
      return true;
    }
    // Past a bound: what is held goes now, ahead of this one (counted per stanza sent).
    if (ctx_.metrics && !csi_.empty())
      ctx_.metrics->csi(held == ClientState::Hold::kFull ? "overflow" : "overflow_bytes",
                        csi_.size());
  }
  flush_held();  // what waited goes first
  return false;
}

void Output::write(std::string head, std::shared_ptr<const std::string> bytes, bool keep) {
  if (!sm_.enabled()) {
    if (!head.empty()) stream_->send(head);
    stream_->send(bytes);
    if (keep) track(std::move(head), std::move(bytes));
    return;
  }
  if (attached_) {
    if (!head.empty()) stream_->send(head);
    stream_->send(bytes);
  }
  sm_.sent({std::move(head), std::move(bytes), keep});
  if (attached_ && sm_.request_now()) stream_->send(kRequest);
  if (overflowing_ || !overflow_) return;
  const auto over = sm_.over(ctx_.config.c2s.max_unacked_stanzas, ctx_.config.c2s_unacked_bytes());
  if (over != Overflow::kNone) {
    overflowing_ = true;
    overflow_(over);
  }
}

void Output::flush_held() {
  if (csi_.empty()) return;
  for (auto& held : csi_.take()) write(std::move(held.head), std::move(held.bytes), false);
}

void Output::set_inactive(bool inactive) {
  csi_.set_inactive(inactive);
  if (!inactive) flush_held();
}

void Output::answer_request() {
  if (!attached_) return;
  stream_->send("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(sm_.handled()) + "'/>");
}

bool Output::acknowledged(std::uint32_t h) {
  if (!sm_.acked(h)) return false;
  if (attached_ && sm_.request_now()) stream_->send(kRequest);
  return true;
}

void Output::detach() {
  flush_held();  // (attached still: nothing is held once detached, all is kept below)
  attached_ = false;
}

void Output::take_over(Output& old) {
  old.flush_held();
  sm_ = std::move(old.sm_);
  sm_.connection_changed();
  old.sm_ = {};
}

void Output::resend_unacked() {
  for (const auto& u : sm_.unacked()) {
    if (!u.head.empty()) stream_->send(u.head);
    stream_->send(u.bytes);
  }
  if (sm_.request_now()) stream_->send(kRequest);
}

// --- What the client did not get ---

void Output::track(std::string head, std::shared_ptr<const std::string> bytes) {
  const std::uint64_t written = stream_->bytes_out();
  std::size_t done = 0;
  while (done < unwritten_.size() && unwritten_[done].end <= written) ++done;
  unwritten_.erase(unwritten_.begin(), unwritten_.begin() + static_cast<std::ptrdiff_t>(done));
  unwritten_.push_back({stream_->bytes_queued(), std::move(head), std::move(bytes)});
}

void Output::reroute(const core::Jid& jid, const router::LocalSession* self) {
  std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> pending;
  if (sm_.enabled()) {
    for (auto& u : sm_.take_unacked())
      if (u.must_not_vanish) pending.emplace_back(std::move(u.head), std::move(u.bytes));
  } else {
    const std::uint64_t written = stream_->bytes_out();
    for (auto& u : unwritten_)
      if (u.end > written) pending.emplace_back(std::move(u.head), std::move(u.bytes));
  }
  unwritten_.clear();
  csi_.take();  // presence and chat states: transient, nobody else needs them
  for (const auto& [head, bytes] : pending) {
    auto stanza = xml::parse_element(head + *bytes, xml::ns::kClient);
    if (!stanza) continue;  // (we serialised it)
    auto outcome = route_again(std::move(*stanza), jid, self);
    if (ctx_.metrics) ctx_.metrics->unwritten(outcome);
  }
}

std::string_view Output::route_again(Element stanza, const core::Jid& jid,
                                     const router::LocalSession* self) {
  if (stanza.name() == "iq") {
    ctx_.router.bounce(stanza, core::StanzaError::kServiceUnavailable);
    return "bounced";
  }
  const auto type = stanza.attr("type");
  if (type == "error" || type == "headline") return "dropped";
  if (type == "groupchat") {
    ctx_.router.bounce(stanza, core::StanzaError::kServiceUnavailable);
    return "bounced";
  }
  // To the bare JID it was delivered to every available resource: only when no other
  // resource is available does it need to go again (to offline storage).
  auto to = core::Jid::parse(stanza.attr("to"));
  if (to && to->is_bare())
    for (auto* other : ctx_.router.sessions_of(*to))
      if (other != self && other->available) return "dropped";
  stanza.set_attr("to", jid.str());  // RFC 6121 §8.5.3.2.1: the resource is gone
  ctx_.im.to_local_again(std::move(stanza));
  return "rerouted";
}

}  // namespace waddle::c2s
