#include "c2s/logic/stream_management.h"

#include <utility>

namespace waddle::c2s {

bool StreamManagement::acked(std::uint32_t h) {
  // Modulo 2^32: h is at most sent_count() ahead of the last h, measured the same way.
  const std::uint32_t newly = h - acked_h_;
  if (newly > unacked_.size()) return false;
  for (std::uint32_t i = 0; i < newly; ++i) {
    bytes_ -= size_of(unacked_.front());
    unacked_.pop_front();
  }
  acked_h_ = h;
  if (acked_h_ - requested_h_ < 0x80000000u) awaiting_ = false;  // h covers the last <r/>
  return true;
}

std::deque<StreamManagement::Unacked> StreamManagement::take_unacked() {
  acked_h_ += static_cast<std::uint32_t>(unacked_.size());
  bytes_ = 0;
  return std::exchange(unacked_, {});
}

}  // namespace waddle::c2s
