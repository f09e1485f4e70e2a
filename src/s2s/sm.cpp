// Stream management on server links; see sm.h.
#include "s2s/sm.h"

namespace waddle::s2s {

void SmSender::disable() {
  enabled_ = false;
  awaiting_ = false;
  unacked_.clear();
}

SmSender::Next SmSender::sent(std::string bytes) {
  if (!enabled_) return Next::kNothing;
  unacked_.push_back(std::move(bytes));
  const std::size_t n = unrequested();
  // A batch is asked about at once, even with a request outstanding: behind a backlog the
  // answers then keep coming as the peer reads through it, releasing what it handled and
  // showing that the link is alive.
  if (n >= kRequestEvery) return Next::kRequest;
  if (awaiting_) return Next::kNothing;
  return n == 1 ? Next::kPlan : Next::kNothing;
}

void SmSender::requested() {
  awaiting_ = true;
  requested_h_ = sent_count();
}

std::optional<std::string> SmSender::acked(std::uint32_t h) {
  if (!enabled_) return std::nullopt;
  const std::uint32_t newly = h - acked_h_;                 // modulo 2^32
  const std::uint32_t to_latest = requested_h_ - acked_h_;  // what the last <r/> asked about
  if (newly > unacked_.size())
    return "acknowledged " + std::to_string(h) + " stanzas, but only " +
           std::to_string(sent_count()) + " were sent";
  unacked_.erase(unacked_.begin(), unacked_.begin() + newly);
  acked_h_ = h;
  awaiting_ = awaiting_ && newly < to_latest;  // an answer to an earlier <r/>
  return std::nullopt;
}

std::deque<std::string> SmSender::take_unacked() {
  auto rest = std::move(unacked_);
  unacked_.clear();
  acked_h_ = requested_h_ = 0;
  awaiting_ = false;
  return rest;
}

std::optional<std::uint32_t> SmReceiver::request() {
  if (handling_->handled() >= handling_->received())
    return static_cast<std::uint32_t>(handling_->received());
  owed_ = handling_->received();
  return std::nullopt;
}

std::optional<std::uint32_t> SmReceiver::answer_due() {
  if (!owed_ || handling_->handled() < *owed_) return std::nullopt;
  owed_.reset();
  return static_cast<std::uint32_t>(handling_->handled());
}

}  // namespace waddle::s2s
